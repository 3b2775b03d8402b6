//! How the core's records map onto storage and back: what is written for each record
//! (P-1), what the core gets back at start (P-3), and the archive of finalized blocks that
//! chain sync serves from (W-7).

use anyhow::{Context, Result};
use pala_core::{BlockArchive, RecoveredState, StateChange};
use pala_storage::EpochStatus;
use pala_storage::Storage;
use pala_storage::StorageReader;
use pala_types::{Block, NotarizedBlock};
use std::sync::Arc;

/// The archive of finalized blocks the core serves chain sync from.
pub struct StorageArchive {
    storage: StorageReader,
    /// The genesis block is final by definition but never written to storage, so the
    /// storage's height map starts at 1. A node that has nothing but genesis names it as
    /// its only known block in a fresher-head request (W-7.3): without it here, every peer
    /// past height 0 would find no common block and answer with no blocks, and that node
    /// would stay at genesis for good.
    genesis: Arc<Block>,
}

impl StorageArchive {
    /// The archive over `storage`, with `genesis` at height 0.
    pub fn new(storage: StorageReader, genesis: Arc<Block>) -> StorageArchive {
        StorageArchive { storage, genesis }
    }
}

impl BlockArchive for StorageArchive {
    fn finalized_at(&self, height: u64) -> Option<NotarizedBlock> {
        let stored = self
            .storage
            .finalized_at(height)
            .and_then(|(sn, _)| self.storage.notarized_block(sn).ok().flatten());
        stored.or_else(|| {
            (height == self.genesis.height()).then(|| NotarizedBlock {
                block: self.genesis.clone(),
                notarization: None,
            })
        })
    }
}

/// Builds the core's recovered state from the storage's recovery set (P-3).
pub fn recovered_from(st: &Storage) -> Result<RecoveredState> {
    let set = st.recovery_set().context("reading the recovery set")?;
    let mut rec = RecoveredState {
        finalized: set.root,
        ..RecoveredState::default()
    };
    for nb in set.descendants {
        if let Some(n) = nb.notarization {
            rec.notarizations.push(n);
        }
        rec.blocks.push(nb.block);
    }
    rec.epoch = set.epoch.map(|s| (s.epoch, s.clock));
    rec.vote_guards = set.vote_guards.into_iter().collect();
    rec.clock_guard = set.clock_guard;
    // the sessions in force are the finalized head's, the one before it, and the next
    // one inside a reconfiguration window; older committees would admit retired members.
    let root_session = rec
        .finalized
        .as_ref()
        .map_or(1, |nb| nb.block.sn().epoch.session.max(1));
    rec.committees = set
        .committees
        .into_iter()
        .filter(|c| c.session + 1 >= root_session)
        .collect();
    Ok(rec)
}

