//! ICMP for IPv4 (RFC 792): the messages a router answers and makes, echo
//! and the errors of RFC 1812 4.3.

use super::checksum;
use std::fmt;
use std::net::Ipv4Addr;

/// Type, code, checksum and the 4 bytes that depend on the type.
pub const ICMP_HDR_LEN: usize = 8;

pub const ECHO_REPLY: u8 = 0;
pub const DEST_UNREACHABLE: u8 = 3;
pub const SOURCE_QUENCH: u8 = 4;
pub const REDIRECT: u8 = 5;
pub const ECHO_REQUEST: u8 = 8;
pub const TIME_EXCEEDED: u8 = 11;
pub const PARAMETER_PROBLEM: u8 = 12;

pub const CODE_NET_UNREACHABLE: u8 = 0;
pub const CODE_HOST_UNREACHABLE: u8 = 1;
pub const CODE_PROTOCOL_UNREACHABLE: u8 = 2;
pub const CODE_PORT_UNREACHABLE: u8 = 3;
pub const CODE_FRAG_NEEDED: u8 = 4;
/// Redirect datagrams for the host (RFC 1812 5.2.7.2: routers send only
/// host redirects).
pub const CODE_REDIRECT_HOST: u8 = 1;
/// Time to live exceeded in transit (RFC 792).
pub const CODE_TTL_EXCEEDED: u8 = 0;

/// Whether an ICMP type is an error message (RFC 1812 4.3.2.7: no error is
/// ever sent about one).
pub fn is_error(icmp_type: u8) -> bool {
    matches!(
        icmp_type,
        DEST_UNREACHABLE | SOURCE_QUENCH | REDIRECT | TIME_EXCEEDED | PARAMETER_PROBLEM
    )
}

/// Whether `icmp` is an error message, read from its type alone: a
/// message cut short after its type byte still counts (RFC 1812 4.3.2.7:
/// no error about an error, however mangled).
pub fn is_error_message(icmp: &[u8]) -> bool {
    icmp.first().is_some_and(|&t| is_error(t))
}

/// Why a buffer is not an ICMP message we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IcmpError {
    #[error("shorter than an ICMP header")]
    Truncated,
    #[error("ICMP checksum is wrong")]
    BadChecksum,
    #[error("ICMP type {0} is not one we read")]
    Unsupported(u8),
}

/// A zero-copy view of an ICMP message; [`IcmpPacket::new_checked`] checks
/// once that the 8-byte header is there.
#[derive(Debug, Clone, Copy)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    pub fn new_checked(buf: T) -> Result<Self, IcmpError> {
        if buf.as_ref().len() < ICMP_HDR_LEN {
            return Err(IcmpError::Truncated);
        }
        Ok(IcmpPacket { buf })
    }

    /// A view without the length check, for a buffer known to hold a
    /// header (one the caller made, or checked longer).
    pub fn new_unchecked(buf: T) -> Self {
        IcmpPacket { buf }
    }

    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }
    pub fn msg_type(&self) -> u8 {
        self.b()[0]
    }
    pub fn code(&self) -> u8 {
        self.b()[1]
    }
    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes([self.b()[2], self.b()[3]])
    }
    /// The 4 bytes after the checksum, as one word: an echo's identifier
    /// and sequence number, the next-hop MTU of "fragmentation needed"
    /// (RFC 1191), a redirect's gateway, a parameter problem's pointer.
    pub fn rest_of_header(&self) -> u32 {
        let b = self.b();
        u32::from_be_bytes([b[4], b[5], b[6], b[7]])
    }
    pub fn echo_ident(&self) -> u16 {
        (self.rest_of_header() >> 16) as u16
    }
    pub fn echo_seq(&self) -> u16 {
        self.rest_of_header() as u16
    }
    /// What follows the header: an echo's data, or the datagram an error
    /// quotes.
    pub fn data(&self) -> &[u8] {
        &self.b()[ICMP_HDR_LEN..]
    }
    /// Whether the checksum over the whole message is right.
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.b()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    fn m(&mut self) -> &mut [u8] {
        self.buf.as_mut()
    }
    pub fn set_msg_type(&mut self, t: u8) {
        self.m()[0] = t;
    }
    pub fn set_code(&mut self, code: u8) {
        self.m()[1] = code;
    }
    pub fn set_rest_of_header(&mut self, rest: u32) {
        self.m()[4..8].copy_from_slice(&rest.to_be_bytes());
    }
    /// Sets the checksum field as is (for an incremental update, RFC 1624;
    /// [`IcmpPacket::fill_checksum`] computes it).
    pub fn set_checksum(&mut self, checksum: u16) {
        self.m()[2..4].copy_from_slice(&checksum.to_be_bytes());
    }
    /// An echo's (or other query's) identifier alone, its sequence number
    /// left as it is: what NAT maps like a port.
    pub fn set_echo_ident(&mut self, ident: u16) {
        self.m()[4..6].copy_from_slice(&ident.to_be_bytes());
    }
    /// An echo's identifier and sequence number.
    pub fn set_echo(&mut self, ident: u16, seq: u16) {
        self.set_rest_of_header(echo_word(ident, seq));
    }
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.m()[ICMP_HDR_LEN..]
    }
    /// Computes the checksum over the whole buffer (header and data).
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.b());
        self.set_checksum(c);
    }
    /// Turns an echo request into its reply, in place (RFC 792: the type
    /// changes, identifier, sequence number and data stay).
    pub fn echo_to_reply(&mut self) {
        self.set_msg_type(ECHO_REPLY);
        self.fill_checksum();
    }
}

