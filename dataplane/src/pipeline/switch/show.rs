//! What `link show`, `fdb show` and `stats` tell.

use super::*;

impl Switch {
    pub(super) fn port_info(&self, slot: &PortSlot) -> PortInfo {
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
        for (b, _, _, _) in self.fdb.entries() {
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
                vlan_filtering: b.vlan_filtering,
                group_fwd_mask: b.group_fwd_mask.bits(),
                link: b.vlan_of.map(|(p, _)| self.bridge_name(p).to_string()),
                vlan_id: b.vlan_of.map(|(_, v)| v.get()),
                fdb_entries: per_bridge[i],
                counters: b.counters.clone(),
            })
            .collect()
    }

    /// A copy of the FDB, quick to take here (plain entries, no names);
    /// [`FdbSnapshot::finish`] sorts and names it elsewhere.
    pub fn fdb_snapshot(&self) -> FdbSnapshot {
        let (ports, bridges) = self.names();
        // VXLAN ports: where each remote MAC is, and the flood lists.
        let mut vteps = std::collections::HashMap::new();
        let mut floods = Vec::new();
        for (id, slot) in self.ports.iter().enumerate() {
            let Some(v) = slot.as_ref().and_then(|s| s.port.as_vxlan()) else {
                continue;
            };
            for (mac, r) in v.remotes() {
                vteps.insert((id as PortId, mac), r.vtep);
            }
            let bridge = slot.as_ref().and_then(|s| s.bridge);
            for &vtep in v.flood_list() {
                floods.push((id as PortId, bridge, Mac([0; 6]), vtep));
            }
            // Static remotes the bridge has not learned (yet).
            for (mac, vtep) in v.statics() {
                if bridge.is_none_or(|b| self.fdb.get(b, 0, mac).is_none()) {
                    floods.push((id as PortId, bridge, mac, vtep));
                }
            }
        }
        FdbSnapshot {
            entries: self.fdb.entries().collect(),
            ports,
            bridges,
            now: self.now(),
            vteps,
            floods,
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
            nat_sessions: self.nat.len(),
            nat_max: self.nat.max(),
            nat: self.nat.counters.clone(),
            arp_entries: self.arp.len(),
            arp_max: self.arp.max(),
            routes: self.router.fib().len(),
            max_routes: self.router.fib().max_routes(),
            router_buffers_free: self.em.available(),
            l3: self.router.counters().clone(),
            ip6: self.router6.counters.clone(),
            nd_entries: self.router6.nd.len(),
            uptime_secs: self.started.elapsed().as_secs(),
            captures: self.captures(),
        }
    }
}

/// The FDB as copied on the forwarding thread.
pub struct FdbSnapshot {
    entries: Vec<(BridgeId, u16, Mac, crate::l2::FdbEntry)>,
    ports: Vec<Option<String>>,
    bridges: Vec<Option<String>>,
    now: u32,
    /// The remote VTEP of MACs behind VXLAN ports.
    vteps: std::collections::HashMap<(PortId, Mac), Ipv4Addr>,
    /// VXLAN ports' own entries: port, its bridge, MAC (all zeros: the
    /// flood list), VTEP.
    floods: Vec<(PortId, Option<BridgeId>, Mac, Ipv4Addr)>,
}

impl FdbSnapshot {
    /// The rows, sorted by bridge, VLAN, then MAC.
    pub fn finish(mut self) -> Vec<FdbRow> {
        self.entries
            .sort_unstable_by_key(|(b, v, m, _)| (*b, *v, *m));
        let name =
            |names: &[Option<String>], i: usize| name_at(names, i).unwrap_or("?").to_string();
        let mut rows: Vec<FdbRow> = self
            .entries
            .iter()
            .map(|&(b, vid, mac, e)| FdbRow {
                mac,
                port: name(&self.ports, usize::from(e.port)),
                bridge: name(&self.bridges, usize::from(b)),
                vlan: (vid != 0).then_some(vid),
                dst: self.vteps.get(&(e.port, mac)).copied(),
                age: (!e.is_static).then(|| self.now.saturating_sub(e.last_seen)),
                is_static: e.is_static,
            })
            .collect();
        // A flood list's VTEPs, as iproute2 lists them (the all-zeros MAC),
        // and static remotes.
        rows.extend(self.floods.iter().map(|&(p, b, mac, vtep)| FdbRow {
            mac,
            port: name(&self.ports, usize::from(p)),
            bridge: b.map_or("-".to_string(), |b| name(&self.bridges, usize::from(b))),
            vlan: None,
            dst: Some(vtep),
            age: None,
            is_static: true,
        }));
        rows
    }
}
