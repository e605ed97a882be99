//! The switch the fuzzers attack: a NAT router between two bridges, in
//! memory, with the checks that hold whatever comes in.
//!
//! ```text
//!  inside host 192.168.15.1 ── port "inside" ─┐
//!  stations 02:00:00:00:03:nn ─ port "neighbour" ─ br0 ── router ── br1 ── port "outside" ── 203.0.113.2
//!                                192.168.15.10/24            203.0.113.1/24, MTU 600
//! ```
//!
//! br0 filters VLANs: "neighbour" is also a trunk of VLAN 10, whose VLAN
//! interface br0.10 is 10.10.0.1/24.
//!
//! Routes: 198.51.100.0/24 via 203.0.113.254, which never answers ARP.
//! NAT on br1: SNAT of 192.168.15.128/25 to 203.0.113.20-21, ports
//! 20000-20003 (a range the fuzzer can exhaust), masquerade of the rest of
//! 192.168.15.0/24, and UDP 5353 and TCP 8080 published to the inside
//! host's ports 53 and 80. Tables are small (8 FDB and ARP entries, 16
//! NAT sessions, 16 router buffers) and timeouts short, so that one input
//! fills them and [`Lab::wait`] expires them.

use super::frame::transport_checksum_ok;
use crate::l2::PortId;
use crate::nat::{Filtering, NatAction, Timeouts};
use crate::pipeline::{Switch, SwitchConfig, DEFAULT_BRIDGE};
use crate::port::memory::{MemoryHandle, MemoryPort};
use crate::trace::{Described, Filter};
use crate::wire::ipv4::{IpProtocol, Ipv4Packet};
use crate::wire::Ipv4Net;
use crate::wire::{Mac, VNET_HDR_LEN};
use std::net::Ipv4Addr;

pub const INSIDE_HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 15, 1);
pub const INSIDE_HOST_MAC: Mac = Mac([2, 0, 0, 0, 1, 1]);
pub const ROUTER_INSIDE: Ipv4Addr = Ipv4Addr::new(192, 168, 15, 10);
pub const OUTSIDE_HOST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
pub const OUTSIDE_HOST_MAC: Mac = Mac([2, 0, 0, 0, 2, 2]);
pub const ROUTER_OUTSIDE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// The gateway of 198.51.100.0/24: on the outside bridge, never answering.
pub const SILENT_GATEWAY: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 254);
pub const SNAT_FIRST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 20);
pub const SNAT_LAST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 21);
pub const SNAT_PORTS: (u16, u16) = (20000, 20003);
/// Published to the inside host's port 53.
pub const PUBLISHED_UDP: u16 = 5353;
/// Published to the inside host's port 80.
pub const PUBLISHED_TCP: u16 = 8080;
/// The inside bridge's subnet.
const INSIDE_NET: Ipv4Net = Ipv4Net {
    addr: Ipv4Addr::new(192, 168, 15, 0),
    len: 24,
};

/// The lab's ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabPort {
    /// The inside host's port, on br0.
    Inside,
    /// A second port on br0: bridged traffic, MAC moves, flooding.
    Neighbour,
    /// The outside port, alone on br1.
    Outside,
}

impl LabPort {
    pub const ALL: [LabPort; 3] = [LabPort::Inside, LabPort::Neighbour, LabPort::Outside];

    pub fn name(self) -> &'static str {
        match self {
            LabPort::Inside => "inside",
            LabPort::Neighbour => "neighbour",
            LabPort::Outside => "outside",
        }
    }
}

