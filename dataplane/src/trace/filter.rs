//! Which packets a trace or a capture takes: a filter in tcpdump's words.

use crate::wire::arp::ArpPacket;
use crate::wire::ethernet::{ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use crate::wire::ipv4::{IpProtocol, Ipv4Packet, IPV4_MIN_HDR_LEN};
use crate::wire::ipv6::{Ipv6Packet, IPV6_HDR_LEN, NEXT_HEADER_ICMPV6};
use crate::wire::udp::{self};
use crate::wire::{EthernetFrame, Mac, ETHERNET_HDR_LEN};
use std::net::IpAddr;

/// Which packets a trace takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Any of these alternatives, each all of its terms.
    any: Vec<Vec<(bool, Term)>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Term {
    Arp,
    /// IPv4 (tcpdump's `ip`).
    Ip,
    Ip6,
    /// A transport over IPv4 or IPv6 (`icmp` is IPv4's only, as in
    /// tcpdump).
    Proto(IpProtocol),
    Icmp6,
    Host(IpAddr),
    Src(IpAddr),
    Dst(IpAddr),
    Port(u16),
    SrcPort(u16),
    DstPort(u16),
    Ether(Mac),
    /// An 802.1Q (or 802.1ad) tag, with this VLAN id if given.
    Vlan(Option<u16>),
}

/// The word after `w`, which needs `what`.
fn value<'a>(
    words: &mut std::iter::Peekable<std::str::SplitWhitespace<'a>>,
    w: &str,
    what: &str,
) -> Result<&'a str, String> {
    words
        .next()
        .ok_or_else(|| format!("filter: '{w}' needs {what}"))
}

impl Filter {
    /// Parses a tcpdump-like expression: terms `arp`, `ip`, `ip6`, `icmp`,
    /// `icmp6`, `tcp`, `udp`, `host A`, `src [host] A`, `dst [host] A` (A
    /// IPv4 or IPv6), `[src|dst] port N`, `ether host MAC`, each optionally
    /// after `not`, joined by `and` (or nothing) and `or`; `vlan [N]` takes
    /// tagged frames (of VLAN N), and the other terms look inside one tag.
    pub fn parse(text: &str) -> Result<Filter, String> {
        let mut any = Vec::new();
        let mut all = Vec::new();
        let mut words = text.split_whitespace().peekable();
        let mut negate = false;
        // After an 'and': a term must follow.
        let mut joined = false;
        while let Some(w) = words.next() {
            let port = |p: Option<&str>| -> Result<u16, String> {
                let p = p.ok_or_else(|| format!("filter: '{w} port' needs a port number"))?;
                p.parse()
                    .map_err(|_| format!("filter: '{p}' is not a port number"))
            };
            let addr = |s: &str| {
                s.parse::<IpAddr>()
                    .map_err(|_| format!("filter: '{s}' is not an IPv4 or IPv6 address"))
            };
            let term = match w {
                "or" | "||" => {
                    if all.is_empty() || negate || joined {
                        return Err("filter: 'or' needs a term on each side".into());
                    }
                    any.push(std::mem::take(&mut all));
                    continue;
                }
                "and" | "&&" => {
                    if all.is_empty() || negate || joined {
                        return Err(format!("filter: '{w}' needs a term on each side"));
                    }
                    joined = true;
                    continue;
                }
                "not" | "!" => {
                    negate = !negate;
                    continue;
                }
                "arp" => Term::Arp,
                "ip" => Term::Ip,
                "ip6" => Term::Ip6,
                "icmp" => Term::Proto(IpProtocol::Icmp),
                "icmp6" => Term::Icmp6,
                "tcp" => Term::Proto(IpProtocol::Tcp),
                "udp" => Term::Proto(IpProtocol::Udp),
                "host" => Term::Host(addr(value(&mut words, w, "an address")?)?),
                "src" | "dst" if words.peek() == Some(&"port") => {
                    words.next();
                    let p = port(words.next())?;
                    if w == "src" {
                        Term::SrcPort(p)
                    } else {
                        Term::DstPort(p)
                    }
                }
                "src" | "dst" => {
                    if words.peek() == Some(&"host") {
                        words.next();
                    }
                    let a = addr(value(&mut words, w, "an address")?)?;
                    if w == "src" {
                        Term::Src(a)
                    } else {
                        Term::Dst(a)
                    }
                }
                "port" => {
                    let p = value(&mut words, w, "a port number")?;
                    Term::Port(
                        p.parse()
                            .map_err(|_| format!("filter: '{p}' is not a port number"))?,
                    )
                }
                "vlan" => {
                    let vid = match words.peek().and_then(|v| v.parse::<u16>().ok()) {
                        Some(v) if v <= 4095 => {
                            words.next();
                            Some(v)
                        }
                        Some(v) => {
                            return Err(format!("filter: 'vlan {v}': a VLAN id is 0 to 4095"))
                        }
                        None => None,
                    };
                    Term::Vlan(vid)
                }
                "ether" => {
                    let h = value(&mut words, w, "'host MAC'")?;
                    if h != "host" {
                        return Err(format!("filter: 'ether {h}': try 'ether host MAC'"));
                    }
                    let m = value(&mut words, w, "a MAC")?;
                    Term::Ether(m.parse().map_err(|e| format!("filter: {e}"))?)
                }
                other => {
                    return Err(format!(
                        "filter: unknown word '{other}' (arp, ip, ip6, icmp, icmp6, tcp, udp, \
                         host A, src A, dst A, [src|dst] port N, ether host MAC, vlan [N], not, \
                         and, or; no parentheses)"
                    ))
                }
            };
            all.push((negate, term));
            negate = false;
            joined = false;
        }
        if negate || joined || (all.is_empty() && !any.is_empty()) {
            return Err("filter: ends without a term".into());
        }
        if !all.is_empty() {
            any.push(all);
        }
        Ok(Filter { any })
    }

