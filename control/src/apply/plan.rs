//! The plan of an apply: one diff per table, between the running state and
//! the file's, each putting its steps in the phase that keeps every step
//! valid.

use super::*;
use patchbay_dataplane::ip6::fib::is_link_local;
use patchbay_dataplane::ip6::Ra;

/// The difference between the running state and a file, as steps in an
/// order that keeps every step valid: removals (NAT rules, entries, routes,
/// ports, addresses, bridges) before additions (bridges, addresses, ports,
/// routes, entries, NAT rules).
#[derive(Debug, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub summary: Summary,
}

/// Compares a checked file with the running state. Table sizes are fixed at
/// start: a file whose `[limits]` differ is refused.
pub fn plan(
    file: &str,
    running: &RunningState,
    running_rx_ring_mib: u32,
    want: &Parsed,
) -> Result<Plan, ConfigError> {
    let (r, w) = (running, &want.state);
    if let Some(line) = want.limits_line {
        for (key, now, file_value) in [
            ("fdb_max", r.config.fdb_max, w.config.fdb_max),
            ("arp_max", r.config.arp_max, w.config.arp_max),
            ("nat_max", r.config.nat_max, w.config.nat_max),
            ("max_routes", r.config.max_routes, w.config.max_routes),
            (
                "rx_ring_mib",
                running_rx_ring_mib as usize,
                want.rx_ring_mib as usize,
            ),
        ] {
            if now != file_value {
                return Err(ConfigError {
                    file: file.to_string(),
                    line,
                    message: format!(
                        "limits.{key} = {file_value}, but the running daemon has {now}; table \
                         sizes are set when patchbayd starts (restart it with --config)"
                    ),
                });
            }
        }
    }
    // One diff per table, each putting its steps in their phases.
    let d = Diff::new(r, w);
    let (mut ph, mut summary) = (Phases::default(), Summary::default());
    let s = &mut summary;
    let unsettled = diff_ports(&d, &mut ph, s);
    diff_nat(&d, &mut ph, s);
    diff_neighbors(&d, &mut ph, s);
    diff_fdb(&d, &mut ph, s, &unsettled);
    diff_routes(&d, &mut ph, s);
    diff_routes6(&d, &mut ph, s);
    diff_bridges(&d, &mut ph, s);
    diff_timeouts(&d, &mut ph, s);
    let steps = ph.into_steps();
    summary.changes = steps.len();
    Ok(Plan { steps, summary })
}

/// The two states a plan compares, and what several tables' diffs need.
struct Diff<'a> {
    r: &'a RunningState,
    w: &'a RunningState,
    /// Each running subnet's bridge: a subnet is on one bridge at a time,
    /// and one that moves between bridges is added after it has left the
    /// other.
    r_subnets: HashMap<Ipv4Net, &'a str>,
    /// Bridges that stay but lose every address before they get their new
    /// ones (a swap of subnets): their router interface is made anew, so
    /// their routes, neighbours, MTU and policy must be given again.
    reset: HashSet<&'a str>,
}

impl<'a> Diff<'a> {
    fn new(r: &'a RunningState, w: &'a RunningState) -> Diff<'a> {
        let r_subnets: HashMap<Ipv4Net, &str> = r
            .bridges
            .iter()
            .flat_map(|b| b.addrs.iter().map(move |a| (a.subnet(), b.name.as_str())))
            .collect();
        let moves = |a: &Ipv4Net, to: &str| r_subnets.get(&a.subnet()).is_some_and(|&b| b != to);
        let reset: HashSet<&str> = r
            .bridges
            .iter()
            .filter(|rb| {
                let Some(wb) = w.bridges.iter().find(|wb| wb.name == rb.name) else {
                    return false;
                };
                !rb.addrs.is_empty()
                    && !wb.addrs.is_empty()
                    && rb.addrs.iter().all(|a| !wb.addrs.contains(a))
                    && wb.addrs.iter().all(|a| moves(a, &wb.name))
            })
            .map(|rb| rb.name.as_str())
            .collect();
        Diff {
            r,
            w,
            r_subnets,
            reset,
        }
    }

    /// Whether address `a` of bridge `to` is on a subnet another bridge has.
    fn moves(&self, a: &Ipv4Net, to: &str) -> bool {
        self.r_subnets.get(&a.subnet()).is_some_and(|&b| b != to)
    }
}

