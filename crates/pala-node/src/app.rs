//! The application interface and the built-in replicated key-value store.
//!
//! The runtime hands every finalized block to [`Application::apply`] in height order,
//! exactly once: the application persists the height it has applied, and on restart the
//! runtime replays finalized blocks from storage above that height before any new block.
//! After each block the application's [`Application::state_digest`] is what the node's
//! proposals commit to ([`pala_types::StateCommitment`]); [`Application::snapshot`] and
//! [`Application::restore`] move the whole state for state sync (`crate::state_sync`).

mod kv_snapshot;
mod kv_state;
pub mod lthash;
#[cfg(test)]
mod state_tests;

use crate::state_sync::{Manifest, RestoreError, Snapshot};
use kv_state::{KvState, RecentBlock};
use pala_types::codec::DecodeError;
use pala_types::{Block, Hash};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What the node requires of an application.
pub trait Application: Send + Sync {
    /// Checks a transaction before it enters the mempool. `Err` explains the refusal.
    fn check_tx(&self, tx: &[u8]) -> Result<(), String>;
    /// Applies finalized block `block` (its height is `applied_height() + 1`). Returns
    /// how many transactions took effect.
    fn apply(&mut self, block: &Block) -> usize;
    /// Height of the last applied block (0 = genesis).
    fn applied_height(&self) -> u64;
    /// Called periodically and at shutdown to make the applied state durable. Because the
    /// runtime replays the finalized blocks above `applied_height()` from storage on
    /// start, an application may checkpoint less often than it is called.
    fn persist(&mut self) -> std::io::Result<()>;
    /// The digest of the state after `applied_height()`: equal on every replica that
    /// applied the same blocks, different for any other state (a collision-resistant
    /// commitment). Called after every block, so it must not walk the state.
    fn state_digest(&self) -> Hash;
    /// The state after `applied_height()` as a manifest and chunks of at most about
    /// `chunk_bytes` each, whose manifest names the block at that height and the state's
    /// digest. `None` before the first block.
    fn snapshot(&self, chunk_bytes: usize) -> Option<Snapshot>;
    /// Replaces the state by the one `chunks` hold, each already checked against
    /// `manifest` ([`crate::state_sync::Restore`] does), after checking that the rebuilt
    /// state's digest is `manifest.state_digest`. On error the state is unchanged. The
    /// caller makes the new state durable with [`Application::persist`].
    fn restore(&mut self, manifest: &Manifest, chunks: &[Vec<u8>]) -> Result<(), RestoreError>;
}

/// A key-value transaction: set `k` to `v`. `n` is a client nonce so that the same
/// assignment can be made twice; a transaction (same bytes) takes effect at most once
/// within the deduplication window ([`DEFAULT_DEDUP_WINDOW_MS`] of block time).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KvTx {
    /// Key (at most 256 bytes).
    pub k: String,
    /// Value.
    pub v: String,
    /// Nonce.
    #[serde(default)]
    pub n: u64,
}

impl KvTx {
    /// The canonical bytes of this transaction.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses transaction bytes.
    pub fn decode(tx: &[u8]) -> Result<KvTx, String> {
        let t: KvTx =
            serde_json::from_slice(tx).map_err(|e| format!("not a key-value transaction: {e}"))?;
        if t.k.is_empty() || t.k.len() > 256 {
            return Err("key must be 1 to 256 bytes".into());
        }
        Ok(t)
    }
}

/// A value with the height that set it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KvEntry {
    /// The value.
    pub value: String,
    /// Height of the block that set it.
    pub height: u64,
}

/// How long, in block time, the store remembers the hash of a transaction that took
/// effect. Duplicates come from two proposers including the same forwarded transaction
/// around a proposer switch and from client retries, both within seconds; remembering
/// every hash forever would make memory and checkpoints grow with the chain.
pub const DEFAULT_DEDUP_WINDOW_MS: u64 = 60_000;

/// Checkpoints may take at most this share of the application thread's time: a
/// checkpoint that took `d` is followed by the next one no sooner than `d / SHARE`.
const CHECKPOINT_TIME_SHARE: f64 = 0.05;

/// The built-in replicated key-value store, checkpointed as a checksummed binary
/// snapshot (write-then-rename) that also keeps its state digest's multiset hash.
pub struct KvStore {
    /// The network whose committee-change transactions are accepted (None: refused).
    network_id: Option<u64>,
    path: Option<PathBuf>,
    st: KvState,
    dedup_window_ms: u64,
    dirty: bool,
    last_checkpoint: Option<(Instant, Duration)>,
}

