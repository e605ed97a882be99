//! NAT in patchbayd with the namespace lab: inside hosts behind a
//! masquerade, an "outside" namespace playing the Internet with real
//! servers (iperf3, Python TCP and UDP servers that answer with the address
//! they saw).
//!
//! Needs root and the tools that `tools/test` installs.

use patchbay_tools::{iperf3_bytes, wait_for, Bins, Capture, Lab};
use std::time::Duration;

fn bins() -> Bins {
    Bins {
        patchbayd: env!("CARGO_BIN_EXE_patchbayd").into(),
        patchbay: env!("CARGO_BIN_EXE_patchbay").into(),
    }
}

const OUTSIDE: &str = "203.0.113.2";
const NAT_ADDR: &str = "203.0.113.1";

/// A UDP server on `port` that answers every datagram with "ip:port" of
/// its sender.
const UDP_ECHO: &str = "import socket, sys\n\
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
s.bind(('0.0.0.0', int(sys.argv[1])))\n\
while True:\n\
\x20   d, a = s.recvfrom(2048)\n\
\x20   s.sendto(('%s:%d' % a).encode(), a)\n";

/// A TCP server on `port` that tells each client "ip:port" of the client.
const TCP_WHO: &str = "import socket, sys\n\
s = socket.socket()\n\
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
s.bind(('0.0.0.0', int(sys.argv[1])))\n\
s.listen(16)\n\
while True:\n\
\x20   c, a = s.accept()\n\
\x20   c.sendall(('%s:%d' % a).encode())\n\
\x20   c.close()\n";

/// Sends one datagram from local `lport` (0: any) to each of `dsts`
/// ("ip:port") and prints each answer on a line.
const UDP_ASK: &str = "import socket, sys\n\
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
s.bind(('0.0.0.0', int(sys.argv[1])))\n\
s.settimeout(3)\n\
for d in sys.argv[2:]:\n\
\x20   h, p = d.split(':')\n\
\x20   s.sendto(b'hi', (h, int(p)))\n\
\x20   print(s.recvfrom(100)[0].decode())\n";

/// h1 192.168.15.1 and h2 192.168.15.2 inside on br0 (gateway
/// 192.168.15.10), the outside host on br1 (203.0.113.2); br1's router
/// address 203.0.113.1 masquerades 192.168.15.0/24.
fn nat_lab(extra: &[&str]) -> Lab {
    let mut lab = Lab::new(bins(), 0);
    for addr in ["192.168.15.1/24", "192.168.15.2/24", "203.0.113.2/24"] {
        lab.add_host(addr);
    }
    for k in [1, 2] {
        lab.host(k)
            .ns
            .check(&["ip", "route", "add", "default", "via", "192.168.15.10"]);
    }
    let mut args = lab.port_args();
    args.extend(extra.iter().map(|s| s.to_string()));
    lab.start_daemon(&args.iter().map(String::as_str).collect::<Vec<_>>());
    lab.cli_ok(&["addr", "add", "192.168.15.10/24", "dev", "br0"]);
    lab.cli_ok(&["link", "add", "br1", "type", "bridge"]);
    lab.cli_ok(&["link", "set", "p3", "master", "br1"]);
    lab.cli_ok(&["addr", "add", "203.0.113.1/24", "dev", "br1"]);
    masquerade(&lab, &[]);
    lab
}

/// Masquerades the inside subnet out of br1, with `extra` options.
fn masquerade(lab: &Lab, extra: &[&str]) {
    let mut args = vec![
        "nat",
        "add",
        "masquerade",
        "src",
        "192.168.15.0/24",
        "out",
        "br1",
    ];
    args.extend_from_slice(extra);
    lab.cli_ok(&args);
}

/// Replaces the lab's masquerade rule by one with endpoint-independent
/// filtering.
fn endpoint_independent(lab: &Lab) {
    lab.cli_ok(&["nat", "del", "1"]);
    masquerade(lab, &["filtering", "endpoint-independent"]);
}

fn serve(lab: &Lab, k: usize, script: &str, port: &str) {
    let child = lab.host(k).ns.spawn(&["python3", "-c", script, port]);
    std::mem::forget(child); // killed with its namespace
    let ns = &lab.host(k).ns;
    let filter = format!("sport = :{port}");
    assert!(
        wait_for(Duration::from_secs(10), || !ns
            .check(&["ss", "-Hlntu", &filter])
            .trim()
            .is_empty()),
        "the server on port {port} did not start"
    );
}

