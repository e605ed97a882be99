//! The IEEE 802.1D learning bridge.
//!
//! - [`fdb`]: the filtering database (MAC -> port), bounded and aged.
//! - [`forward`]: the per-frame stage that learns the source and decides
//!   where the frame goes.

pub mod fdb;
pub mod forward;

pub use fdb::{Fdb, FdbEntry, FdbError, Learn};
pub use forward::{l2_forward, L2Decision};

/// Index of a port in the switch.
pub type PortId = u16;
/// Index of a bridge in the switch; the default bridge `br0` is 0.
pub type BridgeId = u16;
