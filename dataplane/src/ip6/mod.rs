//! IPv6: the routing table, in the same longest-prefix-match engine as
//! IPv4's. Forwarding, NDP and router advertisements build on it.

pub mod fib;
pub mod forward;
pub mod nd;
pub mod router;

pub use fib::{Fib6, Fib6Error, NextHop6};
pub use router::{Addr6Error, Iface6, Ip6Counters, Ra, RaChange, Router6};

use crate::wire::Ipv6Net;
use std::net::Ipv6Addr;

/// Why an IPv6 route was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Route6Error {
    #[error("{0}: host bits are set (the prefix is {1})")]
    HostBits(Ipv6Net, Ipv6Net),
    #[error("gateway {0} is link-local: give 'dev BRIDGE' too")]
    LinkLocalNeedsDev(Ipv6Addr),
    #[error("gateway {0} is not a unicast address")]
    BadGateway(Ipv6Addr),
    #[error(
        "gateway {0} is reached by no route out of a bridge{1}; add one first \
         (route add PREFIX dev BRIDGE) or give a link-local gateway with dev"
    )]
    GatewayUnreachable(Ipv6Addr, String),
    #[error("give 'via GATEWAY' or 'dev BRIDGE'")]
    NoNextHop,
    #[error("{0} is the connected route of a router address; it comes and goes with the address")]
    Connected(Ipv6Net),
    #[error(transparent)]
    Fib(#[from] Fib6Error),
}
