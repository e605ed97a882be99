//! The IPv4 router (RFC 1812). [`Router`] holds its own tables: the
//! router interfaces on bridges, the FIB and its next hops. The stages a
//! frame addressed to a router MAC goes through are methods of [`L3`], the
//! router at work with the peers the switch owns (the ARP cache, NAT, the
//! emitter, the tracer), one file a stage under `router/`:
//!
//! ```text
//! arp-input (router/arp.rs)  | ip4-validate (validate.rs) -> nat-pre (nat_stages.rs)
//!   -> local? (local.rs: reassemble, echo, errors)
//!   -> ip4-lookup (forward.rs) -> nat-post -> options -> ip4-fragment? (fragment.rs)
//!   -> arp-resolve, redirect, ip4-rewrite (forward.rs)
//! icmp-error (icmp_error.rs): called by the stages above; rate limited
//! ```

/// In a stage graph (ip4-input's, ip6-forward's): the stage's result
/// goes on, or the graph returns what became of the packet.
macro_rules! stage {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(out) => return out,
        }
    };
}
pub(crate) use stage;

use super::fib::{Fib, FibError};
use super::icmp;
use super::reassembly::{Added, Reassembly};
use super::rpf::RpFilter;
use super::Mtu;
use crate::arp::{ArpCache, Ask, NeighState, Resolve};
use crate::counters::DropReason;
use crate::emit::{EmitTo, Emitter, BUF_SIZE};
use crate::l2::{BridgeId, PortId};
use crate::nat::{
    parse_icmp_error, parse_tuple, rewrite, rewrite_addrs, rewrite_icmp_error, FragmentFate,
    FragmentKey, Nat, NatAction, NatDrop, NatPlan, NatVerdict, Tuple, FRAGMENT_MS,
};
use crate::random::Random;
use crate::trace;
use crate::trace::{ArpAction, Event, NatRelated, NextHopMac, Tracer};
use crate::wire::arp::{ArpRepr, ARP_LEN, OP_REPLY, OP_REQUEST};
use crate::wire::icmp::{
    is_error_message, IcmpErrorMsg, IcmpPacket, IcmpRepr, CODE_HOST_UNREACHABLE,
    CODE_NET_UNREACHABLE, CODE_PORT_UNREACHABLE, CODE_PROTOCOL_UNREACHABLE, ECHO_REQUEST,
};
use crate::wire::ipv4::{IpProtocol, Ipv4Error, Ipv4Packet, Ipv4Repr, IPV4_MIN_HDR_LEN};
use crate::wire::ipv4_options::{self, BadOption};
use crate::wire::tcp;
use crate::wire::udp::UDP_HDR_LEN;
use crate::wire::vnet::{self, VnetHdr};
use crate::wire::{EthernetFrame, Ipv4Net, Mac, ETHERNET_HDR_LEN, VNET_HDR_LEN};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::Ipv4Addr;

mod arp;
mod config;
mod forward;
mod fragment;
mod icmp_error;
mod local;
mod nat_stages;
mod validate;

use crate::ip6::nd::Ip6Local;
use crate::ip6::Router6;
use crate::wire::ethernet::{ETHERNET_MIN_LEN, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use crate::wire::ipv6::{Ipv6Packet, IPV6_HDR_LEN};
/// Offset of the Ethernet header in a frame (after the virtio-net header).
const L2: usize = VNET_HDR_LEN;
/// Offset of the ARP or IPv4 header in a frame.
const L3: usize = VNET_HDR_LEN + ETHERNET_HDR_LEN;
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
    #[error("{0} is the connected route of a router address; it comes and goes with the address")]
    ConnectedRoute(Ipv4Net),
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
    /// NAT drop counters already logged (table full, out of ports).
    nat_logged: (u64, u64),
    ifaces: Vec<Option<RouterInterface>>,
    /// Every router address, flat: what each packet's source and
    /// destination are checked against (made anew on every change).
    addresses: Vec<Ipv4Net>,
    fib: Fib,
    next_hops: Vec<NextHop>,
    next_hop_ids: HashMap<NextHop, u32, ahash::RandomState>,
    counters: L3Counters,
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
    /// DHCP messages to the servers of the router's interfaces, on their
    /// way to the DHCP thread.
    pub dhcp: super::dhcp::DhcpQueue,
}

impl Default for Router {
    fn default() -> Router {
        Router::new()
    }
}

impl Router {
    pub fn new() -> Router {
        Router::with_max_routes(usize::MAX)
    }

