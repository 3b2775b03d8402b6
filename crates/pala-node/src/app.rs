//! The application interface and the built-in replicated key-value store.
//!
//! The runtime hands every finalized block to [`Application::apply`] in height order,
//! exactly once: the application persists the height it has applied, and on restart the
//! runtime replays finalized blocks from storage above that height before any new block.

use pala_types::{Block, Hash};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What the node requires of an application.
pub trait Application: Send + Sync {
    /// Checks a transaction before it enters the mempool. `Err` explains the refusal.
    fn check_tx(&self, tx: &[u8]) -> Result<(), String>;
    /// Applies finalized block `block` (its height is `applied_height() + 1`). Returns
    /// how many transactions took effect.
    fn apply(&mut self, block: &Block) -> usize;
    /// Height of the last applied block (0 = genesis).
    fn applied_height(&self) -> u64;
    /// Makes the applied state durable (called periodically and at shutdown).
    fn persist(&mut self) -> std::io::Result<()>;
}

/// A key-value transaction: set `k` to `v`. `n` is a client nonce so that the same
/// assignment can be made twice; a transaction (same bytes) takes effect at most once.
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

#[derive(Default, Serialize, Deserialize)]
struct KvState {
    applied_height: u64,
    map: BTreeMap<String, KvEntry>,
    applied_txs: HashSet<[u8; 32]>,
}

/// The built-in replicated key-value store, persisted as a JSON snapshot.
pub struct KvStore {
    /// The network whose committee-change transactions are accepted (None: refused).
    network_id: Option<u64>,
    path: Option<PathBuf>,
    st: KvState,
    dirty: bool,
}

impl KvStore {
    /// Opens (or creates) the store whose snapshot lives at `path`; `None` keeps it in
    /// memory only.
    pub fn open(path: Option<&Path>) -> std::io::Result<KvStore> {
        let st = match path {
            Some(p) if p.exists() => serde_json::from_slice(&std::fs::read(p)?).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("application snapshot {} is damaged: {e}", p.display()),
                )
            })?,
            _ => KvState::default(),
        };
        Ok(KvStore {
            network_id: None,
            path: path.map(Path::to_path_buf),
            st,
            dirty: false,
        })
    }

    /// Reads a key.
    pub fn get(&self, k: &str) -> Option<&KvEntry> {
        self.st.map.get(k)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.st.map.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.st.map.is_empty()
    }

    /// Whether the transaction with this hash took effect.
    pub fn applied(&self, h: &Hash) -> bool {
        self.st.applied_txs.contains(&h.0)
    }
}

impl KvStore {
    /// Sets the network whose committee-change transactions this store validates.
    pub fn with_network(mut self, network_id: u64) -> KvStore {
        self.network_id = Some(network_id);
        self
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
            return pala_crypto::validate_committee(&c, nid)
                .map(|_| ())
                .map_err(|e| format!("committee change is invalid: {e}"));
        }
        KvTx::decode(tx).map(|_| ())
    }

    fn apply(&mut self, block: &Block) -> usize {
        let h = block.height();
        if h <= self.st.applied_height {
            return 0;
        }
        let mut n = 0;
        for tx in &block.txs {
            let Ok(t) = KvTx::decode(tx) else { continue };
            // Two proposers may both include a forwarded transaction; only the first
            // finalized copy takes effect.
            if !self.st.applied_txs.insert(Hash::of(tx).0) {
                continue;
            }
            self.st.map.insert(
                t.k,
                KvEntry {
                    value: t.v,
                    height: h,
                },
            );
            n += 1;
        }
        self.st.applied_height = h;
        self.dirty = true;
        n
    }

    fn applied_height(&self) -> u64 {
        self.st.applied_height
    }

    fn persist(&mut self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if !self.dirty {
            return Ok(());
        }
        // Write-then-rename so a crash leaves either the old or the new snapshot.
        let tmp = path.with_extension("tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&serde_json::to_vec(&self.st).map_err(std::io::Error::other)?)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pala_types::{BlockHeader, BlockSn, ConsensusInfo, Epoch};

    fn block(height: u64, txs: Vec<Vec<u8>>) -> Block {
        Block::new(
            BlockHeader {
                sn: BlockSn {
                    epoch: Epoch::new(1, 1),
                    s: height as u32,
                },
                parent_sn: BlockSn::GENESIS,
                parent_hash: Hash([0; 32]),
                height,
                session_offset: 0,
                timestamp_ms: 0,
            },
            txs,
            ConsensusInfo::default(),
        )
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
        let p = dir.path().join("kv.json");
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
}
