//! The key-value store's state, its digest and its checkpoint file.
//!
//! The digest commits to everything that decides how the store answers and what the
//! next block does to it: every pair with the height that set it, the transaction hashes
//! of the deduplication window (a replica that forgot them would apply a duplicate the
//! others skip), the newest block timestamp (it moves the window) and the applied height:
//!
//! ```text
//! digest := BLAKE3-derive-key("pala kv state v1",
//!             u64 applied_height ‖ u64 newest_timestamp_ms ‖ checksum(L))
//! L      := LtHash16 of { pair(k, v, h) for each pair } ∪ { recent(b) for each block b of the window }
//! pair   := BLAKE3-XOF-derive-key("pala kv pair v1", bytes k ‖ bytes v ‖ u64 h)
//! recent := BLAKE3-XOF-derive-key("pala kv recent v1", u64 ts ‖ u64 h ‖ u32 n ‖ n × hash)
//! ```
//! `L` is updated on every write (remove the old pair's element, add the new one) and as
//! blocks leave the window, so the digest costs O(1) per write and one 2 KiB hash per
//! read. The checkpoint file keeps `L`'s lanes, so a restart reads the digest instead of
//! rescanning the store; a restored snapshot recomputes it from the pairs.

use super::lthash::LtHash;
use pala_types::codec::{put_bytes, DecodeError, Reader};
use pala_types::Hash;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::LazyLock;

use super::KvEntry;

const FILE_MAGIC: &[u8; 8] = b"PALAKV02";

static PAIR: LazyLock<blake3::Hasher> =
    LazyLock::new(|| blake3::Hasher::new_derive_key("pala kv pair v1"));
static RECENT: LazyLock<blake3::Hasher> =
    LazyLock::new(|| blake3::Hasher::new_derive_key("pala kv recent v1"));
static STATE: LazyLock<blake3::Hasher> =
    LazyLock::new(|| blake3::Hasher::new_derive_key("pala kv state v1"));

/// One applied block's transaction hashes, kept until it leaves the window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RecentBlock {
    pub(crate) timestamp_ms: u64,
    pub(crate) height: u64,
    pub(crate) txs: Vec<[u8; 32]>,
}

fn pair_element(k: &str, e: &KvEntry) -> LtHash {
    let mut h = PAIR.clone();
    h.update(&(k.len() as u32).to_le_bytes());
    h.update(k.as_bytes());
    h.update(&(e.value.len() as u32).to_le_bytes());
    h.update(e.value.as_bytes());
    h.update(&e.height.to_le_bytes());
    LtHash::of(&h)
}

fn recent_element(b: &RecentBlock) -> LtHash {
    let mut h = RECENT.clone();
    h.update(&b.timestamp_ms.to_le_bytes());
    h.update(&b.height.to_le_bytes());
    h.update(&(b.txs.len() as u32).to_le_bytes());
    for t in &b.txs {
        h.update(t);
    }
    LtHash::of(&h)
}

/// The store's state. Writes go through [`KvState::set`], [`KvState::push_recent`] and
/// [`KvState::pop_recent`], which keep `lthash` in step.
#[derive(Clone, Debug, Default)]
pub(crate) struct KvState {
    pub(crate) applied_height: u64,
    /// The hash of the block at `applied_height` (what a snapshot manifest names).
    pub(crate) applied_hash: Hash,
    /// Largest block timestamp applied; the window ends here (timestamps of consecutive
    /// blocks need not increase across a proposer switch, so the window uses the max).
    pub(crate) newest_timestamp_ms: u64,
    map: BTreeMap<String, KvEntry>,
    /// Transaction hash -> height, for the transactions of `recent`.
    dedup: HashMap<[u8; 32], u64>,
    recent: VecDeque<RecentBlock>,
    lthash: LtHash,
}

impl KvState {
    /// A state with no pairs and no window, as after applying `applied_height`.
    pub(crate) fn empty_at(
        applied_height: u64,
        applied_hash: Hash,
        newest_timestamp_ms: u64,
    ) -> Self {
        KvState {
            applied_height,
            applied_hash,
            newest_timestamp_ms,
            ..KvState::default()
        }
    }

    pub(crate) fn map(&self) -> &BTreeMap<String, KvEntry> {
        &self.map
    }

    pub(crate) fn recent(&self) -> &VecDeque<RecentBlock> {
        &self.recent
    }

    pub(crate) fn dedup(&self) -> &HashMap<[u8; 32], u64> {
        &self.dedup
    }

    /// Sets `k`; the old pair, if any, leaves the digest.
    pub(crate) fn set(&mut self, k: String, e: KvEntry) {
        use std::collections::btree_map::Entry;
        let new = pair_element(&k, &e);
        match self.map.entry(k) {
            Entry::Occupied(mut o) => {
                self.lthash.remove(&pair_element(o.key(), o.get()));
                o.insert(e);
            }
            Entry::Vacant(v) => {
                v.insert(e);
            }
        }
        self.lthash.add(&new);
    }

    /// Remembers a block's transaction hashes for deduplication.
    pub(crate) fn push_recent(&mut self, b: RecentBlock) {
        for h in &b.txs {
            self.dedup.insert(*h, b.height);
        }
        self.lthash.add(&recent_element(&b));
        self.recent.push_back(b);
    }

