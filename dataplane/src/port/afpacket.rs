//! A port on an existing interface through an AF_PACKET socket.
//!
//! Receive: memory-mapped TPACKET_V2 rings. The kernel writes each frame,
//! preceded by its virtio-net header (`PACKET_VNET_HDR`), into a slot and
//! flips the slot's status to `TP_STATUS_USER`; patchbay forwards straight
//! out of the slot and hands it back by writing `TP_STATUS_KERNEL`.
//!
//! Two sockets receive, each with its ring, in one fanout group whose BPF
//! program hands each frame to one of them by its length: frames up to
//! 1,972 bytes to 2 KiB slots (a full-size Ethernet frame with a VLAN tag
//! fits), bigger ones to 68 KiB slots (a GSO super-frame of up to 64 KiB
//! from a TCP sender with the default offloads of veth, or a jumbo frame).
//! Small frames sit close together, and big ones are copied into their ring
//! by the kernel on the sender's core, which leaves patchbay's core one copy
//! per big frame (the send) instead of two. The rings are read in the order
//! the frames came, by the timestamp the kernel writes in each slot, so no
//! flow is reordered. A
//! frame too big even for a big slot is queued on its socket
//! (`PACKET_COPY_THRESH`), its truncated slot marked `TP_STATUS_COPY`, and
//! patchbay reads it whole with one `recv` into a buffer of its own.
//! TPACKET_V3 would pack all frames into one ring, but it wakes the reader
//! only when a whole block is retired, which costs milliseconds of latency.
//!
//! Send: `sendmmsg` of whole batches with the virtio-net header in front, so
//! the kernel segments GSO frames and fills partial checksums on the way out.
//! `PACKET_QDISC_BYPASS` skips the qdisc, and `PACKET_IGNORE_OUTGOING` keeps
//! frames sent out of this interface (by us or the host) from coming back.
//! Frames are sent through a second socket that receives nothing and is not
//! polled: when the receiver frees a sent frame, the kernel tells the
//! sending socket's waiters there is room again, and a socket that is polled
//! for reading always has one (the poller), so each freed frame would cost a
//! wake-up call on the receiver's core.

use super::sys::{self, setsockopt};
use super::{tx_drop_reason, LinkState, Port, PortError, PortKind, PortOptions, TxFrame};
use crate::counters::{DropReason, PortCounters};
use crate::wire::vlan::HEAD_MAX;
use crate::wire::vnet::{VnetHdr, GSO_ECN, GSO_NONE, VNET_HDR_LEN};
use crate::BATCH;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

mod ring;
mod socket;

use ring::*;
use socket::*;

// From <linux/if_packet.h>.
const PACKET_ADD_MEMBERSHIP: i32 = 1;
const PACKET_MR_PROMISC: u16 = 1;
const PACKET_RX_RING: i32 = 5;
const PACKET_COPY_THRESH: i32 = 7;
const PACKET_STATISTICS: i32 = 6;
const PACKET_VERSION: i32 = 10;
const PACKET_VNET_HDR: i32 = 15;
const PACKET_QDISC_BYPASS: i32 = 20;
const PACKET_IGNORE_OUTGOING: i32 = 23;
const PACKET_FANOUT: i32 = 18;
const PACKET_FANOUT_DATA: i32 = 22;
const PACKET_FANOUT_CBPF: u32 = 6;
const PACKET_FANOUT_FLAG_UNIQUEID: u32 = 0x2000;
const PACKET_FANOUT_FLAG_IGNORE_OUTGOING: u32 = 0x4000;
const TPACKET_V2: i32 = 1;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
const TP_STATUS_COPY: u32 = 1 << 1;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;
const PACKET_OUTGOING: u8 = 4;
const ETH_P_ALL: u16 = 0x0003;
const ETH_P_8021Q: u16 = 0x8100;

/// Ring blocks are 1 MiB (one allocation of the kernel's).
const BLOCK_SIZE: u32 = 1 << 20;
/// Slots of the small ring: the tpacket header, sockaddr_ll and virtio
/// header, then up to [`SMALL_MAX`] bytes of frame.
const FRAME_SIZE: u32 = 2048;
/// The longest frame (Ethernet header on) the small ring takes: what fits
/// in a slot after its headers (76 bytes).
const SMALL_MAX: u32 = 1972;
/// Slots of the big ring: 17 pages, room for a 64 KiB GSO frame with its
/// Ethernet header, a VLAN tag and the slot's headers; 15 to a block.
const BIG_FRAME_SIZE: u32 = 17 * 4096;
/// The big ring has this many times the blocks of the small one (16 MiB,
/// 240 slots, by default: a TCP sender's burst of 64 KiB frames), up to
/// [`BIG_RING_MAX_BLOCKS`].
const BIG_RING_FACTOR: u32 = 8;
const BIG_RING_MAX_BLOCKS: u32 = 64;

