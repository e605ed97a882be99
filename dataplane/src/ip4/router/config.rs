//! The control plane's changes to the router: addresses, routes, neighbours, interface settings.

use super::*;

impl Router {
    /// A route whose gateway is `gw`, if any.
    pub(super) fn route_via(&self, gw: Ipv4Addr) -> Option<Ipv4Net> {
        // Next hops outlive their routes: a quick look before the walk.
        if !self.next_hops.iter().any(|nh| nh.gateway == Some(gw)) {
            return None;
        }
        self.fib
            .routes_unsorted()
            .find(|&(_, _, nh)| self.next_hops[nh as usize].gateway == Some(gw))
            .map(|(addr, len, _)| Ipv4Net { addr, len })
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

    /// Starts a batch of route changes: lookups see none of them until it
    /// ends, and its end compiles the lookup structure once
    /// ([`Fib::begin_batch`]).
    pub fn begin_route_batch(&mut self) {
        self.fib.begin_batch();
    }

    /// Ends a batch of route changes: lookups see them from now on.
    pub fn end_route_batch(&mut self) {
        self.fib.end_batch();
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
        if let Some(id) = self.fib.get(dst.network(), dst.len) {
            let nh = self.next_hops[id as usize];
            let connected = nh.gateway.is_none()
                && self
                    .iface(nh.bridge)
                    .is_some_and(|i| i.addrs.iter().any(|a| a.subnet() == dst));
            if connected {
                return Err(RouterError::ConnectedRoute(dst));
            }
        }
        let nh = match (via, dev) {
            (Some(gw), _) if self.is_local(gw) => return Err(RouterError::GatewayIsLocal(gw)),
            (Some(gw), dev) => {
                // The routes, not the lookup structure: in a batch of
                // changes, the gateway's subnet may have just come.
                let bridge = match self
                    .fib
                    .gateway_route(gw)
                    .map(|(_, _, id)| self.next_hops[id as usize])
                {
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

    pub fn route_del(&mut self, dst: Ipv4Net) -> Result<(), RouterError> {
        if dst.addr != dst.network() {
            return Err(RouterError::HostBits(dst, dst.subnet()));
        }
        self.fib.remove(dst.network(), dst.len)?;
        Ok(())
    }
}

impl L3<'_> {
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
        if let Some(dst) = self.router.route_via(net.addr) {
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
            .router
            .fib
            .get(net.network(), net.len)
            .and_then(|nh| self.router.next_hops[nh as usize].gateway)
        {
            return Err(RouterError::SubnetRouted(net.subnet(), gw));
        }
        if self
            .router
            .iface(bridge)
            .is_some_and(|i| i.addrs.contains(&net))
        {
            return Err(RouterError::AddrExists(net));
        }
        // The connected route first: if the table refuses it (full), the
        // address is not half added.
        let connected = NextHop {
            bridge,
            gateway: None,
        };
        self.router.insert_route(net.subnet(), connected)?;
        let b = usize::from(bridge);
        if self.router.ifaces.len() <= b {
            self.router.ifaces.resize(b + 1, None);
        }
        let iface = self.router.ifaces[b].get_or_insert_with(|| RouterInterface {
            mac,
            addrs: Vec::new(),
            mtu: DEFAULT_MTU,
            rp_filter: RpFilter::default(),
            redirects: true,
        });
        iface.addrs.push(net);
        self.router.refresh_addresses();
        self.announce(bridge, net.addr);
        Ok(())
    }

    /// Removes an address and, unless another address keeps it, its
    /// connected route. The interface goes with its last address, and every
    /// route out of it. Returns how many routes went.
    pub fn addr_del(&mut self, bridge: BridgeId, net: Ipv4Net) -> Result<usize, RouterError> {
        let iface = self
            .router
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
        self.router.refresh_addresses();
        self.nat.flush_outside_addr(net.addr);
        let iface = self
            .router
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
                .router
                .next_hop_ids
                .get(&NextHop {
                    bridge,
                    gateway: None,
                })
                .copied();
            if connected.is_some() && self.router.fib.get(net.network(), net.len) == connected {
                let _ = self.router.fib.remove(net.network(), net.len);
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
    pub(super) fn drop_held(&mut self, gone: impl Fn(&HeldFragment) -> bool) {
        let em = &mut self.em;
        let counters = &mut self.nat.counters;
        self.router.held.retain(|h| {
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
        if let Some(slot) = self.router.ifaces.get_mut(usize::from(bridge)) {
            *slot = None;
        }
        self.router.refresh_addresses();
        let gone: Vec<(Ipv4Addr, u8)> = self
            .router
            .fib
            .routes_unsorted()
            .filter(|&(_, _, nh)| self.router.next_hops[nh as usize].bridge == bridge)
            .map(|(p, l, _)| (p, l))
            .collect();
        self.router.fib.begin_batch();
        for &(p, l) in &gone {
            let _ = self.router.fib.remove(p, l);
        }
        self.router.fib.end_batch();
        self.drop_held(|h| h.bridge == bridge);
        let mut dropped = std::mem::take(&mut self.router.scratch);
        self.arp.retain(|b, _, _| b != bridge, &mut dropped);
        for i in dropped.drain(..) {
            self.em.free(i);
        }
        self.router.scratch = dropped;
        gone.len()
    }

    /// Adds a permanent neighbour.
    pub fn neigh_add(
        &mut self,
        bridge: BridgeId,
        ip: Ipv4Addr,
        mac: Mac,
    ) -> Result<(), RouterError> {
        if self.router.iface(bridge).is_none() {
            return Err(RouterError::NoInterface);
        }
        if self.router.is_local(ip) {
            return Err(RouterError::NeighborIsLocal(ip));
        }
        let mut waiting = std::mem::take(&mut self.router.scratch);
        let ok = self.arp.add_permanent(bridge, ip, mac, &mut waiting);
        self.release_waiting(bridge, None, mac, &mut waiting);
        self.router.scratch = waiting;
        if ok {
            Ok(())
        } else {
            Err(RouterError::ArpFull(self.arp.max()))
        }
    }

    pub fn neigh_del(&mut self, bridge: BridgeId, ip: Ipv4Addr) -> Result<(), RouterError> {
        let mut dropped = std::mem::take(&mut self.router.scratch);
        let found = self.arp.remove(bridge, ip, &mut dropped);
        for i in dropped.drain(..) {
            self.em.free(i);
        }
        self.router.scratch = dropped;
        if found {
            Ok(())
        } else {
            Err(RouterError::NoSuchNeighbor(ip))
        }
    }

    /// Forgets learned neighbours (of one bridge if given); returns how many.
    pub fn neigh_flush(&mut self, bridge: Option<BridgeId>) -> usize {
        let mut dropped = std::mem::take(&mut self.router.scratch);
        let n = self.arp.retain(
            |b, _, n| n.state == NeighState::Permanent || bridge.is_some_and(|x| x != b),
            &mut dropped,
        );
        for i in dropped.drain(..) {
            self.em.free(i);
        }
        self.router.scratch = dropped;
        n
    }
}