/// An ICMP error, without the datagram it quotes: type, code and what the
/// 4 bytes after the checksum carry for it (RFC 792, RFC 1812 4.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpErrorMsg {
    /// Type 3; `next_hop_mtu` is set for "fragmentation needed" (code 4,
    /// RFC 1191), else 0.
    DestUnreachable { code: u8, next_hop_mtu: u16 },
    /// Type 5: go to `gateway` instead.
    Redirect { code: u8, gateway: Ipv4Addr },
    /// Type 11.
    TimeExceeded { code: u8 },
    /// Type 12: `pointer` is the offset of the octet at fault.
    ParameterProblem { pointer: u8 },
}

impl IcmpErrorMsg {
    /// Destination unreachable with `code` (net, host, protocol, port).
    pub const fn unreachable(code: u8) -> IcmpErrorMsg {
        IcmpErrorMsg::DestUnreachable {
            code,
            next_hop_mtu: 0,
        }
    }
    /// Fragmentation needed and DF set, with the next hop's MTU (RFC 1191).
    pub const fn frag_needed(mtu: u16) -> IcmpErrorMsg {
        IcmpErrorMsg::DestUnreachable {
            code: CODE_FRAG_NEEDED,
            next_hop_mtu: mtu,
        }
    }
    /// TTL exceeded in transit (RFC 1812 5.3.1).
    pub const fn ttl_exceeded() -> IcmpErrorMsg {
        IcmpErrorMsg::TimeExceeded {
            code: CODE_TTL_EXCEEDED,
        }
    }
    /// A host redirect to `gateway` (RFC 1812 5.2.7.2).
    pub const fn host_redirect(gateway: Ipv4Addr) -> IcmpErrorMsg {
        IcmpErrorMsg::Redirect {
            code: CODE_REDIRECT_HOST,
            gateway,
        }
    }

    pub fn msg_type(&self) -> u8 {
        match self {
            IcmpErrorMsg::DestUnreachable { .. } => DEST_UNREACHABLE,
            IcmpErrorMsg::Redirect { .. } => REDIRECT,
            IcmpErrorMsg::TimeExceeded { .. } => TIME_EXCEEDED,
            IcmpErrorMsg::ParameterProblem { .. } => PARAMETER_PROBLEM,
        }
    }
    pub fn code(&self) -> u8 {
        match *self {
            IcmpErrorMsg::DestUnreachable { code, .. }
            | IcmpErrorMsg::Redirect { code, .. }
            | IcmpErrorMsg::TimeExceeded { code } => code,
            IcmpErrorMsg::ParameterProblem { .. } => 0,
        }
    }
    /// The 4 bytes after the checksum, as one word.
    pub fn rest_of_header(&self) -> u32 {
        match *self {
            IcmpErrorMsg::DestUnreachable { next_hop_mtu, .. } => u32::from(next_hop_mtu),
            IcmpErrorMsg::Redirect { gateway, .. } => u32::from(gateway),
            IcmpErrorMsg::TimeExceeded { .. } => 0,
            IcmpErrorMsg::ParameterProblem { pointer } => u32::from(pointer) << 24,
        }
    }
    /// Whether this is "fragmentation needed" (path MTU discovery).
    pub fn is_frag_needed(&self) -> bool {
        matches!(
            self,
            IcmpErrorMsg::DestUnreachable {
                code: CODE_FRAG_NEEDED,
                ..
            }
        )
    }
}