/// h1 runs the "who are you" TCP server on port 80, published as
/// 203.0.113.1:8080.
fn publish_server(lab: &Lab) {
    serve(lab, 1, TCP_WHO, "80");
    lab.cli_ok(&[
        "nat",
        "add",
        "dnat",
        "proto",
        "tcp",
        "in",
        "br1",
        "dport",
        "8080",
        "to",
        "192.168.15.1:80",
    ]);
}

fn ask_udp(lab: &Lab, k: usize, lport: &str, dsts: &[&str]) -> Vec<String> {
    let mut args = vec!["python3", "-c", UDP_ASK, lport];
    args.extend_from_slice(dsts);
    let out = lab.host(k).ns.check(&args);
    out.lines().map(str::to_string).collect()
}

fn outside(lab: &Lab) -> &patchbay_tools::Host {
    lab.host(3)
}

#[test]
fn inside_hosts_reach_the_outside_by_tcp_udp_and_ping_as_the_nat_address() {
    let lab = nat_lab(&[]);
    let cap = Capture::start(&outside(&lab).ns, "eth0", "icmp");
    assert!(lab.host(1).ping_ok(OUTSIDE, 2));
    let seen = cap.stop();
    assert!(
        seen.iter()
            .any(|l| l.contains(&format!("{NAT_ADDR} > {OUTSIDE}: ICMP echo request"))),
        "{seen:?}"
    );
    assert!(
        !seen.iter().any(|l| l.contains("192.168.15.")),
        "inside address leaked: {seen:?}"
    );

    serve(&lab, 3, UDP_ECHO, "7777");
    let saw = ask_udp(&lab, 1, "40000", &["203.0.113.2:7777"]);
    assert_eq!(
        saw,
        vec![format!("{NAT_ADDR}:40000")],
        "UDP: the port is preserved"
    );

    serve(&lab, 3, TCP_WHO, "7778");
    let out = lab.host(2).ns.check(&[
        "python3",
        "-c",
        "import socket; s = socket.create_connection(('203.0.113.2', 7778), timeout=3); print(s.recv(100).decode())",
    ]);
    assert!(
        out.trim().starts_with(&format!("{NAT_ADDR}:")),
        "TCP: {out}"
    );

    // iperf3 with default offloads: GSO frames with partial checksums.
    let received = iperf3_bytes(&lab.host(1).ns, &outside(&lab).ns, OUTSIDE, 2);
    assert!(received > 10e6, "iperf3 moved only {received} bytes");

    let sessions = lab.cli_ok(&["nat", "sessions"]);
    assert!(sessions.contains("udp   192.168.15.1:40000"), "{sessions}");
    let rules = lab.cli_json(&["nat", "show"]);
    assert!(rules[0]["hits"].as_u64() >= Some(4), "{rules}");
}

#[test]
fn one_inside_endpoint_keeps_one_mapping_for_every_destination() {
    let lab = nat_lab(&[]);
    serve(&lab, 3, UDP_ECHO, "7001");
    serve(&lab, 3, UDP_ECHO, "7002");
    let saw = ask_udp(
        &lab,
        1,
        "41000",
        &["203.0.113.2:7001", "203.0.113.2:7002", "203.0.113.2:7001"],
    );
    assert_eq!(saw.len(), 3);
    assert!(saw.iter().all(|s| *s == saw[0]), "mapping changed: {saw:?}");
    // Another inside host with the same port gets its own outside port.
    let other = ask_udp(&lab, 2, "41000", &["203.0.113.2:7001"]);
    assert_ne!(other[0], saw[0]);
}

#[test]
fn a_thousand_udp_flows_get_distinct_stable_mappings() {
    let lab = nat_lab(&[]);
    serve(&lab, 3, UDP_ECHO, "7003");
    let script = "import socket\n\
socks = []\n\
for i in range(1000):\n\
\x20   s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
\x20   s.bind(('0.0.0.0', 0))\n\
\x20   s.settimeout(3)\n\
\x20   socks.append(s)\n\
first = []\n\
for s in socks:\n\
\x20   s.sendto(b'1', ('203.0.113.2', 7003))\n\
\x20   first.append(s.recvfrom(100)[0].decode())\n\
again = []\n\
for s in socks:\n\
\x20   s.sendto(b'2', ('203.0.113.2', 7003))\n\
\x20   again.append(s.recvfrom(100)[0].decode())\n\
print(len(set(first)), first == again)\n";
    let out = lab.host(1).ns.check(&["python3", "-c", script]);
    assert_eq!(out.trim(), "1000 True", "distinct and stable mappings");
    let stats = lab.cli_json(&["stats"]);
    assert!(
        stats["nat_sessions"].as_u64() >= Some(1000),
        "{}",
        stats["nat"]
    );
}

