//! The forwarding table: longest-prefix match over IPv4 with DIR-24-8
//! (Gupta, Lin, McKeown, "Routing lookups in hardware at memory access
//! speeds", 1998; the scheme of DPDK's rte_lpm).
//!
//! A lookup is one load from a 2^24-entry table indexed by the top 24 bits
//! of the address and, only for addresses under a prefix longer than /24, a
//! second load from a 256-entry group. Every entry remembers the length of
//! the prefix that wrote it, so a longer prefix is never overwritten by a
//! shorter one, and a deleted prefix is replaced by the next shorter prefix
//! covering it, found in the per-length route sets kept beside the tables.
//!
//! Prefixes shorter than /8 (the default route, above all) live in a
//! 256-entry table of their own, consulted when the /24 level has no
//! route: adding or deleting one writes at most 256 entries instead of up to
//! 2^24, so no route change costs more than a /8's 65,536 writes.

use std::collections::HashMap;
use std::net::Ipv4Addr;

const VALID: u32 = 1 << 31;
const EXT: u32 = 1 << 30;
const DEPTH_SHIFT: u32 = 24;
const DEPTH_MASK: u32 = 0x3f << DEPTH_SHIFT;
const VALUE_MASK: u32 = 0x00ff_ffff;

/// Largest next-hop id a route can carry.
pub const MAX_NEXT_HOP: u32 = VALUE_MASK;
/// Prefixes shorter than this live in the `short` table.
const SHORT: u8 = 8;
/// Most /25-/32 groups: 2^16 groups of 256 entries (64 MiB at most).
const MAX_GROUPS: usize = 1 << 16;

/// Why a route change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FibError {
    #[error("prefix length {0} is over 32")]
    BadLength(u8),
    #[error("{0}/{1}: no such route")]
    NoSuchRoute(Ipv4Addr, u8),
    #[error("too many prefixes longer than /24 in distinct /24s (at most {MAX_GROUPS})")]
    TooManyGroups,
    #[error("next hop id {0} is over {MAX_NEXT_HOP}")]
    BadNextHop(u32),
}

fn entry(next_hop: u32, depth: u8) -> u32 {
    VALID | (u32::from(depth) << DEPTH_SHIFT) | next_hop
}

fn depth(e: u32) -> u8 {
    ((e & DEPTH_MASK) >> DEPTH_SHIFT) as u8
}

pub use crate::wire::ipv4net::mask;

/// IPv4 longest-prefix-match table mapping prefixes to next-hop ids.
pub struct Fib {
    tbl24: Box<[u32]>,
    /// Routes shorter than /8, by the top 8 bits of the address.
    short: [u32; 256],
    any_short: bool,
    tbl8: Vec<u32>,
    free_groups: Vec<u32>,
    /// Routes by prefix length, for deletes and display.
    routes: Vec<HashMap<u32, u32>>,
    len: usize,
}

impl Default for Fib {
    fn default() -> Self {
        Fib::new()
    }
}

