//! `route` requests: the routing table, one route or a file of them.

use super::*;

/// Carries out a request of this object (the dispatcher sends it here).
pub(super) fn handle(req: Request, cx: &Cx) -> Result<Value, ApiError> {
    match req {
        Request::RouteShow {
            limit,
            dst,
            root,
            dev,
        } => {
            let limit = limit.unwrap_or(10_000);
            let filter = RouteFilter { dst, root, dev };
            let (total, routes) = cx.on_switch(move |sw| sw.routes_matching(limit, &filter))?;
            Ok(json!({ "total": total, "routes": routes }))
        }
        Request::RouteAdd {
            dst,
            via,
            dev,
            replace,
        } => {
            if via.is_none() && dev.is_none() {
                return Err(ApiError::new(
                    ErrorCode::BadRequest,
                    "route_add needs via or dev",
                ));
            }
            let d = dev.clone();
            let existed = cx.on_switch(move |sw| {
                // Host bits are refused by route_add, whatever is there.
                match sw.route_exact(dst).filter(|_| !dst.has_host_bits()) {
                    Some(r) if !replace || r.proto == RouteOrigin::Connected => Ok(Some(r)),
                    _ => sw.route_add(dst, via, d.as_deref()).map(|()| None),
                }
            })?;
            if let Some(r) = existed
                .as_ref()
                .filter(|r| r.proto == RouteOrigin::Connected)
            {
                return Err(ApiError::new(
                    ErrorCode::Exists,
                    format!(
                        "{}: the connected route of bridge {}'s address; it comes and goes with \
                         the address",
                        r.dst, r.dev
                    ),
                ));
            }
            if let Some(r) = existed {
                return Err(ApiError::new(
                    ErrorCode::Exists,
                    format!(
                        "{}: a route exists ({}); use 'patchbay route replace'",
                        r.dst,
                        route_words(&r)
                    ),
                ));
            }
            log::info!(op = "route_add", dst:% = dst, via:? = via, dev:? = dev; "route {dst} added");
            Ok(Value::Null)
        }
        Request::RouteLoad { text, first_line } => {
            let routes = parse_route_lines(&text, first_line)?;
            // In chunks, so forwarding goes on between them.
            let mut loaded = 0;
            for chunk in routes.chunks(8192) {
                let chunk = chunk.to_vec();
                let base = loaded;
                let n = cx
                    .engine
                    .call(move |sw| {
                        sw.route_batch(|sw| {
                            for (i, (line, dst, via, dev)) in chunk.iter().enumerate() {
                                if let Err(e) = sw.route_add(*dst, *via, dev.as_deref()) {
                                    return Err((base + i, *line, e));
                                }
                            }
                            Ok(chunk.len())
                        })
                    })
                    .map_err(|_| stopped())?;
                match n {
                    Ok(n) => loaded += n,
                    Err((done, line, e)) => {
                        let e = switch_error(e);
                        return Err(ApiError::new(
                            e.code,
                            format!(
                                "line {line}: {} (routes loaded before it: {done})",
                                e.message
                            ),
                        ));
                    }
                }
            }
            log::info!(op = "route_load", routes = loaded; "route load: {loaded} routes");
            Ok(json!({ "loaded": loaded }))
        }
        Request::RouteDel { dst, via, dev } => {
            let d = dev.clone();
            let other = cx.on_switch(move |sw| match sw.route_exact(dst) {
                Some(r)
                    if via.is_some_and(|v| r.via != Some(v))
                        || d.as_ref().is_some_and(|d| *d != r.dev) =>
                {
                    Ok(Some(r))
                }
                _ => sw.route_del(dst).map(|()| None),
            })?;
            if let Some(r) = other {
                return Err(ApiError::new(
                    ErrorCode::NotFound,
                    format!(
                        "{}: the route is {}, not what was given",
                        r.dst,
                        route_words(&r)
                    ),
                ));
            }
            log::info!(op = "route_del", dst:% = dst; "route {dst} deleted");
            Ok(Value::Null)
        }
        Request::RouteGet { addr } => match cx
            .engine
            .call(move |sw| (sw.route_get(addr), sw.never_forwarded(addr)))
            .map_err(|_| stopped())?
        {
            (Some(r), _) => Ok(to_value(r)),
            (None, true) => Err(ApiError::new(
                ErrorCode::NotFound,
                match addr {
                    IpAddr::V4(_) => format!(
                        "{addr}: never forwarded (a broadcast, multicast, loopback or 0.0.0.0/8 \
                         address)"
                    ),
                    IpAddr::V6(_) => format!(
                        "{addr}: never forwarded (an unspecified, loopback, multicast or \
                         link-local address)"
                    ),
                },
            )),
            (None, false) => Err(ApiError::new(
                ErrorCode::NotFound,
                format!("{addr}: no route"),
            )),
        },
        other => Err(misrouted(&other)),
    }
}

/// A route of a `route load` text: (line number, prefix, gateway, bridge).
type RouteLine = (u64, IpNet, Option<IpAddr>, Option<String>);

/// Parses `route load` text, every line before any is used.
fn parse_route_lines(text: &str, first_line: u64) -> Result<Vec<RouteLine>, ApiError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = first_line.max(1) + i as u64;
        let words: Vec<&str> = raw
            .split('#')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        if words.is_empty() {
            continue;
        }
        let bad = |why: String| ApiError::new(ErrorCode::BadRequest, format!("line {line}: {why}"));
        let dst: IpNet = words[0].parse().map_err(|e| bad(format!("{e}")))?;
        if dst.has_host_bits() {
            return Err(bad(format!(
                "{dst}: host bits are set (the prefix is {})",
                dst.subnet()
            )));
        }
        let (mut via, mut dev) = (None, None);
        let mut w = words[1..].iter();
        while let Some(k) = w.next() {
            match *k {
                "via" => {
                    let a = w
                        .next()
                        .ok_or_else(|| bad("'via' needs a gateway address".into()))?;
                    let gw: IpAddr = a
                        .parse()
                        .map_err(|_| bad(format!("'{a}' is not an IPv4 or IPv6 address")))?;
                    if gw.is_ipv6() != dst.is_ipv6() {
                        return Err(bad(format!("gateway {gw} is not of the family of {dst}")));
                    }
                    via = Some(gw);
                }
                "dev" => {
                    let d = w
                        .next()
                        .ok_or_else(|| bad("'dev' needs a bridge name".into()))?;
                    dev = Some(d.to_string());
                }
                other => {
                    return Err(bad(format!(
                        "unexpected '{other}' (PREFIX via GATEWAY [dev BRIDGE])"
                    )))
                }
            }
        }
        if via.is_none() && dev.is_none() {
            return Err(bad("give 'via GATEWAY' or 'dev BRIDGE'".into()));
        }
        out.push((line, dst, via, dev));
    }
    Ok(out)
}

/// `via GW dev BR` or `dev BR`.
fn route_words(r: &patchbay_dataplane::pipeline::RouteInfo) -> String {
    match r.via {
        Some(v) => format!("via {v} dev {}", r.dev),
        None => format!("dev {}", r.dev),
    }
}
