//! Installing a snapshot: the manifest is checked against a finalized header's state
//! commitment before any chunk is accepted, every chunk against the manifest as it
//! arrives (in any order, from any peer), and the rebuilt state's digest against the
//! manifest at the end; the application's state is replaced only when all of it holds.

use super::manifest::Manifest;
use crate::app::Application;
use pala_types::{Hash, StateCommitment};
use thiserror::Error;

/// Why a snapshot was refused. Each names what failed, so the state-sync client can say
/// which peer served what and try another.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RestoreError {
    /// The manifest's state is not the one a finalized header commits to.
    #[error(
        "the snapshot's state (height {manifest_height}, digest {manifest_digest}) is not the \
         one the finalized header commits to (height {header_height}, digest {header_digest})"
    )]
    HeaderMismatch {
        /// The manifest's height.
        manifest_height: u64,
        /// The manifest's state digest.
        manifest_digest: Hash,
        /// The header's commitment height.
        header_height: u64,
        /// The header's commitment digest.
        header_digest: Hash,
    },
    /// A chunk index the manifest does not list.
    #[error("chunk {index} does not exist: the manifest lists {count} chunks")]
    NoSuchChunk {
        /// The index given.
        index: u32,
        /// Chunks in the manifest.
        count: usize,
    },
    /// A chunk shorter than the manifest says.
    #[error("chunk {index} is truncated: {got} of {expected} bytes")]
    TruncatedChunk {
        /// The chunk.
        index: u32,
        /// Its length in the manifest.
        expected: u32,
        /// The bytes received.
        got: usize,
    },
    /// A chunk longer than the manifest says.
    #[error("chunk {index} is too long: {got} bytes, the manifest says {expected}")]
    OversizedChunk {
        /// The chunk.
        index: u32,
        /// Its length in the manifest.
        expected: u32,
        /// The bytes received.
        got: usize,
    },
    /// A chunk of the right length whose hash differs from the manifest's.
    #[error("chunk {index} is forged or damaged: its hash is {got}, the manifest says {expected}")]
    ChunkHash {
        /// The chunk.
        index: u32,
        /// The hash in the manifest.
        expected: Hash,
        /// The hash of the bytes received.
        got: Hash,
    },
    /// `finish` before every chunk arrived.
    #[error("{missing} of {count} chunks have not arrived (the first missing is chunk {first})")]
    Incomplete {
        /// Chunks still missing.
        missing: usize,
        /// Chunks in the manifest.
        count: usize,
        /// The lowest missing index.
        first: u32,
    },
    /// The chunks verify but their contents do not make a state of this application.
    #[error("chunk {index} does not decode as application state: {detail}")]
    Malformed {
        /// The chunk (or the manifest's metadata, index `u32::MAX`).
        index: u32,
        /// What is wrong.
        detail: String,
    },
    /// The manifest's counts disagree with the chunks.
    #[error("the manifest counts {manifest} key-value pairs, the chunks hold {found}")]
    PairCount {
        /// The manifest's count.
        manifest: u64,
        /// Pairs in the chunks.
        found: u64,
    },
    /// The state rebuilt from the chunks is not the one the manifest names.
    #[error(
        "the state rebuilt from the chunks has digest {recomputed}, the manifest says \
         {manifest} (height {height})"
    )]
    DigestMismatch {
        /// The manifest's height.
        height: u64,
        /// The digest of the rebuilt state.
        recomputed: Hash,
        /// The manifest's digest.
        manifest: Hash,
    },
}

/// A snapshot being received.
pub struct Restore {
    manifest: Manifest,
    chunks: Vec<Option<Vec<u8>>>,
    received: usize,
}

impl Restore {
    /// Starts receiving the snapshot `manifest` describes, refused unless it is the state
    /// `header` (the commitment of a finalized, notarized block) vouches for.
    pub fn new(manifest: Manifest, header: StateCommitment) -> Result<Restore, RestoreError> {
        if !header.is_some() || manifest.commitment() != header {
            return Err(RestoreError::HeaderMismatch {
                manifest_height: manifest.height,
                manifest_digest: manifest.state_digest,
                header_height: header.height,
                header_digest: header.digest,
            });
        }
        let n = manifest.chunks.len();
        Ok(Restore {
            manifest,
            chunks: vec![None; n],
            received: 0,
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Checks chunk `index` against the manifest and keeps it. A chunk that arrives twice
    /// is checked again and kept once. Returns whether every chunk is now in.
    pub fn add_chunk(&mut self, index: u32, bytes: Vec<u8>) -> Result<bool, RestoreError> {
        let count = self.chunks.len();
        let info = *self
            .manifest
            .chunks
            .get(index as usize)
            .ok_or(RestoreError::NoSuchChunk { index, count })?;
        let got = bytes.len();
        if got < info.len as usize {
            return Err(RestoreError::TruncatedChunk {
                index,
                expected: info.len,
                got,
            });
        }
        if got > info.len as usize {
            return Err(RestoreError::OversizedChunk {
                index,
                expected: info.len,
                got,
            });
        }
        let hash = Hash::of(&bytes);
        if hash != info.hash {
            return Err(RestoreError::ChunkHash {
                index,
                expected: info.hash,
                got: hash,
            });
        }
        let slot = &mut self.chunks[index as usize];
        if slot.is_none() {
            self.received += 1;
        }
        *slot = Some(bytes);
        Ok(self.is_complete())
    }

    /// Whether every chunk is in.
    pub fn is_complete(&self) -> bool {
        self.received == self.chunks.len()
    }

    /// The indexes still missing, ascending (what a resumed transfer asks for).
    pub fn missing(&self) -> impl Iterator<Item = u32> + '_ {
        self.chunks
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_none())
            .map(|(i, _)| i as u32)
    }

    /// Replaces `app`'s state by the snapshot's once every chunk is in; on any error
    /// `app` keeps the state it had.
    pub fn finish(self, app: &mut dyn Application) -> Result<(), RestoreError> {
        if let Some(first) = self.missing().next() {
            return Err(RestoreError::Incomplete {
                missing: self.chunks.len() - self.received,
                count: self.chunks.len(),
                first,
            });
        }
        let chunks: Vec<Vec<u8>> = self.chunks.into_iter().flatten().collect();
        app.restore(&self.manifest, &chunks)
    }
}
