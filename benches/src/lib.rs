//! Inputs for the criterion benchmarks in `benches/` (run them with
//! `cargo bench -p patchbay-benches`): synthetic and real-world IPv4 route
//! tables.

use std::net::Ipv4Addr;
use std::path::PathBuf;

/// A small, fast, repeatable random number generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }
}

/// `n` prefixes with an Internet-like length mix (mostly /24, then /22,
/// /23, /16-/21, a few shorter and longer), as (network, length).
pub fn synthetic_table(n: usize, seed: u64) -> Vec<(u32, u8)> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let len = match rng.next_u32() % 100 {
                0..=59 => 24,
                60..=69 => 23,
                70..=79 => 22,
                80..=97 => 16 + (rng.next_u32() % 6) as u8,
                98 => 8 + (rng.next_u32() % 8) as u8,
                _ => 25 + (rng.next_u32() % 8) as u8,
            };
            // Unicast space 1.0.0.0 - 223.255.255.255.
            let addr = 0x0100_0000 + rng.next_u32() % (0xe000_0000 - 0x0100_0000);
            (patchbay_dataplane::ip4::fib::mask(addr, len), len)
        })
        .collect()
}

/// Where the real-world table is looked for: `$PATCHBAY_ASN_CSV`, or
/// `target/asn-ipv4-num.csv` as `tools/fetch-asn-table` leaves it.
pub fn asn_csv_path() -> PathBuf {
    std::env::var_os("PATCHBAY_ASN_CSV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/asn-ipv4-num.csv")
        })
}

/// The IPv4 ranges of @ip-location-db/asn (asn-ipv4-num.csv: first,last,asn,
/// org, RouteViews-derived) as CIDR prefixes, if the file is there.
pub fn asn_table() -> Option<Vec<(u32, u8)>> {
    let text = std::fs::read_to_string(asn_csv_path()).ok()?;
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.split(',');
        let (Some(a), Some(b)) = (f.next(), f.next()) else {
            continue;
        };
        let (Ok(first), Ok(last)) = (a.parse::<u64>(), b.parse::<u64>()) else {
            continue;
        };
        range_to_cidrs(first, last, &mut out);
    }
    Some(out)
}

/// Splits the address range first..=last into the fewest CIDR prefixes.
pub fn range_to_cidrs(mut first: u64, last: u64, out: &mut Vec<(u32, u8)>) {
    while first <= last {
        let align = if first == 0 {
            32
        } else {
            first.trailing_zeros().min(32)
        };
        let mut size = 1u64 << align;
        while first + size - 1 > last {
            size >>= 1;
        }
        let len = 32 - size.trailing_zeros() as u8;
        out.push((first as u32, len));
        first += size;
    }
}

/// The IPv6 ranges of @ip-location-db/asn (asn-ipv6-num.csv, beside the
/// IPv4 file) as CIDR prefixes, if the file is there.
pub fn asn_table_v6() -> Option<Vec<(u128, u8)>> {
    let path = asn_csv_path().with_file_name("asn-ipv6-num.csv");
    let text = std::fs::read_to_string(path).ok()?;
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.split(',');
        let (Some(a), Some(b)) = (f.next(), f.next()) else {
            continue;
        };
        let (Ok(mut first), Ok(last)) = (a.parse::<u128>(), b.parse::<u128>()) else {
            continue;
        };
        // The fewest CIDR prefixes for first..=last.
        loop {
            let mut size = first.trailing_zeros().min(128);
            while size > 0
                && (size == 128
                    || first
                        .checked_add((1u128 << size) - 1)
                        .is_none_or(|end| end > last))
            {
                size -= 1;
            }
            out.push((first, (128 - size) as u8));
            let Some(next) = (if size == 128 {
                None
            } else {
                first.checked_add(1u128 << size)
            }) else {
                break;
            };
            if next > last || next == 0 {
                break;
            }
            first = next;
        }
    }
    Some(out)
}

/// `n` IPv6 addresses inside the prefixes of `table`.
pub fn addresses_inside_v6(table: &[(u128, u8)], n: usize, seed: u64) -> Vec<u128> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let (p, len) = table[rng.next_u32() as usize % table.len()];
            let r = (0..4).fold(0u128, |a, _| a << 32 | u128::from(rng.next_u32()));
            if len >= 128 {
                p
            } else {
                p | (r >> len)
            }
        })
        .collect()
}

/// `n` addresses inside the prefixes of `table`.
pub fn addresses_inside(table: &[(u32, u8)], n: usize, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let (p, len) = table[rng.next_u32() as usize % table.len()];
            let host = if len == 32 { 0 } else { rng.next_u32() >> len };
            p | host
        })
        .collect()
}

/// `n` addresses drawn uniformly from the whole IPv4 space.
pub fn addresses_uniform(n: usize, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.next_u32()).collect()
}

pub fn ip(a: u32) -> Ipv4Addr {
    Ipv4Addr::from(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_split_into_cidrs() {
        let mut v = Vec::new();
        range_to_cidrs(0x0100_0000, 0x0100_00ff, &mut v);
        assert_eq!(v, vec![(0x0100_0000, 24)]);
        v.clear();
        range_to_cidrs(0x0100_0400, 0x0100_07ff, &mut v);
        assert_eq!(v, vec![(0x0100_0400, 22)]);
        v.clear();
        range_to_cidrs(10, 20, &mut v);
        assert_eq!(v, vec![(10, 31), (12, 30), (16, 30), (20, 32)]);
        v.clear();
        range_to_cidrs(0, u32::MAX as u64, &mut v);
        assert_eq!(v, vec![(0, 0)]);
    }
}
