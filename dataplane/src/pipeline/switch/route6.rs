//! IPv6 routes as the control plane sees them: add, delete, show, get.
//! The table is kept and checked now; forwarding by it comes with the
//! router's IPv6 interfaces.

use super::*;
use crate::ip6::fib::is_link_local;
use crate::ip6::NextHop6;
use crate::wire::Ipv6Net;
use std::net::Ipv6Addr;

impl Switch {
    /// Adds an IPv6 address to a bridge's router interface (made on the
    /// first one, with its link-local address), puts its connected route
    /// in, and tells the link (an unsolicited neighbour advertisement).
    pub fn addr6_add(&mut self, bridge: &str, net: Ipv6Net) -> Result<(), SwitchError> {
        let b = self.existing_bridge(bridge)?;
        // A subnet on one bridge only, as for IPv4.
        let elsewhere = self
            .router6
            .ifaces()
            .find(|(other, i)| *other != b && i.addrs.iter().any(|a| a.subnet() == net.subnet()));
        if let Some((other, _)) = elsewhere {
            return Err(SwitchError::Subnet6Elsewhere {
                net,
                bridge: self.bridge_name(other).to_string(),
            });
        }
        let mac = router_mac::for_bridge(self.mac_seed, bridge);
        let first = self.router6.iface(b).is_none();
        self.router6.addr_add(b, net, mac)?;
        let now_ms = self.started.elapsed().as_millis() as u64;
        // Detection first; the address is advertised when it ends. A new
        // interface checks its link-local address too.
        if first {
            let ll = self.router6.iface(b).map(|i| i.link_local);
            if let Some(ll) = ll {
                self.l3().start_dad(b, ll, now_ms);
            }
        }
        self.l3().start_dad(b, net.addr, now_ms);
        // Its prefix advertised at once (if the bridge advertises).
        if self.router6.iface(b).is_some_and(|i| i.ra.on) {
            let now_ms = self.started.elapsed().as_millis() as u64;
            self.l3().send_ra(b, now_ms);
        }
        self.flush_emitted();
        log_change!(self, op = "addr_add", addr:% = net, dev = bridge; "addr {net} dev {bridge}");
        Ok(())
    }

    /// Changes what a bridge's router advertisements say (each if given);
    /// turned off, a last one with a router lifetime of 0 tells hosts to
    /// stop using it (RFC 4861 6.2.5).
    pub fn set_ra(
        &mut self,
        bridge: &str,
        change: crate::ip6::RaChange,
    ) -> Result<(), SwitchError> {
        let b = self.existing_bridge(bridge)?;
        let old = &self
            .router6
            .iface(b)
            .ok_or(crate::ip6::Addr6Error::NoInterface)?
            .ra;
        let ra = change.applied(old);
        let was = self.router6.set_ra(b, ra.clone())?;
        let now_ms = self.started.elapsed().as_millis() as u64;
        if was.on || ra.on {
            self.l3().send_ra(b, now_ms);
            self.flush_emitted();
        }
        log_change!(self, op = "bridge_set", bridge, ra = ra.on, ra_lifetime = ra.lifetime;
            "bridge {bridge}: ra {} lifetime {}s rdnss {:?}", if ra.on { "on" } else { "off" }, ra.lifetime, ra.rdnss);
        Ok(())
    }

    /// Adds a permanent IPv6 neighbour (on a bridge with an IPv6 address).
    pub fn neigh6_add(&mut self, ip: Ipv6Addr, mac: Mac, dev: &str) -> Result<(), SwitchError> {
        let b = self.existing_bridge(dev)?;
        if self.router6.iface(b).is_none() {
            return Err(crate::ip6::Addr6Error::NoInterface.into());
        }
        if ip.is_multicast() || ip.is_unspecified() || ip.is_loopback() {
            return Err(SwitchError::BadNeighbor6(ip));
        }
        if self.router6.owner(ip, b).is_some() {
            return Err(SwitchError::Neighbor6IsLocal(ip));
        }
        if !self.l3().neigh6_add(b, ip, mac) {
            return Err(SwitchError::NdFull(self.router6.nd.max()));
        }
        self.flush_emitted();
        log_change!(self, op = "neigh_add", ip:% = ip, mac:% = mac, dev; "neigh {ip} lladdr {mac} dev {dev} permanent");
        Ok(())
    }

