//! `patchbay apply`: makes the daemon match a config file, all or nothing.
//!
//! The file is checked whole ([`config::parse`]) and compared with what the
//! daemon reports of itself ([`Switch::running_state`]); the difference
//! becomes a list of [`Step`]s. Ports to add are opened first, on the
//! caller's thread; then the steps run as one job on the forwarding thread,
//! between two batches, so no packet ever sees half an apply. Should a step
//! fail anyway, the steps already taken are undone in reverse before the job
//! ends. Only what the file changes is touched: FDB entries, ARP entries and
//! NAT sessions learned from the wire stay unless the change removes what
//! they depend on (a port, a bridge, an address, a NAT rule).
//!
//! A dry run (`patchbay apply FILE check`) is the same plan, then the same
//! commit on a model of the running switch ([`Switch::model`]) instead of
//! the switch itself, its new ports checked as opening them would check
//! them but not opened: it refuses what the apply would refuse, with the
//! same error, and changes nothing.

mod plan;

pub use plan::{plan, Plan};

use crate::config::{self, ConfigError, Parsed};
use patchbay_dataplane::ip4::RpFilter;
use patchbay_dataplane::ip6::{Ra, RaChange};
use patchbay_dataplane::l2::vlan::{PortVlans, VlanMembership};
use patchbay_dataplane::pipeline::{
    BridgeState, NatRuleState, PortState, RunningState, Switch, SwitchConfig,
};
use patchbay_dataplane::port::memory::MemoryPort;
use patchbay_dataplane::port::{self, Port, PortKind, PortOptions};
use patchbay_dataplane::wire::Mac;
use patchbay_dataplane::wire::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Ports opened for an apply, or taken out of the switch by it, by name and
/// kind.
pub type OpenPorts = HashMap<(String, PortKind), Box<dyn Port>>;

/// How many things of one kind an apply adds, removes and changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
}

impl Counts {
    fn total(&self) -> usize {
        self.added + self.removed + self.changed
    }
}

/// What an apply did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Steps taken; 0 when the daemon already matched the file.
    pub changes: usize,
    pub bridges: Counts,
    pub ports: Counts,
    pub addresses: Counts,
    pub fdb: Counts,
    pub routes: Counts,
    pub neighbors: Counts,
    pub nat: Counts,
    /// DHCP servers (changed by the control plane once the switch's part
    /// is done).
    #[serde(default)]
    pub dhcp: Counts,
    pub timeouts_changed: bool,
    /// Nothing was changed: only checked and compared.
    pub dry_run: bool,
    /// How long the forwarding thread spent making the changes, in
    /// microseconds: the pause packets saw (they wait in the rings).
    #[serde(default)]
    pub paused_us: u64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.changes == 0 {
            return write!(f, "no changes");
        }
        let verb = if self.dry_run { "would make" } else { "made" };
        let s = if self.changes == 1 { "" } else { "s" };
        write!(f, "{verb} {} change{s}:", self.changes)?;
        let mut parts = Vec::new();
        for (what, c) in [
            ("bridges", self.bridges),
            ("ports", self.ports),
            ("addresses", self.addresses),
            ("fdb", self.fdb),
            ("routes", self.routes),
            ("neighbors", self.neighbors),
            ("nat", self.nat),
            ("dhcp", self.dhcp),
        ] {
            if c.total() > 0 {
                parts.push(format!("{what} +{} -{} ~{}", c.added, c.removed, c.changed));
            }
        }
        if self.timeouts_changed {
            parts.push("timeouts".to_string());
        }
        if !self.dry_run {
            parts.push(format!(
                "forwarding paused {:.1} ms",
                self.paused_us as f64 / 1000.0
            ));
        }
        write!(f, " {}", parts.join("; "))
    }
}

