//! Packet trace: what each stage decided about a packet, as plain data.
//!
//! A trace is armed for a number of packets (on one port, matching a
//! filter). Each stage that handles a traced packet records an [`Event`];
//! nothing is formatted until someone reads the trace, and the buffer is
//! bounded. When no trace is armed the cost is one predictable branch per
//! packet, and one per stage on a flag that is false.
//!
//! The same events describe a hypothetical packet (`trace packet`), run
//! through the live tables in dry mode: nothing is learned, sent or
//! created, and the events say what would be.

use crate::counters::DropReason;
use crate::l2::{BridgeId, PortId};
use crate::wire::arp::{ArpPacket, ArpRepr, ARP_LEN, OP_REQUEST};
use crate::wire::ethernet::{ETHERNET_MIN_LEN, ETHERTYPE_ARP, ETHERTYPE_IPV4};
use crate::wire::icmp::{self, IcmpPacket, ICMP_HDR_LEN};
use crate::wire::ipv4::{Ipv4Packet, Ipv4Repr, IPV4_MIN_HDR_LEN, PROTO_ICMP, PROTO_TCP, PROTO_UDP};
use crate::wire::tcp::{self, TcpPacket, TCP_MIN_HDR_LEN};
use crate::wire::udp::{self, UdpPacket, UDP_HDR_LEN};
use crate::wire::{EthernetFrame, Mac, ETHERNET_HDR_LEN};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv4Addr;

/// Most packets one trace keeps.
pub const MAX_PACKETS: u32 = 10_000;
/// Most events kept for one packet.
pub const MAX_EVENTS_PER_PACKET: usize = 24;

/// What learning the source MAC did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Learned {
    New,
    Refreshed,
    Moved,
    Static,
    TableFull,
    /// Dry run: not learned.
    NotLearned,
}

/// Where a frame goes after the L2 stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum L2Out {
    Port(PortId),
    /// Flooded to this many ports.
    Flood(u16),
    Router,
}

/// What the ARP stage did with an ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArpAction {
    ReplySent,
    Learned,
    NotForUs,
}

/// How the next hop's MAC was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NextHopMac {
    Known(Mac),
    /// Queued until ARP answers; `asked`: a request went out now.
    Queued {
        asked: bool,
    },
}

/// What NAT did to a packet that is not a session's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NatRelated {
    /// An ICMP error about a translated packet, translated back.
    IcmpError,
    /// A later fragment, given its first fragment's addresses.
    Fragment,
    /// A later fragment that came first, held.
    Held,
}

/// One stage's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "kebab-case")]
pub enum Event {
    /// A frame came in.
    Rx {
        port: PortId,
        len: u32,
        src: Mac,
        dst: Mac,
        ethertype: u16,
    },
    /// l2-learn: the source MAC.
    Learn {
        mac: Mac,
        port: PortId,
        learned: Learned,
    },
    /// l2-forward: where the destination MAC leads.
    L2 { dst: Mac, out: L2Out },
    /// arp-input.
    Arp {
        request: bool,
        sender_ip: Ipv4Addr,
        sender_mac: Mac,
        target_ip: Ipv4Addr,
        action: ArpAction,
    },
    /// ip4-input: the header as it came.
    Ip4 {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        proto: u8,
        ttl: u8,
        len: u16,
        /// A fragment: its offset in bytes and whether more follow.
        #[serde(default)]
        frag: Option<(u16, bool)>,
    },
    /// nat: a rewrite, before (`pre`) or after routing: the packet's
    /// addresses and ports before and after.
    Nat {
        pre: bool,
        from: crate::nat::Tuple,
        to: crate::nat::Tuple,
        rule: u32,
        new_session: bool,
    },
    /// nat (pre-routing): a packet that is not a session's own, rewritten
    /// or held for one: its addresses after.
    NatRelated {
        kind: NatRelated,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    },
    /// ip4-lookup: the route that matched.
    Lookup {
        dst: Ipv4Addr,
        prefix: Ipv4Addr,
        len: u8,
        via: Option<Ipv4Addr>,
        bridge: BridgeId,
    },
    /// ip4-local: a packet for the router itself.
    Local { dst: Ipv4Addr, echo_reply: bool },
    /// ip4-mtu: split into this many fragments.
    Fragmented { count: u16, mtu: u16 },
    /// icmp-error: an error sent back to the source.
    IcmpError {
        kind: u8,
        code: u8,
        to: Ipv4Addr,
        /// Fragmentation needed: the next hop's MTU.
        #[serde(default)]
        mtu: u16,
        /// The 4 bytes after the checksum: a redirect's gateway, a parameter
        /// problem's pointer (first byte), the MTU (last two).
        #[serde(default)]
        rest: u32,
    },
    /// arp-resolve: the next hop's MAC.
    Resolve { next_hop: Ipv4Addr, mac: NextHopMac },
    /// arp-input: packets that waited for this MAC are sent now.
    Released { count: u16, mac: Mac },
    /// ip4-rewrite.
    Rewrite {
        ttl_from: u8,
        ttl_to: u8,
        src_mac: Mac,
        dst_mac: Mac,
    },
    /// The frame is sent out of a port (or would be, in a dry run).
    Tx { port: PortId },
    /// The packet goes no further.
    Drop { reason: DropReason },
}

