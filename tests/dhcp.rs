//! patchbay's DHCP server with real clients in host namespaces: ISC
//! dhclient, busybox udhcpc and dhcpcd, each configuring its host from
//! the answers (address, default route, DNS server).
//!
//! A client's scripts write /etc/resolv.conf: each host gets its own
//! through `ip netns exec`'s /etc/netns/NAME/resolv.conf, made here and
//! removed on drop, so nothing of the machine's is touched.
//!
//! Needs root and the tools that `tools/test` installs.

use patchbay_tools::{wait_for, Bins, Lab, Netns};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

fn bins() -> Bins {
    Bins {
        patchbayd: env!("CARGO_BIN_EXE_patchbayd").into(),
        patchbay: env!("CARGO_BIN_EXE_patchbay").into(),
    }
}

/// The /etc/netns files of a host namespace: its own resolv.conf.
struct EtcNetns(PathBuf);

impl EtcNetns {
    fn new(ns: &Netns) -> EtcNetns {
        let dir = PathBuf::from("/etc/netns").join(&ns.name);
        std::fs::create_dir_all(&dir).expect("/etc/netns dir");
        std::fs::write(dir.join("resolv.conf"), "").expect("resolv.conf");
        EtcNetns(dir)
    }

    fn resolv_conf(&self) -> String {
        std::fs::read_to_string(self.0.join("resolv.conf")).unwrap_or_default()
    }
}

