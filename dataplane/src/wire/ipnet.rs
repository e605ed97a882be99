//! IPv6 prefixes, and a prefix of either family: what routes name.

use super::ipv4net::{Ipv4Net, NetParseError};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

/// The first `len` bits of `addr` (the rest cleared).
pub fn mask6(addr: u128, len: u8) -> u128 {
    match len {
        0 => 0,
        l if l >= 128 => addr,
        l => addr & !(u128::MAX >> l),
    }
}

/// An IPv6 address with its prefix length: `2001:db8:1::/48`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv6Net {
    pub addr: Ipv6Addr,
    pub len: u8,
}

impl Ipv6Net {
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        mask6(u128::from(ip), self.len) == mask6(u128::from(self.addr), self.len)
    }
    pub fn network(&self) -> Ipv6Addr {
        Ipv6Addr::from(mask6(u128::from(self.addr), self.len))
    }
    /// The prefix, host bits cleared.
    pub fn subnet(&self) -> Ipv6Net {
        Ipv6Net {
            addr: self.network(),
            len: self.len,
        }
    }
}

impl fmt::Display for Ipv6Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Ipv6Net {
    type Err = NetParseError;
    /// `ADDR/LEN`, or `ADDR` (a /128).
    fn from_str(s: &str) -> Result<Ipv6Net, NetParseError> {
        let (a, l) = s.split_once('/').unwrap_or((s, "128"));
        let addr = a.parse().map_err(|_| NetParseError::Addr6(a.to_string()))?;
        let len: u8 = l.parse().map_err(|_| NetParseError::Len6(s.to_string()))?;
        if len > 128 {
            return Err(NetParseError::Len6(s.to_string()));
        }
        Ok(Ipv6Net { addr, len })
    }
}

/// A prefix of either family, as a route names its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpNet {
    V4(Ipv4Net),
    V6(Ipv6Net),
}

impl IpNet {
    /// The prefix, host bits cleared.
    pub fn subnet(&self) -> IpNet {
        match self {
            IpNet::V4(n) => IpNet::V4(n.subnet()),
            IpNet::V6(n) => IpNet::V6(n.subnet()),
        }
    }
    /// Whether host bits are set (`10.1.2.3/24`).
    pub fn has_host_bits(&self) -> bool {
        self.subnet() != *self
    }
    /// Whether `ip` is inside it (never across families).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self, ip) {
            (IpNet::V4(n), IpAddr::V4(a)) => n.contains(a),
            (IpNet::V6(n), IpAddr::V6(a)) => n.contains(a),
            _ => false,
        }
    }
    pub fn prefix_len(&self) -> u8 {
        match self {
            IpNet::V4(n) => n.len,
            IpNet::V6(n) => n.len,
        }
    }
    pub fn is_ipv6(&self) -> bool {
        matches!(self, IpNet::V6(_))
    }
}

impl From<Ipv4Net> for IpNet {
    fn from(n: Ipv4Net) -> IpNet {
        IpNet::V4(n)
    }
}

impl From<Ipv6Net> for IpNet {
    fn from(n: Ipv6Net) -> IpNet {
        IpNet::V6(n)
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpNet::V4(n) => n.fmt(f),
            IpNet::V6(n) => n.fmt(f),
        }
    }
}

impl FromStr for IpNet {
    type Err = NetParseError;
    /// An IPv4 prefix (or `default`, 0.0.0.0/0) or an IPv6 one (an address
    /// with a colon).
    fn from_str(s: &str) -> Result<IpNet, NetParseError> {
        if s.contains(':') {
            s.parse().map(IpNet::V6)
        } else {
            s.parse().map(IpNet::V4)
        }
    }
}

macro_rules! serde_as_string {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
                String::deserialize(d)?
                    .parse()
                    .map_err(serde::de::Error::custom)
            }
        }
    };
}

serde_as_string!(Ipv6Net);
serde_as_string!(IpNet);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_of_both_families_parse_print_and_mask() {
        let n: IpNet = "2001:db8:1::5/48".parse().unwrap();
        assert_eq!(n.to_string(), "2001:db8:1::5/48");
        assert!(n.has_host_bits());
        assert_eq!(n.subnet().to_string(), "2001:db8:1::/48");
        assert!(n.contains("2001:db8:1:ffff::1".parse().unwrap()));
        assert!(!n.contains("2001:db8:2::1".parse().unwrap()));
        assert!(!n.contains("10.0.0.1".parse().unwrap()));
        assert_eq!("::/0".parse::<IpNet>().unwrap().prefix_len(), 0);
        assert_eq!("fe80::1".parse::<IpNet>().unwrap().prefix_len(), 128);
        assert_eq!(
            "default".parse::<IpNet>().unwrap(),
            IpNet::V4("0.0.0.0/0".parse().unwrap())
        );
        assert!("2001:db8::/129".parse::<IpNet>().is_err());
        assert!("2001:zz8::/64".parse::<IpNet>().is_err());
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        let json = serde_json::to_string(&n).unwrap();
        assert_eq!(json, "\"2001:db8:1::5/48\"");
        assert_eq!(serde_json::from_str::<IpNet>(&json).unwrap(), n);
        assert_eq!(mask6(u128::MAX, 128), u128::MAX);
        assert_eq!(mask6(u128::MAX, 1), 1 << 127);
    }
}
