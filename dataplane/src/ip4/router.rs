//! The IPv4 router: router interfaces on bridges, and the stages a frame
//! addressed to a router MAC goes through (RFC 1812):
//!
//! ```text
//! arp-input (answer, learn) | ip4-input (validate) -> ip4-local (echo)
//!                                                  -> ip4-lookup (FIB) -> ip4-mtu (fragment | frag-needed)
//!                                                  -> ip4-rewrite (TTL, checksum, MACs) -> arp-resolve (or queue)
//! icmp-error: time exceeded, unreachable, fragmentation needed (rate limited)
//! ```

use super::fib::{Fib, FibError};
use super::icmp;
use super::neigh::{ArpCache, Ask, NeighState, Resolve};
use super::reassembly::{Added, Reassembly};
use super::rpf::RpFilter;
use super::Mtu;
use crate::counters::DropReason;
use crate::emit::{EmitTo, Emitter, BUF_SIZE};
use crate::l2::{BridgeId, PortId};
use crate::nat::{
    parse_icmp_error, parse_tuple, rewrite, rewrite_addrs, rewrite_icmp_error, FragmentFate,
    FragmentKey, Nat, NatAction, NatDrop, NatVerdict, Peek, Tuple, FRAGMENT_MS,
};
use crate::random::Random;
use crate::trace;
use crate::trace::{ArpAction, Event, NatRelated, NextHopMac, Tracer};
use crate::wire::arp::{ArpRepr, ARP_LEN, OP_REPLY, OP_REQUEST};
use crate::wire::ipv4::{
    self, Ipv4Error, Ipv4Packet, IPV4_MIN_HDR_LEN, PROTO_ICMP, PROTO_TCP, PROTO_UDP,
};
use crate::wire::ipv4_options::{self, BadOption};
use crate::wire::vnet::{VnetHdr, F_NEEDS_CSUM};
use crate::wire::{checksum, Ipv4Net, Mac, VNET_HDR_LEN};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::Ipv4Addr;

mod arp;
mod config;
mod fragment;
mod icmp_error;
mod local;
mod nat_stages;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETH: usize = 14;
/// Offset of the Ethernet header in a frame (after the virtio-net header).
const L2: usize = VNET_HDR_LEN;
const L3: usize = VNET_HDR_LEN + ETH;
/// ICMP errors allowed per second (RFC 1812 4.3.2.8: rate-limit them).
const ICMP_PER_SECOND: u32 = 200;
pub const DEFAULT_MTU: u16 = Mtu::DEFAULT.get();

/// A bridge's router interface: the MAC frames use to reach the router, its
/// addresses, the MTU of the bridge, and how it treats what comes in.
#[derive(Debug, Clone)]
pub struct RouterInterface {
    pub mac: Mac,
    pub addrs: Vec<Ipv4Net>,
    pub mtu: u16,
    /// Reverse-path filtering of what comes in on it.
    pub rp_filter: RpFilter,
    /// Whether it sends ICMP redirects (RFC 1812 5.2.7.2; Linux's
    /// `send_redirects`, on by default).
    pub redirects: bool,
}

impl RouterInterface {
    /// Our address on the subnet of `peer`, or the first one.
    fn source_for(&self, peer: Ipv4Addr) -> Option<Ipv4Addr> {
        self.addrs
            .iter()
            .find(|a| a.contains(peer))
            .or(self.addrs.first())
            .map(|a| a.addr)
    }
}

/// Where a route sends packets: out of a bridge, to a gateway or (for a
/// connected route) straight to the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NextHop {
    pub bridge: BridgeId,
    pub gateway: Option<Ipv4Addr>,
}

/// What the router stages did, beyond the drops counted per port.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct L3Counters {
    pub arp_in: u64,
    pub arp_replies_sent: u64,
    pub arp_requests_sent: u64,
    pub ip4_in: u64,
    pub ip4_local: u64,
    pub ip4_forwarded: u64,
    pub arp_queued: u64,
    /// Queued packets dropped: their next hop never answered ARP (each
    /// gets a host unreachable, rate limits allowing).
    #[serde(default)]
    pub arp_failed: u64,
    pub fragments_made: u64,
    /// Datagrams to the router put together from fragments, and those given
    /// up (their fragments did not all come in time).
    #[serde(default)]
    pub reassembled: u64,
    #[serde(default)]
    pub reassembly_timeouts: u64,
    /// Packets waiting for ARP that made room for newer ones.
    #[serde(default)]
    pub arp_queue_overflow: u64,
    pub icmp_errors_sent: u64,
    pub icmp_rate_limited: u64,
}

