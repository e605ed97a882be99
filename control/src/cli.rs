//! The `patchbay` command line: iproute2-style words in, a [`Request`] out,
//! and the result printed for people (or as JSON with `-j`).

use crate::api::{LinkKind, LinkSetProblem, LinkShow, NatRuleSpec, Request};
use patchbay_dataplane::ip4::RpFilter;
use patchbay_dataplane::l2::vlan::parse_vid_range;
use patchbay_dataplane::nat::Filtering;
use patchbay_dataplane::pipeline::{
    AddrInfo, FdbRow, NatRuleInfo, NatSessionInfo, NeighInfo, RouteGet, RouteInfo, RouteOrigin,
    StatsInfo, DEFAULT_BRIDGE,
};
use patchbay_dataplane::wire::Mac;
use patchbay_dataplane::wire::{IpNet, Ipv4Net};
use serde_json::Value;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

pub const USAGE: &str = "\
usage: patchbay [--socket PATH] [-j] OBJECT COMMAND [ARGS]

  link show [NAME]                              ports and bridges with counters
  link add NAME type afpacket|tap [master BRIDGE|nomaster]
                                                add a port (joins br0 unless told)
  link add NAME type bridge [ageing_time SECS]  add a bridge
  link add NAME type vlan link BRIDGE id N      a router interface on VLAN N of BRIDGE (addr,
                                                routes, NAT as a bridge's; BRIDGE filters VLANs)
  link set NAME master BRIDGE | nomaster        move a port to a bridge, or out
  link set NAME ageing_time SECS                FDB ageing time of a bridge
  link set BRIDGE mtu BYTES                     MTU of routed packets (68-9000; needs an address)
  link set BRIDGE rp_filter strict|loose|off    reverse-path filter of what comes in (default strict)
  link set BRIDGE redirects on|off              send ICMP redirects (default on)
  link set BRIDGE vlan_filtering 0|1            802.1Q: classify frames to VLANs, switch within them
  link set BRIDGE group_fwd_mask MASK           forward 01:80:C2:00:00:0N for bit N (e.g. 0x4004:
                                                LLDP and LACP; bit 1, pause, never)
  link del NAME                                 delete a port or a bridge
  fdb show [dev PORT | br BRIDGE]               learned and static MACs (with their VLAN)
  fdb add|replace MAC dev PORT [vlan N]         add a static entry (replace: move one)
  fdb del MAC dev PORT | br BRIDGE [vlan N]     delete an entry (of every VLAN unless told)
  vlan add dev PORT vid N[-M] [pvid] [untagged] a port's VLANs (802.1Q; every port starts
                                                in VLAN 1, pvid untagged)
  vlan del dev PORT vid N[-M]
  vlan show [dev PORT]                          each bridge port's VLANs
  fdb flush [dev PORT | br BRIDGE] [static]     forget learned entries (and static)
  dhcp add BRIDGE range A-B [router R] [dns D[,D]] [lease SECS] [domain NAME] [mtu N]
           [route PREFIX via GW]...             a DHCP server on BRIDGE (its address on the subnet)
  dhcp host add BRIDGE MAC ADDR [name NAME]     a reservation; dhcp host del BRIDGE MAC
  dhcp show | dhcp leases | dhcp del BRIDGE     pools and counters; leases; stop serving
  addr show [dev BRIDGE]                        router interfaces: MAC, MTU, addresses
  addr add|del A.B.C.D/LEN dev BRIDGE           router address (and connected route)
  route show [[root] PREFIX] [dev BRIDGE]       the routing table (PREFIX: that route; root: inside it)
  route add PREFIX|default via GATEWAY [dev BRIDGE]
  route add PREFIX dev BRIDGE                   directly connected
  route replace ...                             as add, over the route for the same prefix
  route del PREFIX|default [via GATEWAY] [dev BRIDGE]
  route get A.B.C.D                             the decision for one address, in words
  route load FILE|-                             many routes: 'PREFIX via GATEWAY [dev BR]' or
                                                'PREFIX dev BR' a line, # comments
  neigh show [dev BRIDGE]                       ARP cache: address, MAC, port, state, age
  neigh add|replace A.B.C.D lladdr MAC dev BRIDGE  permanent entry (replace: change one)
  neigh del A.B.C.D dev BRIDGE
  neigh flush [dev BRIDGE]                      forget learned entries
  nat add masquerade [src PREFIX] out BRIDGE [ports A-B] [filtering F]
  nat add snat [src PREFIX] to ADDR[-ADDR] [ports A-B] out BRIDGE [filtering F]
      F: endpoint-independent, address-dependent, address-and-port-dependent (default)
  nat add dnat proto tcp|udp in BRIDGE dport PORT to ADDR:PORT
  nat show | nat del ID                         rules with hit counters
  nat sessions [flush]                          inside, outside, remote, state, age
  apply FILE|- [check]                          make patchbayd match a config file, all or
                                                nothing ('check': only say what would change)
  save                                          the running config, in the same format
  trace start [count N] [port P] [filter EXPR]  trace the next N packets (default 50) stage by stage;
                                                EXPR like 'arp or host 10.1.0.5' (arp ip ip6 icmp icmp6
                                                tcp udp host src dst, [src|dst] port, 'ether host',
                                                vlan [N], not and or)
  trace show | trace stop                       what each stage decided about each packet
  trace packet in PORT src A dst B [proto udp|tcp|icmp|arp] [sport N] [dport N] [ttl N]
               [len N] [smac MAC] [dmac MAC]    a made-up packet through the live tables:
                                                nothing is sent, learned or created; A and B
                                                IPv4 or IPv6 (ttl: the hop limit; icmp: ICMPv6's)
  capture PORT [rx|tx|both] -w FILE|- [count N] [snaplen N] [filter EXPR]
                                                pcap of a port's frames (-w - | tcpdump -r -);
                                                a slow reader loses captures, never traffic
  top [interval SECS] [once]                    live view: rates per port, bridges, tables; q quits
  stats                                         every counter, drops by reason
  version                                       versions of patchbay and patchbayd

  -s, --socket PATH   control socket of patchbayd (default /run/patchbay/patchbayd.sock)
  -j, --json          print results as JSON
  -V, --version       this program's version (no daemon needed)
";

/// How to print a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Links,
    Addrs,
    Routes,
    RouteGet,
    Neighbors,
    NatRules,
    NatSessions,
    NatAdded,
    /// `route load`: the file is sent in pieces by [`load_routes`].
    RouteLoad {
        path: String,
    },
    /// `apply`: the client reads the file and sends it.
    Apply {
        path: String,
        dry_run: bool,
    },
    Applied,
    Saved,
    Trace,
    TracePacket,
    /// `top`: the live view.
    Top {
        interval_ms: u64,
        once: bool,
    },
    /// `capture`: the pcap stream goes to `path` (`-` for stdout).
    Capture {
        path: String,
    },
    Fdb,
    Vlans,
    DhcpPools,
    DhcpLeases,
    Stats,
    Flushed,
    Version,
    Nothing,
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub socket: PathBuf,
    pub json: bool,
    pub request: Request,
    pub output: Output,
}

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Run(Invocation),
    Help,
    /// `-V`: this program's version, without asking the daemon.
    Version,
    /// `OBJECT help`: the usage lines of one object.
    HelpOn(String),
}

