//! What the control plane can read of the switch: plain, serializable
//! copies made between batches.

use crate::counters::BridgeCounters;
use crate::port::{LinkState, PortKind};
use crate::wire::Mac;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A port and its counters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PortInfo {
    pub name: String,
    pub kind: PortKind,
    pub master: Option<String>,
    pub state: LinkState,
    /// Times the interface was seen going down or away.
    pub link_down_events: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub drops: u64,
    pub drops_by_reason: BTreeMap<String, u64>,
}

/// A bridge, its ports and what it did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BridgeInfo {
    pub name: String,
    pub ports: Vec<String>,
    pub ageing_time: u32,
    pub fdb_entries: usize,
    pub counters: BridgeCounters,
}

/// One FDB entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FdbRow {
    pub mac: Mac,
    pub port: String,
    pub bridge: String,
    /// Seconds since the source was last seen; `None` for static entries.
    pub age: Option<u32>,
    #[serde(rename = "static")]
    pub is_static: bool,
}

/// Everything `patchbay stats` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatsInfo {
    pub ports: Vec<PortInfo>,
    pub bridges: Vec<BridgeInfo>,
    pub fdb_entries: usize,
    pub fdb_max: usize,
    pub uptime_secs: u64,
}