fn invalid(path: &Path, what: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!(
            "application snapshot {} is damaged: {what}. What to do: delete that file and \
             restart; the node rebuilds the application state by replaying the finalized \
             blocks from storage (nothing is lost)",
            path.display()
        ),
    )
}

/// Decodes the bytes of a snapshot file as [`KvStore::open`] does and returns the number
/// of keys; the fuzz target of `fuzz/` feeds it arbitrary bytes without a file per input.
#[doc(hidden)]
pub fn decode_snapshot(buf: &[u8]) -> Result<usize, DecodeError> {
    KvState::decode(buf).map(|st| st.map().len())
}

impl KvStore {
    /// Opens (or creates) the store whose snapshot lives at `path`; `None` keeps it in
    /// memory only. A snapshot of the first versions (JSON, at `path` with the extension
    /// `json`) is refused with the way out.
    pub fn open(path: Option<&Path>) -> std::io::Result<KvStore> {
        let st = match path {
            Some(p) if p.exists() => {
                KvState::decode(&std::fs::read(p)?).map_err(|e| invalid(p, e))?
            }
            Some(p) if p.with_extension("json").exists() => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{} is an application snapshot of the first node versions, which this \
                         version no longer reads; delete it and the node rebuilds the state by \
                         replaying the finalized blocks from storage",
                        p.with_extension("json").display()
                    ),
                ));
            }
            _ => KvState::default(),
        };
        Ok(KvStore {
            network_id: None,
            path: path.map(Path::to_path_buf),
            st,
            dedup_window_ms: DEFAULT_DEDUP_WINDOW_MS,
            dirty: false,
            last_checkpoint: None,
        })
    }

    /// Sets how long (block time) transaction hashes are remembered for deduplication.
    /// Every replica must use the same value, or they may disagree on the state.
    pub fn with_dedup_window_ms(mut self, ms: u64) -> KvStore {
        self.dedup_window_ms = ms;
        self
    }

    /// Reads a key.
    pub fn get(&self, k: &str) -> Option<&KvEntry> {
        self.st.map().get(k)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.st.map().len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.st.map().is_empty()
    }

    /// The height at which the transaction with this hash took effect, if that was
    /// within the deduplication window.
    pub fn applied(&self, h: &Hash) -> Option<u64> {
        self.st.dedup().get(&h.0).copied()
    }

    /// Transaction hashes remembered for deduplication.
    pub fn remembered_txs(&self) -> usize {
        self.st.dedup().len()
    }

    /// Writes a checkpoint now if anything changed since the last one.
    pub fn checkpoint(&mut self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if !self.dirty {
            return Ok(());
        }
        let t0 = Instant::now();
        // Write-then-rename so a crash leaves either the old or the new snapshot.
        let tmp = path.with_extension("tmp");
        let written = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&self.st.encode())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if let Err(e) = written {
            // A half-written temp file is of no use and takes the space a retry needs.
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        self.dirty = false;
        self.last_checkpoint = Some((Instant::now(), t0.elapsed()));
        Ok(())
    }

    /// Sets the network whose committee-change transactions this store validates.
    pub fn with_network(mut self, network_id: u64) -> KvStore {
        self.network_id = Some(network_id);
        self
    }

    fn expire(&mut self) {
        let horizon = self
            .st
            .newest_timestamp_ms
            .saturating_sub(self.dedup_window_ms);
        while self.st.oldest_recent().is_some_and(|ts| ts < horizon) {
            self.st.pop_recent();
        }
    }
}

impl Application for KvStore {
    fn check_tx(&self, tx: &[u8]) -> Result<(), String> {
        // Section 0.1 item 11: a committee-change transaction names the next session's
        // committee; it must decode and every key must carry a valid proof of possession.
        if let Some(parsed) = pala_types::committee::parse_committee_change(tx) {
            let c = parsed.map_err(|e| format!("committee change does not decode: {e}"))?;
            let nid = self
                .network_id
                .ok_or("committee changes are not accepted by this store")?;
            return pala_core::verify::validate_committee(&pala_crypto::BlsScheme::new(), &c, nid)
                .map_err(|e| format!("committee change is invalid: {e}"));
        }
        KvTx::decode(tx).map(|_| ())
    }

