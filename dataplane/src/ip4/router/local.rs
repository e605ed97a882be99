//! ip4-local and ip4-reassemble: what is addressed to the router itself.

use super::*;
use crate::ip4::dhcp::is_to_server;

impl L3<'_> {
    /// ip4-reassemble: a fragment addressed to the router is held until
    /// its datagram is whole, which then goes to ip4-local.
    pub(super) fn reassemble<const T: bool>(
        &mut self,
        frame: &[u8],
        in_port: PortId,
        bridge: BridgeId,
        now: u64,
    ) -> L3Out {
        let ip = Ipv4Packet::new_unchecked(&frame[L3..]);
        if T && self.trace.dry {
            return L3Out::Consumed;
        }
        // A first fragment tells NAT that its datagram is not translated,
        // so later fragments it held come back here.
        if ip.frag_offset() == 0 && self.nat.is_active() {
            let key = (ip.src(), ip.dst(), ip.protocol(), ip.ident());
            let len = ip.payload().len() as u32;
            if self.nat.note_fragmented(key, None, len, now) {
                self.release_fragments(key, now);
            }
        }
        let ip = Ipv4Packet::new_unchecked(&frame[L3..]);
        let at = match self.router.reassembly.add(&ip, now) {
            Added::Held => return L3Out::Consumed,
            Added::Dropped => return L3Out::Drop(DropReason::Ip4Reassembly),
            Added::Complete(at) => at,
        };
        self.router.counters.reassembled += 1;
        let Some(i) = self.em.alloc() else {
            return L3Out::Drop(DropReason::NoBuffer);
        };
        let mut buf = self.em.take_buf(i);
        buf[..L3].copy_from_slice(&frame[..L3]);
        let n = self.router.reassembly.take(at, &mut buf[L3..]);
        let out = match n {
            0 => L3Out::Drop(DropReason::Ip4Reassembly),
            n => self.local_input::<T>(&buf[..L3 + n], in_port, bridge, now),
        };
        self.em.put_buf(i, buf);
        self.em.free(i);
        out
    }

    /// ip4-dhcp: a DHCP message to the server of `bridge` (broadcast, or
    /// to the router's address), queued for the DHCP thread.
    pub(crate) fn dhcp_input<const T: bool>(
        &mut self,
        eth: &[u8],
        in_port: PortId,
        bridge: BridgeId,
    ) -> L3Out {
        if T && self.trace.dry {
            trace!(T; self.trace, Event::Dhcp { queued: true });
            return L3Out::Consumed;
        }
        match self.router.dhcp.offer(bridge, in_port, eth) {
            Ok(()) => {
                trace!(T; self.trace, Event::Dhcp { queued: true });
                L3Out::Consumed
            }
            Err(reason) => {
                trace!(T; self.trace, Event::Dhcp { queued: false });
                L3Out::Drop(reason)
            }
        }
    }

    /// ip4-local: the router answers pings to its addresses.
    pub(super) fn local_input<const T: bool>(
        &mut self,
        frame: &[u8],
        in_port: PortId,
        bridge: BridgeId,
        now: u64,
    ) -> L3Out {
        let ip = Ipv4Packet::new_unchecked(&frame[L3..]);
        let total = ip.total_len();
        let is_echo = ip.protocol() == IpProtocol::Icmp
            && ip.frag_offset() == 0
            && !ip.more_frags()
            && IcmpPacket::new_checked(ip.payload()).is_ok_and(|p| p.msg_type() == ECHO_REQUEST);
        trace!(
            T; self.trace,
            Event::Local {
                dst: ip.dst(),
                echo_reply: is_echo,
            }
        );
        if !is_echo && self.router.dhcp.is_served(bridge) && is_to_server(&frame[VNET_HDR_LEN..]) {
            return self.dhcp_input::<T>(&frame[VNET_HDR_LEN..], in_port, bridge);
        }
        if !is_echo {
            // As a host answers what it does not serve.
            let code = match ip.protocol() {
                IpProtocol::Tcp | IpProtocol::Udp => Some(CODE_PORT_UNREACHABLE),
                IpProtocol::Icmp => None,
                _ => Some(CODE_PROTOCOL_UNREACHABLE),
            };
            if let Some(code) = code {
                let msg = IcmpErrorMsg::unreachable(code);
                self.icmp_error::<T>(frame, Some(in_port), bridge, msg);
            }
            return L3Out::Drop(DropReason::Ip4LocalUnsupported);
        }
        if T && self.trace.dry {
            return L3Out::Consumed;
        }
        let Some(our_mac) = self.router.router_mac(bridge) else {
            return L3Out::Drop(DropReason::Ip4NoRoute);
        };
        let (src, dst) = (ip.src(), ip.dst());
        let Some(i) = self.em.copy(&frame[..L3 + total]) else {
            return L3Out::Drop(DropReason::NoBuffer);
        };
        let ident = self.router.random.next_u64() as u16;
        let b = self.em.frame_mut(i);
        VnetHdr::new_unchecked(&mut b[..VNET_HDR_LEN]).clear();
        let mut eth = EthernetFrame::new_unchecked(&mut b[L2..L3]);
        let sender = eth.src();
        eth.set_dst(sender);
        eth.set_src(our_mac);
        let mut reply = Ipv4Packet::new_unchecked(&mut b[L3..]);
        reply.set_ttl_and_addrs(64, dst, src);
        // The reply's own identification, not the request's; its type of
        // service is the request's (RFC 1812 4.3.3.6 lets it be).
        let tos = reply.tos();
        reply.set_tos_and_ident(tos, ident);
        IcmpPacket::new_unchecked(reply.payload_mut()).echo_to_reply();
        self.router.counters.ip4_local += 1;
        // A reply bigger than the bridge's MTU (a reassembled request) goes
        // in fragments, as a host's would, by the route to the sender.
        let mtu = self
            .router
            .iface(bridge)
            .map_or(usize::from(DEFAULT_MTU), |i| usize::from(i.mtu));
        if total > mtu {
            let nh = self
                .router
                .fib
                .lookup(src)
                .map(|id| self.router.next_hops[id as usize]);
            let out = nh.and_then(|nh| Some((nh, self.router.iface(nh.bridge)?)));
            let out = out.map(|(nh, i)| (nh, i.mac, usize::from(i.mtu)));
            let mut buf = self.em.take_buf(i);
            let out = match out {
                Some((nh, mac, mtu)) => {
                    self.fragment::<T>(&mut buf[..L3 + total], nh, mac, mtu, false, now)
                }
                None => L3Out::Drop(DropReason::Ip4NoRoute),
            };
            self.em.put_buf(i, buf);
            self.em.free(i);
            return match out {
                L3Out::Drop(r) => L3Out::Drop(r),
                _ => L3Out::Consumed,
            };
        }
        self.em.send(i, EmitTo::Port(in_port, bridge));
        L3Out::Consumed
    }
}
