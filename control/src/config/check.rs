//! The checker: a parsed file, table by table, against what the switch will
//! accept; every error names the file, the line and the fix.

use super::*;

mod dhcp;
mod v6;
mod vlan;

pub(super) struct Checker<'a> {
    pub(super) file: &'a str,
    pub(super) text: &'a str,
    pub(super) lines: Lines,
    /// Bridge and port names seen so far: they share one namespace.
    pub(super) names: HashSet<String>,
}

/// The checked bridges, and what the other tables are checked against.
struct Bridges {
    list: Vec<BridgeState>,
    /// Each connected subnet's bridge.
    subnets: HashMap<Ipv4Net, String>,
    /// The router's own addresses: never a gateway or a neighbour.
    local: HashSet<Ipv4Addr>,
}

impl Checker<'_> {
    fn err(&self, span: &Range<usize>, message: String) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            line: self.lines.line(span.start),
            message,
        }
    }

    /// An error serde gave without a position, about the table at `span`:
    /// at the line of the key or value it names, if it names one.
    fn value_err(&self, span: &Range<usize>, table: &str, message: &str) -> ConfigError {
        let message = message
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        let quoted = |open: &str, close: char| {
            let from = message.find(open)? + open.len();
            let len = message[from..].find(close)?;
            Some(message[from..from + len].to_string())
        };
        let full = format!("{table}: {message}");
        // "unknown field `ot`", "... in `kind`": a key.
        if let Some(key) = quoted("field `", '`').or_else(|| quoted("in `", '`')) {
            return self.key_err(span, &key, full);
        }
        // "invalid type: string \"8080\"", "integer `70000`": a value.
        let value = quoted("\"", '"')
            .map(|v| format!("\"{v}\""))
            .or_else(|| quoted("`", '`'));
        let body = &self.text[span.clone()];
        let at = value.and_then(|v| {
            let mut offset = 0;
            body.split_inclusive('\n').find_map(|l| {
                let here = offset;
                offset += l.len();
                let (_, rhs) = l.split_once('=')?;
                rhs.contains(&v).then_some(here)
            })
        });
        ConfigError {
            file: self.file.to_string(),
            line: self.lines.line(span.start + at.unwrap_or(0)),
            message: full,
        }
    }

    /// The line of `key = ...` inside the table at `span`, or the table's.
    fn key_err(&self, span: &Range<usize>, key: &str, message: String) -> ConfigError {
        let body = &self.text[span.clone()];
        let offset = body
            .match_indices(key)
            .find(|(i, _)| {
                let before = body[..*i].chars().next_back();
                let after = body[i + key.len()..].trim_start();
                matches!(before, None | Some('\n' | ' ' | '\t' | '{' | ','))
                    && after.starts_with('=')
            })
            .map_or(0, |(i, _)| i);
        ConfigError {
            file: self.file.to_string(),
            line: self.lines.line(span.start + offset),
            message,
        }
    }

    fn new_name(&mut self, span: &Range<usize>, what: &str, name: &str) -> Result<(), ConfigError> {
        if port::sys::check_ifname(name).is_err() {
            return Err(self.key_err(
                span,
                "name",
                format!(
                    "{what} '{name}': not a valid interface name (1 to 15 bytes, no '/' or spaces)"
                ),
            ));
        }
        if !self.names.insert(name.to_string()) {
            return Err(self.key_err(
                span,
                "name",
                format!("{what} '{name}': the name is used twice (bridges and ports share names)"),
            ));
        }
        Ok(())
    }

    pub(super) fn check(mut self, f: File) -> Result<Parsed, ConfigError> {
        let limits_line = f.limits.as_ref().map(|l| self.lines.line(l.span().start));
        let mut config = SwitchConfig::default();
        let rx_ring_mib = self.limits(&f, &mut config)?;
        self.timeouts(&f, &mut config)?;
        let bridges = self.bridges(&f, &config)?;
        let (ports, port_lines) = self.ports(&f, &bridges)?;
        let fdb = self.fdb(&f, &ports, &bridges)?;
        let routes = self.routes(&f, &bridges)?;
        let routes6 = self.routes6(&f, &bridges)?;
        let (neighbors, neighbors6) = self.neighbors(&f, &bridges)?;
        let nat = self.nat(&f, &bridges)?;
        let dhcp = self.dhcp(&f, &bridges)?;
        Ok(Parsed {
            state: RunningState {
                config,
                bridges: bridges.list,
                ports,
                fdb,
                routes,
                routes6,
                neighbors,
                neighbors6,
                nat,
            },
            rx_ring_mib,
            limits_line,
            port_lines,
            dhcp,
        })
    }

    /// `[limits]`: table sizes and the receive ring; returns the ring's MiB.
    fn limits(&self, f: &File, config: &mut SwitchConfig) -> Result<u32, ConfigError> {
        let mut rx_ring_mib = DEFAULT_RX_RING_MIB;
        if let Some(l) = &f.limits {
            let span = l.span();
            let l = l.get_ref();
            for (key, v) in [
                ("fdb_max", l.fdb_max),
                ("arp_max", l.arp_max),
                ("nat_max", l.nat_max),
                ("max_routes", l.max_routes),
            ] {
                if v == Some(0) {
                    return Err(self.key_err(
                        &span,
                        key,
                        format!("limits.{key}: must be at least 1"),
                    ));
                }
            }
            config.fdb_max = l.fdb_max.unwrap_or(config.fdb_max);
            config.arp_max = l.arp_max.unwrap_or(config.arp_max);
            config.nat_max = l.nat_max.unwrap_or(config.nat_max);
            config.max_routes = l.max_routes.unwrap_or(config.max_routes);
            rx_ring_mib = l.rx_ring_mib.unwrap_or(rx_ring_mib);
            if !(1..=1024).contains(&rx_ring_mib) {
                return Err(self.key_err(
                    &span,
                    "rx_ring_mib",
                    format!("limits.rx_ring_mib: {rx_ring_mib} is not between 1 and 1024"),
                ));
            }
        }
        Ok(rx_ring_mib)
    }

    /// `[timeouts]`: FDB ageing, ARP and NAT timers.
    fn timeouts(&self, f: &File, config: &mut SwitchConfig) -> Result<(), ConfigError> {
        if let Some(t) = &f.timeouts {
            let span = t.span();
            let t = t.get_ref();
            let ranged = |key: &str, v: Option<u32>, default: u32, max: u32| {
                let v = v.unwrap_or(default);
                if (1..=max).contains(&v) {
                    Ok(v)
                } else {
                    Err(self.key_err(
                        &span,
                        key,
                        format!("timeouts.{key}: {v} is not between 1 and {max}"),
                    ))
                }
            };
            config.ageing_time = ranged(
                "ageing_time",
                t.ageing_time,
                config.ageing_time,
                AgeingTime::MAX,
            )?;
            config.arp_reachable_secs = ranged(
                "arp_reachable_secs",
                t.arp_reachable_secs,
                config.arp_reachable_secs,
                86_400,
            )?;
            config.arp_stale_secs = ranged(
                "arp_stale_secs",
                t.arp_stale_secs,
                config.arp_stale_secs,
                86_400,
            )?;
            let d = Timeouts::default();
            let day = 10 * 86_400;
            config.nat_timeouts = Timeouts {
                tcp_established: ranged(
                    "nat_tcp_established_secs",
                    t.nat_tcp_established_secs,
                    d.tcp_established,
                    day,
                )?,
                tcp_transitory: ranged(
                    "nat_tcp_transitory_secs",
                    t.nat_tcp_transitory_secs,
                    d.tcp_transitory,
                    day,
                )?,
                udp: ranged("nat_udp_secs", t.nat_udp_secs, d.udp, day)?,
                icmp: ranged("nat_icmp_secs", t.nat_icmp_secs, d.icmp, day)?,
            };
        }

        Ok(())
    }

    /// `[[bridge]]`s and their addresses (`br0` is always there).
    fn bridges(&mut self, f: &File, config: &SwitchConfig) -> Result<Bridges, ConfigError> {
        let mut bridges = Vec::new();
        let mut subnets: HashMap<Ipv4Net, String> = HashMap::new();
        let mut subnets6: HashMap<Ipv6Net, String> = HashMap::new();
        // The router's own addresses: never a gateway or a neighbour.
        let mut local: HashSet<Ipv4Addr> = HashSet::new();
        let mut vlan_ifaces = HashSet::new();
        for b in &f.bridges {
            let span = b.span();
            let b = b.get_ref();
            self.new_name(&span, "bridge", &b.name)?;
            let (vlan, group_fwd_mask) = self.bridge_vlans(&span, b, f, &mut vlan_ifaces)?;
            let ageing_time = b.ageing_time.unwrap_or(config.ageing_time);
            if AgeingTime::new(ageing_time).is_err() {
                return Err(self.key_err(
                    &span,
                    "ageing_time",
                    format!(
                        "bridge {}: ageing_time {ageing_time} is not between 1 and 1000000",
                        b.name
                    ),
                ));
            }
            let mut addrs: Vec<Ipv4Net> = Vec::new();
            let mut addrs6: Vec<Ipv6Net> = Vec::new();
            for a in &b.addresses {
                let at = |m: String| self.key_err(&span, "addresses", m);
                let a = match a {
                    IpNet::V4(a) => a,
                    IpNet::V6(a) => {
                        self.address6(&span, &b.name, a, &addrs6, &mut subnets6)?;
                        addrs6.push(*a);
                        continue;
                    }
                };
                if a.len < 31 && (Some(a.addr) == a.broadcast() || a.addr == a.network()) {
                    return Err(at(format!(
                        "bridge {}: address {a} is the subnet's network or broadcast address; \
                         pick a host address",
                        b.name
                    )));
                }
                if addrs.contains(a) {
                    return Err(at(format!(
                        "bridge {}: address {a} is listed twice",
                        b.name
                    )));
                }
                let subnet = a.subnet();
                match subnets.get(&subnet) {
                    Some(other) if *other != b.name => {
                        return Err(at(format!(
                            "bridge {}: address {a}: subnet {subnet} is already on bridge {other}",
                            b.name
                        )))
                    }
                    _ => {
                        subnets.insert(subnet, b.name.clone());
                    }
                }
                local.insert(a.addr);
                addrs.push(*a);
            }
            let mtu = match (b.mtu, addrs.is_empty()) {
                (Some(m), _) if Mtu::new(m).is_err() => {
                    return Err(self.key_err(
                        &span,
                        "mtu",
                        format!(
                            "bridge {}: mtu {m} is not between {} and {}",
                            b.name,
                            Mtu::MIN,
                            Mtu::MAX
                        ),
                    ))
                }
                (Some(_), true) => {
                    return Err(self.key_err(
                        &span,
                        "mtu",
                        format!(
                            "bridge {}: mtu is the router interface's; give the bridge an \
                             address, or drop the mtu",
                            b.name
                        ),
                    ))
                }
                (m, false) => Some(m.map_or(Mtu::DEFAULT.get(), |m| m as u16)),
                (None, true) => None,
            };
            // Like the MTU, these are the router interface's.
            for (key, given) in [
                ("rp_filter", b.rp_filter.is_some()),
                ("redirects", b.redirects.is_some()),
            ] {
                if given && addrs.is_empty() {
                    return Err(self.key_err(
                        &span,
                        key,
                        format!(
                            "bridge {}: {key} is the router interface's; give the bridge an \
                             address, or drop the {key}",
                            b.name
                        ),
                    ));
                }
            }
            let ra = self.bridge_ra(&span, b, !addrs6.is_empty())?;
            let routed = !addrs.is_empty();
            bridges.push(BridgeState {
                name: b.name.clone(),
                ageing_time,
                mtu,
                rp_filter: routed.then(|| b.rp_filter.unwrap_or_default()),
                redirects: routed.then(|| b.redirects.unwrap_or(true)),
                addrs,
                addrs6,
                ra,
                vlan_filtering: b.vlan_filtering.unwrap_or(false),
                group_fwd_mask,
                vlan,
            });
        }
        if !bridges.iter().any(|b| b.name == DEFAULT_BRIDGE) {
            self.names.insert(DEFAULT_BRIDGE.to_string());
            bridges.insert(
                0,
                BridgeState {
                    name: DEFAULT_BRIDGE.to_string(),
                    ageing_time: config.ageing_time,
                    mtu: None,
                    rp_filter: None,
                    redirects: None,
                    addrs: Vec::new(),
                    addrs6: Vec::new(),
                    ra: None,
                    vlan_filtering: false,
                    group_fwd_mask: 0,
                    vlan: None,
                },
            );
        }
        Ok(Bridges {
            list: bridges,
            subnets,
            local,
        })
    }

    /// `[[port]]`s, and the line of each.
    fn ports(
        &mut self,
        f: &File,
        bridges: &Bridges,
    ) -> Result<(Vec<PortState>, HashMap<String, usize>), ConfigError> {
        let bridge = |name: &str| bridges.list.iter().find(|b| b.name == name);
        let mut ports = Vec::new();
        let mut port_lines = HashMap::new();
        for p in &f.ports {
            let span = p.span();
            let p = p.get_ref();
            self.new_name(&span, "port", &p.name)?;
            if p.kind == PortKind::Memory {
                return Err(self.key_err(
                    &span,
                    "kind",
                    format!("port {}: kind is afpacket, tap or vxlan", p.name),
                ));
            }
            if let Some(b) = &p.bridge {
                if let Some(BridgeState {
                    vlan: Some((link, _)),
                    ..
                }) = bridge(b)
                {
                    return Err(self.key_err(
                        &span,
                        "bridge",
                        format!(
                            "port {}: {b} is a VLAN interface; ports join its bridge {link}",
                            p.name
                        ),
                    ));
                }
                if bridge(b).is_none() {
                    return Err(self.key_err(
                        &span,
                        "bridge",
                        format!(
                            "port {}: no bridge '{b}' (add a [[bridge]] with name = \"{b}\")",
                            p.name
                        ),
                    ));
                }
            }
            let vlans = self.port_vlans(&span, p)?;
            let vxlan = self.port_vxlan(&span, p)?;
            if let Some(v) = &vxlan {
                let c = &v.config;
                let same = ports.iter().find(|o: &&PortState| {
                    o.vxlan.as_ref().is_some_and(|o| {
                        (o.config.vni, o.config.local, o.config.dstport)
                            == (c.vni, c.local, c.dstport)
                    })
                });
                if let Some(o) = same {
                    let m = format!(
                        "port {}: VNI {} on {}:{} is {}'s already",
                        p.name, c.vni, c.local, c.dstport, o.name
                    );
                    return Err(self.key_err(&span, "vni", m));
                }
            }
            port_lines.insert(p.name.clone(), self.lines.line(span.start));
            ports.push(PortState {
                name: p.name.clone(),
                kind: p.kind,
                master: p.bridge.clone(),
                vlans: vlans.iter().collect(),
                vxlan,
            });
        }

        Ok((ports, port_lines))
    }

    /// `[[fdb]]`: static entries, on ports that are on a bridge (and in a
    /// VLAN of the port, with VLAN filtering).
    fn fdb(
        &self,
        f: &File,
        ports: &[PortState],
        bridges: &Bridges,
    ) -> Result<Vec<(Mac, String, Option<u16>)>, ConfigError> {
        let mut fdb = Vec::new();
        let mut fdb_seen = HashSet::new();
        for e in &f.fdb {
            let span = e.span();
            let e = e.get_ref();
            let master = match ports.iter().find(|p| p.name == e.dev) {
                None => {
                    return Err(self.key_err(
                        &span,
                        "dev",
                        format!("fdb {}: no port '{}'", e.mac, e.dev),
                    ))
                }
                Some(PortState { master: None, .. }) => {
                    return Err(self.key_err(
                        &span,
                        "dev",
                        format!("fdb {}: port {} is on no bridge; give it one", e.mac, e.dev),
                    ))
                }
                Some(PortState {
                    master: Some(m), ..
                }) => m.clone(),
            };
            if !e.mac.is_unicast() {
                return Err(self.key_err(
                    &span,
                    "mac",
                    format!("fdb {}: static entries must be unicast MACs", e.mac),
                ));
            }
            let vlan = self.fdb_vlan(&span, e, &master, ports, bridges)?;
            if !fdb_seen.insert((e.mac, master.clone(), vlan)) {
                return Err(self.err(
                    &span,
                    format!("fdb {}: listed twice in bridge {master}", e.mac),
                ));
            }
            fdb.push((e.mac, e.dev.clone(), vlan));
        }

        Ok(fdb)
    }

    /// `[[route]]`s: the gateway of each must be on a connected subnet or
    /// a route straight out of a bridge, as the router will check.
    #[allow(clippy::type_complexity)]
    fn routes(
        &self,
        f: &File,
        bridges: &Bridges,
    ) -> Result<Vec<(Ipv4Net, Option<Ipv4Addr>, String)>, ConfigError> {
        let (subnets, local) = (&bridges.subnets, &bridges.local);
        let bridge = |name: &str| bridges.list.iter().find(|b| b.name == name);
        let routed = |dev: &str| bridge(dev).is_some_and(|b| !b.addrs.is_empty());
        let mut onlink: HashMap<(u32, u8), String> = subnets
            .iter()
            .map(|(n, b)| ((u32::from(n.addr), n.len), b.clone()))
            .collect();
        let v4 = self.routes_of_family(f, false, |dst, via| match (dst, via) {
            (IpNet::V4(d), None) => Some((d, None)),
            (IpNet::V4(d), Some(IpAddr::V4(gw))) => Some((d, Some(gw))),
            _ => None,
        })?;
        let mut seen: HashSet<Ipv4Net> = HashSet::with_capacity(v4.len());
        for r in &v4 {
            let span = r.span.clone();
            let dst = r.dst;
            if dst.addr != dst.network() {
                return Err(self.key_err(
                    &span,
                    "dst",
                    format!(
                        "route {dst}: host bits are set; did you mean {}/{}?",
                        dst.network(),
                        dst.len
                    ),
                ));
            }
            if let Some(b) = subnets.get(&dst) {
                return Err(self.key_err(
                    &span,
                    "dst",
                    format!(
                        "route {dst}: that is the connected route of bridge {b}'s address; drop it"
                    ),
                ));
            }
            if !seen.insert(dst) {
                return Err(self.key_err(&span, "dst", format!("route {dst}: listed twice")));
            }
            match (&r.via, &r.dev) {
                (None, None) => {
                    return Err(self.err(
                        &span,
                        format!("route {dst}: give via = \"GATEWAY\" or dev = \"BRIDGE\""),
                    ))
                }
                (Some(gw), _) if local.contains(gw) => {
                    return Err(self.key_err(
                        &span,
                        "via",
                        format!(
                            "route {dst} via {gw}: the gateway is an address of the router itself"
                        ),
                    ))
                }
                (_, Some(d)) if !routed(d) => {
                    return Err(self.key_err(
                        &span,
                        "dev",
                        format!(
                            "route {dst}: bridge '{d}' has no address, so it cannot route; add one"
                        ),
                    ))
                }
                (None, Some(d)) => {
                    onlink.insert((u32::from(dst.addr), dst.len), d.clone());
                }
                _ => {}
            }
        }
        let lens: Vec<u8> = {
            let mut l: Vec<u8> = onlink
                .keys()
                .map(|k| k.1)
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            l.sort_unstable_by(|a, b| b.cmp(a));
            l
        };
        let on_link = |gw: Ipv4Addr| {
            lens.iter().find_map(|&len| {
                let net = Ipv4Net { addr: gw, len }.network();
                onlink.get(&(u32::from(net), len))
            })
        };
        let mut routes = Vec::with_capacity(v4.len());
        for r in &v4 {
            let span = r.span.clone();
            let dev = match (r.via, &r.dev) {
                (None, Some(d)) => d.clone(),
                (Some(gw), dev) => match on_link(gw) {
                    Some(b) if dev.as_ref().is_none_or(|d| d == b) => b.clone(),
                    Some(b) => {
                        return Err(self.key_err(
                            &span,
                            "via",
                            format!(
                                "route {} via {gw}: the gateway is on bridge {b}, not {}",
                                r.dst,
                                dev.as_deref().unwrap_or("")
                            ),
                        ))
                    }
                    None => {
                        return Err(self.key_err(
                            &span,
                            "via",
                            format!(
                                "route {} via {gw}: the gateway is on no bridge's subnet; add an \
                                 address covering it",
                                r.dst
                            ),
                        ))
                    }
                },
                (None, None) => unreachable!("checked above"),
            };
            routes.push((r.dst, r.via, dev));
        }

        Ok(routes)
    }

    /// `[[neighbor]]`s: permanent ARP entries.
    fn neighbors(&self, f: &File, bridges: &Bridges) -> Result<Neighbors, ConfigError> {
        let local = &bridges.local;
        let bridge = |name: &str| bridges.list.iter().find(|b| b.name == name);
        let routed = |dev: &str, v6: bool| {
            bridge(dev).is_some_and(|b| {
                if v6 {
                    !b.addrs6.is_empty()
                } else {
                    !b.addrs.is_empty()
                }
            })
        };
        let mut neighbors = Vec::new();
        let mut neighbors6 = Vec::new();
        let mut neigh_seen = HashSet::new();
        for n in &f.neighbors {
            let span = n.span();
            let n = n.get_ref();
            if !routed(&n.dev, n.ip.is_ipv6()) {
                return Err(self.key_err(
                    &span,
                    "dev",
                    format!(
                        "neigh {}: '{}' is not a bridge with an {} address",
                        n.ip,
                        n.dev,
                        if n.ip.is_ipv6() { "IPv6" } else { "IPv4" }
                    ),
                ));
            }
            if !n.mac.is_unicast() {
                return Err(self.key_err(
                    &span,
                    "mac",
                    format!("neigh {}: a neighbour's MAC must be unicast", n.ip),
                ));
            }
            let is_local = match n.ip {
                IpAddr::V4(a) => local.contains(&a),
                IpAddr::V6(a) => bridges
                    .list
                    .iter()
                    .any(|b| b.addrs6.iter().any(|x| x.addr == a)),
            };
            if is_local {
                return Err(self.key_err(
                    &span,
                    "ip",
                    format!(
                        "neigh {}: an address of the router itself, not a neighbour",
                        n.ip
                    ),
                ));
            }
            if !neigh_seen.insert((n.ip, n.dev.clone())) {
                return Err(self.err(&span, format!("neigh {} dev {}: listed twice", n.ip, n.dev)));
            }
            match n.ip {
                IpAddr::V4(a) => neighbors.push((a, n.mac, n.dev.clone())),
                IpAddr::V6(a) if a.is_multicast() || a.is_unspecified() || a.is_loopback() => {
                    return Err(self.key_err(
                        &span,
                        "ip",
                        format!("neigh {a}: a neighbour must have a unicast address"),
                    ))
                }
                IpAddr::V6(a) => neighbors6.push((a, n.mac, n.dev.clone())),
            }
        }
        Ok((neighbors, neighbors6))
    }

    /// `[[nat]]` rules.
    fn nat(&self, f: &File, bridges: &Bridges) -> Result<Vec<NatRuleState>, ConfigError> {
        let bridge = |name: &str| bridges.list.iter().find(|b| b.name == name);
        let mut nat = Vec::new();
        for r in &f.nat {
            let span = r.span();
            let spec: NatRuleSpec = toml::Value::Table(r.get_ref().clone())
                .try_into()
                .map_err(|e: toml::de::Error| self.value_err(&span, "nat", e.message()))?;
            let rule = nat_rule(&spec)
                .map_err(|(key, m)| self.key_err(&span, key, format!("nat: {m}")))?;
            // A rule may wait for its bridge's address (as the running
            // switch allows, so `save` then `apply` is a no-op).
            if bridge(&rule.bridge).is_none() {
                let key = if matches!(rule.action, NatAction::Dnat { .. }) {
                    "in"
                } else {
                    "out"
                };
                return Err(self.key_err(&span, key, format!("nat: no bridge '{}'", rule.bridge)));
            }
            if let NatAction::Dnat { proto, dport, .. } = rule.action {
                let taken = nat.iter().any(|o: &NatRuleState| {
                    o.bridge == rule.bridge
                        && matches!(o.action, NatAction::Dnat { proto: p, dport: d, .. }
                            if p == proto && d == dport)
                });
                if taken {
                    return Err(self.key_err(
                        &span,
                        "dport",
                        format!("nat: port {dport} on {} is published twice", rule.bridge),
                    ));
                }
            }
            nat.push(rule);
        }

        Ok(nat)
    }
}

/// Permanent neighbours of a file: IPv4's and IPv6's.
type Neighbors = (Vec<(Ipv4Addr, Mac, String)>, Vec<(Ipv6Addr, Mac, String)>);
