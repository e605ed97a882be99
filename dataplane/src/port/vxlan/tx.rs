//! A VXLAN port's sending side: frames into VXLAN datagrams, gathered
//! into runs that leave in one `UDP_SEGMENT` send each.

use super::{sockaddr, VxlanPort, SOL_UDP};
use crate::counters::{DropReason, PortCounters};
use crate::port::tx_drop_reason;
use crate::wire::ethernet::ETHERNET_HDR_LEN;
use crate::wire::vnet::VNET_HDR_LEN;
use crate::wire::vxlan::{self, VXLAN_HDR_LEN};
use crate::wire::Mac;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

/// `UDP_SEGMENT` (linux/udp.h): send a buffer of equal-size datagrams in
/// one call (UDP GSO, Linux 4.18).
const UDP_SEGMENT: i32 = 103;

/// Where a run of datagrams goes: one VTEP, or every VTEP of the flood
/// list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dest {
    Vtep(Ipv4Addr),
    Flood,
}

/// VXLAN datagrams back to back for one UDP_SEGMENT send: from one sending
/// socket to one destination, all `size` bytes but perhaps the last. The
/// segments of a TSO frame make one, and so do frames of a flow that follow
/// each other in a batch (64-byte frames too): one system call and one
/// trip through the kernel's UDP stack for up to 64 datagrams.
pub(super) struct Run {
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
    pub(super) fn new() -> Run {
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
pub(super) struct Sender<'a> {
    pub(super) tx: &'a [OwnedFd],
    pub(super) dstport: u16,
    pub(super) flood: &'a [Ipv4Addr],
}

impl Sender<'_> {
    /// Sends the run (datagrams back to back, each `size` bytes but the
    /// last) to its VTEP(s) and empties it: with UDP_SEGMENT, one system
    /// call and one trip through the kernel per VTEP. Counts the run's
    /// inner frames and bytes sent per VTEP.
    pub(super) fn flush(&self, run: &mut Run, counters: &mut PortCounters) {
        if run.n > 0 {
            let vteps = match &run.dest {
                Dest::Vtep(v) => std::slice::from_ref(v),
                Dest::Flood => self.flood,
            };
            let gso = if run.n > 1 { run.size as u16 } else { 0 };
            for &vtep in vteps {
                match send_to(
                    &self.tx[run.sock],
                    vtep,
                    self.dstport,
                    &run.buf[..run.len],
                    gso,
                ) {
                    Ok(()) => {
                        counters.tx_packets += run.n;
                        counters.tx_bytes += run.bytes;
                    }
                    Err(e) => counters.drop_n(tx_drop_reason(&e), run.n),
                }
            }
        }
        (run.len, run.n, run.bytes, run.closed) = (0, 0, 0, false);
    }
}

/// Sends `payload` to `vtep:dstport` from `sock`: datagrams of `gso` bytes
/// each but the last (UDP_SEGMENT), or one datagram if `gso` is 0.
fn send_to(
    sock: &OwnedFd,
    vtep: Ipv4Addr,
    dstport: u16,
    payload: &[u8],
    gso: u16,
) -> io::Result<()> {
    let iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    let mut sa = sockaddr(vtep, dstport);
    // Room for one control message with a u16.
    let mut control = [0u64; 4];
    // SAFETY: msghdr is plain C; all-zero is valid, then pointed at the
    // live iovec, sockaddr and control buffer above.
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
    // SAFETY: sendmsg reads the msghdr and what it points at, all alive
    // for the call.
    let r = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_DONTWAIT) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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

impl VxlanPort {
    /// The sending socket of a flow, by a hash of the inner flow: its
    /// source port is the flow's (RFC 7348 5: entropy in the source port).
    fn socket_for(&self, eth: &[u8]) -> usize {
        (vxlan::flow_hash(eth) as usize) % self.tx.len()
    }

    /// Puts one frame (virtio-net header and Ethernet frame) into runs:
    /// its segments, a VXLAN header each, joining the frames before them
    /// where they can.
    pub(super) fn queue_frame(&mut self, frame: &[u8], counters: &mut PortCounters) {
        let Some(eth) = frame
            .get(VNET_HDR_LEN..)
            .filter(|e| e.len() >= ETHERNET_HDR_LEN)
        else {
            counters.drop(DropReason::Runt);
            return;
        };
        let Some(dest) = self.dest_for(Mac::from_slice(&eth[..6])) else {
            counters.drop(DropReason::VxlanNoVtep);
            return;
        };
        let sock = self.socket_for(eth);
        let limit = self.inner_mtu() + ETHERNET_HDR_LEN;
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
            limit,
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
