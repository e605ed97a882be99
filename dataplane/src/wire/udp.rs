//! UDP headers (RFC 768).

/// Source and destination port, length and checksum.
pub const UDP_HDR_LEN: usize = 8;

/// The source and destination ports at the start of a UDP or TCP header
/// (RFC 768, RFC 9293 3.1 lay them out alike), from its first 4 bytes:
/// all a filter needs of a segment cut short.
pub fn ports(l4: &[u8]) -> Option<(u16, u16)> {
    match *l4 {
        [a, b, c, d, ..] => Some((u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]))),
        _ => None,
    }
}

/// A zero-copy view of a UDP header; [`UdpPacket::new_checked`] checks
/// once that its 8 bytes are there.
#[derive(Debug, Clone, Copy)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    pub fn new_checked(buf: T) -> Option<Self> {
        (buf.as_ref().len() >= UDP_HDR_LEN).then_some(UdpPacket { buf })
    }
    pub fn new_unchecked(buf: T) -> Self {
        UdpPacket { buf }
    }
    fn word(&self, at: usize) -> u16 {
        let b = self.buf.as_ref();
        u16::from_be_bytes([b[at], b[at + 1]])
    }
    pub fn src_port(&self) -> u16 {
        self.word(0)
    }
    pub fn dst_port(&self) -> u16 {
        self.word(2)
    }
    /// Header and data, as the header says.
    pub fn len(&self) -> u16 {
        self.word(4)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn checksum(&self) -> u16 {
        self.word(6)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    fn set_word(&mut self, at: usize, w: u16) {
        self.buf.as_mut()[at..at + 2].copy_from_slice(&w.to_be_bytes());
    }
    pub fn set_src_port(&mut self, port: u16) {
        self.set_word(0, port);
    }
    pub fn set_dst_port(&mut self, port: u16) {
        self.set_word(2, port);
    }
    pub fn set_len(&mut self, len: u16) {
        self.set_word(4, len);
    }
    /// Sets the checksum field as is: 0 means none (RFC 768), so a
    /// computed 0 is the caller's to send as 0xffff.
    pub fn set_checksum(&mut self, checksum: u16) {
        self.set_word(6, checksum);
    }
    /// Writes the header: ports, length, and a checksum of 0 ("none",
    /// which RFC 768 allows over IPv4).
    pub fn emit(&mut self, src_port: u16, dst_port: u16, len: u16) {
        self.set_src_port(src_port);
        self.set_dst_port(dst_port);
        self.set_len(len);
        self.set_checksum(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_it_writes() {
        let mut b = [0xffu8; 8];
        UdpPacket::new_checked(&mut b[..])
            .unwrap()
            .emit(40000, 53, 40);
        // A DNS query's header as dig sends it, checksum left out.
        assert_eq!(b, [0x9c, 0x40, 0, 53, 0, 40, 0, 0]);
        let u = UdpPacket::new_checked(&b[..]).unwrap();
        assert_eq!((u.src_port(), u.dst_port(), u.len()), (40000, 53, 40));
        assert_eq!(ports(&b[..4]), Some((40000, 53)));
        assert_eq!(ports(&b[..3]), None);
        assert!(UdpPacket::new_checked(&b[..7]).is_none());
        let mut u = UdpPacket::new_checked(&mut b[..]).unwrap();
        u.set_src_port(1234);
        u.set_dst_port(40000);
        u.set_checksum(0xffff);
        assert_eq!(
            (u.src_port(), u.dst_port(), u.checksum()),
            (1234, 40000, 0xffff)
        );
        assert_eq!(b, [0x04, 0xd2, 0x9c, 0x40, 0, 40, 0xff, 0xff]);
    }
}
