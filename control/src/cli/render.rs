//! What the daemon answered, in words: one renderer per object.

use super::*;

fn route_line(r: &RouteInfo) -> String {
    // As iproute2 prints them: `default`, and an IPv4 route out of a
    // bridge is `scope link` (IPv6 has no scopes on routes).
    let dst = if r.dst.prefix_len() == 0 {
        "default".to_string()
    } else {
        r.dst.subnet().to_string()
    };
    match r.via {
        Some(v) => format!("{dst} via {v} dev {}", r.dev),
        None if r.dst.is_ipv6() => format!("{dst} dev {}", r.dev),
        None => format!("{dst} dev {} scope link", r.dev),
    }
}

fn decode<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, String> {
    serde_json::from_value(v).map_err(|e| format!("unexpected reply from patchbayd: {e}"))
}

/// Renders a result for people.
pub fn render(output: &Output, result: Value) -> Result<String, String> {
    let mut s = String::new();
    match output {
        Output::Nothing => {}
        Output::Flushed => {
            let n = result.as_u64().unwrap_or(0);
            let _ = writeln!(s, "flushed {}", count(n, "entry", "entries"));
        }
        Output::Version => {
            let _ = writeln!(
                s,
                "patchbay {} (patchbayd {}, protocol {})",
                env!("CARGO_PKG_VERSION"),
                result["version"].as_str().unwrap_or("?"),
                result["protocol"]
            );
        }
        Output::Links => links(&mut s, result)?,
        Output::Addrs => addrs(&mut s, result)?,
        Output::Routes => routes(&mut s, result)?,
        Output::RouteGet => route_get(&mut s, result)?,
        Output::Neighbors => neighbors(&mut s, result)?,
        Output::RouteLoad { .. } => {}
        Output::Apply { .. } | Output::Applied => {
            let summary: crate::apply::Summary = decode(result)?;
            let _ = writeln!(s, "{summary}");
        }
        Output::Trace => trace(&mut s, result)?,
        Output::TracePacket => {
            for l in result["lines"].as_array().into_iter().flatten() {
                let _ = writeln!(s, "  {}", l.as_str().unwrap_or(""));
            }
            let _ = writeln!(s, "verdict: {}", result["verdict"].as_str().unwrap_or("?"));
        }
        Output::Capture { .. } | Output::Top { .. } => {}
        Output::Saved => {
            s.push_str(result["text"].as_str().unwrap_or(""));
        }
        Output::NatAdded => {
            let _ = writeln!(s, "rule {}", result.as_u64().unwrap_or(0));
        }
        Output::NatRules => {
            let rules: Vec<NatRuleInfo> = decode(result)?;
            for r in rules {
                let _ = writeln!(s, "{}: {} hits {}", r.id, r.words(), r.hits);
            }
        }
        Output::NatSessions => nat_sessions(&mut s, result)?,
        Output::Fdb => fdb(&mut s, result)?,
        Output::Vlans => vlans(&mut s, result)?,
        Output::DhcpPools => dhcp_pools(&mut s, result)?,
        Output::DhcpLeases => dhcp_leases(&mut s, result)?,
        Output::Stats => stats(&mut s, result)?,
    }
    Ok(s)
}

/// `links`, as a table or lines.
fn links(s: &mut String, result: Value) -> Result<(), String> {
    let LinkShow { ports, bridges } = decode(result)?;
    if !ports.is_empty() {
        let _ = writeln!(
            s,
            "{:<15} {:<8} {:<10} {:<5} {:>10} {:>13} {:>10} {:>13} {:>8}",
            "PORT",
            "TYPE",
            "MASTER",
            "STATE",
            "RX-PKTS",
            "RX-BYTES",
            "TX-PKTS",
            "TX-BYTES",
            "DROPS"
        );
        for p in &ports {
            let _ = writeln!(
                s,
                "{:<15} {:<8} {:<10} {:<5} {:>10} {:>13} {:>10} {:>13} {:>8}",
                p.name,
                p.kind.name(),
                p.master.as_deref().unwrap_or("-"),
                p.state.name(),
                p.rx_packets,
                p.rx_bytes,
                p.tx_packets,
                p.tx_bytes,
                p.drops
            );
        }
    }
    if !bridges.is_empty() {
        if !ports.is_empty() {
            s.push('\n');
        }
        let _ = writeln!(s, "{:<15} {:>7} {:>8}  PORTS", "BRIDGE", "FDB", "AGEING");
        for b in &bridges {
            let _ = writeln!(
                s,
                "{:<15} {:>7} {:>7}s  {}",
                b.name,
                b.fdb_entries,
                b.ageing_time,
                bridge_ports(b)
            );
        }
    }
    Ok(())
}

