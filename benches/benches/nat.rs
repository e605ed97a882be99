//! NAT session table: creating sessions (new flows through a masquerade
//! rule), looking up live ones (the answers coming back), and the memory
//! one million live sessions take.
//!
//!     cargo bench -p patchbay-benches --bench nat

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use patchbay_dataplane::nat::{Nat, NatAction, Tuple};
use std::hint::black_box;
use std::net::Ipv4Addr;

const UDP: patchbay_dataplane::wire::IpProtocol = patchbay_dataplane::wire::IpProtocol::Udp;
const OUT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

/// Flow `i`: one of 60,000 inside endpoints (the port space of one
/// outside address) to one of 17 servers: 1,020,000 distinct flows.
fn flow(i: u32) -> Tuple {
    let endpoint = i % 60_000;
    Tuple {
        proto: UDP,
        src: Ipv4Addr::from(0x0a00_0000 | (endpoint >> 4)),
        sport: 40000 + (endpoint & 15) as u16,
        dst: Ipv4Addr::from(0xc633_6400 | (i / 60_000)),
        dport: 53,
    }
}

fn nat_with_rule(max: usize) -> Nat {
    let mut nat = Nat::new(max);
    nat.add_rule(
        NatAction::Masquerade,
        Some("10.0.0.0/8".parse().unwrap()),
        1,
        (1024, 65535),
    );
    nat
}

/// Resident memory of this process in bytes (Linux).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn nat(c: &mut Criterion) {
    const N: u32 = 100_000;
    let mut g = c.benchmark_group("nat");
    g.throughput(Throughput::Elements(u64::from(N)));
    g.sample_size(20);
    g.bench_function("create 100k sessions (masquerade, new flows)", |b| {
        b.iter_batched(
            || nat_with_rule(2 * N as usize),
            |mut nat| {
                for i in 0..N {
                    black_box(nat.post_routing(&flow(i), 0, 1, Some(OUT), 0));
                }
                nat
            },
            BatchSize::LargeInput,
        )
    });

    // One million live sessions, then lookups of their answers.
    const LIVE: u32 = 1_000_000;
    let before = rss();
    let mut big = nat_with_rule(LIVE as usize);
    let mut answers = Vec::with_capacity(LIVE as usize);
    for i in 0..LIVE {
        if let patchbay_dataplane::nat::NatVerdict::Translate(t) =
            big.post_routing(&flow(i), 0, 1, Some(OUT), 0)
        {
            answers.push(t.inverse());
        }
    }
    eprintln!(
        "nat: {} live sessions take {:.0} MiB ({:.0} bytes each)",
        big.len(),
        (rss() - before) as f64 / (1 << 20) as f64,
        (rss() - before) as f64 / f64::from(LIVE)
    );
    let probe: Vec<Tuple> = answers
        .iter()
        .step_by(97)
        .take(N as usize)
        .copied()
        .collect();
    g.throughput(Throughput::Elements(probe.len() as u64));
    g.bench_function("look up an answer among 1M sessions", |b| {
        b.iter(|| {
            for t in &probe {
                black_box(big.pre_routing(t, 0, 1, true, &|_| None, 1));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, nat);
criterion_main!(benches);
