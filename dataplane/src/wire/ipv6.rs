//! IPv6 headers (RFC 8200): the fixed 40-byte header as a zero-copy view.
//! Extension headers are not walked here: `next_header` is the first one.

pub use super::ip::IpProtocol;
use std::net::Ipv6Addr;

/// Length of the fixed header.
pub const IPV6_HDR_LEN: usize = 40;

/// ICMPv6's number as a next header (RFC 4443).
pub const NEXT_HEADER_ICMPV6: u8 = 58;

/// Why a buffer is not a well-formed IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Ipv6Error {
    #[error("shorter than an IPv6 header")]
    Truncated,
    #[error("version is not 6")]
    BadVersion,
    #[error("payload length goes past the frame")]
    BadPayloadLen,
}

/// A zero-copy view of an IPv6 packet. [`Ipv6Packet::new_checked`] checks
/// the version and the payload length against the buffer once.
#[derive(Debug, Clone, Copy)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    pub fn new_checked(buf: T) -> Result<Self, Ipv6Error> {
        let b = buf.as_ref();
        if b.len() < IPV6_HDR_LEN {
            return Err(Ipv6Error::Truncated);
        }
        if b[0] >> 4 != 6 {
            return Err(Ipv6Error::BadVersion);
        }
        let payload = usize::from(u16::from_be_bytes([b[4], b[5]]));
        if IPV6_HDR_LEN + payload > b.len() {
            return Err(Ipv6Error::BadPayloadLen);
        }
        Ok(Ipv6Packet { buf })
    }

    /// A view that skips the checks (the length of the fixed header is
    /// still needed by every accessor).
    pub fn new_unchecked(buf: T) -> Self {
        Ipv6Packet { buf }
    }

    /// The fixed header: one length check for all its fields.
    fn h(&self) -> &[u8; IPV6_HDR_LEN] {
        self.buf.as_ref()[..IPV6_HDR_LEN]
            .try_into()
            .expect("an IPv6 view holds a header")
    }
    pub fn version(&self) -> u8 {
        self.h()[0] >> 4
    }
    pub fn payload_len(&self) -> usize {
        usize::from(u16::from_be_bytes([self.h()[4], self.h()[5]]))
    }
    /// The first next header (a transport protocol, or an extension).
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.h()[6])
    }
    pub fn hop_limit(&self) -> u8 {
        self.h()[7]
    }
    pub fn src(&self) -> Ipv6Addr {
        let a: [u8; 16] = self.h()[8..24].try_into().expect("16 bytes");
        Ipv6Addr::from(a)
    }
    pub fn dst(&self) -> Ipv6Addr {
        let a: [u8; 16] = self.h()[24..40].try_into().expect("16 bytes");
        Ipv6Addr::from(a)
    }
    /// What follows the fixed header, up to the payload length.
    pub fn payload(&self) -> &[u8] {
        let b = self.buf.as_ref();
        &b[IPV6_HDR_LEN..(IPV6_HDR_LEN + self.payload_len()).min(b.len())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_is_read_and_bad_ones_refused() {
        let mut p = [0u8; 48];
        p[0] = 0x60;
        p[5] = 8;
        p[6] = NEXT_HEADER_ICMPV6;
        p[7] = 64;
        p[8..24].copy_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        p[24..40].copy_from_slice(&"ff02::1".parse::<Ipv6Addr>().unwrap().octets());
        let v = Ipv6Packet::new_checked(&p[..]).unwrap();
        assert_eq!(v.next_header(), IpProtocol::Other(58));
        assert_eq!(v.hop_limit(), 64);
        assert_eq!(v.src().to_string(), "2001:db8::1");
        assert_eq!(v.dst().to_string(), "ff02::1");
        assert_eq!(v.payload().len(), 8);
        assert_eq!(
            Ipv6Packet::new_checked(&p[..47]).unwrap_err(),
            Ipv6Error::BadPayloadLen
        );
        assert_eq!(
            Ipv6Packet::new_checked(&p[..39]).unwrap_err(),
            Ipv6Error::Truncated
        );
        p[0] = 0x40;
        assert_eq!(
            Ipv6Packet::new_checked(&p[..]).unwrap_err(),
            Ipv6Error::BadVersion
        );
    }
}