/// The lab: a switch, its ports' far ends, and what the checks need.
pub struct Lab {
    pub switch: Switch,
    ports: [(PortId, MemoryHandle); 3],
    /// Router MACs of br0 and br1.
    pub router_macs: [Mac; 2],
    /// Frames held back to go in one batch with the next frame of their port.
    held: [bool; 3],
    /// Every IPv4 packet fed in so far had valid transport checksums (or
    /// none to check): then every packet the router sends has them too.
    checksums_valid: bool,
    /// Packet captures under way (dropping a handle ends its capture).
    captures: Vec<crate::capture::TapHandle>,
    /// Frames sent out of each port so far.
    sent: [u64; 3],
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

impl Lab {
    pub fn new() -> Lab {
        let config = SwitchConfig {
            fdb_max: 8,
            ageing_time: 300,
            arp_max: 8,
            router_buffers: 16,
            arp_reachable_secs: 5,
            arp_stale_secs: 30,
            nat_max: 16,
            nat_timeouts: Timeouts {
                tcp_established: 120,
                tcp_transitory: 20,
                udp: 30,
                icmp: 10,
            },
            max_routes: 64,
        };
        let mut sw = Switch::new(config, None);
        sw.seed(0x5eed_f00d);
        sw.add_bridge("br1").expect("new bridge");
        sw.set_ageing(DEFAULT_BRIDGE, 60).expect("bridge");
        let mut add = |port: LabPort, bridge: &str| {
            let p = MemoryPort::new(port.name());
            let h = p.handle();
            h.capture(true);
            let id = sw.add_port(Box::new(p), Some(bridge)).expect("new port");
            (id, h)
        };
        let ports = [
            add(LabPort::Inside, DEFAULT_BRIDGE),
            add(LabPort::Neighbour, DEFAULT_BRIDGE),
            add(LabPort::Outside, "br1"),
        ];
        let net = |s: &str| s.parse::<Ipv4Net>().expect("a prefix");
        sw.addr4_add(DEFAULT_BRIDGE, net("192.168.15.10/24"))
            .expect("address");
        sw.addr4_add("br1", net("203.0.113.1/24")).expect("address");
        sw.set_mtu("br1", 600).expect("mtu");
        // br0 is an 802.1Q bridge: the neighbour port is also a trunk of
        // VLAN 10, where the VLAN interface br0.10 routes, so tagged frames
        // reach the VLAN stages and the router through a tag; STP, LACP
        // and LLDP are forwarded.
        sw.set_vlan_filtering(DEFAULT_BRIDGE, true)
            .expect("filtering");
        sw.set_group_fwd_mask(DEFAULT_BRIDGE, 0x4005).expect("mask");
        sw.vlan_add(LabPort::Neighbour.name(), 10..=10, false, false)
            .expect("vlan");
        sw.add_vlan_iface("br0.10", DEFAULT_BRIDGE, 10)
            .expect("vlan interface");
        sw.addr4_add("br0.10", net("10.10.0.1/24"))
            .expect("address");
        // IPv6 too: both bridges route it, so hostile IPv6 reaches the
        // router's IPv6 stages (NDP, echo, forwarding, errors).
        let net6 = |s: &str| s.parse::<crate::wire::Ipv6Net>().expect("a prefix");
        sw.addr6_add(DEFAULT_BRIDGE, net6("2001:db8:15::10/64"))
            .expect("address");
        sw.addr6_add("br1", net6("2001:db8:113::1/64"))
            .expect("address");
        sw.neigh6_add(
            "2001:db8:113::2".parse().expect("an address"),
            OUTSIDE_HOST_MAC,
            "br1",
        )
        .expect("neighbour");
        sw.route4_add(net("198.51.100.0/24"), Some(SILENT_GATEWAY), None)
            .expect("route");
        sw.neigh4_add(OUTSIDE_HOST, OUTSIDE_HOST_MAC, "br1")
            .expect("neighbour");
        sw.neigh4_add(INSIDE_HOST, INSIDE_HOST_MAC, DEFAULT_BRIDGE)
            .expect("neighbour");
        let snat = NatAction::Snat {
            first: SNAT_FIRST,
            last: SNAT_LAST,
        };
        let upper = Some(net("192.168.15.128/25"));
        sw.nat_add(snat, upper, "br1", Some(SNAT_PORTS), Filtering::default())
            .expect("snat");
        let masquerade = NatAction::Masquerade;
        let ei = Filtering::EndpointIndependent;
        sw.nat_add(masquerade, Some(INSIDE_NET), "br1", None, ei)
            .expect("masquerade");
        for (proto, dport, to_port) in [
            (IpProtocol::Udp, PUBLISHED_UDP, 53),
            (IpProtocol::Tcp, PUBLISHED_TCP, 80),
        ] {
            let dnat = NatAction::Dnat {
                proto,
                dport,
                to_addr: INSIDE_HOST,
                to_port,
            };
            sw.nat_add(dnat, None, "br1", None, Filtering::default())
                .expect("dnat");
        }
        let addrs = sw.addrs();
        let router_macs = [addrs[0].mac, addrs[1].mac];
        let mut lab = Lab {
            switch: sw,
            ports,
            router_macs,
            held: [false; 3],
            checksums_valid: true,
            captures: Vec::new(),
            sent: [0; 3],
        };
        // Out with the router's announcements of its new addresses.
        lab.wait(0);
        lab
    }

