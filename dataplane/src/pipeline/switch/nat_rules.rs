//! NAT rules and sessions as the control plane sees them.

use super::*;

impl Switch {
    /// Adds a NAT rule on `bridge` (egress for source NAT, ingress for
    /// destination NAT); returns its id.
    pub fn nat_add(
        &mut self,
        action: NatAction,
        src: Option<Ipv4Net>,
        bridge: &str,
        ports: Option<(u16, u16)>,
        filtering: Filtering,
    ) -> Result<u32, SwitchError> {
        let b = self.existing_bridge(bridge)?;
        // As iptables does: 192.168.15.5/24 is 192.168.15.0/24.
        let src = src.map(|n| n.subnet());
        if let NatAction::Dnat { proto, dport, .. } = action {
            let taken = self.nat.rules().iter().find(|r| {
                r.bridge == b
                    && matches!(r.action, NatAction::Dnat { proto: p, dport: d, .. }
                        if p == proto && d == dport)
            });
            if let Some(r) = taken {
                return Err(SwitchError::BadNat(format!(
                    "{} port {dport} on {bridge} is already published by rule {} \
                     (delete it first: 'patchbay nat del {}')",
                    proto, r.id, r.id
                )));
            }
        }
        let ports = ports.unwrap_or(PortRange::DEFAULT);
        PortRange::check(ports).map_err(SwitchError::BadNat)?;
        if let NatAction::Snat { first, last } = action {
            if first > last {
                return Err(SwitchError::BadNat(format!(
                    "address range {first}-{last} is empty"
                )));
            }
        }
        let id = self
            .nat
            .add_rule_filtered(action.clone(), src, b, ports, filtering);
        let words = self
            .nat_rules()
            .into_iter()
            .find(|r| r.id == id)
            .map(|r| r.words())
            .unwrap_or_default();
        log_change!(self, op = "nat_add", id, rule = words.as_str(); "nat rule {id}: {words}");
        Ok(id)
    }

    pub fn nat_del(&mut self, id: u32) -> Result<(), SwitchError> {
        if !self.nat.del_rule(id) {
            return Err(SwitchError::NoSuchNatRule(id));
        }
        log_change!(self, op = "nat_del", id; "nat rule {id}: deleted");
        Ok(())
    }

    /// The NAT rules with their hit counters.
    pub fn nat_rules(&self) -> Vec<NatRuleInfo> {
        self.nat
            .rules()
            .iter()
            .map(|r| {
                let (to, proto, dport) = match &r.action {
                    NatAction::Masquerade => (None, None, None),
                    NatAction::Snat { first, last } => {
                        (Some(format!("{first}-{last}")), None, None)
                    }
                    NatAction::Dnat {
                        proto,
                        dport,
                        to_addr,
                        to_port,
                    } => (
                        Some(format!("{to_addr}:{to_port}")),
                        Some(proto.to_string()),
                        Some(*dport),
                    ),
                };
                let kind = r.action.kind();
                let source_nat = kind != NatKind::Dnat;
                NatRuleInfo {
                    id: r.id,
                    kind,
                    src: r.src,
                    bridge: self.bridge_name(r.bridge).to_string(),
                    to,
                    ports: source_nat.then_some(r.ports),
                    filtering: source_nat.then_some(r.filtering),
                    proto,
                    dport,
                    hits: r.hits,
                }
            })
            .collect()
    }

    /// Every NAT session.
    pub fn nat_sessions(&self) -> Vec<NatSessionInfo> {
        let now = self.started.elapsed().as_millis() as u64;
        self.nat
            .sessions()
            .map(|s| {
                let (i, o, r) = s.endpoints();
                // A protocol without ports is tracked by address alone.
                let ports = crate::nat::translate::has_ports(s.orig.proto);
                let endpoint = |(a, p): (Ipv4Addr, u16)| match ports {
                    true => format!("{a}:{p}"),
                    false => a.to_string(),
                };
                NatSessionInfo {
                    proto: s.orig.proto.to_string(),
                    inside: endpoint(i),
                    outside: endpoint(o),
                    remote: endpoint(r),
                    state: s.state,
                    rule: s.rule,
                    age: (now.saturating_sub(s.last_seen) / 1000) as u32,
                }
            })
            .collect()
    }

    /// Forgets every NAT session; returns how many.
    pub fn nat_flush(&mut self) -> usize {
        let n = self.nat.flush(|_| true);
        log_change!(self, op = "nat_flush", removed = n; "nat: flushed {n} sessions");
        n
    }
}
