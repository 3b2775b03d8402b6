//! The check of state commitments against this node's own history of digests, before a
//! voter votes and again when a block is finalized.
//!
//! Block `b` commits to the state after height `c = b.header.state.height`, at most
//! `b.height − 1 − 2K` (W-12e, [`pala_types::StateCommitment`]; the core refuses a
//! block that commits to a newer height). A primary commits to the newest height it has
//! applied within that bound ([`StateHistory::at_or_below`]).
//!
//! *Before voting* ([`StateHistory::before_vote`], the consensus stage's
//! `commitment_gate`): when the proposal of `b` reaches a voter, the notarization
//! embedded K blocks back has finalized the block 2K back (F-C), so the voter has
//! usually applied `c` and compares the digest with its own. A proposal that contradicts
//! it gets no vote (`pala_proposal_commitments_refused_total`); one the voter cannot check
//! yet (its application lags, or `c` is older than its history) is voted for unchecked
//! (`..._unchecked_total`), so a slow application never stalls consensus. A finalized
//! commitment is thus vouched for by every honest voter of its quorum that had applied
//! `c` and agreed, not by its proposer alone.
//!
//! *When applying* ([`StateHistory::check`]): this node has applied every height below
//! `b.height`, so it checks any commitment whose height is still in its history of the
//! last [`HISTORY`] digests (older ones, after a restart or a long pipeline, pass
//! unchecked). A commitment to a height at or above `b`'s own counts as a mismatch too
//! (logged and counted; it says nothing about this node's state). A digest that differs
//! from this node's means this node's state, or the quorum's, is not the committed one:
//! the stage logs both digests and heights, counts it
//! (`pala_state_commitment_mismatches_total`) and stops serving snapshots.

use pala_types::{Block, Hash, StateCommitment};
use std::collections::VecDeque;

/// Applied heights whose digests are kept. A commitment lags finalization by the
/// proposer's application pipeline (a few blocks); hundreds cover a slow proposer.
pub const HISTORY: usize = 512;

/// A commitment that disagrees with this node's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// The block that carried the commitment.
    pub block_height: u64,
    /// What it commits to.
    pub committed: StateCommitment,
    /// This node's digest at `committed.height` (`None`: a height no honest proposer
    /// could have applied).
    pub mine: Option<Hash>,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.committed;
        match self.mine {
            Some(mine) => write!(
                f,
                "state commitment mismatch: finalized block {} commits to digest {} at height \
                 {}, this node's digest at height {} is {mine}",
                self.block_height, c.digest, c.height, c.height
            ),
            None => write!(
                f,
                "state commitment mismatch: finalized block {} commits to digest {} at height \
                 {}, which is not below its own height",
                self.block_height, c.digest, c.height
            ),
        }
    }
}

/// What a voter learns from a proposal's commitment before it votes (W-12e).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BeforeVote {
    /// The block commits to no state.
    Nothing,
    /// The committed digest is this node's own at that height.
    Agrees,
    /// This node has not applied the committed height yet, or no longer keeps it.
    NotApplied,
    /// The committed digest is not this node's: no vote.
    Contradicts(Mismatch),
}

/// This node's digests of its last applied heights.
#[derive(Debug, Default)]
pub struct StateHistory {
    digests: VecDeque<(u64, Hash)>,
}

impl StateHistory {
    /// Records the digest after applying `height` (heights ascend).
    pub fn record(&mut self, height: u64, digest: Hash) {
        match self.digests.back() {
            Some((h, _)) if *h >= height => return,
            // A jump (a restored snapshot) starts a new dense run.
            Some((h, _)) if *h + 1 != height => self.digests.clear(),
            _ => {}
        }
        if self.digests.len() == HISTORY {
            self.digests.pop_front();
        }
        self.digests.push_back((height, digest));
    }

    /// The newest recorded state, [`StateCommitment::NONE`] before any.
    pub fn latest(&self) -> StateCommitment {
        self.digests
            .back()
            .map_or(StateCommitment::NONE, |&(height, digest)| StateCommitment {
                height,
                digest,
            })
    }

    /// The newest recorded state at or below `height` (what a block that may commit to
    /// `height` at most commits to), [`StateCommitment::NONE`] when none is kept.
    pub fn at_or_below(&self, height: u64) -> StateCommitment {
        let newest = self.latest();
        if newest.height <= height {
            return newest;
        }
        self.digest_at(height)
            .map_or(StateCommitment::NONE, |digest| StateCommitment {
                height,
                digest,
            })
    }

    /// Compares `block`'s commitment with this node's digest before it votes for it.
    pub fn before_vote(&self, block: &Block) -> BeforeVote {
        let c = block.header.state;
        if !c.is_some() {
            return BeforeVote::Nothing;
        }
        match self.digest_at(c.height) {
            None => BeforeVote::NotApplied,
            Some(mine) if mine == c.digest => BeforeVote::Agrees,
            Some(mine) => BeforeVote::Contradicts(Mismatch {
                block_height: block.height(),
                committed: c,
                mine: Some(mine),
            }),
        }
    }

