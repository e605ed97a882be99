//! The filtering database: which port each MAC was last seen on, per bridge
//! and VLAN (IEEE 802.1D-2004 7.9; independent VLAN learning, 802.1Q 8.8).
//! A bridge without VLAN filtering learns in VLAN 0.
//!
//! It is bounded: the table is allocated once at its limit, and when it is
//! full new addresses are simply not learned (their frames are flooded and
//! counted), so a host sending random source MACs cannot exhaust memory or
//! push out the stations already known. Learning never allocates.

use super::{BridgeId, PortId};
use crate::wire::Mac;
use std::collections::HashMap;

/// One learned or static entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdbEntry {
    pub port: PortId,
    /// Seconds on the switch clock when the source was last seen.
    pub last_seen: u32,
    /// Added by the control plane: never aged, never moved by learning.
    pub is_static: bool,
}

/// What learning a source address did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learn {
    New,
    Refreshed,
    /// The station moved from another port.
    Moved,
    /// A static entry: left as it is.
    Static,
    /// The table is at its limit; not learned.
    Full,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FdbError {
    #[error("the FDB is full ({0} entries); raise --fdb-max or flush it")]
    Full(usize),
}

/// The filtering database of every bridge, keyed by (bridge, VLAN, MAC).
pub struct Fdb {
    map: HashMap<Key, FdbEntry, ahash::RandomState>,
    max: usize,
}

/// (bridge, VLAN, MAC): the VLAN and MAC in one word, the bridge in
/// another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    vid_mac: u64,
    bridge: BridgeId,
}

impl std::hash::Hash for Key {
    /// One word to hash, not two: the bridge is mixed into the VLAN and
    /// MAC first (keys that collide there are still told apart by `eq`).
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u64(self.vid_mac ^ u64::from(self.bridge).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    }
}

#[inline]
fn key(bridge: BridgeId, vid: u16, mac: Mac) -> Key {
    Key {
        vid_mac: (u64::from(vid) << 48) | mac.to_u64(),
        bridge,
    }
}

fn unkey(k: Key) -> (BridgeId, u16, Mac) {
    (
        k.bridge,
        (k.vid_mac >> 48) as u16,
        Mac::from_u64(k.vid_mac & 0xffff_ffff_ffff),
    )
}

