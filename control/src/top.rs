//! `patchbay top`: a live view of ports, bridges, tables and stages,
//! redrawn every interval until `q`.

use crate::api::Request;
use crate::client::Client;
use patchbay_dataplane::pipeline::StatsInfo;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// A rate per second between two counter readings.
fn rate(now: u64, before: Option<u64>, secs: f64) -> f64 {
    match before {
        Some(b) if secs > 0.0 => now.saturating_sub(b) as f64 / secs,
        _ => 0.0,
    }
}

fn si(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.2}G", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// One screen: `prev` is the reading `secs` seconds before `cur`.
pub fn render(cur: &StatsInfo, prev: Option<&StatsInfo>, secs: f64) -> String {
    let mut o = String::new();
    let up = cur.uptime_secs;
    // 0.25, 0.5, 2, 3600: as given (a measured 2.0013 shows as 2).
    let every = format!("{secs:.2}");
    let _ = writeln!(
        o,
        "patchbay top - up {}h{:02}m{:02}s - every {} s - q quits",
        up / 3600,
        up / 60 % 60,
        up % 60,
        every.trim_end_matches('0').trim_end_matches('.')
    );
    let _ = writeln!(
        o,
        "tables: fdb {}/{}  arp {}/{}  nat {}/{}  routes {}/{}  router buffers free {}",
        cur.fdb_entries,
        cur.fdb_max,
        cur.arp_entries,
        cur.arp_max,
        cur.nat_sessions,
        cur.nat_max,
        cur.routes,
        cur.max_routes,
        cur.router_buffers_free
    );
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<14} {:<5} {:<10} {:>9} {:>10} {:>9} {:>10} {:>8} {:>10}",
        "PORT",
        "STATE",
        "BRIDGE",
        "RX pkt/s",
        "RX bit/s",
        "TX pkt/s",
        "TX bit/s",
        "DROP/s",
        "DROPS"
    );
    let before: HashMap<&str, _> = prev
        .map(|p| p.ports.iter().map(|x| (x.name.as_str(), x)).collect())
        .unwrap_or_default();
    for p in &cur.ports {
        let b = before.get(p.name.as_str());
        let _ = writeln!(
            o,
            "{:<14} {:<5} {:<10} {:>9} {:>10} {:>9} {:>10} {:>8} {:>10}",
            p.name,
            p.state.name(),
            p.master.as_deref().unwrap_or("-"),
            si(rate(p.rx_packets, b.map(|b| b.rx_packets), secs)),
            si(8.0 * rate(p.rx_bytes, b.map(|b| b.rx_bytes), secs)),
            si(rate(p.tx_packets, b.map(|b| b.tx_packets), secs)),
            si(8.0 * rate(p.tx_bytes, b.map(|b| b.tx_bytes), secs)),
            si(rate(p.drops, b.map(|b| b.drops), secs)),
            p.drops
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<14} {:>5} {:>7} {:>9} {:>9} {:>9}",
        "BRIDGE", "PORTS", "FDB", "FWD/s", "FLOOD/s", "LEARN/s"
    );
    let before: HashMap<&str, _> = prev
        .map(|p| p.bridges.iter().map(|x| (x.name.as_str(), x)).collect())
        .unwrap_or_default();
    for b in &cur.bridges {
        let p = before.get(b.name.as_str()).map(|p| &p.counters);
        let c = &b.counters;
        let _ = writeln!(
            o,
            "{:<14} {:>5} {:>7} {:>9} {:>9} {:>9}",
            b.name,
            b.ports.len(),
            b.fdb_entries,
            si(rate(c.forwarded, p.map(|p| p.forwarded), secs)),
            si(rate(c.flooded, p.map(|p| p.flooded), secs)),
            si(rate(c.learned, p.map(|p| p.learned), secs)),
        );
    }
    let (l3, pl3) = (&cur.l3, prev.map(|p| &p.l3));
    let (nat, pnat) = (&cur.nat, prev.map(|p| &p.nat));
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "router/s: ip4 in {}  forwarded {}  local {}  arp in {}  icmp errors {}  nat translated {}  new sessions {}",
        si(rate(l3.ip4_in, pl3.map(|p| p.ip4_in), secs)),
        si(rate(l3.ip4_forwarded, pl3.map(|p| p.ip4_forwarded), secs)),
        si(rate(l3.ip4_local, pl3.map(|p| p.ip4_local), secs)),
        si(rate(l3.arp_in, pl3.map(|p| p.arp_in), secs)),
        si(rate(l3.icmp_errors_sent, pl3.map(|p| p.icmp_errors_sent), secs)),
        si(rate(nat.translated, pnat.map(|p| p.translated), secs)),
        si(rate(nat.sessions_created, pnat.map(|p| p.sessions_created), secs)),
    );
    let (v6, pv6) = (&cur.ip6, prev.map(|p| &p.ip6));
    let _ = writeln!(
        o,
        "router6/s: ip6 in {}  forwarded {}  nd solicits in {}  icmp6 errors {}",
        si(rate(v6.ip6_in, pv6.map(|p| p.ip6_in), secs)),
        si(rate(v6.ip6_forwarded, pv6.map(|p| p.ip6_forwarded), secs)),
        si(rate(v6.nd_solicits_in, pv6.map(|p| p.nd_solicits_in), secs)),
        si(rate(
            v6.icmp6_errors_sent,
            pv6.map(|p| p.icmp6_errors_sent),
            secs
        )),
    );
    let drops: Vec<String> = crate::metrics::stages(cur)
        .into_iter()
        .flat_map(|(_, (_, d))| d)
        .map(|(reason, n)| format!("{reason} {n}"))
        .collect();
    if !drops.is_empty() {
        let _ = writeln!(o, "drops: {}", drops.join(", "));
    }
    for c in &cur.captures {
        let _ = writeln!(
            o,
            "capture {} of {}: {} captured, {} missed",
            c.id, c.port, c.captured, c.dropped
        );
    }
    o
}