    /// This node's digest after `height`, if still kept.
    pub fn digest_at(&self, height: u64) -> Option<Hash> {
        let first = self.digests.front()?.0;
        let i = usize::try_from(height.checked_sub(first)?).ok()?;
        // Heights are applied one by one, so the deque is dense from `first` on.
        self.digests
            .get(i)
            .filter(|(h, _)| *h == height)
            .map(|(_, d)| *d)
    }

    /// Checks `block`'s commitment; `Ok(true)` when it was checked and agrees,
    /// `Ok(false)` when there is nothing to check (none, or older than the history).
    pub fn check(&self, block: &Block) -> Result<bool, Mismatch> {
        let c = block.header.state;
        if !c.is_some() {
            return Ok(false);
        }
        if c.height >= block.height() {
            return Err(Mismatch {
                block_height: block.height(),
                committed: c,
                mine: None,
            });
        }
        match self.digest_at(c.height) {
            None => Ok(false),
            Some(mine) if mine == c.digest => Ok(true),
            Some(mine) => Err(Mismatch {
                block_height: block.height(),
                committed: c,
                mine: Some(mine),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(height: u64, state: StateCommitment) -> Block {
        crate::test_blocks::block_at(height, 0, state, vec![])
    }

    fn at(height: u64, digest: Hash) -> StateCommitment {
        StateCommitment { height, digest }
    }

    #[test]
    fn commitments_are_checked_against_the_kept_history() {
        let mut h = StateHistory::default();
        assert_eq!(h.latest(), StateCommitment::NONE);
        for i in 1..=10u64 {
            h.record(i, Hash::of(&i.to_le_bytes()));
        }
        let d = |i: u64| Hash::of(&i.to_le_bytes());
        assert_eq!(h.latest(), at(10, d(10)));
        assert_eq!(h.check(&block(11, StateCommitment::NONE)), Ok(false));
        assert_eq!(h.check(&block(11, at(7, d(7)))), Ok(true));
        let e = h.check(&block(11, at(7, d(8)))).unwrap_err();
        assert_eq!(e.mine, Some(d(7)));
        let text = e.to_string();
        assert!(text.contains(&d(7).to_string()) && text.contains(&d(8).to_string()));
        assert!(
            text.contains("height 7") && text.contains("block 11"),
            "{text}"
        );
        let e = h.check(&block(9, at(9, d(9)))).unwrap_err();
        assert_eq!(e.mine, None, "a block cannot commit to its own height");
        // Above what this node applied (only possible for a block far ahead) or below
        // the history: nothing to check.
        assert_eq!(h.check(&block(20, at(15, d(1)))), Ok(false));
    }

    #[test]
    fn a_voter_tells_agreeing_contradicting_and_uncheckable_commitments_apart() {
        let mut h = StateHistory::default();
        let d = |i: u64| Hash::of(&i.to_le_bytes());
        for i in 3..=10u64 {
            h.record(i, d(i));
        }
        let before = |c| h.before_vote(&block(40, c));
        assert_eq!(before(StateCommitment::NONE), BeforeVote::Nothing);
        assert_eq!(before(at(9, d(9))), BeforeVote::Agrees);
        match before(at(9, d(8))) {
            BeforeVote::Contradicts(m) => assert_eq!((m.mine, m.block_height), (Some(d(9)), 40)),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            before(at(11, d(1))),
            BeforeVote::NotApplied,
            "not applied yet"
        );
        assert_eq!(
            before(at(2, d(1))),
            BeforeVote::NotApplied,
            "below the history"
        );
        assert_eq!(h.at_or_below(20), at(10, d(10)));
        assert_eq!(h.at_or_below(7), at(7, d(7)));
        assert_eq!(h.at_or_below(2), StateCommitment::NONE);
        assert_eq!(
            StateHistory::default().at_or_below(5),
            StateCommitment::NONE
        );
    }

    #[test]
    fn the_history_keeps_the_newest_heights() {
        let mut h = StateHistory::default();
        for i in 1..=(HISTORY as u64 + 100) {
            h.record(i, Hash::of(&i.to_le_bytes()));
        }
        assert_eq!(h.digest_at(100), None);
        assert_eq!(h.digest_at(101), Some(Hash::of(&101u64.to_le_bytes())));
        let top = HISTORY as u64 + 100;
        assert_eq!(h.digest_at(top), Some(Hash::of(&top.to_le_bytes())));
        assert_eq!(h.digest_at(top + 1), None);
        h.record(5, Hash::ZERO);
        assert_eq!(h.latest().height, top, "heights only ascend");
        h.record(top + 10, Hash::ZERO);
        assert_eq!(h.digest_at(top), None, "a jump starts a new run");
        assert_eq!(h.digest_at(top + 10), Some(Hash::ZERO));
    }
}
