//! The control socket server inside `patchbayd`.
//!
//! One thread accepts connections; each client gets a thread of its own (at
//! most [`MAX_CLIENTS`] at once), so a slow or stuck client never holds up
//! another, and none of them ever holds up the data plane: requests become
//! short jobs on the engine, and slow work (opening a port's ring) is done
//! here before the job is sent. A connection that waits for its next
//! request is closed after [`IDLE_TIMEOUT`], or sooner when its place is
//! needed by a new client (see [`clients`]); it is told so first, and
//! [`crate::client::Client`] connects again by itself.

mod clients;

use crate::api::{
    self, ApiError, ErrorCode, LinkKind, LinkShow, Request, Response, MAX_REQUEST_BYTES,
};
use crate::apply::{self, Summary};
use crate::config;
use clients::{Clients, Place};
use patchbay_dataplane::capture;
use patchbay_dataplane::ip4::{FibError, Ipv4Net, RouterError};
use patchbay_dataplane::pipeline::{
    name_at, EngineHandle, RouteFilter, RunningSnapshot, Switch, SwitchError,
};
use patchbay_dataplane::port::{self, PortError, PortKind, PortOptions};
use patchbay_dataplane::trace::{self, Described, Event, Filter};
use serde_json::{json, Value};
use std::io::{self, BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connections served at once. At the limit, the one idle longest is closed
/// to make room for a new one; only when all are at work is a new one told
/// to retry.
pub const MAX_CLIENTS: usize = 256;
/// How long a connection may wait for its next request (or its first).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// A request must arrive whole within this time of its first byte, and a
/// response must be taken within it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound control socket.
pub struct Server {
    listener: UnixListener,
    file: SocketFile,
}

/// The socket file a [`Server`] bound. Removed on drop, but only while the
/// path still names that file: one put there since (by hand, or by a
/// daemon started after ours lost its socket) is not ours to remove.
pub struct SocketFile {
    path: PathBuf,
    /// Device and inode of the socket that was bound.
    id: (u64, u64),
}

impl SocketFile {
    fn id(meta: &std::fs::Metadata) -> (u64, u64) {
        use std::os::unix::fs::MetadataExt;
        (meta.dev(), meta.ino())
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours =
            std::fs::symlink_metadata(&self.path).is_ok_and(|m| SocketFile::id(&m) == self.id);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Server {
    /// Binds the socket at `path`, owner-only (0600), or owner and `group`
    /// (0660) if given. A socket file nobody answers on (left by a dead
    /// daemon) is replaced; a live daemon's is not, and neither is anything
    /// that is not a socket.
    pub fn bind(path: &Path, group: Option<&str>) -> anyhow::Result<Server> {
        use anyhow::Context;
        use std::os::unix::fs::FileTypeExt;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        // The file itself, not what a symbolic link points to: a link is
        // not a socket either.
        match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("--socket {}", path.display())),
            Ok(meta) if !meta.file_type().is_socket() => anyhow::bail!(
                "--socket {}: exists and is not a socket; patchbayd replaces only a socket \
                 nobody listens on: move the file away or pick another --socket",
                path.display()
            ),
            Ok(_) if UnixStream::connect(path).is_ok() => anyhow::bail!(
                "--socket {}: another patchbayd is listening there; stop it or pick another \
                 --socket",
                path.display()
            ),
            Ok(_) => std::fs::remove_file(path)
                .with_context(|| format!("removing stale socket {}", path.display()))?,
        }
        let listener =
            UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
        let meta = std::fs::symlink_metadata(path)
            .with_context(|| format!("binding {}", path.display()))?;
        // From here on, an error removes the socket again.
        let file = SocketFile {
            path: path.to_path_buf(),
            id: SocketFile::id(&meta),
        };
        let gid = group.map(group_id).transpose()?;
        let mode = if gid.is_some() { 0o660 } else { 0o600 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("chmod {mode:o} {}", path.display()))?;
        if let Some(gid) = gid {
            std::os::unix::fs::chown(path, None, Some(gid))
                .with_context(|| format!("chgrp {gid} {}", path.display()))?;
        }
        Ok(Server { listener, file })
    }

    /// Serves clients on a background thread until the process exits.
    /// The socket file is handed back: dropping it removes it.
    pub fn spawn(self, engine: EngineHandle, opts: PortOptions) -> io::Result<SocketFile> {
        let Server { listener, file } = self;
        std::thread::Builder::new()
            .name("control".into())
            .spawn(move || serve(listener, engine, opts))?;
        Ok(file)
    }
}

/// Accepts clients, each served on a thread of its own.
fn serve(listener: UnixListener, engine: EngineHandle, opts: PortOptions) {
    let clients = Clients::new(MAX_CLIENTS);
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => Arc::new(s),
            Err(e) => {
                log::warn!("control: accept: {e}");
                // Out of descriptors, say: give the clients time to go.
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let Some(place) = clients.admit(&stream) else {
            let busy = ApiError::new(
                ErrorCode::Unavailable,
                format!("{MAX_CLIENTS} clients are at work; try again"),
            );
            let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
            let _ = write_response(&stream, Err(busy));
            continue;
        };
        let (engine, opts) = (engine.clone(), opts.clone());
        // The place is given back when the closure is dropped: after the
        // client is served, if the thread panics, or if it never starts.
        let spawned = std::thread::Builder::new()
            .name("client".into())
            .spawn(move || {
                if let Err(e) = serve_client(&stream, &place, &engine, &opts) {
                    log::debug!("control: client: {e}");
                }
                drop(place);
            });
        if let Err(e) = spawned {
            log::warn!("control: cannot start a client thread: {e}");
        }
    }
}

/// A group's id: a number, or a name from /etc/group.
fn group_id(group: &str) -> anyhow::Result<u32> {
    if let Ok(gid) = group.parse() {
        return Ok(gid);
    }
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    groups
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            Some((f.next()?, f.nth(1)?))
        })
        .find(|(name, _)| *name == group)
        .and_then(|(_, gid)| gid.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("--socket-group: no group '{group}' in /etc/group"))
}