/// What became of a frame given to the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L3Out {
    /// Rewritten in place: send it into `bridge` towards `dst`.
    Forward {
        bridge: BridgeId,
        dst: Mac,
    },
    /// Answered, queued or copied: nothing more to do with the frame.
    Consumed,
    Drop(DropReason),
}

/// Why a control-plane change to the router was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouterError {
    #[error("{0}: not an address of this bridge")]
    NoSuchAddr(Ipv4Net),
    #[error("{0}: already an address of this bridge")]
    AddrExists(Ipv4Net),
    #[error("{0}: a network or broadcast address cannot be a router address")]
    BadAddr(Ipv4Net),
    #[error("gateway {0} is not on a connected subnet (add an address on its subnet first)")]
    GatewayUnreachable(Ipv4Addr),
    #[error("gateway {0} is an address of the router itself")]
    GatewayIsLocal(Ipv4Addr),
    #[error("{0} is an address of the router itself, not a neighbour")]
    NeighborIsLocal(Ipv4Addr),
    #[error("{0}: host bits are set (the prefix is {1})")]
    HostBits(Ipv4Net, Ipv4Net),
    #[error("{0} is the gateway of route {1}; change that route first")]
    AddrIsGateway(Ipv4Addr, Ipv4Net),
    #[error("{0} is a permanent neighbour; delete it first ('patchbay neigh del')")]
    AddrIsNeighbor(Ipv4Addr),
    #[error("{0}: a static route for the subnet exists (via {1}); delete it first")]
    SubnetRouted(Ipv4Net, Ipv4Addr),
    #[error("the bridge has no router interface (add an address to it first)")]
    NoInterface,
    #[error("MTU must be between 68 and 9000, not {0}")]
    BadMtu(u32),
    #[error("the ARP cache is full ({0} entries)")]
    ArpFull(usize),
    #[error("{0}: no such neighbour")]
    NoSuchNeighbor(Ipv4Addr),
    #[error(transparent)]
    Fib(#[from] FibError),
}

fn nat_drop(d: NatDrop) -> DropReason {
    match d {
        NatDrop::TableFull => DropReason::NatTableFull,
        NatDrop::NoPorts => DropReason::NatNoPorts,
        NatDrop::Conflict => DropReason::NatConflict,
    }
}

/// A later fragment that came before the first fragment of its datagram,
/// held (in a buffer of the pool) until the first one decides what NAT
/// does to the datagram.
#[derive(Debug, Clone, Copy)]
struct HeldFragment {
    key: FragmentKey,
    buf: u16,
    port: PortId,
    bridge: BridgeId,
    until: u64,
}

/// Fragments held at most, waiting for their first fragment.
const MAX_HELD_FRAGMENTS: usize = 64;

/// The IPv4 router of a switch.
pub struct Router {
    pub nat: Nat,
    /// NAT drop counters already logged (table full, out of ports).
    nat_logged: (u64, u64),
    ifaces: Vec<Option<RouterInterface>>,
    fib: Fib,
    next_hops: Vec<NextHop>,
    next_hop_ids: HashMap<NextHop, u32>,
    pub arp: ArpCache,
    pub em: Emitter,
    pub counters: L3Counters,
    icmp_budget: u32,
    /// Datagrams to the router being put together.
    reassembly: Reassembly,
    /// ICMP error buckets per destination, and redirect buckets.
    icmp_limiter: icmp::ErrorLimiter,
    redirect_limiter: icmp::ErrorLimiter,
    /// The identifications of the packets the router makes: random, since
    /// RFC 7739 asks that they not be predictable.
    random: Random,
    /// The switch clock (ms) of the packet being handled.
    now: u64,
    scratch: Vec<u16>,
    /// Fragments waiting for their first fragment, and room to take some
    /// out (both of MAX_HELD_FRAGMENTS).
    held: Vec<HeldFragment>,
    releasing: Vec<HeldFragment>,
    /// The packet trace (off unless armed); the switch's stages use it too.
    pub trace: Tracer,
}

