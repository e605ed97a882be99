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
            Ok(to_value(apply_config(
                cx.engine, cx.opts, file, &text, dry_run,
            )?))
        }
        Request::Save => {
            let state = cx.engine.call(snapshot).map_err(|_| stopped())?.finish();
            let rx_ring_mib = cx.opts.rx_ring_mib as u32;
            Ok(json!({ "text": config::to_toml(&state, rx_ring_mib) }))
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

/// Applies a config text to the running daemon (see [`crate::apply`]).
pub fn apply_config(
    engine: &EngineHandle,
    opts: &PortOptions,
    file: &str,
    text: &str,
    dry_run: bool,
) -> Result<Summary, ApiError> {
    let invalid = |e: apply::ApplyError| ApiError::new(ErrorCode::Invalid, e.to_string());
    let want = config::parse(file, text).map_err(|e| invalid(e.into()))?;
    let running = engine.call(snapshot).map_err(|_| stopped())?.finish();
    apply::apply_parsed(
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
    .map_err(invalid)
}
