//! Wire formats as zero-copy views over frame bytes.
//!
//! Every frame that moves through patchbay is laid out as a virtio-net header
//! followed by the Ethernet frame: see [`vnet`] and [`ethernet`]. ARP and
//! IPv4 ride inside it ([`arp`], [`ipv4`], with [`checksum`]), and ICMP,
//! TCP and UDP inside IPv4 ([`icmp`], [`tcp`], [`udp`]).

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod gro;
pub mod gso;
pub mod icmp;
pub mod ip;
pub mod ipnet;
pub mod ipv4;
pub mod ipv4_options;
pub mod ipv4net;
pub mod ipv6;
pub mod mac;
pub mod tcp;
pub mod udp;
pub mod vlan;
pub mod vnet;
pub mod vxlan;

pub use arp::ArpRepr;
pub use ethernet::{EthernetFrame, ETHERNET_HDR_LEN};
pub use icmp::{IcmpErrorMsg, IcmpPacket, IcmpRepr};
pub use ip::IpProtocol;
pub use ipnet::{IpNet, Ipv6Net};
pub use ipv4::{Ipv4Packet, Ipv4Repr};
pub use ipv4net::{Ipv4Net, NetParseError};
pub use mac::Mac;
pub use vnet::{VnetHdr, VNET_HDR_LEN};

/// A frame too short or otherwise malformed for the view asked of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("frame of {len} bytes is shorter than the {need} bytes its headers need")]
    Truncated { len: usize, need: usize },
}
