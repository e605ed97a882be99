//! Reading a packet's connection tuple and rewriting it in place, with
//! incremental checksum updates (RFC 1624) of IPv4, TCP, UDP and ICMP.
//!
//! A frame whose L4 checksum the device is still to compute (virtio-net
//! `NEEDS_CSUM`, the default for TCP from a veth peer) carries in its
//! checksum field only the sum of the pseudo header, not complemented: for
//! those only the address change is folded in, since the device sums the
//! ports itself.

use crate::wire::checksum;
use crate::wire::icmp::{
    IcmpPacket, DEST_UNREACHABLE, ICMP_HDR_LEN, PARAMETER_PROBLEM, SOURCE_QUENCH, TIME_EXCEEDED,
};
use crate::wire::ipv4::{IpProtocol, Ipv4Packet, IPV4_MIN_HDR_LEN};
use crate::wire::tcp::TcpPacket;
use crate::wire::udp::UdpPacket;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv4Addr;

/// A connection tuple; for ICMP echo both ports are the identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tuple {
    pub proto: IpProtocol,
    pub src: Ipv4Addr,
    pub sport: u16,
    pub dst: Ipv4Addr,
    pub dport: u16,
}

impl Tuple {
    /// The same flow seen from the other end.
    pub fn inverse(&self) -> Tuple {
        Tuple {
            proto: self.proto,
            src: self.dst,
            sport: self.dport,
            dst: self.src,
            dport: self.sport,
        }
    }
}

impl fmt::Display for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.proto;
        if has_ports(self.proto) {
            write!(
                f,
                "{p} {}:{} -> {}:{}",
                self.src, self.sport, self.dst, self.dport
            )
        } else {
            write!(f, "{p} {} -> {}", self.src, self.dst)
        }
    }
}

const PROTO_DCCP: IpProtocol = IpProtocol::Other(33);
const PROTO_UDPLITE: IpProtocol = IpProtocol::Other(136);

/// Whether an ICMP type is a query whose identifier NAT maps like a port:
/// echo, timestamp, information and address mask, requests and replies
/// (RFC 792, 950), as conntrack tracks them.
fn is_icmp_query(icmp_type: u8) -> bool {
    matches!(icmp_type, 0 | 8 | 13..=18)
}

/// Whether NAT tracks `proto` by ports (TCP, UDP) or an identifier (ICMP
/// queries). Any other protocol is tracked by its addresses alone, as
/// conntrack's generic tracker does: a 3-tuple session whose ports are 0.
pub fn has_ports(proto: IpProtocol) -> bool {
    matches!(proto, IpProtocol::Tcp | IpProtocol::Udp | IpProtocol::Icmp)
}

/// The ports of a transport header `l4` of protocol `proto` (for an ICMP
/// query both are its identifier; other protocols have none: 0, 0), its TCP
/// flags, or `None` if `l4` is too short to hold them or is ICMP that is
/// not a query.
fn ports_of(proto: IpProtocol, l4: &[u8], need_whole: bool) -> Option<(u16, u16, u8)> {
    Some(match proto {
        // A whole header is needed to rewrite a packet (its checksum
        // included)...
        IpProtocol::Tcp if need_whole => {
            let tcp = TcpPacket::new_checked(l4)?;
            (tcp.src_port(), tcp.dst_port(), tcp.flags())
        }
        // ...the ports alone name the packet an ICMP error quotes: in the 8
        // bytes of a UDP header, where TCP has them too (its flags are not
        // asked for).
        IpProtocol::Tcp | IpProtocol::Udp => {
            let udp = UdpPacket::new_checked(l4)?;
            (udp.src_port(), udp.dst_port(), 0)
        }
        IpProtocol::Icmp => {
            let icmp = IcmpPacket::new_checked(l4).ok()?;
            if !is_icmp_query(icmp.msg_type()) {
                return None;
            }
            (icmp.echo_ident(), icmp.echo_ident(), 0)
        }
        // Their checksums cover a pseudo header with the addresses, which
        // an address-only translation would leave wrong: not tracked (and
        // so dropped rather than sent out untranslated).
        PROTO_DCCP | PROTO_UDPLITE => return None,
        _ => (0, 0, 0),
    })
}

