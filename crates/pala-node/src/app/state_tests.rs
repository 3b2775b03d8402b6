//! The state digest, snapshots and restore of the key-value store.

use super::kv_state::KvState;
use super::lthash::LtHash;
use super::*;
use crate::state_sync::{ChunkInfo, Restore, RestoreError};
use pala_types::codec::{Decode, Encode};
use pala_types::StateCommitment;

fn block_at(height: u64, timestamp_ms: u64, txs: Vec<Vec<u8>>) -> Block {
    crate::test_blocks::block_at(height, timestamp_ms, StateCommitment::NONE, txs)
}

fn kv(k: &str, v: &str, n: u64) -> Vec<u8> {
    KvTx {
        k: k.into(),
        v: v.into(),
        n,
    }
    .encode()
}

fn entry(v: &str, height: u64) -> KvEntry {
    KvEntry {
        value: v.into(),
        height,
    }
}

/// A store of `keys` keys written over `blocks` blocks, 1 s of block time apart.
fn filled(keys: usize, blocks: u64) -> KvStore {
    let mut s = KvStore::open(None).unwrap();
    let per = keys.div_ceil(blocks as usize);
    for b in 0..blocks {
        let txs = (0..per)
            .map(|i| b as usize * per + i)
            .filter(|&i| i < keys)
            .map(|i| kv(&format!("key-{i:08}"), &format!("value of {i}"), i as u64))
            .collect();
        s.apply(&block_at(b + 1, 1_000_000 + b * 1000, txs));
    }
    s
}

fn commitment(s: &KvStore) -> StateCommitment {
    StateCommitment {
        height: s.applied_height(),
        digest: s.state_digest(),
    }
}

#[test]
fn the_empty_store_has_the_digest_of_the_spec() {
    let mut h = blake3::Hasher::new_derive_key("pala kv state v1");
    h.update(&0u64.to_le_bytes());
    h.update(&0u64.to_le_bytes());
    h.update(&LtHash::identity().checksum());
    let expected = Hash(h.finalize().into());
    assert_eq!(KvStore::open(None).unwrap().state_digest(), expected);
    assert_ne!(expected, Hash::ZERO);
}

#[test]
fn the_digest_follows_every_write_as_a_rescan_would() {
    let mut s = KvStore::open(None).unwrap().with_dedup_window_ms(2_000);
    let mut seen = vec![s.state_digest()];
    let blocks = [
        vec![kv("a", "1", 0), kv("b", "1", 0)],
        vec![kv("a", "2", 0)], // overwrite
        vec![kv("a", "2", 0)], // duplicate: skipped, only the height moves
        vec![],                // empty block
        vec![kv("c", "1", 0)], // the first blocks leave the window
        vec![kv("a", "1", 0)], // a value seen before, at a new height
    ];
    for (i, txs) in blocks.into_iter().enumerate() {
        s.apply(&block_at(i as u64 + 1, 1000 * (i as u64 + 1), txs));
        assert_eq!(s.st.lthash(), &s.st.rescanned(), "after block {}", i + 1);
        let d = s.state_digest();
        assert!(!seen.contains(&d), "block {} changed the digest", i + 1);
        seen.push(d);
    }
    assert_eq!(s.get("a"), Some(&entry("1", 6)));
    assert!(s.remembered_txs() < 6, "the window moved");
}

#[test]
fn the_same_pairs_written_in_another_order_have_the_same_digest() {
    let pairs = [("x", "1", 3), ("y", "2", 5), ("z", "3", 5), ("w", "", 1)];
    let mut fwd = KvState::default();
    for (k, v, h) in pairs {
        fwd.set(k.into(), entry(v, h));
    }
    let mut back = KvState::default();
    // Reversed, with a detour through another value that is overwritten.
    back.set("x".into(), entry("old", 2));
    for (k, v, h) in pairs.iter().rev() {
        back.set((*k).into(), entry(v, *h));
    }
    assert_eq!(fwd.lthash(), back.lthash());
    assert_eq!(fwd.digest(), back.digest());
    back.set("x".into(), entry("1", 4));
    assert_ne!(
        fwd.digest(),
        back.digest(),
        "the height is part of the pair"
    );

    // Through blocks: the transactions of one block in another order.
    let txs = vec![kv("a", "1", 1), kv("b", "2", 2), kv("c", "3", 3)];
    let mut one = KvStore::open(None).unwrap();
    one.apply(&block_at(1, 500, txs.clone()));
    let mut two = KvStore::open(None).unwrap();
    two.apply(&block_at(1, 500, txs.into_iter().rev().collect()));
    assert_eq!(one.state_digest(), two.state_digest());
}

