//! Counters: what each port and bridge did, and every drop by its reason.
//!
//! A drop nobody can see is a bug: every place that discards a frame names a
//! [`DropReason`] and counts it against a port.

use serde::{Deserialize, Serialize};

/// A family of stages of the pipeline, as counters and metrics group them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Receiving and sending: rings, sockets, devices.
    Port,
    /// The bridge: learning, forwarding, flooding.
    L2,
    /// ARP: answering, resolving, the neighbour cache.
    Arp,
    /// IPv4: validation, local delivery, routing, fragmenting, ICMP errors.
    Ip4,
    /// IPv6: neighbour discovery, local delivery.
    Ip6,
    /// NAT: sessions, mappings, filtering.
    Nat,
}

impl Stage {
    /// Its name in metrics and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Port => "port",
            Stage::L2 => "l2",
            Stage::Arp => "arp",
            Stage::Ip4 => "ip4",
            Stage::Ip6 => "ip6",
            Stage::Nat => "nat",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

macro_rules! drop_reasons {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// Why a frame was discarded.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum DropReason {
            $(#[doc = $doc] $variant,)*
        }

        impl DropReason {
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            pub const COUNT: usize = DropReason::ALL.len();

            /// Short name used in `patchbay stats` and JSON.
            pub fn name(self) -> &'static str {
                match self {
                    $(DropReason::$variant => $name,)*
                }
            }

            /// What it means, in a sentence.
            pub fn help(self) -> &'static str {
                match self {
                    $(DropReason::$variant => $doc,)*
                }
            }

            /// The stage of the pipeline that drops for this reason.
            pub fn stage(self) -> Stage {
                use DropReason::*;
                match self {
                    Runt | Truncated | NoVlanRoom | RxRingFull | RxError | TxBusy | TxDown
                    | TxError => Stage::Port,
                    InvalidSrcMac | ReservedGroup | SamePort | NoBridge | VlanIngress | VlanNoPvid
                    | VlanEgress => Stage::L2,
                    ArpMalformed | ArpQueueFull | ArpUnresolved | ArpTableFull => Stage::Arp,
                    Ip6Malformed | Icmp6Malformed | NdInvalid | Ip6LocalUnsupported
                    | Ip6BadSource | Ip6NotForwarded | Ip6HopLimit | Ip6NoRoute | Ip6TooBig
                    | NdUnresolved => Stage::Ip6,
                    NatTableFull | NatNoPorts | NatFiltered | NatConflict | NatUntranslatable => {
                        Stage::Nat
                    }
                    _ => Stage::Ip4,
                }
            }

            /// The reason of a short name.
            pub fn from_name(name: &str) -> Option<DropReason> {
                DropReason::ALL.iter().copied().find(|r| r.name() == name)
            }
        }

        impl Serialize for DropReason {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> Deserialize<'de> for DropReason {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<DropReason, D::Error> {
                let name = String::deserialize(d)?;
                DropReason::from_name(&name)
                    .ok_or_else(|| serde::de::Error::custom(format!("unknown drop reason '{name}'")))
            }
        }
    };
}

