//! Requests about the whole lab: `apply`, `save`, `version`.

use super::*;

/// Carries out a request of this object (the dispatcher sends it here).
pub(super) fn handle(req: Request, cx: &Cx) -> Result<Value, ApiError> {
    match req {
        Request::Apply {
            text,
            file,
            dry_run,
        } => {
            let file = file.as_deref().unwrap_or("<apply>");
            Ok(to_value(apply_config(cx, file, &text, dry_run)?))
        }
        Request::Save => {
            let state = cx.engine.call(snapshot).map_err(|_| stopped())?.finish();
            let rx_ring_mib = cx.opts.rx_ring_mib as u32;
            let mut text = config::to_toml(&state, rx_ring_mib);
            text.push_str(&config::dhcp_toml(&cx.dhcp.pools()));
            Ok(json!({ "text": text }))
        }
        Request::Version => Ok(json!({
            "version": env!("CARGO_PKG_VERSION"),
            "protocol": api::PROTOCOL_VERSION,
        })),
        other => Err(misrouted(&other)),
    }
}

/// Copies the running state on the forwarding thread (the pause is logged
/// at debug level).
fn snapshot(sw: &mut Switch) -> RunningSnapshot {
    let start = Instant::now();
    let snap = sw.running_snapshot();
    log::debug!("running state copied in {:?}", start.elapsed());
    snap
}

/// Applies a config text to the running daemon (see [`crate::apply`]):
/// the switch's part as one job, then the DHCP servers.
fn apply_config(cx: &Cx, file: &str, text: &str, dry_run: bool) -> Result<Summary, ApiError> {
    let (engine, opts) = (cx.engine, cx.opts);
    let invalid = |e: apply::ApplyError| ApiError::new(ErrorCode::Invalid, e.to_string());
    let want = config::parse(file, text).map_err(|e| invalid(e.into()))?;
    let running = engine.call(snapshot).map_err(|_| stopped())?.finish();
    let dhcp = dhcp_changes(&cx.dhcp.pools(), &want.dhcp);
    let mut summary = apply::apply_parsed(
        file,
        &want,
        running,
        opts,
        dry_run,
        |steps, ports, before| {
            engine
                .call(move |sw| apply::execute(sw, steps, ports, &before))
                .unwrap_or_else(|_| apply::Outcome {
                    result: Err("the forwarding engine has stopped".into()),
                    ports: Vec::new(),
                    elapsed: Default::default(),
                })
        },
    )
    .map_err(invalid)?;
    summary.dhcp = dhcp.counts;
    summary.changes += dhcp.counts.added + dhcp.counts.removed + dhcp.counts.changed;
    if !dry_run {
        for bridge in dhcp.gone {
            let b = bridge.clone();
            let _ = engine.call(move |sw| sw.dhcp_serve(&b, false));
            cx.dhcp.del(&bridge);
        }
        for pool in dhcp.made {
            let b = pool.bridge.clone();
            match engine.call(move |sw| sw.dhcp_serve(&b, true)) {
                Ok(Ok(iface)) => cx.dhcp.add(pool, iface),
                Ok(Err(e)) => log::error!("apply {file}: dhcp {}: {e}", pool.bridge),
                Err(_) => return Err(stopped()),
            }
        }
    }
    Ok(summary)
}

/// The DHCP servers an apply removes and (re)makes.
struct DhcpChanges {
    counts: apply::Counts,
    gone: Vec<String>,
    made: Vec<crate::dhcp::Pool>,
}

fn dhcp_changes(running: &[crate::dhcp::Pool], want: &[crate::dhcp::Pool]) -> DhcpChanges {
    let mut c = DhcpChanges {
        counts: apply::Counts::default(),
        gone: Vec::new(),
        made: Vec::new(),
    };
    for r in running {
        if !want.iter().any(|w| w.bridge == r.bridge) {
            c.gone.push(r.bridge.clone());
            c.counts.removed += 1;
        }
    }
    for w in want {
        match running.iter().find(|r| r.bridge == w.bridge) {
            Some(r) if r == w => {}
            Some(_) => {
                c.counts.changed += 1;
                c.made.push(w.clone());
            }
            None => {
                c.counts.added += 1;
                c.made.push(w.clone());
            }
        }
    }
    c
}
