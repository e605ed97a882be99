//! The path of one frame in on a bridge port: the bridge's decision, then
//! the router's for what is addressed to a router MAC. Real frames and
//! made-up ones (`patchbay trace packet`) take this same code: only where
//! the frame goes at the end ([`Egress`]) and whether the bridge learns
//! differ.

use super::*;
use crate::emit::Emitter;
use crate::ip6::nd::Ip6Local;
use crate::wire::EthernetFrame;

/// Where a frame goes once the bridge or the router has decided.
pub(super) trait Egress {
    /// Out of port `q`.
    fn send(&mut self, q: PortId);
    /// A copy of `frame` back out of the port it came in on (a port cannot
    /// send from its own batch); false if no buffer is free.
    fn send_back(&mut self, em: &mut Emitter, frame: &[u8], rx: PortId) -> bool;
}

/// A real frame, number `i` of its port's batch: into the transmit queues.
pub(super) struct Batch<'a> {
    pub queues: &'a mut [Vec<u16>],
    pub touched: &'a mut Vec<PortId>,
    pub i: usize,
}

impl Egress for Batch<'_> {
    fn send(&mut self, q: PortId) {
        enqueue_tx(self.queues, self.touched, q, self.i)
    }

    fn send_back(&mut self, em: &mut Emitter, frame: &[u8], rx: PortId) -> bool {
        match em.copy(frame) {
            Some(c) => {
                em.send(c, EmitTo::Port(rx));
                true
            }
            None => false,
        }
    }
}

/// A made-up frame: traced, never sent.
pub(super) struct Nowhere;

impl Egress for Nowhere {
    fn send(&mut self, _: PortId) {}

    fn send_back(&mut self, _: &mut Emitter, _: &[u8], _: PortId) -> bool {
        true
    }
}

/// What one frame passes through: the bridges with their FDB, and the
/// router with its peers.
pub(super) struct Path<'a> {
    pub bridges: &'a mut [Option<Bridge>],
    pub fdb: &'a mut Fdb,
    /// The router with its peers.
    pub l3: L3<'a>,
    /// The router MAC of the bridge the frame came in on, if it has one.
    pub router_mac: Option<Mac>,
    /// FDB clock (seconds) and router clock (milliseconds).
    pub now: u32,
    pub now_ms: u64,
}

impl Path<'_> {
    /// Takes `frame` (a virtio-net header and an Ethernet frame), in on port
    /// `rx` of bridge `b`, to where the bridge and the router send it.
    /// Drops are counted in `counters` (the port's); the bridge learns the
    /// source only if `learn`.
    pub fn frame_in<const T: bool>(
        &mut self,
        rx: PortId,
        b: BridgeId,
        frame: &mut [u8],
        counters: &mut PortCounters,
        learn: bool,
        out: &mut impl Egress,
    ) {
        let Path {
            bridges,
            fdb,
            l3,
            router_mac,
            now,
            now_ms,
        } = self;
        let (router_mac, now, now_ms) = (*router_mac, *now, *now_ms);
        let eth = frame.get(VNET_HDR_LEN..).unwrap_or(&[]);
        // Broadcast ARP (requests, announcements) is flooded and shown to
        // the router too; ARP to some other station is not its business.
        // So is IPv6 multicast (neighbour solicitations to solicited-node
        // groups) on a bridge with an IPv6 interface.
        let is_arp = crate::wire::ethernet::is_broadcast_arp(eth);
        let is_ip6_group =
            crate::wire::ethernet::is_ipv6_multicast(eth) && l3.router6.iface(b).is_some();
        let mut not_learned = BridgeCounters::default();
        let bridge_counters = match bridges[b as usize].as_mut() {
            Some(bridge) if learn => &mut bridge.counters,
            _ => &mut not_learned,
        };
        let (decision, learned) =
            l2_forward(eth, rx, b, fdb, now, bridge_counters, router_mac, learn);
        if T && l3.trace.on {
            trace_l2(l3.trace, bridges, b, eth, rx, learned, decision);
        }
        match decision {
            L2Decision::Forward(q) => out.send(q),
            L2Decision::Flood => {
                let members = bridges[b as usize].as_ref().map_or(&[][..], |b| &b.members);
                members
                    .iter()
                    .filter(|&&q| q != rx)
                    .for_each(|&q| out.send(q));
                // A broadcast ARP request may be for the router.
                if is_arp && router_mac.is_some() {
                    if let Some(reason) = l3.arp_input::<T>(eth, b, now_ms) {
                        counters.drop(reason);
                        trace!(T; l3.trace, Event::Drop { reason });
                    }
                }
                if is_ip6_group {
                    if let Ip6Local::Drop(reason) = l3.ip6_input::<T>(eth, b, now_ms) {
                        counters.drop(reason);
                        trace!(T; l3.trace, Event::Drop { reason });
                    }
                }
            }
            L2Decision::Router => match l3.input::<T>(frame, rx, b, now_ms) {
                L3Out::Forward { bridge: to, dst } => {
                    match fdb.lookup(to, dst) {
                        Some(q) if q != rx => {
                            trace!(T; l3.trace, Event::Tx { port: q });
                            out.send(q)
                        }
                        Some(_) => send_back::<T>(l3, counters, out, frame, rx),
                        None => {
                            let members = bridges[to as usize]
                                .as_ref()
                                .map_or(&[][..], |b| &b.members);
                            if T && l3.trace.on {
                                trace_flood(l3.trace, dst, members, rx);
                            }
                            members
                                .iter()
                                .filter(|&&q| q != rx)
                                .for_each(|&q| out.send(q));
                            // Flooded back into its own bridge, the
                            // destination may well be behind the ingress port.
                            if to == b {
                                send_back::<T>(l3, counters, out, frame, rx);
                            }
                        }
                    }
                }
                L3Out::Consumed => {}
                L3Out::Drop(reason) => {
                    counters.drop(reason);
                    trace!(T; l3.trace, Event::Drop { reason });
                }
            },
            L2Decision::Drop(reason) => {
                counters.drop(reason);
                trace!(T; l3.trace, Event::Drop { reason });
            }
        }
    }
}

