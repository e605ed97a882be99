//! The lease file: every pool's leases, so that clients keep their
//! addresses across a restart of patchbayd.
//!
//! JSON, written whole to `PATH.tmp`, synced, then renamed over `PATH`: a
//! crash leaves the old file or the new one, never half of one. A file
//! that cannot be read as leases is reported, renamed to `PATH.corrupt`
//! and left for a person to look at; the daemon starts with no leases.

use super::leases::Lease;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where leases go unless `--dhcp-leases` says.
pub const DEFAULT_PATH: &str = "/var/lib/patchbay/dhcp.leases";

#[derive(Debug, Serialize, Deserialize)]
struct File {
    version: u32,
    /// Bridge, lease.
    leases: Vec<(String, Lease)>,
}

/// What reading the lease file gave.
#[derive(Debug, Default)]
pub struct Loaded {
    pub leases: Vec<(String, Lease)>,
    /// Where a corrupt file was put aside, and why it was.
    pub corrupt: Option<(PathBuf, String)>,
}

/// Reads the lease file (none yet: no leases).
pub fn load(path: &Path) -> std::io::Result<Loaded> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::default()),
        Err(e) => return Err(e),
    };
    match serde_json::from_slice::<File>(&text) {
        Ok(f) if f.version == 1 => Ok(Loaded {
            leases: f.leases,
            corrupt: None,
        }),
        Ok(f) => set_aside(path, format!("lease file version {}, not 1", f.version)),
        Err(e) => set_aside(path, e.to_string()),
    }
}

fn set_aside(path: &Path, why: String) -> std::io::Result<Loaded> {
    let aside = path.with_extension("corrupt");
    std::fs::rename(path, &aside)?;
    Ok(Loaded {
        leases: Vec::new(),
        corrupt: Some((aside, why)),
    })
}

/// Writes the leases atomically (a new file renamed over the old one).
pub fn save(path: &Path, leases: Vec<(String, Lease)>) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let text =
        serde_json::to_vec_pretty(&File { version: 1, leases }).map_err(std::io::Error::other)?;
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&text)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::leases::LeaseState;
    use patchbay_dataplane::wire::Mac;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("pb-leases-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn leases_survive_a_round_trip_and_corrupt_files_are_set_aside() {
        let d = dir();
        let path = d.join("sub/dhcp.leases");
        assert!(load(&path).unwrap().leases.is_empty(), "no file yet");
        let lease = Lease {
            ip: "10.0.0.100".parse().unwrap(),
            mac: Mac([2, 0, 0, 0, 0, 1]),
            client_id: Some("01020000000001".into()),
            hostname: Some("h1".into()),
            state: LeaseState::Bound,
            expires: 1234,
        };
        save(&path, vec![("br0".into(), lease.clone())]).unwrap();
        assert!(!path.with_extension("tmp").exists());
        assert_eq!(
            load(&path).unwrap().leases,
            vec![("br0".to_string(), lease)]
        );
        std::fs::write(&path, b"{\"version\": 1, \"leases\": [garbage").unwrap();
        let l = load(&path).unwrap();
        assert!(l.leases.is_empty());
        let (aside, why) = l.corrupt.unwrap();
        assert!(aside.exists() && !path.exists(), "{why}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
