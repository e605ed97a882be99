//! `neigh` requests: the ARP cache.

use super::*;

/// Carries out a request of this object (the dispatcher sends it here).
pub(super) fn handle(req: Request, cx: &Cx) -> Result<Value, ApiError> {
    match req {
        Request::NeighShow { dev } => {
            let d = dev.clone();
            let (rows, known) = cx
                .engine
                .call(move |sw| (sw.neighbors(), d.as_ref().is_none_or(|d| sw.has_bridge(d))))
                .map_err(|_| stopped())?;
            if let (Some(d), false) = (&dev, known) {
                return Err(no_such_bridge(d));
            }
            let rows: Vec<_> = rows
                .into_iter()
                .filter(|r| dev.as_ref().is_none_or(|d| *d == r.dev))
                .collect();
            Ok(to_value(rows))
        }
        Request::NeighAdd {
            ip,
            mac,
            dev,
            replace,
        } => {
            if !mac.is_unicast() {
                return Err(ApiError::new(
                    ErrorCode::Invalid,
                    format!("{mac}: a neighbour's MAC must be unicast"),
                ));
            }
            let other = cx.on_switch(move |sw| {
                sw.permanent_neighbor(ip, &dev).and_then(|m| match m {
                    Some(m) if m != mac && !replace => Ok(Some(m)),
                    _ => sw.neigh_add(ip, mac, &dev).map(|()| None),
                })
            })?;
            if let Some(m) = other {
                return Err(ApiError::new(
                    ErrorCode::Exists,
                    format!("{ip}: a permanent entry is {m}; use 'patchbay neigh replace'"),
                ));
            }
            Ok(Value::Null)
        }
        Request::NeighDel { ip, dev } => {
            cx.on_switch(move |sw| sw.neigh_del(ip, &dev))?;
            Ok(Value::Null)
        }
        Request::NeighFlush { dev } => {
            let n = cx.on_switch(move |sw| sw.neigh_flush(dev.as_deref()))?;
            Ok(json!(n))
        }
        other => Err(misrouted(&other)),
    }
}
