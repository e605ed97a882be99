//! patchbayd as an L2 switch between network namespaces, with the kernel's
//! own stack, ping, arping, iperf3 and tcpdump as the judges.
//!
//! Needs root and the tools that `tools/test` installs.

use patchbay_tools::{iperf3_bytes, wait_for, Bins, Capture, Lab, Netns};
use serde_json::Value;
use std::time::Duration;

fn bins() -> Bins {
    Bins {
        patchbayd: env!("CARGO_BIN_EXE_patchbayd").into(),
        patchbay: env!("CARGO_BIN_EXE_patchbay").into(),
    }
}

/// A lab of `n` hosts on one patchbayd, every port in br0.
fn switched_lab(n: usize, extra: &[&str]) -> Lab {
    let mut lab = Lab::new(bins(), n);
    let mut args: Vec<String> = lab.port_args();
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    lab.start_daemon(&args);
    lab
}

fn fdb_macs(lab: &Lab) -> Vec<String> {
    lab.cli_json(&["fdb", "show"])
        .as_array()
        .expect("fdb rows")
        .iter()
        .map(|r| r["mac"].as_str().expect("mac").to_string())
        .collect()
}

fn port<'a>(links: &'a Value, name: &str) -> Option<&'a Value> {
    links["ports"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
}

fn bridge<'a>(stats: &'a Value, name: &str) -> &'a Value {
    stats["bridges"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["name"] == name))
        .unwrap_or_else(|| panic!("no bridge {name} in {stats}"))
}

#[test]
fn ping_arping_and_iperf3_with_default_offloads() {
    let lab = switched_lab(3, &[]);
    let (h1, h2, h3) = (lab.host(1), lab.host(2), lab.host(3));
    assert!(h1.ping_ok(&h2.ip, 3), "h1 -> h2");
    assert!(h3.ping_ok(&h1.ip, 3), "h3 -> h1");
    let arping = h1
        .ns
        .run(&["arping", "-c", "3", "-w", "5", "-I", "eth0", &h2.ip]);
    assert!(
        arping.status.success(),
        "arping: {}",
        String::from_utf8_lossy(&arping.stdout)
    );
    assert!(
        String::from_utf8_lossy(&arping.stdout).contains(&h2.mac),
        "arping shows h2's MAC"
    );

    // Offloads are left at the veth defaults: TSO/GSO and partial checksums on.
    let k = h1.ns.check(&["ethtool", "-k", "eth0"]);
    assert!(k.contains("tcp-segmentation-offload: on"), "{k}");

    let received = iperf3_bytes(&h1.ns, &h2.ns, &h2.ip, 2);
    assert!(received > 10e6, "iperf3 moved only {received} bytes");

    // GSO super-frames crossed patchbay whole: the average frame on h1's port
    // is far over one MTU.
    let links = lab.cli_json(&["link", "show"]);
    let p1 = port(&links, "p1").expect("p1");
    let (bytes, pkts) = (
        p1["rx_bytes"].as_f64().unwrap(),
        p1["rx_packets"].as_f64().unwrap(),
    );
    assert!(
        bytes / pkts > 3000.0,
        "average frame {} bytes: offloads not carried",
        bytes / pkts
    );
    // A starved daemon may overflow its ring (counted, and TCP recovers);
    // nothing else may be dropped.
    let other_drops: u64 = p1["drops_by_reason"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(reason, _)| *reason != "rx-ring-full")
        .map(|(_, n)| n.as_u64().unwrap_or(0))
        .sum();
    assert_eq!(other_drops, 0, "{p1}");
}

