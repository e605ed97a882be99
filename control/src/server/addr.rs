//! `addr` requests: router interfaces and their addresses.

use super::*;

/// Carries out a request of this object (the dispatcher sends it here).
pub(super) fn handle(req: Request, cx: &Cx) -> Result<Value, ApiError> {
    match req {
        Request::AddrShow { dev } => {
            let d = dev.clone();
            let (mut rows, known) = cx
                .engine
                .call(move |sw| (sw.addrs(), d.as_ref().is_none_or(|d| sw.has_bridge(d))))
                .map_err(|_| stopped())?;
            if let Some(d) = dev {
                if !known {
                    return Err(no_such_bridge(&d));
                }
                rows.retain(|r| r.dev == d);
            }
            Ok(to_value(rows))
        }
        Request::AddrAdd { addr, dev } => {
            cx.on_switch(move |sw| sw.addr_add(&dev, addr))?;
            Ok(Value::Null)
        }
        Request::AddrDel { addr, dev } => {
            cx.on_switch(move |sw| sw.addr_del(&dev, addr))?;
            Ok(Value::Null)
        }
        other => Err(misrouted(&other)),
    }
}
