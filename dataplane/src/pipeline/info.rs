//! What the control plane can read of the switch: plain, serializable
//! copies made between batches.

use crate::arp::NeighState;
use crate::counters::BridgeCounters;
use crate::ip4::{L3Counters, RpFilter};
use crate::nat::{Filtering, NatKind};
use crate::port::{LinkState, PortKind};
use crate::wire::Mac;
use crate::wire::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A port and its counters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PortInfo {
    pub name: String,
    pub kind: PortKind,
    pub master: Option<String>,
    pub state: LinkState,
    /// Times the interface was seen going down or away.
    pub link_down_events: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub drops: u64,
    pub drops_by_reason: BTreeMap<String, u64>,
}

/// A bridge, its ports and what it did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BridgeInfo {
    pub name: String,
    pub ports: Vec<String>,
    pub ageing_time: u32,
    #[serde(default)]
    pub vlan_filtering: bool,
    #[serde(default)]
    pub group_fwd_mask: u16,
    /// A VLAN interface: its bridge and VLAN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan_id: Option<u16>,
    pub fdb_entries: usize,
    pub counters: BridgeCounters,
}

/// One FDB entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FdbRow {
    pub mac: Mac,
    pub port: String,
    pub bridge: String,
    /// The VLAN it was learned in, on a bridge with VLAN filtering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// Behind a VXLAN port: the remote VTEP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<std::net::Ipv4Addr>,
    /// Seconds since the source was last seen; `None` for static entries.
    pub age: Option<u32>,
    #[serde(rename = "static")]
    pub is_static: bool,
}

/// Everything `patchbay stats` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatsInfo {
    pub ports: Vec<PortInfo>,
    pub bridges: Vec<BridgeInfo>,
    pub fdb_entries: usize,
    pub fdb_max: usize,
    pub nat_sessions: usize,
    pub nat_max: usize,
    pub nat: crate::nat::NatCounters,
    pub arp_entries: usize,
    pub arp_max: usize,
    pub routes: usize,
    /// Most routes the table takes (`limits.max_routes`).
    #[serde(default)]
    pub max_routes: usize,
    pub router_buffers_free: usize,
    pub l3: L3Counters,
    /// The router's IPv6 counters, and its neighbour cache's size.
    #[serde(default)]
    pub ip6: crate::ip6::Ip6Counters,
    #[serde(default)]
    pub nd_entries: usize,
    pub uptime_secs: u64,
    /// Packet captures under way.
    #[serde(default)]
    pub captures: Vec<crate::capture::TapInfo>,
}

/// A bridge's router interface.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddrInfo {
    pub dev: String,
    pub mac: Mac,
    pub mtu: u16,
    #[serde(default)]
    pub rp_filter: RpFilter,
    #[serde(default = "yes")]
    pub redirects: bool,
    pub addrs: Vec<Ipv4Net>,
    /// IPv6 addresses, and the link-local one the interface has with them.
    #[serde(default)]
    pub addrs6: Vec<Ipv6Net>,
    #[serde(default)]
    pub link_local: Option<Ipv6Addr>,
    /// What its router advertisements say (with an IPv6 address).
    #[serde(default)]
    pub ra: Option<crate::ip6::Ra>,
    /// IPv6 addresses another node of the link has too: not used.
    #[serde(default)]
    pub dad_failed: Vec<Ipv6Addr>,
}

fn yes() -> bool {
    true
}

/// Which routes `route show` lists (all, by default).
#[derive(Debug, Clone, Default)]
pub struct RouteFilter {
    /// Exactly this prefix, or (`root`) every prefix inside it.
    pub dst: Option<IpNet>,
    pub root: bool,
    /// Out of this bridge.
    pub dev: Option<String>,
}

/// One route.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouteInfo {
    pub dst: IpNet,
    pub via: Option<IpAddr>,
    pub dev: String,
    pub proto: RouteOrigin,
}

/// Where a route comes from, in iproute2's words (`proto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteOrigin {
    /// The subnet of a router address.
    Connected,
    /// Added by the control plane.
    Static,
    /// An address of the router itself (`route get` of one).
    Local,
}

impl RouteOrigin {
    pub fn name(self) -> &'static str {
        match self {
            RouteOrigin::Connected => "connected",
            RouteOrigin::Static => "static",
            RouteOrigin::Local => "local",
        }
    }
}

impl std::fmt::Display for RouteOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The decision for one destination.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouteGet {
    pub addr: IpAddr,
    pub route: RouteInfo,
    pub next_hop: IpAddr,
    pub src: Option<IpAddr>,
    pub neighbor_mac: Option<Mac>,
    pub port: Option<String>,
}

impl RouteGet {
    /// The answer for one of the router's own addresses, on interface
    /// `dev` with MAC `mac`: local, not routed (`ip route get` says "local"
    /// too).
    pub fn local(addr: IpAddr, dev: String, mac: Option<Mac>) -> RouteGet {
        let dst = match addr {
            IpAddr::V4(a) => IpNet::V4(Ipv4Net { addr: a, len: 32 }),
            IpAddr::V6(a) => IpNet::V6(Ipv6Net { addr: a, len: 128 }),
        };
        RouteGet {
            addr,
            route: RouteInfo {
                dst,
                via: None,
                dev,
                proto: RouteOrigin::Local,
            },
            next_hop: addr,
            src: Some(addr),
            neighbor_mac: mac,
            port: None,
        }
    }
}

