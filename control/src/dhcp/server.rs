//! The DHCP server's decisions (RFC 2131 4.3, options of RFC 2132 and
//! 3442): a client's message in, the answer out, for one pool.
//!
//! Runs on the DHCP thread, not the forwarding one: decoding with dhcproto
//! allocates.

use super::leases::{Client, Exhausted, LeaseState, Leases, OFFER_SECS};
use super::pool::Pool;
use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use patchbay_dataplane::wire::{Ipv4Net, Mac};
use std::net::Ipv4Addr;

/// The router interface a pool answers from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Iface {
    /// The interface's address on the pool's subnet (with its length):
    /// the server identifier, and the subnet mask given.
    pub net: Ipv4Net,
    pub mac: Mac,
}

/// What the server did with a message, in words for logs and traces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Offer {
        ip: Ipv4Addr,
        mac: Mac,
        secs: u32,
    },
    Ack {
        ip: Ipv4Addr,
        mac: Mac,
        secs: u32,
    },
    Nak {
        ip: Ipv4Addr,
        mac: Mac,
        why: &'static str,
    },
    Inform {
        ip: Ipv4Addr,
        mac: Mac,
    },
    Released {
        ip: Ipv4Addr,
        mac: Mac,
    },
    Declined {
        ip: Ipv4Addr,
        mac: Mac,
    },
    /// The pool has no address left: no offer (counted, logged).
    Exhausted {
        mac: Mac,
    },
    /// Nothing to answer (another server chosen, a relay, ...).
    Ignored {
        why: &'static str,
    },
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decision::Offer { ip, mac, secs } => write!(f, "offer {ip} to {mac}, lease {secs} s"),
            Decision::Ack { ip, mac, secs } => write!(f, "ack {ip} to {mac}, lease {secs} s"),
            Decision::Nak { ip, mac, why } => write!(f, "nak {ip} to {mac}: {why}"),
            Decision::Inform { ip, mac } => write!(f, "inform: options to {ip} ({mac})"),
            Decision::Released { ip, mac } => write!(f, "release of {ip} by {mac}"),
            Decision::Declined { ip, mac } => {
                write!(
                    f,
                    "decline of {ip} by {mac}: set aside {} s",
                    super::leases::DECLINE_SECS
                )
            }
            Decision::Exhausted { mac } => write!(f, "no address left for {mac}: no offer"),
            Decision::Ignored { why } => write!(f, "ignored: {why}"),
        }
    }
}

/// Why a message was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("not a DHCP message: {0}")]
    Decode(String),
    #[error("not a BOOTREQUEST")]
    NotRequest,
    #[error("no message type (option 53)")]
    NoType,
    #[error("not an Ethernet client (htype/hlen)")]
    NotEthernet,
}

/// The answer to send, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The encoded DHCP message (UDP payload, to port 68).
    pub payload: Vec<u8>,
    /// IPv4 destination: broadcast, or the client's address.
    pub dst_ip: Ipv4Addr,
    /// Ethernet destination: broadcast, or the client's MAC.
    pub dst_mac: Mac,
}

/// Decodes a client's message (a UDP payload to port 67).
pub fn decode(payload: &[u8]) -> Result<Message, Malformed> {
    let msg = Message::decode(&mut Decoder::new(payload))
        .map_err(|e| Malformed::Decode(e.to_string()))?;
    if msg.opcode() != Opcode::BootRequest {
        return Err(Malformed::NotRequest);
    }
    // hlen first: dhcproto's chaddr() slices by it, and panics past 16.
    if msg.hlen() != 6 {
        return Err(Malformed::NotEthernet);
    }
    if msg.opts().msg_type().is_none() {
        return Err(Malformed::NoType);
    }
    Ok(msg)
}

