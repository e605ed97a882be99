//! ICMP messages the router makes (RFC 792, RFC 1812 4.3).

use crate::wire::checksum;

pub const ECHO_REPLY: u8 = 0;
pub const DEST_UNREACHABLE: u8 = 3;
pub const ECHO_REQUEST: u8 = 8;
pub const TIME_EXCEEDED: u8 = 11;

pub const CODE_NET_UNREACHABLE: u8 = 0;
pub const CODE_HOST_UNREACHABLE: u8 = 1;
pub const CODE_PROTOCOL_UNREACHABLE: u8 = 2;
pub const CODE_PORT_UNREACHABLE: u8 = 3;
pub const CODE_FRAG_NEEDED: u8 = 4;

/// Whether an ICMP type is an error message (RFC 1812 4.3.2.7: no error is
/// ever sent about one).
pub fn is_error(icmp_type: u8) -> bool {
    matches!(icmp_type, 3 | 4 | 5 | 11 | 12)
}

/// The most of the original datagram an error quotes: RFC 1812 4.3.2.3 says
/// as much as fits in 576 bytes.
pub const MAX_QUOTE: usize = 576 - 20 - 8;

/// Writes an ICMP error (type, code, the next-hop MTU for "fragmentation
/// needed", then `quote`) into `out`; returns its length.
pub fn emit_error(out: &mut [u8], icmp_type: u8, code: u8, mtu: u16, quote: &[u8]) -> usize {
    let len = 8 + quote.len();
    out[0] = icmp_type;
    out[1] = code;
    out[2..4].fill(0);
    out[4..6].fill(0);
    out[6..8].copy_from_slice(&mtu.to_be_bytes());
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
}
