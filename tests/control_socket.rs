//! The control socket under bad clients: garbage, oversized, half-sent and
//! slow requests get an error or are dropped, and never block other clients.

use patchbay_tools::{Bins, Lab};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

fn bins() -> Bins {
    Bins {
        patchbayd: env!("CARGO_BIN_EXE_patchbayd").into(),
        patchbay: env!("CARGO_BIN_EXE_patchbay").into(),
    }
}

fn lab() -> Lab {
    let mut lab = Lab::new(bins(), 1);
    lab.start_daemon(&["--port", "p1"]);
    lab
}

fn connect(lab: &Lab) -> (UnixStream, BufReader<UnixStream>) {
    let s = UnixStream::connect(&lab.daemon.as_ref().unwrap().socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let r = BufReader::new(s.try_clone().unwrap());
    (s, r)
}

fn ask(w: &mut UnixStream, r: &mut BufReader<UnixStream>, line: &[u8]) -> serde_json::Value {
    w.write_all(line).unwrap();
    let mut reply = String::new();
    r.read_line(&mut reply).expect("reply");
    serde_json::from_str(&reply).expect("JSON reply")
}

#[test]
fn socket_is_owner_only() {
    let lab = lab();
    let mode = std::fs::metadata(&lab.daemon.as_ref().unwrap().socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn socket_can_be_given_to_a_group() {
    use std::os::unix::fs::MetadataExt;
    let mut lab = Lab::new(bins(), 1);
    // The group "adm" (or any other than root's) may use it: mode 0660.
    let group = std::fs::read_to_string("/etc/group")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2] != "0").then(|| (f[0].to_string(), f[2].parse::<u32>().ok()))
        })
        .and_then(|(name, gid)| Some((name, gid?)));
    let Some((name, gid)) = group else {
        return;
    };
    lab.start_daemon(&["--port", "p1", "--socket-group", &name]);
    let meta = std::fs::metadata(&lab.daemon.as_ref().unwrap().socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), gid);
    lab.cli_ok(&["link", "show"]);
}

#[test]
fn garbage_gets_structured_errors_and_the_connection_goes_on() {
    let lab = lab();
    let (mut w, mut r) = connect(&lab);
    let reply = ask(&mut w, &mut r, b"this is not json\n");
    assert_eq!(reply["ok"], false);
    assert_eq!(reply["error"]["code"], "bad_request");
    let reply = ask(&mut w, &mut r, b"{\"v\":7,\"op\":\"stats\"}\n");
    assert_eq!(reply["error"]["code"], "bad_version");
    let reply = ask(
        &mut w,
        &mut r,
        b"{\"v\":1,\"op\":\"fdb_add\",\"mac\":\"x\",\"dev\":\"p1\"}\n",
    );
    assert_eq!(reply["error"]["code"], "bad_request");
    let reply = ask(
        &mut w,
        &mut r,
        b"{\"v\":1,\"op\":\"link_del\",\"name\":\"nope\"}\n",
    );
    assert_eq!(reply["error"]["code"], "not_found");
    let reply = ask(&mut w, &mut r, b"{\"v\":1,\"op\":\"link_show\"}\n");
    assert_eq!(reply["ok"], true);
    assert_eq!(reply["result"]["ports"][0]["name"], "p1");
}

#[test]
fn oversized_half_sent_and_slow_clients_do_not_block_others() {
    let lab = lab();
    // A client that sends half a request and then nothing.
    let (mut slow, _slow_r) = connect(&lab);
    slow.write_all(b"{\"v\":1,\"op\":").unwrap();
    // A client that sends more than the limit without a newline.
    let (mut big, mut big_r) = connect(&lab);
    let chunk = vec![b'x'; patchbay_control::api::MAX_REQUEST_BYTES + 4096];
    let _ = big.write_all(&chunk);
    let mut reply = String::new();
    big_r.read_line(&mut reply).expect("oversized reply");
    assert!(reply.contains("byte limit"), "{reply}");
    // Meanwhile a well-behaved client is served at once.
    let start = Instant::now();
    for _ in 0..20 {
        lab.cli_ok(&["link", "show"]);
    }
    assert!(start.elapsed() < Duration::from_secs(10));
    // A client that hangs up mid-request changes nothing.
    drop(slow);
    let (mut w, mut r) = connect(&lab);
    assert_eq!(
        ask(&mut w, &mut r, b"{\"v\":1,\"op\":\"version\"}\n")["result"]["protocol"],
        1
    );
}

