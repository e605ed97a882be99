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