impl Fib {
    /// An empty table (64 MiB for the /24 level, taken now).
    pub fn new() -> Fib {
        Fib {
            tbl24: vec![0u32; 1 << 24].into_boxed_slice(),
            short: [0; 256],
            any_short: false,
            tbl8: Vec::new(),
            free_groups: Vec::new(),
            routes: (0..=32).map(|_| HashMap::new()).collect(),
            len: 0,
        }
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes used by the lookup tables and the route sets (approximate).
    pub fn memory_bytes(&self) -> usize {
        let sets: usize = self.routes.iter().map(|m| m.capacity() * 9).sum();
        (self.tbl24.len() + self.tbl8.capacity()) * 4 + sets
    }

    /// The next hop for `addr`, if any route covers it.
    #[inline]
    pub fn lookup(&self, addr: Ipv4Addr) -> Option<u32> {
        let e = self.lookup_raw(u32::from(addr));
        (e & VALID != 0).then_some(e & VALUE_MASK)
    }

    /// The next hop of exactly `prefix/len`, if that route exists.
    pub fn get(&self, prefix: Ipv4Addr, len: u8) -> Option<u32> {
        let set = self.routes.get(usize::from(len))?;
        set.get(&mask(u32::from(prefix), len)).copied()
    }

    /// The route that matches `addr`: (prefix, length, next hop).
    pub fn matching_route(&self, addr: Ipv4Addr) -> Option<(Ipv4Addr, u8, u32)> {
        let e = self.lookup_raw(u32::from(addr));
        if e & VALID == 0 {
            return None;
        }
        let d = depth(e);
        Some((Ipv4Addr::from(mask(u32::from(addr), d)), d, e & VALUE_MASK))
    }

    #[inline]
    fn lookup_raw(&self, a: u32) -> u32 {
        let mut e = self.tbl24[(a >> 8) as usize];
        if e & EXT != 0 {
            e = self.tbl8[((e & VALUE_MASK) as usize) << 8 | (a & 0xff) as usize];
        }
        // Loaded unconditionally (1 KiB, always in cache) so the choice is a
        // conditional move, not a branch that random addresses mispredict.
        // Tested first and almost never changing, so the common case (no
        // route shorter than /8) costs one predictable branch.
        if self.any_short && e & VALID == 0 {
            self.short[(a >> 24) as usize]
        } else {
            e
        }
    }

    /// Looks up a batch of addresses (host order); `out[i]` is the next hop
    /// of `addrs[i]` or `u32::MAX`. The loads of a batch are independent, so
    /// the CPU overlaps their cache misses.
    pub fn lookup_batch(&self, addrs: &[u32], out: &mut [u32]) {
        for (a, o) in addrs.iter().zip(out.iter_mut()) {
            let e = self.lookup_raw(*a);
            *o = if e & VALID != 0 {
                e & VALUE_MASK
            } else {
                u32::MAX
            };
        }
    }

    /// Adds or replaces the route `prefix/len -> next_hop`.
    pub fn insert(&mut self, prefix: Ipv4Addr, len: u8, next_hop: u32) -> Result<(), FibError> {
        if len > 32 {
            return Err(FibError::BadLength(len));
        }
        if next_hop > MAX_NEXT_HOP {
            return Err(FibError::BadNextHop(next_hop));
        }
        let p = mask(u32::from(prefix), len);
        if len > 24
            && self.tbl24[(p >> 8) as usize] & EXT == 0
            && self.free_groups.is_empty()
            && self.tbl8.len() >= MAX_GROUPS << 8
        {
            return Err(FibError::TooManyGroups);
        }
        if self.routes[usize::from(len)].insert(p, next_hop).is_none() {
            self.len += 1;
        }
        if len < SHORT {
            self.rebuild_short();
        } else {
            self.write(p, len, entry(next_hop, len), |old| {
                old & VALID == 0 || depth(old) <= len
            });
        }
        Ok(())
    }

    /// Deletes the route `prefix/len`; addresses it covered fall back to the
    /// next shorter route covering them.
    pub fn remove(&mut self, prefix: Ipv4Addr, len: u8) -> Result<u32, FibError> {
        if len > 32 {
            return Err(FibError::BadLength(len));
        }
        let p = mask(u32::from(prefix), len);
        let next_hop = self.routes[usize::from(len)]
            .remove(&p)
            .ok_or(FibError::NoSuchRoute(Ipv4Addr::from(p), len))?;
        self.len -= 1;
        if len < SHORT {
            self.rebuild_short();
            return Ok(next_hop);
        }
        // Shorter than /8 is the short table's business.
        let cover = (SHORT..len)
            .rev()
            .find_map(|l| {
                self.routes[usize::from(l)]
                    .get(&mask(p, l))
                    .map(|&nh| entry(nh, l))
            })
            .unwrap_or(0);
        self.write(p, len, cover, |old| old & VALID != 0 && depth(old) == len);
        if len > 24 {
            self.collapse(p >> 8);
        }
        Ok(next_hop)
    }

    /// Recomputes the table of routes shorter than /8 from their sets.
    fn rebuild_short(&mut self) {
        self.any_short = self.routes[..usize::from(SHORT)]
            .iter()
            .any(|r| !r.is_empty());
        for (top, slot) in self.short.iter_mut().enumerate() {
            let a = (top as u32) << 24;
            *slot = (0..SHORT)
                .rev()
                .find_map(|l| {
                    self.routes[usize::from(l)]
                        .get(&mask(a, l))
                        .map(|&nh| entry(nh, l))
                })
                .unwrap_or(0);
        }
    }

    /// A copy of the route list, cheap enough to take on the forwarding
    /// thread (two memcpys per prefix length) and read elsewhere.
    pub fn route_list(&self) -> RouteList {
        RouteList(self.routes.clone())
    }

    /// Every route (prefix, length, next hop), longest prefixes first.
    pub fn routes(&self) -> impl Iterator<Item = (Ipv4Addr, u8, u32)> + '_ {
        by_length(&self.routes)
    }