fn write_response(mut stream: &UnixStream, r: Result<Value, ApiError>) -> io::Result<()> {
    let mut line = serde_json::to_vec(&Response::from(r)).expect("responses serialize");
    line.push(b'\n');
    stream.write_all(&line)
}

/// What reading one request line gave.
enum Line {
    Request,
    /// The client closed the connection between requests.
    Closed,
    /// Over [`MAX_REQUEST_BYTES`], or cut off by the end of the connection.
    Bad(String),
}

/// Reads one request line into `line`, which must arrive whole before
/// `deadline` however the client spreads its bytes.
fn read_line(
    reader: &mut BufReader<&UnixStream>,
    line: &mut Vec<u8>,
    deadline: Instant,
) -> io::Result<Line> {
    line.clear();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request not complete in time",
            ));
        }
        reader.get_ref().set_read_timeout(Some(left))?;
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Ok(if line.is_empty() {
                Line::Closed
            } else {
                Line::Bad("request ended without a newline".into())
            });
        }
        let (take, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        line.extend_from_slice(&available[..take]);
        reader.consume(take);
        if line.len() > MAX_REQUEST_BYTES {
            return Ok(Line::Bad(format!(
                "request is over the {MAX_REQUEST_BYTES}-byte limit"
            )));
        }
        if done {
            return Ok(Line::Request);
        }
    }
}

/// What waiting for the next request gave.
enum Wait {
    /// Its first bytes are here.
    Request,
    /// The client hung up.
    HungUp,
    /// The connection is to be closed, for this reason.
    Closed(String),
}

/// Waits, idle, for the first byte of the next request.
fn wait_for_request(reader: &mut BufReader<&UnixStream>, place: &Place) -> io::Result<Wait> {
    place.idle();
    reader.get_ref().set_read_timeout(Some(IDLE_TIMEOUT))?;
    let waited = reader.fill_buf().map(|b| !b.is_empty());
    // Whatever came, it is not served on a connection whose place was
    // given to a newcomer meanwhile: its client is told to connect again.
    if !place.busy() {
        return Ok(Wait::Closed(format!(
            "closed while idle to make room for a new client (at most {MAX_CLIENTS}); nothing \
             sent on it was read: connect again"
        )));
    }
    match waited {
        Ok(true) => Ok(Wait::Request),
        Ok(false) => Ok(Wait::HungUp),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Ok(Wait::Closed(format!(
                "closed after {} s idle; connect again",
                IDLE_TIMEOUT.as_secs()
            )))
        }
        Err(e) => Err(e),
    }
}

fn serve_client(
    stream: &UnixStream,
    place: &Place,
    engine: &EngineHandle,
    opts: &PortOptions,
) -> io::Result<()> {
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        // Requests sent back to back are read without waiting.
        if reader.buffer().is_empty() {
            match wait_for_request(&mut reader, place)? {
                Wait::Request => {}
                Wait::HungUp => return Ok(()),
                Wait::Closed(why) => {
                    return write_response(stream, Err(ApiError::new(ErrorCode::Idle, why)));
                }
            }
        }
        match read_line(&mut reader, &mut line, Instant::now() + REQUEST_TIMEOUT)? {
            Line::Closed => return Ok(()),
            Line::Bad(why) => {
                write_response(stream, Err(ApiError::new(ErrorCode::BadRequest, why)))?;
                return Ok(());
            }
            Line::Request => match api::parse_request(&line) {
                Ok(Request::Capture {
                    port,
                    dir,
                    count,
                    snaplen,
                    filter,
                }) => {
                    let spec = CaptureSpec {
                        port,
                        dir,
                        count,
                        snaplen,
                        filter,
                    };
                    // The connection carries the pcap stream to its end,
                    // at work (never idle) all along.
                    return serve_capture(reader, engine, spec);
                }
                parsed => {
                    let result = parsed.and_then(|req| handle(req, engine, opts));
                    write_response(stream, result)?;
                }
            },
        }
    }
}