/// The lines of [`USAGE`] about `object` (all of it if none are).
pub fn usage_of(object: &str) -> String {
    let lines: Vec<&str> = USAGE.lines().collect();
    let mut out = String::new();
    let mut keep = false;
    for l in &lines {
        // An entry starts at two spaces and a word; its continuation lines
        // are indented further.
        if let Some(rest) = l.strip_prefix("  ").filter(|r| !r.starts_with(' ')) {
            keep = rest.split_whitespace().next() == Some(object);
        }
        if keep {
            out.push_str(l);
            out.push('\n');
        }
    }
    if out.is_empty() {
        USAGE.to_string()
    } else {
        out
    }
}

struct Words {
    words: Vec<String>,
    at: usize,
    context: String,
}

impl Words {
    fn next(&mut self) -> Option<String> {
        let w = self.words.get(self.at).cloned();
        self.at += 1;
        w
    }
    /// The value after a keyword: `master br1`.
    fn value(&mut self, keyword: &str, what: &str) -> Result<String, String> {
        let ctx = self.context.clone();
        self.next()
            .ok_or_else(|| format!("{ctx}: '{keyword}' needs {what}"))
    }
    fn name(&mut self, what: &str) -> Result<String, String> {
        let ctx = self.context.clone();
        match self.next().as_deref() {
            Some("dev" | "name") => self.value("dev", what),
            Some(w) => Ok(w.to_string()),
            None => Err(format!("{ctx}: missing {what}")),
        }
    }
    fn unexpected(&self, w: &str) -> String {
        format!("{}: unexpected '{w}' (see 'patchbay help')", self.context)
    }
}

