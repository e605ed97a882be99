//! VXLAN ports against a kernel VTEP (`ip link add vxk type vxlan` in a
//! kernel bridge) and against another patchbayd: one L2 segment across two
//! "sites" joined by an underlay veth pair (MTU 1600, so that hosts keep
//! their 1500).
//!
//! Needs root and the tools that `tools/test` installs.

use patchbay_tools::{iperf3_bytes, wait_for, wait_listening, Bins, Capture, Lab, Netns};
use std::process::Command;
use std::time::Duration;

fn bins() -> Bins {
    Bins {
        patchbayd: env!("CARGO_BIN_EXE_patchbayd").into(),
        patchbay: env!("CARGO_BIN_EXE_patchbay").into(),
    }
}

/// The kernel's site: in `site`, a VXLAN device (VNI 42) and host `h2`
/// (10.10.0.2) on a kernel bridge.
fn kernel_site(site: &Netns, tag: &str) -> (Netns, String) {
    let h2 = Netns::new(&format!("{tag}-kh2"));
    let ok = Command::new("ip")
        .args([
            "link", "add", "eth0", "netns", &h2.name, "type", "veth", "peer", "name", "p2",
            "netns", &site.name,
        ])
        .status()
        .expect("ip")
        .success();
    assert!(ok);
    h2.check(&["ip", "addr", "add", "10.10.0.2/24", "dev", "eth0"]);
    h2.check(&["ip", "link", "set", "eth0", "up"]);
    patchbay_tools::lab::kernel_vtep(site, "10.200.0.2", "10.200.0.1", &["p2"]);
    let mac = h2
        .check(&["cat", "/sys/class/net/eth0/address"])
        .trim()
        .to_string();
    (h2, mac)
}

/// `count` pings of `size` bytes with DF from `ns` to h2 (10.10.0.2).
fn ping_df(ns: &Netns, count: u32, size: u32) -> std::process::Output {
    let (count, size) = (count.to_string(), size.to_string());
    ns.run(&[
        "ping",
        "-c",
        &count,
        "-W",
        "2",
        "-M",
        "do",
        "-s",
        &size,
        "10.10.0.2",
    ])
}

#[test]
fn a_vxlan_port_interoperates_with_a_kernel_vtep() {
    // Site A: patchbayd with h1 (10.10.0.1) on p1 and vx0.
    let mut a = Lab::new(bins(), 0);
    a.add_host("10.10.0.1/24");
    let site = Netns::new(&format!("{}-ksite", a.tag));
    patchbay_tools::lab::vxlan_underlay(&a.sw, &site);
    let (h2, h2_mac) = kernel_site(&site, &a.tag);
    a.start_daemon(&["--port", "p1"]);
    a.cli_ok(&patchbay_tools::lab::vx0_args("10.200.0.1", "10.200.0.2"));
    let h1 = a.host(1);

    assert!(h1.ping_ok("10.10.0.2", 3), "h1 -> h2 across VXLAN");
    let df = ping_df(&h1.ns, 2, 1472);
    assert!(df.status.success(), "a 1472-byte ping with DF");
    let arping = h2.run(&["arping", "-c", "2", "-w", "4", "-I", "eth0", "10.10.0.1"]);
    assert!(
        String::from_utf8_lossy(&arping.stdout).contains(&h1.mac),
        "arping h1 from the kernel's side"
    );

    // Each side learned the other's MAC at the right VTEP.
    let fdb = a.cli_json(&["fdb", "show"]);
    let row = fdb
        .as_array()
        .and_then(|r| r.iter().find(|r| r["mac"] == h2_mac.as_str()))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (row["port"].as_str(), row["dst"].as_str()),
        (Some("vx0"), Some("10.200.0.2")),
        "{fdb}"
    );
    let kfdb = site.check(&["bridge", "fdb", "show", "dev", "vxk"]);
    assert!(
        kfdb.contains(&format!("{} dst 10.200.0.1", h1.mac)),
        "the kernel's FDB learned h1: {kfdb}"
    );

    // TCP with default offloads, both ways: patchbay segments the TSO
    // frames it encapsulates, and finishes the partial checksums of what
    // comes out of the kernel's tunnel.
    let forward = iperf3_bytes(&h1.ns, &h2, "10.10.0.2", 2);
    assert!(forward > 10e6, "h1 -> h2 moved only {forward} bytes");
    let reverse = iperf3_bytes(&h2, &h1.ns, "10.10.0.1", 2);
    assert!(reverse > 10e6, "h2 -> h1 moved only {reverse} bytes");
    assert_eq!(a.drops("vx0", "gso-unsupported"), 0);

    // Remote MACs age with the bridge's ageing time, as its FDB's do.
    a.cli_ok(&["link", "set", "br0", "ageing_time", "1"]);
    let aged = wait_for(Duration::from_secs(10), || {
        !a.cli_ok(&["fdb", "show"]).contains(&h2_mac)
            && a.cli_json(&["fdb", "show"])
                .to_string()
                .contains("10.200.0.2")
    });
    assert!(aged, "{}", a.cli_ok(&["fdb", "show"]));
}

