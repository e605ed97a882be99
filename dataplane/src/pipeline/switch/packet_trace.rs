//! The packet trace: real packets as they pass, and made-up ones (`trace packet`).

use super::*;
use crate::wire::ETHERNET_HDR_LEN;

impl Switch {
    /// Arms a trace of the next `count` packets in on `port` (any if
    /// `None`) that match `filter`.
    pub fn trace_start(
        &mut self,
        count: u32,
        port: Option<&str>,
        filter: Filter,
    ) -> Result<(), SwitchError> {
        let port = port.map(|p| self.existing_port(p)).transpose()?;
        self.trace.start(count, port, filter);
        self.trace.vxlan = self
            .ports
            .iter()
            .map(|s| s.as_ref()?.port.as_vxlan().map(|v| v.config().vni))
            .collect();
        log::info!(op = "trace_start", count; "trace: the next {count} packets");
        Ok(())
    }

    pub fn trace_stop(&mut self) {
        self.trace.stop();
    }

    /// The trace so far: whether it is armed, packets still to take, and
    /// what it recorded (shared, not copied: reading a full trace takes
    /// microseconds here; it is formatted elsewhere, with
    /// [`Switch::names`]).
    pub fn trace_read(&self) -> (bool, u32, Vec<std::sync::Arc<TracedPacket>>) {
        let t = &self.trace;
        (t.armed, t.left(), t.packets().to_vec())
    }

    /// The names of ports and of bridges, by id (`None` for free slots).
    pub fn names(&self) -> (Vec<Option<String>>, Vec<Option<String>>) {
        (
            self.ports
                .iter()
                .map(|p| p.as_ref().map(|s| s.port.name().to_string()))
                .collect(),
            self.bridges
                .iter()
                .map(|b| b.as_ref().map(|b| b.name.clone()))
                .collect(),
        )
    }

    /// Builds the packet `spec` describes (from the MAC the ARP cache has
    /// for its source, to the router MAC of the port's bridge, or to the
    /// destination's own MAC when it is on the source's subnet and known,
    /// unless it says otherwise) and runs it with [`Switch::trace_packet`].
    pub fn trace_spec(
        &mut self,
        port: &str,
        spec: &PacketSpec,
    ) -> Result<TracedPacket, SwitchError> {
        let rx = self.existing_port(port)?;
        let bridge = self.ports[rx as usize].as_ref().and_then(|s| s.bridge);
        // The MAC the router's neighbour caches have for an address.
        let known = |b: BridgeId, ip: IpAddr| {
            let n = match ip {
                IpAddr::V4(a) => self.arp.get(b, a),
                IpAddr::V6(a) => self.router6.nd.get(b, a),
            };
            n.filter(|n| n.state.has_mac()).map(|n| n.mac)
        };
        let smac = bridge
            .and_then(|b| known(b, spec.src))
            .unwrap_or(Mac([0x02, 0, 0, 0, 0, 0x01]));
        // A host sends to an address on its own subnet directly (to the MAC
        // the router's neighbour cache has for it), anywhere else to the
        // router.
        let on_link = |b: BridgeId| match (spec.src, spec.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => self
                .router
                .iface(b)
                .is_some_and(|i| i.addrs.iter().any(|a| a.contains(s) && a.contains(d))),
            (IpAddr::V6(s), IpAddr::V6(d)) => self
                .router6
                .iface(b)
                .is_some_and(|i| i.addrs.iter().any(|a| a.contains(s) && a.contains(d))),
            _ => false,
        };
        let dmac = bridge
            .filter(|&b| on_link(b))
            .and_then(|b| known(b, spec.dst))
            .or_else(|| {
                bridge.and_then(|b| match spec.dst {
                    IpAddr::V4(_) => self.router.router_mac(b),
                    IpAddr::V6(_) => self.router6.router_mac(b),
                })
            })
            .unwrap_or(Mac::BROADCAST);
        let mut frame = spec.build(smac, dmac).map_err(SwitchError::BadFrame)?;
        self.trace_packet(port, &mut frame)
    }

    /// Runs `frame` (a virtio-net header and an Ethernet frame) as if it came
    /// in on `port`, through the live tables, without sending it or changing
    /// anything the switch learned; returns what each stage decided.
    pub fn trace_packet(
        &mut self,
        port: &str,
        frame: &mut [u8],
    ) -> Result<TracedPacket, SwitchError> {
        let rx = self.existing_port(port)?;
        if frame.len() < VNET_HDR_LEN + ETHERNET_HDR_LEN {
            return Err(SwitchError::BadFrame(
                "shorter than an Ethernet header".into(),
            ));
        }
        let now = self.now();
        let now_ms = self.started.elapsed().as_millis() as u64;
        let Switch {
            ports,
            bridges,
            fdb,
            router,
            router6,
            arp,
            nat,
            em,
            trace,
            vlans,
            ..
        } = self;
        let saved_counters = (router.counters().clone(), nat.counters.clone());
        let saved_trace = trace.begin_dry();
        trace.begin(rx, &frame[VNET_HDR_LEN..]);
        let bridge = ports[rx as usize]
            .as_ref()
            .and_then(|s| s.bridge)
            .filter(|&b| bridges[b as usize].is_some());
        match bridge {
            None => trace.record(Event::Drop {
                reason: DropReason::NoBridge,
            }),
            Some(b) => {
                let router_mac = router.router_mac(b).or(router6.router_mac(b));
                let l3 = L3 {
                    router,
                    router6,
                    arp,
                    nat,
                    em,
                    trace,
                };
                let mut path = path::Path {
                    bridges,
                    fdb,
                    vlans,
                    l3,
                    router_mac,
                    now,
                    now_ms,
                };
                // Not the port's counters: a made-up frame counts nowhere.
                let mut counters = PortCounters::default();
                path.frame_in::<true>(rx, b, frame, &mut counters, false, &mut path::Nowhere);
            }
        }
        for (q, slot) in ports.iter().enumerate() {
            if let Some(v) = slot.as_ref().and_then(|s| s.port.as_vxlan()) {
                trace.resolve_vxlan(q as PortId, |dst| v.trace_to(dst));
            }
        }
        trace.end();
        let packet = trace.end_dry(saved_trace);
        router.restore_counters(saved_counters.0);
        nat.counters = saved_counters.1;
        Ok(packet)
    }
}