/// A traced packet: its number, when it came (microseconds since the trace
/// started) and what happened to it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TracedPacket {
    pub number: u32,
    pub at_us: u64,
    pub events: Vec<Event>,
    /// Events that did not fit ([`MAX_EVENTS_PER_PACKET`]).
    pub truncated: bool,
}

/// Which packets a trace takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Any of these alternatives, each all of its terms.
    any: Vec<Vec<(bool, Term)>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Term {
    Arp,
    Ip,
    Proto(u8),
    Host(Ipv4Addr),
    Src(Ipv4Addr),
    Dst(Ipv4Addr),
    Port(u16),
    SrcPort(u16),
    DstPort(u16),
    Ether(Mac),
}

/// The word after `w`, which needs `what`.
fn value<'a>(
    words: &mut std::iter::Peekable<std::str::SplitWhitespace<'a>>,
    w: &str,
    what: &str,
) -> Result<&'a str, String> {
    words
        .next()
        .ok_or_else(|| format!("filter: '{w}' needs {what}"))
}

impl Filter {
    /// Parses a tcpdump-like expression: terms `arp`, `ip`, `icmp`, `tcp`,
    /// `udp`, `host A`, `src [host] A`, `dst [host] A`, `[src|dst] port N`,
    /// `ether host MAC`, each optionally after `not`, joined by `and` (or
    /// nothing) and `or`.
    pub fn parse(text: &str) -> Result<Filter, String> {
        let mut any = Vec::new();
        let mut all = Vec::new();
        let mut words = text.split_whitespace().peekable();
        let mut negate = false;
        // After an 'and': a term must follow.
        let mut joined = false;
        while let Some(w) = words.next() {
            let port = |p: Option<&str>| -> Result<u16, String> {
                let p = p.ok_or_else(|| format!("filter: '{w} port' needs a port number"))?;
                p.parse()
                    .map_err(|_| format!("filter: '{p}' is not a port number"))
            };
            let addr = |s: &str| {
                s.parse::<Ipv4Addr>()
                    .map_err(|_| format!("filter: '{s}' is not an IPv4 address"))
            };
            let term = match w {
                "or" | "||" => {
                    if all.is_empty() || negate || joined {
                        return Err("filter: 'or' needs a term on each side".into());
                    }
                    any.push(std::mem::take(&mut all));
                    continue;
                }
                "and" | "&&" => {
                    if all.is_empty() || negate || joined {
                        return Err(format!("filter: '{w}' needs a term on each side"));
                    }
                    joined = true;
                    continue;
                }
                "not" | "!" => {
                    negate = !negate;
                    continue;
                }
                "arp" => Term::Arp,
                "ip" => Term::Ip,
                "icmp" => Term::Proto(1),
                "tcp" => Term::Proto(6),
                "udp" => Term::Proto(17),
                "host" => Term::Host(addr(value(&mut words, w, "an address")?)?),
                "src" | "dst" if words.peek() == Some(&"port") => {
                    words.next();
                    let p = port(words.next())?;
                    if w == "src" {
                        Term::SrcPort(p)
                    } else {
                        Term::DstPort(p)
                    }
                }
                "src" | "dst" => {
                    if words.peek() == Some(&"host") {
                        words.next();
                    }
                    let a = addr(value(&mut words, w, "an address")?)?;
                    if w == "src" {
                        Term::Src(a)
                    } else {
                        Term::Dst(a)
                    }
                }
                "port" => {
                    let p = value(&mut words, w, "a port number")?;
                    Term::Port(
                        p.parse()
                            .map_err(|_| format!("filter: '{p}' is not a port number"))?,
                    )
                }
                "ether" => {
                    let h = value(&mut words, w, "'host MAC'")?;
                    if h != "host" {
                        return Err(format!("filter: 'ether {h}': try 'ether host MAC'"));
                    }
                    let m = value(&mut words, w, "a MAC")?;
                    Term::Ether(m.parse().map_err(|e| format!("filter: {e}"))?)
                }
                other => {
                    return Err(format!(
                        "filter: unknown word '{other}' (arp, ip, icmp, tcp, udp, host A, src A, \
                         dst A, [src|dst] port N, ether host MAC, not, and, or; no parentheses)"
                    ))
                }
            };
            all.push((negate, term));
            negate = false;
            joined = false;
        }
        if negate || joined || (all.is_empty() && !any.is_empty()) {
            return Err("filter: ends without a term".into());
        }
        if !all.is_empty() {
            any.push(all);
        }
        Ok(Filter { any })
    }

