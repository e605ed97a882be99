//! patchbay's packet engine.
//!
//! The folder tree is the architecture:
//!
//! - [`wire`]: zero-copy views over frame bytes (virtio-net header, Ethernet).
//! - [`port`]: the devices frames come from and go to (AF_PACKET, TAP, memory),
//!   all behind one [`port::Port`] trait.
//! - [`l2`]: the IEEE 802.1D learning bridge: the [`l2::Fdb`] and the
//!   learn/forward stage.
//! - [`pipeline`]: the [`pipeline::Switch`] that owns ports, bridges and tables
//!   and moves a batch of frames through the stages, and the
//!   [`pipeline::Engine`] loop that polls the ports and runs control jobs.
//! - [`arp`]: the neighbour cache (ARP).
//! - [`ip4`]: the IPv4 router: its tables and stages.
//! - [`nat`]: NAT sessions, mappings and rules.
//! - [`counters`]: per-port and per-bridge counters, drops by reason.

pub mod arp;
pub mod capture;
pub mod counters;
pub mod emit;
pub mod ip4;
pub mod ip6;
pub mod l2;
pub mod lpm;
pub mod nat;
pub mod pipeline;
pub mod port;
pub mod random;
pub mod trace;
pub mod wire;

/// Frames are received and processed in batches of at most this many.
pub const BATCH: usize = 64;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
