//! A made-up packet for `trace packet`, described by its fields.

use crate::wire::arp::{ArpRepr, ARP_LEN, OP_REQUEST};
use crate::wire::ethernet::{ETHERNET_MIN_LEN, ETHERTYPE_ARP, ETHERTYPE_IPV4};
use crate::wire::icmp::{self, IcmpPacket, ICMP_HDR_LEN};
use crate::wire::ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr, IPV4_MIN_HDR_LEN};
use crate::wire::tcp::{self, TcpPacket, TCP_MIN_HDR_LEN};
use crate::wire::udp::{UdpPacket, UDP_HDR_LEN};
use crate::wire::{EthernetFrame, Mac, ETHERNET_HDR_LEN};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// A described packet for `trace packet`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PacketSpec {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// `udp` (default), `tcp` (a SYN), `icmp` (an echo request) or `arp` (a
    /// request for `dst` from `src`).
    #[serde(default)]
    pub proto: Option<String>,
    #[serde(default)]
    pub sport: Option<u16>,
    #[serde(default)]
    pub dport: Option<u16>,
    #[serde(default)]
    pub ttl: Option<u8>,
    /// Total IPv4 length (default: headers and 32 bytes of payload).
    #[serde(default)]
    pub len: Option<u16>,
    #[serde(default)]
    pub smac: Option<Mac>,
    #[serde(default)]
    pub dmac: Option<Mac>,
}

impl PacketSpec {
    /// The frame, behind a zeroed virtio-net header. `dmac` is used when the
    /// spec has none.
    pub fn build(&self, smac: Mac, dmac: Mac) -> Result<Vec<u8>, String> {
        use crate::wire::VNET_HDR_LEN;
        let smac = self.smac.unwrap_or(smac);
        let proto = self.proto.as_deref().unwrap_or("udp");
        let mut f = vec![0u8; VNET_HDR_LEN + ETHERNET_HDR_LEN];
        let mut eth = EthernetFrame::new_unchecked(&mut f[VNET_HDR_LEN..]);
        if proto == "arp" {
            let dmac = self.dmac.unwrap_or(Mac::BROADCAST);
            eth.emit(dmac, smac, ETHERTYPE_ARP);
            let arp = ArpRepr {
                op: OP_REQUEST,
                sender_mac: smac,
                sender_ip: self.src,
                target_mac: Mac::ZERO,
                target_ip: self.dst,
            };
            let at = f.len();
            f.resize(VNET_HDR_LEN + ETHERNET_MIN_LEN, 0);
            arp.emit(&mut f[at..at + ARP_LEN]);
            return Ok(f);
        }
        eth.emit(self.dmac.unwrap_or(dmac), smac, ETHERTYPE_IPV4);
        let (number, l4) = match proto {
            "udp" => (IpProtocol::Udp, UDP_HDR_LEN),
            "tcp" => (IpProtocol::Tcp, TCP_MIN_HDR_LEN),
            "icmp" => (IpProtocol::Icmp, ICMP_HDR_LEN),
            p => return Err(format!("proto must be udp, tcp, icmp or arp, not '{p}'")),
        };
        let min = IPV4_MIN_HDR_LEN + l4;
        let total = usize::from(self.len.unwrap_or((min + 32) as u16));
        if total < min || total > 9000 {
            return Err(format!("len {total}: between {min} and 9000"));
        }
        let at = f.len();
        f.resize(at + total, 0);
        let header = Ipv4Repr {
            src: self.src,
            dst: self.dst,
            protocol: number,
            ttl: self.ttl.unwrap_or(64),
            tos: 0,
            ident: 1,
            dont_frag: false,
            more_frags: false,
            frag_offset: 0,
            payload_len: total - IPV4_MIN_HDR_LEN,
        };
        let mut ip = Ipv4Packet::new_unchecked(&mut f[at..]);
        header.emit(&mut ip);
        let l4b = ip.payload_mut();
        let (sport, dport) = (self.sport.unwrap_or(40000), self.dport.unwrap_or(53));
        match number {
            IpProtocol::Udp => {
                UdpPacket::new_unchecked(l4b).emit(sport, dport, header.payload_len as u16)
            }
            IpProtocol::Tcp => {
                TcpPacket::new_unchecked(l4b).emit_probe(sport, dport, tcp::FLAG_SYN)
            }
            _ => {
                // An echo request with `sport` as its identifier, sequence
                // number 1 and zeros for data.
                let mut echo = IcmpPacket::new_unchecked(l4b);
                echo.set_msg_type(icmp::ECHO_REQUEST);
                echo.set_echo(sport, 1);
                echo.fill_checksum();
            }
        }
        Ok(f)
    }
}
