//! The VLAN parts of a config file: bridges' VLAN filtering and
//! link-local group forwarding, VLAN interfaces, ports' VLANs, and the
//! VLAN of static FDB entries.

use super::*;

impl Checker<'_> {
    /// A `[[bridge]]`'s VLAN side: whether it is a VLAN interface (its
    /// bridge and VLAN, each pair once: `seen`), and its group_fwd_mask.
    pub(super) fn bridge_vlans(
        &self,
        span: &Range<usize>,
        b: &BridgeCfg,
        f: &File,
        seen: &mut HashSet<(String, u16)>,
    ) -> Result<(Option<(String, u16)>, u16), ConfigError> {
        let vlan = self.vlan_iface(span, b, f)?;
        if let Some((link, id)) = &vlan {
            if !seen.insert((link.clone(), *id)) {
                let m = format!(
                    "bridge {}: VLAN {id} of {link} has an interface already",
                    b.name
                );
                return Err(self.key_err(span, "id", m));
            }
        }
        let mask = b.group_fwd_mask.unwrap_or(0);
        if let Err(e) = GroupFwdMask::new(mask) {
            let m = format!("bridge {}: {e}", b.name);
            return Err(self.key_err(span, "group_fwd_mask", m));
        }
        Ok((vlan, mask))
    }

    /// For a `[[bridge]]` with `link` and `id`, a VLAN interface: the
    /// bridge it is on (another `[[bridge]]`, with VLAN filtering) and its
    /// VLAN (2 to 4094: 1 is the bridge's own).
    fn vlan_iface(
        &self,
        span: &Range<usize>,
        b: &BridgeCfg,
        f: &File,
    ) -> Result<Option<(String, u16)>, ConfigError> {
        let (link, id) = match (&b.link, b.id) {
            (None, None) => return Ok(None),
            (Some(l), Some(id)) => (l, id),
            (Some(_), None) => {
                let m = format!("bridge {}: a VLAN interface needs its 'id' too", b.name);
                return Err(self.key_err(span, "link", m));
            }
            (None, Some(_)) => {
                let m = format!("bridge {}: a VLAN interface needs its 'link' too", b.name);
                return Err(self.key_err(span, "id", m));
            }
        };
        let why = if !(2..=4094).contains(&id) {
            Some((
                "id",
                format!("VLAN {id}: a VLAN interface is on VLAN 2 to 4094 (1 is {link}'s own)"),
            ))
        } else if b.ageing_time.is_some()
            || b.vlan_filtering.is_some()
            || b.group_fwd_mask.is_some()
        {
            let m = format!("ageing_time, vlan_filtering and group_fwd_mask are {link}'s");
            Some(("link", m))
        } else {
            let parent = f
                .bridges
                .iter()
                .map(|p| p.get_ref())
                .find(|p| p.name == *link);
            match parent {
                Some(p) if p.link.is_some() => {
                    Some(("link", format!("{link} is a VLAN interface itself")))
                }
                Some(p) if p.vlan_filtering == Some(true) => None,
                Some(_) => Some((
                    "link",
                    format!("bridge {link} needs vlan_filtering = true for VLAN interfaces"),
                )),
                None => Some((
                    "link",
                    format!("no bridge '{link}' (add a [[bridge]] with name = \"{link}\")"),
                )),
            }
        };
        match why {
            Some((key, m)) => Err(self.key_err(span, key, format!("bridge {}: {m}", b.name))),
            None => Ok(Some((link.clone(), id))),
        }
    }

    /// A `[[port]]`'s VLANs (`["10 pvid untagged", "20-29"]`); VLAN 1,
    /// untagged, as PVID if it lists none.
    pub(super) fn port_vlans(
        &self,
        span: &Range<usize>,
        p: &PortCfg,
    ) -> Result<PortVlans, ConfigError> {
        Ok(match &p.vlans {
            None => PortVlans::default(),
            Some(_) if p.bridge.is_none() => {
                return Err(self.key_err(
                    span,
                    "vlans",
                    format!(
                        "port {}: VLANs are a bridge port's; give it a bridge",
                        p.name
                    ),
                ))
            }
            Some(list) => {
                let mut vlans = PortVlans::none();
                for text in list {
                    let (vids, pvid, untagged) = parse_vlan_words(text).map_err(|e| {
                        self.key_err(span, "vlans", format!("port {}: {e}", p.name))
                    })?;
                    for v in vids {
                        vlans.add(Vid::new(v).expect("parsed"), pvid, untagged);
                    }
                }
                vlans
            }
        })
    }

    /// The VLAN of a static FDB entry on a port of bridge `master`: none
    /// without VLAN filtering, else the one given or the port's PVID.
    pub(super) fn fdb_vlan(
        &self,
        span: &Range<usize>,
        e: &FdbCfg,
        master: &str,
        ports: &[PortState],
        bridges: &Bridges,
    ) -> Result<Option<u16>, ConfigError> {
        let filtering = bridges
            .list
            .iter()
            .any(|b| b.name == master && b.vlan_filtering);
        let pvid = ports
            .iter()
            .find(|p| p.name == e.dev)
            .and_then(|p| p.vlans.iter().find(|m| m.pvid))
            .map(|m| m.vid.get());
        Ok(match (filtering, e.vlan) {
            (false, None) => None,
            (false, Some(_)) => {
                return Err(self.key_err(
                    span,
                    "vlan",
                    format!(
                        "fdb {}: bridge {master} has no VLAN filtering (vlan_filtering = \
                         true)",
                        e.mac
                    ),
                ))
            }
            (true, v) => {
                let vid = v.or(pvid);
                let Some(vid) = vid.filter(|&v| Vid::new(v).is_ok()) else {
                    return Err(self.key_err(
                        span,
                        "vlan",
                        format!(
                            "fdb {}: a VLAN from 1 to 4094 (port {} has no PVID to take)",
                            e.mac, e.dev
                        ),
                    ));
                };
                Some(vid)
            }
        })
    }
}