/// Frames too big for a slot are read into buffers of this size: a 64 KiB
/// GSO frame, its virtio header and room to put a VLAN tag back.
const BIG_SIZE: usize = 65_536 + VNET_HDR_LEN + 4 + 64;
/// How many such frames one batch may hold (1 MiB of buffers per port).
const BIG_PER_BATCH: usize = 16;
/// `TPACKET_ALIGN(sizeof(struct tpacket2_hdr))`: where sockaddr_ll starts.
const SLL_OFFSET: usize = 32;
/// End of the sockaddr_ll: nothing of ours may be written before this.
const SLOT_HEADERS: usize = SLL_OFFSET + std::mem::size_of::<libc::sockaddr_ll>();

/// A port on an existing interface (veth end, NIC) via AF_PACKET.
pub struct AfPacketPort {
    name: String,
    /// The rings of frames up to [`SMALL_MAX`] bytes and of bigger ones.
    rings: [Ring; 2],
    /// The socket frames are sent through (see the module's documentation).
    tx_fd: OwnedFd,
    ifindex: u32,
    /// Blocks of the small ring (see [`open_rings`]).
    blocks: u32,
    /// Which ring goes first when their frames' stamps cannot be compared.
    turn: usize,
    /// The current batch: where each frame (its virtio header) starts and
    /// its length.
    batch: Vec<(Place, usize)>,
    /// Buffers for the batch's frames too big for a ring slot.
    big: Box<[u8]>,
    /// Of which this many are in use.
    bigs: usize,
    /// Per message of a send: the head of a frame whose VLAN tag changes.
    heads: Box<[[u8; HEAD_MAX]]>,
    /// Two per message: the head (empty if unchanged), then the rest.
    iovs: Box<[libc::iovec]>,
    msgs: Box<[libc::mmsghdr]>,
    /// The interface takes TSO frames (asked at open and every second).
    /// If not, patchbay segments them itself: the
    /// kernel does not for a packet socket.
    tso: bool,
    /// Where a TSO frame is segmented in software: the segments, each
    /// with an empty virtio header, back to back, and where each is.
    soft: Box<[u8]>,
    soft_segs: Vec<(usize, usize)>,
    /// A TSO frame whose VLAN tag changes, put together before that.
    soft_frame: Vec<u8>,
}

/// Room for a TSO frame's segments: 64 KiB of payload, and a virtio
/// header and headers (up to 148 bytes) for each of 745 segments of an
/// MSS as small as 88 bytes.
const SOFT_BYTES: usize = 256 << 10;

/// Segments made in software into [`AfPacketPort::soft`].
struct SoftSink<'a> {
    buf: &'a mut [u8],
    used: usize,
    segs: &'a mut Vec<(usize, usize)>,
    /// Segments that did not fit.
    left_out: u64,
}

impl crate::wire::gso::SegmentSink for SoftSink<'_> {
    fn room(&mut self, len: usize) -> Option<&mut [u8]> {
        let at = self.used;
        let end = at + VNET_HDR_LEN + len;
        if end > self.buf.len() {
            self.left_out += 1;
            return None;
        }
        self.buf[at..at + VNET_HDR_LEN].fill(0);
        self.segs.push((at, end - at));
        self.used = end;
        Some(&mut self.buf[at + VNET_HDR_LEN..end])
    }
}

/// Where a frame of the batch is.
#[derive(Clone, Copy)]
enum Place {
    /// In ring 0 or 1, at this offset of its mapping.
    Ring(usize, usize),
    /// At this offset in [`AfPacketPort::big`].
    Big(usize),
}

// SAFETY: the raw pointers (ring mapping, iovec/msghdr scratch) point into
// memory owned by this port and are only used through &self/&mut self, so
// moving the port to another thread is sound.
unsafe impl Send for AfPacketPort {}

