//! The DHCP thread: takes the messages the forwarding thread queued,
//! answers them from each bridge's pool, sends the answers through the
//! engine, and keeps the lease file.

use super::file;
use super::leases::{Lease, Leases};
use super::pool::Pool;
use super::server::{answer, decode, Decision, Iface, Reply};
use patchbay_dataplane::ip4::dhcp::{DhcpFrame, DhcpQueueEnd, CLIENT_PORT, SERVER_PORT};
use patchbay_dataplane::pipeline::{DhcpAnswer, DhcpIface, EngineHandle};
use patchbay_dataplane::trace::DhcpKind;
use patchbay_dataplane::wire::checksum;
use patchbay_dataplane::wire::ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
use patchbay_dataplane::wire::udp::UdpPacket;
use patchbay_dataplane::wire::{EthernetFrame, Ipv4Net, ETHERNET_HDR_LEN, VNET_HDR_LEN};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the servers did, for `dhcp show` and stats.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpCounters {
    pub offers: u64,
    pub acks: u64,
    pub naks: u64,
    pub declines: u64,
    pub releases: u64,
    pub informs: u64,
    /// DISCOVERs left unanswered: no address left.
    pub exhausted: u64,
    /// Dropped: too short, bad magic cookie, bad options, not a request.
    pub malformed: u64,
    pub ignored: u64,
}

/// A pool with the interface it answers from and its leases.
struct Served {
    pool: Pool,
    iface: DhcpIface,
    leases: Leases,
}

/// The state the DHCP thread and the control requests share.
pub struct State {
    served: BTreeMap<String, Served>,
    pub counters: DhcpCounters,
    path: PathBuf,
    /// Leases read at start, for pools not made yet.
    pending: Vec<(String, Lease)>,
}

