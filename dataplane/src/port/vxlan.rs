//! A VXLAN port (RFC 7348): the bridge's frames to and from remote VTEPs,
//! in UDP datagrams through the host kernel's UDP stack, so any underlay
//! the kernel can route works.
//!
//! - Receive: one socket bound to `local:dstport`; a datagram's VXLAN
//!   header is checked (flags exactly I, the port's VNI), the inner source
//!   MAC is learned against the sender's address, and the inner frame is
//!   the port's frame.
//! - Send: TSO frames are segmented first and partial checksums filled in
//!   ([`crate::wire::gso`]): nothing would segment them inside a UDP
//!   datagram. Each frame goes to the VTEP its destination MAC was learned
//!   on (or given, `fdb add MAC dev vx0 dst A`), else to every VTEP of the
//!   flood list (head-end replication: `remote`, and `fdb append
//!   00:00:00:00:00:00 dev vx0 dst A`). The UDP source port comes from a
//!   hash of the inner flow: eight sending sockets on ports the kernel
//!   picks, one chosen per flow.
//! - The outer UDP checksum is left on: the kernel refuses UDP_SEGMENT
//!   sends on a socket without it (SO_NO_CHECK), tried and measured.
//! - DF: the outer packets are never fragmented (`IP_PMTUDISC_DO`); an inner
//!   frame that does not fit the underlay's MTU is dropped and counted
//!   (`vxlan-too-big`). A bridge that routes into VXLAN gets an MTU 50 bytes
//!   under the underlay's, so the router sends "fragmentation needed".

use super::sys::setsockopt;
use super::{tx_drop_reason, LinkState, Port, PortError, PortKind, RxBatch, TxFrame};
use crate::counters::{DropReason, PortCounters};
use crate::wire::gro::Merge;
use crate::wire::vlan::HEAD_MAX;
use crate::wire::vnet::VNET_HDR_LEN;
use crate::wire::vxlan::{self, VxlanError, VXLAN_HDR_LEN};
use crate::wire::Mac;
use crate::BATCH;
use std::collections::HashMap;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

/// Room for the biggest datagram, its virtio header in front: a tunnel's
/// TSO super-frame comes whole.
const BUF: usize = VNET_HDR_LEN + 65_536;
/// Sending sockets: source ports a flow hash picks from.
const TX_SOCKETS: usize = 8;
/// `SOL_UDP` and `UDP_SEGMENT` (linux/udp.h): send a buffer of equal-size
/// datagrams in one call (UDP GSO, Linux 4.18).
const SOL_UDP: i32 = 17;
const UDP_SEGMENT: i32 = 103;
/// `UDP_GRO` (Linux 5.0): the kernel may coalesce datagrams of one sender
/// into one receive, telling their size in a control message; it also
/// takes a sender's UDP_SEGMENT train whole instead of cutting it up.
const UDP_GRO: i32 = 104;
/// Remote MACs a port learns at most.
pub const MAX_REMOTES: usize = 16_384;

/// How a VXLAN port is set up (`link add vx0 type vxlan id 42 local A
/// [remote B] dstport 4789`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanConfig {
    pub vni: u32,
    pub local: Ipv4Addr,
    pub remote: Option<Ipv4Addr>,
    pub dstport: u16,
}

/// Where a remote MAC is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remote {
    pub vtep: Ipv4Addr,
    /// Seconds (the port's clock) it was last seen; `None` if static.
    pub seen: Option<u64>,
}

/// A port on a VXLAN segment.
pub struct VxlanPort {
    name: String,
    cfg: VxlanConfig,
    rx: OwnedFd,
    tx: Vec<OwnedFd>,
    rx_batch: RxBatch,
    remotes: HashMap<Mac, Remote, ahash::RandomState>,
    /// Head-end replication: every VTEP of the segment.
    flood: Vec<Ipv4Addr>,
    /// The underlay's MTU (the interface of `local`).
    mtu: usize,
    started: Instant,
    /// Frames put together for sending (tag changes).
    scratch: Vec<u8>,
    /// VXLAN datagrams gathered for one UDP_SEGMENT send.
    run: Run,
    /// Datagrams the kernel coalesced (UDP_GRO), back to back, not all
    /// made into frames yet.
    train: Box<[u8]>,
    pending: Option<Train>,
}

