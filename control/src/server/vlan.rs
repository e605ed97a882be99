//! `vlan` requests: the VLANs of bridge ports (802.1Q).

use super::*;
use crate::api::{VlanEntry, VlanRow};

/// Carries out a request of this object (the dispatcher sends it here).
pub(super) fn handle(req: Request, cx: &Cx) -> Result<Value, ApiError> {
    match req {
        Request::VlanShow { dev } => {
            let (rows, filtering) = cx
                .engine
                .call(move |sw| {
                    let filtering: Vec<(String, bool)> = sw
                        .bridges()
                        .into_iter()
                        .map(|b| (b.name, b.vlan_filtering))
                        .collect();
                    (sw.vlans(dev.as_deref()), filtering)
                })
                .map_err(|_| stopped())?;
            let rows = rows.map_err(switch_error)?;
            let rows: Vec<VlanRow> = rows
                .into_iter()
                .map(|(port, bridge, vlans)| VlanRow {
                    vlan_filtering: filtering.iter().any(|(b, f)| *b == bridge && *f),
                    port,
                    bridge,
                    vlans: vlans
                        .into_iter()
                        .map(|v| VlanEntry {
                            vid: v.vid.get(),
                            pvid: v.pvid,
                            untagged: v.untagged,
                        })
                        .collect(),
                })
                .collect();
            Ok(to_value(rows))
        }
        Request::VlanAdd {
            dev,
            vid,
            vid_end,
            pvid,
            untagged,
        } => {
            let vids = vid..=vid_end.unwrap_or(vid);
            cx.on_switch(move |sw| sw.vlan_add(&dev, vids, pvid, untagged))?;
            Ok(Value::Null)
        }
        Request::VlanDel { dev, vid, vid_end } => {
            let vids = vid..=vid_end.unwrap_or(vid);
            cx.on_switch(move |sw| sw.vlan_del(&dev, vids))?;
            Ok(Value::Null)
        }
        other => Err(misrouted(&other)),
    }
}
