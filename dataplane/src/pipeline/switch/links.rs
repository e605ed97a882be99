//! Bridges, ports and static FDB entries: adding, moving and removing them.

use super::*;

impl Switch {
    pub(super) fn check_new_name(&self, name: &str) -> Result<(), SwitchError> {
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
            vlan_filtering: false,
            group_fwd_mask: GroupFwdMask::NONE,
            vlan_of: None,
            vlan_ifaces: Vec::new(),
            mtu_set: false,
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

    /// Deletes a bridge (with its VLAN interfaces; its ports are left
    /// without a bridge), or a VLAN interface.
    pub fn del_bridge(&mut self, name: &str) -> Result<(), SwitchError> {
        let id = self.existing_bridge(name)?;
        if name == DEFAULT_BRIDGE {
            return Err(SwitchError::DefaultBridge(name.to_string()));
        }
        let (vlan_of, vlan_ifaces) = self.bridges[id as usize]
            .as_ref()
            .map(|b| (b.vlan_of, b.vlan_ifaces.clone()))
            .expect("exists");
        for (_, i) in vlan_ifaces {
            let n = self.bridge_name(i).to_string();
            self.del_bridge(&n)?;
        }
        if let Some((parent, _)) = vlan_of {
            if let Some(p) = self.bridges[usize::from(parent)].as_mut() {
                p.vlan_ifaces.retain(|&(_, i)| i != id);
            }
        }
        for slot in self.ports.iter_mut().flatten() {
            if slot.bridge == Some(id) {
                slot.bridge = None;
            }
        }
        self.fdb.retain(|b, _, _, _| b != id);
        let routes = self.l3().forget_interface(id) + self.router6.forget_bridge(id);
        self.l3().forget_neighbors6(id);
        let rules = self.nat.forget_bridge(id);
        self.router.dhcp.serve(id, false);
        self.bridges[id as usize] = None;
        log_change!(self, op = "bridge_del", bridge = name, routes, nat_rules = rules;
            "bridge {name}: deleted, with {routes} route(s) and {rules} NAT rule(s)");
        Ok(())
    }

    /// Makes a VLAN interface `name` on VLAN `id` of `bridge` (iproute2's
    /// `link add br0.20 type vlan link br0 id 20`): a router interface that
    /// takes addresses, neighbours, routes and NAT rules as a bridge does,
    /// and whose frames are those of that VLAN. The bridge must filter by
    /// VLAN; its own router interface is on VLAN 1.
    pub fn add_vlan_iface(
        &mut self,
        name: &str,
        bridge: &str,
        id: u16,
    ) -> Result<BridgeId, SwitchError> {
        self.check_new_name(name)?;
        let parent = self.plain_bridge(bridge)?;
        let vid = Vid::new(id).map_err(|_| SwitchError::BadVid(id))?;
        let br = self.bridges[usize::from(parent)].as_ref().expect("exists");
        if !br.vlan_filtering {
            return Err(SwitchError::NoVlanFiltering(bridge.to_string()));
        }
        if vid == Vid::DEFAULT {
            return Err(SwitchError::VlanIsBridges(bridge.to_string()));
        }
        if let Some(&(_, other)) = br.vlan_ifaces.iter().find(|&&(v, _)| v == id) {
            return Err(SwitchError::VlanIfaceExists(
                self.bridge_name(other).to_string(),
                bridge.to_string(),
                id,
            ));
        }
        let iface = self.add_bridge(name)?;
        let b = self.bridges[usize::from(iface)]
            .as_mut()
            .expect("just made");
        b.vlan_of = Some((parent, vid));
        self.bridges[usize::from(parent)]
            .as_mut()
            .expect("exists")
            .vlan_ifaces
            .push((id, iface));
        self.follow_vxlan_mtu(parent);
        log_change!(self, op = "vlan_iface_add", name, bridge, id;
            "link {name}: VLAN interface on VLAN {id} of {bridge}");
        Ok(iface)
    }

    /// A bridge that is not a VLAN interface.
    pub(super) fn plain_bridge(&self, name: &str) -> Result<BridgeId, SwitchError> {
        let id = self.existing_bridge(name)?;
        match self.bridges[usize::from(id)]
            .as_ref()
            .and_then(|b| b.vlan_of)
        {
            Some((parent, _)) => Err(SwitchError::IsVlanIface(
                name.to_string(),
                self.bridge_name(parent).to_string(),
            )),
            None => Ok(id),
        }
    }

    /// Sets a bridge's FDB ageing time in seconds.
    pub fn set_ageing(&mut self, bridge: &str, secs: u32) -> Result<(), SwitchError> {
        let secs = AgeingTime::new(secs)
            .map_err(|e| SwitchError::BadAgeing(e.value))?
            .secs();
        let id = self.plain_bridge(bridge)?;
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
    pub(super) fn prepare_port(
        &mut self,
        port: &dyn Port,
        master: Option<&str>,
    ) -> Result<(usize, Option<BridgeId>), SwitchError> {
        let name = port.name().to_string();
        self.check_new_name(&name)?;
        let bridge = master.map(|m| self.plain_bridge(m)).transpose()?;
        let id = match self.ports.iter().position(Option::is_none) {
            Some(free) => free,
            None if self.ports.len() < usize::from(u16::MAX) => {
                self.ports.push(None);
                // Room for a batch, or for every frame the router can make.
                self.tx_queues
                    .push(Vec::with_capacity(BATCH.max(self.config.router_buffers)));
                self.vlans.push(PortVlans::default());
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

    pub(super) fn insert_port(
        &mut self,
        id: usize,
        bridge: Option<BridgeId>,
        port: Box<dyn Port>,
    ) -> PortId {
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
        self.vlans[id] = PortVlans::default();
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
            self.follow_vxlan_mtu(b);
        }
        id as PortId
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
    pub(super) fn detach(&mut self, id: PortId) {
        let slot = self.ports[id as usize].as_mut().expect("exists");
        if let Some(b) = slot.bridge.take() {
            if let Some(bridge) = self.bridges[b as usize].as_mut() {
                bridge.members.retain(|&p| p != id);
            }
            self.fdb.retain(|_, _, _, e| e.port != id);
            self.l3().forget_port(id);
            self.follow_vxlan_mtu(b);
        }
    }

    /// Attaches a port to a bridge (`Some`) or to none.
    pub fn set_master(&mut self, port: &str, master: Option<&str>) -> Result<(), SwitchError> {
        let id = self.existing_port(port)?;
        let bridge = master.map(|m| self.plain_bridge(m)).transpose()?;
        if self.ports[id as usize].as_ref().expect("exists").bridge == bridge {
            return Ok(());
        }
        self.detach(id);
        // A port joins a bridge as the Linux bridge has it: in VLAN 1,
        // untagged, as PVID.
        self.vlans[id as usize] = PortVlans::default();
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
            self.follow_vxlan_mtu(b);
        }
        log_change!(self, op = "port_set", port, master = master.unwrap_or("none"); "port {port}: master {}", master.unwrap_or("none"));
        Ok(())
    }

    /// Adds a static FDB entry: `mac` is on `port` (in the port's bridge),
    /// in VLAN `vlan` (on a bridge with VLAN filtering; the port's PVID if
    /// not given).
    pub fn fdb_add(&mut self, mac: Mac, port: &str, vlan: Option<u16>) -> Result<(), SwitchError> {
        let (id, bridge, vid) = self.fdb_place(port, vlan)?;
        self.fdb.add_static(bridge, vid, mac, id)?;
        let vlan = if vid == 0 {
            String::new()
        } else {
            format!(" vlan {vid}")
        };
        log_change!(self, op = "fdb_add", mac:% = mac, dev = port, vid; "fdb: {mac} dev {port}{vlan} static");
        Ok(())
    }

    /// The port, bridge and VLAN (0: none) of an FDB entry on `port` in
    /// `vlan`.
    fn fdb_place(
        &self,
        port: &str,
        vlan: Option<u16>,
    ) -> Result<(PortId, BridgeId, u16), SwitchError> {
        let id = self.existing_port(port)?;
        let Some(bridge) = self.ports[id as usize].as_ref().and_then(|s| s.bridge) else {
            return Err(SwitchError::NoMaster(port.to_string()));
        };
        let filtering = self.bridges[bridge as usize]
            .as_ref()
            .is_some_and(|b| b.vlan_filtering);
        let vid = match (filtering, vlan) {
            (false, None) => 0,
            (false, Some(_)) => {
                return Err(SwitchError::NoVlanFiltering(
                    self.bridge_name(bridge).to_string(),
                ))
            }
            (true, Some(v)) => Vid::new(v).map_err(|_| SwitchError::BadVid(v))?.get(),
            (true, None) => self.vlans[id as usize]
                .pvid()
                .ok_or_else(|| SwitchError::NoPvid(port.to_string()))?
                .get(),
        };
        Ok((id, bridge, vid))
    }

    /// The port of a static entry for `mac` in the bridge of `port` (and
    /// `vlan`).
    pub fn static_fdb_port(
        &self,
        mac: Mac,
        port: &str,
        vlan: Option<u16>,
    ) -> Result<Option<String>, SwitchError> {
        let (_, bridge, vid) = self.fdb_place(port, vlan)?;
        Ok(self
            .fdb
            .get(bridge, vid, mac)
            .filter(|e| e.is_static)
            .map(|e| self.port_name(e.port).to_string()))
    }

    /// Removes `mac` from the FDB of the bridge named `link`, or of the
    /// bridge of the port named `link`: from VLAN `vlan`, or every VLAN.
    pub fn fdb_del(&mut self, mac: Mac, link: &str, vlan: Option<u16>) -> Result<(), SwitchError> {
        let bridge = match (self.bridge_id(link), self.port_id(link)) {
            (Some(b), _) => b,
            (None, Some(p)) => self.ports[p as usize]
                .as_ref()
                .and_then(|s| s.bridge)
                .ok_or_else(|| SwitchError::NoMaster(link.to_string()))?,
            (None, None) => return Err(SwitchError::NoSuchLink(link.to_string())),
        };
        let removed = self
            .fdb
            .retain(|b, v, m, _| !(b == bridge && m == mac && vlan.is_none_or(|x| x == v)));
        if removed == 0 {
            return Err(SwitchError::NoSuchEntry {
                mac,
                bridge: self.bridge_name(bridge).to_string(),
            });
        }
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
        let n = self.fdb.retain(|b, _, _, e| {
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
}