impl Checker<'_> {
    /// A `[[port]]`'s VXLAN settings: with `kind = "vxlan"`, `vni` and
    /// `local` at least; with another kind, none.
    pub(super) fn port_vxlan(
        &self,
        span: &Range<usize>,
        p: &PortCfg,
    ) -> Result<Option<patchbay_dataplane::pipeline::VxlanState>, ConfigError> {
        let given = p.vni.is_some()
            || p.local.is_some()
            || p.remote.is_some()
            || p.dstport.is_some()
            || !p.flood.is_empty()
            || !p.remotes.is_empty();
        if p.kind != PortKind::Vxlan {
            if given {
                let m = format!("port {}: vni, local, remote, dstport, flood and remotes are for kind = \"vxlan\"", p.name);
                return Err(self.key_err(span, "kind", m));
            }
            return Ok(None);
        }
        let (Some(vni), Some(local)) = (p.vni, p.local) else {
            let m = format!(
                "port {}: a VXLAN port needs vni and local (its underlay address)",
                p.name
            );
            return Err(self.key_err(span, "kind", m));
        };
        if vni > patchbay_dataplane::wire::vxlan::VNI_MAX {
            let m = format!("port {}: vni {vni}: 24 bits at most (16777215)", p.name);
            return Err(self.key_err(span, "vni", m));
        }
        Ok(Some(patchbay_dataplane::pipeline::VxlanState {
            config: patchbay_dataplane::port::vxlan::VxlanConfig {
                vni,
                local,
                remote: p.remote,
                dstport: p
                    .dstport
                    .unwrap_or(patchbay_dataplane::wire::vxlan::VXLAN_PORT),
            },
            flood: p.flood.clone(),
            statics: p.remotes.iter().map(|r| (r.mac, r.dst)).collect(),
        }))
    }
}
