//! The switch: ports, bridges, the FDB, and the forwarding of one batch.

use super::info::{
    name_at, AddrInfo, BridgeInfo, BridgeState, FdbRow, NatRuleInfo, NatRuleState, NatSessionInfo,
    NeighInfo, PortInfo, PortState, RouteFilter, RouteGet, RouteInfo, RouteOrigin, RunningState,
    StatsInfo,
};
use crate::arp::ArpCache;
use crate::arp::NeighState;
use crate::capture::{tap, Tap, TapHandle, TapInfo};
use crate::counters::{BridgeCounters, DropReason, PortCounters};
use crate::emit::EmitTo;
use crate::emit::Emitter;
use crate::ip4::{router_mac, L3Out, NextHop, Router, RouterError, RpFilter, L3};
use crate::ip6::{Route6Error, Router6};
use crate::l2::AgeingTime;
use crate::l2::{l2_forward, BridgeId, Fdb, FdbError, L2Decision, L2Policy, Learn, PortId};
use crate::l2::{GroupFwdMask, PortVlans, Segment, TagOp, Vid};
use crate::nat::{Filtering, Nat, NatAction, NatKind, PortRange, Timeouts};
use crate::port::memory::MemoryPort;
use crate::port::{LinkState, Port, TxFrame};
use crate::trace;
use crate::trace::{Event, Filter, L2Out, Learned, PacketSpec, TracedPacket, Tracer};
use crate::wire::{IpNet, Ipv4Net, Ipv6Net};
use crate::wire::{Mac, VNET_HDR_LEN};
use crate::BATCH;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

/// The bridge every `--port` joins; it always exists.
pub const DEFAULT_BRIDGE: &str = "br0";
/// Most bridges in one switch.
pub const MAX_BRIDGES: usize = 4096;

/// Logs a change to the switch at info level; a model's (see
/// [`Switch::model`]) changes nothing that runs, so it logs at debug level.
macro_rules! log_change {
    ($sw:expr, $($arg:tt)+) => {
        if $sw.is_model {
            log::debug!($($arg)+)
        } else {
            log::info!($($arg)+)
        }
    };
}

mod captures;
mod dhcp;
pub use dhcp::{DhcpAnswer, DhcpIface};
mod l3;
mod links;
mod nat_rules;
mod packet_trace;
mod path;
use path::{Batch, Path};
mod route6;
mod running;
mod show;
mod vlans;
mod vxlan;

pub use running::RunningSnapshot;
use vlans::{egress_op, segment_of};

/// Routes a router takes unless told: 4M, about 200 MiB of routes and
/// lookup structure at most.
pub const DEFAULT_MAX_ROUTES: usize = 4 << 20;

/// Limits and defaults.
#[derive(Debug, Clone)]
pub struct SwitchConfig {
    /// Most FDB entries across all bridges.
    pub fdb_max: usize,
    /// Default FDB ageing time of new bridges, in seconds (802.1D: 300).
    pub ageing_time: u32,
    /// Most ARP cache entries across all bridges.
    pub arp_max: usize,
    /// Buffers for frames the router makes or holds for ARP.
    pub router_buffers: usize,
    /// Seconds an ARP entry stays reachable after a confirmation, then
    /// seconds it is kept stale.
    pub arp_reachable_secs: u32,
    pub arp_stale_secs: u32,
    /// Most NAT sessions, and their timeouts.
    pub nat_max: usize,
    pub nat_timeouts: Timeouts,
    /// Most routes (connected ones too); memory is the only other limit.
    pub max_routes: usize,
}

impl Default for SwitchConfig {
    fn default() -> Self {
        SwitchConfig {
            fdb_max: 65_536,
            ageing_time: 300,
            arp_max: 16_384,
            router_buffers: 512,
            arp_reachable_secs: 30,
            arp_stale_secs: 300,
            nat_max: 262_144,
            nat_timeouts: Timeouts::default(),
            max_routes: DEFAULT_MAX_ROUTES,
        }
    }
}

