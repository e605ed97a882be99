//! The IPv6 routing table: prefixes to next hops (a bridge, and a gateway
//! on it or none), in a [`Poptrie`] over 128-bit keys.

use crate::l2::BridgeId;
use crate::lpm::{LpmError, Poptrie};
use crate::wire::ipnet::{mask6, Ipv6Net};
use std::collections::HashMap;
use std::net::Ipv6Addr;

/// Where a route sends a packet: out of `bridge`, to `gateway` on it or
/// (none) straight to the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NextHop6 {
    pub bridge: BridgeId,
    pub gateway: Option<Ipv6Addr>,
}

/// Why a route change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fib6Error {
    #[error("prefix length {0} is over 128")]
    BadLength(u8),
    #[error("{0}: no such route")]
    NoSuchRoute(Ipv6Net),
    #[error("the IPv6 routing table is full ({0} routes; raise limits.max_routes in the config file, or patchbayd --max-routes)")]
    Full(usize),
    #[error(
        "too many distinct IPv6 next hops (gateway and bridge pairs): id {0} is over the \
         limit, and ids are not reused until patchbayd restarts"
    )]
    TooManyNextHops(u32),
}

/// IPv6 routes, with lookups by longest prefix.
#[derive(Clone, Default)]
pub struct Fib6 {
    table: Poptrie<u128>,
    /// Next hops by id (the table's values); ids are kept once given.
    next_hops: Vec<NextHop6>,
    next_hop_ids: HashMap<NextHop6, u32, ahash::RandomState>,
}

