//! Packet capture: copies of a port's frames, in or out, for a pcap writer
//! on another thread.
//!
//! The forwarding thread never waits for the writer. Frames are copied into
//! buffers from a fixed pool that the writer hands back; when the pool is
//! empty or the queue to the writer is full, the frame is not captured and
//! the drop is counted. Traffic is never held up or dropped for a capture.

use crate::l2::PortId;
use crate::trace::Filter;
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Buffers a capture owns: frames in flight to its writer.
pub const POOL: usize = 256;
/// Longest slice of a frame kept, unless told.
pub const DEFAULT_SNAPLEN: usize = 65_535;
/// The shortest snap length: an Ethernet, IPv4 and TCP header with room.
pub const MIN_SNAPLEN: usize = 64;

/// A captured frame.
pub struct Captured {
    /// Microseconds since the Unix epoch.
    pub at_us: u64,
    /// The frame's length on the wire (it may be cut to the snap length).
    pub orig_len: u32,
    pub data: Vec<u8>,
}

/// What a capture took and missed.
#[derive(Debug, Default)]
pub struct TapCounters {
    pub captured: AtomicU64,
    /// Not captured: the writer was behind.
    pub dropped: AtomicU64,
}

/// A capture's counters, as numbers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TapInfo {
    pub id: u32,
    pub port: String,
    pub rx: bool,
    pub tx: bool,
    pub captured: u64,
    pub dropped: u64,
}

/// The forwarding thread's end of a capture.
pub struct Tap {
    pub id: u32,
    pub port: PortId,
    pub rx: bool,
    pub tx: bool,
    filter: Filter,
    snaplen: usize,
    left: Option<u64>,
    frames: Sender<Captured>,
    free: Receiver<Vec<u8>>,
    pub counters: Arc<TapCounters>,
    /// Its count is reached, or its writer went away: remove it.
    pub done: bool,
    /// Where a leaving frame whose tag changes is put together.
    scratch: Vec<u8>,
}

/// The writer's end of a capture.
pub struct TapHandle {
    /// Captured frames; disconnected when the capture ends.
    pub frames: Receiver<Captured>,
    /// Where written buffers go back.
    pub free: Sender<Vec<u8>>,
    pub counters: Arc<TapCounters>,
    pub snaplen: usize,
}

/// Makes a capture (`rx`, `tx` or both), of frames matching `filter`, cut
/// to `snaplen`, ending after `count` frames if given; its buffers are
/// allocated here, so make it off the forwarding thread and attach it to a
/// port there (`Switch::capture_attach`).
pub fn tap(
    (rx, tx): (bool, bool),
    filter: Filter,
    snaplen: usize,
    count: Option<u64>,
) -> (Tap, TapHandle) {
    let snaplen = snaplen.clamp(MIN_SNAPLEN, 262_144);
    let count = count.filter(|&n| n > 0);
    let (frames_tx, frames_rx) = bounded(POOL);
    let (free_tx, free_rx) = bounded(POOL);
    for _ in 0..POOL {
        // Full size now, so that copying a frame never allocates.
        let _ = free_tx.send(Vec::with_capacity(snaplen));
    }
    let counters = Arc::new(TapCounters::default());
    (
        Tap {
            id: 0,
            port: 0,
            rx,
            tx,
            filter,
            snaplen,
            left: count,
            frames: frames_tx,
            free: free_rx,
            counters: counters.clone(),
            done: false,
            scratch: Vec::new(),
        },
        TapHandle {
            frames: frames_rx,
            free: free_tx,
            counters,
            snaplen,
        },
    )
}

impl Tap {
    /// Offers a leaving frame to the capture, as it leaves (with its tag
    /// pushed or popped).
    #[cold]
    pub fn offer_tx(&mut self, frame: crate::port::TxFrame<'_>) {
        if frame.tag == crate::l2::TagOp::Keep {
            return self.offer(frame.bytes.get(crate::wire::VNET_HDR_LEN..).unwrap_or(&[]));
        }
        let mut head = [0u8; crate::wire::vlan::HEAD_MAX];
        let Some((h, rest)) = frame.pieces(&mut head) else {
            return;
        };
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.extend_from_slice(h);
        scratch.extend_from_slice(rest);
        self.offer(scratch.get(crate::wire::VNET_HDR_LEN..).unwrap_or(&[]));
        self.scratch = scratch;
    }

