//! The IPv6 parts of a config file: bridges' IPv6 addresses and router
//! advertisement settings, and `[[route]]`s to IPv6 prefixes.

use super::*;

impl Checker<'_> {
    /// An IPv6 address of bridge `bridge` (whose addresses so far are
    /// `addrs`): one a router can have, on a subnet of no other bridge.
    pub(super) fn address6(
        &self,
        span: &Range<usize>,
        bridge: &str,
        a: &Ipv6Net,
        addrs: &[Ipv6Net],
        subnets: &mut HashMap<Ipv6Net, String>,
    ) -> Result<(), ConfigError> {
        let ip = a.addr;
        let why =
            if ip.is_multicast() || ip.is_loopback() || ip.is_unspecified() || is_link_local(ip) {
                "not a unicast address a router can have (the link-local one is made from the \
             router MAC)"
                    .to_string()
            } else if a.len > 126 {
                "a /127 or /128 leaves no room for hosts; give the link's prefix length (usually \
             /64)"
                    .to_string()
            } else if addrs.contains(a) {
                "listed twice".to_string()
            } else {
                match subnets.get(&a.subnet()) {
                    Some(other) if other != bridge => {
                        format!("subnet {} is already on bridge {other}", a.subnet())
                    }
                    _ => {
                        subnets.insert(a.subnet(), bridge.to_string());
                        return Ok(());
                    }
                }
            };
        Err(self.key_err(
            span,
            "addresses",
            format!("bridge {bridge}: address {a}: {why}"),
        ))
    }

    /// A bridge's router advertisement settings (`None` without an IPv6
    /// address, where giving one is an error).
    pub(super) fn bridge_ra(
        &self,
        span: &Range<usize>,
        b: &BridgeCfg,
        has_v6: bool,
    ) -> Result<Option<Ra>, ConfigError> {
        // Router advertisements are the IPv6 interface's.
        for (key, given) in [
            ("ra", b.ra.is_some()),
            ("ra_lifetime", b.ra_lifetime.is_some()),
            ("rdnss", b.rdnss.is_some()),
            ("ra_valid_lft", b.ra_valid_lft.is_some()),
            ("ra_preferred_lft", b.ra_preferred_lft.is_some()),
        ] {
            if given && !has_v6 {
                return Err(self.key_err(
                    span,
                    key,
                    format!(
                        "bridge {}: {key} is for router advertisements, which need an IPv6 \
                     address; add one, or drop the {key}",
                        b.name
                    ),
                ));
            }
        }
        let ra = has_v6.then(|| {
            let d = Ra::default();
            Ra {
                on: b.ra.unwrap_or(d.on),
                lifetime: b.ra_lifetime.unwrap_or(d.lifetime),
                rdnss: b.rdnss.clone().unwrap_or(d.rdnss),
                valid_lft: b.ra_valid_lft.unwrap_or(d.valid_lft),
                preferred_lft: b.ra_preferred_lft.unwrap_or(d.preferred_lft),
            }
        });
        if let Some(ra) = ra.as_ref().filter(|ra| ra.preferred_lft > ra.valid_lft) {
            return Err(self.key_err(
                span,
                "ra_preferred_lft",
                format!(
                    "bridge {}: ra_preferred_lft {} is over ra_valid_lft {}",
                    b.name, ra.preferred_lft, ra.valid_lft
                ),
            ));
        }
        Ok(ra)
    }

    /// The `[[route]]`s of one family (IPv6 if `v6`), with their spans;
    /// a gateway of the other family than its prefix is an error.
    pub(super) fn routes_of_family<N, A>(
        &self,
        f: &File,
        v6: bool,
        family: impl Fn(IpNet, Option<IpAddr>) -> Option<(N, Option<A>)>,
    ) -> Result<Vec<FamilyRoute<N, A>>, ConfigError> {
        let mut out = Vec::new();
        for r in &f.routes {
            let span = r.span();
            let r = r.get_ref();
            if r.dst.is_ipv6() != v6 {
                continue;
            }
            if r.via.is_some_and(|gw| gw.is_ipv6() != v6) {
                return Err(self.key_err(
                    &span,
                    "via",
                    format!(
                        "route {}: the gateway {} is not of the prefix's family",
                        r.dst,
                        r.via.expect("checked")
                    ),
                ));
            }
            let (dst, via) = family(r.dst, r.via).expect("of the family");
            out.push(FamilyRoute {
                span,
                dst,
                via,
                dev: r.dev.clone(),
            });
        }
        Ok(out)
    }

    /// `[[route]]`s to IPv6 prefixes: a link-local gateway needs `dev`;
    /// another must be reached by an IPv6 route straight out of a bridge
    /// in the file, as the router will check.
    #[allow(clippy::type_complexity)]
    pub(super) fn routes6(
        &self,
        f: &File,
        bridges: &Bridges,
    ) -> Result<Vec<(Ipv6Net, Option<Ipv6Addr>, String)>, ConfigError> {
        let v6 = self.routes_of_family(f, true, |dst, via| match (dst, via) {
            (IpNet::V6(d), None) => Some((d, None)),
            (IpNet::V6(d), Some(IpAddr::V6(gw))) => Some((d, Some(gw))),
            _ => None,
        })?;
        let mut seen = HashSet::with_capacity(v6.len());
        // Gateways are reached through the subnets of the bridges' IPv6
        // addresses and the routes straight out of a bridge.
        let mut onlink: Vec<(Ipv6Net, &str)> = bridges
            .list
            .iter()
            .flat_map(|b| b.addrs6.iter().map(|a| (a.subnet(), b.name.as_str())))
            .collect();
        for r in &v6 {
            let dst = r.dst;
            if dst.subnet() != dst {
                return Err(self.key_err(
                    &r.span,
                    "dst",
                    format!(
                        "route {dst}: host bits are set; did you mean {}?",
                        dst.subnet()
                    ),
                ));
            }
            if !seen.insert(dst) {
                return Err(self.key_err(&r.span, "dst", format!("route {dst}: listed twice")));
            }
            if let Some((_, b)) = onlink.iter().find(|(n, _)| *n == dst) {
                return Err(self.key_err(
                    &r.span,
                    "dst",
                    format!(
                        "route {dst}: that is the connected route of bridge {b}'s address; drop it"
                    ),
                ));
            }
            if let Some(d) = &r.dev {
                if !bridges.list.iter().any(|b| &b.name == d) {
                    return Err(self.key_err(
                        &r.span,
                        "dev",
                        format!("route {dst}: no bridge '{d}' in this file"),
                    ));
                }
            }
            match (r.via, &r.dev) {
                (None, None) => {
                    return Err(self.err(
                        &r.span,
                        format!("route {dst}: give via = \"GATEWAY\" or dev = \"BRIDGE\""),
                    ))
                }
                (None, Some(d)) => onlink.push((dst, d)),
                _ => {}
            }
        }
        let mut routes = Vec::with_capacity(v6.len());
        for r in &v6 {
            let dev = match (r.via, &r.dev) {
                (None, Some(d)) => d.clone(),
                (Some(gw), _) if gw.is_unspecified() || gw.is_loopback() || gw.is_multicast() => {
                    return Err(self.key_err(
                        &r.span,
                        "via",
                        format!("route {} via {gw}: not a unicast address", r.dst),
                    ))
                }
                (Some(gw), Some(d)) if is_link_local(gw) => d.clone(),
                (Some(gw), None) if is_link_local(gw) => {
                    return Err(self.key_err(
                        &r.span,
                        "via",
                        format!(
                            "route {} via {gw}: a link-local gateway needs dev = \"BRIDGE\"",
                            r.dst
                        ),
                    ))
                }
                (Some(gw), dev) => {
                    let on = onlink
                        .iter()
                        .filter(|(n, _)| n.contains(gw))
                        .max_by_key(|(n, _)| n.len)
                        .map(|(_, b)| *b);
                    match on {
                        Some(b) if dev.as_deref().is_none_or(|d| d == b) => b.to_string(),
                        _ => {
                            return Err(self.key_err(
                                &r.span,
                                "via",
                                format!(
                                    "route {} via {gw}: no IPv6 route out of {} covers the \
                                     gateway; add one (dst = \"PREFIX\", dev = \"BRIDGE\")",
                                    r.dst,
                                    dev.as_deref().unwrap_or("a bridge")
                                ),
                            ))
                        }
                    }
                }
                (None, None) => unreachable!("checked above"),
            };
            routes.push((r.dst, r.via, dev));
        }
        Ok(routes)
    }
}

/// A `[[route]]` of one family, as [`Checker::routes_of_family`] gives it.
pub(super) struct FamilyRoute<N, A> {
    pub(super) span: std::ops::Range<usize>,
    pub(super) dst: N,
    pub(super) via: Option<A>,
    pub(super) dev: Option<String>,
}