/// Where the datagrams of a coalesced receive are in `VxlanPort::train`.
#[derive(Debug, Clone, Copy)]
struct Train {
    /// The next one starts here; the last ends at `end`.
    pos: usize,
    end: usize,
    /// Bytes of each (the last may be shorter).
    size: usize,
    vtep: Ipv4Addr,
}

/// Where a run of datagrams goes: one VTEP, or every VTEP of the flood
/// list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dest {
    Vtep(Ipv4Addr),
    Flood,
}

/// VXLAN datagrams back to back for one UDP_SEGMENT send: from one sending
/// socket to one destination, all `size` bytes but perhaps the last. The
/// segments of a TSO frame make one, and so do frames of a flow that follow
/// each other in a batch (64-byte frames too): one system call and one
/// trip through the kernel's UDP stack for up to 64 datagrams.
struct Run {
    buf: Box<[u8]>,
    len: usize,
    sock: usize,
    dest: Dest,
    /// Bytes of each datagram (the first one's).
    size: usize,
    /// Datagrams, and the inner bytes they carry.
    n: u64,
    bytes: u64,
    /// A shorter datagram came: it must be the last of the send.
    closed: bool,
}

/// Datagrams a UDP_SEGMENT send carries at most (the kernel's
/// UDP_MAX_SEGMENTS was 64 before Linux 6.7), and the bytes.
const RUN_DATAGRAMS: u64 = 64;
const RUN_BYTES: usize = 65_000;

impl Run {
    fn new() -> Run {
        Run {
            buf: vec![0; RUN_BYTES].into_boxed_slice(),
            len: 0,
            sock: 0,
            dest: Dest::Flood,
            size: 0,
            n: 0,
            bytes: 0,
            closed: false,
        }
    }

    /// Whether a datagram of `d` bytes from `sock` to `dest` can join.
    fn takes(&self, sock: usize, dest: Dest, d: usize) -> bool {
        self.n == 0
            || (self.sock == sock
                && self.dest == dest
                && !self.closed
                && d <= self.size
                && self.n < RUN_DATAGRAMS
                && self.len + d <= RUN_BYTES)
    }

    /// Room for a datagram of `d` bytes (which must join, see `takes`).
    fn push(&mut self, sock: usize, dest: Dest, d: usize, inner: usize) -> &mut [u8] {
        if self.n == 0 {
            (self.sock, self.dest, self.size) = (sock, dest, d);
        }
        self.closed = d < self.size;
        self.n += 1;
        self.bytes += inner as u64;
        let at = self.len;
        self.len += d;
        &mut self.buf[at..self.len]
    }
}

/// How a VXLAN port's datagrams leave: its sending sockets, destination
/// port and flood list.
struct Sender<'a> {
    tx: &'a [OwnedFd],
    dstport: u16,
    flood: &'a [Ipv4Addr],
}

impl Sender<'_> {
    /// Sends the run and empties it.
    fn flush(&self, run: &mut Run, counters: &mut PortCounters) {
        if run.n > 0 {
            let gso = if run.n > 1 { run.size as u16 } else { 0 };
            let vteps = match &run.dest {
                Dest::Vtep(v) => std::slice::from_ref(v),
                Dest::Flood => self.flood,
            };
            VxlanPort::send_datagrams(
                &self.tx[run.sock],
                self.dstport,
                &run.buf[..run.len],
                gso,
                vteps,
                run.n,
                run.bytes,
                counters,
            );
        }
        (run.len, run.n, run.bytes, run.closed) = (0, 0, 0, false);
    }
}

/// One frame's segments on their way into runs.
struct FrameSink<'a, 'b> {
    run: &'a mut Run,
    sender: &'a Sender<'b>,
    counters: &'a mut PortCounters,
    sock: usize,
    dest: Dest,
    vni: u32,
    /// Inner frames bigger than this do not fit the underlay.
    limit: usize,
    too_big: u64,
}

