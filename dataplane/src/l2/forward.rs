//! The learn-and-forward stage of an 802.1D bridge (IEEE 802.1D-2004 7.7,
//! 7.8): learn the source, then send the frame to the one port its
//! destination was learned on, or flood it within the bridge (and VLAN).

use super::{Fdb, GroupFwdMask, Learn, PortId, Segment};
use crate::counters::{BridgeCounters, DropReason};
use crate::wire::{EthernetFrame, Mac};

/// Where a frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L2Decision {
    /// To this one port.
    Forward(PortId),
    /// To every port of the bridge but the ingress one.
    Flood,
    /// To the bridge's router interface (the destination is its MAC).
    Router,
    Drop(DropReason),
}

/// What the decision reads of the bridge besides its FDB.
#[derive(Debug, Clone, Copy, Default)]
pub struct L2Policy {
    /// The MAC of the router interface in the frame's segment, if any.
    pub router_mac: Option<Mac>,
    /// Which of 01:80:C2:00:00:00-0F the bridge forwards.
    pub group_fwd_mask: GroupFwdMask,
}

/// Learns the source of `eth` (an Ethernet frame that came in on `in_port`
/// in segment `seg`: a bridge, and a VLAN of it) and decides where it goes.
/// Without `learn` (a dry-run trace) the FDB is only read.
// Inlined into the switch's loop, where `learn` is a constant.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // each is one thing the stage reads or writes
pub fn l2_forward(
    eth: &[u8],
    in_port: PortId,
    seg: Segment,
    fdb: &mut Fdb,
    now: u32,
    counters: &mut BridgeCounters,
    policy: L2Policy,
    learn: bool,
) -> (L2Decision, Option<Learn>) {
    let router_mac = policy.router_mac;
    let Ok(frame) = EthernetFrame::new_checked(eth) else {
        return (L2Decision::Drop(DropReason::Runt), None);
    };
    let src = frame.src();
    // The router's own MAC is never learned on a port.
    if !src.is_unicast() || Some(src) == router_mac {
        return (L2Decision::Drop(DropReason::InvalidSrcMac), None);
    }
    let learned = learn.then(|| fdb.learn(seg.bridge, seg.vid, src, in_port, now));
    match learned {
        Some(Learn::New) => counters.learned += 1,
        Some(Learn::Moved) => counters.moved += 1,
        Some(Learn::Full) => counters.learn_fdb_full += 1,
        _ => {}
    }
    (decide(&frame, in_port, seg, fdb, counters, policy), learned)
}