#[test]
fn bad_vxlan_datagrams_are_counted_drops() {
    let mut a = Lab::new(bins(), 0);
    a.add_host("10.10.0.1/24");
    let site = Netns::new(&format!("{}-bsite", a.tag));
    patchbay_tools::lab::vxlan_underlay(&a.sw, &site);
    a.start_daemon(&["--port", "p1"]);
    a.cli_ok(&[
        "link",
        "add",
        "vx0",
        "type",
        "vxlan",
        "id",
        "42",
        "local",
        "10.200.0.1",
        "master",
        "br0",
    ]);
    let frame = "ffffffffffff020000000002" // broadcast from 02:..:02
        .to_string()
        + "88b5"
        + &"00".repeat(46);
    let script = format!(
        "import socket\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
         f=bytes.fromhex('{frame}')\n\
         for d in [bytes([8,0,0,0,0,0,43,0])+f, bytes([8,0,0,0,0,0,42]), bytes([12,0,0,0,0,0,42,0])+f, bytes([0,0,0,0,0,0,42,0])+f]:\n\
         \x20   s.sendto(d,('10.200.0.1',4789))\n"
    );
    site.check(&["python3", "-c", &script]);
    let counted = wait_for(Duration::from_secs(3), || {
        a.drops("vx0", "vxlan-vni") == 1 && a.drops("vx0", "vxlan-malformed") == 3
    });
    assert!(counted, "{}", a.cli_ok(&["stats"]));
    // Nothing reached h1.
    let fdb = a.cli_ok(&["fdb", "show"]);
    assert!(!fdb.contains("02:00:00:00:00:02"), "{fdb}");
}

/// patchbayd A's side, as a config file: br0 with h1's port and vx0.
const SITE_A: &str = r#"
[[port]]
name = "p1"
bridge = "br0"

[[port]]
name = "vx0"
kind = "vxlan"
bridge = "br0"
vni = 42
local = "10.200.0.1"
remote = "10.200.0.2"
flood = ["10.200.0.9"]
remotes = [{ mac = "02:00:00:00:00:99", dst = "10.200.0.2" }]
"#;

