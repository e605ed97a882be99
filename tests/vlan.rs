//! 802.1Q VLAN-aware bridges and link-local group forwarding, with kernel
//! hosts on access ports, two patchbayd joined by a trunk, tcpdump on the
//! trunk, and tagged frames written through raw sockets.
//!
//! This machine's kernel may have no 802.1Q module (no `eth0.10` in a
//! host): the test that needs one says so and skips. Where the kernel has
//! it, it runs kernel VLAN subinterfaces as trunk hosts.
//!
//! Needs root and the tools that `tools/test` installs.

use patchbay_tools::{iperf3_bytes, wait_for, Bins, Capture, Lab, Netns};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

fn bins() -> Bins {
    Bins {
        patchbayd: env!("CARGO_BIN_EXE_patchbayd").into(),
        patchbay: env!("CARGO_BIN_EXE_patchbay").into(),
    }
}

/// A lab whose hosts have the addresses given (h1, h2, ... on p1, p2, ...).
fn lab_with(addrs: &[&str]) -> Lab {
    let mut lab = Lab::new(bins(), 0);
    for a in addrs {
        lab.add_host(a);
    }
    lab
}

/// A veth pair `trunk` between the switch namespaces of `a` and `b`, up.
fn trunk(a: &Netns, b: &Netns) {
    let ok = Command::new("ip")
        .args([
            "link", "add", "trunk", "netns", &a.name, "type", "veth", "peer", "name", "trunk",
            "netns", &b.name,
        ])
        .status()
        .expect("ip")
        .success();
    assert!(ok, "veth trunk between {} and {}", a.name, b.name);
    a.check(&["ip", "link", "set", "trunk", "up"]);
    b.check(&["ip", "link", "set", "trunk", "up"]);
}

/// Writes one Ethernet frame (hex) out of `eth0` of `ns` through a raw
/// socket.
fn send_raw(ns: &Netns, hex: &str) {
    let script = "import socket,sys\n\
                  s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\n\
                  s.bind(('eth0',0))\n\
                  s.send(bytes.fromhex(sys.argv[1]))\n";
    ns.check(&["python3", "-c", script, hex]);
}

/// A broadcast frame from `src` with EtherType 0x88b5 (local
/// experimental) and a marker, tagged `vid` if given.
fn marked_frame(dst: &str, src: &str, vid: Option<u16>, ethertype: &str) -> String {
    let mac = |m: &str| m.replace(':', "");
    let tag = vid.map_or(String::new(), |v| format!("8100{v:04x}"));
    let mut f = format!(
        "{}{}{tag}{ethertype}{}",
        mac(dst),
        mac(src),
        hex_of("patchbay vlan test")
    );
    while f.len() < 60 * 2 {
        f.push_str("00");
    }
    f
}