/// Why a control request could not be carried out. Each message names the
/// thing and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    #[error("{0}: a port or bridge of that name already exists")]
    Exists(String),
    #[error("{0}: no such port")]
    NoSuchPort(String),
    #[error("{0} is a bridge, not a port")]
    IsBridge(String),
    #[error("{0} is a port, not a bridge")]
    IsPort(String),
    #[error("{net}: subnet {subnet} is already on bridge {bridge} (one bridge per subnet)")]
    SubnetElsewhere {
        net: Ipv4Net,
        subnet: Ipv4Net,
        bridge: String,
    },
    #[error("{0}: no such bridge (create it with 'patchbay link add {0} type bridge')")]
    NoSuchBridge(String),
    #[error("{0}: no such port or bridge")]
    NoSuchLink(String),
    #[error("{0}: the default bridge cannot be deleted")]
    DefaultBridge(String),
    #[error("port {0} is not attached to a bridge (use 'patchbay link set {0} master BRIDGE')")]
    NoMaster(String),
    #[error("{0}: VLAN filtering is off (set it with 'patchbay link set {0} vlan_filtering 1')")]
    NoVlanFiltering(String),
    #[error("{0}: a VLAN id is from 1 to 4094")]
    BadVid(u16),
    #[error("port {0} has no PVID: name the VLAN ('vlan N')")]
    NoPvid(String),
    #[error(
        "{0} is a VLAN interface of {1}, not a bridge (its ports and VLAN settings are {1}'s)"
    )]
    IsVlanIface(String, String),
    #[error("VLAN 1 is {0}'s own: its router interface is there (give the address to {0})")]
    VlanIsBridges(String),
    #[error("{0} is already the interface of VLAN {2} of {1}")]
    VlanIfaceExists(String, String, u16),
    #[error("{0} has VLAN interfaces ({1}); delete them before turning VLAN filtering off")]
    HasVlanIfaces(String, String),
    #[error("{0} is not a VXLAN port: 'dst' is for VXLAN ports")]
    NotVxlan(String),
    #[error("pvid takes one VLAN, not a range")]
    PvidRange,
    #[error("port {0} is not in VLAN {1}")]
    NotInVlan(String, String),
    #[error(transparent)]
    GroupFwdMask(#[from] crate::l2::PauseForwarded),
    #[error("{mac}: not in the FDB of {bridge}")]
    NoSuchEntry { mac: Mac, bridge: String },
    #[error("{0}: too many ports (at most {max})", max = u16::MAX)]
    TooManyPorts(String),
    #[error("{0}: too many bridges (at most {MAX_BRIDGES})")]
    TooManyBridges(String),
    #[error("ageing_time must be between 1 and 1000000 seconds, not {0}")]
    BadAgeing(u32),
    #[error(transparent)]
    Fdb(#[from] FdbError),
    #[error(transparent)]
    Router(#[from] RouterError),
    #[error(transparent)]
    Route6(#[from] Route6Error),
    #[error(transparent)]
    Addr6(#[from] crate::ip6::Addr6Error),
    #[error("{net}: subnet {} is already on bridge {bridge}", net.subnet())]
    Subnet6Elsewhere { net: Ipv6Net, bridge: String },
    #[error("{0}: a neighbour must have a unicast address")]
    BadNeighbor6(std::net::Ipv6Addr),
    #[error("{0} is an address of the router itself, not a neighbour")]
    Neighbor6IsLocal(std::net::Ipv6Addr),
    #[error("{0}: no such neighbour")]
    NoSuchNeighbor6(std::net::Ipv6Addr),
    #[error("the IPv6 neighbour cache is full ({0} entries)")]
    NdFull(usize),
    #[error("gateway {0} is not of the family of {1}")]
    FamilyMismatch(IpAddr, IpNet),
    #[error("nat: {0}")]
    BadNat(String),
    #[error("nat: no rule {0} (see 'patchbay nat show')")]
    NoSuchNatRule(u32),
    #[error("trace packet: {0}")]
    BadFrame(String),
    #[error("port {name}: registering with the poller: {source}")]
    Poll {
        name: String,
        source: std::io::Error,
    },
}

/// A frame to send out of a port: which frame of the batch (or of the
/// emitter), the tag change it needs, and whether its tag was taken out in
/// place (the router's frames), so that it starts four bytes on.
#[derive(Debug, Clone, Copy)]
struct TxEntry {
    index: u16,
    tag: TagOp,
    popped: bool,
}

impl TxEntry {
    fn frame<'a>(&self, bytes: &'a [u8]) -> TxFrame<'a> {
        let skip = if self.popped { 4 } else { 0 };
        TxFrame {
            bytes: bytes.get(skip..).unwrap_or(&[]),
            tag: self.tag,
        }
    }
}

/// Puts `entry` on egress port `q`'s queue, noting the port as touched the
/// first time.
#[inline]
fn enqueue_tx(queues: &mut [Vec<TxEntry>], touched: &mut Vec<PortId>, q: PortId, entry: TxEntry) {
    let queue = &mut queues[q as usize];
    if queue.is_empty() {
        touched.push(q);
    }
    queue.push(entry);
}

/// A port [`Switch::add_port`] could not add, handed back with the reason.
pub struct Rejected {
    pub error: SwitchError,
    pub port: Box<dyn Port>,
}

impl std::fmt::Debug for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Rejected({:?}, port {})", self.error, self.port.name())
    }
}

struct PortSlot {
    port: Box<dyn Port>,
    bridge: Option<BridgeId>,
    counters: PortCounters,
    state: LinkState,
    link_down_events: u64,
    /// Registered with the poller (a ring port is not, while the engine
    /// spins: see [`Switch::set_ring_polling`]).
    polled: bool,
}

