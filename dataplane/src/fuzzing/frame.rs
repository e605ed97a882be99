//! Frames described by their fields, for a fuzzer to vary.
//!
//! A byte-level mutation of a real frame mostly breaks its IPv4 header
//! checksum and dies in ip4-input. A [`FrameSpec`] is decoded from the
//! fuzzer's bytes with [`arbitrary`] and built with valid checksums and
//! lengths (unless its [`Damage`] says otherwise), from addresses, MACs and
//! ports the lab's tables know, so that most inputs reach ARP, NAT
//! sessions, fragments, IPv4 options and ICMP errors.

use super::lab::{self, LabPort};
use crate::wire::checksum;
use crate::wire::ipv4::{IpProtocol, Ipv4Packet};
use crate::wire::{ArpRepr, Mac, VNET_HDR_LEN};
use arbitrary::Arbitrary;
use std::net::Ipv4Addr;

/// An Ethernet frame by its fields.
#[derive(Debug, Clone, Arbitrary)]
pub struct FrameSpec {
    pub dst: MacChoice,
    pub src: MacChoice,
    pub body: Body,
}

/// What the frame carries.
#[derive(Debug, Clone, Arbitrary)]
pub enum Body {
    Ipv4(Ipv4Spec),
    Arp(ArpSpec),
    /// Another ethertype (IPv6, 802.1Q, ...), or IPv4/ARP bytes as they come.
    Other {
        ethertype: u16,
        payload: Vec<u8>,
    },
}

/// A MAC address: the lab's stations and router interfaces, group
/// addresses, or any.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum MacChoice {
    /// The router interface of the bridge the frame comes in on.
    Router,
    /// The router interface of the other bridge.
    OtherRouter,
    InsideHost,
    OutsideHost,
    /// A station `02:00:00:00:03:nn`.
    Station(u8),
    Broadcast,
    /// An IPv4 multicast MAC.
    Multicast(u8),
    /// `01:80:c2:00:00:0n`, which no bridge forwards.
    ReservedGroup(u8),
    Zero,
    Any([u8; 6]),
}

impl MacChoice {
    pub fn mac(self, port: LabPort, router_macs: [Mac; 2]) -> Mac {
        let outside = port == LabPort::Outside;
        match self {
            MacChoice::Router => router_macs[usize::from(outside)],
            MacChoice::OtherRouter => router_macs[usize::from(!outside)],
            MacChoice::InsideHost => lab::INSIDE_HOST_MAC,
            MacChoice::OutsideHost => lab::OUTSIDE_HOST_MAC,
            MacChoice::Station(n) => Mac([2, 0, 0, 0, 3, n]),
            MacChoice::Broadcast => Mac::BROADCAST,
            MacChoice::Multicast(n) => Mac([1, 0, 0x5e, 0, 0, n]),
            MacChoice::ReservedGroup(n) => Mac([1, 0x80, 0xc2, 0, 0, n & 0x0f]),
            MacChoice::Zero => Mac::ZERO,
            MacChoice::Any(m) => Mac(m),
        }
    }
}

/// An IPv4 address: the lab's hosts, router addresses, NAT pool and
/// networks, special addresses, or any.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Addr {
    InsideHost,
    OutsideHost,
    RouterInside,
    RouterOutside,
    /// `192.168.15.n`: the masqueraded /25, then the SNAT'd one.
    InsideNet(u8),
    /// `203.0.113.n`, mostly without an ARP entry.
    OutsideNet(u8),
    /// `198.51.100.n`, routed via a gateway that never answers ARP.
    Remote(u8),
    /// An address of the SNAT pool.
    SnatPool(bool),
    InsideBroadcast,
    Broadcast,
    Multicast(u8),
    Loopback,
    Unspecified,
    Any([u8; 4]),
}

