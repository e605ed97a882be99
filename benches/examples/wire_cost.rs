//! Our `wire` views and Reprs against smoltcp's, per packet, for counting
//! instructions:
//!
//!     valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!         target/release/examples/wire_cost WHAT ours|smoltcp N
//!
//! WHAT: `eth` (check and read an Ethernet header, then write one), `arp`
//! (parse a request, emit its reply), `ip-parse` (check an IPv4 header,
//! its checksum included, and read it into a Repr), `ip-emit` (write a
//! 20-byte header with its checksum), `icmp-error` (an IPv4 header and a
//! "fragmentation needed" quoting 28 bytes), `echo` (check an echo
//! request's IPv4 header and ICMP checksum, parse it, emit the reply). Run it with two counts (say 0 and
//! 100,000) and divide the difference by the packets: the instructions a
//! packet costs. Without valgrind it prints the time a packet takes.

use patchbay_dataplane::wire::arp::{ArpRepr, OP_REPLY, OP_REQUEST};
use patchbay_dataplane::wire::icmp::{IcmpErrorMsg, IcmpPacket, IcmpRepr};
use patchbay_dataplane::wire::ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
use patchbay_dataplane::wire::{EthernetFrame, Mac};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire as sm;
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Instant;

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

/// An echo request of 64 bytes of ICMP in IPv4, DF set, TTL 64.
fn echo_packet() -> Vec<u8> {
    let mut p = vec![0u8; 84];
    let data = [0x5au8; 56];
    let echo = IcmpRepr::EchoRequest {
        ident: 0x1c2f,
        seq: 1,
        data: &data,
    };
    let header = Ipv4Repr {
        src: A,
        dst: B,
        protocol: IpProtocol::Icmp,
        ttl: 64,
        tos: 0,
        ident: 0x3c8a,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
        payload_len: echo.buffer_len(),
    };
    let mut ip = Ipv4Packet::new_unchecked(&mut p[..]);
    header.emit(&mut ip);
    echo.emit(&mut IcmpPacket::new_unchecked(ip.payload_mut()));
    p
}

fn arp_request() -> [u8; 28] {
    let mut b = [0u8; 28];
    ArpRepr {
        op: OP_REQUEST,
        sender_mac: Mac(MAC_A),
        sender_ip: A,
        target_mac: Mac::ZERO,
        target_ip: B,
    }
    .emit(&mut b);
    b
}

fn ours(what: &str, input: &[u8], out: &mut [u8]) -> usize {
    match what {
        "eth" => {
            let e = EthernetFrame::new_checked(input).unwrap();
            let (dst, src, t) = (e.dst(), e.src(), e.ethertype());
            EthernetFrame::new_unchecked(&mut *out).emit(src, dst, t);
            usize::from(t)
        }
        "arp" => {
            let r = ArpRepr::parse(input).unwrap();
            let reply = ArpRepr {
                op: OP_REPLY,
                sender_mac: Mac(MAC_B),
                sender_ip: r.target_ip,
                target_mac: r.sender_mac,
                target_ip: r.sender_ip,
            };
            reply.emit(out);
            usize::from(r.op)
        }
        "ip-parse" => {
            let r = Ipv4Repr::parse(&Ipv4Packet::new_checked(input).unwrap());
            r.payload_len + usize::from(r.ttl)
        }
        "ip-emit" => {
            let r = Ipv4Repr {
                src: A,
                dst: B,
                protocol: IpProtocol::Icmp,
                ttl: 64,
                tos: 0,
                ident: 0,
                dont_frag: true,
                more_frags: false,
                frag_offset: 0,
                payload_len: input.len(),
            };
            r.emit(&mut Ipv4Packet::new_unchecked(&mut *out));
            r.buffer_len()
        }
        "icmp-error" => {
            let error = IcmpRepr::Error {
                msg: IcmpErrorMsg::frag_needed(1400),
                quote: &input[..28],
            };
            let header = Ipv4Repr {
                src: B,
                dst: A,
                protocol: IpProtocol::Icmp,
                ttl: 64,
                tos: 0,
                ident: 0,
                dont_frag: true,
                more_frags: false,
                frag_offset: 0,
                payload_len: error.buffer_len(),
            };
            let mut ip = Ipv4Packet::new_unchecked(&mut *out);
            header.emit(&mut ip);
            error.emit(&mut IcmpPacket::new_unchecked(ip.payload_mut()));
            header.buffer_len()
        }
        "echo" => {
            let ip = Ipv4Packet::new_checked(input).unwrap();
            let icmp = IcmpPacket::new_checked(ip.payload()).unwrap();
            let IcmpRepr::EchoRequest { ident, seq, data } = IcmpRepr::parse(&icmp).unwrap() else {
                unreachable!()
            };
            let reply = IcmpRepr::EchoReply { ident, seq, data };
            reply.emit(&mut IcmpPacket::new_unchecked(&mut *out));
            reply.buffer_len()
        }
        _ => panic!("what: eth, arp, ip-parse, ip-emit, icmp-error, echo"),
    }
}