    /// Offers an Ethernet frame to the capture.
    #[cold]
    pub fn offer(&mut self, eth: &[u8]) {
        if self.done || !self.filter.matches(eth) {
            return;
        }
        let mut buf = match self.free.try_recv() {
            Ok(buf) => buf,
            Err(crossbeam_channel::TryRecvError::Empty) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            // The writer is gone.
            Err(crossbeam_channel::TryRecvError::Disconnected) => {
                self.done = true;
                return;
            }
        };
        buf.clear();
        buf.extend_from_slice(&eth[..eth.len().min(self.snaplen)]);
        let at_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let c = Captured {
            at_us,
            orig_len: eth.len() as u32,
            data: buf,
        };
        match self.frames.try_send(c) {
            Ok(()) => {
                self.counters.captured.fetch_add(1, Ordering::Relaxed);
                if let Some(left) = &mut self.left {
                    *left -= 1;
                    if *left == 0 {
                        self.done = true;
                    }
                }
            }
            Err(TrySendError::Full(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => self.done = true,
        }
    }
}

/// The pcap file header: microsecond timestamps, Ethernet link type.
pub fn pcap_header(snaplen: usize) -> [u8; 24] {
    const MAGIC: u32 = 0xa1b2_c3d4;
    const VERSION: (u16, u16) = (2, 4);
    const LINKTYPE_ETHERNET: u32 = 1;
    let mut h = [0u8; 24];
    let mut out = &mut h[..];
    // Field by field, in the file's order; thiszone and sigfigs are 0.
    for field in [
        &MAGIC.to_le_bytes()[..],
        &VERSION.0.to_le_bytes(),
        &VERSION.1.to_le_bytes(),
        &0i32.to_le_bytes(),
        &0u32.to_le_bytes(),
        &(snaplen as u32).to_le_bytes(),
        &LINKTYPE_ETHERNET.to_le_bytes(),
    ] {
        out.write_all(field).expect("24 bytes hold the pcap header");
    }
    h
}

/// Appends a pcap record of `c` to `out`.
pub fn pcap_record(c: &Captured, out: &mut Vec<u8>) {
    out.extend_from_slice(&((c.at_us / 1_000_000) as u32).to_le_bytes());
    out.extend_from_slice(&((c.at_us % 1_000_000) as u32).to_le_bytes());
    out.extend_from_slice(&(c.data.len() as u32).to_le_bytes());
    out.extend_from_slice(&c.orig_len.to_le_bytes());
    out.extend_from_slice(&c.data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_writer_costs_captures_not_traffic() {
        let (mut tap, handle) = tap((true, false), Filter::default(), 128, Some(1000));
        let frame = vec![0xab; 200];
        // Nobody writes: the pool runs dry, then every offer is a drop.
        for _ in 0..POOL + 10 {
            tap.offer(&frame);
        }
        assert_eq!(
            handle.counters.captured.load(Ordering::Relaxed),
            POOL as u64
        );
        assert_eq!(handle.counters.dropped.load(Ordering::Relaxed), 10);
        let c = handle.frames.recv().unwrap();
        assert_eq!((c.data.len(), c.orig_len), (128, 200));
        let mut out = pcap_header(handle.snaplen).to_vec();
        assert_eq!(
            out,
            [
                0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 128, 0, 0, 0, 1, 0, 0,
                0
            ]
        );
        pcap_record(&c, &mut out);
        assert_eq!(out.len(), 24 + 16 + 128);
        // A written buffer comes back and is used again.
        handle.free.send(c.data).unwrap();
        tap.offer(&frame);
        assert_eq!(
            handle.counters.captured.load(Ordering::Relaxed),
            POOL as u64 + 1
        );
    }

    #[test]
    fn a_capture_ends_at_its_count_or_when_its_writer_goes() {
        let (mut tap, handle) = tap((true, true), Filter::default(), 1500, Some(2));
        tap.offer(&[1; 60]);
        tap.offer(&[2; 60]);
        assert!(tap.done);
        let (mut tap, handle2) = super::tap((true, true), Filter::default(), 1500, None);
        drop(handle2);
        tap.offer(&[1; 60]);
        assert!(tap.done);
        drop(handle);
    }
}