#[test]
fn two_patchbays_over_vxlan_and_the_config_carries_it() {
    let mut a = Lab::new(bins(), 0);
    a.add_host("10.10.0.1/24");
    a.add_host("10.11.0.1/24");
    let mut b = Lab::new(bins(), 0);
    b.add_host("10.10.0.2/24");
    b.add_host("10.11.0.2/24");
    patchbay_tools::lab::vxlan_underlay(&a.sw, &b.sw);
    a.start_daemon(&[]);
    b.start_daemon(&["--port", "p1"]);
    let file = std::env::temp_dir().join(format!("{}-vxlan.toml", a.tag));
    std::fs::write(&file, SITE_A).expect("config");
    let path = file.to_str().expect("utf-8");
    a.cli_ok(&["apply", path]);
    b.cli_ok(&[
        "link",
        "add",
        "vx0",
        "type",
        "vxlan",
        "id",
        "42",
        "local",
        "10.200.0.2",
        "master",
        "br0",
    ]);
    b.cli_ok(&[
        "fdb",
        "append",
        "00:00:00:00:00:00",
        "dev",
        "vx0",
        "dst",
        "10.200.0.1",
    ]);
    assert!(a.host(1).ping_ok("10.10.0.2", 3), "site A -> site B");
    // A second segment on the same UDP port, told apart by its VNI, in the
    // issue's words: no remote, a flood list.
    for (lab, local, peer) in [
        (&a, "10.200.0.1", "10.200.0.2"),
        (&b, "10.200.0.2", "10.200.0.1"),
    ] {
        lab.cli_ok(&["link", "add", "br1", "type", "bridge"]);
        lab.cli_ok(&["link", "add", "p2", "type", "afpacket", "master", "br1"]);
        lab.cli_ok(&[
            "link", "add", "vx1", "type", "vxlan", "id", "43", "local", local, "dstport", "4789",
            "master", "br1",
        ]);
        lab.cli_ok(&[
            "fdb",
            "append",
            "00:00:00:00:00:00",
            "dev",
            "vx1",
            "dst",
            peer,
        ]);
    }
    assert!(a.host(2).ping_ok("10.11.0.2", 3), "VNI 43 beside VNI 42");
    assert!(a.host(1).ping_ok("10.10.0.2", 1), "VNI 42 still");
    let fdb = b.cli_ok(&["fdb", "show"]);
    let h2 = &a.host(2).mac;
    assert!(fdb.contains(&format!("{h2} dev vx1")), "{fdb}");
    assert!(!fdb.contains(&format!("{h2} dev vx0")), "{fdb}");
    a.cli_fails(
        &[
            "link",
            "add",
            "vx2",
            "type",
            "vxlan",
            "id",
            "43",
            "local",
            "10.200.0.1",
            "dstport",
            "4789",
        ],
        "VNI 43 on 10.200.0.1:4789 is vx1's already",
    );
    // The trace shows both ends of the tunnel.
    a.cli_ok(&["trace", "start", "count", "2", "filter", "icmp"]);
    b.cli_ok(&["trace", "start", "count", "2", "filter", "icmp"]);
    assert!(a.host(1).ping_ok("10.10.0.2", 1));
    let ta = a.cli_ok(&["trace", "show"]);
    assert!(
        ta.contains("vxlan-encap: VNI 42 out of vx0 to VTEP 10.200.0.2"),
        "{ta}"
    );
    assert!(
        ta.contains("vxlan-decap: VNI 42 from VTEP 10.200.0.2"),
        "{ta}"
    );
    let tb = b.cli_ok(&["trace", "show"]);
    assert!(
        tb.contains("vxlan-decap: VNI 42 from VTEP 10.200.0.1"),
        "{tb}"
    );
    let received = iperf3_bytes(&a.host(1).ns, &b.host(1).ns, "10.10.0.2", 2);
    assert!(received > 10e6, "iperf3 moved only {received} bytes");
    // Site A's segments leave in UDP_SEGMENT trains, which site B's socket
    // takes whole (UDP_GRO): B makes the segments of a flow one TSO frame
    // again, and h2 receives frames far bigger than its MTU.
    // The same over IPv6 inside the tunnel.
    a.host(1).enable_ipv6(Some("fd00:10::1/64"));
    b.host(1).enable_ipv6(Some("fd00:10::2/64"));
    assert!(a.host(1).ping6_ok("fd00:10::2", 3), "IPv6 across VXLAN");
    for (dst, filter) in [
        ("10.10.0.2", "ip and tcp and greater 3000"),
        ("fd00:10::2", "ip6 and tcp and greater 3000"),
    ] {
        let big = Capture::start(&b.host(1).ns, "eth0", filter);
        b.host(1).ns.check(&["iperf3", "-s", "-D", "-1"]);
        wait_listening(&b.host(1).ns, "tcp", 5201);
        a.host(1).ns.check(&["iperf3", "-c", dst, "-n", "4M"]);
        let big = big.stop();
        assert!(
            big.len() > 10,
            "{dst}: {} frames over 3,000 bytes: {big:#?}",
            big.len()
        );
    }

    // save gives the VXLAN port back as the file had it.
    let saved = a.cli_ok(&["save"]);
    assert!(
        saved.contains(
            "kind = \"vxlan\"\nvni = 42\nlocal = \"10.200.0.1\"\nremote = \"10.200.0.2\""
        ),
        "{saved}"
    );
    assert!(saved.contains("flood = [\"10.200.0.9\"]"), "{saved}");
    std::fs::write(&file, &saved).expect("saved");
    let check = a.cli_ok(&["apply", path, "check"]);
    assert!(check.contains("no change"), "{check}");
    // Other settings make the port anew: the new vx0 takes VNI 42 from the
    // old one on the same UDP port.
    std::fs::write(&file, saved.replace("10.200.0.9", "10.200.0.8")).expect("changed");
    a.cli_ok(&["apply", path]);
    assert!(a.host(1).ping_ok("10.10.0.2", 3), "VNI 42 on the new vx0");
    assert!(a.host(2).ping_ok("10.11.0.2", 1), "VNI 43 untouched");
    std::fs::write(&file, &saved).expect("saved");
    a.cli_ok(&["apply", path]);
    let _ = std::fs::remove_file(&file);
    // The flood list and the static remote in fdb show.
    let fdb = a.cli_ok(&["fdb", "show"]);
    assert!(
        fdb.contains("00:00:00:00:00:00 dev vx0 dst 10.200.0.9"),
        "{fdb}"
    );
}