impl crate::wire::gso::SegmentSink for FrameSink<'_, '_> {
    fn room(&mut self, len: usize) -> Option<&mut [u8]> {
        if len > self.limit {
            self.too_big += 1;
            return None;
        }
        let d = VXLAN_HDR_LEN + len;
        if !self.run.takes(self.sock, self.dest, d) {
            self.sender.flush(self.run, self.counters);
        }
        let datagram = self.run.push(self.sock, self.dest, d, len);
        let (hdr, inner) = datagram.split_at_mut(VXLAN_HDR_LEN);
        vxlan::emit(hdr, self.vni);
        Some(inner)
    }
}

fn udp_socket(name: &str, addr: Ipv4Addr, port: u16) -> Result<OwnedFd, PortError> {
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(PortError::os(name, "socket(AF_INET, SOCK_DGRAM)"));
    }
    // SAFETY: a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let _ = setsockopt(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, &1i32);
    // DF on every outer packet: never fragmented on the underlay.
    let _ = setsockopt(
        &fd,
        libc::IPPROTO_IP,
        libc::IP_MTU_DISCOVER,
        &libc::IP_PMTUDISC_DO,
    );
    let sa = sockaddr(addr, port);
    // SAFETY: bind(2) reads a sockaddr_in of the size given.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    };
    if r < 0 {
        return Err(PortError::os(
            name,
            "bind (is local an address of this namespace?)",
        ));
    }
    Ok(fd)
}

fn sockaddr(addr: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// The MTU of the interface that holds `addr`, if one does.
fn mtu_of(addr: Ipv4Addr) -> Option<usize> {
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list we free below.
    if unsafe { libc::getifaddrs(&mut ifap) } != 0 {
        return None;
    }
    let mut name = None;
    let mut p = ifap;
    while !p.is_null() {
        // SAFETY: p is a node of the list getifaddrs made, not yet freed.
        let ifa = unsafe { &*p };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points at a sockaddr whose family we read
            // first; AF_INET ones are sockaddr_in.
            let fam = unsafe { (*ifa.ifa_addr).sa_family } as i32;
            if fam == libc::AF_INET {
                // SAFETY: as above, an AF_INET address.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                if Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)) == addr {
                    // SAFETY: ifa_name is a NUL-terminated string of the list.
                    let n = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
                    name = Some(n.to_string_lossy().into_owned());
                }
            }
        }
        p = ifa.ifa_next;
    }
    // SAFETY: the list getifaddrs made, freed once.
    unsafe { libc::freeifaddrs(ifap) };
    let mtu = std::fs::read_to_string(format!("/sys/class/net/{}/mtu", name?)).ok()?;
    mtu.trim().parse().ok()
}

impl VxlanPort {
    pub fn open(name: &str, cfg: VxlanConfig) -> Result<VxlanPort, PortError> {
        let rx = udp_socket(name, cfg.local, cfg.dstport)?;
        // Room for bursts of TSO super-frames (64 KiB datagrams each).
        let buf = 16i32 << 20;
        if setsockopt(&rx, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &buf).is_err() {
            let _ = setsockopt(&rx, libc::SOL_SOCKET, libc::SO_RCVBUF, &buf);
        }
        let tx = (0..TX_SOCKETS)
            .map(|_| udp_socket(name, cfg.local, 0))
            .collect::<Result<Vec<_>, _>>()?;
        // Without it (before Linux 5.0) datagrams come one by one.
        let _ = setsockopt(&rx, SOL_UDP, UDP_GRO, &1i32);
        let mtu = mtu_of(cfg.local).unwrap_or(1500);
        Ok(VxlanPort {
            name: name.to_string(),
            flood: cfg.remote.into_iter().collect(),
            cfg,
            rx,
            tx,
            rx_batch: RxBatch::new(BUF),
            remotes: HashMap::with_capacity_and_hasher(MAX_REMOTES, ahash::RandomState::new()),
            mtu,
            started: Instant::now(),
            scratch: Vec::with_capacity(BUF),
            run: Run::new(),
            train: vec![0; BUF].into_boxed_slice(),
            pending: None,
        })
    }

    pub fn config(&self) -> &VxlanConfig {
        &self.cfg
    }

    /// The biggest inner IPv4 packet the underlay carries: its MTU less
    /// the outer IPv4, UDP and VXLAN headers and the inner Ethernet header
    /// (RFC 7348 4.3).
    pub fn inner_mtu(&self) -> usize {
        self.mtu.saturating_sub(vxlan::OVERHEAD)
    }