impl Addr {
    pub fn ip(self) -> Ipv4Addr {
        match self {
            Addr::InsideHost => lab::INSIDE_HOST,
            Addr::OutsideHost => lab::OUTSIDE_HOST,
            Addr::RouterInside => lab::ROUTER_INSIDE,
            Addr::RouterOutside => lab::ROUTER_OUTSIDE,
            Addr::InsideNet(n) => Ipv4Addr::new(192, 168, 15, n),
            Addr::OutsideNet(n) => Ipv4Addr::new(203, 0, 113, n),
            Addr::Remote(n) => Ipv4Addr::new(198, 51, 100, n),
            Addr::SnatPool(last) => {
                if last {
                    lab::SNAT_LAST
                } else {
                    lab::SNAT_FIRST
                }
            }
            Addr::InsideBroadcast => Ipv4Addr::new(192, 168, 15, 255),
            Addr::Broadcast => Ipv4Addr::BROADCAST,
            Addr::Multicast(n) => Ipv4Addr::new(224, 0, 0, n),
            Addr::Loopback => Ipv4Addr::LOCALHOST,
            Addr::Unspecified => Ipv4Addr::UNSPECIFIED,
            Addr::Any(o) => Ipv4Addr::from(o),
        }
    }
}

/// An ARP packet (RFC 826).
#[derive(Debug, Clone, Arbitrary)]
pub struct ArpSpec {
    pub reply: bool,
    pub sender_mac: MacChoice,
    pub sender_ip: Addr,
    pub target_mac: MacChoice,
    pub target_ip: Addr,
    /// A hardware/protocol type other than Ethernet/IPv4, or an unknown op.
    pub odd: Option<(u8, u16)>,
}

/// An IPv4 packet (RFC 791).
#[derive(Debug, Clone, Arbitrary)]
pub struct Ipv4Spec {
    pub src: Addr,
    pub dst: Addr,
    pub ttl: u8,
    /// Few identifiers, so that fragments of one datagram meet.
    pub ident: u8,
    pub tos: u8,
    pub frag: Frag,
    pub options: Vec<IpOption>,
    pub l4: L4,
    pub damage: Damage,
}

/// Where the packet sits in its datagram.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Frag {
    Whole,
    DontFragment,
    /// Offset 0, more fragments.
    First,
    /// Offset in 8-byte units.
    Later {
        offset: u16,
        more: bool,
    },
}

/// An IPv4 option (RFC 791 3.1); lists longer than 40 bytes are cut.
#[derive(Debug, Clone, Arbitrary)]
pub enum IpOption {
    End,
    Nop,
    RecordRoute {
        slots: u8,
        pointer: u8,
    },
    Timestamp {
        slots: u8,
        pointer: u8,
        flags: u8,
    },
    LooseSourceRoute {
        hops: Vec<Addr>,
        pointer: u8,
    },
    StrictSourceRoute {
        hops: Vec<Addr>,
        pointer: u8,
    },
    RouterAlert,
    /// Any type byte (bit 7 says "copied into fragments"), any length byte.
    Raw {
        kind: u8,
        len: u8,
        data: Vec<u8>,
    },
}

/// The transport part.
#[derive(Debug, Clone, Arbitrary)]
pub enum L4 {
    Udp {
        sport: PortChoice,
        dport: PortChoice,
        payload: Payload,
        /// Sent with checksum 0 ("none", RFC 768).
        no_checksum: bool,
    },
    Tcp {
        sport: PortChoice,
        dport: PortChoice,
        flags: u8,
        payload: Payload,
    },
    /// Echo request or reply.
    Echo {
        reply: bool,
        ident: u16,
        seq: u16,
        payload: Payload,
    },
    /// Timestamp, information or address-mask request or reply (types
    /// 13 to 18), or any other type with an identifier field.
    Query { kind: u8, ident: u16 },
    /// An ICMP error quoting a packet (RFC 792).
    Error {
        kind: ErrorKind,
        code: u8,
        quote: Quote,
    },
    /// Any ICMP message.
    Icmp { kind: u8, code: u8, rest: Vec<u8> },
    /// A protocol NAT tracks by address alone (GRE, ESP, SCTP, ...).
    Other { proto: u8, payload: Payload },
}

/// A TCP or UDP port: the ones the lab's NAT rules name, or any.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum PortChoice {
    Dns,
    /// The published UDP port (DNAT to the inside host's port 53).
    Mdns,
    Http,
    /// The published TCP port (DNAT to the inside host's port 80).
    HttpAlt,
    /// `20000 + n % 8`: in the SNAT rule's four ports, or just past them.
    SnatRange(u8),
    /// `40000 + n`.
    Ephemeral(u8),
    Any(u16),
}

