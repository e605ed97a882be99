//! VXLAN ports against a kernel VTEP (`ip link add vxk type vxlan` in a
//! kernel bridge) and against another patchbayd: one L2 segment across two
//! "sites" joined by an underlay veth pair (MTU 1600, so that hosts keep
//! their 1500).
//!
//! Needs root and the tools that `tools/test` installs.

use patchbay_tools::{iperf3_bytes, wait_for, Bins, Lab, Netns};
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

#[test]
fn a_vxlan_port_interoperates_with_a_kernel_vtep() {
    // Site A: patchbayd with h1 (10.10.0.1) on p1 and vx0.
    let mut a = Lab::new(bins(), 0);
    a.add_host("10.10.0.1/24");
    let site = Netns::new(&format!("{}-ksite", a.tag));
    patchbay_tools::lab::vxlan_underlay(&a.sw, &site);
    let (h2, h2_mac) = kernel_site(&site, &a.tag);
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
        "remote",
        "10.200.0.2",
        "dstport",
        "4789",
        "master",
        "br0",
    ]);
    let h1 = a.host(1);

    assert!(h1.ping_ok("10.10.0.2", 3), "h1 -> h2 across VXLAN");
    let df = h1.ns.run(&[
        "ping",
        "-c",
        "2",
        "-W",
        "2",
        "-M",
        "do",
        "-s",
        "1472",
        "10.10.0.2",
    ]);
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
    let mut b = Lab::new(bins(), 0);
    b.add_host("10.10.0.2/24");
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
    // The trace shows both ends of the tunnel.
    a.cli_ok(&["trace", "start", "count", "2", "filter", "icmp"]);
    b.cli_ok(&["trace", "start", "count", "2", "filter", "icmp"]);
    assert!(a.host(1).ping_ok("10.10.0.2", 1));
    let ta = a.cli_ok(&["trace", "show"]);
    assert!(ta.contains("vxlan-encap: VNI 42 out of vx0"), "{ta}");
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
    let _ = std::fs::remove_file(&file);
    // The flood list and the static remote in fdb show.
    let fdb = a.cli_ok(&["fdb", "show"]);
    assert!(
        fdb.contains("00:00:00:00:00:00 dev vx0 dst 10.200.0.9"),
        "{fdb}"
    );
}