    /// Feeds one frame (virtio-net header and Ethernet frame) in on `port`,
    /// and forwards it with the frames held for that port; with `hold`, it
    /// waits for the next frame of the port, to go in the same batch.
    /// Then checks what came out.
    pub fn feed(&mut self, port: LabPort, frame: Vec<u8>, hold: bool) {
        if let Some(ok) = frame.get(VNET_HDR_LEN + 14..).and_then(|l3| {
            let eth = &frame[VNET_HDR_LEN..];
            (eth[12..14] == [0x08, 0x00]).then(|| transport_checksum_ok(l3))?
        }) {
            self.checksums_valid &= ok;
        }
        let (id, handle) = &self.ports[port as usize];
        handle.inject([frame]);
        self.held[port as usize] = hold;
        if !hold {
            self.switch.process_rx(*id);
            self.check_sent();
        }
    }

    /// How many frames `port` has sent.
    pub fn sent(&self, port: LabPort) -> u64 {
        self.sent[port as usize]
    }

    /// Forwards the frames still held.
    pub fn flush(&mut self) {
        for port in LabPort::ALL {
            if std::mem::take(&mut self.held[port as usize]) {
                self.switch.process_rx(self.ports[port as usize].0);
            }
        }
        self.check_sent();
    }

    /// Lets `ms` pass on the switch's clock, then runs its once-a-second
    /// housekeeping: entries, sessions and held fragments expire.
    pub fn wait(&mut self, ms: u64) {
        self.switch.advance_clock(ms);
        self.switch.housekeeping();
        self.check_sent();
    }

    /// Runs `frame` as a dry-run trace (`patchbay trace packet`) in on
    /// `port`, and checks that it changed nothing the switch had learned.
    pub fn dry_run(&mut self, port: LabPort, mut frame: Vec<u8>) {
        let before = self.learned();
        let traced = self.switch.trace_packet(port.name(), &mut frame);
        assert_eq!(
            before,
            self.learned(),
            "a dry run changed the switch's tables: {traced:?}"
        );
        self.check_sent();
        if let Ok(p) = traced {
            self.describe(&p.events, true);
        }
    }

    /// Arms a trace and captures on every port, or stops them; stopped, the
    /// trace recorded so far is read and put in words.
    pub fn trace(&mut self, on: bool) {
        if on {
            let filter = || {
                Filter::parse("port 53 or host 203.0.113.2 or arp or icmp or not udp")
                    .expect("a filter")
            };
            self.switch
                .trace_start(1000, None, filter())
                .expect("trace");
            self.captures.clear();
            for port in LabPort::ALL {
                let tap = self
                    .switch
                    .capture_start(port.name(), (true, true), filter(), 96, None);
                self.captures.push(tap.expect("capture"));
            }
        } else {
            self.switch.trace_stop();
            self.captures.clear();
            let (_, _, packets) = self.switch.trace_read();
            for p in packets {
                self.describe(&p.events, false);
            }
        }
    }