fn number(ctx: &str, what: &str, s: &str) -> Result<u32, String> {
    s.parse().map_err(|_| {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            format!("{ctx}: {what} {s} is too large")
        } else {
            format!("{ctx}: {what} must be a whole number of seconds, not '{s}'")
        }
    })
}

/// `1 route`, `2 routes`.
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn mac(ctx: &str, s: Option<&str>) -> Result<Mac, String> {
    let s = s.ok_or_else(|| format!("{ctx}: missing MAC address"))?;
    s.parse().map_err(|e| format!("{ctx}: {e}"))
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Parsed, String> {
    let mut socket = PathBuf::from(crate::DEFAULT_SOCKET);
    let mut json = false;
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-j" | "--json" | "-json" => json = true,
            // capture's output file.
            "-w" if rest.first().is_some_and(|o| o == "capture") => {
                rest.push("-w".to_string());
                rest.push(
                    it.next()
                        .ok_or("-w needs a file (or - for stdout)")?
                        .clone(),
                );
            }
            "-s" | "--socket" => {
                socket = it.next().ok_or("--socket needs a path")?.into();
            }
            "-h" | "--help" | "help" if rest.is_empty() => return Ok(Parsed::Help),
            "-V" | "--version" if rest.is_empty() => return Ok(Parsed::Version),
            s if s.starts_with("--socket=") => socket = s["--socket=".len()..].into(),
            // A negative number is a (wrong) value, not an option.
            s if s.starts_with('-')
                && s.len() > 1
                && !s[1..].starts_with(|c: char| c.is_ascii_digit()) =>
            {
                return Err(format!("unknown option '{s}' (see 'patchbay help')"))
            }
            _ => rest.push(a.clone()),
        }
    }
    let object = rest
        .first()
        .cloned()
        .ok_or("missing command (see 'patchbay help')")?;
    let command = rest.get(1).cloned().unwrap_or_else(|| "show".to_string());
    // `patchbay link help`: the usage lines of that object.
    if command == "help" {
        return Ok(Parsed::HelpOn(object));
    }
    let mut w = Words {
        words: rest,
        at: 2,
        context: format!("{object} {command}"),
    };
    let (request, output) = match (object.as_str(), command.as_str()) {
        ("link", _) => parse_link(&command, &mut w)?,
        ("fdb", _) => parse_fdb(&command, &mut w)?,
        ("vlan", _) => parse_vlan(&command, &mut w)?,
        ("dhcp", _) => parse_dhcp(&command, &mut w)?,
        ("stats" | "statistics", _) => {
            if w.words.len() > 1 && command != "show" {
                return Err(format!("stats: unexpected '{command}'"));
            }
            (Request::Stats, Output::Stats)
        }
        ("version", _) => (Request::Version, Output::Version),
        ("apply", _) => parse_apply(&mut w)?,
        ("trace", _) => parse_trace(&command, &mut w)?,
        ("top", _) => parse_top(&mut w)?,
        ("capture", _) => parse_capture(&mut w)?,
        ("save", _) => {
            if w.words.len() > 1 {
                return Err(format!(
                    "save: unexpected '{command}' (it prints to stdout)"
                ));
            }
            (Request::Save, Output::Saved)
        }
        ("addr" | "address" | "a", _) => parse_addr(&command, &mut w)?,
        ("nat", _) => parse_nat(&command, &mut w)?,
        ("route" | "r", _) => parse_route(&command, &mut w)?,
        ("neigh" | "neighbor" | "neighbour" | "n", _) => parse_neigh(&command, &mut w)?,
        (o, _) => {
            return Err(format!(
                "unknown object '{o}' (try: link, fdb, vlan, dhcp, addr, route, neigh, nat, trace, capture, top, stats, apply, save, version)"
            ))
        }

    };
    if json && matches!(output, Output::Top { .. }) {
        return Err("top: no JSON view; 'patchbay -j stats' has every counter".into());
    }
    Ok(Parsed::Run(Invocation {
        socket,
        json,
        request,
        output,
    }))
}

