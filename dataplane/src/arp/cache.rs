//! The ARP cache: which MAC each neighbour IPv4 address has, per bridge
//! (RFC 826), with the states and timers of a host's neighbour table, as
//! RFC 4861 7.3 gives them and Linux follows for ARP too.
//!
//! - `incomplete`: a request is out; up to [`MAX_PENDING`] packets wait for
//!   the answer (the newest kept: RFC 1122 2.3.2.2); it is asked again every
//!   second, [`MAX_PROBES`] times, then the entry `failed` and its packets
//!   are answered with ICMP host unreachable.
//! - `reachable`: confirmed in the last reachable time (30 s); then `stale`,
//!   still used as it is.
//! - `delay`: a stale entry was used; if nothing confirms it within
//!   [`DELAY_MS`], it goes to `probe`: requests are sent to its MAC, unicast,
//!   [`MAX_PROBES`] times a second apart. Unanswered, the entry is forgotten,
//!   so the next packet asks by broadcast: a host that changed its MAC
//!   silently is found again within seconds.
//! - `stale` entries unused for the stale time (300 s) are forgotten.
//! - `permanent`: added by the control plane.
//!
//! The table is bounded; only ARP that answers us or is addressed to us
//! creates entries, so a host cannot fill it with made-up senders.
//!
//! Waiting packets are buffers of the router's pool, chained through one
//! array of next-buffer links the size of the pool, so a queue of any length
//! costs no allocation.

use crate::l2::BridgeId;
use crate::wire::Mac;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// Packets that may wait for one neighbour; past it the oldest goes.
pub const MAX_PENDING: u16 = 128;
pub const MAX_PROBES: u8 = 3;
pub const PROBE_INTERVAL_MS: u64 = 1000;
/// RFC 4861 DELAY_FIRST_PROBE_TIME.
pub const DELAY_MS: u64 = 5_000;
pub const REACHABLE_MS: u64 = 30_000;
pub const STALE_MS: u64 = 300_000;
pub const FAILED_HOLD_MS: u64 = 3_000;
/// The end of a chain of waiting buffers.
const NIL: u16 = u16::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NeighState {
    Incomplete,
    Reachable,
    Stale,
    Delay,
    Probe,
    Failed,
    Permanent,
}

impl NeighState {
    pub fn name(self) -> &'static str {
        match self {
            NeighState::Incomplete => "incomplete",
            NeighState::Reachable => "reachable",
            NeighState::Stale => "stale",
            NeighState::Delay => "delay",
            NeighState::Probe => "probe",
            NeighState::Failed => "failed",
            NeighState::Permanent => "permanent",
        }
    }

    /// Whether the entry holds a MAC packets may be sent to.
    pub fn has_mac(self) -> bool {
        !matches!(self, NeighState::Incomplete | NeighState::Failed)
    }
}

/// One neighbour.
#[derive(Debug, Clone)]
pub struct Neighbor {
    pub mac: Mac,
    pub state: NeighState,
    /// Milliseconds on the switch clock of the last change or confirmation.
    pub updated: u64,
    pub probes: u8,
    /// Packets waiting for the MAC: the first and last of a chain of pool
    /// buffers, and how many.
    head: u16,
    tail: u16,
    pub n_pending: u16,
}

impl Neighbor {
    fn new(mac: Mac, state: NeighState, updated: u64, probes: u8) -> Neighbor {
        Neighbor {
            mac,
            state,
            updated,
            probes,
            head: NIL,
            tail: NIL,
            n_pending: 0,
        }
    }
}

/// What resolving a next hop gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolve {
    Mac(Mac),
    /// Unknown: the caller queues the packet and asks (`ask` is true when a
    /// request must go out now, for a new entry).
    Pending {
        ask: bool,
    },
    /// Asked and no answer: the caller answers with host unreachable.
    Failed,
    /// The table is full.
    Full,
}

