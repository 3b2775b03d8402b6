//! The state-sync messages (W-5 group 0x3, docs/protocol.md section 7, W-12). They are not
//! consensus: the network layer hands their frames to the node undecoded
//! (`pala_net::frame::EXTENSION_KINDS`) and the node's state-sync code answers them, so the
//! consensus core never sees them.
//!
//! ```text
//! 0x30 get-snapshot-offer  := (empty)                                             v1
//!                           | u8 version (≥ 2)                                    v2
//! 0x31 snapshot-offer      := u8 has ‖ [offer]                                    v1 (has 0, 1)
//!                           | u8 2 ‖ u8 holds ‖ [u64 low ‖ u64 high] ‖ u8 has ‖ [offer]   v2
//!      offer               := manifest ‖ u32 n ‖ n × notarized block
//! 0x32 get-snapshot-chunk  := u64 height ‖ u32 index
//! 0x33 snapshot-chunk      := u64 height ‖ u32 index ‖ u8 has ‖ [bytes chunk]     (has = 1)
//! 0x34 get-session-proof   := u32 session ‖ u32 from
//! 0x35 session-proof       := u32 session ‖ u32 from ‖ u8 has ‖ [u32 total ‖ u32 n ‖ n × notarized block]
//! ```
//! A session proof (W-12a) is the chain of session S's blocks from its first one to its
//! stop block and on to the notarized block that finalized the stop block; an answer
//! holds its blocks `from .. from + n` of `total` (a proof of long sessions spans several
//! answers, each at most [`MAX_SESSION_PAGE_BLOCKS`] blocks and about
//! [`SESSION_PAGE_BYTES`]).
//! An offer's notarized blocks are its proof (W-12): the chain from the snapshot's block
//! up to a notarized block that finalizes a block committing to the snapshot's state.
//! Version 2 adds to the answer the finalized heights the serving node still stores
//! (`low..=high`, or none), so that a node whose data is older than every peer's
//! retention can tell (W-12f). A request's version is the highest its sender reads; the
//! answer is in the version asked for (a v1 request gets a v1 answer), so builds of either
//! version join from each other.

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

/// `get-session-proof`.
pub const GET_SESSION: u8 = 0x34;
/// `session-proof`.
pub const SESSION: u8 = 0x35;

/// Most blocks in one session-proof answer.
pub const MAX_SESSION_PAGE_BLOCKS: usize = 1024;
/// The size a server fills a session-proof answer to (one block more may pass it; a
/// block is at most the 64 MiB frame limit anyway).
pub const SESSION_PAGE_BYTES: usize = 4 << 20;
/// Most blocks a session proof may hold: a stop offset of up to 2^20 blocks and the
/// blocks after the stop block that finalized it.
pub const MAX_SESSION_BLOCKS: u32 = (1 << 20) + MAX_PROOF_BLOCKS as u32;

/// The newest version of the offer exchange this build speaks.
pub const OFFER_VERSION: u8 = 2;

/// Most blocks an offer's proof may hold: the snapshot's block, the blocks up to the one
/// that commits to it (at least 2K + 1 heights later, W-12e), and K more up to the notarized
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

/// Which finalized heights a node answering an offer request stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holds {
    /// A version-1 answer, which does not say.
    Unsaid,
    /// No finalized block (an empty node).
    Nothing,
    /// The contiguous finalized chain `low..=high`.
    Heights {
        /// The lowest height kept (the retention's floor).
        low: u64,
        /// The finalized head's height.
        high: u64,
    },
}

impl Holds {
    /// What a store whose finalized chain spans `range` holds.
    pub fn of(range: Option<(u64, u64)>) -> Holds {
        match range {
            None => Holds::Nothing,
            Some((low, high)) => Holds::Heights { low, high },
        }
    }

    /// Whether the node can serve chain sync (W-7.3) to a node whose finalized head is at
    /// `height`: it must find that block on its own finalized chain.
    pub fn covers(&self, height: u64) -> bool {
        matches!(*self, Holds::Heights { low, high } if low <= height && height <= high)
    }
}