/// Sends a copy of `frame` back out of `rx`, where it came in.
fn send_back<const T: bool>(
    l3: &mut L3<'_>,
    counters: &mut PortCounters,
    out: &mut impl Egress,
    frame: &[u8],
    rx: PortId,
) {
    if out.send_back(l3.em, frame, rx) {
        trace!(T; l3.trace, Event::Tx { port: rx });
    } else {
        counters.drop(DropReason::NoBuffer);
    }
}

/// Records the L2 stage of a traced frame: learning and where it goes.
#[cold]
#[allow(clippy::too_many_arguments)]
fn trace_l2(
    tr: &mut Tracer,
    bridges: &[Option<Bridge>],
    bridge: BridgeId,
    eth: &[u8],
    rx: PortId,
    learned: Option<Learn>,
    decision: L2Decision,
) {
    let Ok(eth) = EthernetFrame::new_checked(eth) else {
        return;
    };
    let (src, dst) = (eth.src(), eth.dst());
    if !matches!(
        decision,
        L2Decision::Drop(DropReason::InvalidSrcMac | DropReason::Runt)
    ) {
        let learned = match learned {
            Some(Learn::New) => Learned::New,
            Some(Learn::Refreshed) => Learned::Refreshed,
            Some(Learn::Moved) => Learned::Moved,
            Some(Learn::Static) => Learned::Static,
            Some(Learn::Full) => Learned::TableFull,
            None => Learned::NotLearned,
        };
        tr.record(Event::Learn {
            mac: src,
            port: rx,
            learned,
        });
    }
    let members = bridges
        .get(usize::from(bridge))
        .and_then(Option::as_ref)
        .map_or(&[][..], |b| &b.members[..]);
    match decision {
        L2Decision::Forward(q) => {
            tr.record(Event::L2 {
                dst,
                out: L2Out::Port(q),
            });
            tr.record(Event::Tx { port: q });
        }
        L2Decision::Flood => trace_flood(tr, dst, members, rx),
        L2Decision::Router => tr.record(Event::L2 {
            dst,
            out: L2Out::Router,
        }),
        L2Decision::Drop(_) => {}
    }
}

/// Records a flood to every member but `rx`.
#[cold]
fn trace_flood(tr: &mut Tracer, dst: Mac, members: &[PortId], rx: PortId) {
    let out: Vec<PortId> = members.iter().copied().filter(|&q| q != rx).collect();
    tr.record(Event::L2 {
        dst,
        out: L2Out::Flood(out.len() as u16),
    });
    for q in out {
        tr.record(Event::Tx { port: q });
    }
}
