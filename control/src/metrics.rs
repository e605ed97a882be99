//! Counters for machines: the Prometheus text format, served over HTTP by
//! `patchbayd --metrics ADDR`, and the per-stage view of `patchbay stats`.

use patchbay_dataplane::pipeline::{EngineHandle, StatsInfo};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read as _, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// The stage a drop reason (by its name) belongs to.
pub fn stage_of(reason: &str) -> &'static str {
    patchbay_dataplane::counters::DropReason::from_name(reason).map_or("port", |r| r.stage().name())
}

/// Per stage: packets handled and drops by reason.
pub fn stages(s: &StatsInfo) -> BTreeMap<&'static str, (u64, BTreeMap<String, u64>)> {
    let mut out: BTreeMap<&'static str, (u64, BTreeMap<String, u64>)> = BTreeMap::new();
    let rx: u64 = s.ports.iter().map(|p| p.rx_packets).sum();
    let l2: u64 = s
        .bridges
        .iter()
        .map(|b| b.counters.forwarded + b.counters.flooded)
        .sum();
    out.entry("port").or_default().0 = rx;
    out.entry("l2").or_default().0 = l2;
    out.entry("arp").or_default().0 = s.l3.arp_in;
    out.entry("ip4").or_default().0 = s.l3.ip4_in;
    out.entry("ip6").or_default().0 = s.ip6.ip6_in;
    out.entry("nat").or_default().0 = s.nat.translated;
    for p in &s.ports {
        for (reason, n) in &p.drops_by_reason {
            *out.entry(stage_of(reason))
                .or_default()
                .1
                .entry(reason.clone())
                .or_default() += n;
        }
    }
    out
}

/// Escapes a label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The stats in the Prometheus text exposition format.
pub fn render(s: &StatsInfo) -> String {
    let mut o = String::with_capacity(4096);
    family(&mut o, "up", "gauge", "1 while patchbayd answers.");
    let _ = writeln!(o, "patchbay_up 1");
    family(
        &mut o,
        "uptime_seconds",
        "gauge",
        "Seconds since patchbayd started.",
    );
    let _ = writeln!(o, "patchbay_uptime_seconds {}", s.uptime_secs);
    ports(&mut o, s);
    bridges(&mut o, s);
    tables(&mut o, s);
    counters(&mut o, s);
    captures(&mut o, s);
    o
}

/// The `# HELP` and `# TYPE` lines of a metric family.
fn family(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(
        o,
        "# HELP patchbay_{name} {help}\n# TYPE patchbay_{name} {kind}"
    );
}

/// Per port: frames, bytes, link state, drops by stage and reason.
fn ports(o: &mut String, s: &StatsInfo) {
    for (name, help, get) in [
        (
            "port_rx_packets_total",
            "Frames received on a port.",
            (|p: &patchbay_dataplane::pipeline::PortInfo| p.rx_packets) as fn(&_) -> u64,
        ),
        ("port_rx_bytes_total", "Bytes received on a port.", |p| {
            p.rx_bytes
        }),
        ("port_tx_packets_total", "Frames sent on a port.", |p| {
            p.tx_packets
        }),
        ("port_tx_bytes_total", "Bytes sent on a port.", |p| {
            p.tx_bytes
        }),
        (
            "port_link_down_events_total",
            "Times a port's link went down or away.",
            |p| p.link_down_events,
        ),
    ] {
        family(o, name, "counter", help);
        for p in &s.ports {
            let _ = writeln!(
                o,
                "patchbay_{name}{{port=\"{}\"}} {}",
                label(&p.name),
                get(p)
            );
        }
    }
    family(o, "port_up", "gauge", "1 if a port's link is up.");
    for p in &s.ports {
        let up = u8::from(matches!(p.state, patchbay_dataplane::port::LinkState::Up));
        let _ = writeln!(o, "patchbay_port_up{{port=\"{}\"}} {up}", label(&p.name));
    }
    family(
        o,
        "drops_total",
        "counter",
        "Frames dropped, by port, stage and reason.",
    );
    for p in &s.ports {
        for (reason, n) in &p.drops_by_reason {
            let _ = writeln!(
                o,
                "patchbay_drops_total{{port=\"{}\",stage=\"{}\",reason=\"{}\"}} {n}",
                label(&p.name),
                stage_of(reason),
                label(reason)
            );
        }
    }
}

