//! The learn-and-forward stage of an 802.1D bridge (IEEE 802.1D-2004 7.7,
//! 7.8): learn the source, then send the frame to the one port its
//! destination was learned on, or flood it within the bridge.

use super::{BridgeId, Fdb, Learn, PortId};
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

/// Learns the source of `eth` (an Ethernet frame that came in on `in_port`
/// of `bridge`) and decides where it goes. `router_mac` is the MAC of the
/// bridge's router interface, if it has one. Without `learn` (a dry-run
/// trace) the FDB is only read.
// Inlined into the switch's loop, where `learn` is a constant.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // each is one thing the stage reads or writes
pub fn l2_forward(
    eth: &[u8],
    in_port: PortId,
    bridge: BridgeId,
    fdb: &mut Fdb,
    now: u32,
    counters: &mut BridgeCounters,
    router_mac: Option<Mac>,
    learn: bool,
) -> (L2Decision, Option<Learn>) {
    let Ok(frame) = EthernetFrame::new_checked(eth) else {
        return (L2Decision::Drop(DropReason::Runt), None);
    };
    let src = frame.src();
    // The router's own MAC is never learned on a port.
    if !src.is_unicast() || Some(src) == router_mac {
        return (L2Decision::Drop(DropReason::InvalidSrcMac), None);
    }
    let learned = learn.then(|| fdb.learn(bridge, src, in_port, now));
    match learned {
        Some(Learn::New) => counters.learned += 1,
        Some(Learn::Moved) => counters.moved += 1,
        Some(Learn::Full) => counters.learn_fdb_full += 1,
        _ => {}
    }
    (
        decide(&frame, in_port, bridge, fdb, counters, router_mac),
        learned,
    )
}

/// Where a frame whose source was learned goes.
#[inline(always)]
fn decide(
    frame: &EthernetFrame<&[u8]>,
    in_port: PortId,
    bridge: BridgeId,
    fdb: &Fdb,
    counters: &mut BridgeCounters,
    router_mac: Option<Mac>,
) -> L2Decision {
    let dst = frame.dst();
    if Some(dst) == router_mac {
        return L2Decision::Router;
    }
    if dst.is_multicast() {
        if dst.is_reserved_group() {
            return L2Decision::Drop(DropReason::ReservedGroup);
        }
        counters.flooded += 1;
        return L2Decision::Flood;
    }
    match fdb.lookup(bridge, dst) {
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

    const A: &str = "02:00:00:00:00:0a";
    const B: &str = "02:00:00:00:00:0b";

    #[test]
    fn floods_until_learned_then_forwards() {
        let mut fdb = Fdb::new(64);
        let mut c = BridgeCounters::default();
        // A -> B: B unknown, flood; A learned on port 1.
        assert_eq!(
            l2_forward(&frame(B, A), 1, 0, &mut fdb, 0, &mut c, None, true).0,
            L2Decision::Flood
        );
        // B -> A: A known on 1.
        assert_eq!(
            l2_forward(&frame(A, B), 2, 0, &mut fdb, 0, &mut c, None, true).0,
            L2Decision::Forward(1)
        );
        // A -> B now known on 2.
        assert_eq!(
            l2_forward(&frame(B, A), 1, 0, &mut fdb, 0, &mut c, None, true).0,
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
            l2_forward(f, 1, 0, fdb, 0, c, None, true).0
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
}
