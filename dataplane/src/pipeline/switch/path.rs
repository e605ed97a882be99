//! The path of one frame in on a bridge port: the bridge's decision, then
//! the router's for what is addressed to a router MAC. Real frames and
//! made-up ones (`patchbay trace packet`) take this same code: only where
//! the frame goes at the end ([`Egress`]) and whether the bridge learns
//! differ.

use super::*;
use super::{egress_op, segment_of, TxEntry};
use crate::emit::Emitter;
use crate::ip6::nd::Ip6Local;
use crate::wire::EthernetFrame;

/// Where a frame goes once the bridge or the router has decided.
pub(super) trait Egress {
    /// Out of port `q`, with its tag changed as `tag` says.
    fn send(&mut self, q: PortId, tag: TagOp);
    /// The frame's tag was taken out in place: it now starts four bytes on.
    fn popped(&mut self);
    /// A copy of `frame` (of router interface `iface`) back out of the port
    /// it came in on (a port cannot send from its own batch); false if no
    /// buffer is free.
    fn send_back(&mut self, em: &mut Emitter, frame: &[u8], rx: PortId, iface: BridgeId) -> bool;
}

/// A real frame, number `i` of its port's batch: into the transmit queues.
pub(super) struct Batch<'a> {
    pub queues: &'a mut [Vec<TxEntry>],
    pub touched: &'a mut Vec<PortId>,
    pub i: usize,
    pub popped: bool,
}

impl Egress for Batch<'_> {
    fn send(&mut self, q: PortId, tag: TagOp) {
        let entry = TxEntry {
            index: self.i as u16,
            tag,
            popped: self.popped,
        };
        enqueue_tx(self.queues, self.touched, q, entry)
    }

    fn popped(&mut self) {
        self.popped = true;
    }

    fn send_back(&mut self, em: &mut Emitter, frame: &[u8], rx: PortId, iface: BridgeId) -> bool {
        match em.copy(frame) {
            Some(c) => {
                em.send(c, EmitTo::Port(rx, iface));
                true
            }
            None => false,
        }
    }
}

/// A made-up frame: traced, never sent.
pub(super) struct Nowhere;

impl Egress for Nowhere {
    fn send(&mut self, _: PortId, _: TagOp) {}

    fn popped(&mut self) {}

    fn send_back(&mut self, _: &mut Emitter, _: &[u8], _: PortId, _: BridgeId) -> bool {
        true
    }
}

/// What one frame passes through: the bridges with their FDB and their
/// ports' VLANs, and the router with its peers.
pub(super) struct Path<'a> {
    pub bridges: &'a mut [Option<Bridge>],
    pub fdb: &'a mut Fdb,
    pub vlans: &'a [PortVlans],
    /// The router with its peers.
    pub l3: L3<'a>,
    /// The router MAC of the bridge the frame came in on, if it has one.
    pub router_mac: Option<Mac>,
    /// FDB clock (seconds) and router clock (milliseconds).
    pub now: u32,
    pub now_ms: u64,
}

/// The segment a frame was classified to, and whether it carries a tag.
#[derive(Clone, Copy)]
struct Classified {
    seg: Segment,
    tagged: bool,
}

