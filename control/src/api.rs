//! The control socket protocol, version 1.
//!
//! A client connects to the Unix socket and sends requests, one JSON object
//! per line; each gets exactly one JSON line back, in order. Every request
//! carries the protocol version `v` and an `op`:
//!
//! ```text
//! -> {"v":1,"op":"link_add","name":"p3","kind":"afpacket","master":"br0"}
//! <- {"ok":true,"result":null}
//! -> {"v":1,"op":"fdb_add","mac":"02:00:00:00:00:09","dev":"nope"}
//! <- {"ok":false,"error":{"code":"not_found","message":"nope: no such port"}}
//! ```
//!
//! The full list of operations is [`Request`]; results are the serialized
//! [`patchbay_dataplane::pipeline`] info types. A request line may be at most
//! [`MAX_REQUEST_BYTES`] long and must arrive within
//! [`REQUEST_TIMEOUT`](crate::server::REQUEST_TIMEOUT) of the previous one.

use patchbay_dataplane::ip4::RpFilter;
use patchbay_dataplane::nat::Filtering;
use patchbay_dataplane::pipeline::{BridgeInfo, PortInfo};
use patchbay_dataplane::wire::Mac;
use patchbay_dataplane::wire::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// Longest request line accepted, newline included: room for an `apply` of
/// a config with about a million routes (bigger tables go in by
/// `route_load`, in pieces). Only root (or `--socket-group`) can connect.
pub const MAX_REQUEST_BYTES: usize = 64 << 20;

/// What kind of link `link_add` creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkKind {
    /// A port on an existing interface, via AF_PACKET.
    Afpacket,
    /// A port on a TAP device, created if it does not exist.
    Tap,
    /// A bridge.
    Bridge,
}