/// A plan's steps by phase: removals (NAT rules, entries, routes, ports,
/// addresses, bridges) before additions (bridges, addresses, ports, routes,
/// entries, NAT rules), so that every step is valid when it runs.
#[derive(Default)]
struct Phases {
    removals: Vec<Step>,
    port_dels: Vec<Step>,
    port_detaches: Vec<Step>,
    early_addr_adds: Vec<Step>,
    addr_dels: Vec<Step>,
    bridge_dels: Vec<Step>,
    timeouts: Vec<Step>,
    bridge_adds: Vec<Step>,
    vlan_iface_adds: Vec<Step>,
    addr_adds: Vec<Step>,
    port_adds: Vec<Step>,
    port_attaches: Vec<Step>,
    port_vlans: Vec<Step>,
    dev_routes: Vec<Step>,
    via_routes: Vec<Step>,
    neigh_adds: Vec<Step>,
    fdb_adds: Vec<Step>,
    nat_adds: Vec<Step>,
}

impl Phases {
    fn into_steps(self) -> Vec<Step> {
        [
            self.removals,
            self.port_dels,
            self.port_detaches,
            self.early_addr_adds,
            self.addr_dels,
            self.bridge_dels,
            self.timeouts,
            self.bridge_adds,
            self.vlan_iface_adds,
            self.addr_adds,
            self.port_adds,
            self.port_attaches,
            self.port_vlans,
            self.dev_routes,
            self.via_routes,
            self.neigh_adds,
            self.fdb_adds,
            self.nat_adds,
        ]
        .concat()
    }
}

/// Ports: which go, which come, which change bridge. Returns the ports whose
/// FDB entries go with them (deleted, made anew, moved).
fn diff_ports<'a>(d: &Diff<'a>, ph: &mut Phases, s: &mut Summary) -> HashSet<&'a str> {
    let (r, w) = (d.r, d.w);
    let r_ports: HashMap<&str, &PortState> = r.ports.iter().map(|p| (p.name.as_str(), p)).collect();
    let w_ports: HashMap<&str, &PortState> = w.ports.iter().map(|p| (p.name.as_str(), p)).collect();
    // Ports whose FDB entries go with them (deleted, recreated, moved).
    let mut unsettled: HashSet<&'a str> = HashSet::new();
    for rp in &r.ports {
        match w_ports.get(rp.name.as_str()) {
            None => {
                ph.port_dels.push(Step::PortDel(rp.clone()));
                unsettled.insert(&rp.name);
                s.ports.removed += 1;
            }
            // Another kind, or other VXLAN settings: a port made anew.
            Some(wp) if wp.kind != rp.kind || wp.vxlan != rp.vxlan => {
                ph.port_dels.push(Step::PortDel(rp.clone()));
                ph.port_adds.push(Step::PortAdd((*wp).clone()));
                unsettled.insert(&rp.name);
                s.ports.changed += 1;
            }
            Some(wp) if wp.master != rp.master => {
                if rp.master.is_some() {
                    ph.port_detaches.push(Step::Master {
                        port: rp.name.clone(),
                        from: rp.master.clone(),
                        to: None,
                    });
                }
                if wp.master.is_some() {
                    ph.port_attaches.push(Step::Master {
                        port: rp.name.clone(),
                        from: None,
                        to: wp.master.clone(),
                    });
                }
                unsettled.insert(&rp.name);
                s.ports.changed += 1;
            }
            Some(_) => {}
        }
    }
    for wp in &w.ports {
        if !r_ports.contains_key(wp.name.as_str()) {
            ph.port_adds.push(Step::PortAdd(wp.clone()));
            s.ports.added += 1;
        }
        // A port that joins a bridge starts in VLAN 1 (untagged, PVID);
        // one that stays keeps its VLANs.
        let had = match r_ports.get(wp.name.as_str()) {
            Some(rp) if !unsettled.contains(wp.name.as_str()) => rp.vlans.clone(),
            _ => PortVlans::default().iter().collect(),
        };
        if wp.master.is_some() && wp.vlans != had {
            ph.port_vlans.push(Step::PortVlans {
                port: wp.name.clone(),
                to: wp.vlans.clone(),
            });
            if r_ports.contains_key(wp.name.as_str()) && !unsettled.contains(wp.name.as_str()) {
                s.ports.changed += 1;
            }
        }
    }
    unsettled
}