#[test]
fn many_clients_at_once() {
    let lab = lab();
    let socket = lab.daemon.as_ref().unwrap().socket.clone();
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let s = UnixStream::connect(&socket).unwrap();
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut w = s;
                for _ in 0..50 {
                    let reply = ask(&mut w, &mut r, b"{\"v\":1,\"op\":\"stats\"}\n");
                    assert_eq!(reply["ok"], true);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Runs patchbayd in `lab`'s switch namespace with `args`, for at most 5 s;
/// returns its exit status (`None`: still running, so stopped) and stderr.
fn run_daemon(lab: &Lab, args: &[&str]) -> (Option<std::process::ExitStatus>, String) {
    use std::io::Read;
    let mut all = vec![lab.bins.patchbayd.to_str().unwrap()];
    all.extend_from_slice(args);
    let mut child = lab.sw.spawn(&all);
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    (status, err)
}

#[test]
fn a_socket_path_that_is_not_a_socket_is_refused_and_left_alone() {
    let lab = Lab::new(bins(), 1);
    let path = std::env::temp_dir().join(format!("{}-notes.txt", lab.tag));
    std::fs::write(&path, "not a socket\n").unwrap();
    let (status, err) = run_daemon(&lab, &["--socket", path.to_str().unwrap(), "--port", "p1"]);
    let content = std::fs::read_to_string(&path);
    let _ = std::fs::remove_file(&path);
    assert!(status.is_some_and(|s| !s.success()), "{status:?}: {err}");
    assert!(
        err.contains(path.to_str().unwrap()) && err.contains("not a socket"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(content.ok().as_deref(), Some("not a socket\n"), "{err}");
}

#[test]
fn a_stale_socket_is_replaced() {
    let mut lab = Lab::new(bins(), 1);
    // A socket file nobody listens on, as a daemon that was killed leaves.
    let stale = std::env::temp_dir().join(format!("{}.sock", lab.tag));
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    // A child that another test forks meanwhile may hold the listener for
    // a moment, until it execs.
    let refused = patchbay_tools::wait_for(Duration::from_secs(5), || {
        UnixStream::connect(&stale).is_err()
    });
    assert!(refused, "the stale socket still answers");
    lab.start_daemon(&["--port", "p1"]);
    lab.cli_ok(&["link", "show"]);
}

#[test]
fn patchbayd_removes_its_socket_at_exit_but_nothing_else() {
    let mut lab = Lab::new(bins(), 1);
    let socket = lab.start_daemon(&["--port", "p1"]).socket.clone();
    let mut daemon = lab.daemon.take().unwrap();
    assert!(daemon.stop().is_some_and(|s| s.success()));
    assert!(!socket.exists(), "its own socket goes with it");
    drop(daemon);

    // Its socket was replaced meanwhile (by hand, or by another daemon):
    // what is there now is not patchbayd's to remove.
    lab.start_daemon(&["--port", "p1"]);
    std::fs::remove_file(&socket).unwrap();
    std::fs::write(&socket, "someone else's\n").unwrap();
    let daemon = lab.daemon.as_mut().unwrap();
    assert!(daemon.stop().is_some_and(|s| s.success()));
    let content = std::fs::read_to_string(&socket);
    assert_eq!(content.ok().as_deref(), Some("someone else's\n"));
}

/// Connections that connect and say nothing.
fn idle_clients(socket: &std::path::Path, n: usize) -> Vec<UnixStream> {
    (0..n)
        .map(|_| UnixStream::connect(socket).expect("connect"))
        .collect()
}

/// How long a `link show` takes; it must succeed.
fn link_show_time(lab: &Lab) -> Duration {
    let start = Instant::now();
    lab.cli_ok(&["link", "show"]);
    start.elapsed()
}

#[test]
fn idle_and_stalled_clients_do_not_lock_others_out() {
    let lab = lab();
    let socket = lab.daemon.as_ref().unwrap().socket.clone();
    let _idle = idle_clients(&socket, 64);
    // And a few that send half a request and stall.
    let _stalled: Vec<UnixStream> = (0..4)
        .map(|_| {
            let mut s = UnixStream::connect(&socket).unwrap();
            s.write_all(b"{\"v\":1,\"op\":").unwrap();
            s
        })
        .collect();
    for _ in 0..3 {
        let took = link_show_time(&lab);
        assert!(took < Duration::from_secs(2), "link show took {took:?}");
    }
}

#[test]
fn at_the_limit_the_longest_idle_client_makes_room() {
    use patchbay_control::api::Request;
    use patchbay_control::client::Client;
    use patchbay_control::server::MAX_CLIENTS;
    let lab = lab();
    let socket = lab.daemon.as_ref().unwrap().socket.clone();
    // A capture streams on its connection, never idle, however long.
    let (mut cap, mut cap_r) = connect(&lab);
    let reply = ask(
        &mut cap,
        &mut cap_r,
        b"{\"v\":1,\"op\":\"capture\",\"port\":\"p1\",\"count\":1}\n",
    );
    assert_eq!(reply["ok"], true, "{reply}");
    // A library client that asked once and then waits: the longest idle.
    let mut client = Client::connect(&socket).unwrap();
    client.call(Request::Version).unwrap();
    let (mut first, mut first_r) = connect(&lab);
    assert_eq!(
        ask(&mut first, &mut first_r, b"{\"v\":1,\"op\":\"version\"}\n")["ok"],
        true
    );
    let _idle = idle_clients(&socket, MAX_CLIENTS);
    let took = link_show_time(&lab);
    assert!(took < Duration::from_secs(2), "link show took {took:?}");
    // The client made room: its library connects again, unseen.
    let v = client
        .call(Request::Version)
        .expect("version after its connection was closed");
    assert_eq!(v["protocol"], 1);
    // A raw client is told why its connection closed.
    let mut notice = String::new();
    first_r.read_line(&mut notice).unwrap();
    let notice: serde_json::Value = serde_json::from_str(&notice).expect("JSON notice");
    assert_eq!(notice["error"]["code"], "idle", "{notice}");
    // The capture still streams: a frame on p1 reaches it.
    lab.host(1).ping("10.0.0.99", 1);
    let mut header = [0u8; 24];
    std::io::Read::read_exact(&mut cap_r, &mut header).expect("pcap header");
    let mut record = [0u8; 16];
    std::io::Read::read_exact(&mut cap_r, &mut record).expect("a captured frame");
}

#[test]
fn an_idle_connection_is_closed_and_the_client_library_connects_again() {
    use patchbay_control::api::Request;
    use patchbay_control::client::Client;
    use patchbay_control::server::IDLE_TIMEOUT;
    let lab = lab();
    let socket = lab.daemon.as_ref().unwrap().socket.clone();
    let mut client = Client::connect(&socket).unwrap();
    client.call(Request::Version).unwrap();
    let (_w, mut r) = connect(&lab);
    std::thread::sleep(IDLE_TIMEOUT + Duration::from_millis(500));
    let mut notice = String::new();
    r.read_line(&mut notice).unwrap();
    assert!(notice.contains("\"idle\""), "{notice}");
    assert_eq!(r.read_line(&mut notice).unwrap(), 0, "then closed");
    client
        .call(Request::Version)
        .expect("version on a new connection");
}