/// What a `capture` request asks for.
struct CaptureSpec {
    port: String,
    dir: Option<String>,
    count: Option<u64>,
    snaplen: Option<usize>,
    filter: Option<String>,
}

/// Streams a capture to the client as pcap, until its count is reached, the
/// port goes or the client hangs up. A slow client only loses captured
/// frames (counted), never traffic.
fn serve_capture(
    reader: BufReader<&UnixStream>,
    engine: &EngineHandle,
    spec: CaptureSpec,
) -> io::Result<()> {
    let writer = *reader.get_ref();
    let invalid = |m: String| ApiError::new(ErrorCode::Invalid, m);
    let dirs = match spec.dir.as_deref().unwrap_or("both") {
        "rx" | "in" => Ok((true, false)),
        "tx" | "out" => Ok((false, true)),
        "both" => Ok((true, true)),
        d => Err(invalid(format!(
            "capture: direction is rx, tx or both, not '{d}'"
        ))),
    };
    let filter = Filter::parse(spec.filter.as_deref().unwrap_or("")).map_err(invalid);
    let dirs = match spec.count {
        Some(0) => Err(invalid("capture: count must be at least 1".into())),
        _ => dirs,
    };
    let started = dirs.and_then(|dirs| {
        let filter = filter?;
        // As tcpdump: 0 is the whole frame.
        let snaplen = match spec.snaplen {
            None | Some(0) => capture::DEFAULT_SNAPLEN,
            Some(n) if n < capture::MIN_SNAPLEN => {
                return Err(invalid(format!(
                    "snaplen {n}: at least {} bytes (0: the whole frame)",
                    capture::MIN_SNAPLEN
                )))
            }
            Some(n) => n,
        };
        // The buffers are allocated here, not on the forwarding thread.
        let (tap, handle) = capture::tap(dirs, filter, snaplen, spec.count);
        let port = spec.port.clone();
        let id = engine
            .call(move |sw| sw.capture_attach(&port, tap))
            .map_err(|_| stopped())?
            .map_err(switch_error)?;
        Ok((id, handle))
    });
    let (id, handle) = match started {
        Ok(h) => h,
        Err(e) => return write_response(writer, Err(e)),
    };
    let result = write_response(
        writer,
        Ok(json!({ "capture": id, "format": "pcap", "snaplen": handle.snaplen })),
    )
    .and_then(|()| stream_pcap(writer, reader, &handle));
    // However the stream ended, the capture ends with it.
    let _ = engine.call(move |sw| sw.capture_stop(id));
    let counters = &handle.counters;
    log::info!(
        op = "capture_end", id, captured = counters.captured.load(Ordering::Relaxed),
        dropped = counters.dropped.load(Ordering::Relaxed);
        "capture {id} of {} ended", spec.port
    );
    result
}

fn stream_pcap(
    mut writer: &UnixStream,
    mut reader: BufReader<&UnixStream>,
    handle: &capture::TapHandle,
) -> io::Result<()> {
    use crossbeam_channel::RecvTimeoutError;
    writer.write_all(&capture::pcap_header(handle.snaplen))?;
    let mut out = Vec::with_capacity(64 * 1024);
    // A client that hangs up while no frame comes is noticed here.
    // (A read timeout, not O_NONBLOCK: that would make writes fail too.)
    reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(1)))?;
    loop {
        match handle.frames.recv_timeout(Duration::from_millis(500)) {
            Ok(c) => {
                capture::pcap_record(&c, &mut out);
                let _ = handle.free.try_send(c.data);
                // Take what else is waiting, then write it in one go.
                while out.len() < 60 * 1024 {
                    let Ok(c) = handle.frames.try_recv() else {
                        break;
                    };
                    capture::pcap_record(&c, &mut out);
                    let _ = handle.free.try_send(c.data);
                }
                writer.write_all(&out)?;
                out.clear();
            }
            Err(RecvTimeoutError::Timeout) => {
                let mut byte = [0u8; 1];
                match std::io::Read::read(reader.get_mut(), &mut byte) {
                    Ok(0) => return Ok(()),
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) => {}
                    Ok(_) => {}
                    Err(e) => return Err(e),
                }
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
}

/// A route of a `route load` text: (line number, prefix, gateway, bridge).
type RouteLine = (u64, Ipv4Net, Option<Ipv4Addr>, Option<String>);

/// Parses `route load` text, every line before any is used.
fn parse_route_lines(text: &str, first_line: u64) -> Result<Vec<RouteLine>, ApiError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = first_line.max(1) + i as u64;
        let words: Vec<&str> = raw
            .split('#')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        if words.is_empty() {
            continue;
        }
        let bad = |why: String| ApiError::new(ErrorCode::BadRequest, format!("line {line}: {why}"));
        let dst: Ipv4Net = words[0].parse().map_err(|e| bad(format!("{e}")))?;
        if dst.addr != dst.network() {
            return Err(bad(format!(
                "{dst}: host bits are set (the prefix is {})",
                dst.subnet()
            )));
        }
        let (mut via, mut dev) = (None, None);
        let mut w = words[1..].iter();
        while let Some(k) = w.next() {
            match *k {
                "via" => {
                    let a = w
                        .next()
                        .ok_or_else(|| bad("'via' needs a gateway address".into()))?;
                    via = Some(
                        a.parse()
                            .map_err(|_| bad(format!("'{a}' is not an IPv4 address")))?,
                    );
                }
                "dev" => {
                    let d = w
                        .next()
                        .ok_or_else(|| bad("'dev' needs a bridge name".into()))?;
                    dev = Some(d.to_string());
                }
                other => {
                    return Err(bad(format!(
                        "unexpected '{other}' (PREFIX via GATEWAY [dev BRIDGE])"
                    )))
                }
            }
        }
        if via.is_none() && dev.is_none() {
            return Err(bad("give 'via GATEWAY' or 'dev BRIDGE'".into()));
        }
        out.push((line, dst, via, dev));
    }
    Ok(out)
}

