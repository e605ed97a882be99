//! Reading a packet's connection tuple and rewriting it in place, with
//! incremental checksum updates (RFC 1624) of IPv4, TCP, UDP and ICMP.
//!
//! A frame whose L4 checksum the device is still to compute (virtio-net
//! `NEEDS_CSUM`, the default for TCP from a veth peer) carries in its
//! checksum field only the sum of the pseudo header, not complemented: for
//! those only the address change is folded in, since the device sums the
//! ports itself.

use crate::wire::checksum;
use crate::wire::ipv4::{protocol_name, Ipv4Packet, PROTO_ICMP, PROTO_TCP, PROTO_UDP};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv4Addr;

/// A connection tuple; for ICMP echo both ports are the identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tuple {
    pub proto: u8,
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
        let p = protocol_name(self.proto);
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

const PROTO_DCCP: u8 = 33;
const PROTO_UDPLITE: u8 = 136;

/// Whether an ICMP type is a query whose identifier NAT maps like a port:
/// echo, timestamp, information and address mask, requests and replies
/// (RFC 792, 950), as conntrack tracks them.
fn is_icmp_query(icmp_type: u8) -> bool {
    matches!(icmp_type, 0 | 8 | 13..=18)
}

/// Whether NAT tracks `proto` by ports (TCP, UDP) or an identifier (ICMP
/// queries). Any other protocol is tracked by its addresses alone, as
/// conntrack's generic tracker does: a 3-tuple session whose ports are 0.
pub fn has_ports(proto: u8) -> bool {
    matches!(proto, PROTO_TCP | PROTO_UDP | PROTO_ICMP)
}