fn smoltcp(what: &str, input: &[u8], out: &mut [u8]) -> usize {
    let caps = ChecksumCapabilities::default();
    match what {
        "eth" => {
            let r =
                sm::EthernetRepr::parse(&sm::EthernetFrame::new_checked(input).unwrap()).unwrap();
            let reply = sm::EthernetRepr {
                src_addr: r.dst_addr,
                dst_addr: r.src_addr,
                ethertype: r.ethertype,
            };
            reply.emit(&mut sm::EthernetFrame::new_unchecked(&mut *out));
            usize::from(u16::from(r.ethertype))
        }
        "arp" => {
            let p = sm::ArpPacket::new_checked(input).unwrap();
            let sm::ArpRepr::EthernetIpv4 {
                operation,
                source_hardware_addr,
                source_protocol_addr,
                target_protocol_addr,
                ..
            } = sm::ArpRepr::parse(&p).unwrap()
            else {
                unreachable!()
            };
            let reply = sm::ArpRepr::EthernetIpv4 {
                operation: sm::ArpOperation::Reply,
                source_hardware_addr: sm::EthernetAddress(MAC_B),
                source_protocol_addr: target_protocol_addr,
                target_hardware_addr: source_hardware_addr,
                target_protocol_addr: source_protocol_addr,
            };
            reply.emit(&mut sm::ArpPacket::new_unchecked(&mut out[..28]));
            usize::from(u16::from(operation))
        }
        "ip-parse" => {
            let p = sm::Ipv4Packet::new_checked(input).unwrap();
            let r = sm::Ipv4Repr::parse(&p, &caps).unwrap();
            r.payload_len + usize::from(r.hop_limit)
        }
        "ip-emit" => {
            let r = sm::Ipv4Repr {
                src_addr: A,
                dst_addr: B,
                next_header: sm::IpProtocol::Icmp,
                payload_len: input.len(),
                hop_limit: 64,
            };
            r.emit(&mut sm::Ipv4Packet::new_unchecked(&mut *out), &caps);
            r.buffer_len() + r.payload_len
        }
        "icmp-error" => {
            // smoltcp quotes a header it writes anew from a Repr, then the
            // first 8 bytes of the payload: 28 bytes, as ours above.
            let quoted = sm::Ipv4Repr::parse(&sm::Ipv4Packet::new_unchecked(input), &caps).unwrap();
            let error = sm::Icmpv4Repr::DstUnreachable {
                reason: sm::Icmpv4DstUnreachable::FragRequired,
                header: quoted,
                data: &input[20..28],
            };
            let header = sm::Ipv4Repr {
                src_addr: B,
                dst_addr: A,
                next_header: sm::IpProtocol::Icmp,
                payload_len: error.buffer_len(),
                hop_limit: 64,
            };
            let mut ip = sm::Ipv4Packet::new_unchecked(&mut *out);
            header.emit(&mut ip, &caps);
            error.emit(
                &mut sm::Icmpv4Packet::new_unchecked(ip.payload_mut()),
                &caps,
            );
            header.buffer_len()
        }
        "echo" => {
            // The IPv4 header's checksum checked too, as ours does.
            let ip = sm::Ipv4Packet::new_checked(input).unwrap();
            sm::Ipv4Repr::parse(&ip, &caps).unwrap();
            let icmp = sm::Icmpv4Packet::new_checked(ip.payload()).unwrap();
            let sm::Icmpv4Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } = sm::Icmpv4Repr::parse(&icmp, &caps).unwrap()
            else {
                unreachable!()
            };
            let reply = sm::Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            };
            let len = reply.buffer_len();
            reply.emit(&mut sm::Icmpv4Packet::new_unchecked(&mut out[..len]), &caps);
            len
        }
        _ => panic!("what: eth, arp, ip-parse, ip-emit, icmp-error, echo"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map_or("ip-parse", String::as_str);
    let smol = args.get(2).is_some_and(|a| a == "smoltcp");
    let n: u64 = args
        .get(3)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let input = match what {
        "arp" => arp_request().to_vec(),
        "eth" => {
            let mut f = MAC_B.to_vec();
            f.extend_from_slice(&MAC_A);
            f.extend_from_slice(&[0x08, 0x00]);
            f.extend_from_slice(&echo_packet());
            f
        }
        _ => echo_packet(),
    };
    let mut out = vec![0u8; 256];
    let start = Instant::now();
    let mut sum = 0usize;
    for _ in 0..n {
        let input = black_box(&input[..]);
        sum += if smol {
            smoltcp(what, input, &mut out)
        } else {
            ours(what, input, &mut out)
        };
        black_box(&mut out);
    }
    let ns = start.elapsed().as_nanos() as f64 / n.max(1) as f64;
    black_box(sum);
    let who = if smol { "smoltcp" } else { "ours" };
    println!("{what} {who}: {ns:.1} ns a packet over {n}");
}