/// The tuple of an (already validated) IPv4 packet, and its TCP flags;
/// `None` for what NAT cannot track: non-first fragments, ICMP other than
/// a query (errors have [`parse_icmp_error`]), and first fragments too short
/// to hold their TCP or UDP header (RFC 1858's tiny fragments).
pub fn parse_tuple(l3: &[u8]) -> Option<(Tuple, u8)> {
    let ip = Ipv4Packet::new_unchecked(l3);
    if ip.frag_offset() != 0 {
        return None;
    }
    let (sport, dport, flags) = ports_of(ip.protocol(), ip.payload(), true)?;
    let t = Tuple {
        proto: ip.protocol(),
        src: ip.src(),
        sport,
        dst: ip.dst(),
        dport,
    };
    Some((t, flags))
}

fn words(a: Ipv4Addr) -> [u16; 2] {
    let o = a.octets();
    [
        u16::from_be_bytes([o[0], o[1]]),
        u16::from_be_bytes([o[2], o[3]]),
    ]
}

/// A checksum `c` updated for 16-bit words changing from `old` to `new`;
/// `partial` for a not-complemented pseudo-header sum.
fn fixed(mut c: u16, changes: &[(u16, u16)], partial: bool) -> u16 {
    for &(old, new) in changes {
        if old != new {
            c = if partial {
                !checksum::update(!c, old, new)
            } else {
                checksum::update(c, old, new)
            };
        }
    }
    c
}

/// The 16-bit words that change when an IPv4 header's (source,
/// destination) go from `from` to `to`, as (old, new) pairs.
fn changes(from: (Ipv4Addr, Ipv4Addr), to: (Ipv4Addr, Ipv4Addr)) -> [(u16, u16); 4] {
    let (os, od, ns, nd) = (words(from.0), words(from.1), words(to.0), words(to.1));
    [
        (os[0], ns[0]),
        (os[1], ns[1]),
        (od[0], nd[0]),
        (od[1], nd[1]),
    ]
}

/// Writes an IPv4 header's addresses and updates its checksum for them.
fn set_addrs(
    ip: &mut Ipv4Packet<&mut [u8]>,
    changes: &[(u16, u16); 4],
    src: Ipv4Addr,
    dst: Ipv4Addr,
) {
    ip.set_checksum(fixed(ip.checksum(), changes, false));
    ip.set_src(src);
    ip.set_dst(dst);
}

/// Rewrites only the addresses of an IPv4 header (a later fragment, which
/// carries no transport header).
pub fn rewrite_addrs(l3: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr) {
    let mut ip = Ipv4Packet::new_unchecked(l3);
    let c = changes((ip.src(), ip.dst()), (src, dst));
    set_addrs(&mut ip, &c, src, dst);
}

