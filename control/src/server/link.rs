//! `link` requests: ports and bridges, and `stats`.

use super::*;

/// Carries out a request of this object (the dispatcher sends it here).
pub(super) fn handle(req: Request, cx: &Cx) -> Result<Value, ApiError> {
    match req {
        Request::LinkShow { name } => {
            let (mut ports, mut bridges) = cx
                .engine
                .call(|sw| {
                    sw.refresh_links();
                    (sw.ports(), sw.bridges())
                })
                .map_err(|_| stopped())?;
            if let Some(name) = name {
                ports.retain(|p| p.name == name);
                bridges.retain(|b| b.name == name);
                if ports.is_empty() && bridges.is_empty() {
                    return Err(ApiError::new(
                        ErrorCode::NotFound,
                        format!("{name}: no such port or bridge"),
                    ));
                }
            }
            Ok(to_value(LinkShow { ports, bridges }))
        }
        Request::Stats => Ok(to_value(
            cx.engine.call(|sw| sw.stats()).map_err(|_| stopped())?,
        )),
        Request::LinkAdd {
            name,
            kind: LinkKind::Bridge,
            master,
            ageing_time,
        } => {
            if master.is_some() {
                return Err(ApiError::new(
                    ErrorCode::Invalid,
                    "a bridge cannot have a master",
                ));
            }
            port::sys::check_ifname(&name).map_err(port_error)?;
            cx.on_switch(move |sw| {
                sw.add_bridge(&name).and_then(|_| match ageing_time {
                    Some(secs) => sw.set_ageing(&name, secs).inspect_err(|_| {
                        let _ = sw.del_bridge(&name);
                    }),
                    None => Ok(()),
                })
            })?;
            Ok(Value::Null)
        }
        Request::LinkAdd {
            name,
            kind,
            master,
            ageing_time,
        } => {
            if ageing_time.is_some() {
                return Err(ApiError::new(
                    ErrorCode::Invalid,
                    "ageing_time is a bridge setting",
                ));
            }
            let kind = if kind == LinkKind::Tap {
                PortKind::Tap
            } else {
                PortKind::Afpacket
            };
            // Cheap checks first, so a doomed request does not open anything.
            free_name(cx, &name)?;
            let port = port::open(kind, &name, cx.opts).map_err(port_error)?;
            add_port(cx, port, master)
        }
        Request::LinkAddVxlan {
            name,
            id,
            local,
            remote,
            dstport,
            master,
        } => {
            port::sys::check_ifname(&name).map_err(port_error)?;
            free_name(cx, &name)?;
            let cfg = port::vxlan::VxlanConfig {
                vni: id,
                local,
                remote,
                dstport,
            };
            let port = port::vxlan::VxlanPort::open(&name, cfg).map_err(port_error)?;
            add_port(cx, Box::new(port), master)
        }
        Request::LinkAddVlan { name, link, id } => {
            port::sys::check_ifname(&name).map_err(port_error)?;
            cx.on_switch(move |sw| sw.add_vlan_iface(&name, &link, id).map(drop))?;
            Ok(Value::Null)
        }
        Request::LinkSet { .. } if req.link_set_problem().is_some() => {
            let why = match req.link_set_problem() {
                Some(LinkSetProblem::MasterAndNomaster) => "give master or nomaster, not both",
                _ => {
                    "link_set needs master, nomaster, ageing_time, mtu, rp_filter, redirects, ra, \
                     ra_lifetime, rdnss, ra_valid_lft, ra_preferred_lft, vlan_filtering or \
                     group_fwd_mask"
                }
            };
            Err(ApiError::new(ErrorCode::BadRequest, why))
        }
        req @ Request::LinkSet { .. } => set(req, cx),
        Request::LinkDel { name } => {
            let bridge = name.clone();
            let removed = cx.on_switch(move |sw| {
                if sw.has_bridge(&name) {
                    sw.del_bridge(&name).map(|()| None)
                } else {
                    sw.del_port(&name).map(Some).map_err(|e| match e {
                        SwitchError::NoSuchPort(n) => SwitchError::NoSuchLink(n),
                        e => e,
                    })
                }
            })?;
            // Closing the port waits on the kernel: do it here, not on the
            // forwarding thread.
            drop(removed);
            // A bridge's DHCP server goes with it.
            cx.dhcp.del(&bridge);
            Ok(Value::Null)
        }
        other => Err(misrouted(&other)),
    }
}

/// `link set`: a port's bridge, a bridge's settings, its router
/// interface's.
fn set(req: Request, cx: &Cx) -> Result<Value, ApiError> {
    let Request::LinkSet {
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
    } = req
    else {
        return Err(misrouted(&req));
    };
    cx.on_switch(move |sw| {
        let mut r = Ok(());
        if master.is_some() || nomaster {
            r = sw.set_master(&name, master.as_deref());
        }
        if let (Ok(()), Some(mask)) = (&r, group_fwd_mask) {
            r = sw.set_group_fwd_mask(&name, mask);
        }
        if let (Ok(()), Some(on)) = (&r, vlan_filtering) {
            r = sw.set_vlan_filtering(&name, on);
        }
        if let (Ok(()), Some(secs)) = (&r, ageing_time) {
            r = sw.set_ageing(&name, secs);
        }
        if let (Ok(()), Some(mtu)) = (&r, mtu) {
            r = sw.set_mtu(&name, mtu);
        }
        if r.is_ok() && (rp_filter.is_some() || redirects.is_some()) {
            r = sw.set_policy(&name, rp_filter, redirects);
        }
        let change = RaChange {
            on: ra,
            lifetime: ra_lifetime,
            rdnss,
            valid_lft: ra_valid_lft,
            preferred_lft: ra_preferred_lft,
        };
        if r.is_ok() && !change.is_empty() {
            r = sw.set_ra(&name, change);
        }
        r
    })?;
    Ok(Value::Null)
}

/// Refuses a name a port or bridge has.
fn free_name(cx: &Cx, name: &str) -> Result<(), ApiError> {
    let taken = name.to_string();
    if cx
        .engine
        .call(move |sw| sw.has_link(&taken))
        .map_err(|_| stopped())?
    {
        return Err(switch_error(SwitchError::Exists(name.to_string())));
    }
    Ok(())
}

/// Adds an opened port to the switch; a rejected one is closed here, on
/// this thread.
fn add_port(cx: &Cx, port: Box<dyn port::Port>, master: Option<String>) -> Result<Value, ApiError> {
    let added = cx
        .engine
        .call(move |sw| sw.add_port(port, master.as_deref()).map(drop))
        .map_err(|_| stopped())?;
    added.map_err(|rejected| switch_error(rejected.error))?;
    Ok(Value::Null)
}
