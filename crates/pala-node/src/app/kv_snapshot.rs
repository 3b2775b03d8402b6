//! The key-value store's state as snapshot chunks, and back.
//!
//! ```text
//! chunk    := entry*            (an entry never straddles two chunks)
//! entry    := 0x01 ‖ bytes key ‖ bytes value ‖ u64 height          a pair
//!           | 0x02 ‖ u64 timestamp_ms ‖ u64 height ‖ u32 n ‖ n × hash   a block of the window
//! app_meta := u64 newest_timestamp_ms ‖ u64 dedup_window_ms
//! ```
//! Pairs come first, in strictly increasing key order across all chunks, then the
//! deduplication window's blocks, oldest first. A chunk is closed before an entry that
//! would take it past `chunk_bytes`, so only an entry larger than `chunk_bytes` on its
//! own (a value near the transaction size limit with a small `chunk_bytes`) makes a
//! larger chunk. Restoring rebuilds the state entry by entry (so the digest is recomputed,
//! never copied) and checks it against the manifest before the store takes it.

use super::kv_state::{text, KvState, RecentBlock};
use super::KvEntry;
use crate::state_sync::{ChunkInfo, Manifest, RestoreError, Snapshot};
use pala_types::codec::{put_bytes, DecodeError, Reader};

const PAIR: u8 = 1;
const RECENT: u8 = 2;
const META_INDEX: u32 = u32::MAX;

/// Cuts `st` into chunks of at most about `chunk_bytes`.
pub(crate) fn snapshot(st: &KvState, dedup_window_ms: u64, chunk_bytes: usize) -> Snapshot {
    let mut chunks = Vec::new();
    let mut cur = Vec::with_capacity(chunk_bytes.min(16 << 20));
    let mut entry = Vec::with_capacity(512);
    let mut push = |entry: &[u8], cur: &mut Vec<u8>| {
        if !cur.is_empty() && cur.len() + entry.len() > chunk_bytes {
            chunks.push(std::mem::replace(
                cur,
                Vec::with_capacity(chunk_bytes.min(16 << 20)),
            ));
        }
        cur.extend_from_slice(entry);
    };
    for (k, e) in st.map() {
        entry.clear();
        entry.push(PAIR);
        put_bytes(&mut entry, k.as_bytes());
        put_bytes(&mut entry, e.value.as_bytes());
        entry.extend_from_slice(&e.height.to_le_bytes());
        push(&entry, &mut cur);
    }
    for b in st.recent() {
        entry.clear();
        entry.push(RECENT);
        entry.extend_from_slice(&b.timestamp_ms.to_le_bytes());
        entry.extend_from_slice(&b.height.to_le_bytes());
        entry.extend_from_slice(&(b.txs.len() as u32).to_le_bytes());
        for h in &b.txs {
            entry.extend_from_slice(h);
        }
        push(&entry, &mut cur);
    }
    if !cur.is_empty() {
        chunks.push(cur);
    }
    let mut app_meta = Vec::with_capacity(16);
    app_meta.extend_from_slice(&st.newest_timestamp_ms.to_le_bytes());
    app_meta.extend_from_slice(&dedup_window_ms.to_le_bytes());
    Snapshot {
        manifest: Manifest {
            height: st.applied_height,
            block_hash: st.applied_hash,
            state_digest: st.digest(),
            total_pairs: st.map().len() as u64,
            app_meta,
            chunks: chunks.iter().map(|c| ChunkInfo::of(c)).collect(),
        },
        chunks,
    }
}

fn malformed(index: u32, detail: impl std::fmt::Display) -> RestoreError {
    RestoreError::Malformed {
        index,
        detail: detail.to_string(),
    }
}

