//! A VXLAN port (RFC 7348): the bridge's frames to and from remote VTEPs,
//! in UDP datagrams through the host kernel's UDP stack, so any underlay
//! the kernel can route works.
//!
//! - Receive (`vxlan/rx.rs`): one socket bound to `local:dstport`; a datagram's
//!   VXLAN header is checked (flags exactly I, the port's VNI), the inner
//!   source MAC is learned against the sender's address, and the inner
//!   frame is the port's frame. With `UDP_GRO` the kernel hands over a
//!   sender's train of datagrams at once; the TCP segments of a flow in it
//!   become one TSO frame again.
//! - Send (`vxlan/tx.rs`): TSO frames are segmented first and partial checksums
//!   filled in ([`crate::wire::gso`]): nothing would segment them inside a
//!   UDP datagram; the datagrams of a flow leave in `UDP_SEGMENT` runs.
//!   Each frame goes to the VTEP its destination MAC was learned
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
//!   under the underlay's (at most 1500), so the router sends
//!   "fragmentation needed".

use super::sys::setsockopt;
use super::{LinkState, Port, PortError, PortKind, RxBatch, TxFrame};
use crate::counters::{DropReason, PortCounters};
use crate::wire::vlan::HEAD_MAX;
use crate::wire::vnet::VNET_HDR_LEN;
use crate::wire::vxlan::{self, VXLAN_HDR_LEN};
use crate::wire::Mac;
use crate::BATCH;
use std::collections::HashMap;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

mod group;
mod rx;
mod tx;

use rx::{learn, recv_datagrams, vxlan_ok, Train, UDP_GRO};
use tx::{Dest, Run, Sender};

/// Room for the biggest datagram, its virtio header in front: a tunnel's
/// TSO super-frame comes whole.
const BUF: usize = VNET_HDR_LEN + 65_536;
/// Sending sockets: source ports a flow hash picks from.
const TX_SOCKETS: usize = 8;
/// `SOL_UDP` (linux/udp.h): the level of UDP's socket options.
const SOL_UDP: i32 = 17;
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
    /// The receiving socket, in the SO_REUSEPORT group of the ports on the
    /// same local address and UDP port; `None` only while dropped.
    rx: Option<OwnedFd>,
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

/// A UDP socket bound to `addr:port` (in an SO_REUSEPORT group of
/// sockets on it if `shared`), DF on what it sends.
fn udp_socket(name: &str, addr: Ipv4Addr, port: u16, shared: bool) -> Result<OwnedFd, PortError> {
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
    if shared {
        setsockopt(&fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, &1i32)
            .map_err(|_| PortError::os(name, "SO_REUSEPORT"))?;
    }
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
            "bind (is local an address of this namespace, and its UDP port free of other programs?)",
        ));
    }
    Ok(fd)
}

pub(super) fn sockaddr(addr: Ipv4Addr, port: u16) -> libc::sockaddr_in {
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
        let rx = group::join(name, cfg.local, cfg.dstport, cfg.vni)?;
        // Room for bursts of TSO super-frames (64 KiB datagrams each).
        let buf = 16i32 << 20;
        if setsockopt(&rx, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &buf).is_err() {
            let _ = setsockopt(&rx, libc::SOL_SOCKET, libc::SO_RCVBUF, &buf);
        }
        let tx = (0..TX_SOCKETS)
            .map(|_| udp_socket(name, cfg.local, 0, false))
            .collect::<Result<Vec<_>, _>>()?;
        // Without it (before Linux 5.0) datagrams come one by one.
        let _ = setsockopt(&rx, SOL_UDP, UDP_GRO, &1i32);
        let mtu = mtu_of(cfg.local).unwrap_or(1500);
        Ok(VxlanPort {
            name: name.to_string(),
            flood: cfg.remote.into_iter().collect(),
            cfg,
            rx: Some(rx),
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
}

impl Drop for VxlanPort {
    /// The receiving socket leaves its group (its VNI's place in the
    /// group's program) as it closes.
    fn drop(&mut self) {
        if let Some(fd) = self.rx.take() {
            group::leave(fd);
        }
    }
}

impl Port for VxlanPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        PortKind::Vxlan
    }

    fn raw_fd(&self) -> Option<RawFd> {
        self.rx.as_ref().map(|fd| fd.as_raw_fd())
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
            let rx = self.rx.as_ref().expect("open until dropped");
            let (len, gso, vtep) = match recv_datagrams(rx, &mut self.rx_batch.next_buf()[at..]) {
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
