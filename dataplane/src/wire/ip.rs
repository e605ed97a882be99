//! What IPv4 and IPv6 share: the protocol number of the payload (IANA's
//! "Assigned Internet Protocol Numbers").

use serde::{Deserialize, Serialize};
use std::fmt;

/// The protocol an IP header says its payload is. Make one from a number
/// with `IpProtocol::from(n)`, which names the ones patchbay looks into:
/// [`IpProtocol::Other`] never holds 1, 6 or 17.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "u8", into = "u8")]
pub enum IpProtocol {
    Icmp,
    Tcp,
    Udp,
    Other(u8),
}

impl From<u8> for IpProtocol {
    #[inline]
    fn from(n: u8) -> IpProtocol {
        match n {
            1 => IpProtocol::Icmp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            n => IpProtocol::Other(n),
        }
    }
}

impl From<IpProtocol> for u8 {
    #[inline]
    fn from(p: IpProtocol) -> u8 {
        match p {
            IpProtocol::Icmp => 1,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Other(n) => n,
        }
    }
}

/// Hashed as its number: one byte, as cheap as the `u8` it stands for.
impl std::hash::Hash for IpProtocol {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u8(u8::from(*self))
    }
}

impl IpProtocol {
    /// Its keyword in IANA's registry, as iproute2 and tcpdump print it;
    /// `None` for the numbers without one here.
    pub fn keyword(self) -> Option<&'static str> {
        Some(match u8::from(self) {
            1 => "icmp",
            2 => "igmp",
            4 => "ipip",
            6 => "tcp",
            17 => "udp",
            41 => "ipv6",
            47 => "gre",
            50 => "esp",
            51 => "ah",
            58 => "ipv6-icmp",
            89 => "ospf",
            103 => "pim",
            112 => "vrrp",
            132 => "sctp",
            136 => "udplite",
            _ => return None,
        })
    }
}

/// Its keyword, else "proto N".
impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.keyword() {
            Some(k) => f.write_str(k),
            None => write!(f, "proto {}", u8::from(*self)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_number_round_trips_and_names_itself() {
        for n in 0..=255u8 {
            let p = IpProtocol::from(n);
            assert_eq!(u8::from(p), n);
            assert!(!matches!(p, IpProtocol::Other(1 | 6 | 17)));
        }
        assert_eq!(IpProtocol::Udp.to_string(), "udp");
        assert_eq!(IpProtocol::from(253).to_string(), "proto 253");
    }
}