impl Fib6 {
    /// An empty table taking at most `max_routes` routes.
    pub fn with_max_routes(max_routes: usize) -> Fib6 {
        Fib6 {
            table: Poptrie::with_max_routes(max_routes),
            ..Fib6::default()
        }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Bytes in all: the lookup structure and the routes.
    pub fn memory_bytes(&self) -> usize {
        self.table.memory_bytes()
    }

    /// Adds or replaces the route for `net` (host bits ignored); the next
    /// hop it replaced, if any.
    pub fn insert(&mut self, net: Ipv6Net, nh: NextHop6) -> Result<Option<NextHop6>, Fib6Error> {
        // A next hop gets its id once the table has taken the route: one
        // refused uses none up.
        let (id, new) = match self.next_hop_ids.get(&nh) {
            Some(&id) => (id, false),
            None => (self.next_hops.len() as u32, true),
        };
        match self.table.insert(u128::from(net.addr), net.len, id) {
            Ok(old) => {
                if new {
                    self.next_hops.push(nh);
                    self.next_hop_ids.insert(nh, id);
                }
                Ok(old.map(|id| self.next_hops[id as usize]))
            }
            Err(LpmError::BadLength(l, _)) => Err(Fib6Error::BadLength(l)),
            Err(LpmError::Full(n)) => Err(Fib6Error::Full(n)),
            Err(LpmError::BadValue(v)) => Err(Fib6Error::TooManyNextHops(v)),
        }
    }

    /// Removes the route for `net`; its next hop.
    pub fn remove(&mut self, net: Ipv6Net) -> Result<NextHop6, Fib6Error> {
        if net.len > 128 {
            return Err(Fib6Error::BadLength(net.len));
        }
        self.table
            .remove(u128::from(net.addr), net.len)
            .map(|id| self.next_hops[id as usize])
            .ok_or(Fib6Error::NoSuchRoute(net.subnet()))
    }

    /// The next hop of exactly `net`, if that route exists.
    pub fn get(&self, net: Ipv6Net) -> Option<NextHop6> {
        self.table
            .get(u128::from(net.addr), net.len)
            .map(|id| self.next_hops[id as usize])
    }

    /// The route that matches `addr`, read from the routes themselves (so
    /// it sees a batch's changes at once): the prefix and its next hop.
    pub fn matching_route(&self, addr: Ipv6Addr) -> Option<(Ipv6Net, NextHop6)> {
        let (p, len, id) = self.table.matching(u128::from(addr))?;
        let net = Ipv6Net {
            addr: Ipv6Addr::from(p),
            len,
        };
        Some((net, self.next_hops[id as usize]))
    }

    /// The next hop for `addr`, from the lookup structure (the forwarding
    /// path's lookup).
    #[inline]
    pub fn lookup(&self, addr: Ipv6Addr) -> Option<NextHop6> {
        debug_assert!(!self.table.in_batch(), "a lookup in a batch of changes");
        self.table
            .lookup(u128::from(addr))
            .map(|id| self.next_hops[id as usize])
    }

    /// Every route with its next hop, longest prefixes first, then by
    /// prefix.
    pub fn routes(&self) -> Vec<(Ipv6Net, NextHop6)> {
        let mut all: Vec<(Ipv6Net, NextHop6)> = self
            .table
            .rib()
            .iter()
            .map(|(p, len, id)| {
                let net = Ipv6Net {
                    addr: Ipv6Addr::from(p),
                    len,
                };
                (net, self.next_hops[id as usize])
            })
            .collect();
        all.sort_by_key(|&(n, _)| (std::cmp::Reverse(n.len), n.addr));
        all
    }

    /// Removes every route out of `bridge`; how many.
    pub fn forget_bridge(&mut self, bridge: BridgeId) -> usize {
        let gone: Vec<Ipv6Net> = self
            .routes()
            .into_iter()
            .filter(|(_, nh)| nh.bridge == bridge)
            .map(|(n, _)| n)
            .collect();
        self.table.begin_batch();
        for n in &gone {
            let _ = self.table.remove(u128::from(n.addr), n.len);
        }
        self.table.end_batch();
        gone.len()
    }

    /// Starts a batch of changes ([`Poptrie::begin_batch`]).
    pub fn begin_batch(&mut self) {
        self.table.begin_batch();
    }

    /// Ends a batch of changes: lookups see them from now on.
    pub fn end_batch(&mut self) {
        self.table.end_batch();
    }
}

/// Whether `addr` is a link-local unicast address (fe80::/10).
pub fn is_link_local(addr: Ipv6Addr) -> bool {
    mask6(u128::from(addr), 10) == 0xfe80 << 112
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv6Net {
        s.parse().unwrap()
    }

    #[test]
    fn routes_of_any_length_by_longest_prefix() {
        let mut f = Fib6::with_max_routes(4);
        let out = |bridge, gw: Option<&str>| NextHop6 {
            bridge,
            gateway: gw.map(|g| g.parse().unwrap()),
        };
        f.insert(net("::/0"), out(1, Some("fe80::1"))).unwrap();
        f.insert(net("2001:db8::/32"), out(2, None)).unwrap();
        f.insert(net("2001:db8:1::/48"), out(3, Some("2001:db8::9")))
            .unwrap();
        f.insert(net("2001:db8:1::7/128"), out(2, None)).unwrap();
        let at = |f: &Fib6, a: &str| f.lookup(a.parse().unwrap()).map(|nh| nh.bridge);
        assert_eq!(at(&f, "2001:db8:1::7"), Some(2));
        assert_eq!(at(&f, "2001:db8:1::8"), Some(3));
        assert_eq!(at(&f, "2001:db8:2::1"), Some(2));
        assert_eq!(at(&f, "2a00::1"), Some(1));
        assert_eq!(
            f.insert(net("2001:db8:9::/48"), out(1, None)),
            Err(Fib6Error::Full(4))
        );
        assert_eq!(f.routes()[0].0, net("2001:db8:1::7/128"));
        assert_eq!(f.routes()[3].0, net("::/0"));
        assert_eq!(
            f.matching_route("2001:db8:1::9".parse().unwrap())
                .unwrap()
                .0,
            net("2001:db8:1::/48")
        );
        assert_eq!(f.forget_bridge(2), 2);
        assert_eq!(at(&f, "2001:db8:1::7"), Some(3));
        assert_eq!(
            f.remove(net("2001:db8::/32")),
            Err(Fib6Error::NoSuchRoute(net("2001:db8::/32")))
        );
        assert!(is_link_local("fe80::1".parse().unwrap()));
        assert!(is_link_local("febf::1".parse().unwrap()));
        assert!(!is_link_local("fec0::1".parse().unwrap()));
    }
}
