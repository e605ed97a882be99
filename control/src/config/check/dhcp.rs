//! `[[dhcp]]`: a bridge's DHCP server, checked against the bridge's
//! addresses in the same file.

use super::*;
use crate::dhcp::Pool;

impl Checker<'_> {
    pub(super) fn dhcp(&self, f: &File, bridges: &Bridges) -> Result<Vec<Pool>, ConfigError> {
        let mut pools: Vec<Pool> = Vec::new();
        for d in &f.dhcp {
            let span = d.span();
            let d = d.get_ref();
            let b = &d.bridge;
            let Some(bridge) = bridges.list.iter().find(|x| x.name == *b) else {
                let m = format!("dhcp {b}: no bridge '{b}' (add a [[bridge]] with name = \"{b}\")");
                return Err(self.key_err(&span, "bridge", m));
            };
            if pools.iter().any(|p| p.bridge == *b) {
                return Err(self.err(&span, format!("dhcp {b}: one [[dhcp]] per bridge")));
            }
            let (first, last) = d
                .range
                .split_once('-')
                .and_then(|(a, z)| Some((a.trim().parse().ok()?, z.trim().parse().ok()?)))
                .ok_or_else(|| {
                    let m = format!("dhcp {b}: range '{}' is not FIRST-LAST", d.range);
                    self.key_err(&span, "range", m)
                })?;
            let mut routes = Vec::new();
            for r in &d.routes {
                let parsed = r.split_once(" via ").and_then(|(dst, gw)| {
                    Some((dst.trim().parse().ok()?, gw.trim().parse().ok()?))
                });
                let Some(route) = parsed else {
                    let m = format!("dhcp {b}: route '{r}' is not 'PREFIX via GATEWAY'");
                    return Err(self.key_err(&span, "routes", m));
                };
                routes.push(route);
            }
            let pool = Pool {
                bridge: b.clone(),
                first,
                last,
                router: d.router,
                dns: d.dns.clone(),
                lease_secs: d.lease.unwrap_or(3600),
                domain: d.domain.clone(),
                mtu: d.mtu,
                routes,
                hosts: d.hosts.clone(),
            };
            let net = bridge
                .addrs
                .iter()
                .copied()
                .find(|a| a.contains(first) && a.contains(last))
                .or_else(|| bridge.addrs.first().copied());
            pool.check(net).map_err(|m| self.err(&span, m))?;
            pools.push(pool);
        }
        Ok(pools)
    }
}