/// NAT rules: those that stay keep their sessions (see [`nat_rules_kept`]).
fn diff_nat<'a>(d: &Diff<'a>, ph: &mut Phases, s: &mut Summary) {
    let (r, w) = (d.r, d.w);
    let same = |a: &NatRuleState, b: &NatRuleState| {
        a.action == b.action
            && a.src == b.src
            && a.bridge == b.bridge
            && a.ports == b.ports
            && a.filtering == b.filtering
    };
    let (kept_r, kept_w) = nat_rules_kept(&r.nat, &w.nat, same);
    for (rule, _) in r.nat.iter().zip(&kept_r).filter(|(_, k)| !**k) {
        ph.removals.push(Step::NatDel(rule.clone()));
        s.nat.removed += 1;
    }
    ph.nat_adds = w
        .nat
        .iter()
        .zip(&kept_w)
        .filter(|(_, k)| !**k)
        .map(|(rule, _)| Step::NatAdd(rule.clone()))
        .collect();
    s.nat.added += ph.nat_adds.len();
}

/// Permanent neighbours.
fn diff_neighbors<'a>(d: &Diff<'a>, ph: &mut Phases, s: &mut Summary) {
    let (r, w) = (d.r, d.w);
    let reset = &d.reset;
    // IPv4 and IPv6 alike; only IPv4's go with a remade interface.
    let both = |s: &'a RunningState| -> Vec<(IpAddr, Mac, &'a str)> {
        let v4 = s
            .neighbors
            .iter()
            .map(|(ip, m, d)| (IpAddr::V4(*ip), *m, d.as_str()));
        let v6 = s
            .neighbors6
            .iter()
            .map(|(ip, m, d)| (IpAddr::V6(*ip), *m, d.as_str()));
        v4.chain(v6).collect()
    };
    let (rn, wn) = (both(r), both(w));
    let r_neigh: HashMap<(IpAddr, &str), Mac> =
        rn.iter().map(|&(ip, mac, dev)| ((ip, dev), mac)).collect();
    let w_neigh: HashSet<(IpAddr, &str)> = wn.iter().map(|&(ip, _, dev)| (ip, dev)).collect();
    for &(ip, mac, dev) in &rn {
        if !w_neigh.contains(&(ip, dev)) {
            ph.removals.push(Step::NeighDel(ip, mac, dev.to_string()));
            s.neighbors.removed += 1;
        }
    }
    for &(ip, mac, dev) in &wn {
        let (ip, mac) = (&ip, &mac);
        let was = r_neigh.get(&(*ip, dev)).copied();
        let old = was.filter(|_| ip.is_ipv6() || !reset.contains(dev));
        if old == Some(*mac) {
            continue;
        }
        // Given again to a remade interface, as it was: no change to count.
        match was {
            Some(m) if m == *mac => {}
            Some(_) => s.neighbors.changed += 1,
            None => s.neighbors.added += 1,
        }
        ph.neigh_adds.push(Step::NeighAdd {
            ip: *ip,
            mac: *mac,
            dev: dev.to_string(),
            old,
        });
    }
}

/// Static FDB entries; those of `unsettled` ports are given again.
fn diff_fdb<'a>(d: &Diff<'a>, ph: &mut Phases, s: &mut Summary, unsettled: &HashSet<&'a str>) {
    let (r, w) = (d.r, d.w);
    let key = |(m, d, v): &'a (Mac, String, Option<u16>)| (*m, d.as_str(), *v);
    let r_fdb: HashSet<(Mac, &str, Option<u16>)> = r.fdb.iter().map(key).collect();
    let w_fdb: HashSet<(Mac, &str, Option<u16>)> = w.fdb.iter().map(key).collect();
    // A bridge whose VLAN filtering changes: its entries are given again.
    let refiltered = |dev: &str| {
        let filtering = |s: &RunningState| {
            let master = s.ports.iter().find(|p| p.name == dev)?.master.as_deref()?;
            Some(s.bridges.iter().find(|b| b.name == master)?.vlan_filtering)
        };
        filtering(r) != filtering(w)
    };
    for e in &r.fdb {
        let (mac, dev, vlan) = key(e);
        if !w_fdb.contains(&(mac, dev, vlan)) || unsettled.contains(dev) || refiltered(dev) {
            // Entries of a port that goes away go with it.
            if !unsettled.contains(dev) {
                ph.removals.push(Step::FdbDel(mac, dev.to_string(), vlan));
            }
            s.fdb.removed += 1;
        }
    }
    for e in &w.fdb {
        let (mac, dev, vlan) = key(e);
        if !r_fdb.contains(&(mac, dev, vlan)) || unsettled.contains(dev) || refiltered(dev) {
            ph.fdb_adds.push(Step::FdbAdd(mac, dev.to_string(), vlan));
            s.fdb.added += 1;
        }
    }
}

