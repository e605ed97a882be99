//! NAT at the router: rewriting packets, and the fragments NAT holds until their first one comes.

use super::validate::Datagram;
use super::*;

impl L3<'_> {
    /// Whether `ip` is an outside address of NAT: a source NAT rule's (its
    /// bridge's, or one of its pool) or a published port's.
    pub(super) fn is_nat_address(&self, ip: Ipv4Addr) -> bool {
        self.nat.rules().iter().any(|r| match r.action {
            NatAction::Snat { first, last } => (first..=last).contains(&ip),
            NatAction::Masquerade | NatAction::Dnat { .. } => self
                .router
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

    /// Carries out NAT's plan for a packet with tuple `t` (before routing,
    /// or after): a dry run only says what it would do.
    fn nat_decide<const T: bool>(
        &mut self,
        plan: NatPlan,
        t: &Tuple,
        flags: u8,
        pre: bool,
        now: u64,
    ) -> NatVerdict {
        let translation = T.then(|| plan.translation(self.nat)).flatten();
        let verdict = if T && self.trace.dry {
            plan.verdict(self.nat)
        } else {
            self.nat.commit(plan, flags, now)
        };
        // (Tracked untranslated after routing, a packet is not rewritten.)
        if let (Some((rule, _, new_session)), NatVerdict::Translate(to)) = (translation, verdict) {
            let from = *t;
            if !pre && to == from {
                return verdict;
            }
            trace!(T; self.trace, Event::Nat { pre, from, to, rule, new_session });
        }
        verdict
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
        if self.router.held.len() >= MAX_HELD_FRAGMENTS {
            // The oldest goes: unsolicited fragments must not keep out the
            // ones whose first fragment is on its way.
            let oldest = self.router.held.remove(0);
            self.em.free(oldest.buf);
            self.nat.counters.fragments_dropped += 1;
        }
        let Some(buf) = self.em.copy(frame) else {
            return L3Out::Drop(DropReason::NoBuffer);
        };
        self.router.held.push(HeldFragment {
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
        if !self.router.held.iter().any(|h| h.key == key) {
            return;
        }
        let mut releasing = std::mem::take(&mut self.router.releasing);
        self.router.held.retain(|h| {
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
            self.router.counters.ip4_in -= 1;
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
        self.router.releasing = releasing;
    }
}

/// What nat-pre leaves for nat-post: the packet's tuple, if NAT has still
/// to decide on it, and whether it was translated.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct NatPre {
    pub tuple: Option<(Tuple, u8)>,
    pub translated: bool,
}

impl L3<'_> {
    /// nat (pre-routing): packets of known sessions, first packets to
    /// published ports, later fragments (the addresses their first one
    /// got), and ICMP errors about translated packets.
    pub(super) fn nat_pre<const T: bool>(
        &mut self,
        frame: &mut [u8],
        d: &Datagram,
        in_port: PortId,
        bridge: BridgeId,
        now: u64,
    ) -> Result<NatPre, L3Out> {
        let mut pre = NatPre::default();
        if !self.nat.is_active() {
            return Ok(pre);
        }
        if let Some((t, flags)) = parse_tuple(&frame[L3..]) {
            let to_us = self.router.is_local(t.dst);
            let ifaces = &self.router.ifaces;
            let addr_of = |b: BridgeId| {
                let iface = ifaces.get(usize::from(b))?.as_ref()?;
                iface.addrs.first().map(|a| a.addr)
            };
            let plan = self.nat.plan_pre(&t, flags, bridge, to_us, &addr_of);
            let verdict = self.nat_decide::<T>(plan, &t, flags, true, now);
            match verdict {
                NatVerdict::Translate(to) => {
                    let first_of = d.more_frags.then_some(d.ident);
                    self.nat_apply::<T>(&mut frame[L3..], &t, &to, d.partial, first_of, now);
                    pre.translated = true;
                }
                NatVerdict::Pass => pre.tuple = Some((t, flags)),
                NatVerdict::Drop(why) => return Err(L3Out::Drop(nat_drop(why))),
            }
        } else if d.frag_at != 0 {
            // A later fragment: the addresses its first one got.
            if !(T && self.trace.dry) {
                let len = d.payload_len as u32;
                let end = (!d.more_frags).then_some(d.frag_at as u32 + len);
                match self.nat.fragment(d.key(), len, end) {
                    FragmentFate::Rewrite(src, dst) => {
                        rewrite_addrs(&mut frame[L3..], src, dst);
                        pre.translated = true;
                        let kind = NatRelated::Fragment;
                        trace!(T; self.trace, Event::NatRelated { kind, src, dst });
                    }
                    FragmentFate::Pass => {}
                    FragmentFate::Unknown => {
                        let (kind, src, dst) = (NatRelated::Held, d.src, d.dst);
                        trace!(T; self.trace, Event::NatRelated { kind, src, dst });
                        return Err(self.hold_fragment(frame, d.key(), in_port, bridge, now));
                    }
                }
            }
        } else if let Some((inner, at)) = parse_icmp_error(&frame[L3..]) {
            // An error about a translated packet goes back translated.
            if let Some(new_inner) = self.nat_error_translation::<T>(&inner) {
                rewrite_icmp_error(&mut frame[L3..], at, &inner, &new_inner);
                pre.translated = true;
                let (kind, src, dst) = (NatRelated::IcmpError, d.src, new_inner.src);
                trace!(T; self.trace, Event::NatRelated { kind, src, dst });
            }
        }
        Ok(pre)
    }

    /// nat (post-routing): source NAT for what leaves through a NAT'd
    /// bridge and was not translated on the way in; what a source NAT rule
    /// covers and NAT cannot translate is dropped. Returns whether the
    /// packet was translated, at either stage.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn nat_post<const T: bool>(
        &mut self,
        frame: &mut [u8],
        d: &Datagram,
        pre: NatPre,
        bridge: BridgeId,
        nh: NextHop,
        dst: Ipv4Addr,
        now: u64,
    ) -> Result<bool, L3Out> {
        let mut translated = pre.translated;
        if let Some((t, flags)) = pre.tuple {
            let out_addr = self
                .router
                .iface(nh.bridge)
                .and_then(|i| i.source_for(nh.gateway.unwrap_or(dst)));
            let plan = match self.nat.plan_post(&t, nh.bridge, out_addr) {
                // Not translated: tracked as it is, if it comes from outside
                // to a routed inside host.
                NatPlan::Pass => self.nat.plan_track(&t, flags, bridge, nh.bridge),
                plan => plan,
            };
            let verdict = self.nat_decide::<T>(plan, &t, flags, false, now);
            match verdict {
                NatVerdict::Translate(to) => {
                    let first_of = d.more_frags.then_some(d.ident);
                    self.nat_apply::<T>(&mut frame[L3..], &t, &to, d.partial, first_of, now);
                    translated = true;
                }
                NatVerdict::Pass => {}
                NatVerdict::Drop(why) => return Err(L3Out::Drop(nat_drop(why))),
            }
        }
        // What a source NAT rule covers leaves translated or not at all: an
        // inside address never leaks, whatever NAT could not make out (an
        // ICMP message that is neither a query nor an error about a session,
        // a first fragment too short for its ports).
        // (A dry run does not look up later fragments: it cannot tell.)
        if !translated
            && pre.tuple.is_none()
            && self.nat.is_active()
            && !(T && self.trace.dry && d.frag_at != 0)
            && self.nat.must_translate(d.src, nh.bridge)
        {
            return Err(L3Out::Drop(DropReason::NatUntranslatable));
        }
        // The first fragment of a datagram NAT leaves alone: its later
        // fragments pass too (and those that came first go on now).
        if d.more_frags
            && d.frag_at == 0
            && !translated
            && self.nat.is_active()
            && !(T && self.trace.dry)
            && self
                .nat
                .note_fragmented(d.key(), None, d.payload_len as u32, now)
        {
            self.release_fragments(d.key(), now);
        }
        Ok(translated)
    }
}
