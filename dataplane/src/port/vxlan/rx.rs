//! A VXLAN port's receiving side: datagrams read with the `UDP_GRO`
//! control message, and coalesced ones made into frames, the segments of
//! a TCP flow into one TSO frame ([`crate::wire::gro`]).

use super::{Remote, VxlanPort, MAX_REMOTES, SOL_UDP};
use crate::counters::{DropReason, PortCounters};
use crate::port::RxBatch;
use crate::wire::gro::Merge;
use crate::wire::vnet::VNET_HDR_LEN;
use crate::wire::vxlan::{self, VxlanError, VXLAN_HDR_LEN};
use crate::wire::Mac;
use std::collections::HashMap;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

/// `UDP_GRO` (Linux 5.0): the kernel may coalesce datagrams of one sender
/// into one receive, telling their size in a control message; it also
/// takes a sender's UDP_SEGMENT train whole instead of cutting it up.
pub(super) const UDP_GRO: i32 = 104;

/// Where the datagrams of a coalesced receive are in `VxlanPort::train`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Train {
    /// The next one starts here; the last ends at `end`.
    pub(super) pos: usize,
    pub(super) end: usize,
    /// Bytes of each (the last may be shorter).
    pub(super) size: usize,
    pub(super) vtep: Ipv4Addr,
}

/// Reads what waits on `sock` into `buf`: its length, the size of each
/// datagram if the kernel coalesced several into it (UDP_GRO; else 0), and
/// the sender. `None` if nothing waits; a drop reason for a failed read.
pub(super) fn recv_datagrams(
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
pub(super) fn vxlan_ok(d: &[u8], vni: u32, counters: &mut PortCounters) -> bool {
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
pub(super) fn learn(
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
    pub(super) fn drain_train(&mut self, max: usize, now: u64, counters: &mut PortCounters) {
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