impl PortChoice {
    pub fn port(self) -> u16 {
        match self {
            PortChoice::Dns => 53,
            PortChoice::Mdns => lab::PUBLISHED_UDP,
            PortChoice::Http => 80,
            PortChoice::HttpAlt => lab::PUBLISHED_TCP,
            PortChoice::SnatRange(n) => lab::SNAT_PORTS.0 + u16::from(n % 8),
            PortChoice::Ephemeral(n) => 40000 + u16::from(n),
            PortChoice::Any(p) => p,
        }
    }
}

/// Payload bytes: a few, or enough to need fragmenting on the outside
/// bridge (MTU 600) or the inside one (1500).
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Payload {
    Small(u8),
    Large(u16),
}

impl Payload {
    pub fn len(self) -> usize {
        match self {
            Payload::Small(n) => usize::from(n),
            Payload::Large(n) => usize::from(n) % 4000,
        }
    }
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
    fn bytes(self) -> impl Iterator<Item = u8> {
        (0..self.len()).map(|i| i as u8)
    }
}

/// The ICMP errors (RFC 792).
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum ErrorKind {
    Unreachable,
    TimeExceeded,
    ParameterProblem,
    SourceQuench,
    /// Not an error NAT translates (RFC 5508 covers 3, 4, 11, 12).
    Redirect,
}

impl ErrorKind {
    fn icmp_type(self) -> u8 {
        match self {
            ErrorKind::Unreachable => 3,
            ErrorKind::TimeExceeded => 11,
            ErrorKind::ParameterProblem => 12,
            ErrorKind::SourceQuench => 4,
            ErrorKind::Redirect => 5,
        }
    }
}

/// The packet an ICMP error quotes: its header and the start of its
/// transport header, maybe cut short.
#[derive(Debug, Clone, Arbitrary)]
pub struct Quote {
    pub src: Addr,
    pub dst: Addr,
    pub l4: QuotedL4,
    /// Bytes of the quoted packet kept (from its start), if cut.
    pub cut: Option<u8>,
    /// Inner header length in 4-byte words, when not 5.
    pub ihl: Option<u8>,
}

/// The transport header of a quoted packet.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum QuotedL4 {
    Udp {
        sport: PortChoice,
        dport: PortChoice,
    },
    Tcp {
        sport: PortChoice,
        dport: PortChoice,
    },
    Echo {
        reply: bool,
        ident: u16,
    },
    Other {
        proto: u8,
    },
}

/// What is wrong with the packet, on purpose.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Damage {
    None,
    HeaderChecksum,
    TransportChecksum,
    /// A total length other than the real one.
    TotalLength(u16),
    /// A header length (in words) other than the real one.
    HeaderLength(u8),
    Version(u8),
    /// The frame cut to this many bytes of IPv4.
    Cut(u16),
    /// Ethernet padding after the packet.
    Padding(u8),
}

impl FrameSpec {
    /// The frame, behind a zeroed virtio-net header, as it comes in on
    /// `port` of a lab whose router interfaces have `router_macs`.
    pub fn build(&self, port: LabPort, router_macs: [Mac; 2]) -> Vec<u8> {
        let mut f = vec![0u8; VNET_HDR_LEN];
        f.extend_from_slice(&self.dst.mac(port, router_macs).0);
        f.extend_from_slice(&self.src.mac(port, router_macs).0);
        match &self.body {
            Body::Ipv4(ip) => {
                f.extend_from_slice(&[0x08, 0x00]);
                ip.emit(&mut f);
            }
            Body::Arp(arp) => {
                f.extend_from_slice(&[0x08, 0x06]);
                arp.emit(&mut f, port, router_macs);
            }
            Body::Other { ethertype, payload } => {
                f.extend_from_slice(&ethertype.to_be_bytes());
                f.extend_from_slice(payload);
            }
        }
        f
    }
}

impl ArpSpec {
    fn emit(&self, f: &mut Vec<u8>, port: LabPort, router_macs: [Mac; 2]) {
        let arp = ArpRepr {
            op: if self.reply {
                crate::wire::arp::OP_REPLY
            } else {
                crate::wire::arp::OP_REQUEST
            },
            sender_mac: self.sender_mac.mac(port, router_macs),
            sender_ip: self.sender_ip.ip(),
            target_mac: self.target_mac.mac(port, router_macs),
            target_ip: self.target_ip.ip(),
        };
        let at = f.len();
        f.resize(at + crate::wire::arp::ARP_LEN, 0);
        arp.emit(&mut f[at..]);
        if let Some((at_byte, value)) = self.odd {
            // One of the fixed fields (types, lengths, op) made odd.
            let i = at + usize::from(at_byte % 8);
            f[i] = value as u8;
        }
        // Ethernet's minimum frame.
        f.resize(f.len().max(VNET_HDR_LEN + 60), 0);
    }
}

