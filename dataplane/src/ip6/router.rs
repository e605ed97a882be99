//! The router's IPv6 side: an interface per bridge with IPv6 addresses (its
//! link-local one made from the router MAC), and the IPv6 routing table.

use super::fib::{Fib6, NextHop6};
use super::Fib6Error;
use crate::arp::NdCache;
use crate::l2::BridgeId;
use crate::wire::{Ipv6Net, Mac};
use serde::{Deserialize, Serialize};
use std::net::Ipv6Addr;

/// What a bridge's router advertisements say, and whether it sends them
/// (RFC 4861 6.2.1; the defaults are radvd's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ra {
    /// Sent (periodically, and in answer to solicitations).
    pub on: bool,
    /// Seconds hosts keep patchbay as a default router (0: not one).
    pub lifetime: u16,
    /// DNS servers announced (RFC 8106), if any.
    #[serde(default)]
    pub rdnss: Vec<Ipv6Addr>,
    /// How long hosts keep an address made from a prefix, and prefer it
    /// (seconds; radvd's AdvValidLifetime and AdvPreferredLifetime).
    #[serde(default = "valid_default")]
    pub valid_lft: u32,
    #[serde(default = "preferred_default")]
    pub preferred_lft: u32,
}

fn valid_default() -> u32 {
    86_400
}

fn preferred_default() -> u32 {
    14_400
}

impl Default for Ra {
    fn default() -> Ra {
        Ra {
            on: true,
            lifetime: RA_LIFETIME,
            rdnss: Vec::new(),
            valid_lft: valid_default(),
            preferred_lft: preferred_default(),
        }
    }
}

/// A change to what a bridge advertises: each field if given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaChange {
    pub on: Option<bool>,
    pub lifetime: Option<u16>,
    pub rdnss: Option<Vec<Ipv6Addr>>,
    pub valid_lft: Option<u32>,
    pub preferred_lft: Option<u32>,
}

impl RaChange {
    /// The change that makes any settings `ra`.
    pub fn to(ra: &Ra) -> RaChange {
        RaChange {
            on: Some(ra.on),
            lifetime: Some(ra.lifetime),
            rdnss: Some(ra.rdnss.clone()),
            valid_lft: Some(ra.valid_lft),
            preferred_lft: Some(ra.preferred_lft),
        }
    }

    /// `ra` changed.
    pub fn applied(self, ra: &Ra) -> Ra {
        Ra {
            on: self.on.unwrap_or(ra.on),
            lifetime: self.lifetime.unwrap_or(ra.lifetime),
            rdnss: self.rdnss.unwrap_or_else(|| ra.rdnss.clone()),
            valid_lft: self.valid_lft.unwrap_or(ra.valid_lft),
            preferred_lft: self.preferred_lft.unwrap_or(ra.preferred_lft),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == RaChange::default()
    }
}

/// Default router lifetime, seconds (RFC 4861 6.2.1: 3 x MaxRtrAdvInterval).
pub const RA_LIFETIME: u16 = 1800;

/// A bridge's IPv6 router interface.
#[derive(Debug, Clone)]
pub struct Iface6 {
    pub mac: Mac,
    /// fe80::/64 with the interface identifier of the router MAC (RFC
    /// 4291 2.5.1, modified EUI-64).
    pub link_local: Ipv6Addr,
    /// Its global (and unique local) addresses.
    pub addrs: Vec<Ipv6Net>,
    pub ra: Ra,
    /// When the next unsolicited advertisement is due (ms), how many of
    /// the quick initial ones are left, and when the last multicast one
    /// went (RFC 4861 6.2.4, 6.2.6).
    pub(crate) next_ra_ms: u64,
    pub(crate) initial_ras: u8,
    pub(crate) last_ra_ms: Option<u64>,
    /// Addresses under duplicate address detection, and until when (ms):
    /// used at once (optimistic, RFC 4429), advertised when it ends.
    pub(crate) tentative: Vec<(Ipv6Addr, u64)>,
    /// Addresses another node of the link turned out to have (RFC 4862
    /// 5.4.5): kept, but neither answered for nor used.
    pub dad_failed: Vec<Ipv6Addr>,
}

impl Iface6 {
    /// Whether `addr` is one of its addresses, link-local included (not
    /// one found duplicate).
    pub fn owns(&self, addr: Ipv6Addr) -> bool {
        (addr == self.link_local || self.addrs.iter().any(|a| a.addr == addr))
            && !self.dad_failed.contains(&addr)
    }
}

/// The link-local address of an interface with MAC `mac` (modified
/// EUI-64: the universal/local bit flipped, ff:fe in the middle).
pub fn link_local(mac: Mac) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 0x02,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ])
}

