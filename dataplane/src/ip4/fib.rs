//! The forwarding table: longest-prefix match over IPv4, a [`Poptrie`]
//! (see [`crate::lpm`]) of next-hop ids.
//!
//! Any prefix mix is taken, /0 to /32; only memory (the `max_routes`
//! limit) bounds the table. About 2 to 4 MiB of lookup structure hold a
//! full Internet table, so lookups mostly hit the CPU cache.

use crate::lpm::{LpmError, Poptrie};
use std::net::Ipv4Addr;

pub use crate::wire::ipv4net::mask;

/// Largest next-hop id a route can carry.
pub const MAX_NEXT_HOP: u32 = crate::lpm::poptrie::MAX_VALUE;

/// Why a route change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FibError {
    #[error("prefix length {0} is over 32")]
    BadLength(u8),
    #[error("{0}/{1}: no such route")]
    NoSuchRoute(Ipv4Addr, u8),
    #[error("the routing table is full ({0} routes; raise limits.max_routes in the config file, or patchbayd --max-routes)")]
    Full(usize),
    #[error(
        "too many distinct next hops (gateway and bridge pairs): id {0} is over {MAX_NEXT_HOP}, \
         and ids are not reused until patchbayd restarts"
    )]
    BadNextHop(u32),
}

/// IPv4 longest-prefix-match table mapping prefixes to next-hop ids.
#[derive(Clone, Default)]
pub struct Fib {
    table: Poptrie<u32>,
    /// The last address [`Fib::gateway_route`] resolved, and its route:
    /// thousands of `route add`s through one gateway (an apply, a route
    /// load) walk the routes once. A change to a prefix that covers it
    /// forgets it.
    gateway_memo: Option<(u32, Option<Route>)>,
}

/// A route as the table holds it: (prefix, length, next hop).
type Route = (u32, u8, u32);

impl Fib {
    /// An empty table, with no limit on its routes.
    pub fn new() -> Fib {
        Fib::default()
    }

    /// An empty table taking at most `max_routes` routes.
    pub fn with_max_routes(max_routes: usize) -> Fib {
        Fib {
            table: Poptrie::with_max_routes(max_routes),
            gateway_memo: None,
        }
    }