    /// Whether an Ethernet frame matches (an empty filter takes all).
    pub fn matches(&self, eth: &[u8]) -> bool {
        self.any.is_empty()
            || self
                .any
                .iter()
                .any(|all| all.iter().all(|&(neg, t)| term_matches(t, eth) != neg))
    }
}

fn term_matches(t: Term, eth: &[u8]) -> bool {
    let Ok(frame) = EthernetFrame::new_checked(eth) else {
        return false;
    };
    let ethertype = frame.ethertype();
    let l3 = &eth[ETHERNET_HDR_LEN..];
    // Unchecked: a filter looks at the addresses of whatever holds them.
    let ip = (ethertype == ETHERTYPE_IPV4 && l3.len() >= IPV4_MIN_HDR_LEN)
        .then(|| Ipv4Packet::new_unchecked(l3));
    let is_ip = ip.is_some();
    // ARP sender and target addresses count as hosts too.
    let arp_addrs = || {
        let arp = ArpPacket::new_checked(l3).ok();
        arp.filter(|_| ethertype == ETHERTYPE_ARP)
            .map(|a| (a.sender_ip(), a.target_ip()))
    };
    let ip_addrs = || ip.map(|ip| (ip.src(), ip.dst()));
    let ports = || {
        let ip = ip?;
        let l4 = l3.get(ip.header_len()..)?;
        matches!(ip.protocol(), PROTO_TCP | PROTO_UDP)
            .then(|| udp::ports(l4))
            .flatten()
    };
    match t {
        Term::Arp => ethertype == ETHERTYPE_ARP,
        Term::Ip => is_ip,
        Term::Proto(p) => ip.is_some_and(|ip| ip.protocol() == p),
        Term::Host(a) => {
            ip_addrs().is_some_and(|(s, d)| s == a || d == a)
                || arp_addrs().is_some_and(|(s, d)| s == a || d == a)
        }
        Term::Src(a) => {
            ip_addrs().is_some_and(|(s, _)| s == a) || arp_addrs().is_some_and(|(s, _)| s == a)
        }
        Term::Dst(a) => {
            ip_addrs().is_some_and(|(_, d)| d == a) || arp_addrs().is_some_and(|(_, d)| d == a)
        }
        Term::Port(p) => ports().is_some_and(|(s, d)| s == p || d == p),
        Term::SrcPort(p) => ports().is_some_and(|(s, _)| s == p),
        Term::DstPort(p) => ports().is_some_and(|(_, d)| d == p),
        Term::Ether(m) => frame.dst() == m || frame.src() == m,
    }
}

/// The trace recorder, owned by the engine's thread.
#[derive(Debug, Default)]
pub struct Tracer {
    /// A trace is armed: packets are checked against it.
    pub armed: bool,
    /// The packet being handled now is traced: stages record.
    pub on: bool,
    /// Dry run: stages must not learn, send or create anything.
    pub dry: bool,
    left: u32,
    port: Option<PortId>,
    filter: Filter,
    started: Option<std::time::Instant>,
    /// Shared with readers: reading a trace copies pointers, not events.
    packets: Vec<std::sync::Arc<TracedPacket>>,
    next_number: u32,
}

