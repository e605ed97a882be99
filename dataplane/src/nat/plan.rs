//! What NAT does with a packet, in two steps: a [`NatPlan`], made without
//! changing anything, then its commit. A real packet is planned, then
//! committed; a made-up one (`patchbay trace packet`) is only planned, so
//! both go through the same decisions.

use super::*;

/// A mapping a new session will hold: the one of `key` if it exists, else
/// a new one with this address and port.
#[derive(Debug, Clone)]
pub struct MapPlan {
    /// The source NAT rule (index) it is under.
    ri: usize,
    key: MappingKey,
    addr: Ipv4Addr,
    /// `None`: no outside port is free.
    port: Option<u16>,
    /// For a new mapping whose port was drawn at random: the generator's
    /// state after the draw (a plan does not move the generator on).
    rng: Option<Random>,
}

/// How a new session is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NewKind {
    /// Destination NAT by rule `ri` to `to` (address, port); a hairpinning
    /// sender is translated too, by the session's mapping plan.
    Dnat { ri: usize, to: (Ipv4Addr, u16) },
    /// In on mapping `key`, let in by its rule's filtering; a hairpinning
    /// sender is translated too, by the session's mapping plan.
    Inbound { key: MappingKey },
    /// Source NAT by rule `ri`, with the session's mapping plan.
    Snat { ri: usize },
    /// From outside to a routed inside host: tracked untranslated.
    Track,
}

/// A session NAT will make.
#[derive(Debug, Clone)]
pub struct NewSession {
    kind: NewKind,
    orig: Tuple,
    /// The rule (id) it is made under.
    rule: u32,
    /// The mapping that translates the sender, if any.
    map: Option<MapPlan>,
}

/// What NAT will do with a packet.
#[derive(Debug, Clone)]
pub enum NatPlan {
    /// Not NAT's business.
    Pass,
    /// Refused: no outside port is free.
    NoPorts,
    /// A packet of session `id`, in the reply direction or not.
    Hit { id: u32, is_reply: bool },
    /// An inside host opens (a bare SYN) the reverse of a connection an
    /// outside host opened to it untranslated: that session ends, and the
    /// packet passes (on to source NAT).
    EndUntranslated(u32),
    /// A new session.
    Create(NewSession),
}

impl NatPlan {
    /// The rule the packet is translated by, the tuple it becomes, and
    /// whether a new session is made for it; `None` if it passes or is
    /// refused.
    pub fn translation(&self, nat: &Nat) -> Option<(u32, Tuple, bool)> {
        match self {
            NatPlan::Hit { id, is_reply } => {
                let s = nat.sessions[*id as usize].as_ref()?;
                let to = if *is_reply {
                    s.orig.inverse()
                } else {
                    s.reply.inverse()
                };
                Some((s.rule, to, false))
            }
            NatPlan::Create(n) => {
                let mapped = match &n.map {
                    Some(m) => Some((m.addr, m.port?)),
                    None => None,
                };
                Some((n.rule, n.reply(mapped).inverse(), true))
            }
            NatPlan::Pass | NatPlan::NoPorts | NatPlan::EndUntranslated(_) => None,
        }
    }

    /// The verdict the plan will give, as far as it can be told without
    /// committing it (a full table or a conflict shows only then).
    pub fn verdict(&self, nat: &Nat) -> NatVerdict {
        match self {
            NatPlan::NoPorts => NatVerdict::Drop(NatDrop::NoPorts),
            _ => match self.translation(nat) {
                Some((_, to, _)) => NatVerdict::Translate(to),
                None => NatVerdict::Pass,
            },
        }
    }
}

impl NewSession {
    /// The session's reply tuple, with the sender's mapping at `mapped`.
    fn reply(&self, mapped: Option<(Ipv4Addr, u16)>) -> Tuple {
        let t = &self.orig;
        let (src, sport, (dst, dport)) = match self.kind {
            // The server answers the sender, or (hairpin) its mapping.
            NewKind::Dnat { to, .. } => (to.0, to.1, mapped.unwrap_or((t.src, t.sport))),
            NewKind::Inbound { key } => {
                // An echo's identifier is its "port" both ways.
                let sender = if t.proto == IpProtocol::Icmp {
                    (t.src, key.2)
                } else {
                    (t.src, t.sport)
                };
                (key.1, key.2, mapped.unwrap_or(sender))
            }
            NewKind::Snat { .. } => {
                let (addr, port) = mapped.unwrap_or((t.src, t.sport));
                // ICMP echo: both "ports" are the identifier, mapped too.
                let sport = if t.proto == IpProtocol::Icmp {
                    port
                } else {
                    t.dport
                };
                (t.dst, sport, (addr, port))
            }
            NewKind::Track => return t.inverse(),
        };
        Tuple {
            proto: t.proto,
            src,
            sport,
            dst,
            dport,
        }
    }
}