drop_reasons! {
    Runt => "runt", "Shorter than a virtio-net header plus an Ethernet header.";
    Truncated => "truncated", "Larger than the receive buffer; only part of it was captured.";
    InvalidSrcMac => "invalid-src-mac", "Source MAC is multicast, broadcast or all zeros (802.1D 7.8).";
    ReservedGroup => "reserved-group", "Sent to 01:80:C2:00:00:0X, which a bridge must not forward (802.1D 7.12.6) unless its group_fwd_mask says so.";
    VlanIngress => "vlan-ingress", "The ingress port is not a member of the frame's VLAN (802.1Q 8.6.2 ingress filtering).";
    VlanNoPvid => "vlan-no-pvid", "Untagged or priority-tagged, on a port without a PVID (802.1Q 6.9).";
    VlanEgress => "vlan-egress", "The one port the destination was learned on is not in the frame's VLAN (802.1Q 8.6.4).";
    SamePort => "same-port", "Destination was learned on the ingress port; filtered (802.1D 7.7.1).";
    NoBridge => "no-bridge", "Ingress port is not attached to a bridge.";
    NoVlanRoom => "no-vlan-room", "No headroom to put an offloaded VLAN tag back into the frame.";
    RxRingFull => "rx-ring-full", "The kernel dropped it: the receive ring was full.";
    RxError => "rx-error", "The device failed to hand it over.";
    L3Unsupported => "l3-unsupported", "Sent to the router MAC, but not ARP, IPv4, or IPv6 the router answers itself (IPv6 is not forwarded yet).";
    ArpMalformed => "arp-malformed", "ARP that is not Ethernet/IPv4, too short, or from a bad sender.";
    ArpQueueFull => "arp-queue-full", "Waiting for ARP, and the neighbour's queue (or the buffer pool) was full.";
    ArpUnresolved => "arp-unresolved", "The next hop did not answer ARP.";
    ArpTableFull => "arp-table-full", "The ARP cache is at its limit.";
    Ip4BadVersion => "ip4-bad-version", "IPv4 frame whose version field is not 4 (RFC 1812 5.2.2).";
    Ip4BadLength => "ip4-bad-length", "IPv4 header or total length disagrees with the frame (RFC 1812 5.2.2).";
    Ip4BadChecksum => "ip4-bad-checksum", "IPv4 header checksum is wrong (RFC 1812 5.2.2).";
    Ip4BadSource => "ip4-bad-source", "Source address is multicast, broadcast (limited, or a subnet's directed broadcast), loopback, on network 0 or class E (RFC 1812 5.3.7).";
    Ip4OwnSource => "ip4-own-source", "Source address is one of the router's own: a spoof, wherever it comes in.";
    Ip4RpFilter => "ip4-rp-filter", "Fails the reverse-path check of the bridge it came in on (strict: the route back to the source leaves by another bridge; loose: there is none; RFC 3704).";
    Ip4SourceRoute => "ip4-source-route", "Carries a loose or strict source route option (dropped, as RFC 7126 4.3 advises and Linux does).";
    Ip4BadOption => "ip4-bad-option", "A malformed IP option; the sender gets a parameter problem (RFC 1812 5.2.5).";
    Ip4Reassembly => "ip4-reassembly", "A fragment of a datagram to the router that cannot be put together: malformed, overlapping another (its whole datagram goes), or longer than a buffer of the router's pool (9,004 bytes).";
    Ip4NotForwarded => "ip4-not-forwarded", "To a broadcast, multicast, loopback or 0.0.0.0/8 address, which the router never forwards.";
    Ip4TtlExpired => "ip4-ttl-expired", "TTL would reach 0 (RFC 1812 5.3.1); the sender gets an ICMP time exceeded.";
    Ip4NoRoute => "ip4-no-route", "No route to the destination; the sender gets an ICMP net unreachable.";
    Ip4FragNeeded => "ip4-frag-needed", "Larger than the egress MTU with DF set; the sender gets an ICMP fragmentation needed.";
    VxlanTooBig => "vxlan-too-big", "Too big for the VXLAN underlay's MTU once encapsulated; the outer packet is never fragmented (DF).";
    VxlanNoVtep => "vxlan-no-vtep", "No remote VTEP for the frame: unknown destination and an empty flood list.";
    VxlanVni => "vxlan-vni", "A VXLAN datagram for another VNI than the port's.";
    VxlanMalformed => "vxlan-malformed", "A datagram to the VXLAN port too short for the header, or with flags other than I (RFC 7348 5).";
    GsoUnsupported => "gso-unsupported", "A segmentation-offload frame of a kind patchbay cannot segment itself (UDP fragmentation offload), or broken offsets.";
    DhcpQueueFull => "dhcp-queue-full", "A DHCP message for the server, but its queue to the DHCP thread is full.";
    DhcpMalformed => "dhcp-malformed", "A DHCP message too long for the server's buffers.";
    Ip4LocalUnsupported => "ip4-local-unsupported", "To a router address, but not an echo request: TCP and UDP get a port unreachable (so 'connection refused'), other protocols a protocol unreachable, as from a host.";
    Ip6Malformed => "ip6-malformed", "IPv6 frame shorter than its header, whose version is not 6, or whose payload length disagrees with the frame (RFC 8200 3).";
    Icmp6Malformed => "icmp6-malformed", "ICMPv6 message to the router that is too short, has a bad checksum or an unknown shape (RFC 4443 2.3).";
    NdInvalid => "nd-invalid", "Neighbour discovery message that fails RFC 4861's checks: hop limit not 255, code not 0, a multicast target, or a DAD probe with a link-layer address (7.1.1).";
    Ip6LocalUnsupported => "ip6-local-unsupported", "To a router IPv6 address, but neither an echo request nor neighbour discovery: TCP and UDP get a port unreachable, other protocols a parameter problem (RFC 4443 3.1, 3.4), as from a host.";
    Ip6BadSource => "ip6-bad-source", "Source address is multicast, unspecified or loopback (RFC 4291 2.5.2, 2.7).";
    Ip6NotForwarded => "ip6-not-forwarded", "To or from a link-local address, or to a multicast, unspecified or loopback one, which the router never forwards (RFC 4291 2.5.6; a link-local sender gets beyond-scope, RFC 4443 3.1).";
    Ip6HopLimit => "ip6-hop-limit", "Hop limit would reach 0 (RFC 8200 3); the sender gets an ICMPv6 time exceeded.";
    Ip6NoRoute => "ip6-no-route", "No IPv6 route to the destination; the sender gets an ICMPv6 no route (RFC 4443 3.1).";
    Ip6TooBig => "ip6-too-big", "Larger than the egress MTU: IPv6 is never fragmented on the way; the sender gets a packet too big with the MTU (RFC 8200 5, RFC 8201).";
    NdUnresolved => "nd-unresolved", "The next hop did not answer neighbour solicitations (RFC 4861 7.3.3); the sender gets an ICMPv6 address unreachable (RFC 4443 3.1), as do the senders of the packets that waited for it.";
    NoBuffer => "no-buffer", "The pool of buffers for frames the router makes was empty.";
    NatTableFull => "nat-table-full", "A new NAT session did not fit in the session table.";
    NatNoPorts => "nat-no-ports", "No outside port left in the NAT rule's range.";
    NatFiltered => "nat-filtered", "Unsolicited: to a NAT address, with no session and no published port (RFC 4787 filtering).";
    NatConflict => "nat-conflict", "Its translation would be another session's: for a protocol without ports, another inside host already talks to that remote by it.";
    NatUntranslatable => "nat-untranslatable", "Covered by a source NAT rule, but NAT cannot translate it: ICMP that is neither a query nor an error about a session, or a first fragment too short for its ports (RFC 1858); dropped so no inside address leaks.";
    TxBusy => "tx-busy", "Egress device or socket buffer was full.";
    TxDown => "tx-down", "Egress interface is down or gone.";
    TxError => "tx-error", "Egress device refused the frame.";
}