    /// The VTEPs every broadcast, multicast and unknown frame goes to.
    pub fn flood_list(&self) -> &[Ipv4Addr] {
        &self.flood
    }

    /// Adds a VTEP to the flood list (`fdb append 00:00:00:00:00:00 dev
    /// vx0 dst A`); false if it is there.
    pub fn flood_add(&mut self, vtep: Ipv4Addr) -> bool {
        if self.flood.contains(&vtep) {
            return false;
        }
        self.flood.push(vtep);
        true
    }

    pub fn flood_del(&mut self, vtep: Ipv4Addr) -> bool {
        let before = self.flood.len();
        self.flood.retain(|&v| v != vtep);
        self.flood.len() != before
    }

    /// The flood list's VTEPs beyond `remote` (those `fdb append` added).
    pub fn flood_added(&self) -> Vec<Ipv4Addr> {
        self.flood
            .iter()
            .copied()
            .filter(|v| Some(*v) != self.cfg.remote)
            .collect()
    }

    /// The remote MACs given (`fdb add MAC dev vx0 dst A`), by MAC.
    pub fn statics(&self) -> Vec<(Mac, Ipv4Addr)> {
        let mut s: Vec<(Mac, Ipv4Addr)> = self
            .remotes
            .iter()
            .filter(|(_, r)| r.seen.is_none())
            .map(|(m, r)| (*m, r.vtep))
            .collect();
        s.sort();
        s
    }

    /// Puts `mac` at `vtep` for good (`fdb add MAC dev vx0 dst A`).
    pub fn remote_add(&mut self, mac: Mac, vtep: Ipv4Addr) {
        self.remotes.insert(mac, Remote { vtep, seen: None });
    }

    pub fn remote_del(&mut self, mac: Mac) -> bool {
        self.remotes.remove(&mac).is_some()
    }

    /// Where `mac` is, if known.
    pub fn remote(&self, mac: Mac) -> Option<Remote> {
        self.remotes.get(&mac).copied()
    }