/// One request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Ports and bridges with their counters, or only the one called
    /// `name`. Result: [`LinkShow`].
    LinkShow {
        #[serde(default)]
        name: Option<String>,
    },
    /// Adds a port (attached to `master` if given) or a bridge.
    LinkAdd {
        name: String,
        kind: LinkKind,
        #[serde(default)]
        master: Option<String>,
        /// Bridges only: FDB ageing time in seconds.
        #[serde(default)]
        ageing_time: Option<u32>,
    },
    /// Adds a VLAN interface `name` on VLAN `id` of bridge `link` (iproute2's
    /// `link add br0.20 type vlan link br0 id 20`): a router interface for
    /// addresses, routes and NAT, as a bridge's.
    LinkAddVlan {
        name: String,
        link: String,
        id: u16,
    },
    /// Adds a VXLAN port `name` (VNI `id`, the underlay's `local` address
    /// and UDP `dstport`, a first remote VTEP for the flood list), attached
    /// to `master` if given.
    LinkAddVxlan {
        name: String,
        id: u32,
        local: Ipv4Addr,
        #[serde(default)]
        remote: Option<Ipv4Addr>,
        #[serde(default = "vxlan_port")]
        dstport: u16,
        #[serde(default)]
        master: Option<String>,
    },
    /// Changes a link: a port's bridge (`master`, or `nomaster`), a bridge's
    /// ageing time.
    LinkSet {
        name: String,
        #[serde(default)]
        master: Option<String>,
        #[serde(default)]
        nomaster: bool,
        #[serde(default)]
        ageing_time: Option<u32>,
        /// Bridges with a router interface: the MTU of routed packets.
        #[serde(default)]
        mtu: Option<u32>,
        /// Bridges with a router interface: reverse-path filtering.
        #[serde(default)]
        rp_filter: Option<RpFilter>,
        /// Bridges with a router interface: whether to send ICMP redirects.
        #[serde(default)]
        redirects: Option<bool>,
        /// Bridges with an IPv6 address: router advertisements on or off,
        /// their router lifetime (seconds), and the DNS servers they
        /// announce (empty: none).
        #[serde(default)]
        ra: Option<bool>,
        #[serde(default)]
        ra_lifetime: Option<u16>,
        #[serde(default)]
        rdnss: Option<Vec<Ipv6Addr>>,
        /// The advertised prefixes' valid and preferred lifetimes (s).
        #[serde(default)]
        ra_valid_lft: Option<u32>,
        #[serde(default)]
        ra_preferred_lft: Option<u32>,
        /// Bridges: 802.1Q VLAN filtering on or off.
        #[serde(default)]
        vlan_filtering: Option<bool>,
        /// Bridges: which link-local groups 01:80:C2:00:00:0N to forward
        /// (bit N).
        #[serde(default)]
        group_fwd_mask: Option<u16>,
    },
    /// Deletes a port or a bridge.
    LinkDel {
        name: String,
    },
    /// FDB entries, of one port or bridge if `link` is given. Result: a list
    /// of [`patchbay_dataplane::pipeline::FdbRow`].
    FdbShow {
        #[serde(default)]
        link: Option<String>,
    },
    /// Adds a static entry: `mac` is on port `dev` (in VLAN `vlan` on a
    /// bridge with VLAN filtering; the port's PVID if not given). A static
    /// entry on another port is an error unless `replace`.
    FdbAdd {
        mac: Mac,
        dev: String,
        #[serde(default)]
        replace: bool,
        #[serde(default)]
        vlan: Option<u16>,
        /// A VXLAN port's remote VTEP for `mac` (00:00:00:00:00:00: one
        /// more VTEP for the flood list).
        #[serde(default)]
        dst: Option<Ipv4Addr>,
    },
    /// Deletes `mac` from the FDB of `dev` (a port or a bridge): from VLAN
    /// `vlan`, or from every VLAN.
    FdbDel {
        mac: Mac,
        dev: String,
        #[serde(default)]
        vlan: Option<u16>,
        /// A VXLAN port's flood list entry (with 00:00:00:00:00:00).
        #[serde(default)]
        dst: Option<Ipv4Addr>,
    },
    /// Adds VLANs `vid` to `vid_end` (or `vid` alone) to port `dev`, or
    /// changes their flags, as `bridge vlan add` does.
    VlanAdd {
        dev: String,
        vid: u16,
        #[serde(default)]
        vid_end: Option<u16>,
        #[serde(default)]
        pvid: bool,
        #[serde(default)]
        untagged: bool,
    },
    /// Takes VLANs `vid` to `vid_end` (or `vid` alone) off port `dev`.
    VlanDel {
        dev: String,
        vid: u16,
        #[serde(default)]
        vid_end: Option<u16>,
    },
    /// The VLANs of each bridge port, or of `dev`. Result: a list of
    /// [`VlanRow`].
    VlanShow {
        #[serde(default)]
        dev: Option<String>,
    },
    /// Flushes learned entries (and static ones if `statics`). Result: the
    /// number removed.
    FdbFlush {
        #[serde(default)]
        link: Option<String>,
        #[serde(default)]
        statics: bool,
    },
    /// Serves DHCP on `pool.bridge` (replacing its pool). Result: null.
    DhcpAdd {
        pool: crate::dhcp::Pool,
    },
    /// Stops the DHCP server of `bridge`.
    DhcpDel {
        bridge: String,
    },
    /// Keeps `ip` for `mac` on `bridge`'s pool (replacing its reservation).
    DhcpHostAdd {
        bridge: String,
        mac: Mac,
        ip: Ipv4Addr,
        #[serde(default)]
        name: Option<String>,
    },
    DhcpHostDel {
        bridge: String,
        mac: Mac,
    },
    /// The pools and the servers' counters. Result: `{"pools": [Pool],
    /// "counters": DhcpCounters}`.
    DhcpShow,
    /// Every lease. Result: a list of `{"bridge", "ip", "mac", "client_id",
    /// "hostname", "state", "expires"}`.
    DhcpLeases,
    /// Counters of everything. Result: [`patchbay_dataplane::pipeline::StatsInfo`].
    Stats,
    /// NAT rules with hit counters. Result: a list of
    /// [`patchbay_dataplane::pipeline::NatRuleInfo`].
    NatShow,
    /// Adds a NAT rule. Result: its id.
    NatAdd {
        rule: NatRuleSpec,
    },
    NatDel {
        id: u32,
    },
    /// NAT sessions. Result: a list of [`patchbay_dataplane::pipeline::NatSessionInfo`].
    NatSessions,
    /// Forgets every NAT session. Result: the number removed.
    NatSessionsFlush,
    /// Router interfaces, or only the one of bridge `dev`. Result: a list of
    /// [`patchbay_dataplane::pipeline::AddrInfo`].
    AddrShow {
        #[serde(default)]
        dev: Option<String>,
    },
    /// Adds an address (with its connected route) to a bridge's router
    /// interface, which is created with a router MAC on first use.
    AddrAdd {
        /// IPv4 or IPv6, with its prefix length.
        addr: IpNet,
        dev: String,
    },
    AddrDel {
        addr: IpNet,
        dev: String,
    },
    /// Routes, at most `limit` (default 10,000): those for exactly `dst`,
    /// or (`root`) inside it, and out of bridge `dev`. Result: `{"total": N
    /// (that match), "routes": [RouteInfo]}`.
    RouteShow {
        #[serde(default)]
        limit: Option<usize>,
        #[serde(default)]
        dst: Option<IpNet>,
        #[serde(default)]
        root: bool,
        #[serde(default)]
        dev: Option<String>,
    },
    /// Adds a route (IPv4 or IPv6) via a gateway of its family and/or out
    /// of a bridge; one for the same prefix is an error unless `replace`.
    RouteAdd {
        dst: IpNet,
        #[serde(default)]
        via: Option<IpAddr>,
        #[serde(default)]
        dev: Option<String>,
        #[serde(default)]
        replace: bool,
    },
    /// Deletes the route for `dst`; with `via` or `dev`, only if it has them.
    RouteDel {
        dst: IpNet,
        #[serde(default)]
        via: Option<IpAddr>,
        #[serde(default)]
        dev: Option<String>,
    },
    /// Adds many routes: `text` holds one route a line, `PREFIX via GATEWAY
    /// [dev BRIDGE]` or `PREFIX dev BRIDGE` (blank lines and `#` comments
    /// are skipped); `first_line` numbers its first line in errors. All
    /// lines are parsed before any is added; a route the switch refuses
    /// stops the load, and the routes before it stay (the error says how
    /// many). Result: `{"loaded": N}`.
    RouteLoad {
        text: String,
        #[serde(default)]
        first_line: u64,
    },
    /// The decision for one address. Result: [`patchbay_dataplane::pipeline::RouteGet`].
    RouteGet {
        addr: IpAddr,
    },
    /// The ARP cache. Result: a list of [`patchbay_dataplane::pipeline::NeighInfo`].
    NeighShow {
        #[serde(default)]
        dev: Option<String>,
    },
    /// Adds a permanent ARP entry.
    /// A permanent entry with another MAC is an error unless `replace`.
    NeighAdd {
        /// IPv4 (ARP) or IPv6 (NDP).
        ip: IpAddr,
        mac: Mac,
        dev: String,
        #[serde(default)]
        replace: bool,
    },
    NeighDel {
        ip: IpAddr,
        dev: String,
    },
    /// Forgets learned ARP entries. Result: the number removed.
    NeighFlush {
        #[serde(default)]
        dev: Option<String>,
    },
    /// The daemon's version and protocol version.
    Version,
    /// Makes the daemon match a config file (TOML, see
    /// [`crate::config`]): `text` is checked whole, compared with the
    /// running state, and the difference applied in one step, or nothing is
    /// changed. `file` names the text in errors (`lab.toml:12: ...`);
    /// `dry_run` only checks and compares. Result: [`crate::apply::Summary`].
    Apply {
        text: String,
        #[serde(default)]
        file: Option<String>,
        #[serde(default)]
        dry_run: bool,
    },
    /// The running configuration, as a config file that `apply` takes back
    /// without a change. Result: `{"text": "..."}`.
    Save,
    /// Arms a packet trace: the next `count` packets (default 50, at most
    /// 10,000) in on `port` (any if absent) that match `filter` (tcpdump-like:
    /// `arp or host 10.1.0.5`). A new trace forgets the last one.
    TraceStart {
        #[serde(default)]
        count: Option<u32>,
        #[serde(default)]
        port: Option<String>,
        #[serde(default)]
        filter: Option<String>,
    },
    /// Disarms the trace; what it took stays readable.
    TraceStop,
    /// The traced packets. Result: `{"armed", "left", "packets": [{"number",
    /// "at_us", "events": [Event], "lines": ["p1 rx ...", ...]}]}`.
    TraceShow,
    /// Captures frames of `port`: `dir` `rx`, `tx` or `both` (default),
    /// `count` of them (default: until the client hangs up), matching
    /// `filter`, cut to `snaplen` bytes (default 65535). The response line
    /// `{"ok":true,"result":{"capture":ID,"format":"pcap"}}` is followed on
    /// the same connection by a pcap stream (microsecond timestamps,
    /// Ethernet), which ends with the capture.
    Capture {
        port: String,
        #[serde(default)]
        dir: Option<String>,
        #[serde(default)]
        count: Option<u64>,
        #[serde(default)]
        snaplen: Option<usize>,
        #[serde(default)]
        filter: Option<String>,
    },
    /// Runs a described packet in on `port` through the live tables, sending
    /// nothing and learning nothing. Result: `{"events", "lines", "verdict"}`.
    TracePacket {
        port: String,
        packet: patchbay_dataplane::trace::PacketSpec,
    },
}