impl AfPacketPort {
    /// What [`AfPacketPort::open`] can tell without touching anything: the
    /// interface exists in this network namespace and carries Ethernet.
    /// Returns its ifindex.
    pub fn check(name: &str) -> Result<u32, PortError> {
        let ifindex =
            sys::if_index(name).ok_or_else(|| PortError::NoSuchInterface(name.to_string()))?;
        // Frames are Ethernet: a loopback or point-to-point (L3) device
        // carries none.
        let flags = sys::if_flags(name).unwrap_or(0);
        if flags & (libc::IFF_LOOPBACK | libc::IFF_POINTOPOINT) != 0 {
            return Err(PortError::NotEthernet(name.to_string()));
        }
        Ok(ifindex)
    }

    pub fn open(name: &str, opts: &PortOptions) -> Result<AfPacketPort, PortError> {
        let ifindex = Self::check(name)?;
        let tx_fd =
            packet_socket().map_err(|_| PortError::os(name, "AF_PACKET socket (are you root?)"))?;
        let blocks = opts.rx_ring_mib.clamp(1, 1024) as u32;
        let rings = open_rings(name, blocks)?;
        let os = |what| {
            move |e: io::Error| PortError::Os {
                name: name.to_string(),
                what,
                source: e,
            }
        };
        setsockopt(&tx_fd, libc::SOL_PACKET, PACKET_VNET_HDR, &1i32)
            .map_err(os("PACKET_VNET_HDR"))?;
        let _ = setsockopt(&tx_fd, libc::SOL_PACKET, PACKET_QDISC_BYPASS, &1i32);
        // GSO frames stay charged to the socket until the peer consumes them.
        let sndbuf = 16i32 << 20;
        if setsockopt(&tx_fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &sndbuf).is_err() {
            let _ = setsockopt(&tx_fd, libc::SOL_SOCKET, libc::SO_SNDBUF, &sndbuf);
        }

        let iovs: Box<[libc::iovec]> = (0..2 * BATCH)
            .map(|_| libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            })
            .collect();
        let msgs: Box<[libc::mmsghdr]> = (0..BATCH)
            .map(|_| {
                // SAFETY: mmsghdr is a plain C struct; all-zero is valid.
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_iovlen = 2;
                m
            })
            .collect();
        let mut port = AfPacketPort {
            name: name.to_string(),
            rings,
            tx_fd,
            ifindex,
            blocks,
            turn: 0,
            batch: Vec::with_capacity(BATCH),
            big: vec![0; BIG_SIZE * BIG_PER_BATCH].into_boxed_slice(),
            bigs: 0,
            heads: vec![[0; HEAD_MAX]; BATCH].into_boxed_slice(),
            iovs,
            msgs,
            tso: sys::takes_tso(name).unwrap_or(true),
            soft: vec![0; SOFT_BYTES].into_boxed_slice(),
            soft_segs: Vec::with_capacity(1024),
            soft_frame: Vec::with_capacity(BIG_SIZE),
        };
        // Up before the rings join their fanout group, which only a socket
        // bound to a running interface can.
        if let Err(e) = sys::set_if_up(name) {
            log::warn!("port {name}: could not set the interface up: {e}");
        }
        port.bind(ifindex).map_err(os("bind"))?;
        // Bound while the interface was still down (it would not come up),
        // the sockets hold an error.
        for ring in &port.rings {
            let _ = sys::take_socket_error(&ring.fd);
        }
        Ok(port)
    }

    /// Binds the receiving sockets to `ifindex` for all protocols, the
    /// sending one for none, and turns on promiscuous mode.
    fn bind(&mut self, ifindex: u32) -> io::Result<()> {
        if let Err(e) = bind_rings(&self.rings, ifindex)? {
            log::warn!(
                "port {}: big frames share the ring of small ones, read out of the socket \
                 on patchbay's core (a fanout group needs an interface that is up and \
                 Linux 4.12 or later: {e})",
                self.name
            );
        }
        bind_packet_socket(&self.tx_fd, ifindex, 0)?;
        let mreq = PacketMreq {
            ifindex: ifindex as i32,
            kind: PACKET_MR_PROMISC,
            alen: 0,
            address: [0; 8],
        };
        setsockopt(
            &self.rings[0].fd,
            libc::SOL_PACKET,
            PACKET_ADD_MEMBERSHIP,
            &mreq,
        )?;
        self.ifindex = ifindex;
        Ok(())
    }

    /// Looks at one ready slot; returns where the frame is and its length,
    /// or `None` if it is not to be forwarded.
    fn take_slot(
        &mut self,
        r: usize,
        slot_index: usize,
        status: u32,
        counters: &mut PortCounters,
    ) -> Option<(Place, usize)> {
        let ring = &self.rings[r];
        let (slot, frame_size) = (ring.slot(slot_index), ring.frame_size);
        // SAFETY: the slot starts with a tpacket2_hdr (aligned: slots are
        // 16-byte aligned in a page-aligned mapping); it is ours while its
        // status is TP_STATUS_USER. Copied out, so no reference to the
        // status word (which the kernel reads) outlives this line.
        let hdr = unsafe { std::ptr::read(slot as *const Tpacket2Hdr) };
        // SAFETY: the slot is ours (see above) and frame_size bytes long; the
        // slice starts after the tpacket2_hdr, so it never overlaps the status.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(slot.add(SLL_OFFSET), frame_size - SLL_OFFSET)
        };
        let outgoing = bytes[10] == PACKET_OUTGOING;
        let vlan = (status & TP_STATUS_VLAN_VALID != 0).then(|| {
            let tpid = if status & TP_STATUS_VLAN_TPID_VALID != 0 && hdr.vlan_tpid != 0 {
                hdr.vlan_tpid
            } else {
                ETH_P_8021Q
            };
            (tpid, hdr.vlan_tci)
        });
        if status & TP_STATUS_COPY != 0 {
            // The whole frame waits on the socket's queue, in ring order; the
            // slot holds its first bytes, to make sure.
            let mac = (hdr.mac as usize).saturating_sub(SLL_OFFSET);
            let seen = (hdr.snaplen as usize).min(64);
            let Some(prefix) = bytes.get(mac..mac + seen) else {
                counters.drop(DropReason::Runt);
                return None;
            };
            let fd = self.rings[r].fd.as_raw_fd();
            let (start, len) = self.read_big(fd, hdr.len as usize, prefix, counters)?;
            if outgoing {
                return None;
            }
            let (start, len) = match vlan {
                None => (start, len),
                Some(tag) => put_vlan_back(&mut self.big, start, len, start - 4, tag, counters)?,
            };
            self.bigs += 1;
            return Some((Place::Big(start), len));
        }
        if outgoing {
            return None;
        }
        let snaplen = hdr.snaplen as usize;
        if snaplen < hdr.len as usize {
            counters.drop(DropReason::Truncated);
            return None;
        }
        if (hdr.mac as usize) < SLOT_HEADERS + VNET_HDR_LEN {
            counters.drop(DropReason::Runt);
            return None;
        }
        // Offsets below are from the start of `bytes` (the sockaddr_ll).
        let mac = hdr.mac as usize - SLL_OFFSET;
        if mac + snaplen > bytes.len() || snaplen < 12 {
            counters.drop(DropReason::Runt);
            return None;
        }
        let start = mac - VNET_HDR_LEN;
        let len = VNET_HDR_LEN + snaplen;
        let (start, len) = match vlan {
            None => (start, len),
            Some(tag) => {
                put_vlan_back(bytes, start, len, SLOT_HEADERS - SLL_OFFSET, tag, counters)?
            }
        };
        let offset = slot as usize - self.rings[r].base as usize + SLL_OFFSET + start;
        Some((Place::Ring(r, offset), len))
    }

    /// Reads the frame of a `TP_STATUS_COPY` slot from the socket's queue
    /// into the next free big buffer; returns its offset in
    /// [`AfPacketPort::big`] and its length (virtio header included).
    ///
    /// The kernel queues such a frame before it hands over its slot, so the
    /// queue's head is this slot's frame, unless an earlier read failed and
    /// left one behind. The frame must have the slot's length (`frame_len`)
    /// and first bytes (`prefix`); older frames before it are dropped.
    fn read_big(
        &mut self,
        fd: RawFd,
        frame_len: usize,
        prefix: &[u8],
        counters: &mut PortCounters,
    ) -> Option<(usize, usize)> {
        let base = self.bigs * BIG_SIZE;
        // Four bytes in front: room to put a VLAN tag back.
        let buf = &mut self.big[base + 4..base + BIG_SIZE];
        for _ in 0..BATCH {
            // SAFETY: recv writes at most buf.len() bytes into buf. MSG_TRUNC
            // makes it return the frame's whole length even if longer.
            let n = unsafe {
                libc::recv(
                    fd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                )
            };
            if n < 0 {
                match io::Error::last_os_error().raw_os_error() {
                    // A pending socket error (the link went down) comes
                    // before the frames; it is gone now.
                    Some(libc::EAGAIN) => break,
                    _ => continue,
                }
            }
            let len = n as usize;
            let have = len.min(buf.len());
            let frame = buf.get(VNET_HDR_LEN..have).unwrap_or(&[]);
            if len != VNET_HDR_LEN + frame_len || !frame.starts_with(prefix) {
                // An older frame, left behind by a failed read.
                counters.drop(DropReason::RxError);
                continue;
            }
            if len > buf.len() {
                counters.drop(DropReason::Truncated);
                return None;
            }
            if len < VNET_HDR_LEN + 12 {
                counters.drop(DropReason::Runt);
                return None;
            }
            return Some((base + 4, len));
        }
        counters.drop(DropReason::RxError);
        None
    }
}

