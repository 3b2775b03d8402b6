//! A data directory belongs to one chain and one key (issue 13 row 9): `chain-id.toml`,
//! written when the directory is first used, records the network id, the genesis hash and
//! the node's key id. A node started on the directory with another genesis, network or key
//! refuses, naming both values, instead of serving a foreign chain (and, with another key,
//! signing on top of another validator's vote history).

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// The file's name inside the data directory.
pub const FILE: &str = "chain-id.toml";

/// Format version of the file; a newer version is refused rather than misread.
const VERSION: u32 = 1;

/// What binds a data directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainId {
    /// Format version.
    pub version: u32,
    /// The genesis file's network id.
    pub network_id: u64,
    /// Hash of the genesis block (hex).
    pub genesis_hash: String,
    /// The node's consensus id (hex).
    pub key_id: String,
}

impl ChainId {
    /// The binding of a node with these values.
    pub fn new(network_id: u64, genesis_hash: String, key_id: String) -> ChainId {
        ChainId {
            version: VERSION,
            network_id,
            genesis_hash,
            key_id,
        }
    }
}

/// Records `ours` in `dir` if it holds no binding yet, or checks the one it holds.
pub fn bind(dir: &Path, ours: &ChainId) -> Result<()> {
    let path = dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return write_atomically(dir, ours);
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let theirs: ChainId = toml::from_str(&text).with_context(|| {
        format!(
            "{} is damaged; it records which chain and key this data directory belongs to. \
             Restore it, or start with an empty data directory",
            path.display()
        )
    })?;
    if theirs.version > VERSION {
        bail!(
            "{} has format version {}; this build reads version {VERSION}: use a newer build",
            path.display(),
            theirs.version
        );
    }
    let fix = "use the data directory made for this genesis and key, or point node.data_dir \
               to an empty directory";
    if theirs.network_id != ours.network_id {
        bail!(
            "data directory {} belongs to network {}, but the genesis file is for network {}; \
             {fix}",
            dir.display(),
            theirs.network_id,
            ours.network_id
        );
    }
    if theirs.genesis_hash != ours.genesis_hash {
        bail!(
            "data directory {} belongs to the chain with genesis hash {}, but the genesis file \
             has hash {}; {fix}",
            dir.display(),
            theirs.genesis_hash,
            ours.genesis_hash
        );
    }
    if theirs.key_id != ours.key_id {
        bail!(
            "data directory {} belongs to the node with key id {}, but node.key_file holds key \
             id {}; running one key from two directories, or two keys on one, risks \
             conflicting votes. {fix}",
            dir.display(),
            theirs.key_id,
            ours.key_id
        );
    }
    Ok(())
}

/// Temp file, fsync, rename, directory fsync: a crash leaves the old state or the new
/// one, never half a file.
fn write_atomically(dir: &Path, id: &ChainId) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let text = format!(
        "# Which chain and key this data directory belongs to (written once; do not edit).\n{}",
        toml::to_string(id).expect("plain fields serialize")
    );
    let tmp = dir.join(format!("{FILE}.tmp"));
    let path = dir.join(FILE);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(net: u64, genesis: &str, key: &str) -> ChainId {
        ChainId::new(net, genesis.into(), key.into())
    }

    #[test]
    fn data_directory_of_another_network_genesis_or_key_is_refused_naming_both() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("data");
        bind(&dir, &id(9, "aa", "k1")).unwrap();
        assert!(!dir.join(format!("{FILE}.tmp")).exists());
        bind(&dir, &id(9, "aa", "k1")).unwrap();
        let e = bind(&dir, &id(10, "aa", "k1")).unwrap_err().to_string();
        assert!(e.contains("network 9") && e.contains("network 10"), "{e}");
        let e = bind(&dir, &id(9, "bb", "k1")).unwrap_err().to_string();
        assert!(e.contains("aa") && e.contains("bb"), "{e}");
        let e = bind(&dir, &id(9, "aa", "k2")).unwrap_err().to_string();
        assert!(e.contains("k1") && e.contains("k2"), "{e}");
    }

    #[test]
    fn damaged_or_newer_binding_is_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(FILE), "garbage = [").unwrap();
        let e = format!("{:#}", bind(d.path(), &id(9, "aa", "k")).unwrap_err());
        assert!(e.contains("damaged"), "{e}");
        let newer = ChainId {
            version: 99,
            ..id(9, "aa", "k")
        };
        std::fs::write(d.path().join(FILE), toml::to_string(&newer).unwrap()).unwrap();
        let e = bind(d.path(), &id(9, "aa", "k")).unwrap_err().to_string();
        assert!(e.contains("version 99"), "{e}");
    }
}
