//! Sessions ending: their timeouts (RFC 4787 REQ-5, RFC 5382 REQ-5), the sweep that keeps pace with new flows, and room made in a full table.

use super::*;

impl Nat {
    pub(super) fn timeout_ms(&self, s: &Session) -> u64 {
        let secs = match (s.orig.proto, s.state) {
            (IpProtocol::Tcp, ConnState::Established) => self.timeouts.tcp_established,
            (IpProtocol::Tcp, _) => self.timeouts.tcp_transitory,
            (IpProtocol::Udp, _) => self.timeouts.udp,
            _ => self.timeouts.icmp,
        };
        u64::from(secs) * 1000
    }

    /// Reclaims expired sessions, a slice of the table at a time, and
    /// forgets fragmented datagrams past their time.
    pub fn expire(&mut self, now: u64) {
        self.fragments.retain(|_, f| f.until > now);
        self.sweep_some(now, SWEEP_SLICE);
    }

    /// Visits `n` slots of the session table (at most all of them), going
    /// on where the last visit stopped and wrapping at the end, and removes
    /// the expired sessions found. Returns how many.
    pub(super) fn sweep_some(&mut self, now: u64, n: usize) -> usize {
        let len = self.sessions.len();
        let mut removed = 0;
        for _ in 0..n.min(len) {
            if self.sweep >= len {
                self.sweep = 0;
            }
            let i = self.sweep;
            self.sweep += 1;
            let expired = match &self.sessions[i] {
                Some(s) => now.saturating_sub(s.last_seen) >= self.timeout_ms(s),
                None => false,
            };
            if expired {
                self.remove(i as u32);
                self.counters.sessions_expired += 1;
                removed += 1;
            }
        }
        removed
    }

    /// Whether a new session fits: when the table is full, a few slots are
    /// swept first, so expired sessions make room at once.
    pub(super) fn room(&mut self, now: u64) -> bool {
        if self.live >= self.max {
            self.sweep_some(now, SWEEP_WHEN_FULL);
        }
        if self.live >= self.max {
            self.early_drop();
        }
        self.live < self.max
    }

    /// Ends one session that never saw an answer, among the next
    /// [`SWEEP_WHEN_FULL`] slots, to make room for a new one: as Linux's
    /// conntrack drops an unanswered entry when full, so a flood of
    /// made-up flows cannot lock out real ones.
    pub(super) fn early_drop(&mut self) {
        let len = self.sessions.len();
        for k in 0..SWEEP_WHEN_FULL.min(len) {
            let i = (self.sweep + k) % len;
            if self.sessions[i].as_ref().is_some_and(|s| !s.seen_reply) {
                self.remove(i as u32);
                self.counters.early_drops += 1;
                return;
            }
        }
    }
}
