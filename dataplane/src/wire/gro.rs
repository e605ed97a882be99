//! Receive coalescing: consecutive TCP segments of one flow made into one
//! super-frame, as the kernel's GRO makes them (`tcp_gro_receive`), so
//! that a flow that came in as many datagrams leaves as one TSO frame for
//! the egress device (or the host's stack) to take whole.
//!
//! A segment joins the super-frame before it when everything but its
//! sequence number, payload, IPv4 identification and checksums is the
//! same: MACs, addresses, TTL or hop limit, TOS, ports, acknowledgment,
//! window and TCP options; its sequence number follows on; its flags are
//! ACK, or ACK and PSH (which ends the super-frame). Every segment but the
//! last carries the first one's payload size (the MSS the super-frame is
//! cut at again). Each segment's TCP checksum is checked before it joins:
//! the super-frame's is left partial, for the device, and would hide a bad
//! one. IPv4 without options and not fragmented, IPv6 without extension
//! headers, no VLAN tag: anything else stays as it came.

use super::checksum;
use super::vnet::VnetHdr;
use super::IpProtocol;

const TCP_ACK: u8 = 0x10;
const TCP_PSH: u8 = 0x08;
/// Segments a super-frame takes at most (the kernel's GRO takes 64 too).
const MAX_SEGS: u16 = 64;
/// The biggest IP packet a length field holds.
const MAX_IP_LEN: usize = 65_535;

/// A TCP super-frame being put together from segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Merge {
    l3: usize,
    l4: usize,
    /// Headers end (L2 through TCP options).
    hdr: usize,
    v6: bool,
    /// The first segment's payload size.
    mss: usize,
    next_seq: u32,
    segs: u16,
    /// A short segment or PSH came: nothing more joins.
    closed: bool,
}

/// Where the headers of a TCP segment `eth` are, if it is one GRO takes:
/// (L3 offset, L4 offset, end of headers, IPv6).
fn tcp_segment(eth: &[u8]) -> Option<(usize, usize, usize, bool)> {
    let l3 = 14;
    let (l4, v6) = match u16::from_be_bytes([*eth.get(12)?, *eth.get(13)?]) {
        super::ethernet::ETHERTYPE_IPV4 => {
            let ip = eth.get(l3..l3 + 20)?;
            let fragment = ip[6] & 0x3f != 0 || ip[7] != 0;
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            if ip[0] != 0x45 || fragment || ip[9] != u8::from(IpProtocol::Tcp) {
                return None;
            }
            // Exactly the packet: no Ethernet padding.
            (total == eth.len() - l3).then_some((l3 + 20, false))?
        }
        super::ethernet::ETHERTYPE_IPV6 => {
            let ip = eth.get(l3..l3 + 40)?;
            let payload = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            if ip[0] >> 4 != 6 || ip[6] != u8::from(IpProtocol::Tcp) {
                return None;
            }
            (payload == eth.len() - l3 - 40).then_some((l3 + 40, true))?
        }
        _ => return None,
    };
    let thl = usize::from(*eth.get(l4 + 12)? >> 4) * 4;
    let hdr = l4 + thl;
    (thl >= 20 && hdr < eth.len()).then_some((l3, l4, hdr, v6))
}

/// The running sum of the pseudo header of a TCP segment of `len` bytes.
fn pseudo(eth: &[u8], l3: usize, v6: bool, len: usize) -> u32 {
    checksum::pseudo_header_of(&eth[l3..], v6, IpProtocol::Tcp, len)
}

/// Whether the TCP checksum of the segment `eth` is right.
fn checksum_ok(eth: &[u8], l3: usize, l4: usize, v6: bool) -> bool {
    let sum = checksum::add(pseudo(eth, l3, v6, eth.len() - l4), &eth[l4..]);
    checksum::finish(sum) == 0
}

fn seq(eth: &[u8], l4: usize) -> u32 {
    u32::from_be_bytes(eth[l4 + 4..l4 + 8].try_into().expect("4 bytes"))
}

