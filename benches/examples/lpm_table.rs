//! patchbay's longest-prefix match on a whole table, measured the way
//! `tools/lpm-vs-dpdk` measures DPDK's rte_lpm and rte_lpm6 beside it:
//! build time, memory, batched lookups over 8M addresses (inside announced
//! prefixes, and uniform), and route updates on the full table.
//!
//!     cargo run --release -p patchbay-benches --example lpm_table -- v4|v6|v4-1m [DIR]
//!
//! With DIR, the table and the addresses are also written there (raw
//! little-endian records) for the C harness to read the same ones.

use patchbay_benches::{
    addresses_inside, addresses_inside_v6, addresses_uniform, asn_table, asn_table_v6,
    synthetic_table, Rng,
};
use patchbay_dataplane::lpm::{Key, Poptrie};
use std::io::Write;
use std::time::Instant;

/// Lookup addresses: far more than the CPU caches hold.
const LOOKUPS: usize = 8 << 20;
/// Lookups per batch, as the forwarding path batches them.
const BATCH: usize = 64;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let which = args.get(1).map(String::as_str).unwrap_or("v4");
    let dir = args.get(2).map(std::path::PathBuf::from);
    match which {
        "v4" | "v4-1m" | "v4-2m" => {
            let table = match which {
                "v4" => asn_table().expect("run tools/fetch-asn-table first"),
                "v4-1m" => one_million(),
                _ => synthetic_table(2_000_000, 43),
            };
            let inside = addresses_inside(&table, LOOKUPS, 7);
            let uniform = addresses_uniform(LOOKUPS, 11);
            if let Some(dir) = &dir {
                write(
                    dir,
                    "table",
                    table.iter().map(|&(p, l)| (p.to_le_bytes().to_vec(), l)),
                );
                write_keys(
                    dir,
                    "inside",
                    inside.iter().map(|a| a.to_le_bytes().to_vec()),
                );
                write_keys(
                    dir,
                    "uniform",
                    uniform.iter().map(|a| a.to_le_bytes().to_vec()),
                );
            }
            measure(
                which,
                &table,
                &[("inside", &inside), ("uniform", &uniform)],
                |i| {
                    // Fresh routes to add and delete: /24s and /28s under
                    // 223.0.0.0/8 and 224/8's edge, not in the table.
                    let p = 0xdf00_0000u32 | (i as u32 & 0xffff) << 8;
                    if i % 2 == 0 {
                        (p, 24)
                    } else {
                        (p | 0x10, 28)
                    }
                },
            );
        }
        "v6" | "v6-1m" => {
            let table = if which == "v6" {
                asn_table_v6().expect("run tools/fetch-asn-table first")
            } else {
                synthetic_table_v6(1_000_000)
            };
            let inside = addresses_inside_v6(&table, LOOKUPS, 7);
            let mut rng = Rng::new(11);
            let uniform: Vec<u128> = (0..LOOKUPS)
                .map(|_| {
                    // Uniform in 2000::/3, where the table is.
                    let r = (0..4).fold(0u128, |a, _| a << 32 | u128::from(rng.next_u32()));
                    1 << 125 | r >> 3
                })
                .collect();
            if let Some(dir) = &dir {
                write(
                    dir,
                    "table",
                    table.iter().map(|&(p, l)| (p.to_be_bytes().to_vec(), l)),
                );
                write_keys(
                    dir,
                    "inside",
                    inside.iter().map(|a| a.to_be_bytes().to_vec()),
                );
                write_keys(
                    dir,
                    "uniform",
                    uniform.iter().map(|a| a.to_be_bytes().to_vec()),
                );
            }
            measure(
                "v6",
                &table,
                &[("inside", &inside), ("uniform", &uniform)],
                |i| (0x3fff_0000u128 << 96 | (i as u128) << 80, 48),
            );
        }
        w => panic!("v4, v4-1m, v4-2m, v6 or v6-1m, not {w}"),
    }
}

/// A 1M-route table as the issue describes it: a synthetic Internet mix,
/// plus 440k /25-/28s, each in a /24 of its own.
fn one_million() -> Vec<(u32, u8)> {
    let mut t = synthetic_table(560_000, 42);
    let mut rng = Rng::new(5);
    for i in 0..440_000u32 {
        let len = 25 + (rng.next_u32() % 4) as u8;
        let host = (rng.next_u32() & 0xff) & !(0xffu32 >> (len - 24));
        t.push(((0x6400_0000 + (i << 8)) | host, len));
    }
    t
}

