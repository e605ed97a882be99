//! VLAN filtering, ports' VLANs and link-local group forwarding of bridges.

use super::*;
use crate::l2::vlan::VlanMembership;
use std::ops::RangeInclusive;

impl Switch {
    /// Turns 802.1Q VLAN filtering of `bridge` on or off. Learned entries
    /// of the bridge are forgotten (they were learned in other VLANs).
    pub fn set_vlan_filtering(&mut self, bridge: &str, on: bool) -> Result<(), SwitchError> {
        let id = self.plain_bridge(bridge)?;
        let br = self.bridges[id as usize].as_mut().expect("exists");
        if br.vlan_filtering == on {
            return Ok(());
        }
        if let Some(&(_, i)) = br.vlan_ifaces.first() {
            return Err(SwitchError::HasVlanIfaces(
                bridge.to_string(),
                self.bridge_name(i).to_string(),
            ));
        }
        br.vlan_filtering = on;
        let forgotten = self.fdb.retain(|b, _, _, e| b != id || e.is_static);
        log_change!(self, op = "bridge_set", bridge, vlan_filtering = on, forgotten;
            "bridge {bridge}: vlan_filtering {} ({forgotten} learned entries forgotten)", u8::from(on));
        Ok(())
    }

    /// Sets which link-local groups 01:80:C2:00:00:0N `bridge` forwards.
    pub fn set_group_fwd_mask(&mut self, bridge: &str, mask: u16) -> Result<(), SwitchError> {
        let mask = GroupFwdMask::new(mask)?;
        let id = self.plain_bridge(bridge)?;
        self.bridges[id as usize]
            .as_mut()
            .expect("exists")
            .group_fwd_mask = mask;
        log_change!(self, op = "bridge_set", bridge, group_fwd_mask = mask.bits();
            "bridge {bridge}: group_fwd_mask {:#x}", mask.bits());
        Ok(())
    }

    /// Adds the VLANs `vids` to `port` (or changes their flags), as `bridge
    /// vlan add` does; `pvid` needs a single VLAN.
    pub fn vlan_add(
        &mut self,
        port: &str,
        vids: RangeInclusive<u16>,
        pvid: bool,
        untagged: bool,
    ) -> Result<(), SwitchError> {
        let id = self.vlan_port(port)?;
        let vids = checked(vids)?;
        if pvid && vids.start() != vids.end() {
            return Err(SwitchError::PvidRange);
        }
        for v in vids.clone() {
            let vid = Vid::new(v).expect("checked");
            self.vlans[id as usize].add(vid, pvid, untagged);
        }
        let flags = match (pvid, untagged) {
            (true, true) => " pvid untagged",
            (true, false) => " pvid",
            (false, true) => " untagged",
            (false, false) => "",
        };
        log_change!(self, op = "vlan_add", port, vids:? = vids, pvid, untagged;
            "vlan: {port} vid {}{flags}", range_words(&vids));
        Ok(())
    }

    /// Takes the VLANs `vids` off `port`, with what it learned in them.
    pub fn vlan_del(&mut self, port: &str, vids: RangeInclusive<u16>) -> Result<(), SwitchError> {
        let id = self.vlan_port(port)?;
        let vids = checked(vids)?;
        let mut any = false;
        for v in vids.clone() {
            any |= self.vlans[id as usize].del(Vid::new(v).expect("checked"));
        }
        if !any {
            return Err(SwitchError::NotInVlan(port.to_string(), range_words(&vids)));
        }
        self.fdb
            .retain(|_, v, _, e| e.is_static || e.port != id || !vids.contains(&v));
        log_change!(self, op = "vlan_del", port, vids:? = vids; "vlan: {port} vid {} deleted", range_words(&vids));
        Ok(())
    }

    /// Sets the VLANs of `port` whole (an apply's step).
    pub fn set_port_vlans(&mut self, port: &str, to: &[VlanMembership]) -> Result<(), SwitchError> {
        let id = self.vlan_port(port)?;
        let mut vlans = PortVlans::none();
        for v in to {
            vlans.add(v.vid, v.pvid, v.untagged);
        }
        let kept = |v: u16| Vid::new(v).is_ok_and(|v| vlans.is_member(v));
        self.fdb
            .retain(|_, v, _, e| e.is_static || e.port != id || v == 0 || kept(v));
        self.vlans[usize::from(id)] = vlans;
        log_change!(self, op = "vlan_set", port, vlans = to.len(); "vlan: {port} set to {} VLAN(s)", to.len());
        Ok(())
    }

