//! `[state_sync]`: the snapshots a node takes and keeps for peers that join by state
//! sync.

use super::{bad, ConfigError};
use crate::state_sync::MAX_CHUNK_BYTES;
use serde::{Deserialize, Serialize};

/// Smallest `chunk_bytes`: below this a snapshot of a large state is mostly per-chunk
/// overhead (a hash and a request per chunk).
pub const MIN_CHUNK_BYTES: usize = 4 << 10;

/// `[state_sync]`
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StateSyncSection {
    /// A snapshot of the application state at every finalized height divisible by this;
    /// 0 takes none.
    pub snapshot_interval: u64,
    /// Snapshots kept in `<data_dir>/snapshots` (the oldest is deleted first).
    pub keep: usize,
    /// Target size of a snapshot chunk in bytes (the unit of transfer and of checking).
    pub chunk_bytes: usize,
    /// Whether a node whose data directory holds no finalized block first asks its peers
    /// for a snapshot (and serves snapshots to others; false does neither).
    pub enabled: bool,
    /// How long a starting node with an empty data directory waits for its peers' offers
    /// before it starts from genesis, in milliseconds (it stops waiting once every peer it
    /// dialed has answered).
    pub discovery_ms: u64,
    /// How long a joining node waits for one chunk before it asks another peer, in
    /// milliseconds.
    pub chunk_timeout_ms: u64,
    /// Snapshot requests (offers and chunks together) a node serves per peer per second;
    /// more are refused and counted.
    pub serve_requests_per_sec: u32,
}

impl Default for StateSyncSection {
    fn default() -> Self {
        StateSyncSection {
            snapshot_interval: 1000,
            keep: 2,
            chunk_bytes: 1 << 20,
            enabled: true,
            discovery_ms: 3000,
            chunk_timeout_ms: 10_000,
            serve_requests_per_sec: 20,
        }
    }
}

impl StateSyncSection {
    /// Checks the values serde cannot, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.keep == 0 || self.keep > 100 {
            return Err(bad(
                "state_sync.keep",
                format!("{}: expected 1 to 100 snapshots", self.keep),
            ));
        }
        let max = MAX_CHUNK_BYTES as usize;
        if !(MIN_CHUNK_BYTES..=max).contains(&self.chunk_bytes) {
            return Err(bad(
                "state_sync.chunk_bytes",
                format!(
                    "{}: expected {MIN_CHUNK_BYTES} to {max} bytes (a chunk must fit one \
                     network frame)",
                    self.chunk_bytes
                ),
            ));
        }
        for (key, v, lo, hi) in [
            ("state_sync.discovery_ms", self.discovery_ms, 0, 600_000),
            (
                "state_sync.chunk_timeout_ms",
                self.chunk_timeout_ms,
                100,
                600_000,
            ),
            (
                "state_sync.serve_requests_per_sec",
                self.serve_requests_per_sec as u64,
                1,
                10_000,
            ),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err(bad(key, format!("{v}: expected {lo} to {hi}")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};
    use std::path::Path;

    fn load(extra: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let text =
            format!("[node]\nkey_file = \"k\"\ndata_dir = \"d\"\ngenesis_file = \"g\"\n{extra}");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_toml(&text, Path::new("n.toml"), &env)
    }

    fn key_of(e: ConfigError) -> String {
        match e {
            ConfigError::Value { key, .. } => key,
            e => panic!("{e}"),
        }
    }

    #[test]
    fn defaults_overrides_and_errors_that_name_the_field() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.state_sync.snapshot_interval, 1000);
        assert_eq!(c.state_sync.keep, 2);
        assert_eq!(c.state_sync.chunk_bytes, 1 << 20);
        let c = load(
            "[state_sync]\nsnapshot_interval = 0\nkeep = 5\nchunk_bytes = 65536\n",
            &[],
        )
        .unwrap();
        assert_eq!((c.state_sync.snapshot_interval, c.state_sync.keep), (0, 5));
        let c = load("", &[("PALA_STATE_SYNC_SNAPSHOT_INTERVAL", "250")]).unwrap();
        assert_eq!(c.state_sync.snapshot_interval, 250);

        for (text, key) in [
            ("keep = 0", "state_sync.keep"),
            ("keep = 101", "state_sync.keep"),
            ("chunk_bytes = 100", "state_sync.chunk_bytes"),
            ("chunk_bytes = 1073741824", "state_sync.chunk_bytes"),
            ("snapshot_interval = -1", "state_sync.snapshot_interval"),
            ("snapshot_every = 5", "state_sync.snapshot_every"),
            ("chunk_timeout_ms = 10", "state_sync.chunk_timeout_ms"),
            (
                "serve_requests_per_sec = 0",
                "state_sync.serve_requests_per_sec",
            ),
            ("enabled = 1", "state_sync.enabled"),
        ] {
            let e = load(&format!("[state_sync]\n{text}\n"), &[]).unwrap_err();
            let msg = e.to_string();
            assert_eq!(key_of(e), key, "{text}: {msg}");
        }
        let e = load("", &[("PALA_STATE_SYNC_CHUNK_BYTES", "12")]).unwrap_err();
        assert!(e.to_string().contains("4096 to"), "{e}");
    }
}