/// One ARP cache entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NeighInfo {
    /// IPv4 (ARP) or IPv6 (NDP).
    pub ip: IpAddr,
    pub mac: Option<Mac>,
    pub dev: String,
    /// The port the MAC was learned on, if known.
    pub port: Option<String>,
    pub state: NeighState,
    /// Seconds since the last confirmation; `None` for permanent entries.
    pub age: Option<u32>,
    /// Packets waiting for the answer.
    pub queued: u16,
}

/// One NAT rule, in words and numbers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NatRuleInfo {
    pub id: u32,
    pub kind: NatKind,
    pub src: Option<Ipv4Net>,
    /// The egress bridge (source NAT) or ingress bridge (destination NAT).
    pub bridge: String,
    /// Source NAT: the outside address range; destination NAT: the target.
    pub to: Option<String>,
    pub ports: Option<(u16, u16)>,
    /// Source NAT: what may come in unsolicited (RFC 4787 REQ-8).
    pub filtering: Option<Filtering>,
    pub proto: Option<String>,
    pub dport: Option<u16>,
    pub hits: u64,
}

impl NatRuleInfo {
    /// The rule as the words of `patchbay nat add` that make it.
    pub fn words(&self) -> String {
        use std::fmt::Write;
        let mut w = self.kind.to_string();
        if let (Some(p), Some(d)) = (&self.proto, self.dport) {
            let _ = write!(w, " proto {p} in {} dport {d}", self.bridge);
        }
        if let Some(src) = self.src {
            let _ = write!(w, " src {src}");
        }
        if let Some(to) = &self.to {
            let _ = write!(w, " to {to}");
        }
        if let Some((lo, hi)) = self.ports {
            let _ = write!(w, " ports {lo}-{hi} out {}", self.bridge);
        }
        if let Some(f) = self.filtering {
            let _ = write!(w, " filtering {}", f.name());
        }
        w
    }
}

/// One NAT session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NatSessionInfo {
    pub proto: String,
    pub inside: String,
    pub outside: String,
    pub remote: String,
    pub state: crate::nat::ConnState,
    pub rule: u32,
    /// Seconds since the last packet.
    pub age: u32,
}

/// What the control plane configured, without what was learned from the
/// wire: the source of `patchbay save` and of the diff `patchbay apply`
/// makes. Lists are in the order things were added.
#[derive(Debug, Clone)]
pub struct RunningState {
    /// Table sizes and timeouts.
    pub config: super::SwitchConfig,
    pub bridges: Vec<BridgeState>,
    pub ports: Vec<PortState>,
    /// Static FDB entries: MAC, port, and VLAN (on a bridge with VLAN
    /// filtering).
    pub fdb: Vec<(Mac, String, Option<u16>)>,
    /// Static routes (not the connected ones): prefix, gateway, bridge.
    pub routes: Vec<(Ipv4Net, Option<Ipv4Addr>, String)>,
    /// IPv6 routes: prefix, gateway, bridge.
    pub routes6: Vec<(Ipv6Net, Option<Ipv6Addr>, String)>,
    /// Permanent ARP entries: address, MAC, bridge.
    pub neighbors: Vec<(Ipv4Addr, Mac, String)>,
    /// Permanent IPv6 neighbours: address, MAC, bridge.
    pub neighbors6: Vec<(Ipv6Addr, Mac, String)>,
    pub nat: Vec<NatRuleState>,
}

/// A bridge's settings and its router interface, if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeState {
    pub name: String,
    pub ageing_time: u32,
    /// The router interface's MTU; `None` without an address.
    pub mtu: Option<u16>,
    /// The router interface's reverse-path filtering and redirects; `None`
    /// without an address.
    pub rp_filter: Option<RpFilter>,
    pub redirects: Option<bool>,
    pub addrs: Vec<Ipv4Net>,
    /// Its IPv6 addresses (the link-local one aside).
    pub addrs6: Vec<Ipv6Net>,
    /// Its router advertisements; `None` without an IPv6 address.
    pub ra: Option<crate::ip6::Ra>,
    pub vlan_filtering: bool,
    pub group_fwd_mask: u16,
    /// A VLAN interface: the bridge it is on and its VLAN id.
    pub vlan: Option<(String, u16)>,
}

/// A port and the bridge it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortState {
    pub name: String,
    pub kind: PortKind,
    pub master: Option<String>,
    /// Its VLANs (used on a bridge with VLAN filtering), by VID.
    pub vlans: Vec<crate::l2::vlan::VlanMembership>,
    /// A VXLAN port's settings.
    pub vxlan: Option<VxlanState>,
}

/// A VXLAN port as configured: its settings, the VTEPs added to its flood
/// list (`remote` is the first), and its static remote MACs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanState {
    pub config: crate::port::vxlan::VxlanConfig,
    pub flood: Vec<Ipv4Addr>,
    pub statics: Vec<(Mac, Ipv4Addr)>,
}

/// A NAT rule as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatRuleState {
    pub id: u32,
    pub action: crate::nat::NatAction,
    pub src: Option<Ipv4Net>,
    pub bridge: String,
    pub ports: (u16, u16),
    pub filtering: crate::nat::Filtering,
}

/// The name at `id` of a table of names by id (as [`super::Switch::names`]
/// gives them), if that slot is taken.
pub fn name_at(names: &[Option<String>], id: usize) -> Option<&str> {
    names.get(id).and_then(Option::as_deref)
}