    pub fn neigh6_del(&mut self, ip: Ipv6Addr, dev: &str) -> Result<(), SwitchError> {
        let b = self.existing_bridge(dev)?;
        let mut dropped = Vec::new();
        if !self.router6.nd.remove(b, ip, &mut dropped) {
            return Err(SwitchError::NoSuchNeighbor6(ip));
        }
        for i in dropped {
            self.em.free(i);
        }
        log_change!(self, op = "neigh_del", ip:% = ip, dev; "neigh {ip} dev {dev}: deleted");
        Ok(())
    }

    pub fn addr6_del(&mut self, bridge: &str, net: Ipv6Net) -> Result<(), SwitchError> {
        let b = self.existing_bridge(bridge)?;
        let gone = self.router6.addr_del(b, net)?;
        if self.router6.iface(b).is_none() {
            self.l3().forget_neighbors6(b);
        }
        log_change!(self, op = "addr_del", addr:% = net, dev = bridge, routes = gone;
            "addr {net} dev {bridge}: deleted, with {gone} route(s)");
        Ok(())
    }

    /// Adds (or replaces) an IPv6 route via a gateway and/or out of a
    /// bridge. A link-local gateway needs the bridge; another gateway must
    /// be reached by a route straight out of a bridge (no gateway), as an
    /// IPv4 gateway must be on a connected subnet.
    pub fn route6_add(
        &mut self,
        dst: Ipv6Net,
        via: Option<Ipv6Addr>,
        dev: Option<&str>,
    ) -> Result<(), SwitchError> {
        let dev = dev.map(|d| self.existing_bridge(d)).transpose()?;
        if dst.subnet() != dst {
            return Err(Route6Error::HostBits(dst, dst.subnet()).into());
        }
        if let Some(nh) = self.router6.fib.get(dst) {
            if self.router6.is_connected(dst, nh) {
                return Err(Route6Error::Connected(dst).into());
            }
        }
        let next_hop = match (via, dev) {
            (Some(gw), _) if gw.is_unspecified() || gw.is_loopback() || gw.is_multicast() => {
                return Err(Route6Error::BadGateway(gw).into())
            }
            (Some(gw), Some(bridge)) if is_link_local(gw) => NextHop6 {
                bridge,
                gateway: Some(gw),
            },
            (Some(gw), None) if is_link_local(gw) => {
                return Err(Route6Error::LinkLocalNeedsDev(gw).into())
            }
            (Some(gw), dev) => match self.router6.fib.matching_route(gw) {
                Some((
                    _,
                    NextHop6 {
                        bridge,
                        gateway: None,
                    },
                )) if dev.is_none_or(|d| d == bridge) => NextHop6 {
                    bridge,
                    gateway: Some(gw),
                },
                _ => {
                    let on = dev.map_or(String::new(), |d| format!(" {}", self.bridge_name(d)));
                    return Err(Route6Error::GatewayUnreachable(gw, on).into());
                }
            },
            (None, Some(bridge)) => NextHop6 {
                bridge,
                gateway: None,
            },
            (None, None) => return Err(Route6Error::NoNextHop.into()),
        };
        self.router6
            .fib
            .insert(dst, next_hop)
            .map_err(Route6Error::from)?;
        Ok(())
    }

    pub fn route6_del(&mut self, dst: Ipv6Net) -> Result<(), SwitchError> {
        if dst.subnet() != dst {
            return Err(Route6Error::HostBits(dst, dst.subnet()).into());
        }
        self.router6.fib.remove(dst).map_err(Route6Error::from)?;
        Ok(())
    }