impl Tracer {
    /// Arms a trace of the next `count` packets (at most [`MAX_PACKETS`])
    /// that come in on `port` (any if `None`) and match `filter`. Forgets
    /// the previous trace.
    pub fn start(&mut self, count: u32, port: Option<PortId>, filter: Filter) {
        let count = count.clamp(1, MAX_PACKETS);
        *self = Tracer {
            armed: true,
            left: count,
            port,
            filter,
            started: Some(std::time::Instant::now()),
            packets: Vec::with_capacity(count as usize),
            ..Tracer::default()
        };
    }

    /// Disarms the trace; what it recorded stays readable.
    pub fn stop(&mut self) {
        self.armed = false;
        self.on = false;
    }

    /// Packets still to take.
    pub fn left(&self) -> u32 {
        if self.armed {
            self.left
        } else {
            0
        }
    }

    /// The packets traced so far (cheap to clone: shared).
    pub fn packets(&self) -> &[std::sync::Arc<TracedPacket>] {
        &self.packets
    }

    /// A frame came in on `port`: trace it if it is wanted. Call only when
    /// [`Tracer::armed`].
    #[cold]
    pub fn begin(&mut self, port: PortId, eth: &[u8]) {
        if self.left == 0 || self.port.is_some_and(|p| p != port) || !self.filter.matches(eth) {
            return;
        }
        self.left -= 1;
        self.next_number += 1;
        let at_us = self.started.map_or(0, |s| s.elapsed().as_micros() as u64);
        self.packets.push(std::sync::Arc::new(TracedPacket {
            number: self.next_number,
            at_us,
            events: Vec::with_capacity(8),
            truncated: false,
        }));
        self.on = true;
        if let Ok(e) = crate::wire::EthernetFrame::new_checked(eth) {
            self.record(Event::Rx {
                port,
                len: eth.len() as u32,
                dst: e.dst(),
                src: e.src(),
                ethertype: e.ethertype(),
            });
        }
    }

    /// The traced packet is done with.
    #[inline]
    pub fn end(&mut self) {
        if self.on {
            self.on = false;
            if self.left == 0 {
                self.armed = false;
            }
        }
    }

    /// Records an event for the traced packet. Call only when [`Tracer::on`]
    /// (see the [`trace!`](crate::trace!) macro).
    #[cold]
    pub fn record(&mut self, e: Event) {
        // A packet is recorded within one batch and read between batches,
        // so it is never shared while it grows; were it, it is copied.
        if let Some(p) = self.packets.last_mut().map(std::sync::Arc::make_mut) {
            if p.events.len() < MAX_EVENTS_PER_PACKET {
                p.events.push(e);
            } else {
                p.truncated = true;
            }
        }
    }

    /// Sets up a dry run of one packet; returns the trace to put back with
    /// [`Tracer::end_dry`].
    pub fn begin_dry(&mut self) -> Tracer {
        let saved = std::mem::take(self);
        self.armed = true;
        self.dry = true;
        self.left = 1;
        saved
    }

    /// Ends a dry run: the running trace is back, the dry packet returned.
    pub fn end_dry(&mut self, saved: Tracer) -> TracedPacket {
        let packet = self
            .packets
            .pop()
            .map(|p| std::sync::Arc::try_unwrap(p).unwrap_or_else(|p| (*p).clone()));
        *self = saved;
        packet.unwrap_or(TracedPacket {
            number: 1,
            at_us: 0,
            events: Vec::new(),
            truncated: false,
        })
    }
}

/// Records `$event` on `$tracer` if the packet at hand is traced; the event
/// is not even built otherwise.
#[macro_export]
macro_rules! trace {
    ($tracer:expr, $event:expr) => {
        if $tracer.on {
            $tracer.record($event);
        }
    };
    // In code compiled twice, with and without tracing: `$gate` is the
    // const generic that says which, so the untraced copy has no check.
    ($gate:expr; $tracer:expr, $event:expr) => {
        if $gate && $tracer.on {
            $tracer.record($event);
        }
    };
}

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
            "udp" => (PROTO_UDP, UDP_HDR_LEN),
            "tcp" => (PROTO_TCP, TCP_MIN_HDR_LEN),
            "icmp" => (PROTO_ICMP, ICMP_HDR_LEN),
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
            PROTO_UDP => {
                UdpPacket::new_unchecked(l4b).emit(sport, dport, header.payload_len as u16)
            }
            PROTO_TCP => TcpPacket::new_unchecked(l4b).emit_probe(sport, dport, tcp::FLAG_SYN),
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

