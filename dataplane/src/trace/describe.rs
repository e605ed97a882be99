//! Events in words, as `patchbay trace show` prints them.

use super::*;
use crate::l2::{BridgeId, PortId};
use crate::wire::ethernet::{ETHERTYPE_ARP, ETHERTYPE_IPV4};
use std::fmt;
use std::net::Ipv4Addr;

fn ethertype_name(t: u16) -> String {
    match t {
        ETHERTYPE_IPV4 => "IPv4".into(),
        ETHERTYPE_ARP => "ARP".into(),
        0x86dd => "IPv6".into(),
        0x8100 => "802.1Q".into(),
        t => format!("ethertype 0x{t:04x}"),
    }
}

/// An event in words, with the names of ports and bridges.
pub struct Described<'a> {
    pub event: &'a Event,
    pub port: &'a dyn Fn(PortId) -> String,
    pub bridge: &'a dyn Fn(BridgeId) -> String,
    /// A dry run: say "would".
    pub dry: bool,
}

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self.event {
            Event::Rx { .. }
            | Event::Learn { .. }
            | Event::L2 { .. }
            | Event::VlanIn { .. }
            | Event::VlanPop { .. }
            | Event::VlanTx { .. }
            | Event::VxlanDecap { .. }
            | Event::VxlanEncap { .. }
            | Event::Tx { .. } => self.l2(f),
            Event::Arp { .. } | Event::Resolve { .. } | Event::Released { .. } => self.arp(f),
            Event::Ip4 { .. }
            | Event::Lookup { .. }
            | Event::Local { .. }
            | Event::Dhcp { .. }
            | Event::DhcpAnswer { .. }
            | Event::Fragmented { .. }
            | Event::IcmpError { .. }
            | Event::Rewrite { .. } => self.ip4(f),
            Event::Nat { .. } | Event::NatRelated { .. } => self.nat(f),
            Event::Ip6 { .. }
            | Event::Nd { .. }
            | Event::Lookup6 { .. }
            | Event::Resolve6 { .. }
            | Event::Rewrite6 { .. }
            | Event::Icmp6Error { .. } => self.ip6(f),
            Event::Drop { reason } => write!(f, "drop: {} ({})", reason.name(), reason.help()),
        }
    }
}

