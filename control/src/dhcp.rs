//! The DHCP server of each bridge (RFC 2131, 2132): pools, leases, and
//! the answers to clients, on a thread of its own.
//!
//! - [`pool`]: what a bridge hands out (`patchbay dhcp add`), checked.
//! - [`leases`]: who has which address until when; bounded by the pool.
//! - [`server`]: a client's message in, the answer out.

pub mod file;
pub mod leases;
pub mod pool;
pub mod server;
pub mod service;

pub use leases::{Lease, LeaseState, Leases};
pub use pool::{Pool, Reservation};
pub use server::{answer, decode, Decision, Iface, Malformed, Reply};
