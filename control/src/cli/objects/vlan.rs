//! `vlan add|del|show`, in `bridge vlan`'s words, and VLAN ids.

use super::*;

/// One VLAN id, 1 to 4094.
pub(super) fn vid(ctx: &str, v: &str) -> Result<u16, String> {
    let r = parse_vid_range(v).map_err(|e| format!("{ctx}: {e}"))?;
    if r.start() != r.end() {
        return Err(format!("{ctx}: one VLAN id here, not a range"));
    }
    Ok(*r.start())
}

/// `vlan add|del|show`, in `bridge vlan`'s words.
pub(in crate::cli) fn parse_vlan(
    command: &str,
    w: &mut Words,
) -> Result<(Request, Output), String> {
    let ctx = w.context.clone();
    let (mut dev, mut vids, mut pvid, mut untagged) = (None, None, false, false);
    while let Some(x) = w.next() {
        match x.as_str() {
            "dev" => dev = Some(w.value("dev", "a port name")?),
            "vid" => {
                let v = w.value("vid", "a VLAN id or range (10, 10-20)")?;
                vids = Some(parse_vid_range(&v).map_err(|e| format!("{ctx}: {e}"))?);
            }
            "pvid" if command == "add" => pvid = true,
            "untagged" if command == "add" => untagged = true,
            // iproute2's words for a port's own VLANs, which is all there is.
            "master" => {}
            x => return Err(w.unexpected(x)),
        }
    }
    let req = match command {
        "show" | "list" | "ls" => {
            if vids.is_some() {
                return Err(format!("{ctx}: 'vid' is for add and del"));
            }
            return Ok((Request::VlanShow { dev }, Output::Vlans));
        }
        "add" | "del" | "delete" => {
            let dev = dev.ok_or_else(|| format!("{ctx}: missing 'dev PORT'"))?;
            let vids = vids.ok_or_else(|| format!("{ctx}: missing 'vid N' or 'vid N-M'"))?;
            let (vid, vid_end) = (
                *vids.start(),
                (vids.start() != vids.end()).then_some(*vids.end()),
            );
            if command == "add" {
                if pvid && vid_end.is_some() {
                    return Err(format!("{ctx}: pvid takes one VLAN, not a range"));
                }
                Request::VlanAdd {
                    dev,
                    vid,
                    vid_end,
                    pvid,
                    untagged,
                }
            } else {
                Request::VlanDel { dev, vid, vid_end }
            }
        }
        c => return Err(format!("vlan: unknown command '{c}' (try: show, add, del)")),
    };
    Ok((req, Output::Nothing))
}
