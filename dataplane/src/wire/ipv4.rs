//! IPv4 headers (RFC 791), with the checks of RFC 1812 5.2.2.

use super::checksum;
pub use super::ip::IpProtocol;
use std::net::Ipv4Addr;

/// Length of a header without options.
pub const IPV4_MIN_HDR_LEN: usize = 20;

/// Why a buffer is not a well-formed IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Ipv4Error {
    #[error("shorter than an IPv4 header")]
    Truncated,
    #[error("version is not 4")]
    BadVersion,
    #[error("header length under 20 bytes")]
    BadHeaderLen,
    #[error("total length disagrees with the frame")]
    BadTotalLen,
    #[error("header checksum is wrong")]
    BadChecksum,
}

/// A zero-copy view of an IPv4 packet. [`Ipv4Packet::new_checked`] checks
/// version, header length, total length against the buffer and the header
/// checksum once; accessors trust those checks.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    pub fn new_checked(buf: T) -> Result<Self, Ipv4Error> {
        let b = buf.as_ref();
        if b.len() < IPV4_MIN_HDR_LEN {
            return Err(Ipv4Error::Truncated);
        }
        if b[0] >> 4 != 4 {
            return Err(Ipv4Error::BadVersion);
        }
        let ihl = usize::from(b[0] & 0x0f) * 4;
        if ihl < IPV4_MIN_HDR_LEN || ihl > b.len() {
            return Err(Ipv4Error::BadHeaderLen);
        }
        let total = usize::from(u16::from_be_bytes([b[2], b[3]]));
        if total < ihl || total > b.len() {
            return Err(Ipv4Error::BadTotalLen);
        }
        if checksum::checksum(&b[..ihl]) != 0 {
            return Err(Ipv4Error::BadChecksum);
        }
        Ok(Ipv4Packet { buf })
    }

    /// A view that skips the checks, for packets this code built itself.
    pub fn new_unchecked(buf: T) -> Self {
        Ipv4Packet { buf }
    }

    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }
    /// The fixed part of the header: one length check for all its fields.
    fn h(&self) -> &[u8; IPV4_MIN_HDR_LEN] {
        self.b()[..IPV4_MIN_HDR_LEN]
            .try_into()
            .expect("an IPv4 view holds a header")
    }
    pub fn version(&self) -> u8 {
        self.h()[0] >> 4
    }
    pub fn header_len(&self) -> usize {
        usize::from(self.h()[0] & 0x0f) * 4
    }
    /// The type-of-service byte: DSCP and ECN (RFC 2474, RFC 3168).
    pub fn tos(&self) -> u8 {
        self.h()[1]
    }
    pub fn total_len(&self) -> usize {
        usize::from(u16::from_be_bytes([self.h()[2], self.h()[3]]))
    }
    pub fn ident(&self) -> u16 {
        u16::from_be_bytes([self.h()[4], self.h()[5]])
    }
    pub fn dont_frag(&self) -> bool {
        self.h()[6] & 0x40 != 0
    }
    pub fn more_frags(&self) -> bool {
        self.h()[6] & 0x20 != 0
    }
    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> usize {
        usize::from(u16::from_be_bytes([self.h()[6] & 0x1f, self.h()[7]])) * 8
    }
    pub fn ttl(&self) -> u8 {
        self.h()[8]
    }
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol::from(self.h()[9])
    }
    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes([self.h()[10], self.h()[11]])
    }
    pub fn src(&self) -> Ipv4Addr {
        let h = self.h();
        Ipv4Addr::new(h[12], h[13], h[14], h[15])
    }
    pub fn dst(&self) -> Ipv4Addr {
        let h = self.h();
        Ipv4Addr::new(h[16], h[17], h[18], h[19])
    }
    /// The header, options included.
    pub fn header(&self) -> &[u8] {
        &self.b()[..self.header_len()]
    }
    /// The payload, up to the total length (Ethernet padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len()..self.total_len()]
    }
    /// The whole packet, up to the total length.
    pub fn packet(&self) -> &[u8] {
        &self.b()[..self.total_len()]
    }
    /// Everything after the header, to the end of the buffer, whatever the
    /// total length says: the datagram an ICMP error quotes is cut short
    /// (RFC 792: its header and 64 bits of data), so its total length
    /// counts bytes the buffer does not hold.
    pub fn after_header(&self) -> &[u8] {
        &self.b()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn m(&mut self) -> &mut [u8] {
        self.buf.as_mut()
    }

    /// Decrements the TTL and updates the checksum incrementally
    /// (RFC 1812 5.3.1, RFC 1624).
    pub fn decrement_ttl(&mut self) {
        let old = u16::from_be_bytes([self.b()[8], self.b()[9]]);
        self.m()[8] -= 1;
        let new = u16::from_be_bytes([self.b()[8], self.b()[9]]);
        let hc = checksum::update(self.checksum(), old, new);
        self.set_checksum(hc);
    }

    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        let ihl = self.header_len();
        self.set_checksum(0);
        let c = checksum::checksum(&self.b()[..ihl]);
        self.set_checksum(c);
    }

    /// Sets the TTL, source and destination, without the checksum (the
    /// caller recomputes it: [`Ipv4Packet::fill_checksum`]).
    pub fn set_ttl_and_addrs(&mut self, ttl: u8, src: Ipv4Addr, dst: Ipv4Addr) {
        self.m()[8] = ttl;
        self.set_src(src);
        self.set_dst(dst);
    }

    /// Sets the source address; the caller fixes the checksum (or updates
    /// it for the change, RFC 1624, with [`Ipv4Packet::set_checksum`]).
    pub fn set_src(&mut self, src: Ipv4Addr) {
        self.m()[12..16].copy_from_slice(&src.octets());
    }
    /// Sets the destination address; the caller fixes the checksum.
    pub fn set_dst(&mut self, dst: Ipv4Addr) {
        self.m()[16..20].copy_from_slice(&dst.octets());
    }
    pub fn set_checksum(&mut self, checksum: u16) {
        self.m()[10..12].copy_from_slice(&checksum.to_be_bytes());
    }

    /// Makes this header a fragment's: its total length, its offset in
    /// bytes (a multiple of 8) and whether more follow, and its TTL; the
    /// caller recomputes the checksum.
    pub fn set_fragment(&mut self, total_len: u16, offset: usize, more: bool, ttl: u8) {
        let field = (offset / 8) as u16 | if more { 0x2000 } else { 0 };
        self.m()[2..4].copy_from_slice(&total_len.to_be_bytes());
        self.m()[6..8].copy_from_slice(&field.to_be_bytes());
        self.m()[8] = ttl;
    }

    /// Sets the type-of-service byte (DSCP and ECN) and the identification,
    /// and recomputes the checksum.
    pub fn set_tos_and_ident(&mut self, tos: u8, ident: u16) {
        self.m()[1] = tos;
        self.m()[4..6].copy_from_slice(&ident.to_be_bytes());
        self.fill_checksum();
    }

    /// Sets the header length (in bytes, a multiple of 4 from 20 to 60)
    /// and version 4; the caller fixes the total length and the checksum.
    pub fn set_header_len(&mut self, len: usize) {
        self.m()[0] = 0x40 | (len / 4) as u8;
    }

    /// The header, options included, to write into (the caller fixes the
    /// checksum).
    pub fn header_mut(&mut self) -> &mut [u8] {
        let h = self.header_len();
        &mut self.m()[..h]
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (h, t) = (self.header_len(), self.total_len());
        &mut self.m()[h..t]
    }

    /// Everything after the header, to the end of the buffer: see
    /// [`Ipv4Packet::after_header`].
    pub fn after_header_mut(&mut self) -> &mut [u8] {
        let h = self.header_len();
        &mut self.m()[h..]
    }
}

