//! `[storage]`: how much finalized history a node keeps.

use super::{bad, ConfigError, StateSyncSection};
use serde::{Deserialize, Serialize};

/// `[storage]`
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    /// Finalized heights kept below the finalized head; older blocks are deleted by
    /// compaction (whole segments at a time, so somewhat more is kept). 0 keeps every
    /// block. A pruned node answers requests for older blocks as it does for unknown ones,
    /// so a node that needs them joins by state sync instead.
    pub retain_finalized_heights: u64,
    /// Size of one storage segment file in KiB: the unit compaction deletes.
    pub segment_kib: u64,
    /// How often the storage stage looks for segments to delete, in milliseconds (between
    /// commits, never inside one).
    pub compact_interval_ms: u64,
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            retain_finalized_heights: 0,
            segment_kib: 64 << 10,
            compact_interval_ms: 10_000,
        }
    }
}

impl StorageSection {
    /// Checks the values serde cannot, naming the key. Retention needs snapshots: a node
    /// that deletes blocks must still serve what replaces them, so it keeps at least two
    /// snapshot intervals (the newest snapshot and the blocks after it up to the head,
    /// whose first blocks are the snapshot's proof).
    pub fn validate(&self, state_sync: &StateSyncSection) -> Result<(), ConfigError> {
        if !(64..=1 << 20).contains(&self.segment_kib) {
            return Err(bad(
                "storage.segment_kib",
                format!("{}: expected 64 to 1048576 KiB (1 GiB)", self.segment_kib),
            ));
        }
        if self.compact_interval_ms < 100 {
            return Err(bad(
                "storage.compact_interval_ms",
                format!("{}: expected at least 100 ms", self.compact_interval_ms),
            ));
        }
        let keep = self.retain_finalized_heights;
        if keep == 0 {
            return Ok(());
        }
        let interval = state_sync.snapshot_interval;
        if interval == 0 {
            return Err(bad(
                "storage.retain_finalized_heights",
                format!(
                    "{keep}: a node that deletes old blocks must take snapshots for the nodes \
                     that can no longer replay them; set state_sync.snapshot_interval > 0 or \
                     retain_finalized_heights = 0 (keep everything)"
                ),
            ));
        }
        if keep < 2 * interval {
            return Err(bad(
                "storage.retain_finalized_heights",
                format!(
                    "{keep}: expected 0 (keep everything) or at least 2 × \
                     state_sync.snapshot_interval = {}, so the blocks from the newest \
                     snapshot on (its proof) are never deleted",
                    2 * interval
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};
    use std::path::Path;

    fn load(extra: &str) -> Result<Config, ConfigError> {
        let text =
            format!("[node]\nkey_file = \"k\"\ndata_dir = \"d\"\ngenesis_file = \"g\"\n{extra}");
        Config::from_toml(&text, Path::new("n.toml"), &[])
    }

    fn key_of(e: ConfigError) -> String {
        match e {
            ConfigError::Value { key, .. } => key,
            e => panic!("{e}"),
        }
    }

    #[test]
    fn retention_needs_snapshots_and_names_the_field() {
        let c = load("").unwrap();
        assert_eq!(c.storage.retain_finalized_heights, 0);
        assert_eq!(c.storage.segment_kib, 65536);
        let c = load("[storage]\nretain_finalized_heights = 2000\n").unwrap();
        assert_eq!(c.storage.retain_finalized_heights, 2000);
        for (text, key, says) in [
            (
                "[storage]\nretain_finalized_heights = 1999\n",
                "storage.retain_finalized_heights",
                "2000",
            ),
            (
                "[storage]\nretain_finalized_heights = 50\n[state_sync]\nsnapshot_interval = 0\n",
                "storage.retain_finalized_heights",
                "snapshot_interval > 0",
            ),
            (
                "[storage]\nsegment_kib = 8\n",
                "storage.segment_kib",
                "64 to",
            ),
            (
                "[storage]\ncompact_interval_ms = 5\n",
                "storage.compact_interval_ms",
                "100",
            ),
            ("[storage]\nkeep = 5\n", "storage.keep", "keep"),
        ] {
            let e = load(text).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(says), "{text}: {msg}");
            assert_eq!(key_of(e), key, "{text}: {msg}");
        }
    }
}
