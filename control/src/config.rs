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
use patchbay_dataplane::l2::AgeingTime;
use patchbay_dataplane::nat::{Filtering, NatAction, PortRange, Timeouts};
use patchbay_dataplane::pipeline::{
    BridgeState, NatRuleState, PortState, RunningState, SwitchConfig, DEFAULT_BRIDGE,
};
use patchbay_dataplane::port::{self, PortKind};
use patchbay_dataplane::wire::Ipv4Net;
use patchbay_dataplane::wire::Mac;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
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
    #[serde(default)]
    addresses: Vec<Ipv4Net>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PortCfg {
    name: String,
    #[serde(default = "afpacket")]
    kind: PortKind,
    #[serde(alias = "master")]
    bridge: Option<String>,
}

fn afpacket() -> PortKind {
    PortKind::Afpacket
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FdbCfg {
    mac: Mac,
    dev: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteCfg {
    dst: Ipv4Net,
    via: Option<Ipv4Addr>,
    dev: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NeighCfg {
    ip: Ipv4Addr,
    mac: Mac,
    dev: String,
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

struct Checker<'a> {
    file: &'a str,
    text: &'a str,
    lines: Lines,
    /// Bridge and port names seen so far: they share one namespace.
    names: HashSet<String>,
}

/// The checked bridges, and what the other tables are checked against.
struct Bridges {
    list: Vec<BridgeState>,
    /// Each connected subnet's bridge.
    subnets: HashMap<Ipv4Net, String>,
    /// The router's own addresses: never a gateway or a neighbour.
    local: HashSet<Ipv4Addr>,
}

impl Checker<'_> {
    fn err(&self, span: &Range<usize>, message: String) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            line: self.lines.line(span.start),
            message,
        }
    }

    /// An error serde gave without a position, about the table at `span`:
    /// at the line of the key or value it names, if it names one.
    fn value_err(&self, span: &Range<usize>, table: &str, message: &str) -> ConfigError {
        let message = message
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        let quoted = |open: &str, close: char| {
            let from = message.find(open)? + open.len();
            let len = message[from..].find(close)?;
            Some(message[from..from + len].to_string())
        };
        let full = format!("{table}: {message}");
        // "unknown field `ot`", "... in `kind`": a key.
        if let Some(key) = quoted("field `", '`').or_else(|| quoted("in `", '`')) {
            return self.key_err(span, &key, full);
        }
        // "invalid type: string \"8080\"", "integer `70000`": a value.
        let value = quoted("\"", '"')
            .map(|v| format!("\"{v}\""))
            .or_else(|| quoted("`", '`'));
        let body = &self.text[span.clone()];
        let at = value.and_then(|v| {
            let mut offset = 0;
            body.split_inclusive('\n').find_map(|l| {
                let here = offset;
                offset += l.len();
                let (_, rhs) = l.split_once('=')?;
                rhs.contains(&v).then_some(here)
            })
        });
        ConfigError {
            file: self.file.to_string(),
            line: self.lines.line(span.start + at.unwrap_or(0)),
            message: full,
        }
    }

    /// The line of `key = ...` inside the table at `span`, or the table's.
    fn key_err(&self, span: &Range<usize>, key: &str, message: String) -> ConfigError {
        let body = &self.text[span.clone()];
        let offset = body
            .match_indices(key)
            .find(|(i, _)| {
                let before = body[..*i].chars().next_back();
                let after = body[i + key.len()..].trim_start();
                matches!(before, None | Some('\n' | ' ' | '\t' | '{' | ','))
                    && after.starts_with('=')
            })
            .map_or(0, |(i, _)| i);
        ConfigError {
            file: self.file.to_string(),
            line: self.lines.line(span.start + offset),
            message,
        }
    }

    fn new_name(&mut self, span: &Range<usize>, what: &str, name: &str) -> Result<(), ConfigError> {
        if port::sys::check_ifname(name).is_err() {
            return Err(self.key_err(
                span,
                "name",
                format!(
                    "{what} '{name}': not a valid interface name (1 to 15 bytes, no '/' or spaces)"
                ),
            ));
        }
        if !self.names.insert(name.to_string()) {
            return Err(self.key_err(
                span,
                "name",
                format!("{what} '{name}': the name is used twice (bridges and ports share names)"),
            ));
        }
        Ok(())
    }

    fn check(mut self, f: File) -> Result<Parsed, ConfigError> {
        let limits_line = f.limits.as_ref().map(|l| self.lines.line(l.span().start));
        let mut config = SwitchConfig::default();
        let rx_ring_mib = self.limits(&f, &mut config)?;
        self.timeouts(&f, &mut config)?;
        let bridges = self.bridges(&f, &config)?;
        let (ports, port_lines) = self.ports(&f, &bridges)?;
        let fdb = self.fdb(&f, &ports)?;
        let routes = self.routes(&f, &bridges)?;
        let neighbors = self.neighbors(&f, &bridges)?;
        let nat = self.nat(&f, &bridges)?;
        Ok(Parsed {
            state: RunningState {
                config,
                bridges: bridges.list,
                ports,
                fdb,
                routes,
                neighbors,
                nat,
            },
            rx_ring_mib,
            limits_line,
            port_lines,
        })
    }

    /// `[limits]`: table sizes and the receive ring; returns the ring's MiB.
    fn limits(&self, f: &File, config: &mut SwitchConfig) -> Result<u32, ConfigError> {
        let mut rx_ring_mib = DEFAULT_RX_RING_MIB;
        if let Some(l) = &f.limits {
            let span = l.span();
            let l = l.get_ref();
            for (key, v) in [
                ("fdb_max", l.fdb_max),
                ("arp_max", l.arp_max),
                ("nat_max", l.nat_max),
            ] {
                if v == Some(0) {
                    return Err(self.key_err(
                        &span,
                        key,
                        format!("limits.{key}: must be at least 1"),
                    ));
                }
            }
            config.fdb_max = l.fdb_max.unwrap_or(config.fdb_max);
            config.arp_max = l.arp_max.unwrap_or(config.arp_max);
            config.nat_max = l.nat_max.unwrap_or(config.nat_max);
            rx_ring_mib = l.rx_ring_mib.unwrap_or(rx_ring_mib);
            if !(1..=1024).contains(&rx_ring_mib) {
                return Err(self.key_err(
                    &span,
                    "rx_ring_mib",
                    format!("limits.rx_ring_mib: {rx_ring_mib} is not between 1 and 1024"),
                ));
            }
        }
        Ok(rx_ring_mib)
    }

    /// `[timeouts]`: FDB ageing, ARP and NAT timers.
    fn timeouts(&self, f: &File, config: &mut SwitchConfig) -> Result<(), ConfigError> {
        if let Some(t) = &f.timeouts {
            let span = t.span();
            let t = t.get_ref();
            let ranged = |key: &str, v: Option<u32>, default: u32, max: u32| {
                let v = v.unwrap_or(default);
                if (1..=max).contains(&v) {
                    Ok(v)
                } else {
                    Err(self.key_err(
                        &span,
                        key,
                        format!("timeouts.{key}: {v} is not between 1 and {max}"),
                    ))
                }
            };
            config.ageing_time = ranged(
                "ageing_time",
                t.ageing_time,
                config.ageing_time,
                AgeingTime::MAX,
            )?;
            config.arp_reachable_secs = ranged(
                "arp_reachable_secs",
                t.arp_reachable_secs,
                config.arp_reachable_secs,
                86_400,
            )?;
            config.arp_stale_secs = ranged(
                "arp_stale_secs",
                t.arp_stale_secs,
                config.arp_stale_secs,
                86_400,
            )?;
            let d = Timeouts::default();
            let day = 10 * 86_400;
            config.nat_timeouts = Timeouts {
                tcp_established: ranged(
                    "nat_tcp_established_secs",
                    t.nat_tcp_established_secs,
                    d.tcp_established,
                    day,
                )?,
                tcp_transitory: ranged(
                    "nat_tcp_transitory_secs",
                    t.nat_tcp_transitory_secs,
                    d.tcp_transitory,
                    day,
                )?,
                udp: ranged("nat_udp_secs", t.nat_udp_secs, d.udp, day)?,
                icmp: ranged("nat_icmp_secs", t.nat_icmp_secs, d.icmp, day)?,
            };
        }

        Ok(())
    }

    /// `[[bridge]]`s and their addresses (`br0` is always there).
    fn bridges(&mut self, f: &File, config: &SwitchConfig) -> Result<Bridges, ConfigError> {
        let mut bridges = Vec::new();
        let mut subnets: HashMap<Ipv4Net, String> = HashMap::new();
        // The router's own addresses: never a gateway or a neighbour.
        let mut local: HashSet<Ipv4Addr> = HashSet::new();
        for b in &f.bridges {
            let span = b.span();
            let b = b.get_ref();
            self.new_name(&span, "bridge", &b.name)?;
            let ageing_time = b.ageing_time.unwrap_or(config.ageing_time);
            if AgeingTime::new(ageing_time).is_err() {
                return Err(self.key_err(
                    &span,
                    "ageing_time",
                    format!(
                        "bridge {}: ageing_time {ageing_time} is not between 1 and 1000000",
                        b.name
                    ),
                ));
            }
            let mut addrs: Vec<Ipv4Net> = Vec::new();
            for a in &b.addresses {
                let at = |m: String| self.key_err(&span, "addresses", m);
                if a.len < 31 && (Some(a.addr) == a.broadcast() || a.addr == a.network()) {
                    return Err(at(format!(
                        "bridge {}: address {a} is the subnet's network or broadcast address; \
                         pick a host address",
                        b.name
                    )));
                }
                if addrs.contains(a) {
                    return Err(at(format!(
                        "bridge {}: address {a} is listed twice",
                        b.name
                    )));
                }
                let subnet = a.subnet();
                match subnets.get(&subnet) {
                    Some(other) if *other != b.name => {
                        return Err(at(format!(
                            "bridge {}: address {a}: subnet {subnet} is already on bridge {other}",
                            b.name
                        )))
                    }
                    _ => {
                        subnets.insert(subnet, b.name.clone());
                    }
                }
                local.insert(a.addr);
                addrs.push(*a);
            }
            let mtu = match (b.mtu, addrs.is_empty()) {
                (Some(m), _) if Mtu::new(m).is_err() => {
                    return Err(self.key_err(
                        &span,
                        "mtu",
                        format!(
                            "bridge {}: mtu {m} is not between {} and {}",
                            b.name,
                            Mtu::MIN,
                            Mtu::MAX
                        ),
                    ))
                }
                (Some(_), true) => {
                    return Err(self.key_err(
                        &span,
                        "mtu",
                        format!(
                            "bridge {}: mtu is the router interface's; give the bridge an \
                             address, or drop the mtu",
                            b.name
                        ),
                    ))
                }
                (m, false) => Some(m.map_or(Mtu::DEFAULT.get(), |m| m as u16)),
                (None, true) => None,
            };
            // Like the MTU, these are the router interface's.
            for (key, given) in [
                ("rp_filter", b.rp_filter.is_some()),
                ("redirects", b.redirects.is_some()),
            ] {
                if given && addrs.is_empty() {
                    return Err(self.key_err(
                        &span,
                        key,
                        format!(
                            "bridge {}: {key} is the router interface's; give the bridge an \
                             address, or drop the {key}",
                            b.name
                        ),
                    ));
                }
            }
            let routed = !addrs.is_empty();
            bridges.push(BridgeState {
                name: b.name.clone(),
                ageing_time,
                mtu,
                rp_filter: routed.then(|| b.rp_filter.unwrap_or_default()),
                redirects: routed.then(|| b.redirects.unwrap_or(true)),
                addrs,
            });
        }
        if !bridges.iter().any(|b| b.name == DEFAULT_BRIDGE) {
            self.names.insert(DEFAULT_BRIDGE.to_string());
            bridges.insert(
                0,
                BridgeState {
                    name: DEFAULT_BRIDGE.to_string(),
                    ageing_time: config.ageing_time,
                    mtu: None,
                    rp_filter: None,
                    redirects: None,
                    addrs: Vec::new(),
                },
            );
        }
        Ok(Bridges {
            list: bridges,
            subnets,
            local,
        })
    }

    /// `[[port]]`s, and the line of each.
    fn ports(
        &mut self,
        f: &File,
        bridges: &Bridges,
    ) -> Result<(Vec<PortState>, HashMap<String, usize>), ConfigError> {
        let bridge = |name: &str| bridges.list.iter().find(|b| b.name == name);
        let mut ports = Vec::new();
        let mut port_lines = HashMap::new();
        for p in &f.ports {
            let span = p.span();
            let p = p.get_ref();
            self.new_name(&span, "port", &p.name)?;
            if p.kind == PortKind::Memory {
                return Err(self.key_err(
                    &span,
                    "kind",
                    format!("port {}: kind is afpacket or tap", p.name),
                ));
            }
            if let Some(b) = &p.bridge {
                if bridge(b).is_none() {
                    return Err(self.key_err(
                        &span,
                        "bridge",
                        format!(
                            "port {}: no bridge '{b}' (add a [[bridge]] with name = \"{b}\")",
                            p.name
                        ),
                    ));
                }
            }
            port_lines.insert(p.name.clone(), self.lines.line(span.start));
            ports.push(PortState {
                name: p.name.clone(),
                kind: p.kind,
                master: p.bridge.clone(),
            });
        }

        Ok((ports, port_lines))
    }

    /// `[[fdb]]`: static entries, on ports that are on a bridge.
    fn fdb(&self, f: &File, ports: &[PortState]) -> Result<Vec<(Mac, String)>, ConfigError> {
        let mut fdb = Vec::new();
        let mut fdb_seen = HashSet::new();
        for e in &f.fdb {
            let span = e.span();
            let e = e.get_ref();
            let master = match ports.iter().find(|p| p.name == e.dev) {
                None => {
                    return Err(self.key_err(
                        &span,
                        "dev",
                        format!("fdb {}: no port '{}'", e.mac, e.dev),
                    ))
                }
                Some(PortState { master: None, .. }) => {
                    return Err(self.key_err(
                        &span,
                        "dev",
                        format!("fdb {}: port {} is on no bridge; give it one", e.mac, e.dev),
                    ))
                }
                Some(PortState {
                    master: Some(m), ..
                }) => m.clone(),
            };
            if !e.mac.is_unicast() {
                return Err(self.key_err(
                    &span,
                    "mac",
                    format!("fdb {}: static entries must be unicast MACs", e.mac),
                ));
            }
            if !fdb_seen.insert((e.mac, master.clone())) {
                return Err(self.err(
                    &span,
                    format!("fdb {}: listed twice in bridge {master}", e.mac),
                ));
            }
            fdb.push((e.mac, e.dev.clone()));
        }

        Ok(fdb)
    }

    /// `[[route]]`s: the gateway of each must be on a connected subnet or
    /// a route straight out of a bridge, as the router will check.
    #[allow(clippy::type_complexity)]
    fn routes(
        &self,
        f: &File,
        bridges: &Bridges,
    ) -> Result<Vec<(Ipv4Net, Option<Ipv4Addr>, String)>, ConfigError> {
        let (subnets, local) = (&bridges.subnets, &bridges.local);
        let bridge = |name: &str| bridges.list.iter().find(|b| b.name == name);
        let routed = |dev: &str| bridge(dev).is_some_and(|b| !b.addrs.is_empty());
        let mut onlink: HashMap<(u32, u8), String> = subnets
            .iter()
            .map(|(n, b)| ((u32::from(n.addr), n.len), b.clone()))
            .collect();
        let mut seen: HashSet<Ipv4Net> = HashSet::with_capacity(f.routes.len());
        for r in &f.routes {
            let span = r.span();
            let r = r.get_ref();
            let dst = r.dst;
            if dst.addr != dst.network() {
                return Err(self.key_err(
                    &span,
                    "dst",
                    format!(
                        "route {dst}: host bits are set; did you mean {}/{}?",
                        dst.network(),
                        dst.len
                    ),
                ));
            }
            if let Some(b) = subnets.get(&dst) {
                return Err(self.key_err(
                    &span,
                    "dst",
                    format!(
                        "route {dst}: that is the connected route of bridge {b}'s address; drop it"
                    ),
                ));
            }
            if !seen.insert(dst) {
                return Err(self.key_err(&span, "dst", format!("route {dst}: listed twice")));
            }
            match (&r.via, &r.dev) {
                (None, None) => {
                    return Err(self.err(
                        &span,
                        format!("route {dst}: give via = \"GATEWAY\" or dev = \"BRIDGE\""),
                    ))
                }
                (Some(gw), _) if local.contains(gw) => {
                    return Err(self.key_err(
                        &span,
                        "via",
                        format!(
                            "route {dst} via {gw}: the gateway is an address of the router itself"
                        ),
                    ))
                }
                (_, Some(d)) if !routed(d) => {
                    return Err(self.key_err(
                        &span,
                        "dev",
                        format!(
                            "route {dst}: bridge '{d}' has no address, so it cannot route; add one"
                        ),
                    ))
                }
                (None, Some(d)) => {
                    onlink.insert((u32::from(dst.addr), dst.len), d.clone());
                }
                _ => {}
            }
        }
        let lens: Vec<u8> = {
            let mut l: Vec<u8> = onlink
                .keys()
                .map(|k| k.1)
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            l.sort_unstable_by(|a, b| b.cmp(a));
            l
        };
        let on_link = |gw: Ipv4Addr| {
            lens.iter().find_map(|&len| {
                let net = Ipv4Net { addr: gw, len }.network();
                onlink.get(&(u32::from(net), len))
            })
        };
        let mut routes = Vec::with_capacity(f.routes.len());
        for r in &f.routes {
            let span = r.span();
            let r = r.get_ref();
            let dev = match (r.via, &r.dev) {
                (None, Some(d)) => d.clone(),
                (Some(gw), dev) => match on_link(gw) {
                    Some(b) if dev.as_ref().is_none_or(|d| d == b) => b.clone(),
                    Some(b) => {
                        return Err(self.key_err(
                            &span,
                            "via",
                            format!(
                                "route {} via {gw}: the gateway is on bridge {b}, not {}",
                                r.dst,
                                dev.as_deref().unwrap_or("")
                            ),
                        ))
                    }
                    None => {
                        return Err(self.key_err(
                            &span,
                            "via",
                            format!(
                                "route {} via {gw}: the gateway is on no bridge's subnet; add an \
                                 address covering it",
                                r.dst
                            ),
                        ))
                    }
                },
                (None, None) => unreachable!("checked above"),
            };
            routes.push((r.dst, r.via, dev));
        }

        Ok(routes)
    }

    /// `[[neighbor]]`s: permanent ARP entries.
    fn neighbors(
        &self,
        f: &File,
        bridges: &Bridges,
    ) -> Result<Vec<(Ipv4Addr, Mac, String)>, ConfigError> {
        let local = &bridges.local;
        let bridge = |name: &str| bridges.list.iter().find(|b| b.name == name);
        let routed = |dev: &str| bridge(dev).is_some_and(|b| !b.addrs.is_empty());
        let mut neighbors = Vec::new();
        let mut neigh_seen = HashSet::new();
        for n in &f.neighbors {
            let span = n.span();
            let n = n.get_ref();
            if !routed(&n.dev) {
                return Err(self.key_err(
                    &span,
                    "dev",
                    format!(
                        "neigh {}: '{}' is not a bridge with an address",
                        n.ip, n.dev
                    ),
                ));
            }
            if !n.mac.is_unicast() {
                return Err(self.key_err(
                    &span,
                    "mac",
                    format!("neigh {}: a neighbour's MAC must be unicast", n.ip),
                ));
            }
            if local.contains(&n.ip) {
                return Err(self.key_err(
                    &span,
                    "ip",
                    format!(
                        "neigh {}: an address of the router itself, not a neighbour",
                        n.ip
                    ),
                ));
            }
            if !neigh_seen.insert((n.ip, n.dev.clone())) {
                return Err(self.err(&span, format!("neigh {} dev {}: listed twice", n.ip, n.dev)));
            }
            neighbors.push((n.ip, n.mac, n.dev.clone()));
        }

        Ok(neighbors)
    }

    /// `[[nat]]` rules.
    fn nat(&self, f: &File, bridges: &Bridges) -> Result<Vec<NatRuleState>, ConfigError> {
        let bridge = |name: &str| bridges.list.iter().find(|b| b.name == name);
        let mut nat = Vec::new();
        for r in &f.nat {
            let span = r.span();
            let spec: NatRuleSpec = toml::Value::Table(r.get_ref().clone())
                .try_into()
                .map_err(|e: toml::de::Error| self.value_err(&span, "nat", e.message()))?;
            let rule = nat_rule(&spec)
                .map_err(|(key, m)| self.key_err(&span, key, format!("nat: {m}")))?;
            // A rule may wait for its bridge's address (as the running
            // switch allows, so `save` then `apply` is a no-op).
            if bridge(&rule.bridge).is_none() {
                let key = if matches!(rule.action, NatAction::Dnat { .. }) {
                    "in"
                } else {
                    "out"
                };
                return Err(self.key_err(&span, key, format!("nat: no bridge '{}'", rule.bridge)));
            }
            if let NatAction::Dnat { proto, dport, .. } = rule.action {
                let taken = nat.iter().any(|o: &NatRuleState| {
                    o.bridge == rule.bridge
                        && matches!(o.action, NatAction::Dnat { proto: p, dport: d, .. }
                            if p == proto && d == dport)
                });
                if taken {
                    return Err(self.key_err(
                        &span,
                        "dport",
                        format!("nat: port {dport} on {} is published twice", rule.bridge),
                    ));
                }
            }
            nat.push(rule);
        }

        Ok(nat)
    }
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
                "tcp" => 6,
                "udp" => 17,
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

fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Writes a state as a config file that [`parse`] reads back to the same
/// state.
pub fn to_toml(state: &RunningState, rx_ring_mib: u32) -> String {
    let c = &state.config;
    let t = &c.nat_timeouts;
    let mut out = String::with_capacity(256 + state.routes.len() * 64);
    let _ = write!(
        out,
        "# patchbay config (patchbay save); patchbay apply FILE makes a daemon match it.\n\
         \n\
         # Table sizes: set when patchbayd starts.\n\
         [limits]\n\
         fdb_max = {}\narp_max = {}\nnat_max = {}\nrx_ring_mib = {rx_ring_mib}\n\
         \n\
         [timeouts]\n\
         ageing_time = {}\narp_reachable_secs = {}\narp_stale_secs = {}\n\
         nat_tcp_established_secs = {}\nnat_tcp_transitory_secs = {}\n\
         nat_udp_secs = {}\nnat_icmp_secs = {}\n",
        c.fdb_max,
        c.arp_max,
        c.nat_max,
        c.ageing_time,
        c.arp_reachable_secs,
        c.arp_stale_secs,
        t.tcp_established,
        t.tcp_transitory,
        t.udp,
        t.icmp,
    );
    for b in &state.bridges {
        let _ = write!(
            out,
            "\n[[bridge]]\nname = {}\nageing_time = {}\n",
            quoted(&b.name),
            b.ageing_time
        );
        if !b.addrs.is_empty() {
            let addrs: Vec<String> = b.addrs.iter().map(|a| format!("\"{a}\"")).collect();
            let _ = writeln!(out, "addresses = [{}]", addrs.join(", "));
        }
        if let Some(mtu) = b.mtu {
            let _ = writeln!(out, "mtu = {mtu}");
        }
        if let Some(rp) = b.rp_filter.filter(|rp| *rp != RpFilter::default()) {
            let _ = writeln!(out, "rp_filter = \"{rp}\"");
        }
        if b.redirects == Some(false) {
            let _ = writeln!(out, "redirects = false");
        }
    }
    for p in &state.ports {
        let kind = if p.kind == PortKind::Tap {
            "tap"
        } else {
            "afpacket"
        };
        let _ = write!(
            out,
            "\n[[port]]\nname = {}\nkind = \"{kind}\"\n",
            quoted(&p.name)
        );
        if let Some(m) = &p.master {
            let _ = writeln!(out, "bridge = {}", quoted(m));
        }
    }
    for (mac, dev) in &state.fdb {
        let _ = write!(out, "\n[[fdb]]\nmac = \"{mac}\"\ndev = {}\n", quoted(dev));
    }
    for (dst, via, dev) in &state.routes {
        let _ = write!(out, "\n[[route]]\ndst = \"{dst}\"\n");
        if let Some(via) = via {
            let _ = writeln!(out, "via = \"{via}\"");
        }
        let _ = writeln!(out, "dev = {}", quoted(dev));
    }
    for (ip, mac, dev) in &state.neighbors {
        let _ = write!(
            out,
            "\n[[neigh]]\nip = \"{ip}\"\nmac = \"{mac}\"\ndev = {}\n",
            quoted(dev)
        );
    }
    for r in &state.nat {
        out.push_str("\n[[nat]]\n");
        let src = r
            .src
            .map(|s| format!("src = \"{s}\"\n"))
            .unwrap_or_default();
        let snat_tail = format!(
            "ports = [{}, {}]\nfiltering = \"{}\"\n",
            r.ports.0,
            r.ports.1,
            r.filtering.name()
        );
        let _ = match &r.action {
            NatAction::Masquerade => write!(
                out,
                "kind = \"masquerade\"\n{src}out = {}\n{snat_tail}",
                quoted(&r.bridge)
            ),
            NatAction::Snat { first, last } => write!(
                out,
                "kind = \"snat\"\n{src}first = \"{first}\"\nlast = \"{last}\"\nout = {}\n{snat_tail}",
                quoted(&r.bridge)
            ),
            NatAction::Dnat {
                proto,
                dport,
                to_addr,
                to_port,
            } => write!(
                out,
                "kind = \"dnat\"\nproto = \"{}\"\nin = {}\ndport = {dport}\nto_addr = \"{to_addr}\"\nto_port = {to_port}\n",
                if *proto == 6 { "tcp" } else { "udp" },
                quoted(&r.bridge)
            ),
        };
    }
    out
}

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
    }
}