    fn apply(&mut self, block: &Block) -> usize {
        let h = block.height();
        if h <= self.st.applied_height {
            return 0;
        }
        let mut taken = Vec::new();
        let mut in_block = std::collections::HashSet::new();
        for tx in &block.txs {
            let Ok(t) = KvTx::decode(tx) else { continue };
            // Two proposers may both include a forwarded transaction; only the first
            // finalized copy takes effect.
            let hash = Hash::of(tx).0;
            if self.st.dedup().contains_key(&hash) || !in_block.insert(hash) {
                continue;
            }
            taken.push(hash);
            self.st.set(
                t.k,
                KvEntry {
                    value: t.v,
                    height: h,
                },
            );
        }
        let n = taken.len();
        self.st.newest_timestamp_ms = self.st.newest_timestamp_ms.max(block.header.timestamp_ms);
        if !taken.is_empty() {
            // The window is a set: its order in the block must not reach the digest.
            taken.sort_unstable();
            self.st.push_recent(RecentBlock {
                timestamp_ms: block.header.timestamp_ms,
                height: h,
                txs: taken,
            });
        }
        self.expire();
        self.st.applied_height = h;
        self.st.applied_hash = block.hash();
        self.dirty = true;
        n
    }

    fn applied_height(&self) -> u64 {
        self.st.applied_height
    }

    fn persist(&mut self) -> std::io::Result<()> {
        // A snapshot costs time in proportion to the state; spacing checkpoints by their
        // own cost keeps this thread mostly applying blocks. Replay covers the gap.
        if let Some((at, took)) = self.last_checkpoint {
            let spacing = took.as_secs_f64() / CHECKPOINT_TIME_SHARE;
            if at.elapsed().as_secs_f64() < spacing {
                return Ok(());
            }
        }
        self.checkpoint()
    }

    fn state_digest(&self) -> Hash {
        self.st.digest()
    }

    fn snapshot(&self, chunk_bytes: usize) -> Option<Snapshot> {
        if self.st.applied_height == 0 {
            return None;
        }
        Some(kv_snapshot::snapshot(
            &self.st,
            self.dedup_window_ms,
            chunk_bytes,
        ))
    }

    fn restore(&mut self, manifest: &Manifest, chunks: &[Vec<u8>]) -> Result<(), RestoreError> {
        self.st = kv_snapshot::restore(manifest, chunks, self.dedup_window_ms)?;
        self.dirty = true;
        // A restored state's cost is unknown: the next `persist` writes it.
        self.last_checkpoint = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(height: u64, txs: Vec<Vec<u8>>) -> Block {
        block_at(height, 0, txs)
    }

    fn block_at(height: u64, timestamp_ms: u64, txs: Vec<Vec<u8>>) -> Block {
        crate::test_blocks::block_at(height, timestamp_ms, pala_types::StateCommitment::NONE, txs)
    }

    #[test]
    fn committee_change_transactions_are_validated() {
        let (committee, _, _) =
            pala_crypto::seeded_committee("kv", 2, 1, 3, 7, pala_types::VoteCounting::Seat);
        let good = pala_types::committee::committee_change_tx(&committee);
        let kv = KvStore::open(None).unwrap();
        assert!(kv.check_tx(&good).is_err(), "refused without a network id");
        let kv = kv.with_network(7);
        assert_eq!(kv.check_tx(&good), Ok(()));
        assert!(
            KvStore::open(None)
                .unwrap()
                .with_network(8)
                .check_tx(&good)
                .is_err(),
            "wrong network"
        );
        let mut forged = committee.clone();
        forged.voters[0].proof_of_possession = forged.voters[1].proof_of_possession.clone();
        let bad = pala_types::committee::committee_change_tx(&forged);
        assert!(kv.check_tx(&bad).unwrap_err().contains("invalid"));
        let mut truncated = good.clone();
        truncated.truncate(good.len() - 3);
        assert!(kv.check_tx(&truncated).unwrap_err().contains("decode"));
    }

    #[test]
    fn applies_once_and_survives_restart() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kv.bin");
        let tx = KvTx {
            k: "a".into(),
            v: "1".into(),
            n: 0,
        }
        .encode();
        let mut kv = KvStore::open(Some(&p)).unwrap();
        assert!(kv.check_tx(b"junk").is_err());
        assert_eq!(kv.apply(&block(1, vec![tx.clone(), b"junk".to_vec()])), 1);
        assert_eq!(kv.apply(&block(2, vec![tx.clone()])), 0, "duplicate tx");
        assert_eq!(kv.apply(&block(2, vec![])), 0, "same height twice");
        kv.persist().unwrap();
        let kv = KvStore::open(Some(&p)).unwrap();
        assert_eq!(kv.applied_height(), 2);
        assert_eq!(kv.get("a").unwrap().value, "1");
    }

    fn kv(k: &str, n: u64) -> Vec<u8> {
        KvTx {
            k: k.into(),
            v: format!("v{n}"),
            n,
        }
        .encode()
    }