fn proto_name(p: u8) -> String {
    crate::wire::ipv4::protocol_name(p).into_owned()
}

fn ethertype_name(t: u16) -> String {
    match t {
        ETHERTYPE_IPV4 => "IPv4".into(),
        ETHERTYPE_ARP => "ARP".into(),
        0x86dd => "IPv6".into(),
        0x8100 => "802.1Q".into(),
        t => format!("ethertype 0x{t:04x}"),
    }
}

/// An event in words, with the names of ports and bridges.
pub struct Described<'a> {
    pub event: &'a Event,
    pub port: &'a dyn Fn(PortId) -> String,
    pub bridge: &'a dyn Fn(BridgeId) -> String,
    /// A dry run: say "would".
    pub dry: bool,
}

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self.event {
            Event::Rx { .. } | Event::Learn { .. } | Event::L2 { .. } | Event::Tx { .. } => {
                self.l2(f)
            }
            Event::Arp { .. } | Event::Resolve { .. } | Event::Released { .. } => self.arp(f),
            Event::Ip4 { .. }
            | Event::Lookup { .. }
            | Event::Local { .. }
            | Event::Fragmented { .. }
            | Event::IcmpError { .. }
            | Event::Rewrite { .. } => self.ip4(f),
            Event::Nat { .. } | Event::NatRelated { .. } => self.nat(f),
            Event::Drop { reason } => write!(f, "drop: {} ({})", reason.name(), reason.help()),
        }
    }
}

