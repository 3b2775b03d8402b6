//! Independent checkers of what honest nodes accept (issue 17 item 3): for every record
//! an honest node persists and every vote it sends, the simulator recomputes from its own
//! knowledge (the committees it created, the protocol's formulas written out again here)
//! what the core should have required, so a core that counts a quorum one short, takes a
//! proposal from a proposer that is not primary, builds or accepts a block that breaks
//! the parent rules, or votes outside the K window is caught on the first such object,
//! not only later through a conflict or a liveness failure.
//!
//! What is checked, with the rules (docs/protocol.md):
//! - every notarization stored or embedded (D-9, D-12) and every clock notarization
//!   (D-14): bitmap over the session's voter list, weight `>= ceil(2W/3)`, the
//!   aggregating proposer's index in range, the aggregate signature over the signers'
//!   and that proposer's keys;
//! - every block stored: D-4 serial rule, height and session offset (C-1) from its
//!   parent, no transactions after the stop block (C-2), and the placement rule I-2;
//! - every proposal that made an honest node store a block: signed by `primary(sn.epoch)`
//!   of the session (R-2, V-3);
//! - every vote sent: the window rule V-5 against bounds of the voter's head when it
//!   voted (the head at the start and at the end of the call that recorded the vote).
//!
//! Byzantine and twin nodes are not checked (they break rules on purpose).

use super::Sim;
use pala_core::chain::Chain;
use pala_core::StateChange;
use pala_types::{
    Block, BlockSn, ClockNotarization, Committee, Domain, Hash, Notarization, Proposal, Signature,
    SignerBitmap, Vote, VoteCounting,
};
use std::collections::HashSet;

/// Bounds of a voter's head while it created one vote.
#[derive(Clone, Copy, Debug)]
pub(super) struct HeadBounds {
    /// Head when the call that recorded the vote began (a lower bound).
    pub low: BlockSn,
    /// Head when that call returned (an upper bound: heads only become fresher).
    pub high: BlockSn,
}

/// What the independent checkers remember between calls.
#[derive(Default)]
pub(super) struct AcceptedMemory {
    /// Aggregates already checked (the same notarization reaches every node).
    checked: HashSet<(Domain, Vec<u8>, SignerBitmap, u16, Signature)>,
    /// Head bounds of the votes an honest node recorded (its vote guard moved), until
    /// the vote is sent.
    pub votes: std::collections::HashMap<(usize, BlockSn), HeadBounds>,
    /// When an honest node first persisted the final stop block of each session.
    pub stop_final_at: std::collections::BTreeMap<u32, u64>,
}

/// Quorum of a committee, written out again from D-9: `ceil(2W/3)` of the voting weight.
fn quorum_weight(c: &Committee) -> u64 {
    let total: u64 = match c.counting {
        VoteCounting::Seat => c.voters.len() as u64,
        VoteCounting::Stake => c.voters.iter().map(|m| m.stake).sum(),
    };
    (2 * total).div_ceil(3)
}

impl Sim {
    /// The newest session whose stop block some honest node had finalized by time `t`
    /// (its reconfiguration had begun there).
    pub fn stop_block_final_by(&self, t: u64) -> Option<u32> {
        self.accepted
            .stop_final_at
            .iter()
            .filter(|(_, at)| **at <= t)
            .map(|(s, _)| *s)
            .max()
    }

    /// The committee of `session` as the simulator built it (never a node's view): the
    /// genesis committee, the schedule's, and past the schedule the same members (C-1).
    fn own_committee(&self, session: u32) -> Option<&Committee> {
        if session == 0 {
            return None;
        }
        self.cfg
            .core
            .schedule
            .range(..=session)
            .next_back()
            .map(|(_, c)| c)
            .or(Some(&self.committee))
    }

    /// Runs the checkers on the records node `i` persisted during one call (`records`)
    /// and the proposal that call handled, if any.
    pub(super) fn check_accepted(
        &mut self,
        i: usize,
        records: &[StateChange],
        proposal: Option<&Proposal>,
        head: HeadBounds,
    ) {
        if !self.is_honest(i) {
            return;
        }
        for r in records {
            match r {
                StateChange::Block(b) => {
                    self.check_block(i, b);
                    if let Some(p) = proposal.filter(|p| p.block.hash() == b.hash()) {
                        self.check_proposer(i, p);
                    }
                }
                StateChange::Notarization(n) => self.check_notarization(i, n),
                StateChange::Epoch { clock: Some(c), .. } => self.check_clock_nota(i, c),
                StateChange::StopBlock { session, .. } => {
                    let now = self.now;
                    self.accepted.stop_final_at.entry(*session).or_insert(now);
                }
                StateChange::VoteGuard { epoch, s } => {
                    let key = (i, BlockSn::at(*epoch, *s));
                    if self.accepted.votes.len() > 100_000 {
                        // Votes never sent (the node crashed first): forget the oldest half.
                        let cut = head.low.epoch;
                        self.accepted.votes.retain(|(_, sn), _| sn.epoch >= cut);
                    }
                    self.accepted.votes.insert(key, head);
                }
                _ => {}
            }
        }
    }