fn hex_of(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Sets up switch `lab`: br0 filters VLANs; p1 is an access port of VLAN
/// 10, p2 of VLAN 20, and `trunk` carries both tagged.
fn vlan_switch_by_cli(lab: &Lab) {
    lab.cli_ok(&["link", "set", "br0", "vlan_filtering", "1"]);
    for (port, vid) in [("p1", "10"), ("p2", "20")] {
        lab.cli_ok(&["vlan", "del", "dev", port, "vid", "1"]);
        lab.cli_ok(&["vlan", "add", "dev", port, "vid", vid, "pvid", "untagged"]);
    }
    lab.cli_ok(&["vlan", "del", "dev", "trunk", "vid", "1"]);
    lab.cli_ok(&["vlan", "add", "dev", "trunk", "vid", "10-20"]);
}

/// The same switch, by a config file and `apply`.
const VLAN_SWITCH: &str = r#"
[[bridge]]
name = "br0"
vlan_filtering = true

[[port]]
name = "p1"
bridge = "br0"
vlans = ["10 pvid untagged"]

[[port]]
name = "p2"
bridge = "br0"
vlans = ["20 pvid untagged"]

[[port]]
name = "trunk"
bridge = "br0"
vlans = ["10-20"]
"#;

#[test]
fn two_switches_joined_by_a_trunk_keep_vlans_apart() {
    // Site A: h1 in VLAN 10, h2 in VLAN 20; site B: h1 (10.0.0.3) in VLAN
    // 10, h2 (10.0.0.4) in VLAN 20. One subnet: only VLANs keep them apart.
    let mut a = lab_with(&["10.0.0.1/24", "10.0.0.2/24"]);
    let mut b = lab_with(&["10.0.0.3/24", "10.0.0.4/24"]);
    trunk(&a.sw, &b.sw);
    let ports = ["--port", "p1", "--port", "p2", "--port", "trunk"];
    a.start_daemon(&ports);
    b.start_daemon(&[]);
    vlan_switch_by_cli(&a);
    let file = std::env::temp_dir().join(format!("{}-vlan.toml", b.tag));
    std::fs::write(&file, VLAN_SWITCH).expect("config file");
    b.cli_ok(&["apply", file.to_str().expect("utf-8")]);
    let _ = std::fs::remove_file(&file);

    // patchbayd's frames skip the sending end's taps (PACKET_QDISC_BYPASS):
    // each end of the trunk shows what the other end sent.
    let caps = [
        Capture::start(&a.sw, "trunk", ""),
        Capture::start(&b.sw, "trunk", ""),
    ];
    assert!(a.host(1).ping_ok("10.0.0.3", 3), "VLAN 10 across the trunk");
    assert!(a.host(2).ping_ok("10.0.0.4", 3), "VLAN 20 across the trunk");
    let lines: Vec<String> = caps.into_iter().flat_map(Capture::stop).collect();
    let tagged = |vid: u16| {
        lines
            .iter()
            .filter(|l| l.contains("802.1Q") && l.contains(&format!("vlan {vid},")))
            .count()
    };
    assert!(tagged(10) >= 6 && tagged(20) >= 6, "{lines:#?}");
    assert!(
        lines.iter().all(|l| l.contains("802.1Q")),
        "nothing crosses the trunk untagged: {lines:#?}"
    );

    // Across VLANs, nothing: not even ARP gets through.
    let out = a
        .host(1)
        .ns
        .run(&["ping", "-c", "1", "-W", "1", "10.0.0.4"]);
    assert!(!out.status.success(), "VLAN 10 reached VLAN 20");
    assert!(!a
        .host(2)
        .ns
        .run(&["ping", "-c", "1", "-W", "1", "10.0.0.3"])
        .status
        .success());

    // Each FDB entry in its VLAN; B's hosts learned on the trunk.
    let fdb = a.cli_json(&["fdb", "show"]);
    let entry = |mac: &str| {
        fdb.as_array()
            .and_then(|rows| rows.iter().find(|r| r["mac"] == mac))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let b1 = entry(&b.host(1).mac);
    assert_eq!(
        (b1["port"].as_str(), b1["vlan"].as_u64()),
        (Some("trunk"), Some(10)),
        "{fdb}"
    );
    let b2 = entry(&b.host(2).mac);
    assert_eq!(
        (b2["port"].as_str(), b2["vlan"].as_u64()),
        (Some("trunk"), Some(20)),
        "{fdb}"
    );
    let text = a.cli_ok(&["fdb", "show"]);
    assert!(
        text.contains(&format!("{} dev trunk vlan 10 master br0", b.host(1).mac)),
        "{text}"
    );

    // vlan show, in words and JSON; B's came from the file.
    let shown = b.cli_json(&["vlan", "show", "dev", "trunk"]);
    let vids: Vec<u64> = shown[0]["vlans"]
        .as_array()
        .expect("vlans")
        .iter()
        .filter_map(|v| v["vid"].as_u64())
        .collect();
    assert_eq!(vids, (10..=20).collect::<Vec<u64>>());
    let text = a.cli_ok(&["vlan", "show"]);
    assert!(
        text.contains("p1") && text.contains("10 PVID Egress Untagged"),
        "{text}"
    );

    // save gives back what apply took.
    let saved = b.cli_ok(&["save"]);
    assert!(saved.contains("vlan_filtering = true"), "{saved}");
    assert!(saved.contains("vlans = [\"10 pvid untagged\"]"), "{saved}");
    assert!(saved.contains("vlans = [\"10\", \"11\""), "{saved}");
    let again = std::env::temp_dir().join(format!("{}-vlan-saved.toml", b.tag));
    std::fs::write(&again, &saved).expect("saved file");
    let check = b.cli_ok(&["apply", again.to_str().expect("utf-8"), "check"]);
    let _ = std::fs::remove_file(&again);
    assert!(check.contains("no change"), "{check}");

    // TCP with the hosts' default offloads: TSO frames get their tag on
    // the way into the trunk and lose it on the way out, and stay TSO
    // frames (far over one MTU each on the trunk).
    let before = port_counters(&a, "trunk");
    let received = iperf3_bytes(&a.host(1).ns, &b.host(1).ns, "10.0.0.3", 2);
    assert!(received > 10e6, "iperf3 moved only {received} bytes");
    let after = port_counters(&a, "trunk");
    let (pkts, bytes) = (after.0 - before.0, after.1 - before.1);
    assert!(
        bytes / pkts.max(1) > 3000,
        "TSO frames crossed the trunk whole: {bytes} bytes in {pkts} frames"
    );
    assert_eq!(a.drops("trunk", "vlan-ingress"), 0);
}

/// Frames and bytes sent out of `port`.
fn port_counters(lab: &Lab, port: &str) -> (u64, u64) {
    let links = lab.cli_json(&["link", "show"]);
    let p = links["ports"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == port))
        .cloned()
        .unwrap_or(Value::Null);
    (
        p["tx_packets"].as_u64().unwrap_or(0),
        p["tx_bytes"].as_u64().unwrap_or(0),
    )
}

#[test]
fn tagged_frames_from_a_raw_socket_are_classified_filtered_and_untagged() {
    // h1 is on a trunk port (VLAN 10 tagged), h2 an access port of VLAN 10.
    let mut lab = lab_with(&["10.0.0.1/24", "10.0.0.2/24"]);
    lab.start_daemon(&["--port", "p1", "--port", "p2"]);
    lab.cli_ok(&["link", "set", "br0", "vlan_filtering", "1"]);
    lab.cli_ok(&["vlan", "del", "dev", "p1", "vid", "1"]);
    lab.cli_ok(&["vlan", "add", "dev", "p1", "vid", "10"]);
    lab.cli_ok(&["vlan", "add", "dev", "p2", "vid", "10", "pvid", "untagged"]);
    let (h1, h2) = (lab.host(1), lab.host(2));

    let cap = Capture::start(&h2.ns, "eth0", "ether proto 0x88b5 or vlan");
    let bcast = "ff:ff:ff:ff:ff:ff";
    send_raw(&h1.ns, &marked_frame(bcast, &h1.mac, Some(10), "88b5"));
    // VLAN 30 is not the trunk's; an untagged frame has no PVID there.
    send_raw(&h1.ns, &marked_frame(bcast, &h1.mac, Some(30), "88b5"));
    send_raw(&h1.ns, &marked_frame(bcast, &h1.mac, None, "88b5"));
    // tcpdump -e prints unknown EtherTypes with a hex dump under them.
    let lines: Vec<String> = cap
        .stop()
        .into_iter()
        .filter(|l| !l.starts_with('\t'))
        .collect();
    assert_eq!(lines.len(), 1, "only the VLAN 10 frame: {lines:#?}");
    assert!(
        lines[0].contains("0x88b5") && !lines[0].contains("802.1Q"),
        "it arrives untagged: {lines:#?}"
    );
    assert!(wait_for(Duration::from_secs(2), || {
        lab.drops("p1", "vlan-ingress") == 1 && lab.drops("p1", "vlan-no-pvid") == 1
    }));

    // h2's kernel answers an ARP request that came tagged: the answer goes
    // back into the trunk tagged.
    let cap = Capture::start(&h1.ns, "eth0", "vlan and arp");
    let mac = h1.mac.replace(':', "");
    let arp = format!(
        "ffffffffffff{mac}8100000a0806\
         0001080006040001{mac}0a000001\
         0000000000000a000002"
    );
    send_raw(&h1.ns, &arp);
    let lines = cap.stop();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("vlan 10") && l.contains("Reply 10.0.0.2 is-at")),
        "{lines:#?}"
    );

    // The trace shows the classification, and the push of the tag.
    lab.cli_ok(&["trace", "start", "count", "1", "port", "p2"]);
    send_raw(&h2.ns, &marked_frame(bcast, &h2.mac, None, "88b5"));
    let shown = lab.cli_ok(&["trace", "show"]);
    assert!(
        shown.contains("vlan-classify: VLAN 10 (untagged: the port's PVID)"),
        "{shown}"
    );
    assert!(
        shown.contains("vlan-push: VLAN 10 tag on for p1"),
        "{shown}"
    );
}

