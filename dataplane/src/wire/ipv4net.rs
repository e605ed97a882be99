//! IPv4 prefixes: an address with its prefix length, as routes, router
//! addresses and NAT rules name them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// The first `len` bits of `addr` (the rest cleared).
pub fn mask(addr: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        addr & (u32::MAX << (32 - u32::from(len)))
    }
}

/// An address with its prefix length: `192.168.15.10/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Ipv4Net {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        mask(u32::from(ip), self.len) == mask(u32::from(self.addr), self.len)
    }
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask(u32::from(self.addr), self.len))
    }
    /// The subnet, host bits cleared: 192.168.15.5/24 -> 192.168.15.0/24.
    pub fn subnet(&self) -> Ipv4Net {
        Ipv4Net {
            addr: self.network(),
            len: self.len,
        }
    }
    /// The directed broadcast address (none for /31 and /32).
    pub fn broadcast(&self) -> Option<Ipv4Addr> {
        (self.len < 31).then(|| Ipv4Addr::from(u32::from(self.network()) | (u32::MAX >> self.len)))
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Why a string is not `A.B.C.D/LEN`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetParseError {
    #[error("'{0}' is not an IPv4 address")]
    Addr(String),
    #[error("{0}: prefix length over 32")]
    Len(String),
    #[error("'{0}' is not an IPv6 address")]
    Addr6(String),
    #[error("{0}: prefix length over 128")]
    Len6(String),
}

impl FromStr for Ipv4Net {
    type Err = NetParseError;
    /// `A.B.C.D/LEN`, `A.B.C.D` (a /32) or `default` (0.0.0.0/0).
    fn from_str(s: &str) -> Result<Ipv4Net, NetParseError> {
        if s == "default" {
            return Ok(Ipv4Net {
                addr: Ipv4Addr::UNSPECIFIED,
                len: 0,
            });
        }
        let (a, l) = s.split_once('/').unwrap_or((s, "32"));
        let addr = a.parse().map_err(|_| NetParseError::Addr(a.to_string()))?;
        let len: u8 = l.parse().map_err(|_| NetParseError::Len(s.to_string()))?;
        if len > 32 {
            return Err(NetParseError::Len(s.to_string()));
        }
        Ok(Ipv4Net { addr, len })
    }
}

impl Serialize for Ipv4Net {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv4Net {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Ipv4Net, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}
