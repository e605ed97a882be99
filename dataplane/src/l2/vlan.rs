//! IEEE 802.1Q VLANs on a bridge, with the meaning the Linux bridge gives
//! them under `vlan_filtering 1`:
//!
//! - each port is a member of a set of VLANs, is untagged on egress in some
//!   of them, and has at most one PVID (802.1Q 6.9);
//! - a frame is classified to its tag's VLAN, or to the port's PVID if it is
//!   untagged or priority-tagged (VID 0; 802.1Q 6.9.1), then dropped unless
//!   the port is a member of that VLAN (ingress filtering, 802.1Q 8.6.2);
//! - on egress it leaves tagged or untagged as the egress port's membership
//!   says (802.1Q 8.6.4).
//!
//! Frames carry their tag in the frame itself (a port puts a tag the kernel
//! took out of band back in), so a tag is pushed or popped only where a
//! frame leaves, as the port copies it out ([`TagOp`]).

use crate::counters::DropReason;
use crate::wire::vlan::{VlanTag, TPID_8021Q};

/// The VLANs a tag can name: 1 to 4094 (0 marks a priority tag, 4095 is
/// reserved; 802.1Q 9.6 table 9-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Vid(u16);

impl Vid {
    pub const MIN: u16 = 1;
    pub const MAX: u16 = 4094;
    /// Where every port is, untagged and as PVID, until told otherwise.
    pub const DEFAULT: Vid = Vid(1);

    pub fn new(vid: u16) -> Result<Vid, crate::ip4::OutOfRange> {
        if (Self::MIN..=Self::MAX).contains(&vid) {
            Ok(Vid(vid))
        } else {
            Err(crate::ip4::OutOfRange {
                value: u32::from(vid),
                min: u32::from(Self::MIN),
                max: u32::from(Self::MAX),
            })
        }
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

impl std::fmt::Display for Vid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What a leaving frame's tag needs, as its egress port copies it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TagOp {
    /// Leaves as it is.
    #[default]
    Keep,
    /// Its 802.1Q tag comes off.
    Pop,
    /// A tag goes in after the source MAC.
    Push(VlanTag),
}

/// One VLAN of a port, as `vlan show` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanMembership {
    pub vid: Vid,
    pub pvid: bool,
    pub untagged: bool,
}

/// The VLANs of one port: member and untagged bitmaps of all 4096 VIDs, and
/// the PVID. 1 KiB, made when the port is added: classifying a frame and
/// choosing its egress tag never allocate.
#[derive(Clone)]
pub struct PortVlans {
    member: [u64; 64],
    untagged: [u64; 64],
    /// 0: none (untagged frames are dropped).
    pvid: u16,
}

impl Default for PortVlans {
    /// A member of VLAN 1, untagged, as PVID: the Linux bridge's default.
    fn default() -> Self {
        let mut v = PortVlans::none();
        v.add(Vid::DEFAULT, true, true);
        v
    }
}

impl std::fmt::Debug for PortVlans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

fn bit(map: &[u64; 64], vid: u16) -> bool {
    map[usize::from(vid >> 6) & 63] >> (vid & 63) & 1 != 0
}

fn set_bit(map: &mut [u64; 64], vid: u16, on: bool) {
    let (word, mask) = (usize::from(vid >> 6) & 63, 1u64 << (vid & 63));
    if on {
        map[word] |= mask;
    } else {
        map[word] &= !mask;
    }
}

/// Where a received frame belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classified {
    pub vid: Vid,
    /// It carries an 802.1Q tag (with its VID, or a priority tag that the
    /// classification rewrites to the PVID).
    pub tagged: bool,
}

impl PortVlans {
    /// A member of no VLAN.
    pub fn none() -> PortVlans {
        PortVlans {
            member: [0; 64],
            untagged: [0; 64],
            pvid: 0,
        }
    }

    /// Adds `vid` (or changes its flags), as `bridge vlan add` does: `pvid`
    /// makes it the PVID, and without it a VLAN that was the PVID stops
    /// being it; `untagged` likewise.
    pub fn add(&mut self, vid: Vid, pvid: bool, untagged: bool) {
        set_bit(&mut self.member, vid.0, true);
        set_bit(&mut self.untagged, vid.0, untagged);
        if pvid {
            self.pvid = vid.0;
        } else if self.pvid == vid.0 {
            self.pvid = 0;
        }
    }

    /// Removes `vid`; returns whether the port was a member.
    pub fn del(&mut self, vid: Vid) -> bool {
        let was = self.is_member(vid);
        set_bit(&mut self.member, vid.0, false);
        set_bit(&mut self.untagged, vid.0, false);
        if self.pvid == vid.0 {
            self.pvid = 0;
        }
        was
    }

    pub fn is_member(&self, vid: Vid) -> bool {
        bit(&self.member, vid.0)
    }

    pub fn pvid(&self) -> Option<Vid> {
        (self.pvid != 0).then_some(Vid(self.pvid))
    }

