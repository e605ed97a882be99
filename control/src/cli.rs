//! The `patchbay` command line: iproute2-style words in, a [`Request`] out,
//! and the result printed for people (or as JSON with `-j`).

use crate::api::{LinkKind, LinkSetProblem, LinkShow, NatRuleSpec, Request};
use patchbay_dataplane::ip4::RpFilter;
use patchbay_dataplane::nat::Filtering;
use patchbay_dataplane::pipeline::{
    AddrInfo, FdbRow, NatRuleInfo, NatSessionInfo, NeighInfo, RouteGet, RouteInfo, RouteOrigin,
    StatsInfo, DEFAULT_BRIDGE,
};
use patchbay_dataplane::wire::Ipv4Net;
use patchbay_dataplane::wire::Mac;
use serde_json::Value;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;

pub const USAGE: &str = "\
usage: patchbay [--socket PATH] [-j] OBJECT COMMAND [ARGS]

  link show [NAME]                              ports and bridges with counters
  link add NAME type afpacket|tap [master BRIDGE|nomaster]
                                                add a port (joins br0 unless told)
  link add NAME type bridge [ageing_time SECS]  add a bridge
  link set NAME master BRIDGE | nomaster        move a port to a bridge, or out
  link set NAME ageing_time SECS                FDB ageing time of a bridge
  link set BRIDGE mtu BYTES                     MTU of routed packets (68-9000; needs an address)
  link set BRIDGE rp_filter strict|loose|off    reverse-path filter of what comes in (default strict)
  link set BRIDGE redirects on|off              send ICMP redirects (default on)
  link del NAME                                 delete a port or a bridge
  fdb show [dev PORT | br BRIDGE]               learned and static MACs
  fdb add|replace MAC dev PORT                  add a static entry (replace: move one)
  fdb del MAC dev PORT | br BRIDGE              delete an entry
  fdb flush [dev PORT | br BRIDGE] [static]     forget learned entries (and static)
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
                                                EXPR like 'arp or host 10.1.0.5' (arp ip icmp tcp udp
                                                host src dst, [src|dst] port, 'ether host', not and or)
  trace show | trace stop                       what each stage decided about each packet
  trace packet in PORT src A dst B [proto udp|tcp|icmp|arp] [sport N] [dport N] [ttl N]
               [len N] [smac MAC] [dmac MAC]    a made-up packet through the live tables:
                                                nothing is sent, learned or created
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
                "unknown object '{o}' (try: link, fdb, addr, route, neigh, nat, trace, capture, top, stats, apply, save, version)"
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

/// `link show|add|set|del`.
fn parse_link(command: &str, w: &mut Words) -> Result<(Request, Output), String> {
    Ok(match command {
        "show" | "list" | "ls" => {
            let only = match w.next() {
                Some(s) if s == "dev" => w.next(),
                other => other,
            };
            (Request::LinkShow { name: only }, Output::Links)
        }
        "add" => return parse_link_add(w),
        "set" => return parse_link_set(w),
        "del" | "delete" => {
            let name = w.name("link name")?;
            if let Some(x) = w.next() {
                return Err(w.unexpected(&x));
            }
            (Request::LinkDel { name }, Output::Nothing)
        }
        c => {
            return Err(format!(
                "link: unknown command '{c}' (try: show, add, set, del)"
            ))
        }
    })
}