/// `addr show`'s line for `dev`.
fn addr_line(lab: &Lab, dev: &str) -> String {
    let out = lab.cli_ok(&["addr", "show"]);
    out.lines()
        .find(|l| l.starts_with(&format!("{dev}: ")))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_routed_bridge_facing_vxlan_takes_its_mtu_and_capture_shows_inner_frames() {
    // Site A: patchbayd routes between h1 (10.20.0.1, br1) and br0, whose
    // VXLAN port reaches h2 (10.10.0.2) behind a kernel VTEP. The underlay
    // has MTU 1500: inner packets of at most 1450 bytes.
    let mut a = Lab::new(bins(), 0);
    a.add_host("10.20.0.1/24");
    let site = Netns::new(&format!("{}-ksite", a.tag));
    patchbay_tools::lab::vxlan_underlay(&a.sw, &site);
    for ns in [&a.sw, &site] {
        ns.check(&["ip", "link", "set", "und", "mtu", "1500"]);
    }
    // The kernel's site as its own lab would be: the VXLAN device at 1450
    // (its underlay's less 50), so its host too.
    let (h2, _) = kernel_site(&site, &a.tag);
    h2.check(&["ip", "link", "set", "eth0", "mtu", "1450"]);
    h2.check(&["ip", "route", "add", "default", "via", "10.10.0.254"]);
    a.host(1)
        .ns
        .check(&["ip", "route", "add", "default", "via", "10.20.0.254"]);
    a.start_daemon(&["--port", "p1"]);
    let vx0 = patchbay_tools::lab::vx0_args("10.200.0.1", "10.200.0.2");
    a.cli_ok(&vx0);
    a.cli_ok(&["addr", "add", "10.10.0.254/24", "dev", "br0"]);
    a.cli_ok(&["link", "add", "br1", "type", "bridge"]);
    a.cli_ok(&["link", "set", "p1", "master", "br1"]);
    a.cli_ok(&["addr", "add", "10.20.0.254/24", "dev", "br1"]);
    assert!(
        addr_line(&a, "br0").contains("mtu 1450"),
        "{}",
        addr_line(&a, "br0")
    );
    assert!(
        addr_line(&a, "br1").contains("mtu 1500"),
        "{}",
        addr_line(&a, "br1")
    );

    // The router's MTU logic: DF and too big gets "fragmentation needed"
    // with the tunnel's MTU; without DF the router fragments; 1450 fits.
    let h1 = a.host(1);
    assert!(h1.ping_ok("10.10.0.2", 3), "h1 -> h2, routed into VXLAN");
    let big = ping_df(&h1.ns, 1, 1472);
    let said = String::from_utf8_lossy(&big.stdout);
    assert!(!big.status.success(), "{said}");
    assert!(said.contains("mtu = 1450"), "{said}");
    assert!(
        ping_df(&h1.ns, 1, 1422).status.success(),
        "1450 bytes with DF"
    );
    let fragmented = ["ping", "-c", "1", "-W", "2", "-s", "1472", "10.10.0.2"];
    assert!(
        h1.ns.run(&fragmented).status.success(),
        "fragmented by the router"
    );
    assert_eq!(a.drops("vx0", "vxlan-too-big"), 0);

    // The trace names the VTEP a frame goes to.
    a.cli_ok(&["trace", "start", "count", "1", "filter", "icmp"]);
    assert!(h1.ping_ok("10.10.0.2", 1));
    let t = a.cli_ok(&["trace", "show"]);
    assert!(
        t.contains("vxlan-encap: VNI 42 out of vx0 to VTEP 10.200.0.2"),
        "{t}"
    );

    // capture vx0 shows the inner frames, not the UDP datagrams.
    let file = std::env::temp_dir().join(format!("{}-vx0.pcap", a.tag));
    let path = file.to_str().expect("utf-8").to_string();
    let socket = a.daemon.as_ref().expect("daemon").socket.clone();
    let mut capture = Command::new(&a.bins.patchbay)
        .arg("--socket")
        .arg(&socket)
        .args([
            "capture", "vx0", "both", "-w", &path, "count", "4", "filter", "icmp",
        ])
        .spawn()
        .expect("patchbay capture");
    assert!(wait_for(Duration::from_secs(5), || {
        a.cli_json(&["stats"])["captures"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
    }));
    assert!(h1.ping_ok("10.10.0.2", 2));
    assert!(capture.wait().expect("capture ends").success());
    let read = Command::new("tcpdump")
        .args(["-n", "-e", "-r", &path])
        .output()
        .expect("tcpdump -r");
    let _ = std::fs::remove_file(&file);
    let lines = String::from_utf8_lossy(&read.stdout);
    assert_eq!(lines.lines().count(), 4, "{lines}");
    assert_eq!(
        lines
            .lines()
            .filter(|l| l.contains("10.20.0.1 > 10.10.0.2: ICMP echo request"))
            .count(),
        2,
        "{lines}"
    );
    assert!(
        !lines.contains("4789") && !lines.contains("VXLAN"),
        "{lines}"
    );

    // Without VXLAN ports the interface is back at 1500; an MTU that was
    // set stays whatever joins or leaves.
    a.cli_ok(&["link", "del", "vx0"]);
    assert!(
        addr_line(&a, "br0").contains("mtu 1500"),
        "{}",
        addr_line(&a, "br0")
    );
    a.cli_ok(&vx0);
    assert!(addr_line(&a, "br0").contains("mtu 1450"));
    a.cli_ok(&["link", "set", "br0", "mtu", "1400"]);
    a.cli_ok(&["link", "del", "vx0"]);
    a.cli_ok(&vx0);
    assert!(
        addr_line(&a, "br0").contains("mtu 1400"),
        "{}",
        addr_line(&a, "br0")
    );
}
