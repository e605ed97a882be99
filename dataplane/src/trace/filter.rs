//! Which packets a trace or a capture takes: a filter in tcpdump's words.

use crate::wire::arp::ArpPacket;
use crate::wire::ethernet::{ETHERTYPE_ARP, ETHERTYPE_IPV4};
use crate::wire::ipv4::{IpProtocol, Ipv4Packet, IPV4_MIN_HDR_LEN};
use crate::wire::udp::{self};
use crate::wire::{EthernetFrame, Mac, ETHERNET_HDR_LEN};
use std::net::Ipv4Addr;

/// Which packets a trace takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Any of these alternatives, each all of its terms.
    any: Vec<Vec<(bool, Term)>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Term {
    Arp,
    Ip,
    Proto(IpProtocol),
    Host(Ipv4Addr),
    Src(Ipv4Addr),
    Dst(Ipv4Addr),
    Port(u16),
    SrcPort(u16),
    DstPort(u16),
    Ether(Mac),
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
    /// Parses a tcpdump-like expression: terms `arp`, `ip`, `icmp`, `tcp`,
    /// `udp`, `host A`, `src [host] A`, `dst [host] A`, `[src|dst] port N`,
    /// `ether host MAC`, each optionally after `not`, joined by `and` (or
    /// nothing) and `or`.
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
                s.parse::<Ipv4Addr>()
                    .map_err(|_| format!("filter: '{s}' is not an IPv4 address"))
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
                "icmp" => Term::Proto(IpProtocol::Icmp),
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
                        "filter: unknown word '{other}' (arp, ip, icmp, tcp, udp, host A, src A, \
                         dst A, [src|dst] port N, ether host MAC, not, and, or; no parentheses)"
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
    let ethertype = frame.ethertype();
    let l3 = &eth[ETHERNET_HDR_LEN..];
    // Unchecked: a filter looks at the addresses of whatever holds them.
    let ip = (ethertype == ETHERTYPE_IPV4 && l3.len() >= IPV4_MIN_HDR_LEN)
        .then(|| Ipv4Packet::new_unchecked(l3));
    let is_ip = ip.is_some();
    // ARP sender and target addresses count as hosts too.
    let arp_addrs = || {
        let arp = ArpPacket::new_checked(l3).ok();
        arp.filter(|_| ethertype == ETHERTYPE_ARP)
            .map(|a| (a.sender_ip(), a.target_ip()))
    };
    let ip_addrs = || ip.map(|ip| (ip.src(), ip.dst()));
    let ports = || {
        let ip = ip?;
        let l4 = l3.get(ip.header_len()..)?;
        matches!(ip.protocol(), IpProtocol::Tcp | IpProtocol::Udp)
            .then(|| udp::ports(l4))
            .flatten()
    };
    match t {
        Term::Arp => ethertype == ETHERTYPE_ARP,
        Term::Ip => is_ip,
        Term::Proto(p) => ip.is_some_and(|ip| ip.protocol() == p),
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
    }
}