#[test]
fn tso_frames_to_a_port_that_takes_none_are_segmented_by_patchbay() {
    // h1 sends TSO frames; p2's interface takes none (tx checksumming and
    // TSO off, as a lab turns them off to see real frames): the kernel
    // would drop them from a packet socket, so patchbay segments them.
    let lab = switched_lab(2, &[]);
    let (h1, h2) = (lab.host(1), lab.host(2));
    lab.sw
        .check(&["ethtool", "-K", "p2", "tx", "off", "tso", "off"]);
    // The port asks its interface again within a second.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let received = iperf3_bytes(&h1.ns, &h2.ns, &h2.ip, 2);
    assert!(received > 10e6, "iperf3 moved only {received} bytes");
    let links = lab.cli_json(&["link", "show"]);
    let p2 = port(&links, "p2").expect("p2");
    let (bytes, pkts) = (
        p2["tx_bytes"].as_f64().unwrap(),
        p2["tx_packets"].as_f64().unwrap(),
    );
    assert!(
        bytes / pkts <= 1514.0,
        "average frame out of p2 {} bytes",
        bytes / pkts
    );
    let p1 = port(&links, "p1").expect("p1");
    let rx = p1["rx_bytes"].as_f64().unwrap() / p1["rx_packets"].as_f64().unwrap();
    assert!(rx > 3000.0, "h1 sent TSO frames: average {rx} bytes");
    assert_eq!(
        p2["drops_by_reason"]["tx-busy"].as_u64().unwrap_or(0),
        0,
        "{p2}"
    );
}

#[test]
fn floods_unknown_unicast_until_learned() {
    let lab = switched_lab(3, &[]);
    let (h1, h2, h3) = (lab.host(1), lab.host(2), lab.host(3));
    // Static neighbours: no ARP broadcast teaches the switch anything, so the
    // first echo request is unicast to a MAC it has never seen.
    h1.ns.check(&[
        "ip",
        "neigh",
        "replace",
        &h2.ip,
        "lladdr",
        &h2.mac,
        "dev",
        "eth0",
        "nud",
        "permanent",
    ]);
    h2.ns.check(&[
        "ip",
        "neigh",
        "replace",
        &h1.ip,
        "lladdr",
        &h1.mac,
        "dev",
        "eth0",
        "nud",
        "permanent",
    ]);
    let cap = Capture::start(&h3.ns, "eth0", "icmp");
    let ping = h1
        .ns
        .run(&["ping", "-c", "5", "-i", "0.2", "-W", "1", &h2.ip]);
    assert!(
        ping.status.success(),
        "{}",
        String::from_utf8_lossy(&ping.stdout)
    );
    let seen = cap.stop();
    // h3 sees the first request (flooded: h2 unknown), and nothing after it:
    // the reply taught the switch where h2 is.
    assert_eq!(seen.len(), 1, "h3 saw: {seen:#?}");
    assert!(
        seen[0].contains("echo request") && seen[0].contains("seq 1,"),
        "{seen:?}"
    );
    let stats = lab.cli_json(&["stats"]);
    assert_eq!(
        bridge(&stats, "br0")["counters"]["unknown_unicast"],
        1,
        "{stats}"
    );
}

#[test]
fn broadcast_reaches_every_other_port_but_not_the_sender() {
    let lab = switched_lab(3, &[]);
    let (h1, h2, h3) = (lab.host(1), lab.host(2), lab.host(3));
    let c1 = Capture::start(&h1.ns, "eth0", "arp");
    let c3 = Capture::start(&h3.ns, "eth0", "arp");
    assert!(h2.ping_ok(&h1.ip, 1));
    let (s1, s3) = (c1.stop(), c3.stop());
    let who_has = format!("who-has {} tell {}", h1.ip, h2.ip);
    assert!(
        s3.iter().any(|l| l.contains(&who_has)),
        "h3 did not get the broadcast: {s3:?} (h1 saw {s1:?})"
    );
    // h1 receives it once (not echoed back, not duplicated).
    assert_eq!(
        s1.iter().filter(|l| l.contains(&who_has)).count(),
        1,
        "{s1:?}"
    );
}

