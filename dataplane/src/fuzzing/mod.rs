//! Hostile input for the whole pipeline, shared by the coverage-guided
//! fuzzer (`fuzz/`, cargo-fuzz) and the bounded run in `cargo test`
//! (`tests/frame_fuzz.rs`). Built with the `fuzzing` feature only.
//!
//! - [`lab`]: the switch under attack, a NAT router between two bridges in
//!   memory, and the checks on every frame it sends.
//! - [`frame`]: frames described field by field ([`frame::FrameSpec`]), so
//!   that a fuzzer varies them without breaking their checksums.
//! - [`input`]: a fuzzer's bytes as steps for the lab: frames, time passing,
//!   traces, dry runs.
//!
//! Whatever comes in, the switch forwards it or counts it as a drop, and:
//! nothing panics; what the router sends has a valid IPv4 header, a TTL of
//! at least 1, a source a host can have, and transport checksums as valid
//! as those that came in; no inside address leaves through NAT
//! untranslated; a dry-run trace changes none of the tables.

pub mod frame;
pub mod input;
pub mod lab;

use frame::{Addr, Body, Damage, ErrorKind, Frag, FrameSpec, IpOption, Ipv4Spec, L4};
use frame::{ArpSpec, MacChoice, Payload, PortChoice, Quote, QuotedL4};
use input::{push_record, Kind};
pub use lab::{Lab, LabPort};