/// An ICMP message, parsed: an echo, or an error with the datagram it
/// quotes. Borrows its data from the packet; emits into any buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpRepr<'a> {
    EchoRequest {
        ident: u16,
        seq: u16,
        data: &'a [u8],
    },
    EchoReply {
        ident: u16,
        seq: u16,
        data: &'a [u8],
    },
    Error {
        msg: IcmpErrorMsg,
        /// The start of the datagram the error is about (RFC 1812
        /// 4.3.2.3: as much as fits in 576 bytes).
        quote: &'a [u8],
    },
}

impl<'a> IcmpRepr<'a> {
    /// Reads a message whose checksum is right; types other than echo and
    /// the errors of [`IcmpErrorMsg`] are [`IcmpError::Unsupported`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(p: &IcmpPacket<&'a T>) -> Result<Self, IcmpError> {
        if !p.verify_checksum() {
            return Err(IcmpError::BadChecksum);
        }
        let data = &p.buf.as_ref()[ICMP_HDR_LEN..];
        let (ident, seq, rest) = (p.echo_ident(), p.echo_seq(), p.rest_of_header());
        let msg = match p.msg_type() {
            ECHO_REQUEST => return Ok(IcmpRepr::EchoRequest { ident, seq, data }),
            ECHO_REPLY => return Ok(IcmpRepr::EchoReply { ident, seq, data }),
            DEST_UNREACHABLE => IcmpErrorMsg::DestUnreachable {
                code: p.code(),
                next_hop_mtu: rest as u16,
            },
            REDIRECT => IcmpErrorMsg::Redirect {
                code: p.code(),
                gateway: Ipv4Addr::from(rest),
            },
            TIME_EXCEEDED => IcmpErrorMsg::TimeExceeded { code: p.code() },
            PARAMETER_PROBLEM => IcmpErrorMsg::ParameterProblem {
                pointer: (rest >> 24) as u8,
            },
            t => return Err(IcmpError::Unsupported(t)),
        };
        Ok(IcmpRepr::Error { msg, quote: data })
    }

    /// The message's length: header and data.
    pub fn buffer_len(&self) -> usize {
        ICMP_HDR_LEN + self.data().len()
    }

    fn data(&self) -> &'a [u8] {
        match *self {
            IcmpRepr::EchoRequest { data, .. } | IcmpRepr::EchoReply { data, .. } => data,
            IcmpRepr::Error { quote, .. } => quote,
        }
    }

    /// Writes the message, checksum included, into the first
    /// [`IcmpRepr::buffer_len`] bytes of `p`'s buffer.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut IcmpPacket<T>) {
        let (t, code, rest) = match *self {
            IcmpRepr::EchoRequest { ident, seq, .. } => (ECHO_REQUEST, 0, echo_word(ident, seq)),
            IcmpRepr::EchoReply { ident, seq, .. } => (ECHO_REPLY, 0, echo_word(ident, seq)),
            IcmpRepr::Error { msg, .. } => (msg.msg_type(), msg.code(), msg.rest_of_header()),
        };
        let len = self.buffer_len();
        let mut out = IcmpPacket::new_unchecked(&mut p.m()[..len]);
        out.set_msg_type(t);
        out.set_code(code);
        out.set_rest_of_header(rest);
        out.data_mut().copy_from_slice(self.data());
        out.fill_checksum();
    }
}

fn echo_word(ident: u16, seq: u16) -> u32 {
    u32::from(ident) << 16 | u32::from(seq)
}

