//! Neighbours: which MAC each next hop has. The ARP cache ([`cache`]) is
//! the IPv4 one; the IPv6 neighbour cache (NDP) is the same code over IPv6
//! addresses ([`NdCache`]). The
//! router's ARP stages (answering, resolving, queueing) are in
//! `ip4/router/arp.rs` and `ip4/router/forward.rs`, and use this cache as a
//! peer.

pub mod cache;

pub use cache::{ArpCache, Ask, NdCache, NeighAddr, NeighState, Neighbor, NeighborCache, Resolve};