    /// Every remote MAC and its VTEP.
    pub fn remotes(&self) -> impl Iterator<Item = (Mac, Remote)> + '_ {
        self.remotes.iter().map(|(m, r)| (*m, *r))
    }

    /// Forgets learned remotes not seen for `ageing` seconds.
    pub fn age(&mut self, ageing: u64) {
        let now = self.started.elapsed().as_secs();
        self.remotes
            .retain(|_, r| r.seen.is_none_or(|s| now.saturating_sub(s) < ageing));
    }

    /// Where a frame to `dst` goes: the VTEP `dst` was learned at (or
    /// given), else the flood list; `None` if that is empty.
    fn dest_for(&self, dst: Mac) -> Option<Dest> {
        match self.remotes.get(&dst).filter(|_| dst.is_unicast()) {
            Some(r) => Some(Dest::Vtep(r.vtep)),
            None if self.flood.is_empty() => None,
            None => Some(Dest::Flood),
        }
    }

    /// Where a frame to `dst` goes, as a trace tells it.
    pub fn trace_to(&self, dst: Mac) -> crate::trace::VxlanTo {
        match self.dest_for(dst) {
            Some(Dest::Vtep(v)) => crate::trace::VxlanTo::Vtep(v),
            _ => crate::trace::VxlanTo::Flood(self.flood.len() as u16),
        }
    }

    /// The sending socket of a flow, by a hash of the inner flow: its
    /// source port is the flow's (RFC 7348 5: entropy in the source port).
    fn socket_for(&self, eth: &[u8]) -> usize {
        (vxlan::flow_hash(eth) as usize) % self.tx.len()
    }

    /// Sends `payload` (VXLAN datagrams back to back, each `gso` bytes but
    /// the last, or one datagram if `gso` is 0) to each of `vteps` from
    /// `sock`: with UDP_SEGMENT, one system call and one trip through the
    /// kernel for a whole TSO frame's segments. Counts `frames` inner frames
    /// of `bytes` bytes sent per VTEP.
    #[allow(clippy::too_many_arguments)]
    fn send_datagrams(
        sock: &OwnedFd,
        dstport: u16,
        payload: &[u8],
        gso: u16,
        vteps: &[Ipv4Addr],
        frames: u64,
        bytes: u64,
        counters: &mut PortCounters,
    ) {
        for &vtep in vteps {
            let iov = libc::iovec {
                iov_base: payload.as_ptr() as *mut libc::c_void,
                iov_len: payload.len(),
            };
            let mut sa = sockaddr(vtep, dstport);
            // Room for one control message with a u16.
            let mut control = [0u64; 4];
            // SAFETY: msghdr is plain C; all-zero is valid, then pointed at
            // the live iovec, sockaddr and control buffer above.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_name = (&mut sa as *mut libc::sockaddr_in).cast();
            msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
            msg.msg_iov = &iov as *const libc::iovec as *mut libc::iovec;
            msg.msg_iovlen = 1;
            if gso > 0 {
                msg.msg_control = control.as_mut_ptr().cast();
                // SAFETY: CMSG_SPACE only computes a size.
                msg.msg_controllen = unsafe { libc::CMSG_SPACE(2) } as usize;
                // SAFETY: msg_control points at `control`, which holds
                // CMSG_SPACE(2) bytes (32 >= 24), aligned for cmsghdr.
                unsafe {
                    let c = libc::CMSG_FIRSTHDR(&msg);
                    (*c).cmsg_level = SOL_UDP;
                    (*c).cmsg_type = UDP_SEGMENT;
                    (*c).cmsg_len = libc::CMSG_LEN(2) as usize;
                    std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), gso);
                }
            }
            // SAFETY: sendmsg reads the msghdr and what it points at, all
            // alive for the call.
            let r = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_DONTWAIT) };
            if r < 0 {
                counters.drop_n(tx_drop_reason(&io::Error::last_os_error()), frames);
            } else {
                counters.tx_packets += frames;
                counters.tx_bytes += bytes;
            }
        }
    }

    /// Puts one frame (virtio-net header and Ethernet frame) into runs:
    /// its segments, a VXLAN header each, joining the frames before them
    /// where they can.
    fn queue_frame(&mut self, frame: &[u8], counters: &mut PortCounters) {
        let Some(eth) = frame.get(VNET_HDR_LEN..).filter(|e| e.len() >= 14) else {
            counters.drop(DropReason::Runt);
            return;
        };
        let Some(dest) = self.dest_for(Mac::from_slice(&eth[..6])) else {
            counters.drop(DropReason::VxlanNoVtep);
            return;
        };
        let sock = self.socket_for(eth);
        let sender = Sender {
            tx: &self.tx,
            dstport: self.cfg.dstport,
            flood: &self.flood,
        };
        let mut sink = FrameSink {
            run: &mut self.run,
            sender: &sender,
            counters,
            sock,
            dest,
            vni: self.cfg.vni,
            limit: self.mtu - VXLAN_HDR_LEN - 8 - 20,
            too_big: 0,
        };
        let done = crate::wire::gso::segment(frame, &mut sink);
        let too_big = sink.too_big;
        if done.is_err() {
            counters.drop(DropReason::GsoUnsupported);
        }
        if too_big > 0 {
            counters.drop_n(DropReason::VxlanTooBig, too_big);
        }
    }
}

/// Reads what waits on `sock` into `buf`: its length, the size of each
/// datagram if the kernel coalesced several into it (UDP_GRO; else 0), and
/// the sender. `None` if nothing waits; a drop reason for a failed read.
fn recv_datagrams(
    sock: &OwnedFd,
    buf: &mut [u8],
) -> Result<Option<(usize, usize, Ipv4Addr)>, DropReason> {
    loop {
        // SAFETY: sockaddr_in is plain C; all-zero is valid.
        let mut from: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // Room for the UDP_GRO control message (an int).
        let mut control = [0u64; 8];
        // SAFETY: msghdr is plain C; all-zero is valid, then pointed at the
        // live sockaddr, iovec and control buffer above.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&mut from as *mut libc::sockaddr_in).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        // SAFETY: recvmsg writes at most iov_len bytes into `buf`, the
        // sender into `from` and control messages into `control`, all
        // alive and of the sizes given.
        let r = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
        if r < 0 {
            return match io::Error::last_os_error().raw_os_error() {
                Some(libc::EAGAIN) => Ok(None),
                Some(libc::EINTR) => continue,
                _ => Err(DropReason::RxError),
            };
        }
        if msg.msg_flags & libc::MSG_TRUNC != 0 {
            return Err(DropReason::Truncated);
        }
        let mut gso = 0;
        // SAFETY: the control messages recvmsg wrote, walked with the
        // CMSG macros within msg_controllen; an UDP_GRO one holds an int.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == SOL_UDP && (*c).cmsg_type == UDP_GRO {
                    gso =
                        std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<i32>()).max(0) as usize;
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        let vtep = Ipv4Addr::from(u32::from_be(from.sin_addr.s_addr));
        return Ok(Some((r as usize, gso, vtep)));
    }
}