impl Nat {
    /// Before routing: a packet of a known session is translated; a first
    /// packet to a router address (`to_us`) may start a session: on a
    /// published port (destination NAT, hairpinned when it comes from
    /// inside, RFC 4787 REQ-9), or on a mapping whose rule's filtering lets
    /// this remote in. `addr_of` gives a bridge's router address.
    pub fn plan_pre(
        &self,
        t: &Tuple,
        tcp_flags: u8,
        in_bridge: BridgeId,
        to_us: bool,
        addr_of: &dyn Fn(BridgeId) -> Option<Ipv4Addr>,
    ) -> NatPlan {
        if let Some(&(id, is_reply)) = self.tuples.get(t) {
            return self.plan_hit(id, is_reply, tcp_flags);
        }
        if !to_us {
            return NatPlan::Pass;
        }
        if let Some(ri) = self.dnat_rule_for(t, in_bridge, addr_of) {
            return self.plan_dnat(ri, t, in_bridge, addr_of);
        }
        self.plan_inbound(t, in_bridge, addr_of)
    }

    /// After routing, for a packet not translated yet: source NAT if a rule
    /// for the egress bridge covers its source. `out_addr` is the egress
    /// router interface's address (for masquerade).
    pub fn plan_post(
        &self,
        t: &Tuple,
        out_bridge: BridgeId,
        out_addr: Option<Ipv4Addr>,
    ) -> NatPlan {
        let Some(ri) = self.snat_rule_for(t.src, Some(out_bridge)) else {
            return NatPlan::Pass;
        };
        match self.plan_map(ri, t, out_addr) {
            Some(m) if m.port.is_none() => NatPlan::NoPorts,
            Some(m) => NatPlan::Create(NewSession {
                kind: NewKind::Snat { ri },
                orig: *t,
                rule: self.rules[ri].id,
                map: Some(m),
            }),
            None => NatPlan::Pass,
        }
    }

    /// After routing, for a packet that no source NAT rule translates: a
    /// first packet from outside (in by the egress bridge of a source NAT
    /// rule) to an inside host that rule covers, a routed inside network,
    /// is tracked untranslated, so that its answers, which match the
    /// session, are not masqueraded on their way out. Linux's MASQUERADE
    /// rewrites only connections it saw start inside (their conntrack is
    /// made by the first packet, whichever side sends it).
    pub fn plan_track(
        &self,
        t: &Tuple,
        tcp_flags: u8,
        in_bridge: BridgeId,
        out_bridge: BridgeId,
    ) -> NatPlan {
        if in_bridge == out_bridge || !self.must_translate(t.dst, in_bridge) {
            return NatPlan::Pass;
        }
        // A TCP segment that opens nothing (no SYN) starts no session.
        if t.proto == IpProtocol::Tcp && tcp_flags & TCP_SYN == 0 {
            return NatPlan::Pass;
        }
        match self.snat_rule_for(t.dst, Some(in_bridge)) {
            Some(i) => NatPlan::Create(NewSession {
                kind: NewKind::Track,
                orig: *t,
                rule: self.rules[i].id,
                map: None,
            }),
            None => NatPlan::Pass,
        }
    }

    /// Carries out `plan` for a packet with `tcp_flags`.
    pub fn commit(&mut self, plan: NatPlan, tcp_flags: u8, now: u64) -> NatVerdict {
        match plan {
            NatPlan::Pass => NatVerdict::Pass,
            NatPlan::NoPorts => {
                self.counters.no_ports += 1;
                NatVerdict::Drop(NatDrop::NoPorts)
            }
            NatPlan::Hit { id, is_reply } => self.hit(id, is_reply, tcp_flags, now),
            NatPlan::EndUntranslated(id) => {
                self.remove(id);
                NatVerdict::Pass
            }
            NatPlan::Create(n) => self.commit_new(n, tcp_flags, now),
        }
    }

    /// [`Nat::plan_pre`], committed.
    pub fn pre_routing(
        &mut self,
        t: &Tuple,
        tcp_flags: u8,
        in_bridge: BridgeId,
        to_us: bool,
        addr_of: &dyn Fn(BridgeId) -> Option<Ipv4Addr>,
        now: u64,
    ) -> NatVerdict {
        let plan = self.plan_pre(t, tcp_flags, in_bridge, to_us, addr_of);
        self.commit(plan, tcp_flags, now)
    }

