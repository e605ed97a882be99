//! NAT: source NAT (masquerade and SNAT to an address range), destination
//! NAT (port publishing), and the connection tracking they stand on
//! (RFC 4787 for UDP, RFC 5382 for TCP, RFC 5508 for ICMP, RFC 7857).
//!
//! A session is two tuples, as in the kernel's conntrack: `orig`, the first
//! packet as it arrived, and `reply`, what an answer looks like as it
//! arrives. A packet that matches one is rewritten to the inverse of the
//! other, so one rule covers source NAT, destination NAT and both at once.
//!
//! Mapping is endpoint-independent (RFC 4787 REQ-1): an inside address and
//! port keep one outside address and port for every destination; the inside
//! port is kept when it is free (REQ-3), and an inside host always gets the
//! same outside address of a pool ("paired", REQ-2). Filtering is
//! address-and-port-dependent: only answers to what went out come in, and
//! published ports.

mod expiry;
mod fragments;
mod plan;
mod ports;
pub mod translate;

pub use plan::{MapPlan, NatPlan, NewSession};

use crate::l2::BridgeId;
use crate::random::Random;
use crate::wire::ipv4::IpProtocol;
use crate::wire::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::Ipv4Addr;
pub use translate::{
    has_ports, parse_icmp_error, parse_tuple, rewrite, rewrite_addrs, rewrite_icmp_error, Tuple,
};

/// Timeouts in seconds (RFC 5382 REQ-5: established TCP at least 2 h 4 min,
/// transitory 4 min; RFC 4787 REQ-5: UDP at least 2 min, 5 min recommended).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timeouts {
    pub tcp_established: u32,
    pub tcp_transitory: u32,
    pub udp: u32,
    pub icmp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_established: 7440,
            tcp_transitory: 240,
            udp: 300,
            icmp: 60,
        }
    }
}

impl Timeouts {
    /// The timeouts shorter than the RFCs ask, in words (a lab may want
    /// them short; the log says so).
    pub fn below_rfc(&self) -> Vec<String> {
        [
            (
                "TCP established",
                self.tcp_established,
                7440,
                "RFC 5382 REQ-5",
            ),
            ("TCP transitory", self.tcp_transitory, 240, "RFC 5382 REQ-5"),
            ("UDP", self.udp, 120, "RFC 4787 REQ-5"),
        ]
        .into_iter()
        .filter(|&(_, v, min, _)| v < min)
        .map(|(what, v, min, rfc)| format!("NAT {what} timeout {v}s is under the {min}s of {rfc}"))
        .collect()
    }
}

impl std::fmt::Display for Timeouts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "tcp established {}s, tcp transitory {}s, udp {}s, icmp {}s",
            self.tcp_established, self.tcp_transitory, self.udp, self.icmp
        )
    }
}

/// What a rule does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum NatAction {
    /// Source NAT to the address of the egress bridge's router interface.
    Masquerade,
    /// Source NAT to an address of `first..=last` (paired per inside host).
    Snat { first: Ipv4Addr, last: Ipv4Addr },
    /// Destination NAT of `proto` to `dport` (of any router address) to
    /// `to_addr:to_port`.
    Dnat {
        proto: IpProtocol,
        dport: u16,
        to_addr: Ipv4Addr,
        to_port: u16,
    },
}

/// The outside ports of a source NAT rule: not empty, never 0. Checked
/// here, for the switch and the config checker alike.
pub struct PortRange;

impl PortRange {
    /// Every port but the well-known ones, as Linux's MASQUERADE picks.
    pub const DEFAULT: (u16, u16) = (1024, 65535);

    /// `(first, last)` if it is a range NAT can use, else why not.
    pub fn check((first, last): (u16, u16)) -> Result<(u16, u16), String> {
        if first == 0 || first > last {
            return Err(format!("port range {first}-{last} is empty or starts at 0"));
        }
        Ok((first, last))
    }
}

/// The kind of a rule, as `nat add` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NatKind {
    Masquerade,
    Snat,
    Dnat,
}

impl NatKind {
    pub fn name(self) -> &'static str {
        match self {
            NatKind::Masquerade => "masquerade",
            NatKind::Snat => "snat",
            NatKind::Dnat => "dnat",
        }
    }
}

impl std::fmt::Display for NatKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl NatAction {
    pub fn kind(&self) -> NatKind {
        match self {
            NatAction::Masquerade => NatKind::Masquerade,
            NatAction::Snat { .. } => NatKind::Snat,
            NatAction::Dnat { .. } => NatKind::Dnat,
        }
    }
}

/// One NAT rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NatRule {
    pub id: u32,
    pub action: NatAction,
    /// Source NAT: which inside sources it applies to.
    pub src: Option<Ipv4Net>,
    /// Source NAT: the egress bridge; destination NAT: the ingress bridge.
    pub bridge: BridgeId,
    /// Source NAT: the outside port range.
    pub ports: (u16, u16),
    /// Source NAT: what may come in unsolicited.
    pub filtering: Filtering,
    pub hits: u64,
}

/// TCP connection state, coarse enough for NAT timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnState {
    /// TCP before the handshake completes, or after FIN/RST.
    Transitory,
    Established,
    /// UDP and ICMP: no states.
    Open,
}

impl Session {
    /// (inside, outside, remote) endpoints, whichever side started it.
    pub fn endpoints(&self) -> ((Ipv4Addr, u16), (Ipv4Addr, u16), (Ipv4Addr, u16)) {
        let (o, r) = (&self.orig, &self.reply);
        if self.mapping.is_some() && !self.inbound {
            ((o.src, o.sport), (r.dst, r.dport), (o.dst, o.dport))
        } else {
            ((r.src, r.sport), (o.dst, o.dport), (o.src, o.sport))
        }
    }
}

/// One tracked connection.
#[derive(Debug, Clone)]
pub struct Session {
    pub orig: Tuple,
    pub reply: Tuple,
    pub rule: u32,
    pub state: ConnState,
    /// Milliseconds on the switch clock.
    pub last_seen: u64,
    pub created: u64,
    /// The endpoint-independent mapping this session uses, if source NAT.
    mapping: Option<MappingKey>,
    /// Started from outside on a mapping (filtering let it in).
    inbound: bool,
    /// Hairpinned from inside onto another host's mapping: the sender's
    /// own mapping, which the session holds too.
    sender_mapping: Option<MappingKey>,
    seen_reply: bool,
    closing: bool,
}

