//! Ethernet II frames (IEEE 802.3 clause 3).

use super::{Mac, WireError};

/// Destination, source and EtherType.
pub const ETHERNET_HDR_LEN: usize = 14;
/// The shortest frame, frame check sequence left out (IEEE 802.3 4.4.2:
/// 64 bytes with it): shorter ones are padded.
pub const ETHERNET_MIN_LEN: usize = 60;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// Whether `eth` is broadcast ARP (a request or an announcement), which a
/// bridge floods and shows its router too.
pub fn is_broadcast_arp(eth: &[u8]) -> bool {
    EthernetFrame::new_checked(eth)
        .is_ok_and(|e| e.ethertype() == ETHERTYPE_ARP && e.dst().is_broadcast())
}

/// Whether `eth` is IPv6 to a multicast group (33:33:..., RFC 2464 7),
/// which a bridge floods and shows its router too.
pub fn is_ipv6_multicast(eth: &[u8]) -> bool {
    EthernetFrame::new_checked(eth)
        .is_ok_and(|e| e.ethertype() == ETHERTYPE_IPV6 && e.dst().0[..2] == [0x33, 0x33])
}

/// A zero-copy view of an Ethernet frame; the header length is checked once
/// by [`EthernetFrame::new_checked`].
#[derive(Debug, Clone, Copy)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let len = buf.as_ref().len();
        if len < ETHERNET_HDR_LEN {
            return Err(WireError::Truncated {
                len,
                need: ETHERNET_HDR_LEN,
            });
        }
        Ok(EthernetFrame { buf })
    }

    pub fn dst(&self) -> Mac {
        Mac::from_slice(&self.buf.as_ref()[0..6])
    }
    pub fn src(&self) -> Mac {
        Mac::from_slice(&self.buf.as_ref()[6..12])
    }
    pub fn ethertype(&self) -> u16 {
        let b = self.buf.as_ref();
        u16::from_be_bytes([b[12], b[13]])
    }
    /// A view without the length check, for a buffer known to hold a
    /// header (one the caller made, or checked longer).
    pub fn new_unchecked(buf: T) -> Self {
        EthernetFrame { buf }
    }
    pub fn len(&self) -> usize {
        self.buf.as_ref().len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    pub fn set_dst(&mut self, mac: Mac) {
        self.buf.as_mut()[0..6].copy_from_slice(&mac.0);
    }
    pub fn set_src(&mut self, mac: Mac) {
        self.buf.as_mut()[6..12].copy_from_slice(&mac.0);
    }
    pub fn set_ethertype(&mut self, ethertype: u16) {
        self.buf.as_mut()[12..14].copy_from_slice(&ethertype.to_be_bytes());
    }
    /// Writes a whole header: destination, source and EtherType.
    pub fn emit(&mut self, dst: Mac, src: Mac, ethertype: u16) {
        self.set_dst(dst);
        self.set_src(src);
        self.set_ethertype(ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_header_fields() {
        // An ARP request from 02:00:00:00:00:01 to broadcast.
        let f = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x08, 0x06, 0, 1,
        ];
        let e = EthernetFrame::new_checked(&f[..]).unwrap();
        assert!(e.dst().is_broadcast());
        assert_eq!(e.src().to_string(), "02:00:00:00:00:01");
        assert_eq!(e.ethertype(), 0x0806);
        assert!(EthernetFrame::new_checked(&f[..13]).is_err());
        let mut g = [0u8; 14];
        let mut e = EthernetFrame::new_unchecked(&mut g[..]);
        e.emit(Mac::BROADCAST, "02:00:00:00:00:01".parse().unwrap(), 0x0806);
        assert_eq!(&g[..], &f[..14]);
    }
}
