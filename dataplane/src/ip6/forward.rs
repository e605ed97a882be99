//! ip6-forward: a packet to the router MAC for another host (RFC 8200).
//!
//! ```text
//! ip6-validate (source, scope) -> hop limit -> ip6-lookup (Fib6)
//!   -> egress MTU (never fragmented: packet too big) -> nd-resolve
//!   (or queue and solicit) -> ip6-rewrite (hop limit, MACs)
//! icmp6-error: time exceeded, unreachable (no route, beyond scope,
//!   address), packet too big; rate limited (RFC 4443 2.4(f))
//! ```
//!
//! The fast path reads the header through `wire::ipv6`'s view and writes
//! two fields; errors and solicitations are made with `smoltcp::wire`.

use super::nd::{solicited_node, solicited_node_mac};
use crate::arp::Resolve;
use crate::counters::DropReason;
use crate::ip4::router::stage;
use crate::ip4::{L3Out, L3};
use crate::l2::BridgeId;
use crate::trace;
use crate::trace::{Event, NextHopMac};
use crate::wire::ipv6::{Ipv6Packet, IPV6_HDR_LEN};
use crate::wire::vnet::VnetHdr;
use crate::wire::{EthernetFrame, Mac, ETHERNET_HDR_LEN, VNET_HDR_LEN};
use smoltcp::wire::{
    Icmpv6DstUnreachable, Icmpv6Repr, Icmpv6TimeExceeded, Ipv6Packet as SmolIpv6, Ipv6Repr,
};
use std::net::Ipv6Addr;

const L2: usize = VNET_HDR_LEN;
const L3: usize = VNET_HDR_LEN + ETHERNET_HDR_LEN;
/// The least MTU of IPv6 (RFC 8200 5): an error never makes a longer packet.
const MIN_MTU: usize = 1280;

/// An ICMPv6 error about a packet.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Error6 {
    Unreachable(Icmpv6DstUnreachable),
    HopLimit,
    TooBig(u32),
    /// An unrecognized next header (RFC 4443 3.4 code 1), at offset 6.
    NextHeader,
}

/// What ip6-validate read of a packet to forward.
struct Header6 {
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    /// Header and payload.
    total: usize,
}

/// Where ip6-lookup sends a packet: the next hop, and the router MAC of
/// its bridge.
struct Route6 {
    nh: super::NextHop6,
    out_mac: Mac,
}