/// `addrs`, as a table or lines.
fn addrs(s: &mut String, result: Value) -> Result<(), String> {
    let ifaces: Vec<AddrInfo> = decode(result)?;
    for i in &ifaces {
        let _ = writeln!(
            s,
            "{}: router mac {} mtu {} rp_filter {} redirects {}",
            i.dev,
            i.mac,
            i.mtu,
            i.rp_filter,
            if i.redirects { "on" } else { "off" }
        );
        for a in &i.addrs {
            let _ = writeln!(s, "    inet {a}");
        }
        for a in &i.addrs6 {
            let dup = if i.dad_failed.contains(&a.addr) {
                " dadfailed (another node of the link has it)"
            } else {
                ""
            };
            let _ = writeln!(s, "    inet6 {a}{dup}");
        }
        if let Some(ll) = i.link_local {
            let _ = writeln!(s, "    inet6 {ll}/64 scope link");
        }
        if let Some(ra) = &i.ra {
            let mut line = format!(
                "    ra {} lifetime {}s prefixes valid {}s preferred {}s",
                if ra.on { "on" } else { "off" },
                ra.lifetime,
                ra.valid_lft,
                ra.preferred_lft
            );
            if !ra.rdnss.is_empty() {
                let dns: Vec<String> = ra.rdnss.iter().map(|a| a.to_string()).collect();
                let _ = write!(line, " rdnss {}", dns.join(","));
            }
            let _ = writeln!(s, "{line}");
        }
    }
    Ok(())
}

/// `routes`, as a table or lines.
fn routes(s: &mut String, mut result: Value) -> Result<(), String> {
    let total = result["total"].as_u64().unwrap_or(0);
    let routes: Vec<RouteInfo> = decode(result["routes"].take())?;
    for r in &routes {
        let _ = writeln!(s, "{}", route_line(r));
    }
    if (routes.len() as u64) < total {
        let _ = writeln!(
            s,
            "... {} more (showing the first 10,000; 'patchbay save' lists all)",
            total - routes.len() as u64
        );
    }
    Ok(())
}

/// `route get`, as a table or lines.
fn route_get(s: &mut String, result: Value) -> Result<(), String> {
    let g: RouteGet = decode(result)?;
    if g.route.proto == RouteOrigin::Local {
        let _ = writeln!(s, "local {} dev {}", g.addr, g.route.dev);
        let _ = writeln!(s, "    an address of the router: it answers pings itself");
        return Ok(());
    }
    let mut line = format!("{}", g.addr);
    if let Some(v) = g.route.via {
        let _ = write!(line, " via {v}");
    }
    let _ = write!(line, " dev {}", g.route.dev);
    if let Some(src) = g.src {
        let _ = write!(line, " src {src}");
    }
    let _ = writeln!(s, "{line}");
    let _ = writeln!(s, "    route {} ({})", route_line(&g.route), g.route.proto);
    match (g.neighbor_mac, g.port) {
        (Some(m), Some(p)) => {
            let _ = writeln!(s, "    next hop {} is {m} on port {p}", g.next_hop);
        }
        (Some(m), None) => {
            let _ = writeln!(
                s,
                "    next hop {} is {m} (port not learned yet: flooded)",
                g.next_hop
            );
        }
        _ if g.addr.is_ipv6() => {
            let _ = writeln!(
                s,
                "    next hop {} not resolved yet: the first packet sends a neighbour \
                 solicitation",
                g.next_hop
            );
        }
        _ => {
            let _ = writeln!(
                s,
                "    next hop {} not resolved yet: the first packet asks ARP",
                g.next_hop
            );
        }
    }
    Ok(())
}

