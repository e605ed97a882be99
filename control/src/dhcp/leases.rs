//! The leases of one pool: which address each client has, offered or
//! bound, until when; and the addresses set aside after a DECLINE.
//!
//! One record per address at most (a client's old record goes when it gets
//! another address), so the table never holds more than the pool's range
//! and reservations: a flood of DISCOVERs from random MACs fills the pool
//! and no more.

use super::pool::Pool;
use patchbay_dataplane::wire::Mac;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// How long an offer holds its address for the client's REQUEST.
pub const OFFER_SECS: u64 = 60;
/// How long a declined address is set aside (RFC 2131 3.1.5: the client
/// found it in use).
pub const DECLINE_SECS: u64 = 600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseState {
    Offered,
    Bound,
}

/// One address and its client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub ip: Ipv4Addr,
    pub mac: Mac,
    /// Option 61, in hex, if the client sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    pub state: LeaseState,
    /// Unix seconds.
    pub expires: u64,
}

/// Who asks: the client identifier if the client sent one (hex), else its
/// MAC (RFC 2131 4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub mac: Mac,
    pub id: Option<String>,
}

impl Lease {
    pub fn is_of(&self, c: &Client) -> bool {
        match (&c.id, &self.client_id) {
            (Some(a), Some(b)) => a == b,
            _ => self.mac == c.mac,
        }
    }

    pub fn is_active(&self, now: u64) -> bool {
        self.expires > now
    }
}

/// Why no address could be picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted;

/// The leases of one pool.
#[derive(Debug, Default, Clone)]
pub struct Leases {
    by_ip: BTreeMap<Ipv4Addr, Lease>,
    declined: BTreeMap<Ipv4Addr, u64>,
}

impl Leases {
    pub fn iter(&self) -> impl Iterator<Item = &Lease> {
        self.by_ip.values()
    }

    pub fn len(&self) -> usize {
        self.by_ip.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }

    /// The lease of `ip`, whoever has it.
    pub fn get(&self, ip: Ipv4Addr) -> Option<&Lease> {
        self.by_ip.get(&ip)
    }

    /// The record of client `c`, if it has one (active or not).
    pub fn of(&self, c: &Client) -> Option<&Lease> {
        self.by_ip.values().find(|l| l.is_of(c))
    }

    /// Whether `ip` may go to `c`: in the pool or reserved for `c`, not
    /// set aside, not reserved for another, not another's active lease.
    pub fn usable(&self, pool: &Pool, ip: Ipv4Addr, c: &Client, now: u64) -> bool {
        let reserved_here = pool.reservation(c.mac).is_some_and(|r| r.ip == ip);
        (pool.contains(ip) || reserved_here)
            && !pool.reserved_for_other(ip, c.mac)
            && self.declined.get(&ip).is_none_or(|&until| until <= now)
            && self
                .by_ip
                .get(&ip)
                .is_none_or(|l| l.is_of(c) || !l.is_active(now))
    }

    /// The address for client `c` (RFC 2131 4.3.1): its reservation, the
    /// address it had, the one it asks for, or a free one (never leased
    /// before, then the one expired longest ago).
    pub fn pick(
        &self,
        pool: &Pool,
        c: &Client,
        requested: Option<Ipv4Addr>,
        now: u64,
    ) -> Result<Ipv4Addr, Exhausted> {
        if let Some(r) = pool.reservation(c.mac) {
            return Ok(r.ip);
        }
        let had = self.of(c).map(|l| l.ip);
        for ip in [had, requested].into_iter().flatten() {
            if self.usable(pool, ip, c, now) {
                return Ok(ip);
            }
        }
        let range = u32::from(pool.first)..=u32::from(pool.last);
        let fresh = range
            .clone()
            .map(Ipv4Addr::from)
            .find(|ip| !self.by_ip.contains_key(ip) && self.usable(pool, *ip, c, now));
        if let Some(ip) = fresh {
            return Ok(ip);
        }
        range
            .map(Ipv4Addr::from)
            .filter(|ip| self.usable(pool, *ip, c, now))
            .min_by_key(|ip| self.by_ip.get(ip).map_or(0, |l| l.expires))
            .ok_or(Exhausted)
    }

    /// Gives `ip` to `c` until `expires`, in `state`; the client's record of
    /// another address goes.
    pub fn put(
        &mut self,
        ip: Ipv4Addr,
        c: &Client,
        hostname: Option<String>,
        state: LeaseState,
        expires: u64,
    ) {
        self.by_ip.retain(|&other, l| other == ip || !l.is_of(c));
        let hostname = hostname.or_else(|| self.by_ip.get(&ip).and_then(|l| l.hostname.clone()));
        self.by_ip.insert(
            ip,
            Lease {
                ip,
                mac: c.mac,
                client_id: c.id.clone(),
                hostname,
                state,
                expires,
            },
        );
    }

