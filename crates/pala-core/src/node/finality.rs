//! Finalization (docs/protocol.md section 4.2).
//!
//! - **FC-3** When `head` extends: reset the voter timer if `head.epoch == L` (E-2b),
//!   retry `pending` (V-7), announce the status (W-6) and poke the chain syncer.
//! - **F-B / F-C** (the rule of F-1): a notarized block `(e,t)` with `t > K` that starts
//!   to count (it and its ancestors are notarized) finalizes `(e, t-K)` and all its
//!   ancestors; the finalized head only moves forward. F-B is this rule for the head
//!   only; pala applies it to every block that connects, because a notarization that
//!   arrives after the head moved to a fresher epoch (the stop block's proof, section
//!   6 C-9) would otherwise never finalize anything.
//! - **F-2** Finality drops the votes, voted sns, pending and unnotarized proposals at or
//!   below the new finalized head and the clock messages of its epoch or older, and checks
//!   whether a stop block just became final (C-3) or a new session has its first final
//!   block (C-5).

use super::Node;
use crate::counters::CoreEvent;
use crate::io::{Output, StateChange};
use pala_types::BlockSn;
use std::collections::BTreeMap;

impl Node {
    /// FC-3.
    pub(super) fn on_head_extended(&mut self) {
        let head = self.chain.head();
        if head.epoch == self.epoch {
            self.reset_voter_timer(); // E-2(b)
        }
        self.status_dirty = true;
        self.retry_pending = true;
        self.sync_dirty = true;
    }

    /// F-B / F-C for blocks that just started to count.
    pub(super) fn finalize_connected(&mut self, connected: &[BlockSn]) {
        let k = if mutated!(self, FinalizeOneEarly) {
            self.k() - 1
        } else {
            self.k()
        };
        let head = self.chain.head();
        let mut best = self.chain.finalized();
        let mut trigger = best;
        for &sn in connected {
            if sn.s <= k {
                continue;
            }
            let Some(target) = self.chain.ancestor(sn, k) else {
                continue;
            };
            if target <= best {
                continue;
            }
            // F-C's safety argument: every notarized chain of a later epoch contains
            // `target`, so the freshest one (the head's) does. A target off it means
            // more than f faulty voters; finalizing it would abandon the head.
            if !self.chain.descends_from(head, target) {
                self.count(CoreEvent::FinalityOffHeadChain);
                continue;
            }
            best = target;
            trigger = sn;
        }
        if best > self.chain.finalized() {
            self.finalize(best, trigger);
        }
    }

    /// Finalizes `target`, whose finality the notarization of `trigger` proves.
    fn finalize(&mut self, target: BlockSn, trigger: BlockSn) {
        // Does this step finalize the stop block of the current session (C-1, C-3)?
        let stop_block = self.stop_block_on_path(target);
        let stop = stop_block.as_ref().map(|b| b.sn());
        let keep_root = match (stop, self.reconfig.root) {
            (Some(st), _) => st,
            (None, Some(r)) if target.epoch.session <= r.epoch.session => r,
            _ => target,
        };
        let done = self.chain.finalize(target, keep_root);
        let fb = self.chain.finalized_block().clone();
        self.persist(StateChange::Finalized {
            sn: target,
            height: fb.height(),
            hash: fb.hash(),
        });
        for (block, notarization) in done {
            self.note_committee_change(&block);
            self.out.push(Output::Finalized {
                block,
                notarization,
            });
        }
        // F-2: drop what finality made useless.
        let above = BlockSn::at(target.epoch, target.s + 1);
        while self.voter.voted.first().is_some_and(|s| *s < above) {
            self.voter.voted.pop_first();
        }
        drop_below(&mut self.proposer.votes, &above);
        drop_below(&mut self.proposer.unnotarized, &above);
        drop_below(&mut self.voter.pending, &above);
        let fe = target.epoch;
        self.proposer.clocks.retain(|_, c| c.epoch > fe);
        drop_below(&mut self.voter.vote_guard, &fe);
        // C-5 before C-3: a single step can end one reconfiguration and begin the next.
        if let Some(r) = self.reconfig.root {
            if target.epoch.session > r.epoch.session {
                // Keep the new stop block as the root if this step also reached it.
                self.end_reconfiguration(stop.unwrap_or(target));
            }
        }
        if let Some(st) = stop_block {
            self.keep_stop_proof(&st, trigger);
            self.begin_reconfiguration(&st);
        }
    }
}

/// Removes the keys below `bound`, keeping the rest: what `split_off(bound)` keeps, but
/// in place. Finalization does this on every block for several maps, and `split_off`
/// builds a new tree each time.
fn drop_below<K: Ord, V>(m: &mut BTreeMap<K, V>, bound: &K) {
    while m.first_key_value().is_some_and(|(k, _)| k < bound) {
        m.pop_first();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_below_keeps_the_bound_and_what_is_above_it() {
        let mut m: BTreeMap<u32, ()> = (1..=5).map(|k| (k, ())).collect();
        drop_below(&mut m, &3);
        assert_eq!(m.keys().copied().collect::<Vec<_>>(), [3, 4, 5]);
        drop_below(&mut m, &9);
        assert!(m.is_empty());
    }
}
