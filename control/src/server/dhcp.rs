//! `dhcp` requests: each bridge's DHCP server, its reservations and leases.

use super::*;
use crate::dhcp::pool::Reservation;
use crate::dhcp::service::server_address;
use crate::dhcp::Pool;

/// Carries out a request of this object (the dispatcher sends it here).
pub(super) fn handle(req: Request, cx: &Cx) -> Result<Value, ApiError> {
    match req {
        Request::DhcpAdd { pool } => {
            serve(cx, pool)?;
            Ok(Value::Null)
        }
        Request::DhcpDel { bridge } => {
            if cx.dhcp.pool(&bridge).is_none() {
                return Err(no_pool(&bridge));
            }
            let b = bridge.clone();
            // The bridge may be gone already: its server stops either way.
            let _ = cx
                .engine
                .call(move |sw| sw.dhcp_serve(&b, false))
                .map_err(|_| stopped())?;
            cx.dhcp.del(&bridge);
            Ok(Value::Null)
        }
        Request::DhcpHostAdd {
            bridge,
            mac,
            ip,
            name,
        } => {
            let mut pool = cx.dhcp.pool(&bridge).ok_or_else(|| no_pool(&bridge))?;
            pool.hosts.retain(|h| h.mac != mac);
            pool.hosts.push(Reservation { mac, ip, name });
            serve(cx, pool)?;
            Ok(Value::Null)
        }
        Request::DhcpHostDel { bridge, mac } => {
            let mut pool = cx.dhcp.pool(&bridge).ok_or_else(|| no_pool(&bridge))?;
            let before = pool.hosts.len();
            pool.hosts.retain(|h| h.mac != mac);
            if pool.hosts.len() == before {
                return Err(ApiError::new(
                    ErrorCode::NotFound,
                    format!("dhcp {bridge}: no reservation for {mac}"),
                ));
            }
            serve(cx, pool)?;
            Ok(Value::Null)
        }
        Request::DhcpShow => Ok(json!({
            "pools": cx.dhcp.pools(),
            "counters": cx.dhcp.counters(),
        })),
        Request::DhcpLeases => {
            let rows: Vec<Value> = cx
                .dhcp
                .leases()
                .into_iter()
                .map(|(bridge, l)| {
                    let mut v = to_value(l);
                    v["bridge"] = json!(bridge);
                    v
                })
                .collect();
            Ok(Value::Array(rows))
        }
        other => Err(misrouted(&other)),
    }
}

/// Checks `pool` against its bridge's router interface and serves it.
fn serve(cx: &Cx, pool: Pool) -> Result<(), ApiError> {
    let b = pool.bridge.clone();
    let iface = cx.on_switch(move |sw| sw.dhcp_iface_of(&b))?;
    let net = server_address(&pool, &iface).or_else(|| iface.addrs.first().copied());
    pool.check(net)
        .map_err(|m| ApiError::new(ErrorCode::Invalid, m))?;
    let b = pool.bridge.clone();
    let iface = cx.on_switch(move |sw| sw.dhcp_serve(&b, true))?;
    cx.dhcp.add(pool, iface);
    Ok(())
}

fn no_pool(bridge: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("dhcp {bridge}: no DHCP server (add one with 'patchbay dhcp add {bridge} range A-B ...')"),
    )
}
