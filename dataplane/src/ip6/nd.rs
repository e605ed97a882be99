//! nd and ip6-local: what the router answers over IPv6 — neighbour
//! solicitations for its addresses (RFC 4861 7.2.4) and echo requests to
//! them (RFC 4443 4.2) — and the unsolicited advertisement of a new
//! address (RFC 4861 7.2.6). Parsed and made with `smoltcp::wire`: none of
//! this is on the forwarding path.

use super::forward::Error6;
use crate::counters::DropReason;
use crate::emit::EmitTo;
use crate::ip4::L3;
use crate::l2::BridgeId;
use crate::trace;
use crate::trace::{Event, Nd6};
use crate::wire::ethernet::ETHERTYPE_IPV6;
use crate::wire::{EthernetFrame, Ipv6Net, Mac, ETHERNET_HDR_LEN, VNET_HDR_LEN};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    Icmpv6DstUnreachable, Icmpv6Packet, Icmpv6Repr, IpProtocol, Ipv6Packet, Ipv6Repr,
    NdiscNeighborFlags, NdiscRepr, RawHardwareAddress,
};
use std::net::Ipv6Addr;

const L2: usize = VNET_HDR_LEN;
const L3: usize = VNET_HDR_LEN + ETHERNET_HDR_LEN;
/// Where the ICMPv6 message of a made frame starts.
const L4: usize = L3 + 40;
/// The all-nodes group (RFC 4291 2.7.1) and its MAC (RFC 2464 7).
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_NODES_MAC: Mac = Mac([0x33, 0x33, 0, 0, 0, 1]);
/// Hop limit of the router's own packets (RFC 8200's suggestion, Linux's).
const HOP_LIMIT: u8 = 64;
/// RFC 4861 10: MIN_DELAY_BETWEEN_RAS, and MAX_INITIAL_RTR_ADVERT_INTERVAL.
const MIN_DELAY_BETWEEN_RAS_MS: u64 = 3_000;
const INITIAL_RA_INTERVAL_MS: u64 = 16_000;
/// Unsolicited advertisements come every 200 to 600 s (radvd's
/// MinRtrAdvInterval and MaxRtrAdvInterval).
const RA_INTERVAL_MS: (u64, u64) = (200_000, 600_000);
/// The DNS servers' lifetime (2 x MaxRtrAdvInterval, RFC 8106 5.1).
const RDNSS_LIFETIME_S: u32 = 1_200;
/// How long duplicate address detection waits for an answer (RFC 4861 10:
/// RETRANS_TIMER, one solicitation).
const DAD_MS: u64 = 1_000;

/// The solicited-node group of `addr` (RFC 4291 2.7.1), and its MAC.
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

