//! The router as the control plane sees it: addresses, routes, neighbours, interface settings, and what `route get` and `neigh show` tell.

use super::*;

impl Switch {
    /// Names this switch among the daemons of its namespace (its control
    /// socket's path), which the router MACs of bridges given an address
    /// from now on are made from: set it before any address.
    pub fn set_instance(&mut self, instance: &str) {
        self.mac_seed = router_mac::seed(instance);
    }

    /// Gratuitous ARP for every router address of bridge `b`, sent now.
    pub(super) fn announce_router(&mut self, b: BridgeId) {
        self.l3().announce_all(b);
        let vlan_ifaces: Vec<BridgeId> = self.bridges[usize::from(b)]
            .as_ref()
            .map_or(Vec::new(), |br| {
                br.vlan_ifaces.iter().map(|&(_, i)| i).collect()
            });
        for i in vlan_ifaces {
            self.l3().announce_all(i);
        }
        self.flush_emitted();
    }

    /// Adds an address of either family to a bridge's router interface.
    pub fn addr_add(&mut self, bridge: &str, net: IpNet) -> Result<(), SwitchError> {
        match net {
            IpNet::V4(n) => self.addr4_add(bridge, n),
            IpNet::V6(n) => self.addr6_add(bridge, n),
        }
    }

    pub fn addr_del(&mut self, bridge: &str, net: IpNet) -> Result<(), SwitchError> {
        match net {
            IpNet::V4(n) => self.addr4_del(bridge, n),
            IpNet::V6(n) => self.addr6_del(bridge, n),
        }
    }

    /// Adds an IPv4 address to a bridge's router interface.
    pub fn addr4_add(&mut self, bridge: &str, net: Ipv4Net) -> Result<(), SwitchError> {
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
        self.l3().addr_add(b, net, mac)?;
        // Its gratuitous ARP goes out now, not at the next housekeeping.
        self.flush_emitted();
        // A new router interface takes the MTU its bridge's VXLAN ports
        // leave.
        self.follow_vxlan_mtu(b);
        log_change!(self, op = "addr_add", addr:% = net, dev = bridge; "addr {net} dev {bridge}");
        Ok(())
    }

    pub fn addr4_del(&mut self, bridge: &str, net: Ipv4Net) -> Result<(), SwitchError> {
        let b = self.existing_bridge(bridge)?;
        // Its last address takes the bridge's routes with it.
        let gone = self.l3().addr_del(b, net)?;
        log_change!(self, op = "addr_del", addr:% = net, dev = bridge, routes = gone;
            "addr {net} dev {bridge}: deleted, with {gone} route(s)");
        Ok(())
    }

