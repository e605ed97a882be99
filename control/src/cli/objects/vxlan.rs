//! `link add NAME type vxlan id N local A [remote B] [dstport P] [master BR]`.

use super::*;

pub(super) fn parse_link_add_vxlan(
    ctx: &str,
    name: String,
    w: &mut Words,
) -> Result<(Request, Output), String> {
    let (mut id, mut local, mut remote, mut dstport) = (None, None, None, None);
    let (mut master, mut nomaster) = (None, false);
    let addr = |what: &str, v: &str| {
        v.parse::<std::net::Ipv4Addr>()
            .map_err(|_| format!("{ctx}: {what} must be an IPv4 address, not '{v}'"))
    };
    while let Some(x) = w.next() {
        match x.as_str() {
            "type" => {
                w.value("type", "vxlan")?;
            }
            "id" | "vni" => {
                let v = w.value("id", "a VNI")?;
                let n = number(ctx, "id", &v)?;
                if n > patchbay_dataplane::wire::vxlan::VNI_MAX {
                    return Err(format!("{ctx}: id {n}: a VNI is 24 bits (0 to 16777215)"));
                }
                id = Some(n);
            }
            "local" => local = Some(addr("local", &w.value("local", "an address")?)?),
            "remote" => remote = Some(addr("remote", &w.value("remote", "an address")?)?),
            "dstport" => {
                let v = w.value("dstport", "a UDP port")?;
                dstport = Some(
                    v.parse::<u16>()
                        .map_err(|_| format!("{ctx}: dstport must be a UDP port, not '{v}'"))?,
                );
            }
            "master" => master = Some(w.value("master", "a bridge name")?),
            "nomaster" => nomaster = true,
            x => return Err(w.unexpected(x)),
        }
    }
    let id = id.ok_or_else(|| format!("{ctx}: missing 'id N' (the VNI)"))?;
    let local = local.ok_or_else(|| format!("{ctx}: missing 'local ADDRESS' (the underlay's)"))?;
    if master.is_some() && nomaster {
        return Err(format!("{ctx}: give master or nomaster, not both"));
    }
    if master.is_none() && !nomaster {
        master = Some(DEFAULT_BRIDGE.to_string());
    }
    let req = Request::LinkAddVxlan {
        name,
        id,
        local,
        remote,
        dstport: dstport.unwrap_or(patchbay_dataplane::wire::vxlan::VXLAN_PORT),
        master,
    };
    Ok((req, Output::Nothing))
}