/// Puts an offloaded VLAN tag back into the frame at `bytes[start..start +
/// len]` (virtio header, then Ethernet), moving the header and MACs 4 bytes
/// to the front; `floor` is the first byte that may be written. Returns the
/// frame's new start and length.
fn put_vlan_back(
    bytes: &mut [u8],
    start: usize,
    len: usize,
    floor: usize,
    (tpid, tci): (u16, u16),
    counters: &mut PortCounters,
) -> Option<(usize, usize)> {
    if start < floor + 4 {
        counters.drop(DropReason::NoVlanRoom);
        return None;
    }
    let mac = start + VNET_HDR_LEN;
    bytes.copy_within(start..mac + 12, start - 4);
    bytes[mac + 8..mac + 10].copy_from_slice(&tpid.to_be_bytes());
    bytes[mac + 10..mac + 12].copy_from_slice(&tci.to_be_bytes());
    if let Ok(mut vnet) = VnetHdr::new_checked(&mut bytes[start - 4..start - 4 + VNET_HDR_LEN]) {
        vnet.shift_offsets(4);
    }
    Some((start - 4, len + 4))
}

/// An iovec over `b`.
fn iovec(b: &[u8]) -> libc::iovec {
    libc::iovec {
        iov_base: b.as_ptr() as *mut libc::c_void,
        iov_len: b.len(),
    }
}

