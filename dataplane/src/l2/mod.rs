//! The IEEE 802.1D learning bridge.
//!
//! - [`fdb`]: the filtering database (MAC -> port), bounded and aged.
//! - [`forward`]: the per-frame stage that learns the source and decides
//!   where the frame goes.

use crate::wire::Mac;

pub mod fdb;
pub mod forward;
pub mod vlan;

pub use fdb::{Fdb, FdbEntry, FdbError, Learn};
pub use forward::{l2_forward, L2Decision, L2Policy};
pub use vlan::{PortVlans, TagOp, Vid};

/// Index of a port in the switch.
pub type PortId = u16;
/// Index of a bridge in the switch; the default bridge `br0` is 0.
pub type BridgeId = u16;

/// Where a frame is switched: a bridge, and the VLAN it was classified to
/// there (0 on a bridge without VLAN filtering).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub bridge: BridgeId,
    pub vid: u16,
}

/// Which link-local groups 01:80:C2:00:00:0N a bridge forwards: bit N for
/// group N, as the Linux bridge's `group_fwd_mask`. Unlike the kernel's,
/// STP (0), LACP (2) and 802.1X (3) may be forwarded, so that labs of
/// network operating systems can run those protocols between nodes; pause
/// frames (1) never are (802.3 annex 31B: they end at the link).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupFwdMask(u16);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("group_fwd_mask {0:#x}: bit 1 (pause frames, 01:80:C2:00:00:01) cannot be forwarded")]
pub struct PauseForwarded(pub u16);

impl GroupFwdMask {
    /// Forwards none: 802.1D's behaviour.
    pub const NONE: GroupFwdMask = GroupFwdMask(0);

    pub fn new(mask: u16) -> Result<GroupFwdMask, PauseForwarded> {
        if mask & 0b10 != 0 {
            return Err(PauseForwarded(mask));
        }
        Ok(GroupFwdMask(mask))
    }

    pub fn bits(self) -> u16 {
        self.0
    }

    /// Whether `dst` (one of 01:80:C2:00:00:00-0F) is forwarded.
    #[inline]
    pub fn forwards(self, dst: Mac) -> bool {
        self.0 >> (dst.0[5] & 0x0f) & 1 != 0
    }
}

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
