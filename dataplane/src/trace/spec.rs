//! A made-up packet for `trace packet`, described by its fields.

use crate::wire::arp::{ArpRepr, ARP_LEN, OP_REQUEST};
use crate::wire::ethernet::{ETHERNET_MIN_LEN, ETHERTYPE_ARP, ETHERTYPE_IPV4};
use crate::wire::icmp::{self, IcmpPacket, ICMP_HDR_LEN};
use crate::wire::ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr, IPV4_MIN_HDR_LEN};
use crate::wire::tcp::{self, TcpPacket, TCP_MIN_HDR_LEN};
use crate::wire::udp::{UdpPacket, UDP_HDR_LEN};
use crate::wire::{EthernetFrame, Mac, ETHERNET_HDR_LEN};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv6Addr};

/// A described packet for `trace packet`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PacketSpec {
    /// IPv4 or IPv6 (both of one family).
    pub src: IpAddr,
    pub dst: IpAddr,
    /// `udp` (default), `tcp` (a SYN), `icmp` (an echo request; ICMPv6's
    /// for IPv6) or `arp` (a request for `dst` from `src`, IPv4 only).
    #[serde(default)]
    pub proto: Option<String>,
    #[serde(default)]
    pub sport: Option<u16>,
    #[serde(default)]
    pub dport: Option<u16>,
    #[serde(default)]
    pub ttl: Option<u8>,
    /// Total IPv4 length, or IPv6 payload length (default: headers and 32
    /// bytes of payload). `ttl` is IPv6's hop limit.
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
        let (src, dst) = match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => (s, d),
            (IpAddr::V6(s), IpAddr::V6(d)) => return self.build6(s, d, smac, dmac),
            _ => return Err("src and dst must both be IPv4 or both IPv6".into()),
        };
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
                sender_ip: src,
                target_mac: Mac::ZERO,
                target_ip: dst,
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
            src,
            dst,
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

    /// An IPv6 packet: UDP, a TCP SYN or an ICMPv6 echo request (its
    /// checksum made with `smoltcp::wire`, so the router's own stages take
    /// it as a host's).
    fn build6(
        &self,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        smac: Mac,
        dmac: Mac,
    ) -> Result<Vec<u8>, String> {
        use crate::wire::ethernet::ETHERTYPE_IPV6;
        use crate::wire::VNET_HDR_LEN;
        use smoltcp::wire::{
            Icmpv6Packet, Icmpv6Repr, IpProtocol as P, Ipv6Packet as V6, Ipv6Repr,
        };
        let proto = self.proto.as_deref().unwrap_or("udp");
        let (next, l4) = match proto {
            "udp" => (P::Udp, UDP_HDR_LEN),
            "tcp" => (P::Tcp, TCP_MIN_HDR_LEN),
            "icmp" | "icmp6" => (P::Icmpv6, 8),
            "arp" => return Err("arp is IPv4's (IPv6 neighbours are found by icmp6)".into()),
            p => return Err(format!("proto must be udp, tcp or icmp, not '{p}'")),
        };
        let payload = usize::from(self.len.unwrap_or((l4 + 32) as u16));
        if payload < l4 || payload > 9000 {
            return Err(format!("len {payload}: between {l4} and 9000"));
        }
        let at = VNET_HDR_LEN + ETHERNET_HDR_LEN;
        let mut f = vec![0u8; at + 40 + payload];
        EthernetFrame::new_unchecked(&mut f[VNET_HDR_LEN..]).emit(
            self.dmac.unwrap_or(dmac),
            self.smac.unwrap_or(smac),
            ETHERTYPE_IPV6,
        );
        let header = Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: next,
            payload_len: payload,
            hop_limit: self.ttl.unwrap_or(64),
        };
        header.emit(&mut V6::new_unchecked(&mut f[at..at + 40]));
        let l4b = &mut f[at + 40..];
        let (sport, dport) = (self.sport.unwrap_or(40000), self.dport.unwrap_or(53));
        match next {
            P::Udp => UdpPacket::new_unchecked(l4b).emit(sport, dport, payload as u16),
            P::Tcp => TcpPacket::new_unchecked(l4b).emit_probe(sport, dport, tcp::FLAG_SYN),
            _ => {
                let data = vec![0u8; payload - 8];
                let echo = Icmpv6Repr::EchoRequest {
                    ident: sport,
                    seq_no: 1,
                    data: &data,
                };
                echo.emit(
                    &src,
                    &dst,
                    &mut Icmpv6Packet::new_unchecked(l4b),
                    &smoltcp::phy::ChecksumCapabilities::default(),
                );
            }
        }
        Ok(f)
    }
}