/// IPv6 counters of the router.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Ip6Counters {
    /// IPv6 packets to the router MAC, and multicast ones it looked at.
    pub ip6_in: u64,
    pub nd_solicits_in: u64,
    pub nd_adverts_sent: u64,
    pub echo_replies_sent: u64,
    #[serde(default)]
    pub router_solicits_in: u64,
    #[serde(default)]
    pub router_adverts_sent: u64,
    #[serde(default)]
    pub ip6_forwarded: u64,
    #[serde(default)]
    pub nd_solicits_sent: u64,
    /// Packets dropped because their next hop never answered.
    #[serde(default)]
    pub nd_failed: u64,
    #[serde(default)]
    pub icmp6_errors_sent: u64,
    #[serde(default)]
    pub icmp6_errors_limited: u64,
    /// Router addresses another node turned out to have.
    #[serde(default)]
    pub dad_conflicts: u64,
}

/// Why an IPv6 address change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Addr6Error {
    #[error("{0}: already an address of this bridge")]
    Exists(Ipv6Net),
    #[error("{0}: not an address of this bridge")]
    NoSuchAddr(Ipv6Net),
    #[error("{0}: not a unicast address a router can have (multicast, loopback, unspecified or link-local; the link-local one is made from the router MAC)")]
    BadAddr(Ipv6Net),
    #[error("{0}: a /128 or /127 subnet leaves no room for hosts; give the prefix length of the link (usually /64)")]
    BadLen(Ipv6Net),
    #[error("the bridge has no IPv6 address (add one first)")]
    NoInterface,
    #[error("ra_preferred_lft {0} is over ra_valid_lft {1}: an address cannot be preferred longer than it is valid")]
    BadLifetimes(u32, u32),
    #[error(transparent)]
    Fib(#[from] Fib6Error),
}

/// Quick advertisements after a change (RFC 4861 10:
/// MAX_INITIAL_RTR_ADVERTISEMENTS).
pub(crate) const MAX_INITIAL_RAS: u8 = 3;

/// The IPv6 interfaces and routes.
pub struct Router6 {
    ifaces: Vec<Option<Iface6>>,
    pub fib: Fib6,
    /// The neighbour cache (NDP), with its packets waiting for an answer.
    pub nd: NdCache,
    pub counters: Ip6Counters,
    /// Jitter of the advertisements' intervals.
    pub(crate) random: crate::random::Random,
    /// ICMPv6 errors: a token bucket (credit in ms, last top-up).
    icmp_credit: (u64, u64),
    /// Buffers released by an advertisement, reused.
    pub(crate) scratch: Vec<u16>,
}

/// ICMPv6 errors: a burst of 50, then one every 5 ms (200/s), as IPv4's
/// total (RFC 4443 2.4(f)).
const ICMP_INTERVAL_MS: u64 = 5;
const ICMP_BURST: u64 = 50;

impl Router6 {
    /// At most `max_routes` routes and `max_neighbors` neighbours, whose
    /// waiting packets are buffers of a pool of `buffers`.
    pub fn new(max_routes: usize, max_neighbors: usize, buffers: usize) -> Router6 {
        Router6 {
            ifaces: Vec::new(),
            fib: Fib6::with_max_routes(max_routes),
            nd: NdCache::new(max_neighbors, buffers),
            counters: Ip6Counters::default(),
            random: crate::random::Random::seeded(),
            icmp_credit: (ICMP_BURST * ICMP_INTERVAL_MS, 0),
            scratch: Vec::new(),
        }
    }

