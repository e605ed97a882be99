//! The config file: a whole lab in TOML.
//!
//! A file is read and checked whole, into the same [`RunningState`] that the
//! daemon reports of itself, so that `apply` is a diff of two values and
//! `save` is the reverse of `parse`. Every error names the file, the line
//! and, where there is one, the fix.
//!
//! ```toml
//! [limits]                      # table sizes, fixed when patchbayd starts
//! nat_max = 262144
//! max_routes = 4194304
//! [timeouts]
//! nat_udp_secs = 300
//!
//! [[bridge]]
//! name = "lan"
//! addresses = ["10.0.1.1/24"]
//!
//! [[port]]
//! name = "veth-h1"
//! bridge = "lan"
//!
//! [[route]]
//! dst = "10.9.0.0/16"
//! via = "10.0.1.2"
//!
//! [[nat]]
//! kind = "masquerade"
//! src = "10.0.1.0/24"
//! out = "wan"
//! ```
//!
//! The bridge `br0` always exists; a file that does not list it leaves it
//! empty.

use crate::api::NatRuleSpec;
use patchbay_dataplane::ip4::{Mtu, RpFilter};
use patchbay_dataplane::ip6::fib::is_link_local;
use patchbay_dataplane::ip6::Ra;
use patchbay_dataplane::l2::vlan::{parse_vid_range, PortVlans, Vid, VlanMembership};
use patchbay_dataplane::l2::{AgeingTime, GroupFwdMask};
use patchbay_dataplane::nat::{Filtering, NatAction, PortRange, Timeouts};
use patchbay_dataplane::pipeline::{
    BridgeState, NatRuleState, PortState, RunningState, SwitchConfig, DEFAULT_BRIDGE,
};
use patchbay_dataplane::port::{self, PortKind};
use patchbay_dataplane::wire::IpProtocol;
use patchbay_dataplane::wire::Mac;
use patchbay_dataplane::wire::{IpNet, Ipv4Net, Ipv6Net};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use toml::Spanned;

/// The default receive ring of AF_PACKET ports, in MiB.
pub const DEFAULT_RX_RING_MIB: u32 = patchbay_dataplane::port::DEFAULT_RX_RING_MIB;