    fn check_notarization(&mut self, i: usize, n: &Notarization) {
        let ok = self.check_aggregate(
            n.sn.epoch.session,
            Domain::Vote,
            &n.block_hash.0,
            &n.signers,
            n.proposer_idx,
            &n.signature,
        );
        if let Err(why) = ok {
            let d = format!("node {i} accepted a notarization of {:?}: {why}", n.sn);
            self.violation("accepted-quorum", d);
        }
    }

    fn check_clock_nota(&mut self, i: usize, c: &ClockNotarization) {
        let ok = self.check_aggregate(
            c.epoch.session,
            Domain::Clock,
            &c.epoch.signing_bytes(),
            &c.signers,
            c.proposer_idx,
            &c.signature,
        );
        if let Err(why) = ok {
            let d = format!(
                "node {i} entered epoch {:?} on a clock notarization that {why}",
                c.epoch
            );
            self.violation("accepted-quorum", d);
        }
    }

    /// D-12 / D-14 recomputed: bitmap, quorum, proposer index, aggregate signature.
    fn check_aggregate(
        &mut self,
        session: u32,
        domain: Domain,
        msg: &[u8],
        signers: &SignerBitmap,
        proposer_idx: u16,
        sig: &Signature,
    ) -> Result<(), String> {
        let Some(c) = self.own_committee(session) else {
            return Err(format!(
                "names session {session}, which the simulator never created"
            ));
        };
        if signers.len() != c.voters.len() {
            return Err(format!(
                "has a bitmap over {} voters, the session has {}",
                signers.len(),
                c.voters.len()
            ));
        }
        let weight: u64 = signers
            .iter()
            .map(|v| match c.counting {
                VoteCounting::Seat => 1,
                VoteCounting::Stake => c.voters[v].stake,
            })
            .sum();
        let quorum = quorum_weight(c);
        if weight < quorum || quorum == 0 {
            return Err(format!(
                "carries weight {weight}, below the quorum {quorum}"
            ));
        }
        let Some(proposer) = c.proposers.get(proposer_idx as usize) else {
            return Err(format!("names proposer {proposer_idx}, out of range"));
        };
        let key = (
            domain,
            msg.to_vec(),
            signers.clone(),
            proposer_idx,
            sig.clone(),
        );
        if self.accepted.checked.contains(&key) {
            return Ok(());
        }
        let mut keys: Vec<_> = signers.iter().map(|v| &c.voters[v].public_key).collect();
        keys.push(&proposer.public_key);
        let net = self.cfg.core.network_id;
        if !self
            .scheme
            .verify_same_message(&keys, domain, net, msg, sig)
        {
            return Err("has an aggregate signature that does not verify".into());
        }
        if self.accepted.checked.len() > 50_000 {
            self.accepted.checked.clear();
        }
        self.accepted.checked.insert(key);
        Ok(())
    }

    /// R-2 / V-3: the proposal was signed by the primary of its epoch.
    fn check_proposer(&mut self, i: usize, p: &Proposal) {
        let sn = p.block.sn();
        let Some(c) = self.own_committee(sn.epoch.session) else {
            return; // reported by the block's notarization checks, if any
        };
        let primary = &c.proposers[(sn.epoch.e.saturating_sub(1) as usize) % c.proposers.len()];
        let net = self.cfg.core.network_id;
        let problem = if p.proposer != primary.id {
            Some("from a proposer that is not the primary of its epoch")
        } else if !self.scheme.verify(
            &primary.public_key,
            Domain::Proposal,
            net,
            &p.block.hash().0,
            &p.signature,
        ) {
            Some("whose signature does not verify")
        } else {
            None
        };
        if let Some(why) = problem {
            let d = format!("node {i} stored {sn:?} from a proposal {why}");
            self.violation("accepted-proposer", d);
        }
    }

