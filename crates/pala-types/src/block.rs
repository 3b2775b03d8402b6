//! Blocks: header, opaque transactions and consensus info (D-6, section 0.1 item 2).

use crate::codec::{put_seq, Decode, DecodeError, Encode, Reader};
use crate::ids::{BlockSn, Hash};
use crate::notarization::{ClockNotarization, Notarization};
use std::sync::Arc;

/// Consensus-relevant header fields, all covered by the block hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockHeader {
    /// This block's sequence number.
    pub sn: BlockSn,
    /// The parent's sequence number.
    pub parent_sn: BlockSn,
    /// The parent's hash.
    pub parent_hash: Hash,
    /// Height: parent height + 1 (genesis is 0).
    pub height: u64,
    /// 1 for the first block of a session, else parent's value + 1 (C-1).
    pub session_offset: u32,
    /// Proposer's clock when sealing, in milliseconds (informational).
    pub timestamp_ms: u64,
    /// The application state the proposer had applied when it sealed this block.
    pub state: StateCommitment,
}

/// A block's commitment to the application state (the app hash of CometBFT, adapted to a
/// pipelined chain): `digest` is the state after applying every finalized block up to and
/// including `height`.
///
/// A pipelined proposer seals block `h` long before `h` (or even its parent) is final, so
/// a block cannot commit to its own result as a CometBFT block commits to its
/// predecessor's. Block `h` carries instead a finalized height its proposer had applied
/// when it sealed it, at most [`StateCommitment::newest_height_for`]`(h, K) = h − 1 − 2K`
/// (W-12e): a voter that receives `h` has seen the notarization embedded K blocks back,
/// which finalizes the block 2K back (F-C), so it can usually check the commitment
/// against its own digest before it votes. Once `h` is finalized, its notarization
/// vouches for that older state. [`StateCommitment::NONE`] (height 0) commits to nothing:
/// genesis, hosts without an application (the simulator), and a proposer that has
/// applied no block that old yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct StateCommitment {
    /// The finalized height whose resulting state `digest` is (0: no commitment).
    pub height: u64,
    /// The application's state digest after `height`.
    pub digest: Hash,
}

impl StateCommitment {
    /// No commitment.
    pub const NONE: StateCommitment = StateCommitment {
        height: 0,
        digest: Hash::ZERO,
    };

    /// Whether this commits to a state (a height above genesis).
    pub fn is_some(&self) -> bool {
        self.height > 0
    }

    /// The newest height a block at `height` may commit to under the window `k` (W-12e):
    /// `height − 1 − 2k`, 0 (no commitment) for the first `2k + 1` heights.
    pub fn newest_height_for(height: u64, k: u32) -> u64 {
        height.saturating_sub(1 + 2 * u64::from(k))
    }

    /// Whether a block at `height` may carry this commitment under the window `k`.
    pub fn allowed_at(&self, height: u64, k: u32) -> bool {
        !self.is_some() || self.height <= Self::newest_height_for(height, k)
    }
}

impl Encode for StateCommitment {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.height.to_le_bytes());
        self.digest.encode(out);
    }
}

impl Decode for StateCommitment {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(StateCommitment {
            height: r.u64("state commitment height")?,
            digest: Hash::decode(r)?,
        })
    }
}

/// Notarizations and the optional clock notarization embedded in a block (section 4).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ConsensusInfo {
    /// Embedded notarizations, ascending by sn (I-1).
    pub notarizations: Vec<Notarization>,
    /// `cnota(e)` in an `(e,1)` block with `E > 1` (I-1, E-11).
    pub clock: Option<ClockNotarization>,
}

/// A block. The hash is computed once from the canonical encoding and kept alongside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// Header.
    pub header: BlockHeader,
    /// Opaque transactions (the application decides what they mean).
    pub txs: Vec<Vec<u8>>,
    /// Embedded consensus data.
    pub consensus: ConsensusInfo,
    hash: Hash,
}

impl Block {
    /// Builds a block and computes its hash.
    pub fn new(header: BlockHeader, txs: Vec<Vec<u8>>, consensus: ConsensusInfo) -> Block {
        let mut b = Block {
            header,
            txs,
            consensus,
            hash: Hash::ZERO,
        };
        let mut bytes = Vec::with_capacity(256);
        b.encode_fields(&mut bytes);
        b.hash = Hash::of(&bytes);
        b
    }

    /// The genesis block `(0,0,1)` of a network; `payload` distinguishes networks.
    pub fn genesis(payload: Vec<u8>) -> Block {
        Block::new(
            BlockHeader {
                sn: BlockSn::GENESIS,
                parent_sn: BlockSn::NIL,
                parent_hash: Hash::ZERO,
                height: 0,
                session_offset: 0,
                timestamp_ms: 0,
                state: StateCommitment::NONE,
            },
            vec![payload],
            ConsensusInfo::default(),
        )
    }