impl Ipv4Spec {
    fn emit(&self, f: &mut Vec<u8>) {
        let (src, dst) = (self.src.ip(), self.dst.ip());
        let options = emit_options(&self.options);
        let hl = 20 + options.len();
        let proto = self.l4.protocol();
        let at = f.len();
        f.resize(at + hl, 0);
        self.l4.emit(f, src, dst);
        let total = f.len() - at;
        let ip = &mut f[at..];
        ip[0] = 0x40 | (hl / 4) as u8;
        ip[1] = self.tos;
        ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&u16::from(self.ident).to_be_bytes());
        let frag: u16 = match self.frag {
            Frag::Whole => 0,
            Frag::DontFragment => 0x4000,
            Frag::First => 0x2000,
            Frag::Later { offset, more } => {
                (offset & 0x1fff).max(1) | if more { 0x2000 } else { 0 }
            }
        };
        ip[6..8].copy_from_slice(&frag.to_be_bytes());
        ip[8] = self.ttl;
        ip[9] = u8::from(proto);
        ip[12..16].copy_from_slice(&src.octets());
        ip[16..20].copy_from_slice(&dst.octets());
        ip[20..hl].copy_from_slice(&options);
        Ipv4Packet::new_unchecked(&mut ip[..hl]).fill_checksum();
        match self.damage {
            Damage::None => {}
            Damage::HeaderChecksum => ip[10] ^= 0x5a,
            Damage::TransportChecksum => {
                // `Other` with protocol 1, 6 or 17 may be too short to have one.
                if let Some(c) = self.l4.checksum_at().filter(|&c| hl + c < ip.len()) {
                    ip[hl + c] ^= 0xa5;
                }
            }
            Damage::TotalLength(n) => {
                ip[2..4].copy_from_slice(&n.to_be_bytes());
                Ipv4Packet::new_unchecked(&mut ip[..hl]).fill_checksum();
            }
            Damage::HeaderLength(n) => {
                ip[0] = 0x40 | (n & 0x0f);
                ip[10..12].fill(0);
                let c = checksum::checksum(&ip[..hl.min(usize::from(n & 0x0f) * 4).max(20)]);
                ip[10..12].copy_from_slice(&c.to_be_bytes());
            }
            Damage::Version(v) => ip[0] = (v << 4) | (ip[0] & 0x0f),
            Damage::Cut(n) => f.truncate(at + usize::from(n) % total.max(1)),
            Damage::Padding(n) => f.extend((0..n).map(|i| i ^ 0x55)),
        }
    }
}

/// The options' bytes, padded to a multiple of 4, at most 40.
fn emit_options(options: &[IpOption]) -> Vec<u8> {
    let mut b = Vec::new();
    for o in options {
        match o {
            IpOption::End => b.push(0),
            IpOption::Nop => b.push(1),
            IpOption::RecordRoute { slots, pointer } => {
                let len = 3 + 4 * usize::from(slots % 10);
                b.extend_from_slice(&[7, len as u8, 4 + pointer % 40]);
                b.resize(b.len() + len - 3, 0);
            }
            IpOption::Timestamp {
                slots,
                pointer,
                flags,
            } => {
                let len = 4 + 4 * usize::from(slots % 10);
                b.extend_from_slice(&[68, len as u8, 5 + pointer % 40, *flags]);
                b.resize(b.len() + len - 4, 0);
            }
            IpOption::LooseSourceRoute { hops, pointer } => {
                source_route(&mut b, 131, hops, *pointer)
            }
            IpOption::StrictSourceRoute { hops, pointer } => {
                source_route(&mut b, 137, hops, *pointer)
            }
            IpOption::RouterAlert => b.extend_from_slice(&[148, 4, 0, 0]),
            IpOption::Raw { kind, len, data } => {
                b.extend_from_slice(&[*kind, *len]);
                b.extend_from_slice(data);
            }
        }
    }
    b.truncate(40);
    b.resize(b.len().div_ceil(4) * 4, 0);
    b
}