/// Per-port counters. Bytes are Ethernet bytes (a GSO super-frame counts as
/// one packet of its full length).
#[derive(Debug, Clone)]
pub struct PortCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub drops: [u64; DropReason::COUNT],
}

impl Default for PortCounters {
    fn default() -> Self {
        PortCounters {
            rx_packets: 0,
            rx_bytes: 0,
            tx_packets: 0,
            tx_bytes: 0,
            drops: [0; DropReason::COUNT],
        }
    }
}

impl PortCounters {
    #[inline]
    pub fn drop(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }

    #[inline]
    pub fn drop_n(&mut self, reason: DropReason, n: u64) {
        self.drops[reason as usize] += n;
    }

    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// The non-zero drop counters by name.
    pub fn drops_by_reason(&self) -> Vec<(&'static str, u64)> {
        DropReason::ALL
            .iter()
            .filter(|r| self.drops[**r as usize] != 0)
            .map(|r| (r.name(), self.drops[*r as usize]))
            .collect()
    }
}

/// What a bridge did with the frames it saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BridgeCounters {
    /// Frames sent to one learned port.
    pub forwarded: u64,
    /// Frames flooded to every other port: broadcast, multicast, unknown unicast.
    pub flooded: u64,
    /// Of those, unicast frames to a MAC not (yet) in the FDB.
    pub unknown_unicast: u64,
    /// New FDB entries learned.
    pub learned: u64,
    /// Entries that moved to another port (a station move).
    pub moved: u64,
    /// Source MACs not learned because the FDB was full.
    pub learn_fdb_full: u64,
    /// Entries removed by ageing.
    pub aged: u64,
}