/// One family of stages' events in words each.
impl Described<'_> {
    /// The bridge's stages: receive, learn, forward, send.
    fn l2(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = self.port;
        match *self.event {
            Event::Rx {
                port: p,
                len,
                src,
                dst,
                ethertype,
            } => write!(
                f,
                "{} rx {len}B {src} > {dst} {}",
                port(p),
                ethertype_name(ethertype)
            ),
            Event::Learn {
                mac,
                port: p,
                learned,
            } => {
                let how = match learned {
                    Learned::New => "new",
                    Learned::Refreshed => "known, refreshed",
                    Learned::Moved => "moved here from another port",
                    Learned::Static => "static entry, left as it is",
                    Learned::TableFull => "FDB full: not learned",
                    Learned::NotLearned => "dry run: not learned",
                };
                write!(f, "l2-learn: {mac} on {} ({how})", port(p))
            }
            Event::L2 { dst, out } => match out {
                L2Out::Port(p) => write!(f, "l2-forward: {dst} is on {}", port(p)),
                L2Out::Flood(n) => {
                    let why = if dst.is_multicast() {
                        "broadcast/multicast"
                    } else {
                        "unknown unicast"
                    };
                    let s = if n == 1 { "" } else { "s" };
                    write!(f, "l2-forward: {dst} {why}: flood to {n} port{s}")
                }
                L2Out::Router => write!(f, "l2-forward: {dst} is the router: ip4/arp input"),
            },
            Event::Tx { port: p } => {
                write!(
                    f,
                    "{} tx{}",
                    port(p),
                    if self.dry { " (dry run: not sent)" } else { "" }
                )
            }
            _ => Ok(()),
        }
    }

    /// ARP: requests and answers, next-hop resolution, packets released.
    fn arp(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let would = |done: &'static str, dry: &'static str| if self.dry { dry } else { done };
        match *self.event {
            Event::Arp {
                request,
                sender_ip,
                sender_mac,
                target_ip,
                action,
            } => {
                let what = if request {
                    format!("who-has {target_ip} tell {sender_ip}")
                } else {
                    format!("reply {sender_ip} is-at {sender_mac}")
                };
                let action = match action {
                    ArpAction::ReplySent => would("reply sent", "a reply would be sent"),
                    ArpAction::Learned => would("sender learned", "sender would be learned"),
                    ArpAction::NotForUs => "not for the router",
                };
                write!(f, "arp: {what} -> {action}")
            }
            Event::Resolve { next_hop, mac } => match mac {
                NextHopMac::Known(m) => write!(f, "arp-resolve: {next_hop} is at {m}"),
                NextHopMac::Queued { asked } => {
                    let ask = if asked {
                        would(", who-has sent", ", who-has would be sent")
                    } else {
                        ""
                    };
                    write!(
                        f,
                        "arp-resolve: {next_hop} unknown: {}{ask}",
                        would("packet queued", "packet would wait")
                    )
                }
            },
            Event::Released { count, mac } => {
                let s = if count == 1 { "" } else { "s" };
                write!(
                    f,
                    "arp-input: {count} packet{s} that waited for {mac} sent on"
                )
            }
            _ => Ok(()),
        }
    }

    /// The IPv4 router's stages.
    fn ip4(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bridge = self.bridge;
        let would = |done: &'static str, dry: &'static str| if self.dry { dry } else { done };
        match *self.event {
            Event::Ip4 {
                src,
                dst,
                proto,
                ttl,
                len,
                frag,
            } => {
                write!(
                    f,
                    "ip4-input: {src} > {dst} {} ttl {ttl} len {len}",
                    proto_name(proto)
                )?;
                match frag {
                    Some((off, more)) => {
                        let more = if more { ", more follow" } else { ", the last" };
                        write!(f, " (fragment at {off}{more})")
                    }
                    None => Ok(()),
                }
            }
            Event::Lookup {
                dst,
                prefix,
                len,
                via,
                bridge: b,
            } => match via {
                Some(gw) => write!(
                    f,
                    "ip4-lookup: {dst} matches {prefix}/{len} via {gw} dev {}",
                    bridge(b)
                ),
                None => write!(
                    f,
                    "ip4-lookup: {dst} matches {prefix}/{len} dev {}",
                    bridge(b)
                ),
            },
            Event::Local { dst, echo_reply } => {
                if echo_reply {
                    let sent = would("echo reply sent", "an echo reply would be sent");
                    write!(f, "ip4-local: echo request to {dst} -> {sent}")
                } else {
                    write!(f, "ip4-local: for {dst}, which only answers pings")
                }
            }
            Event::Fragmented { count, mtu } => {
                write!(f, "ip4-mtu: over the MTU {mtu}: {count} fragments")
            }
            Event::IcmpError {
                kind,
                code,
                to,
                mtu,
                rest,
            } => {
                let what = match (kind, code) {
                    (11, _) => "time exceeded".to_string(),
                    (3, 0) => "net unreachable".to_string(),
                    (3, 1) => "host unreachable".to_string(),
                    (3, 4) => format!("fragmentation needed (mtu {mtu})"),
                    (5, _) => format!("redirect: use gateway {}", Ipv4Addr::from(rest)),
                    (12, _) => format!("parameter problem at byte {}", rest >> 24),
                    (k, c) => format!("type {k} code {c}"),
                };
                write!(
                    f,
                    "icmp-error: {what} {} {to}",
                    would("sent to", "would go to")
                )
            }
            Event::Rewrite {
                ttl_from,
                ttl_to,
                src_mac,
                dst_mac,
            } => write!(
                f,
                "ip4-rewrite: ttl {ttl_from}->{ttl_to}, src mac {src_mac}, dst mac {dst_mac}"
            ),
            _ => Ok(()),
        }
    }

    /// NAT's stages.
    fn nat(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self.event {
            Event::Nat {
                pre,
                from,
                to,
                rule,
                new_session,
            } => {
                let stage = if pre {
                    "nat (pre-routing)"
                } else {
                    "nat (post-routing)"
                };
                let session = if new_session {
                    "new session"
                } else {
                    "session"
                };
                let dry = if new_session && self.dry {
                    "; dry run: not created"
                } else {
                    ""
                };
                // An echo's identifier stands in both "ports": a new one is
                // a change of the source only.
                let dst_changed = to.dst != from.dst || (from.proto != 1 && to.dport != from.dport);
                let src_changed = to.src != from.src || to.sport != from.sport;
                let mut parts = Vec::new();
                if dst_changed {
                    parts.push(format!(
                        "destination {}:{} -> {}:{}",
                        from.dst, from.dport, to.dst, to.dport
                    ));
                }
                if src_changed {
                    parts.push(format!(
                        "source {}:{} -> {}:{}",
                        from.src, from.sport, to.src, to.sport
                    ));
                }
                write!(
                    f,
                    "{stage}: {} ({} {session}, rule {rule}{dry})",
                    parts.join(", "),
                    proto_name(from.proto)
                )
            }
            Event::NatRelated { kind, src, dst } => match kind {
                NatRelated::IcmpError => write!(
                    f,
                    "nat (pre-routing): ICMP error about a translated packet -> to {dst}, \
                     quoting the packet as {dst} sent it (RFC 5508)"
                ),
                NatRelated::Fragment => write!(
                    f,
                    "nat (pre-routing): later fragment -> {src} > {dst}, as its first fragment"
                ),
                NatRelated::Held => write!(
                    f,
                    "nat (pre-routing): later fragment {src} > {dst} before its first: held \
                     (at most 5 s) until that one says what NAT does"
                ),
            },
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ethertype: u16, ip: &[u8]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(ip);
        f
    }

    fn udp(src: [u8; 4], dst: [u8; 4], dport: u16) -> Vec<u8> {
        let mut ip = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        ip.extend_from_slice(&[0x9c, 0x40]);
        ip.extend_from_slice(&dport.to_be_bytes());
        ip.extend_from_slice(&[0, 8, 0, 0]);
        frame(0x0800, &ip)
    }

    #[test]
    fn filters_like_tcpdump() {
        let dns = udp([10, 1, 0, 5], [198, 51, 100, 53], 53);
        let f = |s: &str| Filter::parse(s).unwrap();
        assert!(f("").matches(&dns));
        assert!(f("udp and port 53").matches(&dns));
        assert!(f("arp or host 10.1.0.5").matches(&dns));
        assert!(!f("arp or host 10.1.0.6").matches(&dns));
        assert!(f("not tcp").matches(&dns));
        assert!(f("src 10.1.0.5 dst 198.51.100.53").matches(&dns));
        assert!(!f("dst 10.1.0.5").matches(&dns));
        assert!(f("ether host 02:00:00:00:00:01").matches(&dns));
        assert!(f("udp and dst port 53").matches(&dns));
        assert!(!f("src port 53").matches(&dns));
        assert!(f("src host 10.1.0.5 && dst host 198.51.100.53").matches(&dns));
        let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 1, 0, 5];
        arp.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 1, 0, 1]);
        let arp = frame(0x0806, &arp);
        assert!(f("arp").matches(&arp));
        assert!(f("host 10.1.0.1").matches(&arp));
        for bad in [
            "host",
            "host x",
            "frob",
            "or arp",
            "arp or",
            "not",
            "port 70000",
            "tcp and",
            "and",
            "icmp and and udp",
            "&&",
            "tcp and or udp",
            "src port",
        ] {
            assert!(Filter::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn short_and_odd_frames_match_nothing_and_never_panic() {
        let f = Filter::parse("port 53 or host 10.0.0.1 or src 10.0.0.1 or dst 10.0.0.1 or arp or ip or udp or ether host 02:00:00:00:00:01").unwrap();
        for len in 0..80 {
            for ethertype in [0x0800u16, 0x0806, 0x86dd] {
                let mut fr = vec![0u8; len];
                if len >= ETHERNET_HDR_LEN {
                    EthernetFrame::new_unchecked(&mut fr[..]).set_ethertype(ethertype);
                }
                if len > ETHERNET_HDR_LEN {
                    // Header length 60: past the end.
                    Ipv4Packet::new_unchecked(&mut fr[ETHERNET_HDR_LEN..]).set_header_len(60);
                }
                let _ = f.matches(&fr);
            }
        }
    }

    #[test]
    fn a_trace_is_bounded_and_stops_itself() {
        let mut t = Tracer::default();
        t.start(2, None, Filter::parse("udp").unwrap());
        let dns = udp([10, 1, 0, 5], [198, 51, 100, 53], 53);
        for _ in 0..5 {
            if t.armed {
                t.begin(1, &dns);
            }
            for _ in 0..100 {
                trace!(t, Event::Tx { port: 2 });
            }
            t.end();
        }
        assert!(!t.armed);
        assert_eq!(t.packets().len(), 2);
        assert_eq!(t.packets()[0].events.len(), MAX_EVENTS_PER_PACKET);
        assert!(t.packets()[0].truncated);
    }
}