impl L3<'_> {
    /// Forwards an IPv6 packet (the frame from its virtio header) that came
    /// in on `bridge` to the router MAC, for another host: the stage graph,
    /// one call a stage.
    pub fn ip6_forward<const T: bool>(
        &mut self,
        frame: &mut [u8],
        bridge: BridgeId,
        now: u64,
    ) -> L3Out {
        let h = stage!(self.ip6_validate::<T>(frame, bridge, now));
        let route = stage!(self.ip6_lookup::<T>(frame, bridge, now, &h));
        self.nd_resolve_rewrite::<T>(frame, bridge, now, &h, &route)
    }

    /// ip6-validate: never from a group or from nowhere (RFC 4291 2.5.2,
    /// 2.7); never routed beyond a link-local scope (RFC 4291 2.5.6: the
    /// sender of a link-local source hears why, RFC 4443 3.1 code 2); the
    /// hop limit (time exceeded).
    fn ip6_validate<const T: bool>(
        &mut self,
        frame: &[u8],
        bridge: BridgeId,
        now: u64,
    ) -> Result<Header6, L3Out> {
        let Ok(ip) = Ipv6Packet::new_checked(&frame[L3..]) else {
            return Err(L3Out::Drop(DropReason::Ip6Malformed));
        };
        let h = Header6 {
            src: ip.src(),
            dst: ip.dst(),
            hop_limit: ip.hop_limit(),
            total: IPV6_HDR_LEN + ip.payload_len(),
        };
        trace!(
            T; self.trace,
            Event::Ip6 {
                src: h.src,
                dst: h.dst,
                next_header: ip.next_header(),
                hop_limit: h.hop_limit,
                len: h.total as u16,
            }
        );
        let (src, dst) = (h.src, h.dst);
        if src.is_multicast() || src.is_unspecified() || src.is_loopback() {
            return Err(L3Out::Drop(DropReason::Ip6BadSource));
        }
        if dst.is_multicast() || dst.is_unspecified() || dst.is_loopback() {
            return Err(L3Out::Drop(DropReason::Ip6NotForwarded));
        }
        if super::fib::is_link_local(dst) {
            return Err(L3Out::Drop(DropReason::Ip6NotForwarded));
        }
        if super::fib::is_link_local(src) {
            let why = Error6::Unreachable(Icmpv6DstUnreachable::BeyondScope);
            self.icmp6_error::<T>(&frame[L2..], bridge, why, now);
            return Err(L3Out::Drop(DropReason::Ip6NotForwarded));
        }
        if h.hop_limit <= 1 {
            self.icmp6_error::<T>(&frame[L2..], bridge, Error6::HopLimit, now);
            return Err(L3Out::Drop(DropReason::Ip6HopLimit));
        }
        Ok(h)
    }

    /// ip6-lookup and the egress MTU: the route (no route: the sender is
    /// told), out of a bridge with an IPv6 interface (it solicits there);
    /// never fragmented, a packet too big gets the MTU back (a GSO
    /// super-frame leaves as segments of gso_size, as for IPv4).
    fn ip6_lookup<const T: bool>(
        &mut self,
        frame: &[u8],
        bridge: BridgeId,
        now: u64,
        h: &Header6,
    ) -> Result<Route6, L3Out> {
        let no_route = Error6::Unreachable(Icmpv6DstUnreachable::NoRoute);
        let Some(nh) = self.router6.fib.lookup(h.dst) else {
            self.icmp6_error::<T>(&frame[L2..], bridge, no_route, now);
            return Err(L3Out::Drop(DropReason::Ip6NoRoute));
        };
        if T && self.trace.on {
            if let Some((net, _)) = self.router6.fib.matching_route(h.dst) {
                trace!(
                    T; self.trace,
                    Event::Lookup6 {
                        dst: h.dst,
                        prefix: net.addr,
                        len: net.len,
                        via: nh.gateway,
                        bridge: nh.bridge,
                    }
                );
            }
        }
        let Some(out_mac) = self.router6.router_mac(nh.bridge) else {
            self.icmp6_error::<T>(&frame[L2..], bridge, no_route, now);
            return Err(L3Out::Drop(DropReason::Ip6NoRoute));
        };
        let mtu = self
            .router
            .iface(nh.bridge)
            .map_or(1500, |i| usize::from(i.mtu));
        let vnet = VnetHdr::new_unchecked(&frame[..VNET_HDR_LEN]);
        let on_wire = if vnet.is_gso() {
            usize::from(vnet.hdr_len()).saturating_sub(ETHERNET_HDR_LEN)
                + usize::from(vnet.gso_size())
        } else {
            h.total
        };
        if on_wire > mtu {
            self.icmp6_error::<T>(&frame[L2..], bridge, Error6::TooBig(mtu as u32), now);
            return Err(L3Out::Drop(DropReason::Ip6TooBig));
        }
        Ok(Route6 { nh, out_mac })
    }

    /// nd-resolve and ip6-rewrite: the next hop's MAC (or a place in its
    /// queue, and a solicitation), then the hop limit (no header checksum
    /// in IPv6) and the MACs.
    fn nd_resolve_rewrite<const T: bool>(
        &mut self,
        frame: &mut [u8],
        bridge: BridgeId,
        now: u64,
        h: &Header6,
        route: &Route6,
    ) -> L3Out {
        let (nh, out_mac, hop_limit) = (route.nh, route.out_mac, h.hop_limit);
        let next = nh.gateway.unwrap_or(h.dst);
        let resolved = if T && self.trace.dry {
            self.router6.nd.peek(nh.bridge, next)
        } else {
            self.router6.nd.resolve(nh.bridge, next, now)
        };
        match resolved {
            Resolve::Failed => {
                let why = Error6::Unreachable(Icmpv6DstUnreachable::AddrUnreachable);
                self.icmp6_error::<T>(&frame[L2..], bridge, why, now);
                return L3Out::Drop(DropReason::NdUnresolved);
            }
            Resolve::Full => return L3Out::Drop(DropReason::ArpTableFull),
            Resolve::Mac(_) | Resolve::Pending { .. } => {}
        }
        frame[L3 + 7] = hop_limit - 1;
        match resolved {
            Resolve::Mac(m) => {
                trace!(T; self.trace, Event::Resolve6 { next_hop: next, mac: NextHopMac::Known(m) });
                trace!(
                    T; self.trace,
                    Event::Rewrite6 {
                        hop_from: hop_limit,
                        hop_to: hop_limit - 1,
                        src_mac: out_mac,
                        dst_mac: m,
                    }
                );
                let mut eth = EthernetFrame::new_unchecked(&mut frame[L2..L3]);
                eth.set_src(out_mac);
                eth.set_dst(m);
                self.router6.counters.ip6_forwarded += 1;
                L3Out::Forward {
                    bridge: nh.bridge,
                    dst: m,
                }
            }
            Resolve::Pending { ask } => {
                let mac = NextHopMac::Queued { asked: ask };
                trace!(T; self.trace, Event::Resolve6 { next_hop: next, mac });
                if T && self.trace.dry {
                    return L3Out::Consumed;
                }
                if ask {
                    self.solicit(nh.bridge, next, None);
                }
                self.wait_for_nd(&frame[..L3 + h.total], nh.bridge, next)
            }
            Resolve::Failed | Resolve::Full => unreachable!("handled above"),
        }
    }

    /// Queues a copy of `frame` until `next` answers a solicitation.
    fn wait_for_nd(&mut self, frame: &[u8], bridge: BridgeId, next: Ipv6Addr) -> L3Out {
        // As for ARP: waiting packets hold at most half the pool.
        if self.em.available() <= self.em.capacity() / 2 {
            let Some(old) = self.router6.nd.unqueue_oldest(bridge, next) else {
                return L3Out::Drop(DropReason::ArpQueueFull);
            };
            self.em.free(old);
        }
        let Some(i) = self.em.copy(frame) else {
            return L3Out::Drop(DropReason::NoBuffer);
        };
        match self.router6.nd.queue(bridge, next, i) {
            Ok(None) => L3Out::Consumed,
            Ok(Some(oldest)) => {
                self.em.free(oldest);
                L3Out::Consumed
            }
            Err(i) => {
                self.em.free(i);
                L3Out::Drop(DropReason::ArpQueueFull)
            }
        }
    }

    /// Sends packets that waited for `mac` on `bridge`.
    pub(super) fn release6(&mut self, bridge: BridgeId, mac: Mac, waiting: &mut Vec<u16>) {
        // Queued before the rewrite of their source MAC: an error about one
        // that is never sent goes back to the MAC it came from.
        let Some(ours) = self.router6.router_mac(bridge) else {
            waiting.drain(..).for_each(|i| self.em.free(i));
            return;
        };
        self.router6.counters.ip6_forwarded += waiting.len() as u64;
        self.release_waiting(bridge, Some(ours), mac, waiting);
    }

    /// Asks who has `target` on `bridge`: to its solicited-node group, or
    /// (a probe) to the MAC it had.
    pub(super) fn solicit(&mut self, bridge: BridgeId, target: Ipv6Addr, mac: Option<Mac>) {
        let Some(iface) = self.router6.iface(bridge) else {
            return;
        };
        // From our address on the target's subnet, else the link-local one.
        let src = iface
            .addrs
            .iter()
            .find(|a| a.contains(target))
            .map_or(iface.link_local, |a| a.addr);
        let our_mac = iface.mac;
        let (dst, dst_mac) = match mac {
            Some(m) => (target, m),
            None => (solicited_node(target), solicited_node_mac(target)),
        };
        let ns = Icmpv6Repr::Ndisc(smoltcp::wire::NdiscRepr::NeighborSolicit {
            target_addr: target,
            lladdr: Some(smoltcp::wire::RawHardwareAddress::from_bytes(&our_mac.0)),
        });
        if self.emit6(bridge, our_mac, dst_mac, src, dst, 255, &ns) {
            self.router6.counters.nd_solicits_sent += 1;
        }
    }

    /// An ICMPv6 error about the packet in `eth` (from its Ethernet
    /// header, not yet rewritten) back to its sender, on `bridge` to the MAC
    /// it came from; rate limited.
    pub(crate) fn icmp6_error<const T: bool>(
        &mut self,
        eth: &[u8],
        bridge: BridgeId,
        why: Error6,
        now: u64,
    ) {
        if T && self.trace.on {
            if let Ok(ip) = Ipv6Packet::new_checked(&eth[ETHERNET_HDR_LEN..]) {
                let (kind, code, mtu) = match why {
                    Error6::Unreachable(r) => (1, u8::from(r), 0),
                    Error6::TooBig(mtu) => (2, 0, mtu),
                    Error6::HopLimit => (3, 0, 0),
                    Error6::NextHeader => (4, 1, 0),
                };
                let to = ip.src();
                trace!(T; self.trace, Event::Icmp6Error { kind, code, to, mtu });
            }
            if self.trace.dry {
                return;
            }
        }
        if !self.router6.icmp_allow(now) {
            self.router6.counters.icmp6_errors_limited += 1;
            return;
        }
        let Some(iface) = self.router6.iface(bridge) else {
            return;
        };
        let (our_mac, link_local) = (iface.mac, iface.link_local);
        let global = iface.addrs.first().map(|a| a.addr);
        let Ok(frame) = EthernetFrame::new_checked(eth) else {
            return;
        };
        let to_mac = frame.src();
        let Ok(ip) = SmolIpv6::new_checked(&eth[ETHERNET_HDR_LEN..]) else {
            return;
        };
        let Ok(header) = Ipv6Repr::parse(&ip) else {
            return;
        };
        // As much of the packet as fits in the least MTU (RFC 4443 2.4(c)).
        let room = MIN_MTU - IPV6_HDR_LEN - 8 - IPV6_HDR_LEN;
        let payload = &eth[ETHERNET_HDR_LEN + IPV6_HDR_LEN..];
        let data = &payload[..payload.len().min(header.payload_len).min(room)];
        let msg = match why {
            Error6::Unreachable(reason) => Icmpv6Repr::DstUnreachable {
                reason,
                header,
                data,
            },
            Error6::HopLimit => Icmpv6Repr::TimeExceeded {
                reason: Icmpv6TimeExceeded::HopLimitExceeded,
                header,
                data,
            },
            Error6::TooBig(mtu) => Icmpv6Repr::PktTooBig { mtu, header, data },
            Error6::NextHeader => Icmpv6Repr::ParamProblem {
                reason: smoltcp::wire::Icmpv6ParamProblem::UnrecognizedNxtHdr,
                pointer: 6,
                header,
                data,
            },
        };
        let src = if super::fib::is_link_local(header.src_addr) {
            link_local
        } else {
            global.unwrap_or(link_local)
        };
        if self.emit6(bridge, our_mac, to_mac, src, header.src_addr, 64, &msg) {
            self.router6.counters.icmp6_errors_sent += 1;
        }
    }
}