    /// Sets the MTU of a bridge's router interface, for good: it no
    /// longer follows the bridge's VXLAN ports.
    pub fn set_mtu(&mut self, bridge: &str, mtu: u32) -> Result<(), SwitchError> {
        let b = self.existing_bridge(bridge)?;
        self.router.set_mtu(b, mtu)?;
        if let Some(br) = self.bridges[usize::from(b)].as_mut() {
            br.mtu_set = true;
        }
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

    /// Adds a route of either family via a gateway (of the same family),
    /// or out of a bridge.
    pub fn route_add(
        &mut self,
        dst: IpNet,
        via: Option<IpAddr>,
        dev: Option<&str>,
    ) -> Result<(), SwitchError> {
        match (dst, via) {
            (IpNet::V4(d), None) => self.route4_add(d, None, dev),
            (IpNet::V4(d), Some(IpAddr::V4(gw))) => self.route4_add(d, Some(gw), dev),
            (IpNet::V6(d), None) => self.route6_add(d, None, dev),
            (IpNet::V6(d), Some(IpAddr::V6(gw))) => self.route6_add(d, Some(gw), dev),
            (dst, Some(gw)) => Err(SwitchError::FamilyMismatch(gw, dst)),
        }
    }

    /// Adds an IPv4 route via a gateway, or out of a bridge.
    pub fn route4_add(
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

    /// Runs `f`, a batch of changes (an apply, a chunk of a route load),
    /// and compiles the route lookup structure once, at its end, instead
    /// of once per route. Nothing is forwarded while `f` runs, so no
    /// packet sees the routes half compiled.
    pub fn route_batch<R>(&mut self, f: impl FnOnce(&mut Switch) -> R) -> R {
        self.router.begin_route_batch();
        self.router6.fib.begin_batch();
        let r = f(self);
        self.router6.fib.end_batch();
        self.router.end_route_batch();
        r
    }

    /// The route for exactly `dst` (not the longest match), if there is one.
    pub fn route_exact(&self, dst: IpNet) -> Option<RouteInfo> {
        let dst = match dst {
            IpNet::V4(d) => d,
            IpNet::V6(d) => return self.route6_exact(d),
        };
        let prefix = dst.network();
        let nh = self.router.fib().get(prefix, dst.len)?;
        Some(self.route_info(prefix, dst.len, nh))
    }

    pub fn route_del(&mut self, dst: IpNet) -> Result<(), SwitchError> {
        match dst {
            IpNet::V4(d) => self.router.route_del(d)?,
            IpNet::V6(d) => self.route6_del(d)?,
        }
        Ok(())
    }

    pub(super) fn route_info(&self, prefix: Ipv4Addr, len: u8, nh_id: u32) -> RouteInfo {
        let nh = self.router.next_hop(nh_id);
        let dst = Ipv4Net { addr: prefix, len };
        let connected = nh.gateway.is_none()
            && self.router.iface(nh.bridge).is_some_and(|i| {
                i.addrs
                    .iter()
                    .any(|a| a.len == len && a.network() == prefix)
            });
        RouteInfo {
            dst: IpNet::V4(dst),
            via: nh.gateway.map(IpAddr::V4),
            dev: self.bridge_name(nh.bridge).to_string(),
            proto: if connected {
                RouteOrigin::Connected
            } else {
                RouteOrigin::Static
            },
        }
    }

    /// Every route, IPv4 then IPv6, longest prefixes first; at most
    /// `limit`.
    pub fn routes(&self, limit: usize) -> (usize, Vec<RouteInfo>) {
        let fib = self.router.fib();
        let mut rows: Vec<RouteInfo> = fib
            .routes()
            .take(limit)
            .map(|(p, l, nh)| self.route_info(p, l, nh))
            .collect();
        let left = limit - rows.len();
        let (total6, rows6) = self.routes6_matching(left, &RouteFilter::default(), None);
        rows.extend(rows6);
        (fib.len() + total6, rows)
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
        let (total6, rows6) = self.routes6_matching(limit, filter, dev);
        let dst4 = match filter.dst {
            Some(IpNet::V6(_)) => return Ok((total6, rows6)),
            Some(IpNet::V4(d)) => Some(d),
            None => None,
        };
        let fib = self.router.fib();
        let mut total = 0;
        let mut rows = Vec::new();
        let wanted = |p: Ipv4Addr, l: u8, nh: u32| {
            let in_dst = dst4.is_none_or(|d| {
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
        let left = limit - rows.len();
        rows.extend(rows6.into_iter().take(left));
        Ok((total + total6, rows))
    }

    /// Whether packets to `addr` are never forwarded (IPv4: broadcast,
    /// multicast, loopback, 0.0.0.0/8; IPv6: see
    /// [`Switch::never_forwarded6`]).
    pub fn never_forwarded(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(a) => self.router.never_forwarded(a),
            IpAddr::V6(a) => self.never_forwarded6(a),
        }
    }

    /// The routing decision for one address, in words.
    pub fn route_get(&self, addr: IpAddr) -> Option<RouteGet> {
        match addr {
            IpAddr::V4(a) => self.route4_get(a),
            IpAddr::V6(a) => self.route6_get(a),
        }
    }

    fn route4_get(&self, addr: Ipv4Addr) -> Option<RouteGet> {
        if let Some((b, _)) = self.router.addrs().find(|&(_, a)| a.addr == addr) {
            let dev = self.bridge_name(b).to_string();
            return Some(RouteGet::local(addr.into(), dev, self.router.router_mac(b)));
        }
        if self.router.never_forwarded(addr) {
            return None;
        }
        let (p, l, nh_id) = self.router.fib().matching_route(addr)?;
        let route = self.route_info(p, l, nh_id);
        let nh = self.router.next_hop(nh_id);
        let next = nh.gateway.unwrap_or(addr);
        let neighbor = self.arp.get(nh.bridge, next);
        let mac = neighbor
            .filter(|n| !matches!(n.state, NeighState::Incomplete | NeighState::Failed))
            .map(|n| n.mac);
        let port = mac.and_then(|m| self.port_toward(nh.bridge, m));
        let src = self
            .router
            .iface(nh.bridge)
            .and_then(|i| {
                i.addrs
                    .iter()
                    .find(|a| a.contains(next))
                    .or(i.addrs.first())
            })
            .map(|a| IpAddr::V4(a.addr));
        Some(RouteGet {
            addr: IpAddr::V4(addr),
            route,
            next_hop: IpAddr::V4(next),
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
                let v4 = self.router.iface(b as BridgeId);
                let v6 = self.router6.iface(b as BridgeId);
                let mac = v4.map(|i| i.mac).or(v6.map(|i| i.mac))?;
                Some(AddrInfo {
                    dev: br.name.clone(),
                    mac,
                    mtu: v4.map_or(crate::ip4::Mtu::DEFAULT.get(), |i| i.mtu),
                    rp_filter: v4.map(|i| i.rp_filter).unwrap_or_default(),
                    redirects: v4.is_none_or(|i| i.redirects),
                    addrs: v4.map(|i| i.addrs.clone()).unwrap_or_default(),
                    addrs6: v6.map(|i| i.addrs.clone()).unwrap_or_default(),
                    link_local: v6.map(|i| i.link_local),
                    ra: v6.map(|i| i.ra.clone()),
                    dad_failed: v6.map(|i| i.dad_failed.clone()).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// The MAC of a permanent ARP entry for `ip` on bridge `dev`.
    pub fn permanent_neighbor(&self, ip: IpAddr, dev: &str) -> Result<Option<Mac>, SwitchError> {
        let b = self.existing_bridge(dev)?;
        let n = match ip {
            IpAddr::V4(a) => self.arp.get(b, a),
            IpAddr::V6(a) => self.router6.nd.get(b, a),
        };
        Ok(n.filter(|n| n.state == NeighState::Permanent)
            .map(|n| n.mac))
    }

    /// Adds a permanent ARP or IPv6 neighbour entry.
    pub fn neigh_add(&mut self, ip: IpAddr, mac: Mac, dev: &str) -> Result<(), SwitchError> {
        match ip {
            IpAddr::V4(a) => self.neigh4_add(a, mac, dev),
            IpAddr::V6(a) => self.neigh6_add(a, mac, dev),
        }
    }

    pub fn neigh_del(&mut self, ip: IpAddr, dev: &str) -> Result<(), SwitchError> {
        match ip {
            IpAddr::V4(a) => self.neigh4_del(a, dev),
            IpAddr::V6(a) => self.neigh6_del(a, dev),
        }
    }

    /// Adds a permanent ARP entry.
    pub fn neigh4_add(&mut self, ip: Ipv4Addr, mac: Mac, dev: &str) -> Result<(), SwitchError> {
        let b = self.existing_bridge(dev)?;
        self.l3().neigh_add(b, ip, mac)?;
        self.flush_emitted();
        log_change!(self, op = "neigh_add", ip:% = ip, mac:% = mac, dev; "neigh {ip} lladdr {mac} dev {dev} permanent");
        Ok(())
    }

    pub fn neigh4_del(&mut self, ip: Ipv4Addr, dev: &str) -> Result<(), SwitchError> {
        let b = self.existing_bridge(dev)?;
        self.l3().neigh_del(b, ip)?;
        log_change!(self, op = "neigh_del", ip:% = ip, dev; "neigh {ip} dev {dev}: deleted");
        Ok(())
    }

    pub fn neigh_flush(&mut self, dev: Option<&str>) -> Result<usize, SwitchError> {
        let b = dev.map(|d| self.existing_bridge(d)).transpose()?;
        let n = self.l3().neigh_flush(b) + self.l3().neigh6_flush(b);
        log_change!(self, op = "neigh_flush", removed = n; "neigh: flushed {n} entries");
        Ok(n)
    }

    /// The ARP cache, then the IPv6 neighbour cache, each sorted by bridge
    /// and address.
    pub fn neighbors(&self) -> Vec<NeighInfo> {
        let now = self.started.elapsed().as_millis() as u64;
        let info = |b: BridgeId, ip: IpAddr, n: &crate::arp::Neighbor| NeighInfo {
            ip,
            mac: n.state.has_mac().then_some(n.mac),
            dev: self.bridge_name(b).to_string(),
            port: self.port_toward(b, n.mac),
            state: n.state,
            age: (n.state != NeighState::Permanent)
                .then(|| (now.saturating_sub(n.updated) / 1000) as u32),
            queued: n.n_pending,
        };
        let mut v4: Vec<_> = self.arp.entries().collect();
        v4.sort_by_key(|(b, ip, _)| (*b, *ip));
        let mut v6: Vec<_> = self.router6.nd.entries().collect();
        v6.sort_by_key(|(b, ip, _)| (*b, *ip));
        v4.into_iter()
            .map(|(b, ip, n)| info(b, IpAddr::V4(ip), n))
            .chain(v6.into_iter().map(|(b, ip, n)| info(b, IpAddr::V6(ip), n)))
            .collect()
    }
}