impl Drop for EtcNetns {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A lab of `n` hosts without addresses on br0, whose router interface is
/// 192.168.15.10/24; `leases` is the lease file.
fn lab(n: usize, leases: &std::path::Path) -> (Lab, Vec<EtcNetns>) {
    let mut lab = Lab::new(bins(), n);
    start(&mut lab, leases);
    lab.cli_ok(&["addr", "add", "192.168.15.10/24", "dev", "br0"]);
    let etc = lab
        .hosts
        .iter()
        .map(|h| {
            h.ns.check(&["ip", "addr", "flush", "dev", "eth0"]);
            EtcNetns::new(&h.ns)
        })
        .collect();
    (lab, etc)
}

/// Starts patchbayd with every host's port, and `leases` as its lease
/// file.
fn start(lab: &mut Lab, leases: &std::path::Path) {
    let mut args: Vec<String> = lab.port_args();
    args.extend(["--dhcp-leases".to_string(), leases.display().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    lab.start_daemon(&args);
}

/// One quick try of busybox udhcpc (two DISCOVERs a second apart) that
/// configures nothing: whether it got a lease.
fn udhcpc_once(ns: &Netns) -> std::process::Output {
    ns.run(&[
        "busybox",
        "udhcpc",
        "-i",
        "eth0",
        "-n",
        "-q",
        "-t",
        "2",
        "-T",
        "1",
        "-s",
        "/bin/true",
    ])
}

fn leases_path(lab_tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{lab_tag}-dhcp-test.leases"))
}

/// Runs ISC dhclient once on eth0 of `ns` (its lease file in /tmp);
/// returns whether it got a lease.
fn dhclient(ns: &Netns) -> bool {
    let lf = format!("/tmp/{}.dhclient.leases", ns.name);
    let pf = format!("/tmp/{}.dhclient.pid", ns.name);
    let out = ns.run(&[
        "timeout", "30", "dhclient", "-1", "-v", "-lf", &lf, "-pf", &pf, "eth0",
    ]);
    out.status.success()
}

/// Stops the dhclient of `ns` (its pid file), releasing nothing.
fn dhclient_stop(ns: &Netns) {
    let pf = format!("/tmp/{}.dhclient.pid", ns.name);
    if let Ok(pid) = std::fs::read_to_string(&pf) {
        if let Ok(pid) = pid.trim().parse::<i32>() {
            // SAFETY: kill(2) of the dhclient this test started, by its PID.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }
    let _ = std::fs::remove_file(pf);
}

/// Stops the dhclient of `ns` and removes its lease file: the end of a
/// test.
fn dhclient_done(ns: &Netns) {
    dhclient_stop(ns);
    let _ = std::fs::remove_file(format!("/tmp/{}.dhclient.leases", ns.name));
}

/// Runs dhcpcd once on eth0 of `ns` (with `args`), its lease database and
/// control socket on private tmpfs mounts: dhcpcd keeps them by interface
/// name, which every host here shares.
fn dhcpcd(ns: &Netns, args: &[&str]) -> std::process::Output {
    let script = format!(
        "mkdir -p /var/lib/dhcpcd /run/dhcpcd && mount -t tmpfs none /var/lib/dhcpcd && \
         mount -t tmpfs none /run/dhcpcd && exec timeout 60 dhcpcd --oneshot --ipv4only \
         --nobackground {} eth0",
        args.join(" ")
    );
    ns.run(&["sh", "-c", &script])
}

fn ipv4_of(ns: &Netns) -> String {
    let out = ns.check(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
    out.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .unwrap_or("")
        .to_string()
}

fn default_route(ns: &Netns) -> String {
    ns.check(&["ip", "-4", "route", "show", "default"])
}

fn dhcp_add(lab: &Lab, range: &str) {
    lab.cli_ok(&[
        "dhcp",
        "add",
        "br0",
        "range",
        range,
        "router",
        "192.168.15.10",
        "dns",
        "192.168.15.10",
        "lease",
        "600",
        "domain",
        "lab",
    ]);
}

#[test]
fn clients_get_their_address_route_and_dns_and_reservations_hold() {
    let leases = leases_path(&format!("pb{}a", std::process::id()));
    let _ = std::fs::remove_file(&leases);
    let (lab, etc) = lab(3, &leases);
    dhcp_add(&lab, "192.168.15.100-192.168.15.150");
    let (h1, h2, h3) = (lab.host(1), lab.host(2), lab.host(3));
    lab.cli_ok(&[
        "dhcp",
        "host",
        "add",
        "br0",
        &h2.mac,
        "192.168.15.120",
        "name",
        "h2",
    ]);

    // ISC dhclient.
    assert!(dhclient(&h1.ns), "dhclient got no lease");
    assert_eq!(ipv4_of(&h1.ns), "192.168.15.100/24");
    assert!(
        default_route(&h1.ns).contains("via 192.168.15.10"),
        "{}",
        default_route(&h1.ns)
    );
    let resolv = etc[0].resolv_conf();
    assert!(
        resolv.contains("nameserver 192.168.15.10") && resolv.contains("lab"),
        "{resolv}"
    );
    // The router answers from its address: the host can ping it.
    assert!(h1.ping_ok("192.168.15.10", 1));

    // A reservation, with its name.
    assert!(dhclient(&h2.ns), "dhclient got no lease for h2");
    assert_eq!(ipv4_of(&h2.ns), "192.168.15.120/24");

    // busybox udhcpc: a script of ours applies what it gets, as its
    // default script would.
    let script = std::env::temp_dir().join(format!("pb{}-udhcpc.sh", std::process::id()));
    let script = script.to_str().expect("temp dir path");
    std::fs::write(
        script,
        "#!/bin/sh\n[ \"$1\" = bound ] || exit 0\n\
         ip addr add $ip/$mask dev $interface\n\
         for r in $router; do ip route add default via $r dev $interface; done\n\
         echo \"nameserver $dns\" > /etc/resolv.conf\n",
    )
    .expect("script");
    std::fs::set_permissions(script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).ok();
    let out = h3.ns.run(&[
        "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-t", "3", "-T", "2", "-s", script,
    ]);
    let _ = std::fs::remove_file(script);
    assert!(
        out.status.success(),
        "udhcpc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a3 = ipv4_of(&h3.ns);
    assert!(
        a3.starts_with("192.168.15.") && a3 != "192.168.15.100/24" && a3 != "192.168.15.120/24",
        "{a3}"
    );
    assert!(default_route(&h3.ns).contains("via 192.168.15.10"));
    assert!(etc[2].resolv_conf().contains("nameserver 192.168.15.10"));

    // Three leases, distinct; the counters say so.
    let rows = lab.cli_json(&["dhcp", "leases"]);
    let ips: Vec<&str> = rows
        .as_array()
        .expect("leases")
        .iter()
        .filter(|r| r["state"] == "bound")
        .filter_map(|r| r["ip"].as_str())
        .collect();
    assert_eq!(ips.len(), 3, "{rows}");
    let shown = lab.cli_json(&["dhcp", "show"]);
    assert!(
        shown["counters"]["acks"].as_u64().unwrap_or(0) >= 3,
        "{shown}"
    );
    // The lease file has them.
    let file = std::fs::read_to_string(&leases).expect("lease file");
    assert!(file.contains("192.168.15.120"), "{file}");
    for h in [h1, h2] {
        dhclient_done(&h.ns);
    }
    let _ = std::fs::remove_file(&leases);
}

#[test]
fn leases_survive_a_restart_and_an_exhausted_pool_offers_nothing() {
    let leases = leases_path(&format!("pb{}b", std::process::id()));
    let _ = std::fs::remove_file(&leases);
    let (mut lab, _etc) = lab(2, &leases);
    // One address only.
    dhcp_add(&lab, "192.168.15.100-192.168.15.100");
    let (h1, h2) = (lab.host(1), lab.host(2));
    assert!(dhclient(&h1.ns));
    assert_eq!(ipv4_of(&h1.ns), "192.168.15.100/24");
    dhclient_stop(&h1.ns);
    // The pool is spent: h2 gets no offer, and it is counted.
    let out = udhcpc_once(&h2.ns);
    assert!(!out.status.success(), "an offer from a spent pool");
    let shown = lab.cli_json(&["dhcp", "show"]);
    assert!(
        shown["counters"]["exhausted"].as_u64().unwrap_or(0) >= 1,
        "{shown}"
    );

    // patchbayd restarts with the same lease file: h1's lease is still
    // there (h2 still gets nothing), and h1 gets its address back.
    // The old daemon goes first: dropped, it takes its socket file along.
    drop(lab.daemon.take());
    start(&mut lab, &leases);
    lab.cli_ok(&["addr", "add", "192.168.15.10/24", "dev", "br0"]);
    dhcp_add(&lab, "192.168.15.100-192.168.15.100");
    let rows = lab.cli_json(&["dhcp", "leases"]);
    assert!(
        rows.to_string().contains("192.168.15.100"),
        "lease kept: {rows}"
    );
    let (h1, h2) = (lab.host(1), lab.host(2));
    let out = udhcpc_once(&h2.ns);
    assert!(
        !out.status.success(),
        "h1's address went to h2 after the restart"
    );
    h1.ns.check(&["ip", "addr", "flush", "dev", "eth0"]);
    assert!(dhclient(&h1.ns));
    assert_eq!(ipv4_of(&h1.ns), "192.168.15.100/24");
    dhclient_done(&h1.ns);
    let _ = std::fs::remove_file(&leases);
}

#[test]
fn a_corrupt_lease_file_is_set_aside_and_malformed_messages_counted() {
    let leases = leases_path(&format!("pb{}c", std::process::id()));
    std::fs::write(&leases, "{ not json").expect("lease file");
    let (lab, _etc) = lab(1, &leases);
    let aside = leases.with_extension("corrupt");
    assert!(aside.exists(), "set aside");
    dhcp_add(&lab, "192.168.15.100-192.168.15.110");
    let h1 = lab.host(1);
    // Garbage to port 67, broadcast: a UDP socket on the host.
    let script = "import socket\n\
                  s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
                  s.setsockopt(socket.SOL_SOCKET,socket.SO_BROADCAST,1)\n\
                  s.setsockopt(socket.SOL_SOCKET,socket.SO_BINDTODEVICE,b'eth0')\n\
                  s.sendto(b'\\x01'*20,('255.255.255.255',67))\n\
                  s.sendto(b'\\x01'+b'\\x00'*300,('255.255.255.255',67))\n";
    h1.ns
        .check(&["ip", "addr", "add", "192.168.15.2/24", "dev", "eth0"]);
    h1.ns.check(&["python3", "-c", script]);
    let counted = wait_for(Duration::from_secs(3), || {
        let shown: Value = lab.cli_json(&["dhcp", "show"]);
        shown["counters"]["malformed"].as_u64().unwrap_or(0) >= 2
    });
    assert!(counted, "{}", lab.cli_ok(&["dhcp", "show"]));
    // And the server still answers.
    h1.ns.check(&["ip", "addr", "flush", "dev", "eth0"]);
    assert!(dhclient(&h1.ns));
    dhclient_done(&h1.ns);
    let _ = std::fs::remove_file(&leases);
    let _ = std::fs::remove_file(&aside);
}

const DHCP_LAB: &str = r#"
[[bridge]]
name = "br0"
addresses = ["192.168.15.10/24"]

[[port]]
name = "p1"
bridge = "br0"

[[dhcp]]
bridge = "br0"
range = "192.168.15.100-192.168.15.150"
router = "192.168.15.10"
dns = ["192.168.15.10"]
lease = 600
domain = "lab"
mtu = 1400
routes = ["10.9.0.0/16 via 192.168.15.10"]
hosts = [{ mac = "02:00:00:00:00:99", ip = "192.168.15.99", name = "nine" }]
"#;

#[test]
fn a_config_file_carries_dhcp_and_dhcpcd_takes_its_options() {
    let mut lab = Lab::new(bins(), 1);
    let leases = leases_path(&format!("{}-cfg", lab.tag));
    let leases_arg = leases.display().to_string();
    lab.start_daemon(&["--dhcp-leases", &leases_arg]);
    let file = std::env::temp_dir().join(format!("{}-dhcp.toml", lab.tag));
    std::fs::write(&file, DHCP_LAB).expect("config");
    let path = file.to_str().expect("utf-8");
    let out = lab.cli_ok(&["apply", path]);
    assert!(out.contains("dhcp +1"), "{out}");
    // save gives back what apply took.
    let saved = lab.cli_ok(&["save"]);
    assert!(
        saved.contains("[[dhcp]]")
            && saved.contains("routes = [\"10.9.0.0/16 via 192.168.15.10\"]"),
        "{saved}"
    );
    std::fs::write(&file, &saved).expect("saved config");
    let check = lab.cli_ok(&["apply", path, "check"]);
    assert!(check.contains("no change"), "{check}");
    let _ = std::fs::remove_file(&file);

    let h1 = lab.host(1);
    h1.ns.check(&["ip", "addr", "flush", "dev", "eth0"]);
    let etc = EtcNetns::new(&h1.ns);
    // dhcpcd, where it works here; else ISC dhclient, which takes option
    // 121 too.
    let dhcpcd = dhcpcd(&h1.ns, &["--noarp", "--timeout", "20"]);
    if !dhcpcd.status.success() {
        eprintln!(
            "dhcpcd did not configure the host here ({}); using dhclient",
            String::from_utf8_lossy(&dhcpcd.stderr).trim()
        );
        assert!(dhclient(&h1.ns));
        dhclient_done(&h1.ns);
    }
    assert_eq!(ipv4_of(&h1.ns), "192.168.15.100/24");
    // Option 121: the route, and the default route in it (RFC 3442).
    let routes = h1.ns.check(&["ip", "-4", "route"]);
    assert!(routes.contains("10.9.0.0/16 via 192.168.15.10"), "{routes}");
    assert!(routes.contains("default via 192.168.15.10"), "{routes}");
    assert!(
        etc.resolv_conf().contains("192.168.15.10"),
        "{}",
        etc.resolv_conf()
    );
    // (Option 26, the MTU, is in every answer; dhcpcd applies it only when
    // its configuration asks for it: the server's unit tests check it.)
    let _ = std::fs::remove_file(&leases);
}

/// DISCOVERs from 300 random MACs, written through a raw socket.
const DISCOVER_FLOOD: &str = r#"
import os, socket, struct
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(('eth0', 0))
def csum(b):
    if len(b) % 2: b += b'\0'
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while t >> 16: t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff
for i in range(300):
    mac = bytes([2]) + os.urandom(5)
    dhcp = struct.pack('!BBBBIHH4s4s4s4s16s', 1, 1, 6, 0, i, 0, 0x8000, b'\0'*4, b'\0'*4, b'\0'*4, b'\0'*4, mac + b'\0'*10)
    dhcp += b'\0' * 192 + bytes([99, 130, 83, 99, 53, 1, 1, 255])
    udp = struct.pack('!HHHH', 68, 67, 8 + len(dhcp), 0) + dhcp
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, b'\0'*4, b'\xff'*4)
    ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
    s.send(b'\xff'*6 + mac + b'\x08\x00' + ip + udp)
"#;

#[test]
fn a_flood_of_discovers_from_random_macs_only_fills_the_pool() {
    let leases = leases_path(&format!("pb{}d", std::process::id()));
    let _ = std::fs::remove_file(&leases);
    let (lab, _etc) = lab(1, &leases);
    dhcp_add(&lab, "192.168.15.100-192.168.15.110");
    lab.host(1).ns.check(&["python3", "-c", DISCOVER_FLOOD]);
    let done = wait_for(Duration::from_secs(10), || {
        let c = &lab.cli_json(&["dhcp", "show"])["counters"];
        let n = |k: &str| c[k].as_u64().unwrap_or(0);
        n("offers") + n("exhausted") + lab.drops("p1", "dhcp-queue-full") >= 300
    });
    let shown = lab.cli_json(&["dhcp", "show"]);
    assert!(done, "{shown}");
    let c = &shown["counters"];
    assert_eq!(
        c["offers"].as_u64(),
        Some(11),
        "one offer per address: {shown}"
    );
    assert!(c["exhausted"].as_u64().unwrap_or(0) > 0, "{shown}");
    let rows = lab.cli_json(&["dhcp", "leases"]);
    assert_eq!(
        rows.as_array().map(Vec::len),
        Some(11),
        "the table holds the pool, no more"
    );
    let _ = std::fs::remove_file(&leases);
}

/// dhcpcd probes the address it gets (RFC 5227): one another host already
/// holds is declined, set aside, and the client gets another.
#[test]
fn an_address_in_use_is_declined_and_set_aside() {
    let leases = leases_path(&format!("pb{}e", std::process::id()));
    let _ = std::fs::remove_file(&leases);
    let (lab, _etc) = lab(2, &leases);
    dhcp_add(&lab, "192.168.15.100-192.168.15.110");
    let (h1, h2) = (lab.host(1), lab.host(2));
    // h2 holds the pool's first address without asking.
    h2.ns
        .check(&["ip", "addr", "add", "192.168.15.100/24", "dev", "eth0"]);
    let out = dhcpcd(&h1.ns, &["--timeout", "40"]);
    if !out.status.success() && ipv4_of(&h1.ns).is_empty() {
        eprintln!(
            "skipped: dhcpcd did not run here: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return;
    }
    let shown = lab.cli_json(&["dhcp", "show"]);
    assert!(
        shown["counters"]["declines"].as_u64().unwrap_or(0) >= 1,
        "{shown}"
    );
    assert_eq!(ipv4_of(&h1.ns), "192.168.15.101/24", "{shown}");
    let _ = std::fs::remove_file(&leases);
}