    /// Every VLAN the port is in, by VID.
    pub fn iter(&self) -> impl Iterator<Item = VlanMembership> + '_ {
        (Vid::MIN..=Vid::MAX)
            .filter(|&v| bit(&self.member, v))
            .map(|v| VlanMembership {
                vid: Vid(v),
                pvid: self.pvid == v,
                untagged: bit(&self.untagged, v),
            })
    }

    /// Classifies a frame whose outer tag is `tag` (802.1Q 6.9): its
    /// VLAN, or why it is dropped. A tag of another TPID (an 802.1ad
    /// S-tag) is payload to an 802.1Q bridge: the frame is untagged.
    #[inline]
    pub fn classify(&self, tag: Option<VlanTag>) -> Result<Classified, DropReason> {
        let (vid, tagged) = match tag {
            Some(t) if t.tpid == TPID_8021Q && t.vid() != 0 => (t.vid(), true),
            Some(t) if t.tpid == TPID_8021Q => (self.pvid, true),
            _ => (self.pvid, false),
        };
        if vid == 0 {
            return Err(DropReason::VlanNoPvid);
        }
        if vid > Vid::MAX || !bit(&self.member, vid) {
            return Err(DropReason::VlanIngress);
        }
        Ok(Classified {
            vid: Vid(vid),
            tagged,
        })
    }

    /// How a frame of VLAN `vid` leaves through this port: `None` if the
    /// port is not a member (the frame does not go), else whether it leaves
    /// untagged.
    #[inline]
    pub fn egress(&self, vid: Vid) -> Option<bool> {
        bit(&self.member, vid.0).then(|| bit(&self.untagged, vid.0))
    }

    /// The tag operation for a frame of VLAN `vid` that carries a tag or
    /// not (`tagged`), leaving through this port; `None` if it may not.
    #[inline]
    pub fn egress_op(&self, vid: Vid, tagged: bool) -> Option<TagOp> {
        Some(match (self.egress(vid)?, tagged) {
            (true, true) => TagOp::Pop,
            (false, false) => TagOp::Push(VlanTag::new(vid.0)),
            _ => TagOp::Keep,
        })
    }
}

/// Parses a VID or a range of them, `10` or `10-20`, as `bridge vlan`
/// takes them.
pub fn parse_vid_range(s: &str) -> Result<std::ops::RangeInclusive<u16>, String> {
    let one = |t: &str| -> Result<u16, String> {
        let n: u16 = t
            .trim()
            .parse()
            .map_err(|_| format!("{s}: a VLAN id is a number from 1 to 4094"))?;
        Vid::new(n)
            .map(Vid::get)
            .map_err(|_| format!("{n}: a VLAN id is from 1 to 4094"))
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (one(a)?, one(b)?);
            if a > b {
                return Err(format!("{s}: the range must go up (e.g. 10-20)"));
            }
            Ok(a..=b)
        }
        None => one(s).map(|v| v..=v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vid(n: u16) -> Vid {
        Vid::new(n).unwrap()
    }

    fn tag(tci: u16) -> Option<VlanTag> {
        Some(VlanTag {
            tpid: TPID_8021Q,
            tci,
        })
    }

    #[test]
    fn a_port_starts_in_vlan_1_untagged_as_pvid() {
        let v = PortVlans::default();
        let all: Vec<_> = v.iter().collect();
        assert_eq!(
            all,
            [VlanMembership {
                vid: vid(1),
                pvid: true,
                untagged: true
            }]
        );
        assert_eq!(
            v.classify(None),
            Ok(Classified {
                vid: vid(1),
                tagged: false
            })
        );
    }

    #[test]
    fn classification_and_ingress_filtering() {
        let mut v = PortVlans::default();
        v.add(vid(10), false, false);
        // Tagged with a VLAN of the port.
        assert_eq!(v.classify(tag(10)).unwrap().vid, vid(10));
        // A priority tag (VID 0, PCP 5) is the PVID's.
        assert_eq!(
            v.classify(tag(5 << 13)),
            Ok(Classified {
                vid: vid(1),
                tagged: true
            })
        );
        // Not a member: filtered.
        assert_eq!(v.classify(tag(20)), Err(DropReason::VlanIngress));
        assert_eq!(v.classify(tag(4095)), Err(DropReason::VlanIngress));
        // An S-tag is payload: the frame is untagged, in the PVID.
        let s = Some(VlanTag {
            tpid: 0x88a8,
            tci: 10,
        });
        assert_eq!(v.classify(s).unwrap(), v.classify(None).unwrap());
        // No PVID: untagged and priority-tagged frames go.
        v.del(vid(1));
        assert_eq!(v.classify(None), Err(DropReason::VlanNoPvid));
        assert_eq!(v.classify(tag(0)), Err(DropReason::VlanNoPvid));
        assert!(v.classify(tag(10)).is_ok());
    }

    #[test]
    fn flags_follow_bridge_vlan_add() {
        let mut v = PortVlans::default();
        // Adding VLAN 1 again without flags takes its PVID and untagged
        // flags away, as iproute2's `bridge vlan add dev p vid 1` does.
        v.add(vid(1), false, false);
        assert_eq!(v.pvid(), None);
        assert_eq!(v.egress(vid(1)), Some(false));
        v.add(vid(20), true, true);
        assert_eq!(v.pvid(), Some(vid(20)));
        assert_eq!(v.egress_op(vid(20), true), Some(TagOp::Pop));
        assert_eq!(v.egress_op(vid(20), false), Some(TagOp::Keep));
        assert_eq!(
            v.egress_op(vid(1), false),
            Some(TagOp::Push(VlanTag::new(1)))
        );
        assert_eq!(v.egress_op(vid(1), true), Some(TagOp::Keep));
        assert_eq!(v.egress_op(vid(30), true), None);
        assert!(v.del(vid(20)));
        assert!(!v.del(vid(20)));
        assert_eq!(v.pvid(), None);
    }

    #[test]
    fn vid_ranges() {
        assert_eq!(parse_vid_range("10"), Ok(10..=10));
        assert_eq!(parse_vid_range("10-20"), Ok(10..=20));
        assert!(parse_vid_range("0").is_err());
        assert!(parse_vid_range("4095").is_err());
        assert!(parse_vid_range("20-10").is_err());
        assert!(parse_vid_range("x").is_err());
    }
}