/// Rebuilds the state `manifest` and its verified `chunks` describe, for a store whose
/// deduplication window is `dedup_window_ms`.
pub(crate) fn restore(
    manifest: &Manifest,
    chunks: &[Vec<u8>],
    dedup_window_ms: u64,
) -> Result<KvState, RestoreError> {
    if chunks.len() != manifest.chunks.len() {
        return Err(RestoreError::Incomplete {
            missing: manifest.chunks.len().saturating_sub(chunks.len()),
            count: manifest.chunks.len(),
            first: chunks.len() as u32,
        });
    }
    let meta: [u8; 16] = manifest
        .app_meta
        .as_slice()
        .try_into()
        .map_err(|_| malformed(META_INDEX, "application metadata is not 16 bytes"))?;
    let newest_timestamp_ms = u64::from_le_bytes(meta[..8].try_into().expect("8 bytes"));
    let window = u64::from_le_bytes(meta[8..].try_into().expect("8 bytes"));
    if window != dedup_window_ms {
        return Err(malformed(
            META_INDEX,
            format!(
                "the snapshot's deduplication window is {window} ms, this store's \
                 {dedup_window_ms} ms (every replica must use the same)"
            ),
        ));
    }
    let mut st = KvState::empty_at(manifest.height, manifest.block_hash, newest_timestamp_ms);
    let mut pairs = 0u64;
    let mut last_key: Option<String> = None;
    let mut in_window = false;
    for (i, chunk) in chunks.iter().enumerate() {
        let index = i as u32;
        let mut r = Reader::new(chunk);
        while r.remaining() > 0 {
            match r.u8("entry kind").map_err(|e| malformed(index, e))? {
                PAIR => {
                    if in_window {
                        return Err(malformed(index, "a pair after the window's blocks"));
                    }
                    let (k, e) =
                        read_pair(&mut r, manifest.height).map_err(|e| malformed(index, e))?;
                    if last_key.as_ref().is_some_and(|l| *l >= k) {
                        return Err(malformed(
                            index,
                            format!("key {k:?} is out of order (keys must increase)"),
                        ));
                    }
                    last_key = Some(k.clone());
                    st.set(k, e);
                    pairs += 1;
                }
                RECENT => {
                    in_window = true;
                    let b =
                        read_recent(&mut r, manifest.height).map_err(|e| malformed(index, e))?;
                    if st.recent().back().is_some_and(|p| p.height >= b.height) {
                        return Err(malformed(index, "the window's blocks are out of order"));
                    }
                    st.push_recent(b);
                }
                k => return Err(malformed(index, format!("unknown entry kind {k}"))),
            }
        }
    }
    if pairs != manifest.total_pairs {
        return Err(RestoreError::PairCount {
            manifest: manifest.total_pairs,
            found: pairs,
        });
    }
    let recomputed = st.digest();
    if recomputed != manifest.state_digest {
        return Err(RestoreError::DigestMismatch {
            height: manifest.height,
            recomputed,
            manifest: manifest.state_digest,
        });
    }
    Ok(st)
}

fn read_pair(r: &mut Reader<'_>, height: u64) -> Result<(String, KvEntry), DecodeError> {
    let k = text(r.bytes("key")?, "key")?;
    if k.is_empty() || k.len() > 256 {
        return Err(DecodeError::Invalid {
            what: "key",
            detail: format!("{} bytes, expected 1 to 256", k.len()),
        });
    }
    let value = text(r.bytes("value")?, "value")?;
    let h = r.u64("value height")?;
    if h == 0 || h > height {
        return Err(DecodeError::Invalid {
            what: "value height",
            detail: format!("{h}, expected 1 to the snapshot's height {height}"),
        });
    }
    Ok((k, KvEntry { value, height: h }))
}

fn read_recent(r: &mut Reader<'_>, height: u64) -> Result<RecentBlock, DecodeError> {
    let timestamp_ms = r.u64("block timestamp")?;
    let h = r.u64("block height")?;
    if h == 0 || h > height {
        return Err(DecodeError::Invalid {
            what: "block height",
            detail: format!("{h}, expected 1 to the snapshot's height {height}"),
        });
    }
    let n = r.count(32, "transaction hashes")?;
    let mut txs = Vec::with_capacity(n);
    for _ in 0..n {
        txs.push(r.array::<32>("transaction hash")?);
    }
    Ok(RecentBlock {
        timestamp_ms,
        height: h,
        txs,
    })
}
