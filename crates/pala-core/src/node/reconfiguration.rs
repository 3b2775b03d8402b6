//! Reconfiguration (docs/protocol.md section 6).
//!
//! - **C-1** The stop block of session S is its block with `session_offset ==
//!   stop_offset`; the committee of S+1 is the newest valid committee-change transaction
//!   at or before it (section 0.1 item 11), else the genesis schedule, else the same
//!   members.
//! - **C-3** When finality reaches the stop block: install the committee of S+1, persist
//!   it, set `L := (S+1, 1)` (no clock notarization) and hand back the synced blocks of
//!   S+1 that could not be verified before (C-8).
//! - **C-5** When finality reaches session S+1: re-root the tree on the finalized head and
//!   keep only the committees of the last two sessions.
//! - **C-7a/b** Between C-3 and C-5 the stop block stays the root of the block tree, so
//!   branches off it (the new session's) can be inserted and synced.
//! - **C-9** The notarized blocks after the stop block up to the one whose notarization
//!   finalized it are kept (for the last few sessions) and sent with the epoch answer to
//!   nodes still in that session: C-7c may drop them from the finalized chain, and then
//!   nothing else proves the stop block final to a node that missed them.
//! - **C-9d** [INFERRED; the sweep's seed 5030] The proof lives in memory, so a node
//!   restarted inside a reconfiguration window rebuilds it from its store: the finalized
//!   blocks from the stop block up to the finalized head, then the notarized chain above
//!   it up to the first block whose notarization finalizes the stop block (F-1). Without
//!   it, the nodes it left behind in session S ask it for the epoch and get nothing.

use super::Node;
use crate::counters::CoreEvent;
use crate::io::{Output, StateChange};
use pala_types::{Block, BlockSn, Committee, Epoch, NodeId, NotarizedBlock, Session};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The state of the session change in progress (section 6).
pub(super) struct Reconfiguration {
    /// Committees of later sessions fixed in genesis (section 0.1 item 11).
    pub(super) schedule: BTreeMap<Session, Committee>,
    /// The finalized stop block while its session's successor is not final yet (C-7a).
    pub(super) root: Option<BlockSn>,
    /// The committee named by the latest committee-change transaction of this session.
    pub(super) next_committee: Option<Committee>,
    /// Synced blocks of a session whose committee is not installed yet (C-8).
    pub(super) deferred_blocks: Option<(NodeId, Vec<NotarizedBlock>)>,
    /// Per session: the notarized chain after its stop block that finalized it (C-9).
    pub(super) stop_proofs: BTreeMap<Session, Vec<NotarizedBlock>>,
}

/// Sessions whose stop block proofs are kept (C-9); a node further behind than this
/// catches up from a node that crossed those boundaries more recently.
const STOP_PROOFS_KEPT: usize = 4;

impl Node {
    /// The stop block of the current session on the path from `target` down to the
    /// finalized chain, if this finalization reaches it.
    pub(super) fn stop_block_on_path(&self, target: BlockSn) -> Option<Arc<Block>> {
        let stop = self.cfg.stop_offset;
        if stop == 0 {
            return None;
        }
        let session = self.epoch.session;
        if self
            .reconfig
            .root
            .is_some_and(|r| r.epoch.session == session)
        {
            return None; // already finalized
        }
        let mut sn = target;
        loop {
            let e = self.chain.get(sn)?;
            let b = &e.block;
            if b.sn().epoch.session == session && b.header.session_offset == stop {
                return Some(b.clone());
            }
            if b.sn().epoch.session < session
                || b.header.session_offset < stop
                || sn == self.chain.root()
            {
                return None;
            }
            sn = b.parent_sn();
        }
    }

    /// Remembers the newest valid committee-change transaction of the session, in a
    /// block at or before the stop block (section 0.1 item 11; the rule's one home is
    /// [`crate::committee_rule`], which a node joining by state sync applies too).
    pub(super) fn note_committee_change(&mut self, block: &Block) {
        let invalid = crate::committee_rule::note_committee_changes(
            &mut self.reconfig.next_committee,
            block,
            self.epoch.session,
            self.cfg.stop_offset,
            self.scheme.as_ref(),
            self.cfg.network_id,
        );
        for _ in 0..invalid {
            self.count(CoreEvent::CommitteeChangeInvalid);
        }
    }