/// A request the timers want sent: to everyone (`mac` is `None`: an ARP
/// broadcast, a solicitation to the solicited-node group), or to the MAC a
/// neighbour had (a probe of a stale entry in use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ask<A = Ipv4Addr> {
    pub bridge: BridgeId,
    pub ip: A,
    pub mac: Option<Mac>,
}

/// An address a neighbour cache is keyed by: IPv4 (ARP) or IPv6 (NDP).
pub trait NeighAddr: Copy + Eq + std::hash::Hash + std::fmt::Debug {}
impl NeighAddr for Ipv4Addr {}
impl NeighAddr for std::net::Ipv6Addr {}

/// The ARP cache of every bridge with a router interface.
pub type ArpCache = NeighborCache<Ipv4Addr>;
/// The IPv6 neighbour cache (RFC 4861 7.3), the same states and timers.
pub type NdCache = NeighborCache<std::net::Ipv6Addr>;

/// A neighbour cache: per bridge, which MAC each address has.
pub struct NeighborCache<A: NeighAddr> {
    map: HashMap<(BridgeId, A), Neighbor, ahash::RandomState>,
    max: usize,
    reachable_ms: u64,
    stale_ms: u64,
    /// The next waiting buffer after each buffer of the pool.
    next: Vec<u16>,
}

/// Moves a neighbour's chain of waiting buffers into `out`.
fn drain(next: &[u16], n: &mut Neighbor, out: &mut Vec<u16>) {
    let mut i = n.head;
    while i != NIL {
        out.push(i);
        i = next[usize::from(i)];
    }
    n.head = NIL;
    n.tail = NIL;
    n.n_pending = 0;
}

impl<A: NeighAddr> NeighborCache<A> {
    /// A cache of at most `max` entries, whose packets wait in buffers of a
    /// pool of `buffers`.
    pub fn new(max: usize, buffers: usize) -> NeighborCache<A> {
        NeighborCache {
            map: HashMap::with_capacity_and_hasher(
                max.saturating_mul(2),
                ahash::RandomState::new(),
            ),
            max,
            reachable_ms: REACHABLE_MS,
            stale_ms: STALE_MS,
            next: vec![NIL; buffers],
        }
    }

