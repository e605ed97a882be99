//! What patchbay does to each packet, as its trace tells it: an ARP
//! exchange, a routed and NATed ping, a NATed UDP flow and a dropped packet,
//! made by kernel hosts in namespaces; and `trace packet`, the same stages
//! for a made-up packet, checked against the real one.
//!
//! Needs root and the tools that `tools/test` installs.

use patchbay_tools::{Bins, Lab};
use serde_json::Value;

fn bins() -> Bins {
    Bins {
        patchbayd: env!("CARGO_BIN_EXE_patchbayd").into(),
        patchbay: env!("CARGO_BIN_EXE_patchbay").into(),
    }
}

/// h1 10.1.0.2 on p1 in lan (router 10.1.0.1), masqueraded behind wan
/// (10.2.0.1) where h2 10.2.0.2 is on p2.
fn gateway() -> Lab {
    let mut lab = Lab::new(bins(), 0);
    lab.add_routed_hosts(2);
    lab.start_daemon(&["--port", "p1", "--port", "p2"]);
    for cmd in [
        "link add lan type bridge",
        "link add wan type bridge",
        "link set p1 master lan",
        "link set p2 master wan",
        "addr add 10.1.0.1/24 dev lan",
        "addr add 10.2.0.1/24 dev wan",
        "nat add masquerade src 10.1.0.0/24 out wan",
    ] {
        lab.cli_ok(&cmd.split(' ').collect::<Vec<_>>());
    }
    lab
}

/// The traced packets, each as its lines.
fn traced(lab: &Lab) -> Vec<Vec<String>> {
    let v = lab.cli_json(&["trace", "show"]);
    v["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p["lines"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}

/// The first traced packet with a line containing `needle`.
fn packet_with<'a>(packets: &'a [Vec<String>], needle: &str) -> &'a [String] {
    packets
        .iter()
        .find(|p| p.iter().any(|l| l.contains(needle)))
        .unwrap_or_else(|| panic!("no packet with '{needle}' in {packets:#?}"))
}

fn has(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| l.contains(needle))
}

#[test]
fn an_arp_exchange_stage_by_stage() {
    let lab = gateway();
    let h1 = lab.host(1);
    h1.ns.check(&["ip", "neigh", "flush", "dev", "eth0"]);
    lab.cli_ok(&["trace", "start", "count", "5", "filter", "arp"]);
    assert!(h1.ping_ok("10.1.0.1", 1));
    let packets = traced(&lab);
    let req = packet_with(&packets, "who-has 10.1.0.1 tell 10.1.0.2");
    assert!(
        has(
            req,
            &format!("p1 rx 42B {} > ff:ff:ff:ff:ff:ff ARP", h1.mac)
        ),
        "{req:#?}"
    );
    assert!(has(req, &format!("l2-learn: {} on p1", h1.mac)), "{req:#?}");
    assert!(has(req, "flood to 0 ports"), "{req:#?}");
    assert!(
        has(req, "arp: who-has 10.1.0.1 tell 10.1.0.2 -> reply sent"),
        "{req:#?}"
    );
    // The text is also there in the plain CLI output.
    let text = lab.cli_ok(&["trace", "show"]);
    assert!(text.contains("packet 1 at +"), "{text}");
}

#[test]
fn a_routed_natted_ping_and_a_udp_flow() {
    let lab = gateway();
    let (h1, h2) = (lab.host(1), lab.host(2));
    assert!(h1.ping_ok(&h2.ip, 1), "ARP settled");
    lab.cli_ok(&[
        "trace",
        "start",
        "count",
        "20",
        "port",
        "p1",
        "filter",
        "icmp or udp",
    ]);
    assert!(h1.ping_ok(&h2.ip, 1));
    h1.ns.check(&["python3", "-c", "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 40123)); s.sendto(b'x' * 20, ('10.2.0.2', 7000))"]);
    let packets = traced(&lab);
    let ping = packet_with(&packets, "icmp ttl 64");
    for want in [
        "ip4-input: 10.1.0.2 > 10.2.0.2 icmp ttl 64 len 84",
        "ip4-lookup: 10.2.0.2 matches 10.2.0.0/24 dev wan",
        "nat (post-routing): source 10.1.0.2:",
        "-> 10.2.0.1:",
        "(icmp new session, rule 1)",
        &format!("arp-resolve: 10.2.0.2 is at {}", h2.mac),
        &format!("dst mac {}", h2.mac),
        "ip4-rewrite: ttl 64->63",
        "p2 tx",
    ] {
        assert!(has(ping, want), "'{want}' not in {ping:#?}");
    }
    let udp = packet_with(&packets, "udp ttl 64");
    assert!(
        has(
            udp,
            "nat (post-routing): source 10.1.0.2:40123 -> 10.2.0.1:40123 (udp new session, rule 1)"
        ),
        "{udp:#?}"
    );
    assert!(has(udp, "p2 tx"), "{udp:#?}");
    // Only p1's packets: the replies came in on p2.
    assert!(
        packets.iter().all(|p| p[0].starts_with("p1 rx")),
        "{packets:#?}"
    );
}