/// Per bridge: what the L2 stage did, and FDB entries.
fn bridges(o: &mut String, s: &StatsInfo) {
    for (name, help, get) in [
        (
            "bridge_forwarded_total",
            "Frames sent to one learned port.",
            (|c: &patchbay_dataplane::counters::BridgeCounters| c.forwarded) as fn(&_) -> u64,
        ),
        ("bridge_flooded_total", "Frames flooded.", |c| c.flooded),
        (
            "bridge_unknown_unicast_total",
            "Unicast frames to an unknown MAC.",
            |c| c.unknown_unicast,
        ),
        ("bridge_learned_total", "FDB entries learned.", |c| {
            c.learned
        }),
        (
            "bridge_moved_total",
            "Stations that moved to another port.",
            |c| c.moved,
        ),
        (
            "bridge_learn_fdb_full_total",
            "MACs not learned: the FDB was full.",
            |c| c.learn_fdb_full,
        ),
        ("bridge_aged_total", "FDB entries aged out.", |c| c.aged),
    ] {
        family(o, name, "counter", help);
        for b in &s.bridges {
            let _ = writeln!(
                o,
                "patchbay_{name}{{bridge=\"{}\"}} {}",
                label(&b.name),
                get(&b.counters)
            );
        }
    }
    family(o, "bridge_fdb_entries", "gauge", "FDB entries of a bridge.");
    for b in &s.bridges {
        let _ = writeln!(
            o,
            "patchbay_bridge_fdb_entries{{bridge=\"{}\"}} {}",
            label(&b.name),
            b.fdb_entries
        );
    }
}

/// Table occupancy and limits.
fn tables(o: &mut String, s: &StatsInfo) {
    for (name, help, v) in [
        (
            "fdb_entries",
            "FDB entries, all bridges.",
            s.fdb_entries as u64,
        ),
        ("fdb_max", "FDB limit.", s.fdb_max as u64),
        ("arp_entries", "ARP cache entries.", s.arp_entries as u64),
        ("arp_max", "ARP cache limit.", s.arp_max as u64),
        ("nat_sessions", "NAT sessions.", s.nat_sessions as u64),
        ("nat_max", "NAT session limit.", s.nat_max as u64),
        (
            "routes",
            "Routes in the FIB (connected ones too).",
            s.routes as u64,
        ),
        (
            "max_routes",
            "Route limit (limits.max_routes).",
            s.max_routes as u64,
        ),
        (
            "router_buffers_free",
            "Free buffers for frames the router makes or holds.",
            s.router_buffers_free as u64,
        ),
    ] {
        family(o, name, "gauge", help);
        let _ = writeln!(o, "patchbay_{name} {v}");
    }
}

/// The router's and NAT's counters.
fn counters(o: &mut String, s: &StatsInfo) {
    let l3 = &s.l3;
    let n = &s.nat;
    for (name, help, v) in [
        ("arp_in_total", "ARP packets the router read.", l3.arp_in),
        (
            "arp_replies_sent_total",
            "ARP replies sent.",
            l3.arp_replies_sent,
        ),
        (
            "arp_requests_sent_total",
            "ARP requests sent.",
            l3.arp_requests_sent,
        ),
        (
            "arp_failed_drops_total",
            "Packets dropped after waiting for an ARP answer that never came.",
            l3.arp_failed,
        ),
        ("ip4_in_total", "IPv4 packets to the router.", l3.ip4_in),
        (
            "ip4_forwarded_total",
            "IPv4 packets routed.",
            l3.ip4_forwarded,
        ),
        (
            "ip4_local_total",
            "IPv4 packets for the router itself.",
            l3.ip4_local,
        ),
        ("arp_queued_total", "Packets queued for ARP.", l3.arp_queued),
        (
            "arp_queue_overflow_total",
            "Packets waiting for ARP dropped to make room for newer ones.",
            l3.arp_queue_overflow,
        ),
        (
            "fragments_made_total",
            "IPv4 fragments made.",
            l3.fragments_made,
        ),
        (
            "icmp_errors_sent_total",
            "ICMP errors sent.",
            l3.icmp_errors_sent,
        ),
        (
            "icmp_rate_limited_total",
            "ICMP errors not sent: rate limit.",
            l3.icmp_rate_limited,
        ),
        ("nat_translated_total", "Packets NAT rewrote.", n.translated),
        (
            "nat_sessions_created_total",
            "NAT sessions made.",
            n.sessions_created,
        ),
        (
            "nat_sessions_expired_total",
            "NAT sessions expired.",
            n.sessions_expired,
        ),
        (
            "nat_table_full_total",
            "New flows refused: session table full.",
            n.table_full,
        ),
        (
            "nat_no_ports_total",
            "New flows refused: no free port.",
            n.no_ports,
        ),
        (
            "nat_fragments_held_total",
            "Later fragments held until their first fragment came.",
            n.fragments_held,
        ),
        (
            "nat_fragments_dropped_total",
            "Held fragments dropped: their first fragment never came, too many waited, or the router dropped them when they went on.",
            n.fragments_dropped,
        ),
    ] {
        family(o, name, "counter", help);
        let _ = writeln!(o, "patchbay_{name} {v}");
    }
    counters6(o, s);
}