    /// Puts trace events in words, as `patchbay trace show` does.
    fn describe(&self, events: &[crate::trace::Event], dry: bool) {
        let (ports, bridges) = self.switch.names();
        let name = |names: &[Option<String>], i: u16| {
            names
                .get(usize::from(i))
                .cloned()
                .flatten()
                .unwrap_or_else(|| format!("#{i}"))
        };
        let port = |p: u16| name(&ports, p);
        let bridge = |b: u16| name(&bridges, b);
        for event in events {
            let line = Described {
                event,
                port: &port,
                bridge: &bridge,
                dry,
            }
            .to_string();
            assert!(!line.is_empty());
        }
    }

    /// What the switch learned from the wire, in words, ages left out.
    fn learned(&self) -> String {
        let sw = &self.switch;
        let mut sessions = sw.nat_sessions();
        sessions.iter_mut().for_each(|s| s.age = 0);
        let mut neighbours = sw.neighbors();
        neighbours.iter_mut().for_each(|n| n.age = None);
        let mut fdb = sw.fdb();
        fdb.iter_mut().for_each(|e| e.age = None);
        let mut stats = sw.stats();
        stats.uptime_secs = 0;
        format!("{sessions:?} {neighbours:?} {fdb:?} {stats:?}")
    }

    /// The checks on every frame sent.
    fn check_sent(&mut self) {
        for port in LabPort::ALL {
            let router_mac = self.router_macs[usize::from(port == LabPort::Outside)];
            let sent = self.ports[port as usize].1.take_sent();
            self.sent[port as usize] += sent.len() as u64;
            for frame in sent {
                let eth = &frame[VNET_HDR_LEN..];
                // Frames with the router's MAC as source come from the
                // router: bridged frames with that source are dropped on the
                // way in.
                if eth.len() < 14 || eth[6..12] != router_mac.0 || eth[12..14] != [0x08, 0x00] {
                    continue;
                }
                self.check_routed(port, &frame);
            }
        }
    }

    /// A packet the router sent out of `port` (virtio header and frame).
    fn check_routed(&self, port: LabPort, frame: &[u8]) {
        let l3 = &frame[VNET_HDR_LEN + 14..];
        let ip = match Ipv4Packet::new_checked(l3) {
            Ok(ip) => ip,
            Err(e) => panic!("the router sent a broken IPv4 header ({e:?}): {l3:02x?}"),
        };
        assert!(ip.ttl() >= 1, "the router sent TTL 0: {l3:02x?}");
        // RFC 1812 5.3.7, 4.2.2.11: a router originates or forwards nothing
        // from or to an address no host can have.
        let (src, dst) = (ip.src(), ip.dst());
        for (what, addr) in [("from", src), ("to", dst)] {
            assert!(
                !martian(addr),
                "the router sent a packet {what} {addr}: {l3:02x?}"
            );
        }
        let partial = frame[0] & crate::wire::vnet::F_NEEDS_CSUM != 0;
        if self.checksums_valid && !partial {
            assert_ne!(
                transport_checksum_ok(l3),
                Some(false),
                "the router broke a transport checksum: {l3:02x?}"
            );
        }
        // No inside host's address leaves through the NAT'd bridge, but that
        // of a connection an outside host opened to it (tracked
        // untranslated). The router's own address may: it answers pings.
        if port == LabPort::Outside && INSIDE_NET.contains(src) && src != ROUTER_INSIDE {
            let untranslated = self.switch.nat_sessions().iter().any(|s| {
                s.inside == s.outside && s.inside.split(':').next() == Some(&src.to_string())
            });
            assert!(
                untranslated,
                "inside address {src} leaked out untranslated: {l3:02x?}"
            );
        }
    }
}

/// An address no host can have (RFC 1812 4.2.2.11, 5.3.7): broadcast, a
/// lab subnet's directed broadcast, multicast, loopback, network 0, class E.
fn martian(a: Ipv4Addr) -> bool {
    let directed = [
        INSIDE_NET.broadcast(),
        Some(Ipv4Addr::new(203, 0, 113, 255)),
    ];
    a.is_broadcast()
        || a.is_multicast()
        || a.is_loopback()
        || a.octets()[0] == 0
        || a.octets()[0] >= 240
        || directed.contains(&Some(a))
}
