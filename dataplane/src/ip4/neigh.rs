//! The ARP cache: which MAC each neighbour IPv4 address has, per bridge
//! (RFC 826), with the states and timers of a host's neighbour table.
//!
//! - `incomplete`: a request is out; up to [`MAX_PENDING`] packets wait for
//!   the answer; it is asked again every second, [`MAX_PROBES`] times, then
//!   the entry `failed` and its packets are answered with ICMP host
//!   unreachable.
//! - `reachable`: confirmed in the last [`REACHABLE_MS`]; then `stale`
//!   (still used), and forgotten after [`STALE_MS`] unless refreshed.
//! - `permanent`: added by the control plane.
//!
//! The table is bounded; only ARP that answers us or is addressed to us
//! creates entries, so a host cannot fill it with made-up senders.

use crate::l2::BridgeId;
use crate::wire::Mac;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::Ipv4Addr;

pub const MAX_PENDING: usize = 4;
pub const MAX_PROBES: u8 = 3;
pub const PROBE_INTERVAL_MS: u64 = 1000;
pub const REACHABLE_MS: u64 = 30_000;
pub const STALE_MS: u64 = 300_000;
pub const FAILED_HOLD_MS: u64 = 3_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NeighState {
    Incomplete,
    Reachable,
    Stale,
    Failed,
    Permanent,
}

