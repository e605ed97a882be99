//! The DHCP servers' side of the switch: which router interfaces serve
//! DHCP, the queue to the DHCP thread, and its answers sent out.

use super::*;
use crate::ip4::dhcp::DhcpQueueEnd;
use crate::trace::DhcpKind;

/// A router interface as its DHCP server needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpIface {
    pub id: BridgeId,
    pub mac: Mac,
    pub addrs: Vec<Ipv4Net>,
}

/// What an answer is, for the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhcpAnswer {
    pub kind: DhcpKind,
    pub ip: Ipv4Addr,
    pub mac: Mac,
    pub secs: u32,
}

impl Switch {
    /// Makes the queue of DHCP messages; its other end goes to the DHCP
    /// thread. Until then no interface serves DHCP.
    pub fn dhcp_connect(&mut self) -> DhcpQueueEnd {
        self.router.dhcp.connect()
    }

    /// Turns the DHCP server of `bridge` (a bridge or VLAN interface) on or
    /// off; returns the interface as the server needs it (its MAC and
    /// IPv4 addresses: the server answers from one of them).
    pub fn dhcp_serve(&mut self, bridge: &str, on: bool) -> Result<DhcpIface, SwitchError> {
        let id = self.existing_bridge(bridge)?;
        self.router.dhcp.serve(id, on);
        log_change!(self, op = "dhcp_serve", bridge, on; "dhcp: server of {bridge} {}", if on { "on" } else { "off" });
        Ok(self.dhcp_iface(id))
    }

    /// Router interface `bridge` as a DHCP server needs it.
    pub fn dhcp_iface_of(&self, bridge: &str) -> Result<DhcpIface, SwitchError> {
        Ok(self.dhcp_iface(self.existing_bridge(bridge)?))
    }

    /// Router interface `id` as a DHCP server needs it.
    pub fn dhcp_iface(&self, id: BridgeId) -> DhcpIface {
        let iface = self.router.iface(id);
        DhcpIface {
            id,
            mac: iface.map_or(
                router_mac::for_bridge(self.mac_seed, self.bridge_name(id)),
                |i| i.mac,
            ),
            addrs: iface.map(|i| i.addrs.clone()).unwrap_or_default(),
        }
    }

    /// Sends a DHCP server's answer (`frame`: a virtio-net header and an
    /// Ethernet frame) out of `port` of router interface `iface`, or to
    /// every port of its segment if it is a broadcast.
    pub fn dhcp_send(&mut self, iface: BridgeId, port: PortId, frame: &[u8], answer: DhcpAnswer) {
        let Some(eth) = frame.get(VNET_HDR_LEN..) else {
            return;
        };
        let dst = crate::wire::EthernetFrame::new_checked(eth).map_or(Mac::BROADCAST, |e| e.dst());
        if self.trace.armed {
            self.trace.begin_made(eth);
            self.trace.record(Event::DhcpAnswer {
                kind: answer.kind,
                ip: answer.ip,
                mac: answer.mac,
                secs: answer.secs,
            });
            if !dst.is_broadcast() {
                self.trace.record(Event::Tx { port });
            }
            self.trace.end();
        }
        let Some(i) = self.em.copy(frame) else {
            return;
        };
        let to = if dst.is_broadcast() {
            EmitTo::Bridge {
                bridge: iface,
                dst,
                except: None,
            }
        } else {
            EmitTo::Port(port, iface)
        };
        self.em.send(i, to);
        self.flush_emitted();
    }
}