/// The storage records for one record of the core (P-1).
pub fn storage_records(r: StateChange) -> Vec<pala_storage::Record> {
    use pala_storage::Record as S;
    match r {
        StateChange::Block(b) => vec![S::Block(b)],
        StateChange::Notarization(n) => vec![S::Notarization(n)],
        StateChange::Finalized { sn, .. } => vec![S::FinalizedHead(sn)],
        StateChange::Epoch { epoch, clock } => {
            let mut v = Vec::with_capacity(2);
            if let Some(c) = &clock {
                v.push(S::ClockNotarization(c.clone()));
            }
            v.push(S::EpochStatus(EpochStatus { epoch, clock }));
            v
        }
        StateChange::VoteGuard { epoch, s } => vec![S::VoteGuard { epoch, s }],
        StateChange::ClockGuard(e) => vec![S::ClockGuard(e)],
        StateChange::StopBlock {
            session, height, ..
        } => vec![S::StopBlock { session, height }],
        StateChange::Committee(c) => vec![S::Committee(c)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pala_core::chain::Chain;
    use pala_core::serve_fresher_head;
    use pala_storage::Options;
    use pala_types::{
        BlockHeader, ConsensusInfo, FresherHeadRequest, Member, Notarization, PublicKey, Signature,
        SignerBitmap,
    };
    use pala_types::{BlockSn, Committee};

    fn child(parent: &Block, sn: BlockSn) -> Arc<Block> {
        Arc::new(Block::new(
            BlockHeader {
                sn,
                parent_sn: parent.sn(),
                parent_hash: parent.hash(),
                height: parent.height() + 1,
                session_offset: sn.s,
                timestamp_ms: 1000 + sn.s as u64,
                state: pala_types::StateCommitment::NONE,
            },
            vec![vec![sn.s as u8]],
            ConsensusInfo::default(),
        ))
    }

    fn nota(b: &Block) -> Notarization {
        let mut signers = SignerBitmap::new(4);
        for i in 0..3 {
            signers.insert(i);
        }
        Notarization {
            sn: b.sn(),
            block_hash: b.hash(),
            proposer_idx: 0,
            signers,
            signature: Signature(vec![7; 48]),
        }
    }

    /// A node that starts (or is wiped) after its peers finalized past genesis knows only
    /// genesis; the cluster stall of 2026-11-25 was every peer answering it with "no
    /// common block" because the storage-backed archive had no height 0.
    #[test]
    fn fresher_head_request_from_genesis_is_served_once_peers_finalized_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let genesis = Arc::new(Block::genesis(b"net".to_vec()));
        let mut blocks = vec![genesis.clone()];
        for s in 1..=5u32 {
            let b = child(blocks.last().unwrap(), BlockSn::new(1, 1, s));
            blocks.push(b);
        }
        // What a node persists: every non-genesis block with its notarization, then the
        // finalized head.
        let mut st = Storage::open(dir.path(), Options::default()).unwrap();
        let mut records = Vec::new();
        for b in &blocks[1..] {
            records.push(pala_storage::Record::Block(b.clone()));
            records.push(pala_storage::Record::Notarization(nota(b)));
        }
        let top = blocks.last().unwrap().clone();
        records.push(pala_storage::Record::FinalizedHead(top.sn()));
        st.commit(&records).unwrap();
        st.sync().unwrap();
        assert_eq!(st.finalized_range(), Some((1, 5)), "genesis is not stored");
        let archive = StorageArchive::new(st.reader(), genesis.clone());

        // The serving side has pruned everything below its finalized head from memory.
        let chain = Chain::new(top.clone(), Some(nota(&top)));
        let req = FresherHeadRequest {
            head: genesis.sn(),
            known: vec![(genesis.height(), genesis.hash())],
        };
        let resp = serve_fresher_head(&chain, &archive, &req, 16);
        let heights: Vec<u64> = resp.blocks.iter().map(|nb| nb.block.height()).collect();
        assert_eq!(heights, vec![1, 2, 3, 4, 5], "response: {resp:?}");
        assert!(resp.blocks.iter().all(|nb| nb.notarization.is_some()));
        assert_eq!(archive.finalized_at(0).map(|nb| nb.block), Some(genesis));
    }

    /// A committee from a committee-change transaction exists nowhere but in the node's
    /// storage: a restart inside the reconfiguration window must get it back.
    #[test]
    fn installed_committees_are_persisted_and_recovered() {
        let dir = tempfile::tempdir().unwrap();
        let member = |i: u8| {
            Member::new(
                PublicKey(vec![i; 4]),
                Signature(vec![i; 8]),
                1,
                format!("127.0.0.1:{}", 9000 + i as u16),
            )
        };
        let committee = |session: u32| Committee {
            session,
            proposers: vec![member(1)],
            voters: (2..2 + session as u8).map(member).collect(),
            counting: Default::default(),
        };
        let genesis = Block::genesis(b"net".to_vec());
        let fin = child(&genesis, BlockSn::new(4, 1, 1));
        let mut records = Vec::new();
        for session in 2..=5 {
            records.extend(storage_records(StateChange::Committee(committee(session))));
        }
        records.extend(storage_records(StateChange::Block(fin.clone())));
        records.extend(storage_records(StateChange::Notarization(nota(&fin))));
        records.extend(storage_records(StateChange::Finalized {
            sn: fin.sn(),
            height: fin.height(),
            hash: fin.hash(),
        }));
        let mut st = Storage::open(dir.path(), Options::default()).unwrap();
        st.commit(&records).unwrap();
        st.close().unwrap();

        let st = Storage::open(dir.path(), Options::default()).unwrap();
        let rec = recovered_from(&st).unwrap();
        // Finalized in session 4: sessions 3 to 5 are in force, session 2 is retired.
        assert_eq!(
            rec.committees,
            vec![committee(3), committee(4), committee(5)]
        );
    }
}