    /// [`Nat::plan_post`], committed.
    pub fn post_routing(
        &mut self,
        t: &Tuple,
        tcp_flags: u8,
        out_bridge: BridgeId,
        out_addr: Option<Ipv4Addr>,
        now: u64,
    ) -> NatVerdict {
        let plan = self.plan_post(t, out_bridge, out_addr);
        self.commit(plan, tcp_flags, now)
    }

    /// [`Nat::plan_track`], committed.
    pub fn track_untranslated(
        &mut self,
        t: &Tuple,
        tcp_flags: u8,
        in_bridge: BridgeId,
        out_bridge: BridgeId,
        now: u64,
    ) -> NatVerdict {
        let plan = self.plan_track(t, tcp_flags, in_bridge, out_bridge);
        self.commit(plan, tcp_flags, now)
    }

    fn plan_hit(&self, id: u32, is_reply: bool, tcp_flags: u8) -> NatPlan {
        let Some(s) = self.sessions[id as usize].as_ref() else {
            return NatPlan::Pass;
        };
        // An inside host that opens a connection (a bare SYN) which happens
        // to be the reverse of one an outside host opened to it, untranslated,
        // is not answering it: that session goes, and the new connection
        // is source NATed, so no outside host can plant a session that
        // lets an inside address out.
        let untranslated = s.mapping.is_none() && s.orig == s.reply.inverse();
        if untranslated
            && is_reply
            && s.orig.proto == IpProtocol::Tcp
            && tcp_flags & 0x12 == TCP_SYN
        {
            return NatPlan::EndUntranslated(id);
        }
        NatPlan::Hit { id, is_reply }
    }

    fn plan_dnat(
        &self,
        ri: usize,
        t: &Tuple,
        in_bridge: BridgeId,
        addr_of: &dyn Fn(BridgeId) -> Option<Ipv4Addr>,
    ) -> NatPlan {
        let NatAction::Dnat {
            to_addr, to_port, ..
        } = self.rules[ri].action
        else {
            unreachable!("a dnat rule")
        };
        // Hairpin: an inside host reaching the published port through the
        // outside address also gets its source translated, so the server's
        // answer comes back through us rather than straight to it.
        let map = match self.hairpin_sender(t, in_bridge, addr_of) {
            Some(Some(m)) if m.port.is_none() => return NatPlan::NoPorts,
            Some(Some(m)) => Some(m),
            Some(None) => return NatPlan::Pass,
            None => None,
        };
        NatPlan::Create(NewSession {
            kind: NewKind::Dnat {
                ri,
                to: (to_addr, to_port),
            },
            orig: *t,
            rule: self.rules[ri].id,
            map,
        })
    }

    /// A first inbound packet to an outside address and port that is a
    /// mapping: let in per the rule's filtering (RFC 4787 REQ-8). One that
    /// comes from inside (another inside host through the outside address,
    /// REQ-9) is seen as coming from its own outside endpoint: its source
    /// is translated too, so the answer comes back through the NAT.
    fn plan_inbound(
        &self,
        t: &Tuple,
        in_bridge: BridgeId,
        addr_of: &dyn Fn(BridgeId) -> Option<Ipv4Addr>,
    ) -> NatPlan {
        let Some(&key) = self.by_outside.get(&(t.proto, t.dst, t.dport)) else {
            return NatPlan::Pass;
        };
        let Some(m) = self.mappings.get(&key) else {
            return NatPlan::Pass;
        };
        let Some(rule) = self.rules.iter().find(|r| r.id == m.rule) else {
            return NatPlan::Pass;
        };
        let hairpin = (t.proto != IpProtocol::Icmp)
            .then(|| self.hairpin_sender(t, in_bridge, addr_of))
            .flatten();
        // The remote as the mapping sees it.
        let remote = match &hairpin {
            Some(Some(m)) => m.addr,
            Some(None) => return NatPlan::Pass,
            None => t.src,
        };
        let allowed = match rule.filtering {
            Filtering::EndpointIndependent => true,
            Filtering::AddressDependent => self.remotes.contains_key(&(key, remote)),
            Filtering::AddressAndPortDependent => false,
        };
        if !allowed {
            return NatPlan::Pass;
        }
        let map = hairpin.flatten();
        if map.as_ref().is_some_and(|m| m.port.is_none()) {
            return NatPlan::NoPorts;
        }
        NatPlan::Create(NewSession {
            kind: NewKind::Inbound { key },
            orig: *t,
            rule: rule.id,
            map,
        })
    }

    /// For a packet from an inside bridge that comes back in (hairpin): the
    /// mapping its sender gets from the source rule that translates it.
    /// `None` if the packet does not come from inside or no rule translates
    /// its sender; `Some(None)` if that rule needs its bridge's address and
    /// it has none.
    fn hairpin_sender(
        &self,
        t: &Tuple,
        in_bridge: BridgeId,
        addr_of: &dyn Fn(BridgeId) -> Option<Ipv4Addr>,
    ) -> Option<Option<MapPlan>> {
        if !self.is_inside(in_bridge) {
            return None;
        }
        let si = self.snat_rule_for(t.src, None)?;
        Some(self.plan_map(si, t, addr_of(self.rules[si].bridge)))
    }