/// `neighbors`, as a table or lines.
fn neighbors(s: &mut String, result: Value) -> Result<(), String> {
    let rows: Vec<NeighInfo> = decode(result)?;
    for n in rows {
        let mut line = format!("{} dev {}", n.ip, n.dev);
        if let Some(m) = n.mac {
            let _ = write!(line, " lladdr {m}");
        }
        if let Some(p) = &n.port {
            let _ = write!(line, " port {p}");
        }
        let _ = write!(line, " {}", n.state.name().to_uppercase());
        if let Some(age) = n.age {
            let _ = write!(line, " age {age}s");
        }
        if n.queued > 0 {
            let _ = write!(line, " queued {}", n.queued);
        }
        let _ = writeln!(s, "{line}");
    }
    Ok(())
}

/// `trace`, as a table or lines.
fn trace(s: &mut String, result: Value) -> Result<(), String> {
    if let Some(packets) = result["packets"].as_array() {
        for p in packets {
            let _ = writeln!(
                s,
                "packet {} at +{:.6} s",
                p["number"],
                p["at_us"].as_u64().unwrap_or(0) as f64 / 1e6
            );
            for l in p["lines"].as_array().into_iter().flatten() {
                let _ = writeln!(s, "  {}", l.as_str().unwrap_or(""));
            }
            if p["truncated"] == true {
                let _ = writeln!(s, "  ... (more stages than a trace keeps)");
            }
        }
    }
    let left = result["left"].as_u64().unwrap_or(0);
    if result["armed"] == true {
        let _ = writeln!(s, "(tracing: {left} packets to go)");
    } else if result["packets"].as_array().is_none_or(Vec::is_empty) {
        let _ = writeln!(s, "no packets traced (start with 'patchbay trace start')");
    }
    Ok(())
}

/// `nat sessions`, as a table or lines.
fn nat_sessions(s: &mut String, result: Value) -> Result<(), String> {
    let rows: Vec<NatSessionInfo> = decode(result)?;
    if rows.is_empty() {
        return Ok(());
    }
    let _ = writeln!(
        s,
        "{:<5} {:<22} {:<22} {:<22} {:<12} {:>5} {:>6}",
        "PROTO", "INSIDE", "OUTSIDE", "REMOTE", "STATE", "RULE", "AGE"
    );
    for r in rows {
        let state = serde_json::to_value(r.state)
            .ok()
            .and_then(|v| v.as_str().map(String::from));
        let _ = writeln!(
            s,
            "{:<5} {:<22} {:<22} {:<22} {:<12} {:>5} {:>5}s",
            r.proto,
            r.inside,
            r.outside,
            r.remote,
            state.unwrap_or_default(),
            r.rule,
            r.age
        );
    }
    Ok(())
}

/// `fdb`, as a table or lines.
fn fdb(s: &mut String, result: Value) -> Result<(), String> {
    let rows: Vec<FdbRow> = decode(result)?;
    for r in rows {
        let state = match r.age {
            Some(age) => format!("age {age}s"),
            None => "static".to_string(),
        };
        let vlan = r.vlan.map(|v| format!(" vlan {v}")).unwrap_or_default();
        let dst = r.dst.map(|d| format!(" dst {d}")).unwrap_or_default();
        let _ = writeln!(
            s,
            "{} dev {}{vlan}{dst} master {} {state}",
            r.mac, r.port, r.bridge
        );
    }
    Ok(())
}

/// A bridge's ports, and its VLAN settings; a VLAN interface's VLAN.
fn bridge_ports(b: &patchbay_dataplane::pipeline::BridgeInfo) -> String {
    if let (Some(link), Some(id)) = (&b.link, b.vlan_id) {
        return format!("(VLAN {id} of {link})");
    }
    let mut s = if b.ports.is_empty() {
        "-".to_string()
    } else {
        b.ports.join(" ")
    };
    if b.vlan_filtering {
        s.push_str("  [vlan_filtering]");
    }
    if b.group_fwd_mask != 0 {
        let _ = write!(s, "  [group_fwd_mask {:#06x}]", b.group_fwd_mask);
    }
    s
}

