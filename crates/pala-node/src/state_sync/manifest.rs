//! A snapshot's manifest: what a joining node checks every chunk and the restored state
//! against, before it trusts any of it.
//!
//! ```text
//! manifest := magic "PALASNAP" ‖ u16 version(1) ‖ u64 height ‖ hash block_hash
//!             ‖ hash state_digest ‖ u64 total_pairs ‖ bytes app_meta
//!             ‖ u32 n ‖ n × (hash chunk_hash ‖ u32 chunk_len)
//! ```
//! Little-endian, `bytes` is u32-length-prefixed, hashes are BLAKE3 (32 bytes). The
//! manifest names the finalized block whose resulting state it is (`height`,
//! `block_hash`) and that state's digest; a joining node compares `(height,
//! state_digest)` with the [`StateCommitment`] of a finalized, notarized header before it
//! asks for a chunk.

use pala_types::codec::{put_bytes, Decode, DecodeError, Encode, Reader};
use pala_types::{Hash, StateCommitment};

const MAGIC: &[u8; 8] = b"PALASNAP";
const VERSION: u16 = 1;

/// Most bytes of application metadata a manifest carries.
pub const MAX_APP_META: usize = 64 << 10;

/// Largest chunk a manifest may list: a chunk must fit one network frame (64 MiB) with
/// room for its envelope, whatever `state_sync.chunk_bytes` a peer was configured with.
pub const MAX_CHUNK_BYTES: u32 = 32 << 20;

/// One chunk as the manifest lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkInfo {
    /// BLAKE3 of the chunk's bytes.
    pub hash: Hash,
    /// The chunk's length in bytes.
    pub len: u32,
}

impl ChunkInfo {
    /// The entry for `bytes`.
    pub fn of(bytes: &[u8]) -> ChunkInfo {
        ChunkInfo {
            hash: Hash::of(bytes),
            len: bytes.len() as u32,
        }
    }
}

/// A snapshot's manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The finalized height whose resulting state this is.
    pub height: u64,
    /// That block's hash.
    pub block_hash: Hash,
    /// The application's state digest after `height`.
    pub state_digest: Hash,
    /// Key-value pairs in all chunks together.
    pub total_pairs: u64,
    /// What the application needs besides the chunks (for the key-value store: the
    /// deduplication clock and window), at most [`MAX_APP_META`] bytes.
    pub app_meta: Vec<u8>,
    /// The chunks, in order.
    pub chunks: Vec<ChunkInfo>,
}

impl Manifest {
    /// The commitment this manifest claims, to compare with a header's.
    pub fn commitment(&self) -> StateCommitment {
        StateCommitment {
            height: self.height,
            digest: self.state_digest,
        }
    }

    /// Bytes of all chunks together.
    pub fn total_bytes(&self) -> u64 {
        self.chunks.iter().map(|c| c.len as u64).sum()
    }
}

impl Encode for Manifest {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.height.to_le_bytes());
        self.block_hash.encode(out);
        self.state_digest.encode(out);
        out.extend_from_slice(&self.total_pairs.to_le_bytes());
        put_bytes(out, &self.app_meta);
        out.extend_from_slice(&(self.chunks.len() as u32).to_le_bytes());
        for c in &self.chunks {
            c.hash.encode(out);
            out.extend_from_slice(&c.len.to_le_bytes());
        }
    }
}

fn invalid(what: &'static str, detail: impl Into<String>) -> DecodeError {
    DecodeError::Invalid {
        what,
        detail: detail.into(),
    }
}

impl Decode for Manifest {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        if r.take(8, "manifest magic")? != MAGIC {
            return Err(invalid("manifest magic", "not a pala snapshot manifest"));
        }
        let version = r.u16("manifest version")?;
        if version != VERSION {
            return Err(invalid(
                "manifest version",
                format!("{version} is not supported (this build reads {VERSION})"),
            ));
        }
        let height = r.u64("manifest height")?;
        if height == 0 {
            return Err(invalid("manifest height", "0 (genesis needs no snapshot)"));
        }
        let block_hash = Hash::decode(r)?;
        let state_digest = Hash::decode(r)?;
        let total_pairs = r.u64("total pairs")?;
        let app_meta = r.bytes("application metadata")?;
        if app_meta.len() > MAX_APP_META {
            return Err(invalid(
                "application metadata",
                format!("{} bytes, above {MAX_APP_META}", app_meta.len()),
            ));
        }
        let n = r.count(36, "chunks")?;
        let mut chunks = Vec::with_capacity(n);
        for _ in 0..n {
            let hash = Hash::decode(r)?;
            let len = r.u32("chunk length")?;
            if len == 0 || len > MAX_CHUNK_BYTES {
                return Err(invalid(
                    "chunk length",
                    format!("{len}, expected 1 to {MAX_CHUNK_BYTES}"),
                ));
            }
            chunks.push(ChunkInfo { hash, len });
        }
        Ok(Manifest {
            height,
            block_hash,
            state_digest,
            total_pairs,
            app_meta: app_meta.to_vec(),
            chunks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Manifest {
        Manifest {
            height: 7,
            block_hash: Hash::of(b"block"),
            state_digest: Hash::of(b"state"),
            total_pairs: 3,
            app_meta: vec![1, 2, 3],
            chunks: vec![ChunkInfo::of(b"one"), ChunkInfo::of(b"two!")],
        }
    }

    #[test]
    fn round_trips_and_refuses_what_it_cannot_trust() {
        let m = sample();
        let bytes = m.to_bytes();
        assert_eq!(Manifest::from_bytes(&bytes), Ok(m.clone()));
        assert_eq!(m.total_bytes(), 7);
        for cut in [0, 9, bytes.len() - 1] {
            assert!(Manifest::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut other = bytes.clone();
        other[8] = 9;
        let e = Manifest::from_bytes(&other).unwrap_err().to_string();
        assert!(e.contains("version") && e.contains("9"), "{e}");
        let zero = Manifest {
            height: 0,
            ..m.clone()
        };
        assert!(Manifest::from_bytes(&zero.to_bytes()).is_err());
        let empty_chunk = Manifest {
            chunks: vec![ChunkInfo {
                hash: Hash::ZERO,
                len: 0,
            }],
            ..m.clone()
        };
        let e = Manifest::from_bytes(&empty_chunk.to_bytes()).unwrap_err();
        assert!(e.to_string().contains("chunk length"), "{e}");
        let mut hostile = m.to_bytes();
        let at = hostile.len() - 2 * 36 - 4;
        hostile[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Manifest::from_bytes(&hostile),
            Err(DecodeError::Truncated { what: "chunks", .. })
        ));
    }
}
