//! ip4-validate: the first stage a packet to a router MAC goes through.

use super::*;
use crate::wire::ipv4_options::Options;

/// What ip4-validate read of a datagram, for the stages after it (its
/// addresses as it came, before NAT).
#[derive(Debug, Clone, Copy)]
pub(super) struct Datagram {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: IpProtocol,
    pub ttl: u8,
    pub total: usize,
    pub df: bool,
    pub ident: u16,
    pub more_frags: bool,
    pub frag_at: usize,
    pub payload_len: usize,
    pub options: Option<Options>,
    /// Whether the ingress interface sends redirects.
    pub redirects: bool,
    /// The transport checksum is left to the device (virtio NEEDS_CSUM).
    pub partial: bool,
}

impl Datagram {
    /// The datagram, as its fragments name it.
    pub fn key(&self) -> FragmentKey {
        (self.src, self.dst, self.proto, self.ident)
    }
}

impl L3<'_> {
    /// ip4-validate: the header checks of RFC 1812 5.2.2, sources no host
    /// can have (5.3.7) or that are ours, reverse-path filtering (RFC 3704)
    /// and options (5.2.4).
    pub(super) fn ip4_validate<const T: bool>(
        &mut self,
        frame: &[u8],
        in_port: PortId,
        bridge: BridgeId,
    ) -> Result<Datagram, L3Out> {
        let ip = match Ipv4Packet::new_checked(&frame[L3..]) {
            Ok(ip) => ip,
            Err(e) => {
                return Err(L3Out::Drop(match e {
                    Ipv4Error::Truncated | Ipv4Error::BadTotalLen => DropReason::Ip4BadLength,
                    Ipv4Error::BadVersion => DropReason::Ip4BadVersion,
                    Ipv4Error::BadHeaderLen => DropReason::Ip4BadLength,
                    Ipv4Error::BadChecksum => DropReason::Ip4BadChecksum,
                }))
            }
        };
        let (more_frags, frag_at) = (ip.more_frags(), ip.frag_offset());
        trace!(
            T; self.trace,
            Event::Ip4 {
                src: ip.src(),
                dst: ip.dst(),
                proto: ip.protocol(),
                ttl: ip.ttl(),
                len: ip.total_len() as u16,
                frag: (more_frags || frag_at != 0).then_some((frag_at as u16, more_frags)),
            }
        );
        // RFC 1812 5.3.7: never forward (or answer, or track) what comes
        // from an address no host can have, network 0 and the directed
        // broadcasts of our subnets among them (4.2.2.11).
        let src = ip.src();
        if src.is_multicast()
            || src.is_broadcast()
            || src.is_loopback()
            || src.octets()[0] == 0
            || src.octets()[0] >= 240
            || self.router.is_directed_broadcast(src)
        {
            return Err(L3Out::Drop(DropReason::Ip4BadSource));
        }
        // Our own address as a source is a spoof wherever it comes from.
        if self.router.is_local(src) {
            return Err(L3Out::Drop(DropReason::Ip4OwnSource));
        }
        let Some(in_iface) = self.router.iface(bridge) else {
            return Err(L3Out::Drop(DropReason::Ip4NoRoute));
        };
        let (rp_filter, redirects) = (in_iface.rp_filter, in_iface.redirects);
        if rp_filter != RpFilter::Off {
            let back = self
                .router
                .fib
                .lookup(src)
                .map(|id| self.router.next_hops[id as usize].bridge);
            if !rp_filter.passes(back, bridge) {
                return Err(L3Out::Drop(DropReason::Ip4RpFilter));
            }
        }
        // RFC 1812 5.2.4: options are checked; a malformed one is answered
        // with a parameter problem. Source-routed packets are dropped (RFC
        // 7126 4.3, and Linux with accept_source_route 0).
        let options = if ip.header_len() > IPV4_MIN_HDR_LEN {
            match ipv4_options::parse(ip.header()) {
                Ok(o) if o.source_routed => return Err(L3Out::Drop(DropReason::Ip4SourceRoute)),
                Ok(o) => Some(o),
                Err(BadOption(at)) => {
                    let msg = IcmpErrorMsg::ParameterProblem { pointer: at };
                    self.icmp_error::<T>(frame, Some(in_port), bridge, msg);
                    return Err(L3Out::Drop(DropReason::Ip4BadOption));
                }
            }
        } else {
            None
        };
        Ok(Datagram {
            src,
            dst: ip.dst(),
            proto: ip.protocol(),
            ttl: ip.ttl(),
            total: ip.total_len(),
            df: ip.dont_frag(),
            ident: ip.ident(),
            more_frags,
            frag_at,
            payload_len: ip.payload().len(),
            options,
            redirects,
            partial: VnetHdr::new_unchecked(&frame[..VNET_HDR_LEN]).needs_csum(),
        })
    }
}