/// One change to the running state. Each has an inverse, for undoing.
#[derive(Debug, Clone)]
pub enum Step {
    NatDel(NatRuleState),
    NatAdd(NatRuleState),
    NeighDel(IpAddr, Mac, String),
    NeighAdd {
        ip: IpAddr,
        mac: Mac,
        dev: String,
        old: Option<Mac>,
    },
    FdbDel(Mac, String, Option<u16>),
    FdbAdd(Mac, String, Option<u16>),
    RouteDel(Ipv4Net, Option<Ipv4Addr>, String),
    RouteAdd {
        dst: Ipv4Net,
        via: Option<Ipv4Addr>,
        dev: String,
        old: Option<(Option<Ipv4Addr>, String)>,
    },
    Route6Del(Ipv6Net, Option<Ipv6Addr>, String),
    /// Adds or replaces an IPv6 route.
    Route6Add {
        dst: Ipv6Net,
        via: Option<Ipv6Addr>,
        dev: String,
    },
    PortDel(PortState),
    PortAdd(PortState),
    Master {
        port: String,
        from: Option<String>,
        to: Option<String>,
    },
    AddrDel(String, Ipv4Net),
    AddrAdd(String, Ipv4Net),
    Addr6Del(String, Ipv6Net),
    Addr6Add(String, Ipv6Net),
    /// A bridge's router advertisements, from and to.
    Ra {
        bridge: String,
        from: Ra,
        to: Ra,
    },
    BridgeDel(String, u32),
    BridgeAdd(String, u32),
    /// A bridge's VLAN filtering and link-local group forwarding.
    BridgeVlan {
        bridge: String,
        vlan_filtering: bool,
        group_fwd_mask: u16,
    },
    /// A VLAN interface: `link add NAME type vlan link BRIDGE id N`.
    VlanIfaceAdd {
        name: String,
        link: String,
        id: u16,
    },
    /// A port's VLANs, set whole.
    PortVlans {
        port: String,
        to: Vec<VlanMembership>,
    },
    Ageing {
        bridge: String,
        from: u32,
        to: u32,
    },
    Mtu {
        bridge: String,
        from: u16,
        to: u16,
    },
    Policy {
        bridge: String,
        rp_filter: RpFilter,
        redirects: bool,
    },
    Timeouts {
        from: Box<SwitchConfig>,
        to: Box<SwitchConfig>,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::NatDel(r) => write!(f, "nat rule {} del", r.id),
            Step::NatAdd(r) => write!(f, "nat add {:?} on {}", r.action, r.bridge),
            Step::NeighDel(ip, _, dev) => write!(f, "neigh del {ip} dev {dev}"),
            Step::NeighAdd { ip, mac, dev, .. } => {
                write!(f, "neigh add {ip} lladdr {mac} dev {dev}")
            }
            Step::FdbDel(mac, dev, vlan) => {
                write!(f, "fdb del {mac} dev {dev}{}", vlan_words(vlan))
            }
            Step::FdbAdd(mac, dev, vlan) => {
                write!(f, "fdb add {mac} dev {dev}{}", vlan_words(vlan))
            }
            Step::RouteDel(dst, ..) => write!(f, "route del {dst}"),
            Step::RouteAdd { dst, via, dev, .. } => match via {
                Some(via) => write!(f, "route add {dst} via {via} dev {dev}"),
                None => write!(f, "route add {dst} dev {dev}"),
            },
            Step::Route6Del(dst, ..) => write!(f, "route del {dst}"),
            Step::Route6Add { dst, via, dev } => match via {
                Some(via) => write!(f, "route add {dst} via {via} dev {dev}"),
                None => write!(f, "route add {dst} dev {dev}"),
            },
            Step::PortDel(p) => write!(f, "link del {}", p.name),
            Step::PortAdd(p) => write!(f, "link add {} type {}", p.name, p.kind.name()),
            Step::Master { port, to, .. } => match to {
                Some(b) => write!(f, "link set {port} master {b}"),
                None => write!(f, "link set {port} nomaster"),
            },
            Step::AddrDel(dev, a) => write!(f, "addr del {a} dev {dev}"),
            Step::AddrAdd(dev, a) => write!(f, "addr add {a} dev {dev}"),
            Step::Addr6Del(dev, a) => write!(f, "addr del {a} dev {dev}"),
            Step::Addr6Add(dev, a) => write!(f, "addr add {a} dev {dev}"),
            Step::Ra { bridge, to, .. } => write!(
                f,
                "link set {bridge} ra {} ra_lifetime {}",
                if to.on { "on" } else { "off" },
                to.lifetime
            ),
            Step::BridgeDel(name, _) => write!(f, "link del {name}"),
            Step::BridgeAdd(name, _) => write!(f, "link add {name} type bridge"),
            Step::BridgeVlan {
                bridge,
                vlan_filtering,
                group_fwd_mask,
            } => write!(
                f,
                "link set {bridge} vlan_filtering {} group_fwd_mask {group_fwd_mask:#x}",
                u8::from(*vlan_filtering)
            ),
            Step::VlanIfaceAdd { name, link, id } => {
                write!(f, "link add {name} type vlan link {link} id {id}")
            }
            Step::PortVlans { port, to } => {
                write!(f, "vlan set dev {port}")?;
                for v in to {
                    write!(f, " {}", crate::config::vlan_words(v))?;
                }
                Ok(())
            }
            Step::Ageing { bridge, to, .. } => write!(f, "link set {bridge} ageing_time {to}"),
            Step::Mtu { bridge, to, .. } => write!(f, "link set {bridge} mtu {to}"),
            Step::Policy {
                bridge,
                rp_filter,
                redirects,
            } => write!(
                f,
                "link set {bridge} rp_filter {rp_filter} redirects {}",
                if *redirects { "on" } else { "off" }
            ),
            Step::Timeouts { .. } => write!(f, "timeouts"),
        }
    }
}