/// Loose or strict source and record route (RFC 791 3.1).
fn source_route(b: &mut Vec<u8>, kind: u8, hops: &[Addr], pointer: u8) {
    let hops = &hops[..hops.len().min(9)];
    b.extend_from_slice(&[kind, 3 + 4 * hops.len() as u8, 4 + pointer % 40]);
    for h in hops {
        b.extend_from_slice(&h.ip().octets());
    }
}

impl L4 {
    fn protocol(&self) -> IpProtocol {
        match self {
            L4::Udp { .. } => IpProtocol::Udp,
            L4::Tcp { .. } => IpProtocol::Tcp,
            L4::Echo { .. } | L4::Query { .. } | L4::Error { .. } | L4::Icmp { .. } => {
                IpProtocol::Icmp
            }
            L4::Other { proto, .. } => IpProtocol::from(*proto),
        }
    }

    /// Where the checksum field is, in the transport header.
    fn checksum_at(&self) -> Option<usize> {
        match self.protocol() {
            IpProtocol::Udp => Some(6),
            IpProtocol::Tcp => Some(16),
            IpProtocol::Icmp => Some(2),
            _ => None,
        }
    }

    /// Appends the transport header and payload, checksummed.
    fn emit(&self, f: &mut Vec<u8>, src: Ipv4Addr, dst: Ipv4Addr) {
        let at = f.len();
        match *self {
            L4::Udp {
                sport,
                dport,
                payload,
                ..
            } => {
                f.extend_from_slice(&sport.port().to_be_bytes());
                f.extend_from_slice(&dport.port().to_be_bytes());
                f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
                f.extend_from_slice(&[0, 0]);
                f.extend(payload.bytes());
            }
            L4::Tcp {
                sport,
                dport,
                flags,
                payload,
            } => {
                f.extend_from_slice(&sport.port().to_be_bytes());
                f.extend_from_slice(&dport.port().to_be_bytes());
                f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff]);
                f.extend_from_slice(&[0, 0, 0, 0]);
                f.extend(payload.bytes());
            }
            L4::Echo {
                reply,
                ident,
                seq,
                payload,
            } => {
                f.extend_from_slice(&[if reply { 0 } else { 8 }, 0, 0, 0]);
                f.extend_from_slice(&ident.to_be_bytes());
                f.extend_from_slice(&seq.to_be_bytes());
                f.extend(payload.bytes());
            }
            L4::Query { kind, ident } => {
                f.extend_from_slice(&[13 + kind % 6, 0, 0, 0]);
                f.extend_from_slice(&ident.to_be_bytes());
                f.extend_from_slice(&[0; 14]);
            }
            L4::Error {
                kind,
                code,
                ref quote,
            } => {
                f.extend_from_slice(&[kind.icmp_type(), code, 0, 0, 0, 0, 0x02, 0x58]);
                quote.emit(f);
            }
            L4::Icmp {
                kind,
                code,
                ref rest,
            } => {
                f.extend_from_slice(&[kind, code, 0, 0]);
                f.extend_from_slice(rest);
            }
            L4::Other { payload, .. } => f.extend(payload.bytes()),
        }
        let seg = &mut f[at..];
        let sum = match self.protocol() {
            IpProtocol::Udp | IpProtocol::Tcp => {
                checksum::pseudo_header(src, dst, self.protocol(), seg.len() as u16)
            }
            _ => 0,
        };
        if let Some(c) = self.checksum_at().filter(|&c| seg.len() >= c + 2) {
            let mut v = checksum::finish(checksum::add(sum, seg));
            if let L4::Udp { no_checksum, .. } = *self {
                v = if no_checksum {
                    0
                } else if v == 0 {
                    0xffff
                } else {
                    v
                };
            }
            seg[c..c + 2].copy_from_slice(&v.to_be_bytes());
        }
    }
}