/// Answers `msg` for `pool`, served from `iface`, at `now` (Unix seconds).
pub fn answer(
    pool: &Pool,
    leases: &mut Leases,
    iface: Iface,
    msg: &Message,
    now: u64,
) -> (Decision, Option<Reply>) {
    let mac = Mac::from_slice(msg.chaddr());
    let client = Client {
        mac,
        id: match msg.opts().get(OptionCode::ClientIdentifier) {
            Some(DhcpOption::ClientIdentifier(id)) => Some(hex(id)),
            _ => None,
        },
    };
    let requested = match msg.opts().get(OptionCode::RequestedIpAddress) {
        Some(DhcpOption::RequestedIpAddress(ip)) => Some(*ip),
        _ => None,
    };
    let server_id = match msg.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
        _ => None,
    };
    let hostname = match msg.opts().get(OptionCode::Hostname) {
        Some(DhcpOption::Hostname(h)) => Some(h.clone()),
        _ => None,
    };
    if !msg.giaddr().is_unspecified() {
        return (
            Decision::Ignored {
                why: "relayed (giaddr set): no relay support",
            },
            None,
        );
    }
    let ours = iface.net.addr;
    let secs = pool.lease_secs;
    let reply = |kind: MessageType, yiaddr: Ipv4Addr| build(pool, iface, msg, kind, yiaddr);
    match msg.opts().msg_type() {
        Some(MessageType::Discover) => match leases.pick(pool, &client, requested, now) {
            Ok(ip) => {
                leases.put(ip, &client, hostname, LeaseState::Offered, now + OFFER_SECS);
                (
                    Decision::Offer { ip, mac, secs },
                    Some(reply(MessageType::Offer, ip)),
                )
            }
            Err(Exhausted) => (Decision::Exhausted { mac }, None),
        },
        Some(MessageType::Request) => {
            // SELECTING (a server chosen), INIT-REBOOT (an address asked
            // for), or RENEWING/REBINDING (ciaddr) (RFC 2131 4.3.2).
            if server_id.is_some_and(|s| s != ours) {
                if let Some(l) = leases
                    .of(&client)
                    .filter(|l| l.state == LeaseState::Offered)
                {
                    let ip = l.ip;
                    leases.release(ip, &client, now);
                }
                return (
                    Decision::Ignored {
                        why: "another server chosen",
                    },
                    None,
                );
            }
            let ip = requested.unwrap_or(msg.ciaddr());
            let nak = |why| {
                let d = Decision::Nak { ip, mac, why };
                (d, Some(reply(MessageType::Nak, Ipv4Addr::UNSPECIFIED)))
            };
            if !iface.net.contains(ip) || ip.is_unspecified() {
                return nak("not on this network");
            }
            let held = leases.of(&client).is_some_and(|l| l.ip == ip);
            if !held && !leases.usable(pool, ip, &client, now) {
                return nak("the address is not this client's");
            }
            if pool.reservation(mac).is_some_and(|r| r.ip != ip) {
                return nak("this client has a reservation");
            }
            if !held && server_id.is_some() {
                return nak("no offer of that address");
            }
            leases.put(
                ip,
                &client,
                hostname,
                LeaseState::Bound,
                now + u64::from(secs),
            );
            (
                Decision::Ack { ip, mac, secs },
                Some(reply(MessageType::Ack, ip)),
            )
        }
        Some(MessageType::Decline) => match requested {
            Some(ip) if leases.decline(ip, &client, now) => (Decision::Declined { ip, mac }, None),
            _ => (
                Decision::Ignored {
                    why: "decline of an address not this client's",
                },
                None,
            ),
        },
        Some(MessageType::Release) => {
            let ip = msg.ciaddr();
            if leases.release(ip, &client, now) {
                (Decision::Released { ip, mac }, None)
            } else {
                (
                    Decision::Ignored {
                        why: "release of an address not this client's",
                    },
                    None,
                )
            }
        }
        Some(MessageType::Inform) => {
            let ip = msg.ciaddr();
            (
                Decision::Inform { ip, mac },
                Some(reply(MessageType::Ack, Ipv4Addr::UNSPECIFIED)),
            )
        }
        _ => (
            Decision::Ignored {
                why: "not a client message",
            },
            None,
        ),
    }
}

