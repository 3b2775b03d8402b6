//! Builders shared by the integration tests.
#![allow(dead_code)]

use pala_storage::{EpochStatus, Options, Record};
use pala_types::{
    Block, BlockHeader, BlockSn, ClockNotarization, Committee, ConsensusInfo, Epoch, Member,
    Notarization, PublicKey, Signature, SignerBitmap,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub fn genesis() -> Arc<Block> {
    Arc::new(Block::genesis(b"test-net".to_vec()))
}

/// A child of `parent` at `sn` with `payload` bytes of transactions (content varies with `tag`).
pub fn child(parent: &Block, sn: BlockSn, payload: usize, tag: u8) -> Arc<Block> {
    Arc::new(Block::new(
        BlockHeader {
            sn,
            parent_sn: parent.sn(),
            parent_hash: parent.hash(),
            height: parent.height() + 1,
            session_offset: 1,
            timestamp_ms: 1000 + sn.s as u64,
            state: pala_types::StateCommitment::NONE,
        },
        vec![(0..payload).map(|i| (i as u8) ^ tag).collect()],
        ConsensusInfo::default(),
    ))
}

/// A chain of `n` blocks after genesis in epoch (1,1).
pub fn chain(n: u32, payload: usize) -> Vec<Arc<Block>> {
    let mut v = vec![genesis()];
    for s in 1..=n {
        let b = child(v.last().unwrap(), BlockSn::new(1, 1, s), payload, s as u8);
        v.push(b);
    }
    v
}

pub fn nota(b: &Block, votes: usize) -> Notarization {
    let mut signers = SignerBitmap::new(8);
    for i in 0..votes {
        signers.insert(i);
    }
    Notarization {
        sn: b.sn(),
        block_hash: b.hash(),
        proposer_idx: 0,
        signers,
        signature: Signature(vec![7u8; 48]),
    }
}

pub fn cnota(epoch: Epoch) -> ClockNotarization {
    let mut signers = SignerBitmap::new(4);
    signers.insert(1);
    signers.insert(2);
    signers.insert(3);
    ClockNotarization {
        epoch,
        proposer_idx: 1,
        signers,
        signature: Signature(vec![9u8; 48]),
    }
}

/// A committee of `session` with one proposer and `voters` voters (keys vary with `tag`).
pub fn committee(session: u32, voters: u8, tag: u8) -> Committee {
    let member = |i: u8| {
        Member::new(
            PublicKey(vec![tag, i, 7, 7]),
            Signature(vec![i; 8]),
            1 + i as u64,
            format!("127.0.0.1:{}", 9000 + i as u16),
        )
    };
    Committee {
        session,
        proposers: vec![member(0)],
        voters: (1..=voters).map(member).collect(),
        counting: Default::default(),
    }
}

pub fn epoch_status(e: Epoch) -> Record {
    Record::EpochStatus(EpochStatus {
        epoch: e,
        clock: (e.e > 1).then(|| cnota(e)),
    })
}

pub fn small_opts() -> Options {
    Options {
        segment_size: 16 << 10,
        ..Options::default()
    }
}

pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    v.sort();
    v
}
