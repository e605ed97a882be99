//! Packet trace: what each stage decided about a packet, as plain data.
//!
//! A trace is armed for a number of packets (on one port, matching a
//! filter). Each stage that handles a traced packet records an [`Event`];
//! nothing is formatted until someone reads the trace, and the buffer is
//! bounded. When no trace is armed the cost is one predictable branch per
//! packet, and one per stage on a flag that is false.
//!
//! The same events describe a hypothetical packet (`trace packet`), run
//! through the live tables in dry mode: nothing is learned, sent or
//! created, and the events say what would be.

use crate::counters::DropReason;
use crate::l2::{BridgeId, PortId};
use crate::wire::{IpProtocol, Mac};
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Most packets one trace keeps.
pub const MAX_PACKETS: u32 = 10_000;
/// Most events kept for one packet.
pub const MAX_EVENTS_PER_PACKET: usize = 24;

/// What learning the source MAC did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Learned {
    New,
    Refreshed,
    Moved,
    Static,
    TableFull,
    /// Dry run: not learned.
    NotLearned,
}

/// Where a frame goes after the L2 stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum L2Out {
    Port(PortId),
    /// Flooded to this many ports.
    Flood(u16),
    Router,
}

/// What the ARP stage did with an ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArpAction {
    ReplySent,
    Learned,
    NotForUs,
}

/// How the next hop's MAC was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NextHopMac {
    Known(Mac),
    /// Queued until ARP answers; `asked`: a request went out now.
    Queued {
        asked: bool,
    },
}

/// What the router's IPv6 side made of a message to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Nd6 {
    /// A neighbour solicitation for this address: one of ours (answered)
    /// or another host's.
    Solicit { ours: bool },
    /// A neighbour advertisement: this address is at the frame's MAC.
    Advert,
    /// A router solicitation: answered unless one went less than 3 s ago.
    RouterSolicit { answered: bool },
    /// An echo request to this address of ours.
    Echo,
}

/// What NAT did to a packet that is not a session's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NatRelated {
    /// An ICMP error about a translated packet, translated back.
    IcmpError,
    /// A later fragment, given its first fragment's addresses.
    Fragment,
    /// A later fragment that came first, held.
    Held,
}

/// Where a VXLAN port sends a traced frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VxlanTo {
    /// Not known yet: the port's table is read as the frame leaves.
    Pending,
    /// The VTEP its destination MAC was learned at (or given).
    Vtep(Ipv4Addr),
    /// Every VTEP of the flood list, this many.
    Flood(u16),
}

