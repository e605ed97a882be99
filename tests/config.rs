//! The lab as a config file: `patchbayd --config`, `patchbay apply`,
//! `patchbay save` and SIGHUP, judged by kernel hosts in namespaces; and the
//! zero-loss test: a steady stream through patchbay while 100,000 route
//! changes, an address add/del and NAT rule changes are applied.
//!
//! Needs root and the tools that `tools/test` installs.

use patchbay_tools::{wait_for, Bins, Lab};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

fn bins() -> Bins {
    Bins {
        patchbayd: env!("CARGO_BIN_EXE_patchbayd").into(),
        patchbay: env!("CARGO_BIN_EXE_patchbay").into(),
    }
}

/// A lab file beside the lab, removed on drop.
struct File(PathBuf);

impl File {
    fn new(lab: &Lab, name: &str, text: &str) -> File {
        let path = std::env::temp_dir().join(format!("{}-{name}", lab.tag));
        std::fs::write(&path, text).expect("write config");
        File(path)
    }
    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 path")
    }
    fn write(&self, text: &str) {
        std::fs::write(&self.0, text).expect("write config");
    }
}

impl Drop for File {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// h1 10.1.0.2 on p1, h2 10.2.0.2 on p2, h3 10.3.0.2 on p3, each with the
/// gateway .1 of its subnet; no daemon yet.
fn hosts() -> Lab {
    let mut lab = Lab::new(bins(), 0);
    lab.add_routed_hosts(3);
    lab
}

/// Bridges lan (p1), wan (p2) and other (p3) routed between, with h1's
/// subnet masqueraded behind wan; `extra` is appended.
fn gateway_lab(extra: &str) -> String {
    format!(
        r#"# h1 behind a masquerading gateway; h3 on a bridge of its own.
[limits]
rx_ring_mib = 64

[timeouts]
nat_udp_secs = 600

[[bridge]]
name = "lan"
addresses = ["10.1.0.1/24"]

[[bridge]]
name = "wan"
addresses = ["10.2.0.1/24"]

[[bridge]]
name = "other"
addresses = ["10.3.0.1/24"]

[[port]]
name = "p1"
bridge = "lan"

[[port]]
name = "p2"
bridge = "wan"

[[port]]
name = "p3"
bridge = "other"

[[nat]]
kind = "masquerade"
src = "10.1.0.0/24"
out = "wan"
{extra}"#
    )
}

/// `n` routes to /24s under `first`.0.0.0 via h3, as config tables.
fn routes(first: u8, n: usize) -> String {
    let mut s = String::with_capacity(n * 60);
    for i in 0..n {
        let _ = write!(
            s,
            "\n[[route]]\ndst = \"{first}.{}.{}.0/24\"\nvia = \"10.3.0.2\"\n",
            i / 256,
            i % 256
        );
    }
    s
}

fn start(lab: &mut Lab, file: &File) {
    lab.start_daemon(&["--config", file.path()]);
}

#[test]
fn a_config_file_makes_the_lab_and_save_then_apply_changes_nothing() {
    let mut lab = hosts();
    let file = File::new(&lab, "lab.toml", &gateway_lab(&routes(100, 3)));
    start(&mut lab, &file);
    let (h1, h2, h3) = (lab.host(1), lab.host(2), lab.host(3));
    assert!(h1.ping_ok(&h2.ip, 3), "h1 -> h2 through NAT");
    assert!(h3.ping_ok(&h1.ip, 2), "h3 -> h1 routed");
    let sessions = lab.cli_ok(&["nat", "sessions"]);
    assert!(sessions.contains("10.1.0.2"), "{sessions}");
    let route = lab.cli_ok(&["route", "get", "100.0.2.9"]);
    assert!(route.contains("via 10.3.0.2"), "{route}");

    let saved = lab.cli_ok(&["save"]);
    for want in [
        "name = \"lan\"",
        "dst = \"100.0.1.0/24\"",
        "kind = \"masquerade\"",
        "nat_udp_secs = 600",
        "rx_ring_mib = 64",
    ] {
        assert!(saved.contains(want), "{want} not in:\n{saved}");
    }
    let again = File::new(&lab, "saved.toml", &saved);
    let out = lab.cli_ok(&["apply", again.path()]);
    assert_eq!(out.trim(), "no changes");
    // And the file it was started with is what it runs.
    assert_eq!(lab.cli_ok(&["apply", file.path()]).trim(), "no changes");
    // Learned state was not touched by either.
    assert!(lab.cli_ok(&["nat", "sessions"]).contains("10.1.0.2"));
}

#[test]
fn apply_changes_only_the_difference_and_keeps_learned_state() {
    let mut lab = hosts();
    let file = File::new(&lab, "lab.toml", &gateway_lab(""));
    start(&mut lab, &file);
    let (h1, h2) = (lab.host(1), lab.host(2));
    assert!(h1.ping_ok(&h2.ip, 2));
    let fdb_before = lab.cli_json(&["fdb", "show"]).as_array().unwrap().len();
    assert!(fdb_before >= 2);

    // A route, a static neighbour, a DNAT rule and a new bridge.
    let more = r#"
[[bridge]]
name = "spare"

[[route]]
dst = "192.168.50.0/24"
via = "10.3.0.2"

[[neigh]]
ip = "10.3.0.9"
mac = "02:00:00:00:03:09"
dev = "other"

[[nat]]
kind = "dnat"
proto = "tcp"
in = "wan"
dport = 8080
to_addr = "10.1.0.2"
to_port = 80
"#;
    file.write(&gateway_lab(more));
    let dry = lab.cli_ok(&["apply", file.path(), "check"]);
    assert!(dry.starts_with("would make 4 changes"), "{dry}");
    assert!(!lab.cli(&["route", "get", "192.168.50.1"]).status.success());
    let out = lab.cli_ok(&["apply", file.path()]);
    assert!(out.starts_with("made 4 changes"), "{out}");
    assert!(lab
        .cli_ok(&["route", "show"])
        .contains("192.168.50.0/24 via 10.3.0.2"));
    assert!(lab.cli_ok(&["neigh", "show"]).contains("10.3.0.9"));
    assert!(lab.cli_ok(&["nat", "show"]).contains("dport 8080"));
    assert!(lab.cli_ok(&["link", "show"]).contains("spare"));
    // Learned MACs, ARP entries and the NAT session are all still there.
    let fdb_after = lab.cli_json(&["fdb", "show"]).as_array().unwrap().len();
    assert!(fdb_after >= fdb_before, "{fdb_before} -> {fdb_after}");
    assert!(lab.cli_ok(&["neigh", "show"]).contains("10.2.0.2"));
    assert!(lab.cli_ok(&["nat", "sessions"]).contains("10.1.0.2"));
    assert!(h1.ping_ok(&h2.ip, 2));

    // Back to the first file: the four things go again, the rest stays.
    file.write(&gateway_lab(""));
    let out = lab.cli_ok(&["apply", file.path()]);
    assert!(out.starts_with("made 4 changes"), "{out}");
    assert!(!lab.cli_ok(&["link", "show"]).contains("spare"));
    assert!(lab.cli_ok(&["nat", "show"]).contains("masquerade"));
    assert!(!lab.cli_ok(&["nat", "show"]).contains("dnat"));
    assert!(h1.ping_ok(&h2.ip, 2));

    // Moving a port to another bridge, and a port that goes.
    let moved = gateway_lab("").replace(
        "name = \"p3\"\nbridge = \"other\"",
        "name = \"p3\"\nbridge = \"lan\"",
    );
    file.write(&moved);
    lab.cli_ok(&["apply", file.path()]);
    let links = lab.cli_json(&["link", "show"]);
    let p3 = links["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "p3")
        .unwrap();
    assert_eq!(p3["master"], "lan");
    file.write(&moved.replace("[[port]]\nname = \"p3\"\nbridge = \"lan\"\n", ""));
    lab.cli_ok(&["apply", file.path()]);
    assert!(!lab.cli_ok(&["link", "show"]).contains("p3"));
}

#[test]
fn a_bad_config_changes_nothing_and_says_where() {
    let mut lab = hosts();
    let file = File::new(&lab, "lab.toml", &gateway_lab(""));
    start(&mut lab, &file);
    let before = lab.cli_ok(&["save"]);

    let cases = [
        (
            gateway_lab("\n[[route]]\ndst = \"10.0.0.0/33\"\nvia = \"10.3.0.2\"\n"),
            "route 10.0.0.0/33: prefix length over 32",
        ),
        (
            gateway_lab("\n[[route]]\ndst = \"10.9.0.0/16\"\nvia = \"10.7.0.1\"\n"),
            "on no bridge's subnet",
        ),
        (
            gateway_lab("\n[[port]]\nname = \"nosuch0\"\nbridge = \"lan\"\n"),
            "nosuch0",
        ),
        (
            gateway_lab("").replace("[limits]\nrx_ring_mib = 64", "[limits]\nnat_max = 1000"),
            "restart",
        ),
        (
            "[[bridge]]\nname = \"lan\"\nmtu = 1400\n".to_string(),
            "give the bridge an address",
        ),
        ("[[bridge]\n".to_string(), "lab.toml:1:"),
    ];
    for (text, want) in cases {
        file.write(&text);
        let out = lab.cli(&["apply", file.path()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}");
        assert!(err.contains(want), "want '{want}' in: {err}");
        assert!(
            err.contains(&format!("{}:", file.path())),
            "names the file: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        assert_eq!(
            lab.cli_ok(&["save"]),
            before,
            "nothing changed after: {err}"
        );
    }
    let line = {
        file.write(&gateway_lab(
            "\n[[route]]\ndst = \"10.0.0.0/33\"\nvia = \"10.3.0.2\"\n",
        ));
        let out = lab.cli(&["apply", file.path()]);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let at = line
        .split(':')
        .nth(2)
        .unwrap_or("")
        .trim()
        .parse::<usize>()
        .unwrap_or(0);
    let text = gateway_lab("\n[[route]]\ndst = \"10.0.0.0/33\"\nvia = \"10.3.0.2\"\n");
    assert_eq!(
        text.lines().nth(at - 1).unwrap_or(""),
        "dst = \"10.0.0.0/33\"",
        "{line}"
    );

    // patchbayd itself refuses to start on a bad file, saying where.
    let bad = File::new(
        &lab,
        "bad.toml",
        "[[port]]\nname = \"p1\"\nbridge = \"nope\"\n",
    );
    let out = lab.sw.run(&[
        lab.bins.patchbayd.to_str().unwrap(),
        "--config",
        bad.path(),
        "--socket",
        "/tmp/never.sock",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("{}:3: port p1: no bridge 'nope'", bad.path())),
        "{err}"
    );
}

#[test]
fn sighup_rereads_the_config_file() {
    let mut lab = hosts();
    let file = File::new(&lab, "lab.toml", &gateway_lab(""));
    start(&mut lab, &file);
    file.write(&gateway_lab(
        "\n[[route]]\ndst = \"172.20.0.0/16\"\nvia = \"10.3.0.2\"\n",
    ));
    let pid = lab.daemon.as_ref().unwrap().pid().to_string();
    lab.sw.check(&["kill", "-HUP", &pid]);
    assert!(
        wait_for(Duration::from_secs(5), || lab
            .cli_ok(&["route", "show"])
            .contains("172.20.0.0/16")),
        "{}",
        lab.daemon.as_ref().unwrap().log()
    );
    // A broken file is logged and changes nothing.
    file.write("[[bridge]]\nname = 7\n");
    lab.sw.check(&["kill", "-HUP", &pid]);
    assert!(wait_for(Duration::from_secs(5), || lab
        .daemon
        .as_ref()
        .unwrap()
        .log()
        .contains("nothing changed")));
    assert!(lab.cli_ok(&["route", "show"]).contains("172.20.0.0/16"));
    assert!(lab.daemon.as_mut().unwrap().alive());
}

/// Lost and out-of-order datagrams of an iperf3 UDP run, from its JSON.
fn udp_result(json: &str) -> (u64, u64, u64) {
    let v: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let sum = &v["end"]["sum"];
    let stream = &v["end"]["streams"][0]["udp"];
    (
        sum["packets"].as_u64().unwrap_or(0),
        sum["lost_packets"].as_u64().unwrap_or(u64::MAX),
        stream["out_of_order"].as_u64().unwrap_or(0),
    )
}

#[test]
fn no_packet_is_lost_while_100k_routes_an_address_and_nat_rules_change() {
    let mut lab = hosts();
    // 25,000 routes A; file B has 25,000 others: A -> B -> A is 100,000
    // route changes.
    let a = gateway_lab(&routes(100, 25_000));
    let b = gateway_lab(&format!(
        "{}\n[[nat]]\nkind = \"dnat\"\nproto = \"udp\"\nin = \"wan\"\ndport = 5353\nto_addr = \"10.1.0.2\"\nto_port = 53\n",
        routes(101, 25_000)
    ));
    let file = File::new(&lab, "lab.toml", &a);
    start(&mut lab, &file);
    let (h1, h2) = (lab.host(1), lab.host(2));
    assert!(h1.ping_ok(&h2.ip, 2));
    h2.ns.check(&["iperf3", "-s", "-D", "-1"]);
    assert!(wait_for(Duration::from_secs(5), || h2
        .ns
        .check(&["ss", "-Hltn", "sport = :5201"])
        .contains("5201")));
    // The measured flow: h1 -> h2 through the masquerade, UDP at a fixed
    // rate, and a counted ping stream beside it. The rate is one that h2's
    // socket buffer (about 90 datagrams) absorbs when an apply pauses
    // forwarding for 50-150 ms and the rings hand over what they held at
    // once: what is measured is patchbay, not h2.
    let stream = h1.ns.spawn(&[
        "iperf3", "-c", &h2.ip, "-u", "-b", "4M", "-l", "1000", "-t", "8", "--json",
    ]);
    let pings = h1
        .ns
        .spawn(&["ping", "-c", "600", "-i", "0.01", "-W", "2", "-q", &h2.ip]);
    std::thread::sleep(Duration::from_millis(1500));

    let file_b = File::new(&lab, "b.toml", &b);
    let out = lab.cli_ok(&["apply", file_b.path()]);
    eprintln!("apply A->B: {}", out.trim());
    assert!(out.contains("routes +25000 -25000"), "{out}");
    lab.cli_ok(&["addr", "add", "10.30.0.1/24", "dev", "other"]);
    lab.cli_ok(&[
        "nat",
        "add",
        "masquerade",
        "src",
        "10.3.0.0/24",
        "out",
        "wan",
    ]);
    lab.cli_ok(&["addr", "del", "10.30.0.1/24", "dev", "other"]);
    let out = lab.cli_ok(&["apply", file.path()]);
    assert!(
        out.contains("routes +25000 -25000") && out.contains("nat +0 -2"),
        "{out}"
    );

    let stream = stream.wait_with_output().expect("iperf3");
    let pings = pings.wait_with_output().expect("ping");
    let (packets, lost, reordered) = udp_result(&String::from_utf8_lossy(&stream.stdout));
    let ping_out = String::from_utf8_lossy(&pings.stdout);
    let stats = lab.cli_json(&["stats"]);
    let drops: Vec<_> = stats["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].clone(), p["drops_by_reason"].clone()))
        .collect();
    assert!(packets > 2_500, "the stream ran: {packets} datagrams");
    assert_eq!(lost, 0, "lost {lost} of {packets}; drops {drops:?}");
    assert_eq!(reordered, 0, "{reordered} of {packets} out of order");
    assert!(ping_out.contains(" 0% packet loss"), "{ping_out}");
    assert!(lab
        .cli_ok(&["route", "get", "100.0.7.1"])
        .contains("via 10.3.0.2"));
}

#[test]
fn apply_adds_and_removes_tap_ports() {
    let mut lab = hosts();
    let file = File::new(&lab, "lab.toml", &gateway_lab(""));
    start(&mut lab, &file);
    let tap = format!("t{}", std::process::id() % 100_000);
    file.write(&gateway_lab(&format!(
        "\n[[port]]\nname = \"{tap}\"\nkind = \"tap\"\nbridge = \"other\"\n"
    )));
    let out = lab.cli_ok(&["apply", file.path()]);
    assert!(out.contains("ports +1 -0"), "{out}");
    assert!(lab
        .cli_ok(&["save"])
        .contains(&format!("name = \"{tap}\"\nkind = \"tap\"")));
    lab.sw.check(&["ip", "link", "show", &tap]);
    // A port that cannot be opened: the whole apply is refused, naming it.
    file.write(&gateway_lab(
        "\n[[port]]\nname = \"nosuch9\"\nbridge = \"lan\"\n",
    ));
    let before = lab.cli_ok(&["save"]);
    let out = lab.cli(&["apply", file.path()]);
    assert!(!out.status.success());
    assert_eq!(lab.cli_ok(&["save"]), before, "the tap is still there");
    // Gone from the file, gone from the switch (and the device with it).
    file.write(&gateway_lab(""));
    let out = lab.cli_ok(&["apply", file.path()]);
    assert!(out.contains("ports +0 -1"), "{out}");
    assert!(!lab.cli_ok(&["link", "show"]).contains(&tap));
    assert!(!lab.sw.run(&["ip", "link", "show", &tap]).status.success());
}

#[test]
fn check_refuses_what_apply_refuses_and_touches_nothing() {
    let mut lab = hosts();
    let file = File::new(&lab, "lab.toml", &gateway_lab(""));
    start(&mut lab, &file);
    // A veth pair in the switch's namespace that is no port: its ends are
    // down, and one of them is named as a TAP port below.
    lab.sw.check(&[
        "ip", "link", "add", "spare0", "type", "veth", "peer", "name", "spare1",
    ]);
    // The ports come up (and announce the bridges' addresses) a moment
    // after the daemon answers: compare the link table only once it is
    // settled, or the comparison below races their start.
    let settled = || {
        lab.cli_json(&["link", "show"])["ports"]
            .as_array()
            .is_some_and(|ports| {
                ports
                    .iter()
                    .all(|p| p["state"] == "up" && p["tx_packets"] != 0)
            })
    };
    assert!(wait_for(Duration::from_secs(5), settled), "ports not up");
    let before = lab.cli_ok(&["save"]);
    let links = lab.cli_json(&["link", "show"]);
    let cases = [
        (
            "\n[[port]]\nname = \"nosuch0\"\nbridge = \"lan\"\n",
            "port nosuch0: no such interface in this network namespace",
        ),
        (
            "\n[[port]]\nname = \"lo\"\nbridge = \"lan\"\n",
            "port lo: a loopback or point-to-point interface, not Ethernet",
        ),
        (
            "\n[[port]]\nname = \"spare1\"\nkind = \"tap\"\n",
            "port spare1: an interface of that name exists and is not a TAP device",
        ),
        // Each gateway is on a connected subnet, so the file is fine; but
        // once the /25 is in, 10.3.0.2 is reached through a gateway, which
        // the router refuses for the second route.
        (
            "\n[[route]]\ndst = \"10.3.0.0/25\"\nvia = \"10.3.0.100\"\n\
             [[route]]\ndst = \"10.50.0.0/16\"\nvia = \"10.3.0.2\"\n",
            "route add 10.50.0.0/16",
        ),
    ];
    for (extra, want) in cases {
        file.write(&gateway_lab(extra));
        let check = lab.cli(&["apply", file.path(), "check"]);
        let check_err = String::from_utf8_lossy(&check.stderr).into_owned();
        assert!(!check.status.success(), "check passed: {extra}");
        assert!(check_err.contains(want), "want '{want}' in: {check_err}");
        assert_eq!(lab.cli_ok(&["save"]), before, "check changed: {check_err}");
        let apply = lab.cli(&["apply", file.path()]);
        assert!(!apply.status.success(), "apply passed: {extra}");
        assert_eq!(
            String::from_utf8_lossy(&apply.stderr),
            check_err,
            "apply and check differ"
        );
        assert_eq!(lab.cli_ok(&["save"]), before, "apply changed: {check_err}");
    }
    assert_eq!(lab.cli_json(&["link", "show"])["ports"], links["ports"]);

    // A file that is fine: check says what apply would do, opens nothing
    // and leaves the interface as it was (down); apply then does it.
    file.write(&gateway_lab(
        "\n[[port]]\nname = \"spare0\"\nbridge = \"lan\"\n",
    ));
    let out = lab.cli_ok(&["apply", file.path(), "check"]);
    assert_eq!(out.trim(), "would make 1 change: ports +1 -0 ~0", "{out}");
    assert_eq!(lab.cli_ok(&["save"]), before);
    // Its flags, as <BROADCAST,MULTICAST,UP,...>.
    let spare0 = || lab.sw.check(&["ip", "link", "show", "spare0"]);
    assert!(!spare0().contains(",UP"), "{}", spare0());
    let out = lab.cli_ok(&["apply", file.path()]);
    assert!(out.starts_with("made 1 change: ports +1 -0 ~0"), "{out}");
    assert!(spare0().contains(",UP"), "{}", spare0());
}