impl Quote {
    fn emit(&self, f: &mut Vec<u8>) {
        let ihl = self.ihl.map_or(5, |n| n & 0x0f);
        let hl = usize::from(ihl).max(5) * 4;
        let at = f.len();
        f.resize(at + hl, 0);
        let proto = match self.l4 {
            QuotedL4::Udp { sport, dport } => {
                f.extend_from_slice(&sport.port().to_be_bytes());
                f.extend_from_slice(&dport.port().to_be_bytes());
                f.extend_from_slice(&[0, 40, 0x12, 0x34]);
                IpProtocol::Udp
            }
            QuotedL4::Tcp { sport, dport } => {
                f.extend_from_slice(&sport.port().to_be_bytes());
                f.extend_from_slice(&dport.port().to_be_bytes());
                f.extend_from_slice(&[0, 0, 0, 1]);
                IpProtocol::Tcp
            }
            QuotedL4::Echo { reply, ident } => {
                f.extend_from_slice(&[if reply { 0 } else { 8 }, 0, 0x12, 0x34]);
                f.extend_from_slice(&ident.to_be_bytes());
                f.extend_from_slice(&[0, 1]);
                IpProtocol::Icmp
            }
            QuotedL4::Other { proto } => {
                f.extend_from_slice(&[0; 8]);
                IpProtocol::from(proto)
            }
        };
        let inner = &mut f[at..];
        inner[0] = 0x40 | ihl;
        // The quoted packet was longer than what is quoted of it.
        inner[2..4].copy_from_slice(&((hl + 32) as u16).to_be_bytes());
        inner[8] = 1;
        inner[9] = u8::from(proto);
        inner[12..16].copy_from_slice(&self.src.ip().octets());
        inner[16..20].copy_from_slice(&self.dst.ip().octets());
        Ipv4Packet::new_unchecked(&mut inner[..hl]).fill_checksum();
        if let Some(n) = self.cut {
            f.truncate(at + usize::from(n).min(f.len() - at));
        }
    }
}

/// Makes the IPv4 header checksum and the UDP, TCP or ICMP checksum of an
/// Ethernet frame (`eth`) right again after a byte-level mutation, as far
/// as its header lengths let them be found; anything else is left as is.
pub fn repair_checksums(eth: &mut [u8]) {
    if eth.len() < 14 + 20 || eth[12..14] != [0x08, 0x00] {
        return;
    }
    let l3 = &mut eth[14..];
    let hl = usize::from(l3[0] & 0x0f) * 4;
    if hl < 20 || hl > l3.len() {
        return;
    }
    Ipv4Packet::new_unchecked(&mut l3[..hl]).fill_checksum();
    let ip = Ipv4Packet::new_unchecked(&*l3);
    let total = ip.total_len().min(l3.len());
    if total < hl || ip.frag_offset() != 0 || ip.more_frags() {
        return;
    }
    let (src, dst, proto) = (ip.src(), ip.dst(), ip.protocol());
    let seg = &mut l3[hl..total];
    let (sum, at) = match proto {
        IpProtocol::Udp => (
            checksum::pseudo_header(src, dst, proto, seg.len() as u16),
            6,
        ),
        IpProtocol::Tcp => (
            checksum::pseudo_header(src, dst, proto, seg.len() as u16),
            16,
        ),
        IpProtocol::Icmp => (0, 2),
        _ => return,
    };
    if seg.len() < at + 2 || (proto == IpProtocol::Udp && seg[6..8] == [0, 0]) {
        return;
    }
    seg[at..at + 2].fill(0);
    let c = checksum::finish(checksum::add(sum, seg));
    let c = if proto == IpProtocol::Udp && c == 0 {
        0xffff
    } else {
        c
    };
    seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// Whether the UDP, TCP or ICMP checksum of an IPv4 packet (`l3`, its
/// header checked) verifies; `None` where there is none to verify: a
/// fragment, another protocol, a UDP checksum of 0, a segment too short.
pub fn transport_checksum_ok(l3: &[u8]) -> Option<bool> {
    let ip = Ipv4Packet::new_checked(l3).ok()?;
    if ip.frag_offset() != 0 || ip.more_frags() {
        return None;
    }
    let seg = ip.payload();
    let sum = match ip.protocol() {
        IpProtocol::Udp if seg.len() >= 8 && seg[6..8] != [0, 0] => {
            checksum::pseudo_header(ip.src(), ip.dst(), IpProtocol::Udp, seg.len() as u16)
        }
        IpProtocol::Tcp if seg.len() >= 20 => {
            checksum::pseudo_header(ip.src(), ip.dst(), IpProtocol::Tcp, seg.len() as u16)
        }
        IpProtocol::Icmp if seg.len() >= 8 => 0,
        _ => return None,
    };
    Some(checksum::finish(checksum::add(sum, seg)) == 0)
}