/// `dhcp show`: each pool, and the counters.
fn dhcp_pools(s: &mut String, result: Value) -> Result<(), String> {
    let pools: Vec<crate::dhcp::Pool> = decode(result["pools"].clone())?;
    for p in &pools {
        let _ = write!(
            s,
            "{} range {}-{} lease {}",
            p.bridge, p.first, p.last, p.lease_secs
        );
        if let Some(r) = p.router {
            let _ = write!(s, " router {r}");
        }
        if !p.dns.is_empty() {
            let dns: Vec<String> = p.dns.iter().map(|d| d.to_string()).collect();
            let _ = write!(s, " dns {}", dns.join(","));
        }
        if let Some(d) = &p.domain {
            let _ = write!(s, " domain {d}");
        }
        if let Some(m) = p.mtu {
            let _ = write!(s, " mtu {m}");
        }
        for (dst, gw) in &p.routes {
            let _ = write!(s, " route {dst} via {gw}");
        }
        s.push('\n');
        for h in &p.hosts {
            let name = h
                .name
                .as_deref()
                .map(|n| format!(" name {n}"))
                .unwrap_or_default();
            let _ = writeln!(s, "  host {} {}{name}", h.mac, h.ip);
        }
    }
    let c = &result["counters"];
    let n = |k: &str| c[k].as_u64().unwrap_or(0);
    let _ = writeln!(
        s,
        "offers {}, acks {}, naks {}, declines {}, releases {}, informs {}, no address left {}, \
         malformed {}",
        n("offers"),
        n("acks"),
        n("naks"),
        n("declines"),
        n("releases"),
        n("informs"),
        n("exhausted"),
        n("malformed")
    );
    Ok(())
}