fn switch_error(e: SwitchError) -> ApiError {
    let code = match &e {
        SwitchError::Exists(_) => ErrorCode::Exists,
        SwitchError::NoSuchPort(_)
        | SwitchError::NoSuchBridge(_)
        | SwitchError::NoSuchLink(_)
        | SwitchError::NoSuchEntry { .. } => ErrorCode::NotFound,
        SwitchError::Poll { .. } => ErrorCode::System,
        SwitchError::NoSuchNatRule(_) => ErrorCode::NotFound,
        SwitchError::Router(RouterError::NoSuchAddr(_) | RouterError::NoSuchNeighbor(_))
        | SwitchError::Router(RouterError::Fib(FibError::NoSuchRoute(..))) => ErrorCode::NotFound,
        SwitchError::Router(RouterError::AddrExists(_)) | SwitchError::SubnetElsewhere { .. } => {
            ErrorCode::Exists
        }
        _ => ErrorCode::Invalid,
    };
    ApiError::new(code, e.to_string())
}

fn port_error(e: PortError) -> ApiError {
    let code = match &e {
        PortError::NoSuchInterface(_) => ErrorCode::NotFound,
        PortError::BadName(_) | PortError::NotEthernet(_) | PortError::NotTap(_) => {
            ErrorCode::Invalid
        }
        PortError::Os { .. } => ErrorCode::System,
    };
    ApiError::new(code, e.to_string())
}

/// `via GW dev BR` or `dev BR`.
fn route_words(r: &patchbay_dataplane::pipeline::RouteInfo) -> String {
    match r.via {
        Some(v) => format!("via {v} dev {}", r.dev),
        None => format!("dev {}", r.dev),
    }
}

fn no_such_bridge(name: &str) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("{name}: no such bridge"))
}

fn stopped() -> ApiError {
    ApiError::new(ErrorCode::Unavailable, "the forwarding engine has stopped")
}

fn to_value<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).expect("results serialize")
}

/// Held by every request that changes state, so that an `apply` compares
/// and changes a state no other client changes meanwhile.
static CHANGES: Mutex<()> = Mutex::new(());

/// Whether a request only reads.
fn reads_only(req: &Request) -> bool {
    matches!(
        req,
        Request::Version
            | Request::LinkShow { .. }
            | Request::Stats
            | Request::FdbShow { .. }
            | Request::NatShow
            | Request::NatSessions
            | Request::AddrShow { .. }
            | Request::RouteShow { .. }
            | Request::RouteGet { .. }
            | Request::NeighShow { .. }
            | Request::Save
            | Request::TraceShow
            | Request::TracePacket { .. }
            | Request::Capture { .. }
            | Request::Apply { dry_run: true, .. }
    )
}

/// Port and bridge names by id, as [`Switch::names`] gives them.
type Names = (Vec<Option<String>>, Vec<Option<String>>);

fn name_of(names: &[Option<String>], id: usize) -> String {
    name_at(names, id).map_or_else(|| format!("#{id}"), str::to_string)
}

/// Trace events in words.
fn describe(events: &[Event], names: &Names, dry: bool) -> Vec<String> {
    let port = |p: u16| name_of(&names.0, usize::from(p));
    let bridge = |b: u16| name_of(&names.1, usize::from(b));
    events
        .iter()
        .map(|event| {
            Described {
                event,
                port: &port,
                bridge: &bridge,
                dry,
            }
            .to_string()
        })
        .collect()
}

