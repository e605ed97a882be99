//! Namespaces, veth pairs and a patchbayd under test.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A name prefix no other lab on this machine uses.
fn unique_tag() -> String {
    format!(
        "pb{}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// Runs a command; panics with its output if it cannot be started.
fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is it installed? see tools/test)"))
}

/// Runs a command that must succeed.
fn check(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace, deleted (with every process still in it) on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: &str) -> Netns {
        check(Command::new("ip").args(["netns", "add", name]));
        let ns = Netns {
            name: name.to_string(),
        };
        ns.check(&["ip", "link", "set", "lo", "up"]);
        // Keep hosts quiet: no IPv6 autoconfiguration chatter on the wire.
        ns.run(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
        ns.run(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
        ns
    }

    /// A command that runs inside the namespace.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        run(&mut self.command(args))
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn check(&self, args: &[&str]) -> String {
        check(&mut self.command(args))
    }

    /// Runs a shell script inside the namespace.
    pub fn sh(&self, script: &str) -> Output {
        self.run(&["sh", "-c", script])
    }

    /// Starts a background process inside the namespace.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {args:?} in {}: {e}", self.name))
    }

    /// PIDs of the processes in this namespace (all started by us).
    fn pids(&self) -> Vec<i32> {
        let out = run(Command::new("ip").args(["netns", "pids", &self.name]));
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for pid in self.pids() {
            // SAFETY: plain kill(2) of a process inside our own namespace.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A host: a namespace with `eth0` wired to a switch port.
pub struct Host {
    pub ns: Netns,
    /// The switch-side interface of its veth pair.
    pub port: String,
    /// Its IPv4 address (without prefix length).
    pub ip: String,
    /// The same with its prefix length, as given to [`Lab::add_host`].
    pub cidr: String,
    pub mac: String,
}

impl Host {
    pub fn ping(&self, dst: &str, count: u32) -> Output {
        self.ns.run(&[
            "ping",
            "-c",
            &count.to_string(),
            "-i",
            "0.05",
            "-W",
            "1",
            "-q",
            dst,
        ])
    }

    /// Whether `count` pings to `dst` all came back.
    pub fn ping_ok(&self, dst: &str, count: u32) -> bool {
        let out = self.ping(dst, count);
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains(" 0% packet loss")
    }

    /// Turns IPv6 on for eth0 (the lab turns it off), without duplicate
    /// address detection, adds `addr` (CIDR, if any), and returns eth0's
    /// link-local address once it is there.
    pub fn enable_ipv6(&self, addr: Option<&str>) -> String {
        for key in ["all", "default", "eth0"] {
            self.ns.check(&[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{key}.accept_dad=0"),
            ]);
            self.ns.check(&[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{key}.disable_ipv6=0"),
            ]);
        }
        if let Some(a) = addr {
            self.ns
                .check(&["ip", "-6", "addr", "add", a, "dev", "eth0", "nodad"]);
        }
        let mut link_local = String::new();
        let found = wait_for(Duration::from_secs(5), || {
            let out = self.ns.check(&[
                "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link",
            ]);
            link_local = out
                .split_whitespace()
                .skip_while(|w| *w != "inet6")
                .nth(1)
                .and_then(|a| a.split('/').next())
                .unwrap_or("")
                .to_string();
            !link_local.is_empty()
        });
        assert!(
            found,
            "{}: no IPv6 link-local address on eth0",
            self.ns.name
        );
        link_local
    }

    /// Whether `count` IPv6 pings to `dst` (out of eth0 for a link-local
    /// one) all came back.
    pub fn ping6_ok(&self, dst: &str, count: u32) -> bool {
        let out = self.ns.run(&[
            "ping",
            "-6",
            "-c",
            &count.to_string(),
            "-i",
            "0.05",
            "-W",
            "1",
            "-q",
            "-I",
            "eth0",
            dst,
        ]);
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains(" 0% packet loss")
    }
}

/// Where the patchbay binaries are.
#[derive(Clone, Debug)]
pub struct Bins {
    pub patchbayd: PathBuf,
    pub patchbay: PathBuf,
}

impl Bins {
    /// The binaries next to the running executable (target/{debug,release}),
    /// or one directory up from it (tests run from target/*/deps).
    pub fn beside_current_exe() -> Bins {
        let exe = std::env::current_exe().expect("current exe");
        let mut dir = exe.parent().expect("exe dir").to_path_buf();
        if !dir.join("patchbayd").exists() {
            dir.pop();
        }
        Bins {
            patchbayd: dir.join("patchbayd"),
            patchbay: dir.join("patchbay"),
        }
    }
}

/// A running patchbayd, stopped (SIGTERM, then SIGKILL) on drop.
pub struct Daemon {
    child: Child,
    pub socket: PathBuf,
    log: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills it at once (SIGKILL), as a crash would end it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops it and returns its exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        // SAFETY: kill(2) of the child we started, by its PID.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A switch namespace and hosts wired to it.
pub struct Lab {
    pub tag: String,
    pub bins: Bins,
    // Field order is drop order: the daemon stops before namespaces go.
    pub daemon: Option<Daemon>,
    pub hosts: Vec<Host>,
    pub sw: Netns,
}

impl Lab {
    /// A switch namespace with `n` hosts h1..hn at 10.0.0.1..n/24, each on
    /// port p1..pn of the switch namespace. Offloads stay at the defaults.
    pub fn new(bins: Bins, n: usize) -> Lab {
        let tag = unique_tag();
        let sw = Netns::new(&format!("{tag}-sw"));
        let mut lab = Lab {
            tag,
            bins,
            daemon: None,
            hosts: Vec::new(),
            sw,
        };
        for i in 1..=n {
            lab.add_host(&format!("10.0.0.{i}/24"));
        }
        lab
    }

    /// Adds host h{k} with `addr` (CIDR) on a new port p{k}.
    pub fn add_host(&mut self, addr: &str) -> &Host {
        let k = self.hosts.len() + 1;
        let ns = Netns::new(&format!("{}-h{k}", self.tag));
        let port = format!("p{k}");
        let mac = self.wire(&ns, &port, addr);
        self.sw.check(&["ip", "link", "set", &port, "up"]);
        let ip = addr.split('/').next().unwrap_or(addr).to_string();
        self.hosts.push(Host {
            ns,
            port,
            ip,
            cidr: addr.to_string(),
            mac,
        });
        self.hosts.last().expect("just pushed")
    }

    /// A veth pair from `eth0` in `ns`, up with `addr` (CIDR), to `port`
    /// in the switch namespace, left down; returns eth0's MAC.
    fn wire(&self, ns: &Netns, port: &str, addr: &str) -> String {
        check(Command::new("ip").args([
            "link",
            "add",
            "eth0",
            "netns",
            &ns.name,
            "type",
            "veth",
            "peer",
            "name",
            port,
            "netns",
            &self.sw.name,
        ]));
        ns.check(&["ip", "addr", "add", addr, "dev", "eth0"]);
        ns.check(&["ip", "link", "set", "eth0", "up"]);
        ns.check(&["cat", "/sys/class/net/eth0/address"])
            .trim()
            .to_string()
    }

    /// Makes host `k`'s veth pair again, after its port's interface was
    /// deleted (which takes the host's end with it): the same names and
    /// address, the host's end up, the port's left down as the kernel
    /// makes it. The host's MAC is new.
    pub fn rewire_host(&mut self, k: usize) {
        let h = &self.hosts[k - 1];
        let mac = self.wire(&h.ns, &h.port, &h.cidr);
        self.hosts[k - 1].mac = mac;
    }

    /// Adds `n` hosts, h{k} at 10.{k}.0.2/24 on port p{k}, each with the
    /// default route via 10.{k}.0.1 (a router patchbay is to be).
    pub fn add_routed_hosts(&mut self, n: usize) {
        for k in 1..=n {
            self.add_host(&format!("10.{k}.0.2/24"));
            let h = self.hosts.last().expect("just added");
            h.ns.check(&[
                "ip",
                "route",
                "add",
                "default",
                "via",
                &format!("10.{k}.0.1"),
            ]);
        }
    }

    pub fn host(&self, k: usize) -> &Host {
        &self.hosts[k - 1]
    }

    /// Starts patchbayd in the switch namespace with `args` (e.g. the
    /// `--port`s) and waits until its socket answers.
    pub fn start_daemon(&mut self, args: &[&str]) -> &mut Daemon {
        let daemon = start_daemon(&self.sw, &self.bins, &self.tag, args);
        self.daemon = Some(daemon);
        self.daemon.as_mut().expect("just set")
    }

    /// `--port p1 --port p2 ...` for every host.
    pub fn port_args(&self) -> Vec<String> {
        self.hosts
            .iter()
            .flat_map(|h| ["--port".to_string(), h.port.clone()])
            .collect()
    }

    /// Runs the `patchbay` CLI against this lab's daemon.
    pub fn cli(&self, args: &[&str]) -> Output {
        let socket = &self.daemon.as_ref().expect("daemon started").socket;
        run(Command::new(&self.bins.patchbay)
            .arg("--socket")
            .arg(socket)
            .args(args))
    }

    /// Runs the CLI, which must succeed; returns its stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "patchbay {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs the CLI, which must fail with one line on stderr, starting
    /// "patchbay: " and containing `want`.
    pub fn cli_fails(&self, args: &[&str], want: &str) {
        let out = self.cli(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("patchbay: "), "{args:?}: {err}");
    }

    /// Frames port `port` dropped for `reason` (a drop reason's name).
    pub fn drops(&self, port: &str, reason: &str) -> u64 {
        let links = self.cli_json(&["link", "show"]);
        links["ports"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["name"] == port))
            .and_then(|p| p["drops_by_reason"][reason].as_u64())
            .unwrap_or(0)
    }

    /// Runs the CLI with `-j` and parses the JSON.
    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["-j"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.cli_ok(&a)).expect("JSON output")
    }
}

/// Whether a daemon answers a `version` request on `socket`: it is past
/// binding, chmod and starting its control thread.
fn answers(socket: &std::path::Path) -> bool {
    use std::io::{BufRead, Write};
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"{\"v\":1,\"op\":\"version\"}\n").is_err() {
        return false;
    }
    let mut line = String::new();
    std::io::BufReader::new(s).read_line(&mut line).is_ok() && line.contains("\"ok\":true")
}

/// Starts patchbayd in `ns` with `args` and a socket and log named after
/// `tag`, and waits until it answers on its socket.
pub fn start_daemon(ns: &Netns, bins: &Bins, tag: &str, args: &[&str]) -> Daemon {
    let socket = std::env::temp_dir().join(format!("{tag}.sock"));
    let log = std::env::temp_dir().join(format!("{tag}.log"));
    let logfile = std::fs::File::create(&log).expect("log file");
    let mut cmd = ns.command(&[bins.patchbayd.to_str().expect("utf-8 path")]);
    cmd.arg("--socket").arg(&socket);
    // Leases of its own, never the machine's: unless the test gives a path.
    if !args.contains(&"--dhcp-leases") {
        let leases = std::env::temp_dir().join(format!("{tag}.leases"));
        cmd.arg("--dhcp-leases").arg(leases);
    }
    cmd.args(args);
    let child = cmd
        .stdout(logfile.try_clone().expect("log fd"))
        .stderr(logfile)
        .spawn()
        .expect("start patchbayd");
    let mut daemon = Daemon { child, socket, log };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !answers(&daemon.socket) {
        assert!(daemon.alive(), "patchbayd exited: {}", daemon.log());
        assert!(
            Instant::now() < deadline,
            "patchbayd did not open its socket: {}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    daemon
}

/// Waits until `f` holds, for at most `timeout`.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether a program is on PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A tcpdump running in a namespace, writing a pcap file.
pub struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    /// Starts tcpdump on `iface` of `ns` with a capture `filter`, and waits
    /// until it is capturing.
    pub fn start(ns: &Netns, iface: &str, filter: &str) -> Capture {
        let file = std::env::temp_dir().join(format!(
            "{}-{iface}-{}.pcap",
            ns.name,
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let path = file.to_str().expect("utf-8 path");
        let child = ns
            .command(&[
                "tcpdump",
                "--immediate-mode",
                "-i",
                iface,
                "-n",
                "-U",
                "-w",
                path,
                filter,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tcpdump");
        let mut cap = Capture { child, file };
        // The pcap file header is written once the capture is live.
        let live = wait_for(Duration::from_secs(10), || {
            std::fs::metadata(&cap.file).is_ok_and(|m| m.len() >= 24)
        });
        assert!(live, "tcpdump did not start on {iface} in {}", ns.name);
        assert!(matches!(cap.child.try_wait(), Ok(None)), "tcpdump exited");
        cap
    }

    /// Stops the capture and returns tcpdump's one-line-per-packet reading of it.
    pub fn stop(mut self) -> Vec<String> {
        // Let frames in flight land: wait until the file stops growing
        // (at least 200 ms, at most 2 s).
        let size = |f: &PathBuf| std::fs::metadata(f).map_or(0, |m| m.len());
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut last = size(&self.file);
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let now = size(&self.file);
            if now == last || Instant::now() > deadline {
                break;
            }
            last = now;
        }
        // SAFETY: kill(2) of the tcpdump we started, by its PID.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
        let out = check(
            Command::new("tcpdump")
                .args(["-n", "-e", "-r"])
                .arg(&self.file),
        );
        out.lines().map(str::to_string).collect()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.file);
    }
}

/// Waits (up to 10 s) until something in `ns` listens on `proto` (tcp or
/// udp) `port`.
pub fn wait_listening(ns: &Netns, proto: &str, port: u16) {
    let flag = if proto == "udp" { "-Hlnu" } else { "-Hlnt" };
    let filter = format!("sport = :{port}");
    let listening = wait_for(Duration::from_secs(10), || {
        !ns.check(&["ss", flag, &filter]).trim().is_empty()
    });
    assert!(
        listening,
        "nothing listens on {proto} port {port} in {}",
        ns.name
    );
}

/// Runs `secs` seconds of iperf3 TCP from `client` to a one-shot server
/// started in `server` (reachable at `server_ip`); returns the bytes the
/// server received.
pub fn iperf3_bytes(client: &Netns, server: &Netns, server_ip: &str, secs: u32) -> f64 {
    server.check(&["iperf3", "-s", "-D", "-1"]);
    wait_listening(server, "tcp", 5201);
    let out = client.check(&["iperf3", "-c", server_ip, "-t", &secs.to_string(), "-J"]);
    let report: serde_json::Value = serde_json::from_str(&out).expect("iperf3 JSON");
    report["end"]["sum_received"]["bytes"]
        .as_f64()
        .unwrap_or(0.0)
}

/// An underlay for VXLAN between two sites: a veth pair `und`, 10.200.0.1
/// in `a` and 10.200.0.2 in `b`, MTU 1600 (so that hosts over the tunnel
/// keep 1500).
pub fn vxlan_underlay(a: &Netns, b: &Netns) {
    check(Command::new("ip").args([
        "link", "add", "und", "netns", &a.name, "type", "veth", "peer", "name", "und", "netns",
        &b.name,
    ]));
    for (ns, ip) in [(a, "10.200.0.1/24"), (b, "10.200.0.2/24")] {
        ns.check(&["ip", "addr", "add", ip, "dev", "und"]);
        ns.check(&["ip", "link", "set", "und", "mtu", "1600", "up"]);
    }
}

/// `patchbay link add vx0 type vxlan id 42 local LOCAL remote REMOTE
/// dstport 4789 master br0`, as the CLI's words.
pub fn vx0_args<'a>(local: &'a str, remote: &'a str) -> [&'a str; 15] {
    [
        "link", "add", "vx0", "type", "vxlan", "id", "42", "local", local, "remote", remote,
        "dstport", "4789", "master", "br0",
    ]
}

/// A kernel VTEP in `site`: `vxk` (VNI 42, from `local` to `remote`, UDP
/// 4789, over `und`) in a kernel bridge `brk` with `ports`, all up.
pub fn kernel_vtep(site: &Netns, local: &str, remote: &str, ports: &[&str]) {
    site.check(&[
        "ip", "link", "add", "vxk", "type", "vxlan", "id", "42", "local", local, "remote", remote,
        "dstport", "4789", "dev", "und",
    ]);
    site.check(&["ip", "link", "add", "brk", "type", "bridge"]);
    for p in ports.iter().chain(&["vxk"]) {
        site.check(&["ip", "link", "set", p, "master", "brk"]);
        site.check(&["ip", "link", "set", p, "up"]);
    }
    site.check(&["ip", "link", "set", "brk", "up"]);
}
