//! VXLAN ports' remote VTEPs: the flood list and static remote MACs
//! (`fdb append|add MAC dev vx0 dst A`), and their ageing.

use super::*;
use crate::port::vxlan::VxlanPort;

impl Switch {
    /// The VXLAN port called `port`.
    fn vxlan_mut(&mut self, port: &str) -> Result<&mut VxlanPort, SwitchError> {
        let id = self.existing_port(port)?;
        self.ports[usize::from(id)]
            .as_mut()
            .and_then(|s| s.port.as_vxlan_mut())
            .ok_or_else(|| SwitchError::NotVxlan(port.to_string()))
    }

    /// `fdb append 00:00:00:00:00:00 dev PORT dst VTEP` adds a VTEP to the
    /// flood list; `fdb add MAC dev PORT dst VTEP` puts MAC at VTEP for
    /// good, in the port's own table (iproute2's `self` entries: the
    /// bridge learns MAC on the port once it speaks, and floods to the
    /// port until then).
    pub fn fdb_vxlan_add(
        &mut self,
        mac: Mac,
        port: &str,
        vtep: Ipv4Addr,
    ) -> Result<(), SwitchError> {
        let v = self.vxlan_mut(port)?;
        if mac == Mac([0; 6]) {
            v.flood_add(vtep);
            log_change!(self, op = "fdb_add", dev = port, dst:% = vtep; "fdb: flood list of {port} + {vtep}");
        } else {
            v.remote_add(mac, vtep);
            log_change!(self, op = "fdb_add", mac:% = mac, dev = port, dst:% = vtep; "fdb: {mac} dev {port} dst {vtep}");
        }
        Ok(())
    }

    /// Takes a VTEP off the flood list (the all-zeros MAC) or a remote MAC
    /// off the port.
    pub fn fdb_vxlan_del(
        &mut self,
        mac: Mac,
        port: &str,
        vtep: Option<Ipv4Addr>,
    ) -> Result<(), SwitchError> {
        let v = self.vxlan_mut(port)?;
        let gone = if mac == Mac([0; 6]) {
            vtep.is_some_and(|t| v.flood_del(t))
        } else {
            v.remote_del(mac)
        };
        if !gone {
            return Err(SwitchError::NoSuchEntry {
                mac,
                bridge: port.to_string(),
            });
        }
        log_change!(self, op = "fdb_del", mac:% = mac, dev = port; "fdb: {mac} deleted from {port}");
        Ok(())
    }

    /// Gives the router interface of `bridge`, and of its VLAN interfaces,
    /// the MTU its VXLAN ports leave for inner packets (the underlay's less
    /// the 50 bytes of encapsulation; at most the default 1500): routed
    /// packets too big for the tunnel get "fragmentation needed" (or are
    /// fragmented) at the router, not dropped in the port. As the Linux
    /// bridge follows its ports' MTU: an MTU that was set stays; without
    /// VXLAN ports the interface goes back to 1500.
    pub(super) fn follow_vxlan_mtu(&mut self, bridge: BridgeId) {
        let Some(br) = self.bridges[usize::from(bridge)].as_ref() else {
            return;
        };
        if let Some((parent, _)) = br.vlan_of {
            return self.follow_vxlan_mtu(parent);
        }
        let mtu = br
            .members
            .iter()
            .filter_map(|&p| self.ports[usize::from(p)].as_ref()?.port.as_vxlan())
            .map(|v| v.inner_mtu())
            .min()
            .map_or(crate::ip4::router::DEFAULT_MTU, |m| {
                m.min(usize::from(crate::ip4::router::DEFAULT_MTU)) as u16
            });
        let ifaces: Vec<BridgeId> = std::iter::once(bridge)
            .chain(br.vlan_ifaces.iter().map(|&(_, i)| i))
            .collect();
        for b in ifaces {
            let set = self.bridges[usize::from(b)]
                .as_ref()
                .is_none_or(|x| x.mtu_set);
            let now = self.router.iface(b).map(|i| i.mtu);
            if set || now.is_none() || now == Some(mtu) {
                continue;
            }
            if self.router.set_mtu(b, u32::from(mtu)).is_ok() {
                let name = self.bridge_name(b).to_string();
                log_change!(self, op = "bridge_set", bridge = name.as_str(), mtu;
                    "bridge {name}: mtu {mtu}, from its VXLAN ports");
            }
        }
    }

    /// Ages the remote MACs VXLAN ports learned, with their bridge's
    /// ageing time (housekeeping, once a second).
    pub(super) fn age_vxlan(&mut self) {
        for slot in self.ports.iter_mut().flatten() {
            let ageing = slot
                .bridge
                .and_then(|b| self.bridges[usize::from(b)].as_ref())
                .map_or(u64::from(self.config.ageing_time), |b| {
                    u64::from(b.ageing_time)
                });
            if let Some(v) = slot.port.as_vxlan_mut() {
                v.age(ageing);
            }
        }
    }
}
