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