    /// The VLANs of every port in a bridge (or of `port` only): port, its
    /// bridge, and its VLANs by VID.
    pub fn vlans(
        &self,
        port: Option<&str>,
    ) -> Result<Vec<(String, String, Vec<VlanMembership>)>, SwitchError> {
        let only = port.map(|p| self.existing_port(p)).transpose()?;
        Ok(self
            .ports
            .iter()
            .enumerate()
            .filter(|(id, _)| only.is_none_or(|p| usize::from(p) == *id))
            .filter_map(|(id, s)| Some((id, s.as_ref()?, s.as_ref()?.bridge?)))
            .map(|(id, s, b)| {
                (
                    s.port.name().to_string(),
                    self.bridge_name(b).to_string(),
                    self.vlans[id].iter().collect(),
                )
            })
            .collect())
    }

    /// The VLANs of port `id`, for the running state.
    pub(super) fn port_vlans(&self, id: usize) -> Vec<VlanMembership> {
        self.vlans[id].iter().collect()
    }

    /// A port in a bridge, whose VLANs can be set.
    fn vlan_port(&self, port: &str) -> Result<PortId, SwitchError> {
        let id = self.existing_port(port)?;
        if self.ports[id as usize]
            .as_ref()
            .and_then(|s| s.bridge)
            .is_none()
        {
            return Err(SwitchError::NoMaster(port.to_string()));
        }
        Ok(id)
    }
}

fn checked(vids: RangeInclusive<u16>) -> Result<RangeInclusive<u16>, SwitchError> {
    for v in [*vids.start(), *vids.end()] {
        Vid::new(v).map_err(|_| SwitchError::BadVid(v))?;
    }
    if vids.is_empty() {
        return Err(SwitchError::BadVid(*vids.start()));
    }
    Ok(vids)
}

/// `10` or `10-20`.
fn range_words(vids: &RangeInclusive<u16>) -> String {
    if vids.start() == vids.end() {
        vids.start().to_string()
    } else {
        format!("{}-{}", vids.start(), vids.end())
    }
}

impl Bridge {
    /// The VLAN of the bridge's own router interface: VLAN 1 with
    /// filtering (the Linux bridge's default PVID), none without.
    pub(super) fn router_vid(&self) -> u16 {
        if self.vlan_filtering {
            Vid::DEFAULT.get()
        } else {
            0
        }
    }

    /// The router interface on VLAN `vid` of this bridge (`id`): its own,
    /// or a VLAN interface.
    #[inline]
    pub(super) fn iface_in(&self, id: BridgeId, vid: u16) -> Option<BridgeId> {
        if vid == self.router_vid() {
            return Some(id);
        }
        self.vlan_ifaces
            .iter()
            .find(|&&(v, _)| v == vid)
            .map(|&(_, i)| i)
    }
}

/// Where the frames of router interface `iface` are switched: its bridge
/// and VLAN.
#[inline]
pub(super) fn segment_of(bridges: &[Option<Bridge>], iface: BridgeId) -> Option<Segment> {
    let b = bridges.get(usize::from(iface))?.as_ref()?;
    Some(match b.vlan_of {
        Some((bridge, vid)) => Segment {
            bridge,
            vid: vid.get(),
        },
        None => Segment {
            bridge: iface,
            vid: b.router_vid(),
        },
    })
}

