//! ICMP messages the router makes (RFC 792, RFC 1812 4.3).

use crate::wire::checksum;
use std::net::Ipv4Addr;

pub const ECHO_REPLY: u8 = 0;
pub const DEST_UNREACHABLE: u8 = 3;
pub const ECHO_REQUEST: u8 = 8;
pub const REDIRECT: u8 = 5;
pub const TIME_EXCEEDED: u8 = 11;
pub const PARAMETER_PROBLEM: u8 = 12;

pub const CODE_NET_UNREACHABLE: u8 = 0;
pub const CODE_HOST_UNREACHABLE: u8 = 1;
pub const CODE_PROTOCOL_UNREACHABLE: u8 = 2;
pub const CODE_PORT_UNREACHABLE: u8 = 3;
pub const CODE_FRAG_NEEDED: u8 = 4;
/// Redirect datagrams for the host (RFC 1812 5.2.7.2: routers send only
/// host redirects).
pub const CODE_REDIRECT_HOST: u8 = 1;

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

/// Whether an ICMP type is an error message (RFC 1812 4.3.2.7: no error is
/// ever sent about one).
pub fn is_error(icmp_type: u8) -> bool {
    matches!(icmp_type, 3 | 4 | 5 | 11 | 12)
}

/// The most of the original datagram an error quotes: RFC 1812 4.3.2.3 says
/// as much as fits in 576 bytes.
pub const MAX_QUOTE: usize = 576 - 20 - 8;

/// Writes an ICMP error (type, code, the 4 bytes after the checksum: the
/// next-hop MTU of "fragmentation needed", a redirect's gateway, a
/// parameter problem's pointer; then `quote`) into `out`; returns its
/// length.
pub fn emit_error(out: &mut [u8], icmp_type: u8, code: u8, rest: u32, quote: &[u8]) -> usize {
    let len = 8 + quote.len();
    out[0] = icmp_type;
    out[1] = code;
    out[2..4].fill(0);
    out[4..8].copy_from_slice(&rest.to_be_bytes());
    out[8..len].copy_from_slice(quote);
    let c = checksum::checksum(&out[..len]);
    out[2..4].copy_from_slice(&c.to_be_bytes());
    len
}

/// Turns an echo request (ICMP header and data, in place) into its reply.
pub fn echo_to_reply(icmp: &mut [u8]) {
    icmp[0] = ECHO_REPLY;
    icmp[2..4].fill(0);
    let c = checksum::checksum(icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_and_replies_carry_valid_checksums() {
        let mut out = [0u8; 64];
        let n = emit_error(
            &mut out,
            DEST_UNREACHABLE,
            CODE_FRAG_NEEDED,
            1400,
            &[0x45; 28],
        );
        assert_eq!(n, 36);
        assert_eq!(checksum::checksum(&out[..n]), 0);
        assert_eq!(u16::from_be_bytes([out[6], out[7]]), 1400);
        let mut echo = [8u8, 0, 0, 0, 0, 1, 0, 1, b'h', b'i'];
        echo_to_reply(&mut echo);
        assert_eq!(echo[0], ECHO_REPLY);
        assert_eq!(checksum::checksum(&echo), 0);
        assert!(is_error(11) && !is_error(ECHO_REQUEST));
    }

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