    /// D-4, height, C-1 offset, C-2 and I-2 against the block's parent, and the quorum
    /// of every notarization it embeds.
    fn check_block(&mut self, i: usize, b: &Block) {
        let sn = b.sn();
        let k = self.cfg.core.k;
        let info = &b.consensus;
        for n in info.notarizations.clone() {
            self.check_notarization(i, &n);
        }
        if let Some(c) = info.clock.clone() {
            self.check_clock_nota(i, &c);
        }
        let ps = b.header.parent_sn;
        let serial_ok = if sn.epoch == ps.epoch {
            sn.s == ps.s + 1
        } else {
            sn.s == 1 && sn.epoch > ps.epoch
        };
        let mut problems: Vec<String> = Vec::new();
        if !serial_ok {
            problems.push(format!("breaks the serial rule D-4 with parent {ps:?}"));
        }
        let parent = self.nodes[i]
            .core
            .as_ref()
            .and_then(|c| c.chain().block(ps).cloned())
            .filter(|p| p.hash() == b.header.parent_hash);
        if let Some(p) = &parent {
            if b.height() != p.height() + 1 {
                problems.push(format!("has height {}, parent {}", b.height(), p.height()));
            }
            let offset = if ps.epoch.session == sn.epoch.session {
                p.header.session_offset + 1
            } else {
                1
            };
            if ps.is_pala() && b.header.session_offset != offset {
                problems.push(format!(
                    "has session offset {}, C-1 says {offset}",
                    b.header.session_offset
                ));
            }
        }
        let stop = self.cfg.core.stop_offset;
        if stop > 0 && b.header.session_offset > stop && !b.txs.is_empty() {
            problems.push("carries transactions after the stop block (C-2)".into());
        }
        let sns: Vec<BlockSn> = info.notarizations.iter().map(|n| n.sn).collect();
        if sn.s == 1 {
            let expected: Vec<BlockSn> = if ps.is_pala() {
                (ps.s.saturating_sub(k - 1).max(1)..=ps.s)
                    .map(|s| BlockSn::at(ps.epoch, s))
                    .collect()
            } else {
                Vec::new()
            };
            if sns != expected {
                problems.push(format!("(e,1) carries {sns:?}, I-2 says {expected:?}"));
            }
            if info.clock.as_ref().map(|c| c.epoch) != (sn.epoch.e > 1).then_some(sn.epoch) {
                problems.push("(e,1) must carry cnota(e) iff E > 1 (I-2)".into());
            }
        } else if sn.s <= k {
            if !sns.is_empty() || info.clock.is_some() {
                problems.push("(e,s<=K) carries a notarization (I-2)".into());
            }
        } else if sns != [BlockSn::at(sn.epoch, sn.s - k)] || info.clock.is_some() {
            problems.push(format!(
                "(e,s>K) carries {sns:?}, I-2 says exactly nota(e,s-K)"
            ));
        }
        for p in problems {
            self.violation(
                "accepted-block",
                format!("node {i} stored {sn:?}, which {p}"),
            );
        }
    }

    /// V-5 for a vote node `i` sends, against the bounds of its head when it voted.
    pub(super) fn check_vote_window(&mut self, i: usize, v: &Vote) {
        let bounds = self.accepted.votes.remove(&(i, v.sn));
        let Some(core) = self.nodes[i].core.as_ref() else {
            return;
        };
        // Without recorded bounds (a vote below the guard), the head now is still an
        // upper bound of the head at voting time.
        let HeadBounds { low, high } = bounds.unwrap_or(HeadBounds {
            low: BlockSn::NIL,
            high: core.head(),
        });
        let (sn, k) = (v.sn, self.cfg.core.k);
        let first_parent = (sn.epoch > high.epoch)
            .then(|| first_block_parent(core.chain(), sn, v.block_hash))
            .flatten();
        let problem = if high.epoch == sn.epoch && sn.s > high.s + k {
            // V-5a (and V-5c when the head was still in an older epoch, since then
            // sn.s <= K <= high.s + K).
            Some(format!(
                "outside the K window of its head (at most {high:?})"
            ))
        } else if high.epoch < sn.epoch && sn.s > k {
            Some(format!(
                "with s > K while its head {high:?} is in an older epoch (V-5c)"
            ))
        } else {
            first_parent.filter(|p1| *p1 < low || *p1 > high).map(|p1| {
                format!(
                    "whose epoch's first block builds on {p1:?}, not on its head (between {low:?} and {high:?}, V-5c)"
                )
            })
        };
        if let Some(p) = problem {
            self.violation("vote-window", format!("node {i} voted {sn:?} {p}"));
        }
    }
}

/// The parent of the first block of `sn`'s epoch on the chain of the block voted for,
/// followed by hashes (a block replaced at some sn since the vote gives `None`).
fn first_block_parent(chain: &Chain, sn: BlockSn, hash: Hash) -> Option<BlockSn> {
    let mut b = chain.block(sn).filter(|b| b.hash() == hash)?;
    while b.sn().s > 1 {
        let parent = chain.block(b.header.parent_sn)?;
        if parent.hash() != b.header.parent_hash {
            return None;
        }
        b = parent;
    }
    Some(b.header.parent_sn)
}
