//! IEEE 802.1Q tags: the four bytes after an Ethernet frame's source MAC
//! (TPID, then priority, drop eligibility and VLAN id), and the header
//! rewrite that pushes or pops one as a frame leaves.

use super::vnet::{VnetHdr, VNET_HDR_LEN};

/// The TPID of a customer VLAN tag (802.1Q 9.5).
pub const TPID_8021Q: u16 = 0x8100;
/// The TPID of a service (S-) tag (802.1ad).
pub const TPID_8021AD: u16 = 0x88a8;
/// Length of one tag.
pub const VLAN_TAG_LEN: usize = 4;

/// One tag: its TPID and its tag control information.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTag {
    pub tpid: u16,
    pub tci: u16,
}

impl VlanTag {
    /// An 802.1Q tag for VLAN `vid`, priority 0.
    pub fn new(vid: u16) -> VlanTag {
        VlanTag {
            tpid: TPID_8021Q,
            tci: vid & 0x0fff,
        }
    }
    /// The VLAN id (0: a priority tag).
    pub fn vid(self) -> u16 {
        self.tci & 0x0fff
    }
    /// The priority code point.
    pub fn pcp(self) -> u8 {
        (self.tci >> 13) as u8
    }
}

impl std::fmt::Display for VlanTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.tpid {
            TPID_8021Q => write!(f, "802.1Q vid {}", self.vid())?,
            TPID_8021AD => write!(f, "802.1ad vid {}", self.vid())?,
            other => write!(f, "tpid {other:#06x} vid {}", self.vid())?,
        }
        if self.pcp() != 0 {
            write!(f, " pcp {}", self.pcp())?;
        }
        Ok(())
    }
}

/// The outer tag of the Ethernet frame `eth` (802.1Q or 802.1ad), if it
/// has one and is long enough to hold it and the EtherType after it.
#[inline]
pub fn outer_tag(eth: &[u8]) -> Option<VlanTag> {
    let b = eth.get(..14 + VLAN_TAG_LEN)?;
    let tpid = u16::from_be_bytes([b[12], b[13]]);
    (tpid == TPID_8021Q || tpid == TPID_8021AD).then(|| VlanTag {
        tpid,
        tci: u16::from_be_bytes([b[14], b[15]]),
    })
}

/// Sets the VLAN id of the outer tag of `eth` (which has one), keeping its
/// priority: a priority-tagged frame classified to its port's PVID.
pub fn set_outer_vid(eth: &mut [u8], vid: u16) {
    let tci = u16::from_be_bytes([eth[14], eth[15]]) & 0xf000 | vid & 0x0fff;
    eth[14..16].copy_from_slice(&tci.to_be_bytes());
}

/// Takes the outer tag out of `frame` (a virtio-net header and an Ethernet
/// frame that has one), in place: the header and the MACs move four bytes
/// on, and the GSO offsets follow. The frame is then `frame[4..]`.
pub fn pop_in_place(frame: &mut [u8]) {
    frame.copy_within(..VNET_HDR_LEN + 12, VLAN_TAG_LEN);
    VnetHdr::new_unchecked(&mut frame[VLAN_TAG_LEN..]).shift_offsets(-(VLAN_TAG_LEN as i16));
}

/// The longest rewritten head of a frame: its virtio-net header, the MACs
/// and a tag.
pub const HEAD_MAX: usize = VNET_HDR_LEN + 12 + VLAN_TAG_LEN;

/// Rewrites the head of `frame` (a virtio-net header and an Ethernet
/// frame) for a tag pushed (`Some`) or its outer tag popped (`None`): the
/// new head goes into `head`, and the frame is `head[..n]` followed by
/// `frame[rest..]`, where `(n, rest)` is returned. The GSO offsets in the
/// header follow the tag, so a TSO frame stays one. `None` if `frame` is
/// too short for the change (no tag to pop).
#[inline]
pub fn rewrite_head(
    frame: &[u8],
    push: Option<VlanTag>,
    head: &mut [u8; HEAD_MAX],
) -> Option<(usize, usize)> {
    let macs = VNET_HDR_LEN + 12;
    head[..macs].copy_from_slice(frame.get(..macs)?);
    let mut vnet = VnetHdr::new_unchecked(&mut head[..VNET_HDR_LEN]);
    match push {
        Some(tag) => {
            vnet.shift_offsets(VLAN_TAG_LEN as i16);
            head[macs..macs + 2].copy_from_slice(&tag.tpid.to_be_bytes());
            head[macs + 2..macs + 4].copy_from_slice(&tag.tci.to_be_bytes());
            Some((HEAD_MAX, macs))
        }
        None => {
            frame.get(macs + VLAN_TAG_LEN + 2 - 1)?;
            vnet.shift_offsets(-(VLAN_TAG_LEN as i16));
            Some((macs, macs + VLAN_TAG_LEN))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TSO frame as a veth peer hands it over: partial checksum from 34,
    /// headers 66 bytes; untagged, IPv4.
    fn tso_frame() -> Vec<u8> {
        let mut f = vec![0u8; VNET_HDR_LEN];
        f[0] = super::super::vnet::F_NEEDS_CSUM;
        f[1] = super::super::vnet::GSO_TCPV4;
        f[2..4].copy_from_slice(&66u16.to_ne_bytes());
        f[6..8].copy_from_slice(&34u16.to_ne_bytes());
        f.extend_from_slice(&[0xff; 6]);
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0x08, 0x00, 0x45]);
        f
    }

    #[test]
    fn push_then_pop_gives_the_frame_back_with_its_offsets() {
        let f = tso_frame();
        let mut head = [0u8; HEAD_MAX];
        let (n, rest) = rewrite_head(&f, Some(VlanTag::new(20)), &mut head).unwrap();
        let mut tagged = head[..n].to_vec();
        tagged.extend_from_slice(&f[rest..]);
        let eth = &tagged[VNET_HDR_LEN..];
        assert_eq!(outer_tag(eth), Some(VlanTag::new(20)));
        assert_eq!(&eth[16..18], &[0x08, 0x00]);
        let h = VnetHdr::new_unchecked(&tagged[..]);
        assert_eq!((h.hdr_len(), h.csum_start()), (70, 38));

        let (n, rest) = rewrite_head(&tagged, None, &mut head).unwrap();
        let mut back = head[..n].to_vec();
        back.extend_from_slice(&tagged[rest..]);
        assert_eq!(back, f);

        // In place, as the router takes a tagged frame.
        let mut inplace = tagged.clone();
        pop_in_place(&mut inplace);
        assert_eq!(&inplace[4..], &f[..]);
    }

    #[test]
    fn tags_in_words_and_priority_kept() {
        let mut eth = [0u8; 20];
        eth[12..14].copy_from_slice(&TPID_8021Q.to_be_bytes());
        eth[14..16].copy_from_slice(&(5u16 << 13).to_be_bytes());
        let t = outer_tag(&eth).unwrap();
        assert_eq!((t.vid(), t.pcp()), (0, 5));
        set_outer_vid(&mut eth, 30);
        assert_eq!(outer_tag(&eth).unwrap().to_string(), "802.1Q vid 30 pcp 5");
        assert_eq!(outer_tag(&eth[..17]), None);
        let mut head = [0u8; HEAD_MAX];
        assert_eq!(rewrite_head(&[0u8; 20], None, &mut head), None);
    }
}
