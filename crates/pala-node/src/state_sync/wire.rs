//! The state-sync messages (W-5 group 0x3, docs/protocol.md section 7, W-12). They are not
//! consensus: the network layer hands their frames to the node undecoded
//! (`pala_net::frame::EXTENSION_KINDS`) and the node's state-sync code answers them, so the
//! consensus core never sees them.
//!
//! ```text
//! 0x30 get-snapshot-offer  := (empty)
//! 0x31 snapshot-offer      := u8 has ‖ [manifest ‖ u32 n ‖ n × notarized block]   (has = 1)
//! 0x32 get-snapshot-chunk  := u64 height ‖ u32 index
//! 0x33 snapshot-chunk      := u64 height ‖ u32 index ‖ u8 has ‖ [bytes chunk]     (has = 1)
//! ```
//! An offer's notarized blocks are its proof (W-12): the chain from the snapshot's block
//! up to a notarized block that finalizes a block committing to the snapshot's state.

use super::manifest::{Manifest, MAX_CHUNK_BYTES};
use pala_types::codec::{put_bytes, put_seq, Decode, DecodeError, Encode, Reader};
use pala_types::NotarizedBlock;

/// `get-snapshot-offer`.
pub const GET_OFFER: u8 = 0x30;
/// `snapshot-offer`.
pub const OFFER: u8 = 0x31;
/// `get-snapshot-chunk`.
pub const GET_CHUNK: u8 = 0x32;
/// `snapshot-chunk`.
pub const CHUNK: u8 = 0x33;

/// Most blocks an offer's proof may hold: the snapshot's block, the blocks up to the one
/// that commits to it (a few heights of commitment lag), and K more up to the notarized
/// block that finalizes it.
pub const MAX_PROOF_BLOCKS: usize = 256;

/// A snapshot and what vouches for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    /// The snapshot's manifest.
    pub manifest: Manifest,
    /// Consecutive blocks from the snapshot's height up, the last one notarized.
    pub proof: Vec<NotarizedBlock>,
}

/// One state-sync message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncMessage {
    /// Asks for the newest snapshot a peer can vouch for.
    GetOffer,
    /// The answer; `None`: this peer serves no snapshot.
    Offer(Option<Box<Offer>>),
    /// Asks for chunk `index` of the snapshot at `height`.
    GetChunk {
        /// The snapshot's height.
        height: u64,
        /// The chunk.
        index: u32,
    },
    /// The answer; `bytes` is `None` when the peer does not have it (any more) or refuses.
    Chunk {
        /// The snapshot's height.
        height: u64,
        /// The chunk.
        index: u32,
        /// Its bytes.
        bytes: Option<Vec<u8>>,
    },
}

impl SyncMessage {
    /// The W-5 type code.
    pub fn kind(&self) -> u8 {
        match self {
            SyncMessage::GetOffer => GET_OFFER,
            SyncMessage::Offer(_) => OFFER,
            SyncMessage::GetChunk { .. } => GET_CHUNK,
            SyncMessage::Chunk { .. } => CHUNK,
        }
    }