/// One stage's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "kebab-case")]
pub enum Event {
    /// A frame came in.
    Rx {
        port: PortId,
        len: u32,
        src: Mac,
        dst: Mac,
        ethertype: u16,
    },
    /// l2-learn: the source MAC.
    Learn {
        mac: Mac,
        port: PortId,
        learned: Learned,
    },
    /// l2-forward: where the destination MAC leads.
    L2 { dst: Mac, out: L2Out },
    /// arp-input.
    Arp {
        request: bool,
        sender_ip: Ipv4Addr,
        sender_mac: Mac,
        target_ip: Ipv4Addr,
        action: ArpAction,
    },
    /// ip4-input: the header as it came.
    Ip4 {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        proto: IpProtocol,
        ttl: u8,
        len: u16,
        /// A fragment: its offset in bytes and whether more follow.
        #[serde(default)]
        frag: Option<(u16, bool)>,
    },
    /// nat: a rewrite, before (`pre`) or after routing: the packet's
    /// addresses and ports before and after.
    Nat {
        pre: bool,
        from: crate::nat::Tuple,
        to: crate::nat::Tuple,
        rule: u32,
        new_session: bool,
    },
    /// nat (pre-routing): a packet that is not a session's own, rewritten
    /// or held for one: its addresses after.
    NatRelated {
        kind: NatRelated,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    },
    /// ip4-lookup: the route that matched.
    Lookup {
        dst: Ipv4Addr,
        prefix: Ipv4Addr,
        len: u8,
        via: Option<Ipv4Addr>,
        bridge: BridgeId,
    },
    /// ip4-local: a packet for the router itself.
    Local { dst: Ipv4Addr, echo_reply: bool },
    /// ip4-dhcp: a message to the DHCP server, queued for it (or not: the
    /// queue is full).
    Dhcp { queued: bool },
    /// dhcp: the server's answer (made by patchbay, on its way out).
    DhcpAnswer {
        kind: DhcpKind,
        ip: Ipv4Addr,
        mac: Mac,
        secs: u32,
    },
    /// vxlan-decap: a frame out of a VXLAN datagram from `vtep`.
    VxlanDecap { vni: u32, vtep: Option<Ipv4Addr> },
    /// vxlan-encap: a frame to `dst` into VXLAN datagrams out of `port`,
    /// to `to`.
    VxlanEncap {
        port: PortId,
        vni: u32,
        dst: Mac,
        to: VxlanTo,
    },
    /// ip4-mtu: split into this many fragments.
    Fragmented { count: u16, mtu: u16 },
    /// icmp-error: an error sent back to the source.
    IcmpError {
        kind: u8,
        code: u8,
        to: Ipv4Addr,
        /// Fragmentation needed: the next hop's MTU.
        #[serde(default)]
        mtu: u16,
        /// The 4 bytes after the checksum: a redirect's gateway, a parameter
        /// problem's pointer (first byte), the MTU (last two).
        #[serde(default)]
        rest: u32,
    },
    /// arp-resolve: the next hop's MAC.
    Resolve { next_hop: Ipv4Addr, mac: NextHopMac },
    /// arp-input, nd: packets that waited for this MAC are sent now.
    Released { count: u16, mac: Mac },
    /// ip4-rewrite.
    Rewrite {
        ttl_from: u8,
        ttl_to: u8,
        src_mac: Mac,
        dst_mac: Mac,
    },
    /// ip6-input: the header as it came.
    Ip6 {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        next_header: IpProtocol,
        hop_limit: u8,
        len: u16,
    },
    /// nd, ip6-local: what the router answers itself.
    Nd { what: Nd6, addr: Ipv6Addr },
    /// ip6-lookup: the route that matched.
    Lookup6 {
        dst: Ipv6Addr,
        prefix: Ipv6Addr,
        len: u8,
        via: Option<Ipv6Addr>,
        bridge: BridgeId,
    },
    /// nd-resolve: the next hop's MAC.
    Resolve6 { next_hop: Ipv6Addr, mac: NextHopMac },
    /// ip6-rewrite.
    Rewrite6 {
        hop_from: u8,
        hop_to: u8,
        src_mac: Mac,
        dst_mac: Mac,
    },
    /// icmp6-error: an error sent back to the source (RFC 4443 types).
    Icmp6Error {
        kind: u8,
        code: u8,
        to: Ipv6Addr,
        #[serde(default)]
        mtu: u32,
    },
    /// vlan-classify: the VLAN a frame is in on a bridge with filtering,
    /// and whether it came tagged.
    VlanIn { vid: u16, tagged: bool },
    /// vlan-pop: the tag of a frame for the router taken off.
    VlanPop { vid: u16 },
    /// vlan-push / vlan-pop: a frame's tag put on or taken off as it
    /// leaves through a port.
    VlanTx { port: PortId, vid: u16, push: bool },
    /// The frame is sent out of a port (or would be, in a dry run).
    Tx { port: PortId },
    /// The packet goes no further.
    Drop { reason: DropReason },
}

/// What a DHCP server's answer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DhcpKind {
    Offer,
    Ack,
    Nak,
    /// An ACK to a DHCPINFORM: options, no address.
    Inform,
}

/// A traced packet: its number, when it came (microseconds since the trace
/// started) and what happened to it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TracedPacket {
    pub number: u32,
    pub at_us: u64,
    pub events: Vec<Event>,
    /// Events that did not fit ([`MAX_EVENTS_PER_PACKET`]).
    pub truncated: bool,
}

mod describe;
mod filter;
mod spec;

pub use describe::Described;
pub use filter::Filter;
pub use spec::PacketSpec;

/// The trace recorder, owned by the engine's thread.
#[derive(Debug, Default)]
pub struct Tracer {
    /// A trace is armed: packets are checked against it.
    pub armed: bool,
    /// The packet being handled now is traced: stages record.
    pub on: bool,
    /// Dry run: stages must not learn, send or create anything.
    pub dry: bool,
    left: u32,
    port: Option<PortId>,
    filter: Filter,
    started: Option<std::time::Instant>,
    /// Shared with readers: reading a trace copies pointers, not events.
    packets: Vec<std::sync::Arc<TracedPacket>>,
    next_number: u32,
    /// The VNI of each VXLAN port, by port id, as the trace started: a
    /// frame sent out of one is traced as encapsulated.
    pub vxlan: Vec<Option<u32>>,
    /// Some recorded encapsulation does not say its VTEP yet.
    vxlan_pending: bool,
}

impl Tracer {
    /// The VNI of port `port`, if it is a VXLAN port.
    pub fn vni_of(&self, port: PortId) -> Option<u32> {
        self.vxlan.get(usize::from(port)).copied().flatten()
    }

