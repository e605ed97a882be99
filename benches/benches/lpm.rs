//! Longest-prefix match on Internet-scale tables: lookups (single and
//! batched; addresses inside announced prefixes and uniform), full-table
//! build, route add/delete on a full table, and memory.
//!
//!     cargo bench -p patchbay-benches --bench lpm
//!     tools/fetch-asn-table    # first, for the real-world table

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use patchbay_benches::{
    addresses_inside, addresses_inside_v6, addresses_uniform, asn_table, asn_table_v6, ip,
    synthetic_table,
};
use patchbay_dataplane::ip4::Fib;
use patchbay_dataplane::lpm::Poptrie;
use std::hint::black_box;
use std::time::Instant;

/// Lookup addresses: 8M, 32 MiB of them, far more than the CPU caches
/// hold. (65,536 stayed in cache and reported 2.4x what this does.)
const LOOKUPS: usize = 8 << 20;

/// The table, built as `route load` builds it: in batches of 8,192.
fn build(table: &[(u32, u8)]) -> Fib {
    let mut fib = Fib::new();
    for (c, chunk) in table.chunks(8192).enumerate() {
        fib.begin_batch();
        for (i, &(p, len)) in chunk.iter().enumerate() {
            fib.insert(ip(p), len, ((c * 8192 + i) % 1024) as u32)
                .expect("valid route");
        }
        fib.end_batch();
    }
    fib
}

fn bench_table(c: &mut Criterion, name: &str, table: &[(u32, u8)]) {
    let start = Instant::now();
    let mut fib = build(table);
    eprintln!(
        "lpm/{name}: {} prefixes ({} distinct), built once in {:.3} s, {:.1} MiB",
        table.len(),
        fib.len(),
        start.elapsed().as_secs_f64(),
        fib.memory_bytes() as f64 / (1 << 20) as f64
    );
    let mut g = c.benchmark_group(format!("lpm/{name}"));
    // An iteration looks up all 8M addresses.
    g.sample_size(20);
    for (kind, addrs) in [
        ("inside prefixes", addresses_inside(table, LOOKUPS, 7)),
        ("uniform", addresses_uniform(LOOKUPS, 11)),
    ] {
        g.throughput(Throughput::Elements(addrs.len() as u64));
        g.bench_function(format!("lookup one by one, {kind}"), |b| {
            b.iter(|| {
                for &a in &addrs {
                    black_box(fib.lookup(ip(a)));
                }
            })
        });
        let mut out = vec![0u32; addrs.len()];
        g.bench_function(format!("lookup batched, {kind}"), |b| {
            b.iter(|| {
                for (a, o) in addrs.chunks(64).zip(out.chunks_mut(64)) {
                    fib.lookup_batch(a, o);
                }
                black_box(&out);
            })
        });
    }
    // Updates on the full table: add then delete 1,000 /24s and 1,000 /28s
    // that are not in it.
    let fresh: Vec<(u32, u8)> = (0..2000u32)
        .map(|i| {
            if i % 2 == 0 {
                (0xe000_0000 - 0x0100_0000 + (i << 8), 24)
            } else {
                (0xdf00_0000 + (i << 8), 28)
            }
        })
        .collect();
    g.throughput(Throughput::Elements(2 * fresh.len() as u64));
    g.bench_function("route add + delete on the full table", |b| {
        b.iter(|| {
            for &(p, len) in &fresh {
                fib.insert(ip(p), len, 1).unwrap();
            }
            for &(p, len) in &fresh {
                fib.remove(ip(p), len).unwrap();
            }
        })
    });
    g.bench_function(
        "route add + delete on the full table, one batch each",
        |b| {
            b.iter(|| {
                fib.begin_batch();
                for &(p, len) in &fresh {
                    fib.insert(ip(p), len, 1).unwrap();
                }
                fib.end_batch();
                fib.begin_batch();
                for &(p, len) in &fresh {
                    fib.remove(ip(p), len).unwrap();
                }
                fib.end_batch();
            })
        },
    );
    g.finish();
    let mut g = c.benchmark_group(format!("lpm/{name}"));
    g.sample_size(10);
    g.throughput(Throughput::Elements(table.len() as u64));
    g.bench_function("build the full table", |b| {
        b.iter(|| black_box(build(table)))
    });
    g.finish();
}

/// The real IPv6 table in the same engine (`Poptrie<u128>`): batched
/// lookups over 8M addresses inside its prefixes, and its build.
fn bench_table_v6(c: &mut Criterion, table: &[(u128, u8)]) {
    let build = || {
        let mut t = Poptrie::<u128>::new();
        t.begin_batch();
        for (i, &(p, len)) in table.iter().enumerate() {
            t.insert(p, len, (i % 1024) as u32).expect("valid route");
        }
        t.end_batch();
        t
    };
    let t = build();
    let addrs = addresses_inside_v6(table, LOOKUPS, 7);
    let mut g = c.benchmark_group("lpm/asn-ipv6");
    g.sample_size(20);
    g.throughput(Throughput::Elements(addrs.len() as u64));
    let mut out = vec![0u32; addrs.len()];
    g.bench_function("lookup batched, inside prefixes", |b| {
        b.iter(|| {
            for (a, o) in addrs.chunks(64).zip(out.chunks_mut(64)) {
                t.lookup_batch(a, o);
            }
            black_box(&out);
        })
    });
    g.sample_size(10);
    g.throughput(Throughput::Elements(table.len() as u64));
    g.bench_function("build the full table", |b| b.iter(|| black_box(build())));
    g.finish();
}

fn lpm(c: &mut Criterion) {
    bench_table(c, "synthetic-1M", &synthetic_table(1_000_000, 42));
    match (asn_table(), asn_table_v6()) {
        (Some(t), Some(t6)) => {
            bench_table(c, "asn-ipv4", &t);
            bench_table_v6(c, &t6);
        }
        _ => eprintln!(
            "lpm: no real-world tables at {} (run tools/fetch-asn-table)",
            patchbay_benches::asn_csv_path().display()
        ),
    }
}

criterion_group!(benches, lpm);
criterion_main!(benches);