/// One family of stages' events in words each.
impl Described<'_> {
    /// The bridge's stages: receive, learn, forward, send.
    fn l2(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = self.port;
        match *self.event {
            Event::Rx {
                port: p,
                len,
                src,
                dst,
                ethertype,
            } => write!(
                f,
                "{} rx {len}B {src} > {dst} {}",
                port(p),
                ethertype_name(ethertype)
            ),
            Event::Learn {
                mac,
                port: p,
                learned,
            } => {
                let how = match learned {
                    Learned::New => "new",
                    Learned::Refreshed => "known, refreshed",
                    Learned::Moved => "moved here from another port",
                    Learned::Static => "static entry, left as it is",
                    Learned::TableFull => "FDB full: not learned",
                    Learned::NotLearned => "dry run: not learned",
                };
                write!(f, "l2-learn: {mac} on {} ({how})", port(p))
            }
            Event::L2 { dst, out } => match out {
                L2Out::Port(p) => write!(f, "l2-forward: {dst} is on {}", port(p)),
                L2Out::Flood(n) => {
                    let why = if dst.is_multicast() {
                        "broadcast/multicast"
                    } else {
                        "unknown unicast"
                    };
                    let s = if n == 1 { "" } else { "s" };
                    write!(f, "l2-forward: {dst} {why}: flood to {n} port{s}")
                }
                L2Out::Router => write!(f, "l2-forward: {dst} is the router: router input"),
            },
            Event::VxlanDecap { vni, vtep } => match vtep {
                Some(v) => write!(f, "vxlan-decap: VNI {vni} from VTEP {v}"),
                None => write!(f, "vxlan-decap: VNI {vni}"),
            },
            Event::VxlanEncap {
                port: p,
                vni,
                dst,
                to,
            } => {
                write!(f, "vxlan-encap: VNI {vni} out of {}", port(p))?;
                match to {
                    VxlanTo::Pending => Ok(()),
                    VxlanTo::Vtep(v) => write!(f, " to VTEP {v} ({dst} was learned there)"),
                    VxlanTo::Flood(0) => write!(f, ": {dst} unknown, and no flood list: dropped"),
                    VxlanTo::Flood(n) => write!(
                        f,
                        " to the flood list ({n} VTEP{}): {dst} unknown, broadcast or multicast",
                        if n == 1 { "" } else { "s" }
                    ),
                }
            }
            Event::VlanIn { vid, tagged } => {
                let how = if tagged {
                    "tagged"
                } else {
                    "untagged: the port's PVID"
                };
                write!(f, "vlan-classify: VLAN {vid} ({how})")
            }
            Event::VlanPop { vid } => {
                write!(f, "vlan-pop: VLAN {vid} tag off, for the router")
            }
            Event::VlanTx { port: p, vid, push } => {
                let (stage, on) = if push {
                    ("vlan-push", "on")
                } else {
                    ("vlan-pop", "off")
                };
                write!(f, "{stage}: VLAN {vid} tag {on} for {}", port(p))
            }
            Event::Tx { port: p } => {
                write!(
                    f,
                    "{} tx{}",
                    port(p),
                    if self.dry { " (dry run: not sent)" } else { "" }
                )
            }
            _ => Ok(()),
        }
    }

    /// ARP: requests and answers, next-hop resolution, packets released.
    fn arp(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let would = |done: &'static str, dry: &'static str| if self.dry { dry } else { done };
        match *self.event {
            Event::Arp {
                request,
                sender_ip,
                sender_mac,
                target_ip,
                action,
            } => {
                let what = if request {
                    format!("who-has {target_ip} tell {sender_ip}")
                } else {
                    format!("reply {sender_ip} is-at {sender_mac}")
                };
                let action = match action {
                    ArpAction::ReplySent => would("reply sent", "a reply would be sent"),
                    ArpAction::Learned => would("sender learned", "sender would be learned"),
                    ArpAction::NotForUs => "not for the router",
                };
                write!(f, "arp: {what} -> {action}")
            }
            Event::Resolve { next_hop, mac } => {
                resolve_words(f, "arp-resolve", "who-has", &next_hop, mac, self.dry)
            }
            Event::Released { count, mac } => {
                let s = if count == 1 { "" } else { "s" };
                write!(
                    f,
                    "released: {count} packet{s} that waited for {mac} sent on"
                )
            }
            _ => Ok(()),
        }
    }

    /// The IPv4 router's stages.
    fn ip4(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bridge = self.bridge;
        let would = |done: &'static str, dry: &'static str| if self.dry { dry } else { done };
        match *self.event {
            Event::Ip4 {
                src,
                dst,
                proto,
                ttl,
                len,
                frag,
            } => {
                write!(f, "ip4-input: {src} > {dst} {} ttl {ttl} len {len}", proto)?;
                match frag {
                    Some((off, more)) => {
                        let more = if more { ", more follow" } else { ", the last" };
                        write!(f, " (fragment at {off}{more})")
                    }
                    None => Ok(()),
                }
            }
            Event::Lookup {
                dst,
                prefix,
                len,
                via,
                bridge: b,
            } => {
                let via = via.map(|gw| gw.to_string());
                lookup_words(f, "ip4-lookup", &dst, &prefix, len, via, &bridge(b))
            }
            Event::Dhcp { queued: true } => {
                let q = would("queued for the DHCP server", "would go to the DHCP server");
                write!(f, "ip4-dhcp: to port 67: {q}")
            }
            Event::Dhcp { queued: false } => {
                write!(
                    f,
                    "ip4-dhcp: to port 67, but the DHCP server's queue is full"
                )
            }
            Event::DhcpAnswer {
                kind,
                ip,
                mac,
                secs,
            } => match kind {
                DhcpKind::Offer => write!(f, "dhcp: offer {ip} to {mac}, lease {secs} s"),
                DhcpKind::Ack => write!(f, "dhcp: ack {ip} to {mac}, lease {secs} s"),
                DhcpKind::Nak => write!(f, "dhcp: nak to {mac} (asked for {ip})"),
                DhcpKind::Inform => write!(f, "dhcp: options to {ip} ({mac}), no lease"),
            },
            Event::Local { dst, echo_reply } => {
                if echo_reply {
                    let sent = would("echo reply sent", "an echo reply would be sent");
                    write!(f, "ip4-local: echo request to {dst} -> {sent}")
                } else {
                    write!(f, "ip4-local: for {dst}, which only answers pings")
                }
            }
            Event::Fragmented { count, mtu } => {
                write!(f, "ip4-mtu: over the MTU {mtu}: {count} fragments")
            }
            Event::IcmpError {
                kind,
                code,
                to,
                mtu,
                rest,
            } => {
                let what = match (kind, code) {
                    (11, _) => "time exceeded".to_string(),
                    (3, 0) => "net unreachable".to_string(),
                    (3, 1) => "host unreachable".to_string(),
                    (3, 4) => format!("fragmentation needed (mtu {mtu})"),
                    (5, _) => format!("redirect: use gateway {}", Ipv4Addr::from(rest)),
                    (12, _) => format!("parameter problem at byte {}", rest >> 24),
                    (k, c) => format!("type {k} code {c}"),
                };
                write!(
                    f,
                    "icmp-error: {what} {} {to}",
                    would("sent to", "would go to")
                )
            }
            Event::Rewrite {
                ttl_from,
                ttl_to,
                src_mac,
                dst_mac,
            } => write!(
                f,
                "ip4-rewrite: ttl {ttl_from}->{ttl_to}, src mac {src_mac}, dst mac {dst_mac}"
            ),
            _ => Ok(()),
        }
    }

    /// The IPv6 router's stages.
    fn ip6(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bridge = self.bridge;
        let would = |done: &'static str, dry: &'static str| if self.dry { dry } else { done };
        match *self.event {
            Event::Ip6 {
                src,
                dst,
                next_header,
                hop_limit,
                len,
            } => write!(
                f,
                "ip6-input: {src} > {dst} {} hop limit {hop_limit} len {len}",
                if u8::from(next_header) == 58 {
                    "icmp6".to_string()
                } else {
                    next_header.to_string()
                }
            ),
            Event::Nd { what, addr } => match what {
                Nd6::Solicit { ours: true } => write!(
                    f,
                    "nd: who has {addr}? ours: {}",
                    would("advertisement sent", "an advertisement would be sent")
                ),
                Nd6::Solicit { ours: false } => {
                    write!(f, "nd: who has {addr}? another host's, not answered")
                }
                Nd6::Advert => write!(f, "nd: advertisement: {addr} is here (learned)"),
                Nd6::RouterSolicit { answered } => write!(
                    f,
                    "nd: router solicitation from {addr}: {}",
                    if answered {
                        would("advertisement sent", "an advertisement would be sent")
                    } else {
                        "not answered (one went less than 3 s ago)"
                    }
                ),
                Nd6::Echo => write!(
                    f,
                    "ip6-local: echo request to {addr} -> {}",
                    would("echo reply sent", "an echo reply would be sent")
                ),
            },
            Event::Lookup6 {
                dst,
                prefix,
                len,
                via,
                bridge: b,
            } => {
                let via = via.map(|gw| gw.to_string());
                lookup_words(f, "ip6-lookup", &dst, &prefix, len, via, &bridge(b))
            }
            Event::Resolve6 { next_hop, mac } => {
                resolve_words(f, "nd-resolve", "solicitation", &next_hop, mac, self.dry)
            }
            Event::Rewrite6 {
                hop_from,
                hop_to,
                src_mac,
                dst_mac,
            } => write!(
                f,
                "ip6-rewrite: hop limit {hop_from}->{hop_to}, src mac {src_mac}, dst mac {dst_mac}"
            ),
            Event::Icmp6Error {
                kind,
                code,
                to,
                mtu,
            } => {
                let what = match (kind, code) {
                    (1, 0) => "no route".to_string(),
                    (1, 2) => "beyond scope of source address".to_string(),
                    (1, 3) => "address unreachable".to_string(),
                    (1, 4) => "port unreachable".to_string(),
                    (2, _) => format!("packet too big (mtu {mtu})"),
                    (3, _) => "time exceeded (hop limit)".to_string(),
                    (4, _) => "parameter problem".to_string(),
                    (k, c) => format!("type {k} code {c}"),
                };
                write!(
                    f,
                    "icmp6-error: {what} {} {to}",
                    would("sent to", "would go to")
                )
            }
            _ => Ok(()),
        }
    }

    /// NAT's stages.
    fn nat(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self.event {
            Event::Nat {
                pre,
                from,
                to,
                rule,
                new_session,
            } => {
                let stage = if pre {
                    "nat (pre-routing)"
                } else {
                    "nat (post-routing)"
                };
                let session = if new_session {
                    "new session"
                } else {
                    "session"
                };
                let dry = if new_session && self.dry {
                    "; dry run: not created"
                } else {
                    ""
                };
                // An echo's identifier stands in both "ports": a new one is
                // a change of the source only.
                let dst_changed = to.dst != from.dst
                    || (from.proto != IpProtocol::Icmp && to.dport != from.dport);
                let src_changed = to.src != from.src || to.sport != from.sport;
                let mut parts = Vec::new();
                if dst_changed {
                    parts.push(format!(
                        "destination {}:{} -> {}:{}",
                        from.dst, from.dport, to.dst, to.dport
                    ));
                }
                if src_changed {
                    parts.push(format!(
                        "source {}:{} -> {}:{}",
                        from.src, from.sport, to.src, to.sport
                    ));
                }
                write!(
                    f,
                    "{stage}: {} ({} {session}, rule {rule}{dry})",
                    parts.join(", "),
                    from.proto
                )
            }
            Event::NatRelated { kind, src, dst } => match kind {
                NatRelated::IcmpError => write!(
                    f,
                    "nat (pre-routing): ICMP error about a translated packet -> to {dst}, \
                     quoting the packet as {dst} sent it (RFC 5508)"
                ),
                NatRelated::Fragment => write!(
                    f,
                    "nat (pre-routing): later fragment -> {src} > {dst}, as its first fragment"
                ),
                NatRelated::Held => write!(
                    f,
                    "nat (pre-routing): later fragment {src} > {dst} before its first: held \
                     (at most 5 s) until that one says what NAT does"
                ),
            },
            _ => Ok(()),
        }
    }
}