/// Why NAT refused a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatDrop {
    /// The session table is at its limit.
    TableFull,
    /// No free outside port in the rule's range.
    NoPorts,
    /// The translation would be another session's: for a protocol without
    /// ports, another inside host already talks to that remote by it.
    Conflict,
}

/// Counters of the NAT stage.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NatCounters {
    pub translated: u64,
    pub sessions_created: u64,
    pub sessions_expired: u64,
    pub table_full: u64,
    pub no_ports: u64,
    /// New flows whose translation clashed with another session's.
    #[serde(default)]
    pub conflicts: u64,
    /// Unanswered sessions ended to make room in a full table.
    #[serde(default)]
    pub early_drops: u64,
    /// Later fragments that came before their first one and were held.
    #[serde(default)]
    pub fragments_held: u64,
    /// Held fragments dropped: their first fragment never came (within
    /// FRAGMENT_MS), 64 newer ones were waiting, or the router dropped them
    /// when they went on.
    #[serde(default)]
    pub fragments_dropped: u64,
}

/// An endpoint: (protocol, address, port).
type Endpoint = (IpProtocol, Ipv4Addr, u16);

/// A datagram, as its fragments name it: (source, destination, protocol,
/// identification).
pub type FragmentKey = (Ipv4Addr, Ipv4Addr, IpProtocol, u16);

/// What a fragmented datagram's later fragments get, until when (ms), and
/// how much of the datagram has been seen.
#[derive(Debug, Clone, Copy)]
struct FragmentRewrite {
    /// The new (source, destination); `None`: they pass as they are.
    to: Option<(Ipv4Addr, Ipv4Addr)>,
    until: u64,
    /// Payload bytes seen so far.
    seen: u32,
    /// The datagram's payload length, once its last fragment came (0 before).
    total: u32,
}

/// What NAT does to a later fragment (one without ports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragmentFate {
    /// Its datagram was translated: these addresses.
    Rewrite(Ipv4Addr, Ipv4Addr),
    /// Its datagram passed untranslated.
    Pass,
    /// Its first fragment has not come yet (RFC 4787 REQ-14: hold it).
    Unknown,
}

/// Fragmented datagrams in flight NAT remembers at most.
pub const MAX_FRAGMENTED: usize = 4096;
/// How long the fragments of a datagram may take (RFC 4787 REQ-14 asks for
/// fragments to be translated in and out of order; they come within
/// milliseconds).
pub const FRAGMENT_MS: u64 = 5_000;

/// A mapping's inside endpoint and the rule it is under: (protocol, address,
/// port, rule id). Endpoint-independent per rule: a host whose flows leave
/// by two uplinks (two rules) has a mapping on each, with each uplink's
/// address.
type MappingKey = (IpProtocol, Ipv4Addr, u16, u32);

#[derive(Debug, Clone, Copy)]
struct Mapping {
    addr: Ipv4Addr,
    port: u16,
    refs: u32,
    /// The source NAT rule that made it (its filtering applies).
    rule: u32,
}

/// Which unsolicited inbound packets reach a mapping (RFC 4787 REQ-8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Filtering {
    /// Anyone may send to the mapping.
    EndpointIndependent,
    /// Only addresses the inside endpoint has sent to.
    AddressDependent,
    /// Only address and port pairs it has sent to (the default).
    #[default]
    AddressAndPortDependent,
}

impl Filtering {
    pub fn name(self) -> &'static str {
        match self {
            Filtering::EndpointIndependent => "endpoint-independent",
            Filtering::AddressDependent => "address-dependent",
            Filtering::AddressAndPortDependent => "address-and-port-dependent",
        }
    }
}

/// Rules, sessions and mappings.
pub struct Nat {
    rules: Vec<NatRule>,
    next_rule: u32,
    sessions: Vec<Option<Session>>,
    free: Vec<u32>,
    /// Both tuples of every session -> (session, is the reply direction).
    tuples: HashMap<Tuple, (u32, bool), ahash::RandomState>,
    mappings: HashMap<MappingKey, Mapping, ahash::RandomState>,
    /// How many ports of each outside address are taken, per protocol, so a
    /// full address is known without searching it.
    used_per_addr: HashMap<(IpProtocol, Ipv4Addr), u32, ahash::RandomState>,
    /// Outside (proto, address, port) -> the mapping that owns it: the
    /// outside endpoints taken.
    by_outside: HashMap<Endpoint, MappingKey, ahash::RandomState>,
    /// (mapping, remote address) -> sessions, for address-dependent filtering.
    remotes: HashMap<(MappingKey, Ipv4Addr), u32, ahash::RandomState>,
    /// Datagrams whose first fragment was translated: how to rewrite the
    /// addresses of the fragments that follow (they carry no ports).
    fragments: HashMap<FragmentKey, FragmentRewrite, ahash::RandomState>,
    max: usize,
    live: usize,
    pub timeouts: Timeouts,
    pub counters: NatCounters,
    /// The generator of outside ports: RFC 6056 asks that they not be
    /// guessable.
    rng: Random,
    /// Where the expiry sweep goes on.
    sweep: usize,
}

/// The TCP SYN flag.
const TCP_SYN: u8 = 0x02;

/// Session slots the expiry sweep visits per call of [`Nat::expire`] (once
/// a second): a table of up to this many is swept whole every second, and
/// a bigger one in a few seconds, well under a millisecond each time.
const SWEEP_SLICE: usize = 1 << 16;
/// Slots swept per new session, so that the sweep keeps pace with any rate
/// of new flows, whatever the table's size: a session outlives its timeout
/// by at most a quarter of a table's worth of new flows, so a table of 4/3
/// of (new flows a second x timeout) never fills with the dead.
const SWEEP_PER_NEW: usize = 4;
/// Slots swept for a new session when the table is full, before it is
/// refused: a full table of expired sessions still takes new flows.
const SWEEP_WHEN_FULL: usize = 256;

/// The result of the NAT stage for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatVerdict {
    /// Rewritten to this tuple.
    Translate(Tuple),
    /// Not NAT's business.
    Pass,
    Drop(NatDrop),
}

