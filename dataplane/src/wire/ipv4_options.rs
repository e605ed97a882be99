//! IPv4 options (RFC 791 3.1): checked once, and the two a router writes
//! into, Record Route and Timestamp.

use super::ipv4::{Ipv4Packet, IPV4_MIN_HDR_LEN};
use std::net::Ipv4Addr;

const END: u8 = 0;
const NOP: u8 = 1;
const RECORD_ROUTE: u8 = 7;
const TIMESTAMP: u8 = 68;
const LOOSE_SOURCE_ROUTE: u8 = 131;
const STRICT_SOURCE_ROUTE: u8 = 137;
/// The option type's "copied" flag: the option goes into every fragment.
const COPIED: u8 = 0x80;

/// What a header's options hold, as far as a router cares: where the
/// Record Route and Timestamp options are (offsets in the header), and
/// whether the packet is source routed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    pub source_routed: bool,
    pub record_route: Option<usize>,
    pub timestamp: Option<usize>,
}

/// A malformed option: the offset in the header of the byte at fault, as
/// a Parameter Problem's pointer gives it (RFC 792, RFC 1812 5.2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadOption(pub u8);

/// Walks the options of `header` (a whole IPv4 header, 20 bytes of fixed
/// part then the options).
pub fn parse(header: &[u8]) -> Result<Options, BadOption> {
    let mut o = Options::default();
    let mut i = 20;
    while i < header.len() {
        match header[i] {
            END => break,
            NOP => {
                i += 1;
                continue;
            }
            kind => {
                let len = *header.get(i + 1).ok_or(BadOption(i as u8))?;
                let len = usize::from(len);
                if len < 2 || i + len > header.len() {
                    return Err(BadOption(i as u8 + 1));
                }
                let pointer = || header.get(i + 2).copied().unwrap_or(0);
                match kind {
                    LOOSE_SOURCE_ROUTE | STRICT_SOURCE_ROUTE => o.source_routed = true,
                    // The pointer starts at 4 (one-based, past type, length
                    // and itself) and never goes past the end plus one.
                    RECORD_ROUTE => {
                        if len < 3 || pointer() < 4 || usize::from(pointer()) > len + 1 {
                            return Err(BadOption(i as u8 + 2));
                        }
                        o.record_route = Some(i);
                    }
                    TIMESTAMP => {
                        if len < 4 || pointer() < 5 || usize::from(pointer()) > len + 1 {
                            return Err(BadOption(i as u8 + 2));
                        }
                        o.timestamp = Some(i);
                    }
                    _ => {}
                }
                i += len;
            }
        }
    }
    Ok(o)
}

/// Records `addr` in the Record Route option at `at` of `header`, if it
/// has room (RFC 791: a full option is left as it is). The caller fixes the
/// header checksum. Returns whether it wrote.
pub fn record_route(header: &mut [u8], at: usize, addr: Ipv4Addr) -> bool {
    let (len, ptr) = (usize::from(header[at + 1]), usize::from(header[at + 2]));
    if ptr + 3 > len {
        return false;
    }
    let slot = at + ptr - 1;
    header[slot..slot + 4].copy_from_slice(&addr.octets());
    header[at + 2] += 4;
    true
}

/// Fills the Timestamp option at `at` of `header` for this hop (RFC 791):
/// a timestamp (flag 0), our address and a timestamp (flag 1), or a
/// timestamp where the next prespecified address is ours (flag 3). With no
/// room, the overflow count goes up. `ms` is milliseconds since midnight
/// UT. The caller fixes the header checksum. Returns whether it wrote.
pub fn timestamp(header: &mut [u8], at: usize, addr: Ipv4Addr, ms: u32) -> bool {
    let (len, ptr) = (usize::from(header[at + 1]), usize::from(header[at + 2]));
    let (overflow, flag) = (header[at + 3] >> 4, header[at + 3] & 0x0f);
    let entry = if flag == 0 { 4 } else { 8 };
    if ptr + entry - 1 > len {
        header[at + 3] = (overflow.saturating_add(1).min(15) << 4) | flag;
        return true;
    }
    let slot = at + ptr - 1;
    match flag {
        0 => header[slot..slot + 4].copy_from_slice(&ms.to_be_bytes()),
        1 => {
            header[slot..slot + 4].copy_from_slice(&addr.octets());
            header[slot + 4..slot + 8].copy_from_slice(&ms.to_be_bytes());
        }
        3 if header[slot..slot + 4] == addr.octets() => {
            header[slot + 4..slot + 8].copy_from_slice(&ms.to_be_bytes());
        }
        _ => return false,
    }
    header[at + 2] += entry as u8;
    true
}