    /// The IPv6 route for exactly `dst`, if there is one.
    pub fn route6_exact(&self, dst: Ipv6Net) -> Option<RouteInfo> {
        let nh = self.router6.fib.get(dst.subnet())?;
        Some(self.route6_info(dst.subnet(), nh))
    }

    pub(super) fn route6_info(&self, dst: Ipv6Net, nh: NextHop6) -> RouteInfo {
        RouteInfo {
            dst: IpNet::V6(dst),
            via: nh.gateway.map(IpAddr::V6),
            dev: self.bridge_name(nh.bridge).to_string(),
            proto: if self.router6.is_connected(dst, nh) {
                RouteOrigin::Connected
            } else {
                RouteOrigin::Static
            },
        }
    }

    /// The IPv6 routes `filter` lets through (its prefix, if any, IPv6),
    /// longest prefixes first; at most `limit`, with how many match.
    pub(super) fn routes6_matching(
        &self,
        limit: usize,
        filter: &RouteFilter,
        dev: Option<BridgeId>,
    ) -> (usize, Vec<RouteInfo>) {
        let dst = match filter.dst {
            Some(IpNet::V4(_)) => return (0, Vec::new()),
            Some(IpNet::V6(d)) => Some(d),
            None => None,
        };
        let wanted = |n: &Ipv6Net, nh: &NextHop6| {
            let in_dst = dst.is_none_or(|d| {
                if filter.root {
                    n.len >= d.len && d.contains(n.addr)
                } else {
                    n.len == d.len && n.addr == d.network()
                }
            });
            in_dst && dev.is_none_or(|b| nh.bridge == b)
        };
        let mut total = 0;
        let mut rows = Vec::new();
        for (n, nh) in self.router6.fib.routes() {
            if wanted(&n, &nh) {
                total += 1;
                if rows.len() < limit {
                    rows.push(self.route6_info(n, nh));
                }
            }
        }
        (total, rows)
    }

    /// Whether packets to `addr` are never routed: unspecified, loopback,
    /// multicast and link-local addresses (RFC 4291 2.5.6: link-local
    /// packets never leave their link).
    pub fn never_forwarded6(&self, addr: Ipv6Addr) -> bool {
        addr.is_unspecified() || addr.is_loopback() || addr.is_multicast() || is_link_local(addr)
    }

    /// The routing decision for one IPv6 address. Which neighbour and port
    /// it goes to comes with NDP.
    pub fn route6_get(&self, addr: Ipv6Addr) -> Option<RouteGet> {
        if self.never_forwarded6(addr) {
            return None;
        }
        // The router's own address: answered, not routed.
        if let Some(b) = self.router6.owner(addr, 0).filter(|_| !is_link_local(addr)) {
            let dev = self.bridge_name(b).to_string();
            return Some(RouteGet::local(
                addr.into(),
                dev,
                self.router6.router_mac(b),
            ));
        }
        let (net, nh) = self.router6.fib.matching_route(addr)?;
        let next = nh.gateway.unwrap_or(addr);
        let mac = self
            .router6
            .nd
            .get(nh.bridge, next)
            .filter(|n| n.state.has_mac())
            .map(|n| n.mac);
        let port = mac.and_then(|m| self.port_toward(nh.bridge, m));
        let src = self.router6.iface(nh.bridge).map(|i| {
            i.addrs
                .iter()
                .find(|a| a.contains(next))
                .map_or(i.link_local, |a| a.addr)
        });
        Some(RouteGet {
            addr: IpAddr::V6(addr),
            route: self.route6_info(net, nh),
            next_hop: IpAddr::V6(next),
            src: src.map(IpAddr::V6),
            neighbor_mac: mac,
            port,
        })
    }

    /// The permanent IPv6 neighbours, as the running state lists them.
    pub(super) fn neighbors6_state(&self) -> Vec<(Ipv6Addr, Mac, String)> {
        let mut rows: Vec<(Ipv6Addr, Mac, String)> = self
            .router6
            .nd
            .entries()
            .filter(|(_, _, n)| n.state == NeighState::Permanent)
            .map(|(b, ip, n)| (ip, n.mac, self.bridge_name(b).to_string()))
            .collect();
        rows.sort();
        rows
    }