/// Static routes: routes out of a bridge before routes via a gateway.
fn diff_routes<'a>(d: &Diff<'a>, ph: &mut Phases, s: &mut Summary) {
    let (r, w) = (d.r, d.w);
    let reset = &d.reset;
    let r_routes: HashMap<Ipv4Net, (Option<Ipv4Addr>, &str)> = r
        .routes
        .iter()
        .map(|(dst, via, dev)| (*dst, (*via, dev.as_str())))
        .collect();
    let w_routes: HashSet<Ipv4Net> = w.routes.iter().map(|(dst, ..)| *dst).collect();
    for (dst, via, dev) in &r.routes {
        if !w_routes.contains(dst) {
            ph.removals.push(Step::RouteDel(*dst, *via, dev.clone()));
            s.routes.removed += 1;
        }
    }
    // Addresses the file adds: a route that changes and went through one
    // of them is taken out first (the address would be refused while a
    // route used it as gateway), and put back in its new form later.
    let r_addrs: HashSet<Ipv4Addr> = r
        .bridges
        .iter()
        .flat_map(|b| b.addrs.iter().map(|a| a.addr))
        .collect();
    let new_addrs: HashSet<Ipv4Addr> = w
        .bridges
        .iter()
        .flat_map(|b| b.addrs.iter().map(|a| a.addr))
        .filter(|a| !r_addrs.contains(a))
        .collect();
    for (dst, via, dev) in &w.routes {
        let was = r_routes.get(dst);
        let mut old = was.filter(|(_, d)| !reset.contains(d));
        if old == Some(&(*via, dev.as_str())) {
            continue;
        }
        if let Some((Some(gw), d)) =
            old.filter(|(gw, _)| gw.is_some_and(|g| new_addrs.contains(&g)))
        {
            ph.removals
                .push(Step::RouteDel(*dst, Some(*gw), d.to_string()));
            s.routes.changed += 1;
            old = None;
        } else if was == Some(&(*via, dev.as_str())) {
            // Given again to a remade interface, as it was: no change.
        } else if was.is_some() {
            s.routes.changed += 1;
        } else {
            s.routes.added += 1;
        }
        let step = Step::RouteAdd {
            dst: *dst,
            via: *via,
            dev: dev.clone(),
            old: old.map(|(v, d)| (*v, d.to_string())),
        };
        // Routes out of a bridge first: gateways may be reached through them.
        if via.is_none() {
            ph.dev_routes.push(step);
        } else {
            ph.via_routes.push(step);
        }
    }
}

/// IPv6 routes: those the file drops go first; then routes out of a bridge
/// before routes via a gateway (a global gateway is reached through one).
/// A route given anew replaces the old one.
fn diff_routes6<'a>(d: &Diff<'a>, ph: &mut Phases, s: &mut Summary) {
    let (r, w) = (d.r, d.w);
    let r_routes: HashMap<Ipv6Net, (Option<Ipv6Addr>, &str)> = r
        .routes6
        .iter()
        .map(|(dst, via, dev)| (*dst, (*via, dev.as_str())))
        .collect();
    let w_routes: HashSet<Ipv6Net> = w.routes6.iter().map(|(dst, ..)| *dst).collect();
    for (dst, via, dev) in &r.routes6 {
        if !w_routes.contains(dst) {
            ph.removals.push(Step::Route6Del(*dst, *via, dev.clone()));
            s.routes.removed += 1;
        }
    }
    for (dst, via, dev) in &w.routes6 {
        match r_routes.get(dst) {
            Some(was) if was == &(*via, dev.as_str()) => continue,
            Some(_) => s.routes.changed += 1,
            None => s.routes.added += 1,
        }
        let step = Step::Route6Add {
            dst: *dst,
            via: *via,
            dev: dev.clone(),
        };
        if via.is_none_or(is_link_local) {
            ph.dev_routes.push(step);
        } else {
            ph.via_routes.push(step);
        }
    }
}

