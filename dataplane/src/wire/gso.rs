//! Software segmentation: what a NIC does to a TSO super-frame, done where
//! no device will (before VXLAN encapsulation: the frame leaves inside a
//! UDP datagram, which nothing segments after us).
//!
//! A super-frame (virtio-net header with `gso_type` TCPV4 or TCPV6 and
//! `gso_size`, the MSS) becomes frames of at most MSS bytes of payload, each
//! with its own IP header (total or payload length; IPv4's identification
//! counted up and header checksum), TCP sequence number, flags (FIN and PSH
//! on the last segment only, CWR on the first only) and full TCP checksum.
//! A frame that only leaves its checksum to the device (`NEEDS_CSUM`) gets
//! it filled in.

use super::checksum;
use super::ethernet::{ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use super::vnet::{VnetHdr, GSO_NONE, GSO_TCPV4, GSO_TCPV6, VNET_HDR_LEN};
use super::IpProtocol;

/// Why a frame could not be made into wire frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GsoError {
    /// Headers cut short, or offsets that do not fit the frame.
    Malformed,
    /// A GSO type other than TCP over IPv4 or IPv6 (UDP fragmentation
    /// offload, ...).
    Unsupported,
}

const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// Where the headers of `eth` are: L3 offset, L4 offset, and whether it is
/// IPv6.
fn offsets(eth: &[u8]) -> Result<(usize, usize, bool), GsoError> {
    let mut l3 = 14;
    let mut ethertype = u16::from_be_bytes([
        *eth.get(12).ok_or(GsoError::Malformed)?,
        *eth.get(13).ok_or(GsoError::Malformed)?,
    ]);
    if ethertype == super::vlan::TPID_8021Q || ethertype == super::vlan::TPID_8021AD {
        let b = eth.get(16..18).ok_or(GsoError::Malformed)?;
        ethertype = u16::from_be_bytes([b[0], b[1]]);
        l3 = 18;
    }
    match ethertype {
        ETHERTYPE_IPV4 => {
            let ihl = usize::from(eth.get(l3).ok_or(GsoError::Malformed)? & 0x0f) * 4;
            if ihl < 20 || eth.get(l3 + 9) != Some(&u8::from(IpProtocol::Tcp)) {
                return Err(GsoError::Unsupported);
            }
            Ok((l3, l3 + ihl, false))
        }
        ETHERTYPE_IPV6 => {
            if eth.get(l3 + 6) != Some(&u8::from(IpProtocol::Tcp)) {
                return Err(GsoError::Unsupported);
            }
            Ok((l3, l3 + 40, true))
        }
        _ => Err(GsoError::Unsupported),
    }
}

