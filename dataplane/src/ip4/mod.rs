//! IPv4 routing: the forwarding table ([`fib`]).

pub mod fib;

pub use fib::{Fib, FibError};