impl Path<'_> {
    /// Takes `frame` (a virtio-net header and an Ethernet frame), in on port
    /// `rx` of bridge `b`, to where the bridge and the router send it:
    /// vlan-classify, l2-learn and l2-forward, then out of one port, flooded
    /// in the frame's VLAN, or to the router. Drops are counted in
    /// `counters` (the port's); the bridge learns the source only if
    /// `learn`.
    pub fn frame_in<const T: bool>(
        &mut self,
        rx: PortId,
        b: BridgeId,
        frame: &mut [u8],
        counters: &mut PortCounters,
        learn: bool,
        out: &mut impl Egress,
    ) {
        let Some(bridge) = self.bridges[b as usize].as_ref() else {
            return;
        };
        let (filtering, group_fwd_mask) = (bridge.vlan_filtering, bridge.group_fwd_mask);
        let class = match classify(filtering, self.vlans, rx, b, frame) {
            Ok(c) => c,
            Err(reason) => return drop::<T>(self.l3.trace, counters, reason),
        };
        if T && self.l3.trace.on && filtering {
            self.l3.trace.record(Event::VlanIn {
                vid: class.seg.vid,
                tagged: class.tagged,
            });
        }
        let (seg, tagged) = (class.seg, class.tagged);
        let iface = self.router_on(bridge, seg);
        let eth = frame.get(VNET_HDR_LEN..).unwrap_or(&[]);
        let policy = L2Policy {
            router_mac: iface.map(|(_, mac)| mac),
            group_fwd_mask,
        };
        let Path {
            bridges,
            fdb,
            vlans,
            l3,
            now,
            ..
        } = self;
        let mut not_learned = BridgeCounters::default();
        let bridge_counters = match bridges[b as usize].as_mut() {
            Some(bridge) if learn => &mut bridge.counters,
            _ => &mut not_learned,
        };
        let (decision, learned) =
            l2_forward(eth, rx, seg, fdb, *now, bridge_counters, policy, learn);
        if T && l3.trace.on {
            trace_l2(l3.trace, bridges, vlans, class, eth, rx, learned, decision);
        }
        match decision {
            L2Decision::Forward(q) => match egress_op(vlans, q, seg.vid, tagged) {
                Some(tag) => out.send(q, tag),
                None => drop::<T>(l3.trace, counters, DropReason::VlanEgress),
            },
            L2Decision::Flood => {
                flood(bridges, vlans, seg, tagged, rx, out);
                if let Some((iface, _)) = iface {
                    self.show_router::<T>(eth, tagged, rx, iface, counters);
                }
            }
            L2Decision::Router => {
                // Only the MAC of the segment's interface leads here.
                if let Some((iface, _)) = iface {
                    self.route::<T>(frame, rx, class, iface, counters, out)
                }
            }
            L2Decision::Drop(reason) => drop::<T>(l3.trace, counters, reason),
        }
    }

    /// The router interface on `seg` (of `bridge`), and its MAC: the
    /// bridge's own (VLAN 1 with filtering) or a VLAN interface.
    #[inline]
    fn router_on(&self, bridge: &Bridge, seg: Segment) -> Option<(BridgeId, Mac)> {
        if seg.vid == bridge.router_vid() {
            return Some((seg.bridge, self.router_mac?));
        }
        if bridge.vlan_ifaces.is_empty() {
            return None;
        }
        let iface = bridge.iface_in(seg.bridge, seg.vid)?;
        let router = &self.l3.router;
        let mac = router
            .router_mac(iface)
            .or(self.l3.router6.router_mac(iface))?;
        Some((iface, mac))
    }

    /// Shows a flooded frame to the router interface of its VLAN if it is
    /// broadcast ARP (requests, announcements), IPv6 to a multicast group
    /// (neighbour solicitations) on an IPv6 interface, or a broadcast to a
    /// DHCP server the interface has; ARP to some other
    /// station is not its business. The router reads it untagged: a copy,
    /// as the frame itself goes on tagged to other ports.
    fn show_router<const T: bool>(
        &mut self,
        eth: &[u8],
        tagged: bool,
        rx: PortId,
        iface: BridgeId,
        counters: &mut PortCounters,
    ) {
        let l3 = &mut self.l3;
        let shown = match shown_to_router(eth, tagged) {
            Shown::Ip6Group if l3.router6.iface(iface).is_none() => return,
            Shown::Ip4Broadcast if !l3.router.dhcp.is_served(iface) => return,
            Shown::Nothing => return,
            shown => shown,
        };
        let mut copy;
        let eth = if tagged {
            copy = [0u8; 1536];
            untag_into(eth, &mut copy)
        } else {
            eth
        };
        let reason = match shown {
            Shown::Arp => l3.arp_input::<T>(eth, iface, self.now_ms),
            Shown::Ip4Broadcast if crate::ip4::dhcp::is_to_server(eth) => {
                match l3.dhcp_input::<T>(eth, rx, iface) {
                    L3Out::Drop(reason) => Some(reason),
                    _ => None,
                }
            }
            Shown::Ip4Broadcast => None,
            _ => match l3.ip6_input::<T>(eth, iface, self.now_ms) {
                Ip6Local::Drop(reason) => Some(reason),
                _ => None,
            },
        };
        if let Some(reason) = reason {
            drop::<T>(l3.trace, counters, reason);
        }
    }

    /// The router's part: a frame to the MAC of router interface `iface`
    /// (its tag, if it has one, taken off in place), routed, and sent on
    /// in the segment of the interface it leaves by.
    fn route<const T: bool>(
        &mut self,
        frame: &mut [u8],
        rx: PortId,
        class: Classified,
        iface: BridgeId,
        counters: &mut PortCounters,
        out: &mut impl Egress,
    ) {
        let Path {
            bridges,
            fdb,
            vlans,
            l3,
            now_ms,
            ..
        } = self;
        // The router reads untagged frames: the frame starts four bytes on
        // from here.
        let frame = if class.tagged {
            crate::wire::vlan::pop_in_place(frame);
            out.popped();
            trace!(T; l3.trace, Event::VlanPop { vid: class.seg.vid });
            &mut frame[4..]
        } else {
            frame
        };
        let (to, dst) = match l3.input::<T>(frame, rx, iface, *now_ms) {
            L3Out::Forward { bridge: to, dst } => (to, dst),
            L3Out::Consumed => return,
            L3Out::Drop(reason) => return drop::<T>(l3.trace, counters, reason),
        };
        let Some(seg) = segment_of(bridges, to) else {
            return;
        };
        match fdb.lookup(seg.bridge, seg.vid, dst) {
            Some(q) if q != rx => match egress_op(vlans, q, seg.vid, false) {
                Some(tag) => {
                    trace_tx::<T>(l3.trace, q, seg.vid, tag, dst);
                    out.send(q, tag)
                }
                None => drop::<T>(l3.trace, counters, DropReason::VlanEgress),
            },
            Some(_) => send_back::<T>(l3, counters, out, frame, rx, to),
            None => {
                if T && l3.trace.on {
                    trace_flood(l3.trace, bridges, vlans, seg, false, dst, rx);
                }
                flood(bridges, vlans, seg, false, rx, out);
                // Flooded back into its own segment, the destination may
                // well be behind the ingress port.
                if seg == class.seg {
                    send_back::<T>(l3, counters, out, frame, rx, to);
                }
            }
        }
    }
}