    /// A router whose table takes at most `max_routes` routes.
    pub fn with_max_routes(max_routes: usize) -> Router {
        let mut random = Random::seeded();
        Router {
            nat_logged: (0, 0),
            ifaces: Vec::new(),
            addresses: Vec::new(),
            fib: Fib::with_max_routes(max_routes),
            next_hops: Vec::new(),
            next_hop_ids: HashMap::default(),
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
            dhcp: super::dhcp::DhcpQueue::default(),
        }
    }

    /// Fixes the router's and NAT's random choices (see
    /// [`crate::pipeline::Switch::seed`]).
    #[cfg(feature = "fuzzing")]
    pub fn seed(&mut self, seed: u64) {
        self.random = Random::from_seed(seed.rotate_left(17));
    }

    /// Every router interface, with its bridge.
    pub fn ifaces(&self) -> impl Iterator<Item = (BridgeId, &RouterInterface)> {
        self.ifaces
            .iter()
            .enumerate()
            .filter_map(|(b, i)| Some((b as BridgeId, i.as_ref()?)))
    }

    /// What the router's stages did.
    pub fn counters(&self) -> &L3Counters {
        &self.counters
    }

    /// Puts counters back (after a dry run, which counts as it goes).
    pub(crate) fn restore_counters(&mut self, counters: L3Counters) {
        self.counters = counters;
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
        self.addresses.iter().any(|a| a.addr == ip)
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
        // A next hop gets its id once the table has taken the route: one
        // refused uses none up.
        let (id, new) = match self.next_hop_ids.get(&nh) {
            Some(&id) => (id, false),
            None => (self.next_hops.len() as u32, true),
        };
        self.fib.insert(dst.network(), dst.len, id)?;
        if new {
            self.next_hops.push(nh);
            self.next_hop_ids.insert(nh, id);
        }
        Ok(())
    }
    fn is_directed_broadcast(&self, ip: Ipv4Addr) -> bool {
        self.addresses.iter().any(|a| a.broadcast() == Some(ip))
    }

    /// Makes the flat list of addresses anew from the interfaces (after a
    /// control-plane change to them).
    pub(super) fn refresh_addresses(&mut self) {
        self.addresses = self
            .ifaces
            .iter()
            .flatten()
            .flat_map(|i| i.addrs.iter().copied())
            .collect();
    }
}

/// The router at work on a packet: its own tables, and the peers the switch
/// owns that a packet at the router meets: the neighbour cache, NAT, the
/// emitter of the frames it makes, and the tracer. Made for a batch (or a
/// control-plane change) from the switch's fields; no peer reaches into
/// another.
pub struct L3<'a> {
    pub router: &'a mut Router,
    pub router6: &'a mut Router6,
    pub arp: &'a mut ArpCache,
    pub nat: &'a mut Nat,
    pub em: &'a mut Emitter,
    pub trace: &'a mut Tracer,
}