#[test]
fn a_restart_reads_the_digest_from_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("app-kv.bin");
    let mut s = KvStore::open(Some(&p)).unwrap();
    s.apply(&block_at(1, 10, vec![kv("a", "1", 0), kv("b", "2", 0)]));
    s.apply(&block_at(2, 20, vec![kv("a", "3", 0)]));
    s.checkpoint().unwrap();
    let r = KvStore::open(Some(&p)).unwrap();
    assert_eq!(r.state_digest(), s.state_digest());
    assert_eq!(r.st.lthash(), &r.st.rescanned());
    assert_eq!(
        r.st.applied_hash,
        block_at(2, 20, vec![kv("a", "3", 0)]).hash()
    );
}

#[test]
fn a_snapshot_restores_the_same_state_into_an_empty_store() {
    let s = filled(5_000, 10);
    let snap = s.snapshot(16 << 10).expect("after a block");
    let m = &snap.manifest;
    assert_eq!(m.height, 10);
    assert_eq!(m.total_pairs, 5_000);
    assert_eq!(m.state_digest, s.state_digest());
    assert!(snap.chunks.len() > 5, "{} chunks", snap.chunks.len());
    assert!(snap.chunks.iter().all(|c| c.len() <= 16 << 10));
    assert!(KvStore::open(None).unwrap().snapshot(1 << 20).is_none());

    let mut restore = Restore::new(m.clone(), commitment(&s)).unwrap();
    // In any order; a chunk sent twice is harmless.
    let order: Vec<u32> = (0..snap.chunks.len() as u32).rev().collect();
    for &i in &order {
        restore
            .add_chunk(i, snap.chunks[i as usize].clone())
            .unwrap();
        if i == order[0] {
            assert!(!restore
                .add_chunk(i, snap.chunks[i as usize].clone())
                .unwrap());
        }
    }
    assert!(restore.is_complete());
    let mut fresh = KvStore::open(None).unwrap();
    restore.finish(&mut fresh).unwrap();
    assert_eq!(fresh.state_digest(), s.state_digest());
    assert_eq!(fresh.applied_height(), 10);
    assert_eq!(fresh.st.map(), s.st.map());
    assert_eq!(fresh.st.recent(), s.st.recent());
    assert_eq!(fresh.remembered_txs(), s.remembered_txs());
    assert_eq!(
        fresh.st.encode(),
        s.st.encode(),
        "the checkpoint is the same"
    );
    // The restored store goes on as the original does.
    let next = block_at(11, 20_000, vec![kv("key-00000001", "new", 9)]);
    let mut a = s;
    a.apply(&next);
    fresh.apply(&next);
    assert_eq!(a.state_digest(), fresh.state_digest());
}

fn small() -> (KvStore, Snapshot) {
    let s = filled(400, 4);
    let snap = s.snapshot(4 << 10).unwrap();
    assert!(snap.chunks.len() >= 3);
    (s, snap)
}

