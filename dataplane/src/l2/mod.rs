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

/// How long a bridge keeps a learned MAC, in seconds: 1 to 1,000,000
/// (802.1D's default is 300). Checked here, for the switch and the config
/// checker alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgeingTime(u32);

impl AgeingTime {
    pub const MIN: u32 = 1;
    pub const MAX: u32 = 1_000_000;

    pub fn new(secs: u32) -> Result<AgeingTime, crate::ip4::OutOfRange> {
        if (Self::MIN..=Self::MAX).contains(&secs) {
            Ok(AgeingTime(secs))
        } else {
            Err(crate::ip4::OutOfRange {
                value: secs,
                min: Self::MIN,
                max: Self::MAX,
            })
        }
    }

    pub fn secs(self) -> u32 {
        self.0
    }
}