#[test]
fn fdb_entries_age_out() {
    let lab = switched_lab(2, &["--ageing-time", "2"]);
    let (h1, h2) = (lab.host(1), lab.host(2));
    // Permanent neighbours: no ARP probe later re-teaches h1's MAC.
    for (a, b) in [(h1, h2), (h2, h1)] {
        let (ip, mac) = (b.ip.as_str(), b.mac.as_str());
        a.ns.check(&[
            "ip",
            "neigh",
            "replace",
            ip,
            "lladdr",
            mac,
            "nud",
            "permanent",
            "dev",
            "eth0",
        ]);
    }
    assert!(h1.ping_ok(&h2.ip, 2));
    assert!(fdb_macs(&lab).contains(&h1.mac));
    let text = lab.cli_ok(&["fdb", "show"]);
    assert!(
        text.contains(&format!("{} dev p1 master br0 age", h1.mac)),
        "{text}"
    );
    assert!(
        wait_for(Duration::from_secs(8), || !fdb_macs(&lab).contains(&h1.mac)),
        "h1 never aged out: {:?}",
        fdb_macs(&lab)
    );
    let stats = lab.cli_json(&["stats"]);
    assert!(
        bridge(&stats, "br0")["counters"]["aged"].as_u64() >= Some(1),
        "{stats}"
    );
    // Ageing time can be changed at runtime.
    lab.cli_ok(&["link", "set", "br0", "ageing_time", "600"]);
    assert_eq!(bridge(&lab.cli_json(&["stats"]), "br0")["ageing_time"], 600);
}

#[test]
fn fdb_stays_bounded_under_a_mac_flood() {
    let lab = switched_lab(3, &["--fdb-max", "64"]);
    let (h1, h2) = (lab.host(1), lab.host(2));
    assert!(h1.ping_ok(&h2.ip, 1));
    // h1 sends 5,000 frames, each from a random source MAC.
    let flood = h1.ns.run(&[
        "python3",
        "-c",
        "import os, socket\n\
         s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n\
         s.bind(('eth0', 0))\n\
         import time\n\
         for i in range(5000):\n\
         \x20   s.send(b'\\xff' * 6 + bytes([2]) + os.urandom(5) + b'\\x88\\xb5' + bytes(46))\n\
         \x20   if i % 200 == 199: time.sleep(0.005)\n",
    ]);
    assert!(
        flood.status.success(),
        "{}",
        String::from_utf8_lossy(&flood.stderr)
    );
    // Paced so that even a slow machine takes most of them off the ring.
    let refused = || {
        let stats = lab.cli_json(&["stats"]);
        bridge(&stats, "br0")["counters"]["learn_fdb_full"].as_u64() > Some(1000)
    };
    let stats = lab.cli_json(&["stats"]);
    assert!(
        wait_for(Duration::from_secs(5), refused),
        "{}",
        lab.cli_json(&["stats"])
    );
    assert!(stats["fdb_entries"].as_u64() <= Some(64), "{stats}");
    assert_eq!(stats["fdb_max"], 64);
    assert!(fdb_macs(&lab).len() <= 64);
    // The stations learned before the flood still work, and so does the daemon.
    assert!(h1.ping_ok(&h2.ip, 3));
    lab.cli_ok(&["fdb", "flush"]);
    assert!(h2.ping_ok(&h1.ip, 2));
}

