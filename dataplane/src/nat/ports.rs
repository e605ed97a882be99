//! Mappings and outside ports: endpoint-independent (RFC 4787 REQ-1), the inside port kept when free (REQ-3), else one at random (RFC 6056).

use super::*;

impl Nat {
    /// The outside address a new mapping of `t`'s source under rule `ri`
    /// gets: from the rule's pool (paired: one inside host, one outside
    /// address), or `out_addr`, the bridge's address, for a masquerade.
    pub(super) fn mapping_addr(
        &self,
        ri: usize,
        t: &Tuple,
        out_addr: Option<Ipv4Addr>,
    ) -> Option<Ipv4Addr> {
        match self.rules[ri].action {
            NatAction::Snat { first, last } => {
                let span = u64::from(u32::from(last).saturating_sub(u32::from(first))) + 1;
                let h = u64::from(u32::from(t.src).wrapping_mul(0x9e37_79b1) >> 8);
                Some(Ipv4Addr::from(
                    (u64::from(u32::from(first)) + h % span) as u32,
                ))
            }
            _ => out_addr,
        }
    }

    pub(super) fn unuse(&mut self, proto: IpProtocol, addr: Ipv4Addr, port: u16) {
        if self.by_outside.remove(&(proto, addr, port)).is_some() {
            if let Some(n) = self.used_per_addr.get_mut(&(proto, addr)) {
                *n -= 1;
                if *n == 0 {
                    self.used_per_addr.remove(&(proto, addr));
                }
            }
        }
    }

    /// The inside port if free (REQ-3, port preservation), else one picked
    /// at random.
    pub(super) fn free_port(
        &mut self,
        proto: IpProtocol,
        addr: Ipv4Addr,
        want: u16,
        ports: (u16, u16),
    ) -> Option<u16> {
        let (port, rng) = self.pick_port(proto, addr, want, ports, &self.rng)?;
        self.rng = rng;
        Some(port)
    }

    /// The port [`Nat::free_port`] would take with the generator in state
    /// `rng`, and the generator's state after it (a dry run takes the port
    /// without moving the generator on). A port that must change is drawn
    /// at random from the range, the next free one after it taken if it is
    /// in use (RFC 6056 3.3.1), so outside ports cannot be guessed.
    pub(super) fn pick_port(
        &self,
        proto: IpProtocol,
        addr: Ipv4Addr,
        want: u16,
        (lo, hi): (u16, u16),
        rng: &Random,
    ) -> Option<(u16, Random)> {
        if (lo..=hi).contains(&want) && !self.by_outside.contains_key(&(proto, addr, want)) {
            return Some((want, rng.clone()));
        }
        let span = u32::from(hi - lo) + 1;
        // Full: fail at once rather than search every port (rules sharing an
        // address with different ranges make this a bound, not exact).
        if self.used_per_addr.get(&(proto, addr)).copied().unwrap_or(0) >= span {
            return None;
        }
        let mut rng = rng.clone();
        let start = (rng.next_u64() >> 32) as u32 % span;
        (0..span)
            .map(|i| lo + ((start + i) % span) as u16)
            .find(|&p| !self.by_outside.contains_key(&(proto, addr, p)))
            .map(|p| (p, rng))
    }

    pub(super) fn release_mapping(&mut self, key: MappingKey) {
        if let Some(m) = self.mappings.get_mut(&key) {
            m.refs -= 1;
            if m.refs == 0 {
                let m = *m;
                self.mappings.remove(&key);
                self.unuse(key.0, m.addr, m.port);
            }
        }
    }
}