    /// Whether an ICMPv6 error may go now; takes a token if so.
    pub(crate) fn icmp_allow(&mut self, now: u64) -> bool {
        let (credit, last) = self.icmp_credit;
        let credit = (credit + now.saturating_sub(last)).min(ICMP_BURST * ICMP_INTERVAL_MS);
        if credit >= ICMP_INTERVAL_MS {
            self.icmp_credit = (credit - ICMP_INTERVAL_MS, now);
            true
        } else {
            self.icmp_credit = (credit, now);
            false
        }
    }

    pub fn iface(&self, bridge: BridgeId) -> Option<&Iface6> {
        self.ifaces
            .get(usize::from(bridge))
            .and_then(Option::as_ref)
    }

    pub fn router_mac(&self, bridge: BridgeId) -> Option<Mac> {
        self.iface(bridge).map(|i| i.mac)
    }

    /// The bridge whose interface has `addr` (a link-local one is only
    /// looked for on `on`, its link).
    pub fn owner(&self, addr: Ipv6Addr, on: BridgeId) -> Option<BridgeId> {
        if super::fib::is_link_local(addr) {
            return self.iface(on).filter(|i| i.link_local == addr).map(|_| on);
        }
        self.ifaces
            .iter()
            .enumerate()
            .find(|(_, i)| i.as_ref().is_some_and(|i| i.owns(addr)))
            .map(|(b, _)| b as BridgeId)
    }

    /// Adds `net` to bridge `bridge`'s interface (made, with router MAC
    /// `mac`, on its first address), and its connected route.
    pub fn addr_add(&mut self, bridge: BridgeId, net: Ipv6Net, mac: Mac) -> Result<(), Addr6Error> {
        let a = net.addr;
        if a.is_multicast() || a.is_loopback() || a.is_unspecified() || super::fib::is_link_local(a)
        {
            return Err(Addr6Error::BadAddr(net));
        }
        if net.len > 126 {
            return Err(Addr6Error::BadLen(net));
        }
        if self.iface(bridge).is_some_and(|i| i.addrs.contains(&net)) {
            return Err(Addr6Error::Exists(net));
        }
        // The connected route first: a full table refuses the address whole.
        let connected = NextHop6 {
            bridge,
            gateway: None,
        };
        self.fib.insert(net.subnet(), connected)?;
        let b = usize::from(bridge);
        if self.ifaces.len() <= b {
            self.ifaces.resize(b + 1, None);
        }
        let iface = self.ifaces[b].get_or_insert_with(|| Iface6 {
            mac,
            link_local: link_local(mac),
            addrs: Vec::new(),
            ra: Ra::default(),
            next_ra_ms: 0,
            initial_ras: 0,
            last_ra_ms: None,
            tentative: Vec::new(),
            dad_failed: Vec::new(),
        });
        iface.addrs.push(net);
        // A new prefix is advertised at once, then a few more times
        // quickly (RFC 4861 6.2.4).
        iface.next_ra_ms = 0;
        iface.initial_ras = MAX_INITIAL_RAS;
        Ok(())
    }

    /// Changes what bridge `bridge` advertises; the old settings.
    pub fn set_ra(&mut self, bridge: BridgeId, ra: Ra) -> Result<Ra, Addr6Error> {
        let iface = self
            .ifaces
            .get_mut(usize::from(bridge))
            .and_then(Option::as_mut)
            .ok_or(Addr6Error::NoInterface)?;
        if ra.preferred_lft > ra.valid_lft {
            return Err(Addr6Error::BadLifetimes(ra.preferred_lft, ra.valid_lft));
        }
        let old = std::mem::replace(&mut iface.ra, ra);
        iface.next_ra_ms = 0;
        iface.initial_ras = MAX_INITIAL_RAS;
        Ok(old)
    }