#[test]
fn group_fwd_mask_forwards_lldp_stp_and_lacp_but_never_pause_frames() {
    let mut lab = lab_with(&["10.0.0.1/24", "10.0.0.2/24"]);
    lab.start_daemon(&["--port", "p1", "--port", "p2"]);
    let (h1, h2) = (lab.host(1), lab.host(2));
    let groups = [
        ("01:80:c2:00:00:0e", "88cc"), // LLDP
        ("01:80:c2:00:00:00", "0026"), // STP (802.3 length)
        ("01:80:c2:00:00:02", "8809"), // LACP (slow protocols)
    ];
    // What h2 hears of the groups h1 sends to.
    let heard = || {
        let filter = "ether[0:4] = 0x0180c200 and ether[4] = 0";
        let cap = Capture::start(&h2.ns, "eth0", filter);
        for (dst, ethertype) in groups {
            send_raw(&h1.ns, &marked_frame(dst, &h1.mac, None, ethertype));
        }
        let lines = cap.stop();
        lines.iter().filter(|l| !l.starts_with('\t')).count()
    };
    assert_eq!(heard(), 0, "802.1D: link-local groups stay on their link");
    assert_eq!(lab.drops("p1", "reserved-group"), 3);
    lab.cli_ok(&["link", "set", "br0", "group_fwd_mask", "0x4005"]);
    assert_eq!(heard(), 3, "LLDP, STP and LACP forwarded");
    lab.cli_fails(
        &["link", "set", "br0", "group_fwd_mask", "0x4007"],
        "pause frames",
    );
    let links = lab.cli_json(&["link", "show", "br0"]);
    assert_eq!(links["bridges"][0]["group_fwd_mask"], 0x4005);
    let saved = lab.cli_ok(&["save"]);
    assert!(saved.contains("group_fwd_mask = 0x4005"), "{saved}");
}

