//! A port whose frames live in memory, for tests and benchmarks.
//!
//! Frames given to [`MemoryHandle::inject`] are received once; frames set
//! with [`MemoryHandle::replay`] are received again on every `recv`, which
//! lets a benchmark push the same batch through the switch forever without
//! allocating. Sent frames are counted, and kept if capture is on.

use super::{LinkState, Port, PortKind, TxFrame};
use crate::counters::{DropReason, PortCounters};
use crate::wire::vlan::HEAD_MAX;
use crate::wire::vnet::VNET_HDR_LEN;
use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Shared {
    inbox: VecDeque<Vec<u8>>,
    replay: Option<Vec<Vec<u8>>>,
    capture: bool,
    sent: Vec<Vec<u8>>,
    sent_count: u64,
}

/// The test's side of a [`MemoryPort`].
#[derive(Clone, Default)]
pub struct MemoryHandle(Arc<Mutex<Shared>>);

impl MemoryHandle {
    /// Queues frames (virtio header + Ethernet) to be received once.
    pub fn inject(&self, frames: impl IntoIterator<Item = Vec<u8>>) {
        self.0.lock().unwrap().inbox.extend(frames);
    }
    /// Makes every `recv` return these frames.
    pub fn replay(&self, frames: Vec<Vec<u8>>) {
        self.0.lock().unwrap().replay = Some(frames);
    }
    /// Keeps copies of sent frames for [`MemoryHandle::take_sent`].
    pub fn capture(&self, on: bool) {
        self.0.lock().unwrap().capture = on;
    }
    pub fn take_sent(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.0.lock().unwrap().sent)
    }
    pub fn sent_count(&self) -> u64 {
        self.0.lock().unwrap().sent_count
    }
}

/// A port backed by memory.
pub struct MemoryPort {
    name: String,
    /// [`PortKind::Memory`], or the kind of the port it stands in for.
    kind: PortKind,
    shared: MemoryHandle,
    batch: Vec<Vec<u8>>,
    /// The frames to replay as given; each `recv` copies them into `batch`
    /// again, undoing any rewrite in place (a routed frame's TTL and MACs).
    replay: Option<Vec<Vec<u8>>>,
}

impl MemoryPort {
    pub fn new(name: &str) -> MemoryPort {
        MemoryPort::stand_in(name, PortKind::Memory)
    }

    /// A memory port that says it is of `kind`: a stand-in for a real port
    /// in a model of the switch ([`crate::pipeline::Switch::model`]).
    pub fn stand_in(name: &str, kind: PortKind) -> MemoryPort {
        MemoryPort {
            name: name.to_string(),
            kind,
            shared: MemoryHandle::default(),
            batch: Vec::with_capacity(crate::BATCH),
            replay: None,
        }
    }

    pub fn handle(&self) -> MemoryHandle {
        self.shared.clone()
    }
}

/// Prefixes an Ethernet frame with an empty virtio-net header.
pub fn with_vnet_hdr(eth: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; VNET_HDR_LEN];
    f.extend_from_slice(eth);
    f
}

impl Port for MemoryPort {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> PortKind {
        self.kind
    }
    fn raw_fd(&self) -> Option<RawFd> {
        None
    }

    fn recv(&mut self, max: usize, _counters: &mut PortCounters) -> io::Result<usize> {
        if let Some(pristine) = &self.replay {
            for (dst, src) in self.batch.iter_mut().zip(pristine) {
                dst.copy_from_slice(src);
            }
            return Ok(self.batch.len().min(max));
        }
        let mut shared = self.shared.0.lock().unwrap();
        if let Some(frames) = shared.replay.take() {
            self.batch = frames.clone();
            self.replay = Some(frames);
            return Ok(self.batch.len().min(max));
        }
        while self.batch.len() < max {
            match shared.inbox.pop_front() {
                Some(f) => self.batch.push(f),
                None => break,
            }
        }
        Ok(self.batch.len())
    }

    fn frame(&self, index: usize) -> &[u8] {
        &self.batch[index]
    }

    fn frame_mut(&mut self, index: usize) -> &mut [u8] {
        &mut self.batch[index]
    }

    fn release(&mut self) {
        if self.replay.is_none() {
            self.batch.clear();
        }
    }

    fn send<'a>(
        &mut self,
        frames: &mut dyn Iterator<Item = TxFrame<'a>>,
        counters: &mut PortCounters,
    ) {
        let mut shared = self.shared.0.lock().unwrap();
        let mut head = [0u8; HEAD_MAX];
        for f in frames {
            let Some((h, rest)) = f.pieces(&mut head) else {
                counters.drop(DropReason::Runt);
                continue;
            };
            counters.tx_packets += 1;
            counters.tx_bytes += f.wire_len() as u64;
            shared.sent_count += 1;
            if shared.capture {
                shared.sent.push([h, rest].concat());
            }
        }
    }

    fn link_state(&self) -> LinkState {
        LinkState::Up
    }
}