/// Sends a `capture` request and copies the pcap stream that follows to
/// `path` (stdout for `-`) until the capture ends.
pub fn capture(
    mut client: crate::client::Client,
    request: Request,
    path: &str,
) -> Result<String, String> {
    use std::io::Write;
    let ack = client.call(request).map_err(|e| e.to_string())?;
    let mut out: Box<dyn Write> = if path == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::fs::File::create(path).map_err(|e| format!("capture: {path}: {e}"))?)
    };
    let mut stream = client.into_stream().map_err(|e| e.to_string())?;
    let copied = std::io::copy(&mut stream, &mut out);
    let _ = out.flush();
    match copied {
        Ok(n) if path != "-" => Ok(format!(
            "capture {}: {n} bytes written to {path}\n",
            ack["capture"]
        )),
        Ok(_) => Ok(String::new()),
        // The reader of stdout went away (tcpdump -c): a normal end.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(String::new()),
        Err(e) => Err(format!("capture: {e}")),
    }
}

/// Reads a config file (or stdin for `-`) into an `apply` request.
pub fn apply_request(path: &str, dry_run: bool) -> Result<Request, String> {
    let text = if path == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|e| format!("apply: {path}: {e}"))?;
    Ok(Request::Apply {
        text,
        file: Some(if path == "-" { "<stdin>" } else { path }.to_string()),
        dry_run,
    })
}

/// Sends the routes of `path` (or stdin for `-`) in requests of at most
/// 20,000 lines; returns what to print.
pub fn load_routes(client: &mut crate::client::Client, path: &str) -> Result<String, String> {
    use std::io::Read;
    let mut text = String::new();
    let read = if path == "-" {
        std::io::stdin().read_to_string(&mut text)
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text))
    };
    read.map_err(|e| format!("route load: {path}: {e}"))?;
    let start = std::time::Instant::now();
    let lines: Vec<&str> = text.lines().collect();
    let mut loaded = 0;
    for (k, chunk) in lines.chunks(20_000).enumerate() {
        let req = Request::RouteLoad {
            text: chunk.join("\n"),
            first_line: (k * 20_000 + 1) as u64,
        };
        let result = client.call(req).map_err(|e| {
            // `line N: why` -> `FILE:N: why`, as apply names its lines; the
            // chunks before this one are in.
            let e = e.to_string();
            let e = match e.strip_prefix("line ") {
                Some(rest) => format!("{path}:{rest}"),
                None => format!("{path}: {e}"),
            };
            // The daemon counts the routes of this request only.
            const BEFORE: &str = " (routes loaded before it: ";
            let (why, here) = match e.rsplit_once(BEFORE) {
                Some((why, n)) => (why, n.trim_end_matches(')').parse().unwrap_or(0)),
                None => (e.as_str(), 0),
            };
            match loaded + here {
                0 => why.to_string(),
                n => format!("{why}{BEFORE}{n})"),
            }
        })?;
        loaded += result["loaded"].as_u64().unwrap_or(0);
    }
    Ok(format!(
        "loaded {} in {:.2} s\n",
        count(loaded, "route", "routes"),
        start.elapsed().as_secs_f64()
    ))
}

mod objects;
mod render;
use objects::*;
pub use render::render;

#[cfg(test)]
mod tests {
    use super::*;

    fn run(line: &str) -> Result<Invocation, String> {
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        match parse(&args)? {
            Parsed::Run(i) => Ok(i),
            Parsed::Help => Err("help".into()),
            Parsed::Version => Err("version".into()),
            Parsed::HelpOn(o) => Err(format!("help {o}")),
        }
    }

    #[test]
    fn help_on_one_object() {
        assert_eq!(
            parse(&["nat".into(), "help".into()]),
            Ok(Parsed::HelpOn("nat".into()))
        );
        let nat = usage_of("nat");
        assert!(nat
            .lines()
            .all(|l| l.trim_start().starts_with("nat") || l.starts_with("      ")));
        assert!(nat.contains("nat add dnat"));
        assert_eq!(usage_of("nosuch"), USAGE);
    }