/// Whether the datagram `d` is a VXLAN frame for `vni`; counts why not.
fn vxlan_ok(d: &[u8], vni: u32, counters: &mut PortCounters) -> bool {
    match vxlan::check(d, vni) {
        Ok(()) => true,
        Err(VxlanError::Vni(_)) => {
            counters.drop(DropReason::VxlanVni);
            false
        }
        Err(_) => {
            counters.drop(DropReason::VxlanMalformed);
            false
        }
    }
}

/// Learns that `src` is at `vtep` (seen at `now`): a learned MAC moves and
/// is refreshed, a static one stays, a new one is kept while there is room.
fn learn(
    remotes: &mut HashMap<Mac, Remote, ahash::RandomState>,
    src: Mac,
    vtep: Ipv4Addr,
    now: u64,
) {
    if !src.is_unicast() {
        return;
    }
    let room = remotes.len() < MAX_REMOTES;
    match remotes.get_mut(&src) {
        Some(r) if r.seen.is_some() => {
            r.vtep = vtep;
            r.seen = Some(now);
        }
        Some(_) => {}
        None if room => {
            remotes.insert(
                src,
                Remote {
                    vtep,
                    seen: Some(now),
                },
            );
        }
        None => {}
    }
}

impl VxlanPort {
    /// Makes frames of the coalesced datagrams not yet taken, while the
    /// batch has room: consecutive TCP segments of one flow become one
    /// super-frame ([`crate::wire::gro`]), anything else a frame each.
    fn drain_train(&mut self, max: usize, now: u64, counters: &mut PortCounters) {
        let Some(mut t) = self.pending else {
            return;
        };
        // The frame being put together in the batch's next buffer: its
        // merge and length.
        let mut open: Option<(Merge, usize)> = None;
        while t.pos < t.end {
            let end = (t.pos + t.size).min(t.end);
            let d = &self.train[t.pos..end];
            if !vxlan_ok(d, self.cfg.vni, counters) {
                t.pos = end;
                continue;
            }
            let inner = &d[VXLAN_HDR_LEN..];
            if let Some((m, len)) = &mut open {
                let buf = &mut self.rx_batch.next_buf()[VNET_HDR_LEN..];
                if let Some(n) = m.append(buf, *len, inner) {
                    *len = n;
                    t.pos = end;
                    continue;
                }
                let (m, len) = open.take().expect("open");
                close(&mut self.rx_batch, m, len);
            }
            if self.rx_batch.len() == max {
                break;
            }
            learn(
                &mut self.remotes,
                Mac::from_slice(&inner[6..12]),
                t.vtep,
                now,
            );
            let buf = self.rx_batch.next_buf();
            buf[..VNET_HDR_LEN].fill(0);
            let eth = &mut buf[VNET_HDR_LEN..VNET_HDR_LEN + inner.len()];
            eth.copy_from_slice(inner);
            t.pos = end;
            match Merge::start(eth) {
                Some(m) => open = Some((m, eth.len())),
                None => {
                    crate::wire::gso::complete_partial(eth);
                    self.rx_batch.push(VNET_HDR_LEN + inner.len());
                }
            }
        }
        if let Some((m, len)) = open {
            close(&mut self.rx_batch, m, len);
        }
        self.pending = (t.pos < t.end).then_some(t);
    }
}

/// Keeps the frame in the batch's next buffer, `len` bytes of Ethernet
/// frame: a super-frame of several segments is finished first.
fn close(batch: &mut RxBatch, m: Merge, len: usize) {
    let buf = batch.next_buf();
    if m.segments() > 1 {
        let (vnet, eth) = buf.split_at_mut(VNET_HDR_LEN);
        m.finish(vnet, &mut eth[..len]);
    }
    batch.push(VNET_HDR_LEN + len);
}