impl Merge {
    /// Starts a super-frame with the segment `eth` if others could join
    /// it: a TCP segment with payload, ACK alone set, checksum right.
    pub fn start(eth: &[u8]) -> Option<Merge> {
        let (l3, l4, hdr, v6) = tcp_segment(eth)?;
        if eth[l4 + 13] != TCP_ACK || !checksum_ok(eth, l3, l4, v6) {
            return None;
        }
        let mss = eth.len() - hdr;
        Some(Merge {
            l3,
            l4,
            hdr,
            v6,
            mss,
            next_seq: seq(eth, l4).wrapping_add(mss as u32),
            segs: 1,
            closed: false,
        })
    }

    /// Appends the segment `seg` to the super-frame, the first `len` bytes
    /// of `buf` (which has room for more), if it continues it; returns the
    /// super-frame's new length, or `None` with nothing changed.
    pub fn append(&mut self, buf: &mut [u8], len: usize, seg: &[u8]) -> Option<usize> {
        let (l3, l4, hdr) = (self.l3, self.l4, self.hdr);
        let sf = &buf[..len];
        if self.closed || self.segs >= MAX_SEGS || seg.len() <= hdr {
            return None;
        }
        let payload = seg.len() - hdr;
        let new_len = len + payload;
        if payload > self.mss || new_len - l3 > MAX_IP_LEN || new_len > buf.len() {
            return None;
        }
        let same = |r: std::ops::Range<usize>| seg[r.clone()] == sf[r];
        let ip_same = if self.v6 {
            // Version, class, flow label; next header, hop limit, addresses.
            same(l3..l3 + 4) && same(l3 + 6..l3 + 40)
        } else {
            // Version, IHL, TOS; flags, TTL, protocol; addresses.
            same(l3..l3 + 2) && same(l3 + 6..l3 + 10) && same(l3 + 12..l3 + 20)
        };
        let flags = seg[l4 + 13];
        if !same(0..l3)
            || !ip_same
            || tcp_segment(seg) != Some((l3, l4, hdr, self.v6))
            || !same(l4..l4 + 4)
            || seq(seg, l4) != self.next_seq
            || !same(l4 + 8..l4 + 13)
            || flags & !TCP_PSH != TCP_ACK
            || !same(l4 + 14..l4 + 16)
            || !same(l4 + 18..hdr)
            || !checksum_ok(seg, l3, l4, self.v6)
        {
            return None;
        }
        buf[len..new_len].copy_from_slice(&seg[hdr..]);
        if flags & TCP_PSH != 0 {
            buf[l4 + 13] |= TCP_PSH;
        }
        self.closed = payload < self.mss || flags & TCP_PSH != 0;
        self.next_seq = self.next_seq.wrapping_add(payload as u32);
        self.segs += 1;
        Some(new_len)
    }

    /// How many segments the super-frame holds.
    pub fn segments(&self) -> u16 {
        self.segs
    }