/// Two pings of 3,000 bytes (frames too big for the small ring) from
/// `from` to `to` come back.
fn big_pings_pass(from: &patchbay_tools::lab::Host, to: &str) {
    let out = from
        .ns
        .run(&["ping", "-c", "2", "-i", "0.2", "-W", "1", "-s", "3000", to]);
    assert!(
        out.status.success(),
        "big pings to {to}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn ports_are_added_and_deleted_while_traffic_flows() {
    let mut lab = Lab::new(bins(), 3);
    lab.start_daemon(&["--port", "p1", "--port", "p2"]);
    let (h1, h2, h3) = (lab.host(1), lab.host(2), lab.host(3));
    assert!(h1.ping_ok(&h2.ip, 1));
    // A steady stream h1 -> h2 for the whole change.
    let stream = h1
        .ns
        .spawn(&["ping", "-c", "300", "-i", "0.01", "-W", "1", "-q", &h2.ip]);
    assert!(!h3.ping_ok(&h1.ip, 1), "p3 is not a port yet");
    // Down when it becomes a port: patchbay sets it up.
    lab.sw.check(&["ip", "link", "set", "p3", "down"]);
    lab.cli_ok(&["link", "add", "p3", "type", "afpacket"]);
    // The failed ping left an unresolved ARP entry in h3's kernel.
    h3.ns.check(&["ip", "neigh", "flush", "dev", "eth0"]);
    let links = lab.cli_json(&["link", "show"]);
    assert_eq!(port(&links, "p3").expect("p3 listed")["master"], "br0");
    assert!(h3.ping_ok(&h1.ip, 3), "h3 through the new port");
    big_pings_pass(h3, &h1.ip);
    lab.cli_ok(&["link", "del", "p3"]);
    assert!(port(&lab.cli_json(&["link", "show"]), "p3").is_none());
    assert!(!h3.ping_ok(&h1.ip, 1), "p3 is gone");
    let out = stream.wait_with_output().expect("ping");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(" 0% packet loss"),
        "stream lost packets: {text}"
    );
    let log = lab.daemon.as_mut().unwrap().log();
    assert!(!log.contains("share the ring"), "rings not split: {log}");
}

#[test]
fn tap_port_carries_a_host_with_offloads() {
    let mut lab = Lab::new(bins(), 1);
    let args = lab.port_args();
    lab.start_daemon(&args.iter().map(String::as_str).collect::<Vec<_>>());
    lab.cli_ok(&["link", "add", "tap0", "type", "tap"]);
    // The TAP's host: its own namespace, with the kernel stack behind the TAP.
    let vm = Netns::new(&format!("{}-vm", lab.tag));
    lab.sw
        .check(&["ip", "link", "set", "tap0", "netns", &vm.name]);
    vm.check(&["ip", "addr", "add", "10.0.0.9/24", "dev", "tap0"]);
    vm.check(&["ip", "link", "set", "tap0", "up"]);
    let h1 = lab.host(1);
    assert!(
        wait_for(Duration::from_secs(5), || h1.ping_ok("10.0.0.9", 1)),
        "h1 cannot reach the TAP host"
    );
    assert!(h1.ping_ok("10.0.0.9", 3));
    let received = iperf3_bytes(&h1.ns, &vm, "10.0.0.9", 1);
    assert!(received > 1e6, "iperf3 moved only {received} bytes");
    // And the other way, TAP host as the sender of GSO frames.
    let received = iperf3_bytes(&vm, &h1.ns, &h1.ip, 1);
    assert!(received > 1e6, "iperf3 moved only {received} bytes");
    let links = lab.cli_json(&["link", "show"]);
    assert_eq!(port(&links, "tap0").expect("tap0")["kind"], "tap");
}

#[test]
fn bridges_are_separate_broadcast_domains() {
    let lab = switched_lab(4, &[]);
    lab.cli_ok(&["link", "add", "br1", "type", "bridge"]);
    lab.cli_ok(&["link", "set", "p3", "master", "br1"]);
    lab.cli_ok(&["link", "set", "p4", "master", "br1"]);
    let (h1, h2, h3, h4) = (lab.host(1), lab.host(2), lab.host(3), lab.host(4));
    assert!(h1.ping_ok(&h2.ip, 2));
    assert!(h3.ping_ok(&h4.ip, 2));
    // Same subnet, different bridges: nothing crosses at L2.
    assert!(!h1.ping_ok(&h3.ip, 1));
    assert!(!h4.ping_ok(&h2.ip, 1));
    let rows = lab.cli_json(&["fdb", "show", "br", "br1"]);
    let macs: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["mac"].as_str().unwrap())
        .collect();
    assert!(
        macs.contains(&h3.mac.as_str()) && !macs.contains(&h1.mac.as_str()),
        "{rows}"
    );
    // A port out of every bridge forwards nothing, and counts why.
    lab.cli_ok(&["link", "set", "p4", "nomaster"]);
    assert!(!h4.ping_ok(&h3.ip, 1));
    let links = lab.cli_json(&["link", "show"]);
    assert!(port(&links, "p4").unwrap()["drops_by_reason"]["no-bridge"].as_u64() >= Some(1));
    // Deleting a bridge frees its ports.
    lab.cli_ok(&["link", "del", "br1"]);
    let links = lab.cli_json(&["link", "show"]);
    assert_eq!(port(&links, "p3").unwrap()["master"], Value::Null);
}