/// Bridges, their addresses, and their router interfaces' settings.
fn diff_bridges<'a>(d: &Diff<'a>, ph: &mut Phases, s: &mut Summary) {
    let (r, w) = (d.r, d.w);
    let reset = &d.reset;
    let moves = |a: &Ipv4Net, to: &str| d.moves(a, to);
    // A name that changes between bridge and VLAN interface (or VLAN) is
    // two links: one deleted, one made.
    let same_kind = |b: &BridgeState, other: &RunningState| {
        other
            .bridges
            .iter()
            .any(|o| o.name == b.name && o.vlan == b.vlan)
    };
    let r_bridges: HashMap<&str, &BridgeState> = r
        .bridges
        .iter()
        .filter(|b| same_kind(b, w))
        .map(|b| (b.name.as_str(), b))
        .collect();
    let w_bridges: HashMap<&str, &BridgeState> = w
        .bridges
        .iter()
        .filter(|b| same_kind(b, r))
        .map(|b| (b.name.as_str(), b))
        .collect();
    // For a bridge that stays, its new addresses go in before the old ones
    // go: a router interface that lost its last address would take its
    // routes and ARP entries with it (and end its NAT sessions).
    for rb in &r.bridges {
        let keep: &[Ipv4Net] = w_bridges.get(rb.name.as_str()).map_or(&[], |w| &w.addrs);
        for a in &rb.addrs {
            if !keep.contains(a) {
                ph.addr_dels.push(Step::AddrDel(rb.name.clone(), *a));
                s.addresses.removed += 1;
            }
        }
        // IPv6 addresses go before any comes (a subnet may move between
        // bridges); the routes through them are IPv6 routes, kept.
        let keep6: &[Ipv6Net] = w_bridges.get(rb.name.as_str()).map_or(&[], |w| &w.addrs6);
        for a in rb.addrs6.iter().filter(|a| !keep6.contains(a)) {
            ph.addr_dels.push(Step::Addr6Del(rb.name.clone(), *a));
            s.addresses.removed += 1;
        }
        if !w_bridges.contains_key(rb.name.as_str()) {
            // VLAN interfaces go before the bridges they are on.
            let at = if rb.vlan.is_some() {
                0
            } else {
                ph.bridge_dels.len()
            };
            ph.bridge_dels
                .insert(at, Step::BridgeDel(rb.name.clone(), rb.ageing_time));
            s.bridges.removed += 1;
        }
    }
    for wb in &w.bridges {
        let rb = r_bridges.get(wb.name.as_str());
        link_steps(rb.copied(), wb, ph, s);
        let had6: &[Ipv6Net] = rb.map_or(&[], |b| &b.addrs6);
        for a in wb.addrs6.iter().filter(|a| !had6.contains(a)) {
            ph.addr_adds.push(Step::Addr6Add(wb.name.clone(), *a));
            s.addresses.added += 1;
        }
        // Router advertisements: an IPv6 interface that keeps an address
        // keeps its settings; a new one starts with the defaults.
        if let Some(to) = &wb.ra {
            let kept = had6.iter().any(|a| wb.addrs6.contains(a));
            let from = match rb.and_then(|b| b.ra.clone()) {
                Some(ra) if kept => ra,
                _ => Ra::default(),
            };
            if from != *to {
                ph.addr_adds.push(Step::Ra {
                    bridge: wb.name.clone(),
                    from,
                    to: to.clone(),
                });
                s.bridges.changed += 1;
            }
        }
        let had: &[Ipv4Net] = rb.map_or(&[], |b| &b.addrs);
        for a in &wb.addrs {
            if !had.contains(a) {
                let step = Step::AddrAdd(wb.name.clone(), *a);
                if rb.is_some() && !moves(a, &wb.name) {
                    ph.early_addr_adds.push(step);
                } else {
                    ph.addr_adds.push(step);
                }
                s.addresses.added += 1;
            }
        }
        // A router interface that exists keeps its MTU (it never loses its
        // last address on the way); a new one starts at the default.
        if let Some(to) = wb.mtu {
            let from = match rb.and_then(|b| b.mtu) {
                Some(m) if !wb.addrs.is_empty() && !reset.contains(wb.name.as_str()) => m,
                _ => 1500,
            };
            if from != to {
                ph.addr_adds.push(Step::Mtu {
                    bridge: wb.name.clone(),
                    from,
                    to,
                });
                s.bridges.changed += 1;
            }
        }
        // So do its reverse-path filter and redirects.
        if let (Some(rp_filter), Some(redirects)) = (wb.rp_filter, wb.redirects) {
            let kept = !wb.addrs.is_empty() && !reset.contains(wb.name.as_str());
            let from = match rb.map(|b| (b.rp_filter, b.redirects)) {
                Some((Some(rp), Some(r))) if kept => (rp, r),
                _ => (RpFilter::default(), true),
            };
            if from != (rp_filter, redirects) {
                ph.addr_adds.push(Step::Policy {
                    bridge: wb.name.clone(),
                    rp_filter,
                    redirects,
                });
                s.bridges.changed += 1;
            }
        }
    }
}