    /// Finishes the super-frame `eth` (of more than one segment): its IP
    /// length and header checksum, its TCP checksum left partial (the
    /// pseudo header's sum, as a sender's kernel leaves it), and the
    /// virtio-net header `vnet` that has the device cut it again at the
    /// first segment's size.
    pub fn finish(&self, vnet: &mut [u8], eth: &mut [u8]) {
        let (l3, l4) = (self.l3, self.l4);
        if self.v6 {
            let n = (eth.len() - l3 - 40) as u16;
            eth[l3 + 4..l3 + 6].copy_from_slice(&n.to_be_bytes());
        } else {
            let n = (eth.len() - l3) as u16;
            eth[l3 + 2..l3 + 4].copy_from_slice(&n.to_be_bytes());
            eth[l3 + 10..l3 + 12].fill(0);
            let c = checksum::checksum(&eth[l3..l4]);
            eth[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        }
        let partial = !checksum::finish(pseudo(eth, l3, self.v6, eth.len() - l4));
        eth[l4 + 16..l4 + 18].copy_from_slice(&partial.to_be_bytes());
        VnetHdr::new_unchecked(vnet).set_tcp_gso(
            self.v6,
            self.hdr as u16,
            self.mss as u16,
            l4 as u16,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::gso::segment;
    use crate::wire::gso::tests::Frames;
    use crate::wire::vnet::VNET_HDR_LEN;

    /// A TCP/IPv4 segment 10.0.0.1:1000 -> 10.0.0.2:80 with `payload`
    /// bytes from `seq`, flags `flags`, a full checksum; its IPv4
    /// identification counts up with `seq` (by 1448).
    fn seg(seq: u32, payload: &[u8], flags: u8) -> Vec<u8> {
        let id = 0x1234 + (seq.saturating_sub(100) / 1448) as u16;
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        let total = (20 + 20 + payload.len()) as u16;
        f.extend_from_slice(&[0x45, 0, 0, 0]);
        f.extend_from_slice(&id.to_be_bytes());
        f.extend_from_slice(&[0x40, 0, 64, 6, 0, 0]);
        f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        f[16..18].copy_from_slice(&total.to_be_bytes());
        let c = checksum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&[0x03, 0xe8, 0, 80]);
        f.extend_from_slice(&seq.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 1, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        f.extend_from_slice(payload);
        let sum = pseudo(&f, 14, false, f.len() - 34);
        let c = checksum::finish(checksum::add(sum, &f[34..]));
        f[50..52].copy_from_slice(&c.to_be_bytes());
        f
    }

    #[test]
    fn segments_of_a_flow_become_one_super_frame_that_segments_back() {
        let data: Vec<u8> = (0..3500u32).map(|i| i as u8).collect();
        let segs = [
            seg(100, &data[..1448], TCP_ACK),
            seg(1548, &data[1448..2896], TCP_ACK),
            seg(2996, &data[2896..], TCP_ACK | TCP_PSH),
        ];
        let mut buf = vec![0u8; VNET_HDR_LEN + 65_536];
        let (vnet, eth) = buf.split_at_mut(VNET_HDR_LEN);
        eth[..segs[0].len()].copy_from_slice(&segs[0]);
        let mut m = Merge::start(&segs[0]).expect("a segment to start with");
        let mut len = segs[0].len();
        for s in &segs[1..] {
            len = m.append(eth, len, s).expect("joins");
        }
        assert_eq!(m.segments(), 3);
        assert_eq!(
            m.append(eth, len, &seg(3600, &[1], TCP_ACK)),
            None,
            "PSH ended it"
        );
        m.finish(vnet, &mut eth[..len]);
        let h = VnetHdr::new_unchecked(&vnet[..]);
        assert_eq!((h.gso_size(), h.hdr_len(), h.csum_start()), (1448, 54, 34));
        // Cut again (as the device would), it is the segments that came.
        let mut out = Frames::default();
        segment(&buf[..VNET_HDR_LEN + len], &mut out).unwrap();
        assert_eq!(out.0, segs);
    }

    /// `seg` made IPv6 (2001:db8::1 -> 2001:db8::2), checksum anew.
    fn seg6(seq: u32, payload: &[u8], flags: u8) -> Vec<u8> {
        let v4 = seg(seq, payload, flags);
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd];
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[6, 64]);
        f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        f.extend_from_slice(&v4[34..]);
        f[54 + 16..54 + 18].fill(0);
        let sum = pseudo(&f, 14, true, f.len() - 54);
        let c = checksum::finish(checksum::add(sum, &f[54..]));
        f[54 + 16..54 + 18].copy_from_slice(&c.to_be_bytes());
        f
    }

    #[test]
    fn ipv6_segments_merge_and_segment_back_too() {
        let segs = [
            seg6(100, &[1; 1428], TCP_ACK),
            seg6(1528, &[2; 1428], TCP_ACK),
            seg6(2956, &[3; 500], TCP_ACK),
        ];
        let mut buf = vec![0u8; VNET_HDR_LEN + 65_536];
        let (vnet, eth) = buf.split_at_mut(VNET_HDR_LEN);
        eth[..segs[0].len()].copy_from_slice(&segs[0]);
        let mut m = Merge::start(&segs[0]).expect("IPv6 TCP");
        let mut len = segs[0].len();
        for s in &segs[1..] {
            len = m.append(eth, len, s).expect("joins");
        }
        m.finish(vnet, &mut eth[..len]);
        assert_eq!(
            VnetHdr::new_unchecked(&vnet[..]).gso_type(),
            crate::wire::vnet::GSO_TCPV6
        );
        let mut out = Frames::default();
        segment(&buf[..VNET_HDR_LEN + len], &mut out).unwrap();
        assert_eq!(out.0, segs);
    }

    #[test]
    fn what_does_not_continue_the_flow_stays_out() {
        let first = seg(100, &[7; 1000], TCP_ACK);
        let mut buf = vec![0u8; 65_536];
        buf[..first.len()].copy_from_slice(&first);
        let start = Merge::start(&first).unwrap();
        let len = first.len();
        let mut bad_sum = seg(1100, &[7; 1000], TCP_ACK);
        bad_sum[60] ^= 1;
        let mut other_port = seg(1100, &[7; 1000], TCP_ACK);
        other_port[37] = 81;
        let other_port = {
            // Its checksum made right again: only the port differs.
            let mut f = other_port;
            f[50..52].fill(0);
            let c = checksum::finish(checksum::add(pseudo(&f, 14, false, f.len() - 34), &f[34..]));
            f[50..52].copy_from_slice(&c.to_be_bytes());
            f
        };
        for (what, s) in [
            ("a gap in sequence", seg(1200, &[7; 1000], TCP_ACK)),
            ("bigger than the first", seg(1100, &[7; 1001], TCP_ACK)),
            ("a bad checksum", bad_sum),
            ("another port", other_port),
            ("FIN", seg(1100, &[7; 1000], TCP_ACK | 0x01)),
            ("no payload", seg(1100, &[], TCP_ACK)),
        ] {
            let mut m = start;
            assert_eq!(m.append(&mut buf, len, &s), None, "{what}");
            assert_eq!(m, start, "{what}: nothing changed");
        }
        assert_eq!(Merge::start(&seg(1, &[1], TCP_ACK | TCP_PSH)), None);
        assert_eq!(Merge::start(&seg(1, &[], TCP_ACK)), None);
        // Odd frames never panic.
        for n in 0..first.len() {
            let mut m = start;
            let _ = Merge::start(&first[..n]);
            let _ = m.append(&mut buf, len, &first[..n]);
        }
    }

    #[test]
    fn mutated_segments_never_panic_and_never_join_unless_whole() {
        // 20,000 segments with bytes flipped at random places: whatever
        // joins must still checksum right, as the device will trust it.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let first = seg(100, &[3; 1448], TCP_ACK);
        let start = Merge::start(&first).unwrap();
        let mut buf = vec![0u8; 65_536];
        buf[..first.len()].copy_from_slice(&first);
        for _ in 0..20_000 {
            let mut s = seg(1548, &[3; 1448], TCP_ACK);
            for _ in 0..1 + next() % 3 {
                let at = (next() as usize) % s.len();
                s[at] ^= 1 << (next() % 8);
            }
            if next() % 4 == 0 {
                s.truncate((next() as usize) % s.len());
            }
            let _ = Merge::start(&s);
            let mut m = start;
            if let Some(n) = m.append(&mut buf, first.len(), &s) {
                assert_eq!(&buf[first.len()..n], &s[54..], "the payload as it came");
                assert!(checksum_ok(&s, 14, 34, false), "a joined segment checks");
            }
        }
    }
}
