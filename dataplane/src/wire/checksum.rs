//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).

/// Adds `data` as big-endian 16-bit words to a running sum.
///
/// Eight bytes at a time, read little-endian, with the carries counted
/// apart: a sum of byte-swapped words is the byte-swapped sum (RFC 1071
/// 2(B)), and 2^64 is 1 modulo 0xffff, so each carry out of 64 bits is
/// worth 1. The result is folded to 16 bits, so a caller may go on adding
/// without overflow; a non-zero sum stays non-zero.
pub fn add(sum: u32, data: &[u8]) -> u32 {
    let (mut acc, mut carries) = (0u64, 0u64);
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let (s, c) = acc.overflowing_add(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        acc = s;
        carries += u64::from(c);
    }
    // The last seven bytes at most, little-endian too: from an even
    // offset, a lone last byte is the low half of its word.
    let mut tail = 0u64;
    let mut rest = words.remainder();
    if let Some((w, r)) = rest.split_first_chunk::<4>() {
        tail += u64::from(u32::from_le_bytes(*w));
        rest = r;
    }
    if let Some((w, r)) = rest.split_first_chunk::<2>() {
        tail += u64::from(u16::from_le_bytes(*w));
        rest = r;
    }
    if let [b] = rest {
        tail += u64::from(*b);
    }
    let mut f = (acc & 0xffff_ffff) + (acc >> 32) + carries + tail;
    while f > 0xffff {
        f = (f & 0xffff) + (f >> 16);
    }
    let mut r = u64::from(sum) + u64::from((f as u16).swap_bytes());
    while r > 0xffff {
        r = (r & 0xffff) + (r >> 16);
    }
    r as u32
}

/// Folds a running sum to 16 bits and complements it.
pub fn finish(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The checksum of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    finish(add(0, data))
}

/// The checksum `hc` after one 16-bit word of the covered data changed from
/// `old` to `new`: RFC 1624, eqn. 3, `HC' = ~(~HC + ~m + m')`.
pub fn update(hc: u16, old: u16, new: u16) -> u16 {
    let sum = u32::from(!hc) + u32::from(!old) + u32::from(new);
    finish(sum)
}

/// The running sum of the IPv4 pseudo header that UDP and TCP checksums
/// cover (RFC 768; RFC 9293 3.1) for a segment of `len` bytes.
pub fn pseudo_header(
    src: std::net::Ipv4Addr,
    dst: std::net::Ipv4Addr,
    protocol: super::IpProtocol,
    len: u16,
) -> u32 {
    let sum = add(add(0, &src.octets()), &dst.octets());
    sum + u32::from(u8::from(protocol)) + u32::from(len)
}

/// The running sum of the pseudo header of a `protocol` segment of `len`
/// bytes after the IP header `ip` (IPv4, or IPv6 if `v6`; RFC 8200 8.1).
pub fn pseudo_header_of(ip: &[u8], v6: bool, protocol: super::IpProtocol, len: usize) -> u32 {
    if v6 {
        add(0, &ip[8..40]) + u32::from(u8::from(protocol)) + len as u32
    } else {
        let src: [u8; 4] = ip[12..16].try_into().expect("4 bytes");
        let dst: [u8; 4] = ip[16..20].try_into().expect("4 bytes");
        pseudo_header(src.into(), dst.into(), protocol, len as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071's sum, two bytes at a time: what `add` must equal.
    fn add_by_words(sum: u32, data: &[u8]) -> u32 {
        let mut acc = u64::from(sum);
        for p in data.chunks(2) {
            acc += u64::from(u16::from_be_bytes([p[0], *p.get(1).unwrap_or(&0)]));
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u32
    }

    #[test]
    fn the_wide_sum_is_the_sum_by_words() {
        // Lengths around every remainder, all-ones data (every carry taken)
        // and pseudo-random bytes, from running sums of every size.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut bytes = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        };
        for n in (0..40).chain([1499, 1500, 9000, 65_535]) {
            for data in [vec![0xff; n], vec![0; n], bytes(n)] {
                for sum in [0, 1, 0xffff, 0x2_fffe] {
                    assert_eq!(
                        finish(add(sum, &data)),
                        finish(add_by_words(sum, &data)),
                        "{n} bytes from {sum:#x}"
                    );
                    assert_eq!(add(sum, &data) == 0, add_by_words(sum, &data) == 0);
                }
            }
        }
    }

    // An IPv4 header from a real capture (ICMP, 10.0.0.1 -> 10.0.0.2, TTL 64).
    const HDR: [u8; 20] = [
        0x45, 0x00, 0x00, 0x54, 0x3c, 0x8a, 0x40, 0x00, 0x40, 0x01, 0xea, 0x1c, 0x0a, 0x00, 0x00,
        0x01, 0x0a, 0x00, 0x00, 0x02,
    ];

    #[test]
    fn a_valid_header_sums_to_zero() {
        assert_eq!(checksum(&HDR), 0);
    }

    #[test]
    fn sums_as_word_by_word_at_any_length() {
        let data: Vec<u8> = (0..200u32).map(|i| (i * 37 + 11) as u8).collect();
        for len in 0..data.len() {
            let d = &data[..len];
            let mut naive = 0xfffe_u32;
            for w in d.chunks(2) {
                naive += u32::from(w[0]) << 8 | u32::from(*w.get(1).unwrap_or(&0));
            }
            assert_eq!(finish(add(0xfffe, d)), finish(naive), "{len} bytes");
        }
        assert_eq!(checksum(&[0xff; 64]), 0, "all ones sum to negative zero");
        assert_eq!(checksum(&[0; 8]), 0xffff);
    }

    #[test]
    fn incremental_update_matches_a_full_recompute() {
        let mut h = HDR;
        let old = u16::from_be_bytes([h[8], h[9]]);
        h[8] -= 1; // TTL 64 -> 63
        let new = u16::from_be_bytes([h[8], h[9]]);
        let hc = update(u16::from_be_bytes([h[10], h[11]]), old, new);
        h[10..12].copy_from_slice(&hc.to_be_bytes());
        assert_eq!(checksum(&h), 0);
        let mut full = h;
        full[10..12].fill(0);
        assert_eq!(checksum(&full), hc);
    }
}