struct Bridge {
    name: String,
    members: Vec<PortId>,
    ageing_time: u32,
    counters: BridgeCounters,
    /// 802.1Q: frames are classified to VLANs and switched within them
    /// (see [`crate::l2::vlan`]); off, tags pass through untouched.
    vlan_filtering: bool,
    group_fwd_mask: GroupFwdMask,
    /// A VLAN interface (`br0.20`): a router interface on this VLAN of this
    /// bridge, with no ports of its own.
    vlan_of: Option<(BridgeId, Vid)>,
    /// The VLAN interfaces on this bridge: VLAN id, interface.
    vlan_ifaces: Vec<(u16, BridgeId)>,
    /// The router interface's MTU was set (`link set br0 mtu N`, a config
    /// file's `mtu`): it no longer follows the bridge's VXLAN ports.
    mtu_set: bool,
}

/// The switch. Owned by one thread (the engine); the control plane reaches it
/// through [`super::EngineHandle::call`].
pub struct Switch {
    ports: Vec<Option<PortSlot>>,
    bridges: Vec<Option<Bridge>>,
    fdb: Fdb,
    /// The router's own tables: interfaces, FIB, next hops.
    router: Router,
    /// The router's IPv6 side: interfaces and routes (forwarding comes
    /// later).
    router6: Router6,
    /// The router's peers: the neighbour cache, NAT, the frames the router
    /// makes, and the packet trace (which the bridges' stages use too).
    arp: ArpCache,
    nat: Nat,
    em: Emitter,
    trace: Tracer,
    /// Per port: its VLANs (used on bridges with VLAN filtering).
    vlans: Vec<PortVlans>,
    /// Per egress port: the current batch's frames to send there.
    tx_queues: Vec<Vec<TxEntry>>,
    /// Egress ports with a non-empty queue, in first-use order.
    tx_touched: Vec<PortId>,
    config: SwitchConfig,
    /// What router MACs are made from (the machine and namespace).
    mac_seed: u64,
    started: Instant,
    registry: Option<Registry>,
    pub(crate) stop: bool,
    /// Packet captures under way.
    captures: Vec<Tap>,
    next_capture: u32,
    /// A model of a running switch (see [`Switch::model`]).
    is_model: bool,
}

impl Switch {
    /// A switch with the default bridge and no ports. With a `registry`,
    /// ports are registered for polling as they are added.
    pub fn new(config: SwitchConfig, registry: Option<Registry>) -> Switch {
        for w in config.nat_timeouts.below_rfc() {
            log::warn!("{w}");
        }
        Switch::build(config, registry, false)
    }

    fn build(config: SwitchConfig, registry: Option<Registry>, is_model: bool) -> Switch {
        let buffers = config.router_buffers.clamp(1, usize::from(u16::MAX));
        let mut arp = ArpCache::new(config.arp_max, buffers);
        arp.set_timers(
            u64::from(config.arp_reachable_secs) * 1000,
            u64::from(config.arp_stale_secs) * 1000,
        );
        let mut nat = Nat::new(config.nat_max);
        nat.timeouts = config.nat_timeouts.clone();
        let mut sw = Switch {
            ports: Vec::new(),
            bridges: Vec::new(),
            fdb: Fdb::new(config.fdb_max),
            router: Router::with_max_routes(config.max_routes),
            router6: Router6::new(config.max_routes, config.arp_max, buffers),
            arp,
            nat,
            em: Emitter::new(config.router_buffers),
            trace: Tracer::default(),
            vlans: Vec::new(),
            tx_queues: Vec::new(),
            tx_touched: Vec::with_capacity(64),
            config,
            mac_seed: router_mac::seed(""),
            started: Instant::now(),
            registry,
            stop: false,
            captures: Vec::new(),
            next_capture: 1,
            is_model,
        };
        sw.add_bridge(DEFAULT_BRIDGE).expect("empty switch");
        sw
    }

