//! IPv4 routing (RFC 1812): the forwarding table ([`fib`]), ICMP messages ([`icmp`]) and the router stages
//! ([`router`]).

pub mod dhcp;
pub mod fib;
pub mod icmp;
pub mod reassembly;
pub mod router;
pub mod router_mac;
pub mod rpf;

pub use fib::{Fib, FibError, RouteList};
pub use router::{L3Counters, L3Out, NextHop, Router, RouterError, RouterInterface, L3};
pub use rpf::RpFilter;

/// The MTU of a router interface: the IPv4 minimum of 68 bytes (RFC 791)
/// to a 9,000-byte jumbo frame. Checked here, for the switch and the
/// config checker alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mtu(u16);

impl Mtu {
    pub const MIN: u32 = 68;
    pub const MAX: u32 = 9000;
    pub const DEFAULT: Mtu = Mtu(1500);

    /// `bytes` if it is in range, else the range.
    pub fn new(bytes: u32) -> Result<Mtu, OutOfRange> {
        match u16::try_from(bytes) {
            Ok(b) if (Self::MIN..=Self::MAX).contains(&bytes) => Ok(Mtu(b)),
            _ => Err(OutOfRange {
                value: bytes,
                min: Self::MIN,
                max: Self::MAX,
            }),
        }
    }

    pub const fn get(self) -> u16 {
        self.0
    }
}

/// A number outside the range a setting takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{value} is not between {min} and {max}")]
pub struct OutOfRange {
    pub value: u32,
    pub min: u32,
    pub max: u32,
}