/// `fdb show|add|replace|del|flush`.
fn parse_fdb(command: &str, w: &mut Words) -> Result<(Request, Output), String> {
    Ok(match command {
        "show" | "list" | "ls" => {
            let link = match w.next().as_deref() {
                None => None,
                Some("dev" | "br") => Some(w.value("dev", "a port or bridge name")?),
                Some(x) => return Err(w.unexpected(x)),
            };
            (Request::FdbShow { link }, Output::Fdb)
        }
        "add" | "append" | "replace" => {
            let ctx = w.context.clone();
            let mac = mac(&ctx, w.next().as_deref())?;
            let mut dev = None;
            while let Some(x) = w.next() {
                match x.as_str() {
                    "dev" => dev = Some(w.value("dev", "a port name")?),
                    // iproute2 spells these out; a patchbay entry is always both.
                    "master" | "static" | "permanent" => {}
                    x => return Err(w.unexpected(x)),
                }
            }
            let dev = dev.ok_or_else(|| format!("{ctx}: missing 'dev PORT'"))?;
            let replace = command == "replace";
            (Request::FdbAdd { mac, dev, replace }, Output::Nothing)
        }
        "del" | "delete" => {
            let ctx = w.context.clone();
            let mac = mac(&ctx, w.next().as_deref())?;
            let mut dev = None;
            while let Some(x) = w.next() {
                match x.as_str() {
                    "dev" | "br" => dev = Some(w.value(&x, "a port or bridge name")?),
                    "master" => {}
                    x => return Err(w.unexpected(x)),
                }
            }
            let dev = dev.ok_or_else(|| format!("{ctx}: missing 'dev PORT' or 'br BRIDGE'"))?;
            (Request::FdbDel { mac, dev }, Output::Nothing)
        }
        "flush" => {
            let (mut link, mut statics) = (None, false);
            while let Some(x) = w.next() {
                match x.as_str() {
                    "dev" | "br" => link = Some(w.value(&x, "a port or bridge name")?),
                    "static" | "permanent" | "all" => statics = true,
                    "dynamic" => statics = false,
                    x => return Err(w.unexpected(x)),
                }
            }
            (Request::FdbFlush { link, statics }, Output::Flushed)
        }
        c => {
            return Err(format!(
                "fdb: unknown command '{c}' (try: show, add, del, flush)"
            ))
        }
    })
}

/// `apply FILE [check]`.
fn parse_apply(w: &mut Words) -> Result<(Request, Output), String> {
    let path = w
        .words
        .get(1)
        .cloned()
        .ok_or("apply: missing FILE (or - for stdin)")?;
    let dry_run = match w.next().as_deref() {
        None => false,
        Some("check" | "--check" | "dry-run" | "--dry-run") => true,
        Some(x) => return Err(w.unexpected(x)),
    };
    no_more(w)?;
    let req = Request::Apply {
        text: String::new(),
        file: Some(path.clone()),
        dry_run,
    };
    Ok((req, Output::Apply { path, dry_run }))
}

/// `top [interval SECS] [once]`.
fn parse_top(w: &mut Words) -> Result<(Request, Output), String> {
    let ctx = w.context.clone();
    let (mut interval_secs, mut once) = (1.0, false);
    w.at = 1;
    while let Some(x) = w.next() {
        match x.as_str() {
            "interval" => {
                let v = w.value("interval", "seconds")?;
                interval_secs = v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| (0.1..=3600.0).contains(s))
                    .ok_or_else(|| format!("{ctx}: interval '{v}': 0.1 to 3600 seconds"))?;
            }
            "once" => once = true,
            x => return Err(w.unexpected(x)),
        }
    }
    Ok((
        Request::Stats,
        Output::Top {
            interval_ms: (interval_secs * 1000.0) as u64,
            once,
        },
    ))
}

/// `capture PORT [rx|tx|both] -w FILE [count N] [snaplen N] [filter EXPR]`.
fn parse_capture(w: &mut Words) -> Result<(Request, Output), String> {
    let ctx = w.context.clone();
    let port = w
        .words
        .get(1)
        .cloned()
        .ok_or("capture: missing PORT (capture PORT -w FILE)")?;
    let (mut dir, mut path, mut count, mut snaplen, mut filter) = (None, None, None, None, None);
    while let Some(x) = w.next() {
        match x.as_str() {
            "rx" | "tx" | "both" | "in" | "out" => dir = Some(x),
            "-w" | "write" => path = Some(w.value("-w", "a file (or -)")?),
            "count" => {
                let n = w.value("count", "a number of frames")?;
                count = Some(
                    n.parse()
                        .map_err(|_| format!("{ctx}: '{n}' is not a number of frames"))?,
                );
            }
            "snaplen" => {
                let n = w.value("snaplen", "a number of bytes")?;
                snaplen = Some(
                    n.parse()
                        .map_err(|_| format!("{ctx}: '{n}' is not a number of bytes"))?,
                );
            }
            "filter" => {
                let mut words = Vec::new();
                while let Some(f) = w.next() {
                    words.push(f);
                }
                filter = Some(words.join(" "));
            }
            x => return Err(w.unexpected(x)),
        }
    }
    let path =
        path.ok_or_else(|| format!("{ctx}: give -w FILE, or -w - to pipe into 'tcpdump -r -'"))?;
    Ok((
        Request::Capture {
            port,
            dir,
            count,
            snaplen,
            filter,
        },
        Output::Capture { path },
    ))
}