    /// The oldest remembered block's timestamp.
    pub(crate) fn oldest_recent(&self) -> Option<u64> {
        self.recent.front().map(|b| b.timestamp_ms)
    }

    /// Forgets the oldest remembered block.
    pub(crate) fn pop_recent(&mut self) {
        let Some(b) = self.recent.pop_front() else {
            return;
        };
        self.lthash.remove(&recent_element(&b));
        for h in b.txs {
            if self.dedup.get(&h) == Some(&b.height) {
                self.dedup.remove(&h);
            }
        }
    }

    /// The digest of this state (module docs).
    pub(crate) fn digest(&self) -> Hash {
        let mut h = STATE.clone();
        h.update(&self.applied_height.to_le_bytes());
        h.update(&self.newest_timestamp_ms.to_le_bytes());
        h.update(&self.lthash.checksum());
        Hash(h.finalize().into())
    }

    /// The multiset hash rebuilt from the pairs and the window (what the incremental one
    /// must always equal; a test checks it after every kind of write).
    #[cfg(test)]
    pub(crate) fn rescanned(&self) -> LtHash {
        let mut l = LtHash::identity();
        for (k, e) in &self.map {
            l.add(&pair_element(k, e));
        }
        for b in &self.recent {
            l.add(&recent_element(b));
        }
        l
    }

    #[cfg(test)]
    pub(crate) fn lthash(&self) -> &LtHash {
        &self.lthash
    }

    /// The checkpoint file's bytes: the state, `L`'s lanes, then a BLAKE3 checksum.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4200 + self.map.len() * 48 + self.dedup.len() * 32);
        out.extend_from_slice(FILE_MAGIC);
        out.extend_from_slice(&self.applied_height.to_le_bytes());
        out.extend_from_slice(&self.applied_hash.0);
        out.extend_from_slice(&self.newest_timestamp_ms.to_le_bytes());
        out.extend_from_slice(&self.lthash.to_bytes());
        out.extend_from_slice(&(self.map.len() as u32).to_le_bytes());
        for (k, e) in &self.map {
            put_bytes(&mut out, k.as_bytes());
            put_bytes(&mut out, e.value.as_bytes());
            out.extend_from_slice(&e.height.to_le_bytes());
        }
        out.extend_from_slice(&(self.recent.len() as u32).to_le_bytes());
        for b in &self.recent {
            out.extend_from_slice(&b.timestamp_ms.to_le_bytes());
            out.extend_from_slice(&b.height.to_le_bytes());
            out.extend_from_slice(&(b.txs.len() as u32).to_le_bytes());
            for h in &b.txs {
                out.extend_from_slice(h);
            }
        }
        let sum = Hash::of(&out);
        out.extend_from_slice(&sum.0);
        out
    }

    /// Reads a checkpoint file. `L` is taken from the file (its checksum covers it), not
    /// recomputed: a restart costs a read, not a hash per pair.
    pub(crate) fn decode(buf: &[u8]) -> Result<KvState, DecodeError> {
        let body_len = buf
            .len()
            .checked_sub(32)
            .ok_or_else(|| DecodeError::Truncated {
                what: "snapshot checksum",
                needed: 32 - buf.len(),
            })?;
        let (body, sum) = buf.split_at(body_len);
        if Hash::of(body).0 != sum {
            return Err(DecodeError::Invalid {
                what: "snapshot checksum",
                detail: "does not match the contents".into(),
            });
        }
        let mut r = Reader::new(body);
        if r.take(8, "snapshot magic")? != FILE_MAGIC {
            return Err(DecodeError::Invalid {
                what: "snapshot magic",
                detail: "not a key-value snapshot of this version".into(),
            });
        }
        let applied_height = r.u64("applied height")?;
        let applied_hash = Hash(r.array("applied block hash")?);
        let newest_timestamp_ms = r.u64("newest timestamp")?;
        let lanes = r.take(super::lthash::LANES * 2, "state digest lanes")?;
        let mut st = KvState {
            applied_height,
            applied_hash,
            newest_timestamp_ms,
            lthash: LtHash::from_bytes(lanes).expect("length taken above"),
            ..KvState::default()
        };
        for _ in 0..r.count(16, "keys")? {
            let k = text(r.bytes("key")?, "key")?;
            let value = text(r.bytes("value")?, "value")?;
            let height = r.u64("value height")?;
            st.map.insert(k, KvEntry { value, height });
        }
        for _ in 0..r.count(20, "recent blocks")? {
            let timestamp_ms = r.u64("block timestamp")?;
            let height = r.u64("block height")?;
            let n = r.count(32, "transaction hashes")?;
            let mut txs = Vec::with_capacity(n);
            for _ in 0..n {
                let h = r.array::<32>("transaction hash")?;
                st.dedup.insert(h, height);
                txs.push(h);
            }
            st.recent.push_back(RecentBlock {
                timestamp_ms,
                height,
                txs,
            });
        }
        r.finish()?;
        Ok(st)
    }
}

pub(crate) fn text(b: &[u8], what: &'static str) -> Result<String, DecodeError> {
    String::from_utf8(b.to_vec()).map_err(|_| DecodeError::Invalid {
        what,
        detail: "not UTF-8".into(),
    })
}