/// The router's IPv6 counters.
fn counters6(o: &mut String, s: &StatsInfo) {
    let v6 = &s.ip6;
    for (name, help, v) in [
        (
            "ip6_in_total",
            "IPv6 packets to the router (multicast ones it read too).",
            v6.ip6_in,
        ),
        (
            "ip6_forwarded_total",
            "IPv6 packets routed.",
            v6.ip6_forwarded,
        ),
        (
            "icmp6_echo_replies_total",
            "ICMPv6 echo replies sent.",
            v6.echo_replies_sent,
        ),
        (
            "icmp6_errors_sent_total",
            "ICMPv6 errors sent.",
            v6.icmp6_errors_sent,
        ),
        (
            "icmp6_rate_limited_total",
            "ICMPv6 errors not sent: rate limit.",
            v6.icmp6_errors_limited,
        ),
        (
            "nd_solicits_in_total",
            "Neighbour solicitations read.",
            v6.nd_solicits_in,
        ),
        (
            "nd_solicits_sent_total",
            "Neighbour solicitations sent.",
            v6.nd_solicits_sent,
        ),
        (
            "nd_adverts_sent_total",
            "Neighbour advertisements sent.",
            v6.nd_adverts_sent,
        ),
        (
            "nd_failed_drops_total",
            "Packets dropped after waiting for a neighbour that never answered.",
            v6.nd_failed,
        ),
        (
            "ra_solicits_in_total",
            "Router solicitations read.",
            v6.router_solicits_in,
        ),
        (
            "dad_conflicts_total",
            "Router IPv6 addresses another node has too.",
            v6.dad_conflicts,
        ),
        (
            "ra_sent_total",
            "Router advertisements sent.",
            v6.router_adverts_sent,
        ),
    ] {
        family(o, name, "counter", help);
        let _ = writeln!(o, "patchbay_{name} {v}");
    }
    family(o, "nd_entries", "gauge", "IPv6 neighbour cache entries.");
    let _ = writeln!(o, "patchbay_nd_entries {}", s.nd_entries);
}

/// Running captures.
fn captures(o: &mut String, s: &StatsInfo) {
    family(
        o,
        "capture_dropped_total",
        "counter",
        "Frames a capture missed (its reader was slow).",
    );
    for c in &s.captures {
        let _ = writeln!(
            o,
            "patchbay_capture_dropped_total{{capture=\"{}\",port=\"{}\"}} {}",
            c.id,
            label(&c.port),
            c.dropped
        );
    }
}

/// Serves `GET /metrics` on `addr` from a thread of its own; the stats are
/// read from the engine once per request.
pub fn serve(addr: SocketAddr, engine: EngineHandle) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Err(e) = answer(stream, &engine) {
                    log::debug!("metrics: {e}");
                }
            }
        })?;
    Ok(local)
}

fn answer(mut stream: TcpStream, engine: &EngineHandle) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut request = String::new();
    BufReader::new(stream.try_clone()?)
        .take(8192)
        .read_line(&mut request)?;
    let path = request.split_whitespace().nth(1).unwrap_or("");
    let (status, kind, body) = if !request.starts_with("GET ") {
        (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_string(),
        )
    } else if path == "/metrics" || path.starts_with("/metrics?") {
        match engine.call(|sw| sw.stats()) {
            Ok(s) => ("200 OK", "text/plain; version=0.0.4", render(&s)),
            Err(_) => (
                "503 Service Unavailable",
                "text/plain",
                "engine stopped\n".into(),
            ),
        }
    } else {
        ("404 Not Found", "text/plain", "try /metrics\n".to_string())
    };
    write!(
        stream,
        "HTTP/1.0 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