fn net(ctx: &str, s: Option<String>) -> Result<Ipv4Net, String> {
    let s = s.ok_or_else(|| format!("{ctx}: missing prefix (like 10.0.0.0/24 or default)"))?;
    s.parse().map_err(|e| format!("{ctx}: {e}"))
}

fn addr(ctx: &str, s: Option<String>) -> Result<Ipv4Addr, String> {
    let s = s.ok_or_else(|| format!("{ctx}: missing IPv4 address"))?;
    s.parse()
        .map_err(|_| format!("{ctx}: '{s}' is not an IPv4 address"))
}

fn no_more(w: &mut Words) -> Result<(), String> {
    match w.next() {
        Some(x) => Err(w.unexpected(&x)),
        None => Ok(()),
    }
}

/// `dev NAME` (required) after the main argument.
fn dev_arg(w: &mut Words) -> Result<Option<String>, String> {
    let mut dev = None;
    while let Some(x) = w.next() {
        match x.as_str() {
            "dev" => dev = Some(w.value("dev", "a bridge name")?),
            _ => return Err(w.unexpected(&x)),
        }
    }
    Ok(dev)
}

fn parse_addr(command: &str, w: &mut Words) -> Result<(Request, Output), String> {
    let ctx = w.context.clone();
    match command {
        "show" | "list" | "ls" => {
            let dev = dev_arg(w)?;
            Ok((Request::AddrShow { dev }, Output::Addrs))
        }
        "add" | "del" | "delete" => {
            let a = net(&ctx, w.next())?;
            let dev = dev_arg(w)?.ok_or_else(|| format!("{ctx}: missing 'dev BRIDGE'"))?;
            let req = if command == "add" {
                Request::AddrAdd { addr: a, dev }
            } else {
                Request::AddrDel { addr: a, dev }
            };
            Ok((req, Output::Nothing))
        }
        c => Err(format!("addr: unknown command '{c}' (try: show, add, del)")),
    }
}

fn parse_route(command: &str, w: &mut Words) -> Result<(Request, Output), String> {
    let ctx = w.context.clone();
    match command {
        "show" | "list" | "ls" => {
            // As iproute2: PREFIX is that route exactly, 'root PREFIX'
            // every route inside it.
            let (mut dst, mut root, mut dev) = (None, false, None);
            while let Some(x) = w.next() {
                match x.as_str() {
                    "dev" => dev = Some(w.value("dev", "a bridge name")?),
                    "root" => {
                        root = true;
                        dst = Some(net(&ctx, w.next())?);
                    }
                    "exact" => dst = Some(net(&ctx, w.next())?),
                    _ => dst = Some(net(&ctx, Some(x))?),
                }
            }
            let req = Request::RouteShow {
                limit: None,
                dst,
                root,
                dev,
            };
            Ok((req, Output::Routes))
        }
        "load" => {
            let path = w
                .next()
                .ok_or_else(|| format!("{ctx}: missing FILE (or - for stdin)"))?;
            no_more(w)?;
            let req = Request::RouteLoad {
                text: String::new(),
                first_line: 1,
            };
            Ok((req, Output::RouteLoad { path }))
        }
        "get" => {
            let a = addr(&ctx, w.next())?;
            no_more(w)?;
            Ok((Request::RouteGet { addr: a }, Output::RouteGet))
        }
        "add" | "replace" | "del" | "delete" => {
            let dst = net(&ctx, w.next())?;
            let (mut via, mut dev) = (None, None);
            while let Some(x) = w.next() {
                match x.as_str() {
                    "via" => via = Some(addr(&ctx, w.next())?),
                    "dev" => dev = Some(w.value("dev", "a bridge name")?),
                    _ => return Err(w.unexpected(&x)),
                }
            }
            if command.starts_with("del") {
                return Ok((Request::RouteDel { dst, via, dev }, Output::Nothing));
            }
            if via.is_none() && dev.is_none() {
                return Err(format!("{ctx}: give 'via GATEWAY' or 'dev BRIDGE'"));
            }
            let replace = command == "replace";
            let req = Request::RouteAdd {
                dst,
                via,
                dev,
                replace,
            };
            Ok((req, Output::Nothing))
        }
        c => Err(format!(
            "route: unknown command '{c}' (try: show, get, add, del)"
        )),
    }
}