/// A 1M-route IPv6 table: prefixes anywhere in 2000::/3, 20% /32, 20%
/// /40-/47, 40% /48, 10% /56 and 10% /64.
fn synthetic_table_v6(n: usize) -> Vec<(u128, u8)> {
    let mut rng = Rng::new(17);
    (0..n)
        .map(|_| {
            let len = match rng.next_u32() % 10 {
                0 | 1 => 32,
                2 | 3 => 40 + (rng.next_u32() % 8) as u8,
                4..=7 => 48,
                8 => 56,
                _ => 64,
            };
            let r = (0..4).fold(0u128, |a, _| a << 32 | u128::from(rng.next_u32()));
            let addr = 1 << 125 | r >> 3;
            (addr & !(u128::MAX >> len), len)
        })
        .collect()
}

fn write(dir: &std::path::Path, name: &str, rows: impl Iterator<Item = (Vec<u8>, u8)>) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join(name)).expect("file"));
    for (key, len) in rows {
        f.write_all(&key)
            .and_then(|_| f.write_all(&[len]))
            .expect("write");
    }
}

fn write_keys(dir: &std::path::Path, name: &str, keys: impl Iterator<Item = Vec<u8>>) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join(name)).expect("file"));
    for k in keys {
        f.write_all(&k).expect("write");
    }
}

fn measure<K: Key>(
    name: &str,
    table: &[(K, u8)],
    sets: &[(&str, &[K])],
    fresh: impl Fn(usize) -> (K, u8),
) {
    // Built as `route load` builds it: in batches of 8,192 routes.
    let start = Instant::now();
    let mut t = Poptrie::<K>::new();
    for (c, chunk) in table.chunks(8192).enumerate() {
        t.begin_batch();
        for (i, &(p, l)) in chunk.iter().enumerate() {
            t.insert(p, l, ((c * 8192 + i) % 1024) as u32)
                .expect("a route");
        }
        t.end_batch();
    }
    let build = start.elapsed().as_secs_f64();
    println!(
        "{name}: {} prefixes ({} distinct), built in {build:.3} s; lookup structure {:.1} MiB, with the routes {:.1} MiB",
        table.len(),
        t.len(),
        t.lookup_bytes() as f64 / (1 << 20) as f64,
        t.memory_bytes() as f64 / (1 << 20) as f64
    );
    let mut out = vec![0u32; BATCH];
    for (what, keys) in sets {
        let mut rates = Vec::new();
        let mut sum = 0u64;
        let mut misses = 0u64;
        for pass in 0..5 {
            let start = Instant::now();
            let (mut s, mut m) = (0u64, 0u64);
            for chunk in keys.chunks(BATCH) {
                t.lookup_batch(chunk, &mut out[..chunk.len()]);
                for &v in &out[..chunk.len()] {
                    if v == u32::MAX {
                        m += 1;
                    } else {
                        s += u64::from(v);
                    }
                }
            }
            rates.push(keys.len() as f64 / start.elapsed().as_secs_f64() / 1e6);
            if pass == 0 {
                (sum, misses) = (s, m);
            }
        }
        rates.sort_by(f64::total_cmp);
        println!(
            "{name}: batched lookups, {what}: {:.1} M/s (median of 5 passes over {} addresses); sum of next hops {sum}, misses {misses}",
            rates[2],
            keys.len()
        );
    }
    // Updates on the full table: add, then delete, 100k fresh routes, one
    // at a time (each compiled at once, as `route add` does) and in
    // batches of 8,192 (as `apply` and `route load` do).
    let n = 100_000;
    for batch in [1, 8192] {
        let start = Instant::now();
        for del in [false, true] {
            for first in (0..n).step_by(batch) {
                if batch > 1 {
                    t.begin_batch();
                }
                for i in first..(first + batch).min(n) {
                    let (p, l) = fresh(i);
                    if del {
                        t.remove(p, l);
                    } else {
                        t.insert(p, l, 1).expect("a route");
                    }
                }
                if batch > 1 {
                    t.end_batch();
                }
            }
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{name}: updates on the full table, {}: {:.2} M/s ({} adds and deletes in {:.3} s)",
            if batch == 1 {
                "one by one"
            } else {
                "in batches of 8,192"
            },
            2.0 * n as f64 / secs / 1e6,
            2 * n,
            secs
        );
    }
}