/// The outcome of a dry-run trace, in a line.
fn verdict(events: &[Event], names: &Names) -> String {
    let out: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::Tx { port } => Some(name_of(&names.0, usize::from(*port))),
            _ => None,
        })
        .collect();
    let dropped = events.iter().find_map(|e| match e {
        Event::Drop { reason } => Some(*reason),
        _ => None,
    });
    let routed = events.iter().any(|e| {
        matches!(
            e,
            Event::L2 {
                out: trace::L2Out::Router,
                ..
            }
        )
    });
    match (dropped, out.is_empty(), routed) {
        (Some(r), _, _) => format!("dropped: {} ({})", r.name(), r.help()),
        (None, false, _) => format!("would leave by {}", out.join(", ")),
        (None, true, true) => "taken by the router (answered, or waiting for ARP)".to_string(),
        (None, true, false) => "goes nowhere: no other port of the bridge to take it".to_string(),
    }
}

/// Copies the running state on the forwarding thread (the pause is logged
/// at debug level).
fn snapshot(sw: &mut Switch) -> RunningSnapshot {
    let start = Instant::now();
    let snap = sw.running_snapshot();
    log::debug!("running state copied in {:?}", start.elapsed());
    snap
}

/// Applies a config text to the running daemon (see [`crate::apply`]).
pub fn apply_config(
    engine: &EngineHandle,
    opts: &PortOptions,
    file: &str,
    text: &str,
    dry_run: bool,
) -> Result<Summary, ApiError> {
    let invalid = |e: apply::ApplyError| ApiError::new(ErrorCode::Invalid, e.to_string());
    let want = config::parse(file, text).map_err(|e| invalid(e.into()))?;
    let running = engine.call(snapshot).map_err(|_| stopped())?.finish();
    apply::apply_parsed(
        file,
        &want,
        running,
        opts,
        dry_run,
        |steps, ports, before| {
            engine
                .call(move |sw| apply::execute(sw, steps, ports, &before))
                .unwrap_or_else(|_| apply::Outcome {
                    result: Err("the forwarding engine has stopped".into()),
                    ports: Vec::new(),
                    elapsed: Default::default(),
                })
        },
    )
    .map_err(invalid)
}