    /// Whether an Ethernet frame matches (an empty filter takes all).
    pub fn matches(&self, eth: &[u8]) -> bool {
        self.any.is_empty()
            || self
                .any
                .iter()
                .any(|all| all.iter().all(|&(neg, t)| term_matches(t, eth) != neg))
    }
}

fn term_matches(t: Term, eth: &[u8]) -> bool {
    let Ok(frame) = EthernetFrame::new_checked(eth) else {
        return false;
    };
    // Through one tag, if the frame has one.
    let tag = crate::wire::vlan::outer_tag(eth);
    let (ethertype, l3) = match tag {
        Some(_) => (
            u16::from_be_bytes([eth[16], eth[17]]),
            &eth[ETHERNET_HDR_LEN + 4..],
        ),
        None => (frame.ethertype(), &eth[ETHERNET_HDR_LEN..]),
    };
    // Unchecked: a filter looks at the addresses of whatever holds them.
    let ip = (ethertype == ETHERTYPE_IPV4 && l3.len() >= IPV4_MIN_HDR_LEN)
        .then(|| Ipv4Packet::new_unchecked(l3));
    let ip6 = (ethertype == ETHERTYPE_IPV6 && l3.len() >= IPV6_HDR_LEN)
        .then(|| Ipv6Packet::new_unchecked(l3));
    // The protocol of either family's payload (IPv6: the first next
    // header), and where that payload starts.
    let transport = ip
        .map(|ip| (ip.protocol(), ip.header_len()))
        .or(ip6.map(|ip6| (ip6.next_header(), IPV6_HDR_LEN)));
    // ARP sender and target addresses count as hosts too.
    let arp_addrs = || {
        let arp = ArpPacket::new_checked(l3).ok();
        arp.filter(|_| ethertype == ETHERTYPE_ARP)
            .map(|a| (IpAddr::V4(a.sender_ip()), IpAddr::V4(a.target_ip())))
    };
    let ip_addrs = || {
        ip.map(|ip| (IpAddr::V4(ip.src()), IpAddr::V4(ip.dst())))
            .or(ip6.map(|ip6| (IpAddr::V6(ip6.src()), IpAddr::V6(ip6.dst()))))
    };
    let ports = || {
        let (proto, at) = transport?;
        let l4 = l3.get(at..)?;
        matches!(proto, IpProtocol::Tcp | IpProtocol::Udp)
            .then(|| udp::ports(l4))
            .flatten()
    };
    match t {
        Term::Arp => ethertype == ETHERTYPE_ARP,
        Term::Ip => ip.is_some(),
        Term::Ip6 => ip6.is_some(),
        Term::Proto(IpProtocol::Icmp) => ip.is_some_and(|ip| ip.protocol() == IpProtocol::Icmp),
        Term::Proto(p) => transport.is_some_and(|(proto, _)| proto == p),
        Term::Icmp6 => ip6.is_some_and(|ip6| u8::from(ip6.next_header()) == NEXT_HEADER_ICMPV6),
        Term::Host(a) => {
            ip_addrs().is_some_and(|(s, d)| s == a || d == a)
                || arp_addrs().is_some_and(|(s, d)| s == a || d == a)
        }
        Term::Src(a) => {
            ip_addrs().is_some_and(|(s, _)| s == a) || arp_addrs().is_some_and(|(s, _)| s == a)
        }
        Term::Dst(a) => {
            ip_addrs().is_some_and(|(_, d)| d == a) || arp_addrs().is_some_and(|(_, d)| d == a)
        }
        Term::Port(p) => ports().is_some_and(|(s, d)| s == p || d == p),
        Term::SrcPort(p) => ports().is_some_and(|(s, _)| s == p),
        Term::DstPort(p) => ports().is_some_and(|(_, d)| d == p),
        Term::Ether(m) => frame.dst() == m || frame.src() == m,
        Term::Vlan(vid) => tag.is_some_and(|t| vid.is_none_or(|v| t.vid() == v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet frame of an IPv6 packet from 2001:db8::1 to ff02::fb
    /// with `next` as next header and 8 bytes of payload: ports 5353 and
    /// 5353 if it is UDP.
    fn ipv6_frame(next: u8) -> Vec<u8> {
        let mut f = vec![0u8; ETHERNET_HDR_LEN + IPV6_HDR_LEN + 8];
        f[..6].copy_from_slice(&[0x33, 0x33, 0, 0, 0, 0xfb]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        let ip = &mut f[ETHERNET_HDR_LEN..];
        ip[0] = 0x60;
        ip[5] = 8;
        ip[6] = next;
        ip[7] = 255;
        ip[8..24].copy_from_slice(
            &"2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        ip[24..40].copy_from_slice(&"ff02::fb".parse::<std::net::Ipv6Addr>().unwrap().octets());
        ip[40..44].copy_from_slice(&[0x14, 0xe9, 0x14, 0xe9]);
        f
    }

    fn takes(filter: &str, frame: &[u8]) -> bool {
        Filter::parse(filter).unwrap().matches(frame)
    }

    #[test]
    fn vlan_takes_tagged_frames_and_the_rest_looks_inside() {
        let plain = ipv6_frame(17);
        let mut tagged = plain[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 20]);
        tagged.extend_from_slice(&plain[12..]);
        assert!(takes("vlan", &tagged));
        assert!(takes("vlan 20", &tagged));
        assert!(takes("vlan 20 and udp port 5353", &tagged));
        assert!(!takes("vlan 10", &tagged));
        assert!(!takes("vlan", &plain));
        assert!(takes("not vlan and ip6", &plain));
        assert!(Filter::parse("vlan 4096").is_err());
    }

    #[test]
    fn ipv6_words_match_ipv6_frames() {
        let udp = ipv6_frame(17);
        let icmp6 = ipv6_frame(NEXT_HEADER_ICMPV6);
        for f in [
            "ip6",
            "udp",
            "port 5353",
            "dst port 5353",
            "host 2001:db8::1",
            "src 2001:db8::1",
            "dst ff02::fb",
            "ip6 and not icmp6",
        ] {
            assert!(takes(f, &udp), "{f}");
        }
        for f in [
            "ip",
            "icmp",
            "icmp6",
            "tcp",
            "host 10.0.0.1",
            "dst 2001:db8::1",
            "port 53",
        ] {
            assert!(!takes(f, &udp), "{f}");
        }
        assert!(takes("icmp6", &icmp6));
        assert!(!takes("icmp", &icmp6));
        assert!(!takes("port 5353", &icmp6));
        assert!(Filter::parse("host 2001:zz::1")
            .unwrap_err()
            .contains("not an IPv4 or IPv6 address"));
    }
}