fn parse_trace(command: &str, w: &mut Words) -> Result<(Request, Output), String> {
    let ctx = w.context.clone();
    match command {
        "show" | "list" | "ls" => {
            no_more(w)?;
            Ok((Request::TraceShow, Output::Trace))
        }
        "stop" | "off" => {
            no_more(w)?;
            Ok((Request::TraceStop, Output::Nothing))
        }
        "start" | "add" | "on" => {
            let (mut count, mut port, mut filter) = (None, None, None);
            while let Some(x) = w.next() {
                match x.as_str() {
                    "count" => {
                        let n = w.value("count", "a number of packets")?;
                        count = Some(
                            n.parse()
                                .map_err(|_| format!("{ctx}: '{n}' is not a number of packets"))?,
                        );
                    }
                    "port" | "dev" => port = Some(w.value(&x, "a port name")?),
                    "filter" => {
                        let mut words = Vec::new();
                        while let Some(f) = w.next() {
                            words.push(f);
                        }
                        if words.is_empty() {
                            return Err(format!("{ctx}: 'filter' needs an expression"));
                        }
                        filter = Some(words.join(" "));
                    }
                    x => return Err(w.unexpected(x)),
                }
            }
            Ok((
                Request::TraceStart {
                    count,
                    port,
                    filter,
                },
                Output::Nothing,
            ))
        }
        "packet" => {
            let mut port = None;
            let mut spec = patchbay_dataplane::trace::PacketSpec {
                src: Ipv4Addr::UNSPECIFIED,
                dst: Ipv4Addr::UNSPECIFIED,
                proto: None,
                sport: None,
                dport: None,
                ttl: None,
                len: None,
                smac: None,
                dmac: None,
            };
            let (mut src, mut dst) = (false, false);
            let num = |k: &str, v: String| -> Result<u16, String> {
                v.parse()
                    .map_err(|_| format!("{ctx}: {k} '{v}' is not a number"))
            };
            while let Some(x) = w.next() {
                match x.as_str() {
                    "in" | "port" | "dev" => port = Some(w.value(&x, "a port name")?),
                    "src" => {
                        spec.src = addr(&ctx, w.next())?;
                        src = true;
                    }
                    "dst" => {
                        spec.dst = addr(&ctx, w.next())?;
                        dst = true;
                    }
                    "proto" => spec.proto = Some(w.value("proto", "udp, tcp, icmp or arp")?),
                    "sport" => spec.sport = Some(num("sport", w.value("sport", "a port")?)?),
                    "dport" => spec.dport = Some(num("dport", w.value("dport", "a port")?)?),
                    "len" => spec.len = Some(num("len", w.value("len", "a length")?)?),
                    "ttl" => {
                        let v = w.value("ttl", "a TTL")?;
                        spec.ttl = Some(
                            v.parse()
                                .map_err(|_| format!("{ctx}: ttl '{v}' is not 0 to 255"))?,
                        );
                    }
                    "smac" => spec.smac = Some(mac(&ctx, w.next().as_deref())?),
                    "dmac" => spec.dmac = Some(mac(&ctx, w.next().as_deref())?),
                    x => return Err(w.unexpected(x)),
                }
            }
            let port = port.ok_or_else(|| format!("{ctx}: missing 'in PORT'"))?;
            if !src || !dst {
                return Err(format!("{ctx}: give 'src ADDR' and 'dst ADDR'"));
            }
            Ok((
                Request::TracePacket { port, packet: spec },
                Output::TracePacket,
            ))
        }
        c => Err(format!(
            "trace: unknown command '{c}' (try: start, show, stop, packet)"
        )),
    }
}