#[test]
fn a_forged_or_truncated_chunk_is_refused_with_its_own_error() {
    let (s, snap) = small();
    let mut r = Restore::new(snap.manifest.clone(), commitment(&s)).unwrap();
    let mut forged = snap.chunks[1].clone();
    forged[7] ^= 1;
    match r.add_chunk(1, forged) {
        Err(RestoreError::ChunkHash {
            index: 1,
            expected,
            got,
        }) => {
            assert_eq!(expected, snap.manifest.chunks[1].hash);
            assert_ne!(got, expected);
        }
        other => panic!("{other:?}"),
    }
    let mut cut = snap.chunks[2].clone();
    cut.truncate(cut.len() - 1);
    let e = r.add_chunk(2, cut).unwrap_err();
    assert!(
        matches!(e, RestoreError::TruncatedChunk { index: 2, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("chunk 2 is truncated"), "{e}");
    let mut long = snap.chunks[0].clone();
    long.push(0);
    assert!(matches!(
        r.add_chunk(0, long),
        Err(RestoreError::OversizedChunk { index: 0, .. })
    ));
    let n = snap.chunks.len() as u32;
    assert!(matches!(
        r.add_chunk(n, vec![1]),
        Err(RestoreError::NoSuchChunk { .. })
    ));
    // Nothing bad was kept: all chunks are still missing, and finishing says so.
    assert_eq!(r.missing().count(), snap.chunks.len());
    r.add_chunk(0, snap.chunks[0].clone()).unwrap();
    let mut target = filled(3, 1);
    let before = target.state_digest();
    let e = r.finish(&mut target).unwrap_err();
    assert!(
        matches!(e, RestoreError::Incomplete { first: 1, .. }),
        "{e:?}"
    );
    assert_eq!(target.state_digest(), before);
}

#[test]
fn a_manifest_the_header_does_not_vouch_for_is_refused_before_any_chunk() {
    let (s, snap) = small();
    let mut other = commitment(&s);
    other.digest = Hash::of(b"another state");
    let e = Restore::new(snap.manifest.clone(), other).err().unwrap();
    match &e {
        RestoreError::HeaderMismatch {
            manifest_digest,
            header_digest,
            ..
        } => {
            assert_eq!(*manifest_digest, s.state_digest());
            assert_eq!(*header_digest, other.digest);
        }
        e => panic!("{e:?}"),
    }
    let text = e.to_string();
    assert!(text.contains(&other.digest.to_string()), "{text}");
    let earlier = StateCommitment {
        height: 3,
        ..commitment(&s)
    };
    assert!(matches!(
        Restore::new(snap.manifest.clone(), earlier),
        Err(RestoreError::HeaderMismatch {
            header_height: 3,
            ..
        })
    ));
    assert!(Restore::new(snap.manifest, StateCommitment::NONE).is_err());
}

/// A peer that forges both the chunks and a manifest that lists them (what it cannot
/// forge is the header): the digest check at the end catches what the hashes cannot.
#[test]
fn chunks_that_do_not_rebuild_the_committed_state_are_refused_and_nothing_changes() {
    let (s, snap) = small();
    let refuse = |chunks: Vec<Vec<u8>>, meta: Option<Vec<u8>>| {
        let mut m = snap.manifest.clone();
        m.chunks = chunks.iter().map(|c| ChunkInfo::of(c)).collect();
        if let Some(meta) = meta {
            m.app_meta = meta;
        }
        let mut r = Restore::new(m, commitment(&s)).unwrap();
        for (i, c) in chunks.into_iter().enumerate() {
            r.add_chunk(i as u32, c).unwrap();
        }
        let mut target = filled(7, 2);
        let before = target.st.encode();
        let e = r.finish(&mut target).unwrap_err();
        assert_eq!(target.st.encode(), before, "{e}");
        e
    };
    // A value changed, consistently re-hashed: the digest differs.
    let mut c = snap.chunks.clone();
    let at = c[0].iter().position(|&b| b == b'v').unwrap();
    c[0][at] = b'V';
    let e = refuse(c, None);
    assert!(
        matches!(e, RestoreError::DigestMismatch { height: 4, .. }),
        "{e:?}"
    );
    // A chunk dropped: fewer pairs than the manifest counts.
    let e = refuse(snap.chunks[1..].to_vec(), None);
    assert!(matches!(e, RestoreError::PairCount { .. }), "{e:?}");
    // Chunks swapped: keys out of order.
    let mut c = snap.chunks.clone();
    c.swap(0, 1);
    let e = refuse(c, None);
    assert!(e.to_string().contains("out of order"), "{e}");
    // Garbage in a chunk.
    let mut c = snap.chunks.clone();
    c[0] = vec![9, 9, 9];
    let e = refuse(c, None);
    assert!(
        matches!(e, RestoreError::Malformed { index: 0, .. }),
        "{e:?}"
    );
    // Another deduplication window.
    let mut meta = snap.manifest.app_meta.clone();
    meta[8..].copy_from_slice(&1u64.to_le_bytes());
    let e = refuse(snap.chunks.clone(), Some(meta));
    assert!(e.to_string().contains("deduplication window"), "{e}");
}

/// 10^5 keys: the cost of a snapshot and of a restore (`cargo test -p pala-node --lib
/// snapshot_and_restore_of_100k_keys -- --nocapture` prints the figures).
#[test]
fn snapshot_and_restore_of_100k_keys() {
    let t = std::time::Instant::now();
    let s = filled(100_000, 100);
    let fill = t.elapsed();
    let t = std::time::Instant::now();
    let rescan = s.st.rescanned();
    let rescanned = t.elapsed();
    assert_eq!(&rescan, s.st.lthash());
    let t0 = std::time::Instant::now();
    let snap = s.snapshot(1 << 20).unwrap();
    let cut = t0.elapsed();
    let manifest_bytes = snap.manifest.to_bytes();
    let t1 = std::time::Instant::now();
    let mut r = Restore::new(
        crate::state_sync::Manifest::from_bytes(&manifest_bytes).unwrap(),
        commitment(&s),
    )
    .unwrap();
    for (i, c) in snap.chunks.iter().enumerate() {
        r.add_chunk(i as u32, c.clone()).unwrap();
    }
    let mut fresh = KvStore::open(None).unwrap();
    r.finish(&mut fresh).unwrap();
    let restored = t1.elapsed();
    assert_eq!(fresh.state_digest(), s.state_digest());
    assert_eq!(fresh.len(), 100_000);
    let bytes = snap.manifest.total_bytes();
    println!(
        "100000 keys: applied in {:.1} ms (digest kept per write; a full rescan takes \
         {:.1} ms); snapshot {:.1} ms, {} chunks, {} bytes + manifest {} bytes; \
         restore (checks + rebuild + digest) {:.1} ms",
        fill.as_secs_f64() * 1e3,
        rescanned.as_secs_f64() * 1e3,
        cut.as_secs_f64() * 1e3,
        snap.chunks.len(),
        bytes,
        manifest_bytes.len(),
        restored.as_secs_f64() * 1e3
    );
    assert!(snap.chunks.len() >= 3 && bytes > 3_000_000, "{bytes}");
}