/// A config file that is not right, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// A checked config file.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// What the daemon must look like after it is applied.
    pub state: RunningState,
    /// The receive ring of AF_PACKET ports, in MiB.
    pub rx_ring_mib: u32,
    /// Whether the file sets `[limits]`, and on which line.
    pub limits_line: Option<usize>,
    /// The line of each port, for errors in opening it.
    pub port_lines: HashMap<String, usize>,
    /// The DHCP servers (control plane only: not in the switch).
    pub dhcp: Vec<crate::dhcp::Pool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    limits: Option<Spanned<Limits>>,
    #[serde(default)]
    timeouts: Option<Spanned<TimeoutsCfg>>,
    #[serde(default, rename = "bridge")]
    bridges: Vec<Spanned<BridgeCfg>>,
    #[serde(default, rename = "port")]
    ports: Vec<Spanned<PortCfg>>,
    #[serde(default, rename = "fdb")]
    fdb: Vec<Spanned<FdbCfg>>,
    #[serde(default, rename = "route")]
    routes: Vec<Spanned<RouteCfg>>,
    #[serde(default, rename = "neigh")]
    neighbors: Vec<Spanned<NeighCfg>>,
    #[serde(default, rename = "dhcp")]
    dhcp: Vec<Spanned<DhcpCfg>>,
    #[serde(default, rename = "nat")]
    /// Read as tables and turned into rules one by one: a rule's kind
    /// decides its keys, and serde reads such a table without positions,
    /// so [`Checker::value_err`] finds the line.
    nat: Vec<Spanned<toml::Table>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Limits {
    fdb_max: Option<usize>,
    arp_max: Option<usize>,
    nat_max: Option<usize>,
    max_routes: Option<usize>,
    rx_ring_mib: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TimeoutsCfg {
    ageing_time: Option<u32>,
    arp_reachable_secs: Option<u32>,
    arp_stale_secs: Option<u32>,
    nat_tcp_established_secs: Option<u32>,
    nat_tcp_transitory_secs: Option<u32>,
    nat_udp_secs: Option<u32>,
    nat_icmp_secs: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BridgeCfg {
    name: String,
    ageing_time: Option<u32>,
    mtu: Option<u32>,
    rp_filter: Option<RpFilter>,
    redirects: Option<bool>,
    /// IPv4 and IPv6.
    #[serde(default)]
    addresses: Vec<IpNet>,
    /// Router advertisements (with an IPv6 address): on, router lifetime,
    /// DNS servers.
    ra: Option<bool>,
    ra_lifetime: Option<u16>,
    rdnss: Option<Vec<Ipv6Addr>>,
    ra_valid_lft: Option<u32>,
    ra_preferred_lft: Option<u32>,
    /// 802.1Q VLAN filtering (ports' `vlans` then apply).
    vlan_filtering: Option<bool>,
    /// Which of 01:80:C2:00:00:0N are forwarded (bit N; `0x4004`).
    group_fwd_mask: Option<u16>,
    /// A VLAN interface (`br0.20`): the bridge it is on, and its VLAN.
    link: Option<String>,
    id: Option<u16>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PortCfg {
    name: String,
    #[serde(default = "afpacket")]
    kind: PortKind,
    #[serde(alias = "master")]
    bridge: Option<String>,
    /// Its VLANs in `bridge vlan` words: `["1 pvid untagged", "10-20"]`
    /// (default: VLAN 1, untagged, PVID).
    vlans: Option<Vec<String>>,
    /// `kind = "vxlan"`: the VNI, the underlay's local address, a first
    /// remote VTEP, the UDP port (default 4789), more VTEPs for the flood
    /// list, and static remote MACs.
    vni: Option<u32>,
    local: Option<Ipv4Addr>,
    remote: Option<Ipv4Addr>,
    dstport: Option<u16>,
    #[serde(default)]
    flood: Vec<Ipv4Addr>,
    #[serde(default)]
    remotes: Vec<RemoteCfg>,
}

/// A static remote MAC of a VXLAN port.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoteCfg {
    mac: Mac,
    dst: Ipv4Addr,
}

fn afpacket() -> PortKind {
    PortKind::Afpacket
}

/// A bridge's DHCP server.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DhcpCfg {
    bridge: String,
    /// `FIRST-LAST`.
    range: String,
    router: Option<Ipv4Addr>,
    #[serde(default)]
    dns: Vec<Ipv4Addr>,
    /// Seconds (default 3600).
    lease: Option<u32>,
    domain: Option<String>,
    mtu: Option<u16>,
    /// `["10.9.0.0/16 via 192.168.15.1"]`.
    #[serde(default)]
    routes: Vec<String>,
    #[serde(default)]
    hosts: Vec<crate::dhcp::Reservation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FdbCfg {
    mac: Mac,
    dev: String,
    /// The VLAN, on a bridge with VLAN filtering (default: the port's PVID).
    vlan: Option<u16>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteCfg {
    /// IPv4 or IPv6.
    dst: IpNet,
    via: Option<IpAddr>,
    dev: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NeighCfg {
    /// IPv4 or IPv6.
    ip: IpAddr,
    mac: Mac,
    dev: String,
}

/// One VLAN of a port in `bridge vlan` words: `10 pvid untagged`.
pub fn vlan_words(v: &VlanMembership) -> String {
    let mut s = v.vid.to_string();
    if v.pvid {
        s.push_str(" pvid");
    }
    if v.untagged {
        s.push_str(" untagged");
    }
    s
}

/// Reads `10`, `10-20`, `10 pvid untagged` (a range takes no pvid): the
/// VLANs and their flags.
pub fn parse_vlan_words(text: &str) -> Result<(std::ops::RangeInclusive<u16>, bool, bool), String> {
    let mut words = text.split_whitespace();
    let vids = parse_vid_range(words.next().ok_or("a VLAN entry is empty")?)?;
    let (mut pvid, mut untagged) = (false, false);
    for w in words {
        match w {
            "pvid" => pvid = true,
            "untagged" => untagged = true,
            other => {
                return Err(format!(
                "'{other}' in VLAN entry '{text}': after the VLAN id come only pvid and untagged"
            ))
            }
        }
    }
    if pvid && vids.start() != vids.end() {
        return Err(format!("'{text}': pvid takes one VLAN, not a range"));
    }
    Ok((vids, pvid, untagged))
}

/// Maps byte offsets of a text to line numbers.
struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    fn new(text: &str) -> Lines {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Lines { starts }
    }

    fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset)
    }
}

/// Checks a config file whole. `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Parsed, ConfigError> {
    let lines = Lines::new(text);
    let parsed: File = toml::from_str(text).map_err(|e| {
        let at = e.span().map_or(0, |s| s.start);
        let line = lines.line(at);
        // Name the table the error is in, as the user wrote it (its header
        // may be the line the error points at).
        let line_end = text
            .get(at..)
            .and_then(|t| t.find('\n'))
            .map_or(text.len(), |n| at + n);
        let table = text
            .get(..line_end)
            .unwrap_or("")
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('['))
            .map(|l| l.trim_matches(|c| c == '[' || c == ']').to_string());
        let mut message = e
            .message()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        if message.is_empty() {
            message = match text.get(at..).and_then(|t| t.chars().next()) {
                Some(c) if c.is_control() && c != '\t' => {
                    format!("control character {c:?} (TOML allows only tabs)")
                }
                _ => "not valid TOML here".to_string(),
            };
        }
        ConfigError {
            file: file.to_string(),
            line,
            message: match table {
                // "route 10.0.0.0/33: prefix length over 32"
                Some(t) if message.starts_with(|c: char| c.is_ascii_digit()) => {
                    format!("{t} {message}")
                }
                Some(t) if !message.contains(&t) => format!("{t}: {message}"),
                _ => message,
            },
        }
    })?;
    Checker {
        file,
        text,
        lines,
        names: HashSet::new(),
    }
    .check(parsed)
}