/// The answer of type `kind` to `req`, giving `yiaddr`, and where it goes
/// (RFC 2131 4.1): to ciaddr if the client has one, by broadcast if it
/// asks for it (or for a NAK), else to yiaddr at the client's MAC.
fn build(pool: &Pool, iface: Iface, req: &Message, kind: MessageType, yiaddr: Ipv4Addr) -> Reply {
    let mut m = Message::default();
    m.set_opcode(Opcode::BootReply)
        .set_xid(req.xid())
        .set_flags(req.flags())
        .set_chaddr(req.chaddr())
        .set_yiaddr(yiaddr);
    if kind != MessageType::Nak {
        m.set_ciaddr(req.ciaddr());
    }
    let opts = m.opts_mut();
    opts.insert(DhcpOption::MessageType(kind));
    opts.insert(DhcpOption::ServerIdentifier(iface.net.addr));
    if kind != MessageType::Nak {
        let mask = Ipv4Addr::from(patchbay_dataplane::wire::ipv4net::mask(
            0xffff_ffff,
            iface.net.len,
        ));
        opts.insert(DhcpOption::SubnetMask(mask));
        if !yiaddr.is_unspecified() {
            let secs = pool.lease_secs;
            opts.insert(DhcpOption::AddressLeaseTime(secs));
            opts.insert(DhcpOption::Renewal(secs / 2));
            opts.insert(DhcpOption::Rebinding(secs / 8 * 7));
        }
        if let Some(r) = pool.router {
            opts.insert(DhcpOption::Router(vec![r]));
        }
        if !pool.dns.is_empty() {
            opts.insert(DhcpOption::DomainNameServer(pool.dns.clone()));
        }
        if let Some(d) = &pool.domain {
            opts.insert(DhcpOption::DomainName(d.clone()));
        }
        if let Some(mtu) = pool.mtu {
            opts.insert(DhcpOption::InterfaceMtu(mtu));
        }
        if let Some(name) = pool
            .reservation(Mac::from_slice(req.chaddr()))
            .and_then(|r| r.name.clone())
        {
            opts.insert(DhcpOption::Hostname(name));
        }
        if !pool.routes.is_empty() {
            // A client that takes option 121 ignores option 3 (RFC 3442):
            // the default route goes in too.
            let mut routes: Vec<(ipnet::Ipv4Net, Ipv4Addr)> = pool
                .routes
                .iter()
                .filter_map(|(net, gw)| Some((ipnet::Ipv4Net::new(net.addr, net.len).ok()?, *gw)))
                .collect();
            if let Some(r) = pool.router {
                routes.push((ipnet::Ipv4Net::default(), r));
            }
            opts.insert(DhcpOption::ClasslessStaticRoute(routes));
        }
    }
    let mut payload = Vec::with_capacity(300);
    // Encoding a message we made cannot fail.
    let _ = m.encode(&mut Encoder::new(&mut payload));
    let broadcast = kind == MessageType::Nak || req.flags().broadcast();
    let (dst_ip, dst_mac) = if kind != MessageType::Nak && !req.ciaddr().is_unspecified() {
        (req.ciaddr(), Mac::from_slice(req.chaddr()))
    } else if broadcast || yiaddr.is_unspecified() {
        (Ipv4Addr::BROADCAST, Mac::BROADCAST)
    } else {
        (yiaddr, Mac::from_slice(req.chaddr()))
    };
    Reply {
        payload,
        dst_ip,
        dst_mac,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> Pool {
        Pool {
            bridge: "br0".into(),
            first: "192.168.15.100".parse().unwrap(),
            last: "192.168.15.150".parse().unwrap(),
            router: Some("192.168.15.10".parse().unwrap()),
            dns: vec!["192.168.15.10".parse().unwrap()],
            lease_secs: 600,
            domain: Some("lab".into()),
            mtu: Some(1400),
            routes: vec![(
                "10.9.0.0/16".parse().unwrap(),
                "192.168.15.1".parse().unwrap(),
            )],
            hosts: Vec::new(),
        }
    }

    fn iface() -> Iface {
        Iface {
            net: "192.168.15.10/24".parse().unwrap(),
            mac: Mac([2, 0, 0, 0, 0, 0x10]),
        }
    }

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    fn msg(kind: MessageType, opts: Vec<DhcpOption>) -> Message {
        let z = Ipv4Addr::UNSPECIFIED;
        let mut m = Message::new_with_id(7, z, z, z, z, &MAC);
        m.opts_mut().insert(DhcpOption::MessageType(kind));
        for o in opts {
            m.opts_mut().insert(o);
        }
        // As it comes off the wire.
        let mut b = Vec::new();
        m.encode(&mut Encoder::new(&mut b)).unwrap();
        decode(&b).unwrap()
    }

    fn reply(r: Option<Reply>) -> Message {
        Message::decode(&mut Decoder::new(&r.expect("a reply").payload)).unwrap()
    }

    #[test]
    fn dora_gives_an_address_with_every_option() {
        let (p, mut l) = (pool(), Leases::default());
        let (d, r) = answer(
            &p,
            &mut l,
            iface(),
            &msg(MessageType::Discover, vec![]),
            1000,
        );
        assert_eq!(
            d.to_string(),
            "offer 192.168.15.100 to 02:00:00:00:00:01, lease 600 s"
        );
        let r = r.unwrap();
        assert_eq!(
            (r.dst_ip, r.dst_mac),
            ("192.168.15.100".parse().unwrap(), Mac(MAC))
        );
        let offer = Message::decode(&mut Decoder::new(&r.payload)).unwrap();
        assert_eq!(offer.opts().msg_type(), Some(MessageType::Offer));
        let req = msg(
            MessageType::Request,
            vec![
                DhcpOption::ServerIdentifier("192.168.15.10".parse().unwrap()),
                DhcpOption::RequestedIpAddress(offer.yiaddr()),
            ],
        );
        let (d, r) = answer(&p, &mut l, iface(), &req, 1001);
        assert!(d.to_string().starts_with("ack 192.168.15.100"), "{d}");
        let ack = reply(r);
        let o = ack.opts();
        assert_eq!(o.msg_type(), Some(MessageType::Ack));
        assert!(
            matches!(o.get(OptionCode::SubnetMask), Some(DhcpOption::SubnetMask(m)) if *m == Ipv4Addr::new(255, 255, 255, 0))
        );
        assert!(matches!(
            o.get(OptionCode::AddressLeaseTime),
            Some(DhcpOption::AddressLeaseTime(600))
        ));
        assert!(matches!(
            o.get(OptionCode::Renewal),
            Some(DhcpOption::Renewal(300))
        ));
        assert!(matches!(
            o.get(OptionCode::Rebinding),
            Some(DhcpOption::Rebinding(525))
        ));
        assert!(matches!(
            o.get(OptionCode::InterfaceMtu),
            Some(DhcpOption::InterfaceMtu(1400))
        ));
        assert!(
            matches!(o.get(OptionCode::DomainName), Some(DhcpOption::DomainName(d)) if d == "lab")
        );
        match o.get(OptionCode::ClasslessStaticRoute) {
            Some(DhcpOption::ClasslessStaticRoute(r)) => assert_eq!(r.len(), 2, "{r:?}"),
            other => panic!("{other:?}"),
        }
        // Renewing: unicast to ciaddr, extended.
        let z = Ipv4Addr::UNSPECIFIED;
        let mut renew = Message::new_with_id(8, offer.yiaddr(), z, z, z, &MAC);
        renew
            .opts_mut()
            .insert(DhcpOption::MessageType(MessageType::Request));
        let (d, r) = answer(&p, &mut l, iface(), &renew, 1300);
        assert!(d.to_string().starts_with("ack 192.168.15.100"), "{d}");
        assert_eq!(r.unwrap().dst_ip, offer.yiaddr());
        assert_eq!(l.get(offer.yiaddr()).unwrap().expires, 1900);
    }

    #[test]
    fn wrong_requests_get_a_nak_and_other_servers_are_respected() {
        let (p, mut l) = (pool(), Leases::default());
        let off_net = msg(
            MessageType::Request,
            vec![DhcpOption::RequestedIpAddress("10.1.1.1".parse().unwrap())],
        );
        let (d, r) = answer(&p, &mut l, iface(), &off_net, 0);
        assert!(
            matches!(
                d,
                Decision::Nak {
                    why: "not on this network",
                    ..
                }
            ),
            "{d}"
        );
        let r = r.unwrap();
        assert_eq!((r.dst_ip, r.dst_mac), (Ipv4Addr::BROADCAST, Mac::BROADCAST));
        let other = msg(
            MessageType::Request,
            vec![DhcpOption::ServerIdentifier(
                "192.168.15.11".parse().unwrap(),
            )],
        );
        assert!(answer(&p, &mut l, iface(), &other, 0).1.is_none());
        // INIT-REBOOT to a free address of the pool (after a restart with
        // no lease file, say): granted.
        let reboot = msg(
            MessageType::Request,
            vec![DhcpOption::RequestedIpAddress(
                "192.168.15.120".parse().unwrap(),
            )],
        );
        assert!(matches!(
            answer(&p, &mut l, iface(), &reboot, 0).0,
            Decision::Ack { .. }
        ));
    }

    #[test]
    fn release_and_inform() {
        let (p, mut l) = (pool(), Leases::default());
        let (_, r) = answer(&p, &mut l, iface(), &msg(MessageType::Discover, vec![]), 0);
        let ip = reply(r).yiaddr();
        let req = msg(
            MessageType::Request,
            vec![DhcpOption::RequestedIpAddress(ip)],
        );
        answer(&p, &mut l, iface(), &req, 1);
        let z = Ipv4Addr::UNSPECIFIED;
        let mut rel = Message::new_with_id(9, ip, z, z, z, &MAC);
        rel.opts_mut()
            .insert(DhcpOption::MessageType(MessageType::Release));
        let (d, r) = answer(&p, &mut l, iface(), &rel, 2);
        assert_eq!((d, r), (Decision::Released { ip, mac: Mac(MAC) }, None));
        assert!(!l.get(ip).unwrap().is_active(2));
        let mut inform = Message::new_with_id(10, ip, z, z, z, &MAC);
        inform
            .opts_mut()
            .insert(DhcpOption::MessageType(MessageType::Inform));
        let (d, r) = answer(&p, &mut l, iface(), &inform, 3);
        assert!(matches!(d, Decision::Inform { .. }));
        let r = r.unwrap();
        assert_eq!(r.dst_ip, ip, "to ciaddr");
        let ack = Message::decode(&mut Decoder::new(&r.payload)).unwrap();
        assert!(ack.yiaddr().is_unspecified());
        assert!(
            ack.opts().get(OptionCode::AddressLeaseTime).is_none(),
            "no lease in an INFORM's ACK"
        );
    }

    #[test]
    fn random_bytes_never_panic_the_decoder() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let real = {
            let mut b = Vec::new();
            msg(
                MessageType::Discover,
                vec![DhcpOption::Hostname("h".into())],
            )
            .encode(&mut Encoder::new(&mut b))
            .unwrap();
            b
        };
        for _ in 0..20_000 {
            let mut b = real.clone();
            let n = (next() % 8) as usize;
            for _ in 0..=n {
                let at = (next() as usize) % b.len();
                b[at] = next() as u8;
            }
            b.truncate(((next() as usize) % (b.len() + 1)).max(200));
            if let Ok(m) = decode(&b) {
                let mut l = Leases::default();
                let _ = answer(&pool(), &mut l, iface(), &m, 0);
            }
        }
    }

    #[test]
    fn malformed_messages_are_refused() {
        assert!(matches!(decode(&[0u8; 10]), Err(Malformed::Decode(_))));
        let mut b = Vec::new();
        let z = Ipv4Addr::UNSPECIFIED;
        Message::new_with_id(1, z, z, z, z, &MAC)
            .encode(&mut Encoder::new(&mut b))
            .unwrap();
        assert_eq!(decode(&b), Err(Malformed::NoType));
        // A bad magic cookie.
        let mut m = msg(MessageType::Discover, vec![]);
        m.set_opcode(Opcode::BootReply);
        let mut b = Vec::new();
        m.encode(&mut Encoder::new(&mut b)).unwrap();
        assert_eq!(decode(&b), Err(Malformed::NotRequest));
        b[236] ^= 0xff;
        assert!(decode(&b).is_err());
    }
}