    /// The client gives `ip` back (RELEASE): the record stays, expired, so
    /// that the client gets the address again if it is still free.
    pub fn release(&mut self, ip: Ipv4Addr, c: &Client, now: u64) -> bool {
        match self.by_ip.get_mut(&ip) {
            Some(l) if l.is_of(c) => {
                l.expires = now;
                true
            }
            _ => false,
        }
    }

    /// The client found `ip` in use (DECLINE): set aside for a while.
    pub fn decline(&mut self, ip: Ipv4Addr, c: &Client, now: u64) -> bool {
        match self.by_ip.get(&ip) {
            Some(l) if l.is_of(c) => {
                self.by_ip.remove(&ip);
                self.declined.insert(ip, now + DECLINE_SECS);
                true
            }
            _ => false,
        }
    }

    /// Drops what is long over: offers never taken, set-aside addresses
    /// whose time is up. Expired bound leases stay (a client comes back to
    /// its address) until the address goes to another.
    pub fn tidy(&mut self, now: u64) {
        self.by_ip
            .retain(|_, l| l.state == LeaseState::Bound || l.is_active(now));
        self.declined.retain(|_, &mut until| until > now);
    }

    /// Takes leases read back from the lease file (on start); those not
    /// on this pool are left out.
    pub fn restore(&mut self, pool: &Pool, leases: impl IntoIterator<Item = Lease>) {
        for l in leases {
            let reserved = pool.reservation(l.mac).is_some_and(|r| r.ip == l.ip);
            if pool.contains(l.ip) || reserved {
                self.by_ip.insert(l.ip, l);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::pool::Reservation;

    fn pool() -> Pool {
        Pool {
            bridge: "br0".into(),
            first: "10.0.0.100".parse().unwrap(),
            last: "10.0.0.102".parse().unwrap(),
            router: None,
            dns: Vec::new(),
            lease_secs: 600,
            domain: None,
            mtu: None,
            routes: Vec::new(),
            hosts: Vec::new(),
        }
    }

    fn client(n: u8) -> Client {
        Client {
            mac: Mac([2, 0, 0, 0, 0, n]),
            id: None,
        }
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn the_same_client_gets_the_same_address_others_get_others() {
        let p = pool();
        let mut l = Leases::default();
        let a = l.pick(&p, &client(1), None, 0).unwrap();
        l.put(a, &client(1), None, LeaseState::Bound, 600);
        assert_eq!(a, ip("10.0.0.100"));
        assert_eq!(l.pick(&p, &client(1), None, 10), Ok(a));
        let b = l.pick(&p, &client(2), Some(a), 10).unwrap();
        assert_ne!(a, b, "an address in use is not given to another");
        // The asked-for address when free.
        assert_eq!(
            l.pick(&p, &client(3), Some(ip("10.0.0.102")), 10),
            Ok(ip("10.0.0.102"))
        );
        // After expiry (and a release), the client comes back to it.
        assert!(l.release(a, &client(1), 20));
        assert_eq!(l.pick(&p, &client(1), None, 30), Ok(a));
    }

    #[test]
    fn an_exhausted_pool_offers_nothing_and_holds_no_more_records() {
        let p = pool();
        let mut l = Leases::default();
        for n in 1..=3 {
            let a = l.pick(&p, &client(n), None, 0).unwrap();
            l.put(a, &client(n), None, LeaseState::Offered, OFFER_SECS);
        }
        assert_eq!(l.pick(&p, &client(9), None, 1), Err(Exhausted));
        assert_eq!(l.len(), 3);
        // Offers not taken run out, and free their addresses.
        assert!(l.pick(&p, &client(9), None, OFFER_SECS + 1).is_ok());
        l.tidy(OFFER_SECS + 1);
        assert!(l.is_empty());
    }

    #[test]
    fn declined_addresses_are_set_aside_and_reservations_kept() {
        let mut p = pool();
        p.hosts.push(Reservation {
            mac: client(7).mac,
            ip: ip("10.0.0.101"),
            name: None,
        });
        let mut l = Leases::default();
        assert_eq!(l.pick(&p, &client(7), None, 0), Ok(ip("10.0.0.101")));
        let a = l.pick(&p, &client(1), None, 0).unwrap();
        assert_eq!(a, ip("10.0.0.100"));
        l.put(a, &client(1), None, LeaseState::Offered, OFFER_SECS);
        assert!(l.decline(a, &client(1), 5));
        // Not .100 (declined), not .101 (reserved for 7): .102.
        assert_eq!(l.pick(&p, &client(1), None, 6), Ok(ip("10.0.0.102")));
        assert_eq!(
            l.pick(&p, &client(1), None, 5 + DECLINE_SECS),
            Ok(ip("10.0.0.100"))
        );
    }
}