    /// Arms a trace of the next `count` packets (at most [`MAX_PACKETS`])
    /// that come in on `port` (any if `None`) and match `filter`. Forgets
    /// the previous trace.
    pub fn start(&mut self, count: u32, port: Option<PortId>, filter: Filter) {
        let count = count.clamp(1, MAX_PACKETS);
        *self = Tracer {
            armed: true,
            left: count,
            port,
            filter,
            started: Some(std::time::Instant::now()),
            packets: Vec::with_capacity(count as usize),
            ..Tracer::default()
        };
    }

    /// Records a frame to `dst` into VXLAN datagrams out of `port`; where
    /// to is filled in as it leaves ([`Tracer::resolve_vxlan`]).
    #[cold]
    pub fn record_vxlan_encap(&mut self, port: PortId, vni: u32, dst: Mac) {
        self.record(Event::VxlanEncap {
            port,
            vni,
            dst,
            to: VxlanTo::Pending,
        });
        self.vxlan_pending = true;
    }

    /// Fills in where VXLAN port `port` sends the traced frames it has
    /// not been asked about yet (`to` gives it for a destination MAC).
    /// Nothing to do, and no packet looked at, when none is waiting.
    #[inline]
    pub fn resolve_vxlan(&mut self, port: PortId, to: impl Fn(Mac) -> VxlanTo) {
        if self.vxlan_pending {
            self.resolve_vxlan_now(port, to);
        }
    }

    #[cold]
    fn resolve_vxlan_now(&mut self, port: PortId, to: impl Fn(Mac) -> VxlanTo) {
        let pending = |e: &Event, port: Option<PortId>| matches!(e, Event::VxlanEncap { port: p, to: VxlanTo::Pending, .. } if port.is_none_or(|q| q == *p));
        for p in &mut self.packets {
            if !p.events.iter().any(|e| pending(e, Some(port))) {
                continue;
            }
            for e in &mut std::sync::Arc::make_mut(p).events {
                if let Event::VxlanEncap {
                    port: q,
                    dst,
                    to: t,
                    ..
                } = e
                {
                    if *q == port && *t == VxlanTo::Pending {
                        *t = to(*dst);
                    }
                }
            }
        }
        self.vxlan_pending = self
            .packets
            .iter()
            .any(|p| p.events.iter().any(|e| pending(e, None)));
    }

    /// Disarms the trace; what it recorded stays readable.
    pub fn stop(&mut self) {
        self.armed = false;
        self.on = false;
    }

    /// Packets still to take.
    pub fn left(&self) -> u32 {
        if self.armed {
            self.left
        } else {
            0
        }
    }

    /// The packets traced so far (cheap to clone: shared).
    pub fn packets(&self) -> &[std::sync::Arc<TracedPacket>] {
        &self.packets
    }

    /// A frame came in on `port`: trace it if it is wanted. Call only when
    /// [`Tracer::armed`].
    #[cold]
    pub fn begin(&mut self, port: PortId, eth: &[u8]) {
        if self.left == 0 || self.port.is_some_and(|p| p != port) || !self.filter.matches(eth) {
            return;
        }
        self.start_packet();
        if let Ok(e) = crate::wire::EthernetFrame::new_checked(eth) {
            self.record(Event::Rx {
                port,
                len: eth.len() as u32,
                dst: e.dst(),
                src: e.src(),
                ethertype: e.ethertype(),
            });
        }
    }

    /// A frame patchbay made (a DHCP server's answer): traced if the
    /// filter takes it, whatever the port.
    #[cold]
    pub fn begin_made(&mut self, eth: &[u8]) {
        if self.left == 0 || !self.filter.matches(eth) {
            return;
        }
        self.start_packet();
    }

    /// Opens the record of the next traced packet.
    fn start_packet(&mut self) {
        self.left -= 1;
        self.next_number += 1;
        let at_us = self.started.map_or(0, |s| s.elapsed().as_micros() as u64);
        self.packets.push(std::sync::Arc::new(TracedPacket {
            number: self.next_number,
            at_us,
            events: Vec::with_capacity(8),
            truncated: false,
        }));
        self.on = true;
    }

    /// The traced packet is done with.
    #[inline]
    pub fn end(&mut self) {
        if self.on {
            self.on = false;
            if self.left == 0 {
                self.armed = false;
            }
        }
    }

    /// Records an event for the traced packet. Call only when [`Tracer::on`]
    /// (see the [`trace!`](crate::trace!) macro).
    #[cold]
    pub fn record(&mut self, e: Event) {
        // A packet is recorded within one batch and read between batches,
        // so it is never shared while it grows; were it, it is copied.
        if let Some(p) = self.packets.last_mut().map(std::sync::Arc::make_mut) {
            if p.events.len() < MAX_EVENTS_PER_PACKET {
                p.events.push(e);
            } else {
                p.truncated = true;
            }
        }
    }