    #[test]
    fn duplicates_are_refused_within_the_window_and_forgotten_after_it() {
        let mut s = KvStore::open(None).unwrap().with_dedup_window_ms(1000);
        assert_eq!(s.apply(&block_at(1, 10_000, vec![kv("a", 1)])), 1);
        assert_eq!(s.applied(&Hash::of(&kv("a", 1))), Some(1));
        // 900 ms later: still inside the window.
        assert_eq!(
            s.apply(&block_at(2, 10_900, vec![kv("a", 1), kv("b", 1)])),
            1
        );
        // A block whose timestamp is behind (proposer switch) neither expires nor admits.
        assert_eq!(s.apply(&block_at(3, 10_500, vec![kv("a", 1)])), 0);
        // 1.5 s after block 1: its hashes left the window, block 2's are kept.
        assert_eq!(s.apply(&block_at(4, 11_500, vec![])), 0);
        assert_eq!(s.applied(&Hash::of(&kv("a", 1))), None);
        assert_eq!(s.applied(&Hash::of(&kv("b", 1))), Some(2));
        assert_eq!(s.remembered_txs(), 1);
        assert_eq!(s.apply(&block_at(5, 11_600, vec![kv("a", 1)])), 1);
    }

    #[test]
    fn memory_stays_bounded_by_the_window() {
        let mut s = KvStore::open(None).unwrap().with_dedup_window_ms(1000);
        for h in 1..=2000u64 {
            let txs = (0..10).map(|i| kv("k", h * 10 + i)).collect();
            assert_eq!(s.apply(&block_at(h, h * 50, txs)), 10);
        }
        // 1000 ms of 50 ms blocks of 10 transactions.
        assert!(s.remembered_txs() <= 210, "{}", s.remembered_txs());
    }

    #[test]
    fn failed_checkpoint_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app-kv.bin");
        let mut s = KvStore::open(Some(&p)).unwrap();
        // A non-empty directory where the snapshot goes: the rename fails.
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join("x"), b"x").unwrap();
        s.apply(&block(1, vec![kv("x", 1)]));
        assert!(s.checkpoint().is_err());
        assert!(!p.with_extension("tmp").exists());
    }

    #[test]
    fn checkpoint_round_trip_and_damage_detection() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kv.bin");
        let mut s = KvStore::open(Some(&p)).unwrap();
        s.apply(&block_at(1, 1000, vec![kv("x", 1), kv("y", 2)]));
        s.apply(&block_at(2, 2000, vec![kv("x", 3)]));
        s.checkpoint().unwrap();
        let r = KvStore::open(Some(&p)).unwrap();
        assert_eq!(r.applied_height(), 2);
        assert_eq!(
            r.get("x").unwrap(),
            &KvEntry {
                value: "v3".into(),
                height: 2
            }
        );
        assert_eq!(r.applied(&Hash::of(&kv("y", 2))), Some(1));
        assert_eq!(r.st.encode(), s.st.encode());
        let good = std::fs::read(&p).unwrap();
        for at in [0, 9, good.len() / 2, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x20;
            std::fs::write(&p, &bad).unwrap();
            let e = KvStore::open(Some(&p)).err().expect("damage is detected");
            assert!(e.to_string().contains("damaged"), "{e}");
        }
        std::fs::write(&p, &good[..good.len() - 5]).unwrap();
        assert!(KvStore::open(Some(&p)).is_err(), "truncation is detected");
    }

    #[test]
    fn a_json_snapshot_of_the_first_versions_is_refused_with_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app-kv.bin");
        std::fs::write(p.with_extension("json"), br#"{"applied_height":7}"#).unwrap();
        let e = KvStore::open(Some(&p)).err().expect("refused").to_string();
        assert!(e.contains("app-kv.json") && e.contains("delete it"), "{e}");
    }

    #[test]
    fn checkpoints_are_spaced_by_their_cost() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kv.bin");
        let mut s = KvStore::open(Some(&p)).unwrap();
        s.apply(&block(1, vec![kv("a", 1)]));
        s.persist().unwrap();
        assert!(!s.dirty, "the first call writes");
        s.apply(&block(2, vec![kv("a", 2)]));
        // Pretend the last checkpoint took an hour: the next call skips.
        s.last_checkpoint = Some((Instant::now(), Duration::from_secs(3600)));
        s.persist().unwrap();
        assert!(s.dirty, "too soon after an expensive checkpoint");
        assert_eq!(KvStore::open(Some(&p)).unwrap().applied_height(), 1);
        s.checkpoint().unwrap();
        assert_eq!(KvStore::open(Some(&p)).unwrap().applied_height(), 2);
    }
}