/// Whether this kernel makes VLAN subinterfaces (the 8021q module).
fn kernel_has_8021q(ns: &Netns) -> bool {
    let made = ns.run(&[
        "ip", "link", "add", "link", "eth0", "name", "probe.9", "type", "vlan", "id", "9",
    ]);
    if made.status.success() {
        ns.run(&["ip", "link", "del", "probe.9"]);
    }
    made.status.success()
}

#[test]
fn kernel_vlan_subinterfaces_as_trunk_hosts() {
    let mut lab = lab_with(&["10.0.0.1/24", "10.10.0.2/24"]);
    if !kernel_has_8021q(&lab.host(1).ns) {
        eprintln!(
            "skipped: this kernel has no 802.1Q support (CONFIG_VLAN_8021Q), so hosts cannot \
             make eth0.10; run the tests on a kernel with the 8021q module to include this one"
        );
        return;
    }
    lab.start_daemon(&["--port", "p1", "--port", "p2"]);
    lab.cli_ok(&["link", "set", "br0", "vlan_filtering", "1"]);
    lab.cli_ok(&["vlan", "add", "dev", "p1", "vid", "10"]);
    lab.cli_ok(&["vlan", "del", "dev", "p2", "vid", "1"]);
    lab.cli_ok(&["vlan", "add", "dev", "p2", "vid", "10", "pvid", "untagged"]);
    let h1 = lab.host(1);
    h1.ns.check(&[
        "ip", "link", "add", "link", "eth0", "name", "eth0.10", "type", "vlan", "id", "10",
    ]);
    h1.ns
        .check(&["ip", "addr", "add", "10.10.0.1/24", "dev", "eth0.10"]);
    h1.ns.check(&["ip", "link", "set", "eth0.10", "up"]);
    assert!(h1.ping_ok("10.10.0.2", 3), "eth0.10 to the access host");
    let received = iperf3_bytes(&h1.ns, &lab.host(2).ns, "10.10.0.2", 2);
    assert!(received > 10e6, "iperf3 moved only {received} bytes");
}