impl fmt::Display for IcmpRepr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            IcmpRepr::EchoRequest { ident, seq, data } => {
                write!(
                    f,
                    "ICMP echo request id {ident} seq {seq}, {} bytes",
                    data.len()
                )
            }
            IcmpRepr::EchoReply { ident, seq, data } => {
                write!(
                    f,
                    "ICMP echo reply id {ident} seq {seq}, {} bytes",
                    data.len()
                )
            }
            IcmpRepr::Error { msg, quote } => {
                match msg {
                    IcmpErrorMsg::DestUnreachable {
                        code: CODE_FRAG_NEEDED,
                        next_hop_mtu,
                    } => write!(f, "ICMP fragmentation needed, mtu {next_hop_mtu}")?,
                    IcmpErrorMsg::DestUnreachable { code, .. } => {
                        let what = match code {
                            CODE_NET_UNREACHABLE => "net",
                            CODE_HOST_UNREACHABLE => "host",
                            CODE_PROTOCOL_UNREACHABLE => "protocol",
                            CODE_PORT_UNREACHABLE => "port",
                            _ => "destination",
                        };
                        write!(f, "ICMP {what} unreachable (code {code})")?
                    }
                    IcmpErrorMsg::Redirect { code, gateway } => {
                        write!(f, "ICMP redirect (code {code}) to {gateway}")?
                    }
                    IcmpErrorMsg::TimeExceeded { code } => {
                        write!(f, "ICMP time exceeded (code {code})")?
                    }
                    IcmpErrorMsg::ParameterProblem { pointer } => {
                        write!(f, "ICMP parameter problem at byte {pointer}")?
                    }
                }
                write!(f, ", quoting {} bytes", quote.len())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // An echo request laid out as Linux `ping` sends it: id 0x1c2f, seq 1,
    // an 8-byte timestamp, then the bytes 0x10 to 0x37.
    const ECHO: [u8; 64] = [
        0x08, 0x00, 0x9d, 0x54, 0x1c, 0x2f, 0x00, 0x01, 0x2a, 0xd5, 0x2b, 0x66, 0x00, 0x00, 0x00,
        0x00, 0x1f, 0x6d, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15,
        0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24,
        0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33,
        0x34, 0x35, 0x36, 0x37,
    ];

    #[test]
    fn an_echo_request_parses_emits_and_turns_into_its_reply() {
        let p = IcmpPacket::new_checked(&ECHO[..]).unwrap();
        let repr = IcmpRepr::parse(&p).unwrap();
        assert_eq!(
            repr,
            IcmpRepr::EchoRequest {
                ident: 0x1c2f,
                seq: 1,
                data: &ECHO[8..],
            }
        );
        assert_eq!(
            repr.to_string(),
            "ICMP echo request id 7215 seq 1, 56 bytes"
        );
        let mut out = [0u8; 64];
        repr.emit(&mut IcmpPacket::new_unchecked(&mut out[..]));
        assert_eq!(out, ECHO);
        IcmpPacket::new_unchecked(&mut out[..]).echo_to_reply();
        let reply = IcmpPacket::new_checked(&out[..]).unwrap();
        assert!(reply.verify_checksum());
        assert!(matches!(
            IcmpRepr::parse(&reply),
            Ok(IcmpRepr::EchoReply {
                ident: 0x1c2f,
                seq: 1,
                ..
            })
        ));
        assert_eq!(
            IcmpPacket::new_checked(&ECHO[..7]).unwrap_err(),
            IcmpError::Truncated
        );
        let mut renumbered = ECHO;
        let mut p = IcmpPacket::new_unchecked(&mut renumbered[..]);
        p.set_echo_ident(0xbeef);
        p.set_checksum(0x1234);
        assert_eq!(
            (p.echo_ident(), p.echo_seq(), p.checksum()),
            (0xbeef, 1, 0x1234)
        );
        assert_eq!(&renumbered[2..8], &[0x12, 0x34, 0xbe, 0xef, 0, 1]);
        let mut bad = ECHO;
        bad[9] ^= 1;
        let bad = IcmpPacket::new_checked(&bad[..]).unwrap();
        assert_eq!(IcmpRepr::parse(&bad), Err(IcmpError::BadChecksum));
    }

    #[test]
    fn errors_carry_their_word_and_quote() {
        let quote = [0x45u8; 28];
        let cases = [
            (IcmpErrorMsg::frag_needed(1400), [3, 4, 0, 0, 0x05, 0x78]),
            (IcmpErrorMsg::ttl_exceeded(), [11, 0, 0, 0, 0, 0]),
            (
                IcmpErrorMsg::host_redirect(Ipv4Addr::new(10, 0, 0, 254)),
                [5, 1, 10, 0, 0, 254],
            ),
            (
                IcmpErrorMsg::ParameterProblem { pointer: 21 },
                [12, 0, 21, 0, 0, 0],
            ),
            (
                IcmpErrorMsg::unreachable(CODE_PORT_UNREACHABLE),
                [3, 3, 0, 0, 0, 0],
            ),
        ];
        for (msg, head) in cases {
            let repr = IcmpRepr::Error { msg, quote: &quote };
            let mut out = [0u8; 64];
            repr.emit(&mut IcmpPacket::new_unchecked(&mut out[..]));
            let n = repr.buffer_len();
            assert_eq!(n, 36);
            assert_eq!(checksum::checksum(&out[..n]), 0);
            assert_eq!([out[0], out[1]], [head[0], head[1]]);
            assert_eq!(&out[4..8], &head[2..]);
            let p = IcmpPacket::new_checked(&out[..n]).unwrap();
            assert_eq!(IcmpRepr::parse(&p), Ok(repr));
            assert!(is_error(p.msg_type()));
        }
        assert!(!is_error(ECHO_REQUEST));
        let mtu = IcmpRepr::Error {
            msg: IcmpErrorMsg::frag_needed(1400),
            quote: &quote,
        };
        assert_eq!(
            mtu.to_string(),
            "ICMP fragmentation needed, mtu 1400, quoting 28 bytes"
        );
    }
}
