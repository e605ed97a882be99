//! ARP on the router's interfaces: answers, learning, requests, probes and announcements (RFC 826, RFC 5227), and the packets waiting for an answer.

use super::*;

impl L3<'_> {
    /// arp-input: answers requests for our addresses and learns from ARP
    /// that concerns us (RFC 826; RFC 5227 probes are answered too, so the
    /// prober sees the conflict). Returns the drop reason, if it is dropped.
    pub fn arp_input<const T: bool>(
        &mut self,
        eth: &[u8],
        bridge: BridgeId,
        now: u64,
    ) -> Option<DropReason> {
        self.router.counters.arp_in += 1;
        let Ok(arp) = ArpRepr::parse(&eth[ETHERNET_HDR_LEN..]) else {
            return Some(DropReason::ArpMalformed);
        };
        let iface = self.router.iface(bridge)?;
        let our_mac = iface.mac;
        if !arp.sender_mac.is_unicast() || arp.sender_mac == our_mac {
            return Some(DropReason::ArpMalformed);
        }
        let for_us = iface.addrs.iter().any(|a| a.addr == arp.target_ip);
        let sender_on_link = !arp.sender_ip.is_unspecified()
            && iface.addrs.iter().any(|a| a.contains(arp.sender_ip));
        let sender_is_ours = iface.addrs.iter().any(|a| a.addr == arp.sender_ip);
        trace!(
            T; self.trace,
            Event::Arp {
                request: arp.op == OP_REQUEST,
                sender_ip: arp.sender_ip,
                sender_mac: arp.sender_mac,
                target_ip: arp.target_ip,
                action: match (for_us, arp.op == OP_REQUEST) {
                    (true, true) => ArpAction::ReplySent,
                    (true, false) => ArpAction::Learned,
                    (false, _) => ArpAction::NotForUs,
                },
            }
        );
        if T && self.trace.dry {
            return None;
        }
        if sender_on_link && !sender_is_ours {
            // Learn only what is addressed to us (a request for our address,
            // or a reply); a gratuitous ARP refreshes an entry we already had.
            let create = for_us;
            let mut waiting = std::mem::take(&mut self.router.scratch);
            if (for_us || arp.is_gratuitous())
                && self.arp.confirm(
                    bridge,
                    arp.sender_ip,
                    arp.sender_mac,
                    now,
                    create,
                    &mut waiting,
                )
            {
                self.release_waiting(bridge, None, arp.sender_mac, &mut waiting);
            }
            self.router.scratch = waiting;
        }
        if for_us && arp.op == OP_REQUEST {
            let reply = ArpRepr {
                op: OP_REPLY,
                sender_mac: our_mac,
                sender_ip: arp.target_ip,
                target_mac: arp.sender_mac,
                target_ip: arp.sender_ip,
            };
            if self.emit_arp(bridge, arp.sender_mac, &reply) {
                self.router.counters.arp_replies_sent += 1;
            }
        }
        None
    }

    /// Sends packets that waited for `mac` on `bridge` (ARP's or NDP's),
    /// from the router MAC `src` if they do not have it yet.
    pub(crate) fn release_waiting(
        &mut self,
        bridge: BridgeId,
        src: Option<Mac>,
        mac: Mac,
        waiting: &mut Vec<u16>,
    ) {
        if !waiting.is_empty() {
            trace!(
                self.trace,
                Event::Released {
                    count: waiting.len() as u16,
                    mac,
                }
            );
        }
        for i in waiting.drain(..) {
            let mut eth = EthernetFrame::new_unchecked(&mut self.em.frame_mut(i)[L2..L3]);
            eth.set_dst(mac);
            if let Some(src) = src {
                eth.set_src(src);
            }
            self.em.send(
                i,
                EmitTo::Bridge {
                    bridge,
                    dst: mac,
                    except: None,
                },
            );
        }
    }

    pub(super) fn emit_arp(&mut self, bridge: BridgeId, dst: Mac, arp: &ArpRepr) -> bool {
        let Some(i) = self.em.alloc() else {
            return false;
        };
        let b = self.em.buf_mut(i);
        EthernetFrame::new_unchecked(&mut b[L2..L3]).emit(dst, arp.sender_mac, ETHERTYPE_ARP);
        arp.emit(&mut b[L3..L3 + ARP_LEN]);
        // Padded to the Ethernet minimum.
        b[L3 + ARP_LEN..L2 + ETHERNET_MIN_LEN].fill(0);
        self.em.set_len(i, L2 + ETHERNET_MIN_LEN);
        self.em.send(
            i,
            EmitTo::Bridge {
                bridge,
                dst,
                except: None,
            },
        );
        true
    }

    /// Broadcasts a request for `target` on `bridge`.
    pub(super) fn ask(&mut self, bridge: BridgeId, target: Ipv4Addr) {
        self.request(bridge, target, Mac::BROADCAST);
    }

    /// Asks `target` at the MAC it had, unicast (RFC 4861 7.3.3 PROBE).
    pub(super) fn probe(&mut self, bridge: BridgeId, target: Ipv4Addr, mac: Mac) {
        self.request(bridge, target, mac);
    }

    /// Sends a request for `target` to `to`.
    pub(super) fn request(&mut self, bridge: BridgeId, target: Ipv4Addr, to: Mac) {
        let Some(iface) = self.router.iface(bridge) else {
            return;
        };
        let Some(sender_ip) = iface.source_for(target) else {
            return;
        };
        let req = ArpRepr {
            op: OP_REQUEST,
            sender_mac: iface.mac,
            sender_ip,
            target_mac: Mac::ZERO,
            target_ip: target,
        };
        if self.emit_arp(bridge, to, &req) {
            self.router.counters.arp_requests_sent += 1;
        }
    }

    /// Announces every address of a bridge's router interface (a port of it
    /// came up: hosts behind it may have known another MAC, or none).
    pub fn announce_all(&mut self, bridge: BridgeId) {
        let addrs: Vec<Ipv4Addr> = match self.router.iface(bridge) {
            Some(i) => i.addrs.iter().map(|a| a.addr).collect(),
            None => return,
        };
        for ip in addrs {
            self.announce(bridge, ip);
        }
    }

    /// A gratuitous ARP (RFC 5227 announcement) for a new address: hosts
    /// that knew the address at another MAC (it moved from another bridge,
    /// or patchbayd restarted) learn the new one at once.
    pub(super) fn announce(&mut self, bridge: BridgeId, ip: Ipv4Addr) {
        let Some(iface) = self.router.iface(bridge) else {
            return;
        };
        let req = ArpRepr {
            op: OP_REQUEST,
            sender_mac: iface.mac,
            sender_ip: ip,
            target_mac: Mac::ZERO,
            target_ip: ip,
        };
        if self.emit_arp(bridge, Mac::BROADCAST, &req) {
            self.router.counters.arp_requests_sent += 1;
        }
    }

    /// Puts buffer `i` on the queue of an unresolved neighbour; a full
    /// queue lets its oldest packet go (RFC 1122 2.3.2.2: keep the latest).
    pub(super) fn enqueue(&mut self, bridge: BridgeId, ip: Ipv4Addr, i: u16) -> bool {
        match self.arp.queue(bridge, ip, i) {
            Ok(None) => true,
            Ok(Some(oldest)) => {
                self.em.free(oldest);
                self.router.counters.arp_queue_overflow += 1;
                true
            }
            Err(i) => {
                self.em.free(i);
                false
            }
        }
    }
}