    /// The router with its peers, for a change to its tables.
    fn l3(&mut self) -> L3<'_> {
        L3 {
            router: &mut self.router,
            router6: &mut self.router6,
            arp: &mut self.arp,
            nat: &mut self.nat,
            em: &mut self.em,
            trace: &mut self.trace,
        }
    }

    /// Where router interface `iface`'s frames are switched: its bridge
    /// and VLAN (0 on a bridge without filtering).
    fn segment(&self, iface: BridgeId) -> Segment {
        segment_of(&self.bridges, iface).unwrap_or(Segment {
            bridge: iface,
            vid: 0,
        })
    }

    /// The name of the port a router interface reaches `mac` through (its
    /// segment's FDB entry), for the show commands.
    fn port_toward(&self, iface: BridgeId, mac: Mac) -> Option<String> {
        let seg = self.segment(iface);
        self.fdb
            .lookup(seg.bridge, seg.vid, mac)
            .map(|p| self.port_name(p).to_string())
    }

    /// Seconds since the switch started: the FDB's clock.
    fn now(&self) -> u32 {
        self.started.elapsed().as_secs() as u32
    }

    /// Asks the engine running this switch to stop.
    pub fn request_stop(&mut self) {
        self.stop = true;
    }

    /// Fixes what a switch draws at random (router MACs, NAT's port
    /// choices), so that a fuzzer's input does the same every time. Call it
    /// before adding addresses.
    #[cfg(feature = "fuzzing")]
    pub fn seed(&mut self, seed: u64) {
        self.mac_seed = seed;
        self.router.seed(seed);
        self.nat.seed(seed);
    }

    /// Moves the switch's clock `ms` on, as if that time had passed, so
    /// that a fuzzer reaches timeouts without waiting for them.
    #[cfg(feature = "fuzzing")]
    pub fn advance_clock(&mut self, ms: u64) {
        let earlier = self
            .started
            .checked_sub(std::time::Duration::from_millis(ms));
        self.started = earlier.expect("a clock that goes back that far");
    }

    fn port_id(&self, name: &str) -> Option<PortId> {
        self.ports
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.port.name() == name))
            .map(|i| i as PortId)
    }

    fn bridge_id(&self, name: &str) -> Option<BridgeId> {
        self.bridges
            .iter()
            .position(|b| b.as_ref().is_some_and(|b| b.name == name))
            .map(|i| i as BridgeId)
    }

    fn port_name(&self, id: PortId) -> &str {
        self.ports[id as usize]
            .as_ref()
            .map_or("?", |s| s.port.name())
    }

    fn bridge_name(&self, id: BridgeId) -> &str {
        self.bridges[id as usize]
            .as_ref()
            .map_or("?", |b| b.name.as_str())
    }

    fn existing_port(&self, name: &str) -> Result<PortId, SwitchError> {
        self.port_id(name)
            .ok_or_else(|| match self.bridge_id(name) {
                Some(_) => SwitchError::IsBridge(name.to_string()),
                None => SwitchError::NoSuchPort(name.to_string()),
            })
    }

    fn existing_bridge(&self, name: &str) -> Result<BridgeId, SwitchError> {
        self.bridge_id(name)
            .ok_or_else(|| match self.port_id(name) {
                Some(_) => SwitchError::IsPort(name.to_string()),
                None => SwitchError::NoSuchBridge(name.to_string()),
            })
    }

    /// Whether a port or bridge is called `name`.
    pub fn has_link(&self, name: &str) -> bool {
        self.port_id(name).is_some() || self.bridge_id(name).is_some()
    }

    /// Whether a bridge is called `name`.
    pub fn has_bridge(&self, name: &str) -> bool {
        self.bridge_id(name).is_some()
    }

    /// Receives one batch on port `rx` and forwards it. Returns how many
    /// frames were received: fewer than [`BATCH`] means the port is drained.
    ///
    /// This is the hot path: it allocates nothing, takes no lock, formats
    /// nothing.
    pub fn process_rx(&mut self, rx: PortId) -> usize {
        // Compiled twice: the copy for when no trace is armed and no capture
        // runs has no code for either at all.
        if self.trace.armed || !self.captures.is_empty() {
            self.process_rx_traced::<true>(rx)
        } else {
            self.process_rx_traced::<false>(rx)
        }
    }

    fn process_rx_traced<const T: bool>(&mut self, rx: PortId) -> usize {
        let now = self.now();
        let now_ms = self.started.elapsed().as_millis() as u64;
        let Switch {
            ports,
            bridges,
            fdb,
            router,
            router6,
            arp,
            nat,
            em,
            trace,
            vlans,
            tx_queues,
            tx_touched,
            captures,
            ..
        } = self;
        let Some(slot) = ports.get_mut(rx as usize).and_then(Option::as_mut) else {
            return 0;
        };
        let n = match slot.port.recv(BATCH, &mut slot.counters) {
            Ok(n) => n,
            Err(e) => {
                log::debug!("port {}: receive error: {e}", slot.port.name());
                0
            }
        };
        let bridge = slot.bridge.filter(|&b| bridges[b as usize].is_some());
        let router_mac = bridge.and_then(|b| router.router_mac(b).or(router6.router_mac(b)));
        for i in 0..n {
            let frame = slot.port.frame(i);
            let eth = frame.get(VNET_HDR_LEN..).unwrap_or(&[]);
            slot.counters.rx_packets += 1;
            slot.counters.rx_bytes += eth.len() as u64;
            if T {
                if trace.armed {
                    trace.begin(rx, eth);
                    if let Some(v) = slot.port.as_vxlan() {
                        let src = crate::wire::EthernetFrame::new_checked(eth).map(|e| e.src());
                        trace!(T; trace, Event::VxlanDecap {
                            vni: v.config().vni,
                            vtep: src.ok().and_then(|m| v.remote(m)).map(|r| r.vtep),
                        });
                    }
                }
                for tap in captures.iter_mut().filter(|t| t.rx && t.port == rx) {
                    tap.offer(eth);
                }
            }
            let Some(b) = bridge else {
                slot.counters.drop(DropReason::NoBridge);
                trace!(T; trace,
                    Event::Drop {
                        reason: DropReason::NoBridge
                    }
                );
                if T {
                    trace.end();
                }
                continue;
            };
            let l3 = L3 {
                router,
                router6,
                arp,
                nat,
                em,
                trace,
            };
            let mut path = Path {
                bridges,
                fdb,
                vlans,
                l3,
                router_mac,
                now,
                now_ms,
            };
            let mut out = Batch {
                queues: tx_queues,
                touched: tx_touched,
                i,
                popped: false,
            };
            let frame = slot.port.frame_mut(i);
            path.frame_in::<T>(rx, b, frame, &mut slot.counters, true, &mut out);
            if T {
                trace.end();
            }
        }
        for &q in tx_touched.iter() {
            let queue = &mut tx_queues[q as usize];
            if let Ok([Some(rx_slot), Some(tx_slot)]) =
                ports.get_disjoint_mut([rx as usize, q as usize])
            {
                let rx_port = &rx_slot.port;
                if T {
                    if let Some(v) = tx_slot.port.as_vxlan() {
                        trace.resolve_vxlan(q, |dst| v.trace_to(dst));
                    }
                    for tap in captures.iter_mut().filter(|t| t.tx && t.port == q) {
                        for e in queue.iter() {
                            tap.offer_tx(e.frame(rx_port.frame(usize::from(e.index))));
                        }
                    }
                }
                if tx_slot.state == LinkState::Gone {
                    tx_slot
                        .counters
                        .drop_n(DropReason::TxDown, queue.len() as u64);
                } else {
                    tx_slot.port.send(
                        &mut queue
                            .iter()
                            .map(|e| e.frame(rx_port.frame(usize::from(e.index)))),
                        &mut tx_slot.counters,
                    );
                }
            }
            queue.clear();
        }
        tx_touched.clear();
        if let Some(slot) = ports[rx as usize].as_mut() {
            slot.port.release();
        }
        if T {
            captures.retain(|t| !t.done);
        }
        self.flush_emitted();
        n
    }

    /// Sends the frames the router made (replies, requests, ICMP errors,
    /// packets released by ARP) and gives their buffers back. They are
    /// untagged, in the VLAN of the router interface of their bridge.
    fn flush_emitted(&mut self) {
        if self.em.out.is_empty() {
            return;
        }
        let Switch {
            ports,
            bridges,
            fdb,
            em,
            vlans,
            tx_queues,
            tx_touched,
            captures,
            ..
        } = self;
        for (k, &(to, _)) in em.out.iter().enumerate() {
            let mut enqueue = |q: PortId, vid: u16| {
                if let Some(tag) = egress_op(vlans, q, vid, false) {
                    let entry = TxEntry {
                        index: k as u16,
                        tag,
                        popped: false,
                    };
                    enqueue_tx(tx_queues, tx_touched, q, entry)
                }
            };
            match to {
                EmitTo::Port(q, iface) => {
                    if let Some(seg) = segment_of(bridges, iface) {
                        enqueue(q, seg.vid)
                    }
                }
                EmitTo::Bridge {
                    bridge: iface,
                    dst,
                    except,
                } => {
                    let Some(seg) = segment_of(bridges, iface) else {
                        continue;
                    };
                    let Some(br) = bridges[usize::from(seg.bridge)].as_ref() else {
                        continue;
                    };
                    match (!dst.is_multicast())
                        .then(|| fdb.lookup(seg.bridge, seg.vid, dst))
                        .flatten()
                    {
                        Some(q) => enqueue(q, seg.vid),
                        None => br
                            .members
                            .iter()
                            .filter(|&&q| Some(q) != except)
                            .for_each(|&q| enqueue(q, seg.vid)),
                    }
                }
            }
        }
        for &q in tx_touched.iter() {
            let queue = &mut tx_queues[q as usize];
            let frame = |e: &TxEntry| e.frame(em.frame(em.out[usize::from(e.index)].1));
            for tap in captures.iter_mut().filter(|t| t.tx && t.port == q) {
                for e in queue.iter() {
                    tap.offer_tx(frame(e));
                }
            }
            if let Some(slot) = ports[q as usize].as_mut() {
                slot.port
                    .send(&mut queue.iter().map(frame), &mut slot.counters);
            }
            queue.clear();
        }
        tx_touched.clear();
        em.sent();
    }

    /// Whether port `id` shows a waiting frame without a system call.
    pub fn rx_pending(&self, id: PortId) -> bool {
        let slot = self.ports.get(usize::from(id)).and_then(Option::as_ref);
        slot.and_then(|s| s.port.rx_pending()) == Some(true)
    }

    /// Marks in `ready` the ports that show a waiting frame without a system
    /// call (see [`Port::rx_pending`]).
    pub fn mark_rx_pending(&self, ready: &mut Vec<bool>) {
        for (id, slot) in self.ports.iter().enumerate() {
            if slot.as_ref().and_then(|s| s.port.rx_pending()) == Some(true) {
                if id >= ready.len() {
                    ready.resize(id + 1, false);
                }
                ready[id] = true;
            }
        }
    }

    /// Registers ports whose receive ring can be peeked at with the poller
    /// (`on`), or takes them off it while the engine spins.
    ///
    /// Every frame that arrives on a socket someone polls makes the kernel
    /// run the poller's wake-up callback, on the sender's core, even when
    /// nobody sleeps. A spinning engine peeks at the rings instead; off the
    /// poller, a ring port costs its senders nothing more than the copy.
    /// [`Switch::housekeeping`] refreshes such ports once a second instead.
    pub fn set_ring_polling(&mut self, on: bool) {
        let Some(registry) = &self.registry else {
            return;
        };
        for (id, slot) in self.ports.iter_mut().enumerate() {
            let Some(slot) = slot.as_mut() else { continue };
            if slot.port.raw_fd().is_none() || slot.port.rx_pending().is_none() {
                continue;
            }
            if slot.polled == on {
                continue;
            }
            match poll_port(registry, slot.port.as_ref(), id, on) {
                Ok(()) => slot.polled = on,
                Err(e) => log::error!("port {}: polling on={on}: {e}", slot.port.name()),
            }
        }
    }

    /// Called when polling reports an error on a port's descriptor, which is
    /// how the kernel tells an AF_PACKET socket its interface went down.
    pub fn port_error(&mut self, id: PortId) {
        self.refresh_port(id);
    }

    fn refresh_port(&mut self, id: PortId) {
        let Some(slot) = self.ports.get_mut(id as usize).and_then(Option::as_mut) else {
            return;
        };
        let fds = (slot.port.raw_fd(), slot.port.extra_fd());
        let state = slot.port.refresh();
        // A port that made its sockets anew is polled on the new ones (the
        // old ones left the poller when they were closed).
        if let (Some(registry), true) = (&self.registry, slot.polled) {
            if (slot.port.raw_fd(), slot.port.extra_fd()) != fds {
                if let Err(e) = poll_port(registry, slot.port.as_ref(), id.into(), true) {
                    // Refreshed once a second from now on, like a port off
                    // the poller.
                    log::error!("port {}: polling its new sockets: {e}", slot.port.name());
                    let _ = poll_port(registry, slot.port.as_ref(), id.into(), false);
                    slot.polled = false;
                }
            }
        }
        if state == slot.state {
            return;
        }
        let was_up = slot.state == LinkState::Up;
        slot.state = state;
        if was_up {
            slot.link_down_events += 1;
            let name = slot.port.name();
            log::warn!(
                "port {name}: link {} (other ports keep forwarding)",
                state.name()
            );
            // Stations behind a dead link cannot be reached through it:
            // forget them so their frames are flooded, as an 802.1D bridge
            // does when a port leaves the forwarding state.
            self.fdb.retain(|_, _, _, e| e.is_static || e.port != id);
        } else {
            log::info!("port {}: link {}", slot.port.name(), state.name());
            // Hosts behind a port that comes up hear of the router's
            // addresses at once (a restarted patchbayd, a link back).
            if let (LinkState::Up, Some(b)) = (state, slot.bridge) {
                self.announce_router(b);
            }
        }
    }

    /// Brings the recorded link state of every port up to date (housekeeping
    /// does it once a second): `link show` right after a port came up, or
    /// went down, says so.
    pub fn refresh_links(&mut self) {
        for id in 0..self.ports.len() {
            let stale = self.ports[id]
                .as_ref()
                .is_some_and(|s| s.state != LinkState::Up || s.port.link_state() != LinkState::Up);
            if stale {
                self.refresh_port(id as PortId);
            }
        }
    }

    /// Once a second: ages the FDB, collects kernel drop counts, and looks
    /// again at ports that are not up.
    pub fn housekeeping(&mut self) {
        let now_ms = self.started.elapsed().as_millis() as u64;
        self.l3().housekeeping(now_ms);
        self.l3().ra_tick(now_ms);
        self.l3().nd_tick(now_ms);
        self.l3().dad_tick(now_ms);
        self.flush_emitted();
        self.age_vxlan();
        let now = self.now();
        let bridges = &mut self.bridges;
        let ageing: Vec<u32> = bridges
            .iter()
            .map(|b| b.as_ref().map_or(0, |b| b.ageing_time))
            .collect();
        self.fdb.age(
            now,
            |b| ageing[b as usize],
            |b| {
                if let Some(br) = bridges[b as usize].as_mut() {
                    br.counters.aged += 1;
                }
            },
        );
        for id in 0..self.ports.len() {
            let Some(slot) = self.ports[id].as_mut() else {
                continue;
            };
            let dropped = slot.port.take_kernel_drops();
            slot.counters.drop_n(DropReason::RxRingFull, dropped);
            slot.port.tick();
            // A port off the poller (while the engine spins) hears of no
            // error: it is refreshed every time, which also follows an
            // interface deleted and made again within the second.
            if !slot.polled
                || slot.state != LinkState::Up
                || slot.port.link_state() != LinkState::Up
            {
                self.refresh_port(id as PortId);
            }
        }
    }
}