/// Rewrites the packet's tuple (from `parse_tuple`) to `to`.
/// `partial`: the L4 checksum is left to the device (NEEDS_CSUM). The
/// packet may be a quote cut short after its ports (in an ICMP error): a
/// checksum field it does not hold is left alone.
pub fn rewrite(l3: &mut [u8], from: &Tuple, to: &Tuple, partial: bool) {
    let mut ip = Ipv4Packet::new_unchecked(l3);
    let addr_changes = changes((from.src, from.dst), (to.src, to.dst));
    set_addrs(&mut ip, &addr_changes, to.src, to.dst);
    // To the end of the buffer, not the total length: a quote's is longer.
    let l4 = ip.after_header_mut();
    let port_changes = [(from.sport, to.sport), (from.dport, to.dport)];
    match from.proto {
        IpProtocol::Tcp => {
            let mut tcp = TcpPacket::new_unchecked(l4);
            if tcp.holds_checksum() {
                let mut c = fixed(tcp.checksum(), &addr_changes, partial);
                if !partial {
                    c = fixed(c, &port_changes, false);
                }
                tcp.set_checksum(c);
            }
            tcp.set_src_port(to.sport);
            tcp.set_dst_port(to.dport);
        }
        IpProtocol::Udp => {
            let mut udp = UdpPacket::new_unchecked(l4);
            // RFC 768: a zero UDP checksum means none, and stays so.
            if partial || udp.checksum() != 0 {
                let mut c = fixed(udp.checksum(), &addr_changes, partial);
                if !partial {
                    c = fixed(c, &port_changes, false);
                    // RFC 768: a computed zero is sent as all ones, since
                    // zero means "no checksum".
                    if c == 0 {
                        c = 0xffff;
                    }
                }
                udp.set_checksum(c);
            }
            udp.set_src_port(to.sport);
            udp.set_dst_port(to.dport);
        }
        IpProtocol::Icmp => {
            // The identifier; ICMP sums no pseudo header.
            let mut icmp = IcmpPacket::new_unchecked(l4);
            icmp.set_checksum(fixed(icmp.checksum(), &[(from.sport, to.sport)], false));
            icmp.set_echo_ident(to.sport);
        }
        _ => {}
    }
}

/// For an ICMP error (destination unreachable, source quench, time
/// exceeded, parameter problem): the tuple of the packet it quotes and
/// where that packet starts in `l3`.
pub fn parse_icmp_error(l3: &[u8]) -> Option<(Tuple, usize)> {
    let ip = Ipv4Packet::new_unchecked(l3);
    if ip.protocol() != IpProtocol::Icmp || ip.frag_offset() != 0 {
        return None;
    }
    let icmp = IcmpPacket::new_checked(ip.payload()).ok()?;
    let is_about_a_datagram = matches!(
        icmp.msg_type(),
        DEST_UNREACHABLE | SOURCE_QUENCH | TIME_EXCEEDED | PARAMETER_PROBLEM
    );
    // The quote: an IPv4 header and 8 bytes at least (RFC 792), which
    // may stop anywhere after them.
    if !is_about_a_datagram || icmp.data().len() < IPV4_MIN_HDR_LEN + 8 {
        return None;
    }
    let inner = Ipv4Packet::new_unchecked(icmp.data());
    let ihl = inner.header_len();
    if inner.version() != 4 || ihl < IPV4_MIN_HDR_LEN || icmp.data().len() < ihl + 8 {
        return None;
    }
    let (sport, dport, _) = ports_of(inner.protocol(), inner.after_header(), false)?;
    let t = Tuple {
        proto: inner.protocol(),
        src: inner.src(),
        sport,
        dst: inner.dst(),
        dport,
    };
    Some((t, ip.header_len() + ICMP_HDR_LEN))
}

