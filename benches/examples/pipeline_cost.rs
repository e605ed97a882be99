//! A fixed amount of forwarding work, for counting instructions:
//!
//!     valgrind --tool=callgrind target/release/examples/pipeline_cost [switch|route|nat] [armed]
//!
//! `switch`: 2,000 batches of 64 known-unicast frames through the bridge;
//! `route`: 200 batches of 64 routed packets; `nat`: the same routed out
//! through a masquerade rule, as UDP with a checksum, so each is looked up
//! in the session table and rewritten (addresses, port, both checksums).
//! `armed`: a trace is armed for packets of another port, so every frame
//! is checked but none recorded.
//! Instruction counts are repeatable where times on a shared machine are
//! not: compare builds (with and without a change) by them.

use patchbay_dataplane::nat::{Filtering, NatAction};
use patchbay_dataplane::pipeline::{Switch, SwitchConfig, DEFAULT_BRIDGE};
use patchbay_dataplane::port::memory::{with_vnet_hdr, MemoryPort};
use patchbay_dataplane::wire::checksum;
use patchbay_dataplane::wire::udp::UdpPacket;
use patchbay_dataplane::wire::{IpProtocol, Ipv4Packet, Mac};
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
    let nat = args.iter().any(|a| a == "nat");
    let route = nat || args.iter().any(|a| a == "route");
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
        let (src, dst) = ("10.1.0.2".parse().unwrap(), "10.2.0.2".parse().unwrap());
        patchbay_dataplane::wire::ipv4::emit_header(
            &mut ip,
            100,
            1,
            255,
            IpProtocol::Udp,
            src,
            dst,
        );
        if nat {
            sw.nat_add(
                NatAction::Masquerade,
                None,
                "br1",
                None,
                Filtering::default(),
            )
            .unwrap();
            let mut ip = Ipv4Packet::new_unchecked(&mut ip[..]);
            let mut udp = UdpPacket::new_unchecked(ip.payload_mut());
            udp.emit(40000, 53, 80);
            let sum = checksum::pseudo_header(src, dst, IpProtocol::Udp, 80);
            let sum = checksum::finish(checksum::add(sum, ip.payload()));
            UdpPacket::new_unchecked(ip.payload_mut()).set_checksum(sum);
        }
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
    let sent_before = h2.sent_count();
    for _ in 0..rounds {
        black_box(sw.process_rx(id1));
    }
    if route {
        // Every packet forwarded: none dropped, by NAT or anything else.
        assert_eq!(h2.sent_count() - sent_before, rounds as u64 * BATCH as u64);
    }
}
