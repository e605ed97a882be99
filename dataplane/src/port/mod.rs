//! Ports: where frames come from and go to.
//!
//! Every backend implements the one [`Port`] trait: receive a batch, read its
//! frames, release it, send a batch. A frame is always a virtio-net header
//! followed by the Ethernet frame ([`crate::wire::vnet`]), so a frame
//! received on one kind of port is sent unchanged on any other.
//!
//! - [`afpacket`]: an existing interface (veth, NIC) through an AF_PACKET
//!   socket with a memory-mapped TPACKET_V2 receive ring and `sendmmsg`.
//! - [`tap`]: a TAP device patchbay creates or opens.
//! - [`memory`]: frames in memory, for tests and benchmarks.
//!
//! All `unsafe` code of patchbay lives in [`sys`], [`afpacket`] and [`tap`],
//! the modules that talk to the kernel.

pub mod afpacket;
pub mod memory;
pub mod sys;
pub mod tap;
pub mod vxlan;

use crate::counters::{DropReason, PortCounters};
use crate::l2::TagOp;
use crate::wire::vlan::{rewrite_head, HEAD_MAX};
use serde::{Deserialize, Serialize};
use std::io;
use std::os::fd::RawFd;

/// The backend of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortKind {
    Afpacket,
    Tap,
    /// A VXLAN tunnel to remote VTEPs (made by `link add ... type vxlan`).
    Vxlan,
    /// In-process, for tests: never read from a config or a request.
    #[serde(skip_deserializing)]
    Memory,
}

impl PortKind {
    pub fn name(self) -> &'static str {
        match self {
            PortKind::Afpacket => "afpacket",
            PortKind::Tap => "tap",
            PortKind::Vxlan => "vxlan",
            PortKind::Memory => "memory",
        }
    }
}

/// Whether the interface under a port can carry frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    Up,
    /// Administratively down or without carrier.
    Down,
    /// The interface no longer exists.
    Gone,
}

impl LinkState {
    pub fn name(self) -> &'static str {
        match self {
            LinkState::Up => "up",
            LinkState::Down => "down",
            LinkState::Gone => "gone",
        }
    }
}

/// Why a port could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("port {0}: no such interface in this network namespace")]
    NoSuchInterface(String),
    #[error("port {0}: interface name must be 1 to 15 characters without '/' or spaces")]
    BadName(String),
    #[error("port {0}: a loopback or point-to-point interface, not Ethernet")]
    NotEthernet(String),
    #[error("port {0}: an interface of that name exists and is not a TAP device")]
    NotTap(String),
    #[error(
        "port {0}: a VXLAN port needs its settings (link add NAME type vxlan id N local A ...)"
    )]
    NeedsSettings(String),
    /// Settings that cannot be (a VNI another port has on that UDP port).
    #[error("port {0}")]
    Invalid(String),
    #[error("port {name}: {what}: {source}")]
    Os {
        name: String,
        what: &'static str,
        source: io::Error,
    },
}

impl PortError {
    pub(crate) fn os(name: &str, what: &'static str) -> PortError {
        PortError::Os {
            name: name.to_string(),
            what,
            source: io::Error::last_os_error(),
        }
    }
}

/// The frames of one receive batch of a port that reads a frame per
/// system call (TAP, VXLAN): [`crate::BATCH`] buffers of one size, and how
/// many of them hold a frame.
pub(crate) struct RxBatch {
    bufs: Box<[Box<[u8]>]>,
    lens: [usize; crate::BATCH],
    count: usize,
}

impl RxBatch {
    /// Buffers of `size` bytes each, allocated once.
    pub(crate) fn new(size: usize) -> RxBatch {
        RxBatch {
            bufs: (0..crate::BATCH)
                .map(|_| vec![0u8; size].into_boxed_slice())
                .collect(),
            lens: [0; crate::BATCH],
            count: 0,
        }
    }

    /// Forgets the frames: the buffers are free again.
    #[inline]
    pub(crate) fn clear(&mut self) {
        self.count = 0;
    }

