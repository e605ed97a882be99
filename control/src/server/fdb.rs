//! `fdb` requests: the forwarding database of each bridge.

use super::*;
use patchbay_dataplane::wire::Mac;

/// Carries out a request of this object (the dispatcher sends it here).
pub(super) fn handle(req: Request, cx: &Cx) -> Result<Value, ApiError> {
    match req {
        Request::FdbShow { link } => {
            let l = link.clone();
            let (rows, known) = cx
                .engine
                .call(move |sw| (sw.fdb_snapshot(), l.as_ref().is_none_or(|l| sw.has_link(l))))
                .map_err(|_| stopped())?;
            if let (Some(l), false) = (&link, known) {
                return Err(ApiError::new(
                    ErrorCode::NotFound,
                    format!("{l}: no such port or bridge"),
                ));
            }
            let rows = rows.finish();
            let rows: Vec<_> = match link {
                Some(l) => rows
                    .into_iter()
                    .filter(|r| r.port == l || r.bridge == l)
                    .collect(),
                None => rows,
            };
            Ok(to_value(rows))
        }
        Request::FdbAdd {
            mac,
            dev,
            dst: Some(vtep),
            ..
        } => {
            cx.on_switch(move |sw| sw.fdb_vxlan_add(mac, &dev, vtep))?;
            Ok(Value::Null)
        }
        Request::FdbAdd {
            mac,
            dev,
            replace,
            vlan,
            dst: None,
        } => {
            if !mac.is_unicast() {
                return Err(ApiError::new(
                    ErrorCode::Invalid,
                    format!("{mac}: static entries must be unicast MACs"),
                ));
            }
            let other = cx.on_switch(move |sw| {
                sw.static_fdb_port(mac, &dev, vlan).and_then(|p| match p {
                    Some(p) if p != dev && !replace => Ok(Some(p)),
                    _ => sw.fdb_add(mac, &dev, vlan).map(|()| None),
                })
            })?;
            if let Some(p) = other {
                return Err(ApiError::new(
                    ErrorCode::Exists,
                    format!("{mac}: a static entry on port {p}; use 'patchbay fdb replace'"),
                ));
            }
            Ok(Value::Null)
        }
        Request::FdbDel {
            mac,
            dev,
            dst,
            vlan: _,
        } if dst.is_some() || mac == Mac([0; 6]) => {
            cx.on_switch(move |sw| sw.fdb_vxlan_del(mac, &dev, dst))?;
            Ok(Value::Null)
        }
        Request::FdbDel { mac, dev, vlan, .. } => {
            cx.on_switch(move |sw| sw.fdb_del(mac, &dev, vlan))?;
            Ok(Value::Null)
        }
        Request::FdbFlush { link, statics } => {
            let n = cx.on_switch(move |sw| sw.fdb_flush(link.as_deref(), statics))?;
            Ok(json!(n))
        }

        other => Err(misrouted(&other)),
    }
}
