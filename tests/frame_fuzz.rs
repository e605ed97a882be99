//! Hostile frames through the whole pipeline (bridge, ARP, router, ICMP,
//! NAT), on the lab the coverage-guided fuzzer attacks
//! (`patchbay_dataplane::fuzzing`): whatever comes in is forwarded or
//! counted as a drop, nothing panics, and the lab's checks on what comes
//! out hold. These runs are bounded, for every `cargo test`; `fuzz/` runs
//! the same lab for as long as one likes.

use patchbay_dataplane::fuzzing::input::{push_record, Kind};
use patchbay_dataplane::fuzzing::{mutate, random_input, seed_corpus, seed_frames};
use patchbay_dataplane::fuzzing::{Lab, LabPort, Rng};
use patchbay_dataplane::port::memory::with_vnet_hdr;

/// Mutated copies of real frames on one long-lived lab, so that its tables
/// fill up, with traces and captures armed every other stretch.
#[test]
fn hostile_frames_never_panic_the_pipeline() {
    let mut lab = Lab::new();
    let seeds = seed_frames();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..60_000 {
        let (port, seed) = &seeds[round % seeds.len()];
        let mut f = seed.clone();
        // Leave a third of them intact, so sessions and neighbours exist for
        // the mutated ones to run into.
        if round % 3 != 0 {
            mutate(&mut rng, &mut f);
        }
        let mut frame = with_vnet_hdr(&f);
        if round % 7 == 0 {
            // A virtio header claiming offloads: GSO, partial checksums.
            for b in frame.iter_mut().take(10) {
                *b = rng.next_u64() as u8;
            }
        }
        lab.feed(*port, frame, round % 11 == 0);
        if round % 5_000 == 0 {
            lab.wait(1_000);
        }
        if round % 10_000 == 0 {
            lab.trace(true);
        }
        if round % 10_000 == 5_000 {
            lab.trace(false);
        }
    }
    lab.flush();
    // Still routing and translating afterwards.
    let before = lab.sent(LabPort::Outside);
    lab.feed(LabPort::Inside, with_vnet_hdr(&seeds[0].1), false);
    assert!(
        lab.sent(LabPort::Outside) > before,
        "the switch stopped forwarding"
    );
    let stats = lab.switch.stats();
    assert!(
        stats.ports.iter().map(|p| p.drops).sum::<u64>() > 0,
        "hostile frames were counted as drops"
    );
}

/// The seed corpus reaches what it is there for: NAT sessions and their
/// expiry, fragments made and held, ICMP errors, ARP answered and queued,
/// SNAT ports run out and the NAT table full.
#[test]
fn the_seed_corpus_reaches_the_deep_stages() {
    let mut lab = Lab::new();
    for (name, input) in seed_corpus() {
        let mut alone = Lab::new();
        alone.run(&input);
        let nat = alone.switch.stats().nat;
        match name.as_str() {
            "snat-ports-exhausted" => assert!(nat.no_ports > 0, "{nat:?}"),
            // Full of unanswered flows, the table makes room by ending one.
            "nat-table-full" => assert!(nat.table_full + nat.early_drops > 0, "{nat:?}"),
            _ => {}
        }
        lab.run(&input);
    }
    let stats = lab.switch.stats();
    let (l3, nat) = (&stats.l3, &stats.nat);
    assert!(
        nat.sessions_created >= 5 && nat.sessions_expired > 0,
        "{nat:?}"
    );
    assert!(nat.translated > 0 && nat.fragments_held > 0, "{nat:?}");
    assert!(l3.fragments_made > 0 && l3.icmp_errors_sent > 0, "{l3:?}");
    assert!(l3.arp_replies_sent > 0 && l3.arp_queued > 0, "{l3:?}");
    assert!(l3.arp_failed > 0 && l3.ip4_local > 0, "{l3:?}");
}

/// The coverage-guided fuzzer's code path, for a bounded count: random
/// inputs in its format, each on a new lab.
#[test]
fn fuzzer_inputs_never_panic_the_pipeline() {
    let frames = seed_frames();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for (_, input) in seed_corpus() {
        Lab::new().run(&input);
    }
    for _ in 0..10_000 {
        let input = random_input(&mut rng, &frames);
        Lab::new().run(&input);
    }
    // Bytes that are no valid input at all are steps all the same.
    for n in 0..200 {
        let junk: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
        Lab::new().run(&junk);
    }
    // A record longer than what is left takes the rest.
    let mut cut = Vec::new();
    push_record(
        &mut cut,
        LabPort::Outside,
        Kind::Repaired,
        false,
        &frames[16].1,
    );
    cut.truncate(cut.len() - 5);
    Lab::new().run(&cut);
}