    /// The IPv6 routes as the running state lists them.
    pub(super) fn routes6_state(&self) -> Vec<(Ipv6Net, Option<Ipv6Addr>, String)> {
        self.router6
            .fib
            .routes()
            .into_iter()
            .filter(|&(n, nh)| !self.router6.is_connected(n, nh))
            .map(|(n, nh)| (n, nh.gateway, self.bridge_name(nh.bridge).to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn ipv6_routes_are_checked_listed_looked_up_and_go_with_their_bridge() {
        let mut sw = Switch::new(SwitchConfig::default(), None);
        sw.add_bridge("br1").unwrap();
        let add = |sw: &mut Switch, dst: &str, via: Option<IpAddr>, dev: Option<&str>| {
            sw.route_add(dst.parse().unwrap(), via, dev)
        };
        let err = |r: Result<(), SwitchError>| r.unwrap_err().to_string();
        assert!(err(add(&mut sw, "2001:db8::1/64", None, Some("br1"))).contains("host bits"));
        assert!(err(add(&mut sw, "::/0", ip("fe80::1"), None)).contains("give 'dev BRIDGE'"));
        assert!(err(add(&mut sw, "::/0", ip("ff02::1"), Some("br1"))).contains("not a unicast"));
        assert!(err(add(&mut sw, "::/0", ip("10.0.0.1"), None)).contains("family"));
        assert!(
            err(add(&mut sw, "2001:db8:9::/48", ip("2001:db8:2::2"), None))
                .contains("reached by no route")
        );
        assert!(err(add(&mut sw, "::/0", None, Some("nosuch"))).contains("nosuch"));
        add(&mut sw, "2001:db8:2::/64", None, Some("br1")).unwrap();
        add(&mut sw, "2001:db8:9::/48", ip("2001:db8:2::2"), None).unwrap();
        add(&mut sw, "::/0", ip("fe80::1"), Some(DEFAULT_BRIDGE)).unwrap();
        add(&mut sw, "10.9.0.0/16", None, Some("br1")).unwrap_err(); // no IPv4 address

        let get = sw.route_get("2001:db8:9::7".parse().unwrap()).unwrap();
        assert_eq!(get.route.dst.to_string(), "2001:db8:9::/48");
        assert_eq!(get.next_hop.to_string(), "2001:db8:2::2");
        assert_eq!(get.route.dev, "br1");
        let get = sw.route_get("2a00::1".parse().unwrap()).unwrap();
        assert_eq!(
            (get.route.dev.as_str(), get.next_hop.to_string()),
            (DEFAULT_BRIDGE, "fe80::1".into())
        );
        assert!(sw.route_get("fe80::9".parse().unwrap()).is_none());
        assert!(sw.never_forwarded("ff02::1".parse().unwrap()));

        let (total, rows) = sw.routes(10);
        assert_eq!((total, rows.len()), (3, 3));
        let only = |dst: &str, root: bool| {
            let filter = RouteFilter {
                dst: Some(dst.parse().unwrap()),
                root,
                dev: None,
            };
            sw.routes_matching(10, &filter).unwrap().0
        };
        assert_eq!(only("2001:db8::/32", true), 2);
        assert_eq!(only("2001:db8::/32", false), 0);
        assert_eq!(only("10.0.0.0/8", true), 0);
        assert_eq!(
            sw.route_exact("2001:db8:2::/64".parse().unwrap())
                .unwrap()
                .via,
            None
        );

        sw.route_del("2001:db8:9::/48".parse().unwrap()).unwrap();
        assert!(err(sw.route_del("2001:db8:9::/48".parse().unwrap())).contains("no such route"));
        sw.del_bridge("br1").unwrap();
        assert_eq!(sw.routes(10).0, 1, "br1's route went with it");
        assert_eq!(sw.running_state().routes6.len(), 1);
    }
}