impl AfPacketPort {
    /// Sends messages `0..n`, each of one or two iovecs set up in
    /// `self.iovs` (the second of a pair when one), `lens[i]` bytes on the
    /// wire (counted in `tx_bytes` already; taken back for those lost).
    fn send_msgs(&mut self, n: usize, lens: &[usize], counters: &mut PortCounters) {
        // Point each message at its iovecs now: the writes before went
        // through `self.iovs`, so earlier pointers are not to be trusted.
        let iovs = self.iovs.as_mut_ptr();
        for (i, msg) in self.msgs[..n].iter_mut().enumerate() {
            // Its head and the rest, or (one iovec) only the rest.
            let first = 2 * i + 2 - msg.msg_hdr.msg_iovlen;
            // SAFETY: first <= 2 * i + 1 < 2 * n <= 2 * BATCH, the
            // length of `iovs`.
            msg.msg_hdr.msg_iov = unsafe { iovs.add(first) };
        }
        let mut done = 0;
        while done < n {
            // SAFETY: msgs[done..n] each point at one or two iovecs of
            // self.iovs, which point at frames (and heads in self.heads, or
            // segments in self.soft) alive for the whole call.
            let r = unsafe {
                libc::sendmmsg(
                    self.tx_fd.as_raw_fd(),
                    self.msgs.as_mut_ptr().add(done),
                    (n - done) as u32,
                    libc::MSG_DONTWAIT,
                )
            };
            if r > 0 {
                done += r as usize;
                counters.tx_packets += r as u64;
                continue;
            }
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            let reason = tx_drop_reason(&err);
            // A frame the kernel refuses costs only itself; a full or
            // downed device costs the rest of the batch.
            let lost = if reason == DropReason::TxError {
                1
            } else {
                n - done
            };
            for len in &lens[done..done + lost] {
                counters.tx_bytes -= *len as u64;
            }
            counters.drop_n(reason, lost as u64);
            done += lost;
        }
    }

