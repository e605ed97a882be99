//! What the router sends ICMP errors with (RFC 1812 4.3): their type of
//! service, how much they quote, and their rate limits.

use std::net::Ipv4Addr;

// The messages themselves (types, codes, views and emit) are in
// `wire::icmp`; here is what a router decides about sending them.

/// The type of service of the errors a router makes: precedence 6,
/// internetwork control (RFC 1812 4.3.2.5).
pub const TOS_INTERNETWORK_CONTROL: u8 = 0xc0;

/// Errors one destination may get in a burst, and the milliseconds that
/// earn one more: as Linux's `icmp_ratelimit` (1 s) with its burst of 6.
pub const PER_DEST_BURST: u64 = 6;
pub const PER_DEST_INTERVAL_MS: u64 = 1000;
/// Destinations whose buckets are remembered (a direct-mapped table: a
/// destination that lands on a taken slot takes it over with a full
/// bucket, so the table is bounded and no one can be shut out).
const DEST_SLOTS: usize = 1024;

/// A token bucket per destination of ICMP errors (RFC 1812 4.3.2.8), so one
/// sender's flood of bad packets draws a few errors, not the router's whole
/// budget.
pub struct ErrorLimiter {
    /// (destination, credit in ms, when last topped up).
    slots: Box<[(Ipv4Addr, u64, u64)]>,
    seed: u32,
}

impl ErrorLimiter {
    pub fn new(seed: u32) -> ErrorLimiter {
        ErrorLimiter {
            slots: vec![(Ipv4Addr::UNSPECIFIED, 0, 0); DEST_SLOTS].into_boxed_slice(),
            seed,
        }
    }

    /// Whether an error to `dst` may go now; takes a token if so.
    pub fn allow(&mut self, dst: Ipv4Addr, now: u64) -> bool {
        const FULL: u64 = PER_DEST_BURST * PER_DEST_INTERVAL_MS;
        let h = (u32::from(dst) ^ self.seed).wrapping_mul(0x9e37_79b1) >> 22;
        let slot = &mut self.slots[h as usize % DEST_SLOTS];
        if slot.0 != dst || slot.2 == 0 {
            *slot = (dst, FULL, now.max(1));
        }
        let credit = (slot.1 + now.saturating_sub(slot.2)).min(FULL);
        slot.2 = now.max(1);
        if credit < PER_DEST_INTERVAL_MS {
            slot.1 = credit;
            return false;
        }
        slot.1 = credit - PER_DEST_INTERVAL_MS;
        true
    }
}

/// The most of the original datagram an error quotes: RFC 1812 4.3.2.3 says
/// as much as fits in 576 bytes.
pub const MAX_QUOTE: usize = 576 - 20 - 8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_destination_gets_a_burst_then_one_a_second() {
        let mut l = ErrorLimiter::new(7);
        let a: Ipv4Addr = "10.0.0.1".parse().unwrap();
        let b: Ipv4Addr = "10.0.0.2".parse().unwrap();
        let sent = (0..=1000).filter(|&ms| l.allow(a, 5000 + ms)).count();
        assert_eq!(sent, 6 + 1, "a burst of 6, and one more within the second");
        assert!(l.allow(b, 6000), "another destination has its own bucket");
        assert!(!l.allow(a, 6000));
        assert!(l.allow(a, 7000));
    }
}
