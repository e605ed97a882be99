//! The forwarding stages: ip4-lookup (TTL, the route, the egress MTU),
//! options recorded, and arp-resolve with ip4-rewrite.

use super::validate::Datagram;
use super::*;

/// Where ip4-lookup sends a datagram.
#[derive(Debug, Clone, Copy)]
pub(super) struct Route {
    pub nh: NextHop,
    /// The egress interface's MAC and MTU.
    pub out_mac: Mac,
    pub mtu: usize,
    /// The size of what goes on the wire: the datagram, or each segment of
    /// a GSO super-frame.
    pub on_wire: usize,
}

impl Route {
    /// The next hop's address: the gateway, else the destination itself.
    pub fn next_ip(&self, dst: Ipv4Addr) -> Ipv4Addr {
        self.nh.gateway.unwrap_or(dst)
    }
}

impl L3<'_> {
    /// ip4-lookup: never forwarded destinations, TTL (RFC 1812 5.3.1), the
    /// longest-prefix match, and the egress MTU (fragmentation needed
    /// when DF is set, or for a GSO super-frame).
    pub(super) fn ip4_lookup<const T: bool>(
        &mut self,
        frame: &[u8],
        d: &Datagram,
        dst: Ipv4Addr,
        in_port: PortId,
        bridge: BridgeId,
    ) -> Result<Route, L3Out> {
        if self.router.never_forwarded(dst) {
            return Err(L3Out::Drop(DropReason::Ip4NotForwarded));
        }
        // RFC 1812 5.3.1: a packet that would leave with TTL 0 is dropped.
        if d.ttl <= 1 {
            let msg = IcmpErrorMsg::ttl_exceeded();
            self.icmp_error::<T>(frame, Some(in_port), bridge, msg);
            return Err(L3Out::Drop(DropReason::Ip4TtlExpired));
        }
        let Some(nh) = self
            .router
            .fib
            .lookup(dst)
            .map(|id| self.router.next_hops[id as usize])
        else {
            let msg = IcmpErrorMsg::unreachable(CODE_NET_UNREACHABLE);
            self.icmp_error::<T>(frame, Some(in_port), bridge, msg);
            return Err(L3Out::Drop(DropReason::Ip4NoRoute));
        };
        if T && self.trace.on {
            if let Some((prefix, len, _)) = self.router.fib.matching_route(dst) {
                self.trace.record(Event::Lookup {
                    dst,
                    prefix,
                    len,
                    via: nh.gateway,
                    bridge: nh.bridge,
                });
            }
        }
        let Some(out) = self.router.iface(nh.bridge) else {
            return Err(L3Out::Drop(DropReason::Ip4NoRoute));
        };
        let (out_mac, mtu) = (out.mac, usize::from(out.mtu));
        // A GSO super-frame leaves as segments of gso_size: check those.
        let vnet =
            VnetHdr::new_checked(&frame[..VNET_HDR_LEN]).expect("frame holds a virtio header");
        let on_wire = if vnet.is_gso() {
            gso_segment_len(&frame[L3..], vnet.gso_size(), vnet.hdr_len())
        } else {
            d.total
        };
        if on_wire > mtu && (d.df || vnet.is_gso()) {
            let msg = IcmpErrorMsg::frag_needed(mtu as u16);
            self.icmp_error::<T>(frame, Some(in_port), bridge, msg);
            return Err(L3Out::Drop(DropReason::Ip4FragNeeded));
        }
        Ok(Route {
            nh,
            out_mac,
            mtu,
            on_wire,
        })
    }

    /// Record Route and Timestamp get this hop's address (RFC 791),
    /// before the datagram is cut into fragments (the first keeps them).
    pub(super) fn record_options<const T: bool>(
        &mut self,
        frame: &mut [u8],
        d: &Datagram,
        route: &Route,
        dst: Ipv4Addr,
    ) {
        let Some(o) = d
            .options
            .filter(|o| o.record_route.is_some() || o.timestamp.is_some())
        else {
            return;
        };
        let hop = self
            .router
            .iface(route.nh.bridge)
            .and_then(|i| i.source_for(route.next_ip(dst)));
        let Some(hop) = hop.filter(|_| !(T && self.trace.dry)) else {
            return;
        };
        let mut ip = Ipv4Packet::new_unchecked(&mut frame[L3..]);
        let header = ip.header_mut();
        if let Some(at) = o.record_route {
            ipv4_options::record_route(header, at, hop);
        }
        if let Some(at) = o.timestamp {
            ipv4_options::timestamp(header, at, hop, ms_since_midnight_ut());
        }
        ip.fill_checksum();
    }

    /// arp-resolve, icmp redirect and ip4-rewrite: the next hop's MAC (or a
    /// place in its queue), then TTL and MACs written.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn resolve_and_rewrite<const T: bool>(
        &mut self,
        frame: &mut [u8],
        d: &Datagram,
        translated: bool,
        in_port: PortId,
        bridge: BridgeId,
        route: &Route,
        dst: Ipv4Addr,
        now: u64,
    ) -> L3Out {
        let (nh, out_mac) = (route.nh, route.out_mac);
        let next_ip = route.next_ip(dst);
        let resolved = if T && self.trace.dry {
            self.arp.peek(nh.bridge, next_ip)
        } else {
            self.arp.resolve(nh.bridge, next_ip, now)
        };
        match resolved {
            Resolve::Failed => {
                // Before the rewrite: the error quotes what the sender sent
                // and goes back to the sender's MAC.
                let msg = IcmpErrorMsg::unreachable(CODE_HOST_UNREACHABLE);
                self.icmp_error::<T>(frame, Some(in_port), bridge, msg);
                return L3Out::Drop(DropReason::ArpUnresolved);
            }
            Resolve::Full => return L3Out::Drop(DropReason::ArpTableFull),
            Resolve::Mac(_) | Resolve::Pending { .. } => {}
        }
        // RFC 1812 5.2.7.2: a packet that leaves by the bridge it came in
        // on, from a sender on that bridge's subnet, could have gone to the
        // next hop straight: tell the sender (and forward it all the same).
        if nh.bridge == bridge
            && d.redirects
            && !translated
            && self
                .router
                .iface(bridge)
                .is_some_and(|i| i.addrs.iter().any(|a| a.contains(d.src)))
        {
            let msg = IcmpErrorMsg::host_redirect(next_ip);
            self.icmp_error::<T>(frame, Some(in_port), bridge, msg);
        }
        // ip4-rewrite.
        Ipv4Packet::new_unchecked(&mut frame[L3..]).decrement_ttl();
        EthernetFrame::new_unchecked(&mut frame[L2..L3]).set_src(out_mac);
        match resolved {
            Resolve::Mac(m) => {
                let mac = NextHopMac::Known(m);
                trace!(T; self.trace, Event::Resolve { next_hop: next_ip, mac });
                trace!(
                    T; self.trace,
                    Event::Rewrite {
                        ttl_from: d.ttl,
                        ttl_to: d.ttl - 1,
                        src_mac: out_mac,
                        dst_mac: m,
                    }
                );
                EthernetFrame::new_unchecked(&mut frame[L2..L3]).set_dst(m);
                self.router.counters.ip4_forwarded += 1;
                L3Out::Forward {
                    bridge: nh.bridge,
                    dst: m,
                }
            }
            Resolve::Pending { ask } => {
                let mac = NextHopMac::Queued { asked: ask };
                trace!(T; self.trace, Event::Resolve { next_hop: next_ip, mac });
                if T && self.trace.dry {
                    return L3Out::Consumed;
                }
                if ask {
                    self.ask(nh.bridge, next_ip);
                }
                self.wait_for_arp(&frame[..L3 + d.total], nh.bridge, next_ip)
            }
            Resolve::Failed | Resolve::Full => unreachable!("handled above"),
        }
    }

    /// Queues a copy of `frame` until `next_ip` answers ARP.
    fn wait_for_arp(&mut self, frame: &[u8], bridge: BridgeId, next_ip: Ipv4Addr) -> L3Out {
        // Packets waiting for ARP may hold at most half the pool, so
        // replies, requests and ICMP always find a buffer: past it, this
        // neighbour's oldest packet makes room for the newest.
        if self.em.available() <= self.em.capacity() / 2 {
            let Some(old) = self.arp.unqueue_oldest(bridge, next_ip) else {
                return L3Out::Drop(DropReason::ArpQueueFull);
            };
            self.em.free(old);
            self.router.counters.arp_queue_overflow += 1;
        }
        let Some(i) = self.em.copy(frame) else {
            return L3Out::Drop(DropReason::NoBuffer);
        };
        if self.enqueue(bridge, next_ip, i) {
            self.router.counters.arp_queued += 1;
            L3Out::Consumed
        } else {
            L3Out::Drop(DropReason::ArpQueueFull)
        }
    }
}