    #[test]
    fn iproute2_words() {
        let i = run("link add p3 type afpacket").unwrap();
        assert_eq!(
            i.request,
            Request::LinkAdd {
                name: "p3".into(),
                kind: LinkKind::Afpacket,
                master: Some("br0".into()),
                ageing_time: None
            }
        );
        let i = run("-j link show").unwrap();
        assert!(i.json);
        assert!(run("link show -j").unwrap().json);
        assert_eq!(
            run("link set p2 master br1").unwrap().request,
            Request::LinkSet {
                name: "p2".into(),
                master: Some("br1".into()),
                nomaster: false,
                ageing_time: None,
                mtu: None,
                rp_filter: None,
                redirects: None,
                ra: None,
                ra_lifetime: None,
                rdnss: None,
                ra_valid_lft: None,
                ra_preferred_lft: None,
                vlan_filtering: None,
                group_fwd_mask: None,
            }
        );
        assert_eq!(
            run("vlan add dev p1 vid 10-20 untagged").unwrap().request,
            Request::VlanAdd {
                dev: "p1".into(),
                vid: 10,
                vid_end: Some(20),
                pvid: false,
                untagged: true,
            }
        );
        assert!(run("vlan add dev p1 vid 10-20 pvid")
            .unwrap_err()
            .contains("pvid takes one VLAN"));
        assert!(run("vlan add dev p1 vid 4095")
            .unwrap_err()
            .contains("1 to 4094"));
        assert!(matches!(
            run("link set br0 vlan_filtering 1 group_fwd_mask 0x4004")
                .unwrap()
                .request,
            Request::LinkSet {
                vlan_filtering: Some(true),
                group_fwd_mask: Some(0x4004),
                ..
            }
        ));
        assert!(matches!(
            run("fdb add 02:00:00:00:00:09 dev p1 vlan 10")
                .unwrap()
                .request,
            Request::FdbAdd { vlan: Some(10), .. }
        ));
        let ra = run("link set br0 ra off ra_lifetime 600 rdnss 2001:db8::53,2001:db8::54")
            .unwrap()
            .request;
        assert!(matches!(
            ra,
            Request::LinkSet {
                ra: Some(false),
                ra_lifetime: Some(600),
                rdnss: Some(ref d),
                ..
            } if d.len() == 2
        ));
        assert_eq!(
            run("route add default via 10.2.0.254").unwrap().request,
            Request::RouteAdd {
                dst: "0.0.0.0/0".parse().unwrap(),
                via: Some("10.2.0.254".parse().unwrap()),
                dev: None,
                replace: false,
            }
        );
        assert_eq!(
            run("addr add 192.168.15.10/24 dev br0").unwrap().request,
            Request::AddrAdd {
                addr: "192.168.15.10/24".parse().unwrap(),
                dev: "br0".into()
            }
        );
        assert_eq!(
            run("neigh add 10.0.0.9 lladdr 02:00:00:00:00:09 dev br0")
                .unwrap()
                .request,
            Request::NeighAdd {
                ip: "10.0.0.9".parse().unwrap(),
                mac: "02:00:00:00:00:09".parse().unwrap(),
                dev: "br0".into(),
                replace: false,
            }
        );
        assert_eq!(
            run("route get 172.16.5.9").unwrap().output,
            Output::RouteGet
        );
        assert_eq!(
            run("fdb add 02:00:00:00:00:09 dev p1").unwrap().request,
            Request::FdbAdd {
                mac: "02:00:00:00:00:09".parse().unwrap(),
                dev: "p1".into(),
                replace: false,
                vlan: None,
                dst: None,
            }
        );
        assert_eq!(
            run("--socket /tmp/x.sock stats").unwrap().socket,
            PathBuf::from("/tmp/x.sock")
        );
        assert_eq!(
            run("link").unwrap().request,
            Request::LinkShow { name: None }
        );
    }

    #[test]
    fn wrong_words_get_one_line_errors() {
        for (line, want) in [
            ("", "missing command"),
            ("frob", "unknown object 'frob'"),
            ("link frob", "unknown command 'frob'"),
            ("link add p3", "missing 'type"),
            ("link add p3 type vxlan", "missing 'id N' (the VNI)"),
            ("link add p3 type frob", "unknown type 'frob'"),
            ("link set p3", "nothing to change"),
            ("link set br1 ageing_time soon", "whole number"),
            ("fdb add 02:00:00:00:00:zz dev p1", "not a MAC address"),
            ("fdb add 02:00:00:00:00:01", "missing 'dev PORT'"),
            (
                "route add 10.0.0.0/33 via 10.0.0.1",
                "prefix length over 32",
            ),
            ("route add 10.0.0.0/8", "give 'via GATEWAY' or 'dev BRIDGE'"),
            ("route get 10.0.0", "not an IPv4 or IPv6 address"),
            ("addr add 10.0.0.1/24", "missing 'dev BRIDGE'"),
            ("neigh add 10.0.0.9 dev br0", "missing MAC"),
            ("link del", "missing link name"),
            ("link add p3 type tap master", "'master' needs"),
            ("--bogus link show", "unknown option"),
        ] {
            let err = run(line).unwrap_err();
            assert!(err.contains(want), "{line:?}: {err}");
            assert!(!err.contains('\n'), "{line:?}: {err}");
        }
    }
}