impl Port for VxlanPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        PortKind::Vxlan
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.rx.as_raw_fd())
    }

    fn recv(&mut self, max: usize, counters: &mut PortCounters) -> io::Result<usize> {
        self.rx_batch.clear();
        let max = max.min(BATCH);
        let now = self.started.elapsed().as_secs();
        // What is left of a coalesced receive comes first.
        self.drain_train(max, now, counters);
        for _ in 0..2 * max {
            if self.rx_batch.len() == max || self.pending.is_some() {
                break;
            }
            // The datagram lands two bytes in: its VXLAN header then ends
            // where the virtio header does, and the inner frame starts
            // where a port's frame does.
            let at = VNET_HDR_LEN - VXLAN_HDR_LEN;
            let (len, gso, vtep) =
                match recv_datagrams(&self.rx, &mut self.rx_batch.next_buf()[at..]) {
                    Ok(Some(got)) => got,
                    Ok(None) => break,
                    Err(reason) => {
                        counters.drop(reason);
                        continue;
                    }
                };
            if gso > 0 && len > gso {
                // Several datagrams: made into frames from the train.
                self.rx_batch.swap_next(&mut self.train);
                self.pending = Some(Train {
                    pos: at,
                    end: at + len,
                    size: gso,
                    vtep,
                });
                self.drain_train(max, now, counters);
                continue;
            }
            let inner_mtu = self.inner_mtu().min(1500);
            let buf = &mut self.rx_batch.next_buf()[..at + len];
            if !vxlan_ok(&buf[at..], self.cfg.vni, counters) {
                continue;
            }
            let src = Mac::from_slice(&buf[VNET_HDR_LEN + 6..VNET_HDR_LEN + 12]);
            learn(&mut self.remotes, src, vtep, now);
            // Sent from a veth, a frame's transport checksum may still be
            // partial inside the datagram, and a TCP frame may be a whole
            // TSO super-frame (the kernel delivers a UDP tunnel's GSO packet
            // as one datagram): the egress device is told to finish it.
            // Segments the size the hosts of a segment have: the inner
            // MTU, at most Ethernet's 1500 (the sender's MSS is not in the
            // datagram).
            let (vnet, eth) = buf.split_at_mut(VNET_HDR_LEN);
            vnet.fill(0);
            if eth.len() <= inner_mtu + 14 + 4
                || !crate::wire::gso::describe_super_frame(eth, inner_mtu, vnet)
            {
                crate::wire::gso::complete_partial(eth);
            }
            self.rx_batch.push(at + len);
        }
        Ok(self.rx_batch.len())
    }

    fn frame(&self, index: usize) -> &[u8] {
        self.rx_batch.frame(index)
    }

    fn frame_mut(&mut self, index: usize) -> &mut [u8] {
        self.rx_batch.frame_mut(index)
    }

    fn release(&mut self) {
        self.rx_batch.clear();
    }

    fn send<'a>(
        &mut self,
        frames: &mut dyn Iterator<Item = TxFrame<'a>>,
        counters: &mut PortCounters,
    ) {
        let mut head = [0u8; HEAD_MAX];
        let mut scratch = std::mem::take(&mut self.scratch);
        for f in frames {
            let Some((h, rest)) = f.pieces(&mut head) else {
                counters.drop(DropReason::Runt);
                continue;
            };
            if h.is_empty() {
                self.queue_frame(rest, counters);
            } else {
                scratch.clear();
                scratch.extend_from_slice(h);
                scratch.extend_from_slice(rest);
                self.queue_frame(&scratch, counters);
            }
        }
        self.scratch = scratch;
        let sender = Sender {
            tx: &self.tx,
            dstport: self.cfg.dstport,
            flood: &self.flood,
        };
        sender.flush(&mut self.run, counters);
    }

    /// Up while its socket is: the underlay's state is the kernel's.
    fn link_state(&self) -> LinkState {
        LinkState::Up
    }

    fn as_vxlan(&self) -> Option<&VxlanPort> {
        Some(self)
    }

    fn as_vxlan_mut(&mut self) -> Option<&mut VxlanPort> {
        Some(self)
    }
}
