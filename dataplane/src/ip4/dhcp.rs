//! ip4-dhcp: DHCP messages to a bridge's server (UDP port 67), handed to
//! the DHCP thread through a bounded queue of buffers taken at start, so
//! the forwarding thread neither parses nor allocates for them. When the
//! queue is full the message is dropped and counted; the server's answers
//! come back as jobs on the engine ([`crate::pipeline::Switch::dhcp_send`]).

use crate::counters::DropReason;
use crate::l2::{BridgeId, PortId};
use crate::wire::ethernet::ETHERTYPE_IPV4;
use crate::wire::ipv4::{IpProtocol, Ipv4Packet};
use crate::wire::{EthernetFrame, ETHERNET_HDR_LEN};
use crossbeam_channel::{Receiver, Sender};

/// The server's UDP port (RFC 2131 4.1).
pub const SERVER_PORT: u16 = 67;
/// The clients' UDP port.
pub const CLIENT_PORT: u16 = 68;
/// Messages waiting for the DHCP thread, at most.
pub const QUEUE: usize = 256;
/// Room for a frame of a 1500-byte MTU.
const BUF: usize = 1518;

/// A client's message for the server: the router interface and port it
/// came in on, and the Ethernet frame (untagged).
#[derive(Debug)]
pub struct DhcpFrame {
    pub iface: BridgeId,
    pub port: PortId,
    pub frame: Vec<u8>,
}

/// The DHCP thread's end: messages to answer, and where their buffers go
/// back.
pub struct DhcpQueueEnd {
    pub frames: Receiver<DhcpFrame>,
    pub free: Sender<Vec<u8>>,
}

/// The forwarding thread's end, and which interfaces have a server.
#[derive(Default)]
pub struct DhcpQueue {
    link: Option<(Sender<DhcpFrame>, Receiver<Vec<u8>>)>,
    served: Vec<bool>,
    /// Messages handed over.
    pub queued: u64,
}

impl DhcpQueue {
    /// Makes the queue and its buffers; the other end goes to the DHCP
    /// thread.
    pub fn connect(&mut self) -> DhcpQueueEnd {
        let (tx, frames) = crossbeam_channel::bounded(QUEUE);
        let (free_tx, free) = crossbeam_channel::bounded(QUEUE);
        for _ in 0..QUEUE {
            let _ = free_tx.send(Vec::with_capacity(BUF));
        }
        self.link = Some((tx, free));
        DhcpQueueEnd {
            frames,
            free: free_tx,
        }
    }

    /// Turns the server of `iface` on or off.
    pub fn serve(&mut self, iface: BridgeId, on: bool) {
        let i = usize::from(iface);
        if i >= self.served.len() {
            self.served.resize(i + 1, false);
        }
        self.served[i] = on;
    }

    pub fn is_served(&self, iface: BridgeId) -> bool {
        self.link.is_some() && self.served.get(usize::from(iface)) == Some(&true)
    }

    /// Hands `eth` (in on `port` of `iface`) to the DHCP thread.
    pub fn offer(&mut self, iface: BridgeId, port: PortId, eth: &[u8]) -> Result<(), DropReason> {
        let Some((tx, free)) = &self.link else {
            return Err(DropReason::DhcpQueueFull);
        };
        if eth.len() > BUF {
            return Err(DropReason::DhcpMalformed);
        }
        let Ok(mut buf) = free.try_recv() else {
            return Err(DropReason::DhcpQueueFull);
        };
        buf.clear();
        buf.extend_from_slice(eth);
        let frame = DhcpFrame {
            iface,
            port,
            frame: buf,
        };
        match tx.try_send(frame) {
            Ok(()) => {
                self.queued += 1;
                Ok(())
            }
            Err(_) => Err(DropReason::DhcpQueueFull),
        }
    }
}

/// Whether `eth` (untagged) is an unfragmented IPv4 UDP datagram to the
/// DHCP server port.
#[inline]
pub fn is_to_server(eth: &[u8]) -> bool {
    let Ok(e) = EthernetFrame::new_checked(eth) else {
        return false;
    };
    if e.ethertype() != ETHERTYPE_IPV4 {
        return false;
    }
    let Ok(ip) = Ipv4Packet::new_checked(&eth[ETHERNET_HDR_LEN..]) else {
        return false;
    };
    ip.protocol() == IpProtocol::Udp
        && ip.frag_offset() == 0
        && !ip.more_frags()
        && crate::wire::udp::ports(ip.payload()).is_some_and(|(_, d)| d == SERVER_PORT)
}
