//! The VXLAN header (RFC 7348 5): eight bytes in front of the inner
//! Ethernet frame, in a UDP datagram to port 4789.
//!
//! ```text
//! |R|R|R|R|I|R|R|R|   reserved (24)   |
//! |        VNI (24)           | reserved (8) |
//! ```

/// Length of the header.
pub const VXLAN_HDR_LEN: usize = 8;
/// The IANA port (RFC 7348 5).
pub const VXLAN_PORT: u16 = 4789;
/// The I flag: the VNI is valid. The only flag RFC 7348 defines.
const FLAG_I: u8 = 0x08;
/// IPv4 + UDP + VXLAN + inner Ethernet: what encapsulation adds to an
/// inner IPv4 packet on the underlay (RFC 7348 4.3).
pub const OVERHEAD: usize = 20 + 8 + VXLAN_HDR_LEN + 14;

/// Why a datagram is not a VXLAN frame of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VxlanError {
    /// Shorter than the header and an Ethernet header.
    Short,
    /// The I flag is not set, or another flag is.
    Flags,
    /// Another VNI than the port's.
    Vni(u32),
}

/// The VNI of the datagram `d` (VXLAN header, then the inner frame), if it
/// is a well-formed VXLAN frame for `vni`.
#[inline]
pub fn check(d: &[u8], vni: u32) -> Result<(), VxlanError> {
    if d.len() < VXLAN_HDR_LEN + 14 {
        return Err(VxlanError::Short);
    }
    // The reserved fields are ignored on receipt (RFC 7348 5); the flags
    // byte must be exactly I.
    if d[0] != FLAG_I {
        return Err(VxlanError::Flags);
    }
    let got = u32::from_be_bytes([0, d[4], d[5], d[6]]);
    if got != vni {
        return Err(VxlanError::Vni(got));
    }
    Ok(())
}

/// Writes a header for `vni` into `b` (8 bytes).
#[inline]
pub fn emit(b: &mut [u8], vni: u32) {
    b[..VXLAN_HDR_LEN].copy_from_slice(&[
        FLAG_I,
        0,
        0,
        0,
        (vni >> 16) as u8,
        (vni >> 8) as u8,
        vni as u8,
        0,
    ]);
}

/// The VNIs a VXLAN id can be: 24 bits.
pub const VNI_MAX: u32 = (1 << 24) - 1;

/// A hash of the inner frame's flow, for the outer UDP source port (RFC
/// 7348 5: entropy for the underlay's ECMP and RSS): its MACs and
/// EtherType and, for IPv4 and IPv6 (after one 802.1Q tag, if any), the
/// protocol, addresses and the first four bytes after the IP header (TCP
/// and UDP ports). Fields that change from packet to packet of one flow
/// (lengths, identification, checksums) are left out: a flow keeps one
/// source port.
pub fn flow_hash(eth: &[u8]) -> u64 {
    fn fnv(h: u64, bytes: &[u8]) -> u64 {
        bytes
            .iter()
            .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
    }
    let mut h = fnv(0xcbf2_9ce4_8422_2325, eth.get(..14).unwrap_or(eth));
    let mut l3 = 14;
    let mut ethertype = eth
        .get(12..14)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    if ethertype == super::vlan::TPID_8021Q {
        h = fnv(h, eth.get(14..18).unwrap_or(&[]));
        ethertype = eth
            .get(16..18)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
        l3 = 18;
    }
    let (proto, addrs, l4) = match ethertype {
        super::ethernet::ETHERTYPE_IPV4 => {
            let ihl = eth.get(l3).map_or(20, |b| usize::from(b & 0x0f) * 4);
            let fragment = eth
                .get(l3 + 6..l3 + 8)
                .is_some_and(|f| f[0] & 0x3f != 0 || f[1] != 0);
            let l4 = (!fragment).then_some(l3 + ihl);
            (l3 + 9, l3 + 12..l3 + 20, l4)
        }
        super::ethernet::ETHERTYPE_IPV6 => (l3 + 6, l3 + 8..l3 + 40, Some(l3 + 40)),
        _ => return h,
    };
    h = fnv(h, eth.get(proto..proto + 1).unwrap_or(&[]));
    h = fnv(h, eth.get(addrs).unwrap_or(&[]));
    if let Some(l4) = l4 {
        h = fnv(h, eth.get(l4..l4 + 4).unwrap_or(&[]));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_hashes_the_same_whatever_its_lengths_and_identification() {
        // IPv4 UDP 10.0.0.1:1000 -> 10.0.0.2:2000.
        let mut a = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        a.extend_from_slice(&[
            0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 17, 0xab, 0xcd, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        a.extend_from_slice(&[0x03, 0xe8, 0x07, 0xd0, 0, 20, 0x12, 0x34]);
        a.extend_from_slice(&[7; 12]);
        let mut b = a.clone();
        b[16..18].copy_from_slice(&1400u16.to_be_bytes()); // total length
        b[18..20].copy_from_slice(&[0x99, 0x98]); // identification
        b[24..26].copy_from_slice(&[0, 0]); // header checksum
        b[40..42].copy_from_slice(&[0x55, 0x55]); // UDP checksum
        b.truncate(30);
        b.extend_from_slice(&a[30..42]);
        assert_eq!(flow_hash(&a), flow_hash(&b));
        let mut c = a.clone();
        c[35] = 0xd1; // another destination port
        assert_ne!(flow_hash(&a), flow_hash(&c));
        // Short and odd frames hash without a panic.
        for n in 0..a.len() {
            let _ = flow_hash(&a[..n]);
        }
    }

    #[test]
    fn header_round_trip_and_refusals() {
        let mut d = vec![0u8; VXLAN_HDR_LEN + 14];
        emit(&mut d, 42);
        assert_eq!(&d[..8], &[0x08, 0, 0, 0, 0, 0, 42, 0]);
        assert_eq!(check(&d, 42), Ok(()));
        assert_eq!(check(&d, 43), Err(VxlanError::Vni(42)));
        assert_eq!(check(&d[..20], 42), Err(VxlanError::Short));
        d[0] = 0x0c;
        assert_eq!(check(&d, 42), Err(VxlanError::Flags));
        d[0] = 0;
        assert_eq!(check(&d, 42), Err(VxlanError::Flags));
    }
}