/// Counts a drop against the port, and traces it.
#[inline]
fn drop<const T: bool>(trace: &mut Tracer, counters: &mut PortCounters, reason: DropReason) {
    counters.drop(reason);
    trace!(T; trace, Event::Drop { reason });
}

/// The VLAN stage (802.1Q 6.9, 8.6.2): on a bridge with filtering, the
/// frame's VLAN from its tag or the port's PVID, a priority tag given the
/// PVID, and the frame dropped if the port is not in that VLAN. Without
/// filtering every frame is in VLAN 0 and its tags are payload.
#[inline]
fn classify(
    filtering: bool,
    vlans: &[PortVlans],
    rx: PortId,
    b: BridgeId,
    frame: &mut [u8],
) -> Result<Classified, DropReason> {
    if !filtering {
        return Ok(Classified {
            seg: Segment { bridge: b, vid: 0 },
            tagged: false,
        });
    }
    let eth = frame.get_mut(VNET_HDR_LEN..).unwrap_or(&mut []);
    let tag = crate::wire::vlan::outer_tag(eth);
    let port = vlans.get(usize::from(rx)).ok_or(DropReason::VlanIngress)?;
    let c = port.classify(tag)?;
    if c.tagged && tag.is_some_and(|t| t.vid() == 0) {
        crate::wire::vlan::set_outer_vid(eth, c.vid.get());
    }
    Ok(Classified {
        seg: Segment {
            bridge: b,
            vid: c.vid.get(),
        },
        tagged: c.tagged,
    })
}

/// What of a flooded frame the router is shown.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shown {
    Arp,
    Ip6Group,
    /// IPv4 broadcast: a DHCP server may be asked.
    Ip4Broadcast,
    Nothing,
}

/// Whether the flooded frame `eth` (with a tag, if `tagged`) is broadcast
/// ARP or IPv6 to a multicast group (33:33:..., RFC 2464 7).
#[inline]
fn shown_to_router(eth: &[u8], tagged: bool) -> Shown {
    let at = if tagged { 16 } else { 12 };
    let (Some(dst), Some(t)) = (eth.get(..6), eth.get(at..at + 2)) else {
        return Shown::Nothing;
    };
    match u16::from_be_bytes([t[0], t[1]]) {
        crate::wire::ethernet::ETHERTYPE_ARP if dst == [0xff; 6] => Shown::Arp,
        crate::wire::ethernet::ETHERTYPE_IPV4 if dst == [0xff; 6] => Shown::Ip4Broadcast,
        crate::wire::ethernet::ETHERTYPE_IPV6 if dst[..2] == [0x33, 0x33] => Shown::Ip6Group,
        _ => Shown::Nothing,
    }
}

