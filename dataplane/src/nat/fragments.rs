//! Fragments: a datagram's later fragments get what NAT did to its first one (RFC 4787 REQ-14).

use super::*;

impl Nat {
    /// The first fragment of datagram `key`, `len` bytes of payload, was
    /// translated to the addresses `to` (`None`: passed as it was): its
    /// later fragments get the same. Returns false if the table is full (it
    /// only holds datagrams in flight, which leave it once whole or after
    /// [`FRAGMENT_MS`]).
    pub fn note_fragmented(
        &mut self,
        key: FragmentKey,
        to: Option<(Ipv4Addr, Ipv4Addr)>,
        len: u32,
        now: u64,
    ) -> bool {
        if self.fragments.len() >= MAX_FRAGMENTED && !self.fragments.contains_key(&key) {
            self.fragments.retain(|_, f| f.until > now);
            if self.fragments.len() >= MAX_FRAGMENTED {
                return false;
            }
        }
        // A first fragment starts its datagram afresh (an identification
        // used again after a lost fragment included).
        self.fragments.insert(
            key,
            FragmentRewrite {
                to,
                until: now + FRAGMENT_MS,
                seen: len,
                total: 0,
            },
        );
        true
    }

    /// A later fragment of datagram `key`, `len` bytes of payload, ending the
    /// datagram at byte `end` if it is the last: what it gets. The datagram
    /// is forgotten once all its bytes came, in whatever order.
    pub fn fragment(&mut self, key: FragmentKey, len: u32, end: Option<u32>) -> FragmentFate {
        let Some(f) = self.fragments.get_mut(&key) else {
            return FragmentFate::Unknown;
        };
        f.seen = f.seen.saturating_add(len);
        if let Some(end) = end {
            f.total = end;
        }
        let to = f.to;
        if f.total != 0 && f.seen >= f.total {
            self.fragments.remove(&key);
        }
        match to {
            Some((src, dst)) => {
                self.counters.translated += 1;
                FragmentFate::Rewrite(src, dst)
            }
            None => FragmentFate::Pass,
        }
    }
}
