//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).

/// Adds `data` as big-endian 16-bit words to a running sum.
pub fn add(sum: u32, data: &[u8]) -> u32 {
    // Two words at a time into 64 bits: a 32-bit word is its two 16-bit
    // halves modulo 0xffff, the only thing the final fold keeps (RFC 1071
    // 2(B)).
    let mut acc = u64::from(sum);
    let mut pairs = data.chunks_exact(4);
    for p in &mut pairs {
        acc += u64::from(u32::from_be_bytes([p[0], p[1], p[2], p[3]]));
    }
    match *pairs.remainder() {
        [a, b, c] => acc += u64::from(u16::from_be_bytes([a, b])) + (u64::from(c) << 8),
        [a, b] => acc += u64::from(u16::from_be_bytes([a, b])),
        [a] => acc += u64::from(a) << 8,
        _ => {}
    }
    // Folded to 16 bits, so a caller may go on adding without overflow;
    // a non-zero sum stays non-zero, so the checksum is the same.
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u32
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

#[cfg(test)]
mod tests {
    use super::*;

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