/// An IPv4 header without options, parsed (RFC 791 3.1): what the router
/// reads of a datagram and writes into the packets it makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: IpProtocol,
    pub ttl: u8,
    /// The type-of-service byte: DSCP and ECN.
    pub tos: u8,
    pub ident: u16,
    pub dont_frag: bool,
    pub more_frags: bool,
    /// Fragment offset in bytes (a multiple of 8).
    pub frag_offset: usize,
    /// Bytes after the header, up to the total length.
    pub payload_len: usize,
}

impl Ipv4Repr {
    /// Reads a header that [`Ipv4Packet::new_checked`] has checked (its
    /// options, if any, are left to [`super::ipv4_options`]).
    pub fn parse<T: AsRef<[u8]>>(ip: &Ipv4Packet<T>) -> Ipv4Repr {
        Ipv4Repr {
            src: ip.src(),
            dst: ip.dst(),
            protocol: ip.protocol(),
            ttl: ip.ttl(),
            tos: ip.tos(),
            ident: ip.ident(),
            dont_frag: ip.dont_frag(),
            more_frags: ip.more_frags(),
            frag_offset: ip.frag_offset(),
            // new_checked made sure the total length holds the header.
            payload_len: ip.total_len() - ip.header_len(),
        }
    }

    /// The header and payload: the total length.
    pub fn buffer_len(&self) -> usize {
        IPV4_MIN_HDR_LEN + self.payload_len
    }