/// A NAT rule of the API or a file, checked; errors name the offending key.
pub fn nat_rule(spec: &NatRuleSpec) -> Result<NatRuleState, (&'static str, String)> {
    let default_ports = PortRange::DEFAULT;
    let check_ports = |ports: Option<(u16, u16)>| {
        PortRange::check(ports.unwrap_or(default_ports)).map_err(|m| ("ports", m))
    };
    let rule = |action, src: Option<Ipv4Net>, bridge: &str, ports, filtering| NatRuleState {
        id: 0,
        action,
        // Host bits dropped, as the switch does.
        src: src.map(|n| n.subnet()),
        bridge: bridge.to_string(),
        ports,
        filtering,
    };
    Ok(match spec {
        NatRuleSpec::Masquerade {
            src,
            out,
            ports,
            filtering,
        } => rule(
            NatAction::Masquerade,
            *src,
            out,
            check_ports(*ports)?,
            *filtering,
        ),
        NatRuleSpec::Snat {
            src,
            first,
            last,
            out,
            ports,
            filtering,
        } => {
            if first > last {
                return Err(("first", format!("address range {first}-{last} is empty")));
            }
            let action = NatAction::Snat {
                first: *first,
                last: *last,
            };
            rule(action, *src, out, check_ports(*ports)?, *filtering)
        }
        NatRuleSpec::Dnat {
            proto,
            in_dev,
            dport,
            to_addr,
            to_port,
        } => {
            let proto = match proto.as_str() {
                "tcp" => IpProtocol::Tcp,
                "udp" => IpProtocol::Udp,
                p => return Err(("proto", format!("dnat proto must be tcp or udp, not '{p}'"))),
            };
            if *dport == 0 || *to_port == 0 {
                return Err(("dport", "dnat ports must not be 0".to_string()));
            }
            let action = NatAction::Dnat {
                proto,
                dport: *dport,
                to_addr: *to_addr,
                to_port: *to_port,
            };
            rule(action, None, in_dev, default_ports, Filtering::default())
        }
    })
}

