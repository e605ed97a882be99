//! IPv4 routing (RFC 1812): the forwarding table ([`fib`]), the ARP cache
//! ([`neigh`]), ICMP messages ([`icmp`]) and the router stages
//! ([`router`]).

pub mod fib;
pub mod icmp;
pub mod neigh;
pub mod reassembly;
pub mod router;
pub mod router_mac;
pub mod rpf;

pub use fib::{Fib, FibError, RouteList};
pub use router::{L3Counters, L3Out, NextHop, Router, RouterError, RouterInterface};
pub use rpf::RpFilter;