/// A small, fast generator (xorshift64) for inputs made without a fuzzer.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// `min` to `min + 119` random bytes.
    pub fn bytes(&mut self, min: usize) -> Vec<u8> {
        let n = min + self.below(120);
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// Changes a few bytes of `f` at random: overwritten, inserted, cut off,
/// or random bytes appended.
pub fn mutate(rng: &mut Rng, f: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(6) {
        if f.is_empty() {
            f.push(rng.next_u64() as u8);
        }
        let at = rng.below(f.len());
        match rng.below(5) {
            0 | 1 => f[at] = rng.next_u64() as u8,
            2 => f.truncate(at.max(1)),
            3 => f.insert(at, rng.next_u64() as u8),
            _ => {
                let n = rng.below(40);
                f.extend((0..n).map(|_| rng.next_u64() as u8))
            }
        }
    }
}

fn spec(dst: MacChoice, src: MacChoice, ip_src: Addr, ip_dst: Addr, l4: L4) -> FrameSpec {
    FrameSpec {
        dst,
        src,
        body: Body::Ipv4(Ipv4Spec {
            src: ip_src,
            dst: ip_dst,
            ttl: 64,
            ident: 7,
            tos: 0,
            frag: Frag::Whole,
            options: Vec::new(),
            l4,
            damage: Damage::None,
        }),
    }
}

fn udp(sport: PortChoice, dport: PortChoice, len: u16) -> L4 {
    L4::Udp {
        sport,
        dport,
        payload: Payload::Large(len),
        no_checksum: false,
    }
}

fn syn(sport: PortChoice, dport: PortChoice) -> L4 {
    L4::Tcp {
        sport,
        dport,
        flags: 0x02,
        payload: Payload::Small(0),
    }
}

fn echo(reply: bool) -> L4 {
    L4::Echo {
        reply,
        ident: 0x1234,
        seq: 1,
        payload: Payload::Small(56),
    }
}

fn with_ip(mut s: FrameSpec, f: impl FnOnce(&mut Ipv4Spec)) -> FrameSpec {
    if let Body::Ipv4(ip) = &mut s.body {
        f(ip);
    }
    s
}

/// Real traffic for the lab, frame by frame (the port it comes in on and
/// its description): what a corpus starts from.
pub fn seed_specs() -> Vec<(LabPort, FrameSpec)> {
    use Addr::*;
    use LabPort::*;
    use MacChoice::{InsideHost as InMac, OutsideHost as OutMac, Router};
    let (eph, dns) = (PortChoice::Ephemeral(0), PortChoice::Dns);
    let to_out = |l4| spec(Router, InMac, InsideHost, OutsideHost, l4);
    let from_out = |l4| spec(Router, OutMac, OutsideHost, RouterOutside, l4);
    let quote = |dst: Addr| Quote {
        src: RouterOutside,
        dst,
        l4: QuotedL4::Udp {
            sport: eph,
            dport: dns,
        },
        cut: None,
        ihl: None,
    };
    vec![
        (Inside, to_out(udp(eph, dns, 24))),
        (Inside, to_out(syn(eph, PortChoice::Http))),
        (Inside, to_out(echo(false))),
        (
            Inside,
            spec(Router, InMac, InsideHost, RouterInside, echo(false)),
        ),
        // Fragmented on the way out (outside MTU 600).
        (Inside, to_out(udp(eph, dns, 900))),
        (
            Inside,
            with_ip(to_out(udp(eph, dns, 900)), |ip| {
                ip.frag = Frag::DontFragment
            }),
        ),
        (Inside, arp_request(InMac, InsideHost, RouterInside)),
        // The SNAT'd half of the inside network, and its narrow port range.
        (
            Neighbour,
            spec(
                Router,
                MacChoice::Station(1),
                InsideNet(200),
                OutsideHost,
                udp(eph, dns, 24),
            ),
        ),
        // Routed via a gateway that never answers: queued for ARP.
        (
            Inside,
            spec(Router, InMac, InsideHost, Remote(7), udp(eph, dns, 24)),
        ),
        (
            Inside,
            with_ip(to_out(udp(eph, dns, 64)), |ip| ip.frag = Frag::First),
        ),
        (
            Inside,
            with_ip(to_out(udp(eph, dns, 64)), |ip| {
                ip.frag = Frag::Later {
                    offset: 9,
                    more: false,
                }
            }),
        ),
        (
            Inside,
            with_ip(to_out(echo(false)), |ip| {
                ip.options = vec![
                    IpOption::RecordRoute {
                        slots: 3,
                        pointer: 0,
                    },
                    IpOption::RouterAlert,
                ]
            }),
        ),
        (Inside, with_ip(to_out(udp(eph, dns, 24)), |ip| ip.ttl = 1)),
        (
            Inside,
            to_out(L4::Other {
                proto: 47,
                payload: Payload::Small(24),
            }),
        ),
        (
            Inside,
            to_out(L4::Query {
                kind: 0,
                ident: 0x4242,
            }),
        ),
        // Bridged between two ports of br0.
        (
            Neighbour,
            spec(
                InMac,
                MacChoice::Station(1),
                InsideNet(20),
                InsideHost,
                udp(eph, dns, 24),
            ),
        ),
        // Answers to what the inside host sent (its port kept: 40000).
        (Outside, from_out(udp(dns, eph, 24))),
        (
            Outside,
            from_out(L4::Error {
                kind: ErrorKind::Unreachable,
                code: 3,
                quote: quote(OutsideHost),
            }),
        ),
        // Published ports, and a connection opened straight to an inside
        // host.
        (Outside, from_out(udp(eph, PortChoice::Mdns, 24))),
        (Outside, from_out(syn(eph, PortChoice::HttpAlt))),
        (
            Outside,
            spec(
                Router,
                OutMac,
                OutsideHost,
                InsideHost,
                syn(eph, PortChoice::Any(22)),
            ),
        ),
        (Outside, arp_request(OutMac, OutsideHost, RouterOutside)),
        (
            Outside,
            with_ip(from_out(udp(dns, eph, 64)), |ip| {
                ip.frag = Frag::Later {
                    offset: 9,
                    more: false,
                }
            }),
        ),
        // IPv6: a neighbour solicitation to the router's solicited-node
        // group, an echo request to it, and UDP routed out (the bytes as a
        // host sends them; the fuzzer changes them from there).
        (Inside, ipv6(Router, InMac, ns6())),
        (Inside, ipv6(Router, InMac, icmp6_echo())),
        (Inside, ipv6(Router, InMac, udp6())),
        (Neighbour, tagged_arp()),
    ]
}

/// An ARP request for br0.10 (10.10.0.1), tagged VLAN 10, from a station
/// on the trunk.
fn tagged_arp() -> FrameSpec {
    let mut payload = vec![0x00, 0x0a, 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1];
    payload.extend_from_slice(&[2, 0, 0, 0, 3, 2, 10, 10, 0, 2]);
    payload.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 10, 0, 1]);
    FrameSpec {
        dst: MacChoice::Broadcast,
        src: MacChoice::Station(2),
        body: frame::Body::Other {
            ethertype: crate::wire::vlan::TPID_8021Q,
            payload,
        },
    }
}

/// A broadcast ARP request from `mac` at `ip` for `target`.
fn arp_request(mac: MacChoice, ip: Addr, target: Addr) -> FrameSpec {
    ArpSpec {
        reply: false,
        sender_mac: mac,
        sender_ip: ip,
        target_mac: MacChoice::Zero,
        target_ip: target,
        odd: None,
    }
    .into_frame(MacChoice::Broadcast, mac)
}