/// The link itself: a bridge or VLAN interface made, a bridge's ageing
/// time, VLAN filtering and group_fwd_mask.
fn link_steps(rb: Option<&BridgeState>, wb: &BridgeState, ph: &mut Phases, s: &mut Summary) {
    match (rb, &wb.vlan) {
        (None, Some((link, id))) => {
            ph.vlan_iface_adds.push(Step::VlanIfaceAdd {
                name: wb.name.clone(),
                link: link.clone(),
                id: *id,
            });
            s.bridges.added += 1;
        }
        (_, Some(_)) => {}
        (None, None) => {
            ph.bridge_adds
                .push(Step::BridgeAdd(wb.name.clone(), wb.ageing_time));
            s.bridges.added += 1;
        }
        (Some(rb), None) if rb.ageing_time != wb.ageing_time => {
            ph.bridge_adds.push(Step::Ageing {
                bridge: wb.name.clone(),
                from: rb.ageing_time,
                to: wb.ageing_time,
            });
            s.bridges.changed += 1;
        }
        (Some(_), None) => {}
    }
    let vlan_settings = |b: &BridgeState| (b.vlan_filtering, b.group_fwd_mask);
    if wb.vlan.is_none() && rb.map_or((false, 0), vlan_settings) != vlan_settings(wb) {
        ph.bridge_adds.push(Step::BridgeVlan {
            bridge: wb.name.clone(),
            vlan_filtering: wb.vlan_filtering,
            group_fwd_mask: wb.group_fwd_mask,
        });
        if rb.is_some() {
            s.bridges.changed += 1;
        }
    }
}

/// Timeouts (table sizes are fixed at start).
fn diff_timeouts<'a>(d: &Diff<'a>, ph: &mut Phases, s: &mut Summary) {
    let (r, w) = (d.r, d.w);
    let timeouts_of = |c: &SwitchConfig| {
        let t = &c.nat_timeouts;
        (
            c.ageing_time,
            c.arp_reachable_secs,
            c.arp_stale_secs,
            t.tcp_established,
            t.tcp_transitory,
            t.udp,
            t.icmp,
        )
    };
    if timeouts_of(&r.config) != timeouts_of(&w.config) {
        ph.timeouts.push(Step::Timeouts {
            from: Box::new(r.config.clone()),
            to: Box::new(w.config.clone()),
        });
        s.timeouts_changed = true;
    }
}

/// Which running NAT rules stay (with their sessions) and which rules of the
/// file they are. New rules are appended, and among source NAT rules the
/// first that matches wins: the rules that stay must be, in the file, the
/// source NAT rules' head in their running order. Destination NAT rules
/// never overlap (a bridge publishes a port once, and the rule of the
/// bridge a packet comes in on wins over a hairpin one), so their order is
/// free. When
/// the file reorders source NAT rules, the common head stays and the rest
/// is made again.
pub(super) fn nat_rules_kept(
    r: &[NatRuleState],
    w: &[NatRuleState],
    same: impl Fn(&NatRuleState, &NatRuleState) -> bool,
) -> (Vec<bool>, Vec<bool>) {
    let mut kept_r = vec![false; r.len()];
    let mut match_of_w: Vec<Option<usize>> = vec![None; w.len()];
    for (i, a) in r.iter().enumerate() {
        if let Some(j) = (0..w.len()).find(|&j| match_of_w[j].is_none() && same(a, &w[j])) {
            match_of_w[j] = Some(i);
            kept_r[i] = true;
        }
    }
    let snat =
        |x: &NatRuleState| !matches!(x.action, patchbay_dataplane::nat::NatAction::Dnat { .. });
    let mut last = None;
    let mut new_seen = false;
    let ordered = w
        .iter()
        .zip(&match_of_w)
        .filter(|(x, _)| snat(x))
        .all(|(_, m)| match m {
            Some(i) => {
                let fine = !new_seen && last.is_none_or(|l| l < *i);
                last = Some(*i);
                fine
            }
            None => {
                new_seen = true;
                true
            }
        });
    if ordered {
        return (kept_r, match_of_w.iter().map(Option::is_some).collect());
    }
    let head = r.iter().zip(w).take_while(|(a, b)| same(a, b)).count();
    (
        (0..r.len()).map(|i| i < head).collect(),
        (0..w.len()).map(|j| j < head).collect(),
    )
}