    /// Writes a 20-byte header, checksum included, into the start of
    /// `ip`'s buffer (the payload is the caller's to write after it).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, ip: &mut Ipv4Packet<T>) {
        let flags = if self.dont_frag { 0x4000 } else { 0 };
        let frag = flags | (self.frag_offset / 8) as u16 | if self.more_frags { 0x2000 } else { 0 };
        let b = ip.m();
        b[0] = 0x45;
        b[1] = self.tos;
        b[2..4].copy_from_slice(&(self.buffer_len() as u16).to_be_bytes());
        b[4..6].copy_from_slice(&self.ident.to_be_bytes());
        b[6..8].copy_from_slice(&frag.to_be_bytes());
        b[8] = self.ttl;
        b[9] = u8::from(self.protocol);
        b[12..16].copy_from_slice(&self.src.octets());
        b[16..20].copy_from_slice(&self.dst.octets());
        ip.fill_checksum();
    }
}

impl std::fmt::Display for Ipv4Repr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "IPv4 {} -> {} {} ttl {} tos 0x{:02x} id {} len {}",
            self.src,
            self.dst,
            self.protocol,
            self.ttl,
            self.tos,
            self.ident,
            self.buffer_len()
        )?;
        if self.dont_frag {
            write!(f, " DF")?;
        }
        if self.more_frags || self.frag_offset != 0 {
            let mf = if self.more_frags { "+" } else { "" };
            write!(f, " frag {}{mf}", self.frag_offset)?;
        }
        Ok(())
    }
}