impl Fdb {
    /// An empty table that holds at most `max` entries. The memory is taken
    /// now, twice what `max` needs: with at most half the table live, the
    /// tombstones that deletions leave are always cleaned up in place, never
    /// by growing it. (ahash keys are randomly seeded, so an attacker cannot
    /// aim MACs at one bucket.)
    pub fn new(max: usize) -> Fdb {
        Fdb {
            map: HashMap::with_capacity_and_hasher(
                max.saturating_mul(2),
                ahash::RandomState::new(),
            ),
            max,
        }
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

    /// The entry of `mac` in VLAN `vid` of `bridge`.
    pub fn get(&self, bridge: BridgeId, vid: u16, mac: Mac) -> Option<&FdbEntry> {
        self.map.get(&key(bridge, vid, mac))
    }

    /// The port `mac` was learned on in VLAN `vid` of `bridge`.
    #[inline(always)]
    pub fn lookup(&self, bridge: BridgeId, vid: u16, mac: Mac) -> Option<PortId> {
        self.map.get(&key(bridge, vid, mac)).map(|e| e.port)
    }

    /// Learns that `mac` was seen in VLAN `vid` on `port` at `now` (802.1D
    /// 7.8).
    #[inline]
    pub fn learn(&mut self, bridge: BridgeId, vid: u16, mac: Mac, port: PortId, now: u32) -> Learn {
        let k = key(bridge, vid, mac);
        if let Some(e) = self.map.get_mut(&k) {
            if e.is_static {
                return Learn::Static;
            }
            e.last_seen = now;
            if e.port != port {
                e.port = port;
                return Learn::Moved;
            }
            return Learn::Refreshed;
        }
        if self.map.len() >= self.max {
            return Learn::Full;
        }
        self.map.insert(
            k,
            FdbEntry {
                port,
                last_seen: now,
                is_static: false,
            },
        );
        Learn::New
    }

    /// Adds or replaces a static entry.
    pub fn add_static(
        &mut self,
        bridge: BridgeId,
        vid: u16,
        mac: Mac,
        port: PortId,
    ) -> Result<(), FdbError> {
        let k = key(bridge, vid, mac);
        if !self.map.contains_key(&k) && self.map.len() >= self.max {
            return Err(FdbError::Full(self.max));
        }
        self.map.insert(
            k,
            FdbEntry {
                port,
                last_seen: 0,
                is_static: true,
            },
        );
        Ok(())
    }

    pub fn remove(&mut self, bridge: BridgeId, vid: u16, mac: Mac) -> Option<FdbEntry> {
        self.map.remove(&key(bridge, vid, mac))
    }

    /// Removes the entries `keep` says no to (it is given the bridge, VLAN
    /// and MAC); returns how many went.
    pub fn retain(&mut self, mut keep: impl FnMut(BridgeId, u16, Mac, &FdbEntry) -> bool) -> usize {
        let before = self.map.len();
        self.map.retain(|k, e| {
            let (b, v, m) = unkey(*k);
            keep(b, v, m, e)
        });
        before - self.map.len()
    }

    /// Ages out learned entries not seen for `ageing(bridge)` seconds;
    /// returns how many were removed per bridge through `aged`.
    pub fn age(
        &mut self,
        now: u32,
        ageing: impl Fn(BridgeId) -> u32,
        mut aged: impl FnMut(BridgeId),
    ) {
        self.map.retain(|k, e| {
            let bridge = unkey(*k).0;
            let keep = e.is_static || now.saturating_sub(e.last_seen) < ageing(bridge);
            if !keep {
                aged(bridge);
            }
            keep
        });
    }

    /// Every entry, for display: bridge, VLAN, MAC, entry.
    pub fn entries(&self) -> impl Iterator<Item = (BridgeId, u16, Mac, FdbEntry)> + '_ {
        self.map.iter().map(|(k, e)| {
            let (b, v, m) = unkey(*k);
            (b, v, m, *e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u8) -> Mac {
        Mac([2, 0, 0, 0, 0, n])
    }

    #[test]
    fn learns_refreshes_and_moves() {
        let mut fdb = Fdb::new(16);
        assert_eq!(fdb.learn(0, 0, mac(1), 3, 10), Learn::New);
        assert_eq!(fdb.learn(0, 0, mac(1), 3, 11), Learn::Refreshed);
        assert_eq!(fdb.lookup(0, 0, mac(1)), Some(3));
        assert_eq!(fdb.learn(0, 0, mac(1), 4, 12), Learn::Moved);
        assert_eq!(fdb.lookup(0, 0, mac(1)), Some(4));
        // Bridges, and VLANs in a bridge, are separate learning domains.
        assert_eq!(fdb.lookup(1, 0, mac(1)), None);
        assert_eq!(fdb.lookup(0, 10, mac(1)), None);
        assert_eq!(fdb.learn(0, 10, mac(1), 7, 12), Learn::New);
        assert_eq!(fdb.lookup(0, 10, mac(1)), Some(7));
        assert_eq!(fdb.lookup(0, 0, mac(1)), Some(4));
        let all: Vec<_> = fdb
            .entries()
            .map(|(b, v, m, e)| (b, v, m, e.port))
            .collect();
        assert!(all.contains(&(0, 10, mac(1), 7)), "{all:?}");
    }

    #[test]
    fn bounded_when_full() {
        let mut fdb = Fdb::new(2);
        assert_eq!(fdb.learn(0, 0, mac(1), 1, 0), Learn::New);
        assert_eq!(fdb.learn(0, 0, mac(2), 1, 0), Learn::New);
        assert_eq!(fdb.learn(0, 0, mac(3), 1, 0), Learn::Full);
        assert_eq!(fdb.len(), 2);
        // Known stations keep being refreshed.
        assert_eq!(fdb.learn(0, 0, mac(1), 2, 1), Learn::Moved);
        assert_eq!(fdb.add_static(0, 0, mac(9), 1), Err(FdbError::Full(2)));
    }

    #[test]
    fn ageing_spares_static_entries() {
        let mut fdb = Fdb::new(8);
        fdb.learn(0, 0, mac(1), 1, 0);
        fdb.learn(0, 0, mac(2), 1, 250);
        fdb.add_static(0, 0, mac(3), 2).unwrap();
        assert_eq!(fdb.learn(0, 0, mac(3), 1, 0), Learn::Static);
        let mut aged = 0;
        fdb.age(300, |_| 300, |_| aged += 1);
        assert_eq!(aged, 1);
        assert_eq!(fdb.lookup(0, 0, mac(1)), None);
        assert_eq!(fdb.lookup(0, 0, mac(2)), Some(1));
        assert_eq!(fdb.lookup(0, 0, mac(3)), Some(2));
    }
}
