//! What NAT would do with a packet, found without changing anything (for a
//! dry-run trace).

use super::*;

/// What NAT would do with a packet, found without changing anything (for a
/// dry-run trace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peek {
    /// A packet of an existing session: rewritten to this, by this rule.
    Translate {
        to: Tuple,
        rule: u32,
    },
    /// A new session would be made by this rule, the packet rewritten to
    /// `to` (`None`: to a source port picked then).
    Create {
        rule: u32,
        to: Option<Tuple>,
    },
    Pass,
}

impl Nat {
    /// The rule of the session a packet (before or after translation)
    /// belongs to.
    pub fn rule_of(&self, t: &Tuple) -> Option<u32> {
        let &(id, _) = self
            .tuples
            .get(t)
            .or_else(|| self.tuples.get(&t.inverse()))?;
        Some(self.sessions[id as usize].as_ref()?.rule)
    }

    /// What [`Nat::pre_routing`] would do.
    pub fn peek_pre(
        &self,
        t: &Tuple,
        in_bridge: BridgeId,
        to_us: bool,
        addr_of: &dyn Fn(BridgeId) -> Option<Ipv4Addr>,
    ) -> Peek {
        if let Some(&(id, is_reply)) = self.tuples.get(t) {
            let Some(s) = self.sessions[id as usize].as_ref() else {
                return Peek::Pass;
            };
            let to = if is_reply {
                s.orig.inverse()
            } else {
                s.reply.inverse()
            };
            return Peek::Translate { to, rule: s.rule };
        }
        if !to_us {
            return Peek::Pass;
        }
        if let Some(r) = self
            .dnat_rule_for(t, in_bridge, addr_of)
            .map(|i| &self.rules[i])
        {
            let NatAction::Dnat {
                to_addr, to_port, ..
            } = r.action
            else {
                unreachable!("a dnat rule")
            };
            let mut to = Tuple {
                dst: to_addr,
                dport: to_port,
                ..*t
            };
            // Hairpin: from inside, the source is translated too (to its
            // mapping, or the rule's address with its port kept).
            if let Some(HairpinSender {
                addr: Some(addr),
                port,
                ..
            }) = self.hairpin_sender(t, in_bridge, addr_of)
            {
                let Some(port) = port else {
                    // No port left: the real path drops it.
                    return Peek::Pass;
                };
                to.src = addr;
                to.sport = port;
            }
            return Peek::Create {
                rule: r.id,
                to: Some(to),
            };
        }
        // An inbound first packet on a mapping, let in per its rule's
        // filtering (as in `inbound_on_mapping`).
        let Some(&key) = self.by_outside.get(&(t.proto, t.dst, t.dport)) else {
            return Peek::Pass;
        };
        let Some(m) = self.mappings.get(&key) else {
            return Peek::Pass;
        };
        let filtering = self
            .rules
            .iter()
            .find(|r| r.id == m.rule)
            .map(|r| r.filtering);
        // A hairpinning sender is seen (and filtered) by its own mapping.
        let hairpin = (t.proto != PROTO_ICMP)
            .then(|| self.hairpin_sender(t, in_bridge, addr_of))
            .flatten();
        let (src, sport) = match hairpin {
            Some(HairpinSender {
                addr: Some(a),
                port: Some(p),
                ..
            }) => (a, p),
            Some(_) => return Peek::Pass,
            // An echo's identifier is its "port" both ways.
            None if t.proto == PROTO_ICMP => (t.src, key.2),
            None => (t.src, t.sport),
        };
        let allowed = match filtering {
            Some(Filtering::EndpointIndependent) => true,
            Some(Filtering::AddressDependent) => self.remotes.contains_key(&(key, src)),
            _ => false,
        };
        if !allowed {
            return Peek::Pass;
        }
        Peek::Create {
            rule: m.rule,
            to: Some(Tuple {
                proto: t.proto,
                src,
                sport,
                dst: key.1,
                dport: key.2,
            }),
        }
    }

    /// What [`Nat::post_routing`] would do: the existing mapping of the
    /// source, or the one a new mapping would get when its port can be kept
    /// (RFC 4787 REQ-3); `None` when the port would be picked then.
    pub fn peek_post(&self, t: &Tuple, out_bridge: BridgeId, out_addr: Option<Ipv4Addr>) -> Peek {
        let Some(ri) = self.snat_rule_for(t.src, Some(out_bridge)) else {
            return Peek::Pass;
        };
        let rule = &self.rules[ri];
        let to = match self.mappings.get(&(t.proto, t.src, t.sport, rule.id)) {
            Some(m) => Some((m.addr, m.port)),
            None => self.mapping_addr(ri, t, out_addr).and_then(|a| {
                if !has_ports(t.proto) {
                    return Some((a, 0));
                }
                let port = self.pick_port(t.proto, a, t.sport, rule.ports, &self.rng);
                port.map(|(p, _)| (a, p))
            }),
        };
        Peek::Create {
            rule: rule.id,
            to: to.map(|(addr, port)| Tuple {
                src: addr,
                sport: port,
                ..*t
            }),
        }
    }
}