mod check;
mod save;
use check::Checker;
pub use save::{dhcp_toml, to_toml};

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse("lab.toml", text).unwrap_err().to_string()
    }

    const LAB: &str = r#"
[timeouts]
nat_udp_secs = 600

[[bridge]]
name = "lan"
addresses = ["10.0.1.1/24"]

[[bridge]]
name = "wan"
addresses = ["192.0.2.1/24"]
mtu = 1400

[[port]]
name = "p1"
bridge = "lan"

[[port]]
name = "t1"
kind = "tap"

[[fdb]]
mac = "02:00:00:00:00:01"
dev = "p1"

[[route]]
dst = "0.0.0.0/0"
via = "192.0.2.254"

[[route]]
dst = "172.16.0.0/12"
dev = "lan"

[[route]]
dst = "10.9.0.0/16"
via = "172.16.0.1"

[[neigh]]
ip = "192.0.2.254"
mac = "02:00:00:00:00:fe"
dev = "wan"

[[nat]]
kind = "masquerade"
src = "10.0.1.0/24"
out = "wan"

[[nat]]
kind = "dnat"
proto = "tcp"
in = "wan"
dport = 8080
to_addr = "10.0.1.2"
to_port = 80
"#;

    #[test]
    fn a_lab_parses_and_resolves_gateways() {
        let p = parse("lab.toml", LAB).unwrap();
        let s = &p.state;
        assert_eq!(s.bridges.len(), 3, "br0 is always there");
        assert_eq!(s.bridges[0].name, "br0");
        assert_eq!(s.bridges[2].mtu, Some(1400));
        assert_eq!(s.bridges[1].mtu, Some(1500));
        assert_eq!(s.ports[1].kind, PortKind::Tap);
        assert_eq!(s.routes[0].2, "wan");
        assert_eq!(s.routes[2].2, "lan", "via a gateway on a dev route");
        assert_eq!(s.config.nat_timeouts.udp, 600);
        assert_eq!(s.nat.len(), 2);
    }

    #[test]
    fn save_then_parse_is_the_same_state() {
        let p = parse("lab.toml", LAB).unwrap();
        let text = to_toml(&p.state, p.rx_ring_mib);
        let again = parse("saved.toml", &text).unwrap();
        assert_eq!(
            format!("{:?}", again.state),
            format!("{:?}", p.state),
            "{text}"
        );
    }

    #[test]
    fn vlan_errors_name_the_line_and_the_fix() {
        let e = err("[[bridge]]\nname = \"br0\"\ngroup_fwd_mask = 0x0002\n");
        assert!(
            e.starts_with("lab.toml:3:") && e.contains("pause frames"),
            "{e}"
        );
        let e = err("[[port]]\nname = \"p1\"\nbridge = \"br0\"\nvlans = [\"10-20 pvid\"]\n");
        assert!(
            e.starts_with("lab.toml:4:") && e.contains("pvid takes one VLAN"),
            "{e}"
        );
        let e = err("[[port]]\nname = \"p1\"\nbridge = \"br0\"\nvlans = [\"4095\"]\n");
        assert!(e.contains("1 to 4094"), "{e}");
        let e = err(
            "[[bridge]]\nname = \"br0\"\n[[bridge]]\nname = \"br0.20\"\nlink = \"br0\"\nid = 20\n",
        );
        assert!(
            e.starts_with("lab.toml:5:") && e.contains("vlan_filtering = true"),
            "{e}"
        );
        let vlan_br0 = "[[bridge]]\nname = \"br0\"\nvlan_filtering = true\n";
        let e = err(&format!(
            "{vlan_br0}[[bridge]]\nname = \"v1\"\nlink = \"br0\"\nid = 1\n"
        ));
        assert!(e.contains("1 is br0's own"), "{e}");
        let e = err(&format!(
            "{vlan_br0}[[bridge]]\nname = \"v\"\nlink = \"br0\"\nid = 20\n\
             [[port]]\nname = \"p1\"\nbridge = \"v\"\n"
        ));
        assert!(e.contains("ports join its bridge br0"), "{e}");
        let e = err("[[port]]\nname = \"p1\"\nbridge = \"br0\"\n[[fdb]]\nmac = \"02:00:00:00:00:01\"\ndev = \"p1\"\nvlan = 10\n");
        assert!(e.contains("has no VLAN filtering"), "{e}");
        // A good one: parsed into the running state's form.
        let ok = parse(
            "lab.toml",
            &format!(
                "{vlan_br0}group_fwd_mask = 0x4004\n[[bridge]]\nname = \"br0.20\"\nlink = \"br0\"\n\
                 id = 20\naddresses = [\"10.20.0.1/24\"]\n[[port]]\nname = \"t\"\nbridge = \"br0\"\n\
                 vlans = [\"1 pvid untagged\", \"10-12\"]\n[[fdb]]\nmac = \"02:00:00:00:00:01\"\n\
                 dev = \"t\"\n"
            ),
        )
        .unwrap();
        let port = &ok.state.ports[0];
        assert_eq!(port.vlans.len(), 4);
        assert_eq!(ok.state.fdb[0].2, Some(1), "the port's PVID");
        assert_eq!(ok.state.bridges[1].vlan, Some(("br0".to_string(), 20)));
        assert_eq!(ok.state.bridges[0].group_fwd_mask, 0x4004);
    }

    #[test]
    fn vxlan_ports_are_checked_with_their_lines() {
        let port = |name: &str, vni: u32| {
            format!("[[port]]\nname = \"{name}\"\nkind = \"vxlan\"\nvni = {vni}\nlocal = \"10.200.0.1\"\n\n")
        };
        let e = err(&(port("vx0", 42) + &port("vx1", 42)));
        assert!(
            e.starts_with("lab.toml:10:")
                && e.contains("VNI 42 on 10.200.0.1:4789 is vx0's already"),
            "{e}"
        );
        let e = err(&port("vx0", 1 << 24));
        assert!(e.contains("24 bits at most"), "{e}");
        let e = err("[[port]]\nname = \"vx0\"\nkind = \"vxlan\"\nvni = 42\n");
        assert!(e.contains("needs vni and local"), "{e}");
        // Two VNIs on one UDP port are two segments.
        let ok = parse("lab.toml", &(port("vx0", 42) + &port("vx1", 43)));
        assert!(ok.is_ok(), "{:?}", ok.err());
    }

    #[test]
    fn errors_name_the_line_and_the_fix() {
        let e = err("[[route]]\ndst = \"10.0.0.0/33\"\nvia = \"10.0.0.1\"\n");
        assert!(e.starts_with("lab.toml:2:"), "{e}");
        assert!(
            e.contains("route 10.0.0.0/33: prefix length over 32"),
            "{e}"
        );

        let e = err("[[bridge]]\nname = \"lan\"\naddresses = [\"10.0.1.1/24\"]\n\n[[route]]\ndst = \"10.9.0.0/16\"\nvia = \"10.0.2.1\"\n");
        assert!(
            e.starts_with("lab.toml:7:") && e.contains("on no bridge's subnet"),
            "{e}"
        );

        let e = err("[[port]]\nname = \"p1\"\nbridge = \"lan\"\n");
        assert!(
            e.starts_with("lab.toml:3:") && e.contains("no bridge 'lan'"),
            "{e}"
        );

        let e = err("[[bridge]]\nname = \"lan\"\nrp_filter = \"loose\"\n");
        assert!(
            e.starts_with("lab.toml:3:") && e.contains("rp_filter is the router interface's"),
            "{e}"
        );
        let e = err("[[bridge]]\nname = \"lan\"\naddresses = [\"10.0.1.1/24\"]\nrp_filter = \"sometimes\"\n");
        assert!(e.starts_with("lab.toml:4:") && e.contains("`loose`"), "{e}");

        let e = err("[[bridge]]\nname = \"lan\"\nmtu = 1400\n");
        assert!(
            e.starts_with("lab.toml:3:") && e.contains("give the bridge an address"),
            "{e}"
        );

        let e = err("[[bridge]]\nname = \"lan\"\naddresses = [\"10.0.1.1/24\"]\n[[route]]\ndst = \"10.0.1.1/16\"\ndev = \"lan\"\n");
        assert!(e.contains("host bits") && e.contains("10.0.0.0/16"), "{e}");

        let e = err("[[bridge]]\nname = \"lan\"\ncolour = \"red\"\n");
        assert!(e.starts_with("lab.toml:3:") && e.contains("colour"), "{e}");

        let e = err("[limits]\nnat_max = 0\n");
        assert!(
            e.starts_with("lab.toml:2:") && e.contains("at least 1"),
            "{e}"
        );
        let e = err("[[bridge]]\nname = \"lan\"\naddresses = [\"fe80::1/64\"]\n");
        assert!(
            e.starts_with("lab.toml:3:") && e.contains("link-local"),
            "{e}"
        );
        let e = err(
            "[[bridge]]\nname = \"a\"\naddresses = [\"2001:db8::1/64\"]\n\
                     [[bridge]]\nname = \"b\"\naddresses = [\"2001:db8::2/64\"]\n",
        );
        assert!(
            e.contains("subnet 2001:db8::/64 is already on bridge a"),
            "{e}"
        );
        let e = err(
            "[[bridge]]\nname = \"a\"\naddresses = [\"2001:db8::1/64\"]\n\
                     [[route]]\ndst = \"2001:db8:9::/48\"\nvia = \"2001:db8:1::1\"\n",
        );
        assert!(
            e.contains("no IPv6 route out of a bridge covers the gateway"),
            "{e}"
        );
        let e = err("[[route]]\ndst = \"2001:db8:9::/48\"\nvia = \"10.0.0.1\"\n");
        assert!(e.contains("not of the prefix's family"), "{e}");
        let ok = parse(
            "lab.toml",
            "[[bridge]]\nname = \"a\"\naddresses = [\"10.0.1.1/24\", \"2001:db8::1/64\"]\n\
             [[route]]\ndst = \"2001:db8:9::/48\"\nvia = \"2001:db8::9\"\n",
        )
        .unwrap();
        let a = ok.state.bridges.iter().find(|b| b.name == "a").unwrap();
        assert_eq!((a.addrs.len(), a.addrs6.len()), (1, 1));
        assert_eq!(ok.state.routes6[0].2, "a", "the gateway's bridge");

        let e = err("[limits]\nmax_routes = 0\n");
        assert!(e.contains("limits.max_routes: must be at least 1"), "{e}");

        let e = err("[[bridge]]\nname = \"p1\"\n[[port]]\nname = \"p1\"\n");
        assert!(
            e.starts_with("lab.toml:4:") && e.contains("used twice"),
            "{e}"
        );

        // A NAT rule's errors point at the key or value they are about.
        let dnat = "[[bridge]]\nname = \"wan\"\naddresses = [\"10.2.0.1/24\"]\n[[nat]]\n\
                    kind = \"dnat\"\nproto = \"tcp\"\nin = \"wan\"\ndport = 8080\n\
                    to_addr = \"10.1.0.2\"\nto_port = 80\n";
        assert!(parse("lab.toml", dnat).is_ok());
        let e = err(&dnat.replace("dport = 8080", "dport = \"8080\""));
        assert!(e.starts_with("lab.toml:8: nat: invalid type"), "{e}");
        let e = err(&dnat.replace("in = ", "ni = "));
        assert!(e.starts_with("lab.toml:7: nat: unknown field `ni`"), "{e}");

        // A table's own header names it, not the table before.
        let e = err("[[port]]\nname = \"p1\"\n\n[[route]]\nvia = \"10.0.0.1\"\n");
        assert_eq!(e, "lab.toml:4: route: missing field `dst`");

        // A rule may wait for its bridge's address, as it may at run time.
        assert!(parse(
            "lab.toml",
            "[[nat]]\nkind = \"masquerade\"\nout = \"br0\"\n"
        )
        .is_ok());

        let e = err("[[bridge]]\nname = \"br0\"\naddresses = [\"10.0.1.1/24\"]\n[[route]]\ndst = \"10.9.0.0/16\"\nvia = \"10.0.1.1\"\n");
        assert!(
            e.starts_with("lab.toml:6:") && e.contains("address of the router itself"),
            "{e}"
        );

        let e = err("[[bridge]]\nname = \"a\"\naddresses = [\"10.0.1.1/24\"]\n[[bridge]]\nname = \"b\"\naddresses = [\"10.0.1.2/24\"]\n");
        assert!(
            e.starts_with("lab.toml:6:") && e.contains("already on bridge a"),
            "{e}"
        );

        let e = err("[[nat]]\nkind = \"masquerade\"\nout = \"br0\"\ncolour = 1\n");
        assert!(e.contains("colour"), "{e}");

        for bad in [
            "[[route]]\ndst = \"10.0.0.0/33\"\nvia = \"10.0.0.1\"\n",
            "x = 1\n",
            "[[nat]]\nkind = \"nope\"\n",
        ] {
            println!("{}", err(bad));
        }
        let e = err("this is not toml");
        assert!(e.starts_with("lab.toml:1:"), "{e}");
    }

    #[test]
    fn an_empty_file_is_an_empty_switch() {
        let p = parse("empty.toml", "").unwrap();
        assert_eq!(p.state.bridges.len(), 1);
        assert!(p.state.ports.is_empty() && p.state.routes.is_empty());
    }
}