/// An IPv6 frame of `payload` (IPv6 header on), as `Body::Other`.
fn ipv6(dst: MacChoice, src: MacChoice, payload: Vec<u8>) -> FrameSpec {
    FrameSpec {
        dst,
        src,
        body: Body::Other {
            ethertype: crate::wire::ethernet::ETHERTYPE_IPV6,
            payload,
        },
    }
}

/// An IPv6 packet from 2001:db8:15::2 to `dst` with `next` and `l4`, its
/// ICMPv6 checksum filled in for ICMPv6.
fn ip6_packet(dst: std::net::Ipv6Addr, next: u8, hop_limit: u8, l4: &[u8]) -> Vec<u8> {
    let src: std::net::Ipv6Addr = "2001:db8:15::2".parse().expect("an address");
    let mut p = vec![0u8; 40 + l4.len()];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&(l4.len() as u16).to_be_bytes());
    p[6] = next;
    p[7] = hop_limit;
    p[8..24].copy_from_slice(&src.octets());
    p[24..40].copy_from_slice(&dst.octets());
    p[40..].copy_from_slice(l4);
    if next == 58 {
        use crate::wire::checksum;
        let sum = checksum::add(0, &p[8..40]);
        let sum = checksum::add(sum, &(l4.len() as u32).to_be_bytes());
        let sum = checksum::add(sum, &[0, 0, 0, 58]);
        let sum = checksum::add(sum, &p[40..]);
        p[42..44].copy_from_slice(&checksum::finish(sum).to_be_bytes());
    }
    p
}

fn ns6() -> Vec<u8> {
    let target: std::net::Ipv6Addr = "2001:db8:15::10".parse().expect("an address");
    let mut m = vec![135, 0, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&target.octets());
    m.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 2]);
    ip6_packet("ff02::1:ff00:10".parse().expect("an address"), 58, 255, &m)
}

fn icmp6_echo() -> Vec<u8> {
    let m = [128, 0, 0, 0, 0x12, 0x34, 0, 1, 1, 2, 3, 4];
    ip6_packet("2001:db8:15::10".parse().expect("an address"), 58, 64, &m)
}

fn udp6() -> Vec<u8> {
    let m = [0x9c, 0x40, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4];
    ip6_packet("2001:db8:113::2".parse().expect("an address"), 17, 64, &m)
}

impl ArpSpec {
    fn into_frame(self, dst: MacChoice, src: MacChoice) -> FrameSpec {
        FrameSpec {
            dst,
            src,
            body: Body::Arp(self),
        }
    }
}

/// The seed frames' bytes: port and Ethernet frame.
pub fn seed_frames() -> Vec<(LabPort, Vec<u8>)> {
    let macs = Lab::new().router_macs;
    seed_specs()
        .into_iter()
        .map(|(port, s)| {
            (
                port,
                s.build(port, macs).split_off(crate::wire::VNET_HDR_LEN),
            )
        })
        .collect()
}