/// The counters, over a connection of their own: patchbayd closes
/// connections that stay idle, and refreshes may be minutes apart.
fn stats(socket: &Path) -> Result<StatsInfo, String> {
    let mut client = Client::connect(socket).map_err(|e| e.to_string())?;
    let v = client.call(Request::Stats).map_err(|e| e.to_string())?;
    serde_json::from_value(v).map_err(|e| format!("unexpected reply from patchbayd: {e}"))
}

/// Runs the live view on the terminal until `q`, Esc or Ctrl-C; with
/// `once`, prints one screen (rates over `interval`) and returns.
pub fn run(socket: &Path, interval: Duration, once: bool) -> Result<(), String> {
    use crossterm::event::{self, Event, KeyCode, KeyModifiers};
    use crossterm::{cursor, execute, terminal};
    use std::io::Write;
    let secs = interval.as_secs_f64();
    if once {
        let first = stats(socket)?;
        std::thread::sleep(interval);
        let screen = render(&stats(socket)?, Some(&first), secs);
        let mut stdout = std::io::stdout().lock();
        // A reader that went away (`| head`) is not an error.
        let _ = stdout.write_all(screen.as_bytes());
        return Ok(());
    }
    let mut out = std::io::stdout();
    terminal::enable_raw_mode().map_err(|e| {
        format!("top: needs a terminal ({e}); 'patchbay top once' prints one screen")
    })?;
    let _ = execute!(out, terminal::EnterAlternateScreen, cursor::Hide);
    let result = (|| -> Result<(), String> {
        let mut prev: Option<(StatsInfo, Instant)> = None;
        loop {
            let cur = stats(socket)?;
            let now = Instant::now();
            let dt = prev
                .as_ref()
                .map_or(secs, |(_, t)| (now - *t).as_secs_f64());
            let screen = render(&cur, prev.as_ref().map(|(s, _)| s), dt);
            let _ = execute!(
                out,
                cursor::MoveTo(0, 0),
                terminal::Clear(terminal::ClearType::All)
            );
            // Raw mode: lines need a carriage return too.
            let _ = write!(out, "{}", screen.replace('\n', "\r\n"));
            let _ = out.flush();
            prev = Some((cur, now));
            let deadline = now + interval;
            while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                if !event::poll(left).map_err(|e| e.to_string())? {
                    break;
                }
                if let Event::Key(k) = event::read().map_err(|e| e.to_string())? {
                    let ctrl_c =
                        k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                    if matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) || ctrl_c {
                        return Ok(());
                    }
                }
            }
        }
    })();
    let _ = execute!(out, cursor::Show, terminal::LeaveAlternateScreen);
    let _ = terminal::disable_raw_mode();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use patchbay_dataplane::pipeline::{Switch, SwitchConfig};

    #[test]
    fn the_header_shows_the_interval_as_given() {
        let s = Switch::new(SwitchConfig::default(), None).stats();
        for (secs, shown) in [
            (0.25, "0.25"),
            (0.5, "0.5"),
            (2.0013, "2"),
            (3600.0, "3600"),
        ] {
            let screen = render(&s, None, secs);
            assert!(screen.contains(&format!("every {shown} s")), "{screen}");
        }
    }
}