/// Registers a port's descriptors with the poller under its id (`on`), or
/// takes them off: each of them, whatever happens to the other, and one
/// that already is where it should be is no error.
fn poll_port(registry: &Registry, port: &dyn Port, id: usize, on: bool) -> std::io::Result<()> {
    let mut result = Ok(());
    for fd in [port.raw_fd(), port.extra_fd()].into_iter().flatten() {
        let done = if on {
            registry.register(&mut SourceFd(&fd), Token(id), Interest::READABLE)
        } else {
            registry.deregister(&mut SourceFd(&fd))
        };
        match done {
            Err(e) if on && e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) if !on && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) if result.is_ok() => result = Err(e),
            _ => {}
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::memory::{with_vnet_hdr, MemoryPort};
    use crate::wire::ethernet::ETHERTYPE_IPV4;
    use crate::wire::ipv4::IpProtocol;
    use crate::wire::{EthernetFrame, Ipv4Packet, Ipv4Repr, ETHERNET_HDR_LEN};

    /// A later fragment (offset 8 bytes) of a UDP datagram from 10.1.0.2 to
    /// 10.2.0.2, in a frame to `router`.
    fn later_fragment(router: Mac) -> Vec<u8> {
        let mut f = vec![0u8; ETHERNET_HDR_LEN];
        EthernetFrame::new_unchecked(&mut f[..]).emit(
            router,
            Mac([2, 0, 0, 0, 1, 2]),
            ETHERTYPE_IPV4,
        );
        let repr = Ipv4Repr {
            src: "10.1.0.2".parse().unwrap(),
            dst: "10.2.0.2".parse().unwrap(),
            protocol: IpProtocol::Udp,
            ttl: 64,
            tos: 0,
            ident: 7,
            dont_frag: false,
            more_frags: false,
            frag_offset: 8,
            payload_len: 28,
        };
        let mut ip = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut ip[..]));
        f.extend_from_slice(&ip);
        with_vnet_hdr(&f)
    }

    #[test]
    fn a_subnet_lives_on_one_bridge_and_nat_rules_outlive_addresses() {
        let mut sw = Switch::new(SwitchConfig::default(), None);
        sw.add_bridge("wan").unwrap();
        sw.addr_add("wan", "10.2.0.1/24".parse().unwrap()).unwrap();
        let e = sw
            .addr_add(DEFAULT_BRIDGE, "10.2.0.99/24".parse().unwrap())
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "10.2.0.99/24: subnet 10.2.0.0/24 is already on bridge wan (one bridge per subnet)"
        );
        // Another address on the same bridge and subnet is fine.
        sw.addr_add("wan", "10.2.0.2/24".parse().unwrap()).unwrap();
        assert_eq!(
            sw.route_get("10.2.0.7".parse().unwrap()).unwrap().route.dev,
            "wan"
        );
        sw.nat_add(
            NatAction::Masquerade,
            None,
            "wan",
            None,
            Filtering::default(),
        )
        .unwrap();
        sw.addr_del("wan", "10.2.0.1/24".parse().unwrap()).unwrap();
        sw.addr_del("wan", "10.2.0.2/24".parse().unwrap()).unwrap();
        assert!(sw.route_get("10.2.0.7".parse().unwrap()).is_none());
        assert_eq!(sw.nat_rules().len(), 1, "a rule waits for an address");
        sw.del_bridge("wan").unwrap();
        assert!(sw.nat_rules().is_empty(), "and goes with its bridge");
        // A port named where a bridge is wanted, and the other way round.
        sw.add_port(Box::new(MemoryPort::new("p1")), None).unwrap();
        let e = sw
            .addr_add("p1", "10.9.0.1/24".parse().unwrap())
            .unwrap_err();
        assert!(
            e.to_string().starts_with("p1 is a port, not a bridge"),
            "{e}"
        );
        let e = sw
            .set_master(DEFAULT_BRIDGE, Some(DEFAULT_BRIDGE))
            .unwrap_err();
        assert_eq!(e.to_string(), "br0 is a bridge, not a port");
    }

    #[test]
    fn fragments_held_for_a_deleted_port_are_dropped() {
        let mut sw = Switch::new(SwitchConfig::default(), None);
        sw.add_bridge("wan").unwrap();
        let p1 = MemoryPort::new("p1");
        let h1 = p1.handle();
        let id1 = sw.add_port(Box::new(p1), Some(DEFAULT_BRIDGE)).unwrap();
        sw.addr_add(DEFAULT_BRIDGE, "10.1.0.1/24".parse().unwrap())
            .unwrap();
        sw.addr_add("wan", "10.2.0.1/24".parse().unwrap()).unwrap();
        sw.nat_add(
            NatAction::Masquerade,
            Some("10.1.0.0/24".parse().unwrap()),
            "wan",
            None,
            Filtering::default(),
        )
        .unwrap();
        let router = sw.addrs()[0].mac;
        h1.inject([later_fragment(router)]);
        sw.process_rx(id1);
        assert_eq!(sw.stats().nat.fragments_held, 1);
        assert_eq!(sw.stats().nat.fragments_dropped, 0);
        sw.del_port("p1").unwrap();
        assert_eq!(sw.stats().nat.fragments_dropped, 1);
    }

    #[test]
    fn a_table_that_refuses_a_connected_route_leaves_no_address_behind() {
        let config = SwitchConfig {
            max_routes: 1,
            ..SwitchConfig::default()
        };
        let mut sw = Switch::new(config, None);
        sw.add_bridge("wan").unwrap();
        sw.addr_add("wan", "10.2.0.1/24".parse().unwrap()).unwrap();
        let e = sw.addr_add("wan", "10.3.0.1/24".parse().unwrap());
        assert!(e.unwrap_err().to_string().contains("max_routes"));
        let addrs: Vec<String> = sw.router.addrs().map(|(_, a)| a.to_string()).collect();
        assert_eq!(addrs, ["10.2.0.1/24"]);
    }

    #[test]
    fn a_connected_route_is_not_replaced_by_a_route_add() {
        let mut sw = Switch::new(SwitchConfig::default(), None);
        sw.addr_add(DEFAULT_BRIDGE, "10.0.0.1/24".parse().unwrap())
            .unwrap();
        // As `route load` adds (which replaces other routes).
        let e = sw
            .route_add(
                "10.0.0.0/24".parse().unwrap(),
                Some("10.0.0.5".parse().unwrap()),
                None,
            )
            .unwrap_err();
        assert!(e.to_string().contains("connected route"), "{e}");
        let r = sw.route_exact("10.0.0.0/24".parse().unwrap()).unwrap();
        assert_eq!((r.via, r.proto), (None, RouteOrigin::Connected));
    }

    /// A running state with its routes in one order (the FIB's is not).
    fn sorted(mut s: RunningState) -> String {
        s.routes.sort();
        format!("{s:?}")
    }

    #[test]
    fn a_model_has_the_running_state_and_its_checks() {
        let mut sw = Switch::new(SwitchConfig::default(), None);
        sw.add_bridge("wan").unwrap();
        sw.set_ageing("wan", 60).unwrap();
        sw.add_port(Box::new(MemoryPort::new("p1")), Some(DEFAULT_BRIDGE))
            .unwrap();
        sw.add_port(Box::new(MemoryPort::new("p2")), None).unwrap();
        sw.addr_add(DEFAULT_BRIDGE, "10.1.0.1/24".parse().unwrap())
            .unwrap();
        sw.addr_add("wan", "10.3.0.1/24".parse().unwrap()).unwrap();
        sw.set_mtu("wan", 1400).unwrap();
        sw.fdb_add("02:00:00:00:00:09".parse().unwrap(), "p1", None)
            .unwrap();
        sw.neigh_add(
            "10.3.0.9".parse().unwrap(),
            "02:00:00:00:03:09".parse().unwrap(),
            "wan",
        )
        .unwrap();
        // A route through 10.3.0.2, then one that makes 10.3.0.2 reached
        // through a gateway: the router would refuse the first now.
        let via = |a: &str| Some(a.parse().unwrap());
        sw.route_add("10.50.0.0/16".parse().unwrap(), via("10.3.0.2"), None)
            .unwrap();
        sw.route_add("10.3.0.0/25".parse().unwrap(), via("10.3.0.100"), None)
            .unwrap();
        sw.route_add("10.60.0.0/16".parse().unwrap(), None, Some("wan"))
            .unwrap();
        // IPv6 routes: out of a bridge, via a gateway it reaches, via a
        // link-local gateway.
        sw.route_add("2001:db8:2::/64".parse().unwrap(), None, Some("wan"))
            .unwrap();
        sw.route_add(
            "2001:db8:9::/48".parse().unwrap(),
            via("2001:db8:2::2"),
            None,
        )
        .unwrap();
        sw.route_add("::/0".parse().unwrap(), via("fe80::1"), Some("wan"))
            .unwrap();
        // NAT rule ids with a gap.
        for _ in 0..3 {
            sw.nat_add(
                NatAction::Masquerade,
                None,
                "wan",
                None,
                Filtering::default(),
            )
            .unwrap();
        }
        sw.nat_del(2).unwrap();

        let running = sw.running_state();
        let mut model = Switch::model(&running).unwrap();
        assert_eq!(sorted(model.running_state()), sorted(running.clone()));
        // The same checks: a route the running router refuses is refused.
        let e = model
            .route_add("10.70.0.0/16".parse().unwrap(), via("10.3.0.2"), None)
            .unwrap_err();
        assert!(matches!(
            e,
            SwitchError::Router(RouterError::GatewayUnreachable(_))
        ));
        let e = model
            .route_add(
                "2001:db8:8::/48".parse().unwrap(),
                via("2001:db8:3::1"),
                None,
            )
            .unwrap_err();
        assert!(matches!(
            e,
            SwitchError::Route6(Route6Error::GatewayUnreachable(..))
        ));
        // And a change to the model is not the running switch's.
        model.nat_del(3).unwrap();
        model.del_port("p1").unwrap();
        assert_eq!(sorted(sw.running_state()), sorted(running));
    }
}