/// Copies the tagged frame `eth` into `buf` without its tag; empty if it
/// does not fit (such frames are not ARP or neighbour discovery).
fn untag_into<'a>(eth: &[u8], buf: &'a mut [u8]) -> &'a [u8] {
    let n = eth.len().saturating_sub(4);
    if n > buf.len() || n < 12 {
        return &[];
    }
    buf[..12].copy_from_slice(&eth[..12]);
    buf[12..n].copy_from_slice(&eth[16..]);
    &buf[..n]
}

/// Sends the frame to every member of `seg` but `rx`, each with its tag
/// as the member's VLANs want it.
fn flood(
    bridges: &[Option<Bridge>],
    vlans: &[PortVlans],
    seg: Segment,
    tagged: bool,
    rx: PortId,
    out: &mut impl Egress,
) {
    let members = bridges[seg.bridge as usize]
        .as_ref()
        .map_or(&[][..], |b| &b.members[..]);
    for &q in members.iter().filter(|&&q| q != rx) {
        if let Some(tag) = egress_op(vlans, q, seg.vid, tagged) {
            out.send(q, tag);
        }
    }
}

/// Sends a copy of `frame`, routed out of `iface`, back out of `rx`, where
/// it came in.
fn send_back<const T: bool>(
    l3: &mut L3<'_>,
    counters: &mut PortCounters,
    out: &mut impl Egress,
    frame: &[u8],
    rx: PortId,
    iface: BridgeId,
) {
    if out.send_back(l3.em, frame, rx, iface) {
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
    vlans: &[PortVlans],
    class: Classified,
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
    match decision {
        L2Decision::Forward(q) => {
            tr.record(Event::L2 {
                dst,
                out: L2Out::Port(q),
            });
            if let Some(tag) = egress_op(vlans, q, class.seg.vid, class.tagged) {
                trace_tx::<true>(tr, q, class.seg.vid, tag, dst);
            }
        }
        L2Decision::Flood => trace_flood(tr, bridges, vlans, class.seg, class.tagged, dst, rx),
        L2Decision::Router => tr.record(Event::L2 {
            dst,
            out: L2Out::Router,
        }),
        L2Decision::Drop(_) => {}
    }
}

/// Records a frame to `dst` sent out of `q`, with its tag pushed or popped.
#[inline]
fn trace_tx<const T: bool>(tr: &mut Tracer, q: PortId, vid: u16, tag: TagOp, dst: Mac) {
    if !(T && tr.on) {
        return;
    }
    match tag {
        TagOp::Keep => {}
        TagOp::Push(_) => tr.record(Event::VlanTx {
            port: q,
            vid,
            push: true,
        }),
        TagOp::Pop => tr.record(Event::VlanTx {
            port: q,
            vid,
            push: false,
        }),
    }
    if let Some(vni) = tr.vni_of(q) {
        tr.record_vxlan_encap(q, vni, dst);
    }
    tr.record(Event::Tx { port: q });
}

/// Records a flood to every member of `seg` but `rx`.
#[cold]
fn trace_flood(
    tr: &mut Tracer,
    bridges: &[Option<Bridge>],
    vlans: &[PortVlans],
    seg: Segment,
    tagged: bool,
    dst: Mac,
    rx: PortId,
) {
    let members = bridges
        .get(usize::from(seg.bridge))
        .and_then(Option::as_ref)
        .map_or(&[][..], |b| &b.members[..]);
    let out: Vec<(PortId, TagOp)> = members
        .iter()
        .filter(|&&q| q != rx)
        .filter_map(|&q| Some((q, egress_op(vlans, q, seg.vid, tagged)?)))
        .collect();
    tr.record(Event::L2 {
        dst,
        out: L2Out::Flood(out.len() as u16),
    });
    for (q, tag) in out {
        trace_tx::<true>(tr, q, seg.vid, tag, dst);
    }
}