/// The header of a fragment after the first: `hdr` (a whole header) with
/// only the options whose "copied" flag is set (RFC 791 3.1), padded to 32
/// bits, and its length. The caller fixes total length and checksum.
pub fn copied_header(hdr: &[u8]) -> ([u8; 60], usize) {
    let mut out = [0u8; 60];
    out[..IPV4_MIN_HDR_LEN].copy_from_slice(&hdr[..IPV4_MIN_HDR_LEN]);
    let mut len = IPV4_MIN_HDR_LEN;
    let opts = &hdr[IPV4_MIN_HDR_LEN..];
    let mut k = 0;
    while k < opts.len() {
        match opts[k] {
            END => break,
            NOP => k += 1,
            kind => {
                let Some(&n) = opts.get(k + 1) else { break };
                let n = usize::from(n);
                if n < 2 || k + n > opts.len() {
                    break;
                }
                if kind & COPIED != 0 {
                    out[len..len + n].copy_from_slice(&opts[k..k + n]);
                    len += n;
                }
                k += n;
            }
        }
    }
    let len = (len + 3) & !3;
    Ipv4Packet::new_unchecked(&mut out[..]).set_header_len(len);
    (out, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(options: &[u8]) -> Vec<u8> {
        let mut h = vec![0u8; 20];
        h[0] = 0x45 + (options.len() / 4) as u8;
        h.extend_from_slice(options);
        h
    }

    #[test]
    fn finds_source_routes_and_record_route() {
        let lsrr = header(&[131, 7, 4, 10, 0, 0, 1, NOP]);
        assert!(parse(&lsrr).unwrap().source_routed);
        let ssrr = header(&[NOP, 137, 7, 4, 10, 0, 0, 1]);
        assert!(parse(&ssrr).unwrap().source_routed);
        let mut rr = header(&[RECORD_ROUTE, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, END]);
        let o = parse(&rr).unwrap();
        assert_eq!(o.record_route, Some(20));
        let a = Ipv4Addr::new(10, 0, 0, 1);
        assert!(record_route(&mut rr, 20, a));
        assert!(record_route(&mut rr, 20, a));
        assert!(!record_route(&mut rr, 20, a), "full");
        assert_eq!(&rr[23..31], &[10, 0, 0, 1, 10, 0, 0, 1]);
    }

    #[test]
    fn malformed_options_point_at_the_bad_byte() {
        assert_eq!(parse(&header(&[99, 1, 0, 0])), Err(BadOption(21)));
        assert_eq!(parse(&header(&[NOP, NOP, NOP, 99])), Err(BadOption(23)));
        assert_eq!(parse(&header(&[99, 9, 0, 0])), Err(BadOption(21)));
        assert_eq!(
            parse(&header(&[RECORD_ROUTE, 7, 2, 0, 0, 0, 0, 0])),
            Err(BadOption(22))
        );
        assert!(parse(&header(&[END, 99, 99, 99])).is_ok(), "after the end");
    }

    #[test]
    fn later_fragments_keep_only_copied_options() {
        let mut hdr = vec![
            0x48u8, 0, 0, 60, 0, 1, 0x20, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        // Record route (7, not copied), a NOP, then a copied option (0x82).
        hdr.extend_from_slice(&[7, 3, 4, 1, 0x82, 4, 0xaa, 0xbb]);
        hdr.resize(32, 0);
        let (out, len) = copied_header(&hdr);
        assert_eq!(len, 24);
        assert_eq!(out[0], 0x46);
        assert_eq!(&out[20..24], &[0x82, 4, 0xaa, 0xbb]);
        // A garbage length stops the walk, without a panic.
        let mut bad = hdr.clone();
        bad[21] = 200;
        assert_eq!(copied_header(&bad).1, 20);
    }

    #[test]
    fn timestamps_fill_then_count_overflow() {
        let mut ts = header(&[TIMESTAMP, 12, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(parse(&ts).unwrap().timestamp, Some(20));
        let a = Ipv4Addr::new(10, 0, 0, 1);
        assert!(timestamp(&mut ts, 20, a, 1234));
        assert_eq!(&ts[24..32], &[10, 0, 0, 1, 0, 0, 4, 210]);
        assert!(timestamp(&mut ts, 20, a, 1234));
        assert_eq!(ts[23] >> 4, 1, "one hop could not write");
    }
}