impl Router {
    pub fn new(arp_max: usize, buffers: usize) -> Router {
        let mut random = Random::seeded();
        Router {
            nat: Nat::new(262_144),
            nat_logged: (0, 0),
            ifaces: Vec::new(),
            fib: Fib::new(),
            next_hops: Vec::new(),
            next_hop_ids: HashMap::new(),
            arp: ArpCache::new(arp_max, buffers.clamp(1, usize::from(u16::MAX))),
            em: Emitter::new(buffers),
            counters: L3Counters::default(),
            icmp_budget: ICMP_PER_SECOND,
            icmp_limiter: icmp::ErrorLimiter::new(random.next_u64() as u32),
            redirect_limiter: icmp::ErrorLimiter::new(random.next_u64() as u32),
            reassembly: Reassembly::default(),
            random,
            now: 0,
            scratch: Vec::with_capacity(64),
            held: Vec::with_capacity(MAX_HELD_FRAGMENTS),
            releasing: Vec::with_capacity(MAX_HELD_FRAGMENTS),
            trace: Tracer::default(),
        }
    }
    /// Fixes the router's and NAT's random choices (see
    /// [`crate::pipeline::Switch::seed`]).
    #[cfg(feature = "fuzzing")]
    pub fn seed(&mut self, seed: u64) {
        self.random = Random::from_seed(seed.rotate_left(17));
        self.nat.seed(seed);
    }
    /// Every router interface, with its bridge.
    pub fn ifaces(&self) -> impl Iterator<Item = (BridgeId, &RouterInterface)> {
        self.ifaces
            .iter()
            .enumerate()
            .filter_map(|(b, i)| Some((b as BridgeId, i.as_ref()?)))
    }
    /// Every next hop, by id.
    pub fn next_hops(&self) -> &[NextHop] {
        &self.next_hops
    }
    pub fn fib(&self) -> &Fib {
        &self.fib
    }
    pub fn next_hop(&self, id: u32) -> NextHop {
        self.next_hops[id as usize]
    }
    /// The router interface of a bridge.
    pub fn iface(&self, bridge: BridgeId) -> Option<&RouterInterface> {
        self.ifaces
            .get(usize::from(bridge))
            .and_then(Option::as_ref)
    }
    /// Every router address, with its bridge.
    pub fn addrs(&self) -> impl Iterator<Item = (BridgeId, Ipv4Net)> + '_ {
        self.ifaces.iter().enumerate().flat_map(|(b, i)| {
            i.iter()
                .flat_map(move |i| i.addrs.iter().map(move |&a| (b as BridgeId, a)))
        })
    }
    /// Whether packets to `dst` are never forwarded (RFC 1812 5.3.5,
    /// 5.3.7): broadcast, directed broadcast, multicast, loopback, 0/8.
    pub fn never_forwarded(&self, dst: Ipv4Addr) -> bool {
        dst.is_broadcast()
            || dst.is_multicast()
            || dst.is_loopback()
            || dst.octets()[0] == 0
            || self.is_directed_broadcast(dst)
    }
    /// Whether `ip` is one of the router's own addresses.
    pub fn is_local(&self, ip: Ipv4Addr) -> bool {
        self.ifaces
            .iter()
            .flatten()
            .any(|i| i.addrs.iter().any(|a| a.addr == ip))
    }
    /// The router MAC of a bridge, if it has a router interface.
    #[inline]
    pub fn router_mac(&self, bridge: BridgeId) -> Option<Mac> {
        self.iface(bridge).map(|i| i.mac)
    }
    // ---- control plane -------------------------------------------------
    /// Puts a route in the table as it is, unchecked: for a model of a
    /// running router, whose routes were checked when they were added.
    pub(crate) fn insert_route(&mut self, dst: Ipv4Net, nh: NextHop) -> Result<(), RouterError> {
        let id = self.next_hop_id(nh);
        self.fib.insert(dst.network(), dst.len, id)?;
        Ok(())
    }
    // ---- data plane ----------------------------------------------------
    /// A frame to this bridge's router MAC, or a broadcast ARP frame, that
    /// came in on `in_port`.
    pub fn input<const T: bool>(
        &mut self,
        frame: &mut [u8],
        in_port: PortId,
        bridge: BridgeId,
        now: u64,
    ) -> L3Out {
        self.now = now;
        if frame.len() < L3 {
            return L3Out::Drop(DropReason::Runt);
        }
        match u16::from_be_bytes([frame[L2 + 12], frame[L2 + 13]]) {
            ETHERTYPE_ARP => match self.arp_input::<T>(&frame[L2..], bridge, now) {
                Some(r) => L3Out::Drop(r),
                None => L3Out::Consumed,
            },
            ETHERTYPE_IPV4 => self.ip4_input::<T>(frame, in_port, bridge, now),
            _ => L3Out::Drop(DropReason::L3Unsupported),
        }
    }
    /// ip4-input and what follows it.
    fn ip4_input<const T: bool>(
        &mut self,
        frame: &mut [u8],
        in_port: PortId,
        bridge: BridgeId,
        now: u64,
    ) -> L3Out {
        self.counters.ip4_in += 1;
        let ip = match Ipv4Packet::new_checked(&frame[L3..]) {
            Ok(ip) => ip,
            Err(e) => {
                return L3Out::Drop(match e {
                    Ipv4Error::Truncated | Ipv4Error::BadTotalLen => DropReason::Ip4BadLength,
                    Ipv4Error::BadVersion => DropReason::Ip4BadVersion,
                    Ipv4Error::BadHeaderLen => DropReason::Ip4BadLength,
                    Ipv4Error::BadChecksum => DropReason::Ip4BadChecksum,
                })
            }
        };
        let (ttl, total, df) = (ip.ttl(), ip.total_len(), ip.dont_frag());
        let (ident, more_frags, frag_at) = (ip.ident(), ip.more_frags(), ip.frag_offset());
        let payload_len = ip.payload().len();
        let (ip_src, ip_dst, ip_proto) = (ip.src(), ip.dst(), ip.protocol());
        trace!(
            T; self.trace,
            Event::Ip4 {
                src: ip.src(),
                dst: ip.dst(),
                proto: ip.protocol(),
                ttl,
                len: total as u16,
                frag: (more_frags || frag_at != 0).then_some((frag_at as u16, more_frags)),
            }
        );
        // RFC 1812 5.3.7: never forward (or answer, or track) what comes
        // from an address no host can have, network 0 and the directed
        // broadcasts of our subnets among them (4.2.2.11).
        let src = ip.src();
        if src.is_multicast()
            || src.is_broadcast()
            || src.is_loopback()
            || src.octets()[0] == 0
            || src.octets()[0] >= 240
            || self.is_directed_broadcast(src)
        {
            return L3Out::Drop(DropReason::Ip4BadSource);
        }
        // Our own address as a source is a spoof wherever it comes from.
        if self.is_local(src) {
            return L3Out::Drop(DropReason::Ip4OwnSource);
        }
        let Some(in_iface) = self.iface(bridge) else {
            return L3Out::Drop(DropReason::Ip4NoRoute);
        };
        let (rp_filter, redirects) = (in_iface.rp_filter, in_iface.redirects);
        if rp_filter != RpFilter::Off {
            let back = self
                .fib
                .lookup(src)
                .map(|id| self.next_hops[id as usize].bridge);
            if !rp_filter.passes(back, bridge) {
                return L3Out::Drop(DropReason::Ip4RpFilter);
            }
        }
        // RFC 1812 5.2.4: options are checked; a malformed one is answered
        // with a parameter problem. Source-routed packets are dropped (RFC
        // 7126 4.3, and Linux with accept_source_route 0).
        let options = if ip.header_len() > IPV4_MIN_HDR_LEN {
            match ipv4_options::parse(ip.header()) {
                Ok(o) if o.source_routed => return L3Out::Drop(DropReason::Ip4SourceRoute),
                Ok(o) => Some(o),
                Err(BadOption(at)) => {
                    let pointer = u32::from(at) << 24;
                    let problem = icmp::PARAMETER_PROBLEM;
                    self.icmp_error::<T>(frame, Some(in_port), bridge, problem, 0, pointer);
                    return L3Out::Drop(DropReason::Ip4BadOption);
                }
            }
        } else {
            None
        };
        // nat (pre-routing): packets of known sessions, and first packets to
        // published ports.
        let partial = frame[0] & F_NEEDS_CSUM != 0;
        let mut nat_tuple = None;
        let mut translated = false;
        if self.nat.is_active() {
            if let Some((t, flags)) = parse_tuple(&frame[L3..]) {
                let to_us = self.is_local(t.dst);
                let ifaces = &self.ifaces;
                let addr_of = |b: BridgeId| {
                    let iface = ifaces.get(usize::from(b))?.as_ref()?;
                    iface.addrs.first().map(|a| a.addr)
                };
                let verdict = if T && self.trace.dry {
                    dry_nat(
                        &mut self.trace,
                        self.nat.peek_pre(&t, bridge, to_us, &addr_of),
                        &t,
                        true,
                    )
                } else {
                    let created = self.nat.counters.sessions_created;
                    let v = self
                        .nat
                        .pre_routing(&t, flags, bridge, to_us, &addr_of, now);
                    if T && self.trace.on {
                        trace_nat(&mut self.trace, &self.nat, &v, &t, true, created);
                    }
                    v
                };
                match verdict {
                    NatVerdict::Translate(to) => {
                        let first_of = more_frags.then_some(ident);
                        self.nat_apply::<T>(&mut frame[L3..], &t, &to, partial, first_of, now);
                        translated = true;
                    }
                    NatVerdict::Pass => nat_tuple = Some((t, flags)),
                    NatVerdict::Drop(d) => return L3Out::Drop(nat_drop(d)),
                }
            } else if frag_at != 0 {
                // A later fragment: the addresses its first one got.
                let key = (ip_src, ip_dst, ip_proto, ident);
                if !(T && self.trace.dry) {
                    let len = payload_len as u32;
                    let end = (!more_frags).then_some(frag_at as u32 + len);
                    match self.nat.fragment(key, len, end) {
                        FragmentFate::Rewrite(s, d) => {
                            rewrite_addrs(&mut frame[L3..], s, d);
                            translated = true;
                            let kind = NatRelated::Fragment;
                            trace!(T; self.trace, Event::NatRelated { kind, src: s, dst: d });
                        }
                        FragmentFate::Pass => {}
                        FragmentFate::Unknown => {
                            let (kind, src, dst) = (NatRelated::Held, ip_src, ip_dst);
                            trace!(T; self.trace, Event::NatRelated { kind, src, dst });
                            return self.hold_fragment(frame, key, in_port, bridge, now);
                        }
                    }
                }
            } else if let Some((inner, at)) = parse_icmp_error(&frame[L3..]) {
                // An error about a translated packet goes back translated.
                if let Some(new_inner) = self.nat_error_translation::<T>(&inner) {
                    rewrite_icmp_error(&mut frame[L3..], at, &inner, &new_inner);
                    translated = true;
                    let (kind, src, dst) = (NatRelated::IcmpError, ip_src, new_inner.src);
                    trace!(T; self.trace, Event::NatRelated { kind, src, dst });
                }
            }
        }
        let ip = Ipv4Packet::new_unchecked(&frame[L3..]);
        let dst = ip.dst();
        if self.is_local(dst) {
            // Anything but ICMP to a NAT address that matched no session or
            // published port is unsolicited: filtered, without a word (RFC
            // 4787), be it TCP, UDP, a protocol NAT does not track or a
            // packet too short to tell.
            if ip.protocol() != PROTO_ICMP && self.is_nat_address(dst) {
                return L3Out::Drop(DropReason::NatFiltered);
            }
            if more_frags || frag_at != 0 {
                return self.reassemble::<T>(frame, in_port, bridge, now);
            }
            return self.local_input::<T>(frame, in_port, bridge, now);
        }
        if self.never_forwarded(dst) {
            return L3Out::Drop(DropReason::Ip4NotForwarded);
        }
        // RFC 1812 5.3.1: a packet that would leave with TTL 0 is dropped.
        if ttl <= 1 {
            self.icmp_error::<T>(frame, Some(in_port), bridge, icmp::TIME_EXCEEDED, 0, 0);
            return L3Out::Drop(DropReason::Ip4TtlExpired);
        }
        let Some(nh) = self.fib.lookup(dst).map(|id| self.next_hops[id as usize]) else {
            self.icmp_error::<T>(
                frame,
                Some(in_port),
                bridge,
                icmp::DEST_UNREACHABLE,
                icmp::CODE_NET_UNREACHABLE,
                0,
            );
            return L3Out::Drop(DropReason::Ip4NoRoute);
        };
        if T && self.trace.on {
            if let Some((prefix, len, _)) = self.fib.matching_route(dst) {
                self.trace.record(Event::Lookup {
                    dst,
                    prefix,
                    len,
                    via: nh.gateway,
                    bridge: nh.bridge,
                });
            }
        }
        let Some(out) = self.iface(nh.bridge) else {
            return L3Out::Drop(DropReason::Ip4NoRoute);
        };
        let (out_mac, mtu) = (out.mac, usize::from(out.mtu));
        // A GSO super-frame leaves as segments of gso_size: check those.
        let vnet =
            VnetHdr::new_checked(&frame[..VNET_HDR_LEN]).expect("frame holds a virtio header");
        let on_wire = if vnet.is_gso() {
            gso_segment_len(&frame[L3..], vnet.gso_size(), vnet.hdr_len())
        } else {
            total
        };
        if on_wire > mtu && (df || vnet.is_gso()) {
            self.icmp_error::<T>(
                frame,
                Some(in_port),
                bridge,
                icmp::DEST_UNREACHABLE,
                icmp::CODE_FRAG_NEEDED,
                mtu as u32,
            );
            return L3Out::Drop(DropReason::Ip4FragNeeded);
        }
        // nat (post-routing): source NAT for what leaves through a NAT'd
        // bridge and was not translated on the way in.
        if let Some((t, flags)) = nat_tuple {
            let out_addr = self
                .iface(nh.bridge)
                .and_then(|i| i.source_for(nh.gateway.unwrap_or(dst)));
            let verdict = if T && self.trace.dry {
                dry_nat(
                    &mut self.trace,
                    self.nat.peek_post(&t, nh.bridge, out_addr),
                    &t,
                    false,
                )
            } else {
                let created = self.nat.counters.sessions_created;
                let v = self.nat.post_routing(&t, flags, nh.bridge, out_addr, now);
                if T && self.trace.on {
                    trace_nat(&mut self.trace, &self.nat, &v, &t, false, created);
                }
                match v {
                    // Not translated: tracked as it is, if it comes from
                    // outside to a routed inside host.
                    NatVerdict::Pass => self
                        .nat
                        .track_untranslated(&t, flags, bridge, nh.bridge, now),
                    v => v,
                }
            };
            match verdict {
                NatVerdict::Translate(to) => {
                    let first_of = more_frags.then_some(ident);
                    self.nat_apply::<T>(&mut frame[L3..], &t, &to, partial, first_of, now);
                    translated = true;
                }
                NatVerdict::Pass => {}
                NatVerdict::Drop(d) => return L3Out::Drop(nat_drop(d)),
            }
        }
        // What a source NAT rule covers leaves translated or not at all: an
        // inside address never leaks, whatever NAT could not make out (an
        // ICMP message that is neither a query nor an error about a session,
        // a first fragment too short for its ports).
        // (A dry run does not look up later fragments: it cannot tell.)
        if !translated
            && nat_tuple.is_none()
            && self.nat.is_active()
            && !(T && self.trace.dry && frag_at != 0)
            && self.nat.must_translate(ip_src, nh.bridge)
        {
            return L3Out::Drop(DropReason::NatUntranslatable);
        }
        // The first fragment of a datagram NAT leaves alone: its later
        // fragments pass too (and those that came first go on now).
        if more_frags
            && frag_at == 0
            && !translated
            && self.nat.is_active()
            && !(T && self.trace.dry)
        {
            let key = (ip_src, ip_dst, ip_proto, ident);
            if self.nat.note_fragmented(key, None, payload_len as u32, now) {
                self.release_fragments(key, now);
            }
        }
        // Record Route and Timestamp get this hop's address (RFC 791),
        // before the datagram is cut into fragments (the first keeps them).
        if let Some(o) = options.filter(|o| o.record_route.is_some() || o.timestamp.is_some()) {
            let hop = self
                .iface(nh.bridge)
                .and_then(|i| i.source_for(nh.gateway.unwrap_or(dst)));
            if let Some(hop) = hop.filter(|_| !(T && self.trace.dry)) {
                let mut ip = Ipv4Packet::new_unchecked(&mut frame[L3..]);
                let header = ip.header_mut();
                if let Some(at) = o.record_route {
                    ipv4_options::record_route(header, at, hop);
                }
                if let Some(at) = o.timestamp {
                    ipv4_options::timestamp(header, at, hop, ms_since_midnight_ut());
                }
                ip.fill_checksum();
            }
        }
        if on_wire > mtu {
            if !(T && self.trace.dry) {
                return self.fragment::<T>(frame, nh, out_mac, mtu, true, now);
            }
            // A dry run follows the datagram on: its fragments go its way.
            let ip = Ipv4Packet::new_unchecked(&frame[L3..]);
            let step = (mtu - ip.header_len()) & !7;
            let count = ip.payload().len().div_ceil(step.max(8)) as u16;
            trace!(T; self.trace, Event::Fragmented { count, mtu: mtu as u16 });
        }
        let next_ip = nh.gateway.unwrap_or(dst);
        let resolved = if T && self.trace.dry {
            self.arp.peek(nh.bridge, next_ip)
        } else {
            self.arp.resolve(nh.bridge, next_ip, now)
        };
        match resolved {
            Resolve::Failed => {
                // Before the rewrite: the error quotes what the sender sent
                // and goes back to the sender's MAC.
                self.icmp_error::<T>(
                    frame,
                    Some(in_port),
                    bridge,
                    icmp::DEST_UNREACHABLE,
                    icmp::CODE_HOST_UNREACHABLE,
                    0,
                );
                return L3Out::Drop(DropReason::ArpUnresolved);
            }
            Resolve::Full => return L3Out::Drop(DropReason::ArpTableFull),
            Resolve::Mac(_) | Resolve::Pending { .. } => {}
        }
        // RFC 1812 5.2.7.2: a packet that leaves by the bridge it came in
        // on, from a sender on that bridge's subnet, could have gone to the
        // next hop straight: tell the sender (and forward it all the same).
        if nh.bridge == bridge
            && redirects
            && !translated
            && self
                .iface(bridge)
                .is_some_and(|i| i.addrs.iter().any(|a| a.contains(ip_src)))
        {
            let gateway = u32::from(next_ip);
            let (redirect, host) = (icmp::REDIRECT, icmp::CODE_REDIRECT_HOST);
            self.icmp_error::<T>(frame, Some(in_port), bridge, redirect, host, gateway);
        }
        // ip4-rewrite.
        Ipv4Packet::new_unchecked(&mut frame[L3..]).decrement_ttl();
        frame[L2 + 6..L2 + 12].copy_from_slice(&out_mac.0);
        match resolved {
            Resolve::Mac(m) => {
                trace!(
                    T; self.trace,
                    Event::Resolve {
                        next_hop: next_ip,
                        mac: NextHopMac::Known(m),
                    }
                );
                trace!(
                    T; self.trace,
                    Event::Rewrite {
                        ttl_from: ttl,
                        ttl_to: ttl - 1,
                        src_mac: out_mac,
                        dst_mac: m,
                    }
                );
                frame[L2..L2 + 6].copy_from_slice(&m.0);
                self.counters.ip4_forwarded += 1;
                L3Out::Forward {
                    bridge: nh.bridge,
                    dst: m,
                }
            }
            Resolve::Pending { ask } => {
                trace!(
                    T; self.trace,
                    Event::Resolve {
                        next_hop: next_ip,
                        mac: NextHopMac::Queued { asked: ask },
                    }
                );
                if T && self.trace.dry {
                    return L3Out::Consumed;
                }
                if ask {
                    self.ask(nh.bridge, next_ip);
                }
                // Packets waiting for ARP may hold at most half the pool, so
                // replies, requests and ICMP always find a buffer: past it,
                // this neighbour's oldest packet makes room for the newest.
                if self.em.available() <= self.em.capacity() / 2 {
                    let Some(old) = self.arp.unqueue_oldest(nh.bridge, next_ip) else {
                        return L3Out::Drop(DropReason::ArpQueueFull);
                    };
                    self.em.free(old);
                    self.counters.arp_queue_overflow += 1;
                }
                let Some(i) = self.em.copy(&frame[..L3 + total]) else {
                    return L3Out::Drop(DropReason::NoBuffer);
                };
                if self.enqueue(nh.bridge, next_ip, i) {
                    self.counters.arp_queued += 1;
                    L3Out::Consumed
                } else {
                    L3Out::Drop(DropReason::ArpQueueFull)
                }
            }
            Resolve::Failed | Resolve::Full => unreachable!("handled above"),
        }
    }
    fn is_directed_broadcast(&self, ip: Ipv4Addr) -> bool {
        self.ifaces
            .iter()
            .flatten()
            .any(|i| i.addrs.iter().any(|a| a.broadcast() == Some(ip)))
    }
    /// Once a second: ARP retries and failures, ICMP rate budget.
    pub fn housekeeping(&mut self, now: u64) {
        self.now = now;
        self.reassembly.expire(now);
        self.counters.reassembly_timeouts = self.reassembly.timed_out;
        self.nat.expire(now);
        // Held fragments whose first fragment never came.
        let (em, counters) = (&mut self.em, &mut self.nat.counters);
        self.held.retain(|h| {
            let keep = h.until > now;
            if !keep {
                em.free(h.buf);
                counters.fragments_dropped += 1;
            }
            keep
        });
        // Say why new flows are being refused, at most once a second.
        let c = &self.nat.counters;
        let (full, ports) = (c.table_full, c.no_ports);
        if full > self.nat_logged.0 {
            log::warn!(
                "nat: {} new flows dropped: the session table is full ({} sessions; raise --nat-max)",
                full - self.nat_logged.0,
                self.nat.max()
            );
        }
        if ports > self.nat_logged.1 {
            log::warn!(
                "nat: {} new flows dropped: no outside port left in the rule's range",
                ports - self.nat_logged.1
            );
        }
        self.nat_logged = (full, ports);
        self.icmp_budget = ICMP_PER_SECOND;
        let mut ask = Vec::new();
        let mut failed = std::mem::take(&mut self.scratch);
        self.arp.tick(now, &mut ask, &mut failed);
        for Ask { bridge, ip, mac } in ask {
            match mac {
                Some(mac) => self.probe(bridge, ip, mac),
                None => self.ask(bridge, ip),
            }
        }
        // Packets that waited in vain: host unreachable to their senders.
        for i in failed.drain(..) {
            self.counters.arp_failed += 1;
            // The error is made from the held frame before its buffer goes
            // back (it takes another buffer of its own).
            let frame = self.em.frame(i).to_vec();
            self.em.free(i);
            if frame.len() >= L3 + IPV4_MIN_HDR_LEN {
                self.icmp_error::<false>(
                    &frame,
                    None,
                    0,
                    icmp::DEST_UNREACHABLE,
                    icmp::CODE_HOST_UNREACHABLE,
                    0,
                );
            }
        }
        self.scratch = failed;
    }
    /// The frames of a finished batch are sent: give their buffers back.
    pub fn sent(&mut self) {
        for (_, i) in std::mem::take(&mut self.em.out) {
            self.em.free(i);
        }
    }
}