    /// Most routes the table takes.
    pub fn max_routes(&self) -> usize {
        self.table.max_routes()
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Bytes used by the lookup structure and the routes it is made from.
    pub fn memory_bytes(&self) -> usize {
        self.table.memory_bytes()
    }

    /// Bytes of the lookup structure alone: what lookups touch.
    pub fn lookup_bytes(&self) -> usize {
        self.table.lookup_bytes()
    }

    /// The next hop for `addr`, if any route covers it.
    #[inline]
    pub fn lookup(&self, addr: Ipv4Addr) -> Option<u32> {
        debug_assert!(!self.table.in_batch(), "a lookup in a batch of changes");
        self.table.lookup(u32::from(addr))
    }

    /// The next hop of exactly `prefix/len`, if that route exists.
    pub fn get(&self, prefix: Ipv4Addr, len: u8) -> Option<u32> {
        self.table.get(u32::from(prefix), len)
    }

    /// The route that matches `addr`: (prefix, length, next hop).
    pub fn matching_route(&self, addr: Ipv4Addr) -> Option<(Ipv4Addr, u8, u32)> {
        let (p, len, nh) = self.table.matching(u32::from(addr))?;
        Some((Ipv4Addr::from(p), len, nh))
    }

    /// The route that matches a gateway, as [`Fib::matching_route`] finds
    /// it, remembered until a change covers the gateway.
    pub fn gateway_route(&mut self, gw: Ipv4Addr) -> Option<(Ipv4Addr, u8, u32)> {
        let a = u32::from(gw);
        let found = match self.gateway_memo {
            Some((m, found)) if m == a => found,
            _ => {
                let found = self.table.matching(a);
                self.gateway_memo = Some((a, found));
                found
            }
        };
        found.map(|(p, l, nh)| (Ipv4Addr::from(p), l, nh))
    }

    /// Forgets the remembered gateway if `prefix/len` covers it.
    fn changed(&mut self, prefix: u32, len: u8) {
        if self
            .gateway_memo
            .is_some_and(|(a, _)| mask(a, len) == mask(prefix, len))
        {
            self.gateway_memo = None;
        }
    }

    /// Looks up a batch of addresses (host order); `out[i]` is the next hop
    /// of `addrs[i]` or `u32::MAX`.
    pub fn lookup_batch(&self, addrs: &[u32], out: &mut [u32]) {
        self.table.lookup_batch(addrs, out)
    }

    /// Adds or replaces the route `prefix/len -> next_hop`.
    pub fn insert(&mut self, prefix: Ipv4Addr, len: u8, next_hop: u32) -> Result<(), FibError> {
        if next_hop > MAX_NEXT_HOP {
            return Err(FibError::BadNextHop(next_hop));
        }
        if len > 32 {
            return Err(FibError::BadLength(len));
        }
        self.changed(u32::from(prefix), len);
        match self.table.insert(u32::from(prefix), len, next_hop) {
            Ok(_) => Ok(()),
            Err(LpmError::BadLength(l, _)) => Err(FibError::BadLength(l)),
            Err(LpmError::Full(n)) => Err(FibError::Full(n)),
            Err(LpmError::BadValue(v)) => Err(FibError::BadNextHop(v)),
        }
    }

    /// Starts a batch of route changes: lookups see none of them until
    /// the batch ends, which compiles each region they touched once
    /// ([`Poptrie::begin_batch`](crate::lpm::poptrie::Poptrie::begin_batch)).
    /// `get` and `matching_route` see them at once.
    pub fn begin_batch(&mut self) {
        self.table.begin_batch();
    }

    /// Ends a batch of route changes: lookups see them all from now on.
    pub fn end_batch(&mut self) {
        self.table.end_batch();
    }

    /// Deletes the route `prefix/len`; addresses it covered fall back to the
    /// next shorter route covering them.
    pub fn remove(&mut self, prefix: Ipv4Addr, len: u8) -> Result<u32, FibError> {
        if len > 32 {
            return Err(FibError::BadLength(len));
        }
        let p = mask(u32::from(prefix), len);
        self.changed(p, len);
        self.table
            .remove(p, len)
            .ok_or(FibError::NoSuchRoute(Ipv4Addr::from(p), len))
    }

    /// A copy of the route list, to read off the forwarding thread.
    pub fn route_list(&self) -> RouteList {
        RouteList(
            self.routes()
                .map(|(p, l, nh)| (u32::from(p), l, nh))
                .collect(),
        )
    }

    /// Every route (prefix, length, next hop), in no particular order:
    /// for a search, without the sort.
    pub fn routes_unsorted(&self) -> impl Iterator<Item = (Ipv4Addr, u8, u32)> + '_ {
        self.table
            .rib()
            .iter()
            .map(|(p, l, nh)| (Ipv4Addr::from(p), l, nh))
    }

    /// Every route (prefix, length, next hop), longest prefixes first.
    pub fn routes(&self) -> impl Iterator<Item = (Ipv4Addr, u8, u32)> + '_ {
        let mut all: Vec<(u32, u8, u32)> = self.table.rib().iter().collect();
        all.sort_by_key(|&(p, l, _)| (std::cmp::Reverse(l), p));
        all.into_iter().map(|(p, l, nh)| (Ipv4Addr::from(p), l, nh))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn longest_prefix_wins_whatever_the_insert_order() {
        let mut f = Fib::new();
        f.insert(ip("10.0.0.0"), 8, 1).unwrap();
        f.insert(ip("10.1.2.128"), 25, 3).unwrap();
        f.insert(ip("10.1.0.0"), 16, 2).unwrap();
        f.insert(ip("10.1.2.200"), 32, 4).unwrap();
        f.insert(ip("0.0.0.0"), 0, 9).unwrap();
        assert_eq!(f.lookup(ip("10.9.9.9")), Some(1));
        assert_eq!(f.lookup(ip("10.1.9.9")), Some(2));
        assert_eq!(f.lookup(ip("10.1.2.1")), Some(2));
        assert_eq!(f.lookup(ip("10.1.2.129")), Some(3));
        assert_eq!(f.lookup(ip("10.1.2.200")), Some(4));
        assert_eq!(f.lookup(ip("192.0.2.1")), Some(9));
        assert_eq!(
            f.matching_route(ip("10.1.2.129")),
            Some((ip("10.1.2.128"), 25, 3))
        );
        assert_eq!(f.len(), 5);
    }