    /// Sets how long an entry stays reachable after a confirmation, and how
    /// long a stale one is kept, in milliseconds.
    pub fn set_timers(&mut self, reachable_ms: u64, stale_ms: u64) {
        self.reachable_ms = reachable_ms.max(1);
        self.stale_ms = stale_ms.max(1);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    pub fn max(&self) -> usize {
        self.max
    }

    pub fn get(&self, bridge: BridgeId, ip: A) -> Option<&Neighbor> {
        self.map.get(&(bridge, ip))
    }

    /// The MAC of `ip` on `bridge`, or what to do about not knowing it. A
    /// stale entry that is used starts its delay before a probe.
    pub fn resolve(&mut self, bridge: BridgeId, ip: A, now: u64) -> Resolve {
        if let Some(n) = self.map.get_mut(&(bridge, ip)) {
            return match n.state {
                NeighState::Stale => {
                    n.state = NeighState::Delay;
                    n.updated = now;
                    Resolve::Mac(n.mac)
                }
                NeighState::Reachable
                | NeighState::Delay
                | NeighState::Probe
                | NeighState::Permanent => Resolve::Mac(n.mac),
                NeighState::Incomplete => Resolve::Pending { ask: false },
                NeighState::Failed => Resolve::Failed,
            };
        }
        if self.map.len() >= self.max {
            return Resolve::Full;
        }
        self.map.insert(
            (bridge, ip),
            Neighbor::new(Mac::ZERO, NeighState::Incomplete, now, 1),
        );
        Resolve::Pending { ask: true }
    }

    /// What [`NeighborCache::resolve`] would give, changing nothing (for dry runs).
    pub fn peek(&self, bridge: BridgeId, ip: A) -> Resolve {
        match self.map.get(&(bridge, ip)) {
            Some(n) if n.state.has_mac() => Resolve::Mac(n.mac),
            Some(n) if n.state == NeighState::Failed => Resolve::Failed,
            Some(_) => Resolve::Pending { ask: false },
            None => Resolve::Pending { ask: true },
        }
    }

    /// Puts pool buffer `buf` on the queue of `ip`, an incomplete entry.
    /// Returns `Err(buf)` if there is no such entry (the caller frees it),
    /// and `Ok(Some(oldest))` when the queue was full: the oldest buffer,
    /// taken off to make room, for the caller to free.
    pub fn queue(&mut self, bridge: BridgeId, ip: A, buf: u16) -> Result<Option<u16>, u16> {
        let Some(n) = self.map.get_mut(&(bridge, ip)) else {
            return Err(buf);
        };
        if usize::from(buf) >= self.next.len() || n.state != NeighState::Incomplete {
            return Err(buf);
        }
        let next = &mut self.next;
        next[usize::from(buf)] = NIL;
        if n.tail == NIL {
            n.head = buf;
        } else {
            next[usize::from(n.tail)] = buf;
        }
        n.tail = buf;
        n.n_pending += 1;
        if n.n_pending <= MAX_PENDING {
            return Ok(None);
        }
        let oldest = n.head;
        n.head = next[usize::from(oldest)];
        n.n_pending -= 1;
        Ok(Some(oldest))
    }

    /// Takes the oldest waiting packet of `ip`, if any (to make room in the
    /// pool for a newer one).
    pub fn unqueue_oldest(&mut self, bridge: BridgeId, ip: A) -> Option<u16> {
        let n = self.map.get_mut(&(bridge, ip))?;
        if n.head == NIL {
            return None;
        }
        let oldest = n.head;
        n.head = self.next[usize::from(oldest)];
        if n.head == NIL {
            n.tail = NIL;
        }
        n.n_pending -= 1;
        Some(oldest)
    }

    /// Records that `ip` is at `mac` (an answer, or a request addressed to
    /// us). Creates the entry if `create`; returns the packets that were
    /// waiting, to be sent now.
    pub fn confirm(
        &mut self,
        bridge: BridgeId,
        ip: A,
        mac: Mac,
        now: u64,
        create: bool,
        waiting: &mut Vec<u16>,
    ) -> bool {
        let room = self.map.len() < self.max;
        match self.map.get_mut(&(bridge, ip)) {
            Some(n) if n.state == NeighState::Permanent => false,
            Some(n) => {
                n.mac = mac;
                n.state = NeighState::Reachable;
                n.updated = now;
                n.probes = 0;
                drain(&self.next, n, waiting);
                true
            }
            None if create && room => {
                self.map.insert(
                    (bridge, ip),
                    Neighbor::new(mac, NeighState::Reachable, now, 0),
                );
                true
            }
            None => false,
        }
    }

    /// Adds or replaces a permanent entry.
    pub fn add_permanent(
        &mut self,
        bridge: BridgeId,
        ip: A,
        mac: Mac,
        waiting: &mut Vec<u16>,
    ) -> bool {
        if let Some(n) = self.map.get_mut(&(bridge, ip)) {
            drain(&self.next, n, waiting);
        } else if self.map.len() >= self.max {
            return false;
        }
        self.map.insert(
            (bridge, ip),
            Neighbor::new(mac, NeighState::Permanent, 0, 0),
        );
        true
    }

    /// Removes an entry; its waiting packets go to `dropped`.
    pub fn remove(&mut self, bridge: BridgeId, ip: A, dropped: &mut Vec<u16>) -> bool {
        match self.map.remove(&(bridge, ip)) {
            Some(mut n) => {
                drain(&self.next, &mut n, dropped);
                true
            }
            None => false,
        }
    }

    /// Removes entries `keep` says no to (their waiting packets go to
    /// `dropped`); returns how many went.
    pub fn retain(
        &mut self,
        mut keep: impl FnMut(BridgeId, A, &Neighbor) -> bool,
        dropped: &mut Vec<u16>,
    ) -> usize {
        let before = self.map.len();
        let next = &self.next;
        self.map.retain(|&(b, ip), n| {
            let k = keep(b, ip, n);
            if !k {
                drain(next, n, dropped);
            }
            k
        });
        before - self.map.len()
    }

    /// Runs the timers. Gives the requests to send through `ask` and,
    /// through `failed`, the packets of entries that just failed.
    pub fn tick(&mut self, now: u64, ask: &mut Vec<Ask<A>>, failed: &mut Vec<u16>) {
        let (reachable_ms, stale_ms) = (self.reachable_ms, self.stale_ms);
        let next = &self.next;
        self.map.retain(|&(bridge, ip), n| {
            let age = now.saturating_sub(n.updated);
            match n.state {
                NeighState::Incomplete if age >= PROBE_INTERVAL_MS * u64::from(n.probes) => {
                    if n.probes >= MAX_PROBES {
                        n.state = NeighState::Failed;
                        n.updated = now;
                        drain(next, n, failed);
                    } else {
                        n.probes += 1;
                        ask.push(Ask {
                            bridge,
                            ip,
                            mac: None,
                        });
                    }
                    true
                }
                NeighState::Reachable if age >= reachable_ms => {
                    n.state = NeighState::Stale;
                    n.updated = now;
                    true
                }
                NeighState::Delay if age >= DELAY_MS => {
                    n.state = NeighState::Probe;
                    n.updated = now;
                    n.probes = 1;
                    ask.push(Ask {
                        bridge,
                        ip,
                        mac: Some(n.mac),
                    });
                    true
                }
                NeighState::Probe if age >= PROBE_INTERVAL_MS * u64::from(n.probes) => {
                    if n.probes >= MAX_PROBES {
                        // Unanswered: forgotten, so the next packet asks
                        // everyone (the host may have a new MAC).
                        return false;
                    }
                    n.probes += 1;
                    ask.push(Ask {
                        bridge,
                        ip,
                        mac: Some(n.mac),
                    });
                    true
                }
                NeighState::Stale => age < stale_ms,
                NeighState::Failed => age < FAILED_HOLD_MS,
                _ => true,
            }
        });
    }

    pub fn entries(&self) -> impl Iterator<Item = (BridgeId, A, &Neighbor)> {
        self.map.iter().map(|(&(b, ip), n)| (b, ip, n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, n)
    }

    #[test]
    fn resolves_after_a_reply_and_hands_back_waiting_packets() {
        let mut c = ArpCache::new(8, 16);
        assert_eq!(c.resolve(0, ip(2), 0), Resolve::Pending { ask: true });
        assert_eq!(c.resolve(0, ip(2), 10), Resolve::Pending { ask: false });
        assert_eq!(c.queue(0, ip(2), 7), Ok(None));
        let mac: Mac = "02:00:00:00:00:02".parse().unwrap();
        let mut waiting = Vec::new();
        assert!(c.confirm(0, ip(2), mac, 20, false, &mut waiting));
        assert_eq!(waiting, vec![7]);
        assert_eq!(c.resolve(0, ip(2), 30), Resolve::Mac(mac));
    }

    #[test]
    fn retries_then_fails_then_forgets() {
        let mut c = ArpCache::new(8, 16);
        c.resolve(0, ip(3), 0);
        let (mut ask, mut failed) = (Vec::new(), Vec::new());
        c.tick(1000, &mut ask, &mut failed);
        c.tick(2000, &mut ask, &mut failed);
        assert_eq!(ask.len(), 2, "asked again twice (3 requests in all)");
        c.tick(3000, &mut ask, &mut failed);
        assert_eq!(c.resolve(0, ip(3), 3000), Resolve::Failed);
        c.tick(3000 + FAILED_HOLD_MS, &mut ask, &mut failed);
        assert!(c.get(0, ip(3)).is_none());
    }

    #[test]
    fn bounded_and_not_poisoned_by_strangers() {
        let mut c = ArpCache::new(1, 16);
        let mac: Mac = "02:00:00:00:00:09".parse().unwrap();
        let mut w = Vec::new();
        assert!(
            !c.confirm(0, ip(9), mac, 0, false, &mut w),
            "not asked, not created"
        );
        assert!(c.confirm(0, ip(9), mac, 0, true, &mut w));
        assert!(!c.confirm(0, ip(10), mac, 0, true, &mut w), "full");
        assert_eq!(c.resolve(0, ip(11), 0), Resolve::Full);
    }

    #[test]
    fn the_queue_keeps_the_newest_packets() {
        let mut c = ArpCache::new(8, 512);
        c.resolve(0, ip(4), 0);
        let mut dropped = Vec::new();
        for buf in 0..300u16 {
            if let Ok(Some(old)) = c.queue(0, ip(4), buf) {
                dropped.push(old);
            }
        }
        let expect: Vec<u16> = (0..300 - MAX_PENDING).collect();
        assert_eq!(dropped, expect, "the oldest go first");
        let mut waiting = Vec::new();
        let mac: Mac = "02:00:00:00:00:04".parse().unwrap();
        c.confirm(0, ip(4), mac, 10, false, &mut waiting);
        let expect: Vec<u16> = (300 - MAX_PENDING..300).collect();
        assert_eq!(waiting, expect, "the newest are sent, in order");
    }

    #[test]
    fn a_stale_entry_in_use_is_probed_unicast_then_forgotten() {
        let mut c = ArpCache::new(8, 16);
        let mac: Mac = "02:00:00:00:00:05".parse().unwrap();
        let mut w = Vec::new();
        c.confirm(0, ip(5), mac, 0, true, &mut w);
        let (mut ask, mut failed) = (Vec::new(), Vec::new());
        c.tick(REACHABLE_MS, &mut ask, &mut failed);
        assert_eq!(c.get(0, ip(5)).unwrap().state, NeighState::Stale);
        // Used while stale: still sent to, and a probe follows the delay.
        assert_eq!(c.resolve(0, ip(5), REACHABLE_MS + 1), Resolve::Mac(mac));
        assert_eq!(c.get(0, ip(5)).unwrap().state, NeighState::Delay);
        let t = REACHABLE_MS + 1 + DELAY_MS;
        c.tick(t, &mut ask, &mut failed);
        let probe = Ask {
            bridge: 0,
            ip: ip(5),
            mac: Some(mac),
        };
        assert_eq!(ask, vec![probe]);
        c.tick(t + 1000, &mut ask, &mut failed);
        c.tick(t + 2000, &mut ask, &mut failed);
        assert_eq!(ask.len(), MAX_PROBES as usize);
        c.tick(t + 3000, &mut ask, &mut failed);
        assert!(c.get(0, ip(5)).is_none(), "unanswered: forgotten");
        assert_eq!(
            c.resolve(0, ip(5), t + 3000),
            Resolve::Pending { ask: true }
        );
        // An answer to a probe makes it reachable again.
        let mut c2 = ArpCache::new(8, 16);
        c2.confirm(0, ip(6), mac, 0, true, &mut w);
        c2.tick(REACHABLE_MS, &mut ask, &mut failed);
        c2.resolve(0, ip(6), REACHABLE_MS);
        c2.tick(REACHABLE_MS + DELAY_MS, &mut ask, &mut failed);
        c2.confirm(0, ip(6), mac, REACHABLE_MS + DELAY_MS + 10, false, &mut w);
        assert_eq!(c2.get(0, ip(6)).unwrap().state, NeighState::Reachable);
    }
}