    /// Writes `new` into every entry of `p/len` that `replace` accepts.
    fn write(&mut self, p: u32, len: u8, new: u32, replace: impl Fn(u32) -> bool) {
        if len <= 24 {
            let start = (p >> 8) as usize;
            let count = 1usize << (24 - len);
            for i in start..start + count {
                let e = self.tbl24[i];
                if e & EXT == 0 {
                    if replace(e) {
                        self.tbl24[i] = new;
                    }
                } else {
                    let g = ((e & VALUE_MASK) as usize) << 8;
                    for x in &mut self.tbl8[g..g + 256] {
                        if replace(*x) {
                            *x = new;
                        }
                    }
                }
            }
        } else {
            let i = (p >> 8) as usize;
            let g = self.group_for(i);
            let start = g + (p & 0xff) as usize;
            for x in &mut self.tbl8[start..start + (1usize << (32 - len))] {
                if replace(*x) {
                    *x = new;
                }
            }
        }
    }

    /// The tbl8 group under tbl24 entry `i`, made if there is none yet.
    fn group_for(&mut self, i: usize) -> usize {
        let e = self.tbl24[i];
        if e & EXT != 0 {
            return ((e & VALUE_MASK) as usize) << 8;
        }
        let g = match self.free_groups.pop() {
            Some(g) => g as usize,
            None => {
                self.tbl8.resize(self.tbl8.len() + 256, 0);
                (self.tbl8.len() >> 8) - 1
            }
        };
        // The group starts as what the /24 entry said for all 256 addresses.
        self.tbl8[g << 8..(g + 1) << 8].fill(e);
        self.tbl24[i] = EXT | g as u32;
        g << 8
    }

    /// Folds a group back into its tbl24 entry once no prefix longer than
    /// /24 is left in it.
    fn collapse(&mut self, i: u32) {
        let e = self.tbl24[i as usize];
        if e & EXT == 0 {
            return;
        }
        let g = (e & VALUE_MASK) as usize;
        let group = &self.tbl8[g << 8..(g + 1) << 8];
        if group.iter().all(|&x| x & VALID == 0 || depth(x) <= 24) {
            self.tbl24[i as usize] = group[0];
            self.free_groups.push(g as u32);
        }
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
        assert!(f.free_groups.len() == 1, "the /24's group was folded back");
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

/// The routes of a [`Fib`], copied out of it: (prefix, length, next hop).
#[derive(Debug, Clone, Default)]
pub struct RouteList(Vec<HashMap<u32, u32>>);

impl RouteList {
    /// Longest prefixes first.
    pub fn iter(&self) -> impl Iterator<Item = (Ipv4Addr, u8, u32)> + '_ {
        by_length(&self.0)
    }

    pub fn len(&self) -> usize {
        self.0.iter().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The routes of per-length maps (index = prefix length), longest first.
fn by_length(maps: &[HashMap<u32, u32>]) -> impl Iterator<Item = (Ipv4Addr, u8, u32)> + '_ {
    maps.iter().enumerate().rev().flat_map(|(len, set)| {
        set.iter()
            .map(move |(&p, &nh)| (Ipv4Addr::from(p), len as u8, nh))
    })
}
