//! Blocks for the node's unit tests: the application and its commitments look only at a
//! block's height, timestamp, state commitment and transactions.

use pala_types::{Block, BlockHeader, BlockSn, ConsensusInfo, Epoch, Hash, StateCommitment};

/// A block of epoch (1,1) at `height` (slot = height) on genesis.
pub(crate) fn block_at(
    height: u64,
    timestamp_ms: u64,
    state: StateCommitment,
    txs: Vec<Vec<u8>>,
) -> Block {
    Block::new(
        BlockHeader {
            sn: BlockSn {
                epoch: Epoch::new(1, 1),
                s: height as u32,
            },
            parent_sn: BlockSn::GENESIS,
            parent_hash: Hash::ZERO,
            height,
            session_offset: 0,
            timestamp_ms,
            state,
        },
        txs,
        ConsensusInfo::default(),
    )
}