/// A corpus to start fuzzing from: each seed frame alone, then short
/// conversations (a flow and its answers, before and after it expires;
/// fragments out of order; a trace and a dry run; a GSO frame). Named for
/// the files they go in.
pub fn seed_corpus() -> Vec<(String, Vec<u8>)> {
    let frames = seed_frames();
    let mut corpus: Vec<(String, Vec<u8>)> = frames
        .iter()
        .enumerate()
        .map(|(i, (port, f))| {
            let mut input = Vec::new();
            push_record(&mut input, *port, Kind::Repaired, false, f);
            (format!("frame-{i:02}"), input)
        })
        .collect();
    let record = |input: &mut Vec<u8>, i: usize| {
        let (port, f) = &frames[i];
        push_record(input, *port, Kind::Repaired, false, f);
    };
    let wait = |input: &mut Vec<u8>, secs: u16| {
        let units = (u32::from(secs) * 1000 / 16) as u16;
        push_record(
            input,
            LabPort::Inside,
            Kind::Wait,
            false,
            &units.to_le_bytes(),
        );
    };
    // A flow out, its answers, an error about it; again once it expired.
    let mut flow = Vec::new();
    for _ in 0..2 {
        for i in [0, 16, 17, 1, 2, 14] {
            record(&mut flow, i);
        }
        wait(&mut flow, 40);
    }
    corpus.push(("flow-and-expiry".into(), flow));
    // Fragments: a later one before its first, both ways.
    let mut frags = Vec::new();
    for i in [10, 9, 22, 0, 4, 16] {
        record(&mut frags, i);
    }
    wait(&mut frags, 6);
    corpus.push(("fragments".into(), frags));
    // Packets queued for ARP, then the neighbour fails.
    let mut arp = Vec::new();
    for i in [8, 8, 6, 8] {
        record(&mut arp, i);
    }
    wait(&mut arp, 4);
    record(&mut arp, 8);
    corpus.push(("arp-queue".into(), arp));
    // Everything traced and captured, then a dry run.
    let mut traced = Vec::new();
    push_record(&mut traced, LabPort::Inside, Kind::Trace, false, &[0]);
    for i in 0..frames.len() {
        record(&mut traced, i);
    }
    push_record(&mut traced, LabPort::Inside, Kind::DrySpec, false, &[0; 16]);
    push_record(&mut traced, LabPort::Inside, Kind::Trace, false, &[1]);
    corpus.push(("traced".into(), traced));
    // A UDP super-frame (GSO, checksum left to the device), in one batch
    // with an ordinary packet.
    let mut gso = Vec::new();
    let mut f = vec![1, 5]; // NEEDS_CSUM, GSO_UDP_L4
    f.extend_from_slice(&42u16.to_le_bytes()); // headers
    f.extend_from_slice(&536u16.to_le_bytes()); // segment size
    f.extend_from_slice(&34u16.to_le_bytes()); // checksum start
    f.extend_from_slice(&6u16.to_le_bytes()); // checksum offset
    f.extend_from_slice(&frames[4].1);
    push_record(&mut gso, LabPort::Inside, Kind::VnetRepaired, true, &f);
    push_record(
        &mut gso,
        LabPort::Inside,
        Kind::Repaired,
        false,
        &frames[1].1,
    );
    corpus.push(("gso-batch".into(), gso));
    // More flows than the tables hold: an SNAT'd host out of its four
    // ports, then more sessions than the NAT table's 16.
    let macs = Lab::new().router_macs;
    let flow = |input: &mut Vec<u8>, port: LabPort, s: FrameSpec| {
        let f = s.build(port, macs).split_off(crate::wire::VNET_HDR_LEN);
        push_record(input, port, Kind::Repaired, false, &f);
    };
    let mut snat = Vec::new();
    for k in 0..6 {
        let l4 = udp(PortChoice::Ephemeral(k), PortChoice::Dns, 24);
        let s = spec(
            MacChoice::Router,
            MacChoice::Station(1),
            Addr::InsideNet(200),
            Addr::OutsideHost,
            l4,
        );
        flow(&mut snat, LabPort::Neighbour, s);
    }
    corpus.push(("snat-ports-exhausted".into(), snat));
    let mut full = Vec::new();
    for k in 2..22 {
        let l4 = udp(PortChoice::Ephemeral(0), PortChoice::Dns, 24);
        let s = spec(
            MacChoice::Router,
            MacChoice::InsideHost,
            Addr::InsideNet(k),
            Addr::OutsideHost,
            l4,
        );
        flow(&mut full, LabPort::Inside, s);
    }
    corpus.push(("nat-table-full".into(), full));
    corpus
}

/// An input made at random, for runs without a fuzzer: seed frames
/// mutated byte by byte, frame specs from random bytes, time passing,
/// traces and dry runs.
pub fn random_input(rng: &mut Rng, frames: &[(LabPort, Vec<u8>)]) -> Vec<u8> {
    let mut input = Vec::new();
    for _ in 0..1 + rng.below(12) {
        let hold = rng.below(8) == 0;
        let port = LabPort::ALL[rng.below(3)];
        match rng.below(20) {
            0..=7 => {
                let (port, f) = &frames[rng.below(frames.len())];
                let mut f = f.clone();
                if rng.below(4) != 0 {
                    mutate(rng, &mut f);
                }
                let kind = [Kind::Raw, Kind::Repaired][rng.below(2)];
                push_record(&mut input, *port, kind, hold, &f);
            }
            8..=15 => {
                push_record(&mut input, port, Kind::Spec, hold, &rng.bytes(4));
            }
            16 => {
                push_record(&mut input, port, Kind::VnetSpec, hold, &rng.bytes(10));
            }
            17 => {
                push_record(&mut input, port, Kind::DrySpec, hold, &rng.bytes(4));
            }
            18 => {
                let ms = (rng.next_u64() as u16).to_le_bytes();
                push_record(&mut input, port, Kind::Wait, hold, &ms);
            }
            _ => {
                let on = [rng.below(2) as u8];
                push_record(&mut input, port, Kind::Trace, hold, &on);
            }
        }
    }
    input
}