fn range<T: std::str::FromStr>(ctx: &str, what: &str, s: &str) -> Result<(T, T), String> {
    let bad = || format!("{ctx}: '{s}' is not a {what} range (like A-B)");
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
}

fn parse_nat(command: &str, w: &mut Words) -> Result<(Request, Output), String> {
    let ctx = w.context.clone();
    match command {
        "show" | "list" | "ls" => {
            no_more(w)?;
            Ok((Request::NatShow, Output::NatRules))
        }
        "sessions" => match w.next().as_deref() {
            None | Some("show" | "list" | "ls") => Ok((Request::NatSessions, Output::NatSessions)),
            Some("flush") => Ok((Request::NatSessionsFlush, Output::Flushed)),
            Some(x) => Err(w.unexpected(x)),
        },
        "del" | "delete" => {
            let id = w
                .next()
                .ok_or_else(|| format!("{ctx}: missing rule number"))?;
            let id = id
                .parse()
                .map_err(|_| format!("{ctx}: '{id}' is not a rule number"))?;
            no_more(w)?;
            Ok((Request::NatDel { id }, Output::Nothing))
        }
        "add" => {
            let kind = w
                .next()
                .ok_or_else(|| format!("{ctx}: missing masquerade, snat or dnat"))?;
            let (mut src, mut out, mut inb, mut to, mut ports, mut proto, mut dport) =
                (None, None, None, None, None, None, None);
            let mut filtering = Filtering::default();
            while let Some(x) = w.next() {
                match x.as_str() {
                    "src" => src = Some(net(&ctx, w.next())?),
                    "out" => out = Some(w.value("out", "a bridge name")?),
                    "in" => inb = Some(w.value("in", "a bridge name")?),
                    "to" => to = Some(w.value("to", "an address (range) or ADDR:PORT")?),
                    "ports" => {
                        ports = Some(range::<u16>(
                            &ctx,
                            "port",
                            &w.value("ports", "a port range")?,
                        )?)
                    }
                    "proto" => proto = Some(w.value("proto", "tcp or udp")?),
                    "filtering" => {
                        let f = w.value("filtering", "a filtering behaviour")?;
                        filtering = match f.as_str() {
                            "endpoint-independent" | "eif" => Filtering::EndpointIndependent,
                            "address-dependent" | "adf" => Filtering::AddressDependent,
                            "address-and-port-dependent" | "apdf" => {
                                Filtering::AddressAndPortDependent
                            }
                            _ => {
                                return Err(format!(
                                "{ctx}: filtering is endpoint-independent, address-dependent or \
                                     address-and-port-dependent, not '{f}'"
                            ))
                            }
                        };
                    }
                    "dport" => {
                        let v = w.value("dport", "a port")?;
                        dport = Some(
                            v.parse()
                                .map_err(|_| format!("{ctx}: '{v}' is not a port"))?,
                        );
                    }
                    _ => return Err(w.unexpected(&x)),
                }
            }
            let need = |v: Option<String>, what: &str| {
                v.ok_or_else(|| format!("{ctx}: {kind} needs '{what}'"))
            };
            let rule = match kind.as_str() {
                "masquerade" => NatRuleSpec::Masquerade {
                    src,
                    out: need(out, "out BRIDGE")?,
                    ports,
                    filtering,
                },
                "snat" => {
                    let (first, last) =
                        range::<Ipv4Addr>(&ctx, "address", &need(to, "to ADDR[-ADDR]")?)?;
                    NatRuleSpec::Snat {
                        src,
                        first,
                        last,
                        out: need(out, "out BRIDGE")?,
                        ports,
                        filtering,
                    }
                }
                "dnat" => {
                    let to = need(to, "to ADDR:PORT")?;
                    let (a, p) = to
                        .split_once(':')
                        .ok_or_else(|| format!("{ctx}: 'to' needs ADDR:PORT, not '{to}'"))?;
                    NatRuleSpec::Dnat {
                        proto: need(proto, "proto tcp|udp")?,
                        in_dev: need(inb, "in BRIDGE")?,
                        dport: dport.ok_or_else(|| format!("{ctx}: dnat needs 'dport PORT'"))?,
                        to_addr: a
                            .parse()
                            .map_err(|_| format!("{ctx}: '{a}' is not an IPv4 address"))?,
                        to_port: p
                            .parse()
                            .map_err(|_| format!("{ctx}: '{p}' is not a port"))?,
                    }
                }
                k => {
                    return Err(format!(
                        "{ctx}: unknown rule '{k}' (masquerade, snat or dnat)"
                    ))
                }
            };
            Ok((Request::NatAdd { rule }, Output::NatAdded))
        }
        c => Err(format!(
            "nat: unknown command '{c}' (try: show, add, del, sessions)"
        )),
    }
}