/// Milliseconds since midnight UT, as IP timestamps carry them (RFC 791).
fn ms_since_midnight_ut() -> u32 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (now.as_millis() % 86_400_000) as u32
}

/// Largest frame that can be queued or made.
pub const MAX_MADE_FRAME: usize = BUF_SIZE;

/// Records what NAT did to a traced packet.
#[cold]
fn trace_nat(tr: &mut Tracer, nat: &Nat, v: &NatVerdict, t: &Tuple, pre: bool, created: u64) {
    if let NatVerdict::Translate(to) = v {
        tr.record(Event::Nat {
            pre,
            from: *t,
            to: *to,
            rule: nat.rule_of(to).unwrap_or(0),
            new_session: nat.counters.sessions_created > created,
        });
    }
}

/// A dry run's NAT stage: records what would happen and gives the verdict
/// that lets the rest of the dry run go on.
#[cold]
fn dry_nat(tr: &mut Tracer, peek: Peek, t: &Tuple, pre: bool) -> NatVerdict {
    let (to, rule, new_session) = match peek {
        Peek::Pass => return NatVerdict::Pass,
        Peek::Translate { to, rule } => (to, rule, false),
        Peek::Create { rule, to: Some(to) } => (to, rule, true),
        Peek::Create { rule, to: None } => {
            tr.record(Event::NatWouldCreate { pre, rule });
            return NatVerdict::Pass;
        }
    };
    tr.record(Event::Nat {
        pre,
        from: *t,
        to,
        rule,
        new_session,
    });
    NatVerdict::Translate(to)
}

/// Length of one segment a GSO super-frame will be cut into: its IP and L4
/// headers, measured here rather than trusted from the sender's `hdr_len`,
/// plus `gso_size`.
fn gso_segment_len(l3: &[u8], gso_size: u16, hdr_len: u16) -> usize {
    let ihl = usize::from(l3[0] & 0x0f) * 4;
    let l4 = match l3[9] {
        PROTO_TCP if l3.len() >= ihl + 13 => usize::from(l3[ihl + 12] >> 4) * 4,
        PROTO_UDP => 8,
        _ => return usize::from(hdr_len).saturating_sub(ETH) + usize::from(gso_size),
    };
    ihl + l4 + usize::from(gso_size)
}
