//! TCP headers (RFC 9293 3.1), as far as a router reads and writes them.

/// A header without options.
pub const TCP_MIN_HDR_LEN: usize = 20;
pub const FLAG_SYN: u8 = 0x02;
/// Where the checksum field ends: the bytes a header cut short must hold
/// for it.
const CHECKSUM_END: usize = 18;

/// The header length a segment's data offset gives, in bytes; `None` if
/// `l4` is too short to hold the data offset (its 13th byte). For the size
/// of a GSO super-frame's segments, where only that field counts.
pub fn header_len(l4: &[u8]) -> Option<usize> {
    l4.get(12).map(|&b| usize::from(b >> 4) * 4)
}

/// A zero-copy view of a TCP header; [`TcpPacket::new_checked`] checks
/// once that its 20 fixed bytes are there.
#[derive(Debug, Clone, Copy)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    pub fn new_checked(buf: T) -> Option<Self> {
        (buf.as_ref().len() >= TCP_MIN_HDR_LEN).then_some(TcpPacket { buf })
    }
    pub fn new_unchecked(buf: T) -> Self {
        TcpPacket { buf }
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
    /// The header length, options included, from the data offset.
    pub fn header_len(&self) -> usize {
        usize::from(self.buf.as_ref()[12] >> 4) * 4
    }
    /// The flags byte (CWR ECE URG ACK PSH RST SYN FIN).
    pub fn flags(&self) -> u8 {
        self.buf.as_ref()[13]
    }
    pub fn checksum(&self) -> u16 {
        self.word(16)
    }
    /// Whether the buffer holds the checksum field: a segment an ICMP error
    /// quotes may stop short of it (RFC 792 promises only its first 8
    /// bytes, the ports and sequence number), in a view made unchecked.
    pub fn holds_checksum(&self) -> bool {
        self.buf.as_ref().len() >= CHECKSUM_END
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    fn set_word(&mut self, at: usize, w: u16) {
        self.buf.as_mut()[at..at + 2].copy_from_slice(&w.to_be_bytes());
    }
    pub fn set_src_port(&mut self, port: u16) {
        self.set_word(0, port);
    }
    pub fn set_dst_port(&mut self, port: u16) {
        self.set_word(2, port);
    }
    pub fn set_checksum(&mut self, checksum: u16) {
        self.set_word(16, checksum);
    }
    /// Writes a 20-byte header with `flags`, sequence and acknowledgment
    /// numbers 0, no window and no checksum: a probe such as a trace's
    /// made-up SYN, never a segment a peer would take.
    pub fn emit_probe(&mut self, src_port: u16, dst_port: u16, flags: u8) {
        let b = self.buf.as_mut();
        b[..TCP_MIN_HDR_LEN].fill(0);
        b[12] = ((TCP_MIN_HDR_LEN / 4) as u8) << 4;
        b[13] = flags;
        self.set_src_port(src_port);
        self.set_dst_port(dst_port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_it_writes() {
        let mut b = [0xffu8; 24];
        TcpPacket::new_checked(&mut b[..])
            .unwrap()
            .emit_probe(40000, 80, FLAG_SYN);
        let t = TcpPacket::new_checked(&b[..]).unwrap();
        assert_eq!((t.src_port(), t.dst_port()), (40000, 80));
        assert_eq!((t.header_len(), t.flags()), (20, FLAG_SYN));
        assert_eq!(header_len(&b[..13]), Some(20));
        assert_eq!(header_len(&b[..12]), None);
        assert!(TcpPacket::new_checked(&b[..19]).is_none());
        let mut t = TcpPacket::new_checked(&mut b[..]).unwrap();
        t.set_src_port(1234);
        t.set_dst_port(443);
        t.set_checksum(0xbeef);
        assert_eq!(
            (t.src_port(), t.dst_port(), t.checksum()),
            (1234, 443, 0xbeef)
        );
        assert_eq!(&b[..4], &[0x04, 0xd2, 0x01, 0xbb]);
        assert_eq!(&b[16..18], &[0xbe, 0xef]);
        // Cut short as an ICMP error may quote it.
        assert!(TcpPacket::new_unchecked(&b[..18]).holds_checksum());
        assert!(!TcpPacket::new_unchecked(&b[..17]).holds_checksum());
    }
}
