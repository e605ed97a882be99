//! icmp-error: what the router tells a sender (RFC 1812 4.3.2).

use super::*;

impl Router {
    /// icmp-error: tells the sender of `frame` what went wrong (RFC 1812
    /// 4.3.2), sent back the way the frame came (`back` = its ingress port)
    /// or, without one, by a route lookup. Never about an ICMP error, a
    /// non-first fragment, or a broadcast; rate limited.
    pub(super) fn icmp_error<const T: bool>(
        &mut self,
        frame: &[u8],
        back: Option<PortId>,
        bridge: BridgeId,
        icmp_type: u8,
        code: u8,
        rest: u32,
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
            || self.is_directed_broadcast(src)
            || (back.is_some() && l2_dst.is_multicast())
            // RFC 1812 4.3.2.7: nor about a datagram to a broadcast or
            // multicast address.
            || ip.dst().is_broadcast()
            || ip.dst().is_multicast()
            || self.is_directed_broadcast(ip.dst())
            || (ip.protocol() == PROTO_ICMP
                && ip.payload().first().is_some_and(|&t| icmp::is_error(t)));
        if quiet {
            return;
        }
        if self.icmp_budget == 0 && !(T && self.trace.dry) {
            self.counters.icmp_rate_limited += 1;
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
            Some(port) => (EmitTo::Port(port), bridge, eth.src()),
            None => {
                let Some(nh) = self.fib.lookup(src).map(|id| self.next_hops[id as usize]) else {
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
        let Some(iface) = self.iface(out_bridge) else {
            return;
        };
        let (our_mac, Some(our_ip)) = (iface.mac, iface.source_for(src)) else {
            return;
        };
        trace!(
            T; self.trace,
            Event::IcmpError {
                kind: icmp_type,
                code,
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
        let pmtu = icmp_type == icmp::DEST_UNREACHABLE && code == icmp::CODE_FRAG_NEEDED;
        let limiter = match icmp_type {
            icmp::REDIRECT => &mut self.redirect_limiter,
            _ => &mut self.icmp_limiter,
        };
        if !pmtu && !limiter.allow(src, self.now) {
            self.counters.icmp_rate_limited += 1;
            return;
        }
        let quote_len = ip.total_len().min(icmp::MAX_QUOTE);
        let Some(i) = self.em.alloc() else { return };
        self.icmp_budget -= 1;
        let ident = self.random.next_u64() as u16;
        let b = self.em.buf_mut(i);
        EthernetFrame::new_unchecked(&mut b[L2..L3]).emit(l2_to, our_mac, ETHERTYPE_IPV4);
        let icmp_len = icmp::emit_error(
            &mut b[L3 + IPV4_MIN_HDR_LEN..],
            icmp_type,
            code,
            rest,
            &frame[L3..L3 + quote_len],
        );
        let total = IPV4_MIN_HDR_LEN + icmp_len;
        ipv4::emit_header(
            &mut b[L3..],
            total as u16,
            ident,
            64,
            PROTO_ICMP,
            our_ip,
            src,
        );
        Ipv4Packet::new_unchecked(&mut b[L3..])
            .set_tos_and_ident(icmp::TOS_INTERNETWORK_CONTROL, ident);
        self.em.set_len(i, L3 + total);
        if let Some((inner, new_inner)) = untranslated {
            let buf = &mut self.em.frame_mut(i)[L3..];
            if let Some((_, at)) = parse_icmp_error(buf) {
                rewrite_icmp_error(buf, at, &inner, &new_inner);
            }
        }
        self.em.send(i, to);
        self.counters.icmp_errors_sent += 1;
    }
}
