//! `nat` requests: NAT rules and sessions.

use super::*;

/// Carries out a request of this object (the dispatcher sends it here).
pub(super) fn handle(req: Request, cx: &Cx) -> Result<Value, ApiError> {
    match req {
        Request::NatShow => Ok(to_value(
            cx.engine.call(|sw| sw.nat_rules()).map_err(|_| stopped())?,
        )),
        Request::NatAdd { rule } => {
            // Checked as a config file's rules are.
            let r = config::nat_rule(&rule)
                .map_err(|(_, m)| ApiError::new(ErrorCode::Invalid, format!("nat: {m}")))?;
            let id = cx.on_switch(move |sw| {
                sw.nat_add(r.action, r.src, &r.bridge, Some(r.ports), r.filtering)
            })?;
            Ok(json!(id))
        }
        Request::NatDel { id } => {
            cx.on_switch(move |sw| sw.nat_del(id))?;
            Ok(Value::Null)
        }
        Request::NatSessions => Ok(to_value(
            cx.engine
                .call(|sw| sw.nat_sessions())
                .map_err(|_| stopped())?,
        )),
        Request::NatSessionsFlush => Ok(json!(cx
            .engine
            .call(|sw| sw.nat_flush())
            .map_err(|_| stopped())?)),
        other => Err(misrouted(&other)),
    }
}