    /// How many frames the batch holds.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// The buffer the next frame is read into (the batch is not full).
    #[inline]
    pub(crate) fn next_buf(&mut self) -> &mut [u8] {
        &mut self.bufs[self.count]
    }

    /// Trades the next buffer for `other`, of the same size (the data read
    /// into it goes to `other`).
    #[inline]
    pub(crate) fn swap_next(&mut self, other: &mut Box<[u8]>) {
        std::mem::swap(&mut self.bufs[self.count], other);
    }

    /// Keeps the first `len` bytes of the next buffer as a frame.
    #[inline]
    pub(crate) fn push(&mut self, len: usize) {
        self.lens[self.count] = len;
        self.count += 1;
    }

    #[inline]
    pub(crate) fn frame(&self, index: usize) -> &[u8] {
        &self.bufs[index][..self.lens[index]]
    }

    #[inline]
    pub(crate) fn frame_mut(&mut self, index: usize) -> &mut [u8] {
        &mut self.bufs[index][..self.lens[index]]
    }
}

/// Maps a send error to the drop reason it stands for.
pub(crate) fn tx_drop_reason(err: &io::Error) -> DropReason {
    match err.raw_os_error() {
        Some(libc::EAGAIN | libc::ENOBUFS | libc::ENOMEM) => DropReason::TxBusy,
        Some(libc::ENETDOWN | libc::ENXIO | libc::ENODEV | libc::EIO) => DropReason::TxDown,
        _ => DropReason::TxError,
    }
}

/// A device frames come from and go to.
///
/// Receiving is in three steps so that frames can be forwarded straight out
/// of the receive buffers: [`Port::recv`] makes a batch readable,
/// [`Port::frame`] reads its frames while other ports send them, and
/// [`Port::release`] hands the buffers back.
pub trait Port: Send {
    fn name(&self) -> &str;
    fn kind(&self) -> PortKind;
    /// The descriptor to poll for readability, if the port has one.
    fn raw_fd(&self) -> Option<RawFd>;
    /// A second descriptor to poll along with the first, if the port has
    /// one (an AF_PACKET port's ring of big frames).
    fn extra_fd(&self) -> Option<RawFd> {
        None
    }
    /// Makes up to `max` received frames readable; returns how many. Frames
    /// the port itself had to discard are counted in `counters`.
    fn recv(&mut self, max: usize, counters: &mut PortCounters) -> io::Result<usize>;
    /// Frame `index` of the current batch: virtio-net header + Ethernet frame.
    fn frame(&self, index: usize) -> &[u8];
    /// Frame `index` of the current batch, to be rewritten in place (a
    /// routed frame's MACs and TTL).
    fn frame_mut(&mut self, index: usize) -> &mut [u8];
    /// Hands the current batch's buffers back.
    fn release(&mut self);
    /// Sends the frames (each a virtio-net header + Ethernet frame, with the
    /// VLAN tag change it needs on the way out), counting what was sent and
    /// what was dropped, by reason, in `counters`.
    fn send<'a>(
        &mut self,
        frames: &mut dyn Iterator<Item = TxFrame<'a>>,
        counters: &mut PortCounters,
    );
    /// Asks the kernel whether the interface is up.
    fn link_state(&self) -> LinkState;
    /// Called when polling reported an error on the port's descriptor, and
    /// once a second while the port is not up: picks up the interface's
    /// new state (and re-binds to an interface that came back).
    fn refresh(&mut self) -> LinkState {
        self.link_state()
    }
    /// Whether a received frame is waiting, if the port can tell without a
    /// system call (the next slot of a receive ring); `None` if only polling
    /// its descriptor can tell.
    fn rx_pending(&self) -> Option<bool> {
        None
    }
    /// Frames the kernel dropped before patchbay saw them, since last asked.
    fn take_kernel_drops(&mut self) -> u64 {
        0
    }
    /// Once a second (housekeeping): looks again at what can change under
    /// an up port (an AF_PACKET port: whether its interface takes TSO
    /// frames).
    fn tick(&mut self) {}
    /// The port as a VXLAN port, if it is one: its remote VTEPs.
    fn as_vxlan(&self) -> Option<&vxlan::VxlanPort> {
        None
    }
    fn as_vxlan_mut(&mut self) -> Option<&mut vxlan::VxlanPort> {
        None
    }
}