/// One state-sync message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncMessage {
    /// Asks for the newest snapshot a peer can vouch for; `version` is the highest version
    /// of the answer the sender reads (1: the original, empty request).
    GetOffer {
        /// 1, or [`OFFER_VERSION`] and above.
        version: u8,
    },
    /// The answer. `offer` is `None` when this peer serves no snapshot; `holds` is
    /// [`Holds::Unsaid`] exactly in a version-1 answer.
    Offer {
        /// The finalized heights the peer stores.
        holds: Holds,
        /// Its newest provable snapshot.
        offer: Option<Box<Offer>>,
    },
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
    /// Asks for the blocks of session `session`'s proof from index `from` on.
    GetSession {
        /// The session.
        session: u32,
        /// The first block wanted.
        from: u32,
    },
    /// The answer; `page` is `None` when the peer keeps no proof of that session.
    Session {
        /// The session.
        session: u32,
        /// The index of the first block in `page`.
        from: u32,
        /// The blocks in the whole proof, and these.
        page: Option<(u32, Vec<NotarizedBlock>)>,
    },
}

impl SyncMessage {
    /// The W-5 type code.
    pub fn kind(&self) -> u8 {
        match self {
            SyncMessage::GetOffer { .. } => GET_OFFER,
            SyncMessage::Offer { .. } => OFFER,
            SyncMessage::GetChunk { .. } => GET_CHUNK,
            SyncMessage::Chunk { .. } => CHUNK,
            SyncMessage::GetSession { .. } => GET_SESSION,
            SyncMessage::Session { .. } => SESSION,
        }
    }