/// Writes a 20-byte header (no options, type of service 0, DF clear) for
/// a packet of `total_len` bytes, with its checksum: [`Ipv4Repr::emit`]
/// in one call.
pub fn emit_header(
    out: &mut [u8],
    total_len: u16,
    ident: u16,
    ttl: u8,
    protocol: IpProtocol,
    src: Ipv4Addr,
    dst: Ipv4Addr,
) {
    let repr = Ipv4Repr {
        src,
        dst,
        protocol,
        ttl,
        tos: 0,
        ident,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
        payload_len: usize::from(total_len) - IPV4_MIN_HDR_LEN,
    };
    repr.emit(&mut Ipv4Packet::new_unchecked(out));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet() -> Vec<u8> {
        let mut p = vec![0u8; 28];
        emit_header(
            &mut p,
            28,
            7,
            64,
            IpProtocol::Udp,
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 1, 2),
        );
        p
    }

    #[test]
    fn checks_and_reads_a_header() {
        let p = packet();
        let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
        assert_eq!(
            (ip.ttl(), ip.protocol(), ip.total_len()),
            (64, IpProtocol::Udp, 28)
        );
        assert_eq!(ip.dst(), Ipv4Addr::new(10, 0, 1, 2));
        assert_eq!(ip.payload().len(), 8);
    }

    #[test]
    fn rejects_malformed_headers() {
        let p = packet();
        assert_eq!(
            Ipv4Packet::new_checked(&p[..19]).unwrap_err(),
            Ipv4Error::Truncated
        );
        let mut bad = p.clone();
        bad[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&bad[..]).unwrap_err(),
            Ipv4Error::BadVersion
        );
        let mut bad = p.clone();
        bad[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&bad[..]).unwrap_err(),
            Ipv4Error::BadHeaderLen
        );
        assert_eq!(
            Ipv4Packet::new_checked(&p[..27]).unwrap_err(),
            Ipv4Error::BadTotalLen
        );
        let mut bad = p.clone();
        bad[15] ^= 1;
        assert_eq!(
            Ipv4Packet::new_checked(&bad[..]).unwrap_err(),
            Ipv4Error::BadChecksum
        );
    }

    #[test]
    fn parses_what_it_emits() {
        // A ping from a real capture: 10.0.0.1 -> 10.0.0.2, DF, TTL 64.
        let hdr = [
            0x45, 0x00, 0x00, 0x54, 0x3c, 0x8a, 0x40, 0x00, 0x40, 0x01, 0xea, 0x1c, 0x0a, 0x00,
            0x00, 0x01, 0x0a, 0x00, 0x00, 0x02,
        ];
        let mut p = hdr.to_vec();
        p.resize(0x54, 0);
        let repr = Ipv4Repr::parse(&Ipv4Packet::new_checked(&p[..]).unwrap());
        assert_eq!(
            repr.to_string(),
            "IPv4 10.0.0.1 -> 10.0.0.2 icmp ttl 64 tos 0x00 id 15498 len 84 DF"
        );
        let mut out = [0u8; 20];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, hdr);
        let frag = Ipv4Repr {
            more_frags: true,
            frag_offset: 1480,
            dont_frag: false,
            ..repr
        };
        frag.emit(&mut Ipv4Packet::new_unchecked(&mut p[..]));
        let back = Ipv4Packet::new_checked(&p[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&back), frag);
    }

    #[test]
    fn ttl_decrement_keeps_the_checksum_valid() {
        let mut p = packet();
        let mut ip = Ipv4Packet::new_checked(&mut p[..]).unwrap();
        ip.decrement_ttl();
        assert_eq!(ip.ttl(), 63);
        assert!(Ipv4Packet::new_checked(&p[..]).is_ok());
    }

    #[test]
    fn addresses_and_checksum_written_field_by_field() {
        let mut p = packet();
        let mut ip = Ipv4Packet::new_checked(&mut p[..]).unwrap();
        ip.set_src(Ipv4Addr::new(203, 0, 113, 1));
        ip.set_dst(Ipv4Addr::new(198, 51, 100, 7));
        ip.set_checksum(0xbeef);
        assert_eq!(
            (ip.src(), ip.dst(), ip.checksum(), ip.version()),
            (
                Ipv4Addr::new(203, 0, 113, 1),
                Ipv4Addr::new(198, 51, 100, 7),
                0xbeef,
                4
            )
        );
        assert_eq!(&p[10..20], &[0xbe, 0xef, 203, 0, 113, 1, 198, 51, 100, 7]);
        // A quote cut after 4 bytes of its payload: the total length (28)
        // says 8.
        let ip = Ipv4Packet::new_unchecked(&p[..24]);
        assert_eq!(ip.after_header().len(), 4);
    }
}