#[test]
fn a_port_going_down_or_away_leaves_the_rest_forwarding() {
    let mut lab = switched_lab(3, &[]);
    let (h1, h2, h3) = (lab.host(1), lab.host(2), lab.host(3));
    assert!(h1.ping_ok(&h2.ip, 1) && h1.ping_ok(&h3.ip, 1));

    lab.sw.check(&["ip", "link", "set", "p2", "down"]);
    let state =
        |lab: &Lab, p: &str| port(&lab.cli_json(&["link", "show"]), p).map(|p| p["state"].clone());
    assert!(wait_for(Duration::from_secs(5), || state(&lab, "p2")
        == Some("down".into())));
    assert!(h1.ping_ok(&h3.ip, 2), "h1 -> h3 while p2 is down");
    lab.sw.check(&["ip", "link", "set", "p2", "up"]);
    assert!(
        wait_for(Duration::from_secs(5), || h1.ping_ok(&h2.ip, 1)),
        "p2 back up"
    );

    // The interface disappears altogether.
    lab.sw.check(&["ip", "link", "del", "p3"]);
    assert!(wait_for(Duration::from_secs(5), || state(&lab, "p3")
        == Some("gone".into())));
    assert!(h1.ping_ok(&h2.ip, 3), "h1 -> h2 after p3 vanished");
    let links = lab.cli_json(&["link", "show"]);
    assert!(
        port(&links, "p3").unwrap()["link_down_events"].as_u64() >= Some(1),
        "{links}"
    );
    assert!(
        port(&links, "p2").unwrap()["link_down_events"].as_u64() >= Some(1),
        "{links}"
    );
    // An interface of the same name comes back (a new ifindex): the port
    // follows it, small frames and big ones (two rings, made anew).
    lab.rewire_host(3);
    lab.sw.check(&["ip", "link", "set", "p3", "up"]);
    let (h1, h3) = (lab.host(1), lab.host(3));
    // h3 has a new MAC address.
    h1.ns.check(&["ip", "neigh", "flush", "dev", "eth0"]);
    assert!(
        wait_for(Duration::from_secs(5), || h1.ping_ok(&h3.ip, 1)),
        "h1 -> h3 once p3 is back\n{}",
        lab.cli_ok(&["link", "show"])
    );
    big_pings_pass(h1, &h3.ip);
    let daemon = lab.daemon.as_mut().unwrap();
    assert!(daemon.alive());
    assert!(
        daemon.log().contains("port p3: link gone"),
        "{}",
        daemon.log()
    );
}

