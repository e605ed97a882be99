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

mod addr;
mod capture;
mod clients;
mod dhcp;
mod fdb;
mod lab;
mod link;
mod nat;
mod neigh;
mod route;
mod trace;
mod vlan;

use crate::api::{
    self, ApiError, ErrorCode, LinkKind, LinkSetProblem, LinkShow, Request, Response,
    MAX_REQUEST_BYTES,
};
use crate::apply::{self, Summary};
use crate::config;
use clients::{Clients, Place};
use patchbay_dataplane::capture as pcap;
use patchbay_dataplane::ip4::{FibError, RouterError};
use patchbay_dataplane::ip6::{Fib6Error, RaChange, Route6Error};
use patchbay_dataplane::pipeline::{
    name_at, EngineHandle, RouteFilter, RouteOrigin, RunningSnapshot, Switch, SwitchError,
};
use patchbay_dataplane::port::{self, PortError, PortKind, PortOptions};
use patchbay_dataplane::trace::{self as dataplane_trace, Described, Event, Filter};
use patchbay_dataplane::wire::IpNet;
use serde_json::{json, Value};
use std::io::{self, BufRead, BufReader, Write};
use std::net::IpAddr;
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
    pub fn spawn(self, engine: EngineHandle, svc: Services) -> io::Result<SocketFile> {
        let Server { listener, file } = self;
        std::thread::Builder::new()
            .name("control".into())
            .spawn(move || serve(listener, engine, svc))?;
        Ok(file)
    }
}

/// Accepts clients, each served on a thread of its own.
fn serve(listener: UnixListener, engine: EngineHandle, opts: Services) {
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
    opts: &Services,
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
                    let spec = capture::CaptureSpec {
                        port,
                        dir,
                        count,
                        snaplen,
                        filter,
                    };
                    // The connection carries the pcap stream to its end,
                    // at work (never idle) all along.
                    return capture::serve_capture(reader, engine, spec);
                }
                parsed => {
                    let result = parsed.and_then(|req| handle(req, engine, opts));
                    write_response(stream, result)?;
                }
            },
        }
    }
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
        | SwitchError::Router(RouterError::Fib(FibError::NoSuchRoute(..)))
        | SwitchError::Route6(Route6Error::Fib(Fib6Error::NoSuchRoute(_))) => ErrorCode::NotFound,
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
        PortError::BadName(_)
        | PortError::NotEthernet(_)
        | PortError::NotTap(_)
        | PortError::NeedsSettings(_)
        | PortError::Invalid(_) => ErrorCode::Invalid,
        PortError::Os { .. } => ErrorCode::System,
    };
    ApiError::new(code, e.to_string())
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
            | Request::VlanShow { .. }
            | Request::DhcpShow
            | Request::DhcpLeases
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

/// Carries out one request.
pub fn handle(req: Request, engine: &EngineHandle, svc: &Services) -> Result<Value, ApiError> {
    let _changing = (!reads_only(&req)).then(|| CHANGES.lock().unwrap_or_else(|e| e.into_inner()));
    let cx = Cx {
        engine,
        opts: &svc.opts,
        dhcp: &svc.dhcp,
    };
    match &req {
        Request::LinkShow { .. }
        | Request::LinkAdd { .. }
        | Request::LinkAddVlan { .. }
        | Request::LinkAddVxlan { .. }
        | Request::LinkSet { .. }
        | Request::LinkDel { .. }
        | Request::Stats => link::handle(req, &cx),
        Request::FdbShow { .. }
        | Request::FdbAdd { .. }
        | Request::FdbDel { .. }
        | Request::FdbFlush { .. } => fdb::handle(req, &cx),
        Request::VlanAdd { .. } | Request::VlanDel { .. } | Request::VlanShow { .. } => {
            vlan::handle(req, &cx)
        }
        Request::DhcpAdd { .. }
        | Request::DhcpDel { .. }
        | Request::DhcpHostAdd { .. }
        | Request::DhcpHostDel { .. }
        | Request::DhcpShow
        | Request::DhcpLeases => dhcp::handle(req, &cx),
        Request::AddrShow { .. } | Request::AddrAdd { .. } | Request::AddrDel { .. } => {
            addr::handle(req, &cx)
        }
        Request::RouteShow { .. }
        | Request::RouteAdd { .. }
        | Request::RouteLoad { .. }
        | Request::RouteDel { .. }
        | Request::RouteGet { .. } => route::handle(req, &cx),
        Request::NeighShow { .. }
        | Request::NeighAdd { .. }
        | Request::NeighDel { .. }
        | Request::NeighFlush { .. } => neigh::handle(req, &cx),
        Request::NatShow
        | Request::NatAdd { .. }
        | Request::NatDel { .. }
        | Request::NatSessions
        | Request::NatSessionsFlush => nat::handle(req, &cx),
        Request::TraceStart { .. }
        | Request::TraceStop
        | Request::TraceShow
        | Request::TracePacket { .. }
        | Request::Capture { .. } => trace::handle(req, &cx),
        Request::Apply { .. } | Request::Save | Request::Version => lab::handle(req, &cx),
    }
}

/// What a request handler works with: the engine that runs the switch, and
/// how new ports are opened.
struct Cx<'a> {
    engine: &'a EngineHandle,
    opts: &'a PortOptions,
    dhcp: &'a crate::dhcp::service::Service,
}

/// What the control plane serves besides the engine: how ports are opened,
/// and the DHCP service.
#[derive(Clone)]
pub struct Services {
    pub opts: PortOptions,
    pub dhcp: std::sync::Arc<crate::dhcp::service::Service>,
}

impl Cx<'_> {
    /// Runs a switch operation on the engine, between two batches, and maps
    /// its error.
    fn on_switch<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Switch) -> Result<R, SwitchError> + Send + 'static,
    ) -> Result<R, ApiError> {
        self.engine
            .call(f)
            .map_err(|_| stopped())?
            .map_err(switch_error)
    }
}

/// A request sent to the wrong object's handler: a bug of the dispatcher,
/// answered, never a panic.
fn misrouted(req: &Request) -> ApiError {
    ApiError::new(
        ErrorCode::BadRequest,
        format!("request not handled here: {req:?}"),
    )
}
