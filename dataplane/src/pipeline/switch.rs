//! The switch: ports, bridges, the FDB, and the forwarding of one batch.

use super::info::{
    name_at, AddrInfo, BridgeInfo, BridgeState, FdbRow, NatRuleInfo, NatRuleState, NatSessionInfo,
    NeighInfo, PortInfo, PortState, RouteFilter, RouteGet, RouteInfo, RouteOrigin, RunningState,
    StatsInfo,
};
use crate::capture::{tap, Tap, TapHandle, TapInfo};
use crate::counters::{BridgeCounters, DropReason, PortCounters};
use crate::emit::EmitTo;
use crate::ip4::neigh::NeighState;
use crate::ip4::{router_mac, L3Out, NextHop, Router, RouterError, RpFilter};
use crate::l2::AgeingTime;
use crate::l2::{l2_forward, BridgeId, Fdb, FdbError, L2Decision, Learn, PortId};
use crate::nat::{Filtering, Nat, NatAction, NatKind, PortRange, Timeouts};
use crate::port::memory::MemoryPort;
use crate::port::{LinkState, Port};
use crate::trace;
use crate::trace::{Event, Filter, L2Out, Learned, PacketSpec, TracedPacket, Tracer};
use crate::wire::Ipv4Net;
use crate::wire::{Mac, VNET_HDR_LEN};
use crate::BATCH;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use std::net::Ipv4Addr;
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

/// The name of an IP protocol, as the control plane shows it.
fn proto_name(p: u8) -> std::borrow::Cow<'static, str> {
    crate::wire::ipv4::protocol_name(p)
}

/// Puts frame `index` on egress port `q`'s queue, noting the port as
/// touched the first time.
#[inline]
fn enqueue_tx(queues: &mut [Vec<u16>], touched: &mut Vec<PortId>, q: PortId, index: usize) {
    let queue = &mut queues[q as usize];
    if queue.is_empty() {
        touched.push(q);
    }
    queue.push(index as u16);
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
}

