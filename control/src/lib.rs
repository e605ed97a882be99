//! patchbay's control plane. It never touches packets: it turns requests
//! from the socket API into jobs for the data plane's engine.
//!
//! - [`api`]: the request/response protocol on the control socket.
//! - [`server`]: the socket server inside `patchbayd`.
//! - [`client`]: a client for the socket, used by the `patchbay` CLI.
//! - [`apply`]: a config file made the running state, all or nothing.
//! - [`config`]: the TOML config file, checked whole.
//! - [`metrics`]: Prometheus text over HTTP, per-stage counters.
//! - [`top`]: the live view.
//! - [`cli`]: the iproute2-style command words and how results are printed.

pub mod api;
pub mod apply;
pub mod cli;
pub mod client;
pub mod config;
pub mod dhcp;
pub mod metrics;
pub mod server;
pub mod top;

/// Where `patchbayd` listens and `patchbay` connects unless `--socket` says
/// otherwise.
pub const DEFAULT_SOCKET: &str = "/run/patchbay/patchbayd.sock";