/// ` vlan N`, or nothing.
fn vlan_words(vlan: &Option<u16>) -> String {
    vlan.map(|v| format!(" vlan {v}")).unwrap_or_default()
}

impl Step {
    /// Carries the step out. Ports to add are taken from `ports`, deleted
    /// ones are put there (by name and kind: a port whose kind changes is
    /// two ports).
    fn run(&mut self, sw: &mut Switch, ports: &mut OpenPorts) -> Result<(), String> {
        let r = match self {
            Step::NatDel(r) => sw.nat_del(r.id),
            Step::NatAdd(r) => sw
                .nat_add(
                    r.action.clone(),
                    r.src,
                    &r.bridge,
                    Some(r.ports),
                    r.filtering,
                )
                .map(|id| r.id = id),
            Step::NeighDel(ip, _, dev) => sw.neigh_del(*ip, dev),
            Step::NeighAdd { ip, mac, dev, .. } => sw.neigh_add(*ip, *mac, dev),
            Step::FdbDel(mac, dev, vlan) => sw.fdb_del(*mac, dev, *vlan),
            Step::FdbAdd(mac, dev, vlan) => sw.fdb_add(*mac, dev, *vlan),
            Step::RouteDel(dst, ..) => sw.route_del(IpNet::V4(*dst)),
            Step::RouteAdd { dst, via, dev, .. } => sw.route4_add(*dst, *via, Some(dev)),
            Step::Route6Del(dst, ..) => sw.route6_del(*dst),
            Step::Route6Add { dst, via, dev } => sw.route6_add(*dst, *via, Some(dev)),
            Step::PortDel(p) => sw.del_port(&p.name).map(|port| {
                ports.insert((p.name.clone(), port.kind()), port);
            }),
            Step::PortAdd(p) => {
                let Some(port) = ports.remove(&(p.name.clone(), p.kind)) else {
                    return Err(format!("port {} was not opened", p.name));
                };
                match sw.add_port(port, p.master.as_deref()) {
                    Ok(_) => Ok(()),
                    Err(rejected) => {
                        let port = rejected.port;
                        ports.insert((p.name.clone(), port.kind()), port);
                        Err(rejected.error)
                    }
                }
            }
            Step::Master { port, to, .. } => sw.set_master(port, to.as_deref()),
            Step::AddrDel(dev, a) => sw.addr4_del(dev, *a),
            Step::AddrAdd(dev, a) => sw.addr4_add(dev, *a),
            Step::Addr6Del(dev, a) => sw.addr6_del(dev, *a),
            Step::Addr6Add(dev, a) => sw.addr6_add(dev, *a),
            Step::Ra { bridge, to, .. } => sw.set_ra(bridge, RaChange::to(to)),
            Step::BridgeDel(name, _) => sw.del_bridge(name),
            Step::BridgeAdd(name, ageing) => sw.add_bridge(name).and_then(|_| {
                if sw.config().ageing_time == *ageing {
                    Ok(())
                } else {
                    sw.set_ageing(name, *ageing)
                }
            }),
            Step::Ageing { bridge, to, .. } => sw.set_ageing(bridge, *to),
            Step::BridgeVlan {
                bridge,
                vlan_filtering,
                group_fwd_mask,
            } => sw
                .set_vlan_filtering(bridge, *vlan_filtering)
                .and_then(|()| sw.set_group_fwd_mask(bridge, *group_fwd_mask)),
            Step::PortVlans { port, to } => sw.set_port_vlans(port, to),
            Step::VlanIfaceAdd { name, link, id } => sw.add_vlan_iface(name, link, *id).map(drop),
            Step::Mtu { bridge, to, .. } => sw.set_mtu(bridge, u32::from(*to)),
            Step::Policy {
                bridge,
                rp_filter,
                redirects,
            } => sw.set_policy(bridge, Some(*rp_filter), Some(*redirects)),
            Step::Timeouts { to, .. } => sw.set_timeouts(
                to.ageing_time,
                to.arp_reachable_secs,
                to.arp_stale_secs,
                to.nat_timeouts.clone(),
            ),
        };
        r.map_err(|e| e.to_string())
    }
}