    /// The payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            SyncMessage::GetOffer { version } => {
                if *version >= OFFER_VERSION {
                    out.push(*version);
                }
            }
            SyncMessage::Offer { holds, offer } => {
                match holds {
                    Holds::Unsaid => {}
                    Holds::Nothing => out.extend_from_slice(&[OFFER_VERSION, 0]),
                    Holds::Heights { low, high } => {
                        out.extend_from_slice(&[OFFER_VERSION, 1]);
                        out.extend_from_slice(&low.to_le_bytes());
                        out.extend_from_slice(&high.to_le_bytes());
                    }
                }
                match offer {
                    None => out.push(0),
                    Some(o) => {
                        out.push(1);
                        o.manifest.encode(&mut out);
                        put_seq(&mut out, &o.proof);
                    }
                }
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
            SyncMessage::GetSession { session, from } => {
                out.extend_from_slice(&session.to_le_bytes());
                out.extend_from_slice(&from.to_le_bytes());
            }
            SyncMessage::Session {
                session,
                from,
                page,
            } => {
                out.extend_from_slice(&session.to_le_bytes());
                out.extend_from_slice(&from.to_le_bytes());
                match page {
                    None => out.push(0),
                    Some((total, blocks)) => {
                        out.push(1);
                        out.extend_from_slice(&total.to_le_bytes());
                        put_seq(&mut out, blocks);
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
            GET_OFFER if payload.is_empty() => SyncMessage::GetOffer { version: 1 },
            GET_OFFER => match r.u8("offer version")? {
                v if v >= OFFER_VERSION => SyncMessage::GetOffer { version: v },
                v => {
                    return Err(DecodeError::Invalid {
                        what: "offer version",
                        detail: format!("{v} (version 1 is the empty request)"),
                    })
                }
            },
            OFFER => {
                let holds = if payload.first() == Some(&OFFER_VERSION) {
                    r.u8("offer version")?;
                    if r.bool("heights present")? {
                        let (low, high) = (r.u64("lowest height")?, r.u64("highest height")?);
                        if low > high {
                            return Err(DecodeError::Invalid {
                                what: "held heights",
                                detail: format!("{low} above {high}"),
                            });
                        }
                        Holds::Heights { low, high }
                    } else {
                        Holds::Nothing
                    }
                } else {
                    Holds::Unsaid
                };
                let offer = if r.bool("offer present")? {
                    let manifest = Manifest::decode(&mut r)?;
                    let proof: Vec<NotarizedBlock> = r.seq(60, "proof blocks")?;
                    if proof.is_empty() || proof.len() > MAX_PROOF_BLOCKS {
                        return Err(DecodeError::Invalid {
                            what: "proof blocks",
                            detail: format!("{}, expected 1 to {MAX_PROOF_BLOCKS}", proof.len()),
                        });
                    }
                    Some(Box::new(Offer { manifest, proof }))
                } else {
                    None
                };
                SyncMessage::Offer { holds, offer }
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
            GET_SESSION => SyncMessage::GetSession {
                session: r.u32("session")?,
                from: r.u32("first block")?,
            },
            SESSION => {
                let session = r.u32("session")?;
                let from = r.u32("first block")?;
                let page = if r.bool("proof present")? {
                    let total = r.u32("proof blocks")?;
                    let blocks: Vec<NotarizedBlock> = r.seq(60, "session proof blocks")?;
                    let end = from as u64 + blocks.len() as u64;
                    if blocks.is_empty()
                        || blocks.len() > MAX_SESSION_PAGE_BLOCKS
                        || total > MAX_SESSION_BLOCKS
                        || end > total as u64
                    {
                        return Err(DecodeError::Invalid {
                            what: "session proof blocks",
                            detail: format!(
                                "{} from {from} of {total}, expected 1 to \
                                 {MAX_SESSION_PAGE_BLOCKS} within at most \
                                 {MAX_SESSION_BLOCKS}",
                                blocks.len()
                            ),
                        });
                    }
                    Some((total, blocks))
                } else {
                    None
                };
                SyncMessage::Session {
                    session,
                    from,
                    page,
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
        let offer = Some(Box::new(Offer {
            manifest: manifest(),
            proof: vec![nb.clone(), nb.clone()],
        }));
        let heights = Holds::Heights { low: 3, high: 9 };
        let msgs = [
            SyncMessage::GetOffer { version: 1 },
            SyncMessage::GetOffer { version: 2 },
            SyncMessage::GetOffer { version: 7 },
            SyncMessage::Offer {
                holds: Holds::Unsaid,
                offer: None,
            },
            SyncMessage::Offer {
                holds: Holds::Unsaid,
                offer: offer.clone(),
            },
            SyncMessage::Offer {
                holds: Holds::Nothing,
                offer: None,
            },
            SyncMessage::Offer {
                holds: heights,
                offer: None,
            },
            SyncMessage::Offer {
                holds: heights,
                offer,
            },
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
            SyncMessage::GetSession {
                session: 3,
                from: 40,
            },
            SyncMessage::Session {
                session: 3,
                from: 40,
                page: Some((42, vec![nb.clone(), nb.clone()])),
            },
            SyncMessage::Session {
                session: 3,
                from: 0,
                page: None,
            },
        ];
        for m in msgs {
            let bytes = m.encode();
            assert_eq!(SyncMessage::decode(m.kind(), &bytes), Ok(m.clone()));
            // (An empty request is version 1, so a cut version-2 request still decodes.)
            if !bytes.is_empty() && m.kind() != GET_OFFER {
                assert!(SyncMessage::decode(m.kind(), &bytes[..bytes.len() - 1]).is_err());
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(SyncMessage::decode(m.kind(), &longer).is_err(), "{m:?}");
        }
        // Version 1 is the empty request, and a range must not be upside down.
        assert!(SyncMessage::decode(GET_OFFER, &[1]).is_err());
        let mut upside_down = vec![OFFER_VERSION, 1];
        upside_down.extend_from_slice(&9u64.to_le_bytes());
        upside_down.extend_from_slice(&3u64.to_le_bytes());
        upside_down.push(0);
        let e = SyncMessage::decode(OFFER, &upside_down).unwrap_err();
        assert!(e.to_string().contains("9 above 3"), "{e}");
        // The version-1 answer a version-1 server sends is what it always was.
        assert_eq!(
            SyncMessage::Offer {
                holds: Holds::Unsaid,
                offer: None
            }
            .encode(),
            vec![0]
        );
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
        // A page that runs past the proof it claims to be part of.
        let past = SyncMessage::Session {
            session: 3,
            from: 41,
            page: Some((42, vec![nb.clone(), nb])),
        };
        let e = SyncMessage::decode(SESSION, &past.encode()).unwrap_err();
        assert!(e.to_string().contains("from 41 of 42"), "{e}");
        assert!(matches!(
            SyncMessage::decode(0x3f, &[]),
            Err(DecodeError::UnknownType(0x3f))
        ));
    }
}