/// Rewrites an ICMP error whose quoted packet is `inner` (at `inner_at`) so
/// that it quotes `new_inner` and goes to `new_inner.src` (RFC 5508 4.2);
/// an error from the quoted packet's destination itself also takes on its
/// new address, so no inside address leaks.
pub fn rewrite_icmp_error(l3: &mut [u8], inner_at: usize, inner: &Tuple, new_inner: &Tuple) {
    let total = Ipv4Packet::new_unchecked(&*l3).total_len();
    // The quoted packet, as the packet it quotes would be rewritten: the
    // inside host sees the very packet it sent.
    rewrite(&mut l3[inner_at..total], inner, new_inner, false);
    // The outer header: to the quoted packet's (new) source.
    let mut ip = Ipv4Packet::new_unchecked(l3);
    let (old_src, old_dst) = (ip.src(), ip.dst());
    let new_src = if old_src == inner.dst {
        new_inner.dst
    } else {
        old_src
    };
    let new_dst = new_inner.src;
    let c = changes((old_src, old_dst), (new_src, new_dst));
    set_addrs(&mut ip, &c, new_src, new_dst);
    // The ICMP checksum covers the quote: recompute it (errors are small).
    IcmpPacket::new_unchecked(ip.payload_mut()).fill_checksum();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::icmp::{IcmpErrorMsg, IcmpRepr, CODE_PORT_UNREACHABLE, ECHO_REQUEST};
    use crate::wire::tcp::FLAG_SYN;
    use crate::wire::udp::UDP_HDR_LEN;
    use crate::wire::Ipv4Repr;

    /// A 20-byte IPv4 header from 10.0.0.1 to 10.0.1.1 before `l4`.
    fn ipv4(protocol: IpProtocol, l4: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; IPV4_MIN_HDR_LEN + l4.len()];
        let repr = Ipv4Repr {
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.1.1".parse().unwrap(),
            protocol,
            ttl: 64,
            tos: 0,
            ident: 1,
            dont_frag: false,
            more_frags: false,
            frag_offset: 0,
            payload_len: l4.len(),
        };
        let mut ip = Ipv4Packet::new_unchecked(&mut p[..]);
        repr.emit(&mut ip);
        ip.payload_mut().copy_from_slice(l4);
        p
    }

    /// UDP 1234 -> 53 with 4 bytes of data, with its checksum or none.
    fn udp_packet(csum: bool) -> Vec<u8> {
        let mut udp = *b"\0\0\0\0\0\0\0\0abcd";
        UdpPacket::new_unchecked(&mut udp[..]).emit(1234, 53, 12);
        let mut p = ipv4(IpProtocol::Udp, &udp);
        if csum {
            let c = l4_checksum(&p);
            set_udp_checksum(&mut p, c);
        }
        p
    }

    /// A SYN 1234 -> 80 with its checksum.
    fn tcp_packet() -> Vec<u8> {
        let mut tcp = [0u8; 20];
        TcpPacket::new_unchecked(&mut tcp[..]).emit_probe(1234, 80, FLAG_SYN);
        let mut p = ipv4(IpProtocol::Tcp, &tcp);
        let c = l4_checksum(&p);
        TcpPacket::new_unchecked(Ipv4Packet::new_unchecked(&mut p[..]).payload_mut())
            .set_checksum(c);
        p
    }

    fn set_udp_checksum(p: &mut [u8], c: u16) {
        let mut ip = Ipv4Packet::new_unchecked(p);
        UdpPacket::new_unchecked(ip.payload_mut()).set_checksum(c);
    }

    fn udp_checksum(p: &[u8]) -> u16 {
        UdpPacket::new_unchecked(Ipv4Packet::new_unchecked(p).payload()).checksum()
    }

    /// An ICMP error from `from` to `to` quoting `quote`, as a router
    /// sends it.
    fn icmp_error(from: Ipv4Addr, to: Ipv4Addr, quote: &[u8]) -> Vec<u8> {
        let icmp = IcmpRepr::Error {
            msg: IcmpErrorMsg::unreachable(CODE_PORT_UNREACHABLE),
            quote,
        };
        let mut err = ipv4(IpProtocol::Icmp, &vec![0; icmp.buffer_len()]);
        let mut ip = Ipv4Packet::new_unchecked(&mut err[..]);
        ip.set_src(from);
        ip.set_dst(to);
        ip.fill_checksum();
        icmp.emit(&mut IcmpPacket::new_unchecked(ip.payload_mut()));
        err
    }

    /// Both checksums of an ICMP error are right.
    fn assert_checksums(err: &[u8]) {
        let ip = Ipv4Packet::new_checked(err).expect("IP checksum");
        assert!(
            IcmpPacket::new_unchecked(ip.payload()).verify_checksum(),
            "ICMP checksum"
        );
    }

    #[test]
    fn an_icmp_error_about_a_translated_packet_quotes_the_original_exactly() {
        let original = udp_packet(true);
        let (inside, _) = parse_tuple(&original).unwrap();
        let outside = Tuple {
            src: "203.0.113.1".parse().unwrap(),
            sport: 40000,
            ..inside
        };
        let mut sent = original.clone();
        rewrite(&mut sent, &inside, &outside, false);
        assert_eq!(udp_checksum(&sent), l4_checksum(&sent));
        // 10.0.1.1 answers "port unreachable", quoting what it got.
        let mut err = icmp_error(outside.dst, outside.src, &sent);
        let (quoted, at) = parse_icmp_error(&err).unwrap();
        assert_eq!(quoted, outside);
        rewrite_icmp_error(&mut err, at, &outside, &inside);
        assert_eq!(
            &err[at..],
            &original[..],
            "the quote is the packet the host sent"
        );
        assert_checksums(&err);
        assert_eq!(Ipv4Packet::new_unchecked(&err[..]).dst(), inside.src);
    }

    /// The full checksum of the UDP/TCP segment with its pseudo header.
    fn l4_checksum(p: &[u8]) -> u16 {
        let ip = Ipv4Packet::new_unchecked(p);
        let len = ip.payload().len() as u16;
        let pseudo = checksum::pseudo_header(ip.src(), ip.dst(), ip.protocol(), len);
        let mut seg = ip.payload().to_vec();
        if ip.protocol() == IpProtocol::Tcp {
            TcpPacket::new_unchecked(&mut seg[..]).set_checksum(0);
        } else {
            UdpPacket::new_unchecked(&mut seg[..]).set_checksum(0);
        }
        checksum::finish(checksum::add(pseudo, &seg))
    }

    #[test]
    fn rewrite_keeps_ip_and_udp_checksums_valid() {
        let mut p = udp_packet(true);
        let (t, _) = parse_tuple(&p).unwrap();
        let to = Tuple {
            src: "203.0.113.7".parse().unwrap(),
            sport: 40000,
            ..t
        };
        rewrite(&mut p, &t, &to, false);
        assert!(Ipv4Packet::new_checked(&p[..]).is_ok());
        assert_eq!(parse_tuple(&p).unwrap().0, to);
        assert_eq!(udp_checksum(&p), l4_checksum(&p));
    }

    #[test]
    fn rewrite_keeps_ip_and_tcp_checksums_valid() {
        let mut p = tcp_packet();
        let (t, flags) = parse_tuple(&p).unwrap();
        assert_eq!((t.sport, t.dport, flags), (1234, 80, FLAG_SYN));
        let to = Tuple {
            dst: "10.0.2.2".parse().unwrap(),
            dport: 8080,
            ..t
        };
        rewrite(&mut p, &t, &to, false);
        assert!(Ipv4Packet::new_checked(&p[..]).is_ok());
        assert_eq!(parse_tuple(&p).unwrap().0, to);
        let ip = Ipv4Packet::new_unchecked(&p[..]);
        assert_eq!(
            TcpPacket::new_unchecked(ip.payload()).checksum(),
            l4_checksum(&p)
        );
        // 19 bytes of TCP: too short a header to track.
        assert_eq!(parse_tuple(&ipv4(IpProtocol::Tcp, &[0; 19])), None);
    }

    #[test]
    fn rewrite_keeps_an_echo_checksum_valid() {
        let echo = IcmpRepr::EchoRequest {
            ident: 0x1c2f,
            seq: 1,
            data: b"abcd",
        };
        let mut icmp = [0u8; 12];
        echo.emit(&mut IcmpPacket::new_unchecked(&mut icmp[..]));
        let mut p = ipv4(IpProtocol::Icmp, &icmp);
        let (t, _) = parse_tuple(&p).unwrap();
        assert_eq!((t.sport, t.dport), (0x1c2f, 0x1c2f));
        let to = Tuple {
            src: "203.0.113.7".parse().unwrap(),
            sport: 40000,
            dport: 40000,
            ..t
        };
        rewrite(&mut p, &t, &to, false);
        assert_eq!(parse_tuple(&p).unwrap().0, to);
        let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
        let icmp = IcmpPacket::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum());
        assert_eq!((icmp.msg_type(), icmp.echo_seq()), (ECHO_REQUEST, 1));
    }

    #[test]
    fn a_computed_zero_udp_checksum_goes_out_as_all_ones() {
        let to = Tuple {
            src: "203.0.113.7".parse().unwrap(),
            sport: 40000,
            ..parse_tuple(&udp_packet(true)).unwrap().0
        };
        // The data word that makes the rewritten segment's checksum zero.
        let zero_after = (0..=u16::MAX).find_map(|w| {
            let mut p = udp_packet(false);
            Ipv4Packet::new_unchecked(&mut p[..]).payload_mut()[UDP_HDR_LEN..UDP_HDR_LEN + 2]
                .copy_from_slice(&w.to_be_bytes());
            let c = l4_checksum(&p);
            set_udp_checksum(&mut p, c);
            let (from, _) = parse_tuple(&p).unwrap();
            rewrite(&mut p, &from, &to, false);
            (l4_checksum(&p) == 0).then_some(p)
        });
        let p = zero_after.expect("some data word sums to zero");
        assert_eq!(l4_checksum(&p), 0, "computed as zero");
        assert_eq!(udp_checksum(&p), 0xffff, "sent as all ones");
    }

    #[test]
    fn an_error_quoting_a_segment_cut_after_its_ports_is_rewritten() {
        // RFC 792: the header and 8 bytes; the quoted TCP checksum is not
        // there to fix, the total length counts bytes that are not either.
        let sent = tcp_packet();
        let (t, _) = parse_tuple(&sent).unwrap();
        let mut err = icmp_error(t.dst, t.src, &sent[..IPV4_MIN_HDR_LEN + 8]);
        let (quoted, at) = parse_icmp_error(&err).unwrap();
        assert_eq!(quoted, t);
        let inside = Tuple {
            src: "192.168.1.5".parse().unwrap(),
            sport: 5555,
            ..t
        };
        rewrite_icmp_error(&mut err, at, &t, &inside);
        assert_checksums(&err);
        let ip = Ipv4Packet::new_unchecked(&err[..]);
        let quote = Ipv4Packet::new_unchecked(&ip.payload()[ICMP_HDR_LEN..]);
        assert_eq!((ip.dst(), quote.src()), (inside.src, inside.src));
        let tcp = TcpPacket::new_unchecked(quote.after_header());
        assert_eq!((tcp.src_port(), tcp.dst_port()), (5555, 80));
        assert!(!tcp.holds_checksum());
        // 7 bytes of the segment: too few to name it.
        let short = icmp_error(t.dst, t.src, &sent[..IPV4_MIN_HDR_LEN + 7]);
        assert_eq!(parse_icmp_error(&short), None);
    }

    #[test]
    fn a_zero_udp_checksum_stays_zero() {
        let mut p = udp_packet(false);
        let (t, _) = parse_tuple(&p).unwrap();
        let to = Tuple {
            src: "203.0.113.7".parse().unwrap(),
            ..t
        };
        rewrite(&mut p, &t, &to, false);
        assert_eq!(udp_checksum(&p), 0);
    }

    #[test]
    fn a_partial_checksum_follows_the_addresses_only() {
        // NEEDS_CSUM: the field holds the folded pseudo-header sum.
        let mut p = udp_packet(false);
        let pseudo = |p: &[u8]| {
            let ip = Ipv4Packet::new_unchecked(p);
            !checksum::finish(checksum::pseudo_header(
                ip.src(),
                ip.dst(),
                IpProtocol::Udp,
                12,
            ))
        };
        let c = pseudo(&p);
        set_udp_checksum(&mut p, c);
        let (t, _) = parse_tuple(&p).unwrap();
        let to = Tuple {
            src: "203.0.113.7".parse().unwrap(),
            sport: 40000,
            ..t
        };
        rewrite(&mut p, &t, &to, true);
        assert_eq!(udp_checksum(&p), pseudo(&p));
    }
}