pub fn solicited_node_mac(addr: Ipv6Addr) -> Mac {
    let o = solicited_node(addr).octets();
    Mac([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// An ICMPv6 message to the router, as the stages after ip6-input see it.
struct In6 {
    bridge: BridgeId,
    /// The router MAC of the bridge.
    mac: Mac,
    eth_src: Mac,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    /// The ICMPv6 code.
    code: u8,
    /// A dry run: decide, send and learn nothing.
    dry: bool,
    now: u64,
}

/// What an IPv6 frame to the router came to.
pub enum Ip6Local {
    /// Answered, or not the router's business (a multicast it was shown).
    Done,
    Drop(DropReason),
}

impl L3<'_> {
    /// An IPv6 frame (Ethernet on) that came in on `bridge`, to the router
    /// MAC or to a multicast group the router may be in.
    pub fn ip6_input<const T: bool>(
        &mut self,
        eth: &[u8],
        bridge: BridgeId,
        now_ms: u64,
    ) -> Ip6Local {
        let Some(iface) = self.router6.iface(bridge) else {
            return Ip6Local::Drop(DropReason::L3Unsupported);
        };
        let mac = iface.mac;
        self.router6.counters.ip6_in += 1;
        let Ok(frame) = EthernetFrame::new_checked(eth) else {
            return Ip6Local::Drop(DropReason::Runt);
        };
        let to_group = frame.dst().0[0] & 1 != 0;
        let Ok(ip) = Ipv6Packet::new_checked(&eth[ETHERNET_HDR_LEN..]) else {
            return Ip6Local::Drop(DropReason::Ip6Malformed);
        };
        let Ok(ip) = Ipv6Repr::parse(&ip) else {
            return Ip6Local::Drop(DropReason::Ip6Malformed);
        };
        let payload = &eth[ETHERNET_HDR_LEN + 40..][..ip.payload_len];
        trace!(
            T; self.trace,
            Event::Ip6 {
                src: ip.src_addr,
                dst: ip.dst_addr,
                next_header: crate::wire::IpProtocol::from(u8::from(ip.next_header)),
                hop_limit: ip.hop_limit,
                len: (40 + ip.payload_len) as u16,
            }
        );
        // A dry run (`trace packet`) decides, and sends or learns nothing.
        let dry = T && self.trace.dry;
        let ours = self.router6.owner(ip.dst_addr, bridge).is_some();
        if ip.next_header != IpProtocol::Icmpv6 {
            return if ours && !to_group {
                // As from a host: nothing listens (port unreachable, so
                // "connection refused"), or an unknown protocol (RFC 4443
                // 3.4: parameter problem, unrecognized next header).
                let why = match ip.next_header {
                    IpProtocol::Tcp | IpProtocol::Udp => {
                        Error6::Unreachable(Icmpv6DstUnreachable::PortUnreachable)
                    }
                    _ => Error6::NextHeader,
                };
                self.icmp6_error::<T>(eth, bridge, why, now_ms);
                Ip6Local::Drop(DropReason::Ip6LocalUnsupported)
            } else if ours {
                Ip6Local::Drop(DropReason::Ip6LocalUnsupported)
            } else if to_group {
                Ip6Local::Done
            } else {
                Ip6Local::Drop(DropReason::L3Unsupported)
            };
        }
        let Ok(icmp) = Icmpv6Packet::new_checked(payload) else {
            return Ip6Local::Drop(DropReason::Icmp6Malformed);
        };
        let Ok(repr) = Icmpv6Repr::parse(
            &ip.src_addr,
            &ip.dst_addr,
            &icmp,
            &ChecksumCapabilities::default(),
        ) else {
            return Ip6Local::Drop(DropReason::Icmp6Malformed);
        };
        let m = In6 {
            bridge,
            mac,
            eth_src: frame.src(),
            src: ip.src_addr,
            dst: ip.dst_addr,
            hop_limit: ip.hop_limit,
            code: icmp.msg_code(),
            dry,
            now: now_ms,
        };
        let lladdr_mac = |l: Option<smoltcp::wire::RawHardwareAddress>| {
            l.and_then(|l| <[u8; 6]>::try_from(l.as_bytes()).ok())
                .map(Mac)
        };
        match repr {
            Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
                target_addr,
                lladdr,
            }) => self.nd_solicit::<T>(&m, target_addr, lladdr_mac(lladdr)),
            Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert {
                target_addr,
                lladdr,
                ..
            }) => self.nd_advert::<T>(&m, target_addr, lladdr_mac(lladdr)),
            Icmpv6Repr::Ndisc(NdiscRepr::RouterSolicit { lladdr }) => {
                self.router_solicit::<T>(&m, lladdr.is_some())
            }
            Icmpv6Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } if ours && !to_group => self.echo6::<T>(&m, ident, seq_no, data),
            _ if ours => Ip6Local::Drop(DropReason::Ip6LocalUnsupported),
            _ if to_group => Ip6Local::Done,
            _ => Ip6Local::Drop(DropReason::L3Unsupported),
        }
    }

    /// nd: a neighbour solicitation; answered for our own addresses (RFC
    /// 4861 7.2.4), the solicitor learned (7.2.3).
    fn nd_solicit<const T: bool>(
        &mut self,
        m: &In6,
        target: Ipv6Addr,
        lladdr: Option<Mac>,
    ) -> Ip6Local {
        // RFC 4861 7.1.1: from a neighbour (hop limit 255), code 0, a
        // unicast target; from :: (DAD) only to a solicited-node group and
        // without a link-layer address.
        let dad = m.src.is_unspecified();
        if m.hop_limit != 255
            || m.code != 0
            || target.is_multicast()
            || (dad && (lladdr.is_some() || !m.dst.is_multicast()))
        {
            return Ip6Local::Drop(DropReason::NdInvalid);
        }
        self.router6.counters.nd_solicits_in += 1;
        // Another node checks an address we are checking too: both have it
        // (RFC 4862 5.4.3).
        if dad && !m.dry && self.is_tentative(m.bridge, target) {
            self.dad_failed(m.bridge, target);
            return Ip6Local::Done;
        }
        let ours = self.router6.owner(target, m.bridge) == Some(m.bridge);
        trace!(T; self.trace, Event::Nd { what: Nd6::Solicit { ours }, addr: target });
        if !ours || m.dry {
            // For another host of the link: not ours to answer.
            return Ip6Local::Done;
        }
        if let Some(mac) = lladdr {
            self.learn6(m.bridge, m.src, mac, m.now, true);
        }
        let (dst, dst_mac, flags) = if dad {
            // Someone checks our address: all nodes hear it is taken.
            let flags = NdiscNeighborFlags::ROUTER | NdiscNeighborFlags::OVERRIDE;
            (ALL_NODES, ALL_NODES_MAC, flags)
        } else {
            // To the solicitation's link-layer address, else the frame's
            // source.
            let flags = NdiscNeighborFlags::ROUTER
                | NdiscNeighborFlags::SOLICITED
                | NdiscNeighborFlags::OVERRIDE;
            (m.src, lladdr.unwrap_or(m.eth_src), flags)
        };
        self.advertise(m.bridge, m.mac, target, dst, dst_mac, flags);
        Ip6Local::Done
    }

    /// nd: a neighbour advertisement: the answer to a solicitation (or an
    /// update), learned only for an entry we have (RFC 4861 7.2.5); one
    /// of our own addresses from another MAC is a conflict.
    fn nd_advert<const T: bool>(
        &mut self,
        m: &In6,
        target: Ipv6Addr,
        lladdr: Option<Mac>,
    ) -> Ip6Local {
        if m.hop_limit != 255 || m.code != 0 || target.is_multicast() {
            return Ip6Local::Drop(DropReason::NdInvalid);
        }
        let mac = lladdr.unwrap_or(m.eth_src);
        trace!(T; self.trace, Event::Nd { what: Nd6::Advert, addr: target });
        if m.dry {
            return Ip6Local::Done;
        }
        // During detection the address is theirs (RFC 4862 5.4.4); after,
        // the conflict is logged and counted, and we keep answering.
        let conflict = self
            .router6
            .iface(m.bridge)
            .is_some_and(|i| i.owns(target) && mac != i.mac);
        if conflict {
            if self.is_tentative(m.bridge, target) {
                self.dad_failed(m.bridge, target);
            } else {
                self.router6.counters.dad_conflicts += 1;
                log::warn!("ip6: {target} is advertised by {mac} too: an address conflict");
            }
            return Ip6Local::Done;
        }
        self.learn6(m.bridge, target, mac, m.now, false);
        Ip6Local::Done
    }

    /// nd: a router solicitation, answered to all nodes as RFC 4861 6.2.6
    /// allows, at most one every 3 s (a host asks again within 4 s).
    fn router_solicit<const T: bool>(&mut self, m: &In6, has_lladdr: bool) -> Ip6Local {
        // RFC 4861 6.1.1: hop limit 255, code 0; from :: without a
        // link-layer address.
        if m.hop_limit != 255 || m.code != 0 || (m.src.is_unspecified() && has_lladdr) {
            return Ip6Local::Drop(DropReason::NdInvalid);
        }
        self.router6.counters.router_solicits_in += 1;
        let recent = self
            .router6
            .iface(m.bridge)
            .and_then(|i| i.last_ra_ms)
            .is_some_and(|t| m.now < t + MIN_DELAY_BETWEEN_RAS_MS);
        let what = Nd6::RouterSolicit { answered: !recent };
        trace!(T; self.trace, Event::Nd { what, addr: m.src });
        if !recent && !m.dry {
            self.send_ra(m.bridge, m.now);
        }
        Ip6Local::Done
    }

    /// ip6-local: an echo request to one of our addresses, answered.
    fn echo6<const T: bool>(&mut self, m: &In6, ident: u16, seq_no: u16, data: &[u8]) -> Ip6Local {
        trace!(T; self.trace, Event::Nd { what: Nd6::Echo, addr: m.dst });
        if m.dry {
            return Ip6Local::Done;
        }
        let reply = Icmpv6Repr::EchoReply {
            ident,
            seq_no,
            data,
        };
        if self.emit6(m.bridge, m.mac, m.eth_src, m.dst, m.src, HOP_LIMIT, &reply) {
            self.router6.counters.echo_replies_sent += 1;
            Ip6Local::Done
        } else {
            Ip6Local::Drop(DropReason::NoBuffer)
        }
    }

    /// Starts duplicate address detection of `addr` on `bridge` (RFC 4862
    /// 5.4): a solicitation from the unspecified address to its
    /// solicited-node group; the address is used meanwhile (RFC 4429), and
    /// advertised once a second passes without an answer.
    pub fn start_dad(&mut self, bridge: BridgeId, addr: Ipv6Addr, now: u64) {
        let Some(iface) = self.router6.iface_mut(bridge) else {
            return;
        };
        iface.tentative.retain(|(a, _)| *a != addr);
        iface.tentative.push((addr, now + DAD_MS));
        let mac = iface.mac;
        let ns = Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
            target_addr: addr,
            lladdr: None,
        });
        let (dst, dst_mac) = (solicited_node(addr), solicited_node_mac(addr));
        if self.emit6(bridge, mac, dst_mac, Ipv6Addr::UNSPECIFIED, dst, 255, &ns) {
            self.router6.counters.nd_solicits_sent += 1;
        }
    }

    fn is_tentative(&self, bridge: BridgeId, addr: Ipv6Addr) -> bool {
        self.router6
            .iface(bridge)
            .is_some_and(|i| i.tentative.iter().any(|(a, _)| *a == addr))
    }

    /// `addr` of `bridge` is another node's (RFC 4862 5.4.5).
    fn dad_failed(&mut self, bridge: BridgeId, addr: Ipv6Addr) {
        let Some(iface) = self.router6.iface_mut(bridge) else {
            return;
        };
        iface.tentative.retain(|(a, _)| *a != addr);
        if !iface.dad_failed.contains(&addr) {
            iface.dad_failed.push(addr);
        }
        self.router6.counters.dad_conflicts += 1;
        log::warn!("ip6: {addr} is a duplicate: another node on the link has it; not used");
    }

    /// Ends the detections that are due: their addresses are advertised.
    pub fn dad_tick(&mut self, now: u64) {
        let done: Vec<(BridgeId, Ipv6Addr)> = self
            .router6
            .ifaces()
            .flat_map(|(b, i)| {
                i.tentative
                    .iter()
                    .filter(move |(_, until)| now >= *until)
                    .map(move |(a, _)| (b, *a))
            })
            .collect();
        for (b, a) in done {
            if let Some(iface) = self.router6.iface_mut(b) {
                iface.tentative.retain(|(x, _)| *x != a);
            }
            self.announce6(b, a);
        }
    }

    /// Records that `addr` is at `mac` on `bridge` (created if `create`),
    /// and sends the packets that waited for it.
    fn learn6(&mut self, bridge: BridgeId, addr: Ipv6Addr, mac: Mac, now: u64, create: bool) {
        if addr.is_unspecified() {
            return;
        }
        let mut waiting = std::mem::take(&mut self.router6.scratch);
        if self
            .router6
            .nd
            .confirm(bridge, addr, mac, now, create, &mut waiting)
            && !waiting.is_empty()
        {
            self.release6(bridge, mac, &mut waiting);
        }
        self.router6.scratch = waiting;
    }

    /// Adds a permanent neighbour; packets that waited for it go now.
    /// False if the cache is full.
    pub fn neigh6_add(&mut self, bridge: BridgeId, addr: Ipv6Addr, mac: Mac) -> bool {
        let mut waiting = std::mem::take(&mut self.router6.scratch);
        let added = self
            .router6
            .nd
            .add_permanent(bridge, addr, mac, &mut waiting);
        if !waiting.is_empty() {
            self.release6(bridge, mac, &mut waiting);
        }
        self.router6.scratch = waiting;
        added
    }

    /// Forgets every IPv6 neighbour of `bridge`, permanent ones too (its
    /// interface went).
    pub fn forget_neighbors6(&mut self, bridge: BridgeId) {
        let mut dropped = std::mem::take(&mut self.router6.scratch);
        self.router6.nd.retain(|b, _, _| b != bridge, &mut dropped);
        for i in dropped.drain(..) {
            self.em.free(i);
        }
        self.router6.scratch = dropped;
    }

    /// Forgets the learned IPv6 neighbours (of `bridge`, or all); how many.
    pub fn neigh6_flush(&mut self, bridge: Option<BridgeId>) -> usize {
        let mut dropped = std::mem::take(&mut self.router6.scratch);
        let n = self.router6.nd.retain(
            |b, _, n| {
                n.state == crate::arp::NeighState::Permanent || bridge.is_some_and(|x| x != b)
            },
            &mut dropped,
        );
        for i in dropped.drain(..) {
            self.em.free(i);
        }
        self.router6.scratch = dropped;
        n
    }

    /// The neighbour cache's timers: solicitations to send, and packets
    /// whose next hop never answered: each sender gets an address
    /// unreachable (RFC 4443 3.1 code 3), as later packets do while the
    /// entry is failed.
    pub fn nd_tick(&mut self, now: u64) {
        let (mut asks, mut failed) = (Vec::new(), Vec::new());
        self.router6.nd.tick(now, &mut asks, &mut failed);
        for a in asks {
            self.solicit(a.bridge, a.ip, a.mac);
        }
        for i in failed {
            self.router6.counters.nd_failed += 1;
            // The packet as it came (its hop limit back): the error goes to
            // its source by the route back, to the MAC it came from.
            let frame = self.em.frame_mut(i);
            let back = (frame.len() >= L3 + 40).then(|| {
                frame[L3 + 7] = frame[L3 + 7].saturating_add(1);
                let src: [u8; 16] = frame[L3 + 8..L3 + 24].try_into().expect("16 bytes");
                Ipv6Addr::from(src)
            });
            let bridge = back
                .and_then(|s| self.router6.fib.lookup(s))
                .map(|nh| nh.bridge);
            if let Some(b) = bridge {
                let eth = self.em.frame(i)[L2..].to_vec();
                let why = Error6::Unreachable(Icmpv6DstUnreachable::AddrUnreachable);
                self.icmp6_error::<false>(&eth, b, why, now);
            }
            self.em.free(i);
        }
    }

    /// A neighbour advertisement of `target` (an address of ours on
    /// `bridge`, whose router MAC is `mac`), from it to `dst`.
    fn advertise(
        &mut self,
        bridge: BridgeId,
        mac: Mac,
        target: Ipv6Addr,
        dst: Ipv6Addr,
        dst_mac: Mac,
        flags: NdiscNeighborFlags,
    ) {
        let na = Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert {
            flags,
            target_addr: target,
            lladdr: Some(RawHardwareAddress::from_bytes(&mac.0)),
        });
        // RFC 4861 7.1.2: hop limit 255, so a receiver knows it is on-link.
        if self.emit6(bridge, mac, dst_mac, target, dst, 255, &na) {
            self.router6.counters.nd_adverts_sent += 1;
        }
    }

    /// Tells the link that `addr` of `bridge`'s interface is here (RFC 4861
    /// 7.2.6), as a gratuitous ARP does for IPv4.
    pub fn announce6(&mut self, bridge: BridgeId, addr: Ipv6Addr) {
        let Some(mac) = self.router6.router_mac(bridge) else {
            return;
        };
        let flags = NdiscNeighborFlags::ROUTER | NdiscNeighborFlags::OVERRIDE;
        self.advertise(bridge, mac, addr, ALL_NODES, ALL_NODES_MAC, flags);
    }

    /// Sends the unsolicited advertisements that are due, on every bridge
    /// that advertises (called once a second).
    pub fn ra_tick(&mut self, now_ms: u64) {
        let due: Vec<BridgeId> = self
            .router6
            .ifaces()
            .filter(|(_, i)| i.ra.on && now_ms >= i.next_ra_ms)
            .map(|(b, _)| b)
            .collect();
        for b in due {
            self.send_ra(b, now_ms);
        }
    }

    /// A router advertisement to all nodes on `bridge`: its prefixes (on
    /// link; autonomous if /64, for SLAAC), MTU, DNS servers; a lifetime
    /// of 0 if advertisements are off (RFC 4861 6.2.5: the last one).
    ///
    /// Written here rather than with `smoltcp::wire::NdiscRepr`, which
    /// holds one prefix and no DNS servers.
    pub fn send_ra(&mut self, bridge: BridgeId, now_ms: u64) {
        let mtu = self.router.iface(bridge).map_or(1500, |i| i.mtu);
        let jitter = self.router6.random.next_u64();
        let Some(iface) = self.router6.iface_mut(bridge) else {
            return;
        };
        let (mac, src) = (iface.mac, iface.link_local);
        let lifetime = if iface.ra.on { iface.ra.lifetime } else { 0 };
        iface.last_ra_ms = Some(now_ms);
        iface.next_ra_ms = if iface.initial_ras > 0 {
            iface.initial_ras -= 1;
            now_ms + INITIAL_RA_INTERVAL_MS
        } else {
            now_ms + RA_INTERVAL_MS.0 + jitter % (RA_INTERVAL_MS.1 - RA_INTERVAL_MS.0)
        };
        let mut msg = [0u8; 1280 - 40];
        let mut len = 16;
        msg[0] = 134;
        msg[4] = HOP_LIMIT;
        msg[6..8].copy_from_slice(&lifetime.to_be_bytes());
        let mut option = |bytes: &[u8]| {
            if len + bytes.len() <= msg.len() {
                msg[len..len + bytes.len()].copy_from_slice(bytes);
                len += bytes.len();
            }
        };
        // Source link-layer address (RFC 4861 4.6.1).
        let mut slla = [1, 1, 0, 0, 0, 0, 0, 0];
        slla[2..].copy_from_slice(&mac.0);
        option(&slla);
        // MTU (4.6.4).
        let mut m = [5, 1, 0, 0, 0, 0, 0, 0];
        m[4..].copy_from_slice(&u32::from(mtu).to_be_bytes());
        option(&m);
        // Prefix information (4.6.2), one a subnet.
        let mut prefixes: Vec<Ipv6Net> = iface.addrs.iter().map(|a| a.subnet()).collect();
        prefixes.dedup();
        for p in prefixes {
            let mut pi = [0u8; 32];
            pi[0] = 3;
            pi[1] = 4;
            pi[2] = p.len;
            pi[3] = 0x80 | if p.len == 64 { 0x40 } else { 0 };
            pi[4..8].copy_from_slice(&iface.ra.valid_lft.to_be_bytes());
            pi[8..12].copy_from_slice(&iface.ra.preferred_lft.to_be_bytes());
            pi[16..32].copy_from_slice(&p.addr.octets());
            option(&pi);
        }
        // Recursive DNS servers (RFC 8106 5.1).
        if !iface.ra.rdnss.is_empty() {
            let n = iface.ra.rdnss.len().min(8);
            let mut r = [0u8; 8 + 16 * 8];
            r[0] = 25;
            r[1] = (1 + 2 * n) as u8;
            r[4..8].copy_from_slice(&RDNSS_LIFETIME_S.to_be_bytes());
            for (k, a) in iface.ra.rdnss.iter().take(n).enumerate() {
                r[8 + 16 * k..24 + 16 * k].copy_from_slice(&a.octets());
            }
            option(&r[..8 + 16 * n]);
        }
        let sum = crate::wire::checksum::add(0, &src.octets());
        let sum = crate::wire::checksum::add(sum, &ALL_NODES.octets());
        let sum = crate::wire::checksum::add(sum, &(len as u32).to_be_bytes());
        let sum = crate::wire::checksum::add(sum, &[0, 0, 0, 58]);
        let sum = crate::wire::checksum::add(sum, &msg[..len]);
        msg[2..4].copy_from_slice(&crate::wire::checksum::finish(sum).to_be_bytes());
        if self.emit_raw6(bridge, mac, ALL_NODES_MAC, src, ALL_NODES, 255, &msg[..len]) {
            self.router6.counters.router_adverts_sent += 1;
        }
    }

    /// Sends an ICMPv6 message made elsewhere (`msg`, checksum in) in a
    /// frame from `src_mac` to `dst_mac` on `bridge`; false if no buffer
    /// was free.
    #[allow(clippy::too_many_arguments)]
    fn emit_raw6(
        &mut self,
        bridge: BridgeId,
        src_mac: Mac,
        dst_mac: Mac,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        hop_limit: u8,
        msg: &[u8],
    ) -> bool {
        let (macs, addrs) = ((src_mac, dst_mac), (src, dst, hop_limit));
        self.send_icmp6(bridge, macs, addrs, msg.len(), |b| b.copy_from_slice(msg))
    }

    /// Makes and sends an ICMPv6 message in a frame from `src_mac` to
    /// `dst_mac` on `bridge`; false if no buffer was free.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn emit6(
        &mut self,
        bridge: BridgeId,
        src_mac: Mac,
        dst_mac: Mac,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        hop_limit: u8,
        msg: &Icmpv6Repr<'_>,
    ) -> bool {
        let (macs, addrs) = ((src_mac, dst_mac), (src, dst, hop_limit));
        self.send_icmp6(bridge, macs, addrs, msg.buffer_len(), |b| {
            let checksums = ChecksumCapabilities::default();
            msg.emit(&src, &dst, &mut Icmpv6Packet::new_unchecked(b), &checksums)
        })
    }

    /// A frame from the pool with Ethernet (source and destination MACs)
    /// and IPv6 headers (source, destination, hop limit), its `len`-byte
    /// ICMPv6 message written by `write`, sent on `bridge`; false if no
    /// buffer was free (or the message is too long for one).
    fn send_icmp6(
        &mut self,
        bridge: BridgeId,
        (src_mac, dst_mac): (Mac, Mac),
        (src, dst, hop_limit): (Ipv6Addr, Ipv6Addr, u8),
        len: usize,
        write: impl FnOnce(&mut [u8]),
    ) -> bool {
        let ip = Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Icmpv6,
            payload_len: len,
            hop_limit,
        };
        if L4 + len > crate::emit::BUF_SIZE {
            return false;
        }
        let Some(i) = self.em.alloc() else {
            return false;
        };
        let b = self.em.buf_mut(i);
        EthernetFrame::new_unchecked(&mut b[L2..L3]).emit(dst_mac, src_mac, ETHERTYPE_IPV6);
        ip.emit(&mut Ipv6Packet::new_unchecked(&mut b[L3..L4]));
        write(&mut b[L4..L4 + len]);
        self.em.set_len(i, L4 + len);
        self.em.send(
            i,
            EmitTo::Bridge {
                bridge,
                dst: dst_mac,
                except: None,
            },
        );
        true
    }
}