impl L3<'_> {
    /// A frame to this bridge's router MAC, or a broadcast ARP frame, that
    /// came in on `in_port`.
    pub fn input<const T: bool>(
        &mut self,
        frame: &mut [u8],
        in_port: PortId,
        bridge: BridgeId,
        now: u64,
    ) -> L3Out {
        self.router.now = now;
        if frame.len() < L3 {
            return L3Out::Drop(DropReason::Runt);
        }
        match EthernetFrame::new_unchecked(&frame[L2..]).ethertype() {
            ETHERTYPE_ARP => match self.arp_input::<T>(&frame[L2..], bridge, now) {
                Some(r) => L3Out::Drop(r),
                None => L3Out::Consumed,
            },
            ETHERTYPE_IPV4 => self.ip4_input::<T>(frame, in_port, bridge, now),
            ETHERTYPE_IPV6 => {
                // To a group or to one of our addresses: answered here;
                // else routed.
                let local = frame.len() < L3 + IPV6_HDR_LEN || {
                    let dst = Ipv6Packet::new_unchecked(&frame[L3..]).dst();
                    dst.is_multicast() || self.router6.owner(dst, bridge).is_some()
                };
                if !local {
                    return self.ip6_forward::<T>(frame, bridge, now);
                }
                match self.ip6_input::<T>(&frame[L2..], bridge, now) {
                    Ip6Local::Done => L3Out::Consumed,
                    Ip6Local::Drop(r) => L3Out::Drop(r),
                }
            }
            _ => L3Out::Drop(DropReason::L3Unsupported),
        }
    }

    /// ip4-input and what follows it: the stage graph of a packet to a
    /// router MAC, one call a stage.
    ///
    /// ```text
    /// ip4-validate -> nat-pre -> local? (ip4-reassemble -> ip4-local)
    ///              -> ip4-lookup -> nat-post -> options -> ip4-fragment?
    ///              -> arp-resolve (icmp redirect) -> ip4-rewrite
    /// ```
    fn ip4_input<const T: bool>(
        &mut self,
        frame: &mut [u8],
        in_port: PortId,
        bridge: BridgeId,
        now: u64,
    ) -> L3Out {
        self.router.counters.ip4_in += 1;
        let d = stage!(self.ip4_validate::<T>(frame, in_port, bridge));
        let pre = stage!(self.nat_pre::<T>(frame, &d, in_port, bridge, now));
        // The destination as NAT left it.
        let dst = Ipv4Packet::new_unchecked(&frame[L3..]).dst();
        if self.router.is_local(dst) {
            // Anything but ICMP to a NAT address that matched no session or
            // published port is unsolicited: filtered, without a word (RFC
            // 4787), be it TCP, UDP, a protocol NAT does not track or a
            // packet too short to tell.
            if d.proto != IpProtocol::Icmp && self.is_nat_address(dst) {
                return L3Out::Drop(DropReason::NatFiltered);
            }
            if d.more_frags || d.frag_at != 0 {
                return self.reassemble::<T>(frame, in_port, bridge, now);
            }
            return self.local_input::<T>(frame, in_port, bridge, now);
        }
        let route = stage!(self.ip4_lookup::<T>(frame, &d, dst, in_port, bridge));
        let translated = stage!(self.nat_post::<T>(frame, &d, pre, bridge, route.nh, dst, now));
        self.record_options::<T>(frame, &d, &route, dst);
        if route.on_wire > route.mtu {
            let (nh, out_mac, mtu) = (route.nh, route.out_mac, route.mtu);
            return self.fragment::<T>(frame, nh, out_mac, mtu, true, now);
        }
        self.resolve_and_rewrite::<T>(frame, &d, translated, in_port, bridge, &route, dst, now)
    }

    /// Once a second: ARP retries and failures, ICMP rate budget.
    pub fn housekeeping(&mut self, now: u64) {
        self.router.now = now;
        self.router.reassembly.expire(now);
        self.router.counters.reassembly_timeouts = self.router.reassembly.timed_out;
        self.nat.expire(now);
        // Held fragments whose first fragment never came.
        let (em, counters) = (&mut self.em, &mut self.nat.counters);
        self.router.held.retain(|h| {
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
        if full > self.router.nat_logged.0 {
            log::warn!(
                "nat: {} new flows dropped: the session table is full ({} sessions; raise --nat-max)",
                full - self.router.nat_logged.0,
                self.nat.max()
            );
        }
        if ports > self.router.nat_logged.1 {
            log::warn!(
                "nat: {} new flows dropped: no outside port left in the rule's range",
                ports - self.router.nat_logged.1
            );
        }
        self.router.nat_logged = (full, ports);
        self.router.icmp_budget = ICMP_PER_SECOND;
        let mut ask = Vec::new();
        let mut failed = std::mem::take(&mut self.router.scratch);
        self.arp.tick(now, &mut ask, &mut failed);
        for Ask { bridge, ip, mac } in ask {
            match mac {
                Some(mac) => self.probe(bridge, ip, mac),
                None => self.ask(bridge, ip),
            }
        }
        // Packets that waited in vain: host unreachable to their senders.
        for i in failed.drain(..) {
            self.router.counters.arp_failed += 1;
            // The error is made from the held frame before its buffer goes
            // back (it takes another buffer of its own).
            let frame = self.em.frame(i).to_vec();
            self.em.free(i);
            if frame.len() >= L3 + IPV4_MIN_HDR_LEN {
                let msg = IcmpErrorMsg::unreachable(CODE_HOST_UNREACHABLE);
                self.icmp_error::<false>(&frame, None, 0, msg);
            }
        }
        self.router.scratch = failed;
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

/// Length of one segment a GSO super-frame will be cut into: its IP and L4
/// headers, measured here rather than trusted from the sender's `hdr_len`,
/// plus `gso_size`.
fn gso_segment_len(l3: &[u8], gso_size: u16, hdr_len: u16) -> usize {
    let ip = Ipv4Packet::new_unchecked(l3);
    let ihl = ip.header_len();
    // The segment after the IP header, up to the frame's end: the data
    // offset is read even from a segment the total length cuts short.
    let l4 = &l3[ihl..];
    let l4_len = match ip.protocol() {
        IpProtocol::Tcp => tcp::header_len(l4),
        IpProtocol::Udp => Some(UDP_HDR_LEN),
        _ => None,
    };
    match l4_len {
        Some(n) => ihl + n + usize::from(gso_size),
        None => usize::from(hdr_len).saturating_sub(ETHERNET_HDR_LEN) + usize::from(gso_size),
    }
}