/// ip4-lookup's and ip6-lookup's line: the route that matched.
fn lookup_words(
    f: &mut fmt::Formatter<'_>,
    stage: &str,
    dst: &dyn fmt::Display,
    prefix: &dyn fmt::Display,
    len: u8,
    via: Option<String>,
    dev: &str,
) -> fmt::Result {
    match via {
        Some(gw) => write!(
            f,
            "{stage}: {dst} matches {prefix}/{len} via {gw} dev {dev}"
        ),
        None => write!(f, "{stage}: {dst} matches {prefix}/{len} dev {dev}"),
    }
}

/// arp-resolve's and nd-resolve's line: the next hop's MAC, or the packet
/// waiting for it (`ask`: the request, who-has or solicitation, sent now).
fn resolve_words(
    f: &mut fmt::Formatter<'_>,
    stage: &str,
    ask: &str,
    next_hop: &dyn fmt::Display,
    mac: NextHopMac,
    dry: bool,
) -> fmt::Result {
    match mac {
        NextHopMac::Known(m) => write!(f, "{stage}: {next_hop} is at {m}"),
        NextHopMac::Queued { asked } => {
            let (queued, sent) = if dry {
                ("packet would wait", "would be sent")
            } else {
                ("packet queued", "sent")
            };
            let asked = if asked {
                format!(", {ask} {sent}")
            } else {
                String::new()
            };
            write!(f, "{stage}: {next_hop} unknown: {queued}{asked}")
        }
    }
}