/// Where a frame whose source was learned goes.
#[inline(always)]
fn decide(
    frame: &EthernetFrame<&[u8]>,
    in_port: PortId,
    seg: Segment,
    fdb: &Fdb,
    counters: &mut BridgeCounters,
    policy: L2Policy,
) -> L2Decision {
    let dst = frame.dst();
    if Some(dst) == policy.router_mac {
        return L2Decision::Router;
    }
    if dst.is_multicast() {
        if dst.is_reserved_group() && !policy.group_fwd_mask.forwards(dst) {
            return L2Decision::Drop(DropReason::ReservedGroup);
        }
        counters.flooded += 1;
        return L2Decision::Flood;
    }
    match fdb.lookup(seg.bridge, seg.vid, dst) {
        Some(port) if port == in_port => L2Decision::Drop(DropReason::SamePort),
        Some(port) => {
            counters.forwarded += 1;
            L2Decision::Forward(port)
        }
        None => {
            counters.flooded += 1;
            counters.unknown_unicast += 1;
            L2Decision::Flood
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(dst: &str, src: &str) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst.parse::<Mac>().unwrap().0);
        f.extend_from_slice(&src.parse::<Mac>().unwrap().0);
        f.extend_from_slice(&[0x08, 0x00]);
        f.resize(60, 0);
        f
    }

    const SEG: Segment = Segment { bridge: 0, vid: 0 };
    const NONE: L2Policy = L2Policy {
        router_mac: None,
        group_fwd_mask: GroupFwdMask::NONE,
    };
    const A: &str = "02:00:00:00:00:0a";
    const B: &str = "02:00:00:00:00:0b";

    #[test]
    fn floods_until_learned_then_forwards() {
        let mut fdb = Fdb::new(64);
        let mut c = BridgeCounters::default();
        // A -> B: B unknown, flood; A learned on port 1.
        assert_eq!(
            l2_forward(&frame(B, A), 1, SEG, &mut fdb, 0, &mut c, NONE, true).0,
            L2Decision::Flood
        );
        // B -> A: A known on 1.
        assert_eq!(
            l2_forward(&frame(A, B), 2, SEG, &mut fdb, 0, &mut c, NONE, true).0,
            L2Decision::Forward(1)
        );
        // A -> B now known on 2.
        assert_eq!(
            l2_forward(&frame(B, A), 1, SEG, &mut fdb, 0, &mut c, NONE, true).0,
            L2Decision::Forward(2)
        );
        assert_eq!(
            (c.learned, c.flooded, c.unknown_unicast, c.forwarded),
            (2, 1, 1, 2)
        );
    }

    #[test]
    fn drops_bad_sources_reserved_groups_and_hairpins() {
        let mut fdb = Fdb::new(64);
        let mut c = BridgeCounters::default();
        let d = |f: &[u8], fdb: &mut Fdb, c: &mut BridgeCounters| {
            l2_forward(f, 1, SEG, fdb, 0, c, NONE, true).0
        };
        assert_eq!(
            d(&frame(B, "01:00:5e:00:00:01"), &mut fdb, &mut c),
            L2Decision::Drop(DropReason::InvalidSrcMac)
        );
        assert_eq!(
            d(&frame(B, "00:00:00:00:00:00"), &mut fdb, &mut c),
            L2Decision::Drop(DropReason::InvalidSrcMac)
        );
        assert_eq!(
            d(&frame("01:80:c2:00:00:00", A), &mut fdb, &mut c),
            L2Decision::Drop(DropReason::ReservedGroup)
        );
        assert_eq!(
            d(&frame(A, B), &mut fdb, &mut c),
            L2Decision::Drop(DropReason::SamePort)
        );
        assert_eq!(
            d(&[0u8; 13], &mut fdb, &mut c),
            L2Decision::Drop(DropReason::Runt)
        );
        assert_eq!(
            d(&frame("ff:ff:ff:ff:ff:ff", A), &mut fdb, &mut c),
            L2Decision::Flood
        );
    }

    #[test]
    fn group_fwd_mask_forwards_the_groups_it_names() {
        let mut fdb = Fdb::new(64);
        let mut c = BridgeCounters::default();
        let policy = L2Policy {
            router_mac: None,
            // STP (0), LACP (2), LLDP (0x0e).
            group_fwd_mask: GroupFwdMask::new(0x4005).unwrap(),
        };
        let d = |dst: &str, fdb: &mut Fdb, c: &mut BridgeCounters| {
            l2_forward(&frame(dst, A), 1, SEG, fdb, 0, c, policy, true).0
        };
        assert_eq!(d("01:80:c2:00:00:00", &mut fdb, &mut c), L2Decision::Flood);
        assert_eq!(d("01:80:c2:00:00:02", &mut fdb, &mut c), L2Decision::Flood);
        assert_eq!(d("01:80:c2:00:00:0e", &mut fdb, &mut c), L2Decision::Flood);
        assert_eq!(
            d("01:80:c2:00:00:03", &mut fdb, &mut c),
            L2Decision::Drop(DropReason::ReservedGroup)
        );
        // Pause frames never, whatever the mask.
        assert!(GroupFwdMask::new(0x0002).is_err());
        // Learning is per VLAN: A in VLAN 10 is not A in VLAN 0.
        let v10 = Segment { bridge: 0, vid: 10 };
        assert_eq!(
            l2_forward(&frame(A, B), 2, v10, &mut fdb, 0, &mut c, NONE, true).0,
            L2Decision::Flood
        );
    }
}