#[test]
fn a_dropped_packet_says_why() {
    let lab = gateway();
    lab.cli_ok(&[
        "trace",
        "start",
        "count",
        "3",
        "filter",
        "icmp and dst 10.9.9.9",
    ]);
    let _ = lab.host(1).ping("10.9.9.9", 1);
    let packets = traced(&lab);
    let p = packet_with(&packets, "10.9.9.9");
    assert!(
        has(p, "icmp-error: net unreachable sent to 10.1.0.2"),
        "{p:#?}"
    );
    assert!(has(p, "drop: ip4-no-route"), "{p:#?}");
}

#[test]
fn trace_packet_agrees_with_real_traffic() {
    let lab = gateway();
    let (h1, h2) = (lab.host(1), lab.host(2));
    assert!(h1.ping_ok(&h2.ip, 1), "ARP settled");
    let sessions_before = lab.cli_json(&["nat", "sessions"]).as_array().unwrap().len();
    let fdb_before = lab.cli_json(&["fdb", "show"]);
    let dry: Value = lab.cli_json(&[
        "trace", "packet", "in", "p1", "src", "10.1.0.2", "dst", "10.2.0.2", "proto", "udp",
        "sport", "40777", "dport", "7000",
    ]);
    let dry_lines: Vec<String> = dry["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    assert_eq!(dry["verdict"], "would leave by p2", "{dry_lines:#?}");
    // Nothing was created or learned.
    assert_eq!(
        lab.cli_json(&["nat", "sessions"]).as_array().unwrap().len(),
        sessions_before
    );
    assert_eq!(lab.cli_json(&["fdb", "show"]), fdb_before);

    // The same packet for real.
    lab.cli_ok(&[
        "trace", "start", "count", "1", "port", "p1", "filter", "udp",
    ]);
    h1.ns.check(&["python3", "-c", "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 40777)); s.sendto(b'x' * 32, ('10.2.0.2', 7000))"]);
    let real = traced(&lab).remove(0);
    // Stage by stage the same decisions; only what the dry run leaves out
    // (learning, making the session) is worded differently.
    let stage = |l: &String| {
        let l = l.replace(" (dry run: not sent)", "");
        l.split(':').next().unwrap_or("").to_string()
    };
    let stages = |ls: &[String]| ls.iter().map(stage).collect::<Vec<_>>();
    assert_eq!(
        stages(&dry_lines[1..]),
        stages(&real[1..]),
        "{dry_lines:#?}\n{real:#?}"
    );
    for (d, r) in dry_lines.iter().zip(&real).skip(1) {
        if !d.starts_with("l2-learn") && !d.starts_with("ip4-input") {
            let d = d
                .replace(" (dry run: not sent)", "")
                .replace("; dry run: not created", "");
            assert_eq!(d, *r);
        }
    }
    // A made-up packet to nowhere is dropped, and says so.
    let nowhere = lab.cli_json(&[
        "trace", "packet", "in", "p1", "src", "10.1.0.2", "dst", "10.2.0.2", "ttl", "1",
    ]);
    assert!(
        nowhere["verdict"]
            .as_str()
            .unwrap()
            .starts_with("dropped: ip4-ttl-expired"),
        "{nowhere}"
    );
    let arp = lab.cli_json(&[
        "trace", "packet", "in", "p1", "src", "10.1.0.2", "dst", "10.1.0.1", "proto", "arp",
    ]);
    assert!(
        arp["lines"].to_string().contains("a reply would be sent"),
        "{arp}"
    );
    // A published port reached from inside: both addresses change.
    lab.cli_ok(&[
        "nat",
        "add",
        "dnat",
        "proto",
        "tcp",
        "in",
        "wan",
        "dport",
        "8080",
        "to",
        "10.1.0.2:80",
    ]);
    let hairpin = lab.cli_json(&[
        "trace", "packet", "in", "p1", "src", "10.1.0.2", "dst", "10.2.0.1", "proto", "tcp",
        "dport", "8080",
    ]);
    assert!(
        hairpin["lines"].to_string().contains(
            "destination 10.2.0.1:8080 -> 10.1.0.2:80, source 10.1.0.2:40000 -> 10.2.0.1:40000 (tcp new session"
        ),
        "{hairpin}"
    );
}

#[test]
fn trace_commands_check_their_input() {
    let lab = gateway();
    lab.cli_fails(&["trace", "start", "filter", "frob"], "unknown word 'frob'");
    lab.cli_fails(
        &["trace", "start", "count", "0"],
        "count must be between 1 and",
    );
    lab.cli_fails(&["trace", "start", "port", "nope"], "nope: no such port");
    lab.cli_fails(
        &["trace", "packet", "in", "p1", "src", "10.1.0.2"],
        "give 'src ADDR' and 'dst ADDR'",
    );
    lab.cli_fails(
        &[
            "trace", "packet", "in", "p1", "src", "10.1.0.2", "dst", "10.2.0.2", "proto", "sctp",
        ],
        "proto must be",
    );
    let text = lab.cli_ok(&["trace", "show"]);
    assert!(text.contains("no packets traced"), "{text}");
}

/// tcpdump's reading of a pcap file: one line per frame, timestamps off.
fn read_pcap(path: &str) -> Vec<String> {
    let out = std::process::Command::new("tcpdump")
        .args(["-n", "-e", "-r", path])
        .output()
        .expect("tcpdump");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_once(' ').map_or(l, |(_, rest)| rest).to_string())
        .collect()
}

#[test]
fn a_capture_shows_the_frames_the_peer_sent() {
    let lab = gateway();
    let (h1, h2) = (lab.host(1), lab.host(2));
    assert!(h1.ping_ok(&h2.ip, 1), "ARP settled");
    let file = std::env::temp_dir().join(format!("{}-p1.pcap", lab.tag));
    let path = file.to_str().unwrap().to_string();
    let peer = patchbay_tools::Capture::start(&h1.ns, "eth0", "icmp");
    let socket = lab.daemon.as_ref().unwrap().socket.clone();
    let mut capture = std::process::Command::new(&lab.bins.patchbay)
        .arg("--socket")
        .arg(&socket)
        .args([
            "capture", "p1", "both", "-w", &path, "count", "6", "filter", "icmp",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("patchbay capture");
    // The capture is running once the daemon lists it.
    assert!(patchbay_tools::wait_for(
        std::time::Duration::from_secs(5),
        || {
            lab.cli_json(&["stats"])["captures"]
                .as_array()
                .is_some_and(|c| !c.is_empty())
        }
    ));
    assert!(h1.ping_ok(&h2.ip, 3));
    let status = capture.wait().expect("capture ends at its count");
    assert!(status.success());
    let ours = read_pcap(&path);
    let _ = std::fs::remove_file(&file);
    let theirs: Vec<String> = peer
        .stop()
        .iter()
        .map(|l| l.split_once(' ').map_or(l.as_str(), |(_, r)| r).to_string())
        .collect();
    assert_eq!(ours.len(), 6, "{ours:#?}");
    // The requests as h1 sent them, and the replies as h1 got them.
    assert_eq!(ours, theirs, "patchbay's capture of p1 and h1's own");
    assert_eq!(
        ours.iter().filter(|l| l.contains("echo request")).count(),
        3
    );
    assert!(
        ours.iter()
            .any(|l| l.contains(&format!("{} > {}", h2.ip, h1.ip))),
        "{ours:#?}"
    );
    // Capturing never dropped traffic, and the capture is gone.
    assert_eq!(
        lab.cli_json(&["stats"])["captures"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    lab.cli_fails(&["capture", "p1"], "give -w FILE");
    lab.cli_fails(
        &["capture", "nope", "-w", "/dev/null"],
        "nope: no such port",
    );
}

/// A tmux session, killed on drop.
struct Tmux(String);

impl Tmux {
    fn pane(&self) -> String {
        let out = std::process::Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.0])
            .output()
            .expect("tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    fn alive(&self) -> bool {
        std::process::Command::new("tmux")
            .args(["has-session", "-t", &self.0])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[test]
fn top_renders_in_a_terminal_and_quits_on_q() {
    use patchbay_tools::wait_for;
    use std::time::Duration;
    let lab = gateway();
    let (h1, h2) = (lab.host(1), lab.host(2));
    let socket = lab.daemon.as_ref().unwrap().socket.clone();
    let cmd = format!(
        "{} --socket {} top interval 0.5",
        lab.bins.patchbay.display(),
        socket.display()
    );
    let tmux = Tmux(format!("{}-top", lab.tag));
    let started = std::process::Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            &tmux.0,
            "-x",
            "140",
            "-y",
            "40",
            &cmd,
        ])
        .status()
        .expect("tmux");
    assert!(started.success());
    let stream = h1
        .ns
        .spawn(&["ping", "-c", "40", "-i", "0.05", "-q", &h2.ip]);
    let shows = |pane: &str| {
        [
            "PORT",
            "RX pkt/s",
            "p1",
            "p2",
            "lan",
            "wan",
            "BRIDGE",
            "tables: fdb",
            "router/s",
        ]
        .iter()
        .all(|w| pane.contains(w))
    };
    assert!(
        wait_for(Duration::from_secs(10), || shows(&tmux.pane())),
        "{}",
        tmux.pane()
    );
    // While the pings flow, p1 shows a non-zero packet rate.
    let p1_rate = || {
        let pane = tmux.pane();
        pane.lines()
            .find(|l| l.starts_with("p1 "))
            .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
            .is_some_and(|r| r != "0")
    };
    assert!(wait_for(Duration::from_secs(5), p1_rate), "{}", tmux.pane());
    let _ = stream.wait_with_output();
    std::process::Command::new("tmux")
        .args(["send-keys", "-t", &tmux.0, "q"])
        .status()
        .expect("tmux");
    assert!(
        wait_for(Duration::from_secs(5), || !tmux.alive()),
        "q did not quit"
    );
    // One frame without a terminal, for scripts.
    let once = lab.cli_ok(&["top", "once", "interval", "0.2"]);
    assert!(shows(&once), "{once}");
}

#[test]
fn prometheus_metrics_and_per_stage_counters() {
    let mut lab = Lab::new(bins(), 2);
    lab.start_daemon(&[
        "--port",
        "p1",
        "--port",
        "p2",
        "--metrics",
        "127.0.0.1:9464",
    ]);
    assert!(lab.host(1).ping_ok(&lab.host(2).ip, 2));
    let get = |path: &str| {
        lab.sw.check(&[
            "python3",
            "-c",
            &format!(
                "import urllib.request, urllib.error\n\
                 try:\n\
                 \x20   print(urllib.request.urlopen('http://127.0.0.1:9464{path}', timeout=5).read().decode(), end='')\n\
                 except urllib.error.HTTPError as e:\n\
                 \x20   print('HTTP', e.code)\n"
            ),
        ])
    };
    let text = get("/metrics");
    for want in [
        "# TYPE patchbay_port_rx_packets_total counter",
        "patchbay_port_rx_packets_total{port=\"p1\"}",
        "patchbay_bridge_fdb_entries{bridge=\"br0\"} 2",
        "patchbay_fdb_max 65536",
        "patchbay_nat_sessions 0",
        "patchbay_up 1",
    ] {
        assert!(text.contains(want), "{want} not in:\n{text}");
    }
    // Every sample line is NAME{LABELS} VALUE or NAME VALUE.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (_, value) = line.rsplit_once(' ').expect("name and value");
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
    assert_eq!(get("/nope").trim(), "HTTP 404");
    let stats = lab.cli_ok(&["stats"]);
    assert!(
        stats.contains("stage port:") && stats.contains("stage l2:"),
        "{stats}"
    );
}