    /// Sends a TSO frame as the wire frames it stands for, made here
    /// ([`crate::wire::gso`]): for an interface that takes no TSO frames
    /// (`ethtool -K dev tso off`, or tx off), which the kernel would drop.
    #[cold]
    fn send_segmented(&mut self, frame: TxFrame<'_>, counters: &mut PortCounters) {
        let Some((head, rest)) = frame.pieces(&mut self.heads[0]) else {
            counters.drop(DropReason::Runt);
            return;
        };
        let whole: &[u8] = if head.is_empty() {
            rest
        } else {
            self.soft_frame.clear();
            self.soft_frame.extend_from_slice(head);
            self.soft_frame.extend_from_slice(rest);
            &self.soft_frame
        };
        self.soft_segs.clear();
        let mut sink = SoftSink {
            buf: &mut self.soft,
            used: 0,
            segs: &mut self.soft_segs,
            left_out: 0,
        };
        let made = crate::wire::gso::segment(whole, &mut sink);
        let left_out = sink.left_out;
        if made.is_err() || left_out > 0 {
            counters.drop_n(DropReason::GsoUnsupported, left_out.max(1));
        }
        let segs = std::mem::take(&mut self.soft_segs);
        for chunk in segs.chunks(BATCH) {
            let mut lens = [0usize; BATCH];
            for (i, &(at, len)) in chunk.iter().enumerate() {
                self.iovs[2 * i + 1] = iovec(&self.soft[at..at + len]);
                self.msgs[i].msg_hdr.msg_iovlen = 1;
                lens[i] = len - VNET_HDR_LEN;
                counters.tx_bytes += lens[i] as u64;
            }
            self.send_msgs(chunk.len(), &lens, counters);
        }
        self.soft_segs = segs;
    }
}