    pub(crate) fn iface_mut(&mut self, bridge: BridgeId) -> Option<&mut Iface6> {
        self.ifaces
            .get_mut(usize::from(bridge))
            .and_then(Option::as_mut)
    }

    /// Removes `net` from bridge `bridge`, and its connected route unless
    /// another address keeps it; the interface goes with its last address
    /// (routes out of the bridge stay). How many routes went.
    pub fn addr_del(&mut self, bridge: BridgeId, net: Ipv6Net) -> Result<usize, Addr6Error> {
        let iface = self
            .ifaces
            .get_mut(usize::from(bridge))
            .and_then(Option::as_mut)
            .ok_or(Addr6Error::NoSuchAddr(net))?;
        let at = iface
            .addrs
            .iter()
            .position(|a| *a == net)
            .ok_or(Addr6Error::NoSuchAddr(net))?;
        iface.addrs.remove(at);
        iface.dad_failed.retain(|a| *a != net.addr);
        iface.tentative.retain(|(a, _)| *a != net.addr);
        let still = iface.addrs.iter().any(|a| a.subnet() == net.subnet());
        if iface.addrs.is_empty() {
            self.ifaces[usize::from(bridge)] = None;
        }
        let connected = NextHop6 {
            bridge,
            gateway: None,
        };
        if !still && self.fib.get(net.subnet()) == Some(connected) {
            let _ = self.fib.remove(net.subnet());
            return Ok(1);
        }
        Ok(0)
    }

    /// Whether `net` out of `nh` is the connected route of an address.
    pub fn is_connected(&self, net: Ipv6Net, nh: NextHop6) -> bool {
        nh.gateway.is_none()
            && self
                .iface(nh.bridge)
                .is_some_and(|i| i.addrs.iter().any(|a| a.subnet() == net))
    }

    /// A bridge went: its interface, and every route out of it.
    pub fn forget_bridge(&mut self, bridge: BridgeId) -> usize {
        if let Some(slot) = self.ifaces.get_mut(usize::from(bridge)) {
            *slot = None;
        }
        self.fib.forget_bridge(bridge)
    }

    /// Every interface, with its bridge.
    pub fn ifaces(&self) -> impl Iterator<Item = (BridgeId, &Iface6)> {
        self.ifaces
            .iter()
            .enumerate()
            .filter_map(|(b, i)| Some((b as BridgeId, i.as_ref()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_addresses_come_from_the_mac() {
        let mac: Mac = "02:11:22:33:44:55".parse().unwrap();
        assert_eq!(link_local(mac).to_string(), "fe80::11:22ff:fe33:4455");
    }

    #[test]
    fn addresses_bring_their_connected_route_and_take_it_away() {
        let mut r = Router6::new(10, 16, 16);
        let mac: Mac = "02:00:00:00:00:01".parse().unwrap();
        let net: Ipv6Net = "2001:db8:1::1/64".parse().unwrap();
        r.addr_add(1, net, mac).unwrap();
        assert_eq!(r.addr_add(1, net, mac), Err(Addr6Error::Exists(net)));
        let other: Ipv6Net = "2001:db8:1::2/64".parse().unwrap();
        r.addr_add(1, other, mac).unwrap();
        assert_eq!(r.fib.len(), 1);
        assert_eq!(r.owner("2001:db8:1::2".parse().unwrap(), 0), Some(1));
        assert_eq!(r.owner(link_local(mac), 1), Some(1));
        assert_eq!(r.owner(link_local(mac), 0), None);
        assert_eq!(r.addr_del(1, net), Ok(0), "the other keeps the route");
        assert_eq!(r.addr_del(1, other), Ok(1));
        assert!(r.iface(1).is_none());
        for bad in ["fe80::1/64", "ff02::1/64", "::1/128", "2001:db8::1/128"] {
            assert!(r.addr_add(1, bad.parse().unwrap(), mac).is_err(), "{bad}");
        }
    }
}