#[cfg(test)]
mod example {
    /// Mutated config files get an error naming a line, never a panic; and
    /// whatever parses can be saved and parsed back to the same state.
    #[test]
    fn mutated_files_are_errors_or_round_trip() {
        let text = include_str!("../../examples/gateway-lab.toml").as_bytes();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut parsed = 0;
        for _ in 0..3_000 {
            let mut buf = text.to_vec();
            for _ in 0..1 + next() % 3 {
                let at = (next() as usize) % buf.len();
                match next() % 4 {
                    0 => buf[at] = b"0123456789./:[]\"=#\n abz"[(next() % 23) as usize],
                    1 => {
                        buf.remove(at);
                    }
                    2 => buf.insert(at, next() as u8),
                    _ => buf.truncate(at.max(1)),
                }
            }
            let text = String::from_utf8_lossy(&buf);
            match super::parse("m.toml", &text) {
                Err(e) => assert!(e.line >= 1 && !e.message.is_empty(), "{e}: {text}"),
                Ok(p) => {
                    parsed += 1;
                    let saved = super::to_toml(&p.state, p.rx_ring_mib);
                    let again = super::parse("saved.toml", &saved).unwrap();
                    assert_eq!(format!("{:?}", again.state), format!("{:?}", p.state));
                }
            }
        }
        assert!(parsed > 100, "only {parsed} mutants parsed");
    }

    #[test]
    fn the_example_lab_parses() {
        let text = include_str!("../../examples/gateway-lab.toml");
        let p = super::parse("gateway-lab.toml", text).unwrap();
        assert_eq!(p.state.ports.len(), 3);
        assert_eq!(p.state.nat.len(), 2);
        let text = include_str!("../../examples/vlan-lab.toml");
        let p = super::parse("vlan-lab.toml", text).unwrap();
        assert_eq!(p.state.ports[2].vlans.len(), 3);
        assert_eq!(p.state.bridges.len(), 3);
        assert_eq!(p.state.nat[0].bridge, "br0.20");
    }
}
