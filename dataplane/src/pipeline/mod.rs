//! The switch and the loop that drives it.
//!
//! - [`Switch`] owns the ports, the bridges and the FDB, and moves one
//!   received batch at a time through the stages:
//!
//!   ```text
//!   port rx (batch) -> l2-forward (learn src, look up dst) -> port tx (batch per egress port)
//!   ```
//!
//! - [`Engine`] polls every port's descriptor (epoll, through mio), runs the
//!   batches, ages the FDB once a second, and runs the control plane's jobs
//!   between batches, so a change is never seen half made.

mod engine;
mod info;
mod switch;

pub use engine::{Engine, EngineHandle, EngineStopped, Job};
pub use info::{
    name_at, AddrInfo, BridgeInfo, BridgeState, FdbRow, NatRuleInfo, NatRuleState, NatSessionInfo,
    NeighInfo, PortInfo, PortState, RouteFilter, RouteGet, RouteInfo, RouteOrigin, RunningState,
    StatsInfo, VxlanState,
};
pub use switch::{
    DhcpAnswer, DhcpIface, Rejected, RunningSnapshot, Switch, SwitchConfig, SwitchError,
    DEFAULT_BRIDGE, DEFAULT_MAX_ROUTES, MAX_BRIDGES,
};