/// `dhcp leases`: a line each.
fn dhcp_leases(s: &mut String, result: Value) -> Result<(), String> {
    let rows = result.as_array().cloned().unwrap_or_default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for r in rows {
        let expires = r["expires"].as_u64().unwrap_or(0);
        let left = if expires > now {
            format!("{}s left", expires - now)
        } else {
            "expired".to_string()
        };
        let _ = writeln!(
            s,
            "{} {} lladdr {} {} {}{}",
            r["bridge"].as_str().unwrap_or("?"),
            r["ip"].as_str().unwrap_or("?"),
            r["mac"].as_str().unwrap_or("?"),
            r["state"].as_str().unwrap_or("?"),
            left,
            r["hostname"]
                .as_str()
                .map(|h| format!(" name {h}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// `vlan show`, as `bridge vlan show` prints it.
fn vlans(s: &mut String, result: Value) -> Result<(), String> {
    let rows: Vec<crate::api::VlanRow> = decode(result)?;
    let _ = writeln!(s, "{:<15} {:<10} VLANS", "PORT", "BRIDGE");
    for r in rows {
        let off = if r.vlan_filtering {
            ""
        } else {
            "  (bridge without vlan_filtering: not used)"
        };
        let mut first = true;
        for v in &r.vlans {
            let (port, bridge) = if first {
                (r.port.as_str(), r.bridge.as_str())
            } else {
                ("", "")
            };
            let mut flags = String::new();
            if v.pvid {
                flags.push_str(" PVID");
            }
            if v.untagged {
                flags.push_str(" Egress Untagged");
            }
            let _ = writeln!(
                s,
                "{port:<15} {bridge:<10} {}{flags}{}",
                v.vid,
                if first { off } else { "" }
            );
            first = false;
        }
        if first {
            let _ = writeln!(s, "{:<15} {:<10} none", r.port, r.bridge);
        }
    }
    Ok(())
}

/// `stats`, as a table or lines.
fn stats(s: &mut String, result: Value) -> Result<(), String> {
    let st: StatsInfo = decode(result)?;
    let _ = writeln!(
        s,
        "uptime {}s, fdb {}/{} entries, arp {}/{} entries, {}/{} routes, {} router buffers free",
        st.uptime_secs,
        st.fdb_entries,
        st.fdb_max,
        st.arp_entries,
        st.arp_max,
        st.routes,
        st.max_routes,
        st.router_buffers_free
    );
    let _ = writeln!(
            s,
            "nat: {}/{} sessions; created {}, expired {}, translated {}, table full {}, out of ports {}, \
             fragments held {} (dropped {})",
            st.nat_sessions,
            st.nat_max,
            st.nat.sessions_created,
            st.nat.sessions_expired,
            st.nat.translated,
            st.nat.table_full,
            st.nat.no_ports,
            st.nat.fragments_held,
            st.nat.fragments_dropped
        );
    let l3 = &st.l3;
    let _ = writeln!(
        s,
        "router: ip4 in {}, forwarded {}, local {}, queued for arp {} (dropped unanswered {}, \
             overflowed {}), \
             fragments made {}, icmp errors sent {} (rate limited {}); arp in {}, replies sent {}, \
             requests sent {}",
        l3.ip4_in,
        l3.ip4_forwarded,
        l3.ip4_local,
        l3.arp_queued,
        l3.arp_failed,
        l3.arp_queue_overflow,
        l3.fragments_made,
        l3.icmp_errors_sent,
        l3.icmp_rate_limited,
        l3.arp_in,
        l3.arp_replies_sent,
        l3.arp_requests_sent
    );
    let v6 = &st.ip6;
    let _ = writeln!(
        s,
        "router ip6: in {}, forwarded {}, echo replies {}, icmp6 errors sent {} (rate limited {}); \
         nd: {} neighbours, solicits in {} out {}, adverts sent {}, unanswered drops {}, \
         address conflicts {}; \
         ra: solicits in {}, adverts sent {}",
        v6.ip6_in,
        v6.ip6_forwarded,
        v6.echo_replies_sent,
        v6.icmp6_errors_sent,
        v6.icmp6_errors_limited,
        st.nd_entries,
        v6.nd_solicits_in,
        v6.nd_solicits_sent,
        v6.nd_adverts_sent,
        v6.nd_failed,
        v6.dad_conflicts,
        v6.router_solicits_in,
        v6.router_adverts_sent
    );
    for (stage, (n, drops)) in crate::metrics::stages(&st) {
        let mut line = format!("stage {stage}: {n} packets");
        for (reason, k) in drops {
            let _ = write!(line, ", drop {reason} {k}");
        }
        let _ = writeln!(s, "{line}");
    }
    for c in &st.captures {
        let dir = match (c.rx, c.tx) {
            (true, true) => "both",
            (true, false) => "rx",
            _ => "tx",
        };
        let _ = writeln!(
            s,
            "capture {} of {} ({dir}): {} captured, {} missed (reader too slow)",
            c.id, c.port, c.captured, c.dropped
        );
    }
    for p in &st.ports {
        let _ = writeln!(
                s,
                "port {} ({}, {}, master {}): rx {} pkts {} bytes, tx {} pkts {} bytes, link-down events {}",
                p.name,
                p.kind.name(),
                p.state.name(),
                p.master.as_deref().unwrap_or("-"),
                p.rx_packets,
                p.rx_bytes,
                p.tx_packets,
                p.tx_bytes,
                p.link_down_events
            );
        for (reason, n) in &p.drops_by_reason {
            let _ = writeln!(s, "    drop {reason}: {n}");
        }
    }
    for b in &st.bridges {
        let c = &b.counters;
        let _ = writeln!(
            s,
            "bridge {}: {}, fdb {} (ageing {}s); forwarded {}, flooded {} ({} unknown unicast), \
                 learned {}, moved {}, aged {}, not learned (fdb full) {}",
            b.name,
            count(b.ports.len() as u64, "port", "ports"),
            count(b.fdb_entries as u64, "entry", "entries"),
            b.ageing_time,
            c.forwarded,
            c.flooded,
            c.unknown_unicast,
            c.learned,
            c.moved,
            c.aged,
            c.learn_fdb_full
        );
    }
    Ok(())
}
