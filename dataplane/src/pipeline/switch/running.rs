//! The configuration as a whole: timeouts, the running state, and a model of it that checks a change without making it.

use super::*;

impl Switch {
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
        self.arp.set_timers(
            u64::from(arp_reachable_secs) * 1000,
            u64::from(arp_stale_secs) * 1000,
        );
        self.nat.timeouts = nat.clone();
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
        // Bridges first, then the VLAN interfaces on them.
        let bridges = state.bridges.iter().filter(|b| b.vlan.is_none());
        let vlan_ifaces = state.bridges.iter().filter(|b| b.vlan.is_some());
        for b in bridges.chain(vlan_ifaces) {
            match &b.vlan {
                Some((link, id)) => {
                    sw.add_vlan_iface(&b.name, link, *id)?;
                }
                None if !sw.has_bridge(&b.name) => {
                    sw.add_bridge(&b.name)?;
                }
                None => {}
            }
            if b.vlan.is_none() {
                sw.set_vlan_filtering(&b.name, b.vlan_filtering)?;
                sw.set_group_fwd_mask(&b.name, b.group_fwd_mask)?;
                if b.ageing_time != sw.config.ageing_time {
                    sw.set_ageing(&b.name, b.ageing_time)?;
                }
            }
            for a in &b.addrs {
                sw.addr4_add(&b.name, *a)?;
            }
            for a in &b.addrs6 {
                sw.addr6_add(&b.name, *a)?;
            }
            if let Some(ra) = b.ra.clone().filter(|ra| *ra != crate::ip6::Ra::default()) {
                sw.set_ra(&b.name, crate::ip6::RaChange::to(&ra))?;
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
            let id = sw
                .add_port(port, p.master.as_deref())
                .map_err(|rejected| rejected.error)?;
            sw.vlans[usize::from(id)] = crate::l2::PortVlans::none();
            for v in &p.vlans {
                sw.vlans[usize::from(id)].add(v.vid, v.pvid, v.untagged);
            }
        }
        for (mac, port, vlan) in &state.fdb {
            sw.fdb_add(*mac, port, *vlan)?;
        }
        for (dst, gateway, dev) in &state.routes {
            let bridge = sw.existing_bridge(dev)?;
            let next_hop = NextHop {
                bridge,
                gateway: *gateway,
            };
            sw.router.insert_route(*dst, next_hop)?;
        }
        for (dst, gateway, dev) in &state.routes6 {
            let bridge = sw.existing_bridge(dev)?;
            let next_hop = crate::ip6::NextHop6 {
                bridge,
                gateway: *gateway,
            };
            sw.router6
                .fib
                .insert(*dst, next_hop)
                .map_err(Route6Error::from)?;
        }
        for (ip, mac, dev) in &state.neighbors {
            sw.neigh4_add(*ip, *mac, dev)?;
        }
        for (ip, mac, dev) in &state.neighbors6 {
            sw.neigh6_add(*ip, *mac, dev)?;
        }
        for r in &state.nat {
            sw.nat.number_next_rule(r.id);
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
                    addrs6: self
                        .router6
                        .iface(id)
                        .map(|i| i.addrs.clone())
                        .unwrap_or_default(),
                    ra: self.router6.iface(id).map(|i| i.ra.clone()),
                    vlan_filtering: b.vlan_filtering,
                    group_fwd_mask: b.group_fwd_mask.bits(),
                    vlan: b
                        .vlan_of
                        .map(|(p, v)| (self.bridge_name(p).to_string(), v.get())),
                }
            })
            .collect();
        let ports = self
            .ports
            .iter()
            .enumerate()
            .filter_map(|(id, s)| Some((id, s.as_ref()?)))
            .map(|(id, s)| PortState {
                name: s.port.name().to_string(),
                kind: s.port.kind(),
                master: s.bridge.map(|b| self.bridge_name(b).to_string()),
                vlans: self.port_vlans(id),
                vxlan: s
                    .port
                    .as_vxlan()
                    .map(|v| crate::pipeline::info::VxlanState {
                        config: v.config().clone(),
                        flood: v.flood_added(),
                        statics: v.statics(),
                    }),
            })
            .collect();
        let mut fdb: Vec<_> = self
            .fdb
            .entries()
            .filter(|(_, _, _, e)| e.is_static)
            .map(|(b, vid, mac, e)| (b, vid, mac, self.port_name(e.port).to_string()))
            .collect();
        fdb.sort_by_key(|(b, vid, mac, _)| (*b, *vid, *mac));
        let connected = self
            .router
            .ifaces()
            .flat_map(|(b, i)| i.addrs.iter().map(move |a| (a.network(), a.len, b)))
            .collect();
        let mut neighbors: Vec<_> = self
            .arp
            .entries()
            .filter(|(_, _, n)| n.state == NeighState::Permanent)
            .map(|(b, ip, n)| (b, ip, n.mac))
            .collect();
        neighbors.sort_by_key(|(b, ip, _)| (*b, *ip));
        let nat = self
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
            fdb: fdb
                .into_iter()
                .map(|(_, vid, mac, p)| (mac, p, (vid != 0).then_some(vid)))
                .collect(),
            routes: Vec::new(),
            // Small tables for now (lab routes): copied here, on the
            // forwarding thread, with their bridge names.
            routes6: self.routes6_state(),
            neighbors6: self.neighbors6_state(),
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
