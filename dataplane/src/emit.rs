//! Frames patchbay makes itself (ARP requests and replies, ICMP messages,
//! fragments) and frames it holds while their next hop is resolved.
//!
//! They live in a fixed pool of buffers taken at start, so making one never
//! allocates; when the pool is empty the frame is not made, and the caller
//! counts the drop.

use crate::l2::{BridgeId, PortId};
use crate::wire::{Mac, VnetHdr, ETHERNET_HDR_LEN, VNET_HDR_LEN};

/// Room for a virtio header and a 9000-byte MTU frame with a VLAN tag.
pub const BUF_SIZE: usize = VNET_HDR_LEN + ETHERNET_HDR_LEN + 4 + 9000;

/// Where a made frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmitTo {
    /// Out of this port, as a frame of this router interface (whose VLAN
    /// it is in).
    Port(PortId, BridgeId),
    /// Into this bridge, to whichever port `Mac` was learned on (flooded if
    /// unknown or broadcast), never back to `except`.
    Bridge {
        bridge: BridgeId,
        dst: Mac,
        except: Option<PortId>,
    },
}

/// The pool and the frames made during the current batch.
pub struct Emitter {
    bufs: Vec<Box<[u8]>>,
    lens: Vec<usize>,
    free: Vec<u16>,
    /// Frames to send after the batch, in order.
    pub out: Vec<(EmitTo, u16)>,
}

impl Emitter {
    pub fn new(buffers: usize) -> Emitter {
        let buffers = buffers.clamp(1, usize::from(u16::MAX));
        Emitter {
            bufs: (0..buffers)
                .map(|_| vec![0u8; BUF_SIZE].into_boxed_slice())
                .collect(),
            lens: vec![0; buffers],
            free: (0..buffers as u16).rev().collect(),
            out: Vec::with_capacity(buffers),
        }
    }

    /// Takes a buffer with an empty virtio-net header; `None` if the pool
    /// is empty.
    pub fn alloc(&mut self) -> Option<u16> {
        let i = self.free.pop()?;
        VnetHdr::new_unchecked(&mut self.bufs[usize::from(i)][..]).clear();
        self.lens[usize::from(i)] = 0;
        Some(i)
    }

    /// A buffer's whole space.
    pub fn buf_mut(&mut self, i: u16) -> &mut [u8] {
        &mut self.bufs[usize::from(i)]
    }

    /// A buffer's frame (virtio header + Ethernet) of the length set.
    pub fn frame(&self, i: u16) -> &[u8] {
        &self.bufs[usize::from(i)][..self.lens[usize::from(i)]]
    }

    pub fn frame_mut(&mut self, i: u16) -> &mut [u8] {
        let len = self.lens[usize::from(i)];
        &mut self.bufs[usize::from(i)][..len]
    }

    /// Takes buffer `i`'s memory out, so the frame in it can go through
    /// the router (which owns the pool) again; [`Emitter::put_buf`] puts it
    /// back. Moves a pointer; nothing is allocated.
    pub fn take_buf(&mut self, i: u16) -> Box<[u8]> {
        std::mem::take(&mut self.bufs[usize::from(i)])
    }

    pub fn put_buf(&mut self, i: u16, buf: Box<[u8]>) {
        self.bufs[usize::from(i)] = buf;
    }

    pub fn set_len(&mut self, i: u16, len: usize) {
        self.lens[usize::from(i)] = len.min(BUF_SIZE);
    }

    /// Copies `frame` (virtio header + Ethernet) into a new buffer.
    pub fn copy(&mut self, frame: &[u8]) -> Option<u16> {
        if frame.len() > BUF_SIZE {
            return None;
        }
        let i = self.alloc()?;
        self.bufs[usize::from(i)][..frame.len()].copy_from_slice(frame);
        self.lens[usize::from(i)] = frame.len();
        Some(i)
    }

    /// Queues buffer `i` to be sent after the batch (then freed).
    pub fn send(&mut self, i: u16, to: EmitTo) {
        self.out.push((to, i));
    }

    /// Gives a buffer back.
    pub fn free(&mut self, i: u16) {
        self.free.push(i);
    }

    /// The frames queued by [`Emitter::send`] went out: their buffers come
    /// back (the queue keeps its room).
    pub fn sent(&mut self) {
        while let Some((_, i)) = self.out.pop() {
            self.free.push(i);
        }
    }

    /// Buffers in all.
    pub fn capacity(&self) -> usize {
        self.bufs.len()
    }

    /// Buffers not in use.
    pub fn available(&self) -> usize {
        self.free.len()
    }
}