/// The DHCP service of the daemon.
pub struct Service {
    pub state: Mutex<State>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Service {
    /// A service whose leases are kept at `path` (read now: a corrupt file
    /// is reported and set aside).
    pub fn new(path: PathBuf) -> Arc<Service> {
        let pending = match file::load(&path) {
            Ok(l) => {
                if let Some((aside, why)) = l.corrupt {
                    log::error!(
                        "dhcp: lease file {} is corrupt ({why}); set aside as {}, starting \
                         without leases",
                        path.display(),
                        aside.display()
                    );
                }
                l.leases
            }
            Err(e) => {
                log::error!(
                    "dhcp: reading lease file {}: {e}; starting without leases",
                    path.display()
                );
                Vec::new()
            }
        };
        Arc::new(Service {
            state: Mutex::new(State {
                served: BTreeMap::new(),
                counters: DhcpCounters::default(),
                path,
                pending,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts serving `pool` from `iface` (replacing the bridge's pool);
    /// `pool` was checked against the interface's addresses.
    pub fn add(&self, pool: Pool, iface: DhcpIface) {
        let mut st = self.lock();
        let mut leases = st
            .served
            .remove(&pool.bridge)
            .map(|s| s.leases)
            .unwrap_or_default();
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut st.pending)
            .into_iter()
            .partition(|(b, _)| *b == pool.bridge);
        st.pending = rest;
        leases.restore(&pool, mine.into_iter().map(|(_, l)| l));
        let bridge = pool.bridge.clone();
        st.served.insert(
            bridge,
            Served {
                pool,
                iface,
                leases,
            },
        );
        st.save();
    }

    /// Stops serving `bridge`; its leases go.
    pub fn del(&self, bridge: &str) -> Option<Pool> {
        let mut st = self.lock();
        let gone = st.served.remove(bridge).map(|s| s.pool);
        st.save();
        gone
    }

    /// The pool of `bridge`.
    pub fn pool(&self, bridge: &str) -> Option<Pool> {
        self.lock().served.get(bridge).map(|s| s.pool.clone())
    }

    /// Every pool.
    pub fn pools(&self) -> Vec<Pool> {
        self.lock()
            .served
            .values()
            .map(|s| s.pool.clone())
            .collect()
    }

    /// Every lease: bridge, lease.
    pub fn leases(&self) -> Vec<(String, Lease)> {
        let st = self.lock();
        st.served
            .iter()
            .flat_map(|(b, s)| s.leases.iter().map(move |l| (b.clone(), l.clone())))
            .collect()
    }

    pub fn counters(&self) -> DhcpCounters {
        self.lock().counters.clone()
    }

    /// Runs the DHCP thread: answers what `queue` brings until the engine
    /// is gone.
    pub fn spawn(
        self: &Arc<Self>,
        queue: DhcpQueueEnd,
        engine: EngineHandle,
    ) -> std::io::Result<()> {
        let me = self.clone();
        std::thread::Builder::new()
            .name("dhcp".into())
            .spawn(move || me.run(queue, engine))
            .map(drop)
    }

    fn run(&self, queue: DhcpQueueEnd, engine: EngineHandle) {
        loop {
            match queue.frames.recv_timeout(Duration::from_secs(5)) {
                Ok(f) => {
                    // A message that trips the decoder up is a dropped
                    // message, never a dead DHCP thread.
                    let out =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.handle(&f)))
                            .unwrap_or_else(|_| {
                                log::error!("dhcp: a message made the server panic; dropped");
                                self.lock().counters.malformed += 1;
                                None
                            });
                    let _ = queue.free.send(f.frame);
                    if let Some((frame, answer)) = out {
                        let (iface, port) = (f.iface, f.port);
                        let sent = engine.call(move |sw| sw.dhcp_send(iface, port, &frame, answer));
                        if sent.is_err() {
                            return;
                        }
                    }
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    let mut st = self.lock();
                    let t = now();
                    for s in st.served.values_mut() {
                        s.leases.tidy(t);
                    }
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Answers one queued message: the frame to send and what it is.
    fn handle(&self, f: &DhcpFrame) -> Option<(Vec<u8>, DhcpAnswer)> {
        let mut st = self.lock();
        let Some(payload) = udp_payload(&f.frame) else {
            st.counters.malformed += 1;
            return None;
        };
        let msg = match decode(payload) {
            Ok(m) => m,
            Err(e) => {
                st.counters.malformed += 1;
                log::debug!("dhcp: dropped a malformed message: {e}");
                return None;
            }
        };
        let State {
            served, counters, ..
        } = &mut *st;
        let s = served.values_mut().find(|s| s.iface.id == f.iface)?;
        let Some(net) = server_address(&s.pool, &s.iface) else {
            counters.ignored += 1;
            return None;
        };
        let iface = Iface {
            net,
            mac: s.iface.mac,
        };
        let (decision, reply) = answer(&s.pool, &mut s.leases, iface, &msg, now());
        let bridge = s.pool.bridge.clone();
        let answer = count(counters, &decision);
        match &decision {
            Decision::Exhausted { .. } => log::warn!("dhcp {bridge}: {decision}"),
            Decision::Ignored { .. } => log::debug!("dhcp {bridge}: {decision}"),
            _ => log::info!("dhcp {bridge}: {decision}"),
        }
        if !matches!(decision, Decision::Ignored { .. } | Decision::Inform { .. }) {
            st.save();
        }
        let reply = reply?;
        Some((frame(iface, &reply), answer?))
    }
}

impl State {
    /// Writes the lease file; a failure is logged (the leases stay).
    fn save(&mut self) {
        let mut all: Vec<(String, Lease)> = self
            .served
            .iter()
            .flat_map(|(b, s)| s.leases.iter().map(move |l| (b.clone(), l.clone())))
            .collect();
        all.extend(self.pending.iter().cloned());
        if let Err(e) = file::save(&self.path, all) {
            log::error!("dhcp: writing lease file {}: {e}", self.path.display());
        }
    }
}

/// Counts a decision; the answer's description for the trace, if it has
/// an answer.
fn count(c: &mut DhcpCounters, d: &Decision) -> Option<DhcpAnswer> {
    let a = |kind, ip, mac, secs| {
        Some(DhcpAnswer {
            kind,
            ip,
            mac,
            secs,
        })
    };
    match *d {
        Decision::Offer { ip, mac, secs } => {
            c.offers += 1;
            a(DhcpKind::Offer, ip, mac, secs)
        }
        Decision::Ack { ip, mac, secs } => {
            c.acks += 1;
            a(DhcpKind::Ack, ip, mac, secs)
        }
        Decision::Nak { ip, mac, .. } => {
            c.naks += 1;
            a(DhcpKind::Nak, ip, mac, 0)
        }
        Decision::Inform { ip, mac } => {
            c.informs += 1;
            a(DhcpKind::Inform, ip, mac, 0)
        }
        Decision::Declined { .. } => {
            c.declines += 1;
            None
        }
        Decision::Released { .. } => {
            c.releases += 1;
            None
        }
        Decision::Exhausted { .. } => {
            c.exhausted += 1;
            None
        }
        Decision::Ignored { .. } => {
            c.ignored += 1;
            None
        }
    }
}

/// The interface address a pool answers from: the one whose subnet holds
/// the pool's range.
pub fn server_address(pool: &Pool, iface: &DhcpIface) -> Option<Ipv4Net> {
    iface
        .addrs
        .iter()
        .copied()
        .find(|a| a.contains(pool.first) && a.contains(pool.last))
}

/// The UDP payload of a queued frame (IPv4, UDP to port 67), checked.
fn udp_payload(eth: &[u8]) -> Option<&[u8]> {
    let l3 = eth.get(ETHERNET_HDR_LEN..)?;
    let ip = Ipv4Packet::new_checked(l3).ok()?;
    let (hl, total) = (ip.header_len(), ip.total_len());
    let l4 = l3.get(hl..total)?;
    let udp = UdpPacket::new_checked(l4)?;
    if udp.dst_port() != SERVER_PORT {
        return None;
    }
    let len = usize::from(udp.len());
    l4.get(8..len.max(8))
}

/// The answer as a frame (virtio-net header, Ethernet, IPv4, UDP from port
/// 67 to 68 with its checksum).
fn frame(iface: Iface, reply: &Reply) -> Vec<u8> {
    let udp_len = 8 + reply.payload.len();
    let repr = Ipv4Repr {
        src: iface.net.addr,
        dst: reply.dst_ip,
        protocol: IpProtocol::Udp,
        ttl: 64,
        tos: 0,
        ident: 0,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
        payload_len: udp_len,
    };
    let mut f = vec![0u8; VNET_HDR_LEN + ETHERNET_HDR_LEN + repr.buffer_len()];
    let eth = &mut f[VNET_HDR_LEN..];
    EthernetFrame::new_unchecked(&mut eth[..ETHERNET_HDR_LEN]).emit(
        reply.dst_mac,
        iface.mac,
        patchbay_dataplane::wire::ethernet::ETHERTYPE_IPV4,
    );
    let ip = &mut eth[ETHERNET_HDR_LEN..];
    repr.emit(&mut Ipv4Packet::new_unchecked(&mut ip[..]));
    let hl = repr.buffer_len() - udp_len;
    let l4 = &mut ip[hl..];
    UdpPacket::new_unchecked(&mut l4[..]).emit(SERVER_PORT, CLIENT_PORT, udp_len as u16);
    l4[8..].copy_from_slice(&reply.payload);
    let sum = checksum::pseudo_header(repr.src, repr.dst, IpProtocol::Udp, udp_len as u16);
    let c = checksum::finish(checksum::add(sum, l4));
    UdpPacket::new_unchecked(&mut l4[..]).set_checksum(if c == 0 { 0xffff } else { c });
    f
}