    /// The endpoint-independent mapping of `t`'s source under rule `ri`
    /// (REQ-1): the one it has, or a new one, its port preserved if free
    /// (REQ-3). `None` if the rule needs `out_addr` and there is none.
    fn plan_map(&self, ri: usize, t: &Tuple, out_addr: Option<Ipv4Addr>) -> Option<MapPlan> {
        let key = (t.proto, t.src, t.sport, self.rules[ri].id);
        if let Some(m) = self.mappings.get(&key) {
            let (addr, port) = (m.addr, Some(m.port));
            return Some(MapPlan {
                ri,
                key,
                addr,
                port,
                rng: None,
            });
        }
        let addr = self.mapping_addr(ri, t, out_addr)?;
        // A protocol without ports maps the address alone (port 0): inside
        // hosts share it, and only their sessions (by remote) tell them
        // apart. The others take an outside port of their own.
        if !has_ports(t.proto) {
            return Some(MapPlan {
                ri,
                key,
                addr,
                port: Some(0),
                rng: None,
            });
        }
        let picked = self.pick_port(t.proto, addr, t.sport, self.rules[ri].ports, &self.rng);
        Some(MapPlan {
            ri,
            key,
            addr,
            port: picked.as_ref().map(|&(p, _)| p),
            rng: picked.map(|(_, rng)| rng),
        })
    }

    /// Makes the session of `n`, with its mappings.
    fn commit_new(&mut self, n: NewSession, tcp_flags: u8, now: u64) -> NatVerdict {
        let mut mapping = None;
        let mut sender_mapping = None;
        match n.kind {
            NewKind::Dnat { ri, .. } => self.rules[ri].hits += 1,
            NewKind::Snat { .. } => {
                if !self.room(now) {
                    self.counters.table_full += 1;
                    return NatVerdict::Drop(NatDrop::TableFull);
                }
            }
            NewKind::Inbound { key } => match self.mappings.get_mut(&key) {
                Some(m) => {
                    m.refs += 1;
                    mapping = Some((key, true));
                }
                // Gone to make room for this very session: it is as if
                // it had never been.
                None => return NatVerdict::Pass,
            },
            NewKind::Track => {}
        }
        let mut mapped = None;
        if let Some(plan) = &n.map {
            match self.take_mapping(plan) {
                Some((addr, port)) => {
                    mapped = Some((addr, port));
                    match n.kind {
                        NewKind::Inbound { .. } => sender_mapping = Some(plan.key),
                        _ => mapping = Some((plan.key, false)),
                    }
                }
                None => {
                    if let Some((key, _)) = mapping {
                        self.release_mapping(key);
                    }
                    self.counters.no_ports += 1;
                    return NatVerdict::Drop(NatDrop::NoPorts);
                }
            }
        }
        if let NewKind::Snat { ri } = n.kind {
            self.rules[ri].hits += 1;
        }
        let reply = n.reply(mapped);
        self.create(
            n.orig,
            reply,
            n.rule,
            mapping,
            sender_mapping,
            tcp_flags,
            now,
        )
    }

    /// The mapping of `plan`, referenced once more: the one it has, or (made
    /// now) the planned one. `None` if no outside port is free.
    fn take_mapping(&mut self, plan: &MapPlan) -> Option<(Ipv4Addr, u16)> {
        let key = plan.key;
        if let Some(m) = self.mappings.get_mut(&key) {
            m.refs += 1;
            return Some((m.addr, m.port));
        }
        let (proto, addr) = (key.0, plan.addr);
        let port = if has_ports(proto) {
            let port = match (plan.port, &plan.rng) {
                (Some(p), rng) if !self.by_outside.contains_key(&(proto, addr, p)) => {
                    if let Some(rng) = rng {
                        self.rng = rng.clone();
                    }
                    p
                }
                // Its mapping went (to make room) since the plan: pick anew.
                _ => self.free_port(proto, addr, key.2, self.rules[plan.ri].ports)?,
            };
            *self.used_per_addr.entry((proto, addr)).or_insert(0) += 1;
            self.by_outside.insert((proto, addr, port), key);
            port
        } else {
            0
        };
        let rule = self.rules[plan.ri].id;
        self.mappings.insert(
            key,
            Mapping {
                addr,
                port,
                refs: 1,
                rule,
            },
        );
        Some((addr, port))
    }
}
