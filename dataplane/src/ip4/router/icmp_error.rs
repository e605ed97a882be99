//! icmp-error: what the router tells a sender (RFC 1812 4.3.2).

use super::*;

impl L3<'_> {
    /// icmp-error: tells the sender of `frame` what went wrong (RFC 1812
    /// 4.3.2), sent back the way the frame came (`back` = its ingress port)
    /// or, without one, by a route lookup. Never about an ICMP error, a
    /// non-first fragment, or a broadcast; rate limited.
    pub(super) fn icmp_error<const T: bool>(
        &mut self,
        frame: &[u8],
        back: Option<PortId>,
        bridge: BridgeId,
        msg: IcmpErrorMsg,
    ) {
        let ip = Ipv4Packet::new_unchecked(&frame[L3..]);
        let src = ip.src();
        let eth = EthernetFrame::new_unchecked(&frame[L2..L3]);
        let l2_dst = eth.dst();
        let quiet = ip.frag_offset() != 0
            || src.is_unspecified()
            || src.is_broadcast()
            || src.is_multicast()
            || src.is_loopback()
            || self.router.is_directed_broadcast(src)
            || (back.is_some() && l2_dst.is_multicast())
            // RFC 1812 4.3.2.7: nor about a datagram to a broadcast or
            // multicast address.
            || ip.dst().is_broadcast()
            || ip.dst().is_multicast()
            || self.router.is_directed_broadcast(ip.dst())
            || (ip.protocol() == IpProtocol::Icmp && is_error_message(ip.payload()));
        if quiet {
            return;
        }
        if self.router.icmp_budget == 0 && !(T && self.trace.dry) {
            self.router.counters.icmp_rate_limited += 1;
            return;
        }
        // About a packet NAT already rewrote: the error quotes it as its
        // sender sent it and goes to that sender (RFC 5508), as errors from
        // outside do.
        let untranslated = if self.nat.is_active() {
            parse_tuple(&frame[L3..])
                .and_then(|(t, _)| self.nat_error_translation::<T>(&t).map(|o| (t, o)))
        } else {
            None
        };
        let src = untranslated.map_or(src, |(_, o)| o.src);
        // Where the error goes: back out of the ingress port to the previous
        // hop, or along the route to the source.
        let (to, out_bridge, l2_to) = match back {
            Some(port) => (EmitTo::Port(port, bridge), bridge, eth.src()),
            None => {
                let Some(nh) = self
                    .router
                    .fib
                    .lookup(src)
                    .map(|id| self.router.next_hops[id as usize])
                else {
                    return;
                };
                let Some(n) = self.arp.get(nh.bridge, nh.gateway.unwrap_or(src)) else {
                    return;
                };
                if !n.state.has_mac() {
                    return;
                }
                let to = EmitTo::Bridge {
                    bridge: nh.bridge,
                    dst: n.mac,
                    except: None,
                };
                (to, nh.bridge, n.mac)
            }
        };
        let Some(iface) = self.router.iface(out_bridge) else {
            return;
        };
        let (our_mac, Some(our_ip)) = (iface.mac, iface.source_for(src)) else {
            return;
        };
        let rest = msg.rest_of_header();
        trace!(
            T; self.trace,
            Event::IcmpError {
                kind: msg.msg_type(),
                code: msg.code(),
                to: src,
                mtu: rest as u16,
                rest,
            }
        );
        if T && self.trace.dry {
            return;
        }
        // Per destination, once the error is sure to go: path MTU discovery
        // must not starve, so "fragmentation needed" is held to the global
        // budget only, as in Linux; redirects have buckets of their own.
        let limiter = match msg {
            IcmpErrorMsg::Redirect { .. } => &mut self.router.redirect_limiter,
            _ => &mut self.router.icmp_limiter,
        };
        if !msg.is_frag_needed() && !limiter.allow(src, self.router.now) {
            self.router.counters.icmp_rate_limited += 1;
            return;
        }
        let quote = &ip.packet()[..ip.total_len().min(icmp::MAX_QUOTE)];
        let Some(i) = self.em.alloc() else { return };
        self.router.icmp_budget -= 1;
        let error = IcmpRepr::Error { msg, quote };
        let header = Ipv4Repr {
            src: our_ip,
            dst: src,
            protocol: IpProtocol::Icmp,
            ttl: 64,
            tos: icmp::TOS_INTERNETWORK_CONTROL,
            ident: self.router.random.next_u64() as u16,
            dont_frag: false,
            more_frags: false,
            frag_offset: 0,
            payload_len: error.buffer_len(),
        };
        let b = self.em.buf_mut(i);
        EthernetFrame::new_unchecked(&mut b[L2..L3]).emit(l2_to, our_mac, ETHERTYPE_IPV4);
        let mut out = Ipv4Packet::new_unchecked(&mut b[L3..]);
        header.emit(&mut out);
        error.emit(&mut IcmpPacket::new_unchecked(out.payload_mut()));
        let total = header.buffer_len();
        self.em.set_len(i, L3 + total);
        if let Some((inner, new_inner)) = untranslated {
            let buf = &mut self.em.frame_mut(i)[L3..];
            if let Some((_, at)) = parse_icmp_error(buf) {
                rewrite_icmp_error(buf, at, &inner, &new_inner);
            }
        }
        self.em.send(i, to);
        self.router.counters.icmp_errors_sent += 1;
    }
}
