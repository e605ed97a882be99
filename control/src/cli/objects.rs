//! One parser per object: the words after `patchbay OBJECT COMMAND`, into
//! a request and how to show its answer.

use super::*;

mod dhcp;
mod vlan;
mod vxlan;
pub(super) use dhcp::parse_dhcp;
pub(super) use vlan::parse_vlan;
use vlan::vid;

/// `link show|add|set|del`.
pub(super) fn parse_link(command: &str, w: &mut Words) -> Result<(Request, Output), String> {
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
pub(super) fn parse_fdb(command: &str, w: &mut Words) -> Result<(Request, Output), String> {
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
            let (mut dev, mut vlan, mut dst) = (None, None, None);
            while let Some(x) = w.next() {
                match x.as_str() {
                    "dev" => dev = Some(w.value("dev", "a port name")?),
                    "vlan" => vlan = Some(vid(&ctx, &w.value("vlan", "a VLAN id")?)?),
                    "dst" => dst = Some(vtep(&ctx, &w.value("dst", "a VTEP address")?)?),
                    // iproute2 spells these out; a patchbay entry is always both.
                    "master" | "static" | "permanent" => {}
                    x => return Err(w.unexpected(x)),
                }
            }
            let dev = dev.ok_or_else(|| format!("{ctx}: missing 'dev PORT'"))?;
            let replace = command == "replace";
            let req = Request::FdbAdd {
                mac,
                dev,
                replace,
                vlan,
                dst,
            };
            (req, Output::Nothing)
        }
        "del" | "delete" => {
            let ctx = w.context.clone();
            let mac = mac(&ctx, w.next().as_deref())?;
            let (mut dev, mut vlan, mut dst) = (None, None, None);
            while let Some(x) = w.next() {
                match x.as_str() {
                    "dev" | "br" => dev = Some(w.value(&x, "a port or bridge name")?),
                    "vlan" => vlan = Some(vid(&ctx, &w.value("vlan", "a VLAN id")?)?),
                    "dst" => dst = Some(vtep(&ctx, &w.value("dst", "a VTEP address")?)?),
                    "master" => {}
                    x => return Err(w.unexpected(x)),
                }
            }
            let dev = dev.ok_or_else(|| format!("{ctx}: missing 'dev PORT' or 'br BRIDGE'"))?;
            (
                Request::FdbDel {
                    mac,
                    dev,
                    vlan,
                    dst,
                },
                Output::Nothing,
            )
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

/// A remote VTEP's address.
fn vtep(ctx: &str, v: &str) -> Result<std::net::Ipv4Addr, String> {
    v.parse()
        .map_err(|_| format!("{ctx}: dst must be an IPv4 address (a VTEP), not '{v}'"))
}

/// `apply FILE [check]`.
pub(super) fn parse_apply(w: &mut Words) -> Result<(Request, Output), String> {
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
pub(super) fn parse_top(w: &mut Words) -> Result<(Request, Output), String> {
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
pub(super) fn parse_capture(w: &mut Words) -> Result<(Request, Output), String> {
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

pub(super) fn net(ctx: &str, s: Option<String>) -> Result<Ipv4Net, String> {
    let s = s.ok_or_else(|| format!("{ctx}: missing prefix (like 10.0.0.0/24 or default)"))?;
    s.parse().map_err(|e| format!("{ctx}: {e}"))
}

/// A route's prefix, IPv4 or IPv6.
fn ip_net(ctx: &str, s: Option<String>) -> Result<IpNet, String> {
    let s = s.ok_or_else(|| {
        format!("{ctx}: missing prefix (like 10.0.0.0/24, 2001:db8::/32 or default)")
    })?;
    s.parse().map_err(|e| format!("{ctx}: {e}"))
}

/// An address of either family.
fn ip_addr(ctx: &str, s: Option<String>) -> Result<IpAddr, String> {
    let s = s.ok_or_else(|| format!("{ctx}: missing address"))?;
    s.parse()
        .map_err(|_| format!("{ctx}: '{s}' is not an IPv4 or IPv6 address"))
}

pub(super) fn no_more(w: &mut Words) -> Result<(), String> {
    match w.next() {
        Some(x) => Err(w.unexpected(&x)),
        None => Ok(()),
    }
}

/// `dev NAME` (required) after the main argument.
pub(super) fn dev_arg(w: &mut Words) -> Result<Option<String>, String> {
    let mut dev = None;
    while let Some(x) = w.next() {
        match x.as_str() {
            "dev" => dev = Some(w.value("dev", "a bridge name")?),
            _ => return Err(w.unexpected(&x)),
        }
    }
    Ok(dev)
}

pub(super) fn parse_addr(command: &str, w: &mut Words) -> Result<(Request, Output), String> {
    let ctx = w.context.clone();
    match command {
        "show" | "list" | "ls" => {
            let dev = dev_arg(w)?;
            Ok((Request::AddrShow { dev }, Output::Addrs))
        }
        "add" | "del" | "delete" => {
            let a = ip_net(&ctx, w.next())?;
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

pub(super) fn parse_route(command: &str, w: &mut Words) -> Result<(Request, Output), String> {
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
                        dst = Some(ip_net(&ctx, w.next())?);
                    }
                    "exact" => dst = Some(ip_net(&ctx, w.next())?),
                    _ => dst = Some(ip_net(&ctx, Some(x))?),
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
            let a = ip_addr(&ctx, w.next())?;
            no_more(w)?;
            Ok((Request::RouteGet { addr: a }, Output::RouteGet))
        }
        "add" | "replace" | "del" | "delete" => {
            let dst = ip_net(&ctx, w.next())?;
            let (mut via, mut dev) = (None, None);
            while let Some(x) = w.next() {
                match x.as_str() {
                    "via" => via = Some(ip_addr(&ctx, w.next())?),
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

pub(super) fn parse_trace(command: &str, w: &mut Words) -> Result<(Request, Output), String> {
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
                src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
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
                        spec.src = ip_addr(&ctx, w.next())?;
                        src = true;
                    }
                    "dst" => {
                        spec.dst = ip_addr(&ctx, w.next())?;
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

pub(super) fn range<T: std::str::FromStr>(
    ctx: &str,
    what: &str,
    s: &str,
) -> Result<(T, T), String> {
    let bad = || format!("{ctx}: '{s}' is not a {what} range (like A-B)");
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
}

pub(super) fn parse_nat(command: &str, w: &mut Words) -> Result<(Request, Output), String> {
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

pub(super) fn parse_neigh(command: &str, w: &mut Words) -> Result<(Request, Output), String> {
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
            let ip = ip_addr(&ctx, w.next())?;
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

pub(super) fn parse_link_add(w: &mut Words) -> Result<(Request, Output), String> {
    let ctx = w.context.clone();
    let name = w.name("link name")?;
    if w.words
        .windows(2)
        .any(|p| p[0] == "type" && p[1] == "vxlan")
    {
        return vxlan::parse_link_add_vxlan(&ctx, name, w);
    }
    let (mut kind, mut master, mut nomaster, mut ageing_time) = (None, None, false, None);
    let (mut link, mut id) = (None, None);
    while let Some(x) = w.next() {
        match x.as_str() {
            "type" => {
                let t = w.value("type", "afpacket, tap, bridge or vlan")?;
                kind = Some(match t.as_str() {
                    "afpacket" => LinkKind::Afpacket,
                    "tap" => LinkKind::Tap,
                    "bridge" => LinkKind::Bridge,
                    "vlan" => {
                        kind = None;
                        link = Some(link.unwrap_or_default());
                        continue;
                    }
                    other => {
                        return Err(format!(
                            "{ctx}: unknown type '{other}' (afpacket, tap, bridge or vlan)"
                        ))
                    }
                });
            }
            "link" => link = Some(w.value("link", "a bridge name")?),
            "id" => id = Some(vid(&ctx, &w.value("id", "a VLAN id")?)?),
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
    if let Some(link) = link {
        // `type vlan link BRIDGE id N`.
        if kind.is_some() || master.is_some() || nomaster || ageing_time.is_some() {
            return Err(format!(
                "{ctx}: a VLAN interface takes only 'link BRIDGE id N'"
            ));
        }
        let id = id.ok_or_else(|| format!("{ctx}: missing 'id N' (the VLAN)"))?;
        if link.is_empty() {
            return Err(format!("{ctx}: missing 'link BRIDGE'"));
        }
        return Ok((Request::LinkAddVlan { name, link, id }, Output::Nothing));
    }
    if id.is_some() {
        return Err(format!("{ctx}: 'id' is for 'type vlan'"));
    }
    let kind = kind.ok_or_else(|| format!("{ctx}: missing 'type afpacket|tap|bridge|vlan'"))?;
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

pub(super) fn parse_link_set(w: &mut Words) -> Result<(Request, Output), String> {
    let ctx = w.context.clone();
    let name = w.name("link name")?;
    let (mut master, mut nomaster, mut ageing_time, mut mtu) = (None, false, None, None);
    let (mut rp_filter, mut redirects) = (None, None);
    let (mut ra, mut ra_lifetime, mut rdnss) = (None, None, None);
    let (mut ra_valid_lft, mut ra_preferred_lft) = (None, None);
    let (mut vlan_filtering, mut group_fwd_mask) = (None, None);
    let on_off = |what: &str, v: &str| match v {
        "on" | "1" => Ok(true),
        "off" | "0" => Ok(false),
        _ => Err(format!("{ctx}: {what} must be on or off, not '{v}'")),
    };
    while let Some(x) = w.next() {
        match x.as_str() {
            "ra" => ra = Some(on_off("ra", &w.value("ra", "on or off")?)?),
            "ra_lifetime" => {
                let v = w.value("ra_lifetime", "seconds")?;
                ra_lifetime = Some(v.parse::<u16>().map_err(|_| {
                    format!("{ctx}: ra_lifetime must be seconds from 0 to 65535, not '{v}'")
                })?);
            }
            "ra_valid_lft" | "ra_preferred_lft" => {
                let v = w.value(&x, "seconds")?;
                let secs = v
                    .parse::<u32>()
                    .map_err(|_| format!("{ctx}: {x} must be seconds, not '{v}'"))?;
                if x == "ra_valid_lft" {
                    ra_valid_lft = Some(secs);
                } else {
                    ra_preferred_lft = Some(secs);
                }
            }
            "rdnss" => {
                let v = w.value("rdnss", "IPv6 addresses (a,b) or none")?;
                rdnss = Some(if v == "none" {
                    Vec::new()
                } else {
                    v.split(',')
                        .map(|a| {
                            a.parse::<std::net::Ipv6Addr>()
                                .map_err(|_| format!("{ctx}: rdnss: '{a}' is not an IPv6 address"))
                        })
                        .collect::<Result<Vec<_>, _>>()?
                });
            }
            "vlan_filtering" => {
                let v = w.value("vlan_filtering", "1 or 0")?;
                vlan_filtering = Some(on_off("vlan_filtering", &v)?);
            }
            "group_fwd_mask" => {
                let v = w.value("group_fwd_mask", "a 16-bit mask (0x4004)")?;
                let n = match v.strip_prefix("0x").or(v.strip_prefix("0X")) {
                    Some(hex) => u16::from_str_radix(hex, 16),
                    None => v.parse(),
                };
                group_fwd_mask = Some(n.map_err(|_| {
                    format!("{ctx}: group_fwd_mask must be a 16-bit mask like 0x4004, not '{v}'")
                })?);
            }
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
                redirects = Some(on_off("redirects", &w.value("redirects", "on or off")?)?)
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
        ra,
        ra_lifetime,
        rdnss,
        ra_valid_lft,
        ra_preferred_lft,
        vlan_filtering,
        group_fwd_mask,
    };
    match req.link_set_problem() {
        Some(LinkSetProblem::Nothing) => Err(format!(
            "{ctx}: nothing to change (master BRIDGE, nomaster, ageing_time SECS, mtu BYTES, \
             rp_filter strict|loose|off, redirects on|off, ra on|off, ra_lifetime SECS, \
             rdnss ADDR[,ADDR]|none, ra_valid_lft SECS, ra_preferred_lft SECS, \
             vlan_filtering 0|1 or group_fwd_mask MASK)"
        )),
        Some(LinkSetProblem::MasterAndNomaster) => {
            Err(format!("{ctx}: give master or nomaster, not both"))
        }
        None => Ok((req, Output::Nothing)),
    }
}
