//! The virtio-net header that rides in front of every frame.
//!
//! Linux veth peers and TAP devices hand over TCP segments of up to 64 KiB
//! (TSO/GSO) and frames whose L4 checksum is left for the device to fill in
//! (`CHECKSUM_PARTIAL`). Both AF_PACKET (`PACKET_VNET_HDR`) and TAP
//! (`IFF_VNET_HDR`) describe such a frame with this 10-byte header (virtio
//! 1.1, 5.1.6 "struct virtio_net_hdr"). patchbay carries it unchanged from
//! ingress to egress, so the kernel on the way out finishes segmentation and
//! checksums exactly as it would have for the sender.

use super::WireError;

/// Length of `struct virtio_net_hdr` (without `num_buffers`).
pub const VNET_HDR_LEN: usize = 10;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: checksum from `csum_start` still to do.
pub const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: checksum already verified.
pub const F_DATA_VALID: u8 = 2;

/// `gso_type` values.
pub const GSO_NONE: u8 = 0;
pub const GSO_TCPV4: u8 = 1;
pub const GSO_UDP: u8 = 3;
pub const GSO_TCPV6: u8 = 4;
pub const GSO_UDP_L4: u8 = 5;
pub const GSO_ECN: u8 = 0x80;

/// A view of a virtio-net header at the start of a byte buffer.
///
/// Multi-byte fields are in the host's byte order (little endian on the
/// machines we run on), as the kernel writes them for AF_PACKET and for TAP
/// devices without `TUNSETVNETBE`.
#[derive(Debug, Clone, Copy)]
pub struct VnetHdr<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> VnetHdr<T> {
    /// Checks that `buf` holds a whole header.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let len = buf.as_ref().len();
        if len < VNET_HDR_LEN {
            return Err(WireError::Truncated {
                len,
                need: VNET_HDR_LEN,
            });
        }
        Ok(VnetHdr { buf })
    }

    /// A view without the length check, for a frame known to start with a
    /// header (every frame in the pipeline does).
    pub fn new_unchecked(buf: T) -> Self {
        VnetHdr { buf }
    }

    fn u16_at(&self, at: usize) -> u16 {
        let b = self.buf.as_ref();
        u16::from_ne_bytes([b[at], b[at + 1]])
    }

    pub fn flags(&self) -> u8 {
        self.buf.as_ref()[0]
    }
    pub fn gso_type(&self) -> u8 {
        self.buf.as_ref()[1]
    }
    pub fn hdr_len(&self) -> u16 {
        self.u16_at(2)
    }
    pub fn gso_size(&self) -> u16 {
        self.u16_at(4)
    }
    pub fn csum_start(&self) -> u16 {
        self.u16_at(6)
    }
    pub fn csum_offset(&self) -> u16 {
        self.u16_at(8)
    }
    /// The transport checksum is left to the device (`NEEDS_CSUM`).
    pub fn needs_csum(&self) -> bool {
        self.flags() & F_NEEDS_CSUM != 0
    }
    /// A segmentation-offload super-frame (more than one wire packet).
    pub fn is_gso(&self) -> bool {
        self.gso_type() & !GSO_ECN != GSO_NONE
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VnetHdr<T> {
    fn set_u16_at(&mut self, at: usize, v: u16) {
        self.buf.as_mut()[at..at + 2].copy_from_slice(&v.to_ne_bytes());
    }
    pub fn set_hdr_len(&mut self, v: u16) {
        self.set_u16_at(2, v)
    }
    pub fn set_csum_start(&mut self, v: u16) {
        self.set_u16_at(6, v)
    }

    /// Describes a TCP super-frame whose checksum is left partial: the
    /// device segments it at `gso_size` bytes of payload, its headers
    /// `hdr_len` long, the TCP checksum field at `csum_start` + 16.
    pub fn set_tcp_gso(&mut self, v6: bool, hdr_len: u16, gso_size: u16, csum_start: u16) {
        let b = self.buf.as_mut();
        b[0] = F_NEEDS_CSUM;
        b[1] = if v6 { GSO_TCPV6 } else { GSO_TCPV4 };
        self.set_u16_at(2, hdr_len);
        self.set_u16_at(4, gso_size);
        self.set_u16_at(6, csum_start);
        self.set_u16_at(8, 16);
    }

    /// Adjusts the offsets after `n` bytes were inserted in front of the L3
    /// header (a VLAN tag put in), or taken out if `n` is negative.
    pub fn shift_offsets(&mut self, n: i16) {
        if self.flags() & F_NEEDS_CSUM != 0 {
            let v = self.csum_start().saturating_add_signed(n);
            self.set_csum_start(v);
        }
        if self.hdr_len() != 0 {
            let v = self.hdr_len().saturating_add_signed(n);
            self.set_hdr_len(v);
        }
    }

    /// The transport checksum is done: the device has nothing left to do.
    pub fn clear_needs_csum(&mut self) {
        self.buf.as_mut()[0] &= !F_NEEDS_CSUM;
    }

    /// Writes an empty header: a plain frame, checksums complete, no GSO.
    pub fn clear(&mut self) {
        self.buf.as_mut()[..VNET_HDR_LEN].fill(0);
    }
}

/// Does the device's work on a frame with `NEEDS_CSUM`: sums it from
/// `csum_start` to `end` (the end of the datagram) into the 16 bits at
/// `csum_start + csum_offset`, then clears the flag. `frame` is the header
/// and the Ethernet frame after it; `l4` and `end` are offsets in it of the
/// transport part of the datagram. The sender's offsets are believed only
/// inside that part (a checksum written into the IP header would change its
/// length): outside it, nothing is written and `false` comes back.
pub fn complete_checksum(frame: &mut [u8], l4: usize, end: usize) -> bool {
    let h = VnetHdr::new_unchecked(&frame[..VNET_HDR_LEN]);
    let start = VNET_HDR_LEN + usize::from(h.csum_start());
    let at = start + usize::from(h.csum_offset());
    if at + 2 > end || start >= end || start < l4 {
        return false;
    }
    let c = super::checksum::checksum(&frame[start..end]);
    frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
    VnetHdr::new_unchecked(&mut frame[..VNET_HDR_LEN]).clear_needs_csum();
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_tso_header() {
        // A 64 KiB TCPv4 super-frame as a veth peer hands it over: partial
        // checksum at 34 + 16, MSS 1448, headers 66 bytes.
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = F_NEEDS_CSUM;
        b[1] = GSO_TCPV4;
        b[2..4].copy_from_slice(&66u16.to_ne_bytes());
        b[4..6].copy_from_slice(&1448u16.to_ne_bytes());
        b[6..8].copy_from_slice(&34u16.to_ne_bytes());
        b[8..10].copy_from_slice(&16u16.to_ne_bytes());
        let mut h = VnetHdr::new_checked(&mut b[..]).unwrap();
        assert!(h.is_gso());
        assert_eq!(
            (h.hdr_len(), h.gso_size(), h.csum_start(), h.csum_offset()),
            (66, 1448, 34, 16)
        );
        h.shift_offsets(4);
        assert_eq!((h.hdr_len(), h.csum_start()), (70, 38));
        assert!(VnetHdr::new_checked(&b[..9]).is_err());
    }
}
