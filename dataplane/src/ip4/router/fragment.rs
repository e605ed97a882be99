//! ip4-fragment: a datagram too big for the egress MTU, cut up (RFC 791, RFC 1812 5.2.6).

use super::*;

impl L3<'_> {
    /// Splits a packet with DF clear into fragments that fit `mtu`
    /// (RFC 791; RFC 1812 5.2.6), each sent or queued like a packet.
    pub(super) fn fragment<const T: bool>(
        &mut self,
        frame: &mut [u8],
        nh: NextHop,
        out_mac: Mac,
        mtu: usize,
        forwarded: bool,
        now: u64,
    ) -> L3Out {
        // A checksum left to the device must be done now: the device will
        // see fragments, not the datagram.
        if VnetHdr::new_unchecked(&frame[..VNET_HDR_LEN]).needs_csum() {
            let ip = Ipv4Packet::new_unchecked(&frame[L3..]);
            let (l4, end) = (L3 + ip.header_len(), L3 + ip.total_len());
            if !vnet::complete_checksum(frame, l4, end) {
                return L3Out::Drop(DropReason::Ip4BadLength);
            }
        }
        let ip = Ipv4Packet::new_unchecked(&frame[L3..]);
        let hl = ip.header_len();
        let payload = ip.payload();
        let step = (mtu - hl) & !7;
        if step == 0 {
            return L3Out::Drop(DropReason::Ip4FragNeeded);
        }
        let base = ip.frag_offset();
        if base + payload.len() > 65_535 {
            return L3Out::Drop(DropReason::Ip4BadLength);
        }
        let more = ip.more_frags();
        trace!(
            T; self.trace,
            Event::Fragmented {
                count: payload.len().div_ceil(step) as u16,
                mtu: mtu as u16,
            }
        );
        let next_ip = nh.gateway.unwrap_or(ip.dst());
        let resolved = if T && self.trace.dry {
            self.arp.peek(nh.bridge, next_ip)
        } else {
            self.arp.resolve(nh.bridge, next_ip, now)
        };
        let mac = match resolved {
            Resolve::Mac(m) => Some(NextHopMac::Known(m)),
            Resolve::Pending { ask } => Some(NextHopMac::Queued { asked: ask }),
            Resolve::Failed | Resolve::Full => None,
        };
        if let Some(mac) = mac {
            let next_hop = next_ip;
            trace!(T; self.trace, Event::Resolve { next_hop, mac });
        }
        // A dry run makes no fragments: its datagram's fragments go its way.
        if T && self.trace.dry {
            return match resolved {
                Resolve::Failed | Resolve::Full => L3Out::Drop(DropReason::ArpUnresolved),
                Resolve::Mac(_) | Resolve::Pending { .. } => L3Out::Consumed,
            };
        }
        if let Resolve::Pending { ask: true } = resolved {
            self.ask(nh.bridge, next_ip);
        }
        // Fragments after the first carry only the options marked "copied"
        // (RFC 791 3.1): the header they get.
        let (later, later_hl) = ipv4_options::copied_header(&frame[L3..L3 + hl]);
        let mut off = 0;
        while off < payload.len() {
            let n = step.min(payload.len() - off);
            let Some(i) = self.em.alloc() else {
                return L3Out::Drop(DropReason::NoBuffer);
            };
            let (hdr, h) = if base + off == 0 {
                (&frame[L3..L3 + hl], hl)
            } else {
                (&later[..later_hl], later_hl)
            };
            let b = self.em.buf_mut(i);
            b[L2..L3].copy_from_slice(&frame[L2..L3]);
            EthernetFrame::new_unchecked(&mut b[L2..L3]).set_src(out_mac);
            b[L3..L3 + h].copy_from_slice(hdr);
            b[L3 + h..L3 + h + n].copy_from_slice(&payload[off..off + n]);
            let more_follow = off + n < payload.len() || more;
            let mut ip = Ipv4Packet::new_unchecked(&mut b[L3..L3 + h]);
            let ttl = if forwarded { ip.ttl() - 1 } else { ip.ttl() };
            ip.set_fragment((h + n) as u16, base + off, more_follow, ttl);
            ip.fill_checksum();
            self.em.set_len(i, L3 + h + n);
            self.router.counters.fragments_made += 1;
            match resolved {
                Resolve::Mac(m) => {
                    EthernetFrame::new_unchecked(&mut self.em.frame_mut(i)[L2..]).set_dst(m);
                    self.em.send(
                        i,
                        EmitTo::Bridge {
                            bridge: nh.bridge,
                            dst: m,
                            except: None,
                        },
                    );
                }
                Resolve::Pending { .. } => {
                    if !self.enqueue(nh.bridge, next_ip, i) {
                        return L3Out::Drop(DropReason::ArpQueueFull);
                    }
                }
                Resolve::Failed | Resolve::Full => {
                    self.em.free(i);
                    return L3Out::Drop(DropReason::ArpUnresolved);
                }
            }
            off += n;
        }
        if forwarded {
            self.router.counters.ip4_forwarded += 1;
        }
        L3Out::Consumed
    }
}