/// How a frame of VLAN `vid` (0: a bridge without filtering) that carries
/// an 802.1Q tag or not leaves through port `q`: `None` if it may not.
#[inline]
pub(super) fn egress_op(vlans: &[PortVlans], q: PortId, vid: u16, tagged: bool) -> Option<TagOp> {
    if vid == 0 {
        return Some(TagOp::Keep);
    }
    vlans
        .get(usize::from(q))?
        .egress_op(Vid::new(vid).ok()?, tagged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::memory::{with_vnet_hdr, MemoryHandle, MemoryPort};
    use crate::wire::vlan::{outer_tag, VlanTag};

    const H1: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const H3: [u8; 6] = [2, 0, 0, 0, 0, 3];
    const BCAST: [u8; 6] = [0xff; 6];

    /// An IPv4 frame from `src` to `dst`, with a tag if given.
    fn frame(dst: [u8; 6], src: [u8; 6], tag: Option<u16>) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        if let Some(tci) = tag {
            f.extend_from_slice(&0x8100u16.to_be_bytes());
            f.extend_from_slice(&tci.to_be_bytes());
        }
        f.extend_from_slice(&[0x08, 0x00]);
        f.resize(f.len() + 46, 0x55);
        with_vnet_hdr(&f)
    }

    /// br0 with VLAN filtering: p1 an access port of VLAN 10, p2 a trunk
    /// of VLANs 10 and 20, p3 an access port of VLAN 20.
    fn lab() -> (Switch, [(PortId, MemoryHandle); 3]) {
        let mut sw = Switch::new(SwitchConfig::default(), None);
        let mut ports = Vec::new();
        for name in ["p1", "p2", "p3"] {
            let p = MemoryPort::new(name);
            let h = p.handle();
            h.capture(true);
            let id = sw.add_port(Box::new(p), Some(DEFAULT_BRIDGE)).unwrap();
            sw.vlan_del(name, 1..=1).unwrap();
            ports.push((id, h));
        }
        sw.set_vlan_filtering(DEFAULT_BRIDGE, true).unwrap();
        sw.vlan_add("p1", 10..=10, true, true).unwrap();
        sw.vlan_add("p2", 10..=20, false, false).unwrap();
        sw.vlan_add("p3", 20..=20, true, true).unwrap();
        (sw, ports.try_into().map_err(|_| ()).unwrap())
    }

    fn send(sw: &mut Switch, (id, h): &(PortId, MemoryHandle), f: Vec<u8>) {
        h.inject([f]);
        sw.process_rx(*id);
    }

    fn tags(h: &MemoryHandle) -> Vec<Option<VlanTag>> {
        h.take_sent()
            .iter()
            .map(|f| outer_tag(&f[VNET_HDR_LEN..]))
            .collect()
    }

    #[test]
    fn access_and_trunk_ports_tag_and_untag_within_their_vlans() {
        let (mut sw, [p1, p2, p3]) = lab();
        // Untagged in on the access port: VLAN 10, tagged on the trunk, not
        // on p3 (VLAN 20).
        send(&mut sw, &p1, frame(BCAST, H1, None));
        assert_eq!(tags(&p2.1), [Some(VlanTag::new(10))]);
        assert!(tags(&p3.1).is_empty());
        // Tagged 20 in on the trunk: untagged out of p3 only; the tagged
        // frame is exactly the untagged one with its tag.
        send(&mut sw, &p2, frame(BCAST, H3, Some(20)));
        let out = p3.1.take_sent();
        assert_eq!(out, [frame(BCAST, H3, None)]);
        assert!(tags(&p1.1).is_empty());
        // Learning is per VLAN: H3 is known in VLAN 20 only, so a frame to
        // it from VLAN 10 is flooded in VLAN 10 (to the trunk, tagged 10).
        send(&mut sw, &p1, frame(H3, H1, None));
        assert_eq!(tags(&p2.1), [Some(VlanTag::new(10))]);
        assert!(tags(&p3.1).is_empty());
        let rows = sw.fdb();
        assert!(rows
            .iter()
            .any(|r| r.mac == Mac(H3) && r.vlan == Some(20) && r.port == "p2"));
        assert!(rows
            .iter()
            .any(|r| r.mac == Mac(H1) && r.vlan == Some(10) && r.port == "p1"));
    }

    #[test]
    fn ingress_filtering_priority_tags_and_no_pvid() {
        let (mut sw, [p1, p2, p3]) = lab();
        // VLAN 30 is not the trunk's: dropped and counted.
        send(&mut sw, &p2, frame(BCAST, H3, Some(30)));
        let drops = |sw: &Switch, port: &str, reason: &str| {
            sw.ports()
                .into_iter()
                .find(|p| p.name == port)
                .and_then(|p| p.drops_by_reason.get(reason).copied())
                .unwrap_or(0)
        };
        assert_eq!(drops(&sw, "p2", "vlan-ingress"), 1);
        // Untagged on the trunk, which has no PVID: dropped.
        send(&mut sw, &p2, frame(BCAST, H3, None));
        assert_eq!(drops(&sw, "p2", "vlan-no-pvid"), 1);
        // A priority tag (PCP 5, VID 0) on the access port: VLAN 10, so it
        // leaves the trunk tagged 10 with its priority kept.
        send(&mut sw, &p1, frame(BCAST, H1, Some(5 << 13)));
        let t = tags(&p2.1);
        assert_eq!(t.len(), 1);
        assert_eq!((t[0].unwrap().vid(), t[0].unwrap().pcp()), (10, 5));
        assert!(tags(&p3.1).is_empty());
    }

    #[test]
    fn without_filtering_tags_pass_through() {
        let (mut sw, [p1, p2, p3]) = lab();
        sw.set_vlan_filtering(DEFAULT_BRIDGE, false).unwrap();
        send(&mut sw, &p1, frame(BCAST, H1, Some(30)));
        assert_eq!(p2.1.take_sent(), [frame(BCAST, H1, Some(30))]);
        assert_eq!(p3.1.take_sent(), [frame(BCAST, H1, Some(30))]);
    }

    #[test]
    fn group_fwd_mask_passes_lldp_and_lacp_never_pause() {
        let (mut sw, [p1, p2, _]) = lab();
        let lldp = [0x01, 0x80, 0xc2, 0, 0, 0x0e];
        let pause = [0x01, 0x80, 0xc2, 0, 0, 0x01];
        send(&mut sw, &p1, frame(lldp, H1, None));
        assert!(tags(&p2.1).is_empty(), "802.1D: not forwarded");
        sw.set_group_fwd_mask(DEFAULT_BRIDGE, 0x4004).unwrap();
        send(&mut sw, &p1, frame(lldp, H1, None));
        assert_eq!(tags(&p2.1), [Some(VlanTag::new(10))]);
        let e = sw.set_group_fwd_mask(DEFAULT_BRIDGE, 0x0002).unwrap_err();
        assert!(e.to_string().contains("pause"), "{e}");
        send(&mut sw, &p1, frame(pause, H1, None));
        assert!(tags(&p2.1).is_empty());
    }

    #[test]
    fn the_router_answers_in_its_vlan_through_a_trunk() {
        let (mut sw, [p1, p2, _]) = lab();
        // The router is in VLAN 1: the trunk carries it tagged.
        sw.vlan_add("p2", 1..=1, false, false).unwrap();
        sw.addr_add(DEFAULT_BRIDGE, "10.1.0.1/24".parse().unwrap())
            .unwrap();
        let router = sw.addrs()[0].mac;
        // An ARP request for 10.1.0.1, tagged 1, from the trunk.
        let mut arp = Vec::new();
        arp.extend_from_slice(&BCAST);
        arp.extend_from_slice(&H3);
        arp.extend_from_slice(&[0x81, 0x00, 0x00, 0x01, 0x08, 0x06]);
        arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        arp.extend_from_slice(&H3);
        arp.extend_from_slice(&[10, 1, 0, 2]);
        arp.extend_from_slice(&[0; 6]);
        arp.extend_from_slice(&[10, 1, 0, 1]);
        arp.resize(64, 0);
        p2.1.take_sent();
        send(&mut sw, &p2, with_vnet_hdr(&arp));
        let out = p2.1.take_sent();
        assert_eq!(out.len(), 1, "one reply, back out of the trunk");
        let eth = &out[0][VNET_HDR_LEN..];
        assert_eq!(outer_tag(eth), Some(VlanTag::new(1)), "tagged 1");
        assert_eq!(&eth[6..12], &router.0);
        assert_eq!(&eth[16..18], &[0x08, 0x06]);
        // Not flooded into VLAN 10.
        assert!(tags(&p1.1).is_empty());
    }
}