impl NeighState {
    pub fn name(self) -> &'static str {
        match self {
            NeighState::Incomplete => "incomplete",
            NeighState::Reachable => "reachable",
            NeighState::Stale => "stale",
            NeighState::Failed => "failed",
            NeighState::Permanent => "permanent",
        }
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
    /// Emitter buffers of packets waiting for the MAC.
    pub pending: [u16; MAX_PENDING],
    pub n_pending: u8,
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

/// The ARP cache of every bridge with a router interface.
pub struct ArpCache {
    map: HashMap<(BridgeId, Ipv4Addr), Neighbor, ahash::RandomState>,
    max: usize,
    reachable_ms: u64,
    stale_ms: u64,
}

impl ArpCache {
    pub fn new(max: usize) -> ArpCache {
        ArpCache {
            map: HashMap::with_capacity_and_hasher(
                max.saturating_mul(2),
                ahash::RandomState::new(),
            ),
            max,
            reachable_ms: REACHABLE_MS,
            stale_ms: STALE_MS,
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

    pub fn get(&self, bridge: BridgeId, ip: Ipv4Addr) -> Option<&Neighbor> {
        self.map.get(&(bridge, ip))
    }

    pub fn get_mut(&mut self, bridge: BridgeId, ip: Ipv4Addr) -> Option<&mut Neighbor> {
        self.map.get_mut(&(bridge, ip))
    }

    /// The MAC of `ip` on `bridge`, or what to do about not knowing it.
    pub fn resolve(&mut self, bridge: BridgeId, ip: Ipv4Addr, now: u64) -> Resolve {
        if let Some(n) = self.map.get(&(bridge, ip)) {
            return match n.state {
                NeighState::Reachable | NeighState::Stale | NeighState::Permanent => {
                    Resolve::Mac(n.mac)
                }
                NeighState::Incomplete => Resolve::Pending { ask: false },
                NeighState::Failed => Resolve::Failed,
            };
        }
        if self.map.len() >= self.max {
            return Resolve::Full;
        }
        self.map.insert(
            (bridge, ip),
            Neighbor {
                mac: Mac::ZERO,
                state: NeighState::Incomplete,
                updated: now,
                probes: 1,
                pending: [0; MAX_PENDING],
                n_pending: 0,
            },
        );
        Resolve::Pending { ask: true }
    }

    /// Records that `ip` is at `mac` (an answer, or a request addressed to
    /// us). Creates the entry if `create`; returns the packets that were
    /// waiting, to be sent now.
    pub fn confirm(
        &mut self,
        bridge: BridgeId,
        ip: Ipv4Addr,
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
                waiting.extend_from_slice(&n.pending[..usize::from(n.n_pending)]);
                n.n_pending = 0;
                true
            }
            None if create && room => {
                self.map.insert(
                    (bridge, ip),
                    Neighbor {
                        mac,
                        state: NeighState::Reachable,
                        updated: now,
                        probes: 0,
                        pending: [0; MAX_PENDING],
                        n_pending: 0,
                    },
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
        ip: Ipv4Addr,
        mac: Mac,
        waiting: &mut Vec<u16>,
    ) -> bool {
        if let Some(n) = self.map.get_mut(&(bridge, ip)) {
            waiting.extend_from_slice(&n.pending[..usize::from(n.n_pending)]);
        } else if self.map.len() >= self.max {
            return false;
        }
        self.map.insert(
            (bridge, ip),
            Neighbor {
                mac,
                state: NeighState::Permanent,
                updated: 0,
                probes: 0,
                pending: [0; MAX_PENDING],
                n_pending: 0,
            },
        );
        true
    }

    /// Removes an entry; its waiting packets go to `dropped`.
    pub fn remove(&mut self, bridge: BridgeId, ip: Ipv4Addr, dropped: &mut Vec<u16>) -> bool {
        match self.map.remove(&(bridge, ip)) {
            Some(n) => {
                dropped.extend_from_slice(&n.pending[..usize::from(n.n_pending)]);
                true
            }
            None => false,
        }
    }

    /// Removes entries `keep` says no to (their waiting packets go to
    /// `dropped`); returns how many went.
    pub fn retain(
        &mut self,
        mut keep: impl FnMut(BridgeId, Ipv4Addr, &Neighbor) -> bool,
        dropped: &mut Vec<u16>,
    ) -> usize {
        let before = self.map.len();
        self.map.retain(|&(b, ip), n| {
            let k = keep(b, ip, n);
            if !k {
                dropped.extend_from_slice(&n.pending[..usize::from(n.n_pending)]);
            }
            k
        });
        before - self.map.len()
    }

    /// Runs the timers. Returns the entries to ask again (bridge, ip) and,
    /// through `failed`, the packets of entries that just failed.
    pub fn tick(&mut self, now: u64, ask: &mut Vec<(BridgeId, Ipv4Addr)>, failed: &mut Vec<u16>) {
        let (reachable_ms, stale_ms) = (self.reachable_ms, self.stale_ms);
        self.map.retain(|&(b, ip), n| {
            let age = now.saturating_sub(n.updated);
            match n.state {
                NeighState::Incomplete if age >= PROBE_INTERVAL_MS * u64::from(n.probes) => {
                    if n.probes >= MAX_PROBES {
                        n.state = NeighState::Failed;
                        n.updated = now;
                        failed.extend_from_slice(&n.pending[..usize::from(n.n_pending)]);
                        n.n_pending = 0;
                    } else {
                        n.probes += 1;
                        ask.push((b, ip));
                    }
                    true
                }
                NeighState::Reachable if age >= reachable_ms => {
                    n.state = NeighState::Stale;
                    true
                }
                NeighState::Stale => age < reachable_ms + stale_ms,
                NeighState::Failed => age < FAILED_HOLD_MS,
                _ => true,
            }
        });
    }

    pub fn entries(&self) -> impl Iterator<Item = (BridgeId, Ipv4Addr, &Neighbor)> {
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
        let mut c = ArpCache::new(8);
        assert_eq!(c.resolve(0, ip(2), 0), Resolve::Pending { ask: true });
        assert_eq!(c.resolve(0, ip(2), 10), Resolve::Pending { ask: false });
        let n = c.get_mut(0, ip(2)).unwrap();
        n.pending[0] = 7;
        n.n_pending = 1;
        let mac: Mac = "02:00:00:00:00:02".parse().unwrap();
        let mut waiting = Vec::new();
        assert!(c.confirm(0, ip(2), mac, 20, false, &mut waiting));
        assert_eq!(waiting, vec![7]);
        assert_eq!(c.resolve(0, ip(2), 30), Resolve::Mac(mac));
    }

    #[test]
    fn retries_then_fails_then_forgets() {
        let mut c = ArpCache::new(8);
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
        let mut c = ArpCache::new(1);
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
}