/// Opens the ports a plan adds with `open` ([`port::open`], or for a dry
/// run [`port::check`] and a stand-in), on the calling thread (the kernel
/// can be slow to set up a ring). All or none: on an error the ones opened
/// are closed.
pub fn open_ports(
    file: &str,
    plan: &Plan,
    want: &Parsed,
    open: impl Fn(&PortState) -> Result<Box<dyn Port>, port::PortError>,
) -> Result<OpenPorts, ConfigError> {
    let mut opened = HashMap::new();
    for step in &plan.steps {
        if let Step::PortAdd(p) = step {
            let port = open(p).map_err(|e| ConfigError {
                file: file.to_string(),
                line: want.port_lines.get(&p.name).copied().unwrap_or(0),
                // The error names the port already.
                message: e.to_string(),
            })?;
            opened.insert((p.name.clone(), port.kind()), port);
        }
    }
    Ok(opened)
}

/// The kind of port a config's port is opened as (memory ports are never
/// in a config: AF_PACKET).
fn port_kind(p: &PortState) -> PortKind {
    match p.kind {
        PortKind::Memory => PortKind::Afpacket,
        k => k,
    }
}

/// Opens a port as a config describes it: a VXLAN port with its settings,
/// flood list and static remote MACs.
pub fn open_port(p: &PortState, opts: &PortOptions) -> Result<Box<dyn Port>, port::PortError> {
    let Some(v) = &p.vxlan else {
        return port::open(port_kind(p), &p.name, opts);
    };
    let mut vx = port::vxlan::VxlanPort::open(&p.name, v.config.clone())?;
    for &vtep in &v.flood {
        vx.flood_add(vtep);
    }
    for &(mac, vtep) in &v.statics {
        vx.remote_add(mac, vtep);
    }
    Ok(Box::new(vx))
}

/// What [`execute`] did.
pub struct Outcome {
    /// `Err` names the step that failed; then nothing was changed.
    pub result: Result<(), String>,
    /// Ports to close (those deleted, or those opened for a plan that
    /// failed); close them off the forwarding thread.
    pub ports: Vec<Box<dyn Port>>,
    /// How long it took.
    pub elapsed: std::time::Duration,
}

/// Carries out a plan on the switch, or none of it: should a step fail,
/// the switch is brought back to `before` (the state the plan was made
/// from) by a plan from where it stands to there.
pub fn execute(
    sw: &mut Switch,
    steps: Vec<Step>,
    ports: OpenPorts,
    before: &RunningState,
) -> Outcome {
    let start = std::time::Instant::now();
    // The route lookup structure is compiled once, after the last step
    // (or the undo): thousands of route changes pause forwarding for one
    // compile of the regions they touch, not one each.
    let (result, ports) = sw.route_batch(|sw| run_steps(sw, steps, ports, before));
    Outcome {
        result,
        ports,
        elapsed: start.elapsed(),
    }
}