/// A router on a stick: patchbayd A routes between VLAN interfaces br0.10
/// and br0.20 of its bridge, reached through a trunk from patchbayd B,
/// whose access ports hold the hosts.
#[test]
fn vlan_interfaces_route_arp_ndp_and_nat_as_bridges_do() {
    let mut a = lab_with(&[]);
    let mut b = lab_with(&["10.10.0.2/24", "10.20.0.2/24"]);
    trunk(&a.sw, &b.sw);
    a.start_daemon(&["--port", "trunk"]);
    b.start_daemon(&["--port", "p1", "--port", "p2", "--port", "trunk"]);
    vlan_switch_by_cli(&b);
    a.cli_ok(&["link", "set", "br0", "vlan_filtering", "1"]);
    a.cli_ok(&["vlan", "add", "dev", "trunk", "vid", "10"]);
    a.cli_ok(&["vlan", "add", "dev", "trunk", "vid", "20"]);
    // Refused while the bridge does not filter, or on VLAN 1 (br0's own).
    a.cli_fails(
        &[
            "link", "add", "br0.1", "type", "vlan", "link", "br0", "id", "1",
        ],
        "VLAN 1 is br0's own",
    );
    for (name, id, addr) in [
        ("br0.10", "10", "10.10.0.1/24"),
        ("br0.20", "20", "10.20.0.1/24"),
    ] {
        a.cli_ok(&["link", "add", name, "type", "vlan", "link", "br0", "id", id]);
        a.cli_ok(&["addr", "add", addr, "dev", name]);
    }
    a.cli_fails(
        &["link", "set", "br0", "vlan_filtering", "0"],
        "delete them before",
    );
    a.cli_fails(
        &["link", "set", "trunk", "master", "br0.10"],
        "is a VLAN interface of br0",
    );
    let (h1, h2) = (b.host(1), b.host(2));
    for (h, gw) in [(h1, "10.10.0.1"), (h2, "10.20.0.1")] {
        h.ns.check(&["ip", "route", "add", "default", "via", gw]);
    }

    // ARP and ping to the VLAN interfaces, then routed between VLANs.
    let arping = h2
        .ns
        .run(&["arping", "-c", "2", "-w", "4", "-I", "eth0", "10.20.0.1"]);
    assert!(arping.status.success(), "arping br0.20");
    assert!(h1.ping_ok("10.10.0.1", 2), "h1 -> br0.10");
    let out = h1.ns.run(&["ping", "-c", "3", "-W", "2", "10.20.0.2"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "routed between VLANs: {text}");
    assert!(text.contains("ttl=63"), "one router hop: {text}");
    let trace = h1
        .ns
        .run(&["traceroute", "-n", "-q", "1", "-w", "2", "10.20.0.2"]);
    let trace = String::from_utf8_lossy(&trace.stdout);
    assert!(trace.contains(" 10.10.0.1 "), "the first hop: {trace}");
    let links = a.cli_ok(&["link", "show"]);
    assert!(links.contains("(VLAN 20 of br0)"), "{links}");

    // NAT out of a VLAN interface: h2 sees h1's pings from br0.20's address.
    a.cli_ok(&[
        "nat",
        "add",
        "masquerade",
        "src",
        "10.10.0.0/24",
        "out",
        "br0.20",
    ]);
    let cap = Capture::start(&h2.ns, "eth0", "icmp");
    assert!(h1.ping_ok("10.20.0.2", 2), "masqueraded");
    let lines = cap.stop();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("10.20.0.1 > 10.20.0.2: ICMP echo request")),
        "{lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.contains("10.10.0.2")), "{lines:#?}");

    // IPv6 on a VLAN interface: SLAAC from its router advertisements, and
    // a ping answered after neighbour discovery.
    a.cli_ok(&["addr", "add", "2001:db8:20::1/64", "dev", "br0.20"]);
    h2.enable_ipv6(None);
    let global = || {
        h2.ns.check(&[
            "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global",
        ])
    };
    assert!(
        wait_for(Duration::from_secs(10), || global()
            .contains("2001:db8:20:")),
        "no SLAAC address from br0.20's RA: {}",
        global()
    );
    assert!(h2.ping6_ok("2001:db8:20::1", 2), "ping -6 br0.20");

    // save and apply carry the VLAN interfaces.
    let saved = a.cli_ok(&["save"]);
    assert!(
        saved.contains("name = \"br0.20\"\nlink = \"br0\"\nid = 20"),
        "{saved}"
    );
    let file = std::env::temp_dir().join(format!("{}-stick.toml", a.tag));
    std::fs::write(&file, &saved).expect("saved file");
    let check = a.cli_ok(&["apply", file.to_str().expect("utf-8"), "check"]);
    assert!(check.contains("no change"), "{check}");
    // Deleting the interface takes its addresses and NAT rule with it.
    a.cli_ok(&["link", "del", "br0.20"]);
    assert!(a
        .cli_json(&["nat", "show"])
        .as_array()
        .is_some_and(|r| r.is_empty()));
    // And apply brings it all back.
    a.cli_ok(&["apply", file.to_str().expect("utf-8")]);
    let _ = std::fs::remove_file(&file);
    assert!(h1.ping_ok("10.20.0.2", 2), "routed again after apply");
}

/// A TAP port as a trunk: tags ride inside the frames the TAP device hands
/// over (with their virtio-net header), both ways.
#[test]
fn a_tap_trunk_carries_tags_in_its_frames() {
    let mut lab = lab_with(&["10.0.0.1/24"]);
    lab.start_daemon(&["--port", "p1"]);
    lab.cli_ok(&["link", "add", "tap0", "type", "tap"]);
    let vm = Netns::new(&format!("{}-vm", lab.tag));
    lab.sw
        .check(&["ip", "link", "set", "tap0", "netns", &vm.name]);
    vm.check(&["ip", "link", "set", "tap0", "up"]);
    lab.cli_ok(&["link", "set", "br0", "vlan_filtering", "1"]);
    lab.cli_ok(&["vlan", "del", "dev", "p1", "vid", "1"]);
    lab.cli_ok(&["vlan", "add", "dev", "p1", "vid", "10", "pvid", "untagged"]);
    lab.cli_ok(&["vlan", "del", "dev", "tap0", "vid", "1"]);
    lab.cli_ok(&["vlan", "add", "dev", "tap0", "vid", "10"]);
    let h1 = lab.host(1);

    // Out of the TAP: h1's ARP requests, tagged 10.
    let cap = Capture::start(&vm, "tap0", "vlan 10 and arp");
    let _ = h1
        .ns
        .run(&["arping", "-c", "2", "-w", "2", "-I", "eth0", "10.0.0.9"]);
    let lines = cap.stop();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("802.1Q") && l.contains("Request who-has 10.0.0.9")),
        "{lines:#?}"
    );

    // Into the TAP: a frame tagged 10, written by the VM, reaches h1
    // untagged.
    let mac = vm.check(&["cat", "/sys/class/net/tap0/address"]);
    let cap = Capture::start(&h1.ns, "eth0", "ether proto 0x88b5");
    let script = "import socket,sys\n\
                  s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\n\
                  s.bind(('tap0',0))\n\
                  s.send(bytes.fromhex(sys.argv[1]))\n";
    let frame = marked_frame("ff:ff:ff:ff:ff:ff", mac.trim(), Some(10), "88b5");
    vm.check(&["python3", "-c", script, &frame]);
    let lines: Vec<String> = cap
        .stop()
        .into_iter()
        .filter(|l| !l.starts_with('\t'))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(!lines[0].contains("802.1Q"), "{lines:#?}");
}
