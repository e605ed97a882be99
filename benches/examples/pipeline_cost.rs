//! A fixed amount of forwarding work, for counting instructions:
//!
//!     valgrind --tool=callgrind target/release/examples/pipeline_cost [switch|route] [armed]
//!
//! `switch`: 2,000 batches of 64 known-unicast frames through the bridge;
//! `route`: 200 batches of 64 routed packets. `armed`: a trace is armed for
//! packets of another port, so every frame is checked but none recorded.
//! Instruction counts are repeatable where times on a shared machine are
//! not: compare builds (with and without a change) by them.

use patchbay_dataplane::pipeline::{Switch, SwitchConfig, DEFAULT_BRIDGE};
use patchbay_dataplane::port::memory::{with_vnet_hdr, MemoryPort};
use patchbay_dataplane::wire::Mac;
use patchbay_dataplane::BATCH;
use std::hint::black_box;

fn frame(dst: [u8; 6], src: [u8; 6], ethertype: [u8; 2], payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype);
    f.extend_from_slice(payload);
    f.resize(f.len().max(60), 0);
    with_vnet_hdr(&f)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let route = args.iter().any(|a| a == "route");
    let armed = args.iter().any(|a| a == "armed");
    // `setup`: no batches, to subtract the cost of building the switch.
    let setup_only = args.iter().any(|a| a == "setup");
    let (a, b) = ([2, 0, 0, 0, 1, 2], [2, 0, 0, 0, 2, 2]);
    let mut sw = Switch::new(SwitchConfig::default(), None);
    sw.add_bridge("br1").unwrap();
    let (p1, p2) = (MemoryPort::new("p1"), MemoryPort::new("p2"));
    let (h1, h2) = (p1.handle(), p2.handle());
    let id1 = sw.add_port(Box::new(p1), Some(DEFAULT_BRIDGE)).unwrap();
    let bridge2 = if route { "br1" } else { DEFAULT_BRIDGE };
    let id2 = sw.add_port(Box::new(p2), Some(bridge2)).unwrap();
    sw.add_port(Box::new(MemoryPort::new("p3")), Some(bridge2))
        .unwrap();
    h2.inject([frame([0xff; 6], b, [0x08, 0x00], &[])]);
    sw.process_rx(id2);
    let (rounds, batch) = if route {
        sw.addr_add(DEFAULT_BRIDGE, "10.1.0.1/24".parse().unwrap())
            .unwrap();
        sw.addr_add("br1", "10.2.0.1/24".parse().unwrap()).unwrap();
        sw.neigh_add("10.2.0.2".parse().unwrap(), Mac(b), "br1")
            .unwrap();
        let router = sw.addrs()[0].mac.0;
        let mut ip = vec![0u8; 100];
        patchbay_dataplane::wire::ipv4::emit_header(
            &mut ip,
            100,
            1,
            255,
            17,
            "10.1.0.2".parse().unwrap(),
            "10.2.0.2".parse().unwrap(),
        );
        (200, frame(router, a, [0x08, 0x00], &ip))
    } else {
        (2_000, frame(b, a, [0x08, 0x00], &[]))
    };
    if armed {
        let filter = patchbay_dataplane::trace::Filter::parse("").unwrap();
        sw.trace_start(10, Some("p3"), filter).unwrap();
    }
    h1.replay(vec![batch; BATCH]);
    let rounds = if setup_only { 0 } else { rounds };
    for _ in 0..rounds {
        black_box(sw.process_rx(id1));
    }
}