    #[test]
    fn deleting_falls_back_to_the_covering_route() {
        let mut f = Fib::new();
        f.insert(ip("10.0.0.0"), 8, 1).unwrap();
        f.insert(ip("10.1.0.0"), 16, 2).unwrap();
        f.insert(ip("10.1.2.128"), 25, 3).unwrap();
        f.insert(ip("10.1.2.130"), 32, 4).unwrap();
        assert_eq!(f.remove(ip("10.1.0.0"), 16), Ok(2));
        assert_eq!(f.lookup(ip("10.1.9.9")), Some(1));
        assert_eq!(f.lookup(ip("10.1.2.1")), Some(1));
        assert_eq!(f.lookup(ip("10.1.2.129")), Some(3));
        f.remove(ip("10.1.2.128"), 25).unwrap();
        assert_eq!(f.lookup(ip("10.1.2.129")), Some(1));
        assert_eq!(f.lookup(ip("10.1.2.130")), Some(4));
        f.remove(ip("10.1.2.130"), 32).unwrap();
        assert_eq!(f.lookup(ip("10.1.2.130")), Some(1));
        f.remove(ip("10.0.0.0"), 8).unwrap();
        assert_eq!(f.lookup(ip("10.1.2.130")), None);
        assert_eq!(
            f.remove(ip("10.0.0.0"), 8),
            Err(FibError::NoSuchRoute(ip("10.0.0.0"), 8))
        );
        assert_eq!(
            f.insert(ip("10.0.0.0"), 33, 1),
            Err(FibError::BadLength(33))
        );
        assert!(f.is_empty());
    }

    #[test]
    fn a_prefix_too_long_is_refused_with_a_gateway_remembered() {
        let mut f = Fib::new();
        f.insert(ip("10.0.0.0"), 24, 1).unwrap();
        f.gateway_route(ip("10.0.0.5"));
        assert_eq!(
            f.insert(ip("10.0.0.0"), 33, 1),
            Err(FibError::BadLength(33))
        );
    }

    #[test]
    fn a_remembered_gateway_follows_the_routes_that_cover_it() {
        let mut f = Fib::new();
        let gw = ip("10.0.0.5");
        assert_eq!(f.gateway_route(gw), None);
        f.insert(ip("10.0.0.0"), 24, 1).unwrap();
        assert_eq!(f.gateway_route(gw), Some((ip("10.0.0.0"), 24, 1)));
        // A change elsewhere keeps it, one covering it is seen.
        f.insert(ip("10.9.0.0"), 16, 2).unwrap();
        assert_eq!(f.gateway_route(gw), Some((ip("10.0.0.0"), 24, 1)));
        f.insert(ip("10.0.0.4"), 30, 3).unwrap();
        assert_eq!(f.gateway_route(gw), Some((ip("10.0.0.4"), 30, 3)));
        f.remove(ip("10.0.0.4"), 30).unwrap();
        f.remove(ip("10.0.0.0"), 24).unwrap();
        assert_eq!(f.gateway_route(gw), None);
        f.insert(ip("0.0.0.0"), 0, 4).unwrap();
        assert_eq!(f.gateway_route(gw), Some((ip("0.0.0.0"), 0, 4)));
    }

    #[test]
    fn agrees_with_a_linear_scan_on_random_routes() {
        // A small xorshift, so the test is the same every run.
        let mut x: u32 = 0x9e37_79b9;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let mut f = Fib::new();
        let mut routes: Vec<(u32, u8, u32)> = Vec::new();
        for i in 0..2000u32 {
            // Cluster prefixes in 10.0.0.0/12 so they overlap a lot.
            let p = 0x0a00_0000 | (next() & 0x000f_ffff);
            let len = [0u8, 5, 8, 12, 16, 20, 22, 24, 25, 28, 30, 32][(next() % 12) as usize];
            let p = mask(p, len);
            f.insert(Ipv4Addr::from(p), len, i).unwrap();
            routes.retain(|r| !(r.0 == p && r.1 == len));
            routes.push((p, len, i));
            if i % 3 == 0 {
                let (rp, rl, _) = routes.swap_remove((next() as usize) % routes.len());
                f.remove(Ipv4Addr::from(rp), rl).unwrap();
            }
        }
        for _ in 0..20_000 {
            let a = 0x0a00_0000 | (next() & 0x000f_ffff);
            let want = routes
                .iter()
                .filter(|r| mask(a, r.1) == r.0)
                .max_by_key(|r| r.1)
                .map(|r| r.2);
            assert_eq!(f.lookup(Ipv4Addr::from(a)), want, "{}", Ipv4Addr::from(a));
        }
    }
}

/// The routes of a [`Fib`], copied out of it: (prefix, length, next hop),
/// longest prefixes first.
#[derive(Debug, Clone, Default)]
pub struct RouteList(Vec<(u32, u8, u32)>);

impl RouteList {
    /// Longest prefixes first.
    pub fn iter(&self) -> impl Iterator<Item = (Ipv4Addr, u8, u32)> + '_ {
        self.0.iter().map(|&(p, l, nh)| (Ipv4Addr::from(p), l, nh))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