impl Port for AfPacketPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        PortKind::Afpacket
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.rings[0].fd.as_raw_fd())
    }

    fn extra_fd(&self) -> Option<RawFd> {
        Some(self.rings[1].fd.as_raw_fd())
    }

    fn recv(&mut self, max: usize, counters: &mut PortCounters) -> io::Result<usize> {
        debug_assert!(
            self.batch.is_empty() && self.rings.iter().all(|r| r.taken == 0),
            "recv before release"
        );
        let max = max.min(BATCH);
        while self.batch.len() < max {
            // The frame that came first, of the two rings' next ones.
            let (r, status) = match (self.rings[0].next_status(), self.rings[1].next_status()) {
                (None, None) => break,
                (Some(s), None) => (0, s),
                (None, Some(s)) => (1, s),
                (Some(s0), Some(s1)) => {
                    let (t0, t1) = (self.rings[0].next_time(), self.rings[1].next_time());
                    // Stamps a second apart or more are not an order (the
                    // clock was set back): turns, so neither ring starves.
                    let first = if t0.abs_diff(t1) >= 1_000_000_000 {
                        self.turn ^= 1;
                        self.turn
                    } else {
                        usize::from(t1 < t0)
                    };
                    if first == 1 {
                        (1, s1)
                    } else {
                        (0, s0)
                    }
                }
            };
            if status & TP_STATUS_COPY != 0 && self.bigs == BIG_PER_BATCH {
                break;
            }
            let ring = &mut self.rings[r];
            let index = (ring.head + ring.taken) % ring.frames;
            ring.taken += 1;
            if let Some(frame) = self.take_slot(r, index, status, counters) {
                self.batch.push(frame);
            }
        }
        Ok(self.batch.len())
    }

    fn rx_pending(&self) -> Option<bool> {
        Some(self.rings.iter().any(|r| {
            let status = r.status(r.head).load(Ordering::Relaxed);
            status & TP_STATUS_USER != 0
        }))
    }

    fn frame(&self, index: usize) -> &[u8] {
        match self.batch[index] {
            // SAFETY: the batch's slots are owned by us until release(), and
            // (offset, len) was checked to lie inside its slot by take_slot.
            (Place::Ring(r, offset), len) => unsafe {
                std::slice::from_raw_parts(self.rings[r].base.add(offset), len)
            },
            (Place::Big(offset), len) => &self.big[offset..offset + len],
        }
    }

    fn frame_mut(&mut self, index: usize) -> &mut [u8] {
        match self.batch[index] {
            // SAFETY: as in frame(); &mut self makes this the only reference.
            (Place::Ring(r, offset), len) => unsafe {
                std::slice::from_raw_parts_mut(self.rings[r].base.add(offset), len)
            },
            (Place::Big(offset), len) => &mut self.big[offset..offset + len],
        }
    }

    fn release(&mut self) {
        for ring in &mut self.rings {
            ring.release();
        }
        self.bigs = 0;
        self.batch.clear();
    }

    fn send<'a>(
        &mut self,
        frames: &mut dyn Iterator<Item = TxFrame<'a>>,
        counters: &mut PortCounters,
    ) {
        loop {
            let mut n = 0;
            let mut lens = [0usize; BATCH];
            // A TSO frame the interface does not take: segmented and sent
            // after the frames before it.
            let mut soft = None;
            for frame in (&mut *frames).take(BATCH) {
                if !self.tso
                    && frame
                        .bytes
                        .get(1)
                        .is_some_and(|&g| g & !GSO_ECN != GSO_NONE)
                {
                    soft = Some(frame);
                    break;
                }
                // Two iovecs a message: the rewritten head of a frame whose
                // tag changes, then the rest of it (or all of it).
                let Some((head, rest)) = frame.pieces(&mut self.heads[n]) else {
                    counters.drop(DropReason::Runt);
                    continue;
                };
                // A frame sent as it is takes one iovec: the second.
                self.iovs[2 * n] = iovec(head);
                self.iovs[2 * n + 1] = iovec(rest);
                self.msgs[n].msg_hdr.msg_iovlen = if head.is_empty() { 1 } else { 2 };
                lens[n] = frame.wire_len();
                counters.tx_bytes += lens[n] as u64;
                n += 1;
            }
            self.send_msgs(n, &lens, counters);
            match soft {
                Some(frame) => self.send_segmented(frame, counters),
                None if n < BATCH => return,
                None => {}
            }
        }
    }

    fn link_state(&self) -> LinkState {
        sys::link_state(&self.name)
    }

    fn tick(&mut self) {
        if let Ok(tso) = sys::takes_tso(&self.name) {
            if tso != self.tso {
                log::debug!("port {}: takes TSO frames: {tso}", self.name);
                self.tso = tso;
            }
        }
    }

    fn refresh(&mut self) -> LinkState {
        if let Some(err) = sys::take_socket_error(&self.tx_fd) {
            log::debug!("port {}: send socket error {err}", self.name);
        }
        for ring in &self.rings {
            if let Some(err) = sys::take_socket_error(&ring.fd) {
                log::debug!("port {}: socket error {err}", self.name);
            }
        }
        let mut state = sys::link_state(&self.name);
        if state == LinkState::Gone {
            // The kernel unhooked the socket when the interface went away; an
            // interface of this name that comes back (even with the same
            // ifindex, as after a round trip through another namespace) must
            // be bound again.
            self.ifindex = 0;
            return state;
        }
        // An interface deleted and created again under the same name has a
        // new ifindex. It is a new interface, so it is set up as open() sets
        // up a new port's (one an operator set down keeps its ifindex, and
        // stays down); once it is up, the rings follow it (only then can
        // they join a fanout group). Until then this is asked every second.
        let Some(ifindex) = sys::if_index(&self.name).filter(|&i| i != self.ifindex) else {
            return state;
        };
        if state != LinkState::Up {
            if let Err(e) = sys::set_if_up(&self.name) {
                log::debug!("port {}: setting the interface up: {e}", self.name);
            }
            state = sys::link_state(&self.name);
            if state != LinkState::Up {
                return state;
            }
        }
        debug_assert!(self.batch.is_empty(), "refresh during a batch");
        // Sockets of a fanout group cannot be bound again: the rings are
        // made anew (their descriptors change).
        let bound = match open_rings(&self.name, self.blocks) {
            Ok(rings) => {
                self.rings = rings;
                self.bind(ifindex)
            }
            Err(e) => Err(io::Error::other(e.to_string())),
        };
        match bound {
            Ok(()) => {
                log::info!("port {}: interface is back (ifindex {ifindex})", self.name);
                state
            }
            Err(e) => {
                log::warn!("port {}: re-binding to ifindex {ifindex}: {e}", self.name);
                // Not up for patchbay: asked again next second.
                LinkState::Down
            }
        }
    }

    fn take_kernel_drops(&mut self) -> u64 {
        self.rings.iter().map(kernel_drops).sum()
    }
}