/// The TCP checksum of the segment `eth[l4..]`, written in.
fn fill_tcp_checksum(eth: &mut [u8], l3: usize, l4: usize, v6: bool) {
    let len = eth.len() - l4;
    eth[l4 + 16..l4 + 18].fill(0);
    let sum = checksum::pseudo_header_of(&eth[l3..], v6, IpProtocol::Tcp, len);
    let c = checksum::finish(checksum::add(sum, &eth[l4..]));
    eth[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
}

/// Fills in the transport checksum of `eth` (an Ethernet frame, IPv4 or
/// IPv6, TCP or UDP, not a fragment) if it was left partial: the field
/// holds only the pseudo header's sum, as a sender's kernel leaves it for a
/// device to finish. Frames that crossed a veth inside a tunnel arrive so.
/// A checksum that is complete, or simply wrong, is left alone. Returns
/// whether it filled one in.
pub fn complete_partial(eth: &mut [u8]) -> bool {
    let Ok((l3, l4, v6, proto)) = transport(eth) else {
        return false;
    };
    let field = if proto == IpProtocol::Tcp {
        l4 + 16
    } else {
        l4 + 6
    };
    let end = if v6 {
        l3 + 40 + usize::from(u16::from_be_bytes([eth[l3 + 4], eth[l3 + 5]]))
    } else {
        if eth[l3 + 6] & 0x3f != 0 || eth[l3 + 7] != 0 {
            return false; // a fragment
        }
        l3 + usize::from(u16::from_be_bytes([eth[l3 + 2], eth[l3 + 3]]))
    };
    if end > eth.len() || field + 2 > end {
        return false;
    }
    let pseudo = checksum::pseudo_header_of(&eth[l3..], v6, proto, end - l4);
    let partial = !checksum::finish(pseudo);
    if u16::from_be_bytes([eth[field], eth[field + 1]]) != partial {
        return false;
    }
    eth[field..field + 2].fill(0);
    let mut c = checksum::finish(checksum::add(pseudo, &eth[l4..end]));
    if c == 0 && proto == IpProtocol::Udp {
        c = 0xffff;
    }
    eth[field..field + 2].copy_from_slice(&c.to_be_bytes());
    true
}

/// For a TCP super-frame that arrived whole (a tunnel delivers one as a
/// single datagram), writes the virtio-net header `vnet` that has the
/// egress device segment it: segments of at most `mtu` bytes of IP packet,
/// its checksum finished per segment. Returns false for anything else (the
/// header is left alone).
pub fn describe_super_frame(eth: &[u8], mtu: usize, vnet: &mut [u8]) -> bool {
    let Ok((l3, l4, v6, IpProtocol::Tcp)) = transport(eth) else {
        return false;
    };
    let Some(&off) = eth.get(l4 + 12) else {
        return false;
    };
    let thl = usize::from(off >> 4) * 4;
    let hdr = l4 + thl;
    let ip_hdr = l4 - l3;
    if thl < 20 || hdr >= eth.len() || mtu <= ip_hdr + thl {
        return false;
    }
    let mss = (mtu - ip_hdr - thl) as u16;
    VnetHdr::new_unchecked(vnet).set_tcp_gso(v6, hdr as u16, mss, l4 as u16);
    true
}

/// L3 and L4 offsets of a TCP or UDP packet in `eth`, IPv6 or not, and
/// which transport.
fn transport(eth: &[u8]) -> Result<(usize, usize, bool, IpProtocol), GsoError> {
    let mut l3 = 14;
    let mut ethertype = u16::from_be_bytes([
        *eth.get(12).ok_or(GsoError::Malformed)?,
        *eth.get(13).ok_or(GsoError::Malformed)?,
    ]);
    if ethertype == super::vlan::TPID_8021Q {
        let b = eth.get(16..18).ok_or(GsoError::Malformed)?;
        ethertype = u16::from_be_bytes([b[0], b[1]]);
        l3 = 18;
    }
    let (l4, v6, proto) = match ethertype {
        ETHERTYPE_IPV4 => {
            let ihl = usize::from(eth.get(l3).ok_or(GsoError::Malformed)? & 0x0f) * 4;
            let p = *eth.get(l3 + 9).ok_or(GsoError::Malformed)?;
            (l3 + ihl.max(20), false, p)
        }
        ETHERTYPE_IPV6 => (l3 + 40, true, *eth.get(l3 + 6).ok_or(GsoError::Malformed)?),
        _ => return Err(GsoError::Unsupported),
    };
    let proto = IpProtocol::from(proto);
    if !matches!(proto, IpProtocol::Tcp | IpProtocol::Udp) || eth.len() < l4 + 8 {
        return Err(GsoError::Unsupported);
    }
    Ok((l3, l4, v6, proto))
}

/// Where [`segment`] writes the wire frames it makes.
pub trait SegmentSink {
    /// Room for the next frame, exactly `len` bytes, which [`segment`]
    /// then fills; `None` skips that frame (too big for the sink, say).
    fn room(&mut self, len: usize) -> Option<&mut [u8]>;
}

/// Makes `frame` (virtio-net header and Ethernet frame) into wire frames
/// (Ethernet, no header), each written straight into the room `sink`
/// gives: one copy of every byte, the checksum read from where it landed.
/// Returns how many frames were made (skipped ones included).
pub fn segment(frame: &[u8], sink: &mut impl SegmentSink) -> Result<usize, GsoError> {
    let vnet = VnetHdr::new_checked(frame).map_err(|_| GsoError::Malformed)?;
    let eth = &frame[VNET_HDR_LEN..];
    let gso = vnet.gso_type() & !super::vnet::GSO_ECN;
    if gso == GSO_NONE {
        let start = usize::from(vnet.csum_start());
        let at = start + usize::from(vnet.csum_offset());
        if vnet.needs_csum() && (at + 2 > eth.len() || start >= eth.len()) {
            return Err(GsoError::Malformed);
        }
        if let Some(out) = sink.room(eth.len()) {
            out.copy_from_slice(eth);
            if vnet.needs_csum() {
                let c = checksum::checksum(&out[start..]);
                out[at..at + 2].copy_from_slice(&c.to_be_bytes());
            }
        }
        return Ok(1);
    }
    if gso != GSO_TCPV4 && gso != GSO_TCPV6 {
        return Err(GsoError::Unsupported);
    }
    let (l3, l4, v6) = offsets(eth)?;
    if v6 != (gso == GSO_TCPV6) {
        return Err(GsoError::Malformed);
    }
    let thl = usize::from(*eth.get(l4 + 12).ok_or(GsoError::Malformed)? >> 4) * 4;
    let hdr = l4 + thl;
    let mss = usize::from(vnet.gso_size());
    if thl < 20 || hdr > eth.len() || mss == 0 {
        return Err(GsoError::Malformed);
    }
    let payload = &eth[hdr..];
    let seq0 = u32::from_be_bytes(eth[l4 + 4..l4 + 8].try_into().expect("4 bytes"));
    let ident0 = u16::from_be_bytes([eth[l3 + 4], eth[l3 + 5]]);
    let flags0 = eth[l4 + 13];
    let count = payload.len().div_ceil(mss).max(1);
    for i in 0..count {
        let chunk = &payload[(i * mss).min(payload.len())..((i + 1) * mss).min(payload.len())];
        let len = hdr + chunk.len();
        let Some(s) = sink.room(len) else {
            continue;
        };
        s[..hdr].copy_from_slice(&eth[..hdr]);
        s[hdr..].copy_from_slice(chunk);
        if v6 {
            s[l3 + 4..l3 + 6].copy_from_slice(&((len - l3 - 40) as u16).to_be_bytes());
        } else {
            s[l3 + 2..l3 + 4].copy_from_slice(&((len - l3) as u16).to_be_bytes());
            s[l3 + 4..l3 + 6].copy_from_slice(&ident0.wrapping_add(i as u16).to_be_bytes());
            s[l3 + 10..l3 + 12].fill(0);
            let c = checksum::checksum(&s[l3..l4]);
            s[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        }
        let seq = seq0.wrapping_add((i * mss) as u32);
        s[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
        let mut flags = flags0;
        if i + 1 < count {
            flags &= !(TCP_FIN | TCP_PSH);
        }
        if i > 0 {
            flags &= !TCP_CWR;
        }
        s[l4 + 13] = flags;
        fill_tcp_checksum(s, l3, l4, v6);
    }
    Ok(count)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::vnet::F_NEEDS_CSUM;

    /// A TSO frame: IPv4 10.0.0.1 -> 10.0.0.2, TCP 1000 -> 80, seq 7,
    /// flags ACK|PSH|FIN, `len` bytes of payload, MSS `mss`.
    fn tso(len: usize, mss: u16) -> Vec<u8> {
        let mut f = vec![0u8; VNET_HDR_LEN];
        f[0] = F_NEEDS_CSUM;
        f[1] = GSO_TCPV4;
        f[2..4].copy_from_slice(&54u16.to_ne_bytes());
        f[4..6].copy_from_slice(&mss.to_ne_bytes());
        f[6..8].copy_from_slice(&34u16.to_ne_bytes());
        f[8..10].copy_from_slice(&16u16.to_ne_bytes());
        f.extend_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]);
        let total = (20 + 20 + len) as u16;
        f.extend_from_slice(&[
            0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        let l3 = VNET_HDR_LEN + 14;
        f[l3 + 2..l3 + 4].copy_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[
            0x03, 0xe8, 0, 80, 0, 0, 0, 7, 0, 0, 0, 1, 0x50, 0x19, 0xff, 0xff, 0, 0, 0, 0,
        ]);
        f.extend((0..len).map(|i| i as u8));
        f
    }

    /// Each frame made, in a Vec of its own.
    #[derive(Default)]
    pub(crate) struct Frames(pub(crate) Vec<Vec<u8>>);

    impl SegmentSink for Frames {
        fn room(&mut self, len: usize) -> Option<&mut [u8]> {
            self.0.push(vec![0; len]);
            self.0.last_mut().map(|v| &mut v[..])
        }
    }

    fn frames(frame: &[u8]) -> Result<Vec<Vec<u8>>, GsoError> {
        let mut out = Frames::default();
        let n = segment(frame, &mut out)?;
        assert_eq!(n, out.0.len());
        Ok(out.0)
    }

    fn tcp_ok(eth: &[u8]) -> bool {
        let l4 = &eth[34..];
        let sum = checksum::pseudo_header(
            [10, 0, 0, 1].into(),
            [10, 0, 0, 2].into(),
            IpProtocol::Tcp,
            l4.len() as u16,
        );
        checksum::finish(checksum::add(sum, l4)) == 0
    }

    #[test]
    fn a_tso_frame_becomes_mss_sized_segments_with_their_own_headers() {
        let f = tso(3000, 1448);
        let segs = frames(&f).unwrap();
        assert_eq!(segs.len(), 3);
        let sizes: Vec<usize> = segs.iter().map(|s| s.len() - 54).collect();
        assert_eq!(sizes, [1448, 1448, 104]);
        let mut payload = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            assert_eq!(checksum::checksum(&s[14..34]), 0, "IPv4 header checksum");
            assert_eq!(u16::from_be_bytes([s[16], s[17]]) as usize, s.len() - 14);
            assert_eq!(u16::from_be_bytes([s[18], s[19]]), 0x1234 + i as u16);
            let seq = u32::from_be_bytes(s[38..42].try_into().unwrap());
            assert_eq!(seq, 7 + 1448 * i as u32);
            let last = i == 2;
            assert_eq!(
                s[47] & (TCP_FIN | TCP_PSH) != 0,
                last,
                "FIN/PSH on the last only"
            );
            assert!(tcp_ok(s), "segment {i} checksum");
            payload.extend_from_slice(&s[54..]);
        }
        assert_eq!(payload, (0..3000).map(|i| i as u8).collect::<Vec<_>>());
    }

    #[test]
    fn a_partial_checksum_is_filled_in_and_plain_frames_pass() {
        let mut f = tso(100, 1448);
        f[1] = GSO_NONE;
        // As the kernel hands it over: the pseudo header's sum, folded and
        // not complemented, in the checksum field.
        let pseudo = checksum::pseudo_header(
            [10, 0, 0, 1].into(),
            [10, 0, 0, 2].into(),
            IpProtocol::Tcp,
            120,
        );
        let folded = !checksum::finish(pseudo);
        let at = VNET_HDR_LEN + 34 + 16;
        f[at..at + 2].copy_from_slice(&folded.to_be_bytes());
        let got = frames(&f).unwrap().remove(0);
        assert!(tcp_ok(&got));
        // The same, finished where it is (a tunnel's inner frame).
        let mut eth = f[VNET_HDR_LEN..].to_vec();
        assert!(complete_partial(&mut eth));
        assert_eq!(eth, got);
        assert!(
            !complete_partial(&mut eth),
            "a complete checksum is left alone"
        );
        f[0] = 0;
        assert_eq!(frames(&f).unwrap(), [f[VNET_HDR_LEN..].to_vec()]);
        // UDP fragmentation offload is not done here.
        f[1] = crate::wire::vnet::GSO_UDP;
        assert_eq!(frames(&f), Err(GsoError::Unsupported));
        assert_eq!(frames(&f[..20]), Err(GsoError::Unsupported));
    }
}