    /// P-3 for C-1: the session's newest committee change lives in memory from its
    /// finality until C-3 installs it, so a node that restarts in between reads it again
    /// from the finalized blocks of the session up to the stop block (at most
    /// `stop_offset` archive reads at startup). Blocks the archive no longer holds (a
    /// node that joined by state sync) cannot be read.
    pub(super) fn rescan_committee_changes(&mut self) {
        let stop = self.cfg.stop_offset;
        let fin = self.chain.finalized_block().clone();
        let offset = fin.header.session_offset;
        if stop == 0 || offset == 0 || self.epoch.session != fin.sn().epoch.session {
            return; // no reconfiguration, genesis, or C-3 already ran (window open)
        }
        let first = fin.height() + 1 - u64::from(offset);
        for h in first..first + u64::from(offset.min(stop)) {
            let block = if h == fin.height() {
                Some(fin.clone())
            } else {
                self.archive.finalized_at(h).map(|nb| nb.block)
            };
            if let Some(b) = block {
                self.note_committee_change(&b);
            }
        }
    }

    /// C-9a: the notarized chain after `session`'s stop block that finalized it, while
    /// this node keeps it (the last few sessions it crossed), for a node that keeps the
    /// proofs of every session for joiners (W-12).
    pub fn stop_proof(&self, session: Session) -> Option<&[NotarizedBlock]> {
        self.reconfig.stop_proofs.get(&session).map(Vec::as_slice)
    }

    /// C-9: keeps the blocks after `stop` up to `trigger`, whose notarization finalized
    /// it. They carry no transactions (C-2), so the proof stays small; the stop block
    /// itself is on every finalized chain (C-7d) and is synced as usual.
    pub(super) fn keep_stop_proof(&mut self, stop: &Block, trigger: BlockSn) {
        let mut proof = Vec::new();
        let mut sn = trigger;
        while sn != stop.sn() {
            let Some(e) = self.chain.get(sn) else {
                return; // not a descendant of the stop block: nothing to prove with
            };
            proof.push(NotarizedBlock {
                block: e.block.clone(),
                notarization: e.nota.clone(),
            });
            sn = e.block.parent_sn();
        }
        proof.reverse();
        let proofs = &mut self.reconfig.stop_proofs;
        proofs.insert(stop.sn().epoch.session, proof);
        while proofs.len() > STOP_PROOFS_KEPT {
            proofs.pop_first();
        }
    }