impl Nat {
    pub fn new(max: usize) -> Nat {
        let hasher = ahash::RandomState::new;
        Nat {
            rules: Vec::new(),
            next_rule: 1,
            sessions: Vec::new(),
            free: Vec::new(),
            tuples: HashMap::with_capacity_and_hasher(0, hasher()),
            mappings: HashMap::with_capacity_and_hasher(0, hasher()),
            used_per_addr: HashMap::with_capacity_and_hasher(0, hasher()),
            fragments: HashMap::with_capacity_and_hasher(0, hasher()),
            by_outside: HashMap::with_capacity_and_hasher(0, hasher()),
            remotes: HashMap::with_capacity_and_hasher(0, hasher()),
            max,
            live: 0,
            timeouts: Timeouts::default(),
            counters: NatCounters::default(),
            rng: Random::seeded(),
            sweep: 0,
        }
    }

    /// Fixes the random outside ports (see [`crate::pipeline::Switch::seed`]).
    #[cfg(feature = "fuzzing")]
    pub fn seed(&mut self, seed: u64) {
        self.rng = Random::from_seed(seed);
    }

    pub fn is_active(&self) -> bool {
        !self.rules.is_empty() || self.live > 0
    }

    pub fn max(&self) -> usize {
        self.max
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    pub fn rules(&self) -> &[NatRule] {
        &self.rules
    }

    /// Numbers the next rule added `id`, or more if that was given: a
    /// model of a running switch gives its rules their ids.
    pub(crate) fn number_next_rule(&mut self, id: u32) {
        self.next_rule = self.next_rule.max(id);
    }

    /// Adds a rule at the end; returns its id.
    pub fn add_rule_filtered(
        &mut self,
        action: NatAction,
        src: Option<Ipv4Net>,
        bridge: BridgeId,
        ports: (u16, u16),
        filtering: Filtering,
    ) -> u32 {
        let id = self.add_rule(action, src, bridge, ports);
        if let Some(r) = self.rules.last_mut() {
            r.filtering = filtering;
        }
        id
    }

    pub fn add_rule(
        &mut self,
        action: NatAction,
        src: Option<Ipv4Net>,
        bridge: BridgeId,
        ports: (u16, u16),
    ) -> u32 {
        let id = self.next_rule;
        self.next_rule += 1;
        self.rules.push(NatRule {
            id,
            action,
            src,
            bridge,
            ports,
            filtering: Filtering::default(),
            hits: 0,
        });
        id
    }

    /// Deletes a rule; its sessions go with it.
    pub fn del_rule(&mut self, id: u32) -> bool {
        let before = self.rules.len();
        self.rules.retain(|r| r.id != id);
        if self.rules.len() == before {
            return false;
        }
        self.flush(|s| s.rule == id);
        true
    }

    /// Removes the rules (and their sessions) of a bridge that is deleted;
    /// returns how many.
    pub fn forget_bridge(&mut self, bridge: BridgeId) -> usize {
        let ids = self.rule_ids_of(bridge);
        for &id in &ids {
            self.del_rule(id);
        }
        ids.len()
    }

    fn rule_ids_of(&self, bridge: BridgeId) -> Vec<u32> {
        self.rules
            .iter()
            .filter(|r| r.bridge == bridge)
            .map(|r| r.id)
            .collect()
    }

    /// Ends the sessions whose outside address is `addr` (an address of the
    /// router that went, as Linux's MASQUERADE forgets its conntracks);
    /// returns how many.
    pub fn flush_outside_addr(&mut self, addr: Ipv4Addr) -> usize {
        self.flush(|s| s.endpoints().1 .0 == addr)
    }

    /// Ends the sessions of a bridge's rules (its router address went);
    /// returns how many.
    pub fn flush_bridge_sessions(&mut self, bridge: BridgeId) -> usize {
        let rules = self.rule_ids_of(bridge);
        if rules.is_empty() {
            return 0;
        }
        self.flush(|s| rules.contains(&s.rule))
    }

    /// Every live session.
    pub fn sessions(&self) -> impl Iterator<Item = &Session> {
        self.sessions.iter().flatten()
    }

    /// Removes the sessions `drop` says yes to; returns how many.
    pub fn flush(&mut self, mut drop: impl FnMut(&Session) -> bool) -> usize {
        let mut n = 0;
        for i in 0..self.sessions.len() {
            if self.sessions[i].as_ref().is_some_and(&mut drop) {
                self.remove(i as u32);
                n += 1;
            }
        }
        n
    }

    fn remove(&mut self, id: u32) {
        let Some(s) = self.sessions[id as usize].take() else {
            return;
        };
        self.tuples.remove(&s.orig);
        self.tuples.remove(&s.reply);
        let held = s
            .mapping
            .map(|key| (key, if s.inbound { s.orig.src } else { s.orig.dst }))
            .into_iter()
            .chain(s.sender_mapping.map(|key| (key, s.orig.dst)));
        for (key, remote) in held {
            if let Some(n) = self.remotes.get_mut(&(key, remote)) {
                *n -= 1;
                if *n == 0 {
                    self.remotes.remove(&(key, remote));
                }
            }
            self.release_mapping(key);
        }
        self.free.push(id);
        self.live -= 1;
    }

    /// RFC 5508: for an ICMP error quoting `inner` (a packet of a session,
    /// as translated), the packet it should quote instead, or `None`.
    pub fn error_translation(&mut self, inner: &Tuple) -> Option<Tuple> {
        let to = self.error_lookup(inner)?;
        self.counters.translated += 1;
        Some(to)
    }

    /// What [`Nat::error_translation`] would give, counting nothing (for
    /// dry runs).
    pub fn error_lookup(&self, inner: &Tuple) -> Option<Tuple> {
        let &(id, is_reply) = self.tuples.get(&inner.inverse())?;
        let s = self.sessions[id as usize].as_ref()?;
        let to = if is_reply {
            s.orig.inverse()
        } else {
            s.reply.inverse()
        };
        Some(to.inverse())
    }

    /// Whether `bridge` is an inside bridge: the egress of no source NAT
    /// rule (so what comes in on it from a mapped address is hairpinned).
    fn is_inside(&self, bridge: BridgeId) -> bool {
        !self
            .rules
            .iter()
            .any(|r| r.bridge == bridge && !matches!(r.action, NatAction::Dnat { .. }))
    }

    /// The destination NAT rule that publishes `t`'s destination port, on
    /// the bridge it came in on, else on the address it is sent to
    /// (hairpin). A bridge publishes a port once, so the answer does not
    /// depend on the rules' order.
    fn dnat_rule_for(
        &self,
        t: &Tuple,
        in_bridge: BridgeId,
        addr_of: &dyn Fn(BridgeId) -> Option<Ipv4Addr>,
    ) -> Option<usize> {
        let publishes = |r: &NatRule| matches!(r.action, NatAction::Dnat { proto, dport, .. } if proto == t.proto && dport == t.dport);
        self.rules
            .iter()
            .position(|r| publishes(r) && r.bridge == in_bridge)
            .or_else(|| {
                self.rules
                    .iter()
                    .position(|r| publishes(r) && addr_of(r.bridge) == Some(t.dst))
            })
    }

    /// The first source NAT rule that covers `src` (leaving through
    /// `out_bridge`, if given).
    fn snat_rule_for(&self, src: Ipv4Addr, out_bridge: Option<BridgeId>) -> Option<usize> {
        self.rules.iter().position(|r| {
            !matches!(r.action, NatAction::Dnat { .. })
                && out_bridge.is_none_or(|b| r.bridge == b)
                && r.src.is_none_or(|n| n.contains(src))
        })
    }

    /// Whether a source NAT rule of `out_bridge` covers `src`: a packet from
    /// it that leaves by that bridge must be translated, or dropped.
    pub fn must_translate(&self, src: Ipv4Addr, out_bridge: BridgeId) -> bool {
        self.snat_rule_for(src, Some(out_bridge)).is_some()
    }

    /// Makes a session of `orig` and `reply`, holding `mapping` (and, came
    /// it in on it from outside, so marked) and, for a hairpin, the
    /// sender's own mapping too; on failure both are released.
    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        orig: Tuple,
        reply: Tuple,
        rule: u32,
        mapping: Option<(MappingKey, bool)>,
        sender_mapping: Option<MappingKey>,
        tcp_flags: u8,
        now: u64,
    ) -> NatVerdict {
        // The mapping it uses, and whether it came in on it from outside.
        let (mapping, inbound) = match mapping {
            Some((key, inbound)) => (Some(key), inbound),
            None => (None, false),
        };
        // The sweep moves on with every new session, so expiry keeps pace
        // with new flows however fast they come.
        self.sweep_some(now, SWEEP_PER_NEW);
        let refused = if !self.room(now) {
            self.counters.table_full += 1;
            Some(NatDrop::TableFull)
        } else if self.tuples.contains_key(&reply) || self.tuples.contains_key(&orig) {
            self.counters.conflicts += 1;
            Some(NatDrop::Conflict)
        } else {
            None
        };
        if let Some(why) = refused {
            for key in mapping.into_iter().chain(sender_mapping) {
                self.release_mapping(key);
            }
            return NatVerdict::Drop(why);
        }
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.sessions.push(None);
                (self.sessions.len() - 1) as u32
            }
        };
        let state = if orig.proto == IpProtocol::Tcp {
            ConnState::Transitory
        } else {
            ConnState::Open
        };
        self.sessions[id as usize] = Some(Session {
            orig,
            reply,
            rule,
            state,
            last_seen: now,
            created: now,
            mapping,
            inbound,
            sender_mapping,
            seen_reply: false,
            closing: false,
        });
        // Remotes are counted for address-dependent filtering only: the
        // other kinds never ask, and the table would cost every session.
        if let Some(key) = mapping.filter(|k| self.address_dependent(k)) {
            let remote = if inbound { orig.src } else { orig.dst };
            *self.remotes.entry((key, remote)).or_insert(0) += 1;
        }
        if let Some(key) = sender_mapping.filter(|k| self.address_dependent(k)) {
            *self.remotes.entry((key, orig.dst)).or_insert(0) += 1;
        }
        self.tuples.insert(orig, (id, false));
        self.tuples.insert(reply, (id, true));
        self.live += 1;
        self.counters.sessions_created += 1;
        self.hit(id, false, tcp_flags, now)
    }

    /// Whether the rule of mapping `key` filters by remote address.
    fn address_dependent(&self, key: &MappingKey) -> bool {
        self.rules
            .iter()
            .any(|r| r.id == key.3 && r.filtering == Filtering::AddressDependent)
    }

    /// A packet of session `id`: refresh it, follow TCP, and say what the
    /// packet becomes.
    fn hit(&mut self, id: u32, is_reply: bool, tcp_flags: u8, now: u64) -> NatVerdict {
        let Some(s) = self.sessions[id as usize].as_mut() else {
            return NatVerdict::Pass;
        };
        // RFC 4787 REQ-6: outbound traffic refreshes; so does inbound here,
        // as the kernel does (REQ-6 leaves it to the implementation).
        s.last_seen = now;
        if is_reply {
            s.seen_reply = true;
        }
        if s.orig.proto == IpProtocol::Tcp {
            const FIN: u8 = 0x01;
            const RST: u8 = 0x04;
            const ACK: u8 = 0x10;
            if tcp_flags & (FIN | RST) != 0 {
                // RFC 5382 REQ-5: after FIN or RST only the transitory timeout.
                s.state = ConnState::Transitory;
                s.closing = true;
            } else if !s.closing
                && s.seen_reply
                && tcp_flags & ACK != 0
                && s.state == ConnState::Transitory
                && !is_reply
            {
                s.state = ConnState::Established;
            }
        }
        let (own, to) = if is_reply {
            (s.reply, s.orig.inverse())
        } else {
            (s.orig, s.reply.inverse())
        };
        // A session tracked untranslated rewrites nothing.
        if to != own {
            self.counters.translated += 1;
        }
        NatVerdict::Translate(to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(proto: IpProtocol, src: &str, sport: u16, dst: &str, dport: u16) -> Tuple {
        Tuple {
            proto,
            src: src.parse().unwrap(),
            sport,
            dst: dst.parse().unwrap(),
            dport,
        }
    }

    fn masq() -> Nat {
        let mut nat = Nat::new(1000);
        nat.add_rule(
            NatAction::Masquerade,
            Some("192.168.15.0/24".parse().unwrap()),
            1,
            (1024, 65535),
        );
        nat
    }

    #[test]
    fn a_fragmented_datagram_is_remembered_until_all_its_bytes_came() {
        let mut nat = masq();
        let ip = |s: &str| -> Ipv4Addr { s.parse().unwrap() };
        let key = (ip("192.168.15.1"), ip("192.0.2.1"), IpProtocol::Udp, 7);
        let to = Some((ip("203.0.113.1"), ip("192.0.2.1")));
        assert_eq!(nat.fragment(key, 1480, None), FragmentFate::Unknown);
        assert!(nat.note_fragmented(key, to, 1480, 0));
        let rewrite = FragmentFate::Rewrite(ip("203.0.113.1"), ip("192.0.2.1"));
        // The last fragment before a middle one: both are translated.
        assert_eq!(nat.fragment(key, 48, Some(4488)), rewrite);
        assert_eq!(nat.fragment(key, 1480, None), rewrite);
        assert_eq!(nat.fragment(key, 1480, None), rewrite);
        // Whole: forgotten.
        assert_eq!(nat.fragment(key, 1480, None), FragmentFate::Unknown);
        // A datagram NAT left alone: its fragments pass.
        let other = (ip("192.168.15.1"), ip("192.168.16.1"), IpProtocol::Udp, 8);
        assert!(nat.note_fragmented(other, None, 1480, 0));
        assert_eq!(nat.fragment(other, 8, Some(1488)), FragmentFate::Pass);
    }

    #[test]
    fn the_dry_run_of_a_hairpin_picks_the_port_and_address_the_real_one_does() {
        // Masquerade: A's port 5000 is B's mapping already, so A's own
        // mapping gets another port.
        let (mut nat, out) = masq_with_b_mapped();
        let addr_of = |b: BridgeId| (b == 1).then_some(out);
        let a = t(IpProtocol::Udp, "192.168.15.1", 5000, "203.0.113.1", 5000);
        let (peeked, to) = dry_then_real(&mut nat, &a, 0, &addr_of);
        assert_ne!(to.sport, 5000);
        assert_eq!(peeked, to);
        // A pool: the sender's address comes from the pool, not the bridge.
        let mut nat = Nat::new(1000);
        nat.add_rule(
            NatAction::Snat {
                first: "198.51.100.10".parse().unwrap(),
                last: "198.51.100.20".parse().unwrap(),
            },
            Some("192.168.15.0/24".parse().unwrap()),
            1,
            (1024, 65535),
        );
        nat.add_rule(
            NatAction::Dnat {
                proto: IpProtocol::Tcp,
                dport: 8080,
                to_addr: "192.168.15.2".parse().unwrap(),
                to_port: 80,
            },
            None,
            1,
            (1, 65535),
        );
        let a = t(IpProtocol::Tcp, "192.168.15.1", 40000, "203.0.113.1", 8080);
        let (peeked, to) = dry_then_real(&mut nat, &a, 0x02, &addr_of);
        assert_eq!(peeked, to);
        assert_ne!(to.src, out, "from the pool");
    }

    #[test]
    fn each_uplink_maps_with_its_own_address() {
        let mut nat = Nat::new(1000);
        let inside = Some("192.168.15.0/24".parse().unwrap());
        nat.add_rule(NatAction::Masquerade, inside, 1, (1024, 65535));
        nat.add_rule(NatAction::Masquerade, inside, 2, (1024, 65535));
        let (a, b): (Ipv4Addr, Ipv4Addr) = (
            "203.0.113.1".parse().unwrap(),
            "198.51.100.1".parse().unwrap(),
        );
        let via_a = t(IpProtocol::Udp, "192.168.15.1", 5000, "192.0.2.1", 53);
        let via_b = t(IpProtocol::Udp, "192.168.15.1", 5000, "192.0.2.2", 53);
        let NatVerdict::Translate(x) = nat.post_routing(&via_a, 0, 1, Some(a), 0) else {
            panic!()
        };
        let NatVerdict::Translate(y) = nat.post_routing(&via_b, 0, 2, Some(b), 0) else {
            panic!()
        };
        assert_eq!(
            (x.src, y.src),
            (a, b),
            "the same inside endpoint, two uplinks"
        );
        assert_eq!((x.sport, y.sport), (5000, 5000));
        nat.flush(|_| true);
        assert!(nat.mappings.is_empty() && nat.by_outside.is_empty());
    }

    #[test]
    fn a_packet_from_another_uplink_is_not_a_hairpin() {
        let mut nat = Nat::new(1000);
        for b in [1, 2] {
            nat.add_rule_filtered(
                NatAction::Masquerade,
                None,
                b,
                (1024, 65535),
                Filtering::EndpointIndependent,
            );
        }
        let out1: Ipv4Addr = "203.0.113.1".parse().unwrap();
        let addr_of = |b: BridgeId| (b == 1).then_some(out1);
        let inside = t(IpProtocol::Udp, "192.168.15.2", 5000, "198.51.100.9", 53);
        assert!(matches!(
            nat.post_routing(&inside, 0, 1, Some(out1), 0),
            NatVerdict::Translate(_)
        ));
        // A host out on the second uplink sends to the mapping on the first.
        let stranger = t(IpProtocol::Udp, "192.0.2.7", 7000, "203.0.113.1", 5000);
        let NatVerdict::Translate(to) = nat.pre_routing(&stranger, 0, 2, true, &addr_of, 0) else {
            panic!("endpoint-independent filtering lets it in");
        };
        assert_eq!(
            (to.src, to.sport),
            (stranger.src, 7000),
            "its source is left alone"
        );
        assert_eq!(to.dst, "192.168.15.2".parse::<Ipv4Addr>().unwrap());
    }

    /// An endpoint-independent masquerade out of bridge 1 (returned: its
    /// address) where B, 192.168.15.2:5000, already has the mapping
    /// 203.0.113.1:5000.
    fn masq_with_b_mapped() -> (Nat, Ipv4Addr) {
        let mut nat = Nat::new(1000);
        nat.add_rule_filtered(
            NatAction::Masquerade,
            Some("192.168.15.0/24".parse().unwrap()),
            1,
            (1024, 65535),
            Filtering::EndpointIndependent,
        );
        let out: Ipv4Addr = "203.0.113.1".parse().unwrap();
        let b_out = t(IpProtocol::Udp, "192.168.15.2", 5000, "198.51.100.9", 53);
        assert!(matches!(
            nat.post_routing(&b_out, 0, 1, Some(out), 0),
            NatVerdict::Translate(_)
        ));
        (nat, out)
    }

    /// What the dry run (trace packet) says NAT does to `a`, a new flow
    /// from inside (bridge 0) to a router address, then what it does.
    fn dry_then_real(
        nat: &mut Nat,
        a: &Tuple,
        tcp_flags: u8,
        addr_of: &dyn Fn(BridgeId) -> Option<Ipv4Addr>,
    ) -> (Tuple, Tuple) {
        let plan = nat.plan_pre(a, tcp_flags, 0, true, addr_of);
        let Some((_, peeked, true)) = plan.translation(nat) else {
            panic!("the dry run makes no session of {a:?}");
        };
        let NatVerdict::Translate(to) = nat.pre_routing(a, tcp_flags, 0, true, addr_of, 0) else {
            panic!("{a:?} refused");
        };
        (peeked, to)
    }

    #[test]
    fn hairpin_onto_another_inside_hosts_mapping() {
        let (mut nat, out) = masq_with_b_mapped();
        let addr_of = |b: BridgeId| (b == 1).then_some(out);
        // A, on the inside bridge, sends to B's outside endpoint; a dry run
        // (trace packet) says what will happen.
        let a = t(IpProtocol::Udp, "192.168.15.1", 6000, "203.0.113.1", 5000);
        let (peeked, to) = dry_then_real(&mut nat, &a, 0, &addr_of);
        assert_eq!((to.dst, to.dport), ("192.168.15.2".parse().unwrap(), 5000));
        assert_eq!(
            (to.src, to.sport),
            (out, 6000),
            "B sees A's outside endpoint"
        );
        assert_eq!(peeked, to, "the dry run agrees");
        // B's answer goes back to A, from B's outside endpoint.
        let back = t(IpProtocol::Udp, "192.168.15.2", 5000, "203.0.113.1", 6000);
        let NatVerdict::Translate(r) = nat.pre_routing(&back, 0, 0, true, &addr_of, 0) else {
            panic!("the answer was not translated");
        };
        assert_eq!(
            r,
            t(IpProtocol::Udp, "203.0.113.1", 5000, "192.168.15.1", 6000)
        );
        // Both mappings go with the sessions.
        nat.flush(|_| true);
        assert!(nat.mappings.is_empty() && nat.by_outside.is_empty() && nat.remotes.is_empty());
    }

    #[test]
    fn masquerade_keeps_one_mapping_for_every_destination() {
        let mut nat = masq();
        let out = Some("203.0.113.1".parse().unwrap());
        let a = t(IpProtocol::Udp, "192.168.15.1", 40000, "198.51.100.53", 53);
        let b = t(IpProtocol::Udp, "192.168.15.1", 40000, "198.51.100.99", 53);
        assert_eq!(
            nat.post_routing(&a, 0, 1, out, 0),
            NatVerdict::Translate(t(
                IpProtocol::Udp,
                "203.0.113.1",
                40000,
                "198.51.100.53",
                53
            )),
            "port preserved"
        );
        assert_eq!(
            nat.post_routing(&b, 0, 1, out, 0),
            NatVerdict::Translate(t(
                IpProtocol::Udp,
                "203.0.113.1",
                40000,
                "198.51.100.99",
                53
            )),
            "same mapping to another destination"
        );
        // The answer comes back translated to the inside host.
        let answer = t(IpProtocol::Udp, "198.51.100.53", 53, "203.0.113.1", 40000);
        assert_eq!(
            nat.pre_routing(&answer, 0, 1, true, &|_| None, 1),
            NatVerdict::Translate(a.inverse())
        );
        // Another inside host with the same port gets another outside port.
        let c = t(IpProtocol::Udp, "192.168.15.2", 40000, "198.51.100.53", 53);
        match nat.post_routing(&c, 0, 1, out, 0) {
            NatVerdict::Translate(x) => assert_ne!(x.sport, 40000),
            v => panic!("{v:?}"),
        }
        // Unsolicited: from a remote that was never contacted.
        let stranger = t(IpProtocol::Udp, "198.51.100.7", 53, "203.0.113.1", 40000);
        assert_eq!(
            nat.pre_routing(&stranger, 0, 1, true, &|_| None, 1),
            NatVerdict::Pass
        );
        assert_eq!(nat.len(), 3);
    }

    #[test]
    fn address_dependent_filtering_lets_in_any_port_of_a_contacted_address() {
        let out = Some("203.0.113.1".parse().unwrap());
        let mut nat = Nat::new(1000);
        nat.add_rule_filtered(
            NatAction::Masquerade,
            None,
            1,
            (1024, 65535),
            Filtering::AddressDependent,
        );
        let a = t(IpProtocol::Udp, "192.168.15.1", 40000, "198.51.100.53", 53);
        assert!(matches!(
            nat.post_routing(&a, 0, 1, out, 0),
            NatVerdict::Translate(_)
        ));
        let other_port = t(IpProtocol::Udp, "198.51.100.53", 9999, "203.0.113.1", 40000);
        assert!(matches!(
            nat.pre_routing(&other_port, 0, 1, true, &|_| None, 1),
            NatVerdict::Translate(_)
        ));
        let other_addr = t(IpProtocol::Udp, "198.51.100.54", 53, "203.0.113.1", 40000);
        assert_eq!(
            nat.pre_routing(&other_addr, 0, 1, true, &|_| None, 1),
            NatVerdict::Pass
        );
        // The remotes go with the sessions.
        nat.flush(|_| true);
        assert!(nat.remotes.is_empty() && nat.mappings.is_empty() && nat.by_outside.is_empty());
        // Other filterings keep no remotes at all.
        let mut nat = masq();
        nat.post_routing(&a, 0, 1, out, 0);
        assert!(nat.remotes.is_empty());
    }

    #[test]
    fn echo_identifiers_are_mapped_like_ports() {
        let mut nat = masq();
        let out = Some("203.0.113.1".parse().unwrap());
        // Two inside hosts ping with the same identifier.
        let a = t(IpProtocol::Icmp, "192.168.15.1", 77, "198.51.100.9", 77);
        let b = t(IpProtocol::Icmp, "192.168.15.2", 77, "198.51.100.9", 77);
        let NatVerdict::Translate(ta) = nat.post_routing(&a, 0, 1, out, 0) else {
            panic!()
        };
        let NatVerdict::Translate(tb) = nat.post_routing(&b, 0, 1, out, 0) else {
            panic!()
        };
        assert_ne!(ta.sport, tb.sport);
        assert_eq!(tb.sport, tb.dport, "the echo id is both ports");
        // The echo replies (identifier as mapped) find their way back.
        let reply_b = t(
            IpProtocol::Icmp,
            "198.51.100.9",
            tb.sport,
            "203.0.113.1",
            tb.sport,
        );
        assert_eq!(
            nat.pre_routing(&reply_b, 0, 1, true, &|_| None, 1),
            NatVerdict::Translate(b.inverse())
        );
        let reply_a = t(
            IpProtocol::Icmp,
            "198.51.100.9",
            ta.sport,
            "203.0.113.1",
            ta.sport,
        );
        assert_eq!(
            nat.pre_routing(&reply_a, 0, 1, true, &|_| None, 1),
            NatVerdict::Translate(a.inverse())
        );
    }

    #[test]
    fn dnat_publishes_a_port_and_sessions_expire() {
        let mut nat = Nat::new(10);
        nat.add_rule(
            NatAction::Dnat {
                proto: IpProtocol::Tcp,
                dport: 8080,
                to_addr: "192.168.15.1".parse().unwrap(),
                to_port: 80,
            },
            None,
            1,
            (0, 0),
        );
        let syn = t(IpProtocol::Tcp, "198.51.100.7", 5555, "203.0.113.1", 8080);
        assert_eq!(
            nat.pre_routing(&syn, 0x02, 1, true, &|_| None, 0),
            NatVerdict::Translate(t(IpProtocol::Tcp, "198.51.100.7", 5555, "192.168.15.1", 80))
        );
        let synack = t(IpProtocol::Tcp, "192.168.15.1", 80, "198.51.100.7", 5555);
        assert_eq!(
            nat.pre_routing(&synack, 0x12, 0, false, &|_| None, 1),
            NatVerdict::Translate(syn.inverse())
        );
        nat.expire(1 + 239_000);
        assert_eq!(nat.len(), 1, "transitory TCP lives 240 s");
        nat.expire(1 + 240_000);
        assert_eq!(nat.len(), 0);
        assert_eq!(nat.counters.sessions_expired, 1);
    }

    #[test]
    fn the_rule_of_the_ingress_bridge_wins_whatever_the_order() {
        let dnat = |to: &str| NatAction::Dnat {
            proto: IpProtocol::Tcp,
            dport: 8080,
            to_addr: to.parse().unwrap(),
            to_port: 80,
        };
        let wan1: Ipv4Addr = "203.0.113.1".parse().unwrap();
        let addr_of = |b: BridgeId| (b == 1).then_some(wan1);
        for order in [[1, 2], [2, 1]] {
            let mut nat = Nat::new(10);
            for b in order {
                let to = if b == 1 {
                    "192.168.15.1"
                } else {
                    "192.168.15.2"
                };
                nat.add_rule(dnat(to), None, b, (0, 0));
            }
            // In on bridge 2, to bridge 1's address: bridge 2's rule.
            let syn = t(IpProtocol::Tcp, "198.51.100.7", 5555, "203.0.113.1", 8080);
            assert_eq!(
                nat.pre_routing(&syn, 0x02, 2, true, &addr_of, 0),
                NatVerdict::Translate(t(IpProtocol::Tcp, "198.51.100.7", 5555, "192.168.15.2", 80)),
                "rules on bridges {order:?}"
            );
        }
    }

    #[test]
    fn bounded_table_and_port_range() {
        let mut nat = Nat::new(2);
        nat.add_rule(NatAction::Masquerade, None, 1, (2000, 2000));
        let out = Some("203.0.113.1".parse().unwrap());
        let a = t(IpProtocol::Udp, "10.0.0.1", 1, "198.51.100.1", 9);
        let b = t(IpProtocol::Udp, "10.0.0.2", 1, "198.51.100.1", 9);
        assert!(matches!(
            nat.post_routing(&a, 0, 1, out, 0),
            NatVerdict::Translate(_)
        ));
        assert_eq!(
            nat.post_routing(&b, 0, 1, out, 0),
            NatVerdict::Drop(NatDrop::NoPorts)
        );
        let a2 = t(IpProtocol::Udp, "10.0.0.1", 1, "198.51.100.2", 9);
        assert!(matches!(
            nat.post_routing(&a2, 0, 1, out, 0),
            NatVerdict::Translate(_)
        ));
        // Full of answered sessions: a new flow is refused.
        for s in [&a, &a2] {
            let back = t(IpProtocol::Udp, &s.dst.to_string(), 9, "203.0.113.1", 2000);
            let v = nat.pre_routing(&back, 0, 1, true, &|_| out, 0);
            assert!(matches!(v, NatVerdict::Translate(_)), "{v:?}");
        }
        let a3 = t(IpProtocol::Udp, "10.0.0.1", 1, "198.51.100.3", 9);
        assert_eq!(
            nat.post_routing(&a3, 0, 1, out, 0),
            NatVerdict::Drop(NatDrop::TableFull)
        );
        // Full of unanswered ones: the new flow takes one's place.
        let mut nat = Nat::new(2);
        nat.add_rule(NatAction::Masquerade, None, 1, (2000, 2100));
        for s in [&a, &a2, &a3] {
            let v = nat.post_routing(s, 0, 1, out, 0);
            assert!(matches!(v, NatVerdict::Translate(_)), "{v:?}");
        }
        assert_eq!(nat.counters.early_drops, 1);
    }

    /// Runs `secs` seconds of `rate` new UDP flows a second through `nat`
    /// (expiry once a second, as the switch calls it); returns the most
    /// sessions alive at once.
    fn new_flows(nat: &mut Nat, rate: u64, secs: u64) -> usize {
        let out = Some("203.0.113.1".parse().unwrap());
        let mut peak = 0;
        for i in 0..rate * secs {
            let now = i * 1000 / rate;
            if i % rate == 0 {
                nat.expire(now);
            }
            let port = 1024 + (i % 60_000) as u16;
            let dst = Ipv4Addr::from(0xc633_6400 + (i / 60_000) as u32);
            let f = Tuple {
                proto: IpProtocol::Udp,
                src: "192.168.15.1".parse().unwrap(),
                sport: 40000,
                dst,
                dport: port,
            };
            let v = nat.post_routing(&f, 0, 1, out, now);
            assert!(matches!(v, NatVerdict::Translate(_)), "flow {i}: {v:?}");
            peak = peak.max(nat.len());
        }
        peak
    }

    #[test]
    fn expiry_keeps_pace_with_new_flows() {
        // The soak that found sessions never expiring while new flows came:
        // a 5 s timeout and 200 new flows a second, for 10 minutes.
        let mut nat = masq();
        nat.max = 262_144;
        nat.timeouts.udp = 5;
        let peak = new_flows(&mut nat, 200, 600);
        assert!(peak <= 200 * 7, "{peak} sessions alive at once");
        assert!(nat.counters.sessions_expired >= 200 * 590);
        // A table of 2,000 with about 1,000 flows alive takes every flow.
        let mut nat = masq();
        nat.max = 2000;
        nat.timeouts.udp = 5;
        new_flows(&mut nat, 200, 120);
        assert_eq!(nat.counters.table_full, 0);
    }

    #[test]
    fn a_full_table_of_expired_sessions_takes_new_flows_at_once() {
        // 50,000 new flows a second with a 1 s timeout and a table of
        // 70,000: each new flow sweeps SWEEP_PER_NEW slots, so the dead
        // linger for at most a quarter of a table's worth of new flows, and
        // the table never fills with them, even between the once-a-second
        // sweeps.
        let mut nat = masq();
        nat.max = 70_000;
        nat.timeouts.udp = 1;
        new_flows(&mut nat, 50_000, 5);
        assert_eq!(nat.counters.table_full, 0);
    }

    #[test]
    fn protocols_without_ports_map_the_address_alone() {
        let mut nat = masq();
        let out = Some("203.0.113.1".parse().unwrap());
        let gre = |src: &str, dst: &str| t(IpProtocol::from(47), src, 0, dst, 0);
        let a = gre("192.168.15.1", "198.51.100.1");
        let NatVerdict::Translate(to) = nat.post_routing(&a, 0, 1, out, 0) else {
            panic!("GRE is translated")
        };
        assert_eq!(to, gre("203.0.113.1", "198.51.100.1"));
        // The answer comes back to the inside host.
        let back = gre("198.51.100.1", "203.0.113.1");
        let v = nat.pre_routing(&back, 0, 1, true, &|_| out, 1);
        assert_eq!(v, NatVerdict::Translate(a.inverse()));
        // Another inside host to another remote shares the address...
        let b = gre("192.168.15.2", "198.51.100.2");
        assert!(matches!(
            nat.post_routing(&b, 0, 1, out, 2),
            NatVerdict::Translate(_)
        ));
        // ...but not a remote the first one talks to: its answers could not
        // be told apart.
        let c = gre("192.168.15.2", "198.51.100.1");
        assert_eq!(
            nat.post_routing(&c, 0, 1, out, 3),
            NatVerdict::Drop(NatDrop::Conflict)
        );
    }

    #[test]
    fn outside_ports_that_must_change_are_not_sequential() {
        let mut nat = masq();
        let out = Some("203.0.113.1".parse().unwrap());
        let ports: Vec<u16> = (600..616)
            .map(|p| {
                let f = t(IpProtocol::Udp, "192.168.15.1", p, "198.51.100.1", 53);
                match nat.post_routing(&f, 0, 1, out, 0) {
                    NatVerdict::Translate(to) => to.sport,
                    v => panic!("{v:?}"),
                }
            })
            .collect();
        let close = ports.windows(2).filter(|w| w[0].abs_diff(w[1]) <= 16);
        assert!(close.count() <= 2, "{ports:?}");
    }

    #[test]
    fn a_flow_opened_from_outside_to_a_routed_inside_host_is_tracked_untranslated() {
        let mut nat = masq();
        let out = Some("203.0.113.1".parse().unwrap());
        // The SYN comes in by the outside bridge (1) and leaves by the
        // inside one (0) to an inside host: no rule translates it.
        let syn = t(IpProtocol::Tcp, "198.51.100.7", 5555, "192.168.15.3", 80);
        assert_eq!(nat.post_routing(&syn, 0x02, 0, out, 0), NatVerdict::Pass);
        assert_eq!(
            nat.track_untranslated(&syn, 0x02, 1, 0, 0),
            NatVerdict::Translate(syn)
        );
        // The SYN-ACK belongs to that session: left alone, not masqueraded.
        let syn_ack = syn.inverse();
        assert_eq!(
            nat.pre_routing(&syn_ack, 0x12, 0, false, &|_| out, 1),
            NatVerdict::Translate(syn_ack)
        );
        assert_eq!(nat.counters.translated, 0);
        // A segment that opens nothing starts no session.
        let ack = t(IpProtocol::Tcp, "198.51.100.7", 5556, "192.168.15.3", 80);
        assert_eq!(
            nat.track_untranslated(&ack, 0x10, 1, 0, 2),
            NatVerdict::Pass
        );
        // An outside host cannot plant a session for an inside host's own
        // connection: a bare SYN from inside that matches one is NATed.
        let planted = t(IpProtocol::Tcp, "8.8.8.8", 53, "192.168.15.4", 40000);
        nat.track_untranslated(&planted, 0x02, 1, 0, 3);
        let own = planted.inverse();
        assert_eq!(
            nat.pre_routing(&own, 0x02, 0, false, &|_| out, 4),
            NatVerdict::Pass
        );
        let NatVerdict::Translate(to) = nat.post_routing(&own, 0x02, 1, out, 4) else {
            panic!("source NAT")
        };
        assert_eq!(to.src, "203.0.113.1".parse::<Ipv4Addr>().unwrap());
    }
}
