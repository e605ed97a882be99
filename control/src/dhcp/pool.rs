//! A bridge's DHCP pool as configured: the range it hands out, the options
//! it gives, and its reservations.

use patchbay_dataplane::wire::{Ipv4Net, Mac};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// Lease times a pool may give, in seconds: a minute to a year.
pub const LEASE_SECS: std::ops::RangeInclusive<u32> = 60..=31_536_000;

/// An address kept for one client (by MAC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub mac: Mac,
    pub ip: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The DHCP service of one bridge (`patchbay dhcp add BRIDGE ...`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub bridge: String,
    /// First and last address handed out (both included).
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
    /// Option 3 (and the default route of option 121, with routes).
    #[serde(default)]
    pub router: Option<Ipv4Addr>,
    /// Option 6.
    #[serde(default)]
    pub dns: Vec<Ipv4Addr>,
    /// Option 51; T1 and T2 (options 58, 59) are 1/2 and 7/8 of it.
    pub lease_secs: u32,
    /// Option 15.
    #[serde(default)]
    pub domain: Option<String>,
    /// Option 26.
    #[serde(default)]
    pub mtu: Option<u16>,
    /// Option 121 (RFC 3442): destination, gateway.
    #[serde(default)]
    pub routes: Vec<(Ipv4Net, Ipv4Addr)>,
    #[serde(default)]
    pub hosts: Vec<Reservation>,
}

impl Pool {
    /// How many addresses the range holds.
    pub fn size(&self) -> u32 {
        u32::from(self.last).saturating_sub(u32::from(self.first)) + 1
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (self.first..=self.last).contains(&ip)
    }

    /// The reservation of `mac`, if it has one.
    pub fn reservation(&self, mac: Mac) -> Option<&Reservation> {
        self.hosts.iter().find(|h| h.mac == mac)
    }

    /// Whether `ip` is kept for a client other than `mac`.
    pub fn reserved_for_other(&self, ip: Ipv4Addr, mac: Mac) -> bool {
        self.hosts.iter().any(|h| h.ip == ip && h.mac != mac)
    }

    /// Checks the pool against the subnet of its bridge's router address
    /// (`net`, if the bridge has one): every address it hands out, its
    /// router and its reservations on that subnet, none of them the
    /// subnet's network or broadcast address or the router's own.
    pub fn check(&self, net: Option<Ipv4Net>) -> Result<(), String> {
        let b = &self.bridge;
        if self.first > self.last {
            return Err(format!(
                "dhcp {b}: range {}-{} goes down; give the lower address first",
                self.first, self.last
            ));
        }
        if !LEASE_SECS.contains(&self.lease_secs) {
            return Err(format!(
                "dhcp {b}: lease {} s: give 60 to 31536000 seconds",
                self.lease_secs
            ));
        }
        if let Some(mtu) = self.mtu.filter(|m| *m < 68) {
            return Err(format!("dhcp {b}: mtu {mtu}: at least 68"));
        }
        let Some(net) = net else {
            return Err(format!(
                "dhcp {b}: the bridge has no IPv4 address; give it one on the pool's subnet \
                 (patchbay addr add ADDR/LEN dev {b})"
            ));
        };
        let on_subnet =
            |ip: Ipv4Addr| net.contains(ip) && ip != net.network() && Some(ip) != net.broadcast();
        for (what, ip) in [("range start", self.first), ("range end", self.last)] {
            if !on_subnet(ip) {
                return Err(format!(
                    "dhcp {b}: {what} {ip} is not a host address of the bridge's subnet {}",
                    net.subnet()
                ));
            }
        }
        if self.contains(net.addr) {
            return Err(format!(
                "dhcp {b}: the range holds the router's own address {}; leave it out",
                net.addr
            ));
        }
        if let Some(r) = self.router.filter(|r| !net.contains(*r)) {
            return Err(format!(
                "dhcp {b}: router {r} is not on the bridge's subnet {}",
                net.subnet()
            ));
        }
        for h in &self.hosts {
            if !on_subnet(h.ip) || h.ip == net.addr {
                return Err(format!(
                    "dhcp {b}: reservation {} for {} is not a free host address of {}",
                    h.ip,
                    h.mac,
                    net.subnet()
                ));
            }
            if self.hosts.iter().any(|o| o.ip == h.ip && o.mac != h.mac) {
                return Err(format!("dhcp {b}: {} is reserved twice", h.ip));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn pool() -> Pool {
        Pool {
            bridge: "br0".into(),
            first: "192.168.15.100".parse().unwrap(),
            last: "192.168.15.102".parse().unwrap(),
            router: Some("192.168.15.10".parse().unwrap()),
            dns: vec!["192.168.15.10".parse().unwrap()],
            lease_secs: 600,
            domain: Some("lab".into()),
            mtu: None,
            routes: Vec::new(),
            hosts: Vec::new(),
        }
    }

    #[test]
    fn a_pool_must_fit_its_bridge() {
        let net: Ipv4Net = "192.168.15.10/24".parse().unwrap();
        let p = pool();
        assert_eq!(p.size(), 3);
        assert!(p.check(Some(net)).is_ok());
        assert!(p.check(None).unwrap_err().contains("no IPv4 address"));
        let mut bad = pool();
        bad.last = "192.168.16.5".parse().unwrap();
        assert!(bad
            .check(Some(net))
            .unwrap_err()
            .contains("not a host address"));
        let mut bad = pool();
        bad.first = "192.168.15.5".parse().unwrap();
        assert!(bad.check(Some(net)).unwrap_err().contains("router's own"));
        let mut bad = pool();
        bad.lease_secs = 5;
        assert!(bad.check(Some(net)).unwrap_err().contains("60 to"));
    }
}