    /// C-9d: the proof of the window this node was in when it stopped, rebuilt from what
    /// recovery loaded (`self.chain` rooted at the finalized head, the archive below it).
    /// Only the open window's proof can be rebuilt: once the next session is final, C-7c
    /// may have dropped the blocks that finalized the stop block from every store.
    pub(super) fn rebuild_stop_proof(&mut self) {
        let stop = self.cfg.stop_offset;
        let fin = self.chain.finalized_block().clone();
        let session = fin.sn().epoch.session;
        if stop == 0 || self.epoch.session <= session {
            return; // no window open: the finalized head's session is still ours
        }
        // Persists are applied in order, so `L` left the session only after `Finalized`
        // reached the stop block: it is the finalized head or one of its ancestors of the
        // session. Walk down the archive to it, keeping the blocks passed.
        let mut above_stop = Vec::new();
        let mut cur = NotarizedBlock {
            block: fin.clone(),
            notarization: self.chain.get(fin.sn()).and_then(|e| e.nota.clone()),
        };
        while cur.block.header.session_offset != stop {
            if cur.block.sn().epoch.session != session || cur.block.header.session_offset < stop {
                return;
            }
            let parent_hash = cur.block.header.parent_hash;
            let Some(parent) = self
                .archive
                .finalized_at(cur.block.height() - 1)
                .filter(|p| p.block.hash() == parent_hash)
            else {
                return; // pruned from the archive: nothing to prove with
            };
            above_stop.push(std::mem::replace(&mut cur, parent));
        }
        let stop_block = cur.block;
        above_stop.reverse();
        // F-1: a notarized (e, t) with t > K finalizes (e, t - K), K parents up in its own
        // epoch; it proves the stop block final when that block is at or above it. Blocks
        // of the next session prove it too, but a node still in session S cannot verify
        // them (C-8), so the proof stays in S (C-9b).
        let k = self.k();
        let proves = |b: &Block| {
            b.sn().epoch.session == session
                && b.sn().s > k
                && b.height().saturating_sub(u64::from(k)) >= stop_block.height()
        };
        let proof = match above_stop.iter().position(|nb| proves(&nb.block)) {
            Some(i) => {
                above_stop.truncate(i + 1);
                above_stop
            }
            None => {
                let Some(trigger) = self
                    .chain
                    .entries()
                    .filter(|(_, e)| e.connected && proves(&e.block))
                    .map(|(sn, e)| (e.block.height(), sn))
                    .min()
                    .map(|(_, sn)| sn)
                else {
                    return;
                };
                let mut tail = Vec::new();
                let mut sn = trigger;
                while sn != fin.sn() {
                    let e = self
                        .chain
                        .get(sn)
                        .expect("a connected entry's ancestors are stored");
                    tail.push(NotarizedBlock {
                        block: e.block.clone(),
                        notarization: e.nota.clone(),
                    });
                    sn = e.block.parent_sn();
                }
                tail.reverse();
                above_stop.extend(tail);
                above_stop
            }
        };
        // C-9b: every block of a proof carries its notarization.
        if proof.iter().all(|nb| nb.notarization.is_some()) {
            self.reconfig.stop_proofs.insert(session, proof);
        }
    }

    /// C-9 (receiving): a peer that left our session sent the chain that finalized its
    /// stop block; inserting it finalizes the stop block here (F-C) if it connects.
    pub(super) fn apply_stop_proof(&mut self, proof: &[NotarizedBlock]) {
        let before = self.chain.finalized();
        self.insert_synced(proof);
        if self.chain.finalized() > before {
            self.count(CoreEvent::StopProofApplied);
        }
    }

    /// C-3: the stop block of session S is final.
    pub(super) fn begin_reconfiguration(&mut self, stop: &Block) {
        let s = stop.sn().epoch.session;
        self.persist(StateChange::StopBlock {
            session: s,
            sn: stop.sn(),
            height: stop.height(),
            hash: stop.hash(),
        });
        // 1. The committee of S+1: a committee-change transaction, else the genesis
        //    schedule, else the same members.
        let next = crate::committee_rule::committee_after(
            s,
            self.reconfig.next_committee.take(),
            &self.reconfig.schedule,
            &self
                .committee(s)
                .expect("the current session has a committee"),
        );
        if self.committee(s + 1).is_none_or(|c| *c != next) {
            self.committees.install(self.scheme.as_ref(), next.clone());
            self.persist(StateChange::Committee(next.clone()));
        }
        self.out.push(Output::CommitteeInstalled(
            self.committee(s + 1).expect("installed"),
        ));
        self.reconfig.root = Some(stop.sn());
        self.count(CoreEvent::Reconfigurations);
        // 2-5. L := (S+1, 1) (no clock notarization), stop producing, reset the timer;
        // the readiness gate of the new primary runs in settle().
        let first = Epoch::new(s + 1, 1);
        if self.epoch < first {
            self.advance_epoch(first, None);
        }
        // C-8: blocks of S+1 that arrived too early can be verified now.
        if let Some((from, blocks)) = self.reconfig.deferred_blocks.take() {
            self.out.push(Output::Reverify { from, blocks });
        }
    }

    /// C-5: the new session has a final block; `new_root` is the finalized head, or the
    /// next session's stop block when the same step finalized it (T-49).
    pub(super) fn end_reconfiguration(&mut self, new_root: BlockSn) {
        self.reconfig.root = None;
        let fin = self.chain.finalized();
        self.chain.reroot(new_root);
        // keep the committees of the last two sessions.
        self.committees
            .retain_from(fin.epoch.session.saturating_sub(1).max(1));
        self.out.push(Output::ReconfigurationEnded {
            session: fin.epoch.session,
        });
    }
}
