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

    /// A route whose gateway is `gw`, if any.
    fn route_via(&self, gw: Ipv4Addr) -> Option<Ipv4Net> {
        // Next hops outlive their routes: a quick look before the walk.
        if !self.next_hops.iter().any(|nh| nh.gateway == Some(gw)) {
            return None;
        }
        self.fib
            .routes()
            .find(|&(_, _, nh)| self.next_hops[nh as usize].gateway == Some(gw))
            .map(|(addr, len, _)| Ipv4Net { addr, len })
    }

    /// Whether `ip` is an outside address of NAT: a source NAT rule's (its
    /// bridge's, or one of its pool) or a published port's.
    fn is_nat_address(&self, ip: Ipv4Addr) -> bool {
        self.nat.rules().iter().any(|r| match r.action {
            NatAction::Snat { first, last } => (first..=last).contains(&ip),
            NatAction::Masquerade | NatAction::Dnat { .. } => self
                .iface(r.bridge)
                .is_some_and(|i| i.addrs.iter().any(|a| a.addr == ip)),
        })
    }

    /// How an ICMP error quoting `inner` is translated back, if NAT made
    /// `inner`; a dry run only looks (and counts nothing).
    fn nat_error_translation<const T: bool>(&mut self, inner: &Tuple) -> Option<Tuple> {
        if T && self.trace.dry {
            self.nat.error_lookup(inner)
        } else {
            self.nat.error_translation(inner)
        }
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

    fn next_hop_id(&mut self, nh: NextHop) -> u32 {
        if let Some(&id) = self.next_hop_ids.get(&nh) {
            return id;
        }
        let id = self.next_hops.len() as u32;
        self.next_hops.push(nh);
        self.next_hop_ids.insert(nh, id);
        id
    }

    // ---- control plane -------------------------------------------------

    /// Adds an address to a bridge's router interface (created with a router
    /// MAC if the bridge had none), with its connected route.
    /// A new interface gets `mac` (see [`super::router_mac`]).
    pub fn addr_add(
        &mut self,
        bridge: BridgeId,
        net: Ipv4Net,
        mac: Mac,
    ) -> Result<(), RouterError> {
        if net.len < 31 && (Some(net.addr) == net.broadcast() || net.addr == net.network()) {
            return Err(RouterError::BadAddr(net));
        }
        // What the address would make wrong: a route through it, a
        // neighbour entry for it, a static route its connected one would
        // overwrite (config files refuse the same).
        if let Some(dst) = self.route_via(net.addr) {
            return Err(RouterError::AddrIsGateway(net.addr, dst));
        }
        if self
            .arp
            .entries()
            .any(|(_, ip, n)| ip == net.addr && n.state == NeighState::Permanent)
        {
            return Err(RouterError::AddrIsNeighbor(net.addr));
        }
        if let Some(gw) = self
            .fib
            .get(net.network(), net.len)
            .and_then(|nh| self.next_hops[nh as usize].gateway)
        {
            return Err(RouterError::SubnetRouted(net.subnet(), gw));
        }
        let b = usize::from(bridge);
        if self.ifaces.len() <= b {
            self.ifaces.resize(b + 1, None);
        }
        let iface = self.ifaces[b].get_or_insert_with(|| RouterInterface {
            mac,
            addrs: Vec::new(),
            mtu: DEFAULT_MTU,
            rp_filter: RpFilter::default(),
            redirects: true,
        });
        if iface.addrs.contains(&net) {
            return Err(RouterError::AddrExists(net));
        }
        iface.addrs.push(net);
        let nh = self.next_hop_id(NextHop {
            bridge,
            gateway: None,
        });
        self.fib.insert(net.network(), net.len, nh)?;
        self.announce(bridge, net.addr);
        Ok(())
    }

    /// Removes an address and, unless another address keeps it, its
    /// connected route. The interface goes with its last address, and every
    /// route out of it. Returns how many routes went.
    pub fn addr_del(&mut self, bridge: BridgeId, net: Ipv4Net) -> Result<usize, RouterError> {
        let iface = self
            .ifaces
            .get_mut(usize::from(bridge))
            .and_then(Option::as_mut)
            .ok_or(RouterError::NoSuchAddr(net))?;
        let at = iface
            .addrs
            .iter()
            .position(|a| *a == net)
            .ok_or(RouterError::NoSuchAddr(net))?;
        iface.addrs.remove(at);
        self.nat.flush_outside_addr(net.addr);
        let iface = self
            .ifaces
            .get_mut(usize::from(bridge))
            .and_then(Option::as_mut)
            .expect("still there");
        let still = iface
            .addrs
            .iter()
            .any(|a| a.len == net.len && a.network() == net.network());
        let empty = iface.addrs.is_empty();
        let mut gone = 0;
        if !still {
            let connected = self
                .next_hop_ids
                .get(&NextHop {
                    bridge,
                    gateway: None,
                })
                .copied();
            if connected.is_some() && self.fib.get(net.network(), net.len) == connected {
                let _ = self.fib.remove(net.network(), net.len);
                gone += 1;
            }
        }
        if empty {
            gone += self.forget_interface(bridge);
        }
        Ok(gone)
    }

    /// A port left its bridge (or the switch): the fragments it brought that
    /// are still held are dropped, so none is later taken for a frame of
    /// another port that gets its id.
    pub fn forget_port(&mut self, port: PortId) {
        self.drop_held(|h| h.port == port);
    }

    /// Drops (and counts) the held fragments `gone` says yes to.
    fn drop_held(&mut self, gone: impl Fn(&HeldFragment) -> bool) {
        let em = &mut self.em;
        let counters = &mut self.nat.counters;
        self.held.retain(|h| {
            if gone(h) {
                em.free(h.buf);
                counters.fragments_dropped += 1;
                return false;
            }
            true
        });
    }

    /// Removes the router interface of a bridge, every route out of it, its
    /// neighbours, and the NAT sessions of its rules (their outside address
    /// is gone). The NAT rules stay, as iptables rules outlive an address;
    /// [`Nat::forget_bridge`] removes them with the bridge.
    /// Returns how many routes went.
    pub fn forget_interface(&mut self, bridge: BridgeId) -> usize {
        self.nat.flush_bridge_sessions(bridge);
        if let Some(slot) = self.ifaces.get_mut(usize::from(bridge)) {
            *slot = None;
        }
        let gone: Vec<(Ipv4Addr, u8)> = self
            .fib
            .routes()
            .filter(|&(_, _, nh)| self.next_hops[nh as usize].bridge == bridge)
            .map(|(p, l, _)| (p, l))
            .collect();
        for &(p, l) in &gone {
            let _ = self.fib.remove(p, l);
        }
        self.drop_held(|h| h.bridge == bridge);
        let mut dropped = std::mem::take(&mut self.scratch);
        self.arp.retain(|b, _, _| b != bridge, &mut dropped);
        for i in dropped.drain(..) {
            self.em.free(i);
        }
        self.scratch = dropped;
        gone.len()
    }

    /// Sets a router interface's reverse-path filtering and whether it
    /// sends redirects (each if given).
    pub fn set_policy(
        &mut self,
        bridge: BridgeId,
        rp_filter: Option<RpFilter>,
        redirects: Option<bool>,
    ) -> Result<(), RouterError> {
        let iface = self
            .ifaces
            .get_mut(usize::from(bridge))
            .and_then(Option::as_mut)
            .ok_or(RouterError::NoInterface)?;
        if let Some(rp) = rp_filter {
            iface.rp_filter = rp;
        }
        if let Some(r) = redirects {
            iface.redirects = r;
        }
        Ok(())
    }

    pub fn set_mtu(&mut self, bridge: BridgeId, mtu: u32) -> Result<(), RouterError> {
        let mtu = Mtu::new(mtu)
            .map_err(|e| RouterError::BadMtu(e.value))?
            .get();
        let iface = self
            .ifaces
            .get_mut(usize::from(bridge))
            .and_then(Option::as_mut)
            .ok_or(RouterError::NoInterface)?;
        iface.mtu = mtu;
        Ok(())
    }

    /// Adds a route `via` a gateway (on a connected subnet) or straight out
    /// of `dev`.
    pub fn route_add(
        &mut self,
        dst: Ipv4Net,
        via: Option<Ipv4Addr>,
        dev: Option<BridgeId>,
    ) -> Result<(), RouterError> {
        if dst.addr != dst.network() {
            return Err(RouterError::HostBits(dst, dst.subnet()));
        }
        let nh = match (via, dev) {
            (Some(gw), _) if self.is_local(gw) => return Err(RouterError::GatewayIsLocal(gw)),
            (Some(gw), dev) => {
                let bridge = match self.fib.lookup(gw).map(|id| self.next_hops[id as usize]) {
                    Some(NextHop {
                        bridge,
                        gateway: None,
                    }) if dev.is_none_or(|d| d == bridge) => bridge,
                    _ => return Err(RouterError::GatewayUnreachable(gw)),
                };
                NextHop {
                    bridge,
                    gateway: Some(gw),
                }
            }
            (None, Some(bridge)) => {
                if self.iface(bridge).is_none() {
                    return Err(RouterError::NoInterface);
                }
                NextHop {
                    bridge,
                    gateway: None,
                }
            }
            (None, None) => return Err(RouterError::NoInterface),
        };
        self.insert_route(dst, nh)
    }

    /// Puts a route in the table as it is, unchecked: for a model of a
    /// running router, whose routes were checked when they were added.
    pub(crate) fn insert_route(&mut self, dst: Ipv4Net, nh: NextHop) -> Result<(), RouterError> {
        let id = self.next_hop_id(nh);
        self.fib.insert(dst.network(), dst.len, id)?;
        Ok(())
    }

    pub fn route_del(&mut self, dst: Ipv4Net) -> Result<(), RouterError> {
        if dst.addr != dst.network() {
            return Err(RouterError::HostBits(dst, dst.subnet()));
        }
        self.fib.remove(dst.network(), dst.len)?;
        Ok(())
    }

    /// Adds a permanent neighbour.
    pub fn neigh_add(
        &mut self,
        bridge: BridgeId,
        ip: Ipv4Addr,
        mac: Mac,
    ) -> Result<(), RouterError> {
        if self.iface(bridge).is_none() {
            return Err(RouterError::NoInterface);
        }
        if self.is_local(ip) {
            return Err(RouterError::NeighborIsLocal(ip));
        }
        let mut waiting = std::mem::take(&mut self.scratch);
        let ok = self.arp.add_permanent(bridge, ip, mac, &mut waiting);
        self.release_waiting(bridge, mac, &mut waiting);
        self.scratch = waiting;
        if ok {
            Ok(())
        } else {
            Err(RouterError::ArpFull(self.arp.max()))
        }
    }

    pub fn neigh_del(&mut self, bridge: BridgeId, ip: Ipv4Addr) -> Result<(), RouterError> {
        let mut dropped = std::mem::take(&mut self.scratch);
        let found = self.arp.remove(bridge, ip, &mut dropped);
        for i in dropped.drain(..) {
            self.em.free(i);
        }
        self.scratch = dropped;
        if found {
            Ok(())
        } else {
            Err(RouterError::NoSuchNeighbor(ip))
        }
    }

    /// Forgets learned neighbours (of one bridge if given); returns how many.
    pub fn neigh_flush(&mut self, bridge: Option<BridgeId>) -> usize {
        let mut dropped = std::mem::take(&mut self.scratch);
        let n = self.arp.retain(
            |b, _, n| n.state == NeighState::Permanent || bridge.is_some_and(|x| x != b),
            &mut dropped,
        );
        for i in dropped.drain(..) {
            self.em.free(i);
        }
        self.scratch = dropped;
        n
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

    /// arp-input: answers requests for our addresses and learns from ARP
    /// that concerns us (RFC 826; RFC 5227 probes are answered too, so the
    /// prober sees the conflict). Returns the drop reason, if it is dropped.
    pub fn arp_input<const T: bool>(
        &mut self,
        eth: &[u8],
        bridge: BridgeId,
        now: u64,
    ) -> Option<DropReason> {
        self.counters.arp_in += 1;
        let Ok(arp) = ArpRepr::parse(&eth[ETH..]) else {
            return Some(DropReason::ArpMalformed);
        };
        let iface = self.iface(bridge)?;
        let our_mac = iface.mac;
        if !arp.sender_mac.is_unicast() || arp.sender_mac == our_mac {
            return Some(DropReason::ArpMalformed);
        }
        let for_us = iface.addrs.iter().any(|a| a.addr == arp.target_ip);
        let sender_on_link = !arp.sender_ip.is_unspecified()
            && iface.addrs.iter().any(|a| a.contains(arp.sender_ip));
        let sender_is_ours = iface.addrs.iter().any(|a| a.addr == arp.sender_ip);
        trace!(
            T; self.trace,
            Event::Arp {
                request: arp.op == OP_REQUEST,
                sender_ip: arp.sender_ip,
                sender_mac: arp.sender_mac,
                target_ip: arp.target_ip,
                action: match (for_us, arp.op == OP_REQUEST) {
                    (true, true) => ArpAction::ReplySent,
                    (true, false) => ArpAction::Learned,
                    (false, _) => ArpAction::NotForUs,
                },
            }
        );
        if T && self.trace.dry {
            return None;
        }
        if sender_on_link && !sender_is_ours {
            // Learn only what is addressed to us (a request for our address,
            // or a reply); a gratuitous ARP refreshes an entry we already had.
            let create = for_us;
            let mut waiting = std::mem::take(&mut self.scratch);
            if (for_us || arp.is_gratuitous())
                && self.arp.confirm(
                    bridge,
                    arp.sender_ip,
                    arp.sender_mac,
                    now,
                    create,
                    &mut waiting,
                )
            {
                self.release_waiting(bridge, arp.sender_mac, &mut waiting);
            }
            self.scratch = waiting;
        }
        if for_us && arp.op == OP_REQUEST {
            let reply = ArpRepr {
                op: OP_REPLY,
                sender_mac: our_mac,
                sender_ip: arp.target_ip,
                target_mac: arp.sender_mac,
                target_ip: arp.sender_ip,
            };
            if self.emit_arp(bridge, arp.sender_mac, &reply) {
                self.counters.arp_replies_sent += 1;
            }
        }
        None
    }

    /// Sends packets that waited for `mac`.
    fn release_waiting(&mut self, bridge: BridgeId, mac: Mac, waiting: &mut Vec<u16>) {
        if !waiting.is_empty() {
            trace!(
                self.trace,
                Event::Released {
                    count: waiting.len() as u16,
                    mac,
                }
            );
        }
        for i in waiting.drain(..) {
            self.em.frame_mut(i)[L2..L2 + 6].copy_from_slice(&mac.0);
            self.em.send(
                i,
                EmitTo::Bridge {
                    bridge,
                    dst: mac,
                    except: None,
                },
            );
        }
    }

    fn emit_arp(&mut self, bridge: BridgeId, dst: Mac, arp: &ArpRepr) -> bool {
        let Some(i) = self.em.alloc() else {
            return false;
        };
        let b = self.em.buf_mut(i);
        b[L2..L2 + 6].copy_from_slice(&dst.0);
        b[L2 + 6..L2 + 12].copy_from_slice(&arp.sender_mac.0);
        b[L2 + 12..L2 + 14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
        arp.emit(&mut b[L3..L3 + ARP_LEN]);
        // Pad to the Ethernet minimum of 60 bytes.
        b[L3 + ARP_LEN..L2 + 60].fill(0);
        self.em.set_len(i, L2 + 60);
        self.em.send(
            i,
            EmitTo::Bridge {
                bridge,
                dst,
                except: None,
            },
        );
        true
    }

    /// Broadcasts a request for `target` on `bridge`.
    fn ask(&mut self, bridge: BridgeId, target: Ipv4Addr) {
        self.request(bridge, target, Mac::BROADCAST);
    }

    /// Asks `target` at the MAC it had, unicast (RFC 4861 7.3.3 PROBE).
    fn probe(&mut self, bridge: BridgeId, target: Ipv4Addr, mac: Mac) {
        self.request(bridge, target, mac);
    }

    /// Sends a request for `target` to `to`.
    fn request(&mut self, bridge: BridgeId, target: Ipv4Addr, to: Mac) {
        let Some(iface) = self.iface(bridge) else {
            return;
        };
        let Some(sender_ip) = iface.source_for(target) else {
            return;
        };
        let req = ArpRepr {
            op: OP_REQUEST,
            sender_mac: iface.mac,
            sender_ip,
            target_mac: Mac::ZERO,
            target_ip: target,
        };
        if self.emit_arp(bridge, to, &req) {
            self.counters.arp_requests_sent += 1;
        }
    }

    /// Announces every address of a bridge's router interface (a port of it
    /// came up: hosts behind it may have known another MAC, or none).
    pub fn announce_all(&mut self, bridge: BridgeId) {
        let addrs: Vec<Ipv4Addr> = match self.iface(bridge) {
            Some(i) => i.addrs.iter().map(|a| a.addr).collect(),
            None => return,
        };
        for ip in addrs {
            self.announce(bridge, ip);
        }
    }

    /// A gratuitous ARP (RFC 5227 announcement) for a new address: hosts
    /// that knew the address at another MAC (it moved from another bridge,
    /// or patchbayd restarted) learn the new one at once.
    fn announce(&mut self, bridge: BridgeId, ip: Ipv4Addr) {
        let Some(iface) = self.iface(bridge) else {
            return;
        };
        let req = ArpRepr {
            op: OP_REQUEST,
            sender_mac: iface.mac,
            sender_ip: ip,
            target_mac: Mac::ZERO,
            target_ip: ip,
        };
        if self.emit_arp(bridge, Mac::BROADCAST, &req) {
            self.counters.arp_requests_sent += 1;
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

    /// Writes NAT's new tuple into a packet (`l3`); for the first fragment
    /// of datagram `first_of`, its later fragments will get the same
    /// addresses (not in a dry run, which remembers nothing).
    fn nat_apply<const T: bool>(
        &mut self,
        l3: &mut [u8],
        from: &Tuple,
        to: &Tuple,
        partial: bool,
        first_of: Option<u16>,
        now: u64,
    ) {
        rewrite(l3, from, to, partial);
        if let Some(ident) = first_of.filter(|_| !(T && self.trace.dry)) {
            let key = (from.src, from.dst, from.proto, ident);
            let len = Ipv4Packet::new_unchecked(&*l3).payload().len() as u32;
            if self
                .nat
                .note_fragmented(key, Some((to.src, to.dst)), len, now)
            {
                self.release_fragments(key, now);
            }
        }
    }

    /// Holds a later fragment whose first fragment has not come: NAT cannot
    /// tell yet whether and how to translate it (RFC 4787 REQ-14).
    fn hold_fragment(
        &mut self,
        frame: &[u8],
        key: FragmentKey,
        port: PortId,
        bridge: BridgeId,
        now: u64,
    ) -> L3Out {
        if self.held.len() >= MAX_HELD_FRAGMENTS {
            // The oldest goes: unsolicited fragments must not keep out the
            // ones whose first fragment is on its way.
            let oldest = self.held.remove(0);
            self.em.free(oldest.buf);
            self.nat.counters.fragments_dropped += 1;
        }
        let Some(buf) = self.em.copy(frame) else {
            return L3Out::Drop(DropReason::NoBuffer);
        };
        self.held.push(HeldFragment {
            key,
            buf,
            port,
            bridge,
            until: now + FRAGMENT_MS,
        });
        self.nat.counters.fragments_held += 1;
        L3Out::Consumed
    }

    /// The first fragment of datagram `key` came: the fragments held for it
    /// go through the router again, now that NAT knows what they get.
    fn release_fragments(&mut self, key: FragmentKey, now: u64) {
        if !self.held.iter().any(|h| h.key == key) {
            return;
        }
        let mut releasing = std::mem::take(&mut self.releasing);
        self.held.retain(|h| {
            let out = h.key == key;
            if out {
                releasing.push(*h);
            }
            !out
        });
        for h in releasing.drain(..) {
            let len = self.em.frame(h.buf).len();
            let mut buf = self.em.take_buf(h.buf);
            // Counted in when it came.
            self.counters.ip4_in -= 1;
            let out = self.input::<false>(&mut buf[..len], h.port, h.bridge, now);
            self.em.put_buf(h.buf, buf);
            match out {
                L3Out::Forward { bridge, dst } => {
                    let to = EmitTo::Bridge {
                        bridge,
                        dst,
                        except: None,
                    };
                    self.em.send(h.buf, to);
                }
                L3Out::Consumed => self.em.free(h.buf),
                L3Out::Drop(_) => {
                    self.em.free(h.buf);
                    self.nat.counters.fragments_dropped += 1;
                }
            }
        }
        self.releasing = releasing;
    }

    /// Puts buffer `i` on the queue of an unresolved neighbour; a full
    /// queue lets its oldest packet go (RFC 1122 2.3.2.2: keep the latest).
    fn enqueue(&mut self, bridge: BridgeId, ip: Ipv4Addr, i: u16) -> bool {
        match self.arp.queue(bridge, ip, i) {
            Ok(None) => true,
            Ok(Some(oldest)) => {
                self.em.free(oldest);
                self.counters.arp_queue_overflow += 1;
                true
            }
            Err(i) => {
                self.em.free(i);
                false
            }
        }
    }

    fn is_directed_broadcast(&self, ip: Ipv4Addr) -> bool {
        self.ifaces
            .iter()
            .flatten()
            .any(|i| i.addrs.iter().any(|a| a.broadcast() == Some(ip)))
    }

    /// ip4-reassemble: a fragment addressed to the router is held until
    /// its datagram is whole, which then goes to ip4-local.
    fn reassemble<const T: bool>(
        &mut self,
        frame: &[u8],
        in_port: PortId,
        bridge: BridgeId,
        now: u64,
    ) -> L3Out {
        let ip = Ipv4Packet::new_unchecked(&frame[L3..]);
        if T && self.trace.dry {
            return L3Out::Consumed;
        }
        // A first fragment tells NAT that its datagram is not translated,
        // so later fragments it held come back here.
        if ip.frag_offset() == 0 && self.nat.is_active() {
            let key = (ip.src(), ip.dst(), ip.protocol(), ip.ident());
            let len = ip.payload().len() as u32;
            if self.nat.note_fragmented(key, None, len, now) {
                self.release_fragments(key, now);
            }
        }
        let ip = Ipv4Packet::new_unchecked(&frame[L3..]);
        let at = match self.reassembly.add(&ip, now) {
            Added::Held => return L3Out::Consumed,
            Added::Dropped => return L3Out::Drop(DropReason::Ip4Reassembly),
            Added::Complete(at) => at,
        };
        self.counters.reassembled += 1;
        let Some(i) = self.em.alloc() else {
            return L3Out::Drop(DropReason::NoBuffer);
        };
        let mut buf = self.em.take_buf(i);
        buf[..L3].copy_from_slice(&frame[..L3]);
        let n = self.reassembly.take(at, &mut buf[L3..]);
        let out = match n {
            0 => L3Out::Drop(DropReason::Ip4Reassembly),
            n => self.local_input::<T>(&buf[..L3 + n], in_port, bridge, now),
        };
        self.em.put_buf(i, buf);
        self.em.free(i);
        out
    }

    /// ip4-local: the router answers pings to its addresses.
    fn local_input<const T: bool>(
        &mut self,
        frame: &[u8],
        in_port: PortId,
        bridge: BridgeId,
        now: u64,
    ) -> L3Out {
        let ip = Ipv4Packet::new_unchecked(&frame[L3..]);
        let total = ip.total_len();
        let hl = ip.header_len();
        let is_echo = ip.protocol() == PROTO_ICMP
            && ip.frag_offset() == 0
            && !ip.more_frags()
            && ip.payload().len() >= 8
            && ip.payload()[0] == icmp::ECHO_REQUEST;
        trace!(
            T; self.trace,
            Event::Local {
                dst: ip.dst(),
                echo_reply: is_echo,
            }
        );
        if !is_echo {
            // As a host answers what it does not serve.
            let code = match ip.protocol() {
                PROTO_TCP | PROTO_UDP => Some(icmp::CODE_PORT_UNREACHABLE),
                PROTO_ICMP => None,
                _ => Some(icmp::CODE_PROTOCOL_UNREACHABLE),
            };
            if let Some(code) = code {
                self.icmp_error::<T>(
                    frame,
                    Some(in_port),
                    bridge,
                    icmp::DEST_UNREACHABLE,
                    code,
                    0,
                );
            }
            return L3Out::Drop(DropReason::Ip4LocalUnsupported);
        }
        if T && self.trace.dry {
            return L3Out::Consumed;
        }
        let Some(our_mac) = self.router_mac(bridge) else {
            return L3Out::Drop(DropReason::Ip4NoRoute);
        };
        let (src, dst) = (ip.src(), ip.dst());
        let Some(i) = self.em.copy(&frame[..L3 + total]) else {
            return L3Out::Drop(DropReason::NoBuffer);
        };
        let ident = self.random.next_u64() as u16;
        let b = self.em.frame_mut(i);
        b[..VNET_HDR_LEN].fill(0);
        b.copy_within(L2 + 6..L2 + 12, L2);
        b[L2 + 6..L2 + 12].copy_from_slice(&our_mac.0);
        {
            let ipb = &mut b[L3..];
            ipb[8] = 64;
            ipb[12..16].copy_from_slice(&dst.octets());
            ipb[16..20].copy_from_slice(&src.octets());
            // The reply's own identification, not the request's; its type
            // of service is the request's (RFC 1812 4.3.3.6 lets it be).
            let tos = ipb[1];
            Ipv4Packet::new_unchecked(&mut *ipb).set_tos_and_ident(tos, ident);
            icmp::echo_to_reply(&mut ipb[hl..total]);
        }
        self.counters.ip4_local += 1;
        // A reply bigger than the bridge's MTU (a reassembled request) goes
        // in fragments, as a host's would, by the route to the sender.
        let mtu = self
            .iface(bridge)
            .map_or(usize::from(DEFAULT_MTU), |i| usize::from(i.mtu));
        if total > mtu {
            let nh = self.fib.lookup(src).map(|id| self.next_hops[id as usize]);
            let out = nh.and_then(|nh| Some((nh, self.iface(nh.bridge)?)));
            let out = out.map(|(nh, i)| (nh, i.mac, usize::from(i.mtu)));
            let mut buf = self.em.take_buf(i);
            let out = match out {
                Some((nh, mac, mtu)) => {
                    self.fragment::<T>(&mut buf[..L3 + total], nh, mac, mtu, false, now)
                }
                None => L3Out::Drop(DropReason::Ip4NoRoute),
            };
            self.em.put_buf(i, buf);
            self.em.free(i);
            return match out {
                L3Out::Drop(r) => L3Out::Drop(r),
                _ => L3Out::Consumed,
            };
        }
        self.em.send(i, EmitTo::Port(in_port));
        L3Out::Consumed
    }

    /// Splits a packet with DF clear into fragments that fit `mtu`
    /// (RFC 791; RFC 1812 5.2.6), each sent or queued like a packet.
    fn fragment<const T: bool>(
        &mut self,
        frame: &mut [u8],
        nh: NextHop,
        out_mac: Mac,
        mtu: usize,
        forwarded: bool,
        now: u64,
    ) -> L3Out {
        // A checksum left to the device must be done now: the device will
        // see fragments, not the datagram.
        let vnet = VnetHdr::new_checked(&frame[..VNET_HDR_LEN]).expect("virtio header");
        if vnet.flags() & F_NEEDS_CSUM != 0 {
            let start = L2 + usize::from(vnet.csum_start());
            let at = start + usize::from(vnet.csum_offset());
            let end = L3 + Ipv4Packet::new_unchecked(&frame[L3..]).total_len();
            if at + 2 > end || start >= end {
                return L3Out::Drop(DropReason::Ip4BadLength);
            }
            let c = checksum::checksum(&frame[start..end]);
            frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
            frame[0] &= !F_NEEDS_CSUM;
        }
        let ip = Ipv4Packet::new_unchecked(&frame[L3..]);
        let hl = ip.header_len();
        let payload = ip.payload();
        let step = (mtu - hl) & !7;
        if step == 0 {
            return L3Out::Drop(DropReason::Ip4FragNeeded);
        }
        let base = ip.frag_offset();
        if base + payload.len() > 65_535 {
            return L3Out::Drop(DropReason::Ip4BadLength);
        }
        let more = ip.more_frags();
        trace!(
            T; self.trace,
            Event::Fragmented {
                count: payload.len().div_ceil(step) as u16,
                mtu: mtu as u16,
            }
        );
        let next_ip = nh.gateway.unwrap_or(ip.dst());
        let resolved = self.arp.resolve(nh.bridge, next_ip, now);
        let mac = match resolved {
            Resolve::Mac(m) => Some(NextHopMac::Known(m)),
            Resolve::Pending { ask } => Some(NextHopMac::Queued { asked: ask }),
            Resolve::Failed | Resolve::Full => None,
        };
        if let Some(mac) = mac {
            let next_hop = next_ip;
            trace!(T; self.trace, Event::Resolve { next_hop, mac });
        }
        if let Resolve::Pending { ask: true } = resolved {
            self.ask(nh.bridge, next_ip);
        }
        // Fragments after the first carry only the options marked "copied"
        // (RFC 791 3.1): the header they get.
        let (later, later_hl) = copied_options_header(&frame[L3..L3 + hl]);
        let mut off = 0;
        while off < payload.len() {
            let n = step.min(payload.len() - off);
            let Some(i) = self.em.alloc() else {
                return L3Out::Drop(DropReason::NoBuffer);
            };
            let (hdr, h) = if base + off == 0 {
                (&frame[L3..L3 + hl], hl)
            } else {
                (&later[..later_hl], later_hl)
            };
            let b = self.em.buf_mut(i);
            b[L2..L2 + 14].copy_from_slice(&frame[L2..L2 + 14]);
            b[L2 + 6..L2 + 12].copy_from_slice(&out_mac.0);
            b[L3..L3 + h].copy_from_slice(hdr);
            b[L3 + h..L3 + h + n].copy_from_slice(&payload[off..off + n]);
            let last = off + n == payload.len();
            let field = (((base + off) / 8) as u16) | if !last || more { 0x2000 } else { 0 };
            b[L3 + 2..L3 + 4].copy_from_slice(&((h + n) as u16).to_be_bytes());
            b[L3 + 6..L3 + 8].copy_from_slice(&field.to_be_bytes());
            if forwarded {
                b[L3 + 8] -= 1;
            }
            Ipv4Packet::new_unchecked(&mut b[L3..L3 + h]).fill_checksum();
            self.em.set_len(i, L3 + h + n);
            self.counters.fragments_made += 1;
            match resolved {
                Resolve::Mac(m) => {
                    self.em.frame_mut(i)[L2..L2 + 6].copy_from_slice(&m.0);
                    self.em.send(
                        i,
                        EmitTo::Bridge {
                            bridge: nh.bridge,
                            dst: m,
                            except: None,
                        },
                    );
                }
                Resolve::Pending { .. } => {
                    if !self.enqueue(nh.bridge, next_ip, i) {
                        return L3Out::Drop(DropReason::ArpQueueFull);
                    }
                }
                Resolve::Failed | Resolve::Full => {
                    self.em.free(i);
                    return L3Out::Drop(DropReason::ArpUnresolved);
                }
            }
            off += n;
        }
        if forwarded {
            self.counters.ip4_forwarded += 1;
        }
        L3Out::Consumed
    }

    /// icmp-error: tells the sender of `frame` what went wrong (RFC 1812
    /// 4.3.2), sent back the way the frame came (`back` = its ingress port)
    /// or, without one, by a route lookup. Never about an ICMP error, a
    /// non-first fragment, or a broadcast; rate limited.
    fn icmp_error<const T: bool>(
        &mut self,
        frame: &[u8],
        back: Option<PortId>,
        bridge: BridgeId,
        icmp_type: u8,
        code: u8,
        rest: u32,
    ) {
        let ip = Ipv4Packet::new_unchecked(&frame[L3..]);
        let src = ip.src();
        let l2_dst = Mac::from_slice(&frame[L2..L2 + 6]);
        let quiet = ip.frag_offset() != 0
            || src.is_unspecified()
            || src.is_broadcast()
            || src.is_multicast()
            || src.is_loopback()
            || self.is_directed_broadcast(src)
            || (back.is_some() && l2_dst.is_multicast())
            // RFC 1812 4.3.2.7: nor about a datagram to a broadcast or
            // multicast address.
            || ip.dst().is_broadcast()
            || ip.dst().is_multicast()
            || self.is_directed_broadcast(ip.dst())
            || (ip.protocol() == PROTO_ICMP
                && ip.payload().first().is_some_and(|&t| icmp::is_error(t)));
        if quiet {
            return;
        }
        if self.icmp_budget == 0 && !(T && self.trace.dry) {
            self.counters.icmp_rate_limited += 1;
            return;
        }
        // About a packet NAT already rewrote: the error quotes it as its
        // sender sent it and goes to that sender (RFC 5508), as errors from
        // outside do.
        let untranslated = if self.nat.is_active() {
            parse_tuple(&frame[L3..])
                .and_then(|(t, _)| self.nat_error_translation::<T>(&t).map(|o| (t, o)))
        } else {
            None
        };
        let src = untranslated.map_or(src, |(_, o)| o.src);
        // Where the error goes: back out of the ingress port to the previous
        // hop, or along the route to the source.
        let (to, out_bridge, l2_to) = match back {
            Some(port) => (
                EmitTo::Port(port),
                bridge,
                Mac::from_slice(&frame[L2 + 6..L2 + 12]),
            ),
            None => {
                let Some(nh) = self.fib.lookup(src).map(|id| self.next_hops[id as usize]) else {
                    return;
                };
                let Some(n) = self.arp.get(nh.bridge, nh.gateway.unwrap_or(src)) else {
                    return;
                };
                if !n.state.has_mac() {
                    return;
                }
                let to = EmitTo::Bridge {
                    bridge: nh.bridge,
                    dst: n.mac,
                    except: None,
                };
                (to, nh.bridge, n.mac)
            }
        };
        let Some(iface) = self.iface(out_bridge) else {
            return;
        };
        let (our_mac, Some(our_ip)) = (iface.mac, iface.source_for(src)) else {
            return;
        };
        trace!(
            T; self.trace,
            Event::IcmpError {
                kind: icmp_type,
                code,
                to: src,
                mtu: rest as u16,
                rest,
            }
        );
        if T && self.trace.dry {
            return;
        }
        // Per destination, once the error is sure to go: path MTU discovery
        // must not starve, so "fragmentation needed" is held to the global
        // budget only, as in Linux; redirects have buckets of their own.
        let pmtu = icmp_type == icmp::DEST_UNREACHABLE && code == icmp::CODE_FRAG_NEEDED;
        let limiter = match icmp_type {
            icmp::REDIRECT => &mut self.redirect_limiter,
            _ => &mut self.icmp_limiter,
        };
        if !pmtu && !limiter.allow(src, self.now) {
            self.counters.icmp_rate_limited += 1;
            return;
        }
        let quote_len = ip.total_len().min(icmp::MAX_QUOTE);
        let Some(i) = self.em.alloc() else { return };
        self.icmp_budget -= 1;
        let ident = self.random.next_u64() as u16;
        let b = self.em.buf_mut(i);
        b[L2..L2 + 6].copy_from_slice(&l2_to.0);
        b[L2 + 6..L2 + 12].copy_from_slice(&our_mac.0);
        b[L2 + 12..L2 + 14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let icmp_len = icmp::emit_error(
            &mut b[L3 + IPV4_MIN_HDR_LEN..],
            icmp_type,
            code,
            rest,
            &frame[L3..L3 + quote_len],
        );
        let total = IPV4_MIN_HDR_LEN + icmp_len;
        ipv4::emit_header(
            &mut b[L3..],
            total as u16,
            ident,
            64,
            PROTO_ICMP,
            our_ip,
            src,
        );
        Ipv4Packet::new_unchecked(&mut b[L3..])
            .set_tos_and_ident(icmp::TOS_INTERNETWORK_CONTROL, ident);
        self.em.set_len(i, L3 + total);
        if let Some((inner, new_inner)) = untranslated {
            let buf = &mut self.em.frame_mut(i)[L3..];
            if let Some((_, at)) = parse_icmp_error(buf) {
                rewrite_icmp_error(buf, at, &inner, &new_inner);
            }
        }
        self.em.send(i, to);
        self.counters.icmp_errors_sent += 1;
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

/// The header of a fragment after the first: `hdr` with only the options
/// whose "copied" flag is set (padded to 32 bits), and its length.
fn copied_options_header(hdr: &[u8]) -> ([u8; 60], usize) {
    let mut out = [0u8; 60];
    out[..IPV4_MIN_HDR_LEN].copy_from_slice(&hdr[..IPV4_MIN_HDR_LEN]);
    let mut len = IPV4_MIN_HDR_LEN;
    let opts = &hdr[IPV4_MIN_HDR_LEN..];
    let mut k = 0;
    while k < opts.len() {
        match opts[k] {
            0 => break,
            1 => k += 1,
            kind => {
                let Some(&n) = opts.get(k + 1) else { break };
                let n = usize::from(n);
                if n < 2 || k + n > opts.len() {
                    break;
                }
                if kind & 0x80 != 0 {
                    out[len..len + n].copy_from_slice(&opts[k..k + n]);
                    len += n;
                }
                k += n;
            }
        }
    }
    let len = (len + 3) & !3;
    out[0] = 0x40 | (len / 4) as u8;
    (out, len)
}

#[cfg(test)]
mod tests {
    use super::copied_options_header;

    #[test]
    fn later_fragments_keep_only_copied_options() {
        let mut hdr = vec![
            0x48u8, 0, 0, 60, 0, 1, 0x20, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        // Record route (7, not copied), a NOP, then a copied option (0x82).
        hdr.extend_from_slice(&[7, 3, 4, 1, 0x82, 4, 0xaa, 0xbb]);
        hdr.resize(32, 0);
        let (out, len) = copied_options_header(&hdr);
        assert_eq!(len, 24);
        assert_eq!(out[0], 0x46);
        assert_eq!(&out[20..24], &[0x82, 4, 0xaa, 0xbb]);
        // A garbage length stops the walk, without a panic.
        let mut bad = hdr.clone();
        bad[21] = 200;
        assert_eq!(copied_options_header(&bad).1, 20);
    }
}