/// The switch. Owned by one thread (the engine); the control plane reaches it
/// through [`super::EngineHandle::call`].
pub struct Switch {
    ports: Vec<Option<PortSlot>>,
    bridges: Vec<Option<Bridge>>,
    fdb: Fdb,
    router: Router,
    /// Per egress port: indices of the current batch's frames to send there.
    tx_queues: Vec<Vec<u16>>,
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
        let mut router = Router::new(config.arp_max, config.router_buffers);
        router.nat = Nat::new(config.nat_max);
        router.nat.timeouts = config.nat_timeouts.clone();
        router.arp.set_timers(
            u64::from(config.arp_reachable_secs) * 1000,
            u64::from(config.arp_stale_secs) * 1000,
        );
        let mut sw = Switch {
            ports: Vec::new(),
            bridges: Vec::new(),
            fdb: Fdb::new(config.fdb_max),
            router,
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

    fn check_new_name(&self, name: &str) -> Result<(), SwitchError> {
        if self.has_link(name) {
            return Err(SwitchError::Exists(name.to_string()));
        }
        Ok(())
    }

    /// Creates an empty bridge.
    pub fn add_bridge(&mut self, name: &str) -> Result<BridgeId, SwitchError> {
        self.check_new_name(name)?;
        let bridge = Bridge {
            name: name.to_string(),
            members: Vec::new(),
            ageing_time: self.config.ageing_time,
            counters: BridgeCounters::default(),
        };
        let id = match self.bridges.iter().position(Option::is_none) {
            Some(free) => {
                self.bridges[free] = Some(bridge);
                free
            }
            None if self.bridges.len() >= MAX_BRIDGES => {
                return Err(SwitchError::TooManyBridges(name.to_string()))
            }
            None => {
                self.bridges.push(Some(bridge));
                self.bridges.len() - 1
            }
        };
        log_change!(self, op = "bridge_add", bridge = name; "bridge {name}: created");
        Ok(id as BridgeId)
    }

    /// Deletes a bridge; its ports are left without a bridge.
    pub fn del_bridge(&mut self, name: &str) -> Result<(), SwitchError> {
        let id = self.existing_bridge(name)?;
        if name == DEFAULT_BRIDGE {
            return Err(SwitchError::DefaultBridge(name.to_string()));
        }
        for slot in self.ports.iter_mut().flatten() {
            if slot.bridge == Some(id) {
                slot.bridge = None;
            }
        }
        self.fdb.retain(|b, _, _| b != id);
        let routes = self.router.forget_interface(id);
        let rules = self.router.nat.forget_bridge(id);
        self.bridges[id as usize] = None;
        log_change!(self, op = "bridge_del", bridge = name, routes, nat_rules = rules;
            "bridge {name}: deleted, with {routes} route(s) and {rules} NAT rule(s)");
        Ok(())
    }

    /// Sets a bridge's FDB ageing time in seconds.
    pub fn set_ageing(&mut self, bridge: &str, secs: u32) -> Result<(), SwitchError> {
        let secs = AgeingTime::new(secs)
            .map_err(|e| SwitchError::BadAgeing(e.value))?
            .secs();
        let id = self.existing_bridge(bridge)?;
        self.bridges[id as usize]
            .as_mut()
            .expect("exists")
            .ageing_time = secs;
        log_change!(self, op = "bridge_set", bridge, ageing_time = secs; "bridge {bridge}: ageing_time {secs}s");
        Ok(())
    }

    /// Adds a port, attached to `master` (a bridge name) if given. A port
    /// that cannot be added is handed back with the error, so that the caller
    /// (not the forwarding thread) pays for closing it.
    pub fn add_port(
        &mut self,
        port: Box<dyn Port>,
        master: Option<&str>,
    ) -> Result<PortId, Rejected> {
        match self.prepare_port(port.as_ref(), master) {
            Ok((id, bridge)) => Ok(self.insert_port(id, bridge, port)),
            Err(error) => Err(Rejected { error, port }),
        }
    }

    /// Checks that `port` can be added, finds it a slot and registers it for
    /// polling.
    fn prepare_port(
        &mut self,
        port: &dyn Port,
        master: Option<&str>,
    ) -> Result<(usize, Option<BridgeId>), SwitchError> {
        let name = port.name().to_string();
        self.check_new_name(&name)?;
        let bridge = master.map(|m| self.existing_bridge(m)).transpose()?;
        let id = match self.ports.iter().position(Option::is_none) {
            Some(free) => free,
            None if self.ports.len() < usize::from(u16::MAX) => {
                self.ports.push(None);
                // Room for a batch, or for every frame the router can make.
                self.tx_queues
                    .push(Vec::with_capacity(BATCH.max(self.config.router_buffers)));
                self.ports.len() - 1
            }
            None => return Err(SwitchError::TooManyPorts(name)),
        };
        if let Some(registry) = &self.registry {
            poll_port(registry, port, id, true)
                .map_err(|source| SwitchError::Poll { name, source })?;
        }
        Ok((id, bridge))
    }

    fn insert_port(&mut self, id: usize, bridge: Option<BridgeId>, port: Box<dyn Port>) -> PortId {
        let state = port.link_state();
        let master = bridge.map_or("none", |b| self.bridge_name(b));
        log_change!(
            self,
            op = "port_add", port = port.name(), kind = port.kind().name(), master;
            "port {}: added ({}, {}, master {master})",
            port.name(),
            port.kind().name(),
            state.name(),
        );
        let polled = self.registry.is_some() && port.raw_fd().is_some();
        self.ports[id] = Some(PortSlot {
            port,
            bridge,
            counters: PortCounters::default(),
            state,
            link_down_events: 0,
            polled,
        });
        if let Some(b) = bridge {
            let members = &mut self.bridges[b as usize].as_mut().expect("exists").members;
            members.push(id as PortId);
            if state == LinkState::Up {
                self.announce_router(b);
            }
        }
        id as PortId
    }

    /// Names this switch among the daemons of its namespace (its control
    /// socket's path), which the router MACs of bridges given an address
    /// from now on are made from: set it before any address.
    pub fn set_instance(&mut self, instance: &str) {
        self.mac_seed = router_mac::seed(instance);
    }

    /// Gratuitous ARP for every router address of bridge `b`, sent now.
    fn announce_router(&mut self, b: BridgeId) {
        self.router.announce_all(b);
        self.flush_emitted();
    }

    /// Removes a port and forgets what was learned on it. The port is handed
    /// back: closing it can wait on the kernel (RTNL), which the forwarding
    /// thread must not.
    pub fn del_port(&mut self, name: &str) -> Result<Box<dyn Port>, SwitchError> {
        let id = self.existing_port(name)?;
        self.detach(id);
        let slot = self.ports[id as usize].take().expect("exists");
        // Its captures end (their writers see the end of the frames).
        self.captures.retain(|t| t.port != id);
        if let (Some(registry), true) = (&self.registry, slot.polled) {
            let _ = poll_port(registry, slot.port.as_ref(), id.into(), false);
        }
        log_change!(self, op = "port_del", port = name; "port {name}: deleted");
        Ok(slot.port)
    }

    /// Takes a port out of its bridge, with its FDB entries.
    fn detach(&mut self, id: PortId) {
        let slot = self.ports[id as usize].as_mut().expect("exists");
        if let Some(b) = slot.bridge.take() {
            if let Some(bridge) = self.bridges[b as usize].as_mut() {
                bridge.members.retain(|&p| p != id);
            }
            self.fdb.retain(|_, _, e| e.port != id);
            self.router.forget_port(id);
        }
    }

    /// Attaches a port to a bridge (`Some`) or to none.
    pub fn set_master(&mut self, port: &str, master: Option<&str>) -> Result<(), SwitchError> {
        let id = self.existing_port(port)?;
        let bridge = master.map(|m| self.existing_bridge(m)).transpose()?;
        if self.ports[id as usize].as_ref().expect("exists").bridge == bridge {
            return Ok(());
        }
        self.detach(id);
        self.ports[id as usize].as_mut().expect("exists").bridge = bridge;
        if let Some(b) = bridge {
            self.bridges[b as usize]
                .as_mut()
                .expect("exists")
                .members
                .push(id);
            if self.ports[id as usize].as_ref().expect("exists").state == LinkState::Up {
                self.announce_router(b);
            }
        }
        log_change!(self, op = "port_set", port, master = master.unwrap_or("none"); "port {port}: master {}", master.unwrap_or("none"));
        Ok(())
    }

    /// Adds a static FDB entry: `mac` is on `port` (in the port's bridge).
    pub fn fdb_add(&mut self, mac: Mac, port: &str) -> Result<(), SwitchError> {
        let id = self.existing_port(port)?;
        let bridge = self.ports[id as usize]
            .as_ref()
            .and_then(|s| s.bridge)
            .ok_or_else(|| SwitchError::NoMaster(port.to_string()))?;
        self.fdb.add_static(bridge, mac, id)?;
        log_change!(self, op = "fdb_add", mac:% = mac, dev = port; "fdb: {mac} dev {port} static");
        Ok(())
    }

    /// The port of a static entry for `mac` in the bridge of `port`.
    pub fn static_fdb_port(&self, mac: Mac, port: &str) -> Result<Option<String>, SwitchError> {
        let id = self.existing_port(port)?;
        let Some(bridge) = self.ports[id as usize].as_ref().and_then(|s| s.bridge) else {
            return Err(SwitchError::NoMaster(port.to_string()));
        };
        Ok(self
            .fdb
            .get(bridge, mac)
            .filter(|e| e.is_static)
            .map(|e| self.port_name(e.port).to_string()))
    }

    /// Removes `mac` from the FDB of the bridge named `link`, or of the
    /// bridge of the port named `link`.
    pub fn fdb_del(&mut self, mac: Mac, link: &str) -> Result<(), SwitchError> {
        let bridge = match (self.bridge_id(link), self.port_id(link)) {
            (Some(b), _) => b,
            (None, Some(p)) => self.ports[p as usize]
                .as_ref()
                .and_then(|s| s.bridge)
                .ok_or_else(|| SwitchError::NoMaster(link.to_string()))?,
            (None, None) => return Err(SwitchError::NoSuchLink(link.to_string())),
        };
        self.fdb
            .remove(bridge, mac)
            .ok_or_else(|| SwitchError::NoSuchEntry {
                mac,
                bridge: self.bridge_name(bridge).to_string(),
            })?;
        log_change!(self, op = "fdb_del", mac:% = mac, bridge = self.bridge_name(bridge); "fdb: {mac} deleted from {}", self.bridge_name(bridge));
        Ok(())
    }

    /// Removes learned entries (static ones too if `statics`), of one port or
    /// bridge if `link` names one; returns how many went.
    pub fn fdb_flush(&mut self, link: Option<&str>, statics: bool) -> Result<usize, SwitchError> {
        let (port, bridge) = match link {
            None => (None, None),
            Some(l) => match (self.port_id(l), self.bridge_id(l)) {
                (Some(p), _) => (Some(p), None),
                (None, Some(b)) => (None, Some(b)),
                (None, None) => return Err(SwitchError::NoSuchLink(l.to_string())),
            },
        };
        let n = self.fdb.retain(|b, _, e| {
            let selected = port.is_none_or(|p| e.port == p) && bridge.is_none_or(|x| b == x);
            !(selected && (statics || !e.is_static))
        });
        log_change!(
            self,
            op = "fdb_flush", link = link.unwrap_or("all"), removed = n;
            "fdb: flushed {n} entries of {}",
            link.unwrap_or("all bridges")
        );
        Ok(n)
    }

    /// Receives one batch on port `rx` and forwards it. Returns how many
    /// frames were received: fewer than [`BATCH`] means the port is drained.
    ///
    /// This is the hot path: it allocates nothing, takes no lock, formats
    /// nothing.
    pub fn process_rx(&mut self, rx: PortId) -> usize {
        // Compiled twice: the copy for when no trace is armed and no capture
        // runs has no code for either at all.
        if self.router.trace.armed || !self.captures.is_empty() {
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
        let router_mac = bridge.and_then(|b| router.router_mac(b));
        for i in 0..n {
            let frame = slot.port.frame(i);
            let eth = frame.get(VNET_HDR_LEN..).unwrap_or(&[]);
            slot.counters.rx_packets += 1;
            slot.counters.rx_bytes += eth.len() as u64;
            if T {
                if router.trace.armed {
                    router.trace.begin(rx, eth);
                }
                for tap in captures.iter_mut().filter(|t| t.rx && t.port == rx) {
                    tap.offer(eth);
                }
            }
            let Some(b) = bridge else {
                slot.counters.drop(DropReason::NoBridge);
                trace!(T; router.trace,
                    Event::Drop {
                        reason: DropReason::NoBridge
                    }
                );
                if T {
                    router.trace.end();
                }
                continue;
            };
            // Broadcast ARP (requests, announcements) is flooded and shown to
            // the router too; ARP to some other station is not its business.
            let is_arp = eth.len() >= 14 && eth[12..14] == [0x08, 0x06] && eth[..6] == [0xff; 6];
            let mut enqueue = |q: PortId| enqueue_tx(tx_queues, tx_touched, q, i);
            let counters = &mut bridges[b as usize].as_mut().expect("checked").counters;
            let (decision, learned) = l2_forward(eth, rx, b, fdb, now, counters, router_mac, true);
            if T && router.trace.on {
                trace_l2(&mut router.trace, bridges, b, eth, rx, learned, decision);
            }
            match decision {
                L2Decision::Forward(q) => enqueue(q),
                L2Decision::Flood => {
                    let members = &bridges[b as usize].as_ref().expect("checked").members;
                    members
                        .iter()
                        .filter(|&&q| q != rx)
                        .for_each(|&q| enqueue(q));
                    // A broadcast ARP request may be for the router.
                    if is_arp && router_mac.is_some() {
                        if let Some(reason) = router.arp_input::<T>(eth, b, now_ms) {
                            slot.counters.drop(reason);
                        }
                    }
                }
                L2Decision::Router => {
                    match router.input::<T>(slot.port.frame_mut(i), rx, b, now_ms) {
                        L3Out::Forward { bridge: out, dst } => match fdb.lookup(out, dst) {
                            Some(q) if q != rx => {
                                trace!(T; router.trace, Event::Tx { port: q });
                                enqueue(q)
                            }
                            // Back out of the port it came in on: the frame is
                            // copied, since a port cannot send from its own batch.
                            Some(_) => match router.em.copy(slot.port.frame(i)) {
                                Some(c) => {
                                    trace!(T; router.trace, Event::Tx { port: rx });
                                    router.em.send(c, EmitTo::Port(rx))
                                }
                                None => slot.counters.drop(DropReason::NoBuffer),
                            },
                            None => {
                                let members = bridges[out as usize]
                                    .as_ref()
                                    .map_or(&[][..], |b| &b.members[..]);
                                if T && router.trace.on {
                                    trace_flood(&mut router.trace, dst, members, rx);
                                }
                                members
                                    .iter()
                                    .filter(|&&q| q != rx)
                                    .for_each(|&q| enqueue(q));
                                // Flooded back into its own bridge, the
                                // destination may well be behind the ingress port.
                                if out == b {
                                    match router.em.copy(slot.port.frame(i)) {
                                        Some(c) => {
                                            trace!(T; router.trace, Event::Tx { port: rx });
                                            router.em.send(c, EmitTo::Port(rx))
                                        }
                                        None => slot.counters.drop(DropReason::NoBuffer),
                                    }
                                }
                            }
                        },
                        L3Out::Consumed => {}
                        L3Out::Drop(reason) => {
                            slot.counters.drop(reason);
                            trace!(T; router.trace, Event::Drop { reason });
                        }
                    }
                }
                L2Decision::Drop(reason) => {
                    slot.counters.drop(reason);
                    trace!(T; router.trace, Event::Drop { reason });
                }
            }
            if T {
                router.trace.end();
            }
        }
        for &q in tx_touched.iter() {
            let queue = &mut tx_queues[q as usize];
            if let Ok([Some(rx_slot), Some(tx_slot)]) =
                ports.get_disjoint_mut([rx as usize, q as usize])
            {
                let rx_port = &rx_slot.port;
                if T {
                    for tap in captures.iter_mut().filter(|t| t.tx && t.port == q) {
                        for &i in queue.iter() {
                            tap.offer(&rx_port.frame(i as usize)[VNET_HDR_LEN..]);
                        }
                    }
                }
                if tx_slot.state == LinkState::Gone {
                    tx_slot
                        .counters
                        .drop_n(DropReason::TxDown, queue.len() as u64);
                } else {
                    tx_slot.port.send(
                        &mut queue.iter().map(|&i| rx_port.frame(i as usize)),
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
    /// packets released by ARP) and gives their buffers back.
    fn flush_emitted(&mut self) {
        if self.router.em.out.is_empty() {
            return;
        }
        let Switch {
            ports,
            bridges,
            fdb,
            router,
            tx_queues,
            tx_touched,
            captures,
            ..
        } = self;
        for (k, &(to, _)) in router.em.out.iter().enumerate() {
            let mut enqueue = |q: PortId| enqueue_tx(tx_queues, tx_touched, q, k);
            match to {
                EmitTo::Port(q) => enqueue(q),
                EmitTo::Bridge {
                    bridge,
                    dst,
                    except,
                } => {
                    match (!dst.is_multicast())
                        .then(|| fdb.lookup(bridge, dst))
                        .flatten()
                    {
                        Some(q) => enqueue(q),
                        None => {
                            let members = bridges[bridge as usize]
                                .as_ref()
                                .map_or(&[][..], |b| &b.members[..]);
                            members
                                .iter()
                                .filter(|&&q| Some(q) != except)
                                .for_each(|&q| enqueue(q));
                        }
                    }
                }
            }
        }
        let em = &router.em;
        for &q in tx_touched.iter() {
            let queue = &mut tx_queues[q as usize];
            for tap in captures.iter_mut().filter(|t| t.tx && t.port == q) {
                for &k in queue.iter() {
                    tap.offer(&em.frame(em.out[k as usize].1)[VNET_HDR_LEN..]);
                }
            }
            if let Some(slot) = ports[q as usize].as_mut() {
                slot.port.send(
                    &mut queue.iter().map(|&k| em.frame(em.out[k as usize].1)),
                    &mut slot.counters,
                );
            }
            queue.clear();
        }
        tx_touched.clear();
        router.sent();
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
            self.fdb.retain(|_, _, e| e.is_static || e.port != id);
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
        self.router
            .housekeeping(self.started.elapsed().as_millis() as u64);
        self.flush_emitted();
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

    // ---- router -------------------------------------------------------

    /// Adds an address to a bridge's router interface.
    pub fn addr_add(&mut self, bridge: &str, net: Ipv4Net) -> Result<(), SwitchError> {
        let b = self.existing_bridge(bridge)?;
        // Two bridges on one subnet would share (and, on deletion, lose)
        // one connected route.
        let subnet = net.subnet();
        let elsewhere = self
            .router
            .addrs()
            .find(|&(other, a)| other != b && a.len == net.len && a.network() == subnet.addr);
        if let Some((other, _)) = elsewhere {
            return Err(SwitchError::SubnetElsewhere {
                net,
                subnet,
                bridge: self.bridge_name(other).to_string(),
            });
        }
        let mac = router_mac::for_bridge(self.mac_seed, bridge);
        self.router.addr_add(b, net, mac)?;
        // Its gratuitous ARP goes out now, not at the next housekeeping.
        self.flush_emitted();
        log_change!(self, op = "addr_add", addr:% = net, dev = bridge; "addr {net} dev {bridge}");
        Ok(())
    }

    pub fn addr_del(&mut self, bridge: &str, net: Ipv4Net) -> Result<(), SwitchError> {
        let b = self.existing_bridge(bridge)?;
        // Its last address takes the bridge's routes with it.
        let gone = self.router.addr_del(b, net)?;
        log_change!(self, op = "addr_del", addr:% = net, dev = bridge, routes = gone;
            "addr {net} dev {bridge}: deleted, with {gone} route(s)");
        Ok(())
    }

    /// Sets the MTU of a bridge's router interface.
    pub fn set_mtu(&mut self, bridge: &str, mtu: u32) -> Result<(), SwitchError> {
        let b = self.existing_bridge(bridge)?;
        self.router.set_mtu(b, mtu)?;
        log_change!(self, op = "bridge_set", bridge, mtu; "bridge {bridge}: mtu {mtu}");
        Ok(())
    }

    /// Sets a bridge's router interface's reverse-path filtering and
    /// whether it sends redirects (each if given).
    pub fn set_policy(
        &mut self,
        bridge: &str,
        rp_filter: Option<RpFilter>,
        redirects: Option<bool>,
    ) -> Result<(), SwitchError> {
        let b = self.existing_bridge(bridge)?;
        self.router.set_policy(b, rp_filter, redirects)?;
        if let Some(rp) = rp_filter {
            log_change!(self, op = "bridge_set", bridge, rp_filter:% = rp; "bridge {bridge}: rp_filter {rp}");
        }
        if let Some(r) = redirects {
            log_change!(self, op = "bridge_set", bridge, redirects = r; "bridge {bridge}: redirects {}", if r { "on" } else { "off" });
        }
        Ok(())
    }

    /// Adds a route via a gateway, or out of a bridge.
    pub fn route_add(
        &mut self,
        dst: Ipv4Net,
        via: Option<Ipv4Addr>,
        dev: Option<&str>,
    ) -> Result<(), SwitchError> {
        let dev_id = dev.map(|d| self.existing_bridge(d)).transpose()?;
        self.router.route_add(dst, via, dev_id)?;
        // Logged by whoever asked: once per request, or once per bulk load
        // or apply (a million lines of log would help nobody).
        Ok(())
    }

    /// The route for exactly `dst` (not the longest match), if there is one.
    pub fn route_exact(&self, dst: Ipv4Net) -> Option<RouteInfo> {
        let prefix = dst.network();
        let nh = self.router.fib().get(prefix, dst.len)?;
        Some(self.route_info(prefix, dst.len, nh))
    }

    pub fn route_del(&mut self, dst: Ipv4Net) -> Result<(), SwitchError> {
        self.router.route_del(dst)?;
        Ok(())
    }

    fn route_info(&self, prefix: Ipv4Addr, len: u8, nh_id: u32) -> RouteInfo {
        let nh = self.router.next_hop(nh_id);
        let dst = Ipv4Net { addr: prefix, len };
        let connected = nh.gateway.is_none()
            && self.router.iface(nh.bridge).is_some_and(|i| {
                i.addrs
                    .iter()
                    .any(|a| a.len == len && a.network() == prefix)
            });
        RouteInfo {
            dst,
            via: nh.gateway,
            dev: self.bridge_name(nh.bridge).to_string(),
            proto: if connected {
                RouteOrigin::Connected
            } else {
                RouteOrigin::Static
            },
        }
    }

    /// Every route, longest prefixes first; at most `limit`.
    pub fn routes(&self, limit: usize) -> (usize, Vec<RouteInfo>) {
        let fib = self.router.fib();
        let rows = fib
            .routes()
            .take(limit)
            .map(|(p, l, nh)| self.route_info(p, l, nh))
            .collect();
        (fib.len(), rows)
    }

    /// The routes `filter` lets through, longest prefixes first; at most
    /// `limit`, with how many match.
    pub fn routes_matching(
        &self,
        limit: usize,
        filter: &RouteFilter,
    ) -> Result<(usize, Vec<RouteInfo>), SwitchError> {
        let dev = filter
            .dev
            .as_deref()
            .map(|d| self.existing_bridge(d))
            .transpose()?;
        if filter.dst.is_none() && dev.is_none() {
            return Ok(self.routes(limit));
        }
        let fib = self.router.fib();
        let mut total = 0;
        let mut rows = Vec::new();
        let wanted = |p: Ipv4Addr, l: u8, nh: u32| {
            let in_dst = filter.dst.is_none_or(|d| {
                if filter.root {
                    l >= d.len && d.contains(p)
                } else {
                    l == d.len && p == d.network()
                }
            });
            in_dst && dev.is_none_or(|b| self.router.next_hop(nh).bridge == b)
        };
        for (p, l, nh) in fib.routes().filter(|&(p, l, nh)| wanted(p, l, nh)) {
            total += 1;
            if rows.len() < limit {
                rows.push(self.route_info(p, l, nh));
            }
        }
        Ok((total, rows))
    }

    /// Whether packets to `addr` are never forwarded (broadcast, multicast,
    /// loopback, 0.0.0.0/8).
    pub fn never_forwarded(&self, addr: Ipv4Addr) -> bool {
        self.router.never_forwarded(addr)
    }

    /// The routing decision for one address, in words.
    pub fn route_get(&self, addr: Ipv4Addr) -> Option<RouteGet> {
        // The router's own address: answered, not routed (`ip route get`
        // says "local" too).
        if let Some((b, _)) = self.router.addrs().find(|&(_, a)| a.addr == addr) {
            return Some(RouteGet {
                addr,
                route: RouteInfo {
                    dst: Ipv4Net { addr, len: 32 },
                    via: None,
                    dev: self.bridge_name(b).to_string(),
                    proto: RouteOrigin::Local,
                },
                next_hop: addr,
                src: Some(addr),
                neighbor_mac: self.router.router_mac(b),
                port: None,
            });
        }
        if self.router.never_forwarded(addr) {
            return None;
        }
        let (p, l, nh_id) = self.router.fib().matching_route(addr)?;
        let route = self.route_info(p, l, nh_id);
        let nh = self.router.next_hop(nh_id);
        let next = nh.gateway.unwrap_or(addr);
        let neighbor = self.router.arp.get(nh.bridge, next);
        let mac = neighbor
            .filter(|n| !matches!(n.state, NeighState::Incomplete | NeighState::Failed))
            .map(|n| n.mac);
        let port = mac
            .and_then(|m| self.fdb.lookup(nh.bridge, m))
            .map(|p| self.port_name(p).to_string());
        let src = self
            .router
            .iface(nh.bridge)
            .and_then(|i| {
                i.addrs
                    .iter()
                    .find(|a| a.contains(next))
                    .or(i.addrs.first())
            })
            .map(|a| a.addr);
        Some(RouteGet {
            addr,
            route,
            next_hop: next,
            src,
            neighbor_mac: mac,
            port,
        })
    }

    /// Router interfaces: bridge, MAC, MTU, addresses.
    pub fn addrs(&self) -> Vec<AddrInfo> {
        self.bridges
            .iter()
            .enumerate()
            .filter_map(|(b, br)| {
                let br = br.as_ref()?;
                let i = self.router.iface(b as BridgeId)?;
                Some(AddrInfo {
                    dev: br.name.clone(),
                    mac: i.mac,
                    mtu: i.mtu,
                    rp_filter: i.rp_filter,
                    redirects: i.redirects,
                    addrs: i.addrs.clone(),
                })
            })
            .collect()
    }

    /// The MAC of a permanent ARP entry for `ip` on bridge `dev`.
    pub fn permanent_neighbor(&self, ip: Ipv4Addr, dev: &str) -> Result<Option<Mac>, SwitchError> {
        let b = self.existing_bridge(dev)?;
        Ok(self
            .router
            .arp
            .get(b, ip)
            .filter(|n| n.state == NeighState::Permanent)
            .map(|n| n.mac))
    }

    /// Adds a permanent ARP entry.
    pub fn neigh_add(&mut self, ip: Ipv4Addr, mac: Mac, dev: &str) -> Result<(), SwitchError> {
        let b = self.existing_bridge(dev)?;
        self.router.neigh_add(b, ip, mac)?;
        self.flush_emitted();
        log_change!(self, op = "neigh_add", ip:% = ip, mac:% = mac, dev; "neigh {ip} lladdr {mac} dev {dev} permanent");
        Ok(())
    }

    pub fn neigh_del(&mut self, ip: Ipv4Addr, dev: &str) -> Result<(), SwitchError> {
        let b = self.existing_bridge(dev)?;
        self.router.neigh_del(b, ip)?;
        log_change!(self, op = "neigh_del", ip:% = ip, dev; "neigh {ip} dev {dev}: deleted");
        Ok(())
    }

    pub fn neigh_flush(&mut self, dev: Option<&str>) -> Result<usize, SwitchError> {
        let b = dev.map(|d| self.existing_bridge(d)).transpose()?;
        let n = self.router.neigh_flush(b);
        log_change!(self, op = "neigh_flush", removed = n; "neigh: flushed {n} entries");
        Ok(n)
    }

    /// The ARP cache, sorted by bridge and address.
    pub fn neighbors(&self) -> Vec<NeighInfo> {
        let now = self.started.elapsed().as_millis() as u64;
        let mut rows: Vec<_> = self.router.arp.entries().collect();
        rows.sort_by_key(|(b, ip, _)| (*b, *ip));
        rows.into_iter()
            .map(|(b, ip, n)| NeighInfo {
                ip,
                mac: (n.state != NeighState::Incomplete && n.state != NeighState::Failed)
                    .then_some(n.mac),
                dev: self.bridge_name(b).to_string(),
                port: self
                    .fdb
                    .lookup(b, n.mac)
                    .map(|p| self.port_name(p).to_string()),
                state: n.state,
                age: (n.state != NeighState::Permanent)
                    .then(|| (now.saturating_sub(n.updated) / 1000) as u32),
                queued: n.n_pending,
            })
            .collect()
    }

    // ---- NAT ----------------------------------------------------------

    /// Adds a NAT rule on `bridge` (egress for source NAT, ingress for
    /// destination NAT); returns its id.
    pub fn nat_add(
        &mut self,
        action: NatAction,
        src: Option<Ipv4Net>,
        bridge: &str,
        ports: Option<(u16, u16)>,
        filtering: Filtering,
    ) -> Result<u32, SwitchError> {
        let b = self.existing_bridge(bridge)?;
        // As iptables does: 192.168.15.5/24 is 192.168.15.0/24.
        let src = src.map(|n| n.subnet());
        if let NatAction::Dnat { proto, dport, .. } = action {
            let taken = self.router.nat.rules().iter().find(|r| {
                r.bridge == b
                    && matches!(r.action, NatAction::Dnat { proto: p, dport: d, .. }
                        if p == proto && d == dport)
            });
            if let Some(r) = taken {
                return Err(SwitchError::BadNat(format!(
                    "{} port {dport} on {bridge} is already published by rule {} \
                     (delete it first: 'patchbay nat del {}')",
                    proto_name(proto),
                    r.id,
                    r.id
                )));
            }
        }
        let ports = ports.unwrap_or(PortRange::DEFAULT);
        PortRange::check(ports).map_err(SwitchError::BadNat)?;
        if let NatAction::Snat { first, last } = action {
            if first > last {
                return Err(SwitchError::BadNat(format!(
                    "address range {first}-{last} is empty"
                )));
            }
        }
        let id = self
            .router
            .nat
            .add_rule_filtered(action.clone(), src, b, ports, filtering);
        let words = self
            .nat_rules()
            .into_iter()
            .find(|r| r.id == id)
            .map(|r| r.words())
            .unwrap_or_default();
        log_change!(self, op = "nat_add", id, rule = words.as_str(); "nat rule {id}: {words}");
        Ok(id)
    }

    pub fn nat_del(&mut self, id: u32) -> Result<(), SwitchError> {
        if !self.router.nat.del_rule(id) {
            return Err(SwitchError::NoSuchNatRule(id));
        }
        log_change!(self, op = "nat_del", id; "nat rule {id}: deleted");
        Ok(())
    }

    /// The NAT rules with their hit counters.
    pub fn nat_rules(&self) -> Vec<NatRuleInfo> {
        self.router
            .nat
            .rules()
            .iter()
            .map(|r| {
                let (to, proto, dport) = match &r.action {
                    NatAction::Masquerade => (None, None, None),
                    NatAction::Snat { first, last } => {
                        (Some(format!("{first}-{last}")), None, None)
                    }
                    NatAction::Dnat {
                        proto,
                        dport,
                        to_addr,
                        to_port,
                    } => (
                        Some(format!("{to_addr}:{to_port}")),
                        Some(proto_name(*proto).to_string()),
                        Some(*dport),
                    ),
                };
                let kind = r.action.kind();
                let source_nat = kind != NatKind::Dnat;
                NatRuleInfo {
                    id: r.id,
                    kind,
                    src: r.src,
                    bridge: self.bridge_name(r.bridge).to_string(),
                    to,
                    ports: source_nat.then_some(r.ports),
                    filtering: source_nat.then_some(r.filtering),
                    proto,
                    dport,
                    hits: r.hits,
                }
            })
            .collect()
    }

    /// Every NAT session.
    pub fn nat_sessions(&self) -> Vec<NatSessionInfo> {
        let now = self.started.elapsed().as_millis() as u64;
        self.router
            .nat
            .sessions()
            .map(|s| {
                let (i, o, r) = s.endpoints();
                // A protocol without ports is tracked by address alone.
                let ports = crate::nat::translate::has_ports(s.orig.proto);
                let endpoint = |(a, p): (Ipv4Addr, u16)| match ports {
                    true => format!("{a}:{p}"),
                    false => a.to_string(),
                };
                NatSessionInfo {
                    proto: proto_name(s.orig.proto).to_string(),
                    inside: endpoint(i),
                    outside: endpoint(o),
                    remote: endpoint(r),
                    state: s.state,
                    rule: s.rule,
                    age: (now.saturating_sub(s.last_seen) / 1000) as u32,
                }
            })
            .collect()
    }

    /// Forgets every NAT session; returns how many.
    pub fn nat_flush(&mut self) -> usize {
        let n = self.router.nat.flush(|_| true);
        log_change!(self, op = "nat_flush", removed = n; "nat: flushed {n} sessions");
        n
    }

    fn port_info(&self, slot: &PortSlot) -> PortInfo {
        let c = &slot.counters;
        PortInfo {
            name: slot.port.name().to_string(),
            kind: slot.port.kind(),
            master: slot.bridge.map(|b| self.bridge_name(b).to_string()),
            state: slot.state,
            link_down_events: slot.link_down_events,
            rx_packets: c.rx_packets,
            rx_bytes: c.rx_bytes,
            tx_packets: c.tx_packets,
            tx_bytes: c.tx_bytes,
            drops: c.total_drops(),
            drops_by_reason: c
                .drops_by_reason()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }
    }

    /// Every port, in the order they were added.
    pub fn ports(&self) -> Vec<PortInfo> {
        self.ports
            .iter()
            .flatten()
            .map(|s| self.port_info(s))
            .collect()
    }

    /// Every bridge.
    pub fn bridges(&self) -> Vec<BridgeInfo> {
        let mut per_bridge = vec![0usize; self.bridges.len()];
        for (b, _, _) in self.fdb.entries() {
            per_bridge[b as usize] += 1;
        }
        self.bridges
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.as_ref().map(|b| (i, b)))
            .map(|(i, b)| BridgeInfo {
                name: b.name.clone(),
                ports: b
                    .members
                    .iter()
                    .map(|&p| self.port_name(p).to_string())
                    .collect(),
                ageing_time: b.ageing_time,
                fdb_entries: per_bridge[i],
                counters: b.counters.clone(),
            })
            .collect()
    }

    /// A copy of the FDB, quick to take here (plain entries, no names);
    /// [`FdbSnapshot::finish`] sorts and names it elsewhere.
    pub fn fdb_snapshot(&self) -> FdbSnapshot {
        let (ports, bridges) = self.names();
        FdbSnapshot {
            entries: self.fdb.entries().collect(),
            ports,
            bridges,
            now: self.now(),
        }
    }

    /// The FDB, sorted by bridge then MAC (see [`Switch::fdb_snapshot`] to
    /// do the sorting and naming off the forwarding thread).
    pub fn fdb(&self) -> Vec<FdbRow> {
        self.fdb_snapshot().finish()
    }

    pub fn stats(&self) -> StatsInfo {
        StatsInfo {
            ports: self.ports(),
            bridges: self.bridges(),
            fdb_entries: self.fdb.len(),
            fdb_max: self.fdb.max(),
            nat_sessions: self.router.nat.len(),
            nat_max: self.router.nat.max(),
            nat: self.router.nat.counters.clone(),
            arp_entries: self.router.arp.len(),
            arp_max: self.router.arp.max(),
            routes: self.router.fib().len(),
            router_buffers_free: self.router.em.available(),
            l3: self.router.counters.clone(),
            uptime_secs: self.started.elapsed().as_secs(),
            captures: self.captures(),
        }
    }

    // ---- packet capture -------------------------------------------------

    /// Starts capturing frames of `port` (in if `rx`, out if `tx`) that
    /// match `filter`, cut to `snaplen`, `count` of them if given. The
    /// capture's buffers are allocated here: on the forwarding thread, make
    /// the tap elsewhere and [`Switch::capture_attach`] it.
    pub fn capture_start(
        &mut self,
        port: &str,
        dirs: (bool, bool),
        filter: Filter,
        snaplen: usize,
        count: Option<u64>,
    ) -> Result<TapHandle, SwitchError> {
        let (t, handle) = tap(dirs, filter, snaplen, count);
        self.capture_attach(port, t)?;
        Ok(handle)
    }

    /// Attaches a capture made by [`crate::capture::tap`] to `port`;
    /// returns its id.
    pub fn capture_attach(&mut self, port: &str, mut t: Tap) -> Result<u32, SwitchError> {
        t.port = self.existing_port(port)?;
        t.id = self.next_capture;
        self.next_capture += 1;
        let id = t.id;
        self.captures.push(t);
        log::info!(op = "capture_start", id, port; "capture {id} of {port} started");
        Ok(id)
    }

    /// Ends a capture (its writer sees the end of its frames).
    pub fn capture_stop(&mut self, id: u32) {
        self.captures.retain(|t| t.id != id);
    }

    /// The captures under way.
    pub fn captures(&self) -> Vec<TapInfo> {
        use std::sync::atomic::Ordering::Relaxed;
        self.captures
            .iter()
            .map(|t| TapInfo {
                id: t.id,
                port: self.port_name(t.port).to_string(),
                rx: t.rx,
                tx: t.tx,
                captured: t.counters.captured.load(Relaxed),
                dropped: t.counters.dropped.load(Relaxed),
            })
            .collect()
    }

    // ---- packet trace ---------------------------------------------------

    /// Arms a trace of the next `count` packets in on `port` (any if
    /// `None`) that match `filter`.
    pub fn trace_start(
        &mut self,
        count: u32,
        port: Option<&str>,
        filter: Filter,
    ) -> Result<(), SwitchError> {
        let port = port.map(|p| self.existing_port(p)).transpose()?;
        self.router.trace.start(count, port, filter);
        log::info!(op = "trace_start", count; "trace: the next {count} packets");
        Ok(())
    }

    pub fn trace_stop(&mut self) {
        self.router.trace.stop();
    }

    /// The trace so far: whether it is armed, packets still to take, and
    /// what it recorded (shared, not copied: reading a full trace takes
    /// microseconds here; it is formatted elsewhere, with
    /// [`Switch::names`]).
    pub fn trace_read(&self) -> (bool, u32, Vec<std::sync::Arc<TracedPacket>>) {
        let t = &self.router.trace;
        (t.armed, t.left(), t.packets().to_vec())
    }

    /// The names of ports and of bridges, by id (`None` for free slots).
    pub fn names(&self) -> (Vec<Option<String>>, Vec<Option<String>>) {
        (
            self.ports
                .iter()
                .map(|p| p.as_ref().map(|s| s.port.name().to_string()))
                .collect(),
            self.bridges
                .iter()
                .map(|b| b.as_ref().map(|b| b.name.clone()))
                .collect(),
        )
    }

    /// Builds the packet `spec` describes (from the MAC the ARP cache has
    /// for its source, to the router MAC of the port's bridge, or to the
    /// destination's own MAC when it is on the source's subnet and known,
    /// unless it says otherwise) and runs it with [`Switch::trace_packet`].
    pub fn trace_spec(
        &mut self,
        port: &str,
        spec: &PacketSpec,
    ) -> Result<TracedPacket, SwitchError> {
        let rx = self.existing_port(port)?;
        let bridge = self.ports[rx as usize].as_ref().and_then(|s| s.bridge);
        let smac = bridge
            .and_then(|b| self.router.arp.get(b, spec.src))
            .filter(|n| !matches!(n.state, NeighState::Incomplete | NeighState::Failed))
            .map_or(Mac([0x02, 0, 0, 0, 0, 0x01]), |n| n.mac);
        // A host sends to an address on its own subnet directly (to the MAC
        // the router's ARP cache has for it), anywhere else to the router.
        let on_link = |b: BridgeId| {
            self.router.iface(b).is_some_and(|i| {
                i.addrs
                    .iter()
                    .any(|a| a.contains(spec.src) && a.contains(spec.dst))
            })
        };
        let dmac = bridge
            .filter(|&b| on_link(b))
            .and_then(|b| self.router.arp.get(b, spec.dst))
            .filter(|n| !matches!(n.state, NeighState::Incomplete | NeighState::Failed))
            .map(|n| n.mac)
            .or_else(|| bridge.and_then(|b| self.router.router_mac(b)))
            .unwrap_or(Mac::BROADCAST);
        let mut frame = spec.build(smac, dmac).map_err(SwitchError::BadFrame)?;
        self.trace_packet(port, &mut frame)
    }

    /// Runs `frame` (a virtio-net header and an Ethernet frame) as if it came
    /// in on `port`, through the live tables, without sending it or changing
    /// anything the switch learned; returns what each stage decided.
    pub fn trace_packet(
        &mut self,
        port: &str,
        frame: &mut [u8],
    ) -> Result<TracedPacket, SwitchError> {
        let rx = self.existing_port(port)?;
        if frame.len() < VNET_HDR_LEN + 14 {
            return Err(SwitchError::BadFrame(
                "shorter than an Ethernet header".into(),
            ));
        }
        let now = self.now();
        let now_ms = self.started.elapsed().as_millis() as u64;
        let Switch {
            ports,
            bridges,
            fdb,
            router,
            ..
        } = self;
        let saved_counters = (router.counters.clone(), router.nat.counters.clone());
        let saved_trace = router.trace.begin_dry();
        router.trace.begin(rx, &frame[VNET_HDR_LEN..]);
        let bridge = ports[rx as usize]
            .as_ref()
            .and_then(|s| s.bridge)
            .filter(|&b| bridges[b as usize].is_some());
        match bridge {
            None => router.trace.record(Event::Drop {
                reason: DropReason::NoBridge,
            }),
            Some(b) => {
                let router_mac = router.router_mac(b);
                let eth = &frame[VNET_HDR_LEN..];
                let mut scratch = BridgeCounters::default();
                let (decision, learned) =
                    l2_forward(eth, rx, b, fdb, now, &mut scratch, router_mac, false);
                trace_l2(&mut router.trace, bridges, b, eth, rx, learned, decision);
                let is_arp = eth[12..14] == [0x08, 0x06] && eth[..6] == [0xff; 6];
                match decision {
                    L2Decision::Flood if is_arp && router_mac.is_some() => {
                        if let Some(reason) = router.arp_input::<true>(eth, b, now_ms) {
                            router.trace.record(Event::Drop { reason });
                        }
                    }
                    L2Decision::Router => match router.input::<true>(frame, rx, b, now_ms) {
                        L3Out::Forward { bridge: out, dst } => match fdb.lookup(out, dst) {
                            Some(q) => router.trace.record(Event::Tx { port: q }),
                            None => {
                                let members = bridges[out as usize]
                                    .as_ref()
                                    .map_or(&[][..], |b| &b.members[..]);
                                trace_flood(&mut router.trace, dst, members, rx);
                            }
                        },
                        L3Out::Consumed => {}
                        L3Out::Drop(reason) => router.trace.record(Event::Drop { reason }),
                    },
                    L2Decision::Drop(reason) => router.trace.record(Event::Drop { reason }),
                    _ => {}
                }
            }
        }
        router.trace.end();
        let packet = router.trace.end_dry(saved_trace);
        (router.counters, router.nat.counters) = saved_counters;
        Ok(packet)
    }

    // ---- configuration as a whole -------------------------------------

    /// The limits and current timeouts.
    pub fn config(&self) -> &SwitchConfig {
        &self.config
    }

    /// Sets the timeouts: the FDB ageing time given to new bridges, the ARP
    /// timers and the NAT timeouts (which apply to existing sessions too).
    pub fn set_timeouts(
        &mut self,
        ageing_time: u32,
        arp_reachable_secs: u32,
        arp_stale_secs: u32,
        nat: Timeouts,
    ) -> Result<(), SwitchError> {
        AgeingTime::new(ageing_time).map_err(|e| SwitchError::BadAgeing(e.value))?;
        self.router.arp.set_timers(
            u64::from(arp_reachable_secs) * 1000,
            u64::from(arp_stale_secs) * 1000,
        );
        self.router.nat.timeouts = nat.clone();
        self.config.ageing_time = ageing_time;
        self.config.arp_reachable_secs = arp_reachable_secs;
        self.config.arp_stale_secs = arp_stale_secs;
        self.config.nat_timeouts = nat;
        log_change!(
            self,
            op = "timeouts", ageing_time, arp_reachable_secs, arp_stale_secs;
            "timeouts: ageing_time {ageing_time}s, arp {arp_reachable_secs}s reachable \
             {arp_stale_secs}s stale, nat {}",
            self.config.nat_timeouts
        );
        if !self.is_model {
            for w in self.config.nat_timeouts.below_rfc() {
                log::warn!("{w}");
            }
        }
        Ok(())
    }

    /// A switch configured as `state` says, with stand-ins for its ports
    /// and no poller: a model on which to try changes with the running
    /// switch's own code and checks, without touching it (`patchbay apply
    /// FILE check` runs its plan here). NAT rules keep their ids; routes
    /// are taken as they are (each was checked when added, perhaps in an
    /// order that no longer shows). What was learned from the wire (FDB,
    /// ARP and NAT sessions) is not in it, so a table that only those fill
    /// is not full here. Its changes are logged at debug level.
    pub fn model(state: &RunningState) -> Result<Switch, SwitchError> {
        let mut sw = Switch::build(state.config.clone(), None, true);
        for b in &state.bridges {
            if !sw.has_bridge(&b.name) {
                sw.add_bridge(&b.name)?;
            }
            if b.ageing_time != sw.config.ageing_time {
                sw.set_ageing(&b.name, b.ageing_time)?;
            }
            for a in &b.addrs {
                sw.addr_add(&b.name, *a)?;
            }
            if let Some(mtu) = b.mtu {
                sw.set_mtu(&b.name, mtu.into())?;
            }
            if b.rp_filter.is_some() || b.redirects.is_some() {
                sw.set_policy(&b.name, b.rp_filter, b.redirects)?;
            }
        }
        for p in &state.ports {
            let port = Box::new(MemoryPort::stand_in(&p.name, p.kind));
            sw.add_port(port, p.master.as_deref())
                .map_err(|rejected| rejected.error)?;
        }
        for (mac, port) in &state.fdb {
            sw.fdb_add(*mac, port)?;
        }
        for (dst, gateway, dev) in &state.routes {
            let bridge = sw.existing_bridge(dev)?;
            let next_hop = NextHop {
                bridge,
                gateway: *gateway,
            };
            sw.router.insert_route(*dst, next_hop)?;
        }
        for (ip, mac, dev) in &state.neighbors {
            sw.neigh_add(*ip, *mac, dev)?;
        }
        for r in &state.nat {
            sw.router.nat.number_next_rule(r.id);
            sw.nat_add(
                r.action.clone(),
                r.src,
                &r.bridge,
                Some(r.ports),
                r.filtering,
            )?;
        }
        Ok(sw)
    }

    /// What the control plane configured (see [`RunningState`]). With big
    /// route tables, take [`Switch::running_snapshot`] on the forwarding
    /// thread and finish it elsewhere.
    pub fn running_state(&self) -> RunningState {
        self.running_snapshot().finish()
    }

    /// The part of [`Switch::running_state`] that must be read here: a
    /// copy of the tables, quick to take (3 to 10 ms for a million routes,
    /// against 60 ms to list them).
    pub fn running_snapshot(&self) -> RunningSnapshot {
        let bridges = self
            .bridges
            .iter()
            .enumerate()
            .filter_map(|(i, b)| Some((i as BridgeId, b.as_ref()?)))
            .map(|(id, b)| {
                let iface = self.router.iface(id);
                BridgeState {
                    name: b.name.clone(),
                    ageing_time: b.ageing_time,
                    mtu: iface.map(|i| i.mtu),
                    rp_filter: iface.map(|i| i.rp_filter),
                    redirects: iface.map(|i| i.redirects),
                    addrs: iface.map(|i| i.addrs.clone()).unwrap_or_default(),
                }
            })
            .collect();
        let ports = self
            .ports
            .iter()
            .flatten()
            .map(|s| PortState {
                name: s.port.name().to_string(),
                kind: s.port.kind(),
                master: s.bridge.map(|b| self.bridge_name(b).to_string()),
            })
            .collect();
        let mut fdb: Vec<_> = self
            .fdb
            .entries()
            .filter(|(_, _, e)| e.is_static)
            .map(|(b, mac, e)| (b, mac, self.port_name(e.port).to_string()))
            .collect();
        fdb.sort_by_key(|(b, mac, _)| (*b, *mac));
        let connected = self
            .router
            .ifaces()
            .flat_map(|(b, i)| i.addrs.iter().map(move |a| (a.network(), a.len, b)))
            .collect();
        let mut neighbors: Vec<_> = self
            .router
            .arp
            .entries()
            .filter(|(_, _, n)| n.state == NeighState::Permanent)
            .map(|(b, ip, n)| (b, ip, n.mac))
            .collect();
        neighbors.sort_by_key(|(b, ip, _)| (*b, *ip));
        let nat = self
            .router
            .nat
            .rules()
            .iter()
            .map(|r| NatRuleState {
                id: r.id,
                action: r.action.clone(),
                src: r.src,
                bridge: self.bridge_name(r.bridge).to_string(),
                ports: r.ports,
                filtering: r.filtering,
            })
            .collect();
        let state = RunningState {
            config: self.config.clone(),
            bridges,
            ports,
            fdb: fdb.into_iter().map(|(_, mac, p)| (mac, p)).collect(),
            routes: Vec::new(),
            neighbors: neighbors
                .into_iter()
                .map(|(b, ip, mac)| (ip, mac, self.bridge_name(b).to_string()))
                .collect(),
            nat,
        };
        RunningSnapshot {
            state,
            routes: self.router.fib().route_list(),
            next_hops: self.router.next_hops().to_vec(),
            bridge_names: self
                .bridges
                .iter()
                .map(|b| b.as_ref().map(|b| b.name.clone()))
                .collect(),
            connected,
        }
    }
}

/// The running state as copied on the forwarding thread, routes still in
/// the FIB's form; [`RunningSnapshot::finish`] makes the list.
pub struct RunningSnapshot {
    state: RunningState,
    routes: crate::ip4::RouteList,
    next_hops: Vec<crate::ip4::NextHop>,
    bridge_names: Vec<Option<String>>,
    /// Connected subnets: network, length, bridge.
    connected: std::collections::HashSet<(Ipv4Addr, u8, BridgeId)>,
}

impl RunningSnapshot {
    /// The static routes (connected ones left out), named.
    pub fn finish(mut self) -> RunningState {
        let name = |b: BridgeId| name_at(&self.bridge_names, usize::from(b)).unwrap_or("?");
        let mut routes = Vec::with_capacity(self.routes.len());
        for (prefix, len, nh_id) in self.routes.iter() {
            let nh = self.next_hops[nh_id as usize];
            if nh.gateway.is_none() && self.connected.contains(&(prefix, len, nh.bridge)) {
                continue;
            }
            let dst = Ipv4Net { addr: prefix, len };
            routes.push((dst, nh.gateway, name(nh.bridge).to_string()));
        }
        self.state.routes = routes;
        self.state
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

/// Records the L2 stage of a traced frame: learning and where it goes.
#[cold]
#[allow(clippy::too_many_arguments)]
fn trace_l2(
    tr: &mut Tracer,
    bridges: &[Option<Bridge>],
    bridge: BridgeId,
    eth: &[u8],
    rx: PortId,
    learned: Option<Learn>,
    decision: L2Decision,
) {
    if eth.len() < 14 {
        return;
    }
    let src = Mac(eth[6..12].try_into().expect("6 bytes"));
    let dst = Mac(eth[..6].try_into().expect("6 bytes"));
    if !matches!(
        decision,
        L2Decision::Drop(DropReason::InvalidSrcMac | DropReason::Runt)
    ) {
        let learned = match learned {
            Some(Learn::New) => Learned::New,
            Some(Learn::Refreshed) => Learned::Refreshed,
            Some(Learn::Moved) => Learned::Moved,
            Some(Learn::Static) => Learned::Static,
            Some(Learn::Full) => Learned::TableFull,
            None => Learned::NotLearned,
        };
        tr.record(Event::Learn {
            mac: src,
            port: rx,
            learned,
        });
    }
    let members = bridges
        .get(usize::from(bridge))
        .and_then(Option::as_ref)
        .map_or(&[][..], |b| &b.members[..]);
    match decision {
        L2Decision::Forward(q) => {
            tr.record(Event::L2 {
                dst,
                out: L2Out::Port(q),
            });
            tr.record(Event::Tx { port: q });
        }
        L2Decision::Flood => trace_flood(tr, dst, members, rx),
        L2Decision::Router => tr.record(Event::L2 {
            dst,
            out: L2Out::Router,
        }),
        L2Decision::Drop(_) => {}
    }
}

/// Records a flood to every member but `rx`.
#[cold]
fn trace_flood(tr: &mut Tracer, dst: Mac, members: &[PortId], rx: PortId) {
    let out: Vec<PortId> = members.iter().copied().filter(|&q| q != rx).collect();
    tr.record(Event::L2 {
        dst,
        out: L2Out::Flood(out.len() as u16),
    });
    for q in out {
        tr.record(Event::Tx { port: q });
    }
}

/// The FDB as copied on the forwarding thread.
pub struct FdbSnapshot {
    entries: Vec<(BridgeId, Mac, crate::l2::FdbEntry)>,
    ports: Vec<Option<String>>,
    bridges: Vec<Option<String>>,
    now: u32,
}

impl FdbSnapshot {
    /// The rows, sorted by bridge then MAC.
    pub fn finish(mut self) -> Vec<FdbRow> {
        self.entries.sort_unstable_by_key(|(b, m, _)| (*b, *m));
        let name =
            |names: &[Option<String>], i: usize| name_at(names, i).unwrap_or("?").to_string();
        self.entries
            .iter()
            .map(|&(b, mac, e)| FdbRow {
                mac,
                port: name(&self.ports, usize::from(e.port)),
                bridge: name(&self.bridges, usize::from(b)),
                age: (!e.is_static).then(|| self.now.saturating_sub(e.last_seen)),
                is_static: e.is_static,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::memory::{with_vnet_hdr, MemoryPort};

    /// A later fragment (offset 8 bytes) of a UDP datagram from 10.1.0.2 to
    /// 10.2.0.2, in a frame to `router`.
    fn later_fragment(router: Mac) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&router.0);
        f.extend_from_slice(&[2, 0, 0, 0, 1, 2]);
        f.extend_from_slice(&[0x08, 0x00]);
        let mut ip = vec![0u8; 48];
        crate::wire::ipv4::emit_header(
            &mut ip,
            48,
            7,
            64,
            17,
            "10.1.0.2".parse().unwrap(),
            "10.2.0.2".parse().unwrap(),
        );
        // Fragment offset 1 (8 bytes), last fragment; checksum again.
        ip[6..8].copy_from_slice(&1u16.to_be_bytes());
        ip[10..12].fill(0);
        let sum = crate::wire::checksum::checksum(&ip[..20]);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
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
        sw.fdb_add("02:00:00:00:00:09".parse().unwrap(), "p1")
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
        // And a change to the model is not the running switch's.
        model.nat_del(3).unwrap();
        model.del_port("p1").unwrap();
        assert_eq!(sorted(sw.running_state()), sorted(running));
    }
}