/// The steps, and on a failure the undo back to `before`.
fn run_steps(
    sw: &mut Switch,
    steps: Vec<Step>,
    mut ports: OpenPorts,
    before: &RunningState,
) -> (Result<(), String>, Vec<Box<dyn Port>>) {
    let mut failed = None;
    for mut step in steps {
        if let Err(e) = step.run(sw, &mut ports) {
            failed = Some(format!("{step}: {e}"));
            break;
        }
    }
    let result = match failed {
        None => Ok(()),
        Some(why) => {
            let back = Parsed {
                state: before.clone(),
                rx_ring_mib: 0,
                limits_line: None,
                port_lines: HashMap::new(),
                dhcp: Vec::new(),
            };
            let mut undo_failed = 0;
            match plan("undo", &sw.running_state(), 0, &back) {
                Ok(undo) => {
                    for mut step in undo.steps {
                        if let Err(e) = step.run(sw, &mut ports) {
                            log::error!("apply: undoing, '{step}' failed: {e}");
                            undo_failed += 1;
                        }
                    }
                }
                Err(e) => {
                    log::error!("apply: cannot undo: {e}");
                    undo_failed += 1;
                }
            }
            Err(if undo_failed == 0 {
                format!("{why}; nothing was changed")
            } else {
                format!(
                    "{why}; undoing it, {undo_failed} steps failed (see the log): the daemon \
                     differs from the file and from before"
                )
            })
        }
    };
    (result, ports.into_values().collect())
}

/// Compares a checked config with a running state and (unless `dry_run`)
/// applies it: the steps go to `on_switch`, which runs them on the running
/// switch.
///
/// A dry run decides the same way without changing anything: the ports
/// the plan adds are checked as opening them checks them (but are not
/// opened), and the steps run with the same code on a model of the running
/// switch ([`Switch::model`]), so a file is refused by `check` for what
/// `apply` would refuse it, with the same error.
pub fn apply_parsed(
    file: &str,
    want: &Parsed,
    running: RunningState,
    opts: &PortOptions,
    dry_run: bool,
    on_switch: impl FnOnce(Vec<Step>, OpenPorts, RunningState) -> Outcome,
) -> Result<Summary, ApplyError> {
    let plan = plan(file, &running, opts.rx_ring_mib as u32, want)?;
    let mut summary = plan.summary.clone();
    summary.dry_run = dry_run;
    if plan.steps.is_empty() {
        return Ok(summary);
    }
    if dry_run {
        let stand_ins = open_ports(file, &plan, want, |p| {
            let kind = port_kind(p);
            port::check(kind, &p.name)?;
            Ok(Box::new(MemoryPort::stand_in(&p.name, kind)))
        })?;
        let mut model = Switch::model(&running).map_err(|e| {
            ApplyError::Failed(format!("cannot model the running switch to check on: {e}"))
        })?;
        execute(&mut model, plan.steps, stand_ins, &running)
            .result
            .map_err(ApplyError::Failed)?;
        return Ok(summary);
    }
    let opened = open_ports(file, &plan, want, |p| open_port(p, opts))?;
    let outcome = on_switch(plan.steps, opened, running);
    drop(outcome.ports);
    outcome.result.map_err(ApplyError::Failed)?;
    summary.paused_us = outcome.elapsed.as_micros() as u64;
    log::info!(
        op = "apply", file, changes = summary.changes, paused_us = summary.paused_us;
        "apply {file}: {summary}"
    );
    Ok(summary)
}

/// Why an apply changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Failed(String),
}