    /// The payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            SyncMessage::GetOffer => {}
            SyncMessage::Offer(None) => out.push(0),
            SyncMessage::Offer(Some(o)) => {
                out.push(1);
                o.manifest.encode(&mut out);
                put_seq(&mut out, &o.proof);
            }
            SyncMessage::GetChunk { height, index } => {
                out.extend_from_slice(&height.to_le_bytes());
                out.extend_from_slice(&index.to_le_bytes());
            }
            SyncMessage::Chunk {
                height,
                index,
                bytes,
            } => {
                out.extend_from_slice(&height.to_le_bytes());
                out.extend_from_slice(&index.to_le_bytes());
                match bytes {
                    None => out.push(0),
                    Some(b) => {
                        out.push(1);
                        put_bytes(&mut out, b);
                    }
                }
            }
        }
        out
    }

    /// Decodes a payload of type `kind`; the whole payload must be used.
    pub fn decode(kind: u8, payload: &[u8]) -> Result<SyncMessage, DecodeError> {
        let mut r = Reader::new(payload);
        let m = match kind {
            GET_OFFER => SyncMessage::GetOffer,
            OFFER => {
                if r.bool("offer present")? {
                    let manifest = Manifest::decode(&mut r)?;
                    let proof: Vec<NotarizedBlock> = r.seq(60, "proof blocks")?;
                    if proof.is_empty() || proof.len() > MAX_PROOF_BLOCKS {
                        return Err(DecodeError::Invalid {
                            what: "proof blocks",
                            detail: format!("{}, expected 1 to {MAX_PROOF_BLOCKS}", proof.len()),
                        });
                    }
                    SyncMessage::Offer(Some(Box::new(Offer { manifest, proof })))
                } else {
                    SyncMessage::Offer(None)
                }
            }
            GET_CHUNK => SyncMessage::GetChunk {
                height: r.u64("snapshot height")?,
                index: r.u32("chunk index")?,
            },
            CHUNK => {
                let height = r.u64("snapshot height")?;
                let index = r.u32("chunk index")?;
                let bytes = if r.bool("chunk present")? {
                    let b = r.bytes("chunk")?;
                    if b.len() > MAX_CHUNK_BYTES as usize {
                        return Err(DecodeError::Invalid {
                            what: "chunk",
                            detail: format!("{} bytes, above {MAX_CHUNK_BYTES}", b.len()),
                        });
                    }
                    Some(b.to_vec())
                } else {
                    None
                };
                SyncMessage::Chunk {
                    height,
                    index,
                    bytes,
                }
            }
            other => return Err(DecodeError::UnknownType(other)),
        };
        r.finish()?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state_sync::ChunkInfo;
    use pala_types::{Block, Hash};
    use std::sync::Arc;

    fn manifest() -> Manifest {
        Manifest {
            height: 7,
            block_hash: Hash::of(b"block"),
            state_digest: Hash::of(b"state"),
            total_pairs: 1,
            app_meta: vec![],
            chunks: vec![ChunkInfo::of(b"one")],
        }
    }

    #[test]
    fn every_message_round_trips_and_hostile_payloads_are_refused() {
        let nb = NotarizedBlock {
            block: Arc::new(Block::genesis(b"net".to_vec())),
            notarization: None,
        };
        let msgs = [
            SyncMessage::GetOffer,
            SyncMessage::Offer(None),
            SyncMessage::Offer(Some(Box::new(Offer {
                manifest: manifest(),
                proof: vec![nb.clone(), nb],
            }))),
            SyncMessage::GetChunk {
                height: 7,
                index: 3,
            },
            SyncMessage::Chunk {
                height: 7,
                index: 3,
                bytes: Some(b"bytes".to_vec()),
            },
            SyncMessage::Chunk {
                height: 7,
                index: 4,
                bytes: None,
            },
        ];
        for m in msgs {
            let bytes = m.encode();
            assert_eq!(SyncMessage::decode(m.kind(), &bytes), Ok(m.clone()));
            if !bytes.is_empty() {
                assert!(SyncMessage::decode(m.kind(), &bytes[..bytes.len() - 1]).is_err());
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(SyncMessage::decode(m.kind(), &longer).is_err(), "{m:?}");
        }
        // An offer without a proof vouches for nothing.
        let mut empty = vec![1];
        manifest().encode(&mut empty);
        empty.extend_from_slice(&0u32.to_le_bytes());
        assert!(SyncMessage::decode(OFFER, &empty).is_err());
        // A chunk above the largest any manifest lists.
        let mut big = Vec::new();
        big.extend_from_slice(&7u64.to_le_bytes());
        big.extend_from_slice(&0u32.to_le_bytes());
        big.push(1);
        big.extend_from_slice(&(MAX_CHUNK_BYTES + 1).to_le_bytes());
        big.resize(big.len() + MAX_CHUNK_BYTES as usize + 1, 0);
        let e = SyncMessage::decode(CHUNK, &big).unwrap_err();
        assert!(e.to_string().contains("above"), "{e}");
        assert!(matches!(
            SyncMessage::decode(0x3f, &[]),
            Err(DecodeError::UnknownType(0x3f))
        ));
    }
}