    /// The block hash (blake3 of the canonical encoding).
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// Shorthand for `header.sn`.
    pub fn sn(&self) -> BlockSn {
        self.header.sn
    }

    /// Shorthand for `header.parent_sn`.
    pub fn parent_sn(&self) -> BlockSn {
        self.header.parent_sn
    }

    /// Shorthand for `header.height`.
    pub fn height(&self) -> u64 {
        self.header.height
    }

    /// Total size of the transactions in bytes.
    pub fn payload_bytes(&self) -> usize {
        self.txs.iter().map(Vec::len).sum()
    }

    fn encode_fields(&self, out: &mut Vec<u8>) {
        let h = &self.header;
        h.sn.encode(out);
        h.parent_sn.encode(out);
        h.parent_hash.encode(out);
        out.extend_from_slice(&h.height.to_le_bytes());
        out.extend_from_slice(&h.session_offset.to_le_bytes());
        out.extend_from_slice(&h.timestamp_ms.to_le_bytes());
        h.state.encode(out);
        put_seq(out, &self.txs);
        put_seq(out, &self.consensus.notarizations);
        match &self.consensus.clock {
            None => out.push(0),
            Some(c) => {
                out.push(1);
                c.encode(out);
            }
        }
    }
}

impl Encode for Block {
    fn encode(&self, out: &mut Vec<u8>) {
        self.encode_fields(out);
    }
}

impl Decode for Block {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let start = r.position();
        let header = BlockHeader {
            sn: BlockSn::decode(r)?,
            parent_sn: BlockSn::decode(r)?,
            parent_hash: Hash::decode(r)?,
            height: r.u64("height")?,
            session_offset: r.u32("session offset")?,
            timestamp_ms: r.u64("timestamp")?,
            state: StateCommitment::decode(r)?,
        };
        let txs = r.seq(4, "transactions")?;
        let notarizations = r.seq(40, "notarizations")?;
        let clock = if r.bool("has clock notarization")? {
            Some(ClockNotarization::decode(r)?)
        } else {
            None
        };
        let hash = Hash::of(r.consumed_since(start));
        Ok(Block {
            header,
            txs,
            consensus: ConsensusInfo {
                notarizations,
                clock,
            },
            hash,
        })
    }
}

impl Encode for Arc<Block> {
    fn encode(&self, out: &mut Vec<u8>) {
        (**self).encode(out)
    }
}
impl Decode for Arc<Block> {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Block::decode(r).map(Arc::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn w12e_a_block_commits_to_a_height_at_least_2k_plus_1_below_its_own() {
        let c = |height| StateCommitment {
            height,
            digest: Hash::of(b"s"),
        };
        assert_eq!(StateCommitment::newest_height_for(30, 10), 9);
        assert_eq!(StateCommitment::newest_height_for(21, 10), 0);
        assert_eq!(StateCommitment::newest_height_for(5, 10), 0);
        assert!(c(9).allowed_at(30, 10));
        assert!(!c(10).allowed_at(30, 10));
        assert!(!c(1).allowed_at(21, 10), "no height is old enough yet");
        assert!(StateCommitment::NONE.allowed_at(1, 10));
        assert!(c(1).allowed_at(4, 1) && !c(2).allowed_at(4, 1));
    }

    #[test]
    fn the_state_commitment_is_encoded_and_covered_by_the_block_hash() {
        let g = Block::genesis(b"net".to_vec());
        assert_eq!(g.header.state, StateCommitment::NONE);
        assert!(!StateCommitment::NONE.is_some());
        let mut header = g.header.clone();
        header.height = 9;
        header.state = StateCommitment {
            height: 7,
            digest: Hash::of(b"state after 7"),
        };
        let b = Block::new(header.clone(), vec![], ConsensusInfo::default());
        let back = Block::from_bytes(&b.to_bytes()).unwrap();
        assert_eq!(back, b);
        assert_eq!(back.hash(), b.hash());
        for other in [
            StateCommitment {
                height: 6,
                ..header.state
            },
            StateCommitment {
                digest: Hash::of(b"another state"),
                ..header.state
            },
        ] {
            let h = BlockHeader {
                state: other,
                ..header.clone()
            };
            assert_ne!(
                Block::new(h, vec![], ConsensusInfo::default()).hash(),
                b.hash()
            );
        }
        // Genesis encodes a zero commitment: 40 bytes after the timestamp.
        let bytes = g.to_bytes();
        let at = 2 * 12 + 32 + 8 + 4 + 8;
        assert_eq!(&bytes[at..at + 40], &[0u8; 40]);
    }
}