#[test]
fn dnat_publishes_an_inside_server_and_unsolicited_traffic_is_dropped() {
    let lab = nat_lab(&[]);
    publish_server(&lab);
    let out = outside(&lab).ns.check(&[
        "python3",
        "-c",
        "import socket; s = socket.create_connection(('203.0.113.1', 8080), timeout=3); print(s.recv(100).decode())",
    ]);
    assert!(
        out.trim().starts_with(&format!("{OUTSIDE}:")),
        "the server sees the real client: {out}"
    );

    // Nothing went out from 192.168.15.2 port 5555: a datagram to it is dropped.
    let cap = Capture::start(&lab.host(2).ns, "eth0", "udp");
    outside(&lab).ns.check(&[
        "python3",
        "-c",
        "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('203.0.113.1', 5555))",
    ]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        cap.stop().is_empty(),
        "unsolicited UDP reached an inside host"
    );
    let links = lab.cli_json(&["link", "show"]);
    let p3 = links["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "p3")
        .unwrap();
    assert!(
        p3["drops_by_reason"]["nat-filtered"].as_u64() >= Some(1),
        "{p3}"
    );
}

#[test]
fn sessions_expire_and_can_be_flushed() {
    let lab = nat_lab(&["--nat-udp-secs", "2"]);
    serve(&lab, 3, UDP_ECHO, "7004");
    ask_udp(&lab, 1, "42000", &["203.0.113.2:7004"]);
    let count = |lab: &Lab| lab.cli_json(&["nat", "sessions"]).as_array().unwrap().len();
    assert_eq!(count(&lab), 1);
    assert!(
        patchbay_tools::wait_for(Duration::from_secs(5), || count(&lab) == 0),
        "UDP session did not expire"
    );
    assert!(lab.host(1).ping_ok(OUTSIDE, 1));
    assert_eq!(count(&lab), 1);
    lab.cli_ok(&["nat", "sessions", "flush"]);
    assert_eq!(count(&lab), 0);
    let stats = lab.cli_json(&["stats"]);
    assert!(
        stats["nat"]["sessions_expired"].as_u64() >= Some(1),
        "{}",
        stats["nat"]
    );
}

#[test]
fn traceroute_through_nat() {
    let lab = nat_lab(&[]);
    let tr = String::from_utf8_lossy(
        &lab.host(1)
            .ns
            .run(&["traceroute", "-n", "-q", "1", "-w", "2", OUTSIDE])
            .stdout,
    )
    .into_owned();
    assert!(
        tr.contains(" 1  192.168.15.10 ") && tr.contains(&format!(" 2  {OUTSIDE} ")),
        "{tr}"
    );
}

#[test]
fn nat_cli_errors_are_one_line() {
    let lab = nat_lab(&[]);
    for (args, want) in [
        (&["nat", "add", "masquerade"][..], "needs 'out BRIDGE'"),
        (
            &["nat", "add", "masquerade", "out", "br9"],
            "br9: no such bridge",
        ),
        (
            &[
                "nat",
                "add",
                "snat",
                "to",
                "203.0.113.9-203.0.113.1",
                "out",
                "br1",
            ],
            "address range",
        ),
        (
            &["nat", "add", "masquerade", "out", "br1", "ports", "9-1"],
            "port range",
        ),
        (
            &[
                "nat",
                "add",
                "dnat",
                "proto",
                "sctp",
                "in",
                "br1",
                "dport",
                "1",
                "to",
                "192.168.15.1:1",
            ],
            "tcp or udp",
        ),
        (
            &[
                "nat",
                "add",
                "dnat",
                "proto",
                "tcp",
                "in",
                "br1",
                "dport",
                "1",
                "to",
                "192.168.15.1",
            ],
            "ADDR:PORT",
        ),
        (&["nat", "del", "99"], "no rule 99"),
        (&["nat", "frob"], "unknown command"),
    ] {
        lab.cli_fails(args, want);
    }
    // One published port, one rule.
    let dnat = [
        "nat", "add", "dnat", "proto", "tcp", "in", "br1", "dport", "8080", "to",
    ];
    lab.cli_ok(&[&dnat[..], &["192.168.15.1:80"]].concat());
    lab.cli_fails(
        &[&dnat[..], &["192.168.15.2:80"]].concat(),
        "tcp port 8080 on br1 is already published by rule",
    );
    // Host bits of a source prefix are dropped, as iptables does.
    lab.cli_ok(&[
        "nat",
        "add",
        "masquerade",
        "src",
        "192.168.15.5/24",
        "out",
        "br1",
    ]);
    let show = lab.cli_ok(&["nat", "show"]);
    assert!(show.contains("masquerade src 192.168.15.0/24 "), "{show}");
    assert!(
        show.contains("dnat proto tcp in br1 dport 8080 to 192.168.15.1:80 hits 0"),
        "{show}"
    );
}

#[test]
fn an_icmp_port_unreachable_comes_back_translated() {
    let lab = nat_lab(&[]);
    // Nothing listens on 9999 outside: the kernel there answers with port
    // unreachable to 203.0.113.1, and patchbay must hand it to h1 (RFC 5508).
    let script = "import socket\n\
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
s.connect(('203.0.113.2', 9999))\n\
s.settimeout(3)\n\
s.send(b'x')\n\
try:\n\
\x20   s.recv(100)\n\
\x20   print('answered')\n\
except ConnectionRefusedError:\n\
\x20   print('refused')\n\
except socket.timeout:\n\
\x20   print('timeout')\n";
    lab.cli_ok(&["trace", "start", "count", "1", "filter", "icmp"]);
    let out = lab.host(1).ns.check(&["python3", "-c", script]);
    assert_eq!(
        out.trim(),
        "refused",
        "the ICMP error did not reach the inside host"
    );
    // The trace says what NAT did to it.
    let trace = lab.cli_ok(&["trace", "show"]);
    assert!(
        trace
            .contains("nat (pre-routing): ICMP error about a translated packet -> to 192.168.15.1"),
        "{trace}"
    );
}

#[test]
fn the_gateway_refuses_tcp_inside_and_the_nat_address_stays_silent_outside() {
    let lab = nat_lab(&[]);
    // Nothing serves TCP on the router: from inside, the gateway answers as
    // a host does (port unreachable: "connection refused"); from outside,
    // the NAT address filters unsolicited packets without a word.
    let connect = |ns: &patchbay_tools::lab::Netns, to: &str| {
        let script = format!(
            "import socket\n\
s = socket.socket()\n\
s.settimeout(2)\n\
try:\n\
\x20   s.connect(('{to}', 22))\n\
\x20   print('open')\n\
except ConnectionRefusedError:\n\
\x20   print('refused')\n\
except socket.timeout:\n\
\x20   print('timeout')\n"
        );
        ns.check(&["python3", "-c", &script]).trim().to_string()
    };
    assert_eq!(connect(&lab.host(1).ns, "192.168.15.10"), "refused");
    assert_eq!(connect(&lab.host(3).ns, "203.0.113.1"), "timeout");
    // Nor does a protocol NAT does not track (GRE) get a protocol
    // unreachable from the NAT address: no ICMP comes back to h3.
    let gre = "import socket\n\
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)\n\
r.settimeout(1)\n\
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)\n\
s.sendto(bytes(8), ('203.0.113.1', 0))\n\
try:\n\
\x20   while True:\n\
\x20       d, a = r.recvfrom(200)\n\
\x20       if a[0] == '203.0.113.1':\n\
\x20           print('icmp', d[20])\n\
\x20           break\n\
except socket.timeout:\n\
\x20   print('silent')\n";
    assert_eq!(
        lab.host(3).ns.check(&["python3", "-c", gre]).trim(),
        "silent"
    );
}

#[test]
fn a_masqueraded_packet_to_a_neighbour_that_never_answers_gets_host_unreachable() {
    let lab = nat_lab(&[]);
    // Nobody has 203.0.113.99: ARP fails after its retries, and the error
    // about the translated packet goes to the inside host that sent it.
    let out = lab
        .host(1)
        .ns
        .run(&["ping", "-c", "1", "-W", "8", "203.0.113.99"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("From 192.168.15.10") && text.contains("Destination Host Unreachable"),
        "{text}"
    );
    assert_eq!(lab.cli_json(&["stats"])["l3"]["arp_failed"], 1);
}

#[test]
fn hairpin_an_inside_host_reaches_a_published_server_through_the_outside_address() {
    let lab = nat_lab(&[]);
    publish_server(&lab);
    // h2 is inside, on the same bridge as the server (RFC 4787 REQ-9).
    let out = lab.host(2).ns.check(&[
        "python3",
        "-c",
        "import socket; s = socket.create_connection(('203.0.113.1', 8080), timeout=3); print(s.recv(100).decode())",
    ]);
    assert!(
        out.trim().starts_with(&format!("{NAT_ADDR}:")),
        "the server answers h2 through the NAT: {out}"
    );
}

#[test]
fn filtering_is_settable_per_rule() {
    let lab = nat_lab(&[]);
    serve(&lab, 3, UDP_ECHO, "7005");
    // Default (address-and-port-dependent): another port of the same
    // outside host may not send to the mapping.
    let probe = |lab: &Lab, lport: &str| {
        let listen = format!(
            "import socket\n\
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
s.bind(('0.0.0.0', {lport}))\n\
s.settimeout(3)\n\
s.sendto(b'open', ('203.0.113.2', 7005))\n\
s.recvfrom(100)\n\
print('ready', flush=True)\n\
try:\n\
\x20   print(s.recvfrom(100)[0].decode())\n\
except socket.timeout:\n\
\x20   print('nothing')\n"
        );
        let mut child = lab.host(1).ns.spawn(&["python3", "-c", &listen]);
        // The mapping exists once the echo came back.
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut ready = String::new();
        use std::io::BufRead;
        let _ = stdout.read_line(&mut ready);
        lab.host(3).ns.check(&[
            "python3",
            "-c",
            &format!(
                "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 7999)); s.sendto(b'stranger', ('203.0.113.1', {lport}))"
            ),
        ]);
        let _ = child.wait();
        let mut out = String::new();
        use std::io::Read;
        stdout.read_to_string(&mut out).unwrap();
        ready + &out
    };
    assert!(
        probe(&lab, "43000").contains("nothing"),
        "default filtering let a stranger port in"
    );
    endpoint_independent(&lab);
    assert!(
        probe(&lab, "43001").contains("stranger"),
        "endpoint-independent filtering kept it out"
    );
    let rules = lab.cli_ok(&["nat", "show"]);
    assert!(rules.contains("filtering endpoint-independent"), "{rules}");
}

#[test]
fn path_mtu_discovery_works_through_nat() {
    let lab = nat_lab(&[]);
    // The outside link is smaller than both hosts think: patchbay's "frag
    // needed" about already translated segments must reach h1 translated
    // back, or the connection stalls.
    lab.cli_ok(&["link", "set", "br1", "mtu", "1400"]);
    let received = iperf3_bytes(&lab.host(1).ns, &outside(&lab).ns, OUTSIDE, 2);
    assert!(received > 10e6, "iperf3 moved only {received} bytes");
    let cached = lab.host(1).ns.check(&["ip", "route", "get", OUTSIDE]);
    assert!(
        cached.contains("mtu 1400"),
        "h1 learned the path MTU: {cached}"
    );
}

#[test]
fn hairpin_onto_another_inside_hosts_mapping() {
    let lab = nat_lab(&[]);
    endpoint_independent(&lab);
    serve(&lab, 3, UDP_ECHO, "7005");
    // h2 (a peer-to-peer client, say) talks to the outside from port 5000,
    // which makes its mapping 203.0.113.1:5000, then echoes what comes.
    let h2 = "import socket\n\
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
s.bind(('0.0.0.0', 5000))\n\
s.settimeout(5)\n\
s.sendto(b'hello', ('203.0.113.2', 7005))\n\
s.recvfrom(100)\n\
print('mapped', flush=True)\n\
d, a = s.recvfrom(100)\n\
s.sendto(('%s:%d' % a).encode(), a)\n";
    let mut peer = lab.host(2).ns.spawn(&["python3", "-c", h2]);
    let mut stdout = std::io::BufReader::new(peer.stdout.take().unwrap());
    let mut line = String::new();
    use std::io::BufRead;
    let _ = stdout.read_line(&mut line);
    assert_eq!(line.trim(), "mapped");
    // h1 reaches h2 through the outside address and h2's mapping; h2 sees
    // h1's outside endpoint, and h1 gets the answer from h2's.
    let out = lab.host(1).ns.check(&[
        "python3",
        "-c",
        "import socket\n\
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
s.bind(('0.0.0.0', 6000))\n\
s.settimeout(3)\n\
s.sendto(b'hi', ('203.0.113.1', 5000))\n\
d, a = s.recvfrom(100)\n\
print(d.decode(), '%s:%d' % a)\n",
    ]);
    let _ = peer.wait();
    assert_eq!(
        out.trim(),
        format!("{NAT_ADDR}:6000 {NAT_ADDR}:5000"),
        "h2 saw h1 as the NAT address, h1 heard back from h2's mapping"
    );
}

#[test]
fn fragmented_datagrams_cross_nat_both_ways() {
    let lab = nat_lab(&[]);
    // The outside host echoes whole datagrams: 3,000 bytes each way, so
    // both hosts' kernels fragment them (MTU 1500).
    let echo = "import socket\n\
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
s.bind(('0.0.0.0', 7100))\n\
while True:\n\
\x20   d, a = s.recvfrom(65535)\n\
\x20   s.sendto(d + ('|%s:%d' % a).encode(), a)\n";
    serve(&lab, 3, echo, "7100");
    let out = lab.host(1).ns.check(&[
        "python3",
        "-c",
        "import socket\n\
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
s.settimeout(3)\n\
s.sendto(b'x' * 3000, ('203.0.113.2', 7100))\n\
d, a = s.recvfrom(65535)\n\
print(len(d.split(b'|')[0]), d.split(b'|')[1].decode())\n",
    ]);
    let (len, seen) = out.trim().split_once(' ').expect("an answer");
    assert_eq!(len, "3000", "the whole datagram came back");
    assert!(
        seen.starts_with(&format!("{NAT_ADDR}:")),
        "the server saw {seen}"
    );
}

/// Python that sends `payload` as UDP from `src:sport` to `dst:dport` in
/// three IPv4 fragments, last one first (RFC 4787 REQ-14: a NAT must take
/// fragments out of order). UDP checksum 0: none.
const SEND_REVERSED: &str = "import socket, struct\n\
def send_reversed(src, sport, dst, dport, payload, ident):\n\
\x20   udp = struct.pack('!HHHH', sport, dport, 8 + len(payload), 0) + payload\n\
\x20   r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)\n\
\x20   pieces = [(o, udp[o:o + 1480]) for o in range(0, len(udp), 1480)]\n\
\x20   for o, piece in reversed(pieces):\n\
\x20       more = 0x2000 if o + len(piece) < len(udp) else 0\n\
\x20       ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(piece), ident, more | (o // 8), 64, 17, 0,\n\
\x20                        socket.inet_aton(src), socket.inet_aton(dst))\n\
\x20       r.sendto(ip + piece, (dst, 0))\n";

#[test]
fn fragments_out_of_order_cross_nat_both_ways() {
    let lab = nat_lab(&[]);
    // The outside host answers each datagram with itself and the address it
    // came from, fragmented last fragment first too.
    let echo = format!(
        "{SEND_REVERSED}\
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
s.bind(('0.0.0.0', 7200))\n\
n = 0\n\
while True:\n\
\x20   d, a = s.recvfrom(65535)\n\
\x20   n += 1\n\
\x20   send_reversed('{OUTSIDE}', 7200, a[0], a[1], d + ('|%s:%d' % a).encode(), 0x4000 + n)\n"
    );
    serve(&lab, 3, &echo, "7200");
    let out = lab.host(1).ns.check(&[
        "python3",
        "-c",
        &format!(
            "{SEND_REVERSED}\
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
s.bind(('0.0.0.0', 40000))\n\
s.settimeout(3)\n\
send_reversed('192.168.15.1', 40000, '{OUTSIDE}', 7200, b'y' * 3000, 0x1234)\n\
d, a = s.recvfrom(65535)\n\
print(len(d.split(b'|')[0]), d.split(b'|')[1].decode())\n"
        ),
    ]);
    let (len, seen) = out.trim().split_once(' ').expect("an answer");
    assert_eq!(len, "3000", "the whole datagram came back");
    assert!(
        seen.starts_with(&format!("{NAT_ADDR}:")),
        "the server saw {seen}"
    );
    let st = lab.cli_json(&["stats"]);
    assert!(
        st["nat"]["fragments_held"].as_u64().unwrap_or(0) >= 4,
        "two later fragments held each way: {st}"
    );
}

/// Python that sends raw IPv4 packets: `send(src, dst, proto, payload,
/// ident=1, frag=0)` (the kernel fills in the header checksum) and
/// `csum(bytes)`, the Internet checksum.
const RAW_IP: &str = "import socket, struct, sys, time\n\
def csum(b):\n\
\x20   if len(b) % 2: b += b'\\0'\n\
\x20   s = sum(struct.unpack('!%dH' % (len(b) // 2), b))\n\
\x20   while s >> 16: s = (s & 0xffff) + (s >> 16)\n\
\x20   return ~s & 0xffff\n\
def send(src, dst, proto, payload, ident=1, frag=0):\n\
\x20   ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(payload), ident, frag, 64, proto, 0,\n\
\x20                    socket.inet_aton(src), socket.inet_aton(dst))\n\
\x20   r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)\n\
\x20   r.sendto(ip + payload, (dst, 0))\n";

/// The lines of a capture that carry an inside address.
fn leaks(seen: &[String]) -> Vec<&String> {
    seen.iter().filter(|l| l.contains("192.168.15.")).collect()
}

#[test]
fn protocols_without_ports_and_icmp_queries_leave_as_the_nat_address() {
    let lab = nat_lab(&[]);
    let cap = Capture::start(&outside(&lab).ns, "eth0", "ip");
    let back = Capture::start(&lab.host(1).ns, "eth0", "icmp");
    // GRE, SCTP, an experimental protocol, and an ICMP timestamp request
    // (the outside kernel answers it).
    let script = format!(
        "{RAW_IP}\
src, dst = '192.168.15.1', '{OUTSIDE}'\n\
send(src, dst, 47, struct.pack('!HH', 0, 0x0800) + b'x' * 24)\n\
send(src, dst, 132, struct.pack('!HHII', 5000, 5001, 7, 0) + b'y' * 16)\n\
send(src, dst, 253, b'z' * 32)\n\
ts = struct.pack('!BBHHHIII', 13, 0, 0, 0x4242, 1, 1000, 0, 0)\n\
ts = ts[:2] + struct.pack('!H', csum(ts)) + ts[4:]\n\
send(src, dst, 1, ts)\n\
time.sleep(0.5)\n"
    );
    lab.host(1).ns.check(&["python3", "-c", &script]);
    let seen = cap.stop();
    assert!(leaks(&seen).is_empty(), "inside address leaked: {seen:?}");
    for what in ["GREv0", "sctp", "ip-proto-253", "time stamp query"] {
        assert!(
            seen.iter()
                .any(|l| l.contains(&format!(": {NAT_ADDR}")) && l.contains(what)),
            "{what} did not leave as {NAT_ADDR}: {seen:?}"
        );
    }
    let back = back.stop();
    assert!(
        back.iter()
            .any(|l| l.contains(&format!("{OUTSIDE} > 192.168.15.1"))
                && l.contains("time stamp reply")),
        "the timestamp reply came back translated: {back:?}"
    );
    let sessions = lab.cli_ok(&["nat", "sessions"]);
    assert!(sessions.contains("gre"), "{sessions}");
}

#[test]
fn first_fragments_too_short_for_their_ports_never_leak() {
    let lab = nat_lab(&[]);
    let cap = Capture::start(&outside(&lab).ns, "eth0", "ip");
    // A TCP first fragment with 8 bytes of its header (RFC 1858's tiny
    // fragment), then the rest; a UDP first fragment that holds the UDP
    // header alone, then the payload; an IP first fragment with no payload.
    let script = format!(
        "{RAW_IP}\
src, dst = '192.168.15.1', '{OUTSIDE}'\n\
tcp = struct.pack('!HHIIBBHHH', 40001, 80, 1, 0, 0x50, 0x02, 1024, 0, 0) + b'a' * 8\n\
send(src, dst, 6, tcp[:8], ident=0x501, frag=0x2000)\n\
send(src, dst, 6, tcp[8:], ident=0x501, frag=1)\n\
udp = struct.pack('!HHHH', 40002, 53, 8 + 16, 0) + b'b' * 16\n\
send(src, dst, 17, udp[:8], ident=0x502, frag=0x2000)\n\
send(src, dst, 17, udp[8:], ident=0x502, frag=1)\n\
send(src, dst, 17, b'', ident=0x503, frag=0x2000)\n\
send(src, dst, 17, udp, ident=0x503, frag=0)\n\
time.sleep(0.5)\n"
    );
    lab.host(1).ns.check(&["python3", "-c", &script]);
    let seen = cap.stop();
    assert!(leaks(&seen).is_empty(), "inside address leaked: {seen:?}");
    let links = lab.cli_json(&["link", "show"]);
    let p1 = &links["ports"][0];
    assert!(
        p1["drops_by_reason"]["nat-untranslatable"].as_u64() >= Some(1),
        "the tiny TCP fragment is dropped and counted: {p1}"
    );
}

#[test]
fn answers_to_a_connection_opened_from_outside_are_not_masqueraded() {
    let lab = nat_lab(&[]);
    // The outside host reaches the inside subnet by its router (a routed
    // inside network, as a lab's transit link would have).
    outside(&lab)
        .ns
        .check(&["ip", "route", "add", "192.168.15.0/24", "via", NAT_ADDR]);
    serve(&lab, 1, TCP_WHO, "80");
    let out = outside(&lab).ns.check(&[
        "python3",
        "-c",
        "import socket; s = socket.create_connection(('192.168.15.1', 80), timeout=3); print(s.recv(100).decode())",
    ]);
    assert!(
        out.trim().starts_with(&format!("{OUTSIDE}:")),
        "the server sees the real client: {out}"
    );
    serve(&lab, 1, UDP_ECHO, "7300");
    let saw = ask_udp(&lab, 3, "43000", &["192.168.15.1:7300"]);
    assert_eq!(saw, vec![format!("{OUTSIDE}:43000")]);
    // And an inside host's own connections are still masqueraded.
    serve(&lab, 3, UDP_ECHO, "7301");
    let saw = ask_udp(&lab, 2, "43001", &["203.0.113.2:7301"]);
    assert_eq!(saw, vec![format!("{NAT_ADDR}:43001")]);
}

#[test]
fn outside_ports_picked_on_a_collision_or_for_low_ports_are_random() {
    let lab = nat_lab(&[]);
    serve(&lab, 3, UDP_ECHO, "7400");
    // Inside ports 600..615 are outside the rule's range (1024-65535).
    let script = "import socket\n\
seen = []\n\
for p in range(600, 616):\n\
\x20   s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
\x20   s.bind(('0.0.0.0', p))\n\
\x20   s.settimeout(3)\n\
\x20   s.sendto(b'x', ('203.0.113.2', 7400))\n\
\x20   seen.append(int(s.recvfrom(100)[0].decode().split(':')[1]))\n\
print(' '.join(map(str, seen)))\n";
    let out = lab.host(1).ns.check(&["python3", "-c", script]);
    let ports: Vec<u32> = out.split_whitespace().map(|p| p.parse().unwrap()).collect();
    assert_eq!(ports.len(), 16, "{out}");
    assert!(
        ports.iter().all(|p| (1024..=65535).contains(p)),
        "{ports:?}"
    );
    let steps = ports
        .windows(2)
        .filter(|w| w[1].abs_diff(w[0]) <= 16)
        .count();
    assert!(steps <= 2, "outside ports are predictable: {ports:?}");
}

#[test]
fn sessions_expire_while_new_flows_keep_arriving() {
    // A 2 s UDP timeout, a table of 600, and 150 new flows a second for
    // 8 s: 1,200 flows in all, about 300-450 alive at once.
    let lab = nat_lab(&["--nat-udp-secs", "2", "--nat-max", "600"]);
    let script = "import socket, time\n\
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
start = time.time()\n\
for i in range(1200):\n\
\x20   s.sendto(b'x', ('203.0.113.2', 10000 + i))\n\
\x20   time.sleep(max(0, start + (i + 1) / 150 - time.time()))\n";
    lab.host(1).ns.check(&["python3", "-c", script]);
    let stats = lab.cli_json(&["stats"]);
    let nat = &stats["nat"];
    assert_eq!(nat["table_full"].as_u64(), Some(0), "{nat}");
    assert!(nat["sessions_created"].as_u64() >= Some(1200), "{nat}");
    assert!(nat["sessions_expired"].as_u64() >= Some(600), "{nat}");
    assert!(stats["nat_sessions"].as_u64() <= Some(600), "{stats}");
}

#[test]
fn a_fragmented_ping_to_the_nat_address_is_answered() {
    let lab = nat_lab(&[]);
    let out = outside(&lab)
        .ns
        .run(&["ping", "-c", "2", "-s", "2000", "-W", "2", NAT_ADDR]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2008 bytes from 203.0.113.1"), "{text}");
}

#[test]
fn nat_traffic_resumes_within_a_second_of_a_crash_and_restart() {
    let mut lab = nat_lab(&[]);
    // The running lab as a config file, and patchbayd started from it.
    let file = std::env::temp_dir().join(format!("{}-restart.toml", lab.tag));
    std::fs::write(&file, lab.cli_ok(&["save"])).unwrap();
    let config = file.to_str().unwrap().to_string();
    lab.daemon.as_mut().unwrap().stop();
    lab.start_daemon(&["--config", &config]);
    assert!(lab.host(1).ping_ok(OUTSIDE, 2));
    // h1 pings every 20 ms for 6 s; patchbayd is killed after 1.5 s and
    // started again from the same file.
    let ping = lab
        .host(1)
        .ns
        .command(&["ping", "-i", "0.02", "-w", "6", "-q", OUTSIDE])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    lab.daemon.as_mut().unwrap().kill();
    lab.start_daemon(&["--config", &config]);
    let out = ping.wait_with_output().unwrap();
    let _ = std::fs::remove_file(&file);
    let text = String::from_utf8_lossy(&out.stdout);
    let count = |what: &str| -> u32 {
        let at = text.find(what).unwrap_or_else(|| panic!("{what}: {text}"));
        let n = text[..at].trim_end().rsplit([' ', '\n']).next().unwrap();
        n.parse().unwrap()
    };
    let (sent, got) = (count(" packets transmitted"), count(" received"));
    let outage_ms = (sent - got) * 20;
    println!("outage after SIGKILL and restart: {outage_ms} ms ({sent} sent, {got} received)");
    assert!(outage_ms < 1000, "{outage_ms} ms without NAT: {text}");
}
