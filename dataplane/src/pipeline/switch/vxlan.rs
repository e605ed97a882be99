//! VXLAN ports' remote VTEPs: the flood list and static remote MACs
//! (`fdb append|add MAC dev vx0 dst A`), and their ageing.

use super::*;

impl Switch {
    /// The VXLAN port `port`.
    fn vxlan_port(&mut self, port: &str) -> Result<PortId, SwitchError> {
        let id = self.existing_port(port)?;
        let slot = self.ports[usize::from(id)].as_mut().expect("exists");
        if slot.port.as_vxlan_mut().is_none() {
            return Err(SwitchError::NotVxlan(port.to_string()));
        }
        Ok(id)
    }

    /// `fdb append 00:00:00:00:00:00 dev PORT dst VTEP` adds a VTEP to the
    /// flood list; `fdb add MAC dev PORT dst VTEP` puts MAC at VTEP for
    /// good (and on the port, in the bridge's FDB).
    pub fn fdb_vxlan_add(
        &mut self,
        mac: Mac,
        port: &str,
        vtep: Ipv4Addr,
    ) -> Result<(), SwitchError> {
        let id = self.vxlan_port(port)?;
        if mac == Mac([0; 6]) {
            let v = self.ports[usize::from(id)]
                .as_mut()
                .expect("exists")
                .port
                .as_vxlan_mut();
            v.expect("a VXLAN port").flood_add(vtep);
            log_change!(self, op = "fdb_add", dev = port, dst:% = vtep; "fdb: flood list of {port} + {vtep}");
            return Ok(());
        }
        self.fdb_add(mac, port, None)?;
        let v = self.ports[usize::from(id)]
            .as_mut()
            .expect("exists")
            .port
            .as_vxlan_mut();
        v.expect("a VXLAN port").remote_add(mac, vtep);
        log_change!(self, op = "fdb_add", mac:% = mac, dev = port, dst:% = vtep; "fdb: {mac} dev {port} dst {vtep}");
        Ok(())
    }

    /// Takes a VTEP off the flood list (all-zeros MAC) or a remote MAC off
    /// the port (and the bridge's FDB).
    pub fn fdb_vxlan_del(
        &mut self,
        mac: Mac,
        port: &str,
        vtep: Option<Ipv4Addr>,
    ) -> Result<(), SwitchError> {
        let id = self.vxlan_port(port)?;
        let v = self.ports[usize::from(id)]
            .as_mut()
            .expect("exists")
            .port
            .as_vxlan_mut();
        let v = v.expect("a VXLAN port");
        let gone = if mac == Mac([0; 6]) {
            vtep.is_some_and(|t| v.flood_del(t))
        } else {
            v.remote_del(mac)
        };
        if mac != Mac([0; 6]) {
            let _ = self.fdb_del(mac, port, None);
        }
        if !gone {
            return Err(SwitchError::NoSuchEntry {
                mac,
                bridge: port.to_string(),
            });
        }
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