/// The ports of a transport header `l4` of protocol `proto` (for an ICMP
/// query both are its identifier; other protocols have none: 0, 0), its TCP
/// flags, or `None` if `l4` is too short to hold them or is ICMP that is
/// not a query.
fn ports_of(proto: u8, l4: &[u8], need_whole: bool) -> Option<(u16, u16, u8)> {
    let port = |at: usize| u16::from_be_bytes([l4[at], l4[at + 1]]);
    // A whole header is needed to rewrite a packet (its checksum included);
    // the ports alone name the packet an ICMP error quotes.
    let (tcp_len, udp_len) = if need_whole { (20, 8) } else { (8, 8) };
    Some(match proto {
        PROTO_TCP if l4.len() >= tcp_len => (port(0), port(2), l4.get(13).copied().unwrap_or(0)),
        PROTO_UDP if l4.len() >= udp_len => (port(0), port(2), 0),
        PROTO_ICMP if l4.len() >= 8 && is_icmp_query(l4[0]) => (port(4), port(4), 0),
        PROTO_TCP | PROTO_UDP | PROTO_ICMP => return None,
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

/// Updates a checksum field at `at` for 16-bit words changing from `old` to
/// `new`; `partial` for a not-complemented pseudo-header sum.
fn fix(buf: &mut [u8], at: usize, changes: &[(u16, u16)], partial: bool) {
    let mut c = u16::from_be_bytes([buf[at], buf[at + 1]]);
    for &(old, new) in changes {
        if old != new {
            c = if partial {
                !checksum::update(!c, old, new)
            } else {
                checksum::update(c, old, new)
            };
        }
    }
    buf[at..at + 2].copy_from_slice(&c.to_be_bytes());
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
fn set_addrs(ip: &mut [u8], changes: &[(u16, u16); 4], src: Ipv4Addr, dst: Ipv4Addr) {
    fix(ip, 10, changes, false);
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
}

/// Writes the ports of a TCP/UDP header, or the identifier of an ICMP echo.
fn set_ports(l4: &mut [u8], proto: u8, to: &Tuple) {
    if proto == PROTO_ICMP {
        l4[4..6].copy_from_slice(&to.sport.to_be_bytes());
    } else {
        l4[0..2].copy_from_slice(&to.sport.to_be_bytes());
        l4[2..4].copy_from_slice(&to.dport.to_be_bytes());
    }
}

/// Rewrites only the addresses of an IPv4 header (a later fragment, which
/// carries no transport header).
pub fn rewrite_addrs(l3: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr) {
    let old_src = Ipv4Addr::new(l3[12], l3[13], l3[14], l3[15]);
    let old_dst = Ipv4Addr::new(l3[16], l3[17], l3[18], l3[19]);
    let c = changes((old_src, old_dst), (src, dst));
    set_addrs(l3, &c, src, dst);
}

/// Rewrites the packet's tuple (from `parse_tuple`) to `to`.
/// `partial`: the L4 checksum is left to the device (NEEDS_CSUM). The
/// packet may be a quote cut short after its ports (in an ICMP error): a
/// checksum field it does not hold is left alone.
pub fn rewrite(l3: &mut [u8], from: &Tuple, to: &Tuple, partial: bool) {
    let hl = usize::from(l3[0] & 0x0f) * 4;
    let addr_changes = changes((from.src, from.dst), (to.src, to.dst));
    set_addrs(l3, &addr_changes, to.src, to.dst);
    let l4 = &mut l3[hl..];
    let port_changes = [(from.sport, to.sport), (from.dport, to.dport)];
    match from.proto {
        PROTO_TCP | PROTO_UDP => {
            let at = if from.proto == PROTO_TCP { 16 } else { 6 };
            // RFC 768: a zero UDP checksum means none, and stays so.
            let none = from.proto == PROTO_UDP && l4[6..8] == [0, 0] && !partial;
            if !none && l4.len() >= at + 2 {
                fix(l4, at, &addr_changes, partial);
                if !partial {
                    fix(l4, at, &port_changes, false);
                    // RFC 768: a computed zero is sent as all ones, since
                    // zero means "no checksum".
                    if from.proto == PROTO_UDP && l4[6..8] == [0, 0] {
                        l4[6..8].copy_from_slice(&[0xff, 0xff]);
                    }
                }
            }
            set_ports(l4, from.proto, to);
        }
        PROTO_ICMP => {
            // The identifier; ICMP sums no pseudo header.
            fix(l4, 2, &[(from.sport, to.sport)], false);
            set_ports(l4, from.proto, to);
        }
        _ => {}
    }
}

/// For an ICMP error (destination unreachable, source quench, time
/// exceeded, parameter problem): the tuple of the packet it quotes and
/// where that packet starts in `l3`.
pub fn parse_icmp_error(l3: &[u8]) -> Option<(Tuple, usize)> {
    let ip = Ipv4Packet::new_unchecked(l3);
    if ip.protocol() != PROTO_ICMP || ip.frag_offset() != 0 {
        return None;
    }
    let hl = ip.header_len();
    let icmp = ip.payload();
    if icmp.len() < 8 + 20 + 8 || !matches!(icmp[0], 3 | 4 | 11 | 12) {
        return None;
    }
    let inner_at = hl + 8;
    let inner = &l3[inner_at..ip.total_len()];
    let ihl = usize::from(inner[0] & 0x0f) * 4;
    if inner[0] >> 4 != 4 || ihl < 20 || inner.len() < ihl + 8 {
        return None;
    }
    let (sport, dport, _) = ports_of(inner[9], &inner[ihl..], false)?;
    let addr = |at: usize| Ipv4Addr::new(inner[at], inner[at + 1], inner[at + 2], inner[at + 3]);
    let t = Tuple {
        proto: inner[9],
        src: addr(12),
        sport,
        dst: addr(16),
        dport,
    };
    Some((t, inner_at))
}

/// Rewrites an ICMP error whose quoted packet is `inner` (at `inner_at`) so
/// that it quotes `new_inner` and goes to `new_inner.src` (RFC 5508 4.2);
/// an error from the quoted packet's destination itself also takes on its
/// new address, so no inside address leaks.
pub fn rewrite_icmp_error(l3: &mut [u8], inner_at: usize, inner: &Tuple, new_inner: &Tuple) {
    let total = usize::from(u16::from_be_bytes([l3[2], l3[3]]));
    let hl = usize::from(l3[0] & 0x0f) * 4;
    // The quoted packet, as the packet it quotes would be rewritten: the
    // inside host sees the very packet it sent.
    rewrite(&mut l3[inner_at..total], inner, new_inner, false);
    // The outer header: to the quoted packet's (new) source.
    let old_src = Ipv4Addr::new(l3[12], l3[13], l3[14], l3[15]);
    let old_dst = Ipv4Addr::new(l3[16], l3[17], l3[18], l3[19]);
    let new_src = if old_src == inner.dst {
        new_inner.dst
    } else {
        old_src
    };
    let new_dst = new_inner.src;
    let c = changes((old_src, old_dst), (new_src, new_dst));
    set_addrs(l3, &c, new_src, new_dst);
    // The ICMP checksum covers the quote: recompute it (errors are small).
    let icmp = &mut l3[hl..total];
    icmp[2..4].fill(0);
    let c = checksum::checksum(icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::emit_header;

    fn udp_packet(csum: bool) -> Vec<u8> {
        let mut p = vec![0u8; 20 + 8 + 4];
        emit_header(
            &mut p,
            32,
            1,
            64,
            PROTO_UDP,
            "10.0.0.1".parse().unwrap(),
            "10.0.1.1".parse().unwrap(),
        );
        p[20..22].copy_from_slice(&1234u16.to_be_bytes());
        p[22..24].copy_from_slice(&53u16.to_be_bytes());
        p[24..26].copy_from_slice(&12u16.to_be_bytes());
        p[28..32].copy_from_slice(b"abcd");
        if csum {
            let c = l4_checksum(&p);
            p[26..28].copy_from_slice(&c.to_be_bytes());
        }
        p
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
        assert_eq!(u16::from_be_bytes([sent[26], sent[27]]), l4_checksum(&sent));
        // 10.0.1.1 answers "port unreachable", quoting what it got.
        let mut err = vec![0u8; 20 + 8];
        let total = 20 + 8 + sent.len();
        emit_header(
            &mut err,
            total as u16,
            9,
            64,
            PROTO_ICMP,
            outside.dst,
            outside.src,
        );
        err[20] = 3;
        err[21] = 3;
        err.extend_from_slice(&sent);
        let c = checksum::checksum(&err[20..]);
        err[22..24].copy_from_slice(&c.to_be_bytes());
        let (quoted, at) = parse_icmp_error(&err).unwrap();
        assert_eq!(quoted, outside);
        rewrite_icmp_error(&mut err, at, &outside, &inside);
        assert_eq!(
            &err[at..],
            &original[..],
            "the quote is the packet the host sent"
        );
        assert_eq!(checksum::checksum(&err[20..]), 0, "ICMP checksum");
        assert_eq!(checksum::checksum(&err[..20]), 0, "IP checksum");
        assert_eq!(
            Ipv4Addr::new(err[16], err[17], err[18], err[19]),
            inside.src
        );
    }

    /// The full checksum of the UDP/TCP segment with its pseudo header.
    fn l4_checksum(p: &[u8]) -> u16 {
        let ip = Ipv4Packet::new_unchecked(p);
        let pseudo = checksum::pseudo_header(ip.src(), ip.dst(), p[9], (p.len() - 20) as u16);
        let mut seg = p[20..].to_vec();
        let at = if p[9] == PROTO_TCP { 16 } else { 6 };
        seg[at..at + 2].fill(0);
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
        assert_eq!(u16::from_be_bytes([p[26], p[27]]), l4_checksum(&p));
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
        assert_eq!(&p[26..28], &[0, 0]);
    }

    #[test]
    fn a_partial_checksum_follows_the_addresses_only() {
        // NEEDS_CSUM: the field holds the folded pseudo-header sum.
        let mut p = udp_packet(false);
        let pseudo = |p: &[u8]| {
            let ip = Ipv4Packet::new_unchecked(p);
            !checksum::finish(checksum::pseudo_header(ip.src(), ip.dst(), PROTO_UDP, 12))
        };
        let c = pseudo(&p);
        p[26..28].copy_from_slice(&c.to_be_bytes());
        let (t, _) = parse_tuple(&p).unwrap();
        let to = Tuple {
            src: "203.0.113.7".parse().unwrap(),
            sport: 40000,
            ..t
        };
        rewrite(&mut p, &t, &to, true);
        assert_eq!(u16::from_be_bytes([p[26], p[27]]), pseudo(&p));
    }
}