/// Carries out one request.
pub fn handle(req: Request, engine: &EngineHandle, opts: &PortOptions) -> Result<Value, ApiError> {
    let _changing = (!reads_only(&req)).then(|| CHANGES.lock().unwrap_or_else(|e| e.into_inner()));
    // Runs a switch operation on the engine and maps its error.
    macro_rules! on_switch {
        (|$sw:ident| $body:expr) => {
            engine
                .call(move |$sw| $body.map_err(switch_error))
                .map_err(|_| stopped())??
        };
    }
    match req {
        Request::Apply {
            text,
            file,
            dry_run,
        } => {
            let file = file.as_deref().unwrap_or("<apply>");
            Ok(to_value(apply_config(engine, opts, file, &text, dry_run)?))
        }
        Request::Save => {
            let state = engine.call(snapshot).map_err(|_| stopped())?.finish();
            let rx_ring_mib = opts.rx_ring_mib as u32;
            Ok(json!({ "text": config::to_toml(&state, rx_ring_mib) }))
        }
        Request::TraceStart {
            count,
            port,
            filter,
        } => {
            let filter = Filter::parse(filter.as_deref().unwrap_or(""))
                .map_err(|e| ApiError::new(ErrorCode::Invalid, e))?;
            let count = count.unwrap_or(50);
            if count == 0 || count > trace::MAX_PACKETS {
                return Err(ApiError::new(
                    ErrorCode::Invalid,
                    format!("trace: count must be between 1 and {}", trace::MAX_PACKETS),
                ));
            }
            on_switch!(|sw| sw.trace_start(count, port.as_deref(), filter));
            Ok(Value::Null)
        }
        Request::Capture { .. } => Err(ApiError::new(
            ErrorCode::BadRequest,
            "capture streams pcap on its own connection; send it as a socket request",
        )),
        Request::TraceStop => {
            engine.call(|sw| sw.trace_stop()).map_err(|_| stopped())?;
            Ok(Value::Null)
        }
        Request::TraceShow => {
            let ((armed, left, packets), names) = engine
                .call(|sw| (sw.trace_read(), sw.names()))
                .map_err(|_| stopped())?;
            let packets: Vec<Value> = packets
                .iter()
                .map(|p| {
                    json!({
                        "number": p.number,
                        "at_us": p.at_us,
                        "events": p.events,
                        "lines": describe(&p.events, &names, false),
                        "truncated": p.truncated,
                    })
                })
                .collect();
            // Events name ports and bridges by id: the names, by id.
            Ok(json!({
                "armed": armed,
                "left": left,
                "packets": packets,
                "port_names": names.0,
                "bridge_names": names.1,
            }))
        }
        Request::TracePacket { port, packet } => {
            let (traced, names) = engine
                .call(move |sw| (sw.trace_spec(&port, &packet), sw.names()))
                .map_err(|_| stopped())?;
            let traced = traced.map_err(switch_error)?;
            let lines = describe(&traced.events, &names, true);
            let verdict = verdict(&traced.events, &names);
            Ok(json!({
                "events": traced.events,
                "lines": lines,
                "verdict": verdict,
                "port_names": names.0,
                "bridge_names": names.1,
            }))
        }
        Request::Version => Ok(json!({
            "version": env!("CARGO_PKG_VERSION"),
            "protocol": api::PROTOCOL_VERSION,
        })),
        Request::LinkShow { name } => {
            let (mut ports, mut bridges) = engine
                .call(|sw| {
                    sw.refresh_links();
                    (sw.ports(), sw.bridges())
                })
                .map_err(|_| stopped())?;
            if let Some(name) = name {
                ports.retain(|p| p.name == name);
                bridges.retain(|b| b.name == name);
                if ports.is_empty() && bridges.is_empty() {
                    return Err(ApiError::new(
                        ErrorCode::NotFound,
                        format!("{name}: no such port or bridge"),
                    ));
                }
            }
            Ok(to_value(LinkShow { ports, bridges }))
        }
        Request::Stats => Ok(to_value(
            engine.call(|sw| sw.stats()).map_err(|_| stopped())?,
        )),
        Request::LinkAdd {
            name,
            kind: LinkKind::Bridge,
            master,
            ageing_time,
        } => {
            if master.is_some() {
                return Err(ApiError::new(
                    ErrorCode::Invalid,
                    "a bridge cannot have a master",
                ));
            }
            port::sys::check_ifname(&name).map_err(port_error)?;
            on_switch!(|sw| sw.add_bridge(&name).and_then(|_| match ageing_time {
                Some(secs) => sw.set_ageing(&name, secs).inspect_err(|_| {
                    let _ = sw.del_bridge(&name);
                }),
                None => Ok(()),
            }));
            Ok(Value::Null)
        }
        Request::LinkAdd {
            name,
            kind,
            master,
            ageing_time,
        } => {
            if ageing_time.is_some() {
                return Err(ApiError::new(
                    ErrorCode::Invalid,
                    "ageing_time is a bridge setting",
                ));
            }
            let kind = if kind == LinkKind::Tap {
                PortKind::Tap
            } else {
                PortKind::Afpacket
            };
            // Cheap checks first, so a doomed request does not open anything.
            let taken = name.clone();
            if engine
                .call(move |sw| sw.has_link(&taken))
                .map_err(|_| stopped())?
            {
                return Err(switch_error(SwitchError::Exists(name)));
            }
            let port = port::open(kind, &name, opts).map_err(port_error)?;
            let added = engine
                .call(move |sw| sw.add_port(port, master.as_deref()).map(drop))
                .map_err(|_| stopped())?;
            // A rejected port is closed here, on this thread.
            added.map_err(|rejected| switch_error(rejected.error))?;
            Ok(Value::Null)
        }
        Request::LinkSet {
            name,
            master,
            nomaster,
            ageing_time,
            mtu,
            rp_filter,
            redirects,
        } => {
            if master.is_none()
                && !nomaster
                && ageing_time.is_none()
                && mtu.is_none()
                && rp_filter.is_none()
                && redirects.is_none()
            {
                return Err(ApiError::new(
                    ErrorCode::BadRequest,
                    "link_set needs master, nomaster, ageing_time, mtu, rp_filter or redirects",
                ));
            }
            if master.is_some() && nomaster {
                return Err(ApiError::new(
                    ErrorCode::BadRequest,
                    "give master or nomaster, not both",
                ));
            }
            on_switch!(|sw| {
                let mut r = Ok(());
                if master.is_some() || nomaster {
                    r = sw.set_master(&name, master.as_deref());
                }
                if let (Ok(()), Some(secs)) = (&r, ageing_time) {
                    r = sw.set_ageing(&name, secs);
                }
                if let (Ok(()), Some(mtu)) = (&r, mtu) {
                    r = sw.set_mtu(&name, mtu);
                }
                if r.is_ok() && (rp_filter.is_some() || redirects.is_some()) {
                    r = sw.set_policy(&name, rp_filter, redirects);
                }
                r
            });
            Ok(Value::Null)
        }
        Request::LinkDel { name } => {
            let removed = on_switch!(|sw| {
                if sw.has_bridge(&name) {
                    sw.del_bridge(&name).map(|()| None)
                } else {
                    sw.del_port(&name).map(Some).map_err(|e| match e {
                        SwitchError::NoSuchPort(n) => SwitchError::NoSuchLink(n),
                        e => e,
                    })
                }
            });
            // Closing the port waits on the kernel: do it here, not on the
            // forwarding thread.
            drop(removed);
            Ok(Value::Null)
        }
        Request::NatShow => Ok(to_value(
            engine.call(|sw| sw.nat_rules()).map_err(|_| stopped())?,
        )),
        Request::NatAdd { rule } => {
            // Checked as a config file's rules are.
            let r = config::nat_rule(&rule)
                .map_err(|(_, m)| ApiError::new(ErrorCode::Invalid, format!("nat: {m}")))?;
            let id =
                on_switch!(|sw| sw.nat_add(r.action, r.src, &r.bridge, Some(r.ports), r.filtering));
            Ok(json!(id))
        }
        Request::NatDel { id } => {
            on_switch!(|sw| sw.nat_del(id));
            Ok(Value::Null)
        }
        Request::NatSessions => Ok(to_value(
            engine.call(|sw| sw.nat_sessions()).map_err(|_| stopped())?,
        )),
        Request::NatSessionsFlush => Ok(json!(engine
            .call(|sw| sw.nat_flush())
            .map_err(|_| stopped())?)),
        Request::AddrShow { dev } => {
            let d = dev.clone();
            let (mut rows, known) = engine
                .call(move |sw| (sw.addrs(), d.as_ref().is_none_or(|d| sw.has_bridge(d))))
                .map_err(|_| stopped())?;
            if let Some(d) = dev {
                if !known {
                    return Err(no_such_bridge(&d));
                }
                rows.retain(|r| r.dev == d);
            }
            Ok(to_value(rows))
        }
        Request::AddrAdd { addr, dev } => {
            on_switch!(|sw| sw.addr_add(&dev, addr));
            Ok(Value::Null)
        }
        Request::AddrDel { addr, dev } => {
            on_switch!(|sw| sw.addr_del(&dev, addr));
            Ok(Value::Null)
        }
        Request::RouteShow {
            limit,
            dst,
            root,
            dev,
        } => {
            let limit = limit.unwrap_or(10_000);
            let filter = RouteFilter { dst, root, dev };
            let (total, routes) = on_switch!(|sw| sw.routes_matching(limit, &filter));
            Ok(json!({ "total": total, "routes": routes }))
        }
        Request::RouteAdd {
            dst,
            via,
            dev,
            replace,
        } => {
            if via.is_none() && dev.is_none() {
                return Err(ApiError::new(
                    ErrorCode::BadRequest,
                    "route_add needs via or dev",
                ));
            }
            let d = dev.clone();
            let existed = on_switch!(|sw| {
                // Host bits are refused by route_add, whatever is there.
                match sw.route_exact(dst).filter(|_| dst.addr == dst.network()) {
                    Some(r) if !replace || r.proto == "connected" => Ok(Some(r)),
                    _ => sw.route_add(dst, via, d.as_deref()).map(|()| None),
                }
            });
            if let Some(r) = existed.as_ref().filter(|r| r.proto == "connected") {
                return Err(ApiError::new(
                    ErrorCode::Exists,
                    format!(
                        "{}: the connected route of bridge {}'s address; it comes and goes with \
                         the address",
                        r.dst, r.dev
                    ),
                ));
            }
            if let Some(r) = existed {
                return Err(ApiError::new(
                    ErrorCode::Exists,
                    format!(
                        "{}: a route exists ({}); use 'patchbay route replace'",
                        r.dst,
                        route_words(&r)
                    ),
                ));
            }
            log::info!(op = "route_add", dst:% = dst, via:? = via, dev:? = dev; "route {dst} added");
            Ok(Value::Null)
        }
        Request::RouteLoad { text, first_line } => {
            let routes = parse_route_lines(&text, first_line)?;
            // In chunks, so forwarding goes on between them.
            let mut loaded = 0;
            for chunk in routes.chunks(8192) {
                let chunk = chunk.to_vec();
                let base = loaded;
                let n = engine
                    .call(move |sw| {
                        for (i, (line, dst, via, dev)) in chunk.iter().enumerate() {
                            if let Err(e) = sw.route_add(*dst, *via, dev.as_deref()) {
                                return Err((base + i, *line, e));
                            }
                        }
                        Ok(chunk.len())
                    })
                    .map_err(|_| stopped())?;
                match n {
                    Ok(n) => loaded += n,
                    Err((done, line, e)) => {
                        let e = switch_error(e);
                        return Err(ApiError::new(
                            e.code,
                            format!(
                                "line {line}: {} (routes loaded before it: {done})",
                                e.message
                            ),
                        ));
                    }
                }
            }
            log::info!(op = "route_load", routes = loaded; "route load: {loaded} routes");
            Ok(json!({ "loaded": loaded }))
        }
        Request::RouteDel { dst, via, dev } => {
            let d = dev.clone();
            let other = on_switch!(|sw| {
                match sw.route_exact(dst) {
                    Some(r)
                        if via.is_some_and(|v| r.via != Some(v))
                            || d.as_ref().is_some_and(|d| *d != r.dev) =>
                    {
                        Ok(Some(r))
                    }
                    _ => sw.route_del(dst).map(|()| None),
                }
            });
            if let Some(r) = other {
                return Err(ApiError::new(
                    ErrorCode::NotFound,
                    format!(
                        "{}: the route is {}, not what was given",
                        r.dst,
                        route_words(&r)
                    ),
                ));
            }
            log::info!(op = "route_del", dst:% = dst; "route {dst} deleted");
            Ok(Value::Null)
        }
        Request::RouteGet { addr } => match engine
            .call(move |sw| (sw.route_get(addr), sw.never_forwarded(addr)))
            .map_err(|_| stopped())?
        {
            (Some(r), _) => Ok(to_value(r)),
            (None, true) => Err(ApiError::new(
                ErrorCode::NotFound,
                format!(
                    "{addr}: never forwarded (a broadcast, multicast, loopback or 0.0.0.0/8 address)"
                ),
            )),
            (None, false) => Err(ApiError::new(
                ErrorCode::NotFound,
                format!("{addr}: no route"),
            )),
        },
        Request::NeighShow { dev } => {
            let d = dev.clone();
            let (rows, known) = engine
                .call(move |sw| (sw.neighbors(), d.as_ref().is_none_or(|d| sw.has_bridge(d))))
                .map_err(|_| stopped())?;
            if let (Some(d), false) = (&dev, known) {
                return Err(no_such_bridge(d));
            }
            let rows: Vec<_> = rows
                .into_iter()
                .filter(|r| dev.as_ref().is_none_or(|d| *d == r.dev))
                .collect();
            Ok(to_value(rows))
        }
        Request::NeighAdd {
            ip,
            mac,
            dev,
            replace,
        } => {
            if !mac.is_unicast() {
                return Err(ApiError::new(
                    ErrorCode::Invalid,
                    format!("{mac}: a neighbour's MAC must be unicast"),
                ));
            }
            let other = on_switch!(|sw| sw.permanent_neighbor(ip, &dev).and_then(|m| match m {
                Some(m) if m != mac && !replace => Ok(Some(m)),
                _ => sw.neigh_add(ip, mac, &dev).map(|()| None),
            }));
            if let Some(m) = other {
                return Err(ApiError::new(
                    ErrorCode::Exists,
                    format!("{ip}: a permanent entry is {m}; use 'patchbay neigh replace'"),
                ));
            }
            Ok(Value::Null)
        }
        Request::NeighDel { ip, dev } => {
            on_switch!(|sw| sw.neigh_del(ip, &dev));
            Ok(Value::Null)
        }
        Request::NeighFlush { dev } => {
            let n = on_switch!(|sw| sw.neigh_flush(dev.as_deref()));
            Ok(json!(n))
        }
        Request::FdbShow { link } => {
            let l = link.clone();
            let (rows, known) = engine
                .call(move |sw| (sw.fdb_snapshot(), l.as_ref().is_none_or(|l| sw.has_link(l))))
                .map_err(|_| stopped())?;
            if let (Some(l), false) = (&link, known) {
                return Err(ApiError::new(
                    ErrorCode::NotFound,
                    format!("{l}: no such port or bridge"),
                ));
            }
            let rows = rows.finish();
            let rows: Vec<_> = match link {
                Some(l) => rows
                    .into_iter()
                    .filter(|r| r.port == l || r.bridge == l)
                    .collect(),
                None => rows,
            };
            Ok(to_value(rows))
        }
        Request::FdbAdd { mac, dev, replace } => {
            if !mac.is_unicast() {
                return Err(ApiError::new(
                    ErrorCode::Invalid,
                    format!("{mac}: static entries must be unicast MACs"),
                ));
            }
            let other = on_switch!(|sw| sw.static_fdb_port(mac, &dev).and_then(|p| match p {
                Some(p) if p != dev && !replace => Ok(Some(p)),
                _ => sw.fdb_add(mac, &dev).map(|()| None),
            }));
            if let Some(p) = other {
                return Err(ApiError::new(
                    ErrorCode::Exists,
                    format!("{mac}: a static entry on port {p}; use 'patchbay fdb replace'"),
                ));
            }
            Ok(Value::Null)
        }
        Request::FdbDel { mac, dev } => {
            on_switch!(|sw| sw.fdb_del(mac, &dev));
            Ok(Value::Null)
        }
        Request::FdbFlush { link, statics } => {
            let n = on_switch!(|sw| sw.fdb_flush(link.as_deref(), statics));
            Ok(json!(n))
        }
    }
}
