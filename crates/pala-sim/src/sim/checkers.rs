//! The checkers that run on every send, finalization and event: (a) finalized chains
//! never conflict, (b) no double votes and no epoch regress, (c) `head.epoch <= L`,
//! (d) persist-before-send, judged against each node's simulated disk only (never the
//! driver kit's gate, whose mistakes it exists to catch).

use super::{Sim, Violation};
use pala_types::{Block, Epoch, Message};
use std::sync::Arc;

impl Sim {
    pub(super) fn violation(&mut self, checker: &'static str, detail: String) {
        self.violations.push(Violation {
            at: self.now,
            checker,
            detail,
        });
    }

    /// Checker (d): persist-before-send.
    pub(super) fn check_persisted_before_send(&mut self, i: usize, msg: &Message) {
        if !self.is_honest(i) {
            return;
        }
        let disk = &self.nodes[i].disk;
        let problem = match msg {
            Message::Vote(v) if v.voter == self.ids[i] => {
                if !disk.has_block(v.sn, v.block_hash) {
                    Some(format!(
                        "vote for {:?} sent before its block was durable",
                        v.sn
                    ))
                } else if disk.vote_guard(v.sn.epoch).is_none_or(|g| g < v.sn.s) {
                    Some(format!(
                        "vote for {:?} sent before its vote guard was durable",
                        v.sn
                    ))
                } else {
                    None
                }
            }
            Message::Proposal(p) if !disk.has_block(p.block.sn(), p.block.hash()) => Some(format!(
                "proposal {:?} sent before its block was durable",
                p.block.sn()
            )),
            Message::Clock(c)
                if c.voter == self.ids[i] && disk.clock_guard().is_none_or(|g| g < c.epoch) =>
            {
                Some(format!(
                    "clock message {:?} sent before its guard was durable",
                    c.epoch
                ))
            }
            Message::Status(s)
                if s.epoch > Epoch::new(1, 1) && disk.epoch().is_none_or(|e| e < s.epoch) =>
            {
                Some(format!(
                    "status with epoch {:?} sent before the epoch was durable",
                    s.epoch
                ))
            }
            _ => None,
        };
        if let Some(p) = problem {
            self.violation("persist-before-send", format!("node {i}: {p}"));
        }
        // Checker (b), first half: an honest voter never signs two blocks at one sn.
        if let Message::Vote(v) = msg {
            if self.votes_signed.len() > 200_000 {
                // Bounded memory on long runs: forget votes far below every node's
                // finalized head (a vote there would be refused by the guard anyway and
                // can no longer conflict with anything that is not yet final).
                let floor = (0..self.len())
                    .filter_map(|j| self.node(j).map(|n| n.finalized()))
                    .min()
                    .unwrap_or_default();
                self.votes_signed.retain(|(_, sn), _| *sn >= floor);
            }
            if v.voter == self.ids[i] {
                match self.votes_signed.insert((i, v.sn), v.block_hash) {
                    Some(h) if h != v.block_hash => self.violation(
                        "double-vote",
                        format!("node {i} voted two blocks at {:?}", v.sn),
                    ),
                    _ => {}
                }
            }
        }
    }

    pub(super) fn on_finalized(&mut self, i: usize, block: &Arc<Block>) {
        self.stats[i].finalized += 1;
        let n = self.len();
        if let Some(e) = self.proposed_at.get_mut(&block.hash()) {
            self.stats[i].latencies.record(self.now - e.0);
            e.1 += 1;
            if e.1 >= n {
                self.proposed_at.remove(&block.hash());
            }
        }
        if self.proposed_at.len() > 100_000 {
            // Blocks some node will never finalize (abandoned forks, crashed nodes).
            let cutoff = self.now.saturating_sub(60_000);
            self.proposed_at.retain(|_, e| e.0 >= cutoff);
        }
        self.log(|| format!("n{i} finalized {:?} h={}", block.sn(), block.height()));
        if !self.is_honest(i) {
            return;
        }
        // Checker (a): finalized chains never conflict, except (C-7d) empty blocks after
        // a stop block until the next session has a final block.
        let h = block.height();
        let stop = self.cfg.core.stop_offset;
        let after_stop = |b: &Block| stop > 0 && b.header.session_offset > stop && b.txs.is_empty();
        let relaxed = after_stop(block);
        match self.finalized_chain.get(&h).copied() {
            Some((x, old_relaxed)) if x != block.hash() => {
                if old_relaxed || relaxed {
                    // C-7: one side is an empty block after a stop block; the branch that
                    // carries the next session wins, so keep the non-relaxed one.
                    if old_relaxed {
                        self.finalized_chain.insert(h, (block.hash(), relaxed));
                    }
                } else {
                    let d = format!(
                        "node {i} finalized {:?} at height {h}, conflicting with another node",
                        block.sn()
                    );
                    self.violation("finality-conflict", d);
                }
            }
            Some(_) => {}
            None => {
                self.finalized_chain.insert(h, (block.hash(), relaxed));
            }
        }
        if self.finalized_chain.len() > 4096 {
            // Keep the checker's memory bounded on long runs: heights far below every
            // node's finalized head cannot be finalized again.
            let cut = h.saturating_sub(2048);
            self.finalized_chain = self.finalized_chain.split_off(&cut);
        }
    }

    /// Checkers (b) epoch monotonicity and (c) `head.epoch <= L`.
    pub(super) fn check_node(&mut self, i: usize) {
        let Some(core) = self.nodes[i].core.as_ref() else {
            return;
        };
        let (epoch, head) = (core.epoch(), core.head());
        if head.epoch > epoch {
            self.violation(
                "head-epoch",
                format!("node {i}: head {head:?} is ahead of its epoch {epoch:?}"),
            );
        }
        if self.is_honest(i) {
            if epoch < self.nodes[i].max_epoch {
                let d = format!(
                    "node {i}: epoch went back from {:?} to {epoch:?}",
                    self.nodes[i].max_epoch
                );
                self.violation("epoch-regress", d);
            }
            self.nodes[i].max_epoch = epoch;
        }
    }
}