#[test]
fn a_port_whose_interface_is_made_again_is_brought_up() {
    let mut lab = switched_lab(2, &[]);
    assert!(lab.host(1).ping_ok(&lab.host(2).ip, 1));
    let state =
        |lab: &Lab, p: &str| port(&lab.cli_json(&["link", "show"]), p).map(|p| p["state"].clone());
    lab.sw.check(&["ip", "link", "del", "p2"]);
    assert!(wait_for(Duration::from_secs(5), || state(&lab, "p2")
        == Some("gone".into())));
    // Made again with the same name, the host's end up and addressed, and
    // nobody sets p2 up: patchbayd does, as it does at start.
    lab.rewire_host(2);
    let (h1, h2) = (lab.host(1), lab.host(2));
    // h2 has a new MAC address.
    h1.ns.check(&["ip", "neigh", "flush", "dev", "eth0"]);
    assert!(
        wait_for(Duration::from_secs(5), || h1.ping_ok(&h2.ip, 1)),
        "h1 -> h2 once p2 is back\n{}\n{}",
        lab.sw.check(&["ip", "link", "show", "p2"]),
        lab.cli_ok(&["link", "show"])
    );
    assert!(h2.ping_ok(&h1.ip, 3));
    big_pings_pass(h1, &h2.ip);
    assert_eq!(state(&lab, "p2"), Some("up".into()));
    // Set down by hand, the same interface stays down.
    lab.sw.check(&["ip", "link", "set", "p2", "down"]);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(state(&lab, "p2"), Some("down".into()));
    assert!(!lab.sw.check(&["ip", "link", "show", "p2"]).contains(",UP"));
}

#[test]
fn static_fdb_entries() {
    let lab = switched_lab(2, &[]);
    let mac = "02:aa:bb:cc:dd:01";
    lab.cli_ok(&["fdb", "add", mac, "dev", "p2"]);
    // Adding it again is fine; on another port it takes 'replace'.
    lab.cli_ok(&["fdb", "add", mac, "dev", "p2"]);
    lab.cli_fails(
        &["fdb", "add", mac, "dev", "p1"],
        "a static entry on port p2; use 'patchbay fdb replace'",
    );
    let text = lab.cli_ok(&["fdb", "show"]);
    assert!(
        text.contains(&format!("{mac} dev p2 master br0 static")),
        "{text}"
    );
    // A frame from that MAC on another port does not move a static entry.
    let h1 = lab.host(1);
    h1.ns.check(&["ip", "link", "set", "eth0", "address", mac]);
    let _ = h1.ping(&lab.host(2).ip, 1);
    assert!(lab
        .cli_ok(&["fdb", "show"])
        .contains(&format!("{mac} dev p2 master br0 static")));
    lab.cli_ok(&["fdb", "flush"]);
    assert!(
        lab.cli_ok(&["fdb", "show"]).contains(mac),
        "flush keeps static entries"
    );
    lab.cli_ok(&["fdb", "del", mac, "dev", "p2"]);
    // h1 still uses that MAC (IPv6 autoconfiguration, ARP), so it may be
    // learned again on p1; what must be gone is the static entry on p2.
    let text = lab.cli_ok(&["fdb", "show"]);
    assert!(!text.contains(&format!("{mac} dev p2")), "{text}");
}

/// Sends `count` broadcast frames tagged VLAN 10 (EtherType 0x88b5, frame
/// `i` filled with byte `i`, `len` bytes of payload) out of eth0 of `host`,
/// as fast as it can.
fn send_tagged_broadcasts(host: &Netns, count: usize, len: usize) {
    let script = format!(
        "import socket\n\
         s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n\
         s.bind(('eth0', 0))\n\
         src = open('/sys/class/net/eth0/address').read().strip()\n\
         for i in range({count}):\n\
         \x20   s.send(b'\\xff' * 6 + bytes.fromhex(src.replace(':', '')) + b'\\x81\\x00\\x00\\x0a\\x88\\xb5' + bytes([i]) * {len})\n"
    );
    let send = host.run(&["python3", "-c", &script]);
    assert!(
        send.status.success(),
        "{}",
        String::from_utf8_lossy(&send.stderr)
    );
}

#[test]
fn vlan_tagged_frames_keep_their_tag() {
    let lab = switched_lab(2, &[]);
    // The receiving veth strips the tag into packet metadata (VLAN offload);
    // patchbay must put it back before the frame goes out.
    let cap = Capture::start(&lab.host(2).ns, "eth0", "vlan 10");
    send_tagged_broadcasts(&lab.host(1).ns, 5, 46);
    let seen = cap.stop();
    assert_eq!(
        seen.iter()
            .filter(|l| l.contains("vlan 10") && l.contains("0x88b5"))
            .count(),
        5,
        "{seen:#?}"
    );
}