/// Parses a config text (see [`config::parse`]).
pub fn parse(file: &str, text: &str) -> Result<Parsed, ConfigError> {
    config::parse(file, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use patchbay_dataplane::nat::{Filtering, NatAction};
    use patchbay_dataplane::pipeline::SwitchConfig;
    use plan::nat_rules_kept;

    const BASE: &str = r#"
[[bridge]]
name = "lan"
addresses = ["10.1.0.1/24"]

[[bridge]]
name = "other"
addresses = ["10.3.0.1/24"]
ageing_time = 60

[[route]]
dst = "10.9.0.0/16"
via = "10.3.0.2"

[[neigh]]
ip = "10.3.0.2"
mac = "02:00:00:00:03:02"
dev = "other"

[[nat]]
kind = "masquerade"
src = "10.1.0.0/24"
out = "other"
"#;

    /// Applies `text` to `sw` the way the daemon does.
    fn apply(sw: &mut Switch, text: &str) -> Result<Summary, ApplyError> {
        let want = config::parse("t.toml", text)?;
        let running = sw.running_state();
        let opts = PortOptions::default();
        apply_parsed(
            "t.toml",
            &want,
            running,
            &opts,
            false,
            |steps, ports, before| execute(sw, steps, ports, &before),
        )
    }

    /// Checks `text` against `sw` the way the daemon does (`apply FILE
    /// check`): nothing may reach the switch.
    fn check(sw: &Switch, text: &str) -> Result<Summary, ApplyError> {
        let want = config::parse("t.toml", text)?;
        let opts = PortOptions::default();
        apply_parsed(
            "t.toml",
            &want,
            sw.running_state(),
            &opts,
            true,
            |_, _, _| unreachable!("a check changes nothing"),
        )
    }

    /// The running state, NAT rule ids aside (a file has none).
    fn state(sw: &Switch) -> String {
        let mut s = sw.running_state();
        s.nat.iter_mut().for_each(|r| r.id = 0);
        norm(s)
    }

    /// A state as text, its routes in order (a file lists them as written,
    /// the switch as its table holds them).
    fn norm(mut s: RunningState) -> String {
        s.routes.sort();
        format!("{s:?}")
    }

    #[test]
    fn after_an_apply_the_switch_is_the_file() {
        let mut sw = Switch::new(SwitchConfig::default(), None);
        let s = apply(&mut sw, BASE).unwrap();
        assert_eq!(s.routes.added, 1);
        assert_eq!(s.bridges.added, 2);
        let want = config::parse("t.toml", BASE).unwrap().state;
        assert_eq!(state(&sw), norm(want));
        assert_eq!(apply(&mut sw, BASE).unwrap().changes, 0);
        // Everything goes again with an empty file, but br0.
        let s = apply(&mut sw, "").unwrap();
        assert_eq!(
            (s.bridges.removed, s.nat.removed, s.routes.removed),
            (2, 1, 1)
        );
        let empty = config::parse("t.toml", "").unwrap().state;
        assert_eq!(state(&sw), norm(empty));
    }

    #[test]
    fn a_step_that_fails_undoes_the_ones_before_it() {
        let mut sw = Switch::new(SwitchConfig::default(), None);
        apply(&mut sw, BASE).unwrap();
        let before = state(&sw);
        // Each gateway is on a connected subnet, so the file is fine; but
        // once the /25 is in, 10.3.0.2 is reached through a gateway, which
        // the router refuses for the second route.
        let text = format!(
            "{BASE}\n[[route]]\ndst = \"10.3.0.0/25\"\nvia = \"10.3.0.100\"\n\
             [[route]]\ndst = \"10.50.0.0/16\"\nvia = \"10.3.0.2\"\n\
             [[bridge]]\nname = \"new\"\n"
        );
        let text = text.replace("ageing_time = 60", "ageing_time = 90");
        let err = apply(&mut sw, &text).unwrap_err().to_string();
        assert!(
            err.contains("route add 10.50.0.0/16") && err.contains("nothing was changed"),
            "{err}"
        );
        assert_eq!(state(&sw), before, "undone");
    }

    #[test]
    fn a_check_refuses_what_apply_refuses_with_the_same_error() {
        let mut sw = Switch::new(SwitchConfig::default(), None);
        apply(&mut sw, BASE).unwrap();
        let before = state(&sw);
        // The router refuses the second route once the first is in (see
        // above); a port that is not there cannot be opened.
        let route = format!(
            "{BASE}\n[[route]]\ndst = \"10.3.0.0/25\"\nvia = \"10.3.0.100\"\n\
             [[route]]\ndst = \"10.50.0.0/16\"\nvia = \"10.3.0.2\"\n"
        );
        let port = format!("{BASE}\n[[port]]\nname = \"nosuch0\"\n");
        for text in [route, port] {
            let checked = check(&sw, &text).unwrap_err().to_string();
            assert_eq!(state(&sw), before, "checked: {checked}");
            let applied = apply(&mut sw, &text).unwrap_err().to_string();
            assert_eq!(checked, applied);
            assert_eq!(state(&sw), before, "applied: {applied}");
        }
        // What apply would do, it says, and does not do it.
        let more = format!("{BASE}\n[[bridge]]\nname = \"new\"\n");
        let s = check(&sw, &more).unwrap();
        assert!(s.dry_run && s.bridges.added == 1, "{s}");
        assert_eq!(state(&sw), before);
    }

    #[test]
    fn a_subnet_moves_between_bridges_and_back_on_undo() {
        let mut sw = Switch::new(SwitchConfig::default(), None);
        let two = BASE.replace(r#"["10.1.0.1/24"]"#, r#"["10.1.0.1/24", "10.5.0.1/24"]"#);
        apply(&mut sw, &two).unwrap();
        let before = state(&sw);
        // To another bridge that stays.
        let moved = BASE.replace(r#"["10.3.0.1/24"]"#, r#"["10.3.0.1/24", "10.5.0.1/24"]"#);
        apply(&mut sw, &moved).unwrap();
        let want = config::parse("t.toml", &moved).unwrap().state;
        assert_eq!(state(&sw), norm(want));
        // To a new bridge, in a file that fails later: undone, so the subnet
        // goes back before the new bridge goes.
        apply(&mut sw, &two).unwrap();
        let text = format!(
            "{BASE}\n[[bridge]]\nname = \"new\"\naddresses = [\"10.5.0.1/24\"]\n\
             [[route]]\ndst = \"10.3.0.0/25\"\nvia = \"10.3.0.100\"\n\
             [[route]]\ndst = \"10.50.0.0/16\"\nvia = \"10.3.0.2\"\n"
        );
        let err = apply(&mut sw, &text).unwrap_err().to_string();
        assert!(err.contains("nothing was changed"), "{err}");
        assert_eq!(state(&sw), before, "undone");
    }

    #[test]
    fn a_gateway_becomes_an_address_while_its_route_changes() {
        let mut sw = Switch::new(SwitchConfig::default(), None);
        let one = "[[bridge]]\nname = \"wan\"\naddresses = [\"10.3.0.1/24\"]\n\
                   [[route]]\ndst = \"10.9.0.0/16\"\nvia = \"10.3.0.2\"\n";
        apply(&mut sw, one).unwrap();
        let two = "[[bridge]]\nname = \"wan\"\naddresses = [\"10.3.0.1/24\", \"10.3.0.2/24\"]\n\
                   [[route]]\ndst = \"10.9.0.0/16\"\nvia = \"10.3.0.3\"\n";
        let s = apply(&mut sw, two).unwrap();
        assert_eq!((s.routes.changed, s.addresses.added), (1, 1));
        let want = config::parse("t.toml", two).unwrap().state;
        assert_eq!(state(&sw), norm(want));
        // And back (the address goes before the route comes back through it).
        apply(&mut sw, one).unwrap();
        let want = config::parse("t.toml", one).unwrap().state;
        assert_eq!(state(&sw), norm(want));
    }

    #[test]
    fn nat_rules_that_stay_keep_their_place_and_sessions() {
        let rule = |action: NatAction, f: Filtering| NatRuleState {
            id: 0,
            action,
            src: None,
            bridge: "wan".into(),
            ports: (1024, 65535),
            filtering: f,
        };
        let dnat = |port| NatAction::Dnat {
            proto: patchbay_dataplane::wire::IpProtocol::Tcp,
            dport: port,
            to_addr: "10.1.0.2".parse().unwrap(),
            to_port: 80,
        };
        let snat = |a: &str| NatAction::Snat {
            first: a.parse().unwrap(),
            last: a.parse().unwrap(),
        };
        let same = |a: &NatRuleState, b: &NatRuleState| a == b;
        let (ei, apd) = (Filtering::EndpointIndependent, Filtering::default());
        // The masquerade's filtering changes: the published port stays.
        let r = [rule(NatAction::Masquerade, apd), rule(dnat(8080), apd)];
        let w = [rule(NatAction::Masquerade, ei), rule(dnat(8080), apd)];
        assert_eq!(
            nat_rules_kept(&r, &w, same),
            (vec![false, true], vec![false, true])
        );
        // A source NAT rule in front of one that stays: the order decides
        // which matches, so the head is kept and the rest made again.
        let r = [rule(snat("192.0.2.1"), apd), rule(snat("192.0.2.2"), apd)];
        let w = [rule(snat("192.0.2.3"), apd), rule(snat("192.0.2.2"), apd)];
        assert_eq!(
            nat_rules_kept(&r, &w, same),
            (vec![false, false], vec![false, false])
        );
        // Behind it, it may stay.
        let w = [rule(snat("192.0.2.2"), apd), rule(snat("192.0.2.3"), apd)];
        assert_eq!(
            nat_rules_kept(&r, &w, same),
            (vec![false, true], vec![true, false])
        );
    }

    #[test]
    fn two_bridges_swap_subnets_in_one_apply() {
        let mut sw = Switch::new(SwitchConfig::default(), None);
        let base = BASE.replace("ageing_time = 60", "ageing_time = 60\nmtu = 1400")
            + "\n[[route]]\ndst = \"10.70.0.0/16\"\ndev = \"other\"\n";
        apply(&mut sw, &base).unwrap();
        // Each bridge loses its only address before it gets the other's:
        // its routes, neighbours and MTU must come back.
        let swapped = base
            .replace("10.1.0.1/24", "SWAP")
            .replace("10.3.0.1/24", "10.1.0.1/24")
            .replace("SWAP", "10.3.0.1/24");
        let s = apply(&mut sw, &swapped).unwrap();
        // The route out of 'other' is given again, not counted as new; the
        // one via 10.3.0.2 now leaves by 'lan'.
        assert_eq!((s.routes.added, s.routes.changed), (0, 1), "{s}");
        let want = config::parse("t.toml", &swapped).unwrap().state;
        assert_eq!(state(&sw), norm(want));
        assert_eq!(apply(&mut sw, &swapped).unwrap().changes, 0, "converged");
        // And back, with the MTU staying where it was.
        apply(&mut sw, &base).unwrap();
        let want = config::parse("t.toml", &base).unwrap().state;
        assert_eq!(state(&sw), norm(want));
        assert_eq!(apply(&mut sw, &base).unwrap().changes, 0, "converged");
    }

    #[test]
    fn a_bridge_whose_addresses_are_replaced_keeps_its_routes_and_rules() {
        let mut sw = Switch::new(SwitchConfig::default(), None);
        apply(&mut sw, BASE).unwrap();
        sw.set_mtu("other", 1400).unwrap();
        let moved = BASE
            .replace("10.3.0.1/24", "10.3.0.254/24")
            .replace("ageing_time = 60", "ageing_time = 60\nmtu = 1400");
        let s = apply(&mut sw, &moved).unwrap();
        assert_eq!((s.addresses.added, s.addresses.removed), (1, 1));
        let want = config::parse("t.toml", &moved).unwrap().state;
        assert_eq!(
            state(&sw),
            norm(want),
            "routes, neighbours, NAT and MTU kept"
        );
    }

    #[test]
    fn a_table_past_max_routes_is_refused_whole_and_names_the_limit() {
        let config = SwitchConfig {
            max_routes: 3,
            ..SwitchConfig::default()
        };
        let mut sw = Switch::new(config, None);
        let base = "[[bridge]]\nname = \"lan\"\naddresses = [\"10.0.1.1/24\"]\n";
        let routes = |n: usize| {
            (0..n)
                .map(|i| format!("[[route]]\ndst = \"10.{i}.0.0/16\"\nvia = \"10.0.1.2\"\n"))
                .collect::<String>()
        };
        // The connected route and two more fill it.
        apply(&mut sw, &(base.to_string() + &routes(2))).unwrap();
        let err = apply(&mut sw, &(base.to_string() + &routes(3)))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("routing table is full (3 routes; raise limits.max_routes")
                && err.contains("nothing was changed"),
            "{err}"
        );
        assert_eq!(
            sw.running_state().routes.len(),
            2,
            "the connected route aside"
        );
        // Saved, the limit comes back as it was set.
        assert!(config::to_toml(&sw.running_state(), 4).contains("max_routes = 3\n"));
    }

    #[test]
    fn limits_are_not_changed_by_apply() {
        let mut sw = Switch::new(SwitchConfig::default(), None);
        let err = apply(&mut sw, "[limits]\nnat_max = 10\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("t.toml:1:") && err.contains("restart"),
            "{err}"
        );
        // Without [limits], the running ones are kept.
        assert_eq!(
            apply(&mut sw, "[timeouts]\nnat_udp_secs = 900\n")
                .unwrap()
                .changes,
            1
        );
        assert_eq!(sw.config().nat_timeouts.udp, 900);
    }
}
