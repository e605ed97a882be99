//! Per-stage costs of the L2 bridge: FDB lookups and learning on a full
//! table, the learn/forward stage per frame, and a whole batch through the
//! switch with memory ports (no system calls), for known unicast and for
//! floods.
//!
//!     cargo bench -p patchbay-benches

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use patchbay_dataplane::counters::BridgeCounters;
use patchbay_dataplane::l2::{l2_forward, Fdb, L2Policy, Segment};
use patchbay_dataplane::pipeline::{Switch, SwitchConfig, DEFAULT_BRIDGE};
use patchbay_dataplane::port::memory::{with_vnet_hdr, MemoryPort};
use patchbay_dataplane::wire::Mac;
use patchbay_dataplane::BATCH;
use std::hint::black_box;

const FDB_SIZE: usize = 65_536;

fn mac(i: u32) -> Mac {
    let b = i.to_be_bytes();
    Mac([2, 0, b[0], b[1], b[2], b[3]])
}

const SEG: Segment = Segment { bridge: 0, vid: 0 };

fn full_fdb() -> Fdb {
    let mut fdb = Fdb::new(FDB_SIZE);
    for i in 0..FDB_SIZE as u32 {
        fdb.learn(0, 0, mac(i), (i % 8) as u16, 0);
    }
    fdb
}

fn eth(dst: Mac, src: Mac) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&[0x08, 0x00]);
    f.resize(60, 0);
    f
}

fn fdb(c: &mut Criterion) {
    let mut g = c.benchmark_group("fdb");
    let mut fdb = full_fdb();
    // A stride through the table, so lookups are not all in cache.
    let keys: Vec<Mac> = (0..4096u32)
        .map(|i| mac(i.wrapping_mul(7919) % FDB_SIZE as u32))
        .collect();
    g.throughput(Throughput::Elements(keys.len() as u64));
    g.bench_function("lookup, 64k entries", |b| {
        b.iter(|| {
            for k in &keys {
                black_box(fdb.lookup(0, 0, *k));
            }
        })
    });
    g.bench_function("learn (refresh), 64k entries", |b| {
        b.iter(|| {
            for k in &keys {
                black_box(fdb.learn(0, 0, *k, 1, 5));
            }
        })
    });
    g.bench_function("learn (full table, new MACs refused)", |b| {
        b.iter(|| {
            for i in 0..keys.len() as u32 {
                black_box(fdb.learn(0, 0, mac(FDB_SIZE as u32 + i), 1, 5));
            }
        })
    });
    g.finish();
}

fn stage(c: &mut Criterion) {
    let mut g = c.benchmark_group("l2-forward stage");
    let mut fdb = full_fdb();
    let mut counters = BridgeCounters::default();
    let frames: Vec<Vec<u8>> = (0..BATCH as u32)
        .map(|i| eth(mac(i * 3), mac(i * 5 + 1)))
        .collect();
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.bench_function("known unicast, per batch of 64", |b| {
        b.iter(|| {
            for f in &frames {
                black_box(
                    l2_forward(
                        f,
                        9,
                        SEG,
                        &mut fdb,
                        1,
                        &mut counters,
                        L2Policy::default(),
                        true,
                    )
                    .0,
                );
            }
        })
    });
    g.finish();
}

/// A switch with three memory ports; p1 receives `batch` over and over.
fn switch_with(batch: Vec<Vec<u8>>) -> (Switch, u16) {
    let mut sw = Switch::new(SwitchConfig::default(), None);
    let p1 = MemoryPort::new("p1");
    let handle = p1.handle();
    let id = sw.add_port(Box::new(p1), Some(DEFAULT_BRIDGE)).expect("p1");
    let p2 = MemoryPort::new("p2");
    let h2 = p2.handle();
    let id2 = sw.add_port(Box::new(p2), Some(DEFAULT_BRIDGE)).expect("p2");
    sw.add_port(Box::new(MemoryPort::new("p3")), Some(DEFAULT_BRIDGE))
        .expect("p3");
    // The destination speaks first, so unicast to it is known.
    h2.inject([with_vnet_hdr(&eth(Mac::BROADCAST, mac(2)))]);
    sw.process_rx(id2);
    handle.replay(batch);
    (sw, id)
}

fn switch(c: &mut Criterion) {
    let mut g = c.benchmark_group("switch");
    g.throughput(Throughput::Elements(BATCH as u64));
    for (name, dst) in [
        ("known unicast", mac(2)),
        ("broadcast (flood to 2 ports)", Mac::BROADCAST),
    ] {
        let batch: Vec<Vec<u8>> = (0..BATCH)
            .map(|_| with_vnet_hdr(&eth(dst, mac(1))))
            .collect();
        let (mut sw, id) = switch_with(batch);
        g.bench_function(format!("process_rx, batch of 64, {name}"), |b| {
            b.iter(|| black_box(sw.process_rx(id)))
        });
    }
    g.finish();
}

criterion_group!(benches, fdb, stage, switch);
criterion_main!(benches);