fn parse_neigh(command: &str, w: &mut Words) -> Result<(Request, Output), String> {
    let ctx = w.context.clone();
    match command {
        "show" | "list" | "ls" => {
            let dev = dev_arg(w)?;
            Ok((Request::NeighShow { dev }, Output::Neighbors))
        }
        "flush" => {
            let dev = dev_arg(w)?;
            Ok((Request::NeighFlush { dev }, Output::Flushed))
        }
        "add" | "replace" | "del" | "delete" => {
            let ip = addr(&ctx, w.next())?;
            let (mut mac_s, mut dev) = (None, None);
            while let Some(x) = w.next() {
                match x.as_str() {
                    "lladdr" => mac_s = Some(w.value("lladdr", "a MAC address")?),
                    "dev" => dev = Some(w.value("dev", "a bridge name")?),
                    "nud" => {
                        w.value("nud", "permanent")?;
                    }
                    "permanent" => {}
                    _ => return Err(w.unexpected(&x)),
                }
            }
            let dev = dev.ok_or_else(|| format!("{ctx}: missing 'dev BRIDGE'"))?;
            if command.starts_with("del") {
                return Ok((Request::NeighDel { ip, dev }, Output::Nothing));
            }
            let m = mac(&ctx, mac_s.as_deref())?;
            let replace = command == "replace";
            let req = Request::NeighAdd {
                ip,
                mac: m,
                dev,
                replace,
            };
            Ok((req, Output::Nothing))
        }
        c => Err(format!(
            "neigh: unknown command '{c}' (try: show, add, del, flush)"
        )),
    }
}

