//! Hostile frames through the whole pipeline (bridge, ARP, router, ICMP,
//! NAT): mutated copies of real frames and random bytes, on both sides of a
//! NAT router. Whatever they are, they are forwarded or counted as drops;
//! nothing panics.

use patchbay_dataplane::nat::{Filtering, NatAction};
use patchbay_dataplane::pipeline::{Switch, SwitchConfig, DEFAULT_BRIDGE};
use patchbay_dataplane::port::memory::{with_vnet_hdr, MemoryPort};
use patchbay_dataplane::trace::Filter;
use patchbay_dataplane::wire::ipv4::emit_header;
use patchbay_dataplane::wire::Mac;
use std::net::Ipv4Addr;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn ip_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    proto: u8,
    src: &str,
    dst: &str,
    l4: &[u8],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![0u8; 20 + l4.len()];
    let (s, d): (Ipv4Addr, Ipv4Addr) = (src.parse().unwrap(), dst.parse().unwrap());
    emit_header(&mut ip, (20 + l4.len()) as u16, 7, 64, proto, s, d);
    ip[20..].copy_from_slice(l4);
    f.extend_from_slice(&ip);
    f
}

#[test]
fn hostile_frames_never_panic_the_pipeline() {
    let inside = [2, 0, 0, 0, 1, 1];
    let outside = [2, 0, 0, 0, 2, 2];
    let mut sw = Switch::new(SwitchConfig::default(), None);
    let mut captures = Vec::new();
    sw.add_bridge("br1").unwrap();
    let (p1, p2) = (MemoryPort::new("p1"), MemoryPort::new("p2"));
    let (h1, h2) = (p1.handle(), p2.handle());
    let id1 = sw.add_port(Box::new(p1), Some(DEFAULT_BRIDGE)).unwrap();
    let id2 = sw.add_port(Box::new(p2), Some("br1")).unwrap();
    sw.addr_add(DEFAULT_BRIDGE, "192.168.15.10/24".parse().unwrap())
        .unwrap();
    sw.addr_add("br1", "203.0.113.1/24".parse().unwrap())
        .unwrap();
    sw.set_mtu("br1", 600).unwrap();
    sw.neigh_add("203.0.113.2".parse().unwrap(), Mac(outside), "br1")
        .unwrap();
    sw.neigh_add("192.168.15.1".parse().unwrap(), Mac(inside), DEFAULT_BRIDGE)
        .unwrap();
    sw.nat_add(
        NatAction::Masquerade,
        Some("192.168.15.0/24".parse().unwrap()),
        "br1",
        None,
        Filtering::EndpointIndependent,
    )
    .unwrap();
    sw.nat_add(
        NatAction::Dnat {
            proto: 17,
            dport: 5353,
            to_addr: "192.168.15.1".parse().unwrap(),
            to_port: 53,
        },
        None,
        "br1",
        None,
        Filtering::default(),
    )
    .unwrap();
    let r0 = sw.addrs()[0].mac.0;
    let r1 = sw.addrs()[1].mac.0;
    let udp = [
        0x9c, 0x40, 0x00, 0x35, 0x00, 0x10, 0x00, 0x00, 1, 2, 3, 4, 5, 6, 7, 8,
    ];
    let tcp = {
        let mut t = vec![0u8; 20];
        t[0..4].copy_from_slice(&[0x9c, 0x41, 0x00, 0x50]);
        t[12] = 0x50;
        t[13] = 0x02;
        t
    };
    let echo = [8u8, 0, 0xf7, 0xff, 0, 1, 0, 0];
    // An ICMP port unreachable quoting a UDP packet from the NAT address.
    let quoted = ip_frame([0; 6], [0; 6], 17, "203.0.113.1", "203.0.113.2", &udp)[14..].to_vec();
    let mut unreach = vec![3u8, 3, 0, 0, 0, 0, 0, 0];
    unreach.extend_from_slice(&quoted);
    let arp = {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&inside);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&inside);
        f.extend_from_slice(&[192, 168, 15, 1, 0, 0, 0, 0, 0, 0, 192, 168, 15, 10]);
        f
    };
    let seeds: Vec<(usize, Vec<u8>)> = vec![
        (
            0,
            ip_frame(r0, inside, 17, "192.168.15.1", "203.0.113.2", &udp),
        ),
        (
            0,
            ip_frame(r0, inside, 6, "192.168.15.1", "203.0.113.2", &tcp),
        ),
        (
            0,
            ip_frame(r0, inside, 1, "192.168.15.1", "203.0.113.2", &echo),
        ),
        (
            0,
            ip_frame(r0, inside, 1, "192.168.15.1", "192.168.15.10", &echo),
        ),
        (
            0,
            ip_frame(r0, inside, 17, "192.168.15.1", "203.0.113.2", &[0u8; 900]),
        ),
        (0, arp),
        (
            1,
            ip_frame(r1, outside, 17, "203.0.113.2", "203.0.113.1", &udp),
        ),
        (
            1,
            ip_frame(r1, outside, 1, "203.0.113.2", "203.0.113.1", &unreach),
        ),
        (
            1,
            ip_frame(
                r1,
                outside,
                17,
                "203.0.113.2",
                "203.0.113.1",
                &[0x13, 0x88, 0x14, 0xe9, 0, 8, 0, 0],
            ),
        ),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..60_000 {
        let (side, seed) = &seeds[round % seeds.len()];
        let mut f = seed.clone();
        // Leave a third of them intact, so sessions and neighbours exist for
        // the mutated ones to run into.
        if round % 3 != 0 {
            for _ in 0..1 + rng.next() % 6 {
                let at = (rng.next() as usize) % f.len();
                match rng.next() % 5 {
                    0 | 1 => f[at] = rng.next() as u8,
                    2 => f.truncate(at.max(1)),
                    3 => f.insert(at, rng.next() as u8),
                    _ => f.extend((0..rng.next() % 40).map(|_| rng.next() as u8)),
                }
            }
        }
        let mut frame = with_vnet_hdr(&f);
        if round % 7 == 0 {
            // A virtio header claiming offloads: GSO, partial checksums.
            for b in frame.iter_mut().take(10) {
                *b = rng.next() as u8;
            }
        }
        if *side == 0 {
            h1.inject([frame]);
            sw.process_rx(id1);
        } else {
            h2.inject([frame]);
            sw.process_rx(id2);
        }
        if round % 5_000 == 0 {
            sw.housekeeping();
        }
        // Every other stretch with a trace armed and a capture running, so
        // their parsers see the hostile frames too.
        if round % 10_000 == 0 {
            let f = || Filter::parse("port 53 or host 10.1.0.2 or arp or not udp").unwrap();
            sw.trace_start(3_000, None, f()).unwrap();
            for (k, port) in ["p1", "p2"].iter().enumerate() {
                // The writers are dropped at once: their taps end when they
                // notice, as they must.
                let tap = sw.capture_start(port, (true, true), f(), 96, None).unwrap();
                if k == 0 {
                    captures.push(tap);
                }
            }
        }
        if round % 10_000 == 5_000 {
            sw.trace_stop();
            captures.clear();
        }
    }
    // Still routing and translating afterwards.
    h1.capture(true);
    h2.capture(true);
    h1.inject([with_vnet_hdr(&seeds[0].1)]);
    sw.process_rx(id1);
    assert!(!h2.take_sent().is_empty(), "the switch stopped forwarding");
    let stats = sw.stats();
    assert!(
        stats.ports.iter().map(|p| p.drops).sum::<u64>() > 0,
        "hostile frames were counted as drops"
    );
}
