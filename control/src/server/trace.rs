//! `trace` requests: what each stage does to each packet, real or made up.

use super::*;

/// Carries out a request of this object (the dispatcher sends it here).
pub(super) fn handle(req: Request, cx: &Cx) -> Result<Value, ApiError> {
    match req {
        Request::TraceStart {
            count,
            port,
            filter,
        } => {
            let filter = Filter::parse(filter.as_deref().unwrap_or(""))
                .map_err(|e| ApiError::new(ErrorCode::Invalid, e))?;
            let count = count.unwrap_or(50);
            if count == 0 || count > dataplane_trace::MAX_PACKETS {
                return Err(ApiError::new(
                    ErrorCode::Invalid,
                    format!(
                        "trace: count must be between 1 and {}",
                        dataplane_trace::MAX_PACKETS
                    ),
                ));
            }
            cx.on_switch(move |sw| sw.trace_start(count, port.as_deref(), filter))?;
            Ok(Value::Null)
        }
        Request::Capture { .. } => Err(ApiError::new(
            ErrorCode::BadRequest,
            "capture streams pcap on its own connection; send it as a socket request",
        )),
        Request::TraceStop => {
            cx.engine
                .call(|sw| sw.trace_stop())
                .map_err(|_| stopped())?;
            Ok(Value::Null)
        }
        Request::TraceShow => {
            let ((armed, left, packets), names) = cx
                .engine
                .call(|sw| (sw.trace_read(), sw.names()))
                .map_err(|_| stopped())?;
            let packets: Vec<Value> = packets
                .iter()
                .map(|p| {
                    json!({
                        "number": p.number,
                        "at_us": p.at_us,
                        "events": p.events,
                        "lines": describe(&p.events, &names, false),
                        "truncated": p.truncated,
                    })
                })
                .collect();
            // Events name ports and bridges by id: the names, by id.
            Ok(json!({
                "armed": armed,
                "left": left,
                "packets": packets,
                "port_names": names.0,
                "bridge_names": names.1,
            }))
        }
        Request::TracePacket { port, packet } => {
            let (traced, names) = cx
                .engine
                .call(move |sw| (sw.trace_spec(&port, &packet), sw.names()))
                .map_err(|_| stopped())?;
            let traced = traced.map_err(switch_error)?;
            let lines = describe(&traced.events, &names, true);
            let verdict = verdict(&traced.events, &names);
            Ok(json!({
                "events": traced.events,
                "lines": lines,
                "verdict": verdict,
                "port_names": names.0,
                "bridge_names": names.1,
            }))
        }
        other => Err(misrouted(&other)),
    }
}

/// Port and bridge names by id, as [`Switch::names`] gives them.
type Names = (Vec<Option<String>>, Vec<Option<String>>);

fn name_of(names: &[Option<String>], id: usize) -> String {
    name_at(names, id).map_or_else(|| format!("#{id}"), str::to_string)
}

/// Trace events in words.
fn describe(events: &[Event], names: &Names, dry: bool) -> Vec<String> {
    let port = |p: u16| name_of(&names.0, usize::from(p));
    let bridge = |b: u16| name_of(&names.1, usize::from(b));
    events
        .iter()
        .map(|event| {
            Described {
                event,
                port: &port,
                bridge: &bridge,
                dry,
            }
            .to_string()
        })
        .collect()
}

/// The outcome of a dry-run trace, in a line.
fn verdict(events: &[Event], names: &Names) -> String {
    let out: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::Tx { port } => Some(name_of(&names.0, usize::from(*port))),
            _ => None,
        })
        .collect();
    let dropped = events.iter().find_map(|e| match e {
        Event::Drop { reason } => Some(*reason),
        _ => None,
    });
    let routed = events.iter().any(|e| {
        matches!(
            e,
            Event::L2 {
                out: dataplane_trace::L2Out::Router,
                ..
            }
        )
    });
    let fragmented = events.iter().find_map(|e| match e {
        Event::Fragmented { count, mtu } => Some((*count, *mtu)),
        _ => None,
    });
    match (dropped, out.is_empty(), routed) {
        (Some(r), _, _) => format!("dropped: {} ({})", r.name(), r.help()),
        (None, true, true) if fragmented.is_some() => {
            let (count, mtu) = fragmented.unwrap_or_default();
            format!("would leave in {count} fragments (MTU {mtu})")
        }
        (None, false, _) => format!("would leave by {}", out.join(", ")),
        (None, true, true) => {
            "taken by the router (answered, or waiting for ARP or a neighbour solicitation)"
                .to_string()
        }
        (None, true, false) => "goes nowhere: no other port of the bridge to take it".to_string(),
    }
}
