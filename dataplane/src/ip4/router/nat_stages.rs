//! NAT at the router: rewriting packets, and the fragments NAT holds until their first one comes.

use super::*;

impl Router {
    /// Whether `ip` is an outside address of NAT: a source NAT rule's (its
    /// bridge's, or one of its pool) or a published port's.
    pub(super) fn is_nat_address(&self, ip: Ipv4Addr) -> bool {
        self.nat.rules().iter().any(|r| match r.action {
            NatAction::Snat { first, last } => (first..=last).contains(&ip),
            NatAction::Masquerade | NatAction::Dnat { .. } => self
                .iface(r.bridge)
                .is_some_and(|i| i.addrs.iter().any(|a| a.addr == ip)),
        })
    }
    /// How an ICMP error quoting `inner` is translated back, if NAT made
    /// `inner`; a dry run only looks (and counts nothing).
    pub(super) fn nat_error_translation<const T: bool>(&mut self, inner: &Tuple) -> Option<Tuple> {
        if T && self.trace.dry {
            self.nat.error_lookup(inner)
        } else {
            self.nat.error_translation(inner)
        }
    }
    /// Writes NAT's new tuple into a packet (`l3`); for the first fragment
    /// of datagram `first_of`, its later fragments will get the same
    /// addresses (not in a dry run, which remembers nothing).
    pub(super) fn nat_apply<const T: bool>(
        &mut self,
        l3: &mut [u8],
        from: &Tuple,
        to: &Tuple,
        partial: bool,
        first_of: Option<u16>,
        now: u64,
    ) {
        rewrite(l3, from, to, partial);
        if let Some(ident) = first_of.filter(|_| !(T && self.trace.dry)) {
            let key = (from.src, from.dst, from.proto, ident);
            let len = Ipv4Packet::new_unchecked(&*l3).payload().len() as u32;
            if self
                .nat
                .note_fragmented(key, Some((to.src, to.dst)), len, now)
            {
                self.release_fragments(key, now);
            }
        }
    }
    /// Holds a later fragment whose first fragment has not come: NAT cannot
    /// tell yet whether and how to translate it (RFC 4787 REQ-14).
    pub(super) fn hold_fragment(
        &mut self,
        frame: &[u8],
        key: FragmentKey,
        port: PortId,
        bridge: BridgeId,
        now: u64,
    ) -> L3Out {
        if self.held.len() >= MAX_HELD_FRAGMENTS {
            // The oldest goes: unsolicited fragments must not keep out the
            // ones whose first fragment is on its way.
            let oldest = self.held.remove(0);
            self.em.free(oldest.buf);
            self.nat.counters.fragments_dropped += 1;
        }
        let Some(buf) = self.em.copy(frame) else {
            return L3Out::Drop(DropReason::NoBuffer);
        };
        self.held.push(HeldFragment {
            key,
            buf,
            port,
            bridge,
            until: now + FRAGMENT_MS,
        });
        self.nat.counters.fragments_held += 1;
        L3Out::Consumed
    }
    /// The first fragment of datagram `key` came: the fragments held for it
    /// go through the router again, now that NAT knows what they get.
    pub(super) fn release_fragments(&mut self, key: FragmentKey, now: u64) {
        if !self.held.iter().any(|h| h.key == key) {
            return;
        }
        let mut releasing = std::mem::take(&mut self.releasing);
        self.held.retain(|h| {
            let out = h.key == key;
            if out {
                releasing.push(*h);
            }
            !out
        });
        for h in releasing.drain(..) {
            let len = self.em.frame(h.buf).len();
            let mut buf = self.em.take_buf(h.buf);
            // Counted in when it came.
            self.counters.ip4_in -= 1;
            let out = self.input::<false>(&mut buf[..len], h.port, h.bridge, now);
            self.em.put_buf(h.buf, buf);
            match out {
                L3Out::Forward { bridge, dst } => {
                    let to = EmitTo::Bridge {
                        bridge,
                        dst,
                        except: None,
                    };
                    self.em.send(h.buf, to);
                }
                L3Out::Consumed => self.em.free(h.buf),
                L3Out::Drop(_) => {
                    self.em.free(h.buf);
                    self.nat.counters.fragments_dropped += 1;
                }
            }
        }
        self.releasing = releasing;
    }
}