/// A NAT rule as the API takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum NatRuleSpec {
    /// Source NAT of `src` (all if absent) leaving through bridge `out`, to
    /// the address of `out`'s router interface.
    Masquerade {
        #[serde(default)]
        src: Option<Ipv4Net>,
        out: String,
        #[serde(default)]
        ports: Option<(u16, u16)>,
        #[serde(default)]
        filtering: Filtering,
    },
    /// Source NAT to an address of `first..=last`.
    Snat {
        #[serde(default)]
        src: Option<Ipv4Net>,
        first: Ipv4Addr,
        last: Ipv4Addr,
        out: String,
        #[serde(default)]
        ports: Option<(u16, u16)>,
        #[serde(default)]
        filtering: Filtering,
    },
    /// Destination NAT: `proto` (tcp, udp) to `dport` of a router address,
    /// arriving on bridge `in`, goes to `to_addr:to_port`.
    Dnat {
        proto: String,
        #[serde(rename = "in")]
        in_dev: String,
        dport: u16,
        to_addr: Ipv4Addr,
        to_port: u16,
    },
}

/// A request with its protocol version, as it travels.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub v: u32,
    #[serde(flatten)]
    pub request: Request,
}

/// The result of `link_show`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkShow {
    pub ports: Vec<PortInfo>,
    pub bridges: Vec<BridgeInfo>,
}