fn parse_link_add(w: &mut Words) -> Result<(Request, Output), String> {
    let ctx = w.context.clone();
    let name = w.name("link name")?;
    let (mut kind, mut master, mut nomaster, mut ageing_time) = (None, None, false, None);
    while let Some(x) = w.next() {
        match x.as_str() {
            "type" => {
                let t = w.value("type", "afpacket, tap or bridge")?;
                kind = Some(match t.as_str() {
                    "afpacket" => LinkKind::Afpacket,
                    "tap" => LinkKind::Tap,
                    "bridge" => LinkKind::Bridge,
                    other => {
                        return Err(format!(
                            "{ctx}: unknown type '{other}' (afpacket, tap or bridge)"
                        ))
                    }
                });
            }
            "master" => master = Some(w.value("master", "a bridge name")?),
            "nomaster" => nomaster = true,
            "ageing_time" => {
                ageing_time = Some(number(
                    &ctx,
                    "ageing_time",
                    &w.value("ageing_time", "seconds")?,
                )?)
            }
            x => return Err(w.unexpected(x)),
        }
    }
    let kind = kind.ok_or_else(|| format!("{ctx}: missing 'type afpacket|tap|bridge'"))?;
    if kind != LinkKind::Bridge && master.is_none() && !nomaster {
        master = Some(DEFAULT_BRIDGE.to_string());
    }
    if kind == LinkKind::Bridge && (master.is_some() || nomaster) {
        return Err(format!("{ctx}: a bridge cannot have a master"));
    }
    if kind != LinkKind::Bridge && ageing_time.is_some() {
        return Err(format!("{ctx}: ageing_time is a bridge setting"));
    }
    if nomaster && master.is_some() {
        return Err(format!("{ctx}: give master or nomaster, not both"));
    }
    Ok((
        Request::LinkAdd {
            name,
            kind,
            master,
            ageing_time,
        },
        Output::Nothing,
    ))
}

fn parse_link_set(w: &mut Words) -> Result<(Request, Output), String> {
    let ctx = w.context.clone();
    let name = w.name("link name")?;
    let (mut master, mut nomaster, mut ageing_time, mut mtu) = (None, false, None, None);
    let (mut rp_filter, mut redirects) = (None, None);
    while let Some(x) = w.next() {
        match x.as_str() {
            "master" => master = Some(w.value("master", "a bridge name")?),
            "nomaster" => nomaster = true,
            "mtu" => {
                let v = w.value("mtu", "a number of bytes")?;
                mtu = Some(
                    v.parse()
                        .map_err(|_| format!("{ctx}: mtu must be a number of bytes, not '{v}'"))?,
                );
            }
            "rp_filter" => {
                let v = w.value("rp_filter", "strict, loose or off")?;
                rp_filter = Some(v.parse::<RpFilter>().map_err(|e| format!("{ctx}: {e}"))?);
            }
            "redirects" => {
                let v = w.value("redirects", "on or off")?;
                redirects = Some(match v.as_str() {
                    "on" | "1" => true,
                    "off" | "0" => false,
                    _ => return Err(format!("{ctx}: redirects must be on or off, not '{v}'")),
                });
            }
            "ageing_time" => {
                ageing_time = Some(number(
                    &ctx,
                    "ageing_time",
                    &w.value("ageing_time", "seconds")?,
                )?)
            }
            // `ip link set br0 type bridge ageing_time N` spelling.
            "type" => {
                let t = w.value("type", "bridge")?;
                if t != "bridge" {
                    return Err(format!("{ctx}: only 'type bridge' settings can be changed"));
                }
            }
            x => return Err(w.unexpected(x)),
        }
    }
    let req = Request::LinkSet {
        name,
        master,
        nomaster,
        ageing_time,
        mtu,
        rp_filter,
        redirects,
    };
    match req.link_set_problem() {
        Some(LinkSetProblem::Nothing) => Err(format!(
            "{ctx}: nothing to change (master BRIDGE, nomaster, ageing_time SECS, mtu BYTES, \
             rp_filter strict|loose|off or redirects on|off)"
        )),
        Some(LinkSetProblem::MasterAndNomaster) => {
            Err(format!("{ctx}: give master or nomaster, not both"))
        }
        None => Ok((req, Output::Nothing)),
    }
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

mod render;
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
            }
        );
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
            ("link add p3 type vxlan", "unknown type 'vxlan'"),
            ("link set p3", "nothing to change"),
            ("link set br1 ageing_time soon", "whole number"),
            ("fdb add 02:00:00:00:00:zz dev p1", "not a MAC address"),
            ("fdb add 02:00:00:00:00:01", "missing 'dev PORT'"),
            (
                "route add 10.0.0.0/33 via 10.0.0.1",
                "prefix length over 32",
            ),
            ("route add 10.0.0.0/8", "give 'via GATEWAY' or 'dev BRIDGE'"),
            ("route get 10.0.0", "not an IPv4 address"),
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