#[test]
fn frames_bigger_than_a_ring_slot_cross_whole() {
    // Jumbo frames and big tagged frames do not fit a 2 KiB ring slot: the
    // kernel queues them on the socket and patchbay reads them from there.
    let lab = Lab::new(bins(), 2);
    for (ns, dev) in [
        (&lab.host(1).ns, "eth0"),
        (&lab.host(2).ns, "eth0"),
        (&lab.sw, "p1"),
        (&lab.sw, "p2"),
    ] {
        ns.check(&["ip", "link", "set", dev, "mtu", "9000"]);
    }
    let mut lab = lab;
    // Sleeping as soon as the ports are drained: the engine must come back
    // for what a batch left in the ring by itself.
    let mut args = lab.port_args();
    args.extend(["--busy-poll-us".to_string(), "0".to_string()]);
    lab.start_daemon(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let h2 = lab.host(2).ip.clone();
    let ping = lab.host(1).ns.run(&[
        "ping", "-c", "5", "-i", "0.2", "-W", "1", "-M", "do", "-s", "8000", &h2,
    ]);
    assert!(
        ping.status.success(),
        "{}",
        String::from_utf8_lossy(&ping.stdout)
    );
    let rx_packets = |k: usize| -> u64 {
        lab.host(k)
            .ns
            .check(&["cat", "/sys/class/net/eth0/statistics/rx_packets"])
            .trim()
            .parse()
            .expect("a counter")
    };
    let before = rx_packets(2);
    let cap = Capture::start(&lab.host(2).ns, "eth0", "vlan 10 and greater 4000");
    // 40 in one burst: more than one batch holds (16 big frames), and
    // nothing comes after them to wake patchbayd again.
    send_tagged_broadcasts(&lab.host(1).ns, 40, 5000);
    let all = wait_for(Duration::from_secs(3), || rx_packets(2) >= before + 40);
    assert!(
        all,
        "{} of 40 arrived\n{}",
        rx_packets(2) - before,
        lab.cli_ok(&["stats"])
    );
    let seen = cap.stop();
    let tagged = seen
        .iter()
        .filter(|l| l.contains("vlan 10") && l.contains("0x88b5") && l.contains("5018"))
        .count();
    // tcpdump itself may lose some of a burst (its counters say so, not
    // the interface's); the frames it has must have kept tag and size.
    assert!(tagged >= 10, "{seen:#?}");
}

#[test]
fn missing_interface_is_a_clear_error() {
    let lab = Lab::new(bins(), 1);
    let out = lab.sw.run(&[
        env!("CARGO_BIN_EXE_patchbayd"),
        "--port",
        "p1",
        "--port",
        "nope0",
        "--socket",
        "/tmp/never.sock",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("port nope0: no such interface"), "{err}");
}

#[test]
fn bad_cli_input_gets_one_line_errors_and_leaves_the_daemon_alone() {
    let mut lab = switched_lab(2, &[]);
    for (args, want) in [
        (&["frobnicate"][..], "unknown object"),
        (
            &["link", "add", "p9", "type", "afpacket"],
            "port p9: no such interface",
        ),
        (&["link", "add", "p1", "type", "tap"], "already exists"),
        (
            &["link", "set", "p1", "master", "br9"],
            "br9: no such bridge",
        ),
        (&["link", "del", "br0"], "cannot be deleted"),
        (&["link", "del", "nothing"], "no such port or bridge"),
        (&["link", "show", "nothing"], "no such port or bridge"),
        (&["-j", "link", "show", "nothing"], "no such port or bridge"),
        (&["fdb", "show", "dev", "nothing"], "no such port or bridge"),
        (
            &["link", "set", "p1", "mtu", "1400"],
            "p1 is a port, not a bridge",
        ),
        (
            &["link", "set", "br0", "master", "br0"],
            "br0 is a bridge, not a port",
        ),
        (
            &["link", "set", "br0", "ageing_time", "0"],
            "ageing_time must be",
        ),
        (&["fdb", "add", "ff:ff:ff:ff:ff:ff", "dev", "p1"], "unicast"),
        (
            &["fdb", "add", "02:00:00:00:00:01", "dev", "p7"],
            "p7: no such port",
        ),
        (
            &["fdb", "del", "02:00:00:00:00:01", "dev", "p1"],
            "not in the FDB",
        ),
        (
            &["fdb", "add", "02:00:00:00:00:0g", "dev", "p1"],
            "not a MAC address",
        ),
        (
            &["link", "add", "this-name-is-too-long", "type", "tap"],
            "1 to 15 characters",
        ),
    ] {
        lab.cli_fails(args, want);
    }
    assert!(lab.daemon.as_mut().unwrap().alive());
    assert!(lab.host(1).ping_ok(&lab.host(2).ip, 2));
    let links = lab.cli_json(&["link", "show"]);
    assert_eq!(links["ports"].as_array().unwrap().len(), 2);
    // A name filters the JSON as it does the table.
    let links = lab.cli_json(&["link", "show", "p1"]);
    assert_eq!(links["ports"].as_array().unwrap().len(), 1);
    assert!(links["bridges"].as_array().unwrap().is_empty());
}

#[test]
fn ipv6_hosts_on_a_bridge_reach_each_other_by_link_local_and_global_addresses() {
    // NDP's solicitations go to solicited-node multicast groups: the bridge
    // floods them as it floods broadcast (no MLD snooping).
    let lab = switched_lab(2, &[]);
    let (h1, h2) = (lab.host(1), lab.host(2));
    h1.enable_ipv6(Some("2001:db8:5::1/64"));
    let ll2 = h2.enable_ipv6(Some("2001:db8:5::2/64"));
    assert!(h1.ping6_ok("2001:db8:5::2", 3), "global");
    // The kernel may take a moment to pick a link-local source address.
    assert!(
        wait_for(Duration::from_secs(5), || h1.ping6_ok(&ll2, 1)),
        "link-local {ll2}"
    );
    assert!(h1.ping6_ok(&ll2, 3), "link-local {ll2}");
    let neigh = h1.ns.check(&["ip", "-6", "neigh", "show", "dev", "eth0"]);
    assert!(neigh.contains(&h2.mac), "NDP learned h2's MAC: {neigh}");
    // Learned by the bridge like any other frames.
    let macs = fdb_macs(&lab);
    assert!(macs.contains(&h1.mac) && macs.contains(&h2.mac), "{macs:?}");

    // A capture in IPv6 words takes the echoes and nothing else.
    let file = std::env::temp_dir().join(format!("{}-p1-v6.pcap", lab.tag));
    let path = file.to_str().unwrap().to_string();
    let socket = lab.daemon.as_ref().unwrap().socket.clone();
    let mut capture = std::process::Command::new(&lab.bins.patchbay)
        .arg("--socket")
        .arg(&socket)
        .args(["capture", "p1", "both", "-w", &path, "count", "6"])
        .args(["filter", "icmp6 and host 2001:db8:5::2 and not port 53"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("patchbay capture");
    assert!(wait_for(Duration::from_secs(5), || {
        lab.cli_json(&["stats"])["captures"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
    }));
    assert!(h1.ping6_ok("2001:db8:5::2", 3));
    assert!(capture.wait().expect("capture ends at its count").success());
    let out = std::process::Command::new("tcpdump")
        .args(["-n", "-r", &path])
        .output()
        .expect("tcpdump");
    let _ = std::fs::remove_file(&file);
    let lines = String::from_utf8_lossy(&out.stdout).into_owned();
    let count = |what: &str| lines.lines().filter(|l| l.contains(what)).count();
    assert_eq!(count("ICMP6, echo request"), 3, "{lines}");
    assert_eq!(count("ICMP6, echo reply"), 3, "{lines}");
}