    /// Sets up a dry run of one packet; returns the trace to put back with
    /// [`Tracer::end_dry`].
    pub fn begin_dry(&mut self) -> Tracer {
        let saved = std::mem::take(self);
        self.armed = true;
        self.dry = true;
        self.left = 1;
        saved
    }

    /// Ends a dry run: the running trace is back, the dry packet returned.
    pub fn end_dry(&mut self, saved: Tracer) -> TracedPacket {
        let packet = self
            .packets
            .pop()
            .map(|p| std::sync::Arc::try_unwrap(p).unwrap_or_else(|p| (*p).clone()));
        *self = saved;
        packet.unwrap_or(TracedPacket {
            number: 1,
            at_us: 0,
            events: Vec::new(),
            truncated: false,
        })
    }
}

/// Records `$event` on `$tracer` if the packet at hand is traced; the event
/// is not even built otherwise.
#[macro_export]
macro_rules! trace {
    ($tracer:expr, $event:expr) => {
        if $tracer.on {
            $tracer.record($event);
        }
    };
    // In code compiled twice, with and without tracing: `$gate` is the
    // const generic that says which, so the untraced copy has no check.
    ($gate:expr; $tracer:expr, $event:expr) => {
        if $gate && $tracer.on {
            $tracer.record($event);
        }
    };
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::Ipv4Packet;
    use crate::wire::{EthernetFrame, ETHERNET_HDR_LEN};

    fn frame(ethertype: u16, ip: &[u8]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(ip);
        f
    }

    fn udp(src: [u8; 4], dst: [u8; 4], dport: u16) -> Vec<u8> {
        let mut ip = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        ip.extend_from_slice(&[0x9c, 0x40]);
        ip.extend_from_slice(&dport.to_be_bytes());
        ip.extend_from_slice(&[0, 8, 0, 0]);
        frame(0x0800, &ip)
    }

    #[test]
    fn filters_like_tcpdump() {
        let dns = udp([10, 1, 0, 5], [198, 51, 100, 53], 53);
        let f = |s: &str| Filter::parse(s).unwrap();
        assert!(f("").matches(&dns));
        assert!(f("udp and port 53").matches(&dns));
        assert!(f("arp or host 10.1.0.5").matches(&dns));
        assert!(!f("arp or host 10.1.0.6").matches(&dns));
        assert!(f("not tcp").matches(&dns));
        assert!(f("src 10.1.0.5 dst 198.51.100.53").matches(&dns));
        assert!(!f("dst 10.1.0.5").matches(&dns));
        assert!(f("ether host 02:00:00:00:00:01").matches(&dns));
        assert!(f("udp and dst port 53").matches(&dns));
        assert!(!f("src port 53").matches(&dns));
        assert!(f("src host 10.1.0.5 && dst host 198.51.100.53").matches(&dns));
        let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 1, 0, 5];
        arp.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 1, 0, 1]);
        let arp = frame(0x0806, &arp);
        assert!(f("arp").matches(&arp));
        assert!(f("host 10.1.0.1").matches(&arp));
        for bad in [
            "host",
            "host x",
            "frob",
            "or arp",
            "arp or",
            "not",
            "port 70000",
            "tcp and",
            "and",
            "icmp and and udp",
            "&&",
            "tcp and or udp",
            "src port",
        ] {
            assert!(Filter::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn short_and_odd_frames_match_nothing_and_never_panic() {
        let f = Filter::parse("port 53 or host 10.0.0.1 or src 10.0.0.1 or dst 10.0.0.1 or arp or ip or udp or ether host 02:00:00:00:00:01").unwrap();
        for len in 0..80 {
            for ethertype in [0x0800u16, 0x0806, 0x86dd] {
                let mut fr = vec![0u8; len];
                if len >= ETHERNET_HDR_LEN {
                    EthernetFrame::new_unchecked(&mut fr[..]).set_ethertype(ethertype);
                }
                if len > ETHERNET_HDR_LEN {
                    // Header length 60: past the end.
                    Ipv4Packet::new_unchecked(&mut fr[ETHERNET_HDR_LEN..]).set_header_len(60);
                }
                let _ = f.matches(&fr);
            }
        }
    }

    #[test]
    fn a_trace_is_bounded_and_stops_itself() {
        let mut t = Tracer::default();
        t.start(2, None, Filter::parse("udp").unwrap());
        let dns = udp([10, 1, 0, 5], [198, 51, 100, 53], 53);
        for _ in 0..5 {
            if t.armed {
                t.begin(1, &dns);
            }
            for _ in 0..100 {
                trace!(t, Event::Tx { port: 2 });
            }
            t.end();
        }
        assert!(!t.armed);
        assert_eq!(t.packets().len(), 2);
        assert_eq!(t.packets()[0].events.len(), MAX_EVENTS_PER_PACKET);
        assert!(t.packets()[0].truncated);
    }
}
