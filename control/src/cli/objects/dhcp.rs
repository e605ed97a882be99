//! `dhcp add|del|show|leases` and `dhcp host add|del`.

use super::*;
use crate::dhcp::Pool;
use std::net::Ipv4Addr;

fn addr(ctx: &str, what: &str, s: &str) -> Result<Ipv4Addr, String> {
    s.parse()
        .map_err(|_| format!("{ctx}: {what} must be an IPv4 address, not '{s}'"))
}

/// `dhcp ...`.
pub(in crate::cli) fn parse_dhcp(
    command: &str,
    w: &mut Words,
) -> Result<(Request, Output), String> {
    let ctx = w.context.clone();
    Ok(match command {
        "show" | "list" | "ls" => (Request::DhcpShow, Output::DhcpPools),
        "leases" => (Request::DhcpLeases, Output::DhcpLeases),
        "add" => (
            Request::DhcpAdd {
                pool: parse_pool(&ctx, w)?,
            },
            Output::Nothing,
        ),
        "del" | "delete" => {
            let bridge = w.name("bridge")?;
            if let Some(x) = w.next() {
                return Err(w.unexpected(&x));
            }
            (Request::DhcpDel { bridge }, Output::Nothing)
        }
        "host" => {
            let sub = w
                .next()
                .ok_or_else(|| format!("{ctx}: host add|del BRIDGE MAC ..."))?;
            let bridge = w.name("bridge")?;
            let mac = mac(&ctx, w.next().as_deref())?;
            match sub.as_str() {
                "add" => {
                    let ip = addr(&ctx, "the address", &w.value("address", "an IPv4 address")?)?;
                    let mut name = None;
                    while let Some(x) = w.next() {
                        match x.as_str() {
                            "name" => name = Some(w.value("name", "a host name")?),
                            x => return Err(w.unexpected(x)),
                        }
                    }
                    let req = Request::DhcpHostAdd {
                        bridge,
                        mac,
                        ip,
                        name,
                    };
                    (req, Output::Nothing)
                }
                "del" | "delete" => (Request::DhcpHostDel { bridge, mac }, Output::Nothing),
                other => return Err(format!("{ctx}: host {other}: try host add or host del")),
            }
        }
        c => {
            return Err(format!(
                "dhcp: unknown command '{c}' (try: add, del, show, leases, host add, host del)"
            ))
        }
    })
}

/// `BRIDGE range A-B [router R] [dns D[,D]] [lease SECS] [domain NAME]
/// [mtu N] [route PREFIX via GW]...`.
fn parse_pool(ctx: &str, w: &mut Words) -> Result<Pool, String> {
    let bridge = w.name("bridge")?;
    let mut range = None;
    let mut pool = Pool {
        bridge,
        first: Ipv4Addr::UNSPECIFIED,
        last: Ipv4Addr::UNSPECIFIED,
        router: None,
        dns: Vec::new(),
        lease_secs: 3600,
        domain: None,
        mtu: None,
        routes: Vec::new(),
        hosts: Vec::new(),
    };
    while let Some(x) = w.next() {
        match x.as_str() {
            "range" => {
                let v = w.value("range", "FIRST-LAST")?;
                let (a, b) = v
                    .split_once('-')
                    .ok_or_else(|| format!("{ctx}: range is FIRST-LAST, not '{v}'"))?;
                range = Some((addr(ctx, "range", a)?, addr(ctx, "range", b)?));
            }
            "router" => pool.router = Some(addr(ctx, "router", &w.value("router", "an address")?)?),
            "dns" => {
                let v = w.value("dns", "addresses (a,b)")?;
                pool.dns = v
                    .split(',')
                    .map(|a| addr(ctx, "dns", a))
                    .collect::<Result<_, _>>()?;
            }
            "lease" => pool.lease_secs = number(ctx, "lease", &w.value("lease", "seconds")?)?,
            "domain" => pool.domain = Some(w.value("domain", "a domain name")?),
            "mtu" => {
                let v = w.value("mtu", "bytes")?;
                pool.mtu = Some(
                    v.parse()
                        .map_err(|_| format!("{ctx}: mtu must be bytes, not '{v}'"))?,
                );
            }
            "route" => {
                let v = w.value("route", "a prefix")?;
                let dst: Ipv4Net = v.parse().map_err(|e| format!("{ctx}: route {v}: {e}"))?;
                if w.next().as_deref() != Some("via") {
                    return Err(format!("{ctx}: route {v} via GATEWAY"));
                }
                let gw = addr(ctx, "gateway", &w.value("via", "a gateway")?)?;
                pool.routes.push((dst, gw));
            }
            x => return Err(w.unexpected(x)),
        }
    }
    let (first, last) = range.ok_or_else(|| format!("{ctx}: missing 'range FIRST-LAST'"))?;
    pool.first = first;
    pool.last = last;
    Ok(pool)
}