/// What kind of failure an error is, for programs to branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not valid JSON, unknown op, missing or mistyped fields, too long.
    BadRequest,
    /// The request's protocol version is not spoken here.
    BadVersion,
    /// A named port, bridge or entry does not exist.
    NotFound,
    /// A port or bridge of that name exists already.
    Exists,
    /// Well-formed but not allowed (a limit, a value out of range).
    Invalid,
    /// The operating system refused (permissions, no such interface, ...).
    System,
    /// The data plane is not running, or every place for a client is at
    /// work.
    Unavailable,
    /// Not an answer: the connection waited for a request too long, or its
    /// place went to a new client. It is closed, and nothing sent on it was
    /// read: connect again and send the request there.
    Idle,
}

/// An error as a structured value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

/// One response line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

impl From<Result<serde_json::Value, ApiError>> for Response {
    fn from(r: Result<serde_json::Value, ApiError>) -> Response {
        match r {
            Ok(v) => Response {
                ok: true,
                result: Some(v),
                error: None,
            },
            Err(e) => Response {
                ok: false,
                result: None,
                error: Some(e),
            },
        }
    }
}

fn vxlan_port() -> u16 {
    patchbay_dataplane::wire::vxlan::VXLAN_PORT
}

/// One port's VLANs (`vlan show`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VlanRow {
    pub port: String,
    pub bridge: String,
    /// Whether its bridge filters by VLAN (without, the VLANs are kept but
    /// not used).
    pub vlan_filtering: bool,
    pub vlans: Vec<VlanEntry>,
}

/// One VLAN of a port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VlanEntry {
    pub vid: u16,
    pub pvid: bool,
    pub untagged: bool,
}

/// Parses one request line, checking the version.
/// What is wrong with a `link_set` request, checked in one place for the
/// CLI and the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkSetProblem {
    /// It changes nothing.
    Nothing,
    /// It asks for both `master` and `nomaster`.
    MasterAndNomaster,
}

