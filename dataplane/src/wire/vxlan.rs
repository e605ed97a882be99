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

#[cfg(test)]
mod tests {
    use super::*;

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
