//! ARP for IPv4 over Ethernet (RFC 826).

use super::Mac;
use std::net::Ipv4Addr;

/// An ARP packet for IPv4 over Ethernet is 28 bytes.
pub const ARP_LEN: usize = 28;
pub const OP_REQUEST: u16 = 1;
pub const OP_REPLY: u16 = 2;

/// A zero-copy view of an ARP packet for IPv4 over Ethernet;
/// [`ArpPacket::new_checked`] checks its 28 bytes are there, not what its
/// hardware and protocol fields say ([`ArpRepr::parse`] does).
#[derive(Debug, Clone, Copy)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    pub fn new_checked(buf: T) -> Result<Self, ArpError> {
        if buf.as_ref().len() < ARP_LEN {
            return Err(ArpError::Truncated);
        }
        Ok(ArpPacket { buf })
    }
    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }
    /// Whether hardware type, protocol type and address lengths say
    /// Ethernet and IPv4.
    pub fn is_ethernet_ipv4(&self) -> bool {
        self.b()[0..6] == [0, 1, 0x08, 0x00, 6, 4]
    }
    pub fn op(&self) -> u16 {
        u16::from_be_bytes([self.b()[6], self.b()[7]])
    }
    pub fn sender_mac(&self) -> Mac {
        Mac::from_slice(&self.b()[8..14])
    }
    pub fn sender_ip(&self) -> Ipv4Addr {
        let b = self.b();
        Ipv4Addr::new(b[14], b[15], b[16], b[17])
    }
    pub fn target_mac(&self) -> Mac {
        Mac::from_slice(&self.b()[18..24])
    }
    pub fn target_ip(&self) -> Ipv4Addr {
        let b = self.b();
        Ipv4Addr::new(b[24], b[25], b[26], b[27])
    }
}

/// An ARP packet (Ethernet/IPv4 only), parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    pub op: u16,
    pub sender_mac: Mac,
    pub sender_ip: Ipv4Addr,
    pub target_mac: Mac,
    pub target_ip: Ipv4Addr,
}

/// Why an ARP packet is not one we handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ArpError {
    #[error("shorter than 28 bytes")]
    Truncated,
    #[error("not Ethernet/IPv4 ARP")]
    Unsupported,
    #[error("unknown operation")]
    BadOp,
}

impl ArpRepr {
    /// Parses the ARP payload of an Ethernet frame.
    pub fn parse(b: &[u8]) -> Result<ArpRepr, ArpError> {
        let p = ArpPacket::new_checked(b)?;
        if !p.is_ethernet_ipv4() {
            return Err(ArpError::Unsupported);
        }
        let op = p.op();
        if op != OP_REQUEST && op != OP_REPLY {
            return Err(ArpError::BadOp);
        }
        Ok(ArpRepr {
            op,
            sender_mac: p.sender_mac(),
            sender_ip: p.sender_ip(),
            target_mac: p.target_mac(),
            target_ip: p.target_ip(),
        })
    }

    /// Writes the 28 bytes of the packet.
    pub fn emit(&self, out: &mut [u8]) {
        out[0..6].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
        out[6..8].copy_from_slice(&self.op.to_be_bytes());
        out[8..14].copy_from_slice(&self.sender_mac.0);
        out[14..18].copy_from_slice(&self.sender_ip.octets());
        out[18..24].copy_from_slice(&self.target_mac.0);
        out[24..28].copy_from_slice(&self.target_ip.octets());
    }

    /// A gratuitous ARP or an RFC 5227 probe/announcement: it announces the
    /// sender's own address rather than asking about another.
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip == self.target_ip || self.sender_ip.is_unspecified()
    }
}

/// As tcpdump says it: "who-has T tell S", "T is-at M".
impl std::fmt::Display for ArpRepr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.op == OP_REQUEST {
            write!(
                f,
                "ARP request who-has {} tell {} ({})",
                self.target_ip, self.sender_ip, self.sender_mac
            )
        } else {
            write!(
                f,
                "ARP reply {} is-at {} to {}",
                self.sender_ip, self.sender_mac, self.target_ip
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_emits() {
        let r = ArpRepr {
            op: OP_REQUEST,
            sender_mac: "02:00:00:00:00:01".parse().unwrap(),
            sender_ip: Ipv4Addr::new(10, 0, 0, 1),
            target_mac: Mac::ZERO,
            target_ip: Ipv4Addr::new(10, 0, 0, 254),
        };
        let mut b = [0u8; ARP_LEN];
        r.emit(&mut b);
        assert_eq!(ArpRepr::parse(&b).unwrap(), r);
        assert!(!r.is_gratuitous());
        assert_eq!(
            r.to_string(),
            "ARP request who-has 10.0.0.254 tell 10.0.0.1 (02:00:00:00:00:01)"
        );
        assert_eq!(ArpRepr::parse(&b[..27]).unwrap_err(), ArpError::Truncated);
        b[7] = 9;
        assert_eq!(ArpRepr::parse(&b).unwrap_err(), ArpError::BadOp);
    }
}
