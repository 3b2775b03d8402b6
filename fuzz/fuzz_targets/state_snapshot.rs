//! What a state-sync peer sends: a snapshot manifest, and chunks of key-value state. The
//! first input byte picks the form: odd, the rest is a manifest (`Manifest::from_bytes`,
//! which must round-trip); even, the rest is cut into chunks of `1 + 16 * (byte / 2)`
//! bytes that a manifest lists with their right hashes (a peer that forges both), so the
//! input reaches the chunk decoder and the rebuild behind the hash checks. A restore that
//! fails must leave the store as it was.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pala_node::app::{Application, KvStore, DEFAULT_DEDUP_WINDOW_MS};
use pala_node::state_sync::{ChunkInfo, Manifest, Restore};
use pala_types::{Decode, Encode, Hash};

fuzz_target!(|data: &[u8]| {
    let Some((&form, rest)) = data.split_first() else {
        return;
    };
    if form & 1 == 1 {
        if let Ok(m) = Manifest::from_bytes(rest) {
            assert_eq!(Manifest::from_bytes(&m.to_bytes()), Ok(m));
        }
        return;
    }
    let size = 1 + 16 * (form as usize / 2);
    let chunks: Vec<Vec<u8>> = rest.chunks(size).map(<[u8]>::to_vec).collect();
    let mut meta = 0u64.to_le_bytes().to_vec();
    meta.extend_from_slice(&DEFAULT_DEDUP_WINDOW_MS.to_le_bytes());
    let manifest = Manifest {
        height: 1 << 20,
        block_hash: Hash::ZERO,
        state_digest: Hash::of(rest),
        total_pairs: 0,
        app_meta: meta,
        chunks: chunks.iter().map(|c| ChunkInfo::of(c)).collect(),
    };
    let mut restore = Restore::new(manifest.clone(), manifest.commitment()).expect("vouched");
    for (i, c) in chunks.into_iter().enumerate() {
        restore.add_chunk(i as u32, c).expect("the manifest lists it");
    }
    let mut kv = KvStore::open(None).expect("in memory");
    let before = kv.state_digest();
    if restore.finish(&mut kv).is_err() {
        assert_eq!(kv.state_digest(), before);
        assert_eq!(kv.applied_height(), 0);
    }
});
