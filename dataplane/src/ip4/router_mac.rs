//! The router MAC of a bridge: the same after a restart of patchbayd in the
//! same network namespace, so hosts' ARP caches stay right and traffic
//! through the router (NAT included) resumes as soon as the ports are open
//! again; different for every namespace and bridge, so two patchbayd joined
//! on one segment never share one.

use crate::wire::Mac;
use std::os::unix::fs::MetadataExt;

/// FNV-1a, 64 bits: stable across builds and releases, unlike std's
/// hasher, which a MAC kept across restarts needs.
fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(seed, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A seed for this machine, network namespace and daemon: the machine id
/// (systemd's /etc/machine-id, where there is one), the host name, the
/// namespace's inode, which stays as long as the namespace does, and
/// `instance`, which tells apart two patchbayd in one namespace (their
/// control sockets' paths).
pub fn seed(instance: &str) -> u64 {
    let machine = std::fs::read("/etc/machine-id").unwrap_or_default();
    let host = std::fs::read("/proc/sys/kernel/hostname").unwrap_or_default();
    let netns = std::fs::metadata("/proc/self/ns/net").map_or(0, |m| m.ino());
    let h = fnv1a(0xcbf2_9ce4_8422_2325, &machine);
    let h = fnv1a(fnv1a(h, &host), &netns.to_le_bytes());
    fnv1a(h, instance.as_bytes())
}

/// The router MAC of bridge `name` under `seed`: locally administered,
/// unicast (IEEE 802 U/L and I/G bits), 46 bits of hash.
pub fn for_bridge(seed: u64, name: &str) -> Mac {
    let h = fnv1a(seed, name.as_bytes()).to_be_bytes();
    Mac([(h[0] & 0xfc) | 0x02, h[1], h[2], h[3], h[4], h[5]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_per_name_and_seed_locally_administered_unicast() {
        let seed = seed("/run/patchbay/patchbayd.sock");
        assert_eq!(seed, super::seed("/run/patchbay/patchbayd.sock"));
        assert_ne!(seed, super::seed("/tmp/other.sock"));
        let (a, b) = (for_bridge(seed, "br0"), for_bridge(seed, "br1"));
        assert_eq!(a, for_bridge(seed, "br0"));
        assert_ne!(a, b);
        assert_ne!(a, for_bridge(seed ^ 1, "br0"));
        assert!(a.is_unicast() && a.0[0] & 0x02 != 0);
    }
}