/// Found by the fuzzer: a packet from network 0 (0.0.0.96) or from a
/// subnet's directed broadcast (192.168.15.255) was forwarded, answered
/// with an echo reply, or sent an ICMP error (RFC 1812 5.3.7, 4.2.2.11).
#[test]
fn packets_from_martian_sources_are_dropped_unanswered() {
    use patchbay_dataplane::fuzzing::frame::{Addr, Body, FrameSpec, MacChoice};
    let seeds = patchbay_dataplane::fuzzing::seed_specs();
    for src in [[0, 0, 0, 96], [192, 168, 15, 255], [203, 0, 113, 255]] {
        // An echo to the router, a packet to forward, one whose TTL runs
        // out: from each side.
        for (i, ttl) in [(3, 64), (2, 64), (12, 1), (16, 64), (17, 1)] {
            let (port, mut spec): (LabPort, FrameSpec) = seeds[i].clone();
            let Body::Ipv4(ip) = &mut spec.body else {
                unreachable!("seed {i} is IPv4")
            };
            ip.src = Addr::Any(src);
            ip.ttl = ttl;
            spec.dst = MacChoice::Router;
            let mut lab = Lab::new();
            let sent = |lab: &Lab| LabPort::ALL.map(|p| lab.sent(p));
            let before = sent(&lab);
            lab.feed(port, spec.build(port, lab.router_macs), false);
            assert_eq!(
                sent(&lab),
                before,
                "seed {i} from {src:?}: something was sent"
            );
        }
    }
}

/// Found by the fuzzer: a frame whose virtio-net header says its checksum
/// (left to the device) starts inside the IP header, routed to a bridge
/// with a smaller MTU. Fragmenting it computed that checksum and wrote it
/// over the IP total length, and the fragmenter then read past the frame.
/// Checksum offsets are now believed only inside the payload.
#[test]
fn a_checksum_offset_inside_the_ip_header_is_refused_not_written() {
    const INPUT: &[u8] = &[
        0x1c, 0x01, 0x00, 0x00, 0x04, 0x42, 0x00, 0x02, 0xed, 0xf0, 0x0d, 0x00, 0x43, 0x02, 0x00,
        0x00, 0x00, 0x01, 0x01, 0x08, 0x00, 0x45, 0x00, 0x00, 0x34, 0x00, 0x07, 0x00, 0x00, 0x40,
        0x11, 0x6f, 0x06, 0xc0, 0xa8, 0x0f, 0x01, 0xcb, 0x00, 0x71, 0x02, 0x9c, 0x40, 0x00, 0x35,
        0x00, 0x20, 0xd2, 0xfb, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
        0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x04, 0x36,
        0x00, 0x02, 0xed, 0xf0, 0x0d, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x01, 0x08, 0x00,
        0x45, 0x00, 0x00, 0x2c, 0x00, 0x07, 0x00, 0x00, 0x40, 0x06, 0x78, 0x1d, 0xc0, 0xa8, 0x0f,
        0x01, 0xcb, 0x00, 0x71, 0x02, 0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 0x00, 0xfa,
        0x00, 0x00, 0x50, 0x02, 0xff, 0xff, 0x07, 0xa5, 0x00, 0x00, 0x06, 0x42, 0x00, 0x02, 0xed,
        0xf0, 0x0d, 0x00, 0x01, 0x02, 0x00, 0x08, 0x00, 0x02, 0x02, 0x08, 0x00, 0x45, 0x00, 0x00,
        0x00, 0x08, 0x00, 0x46, 0x00, 0x60, 0x11, 0x02, 0xae, 0xcb, 0x00, 0x71, 0x02, 0xcb, 0x00,
        0x71, 0x01, 0x3a, 0x40, 0x14, 0xe9, 0x00, 0x20, 0x51, 0xef, 0x00, 0x01, 0x02, 0x03, 0x04,
        0x05, 0x06, 0x07, 0x00, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x28, 0x11, 0x12,
        0x13, 0x14, 0x15, 0x16, 0xf0, 0xff, 0xff, 0xff, 0x00, 0x46, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x10, 0x00, 0x00, 0x02, 0xcb, 0x00, 0x71, 0x01, 0x9c, 0x40, 0x14, 0xe9, 0x00, 0x20, 0x51,
        0xef, 0x00, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x04,
        0x33, 0x00, 0x0e, 0x0f, 0x10, 0x28, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0xf0, 0xff, 0xff,
        0xff, 0x00, 0x46, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0xcb, 0x00, 0x71,
        0x01, 0x9c, 0x40, 0x14, 0x52, 0x52, 0x52, 0x52, 0x52, 0x52, 0x52, 0x6f, 0x00,
    ];
    let mut lab = Lab::new();
    lab.run(INPUT);
}

/// The tagged seed reaches the VLAN stages and the router through its VLAN
/// interface (br0.10), which answers it.
#[test]
fn the_tagged_seed_is_answered_by_the_vlan_interface() {
    let mut lab = Lab::new();
    let (port, spec) = patchbay_dataplane::fuzzing::seed_specs()
        .into_iter()
        .find(|(_, s)| format!("{s:?}").contains("ethertype: 33024"))
        .expect("a tagged seed");
    let before = lab.switch.stats().l3.arp_replies_sent;
    let frame = spec.build(port, lab.router_macs);
    lab.feed(port, frame, false);
    assert_eq!(lab.switch.stats().l3.arp_replies_sent, before + 1);
}