impl Request {
    /// For a `link_set` request, what is wrong with it, if anything.
    pub fn link_set_problem(&self) -> Option<LinkSetProblem> {
        let Request::LinkSet {
            master,
            nomaster,
            ageing_time,
            mtu,
            rp_filter,
            redirects,
            ra,
            ra_lifetime,
            rdnss,
            ra_valid_lft,
            ra_preferred_lft,
            vlan_filtering,
            group_fwd_mask,
            ..
        } = self
        else {
            return None;
        };
        if master.is_none()
            && !nomaster
            && ageing_time.is_none()
            && mtu.is_none()
            && rp_filter.is_none()
            && redirects.is_none()
            && ra.is_none()
            && ra_lifetime.is_none()
            && rdnss.is_none()
            && ra_valid_lft.is_none()
            && ra_preferred_lft.is_none()
            && vlan_filtering.is_none()
            && group_fwd_mask.is_none()
        {
            return Some(LinkSetProblem::Nothing);
        }
        (master.is_some() && *nomaster).then_some(LinkSetProblem::MasterAndNomaster)
    }
}

pub fn parse_request(line: &[u8]) -> Result<Request, ApiError> {
    if line.len() > MAX_REQUEST_BYTES {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!(
                "request of {} bytes is over the {MAX_REQUEST_BYTES}-byte limit",
                line.len()
            ),
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(line)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("request is not JSON: {e}")))?;
    match value.get("v").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(PROTOCOL_VERSION) => {}
        Some(v) => {
            return Err(ApiError::new(
                ErrorCode::BadVersion,
                format!(
                    "protocol version {v} is not supported; this daemon speaks {PROTOCOL_VERSION}"
                ),
            ))
        }
        None => {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                format!("request has no protocol version: add \"v\":{PROTOCOL_VERSION}"),
            ))
        }
    }
    let env: Envelope = serde_json::from_value(value)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("bad request: {e}")))?;
    Ok(env.request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let req = Request::LinkAdd {
            name: "p3".into(),
            kind: LinkKind::Afpacket,
            master: Some("br0".into()),
            ageing_time: None,
        };
        let line = serde_json::to_vec(&Envelope {
            v: PROTOCOL_VERSION,
            request: req.clone(),
        })
        .unwrap();
        assert_eq!(parse_request(&line).unwrap(), req);
        assert_eq!(
            parse_request(br#"{"v":1,"op":"stats"}"#).unwrap(),
            Request::Stats
        );
    }

    /// A small fuzz: mutated valid requests and random bytes never panic
    /// the parser, and every failure is a structured error.
    #[test]
    fn parser_survives_mutated_and_random_input() {
        let seeds: Vec<&[u8]> = vec![
            br#"{"v":1,"op":"link_add","name":"p3","kind":"afpacket","master":"br0"}"#,
            br#"{"v":1,"op":"route_add","dst":"10.0.0.0/8","via":"10.2.0.254"}"#,
            br#"{"v":1,"op":"nat_add","rule":{"kind":"snat","first":"203.0.113.1","last":"203.0.113.9","out":"br1","ports":[1,2]}}"#,
            br#"{"v":1,"op":"fdb_add","mac":"02:00:00:00:00:01","dev":"p1"}"#,
            br#"{"v":1,"op":"route_load","text":"10.0.0.0/8 via 10.0.0.1\n","first_line":1}"#,
        ];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..20_000 {
            let mut buf = seeds[round % seeds.len()].to_vec();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % buf.len();
                match next() % 4 {
                    0 => buf[at] = next() as u8,
                    1 => {
                        buf.remove(at);
                    }
                    2 => buf.insert(at, b"{}[]\":,0-9aZ\xff"[(next() % 13) as usize]),
                    _ => buf.truncate(at),
                }
                if buf.is_empty() {
                    buf.push(b'{');
                }
            }
            if let Err(e) = parse_request(&buf) {
                assert!(!e.message.is_empty());
            }
            let random: Vec<u8> = (0..next() % 64).map(|_| next() as u8).collect();
            let _ = parse_request(&random);
        }
    }

    #[test]
    fn garbage_is_a_bad_request() {
        for line in [
            &b"hello"[..],
            br#"{"op":"stats"}"#,
            br#"{"v":1,"op":"no_such_op"}"#,
            br#"{"v":1,"op":"fdb_add","mac":"zz","dev":"p1"}"#,
            br#"{"v":1,"op":"link_del"}"#,
            b"\xff\xfe",
        ] {
            assert_eq!(
                parse_request(line).unwrap_err().code,
                ErrorCode::BadRequest,
                "{line:?}"
            );
        }
        assert_eq!(
            parse_request(br#"{"v":9,"op":"stats"}"#).unwrap_err().code,
            ErrorCode::BadVersion
        );
    }
}