/// A frame to send: its bytes (virtio-net header, Ethernet frame) and the
/// tag it gains or loses as it leaves ([`crate::l2::vlan`]). A port writes
/// the changed head from a scratch buffer and the rest from where the frame
/// lies, so a tag costs a 26-byte copy, not a copy of the frame.
#[derive(Debug, Clone, Copy)]
pub struct TxFrame<'a> {
    pub bytes: &'a [u8],
    pub tag: TagOp,
}

impl<'a> TxFrame<'a> {
    /// A frame that leaves as it is.
    pub fn plain(bytes: &'a [u8]) -> TxFrame<'a> {
        TxFrame {
            bytes,
            tag: TagOp::Keep,
        }
    }

    /// The frame as it leaves, in two pieces: a head from `scratch` (empty
    /// when the tag is kept) and the rest of the frame. `None` for a tag to
    /// pop from a frame too short to have one.
    #[inline]
    pub fn pieces<'s>(&self, scratch: &'s mut [u8; HEAD_MAX]) -> Option<(&'s [u8], &'a [u8])>
    where
        'a: 's,
    {
        let push = match self.tag {
            TagOp::Keep => return Some((&scratch[..0], self.bytes)),
            TagOp::Pop => None,
            TagOp::Push(tag) => Some(tag),
        };
        let (n, rest) = rewrite_head(self.bytes, push, scratch)?;
        Some((&scratch[..n], &self.bytes[rest..]))
    }

    /// Its length on the wire, virtio-net header left out.
    pub fn wire_len(&self) -> usize {
        let len = self.bytes.len().saturating_sub(crate::wire::VNET_HDR_LEN);
        match self.tag {
            TagOp::Keep => len,
            TagOp::Pop => len.saturating_sub(4),
            TagOp::Push(_) => len + 4,
        }
    }
}

/// Checks that a port of `kind` could be opened on the interface `name`,
/// as [`open`] checks it first, without opening or changing anything: the
/// errors are [`open`]'s. What only opening tells (memory for the rings, a
/// TAP device attached elsewhere) is not checked.
pub fn check(kind: PortKind, name: &str) -> Result<(), PortError> {
    sys::check_ifname(name)?;
    match kind {
        PortKind::Afpacket => afpacket::AfPacketPort::check(name).map(drop),
        PortKind::Tap => tap::TapPort::check(name),
        PortKind::Vxlan | PortKind::Memory => Ok(()),
    }
}

/// Opens a port of `kind` on the interface `name`.
pub fn open(kind: PortKind, name: &str, opts: &PortOptions) -> Result<Box<dyn Port>, PortError> {
    sys::check_ifname(name)?;
    Ok(match kind {
        PortKind::Afpacket => Box::new(afpacket::AfPacketPort::open(name, opts)?),
        PortKind::Tap => Box::new(tap::TapPort::open(name)?),
        // Opened with its settings: vxlan::VxlanPort::open.
        PortKind::Vxlan => return Err(PortError::NeedsSettings(name.to_string())),
        PortKind::Memory => Box::new(memory::MemoryPort::new(name)),
    })
}

/// The default size of an AF_PACKET port's receive ring, in MiB.
pub const DEFAULT_RX_RING_MIB: u32 = 2;

/// Tunables for opening ports.
#[derive(Debug, Clone)]
pub struct PortOptions {
    /// Size of each AF_PACKET receive ring in MiB: 512 slots of 2 KiB per
    /// MiB, and 16 MiB per MiB of socket buffer for frames too big for a
    /// slot.
    pub rx_ring_mib: usize,
}

impl Default for PortOptions {
    fn default() -> Self {
        PortOptions {
            rx_ring_mib: DEFAULT_RX_RING_MIB as usize,
        }
    }
}
