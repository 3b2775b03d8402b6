//! Block production by the primary proposer (docs/protocol.md section 3.2).
//!
//! - **N-1** Produce for epoch `L` iff primary of `L`, `L > head.epoch` and the readiness
//!   gate allows it; stop when `L` moves on.
//! - **N-2** The readiness gate: start once at least as fresh as a quorum (at once for
//!   the first block of a session), but not before `DELAY_FIRST_PROPOSAL`; without a
//!   quorum, start anyway after `2 * T_VOTER`.
//! - **N-3** Blocks `(e,1), (e,2), ...` in order: `(e,1)` on `head` with the notarizations
//!   and clock notarization of I-1, `(e,s)` for `s <= K` right away, `(e,s)` for `s > K`
//!   only once `nota(e, s-K)` is stored, which it embeds (after folding in late votes,
//!   PV-5). The driver fills each block ([`crate::Output::RequestPayload`]); blocks after
//!   the stop block carry no user transactions and are sealed at once (C-2).
//! - **N-4** Sign, remember as unnotarized, broadcast, and vote for it if also a voter.
//!
//! A proposer restarted inside an epoch it produced in re-proposes its stored blocks
//! instead of making different ones (no equivocation).

use super::notarization::VoteCollector;
use super::voting::VoteAttempt;
use super::Node;
use crate::config::Tick;
use crate::counters::CoreEvent;
use crate::io::{Output, StateChange, TimerKind};
use pala_types::{
    Block, BlockHeader, BlockSn, ClockMessage, Committee, ConsensusInfo, Domain, Epoch, Message,
    NodeId, Proposal, StateCommitment,
};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What this node does as a proposer (section 3.1, proposer rows).
#[derive(Default)]
pub(super) struct Proposer {
    /// The epoch it produces in, while it does (N-1).
    pub(super) production: Option<Production>,
    /// When the readiness gate was first evaluated in this epoch (N-2 `t0`).
    pub(super) gate_started: Option<Tick>,
    /// The newest wall-clock time a driver supplied with a payload, for the blocks sealed
    /// without one (C-2).
    pub(super) wall_clock_ms: u64,
    /// The newest state commitment a driver supplied with a payload, for the blocks
    /// sealed without one (C-2).
    pub(super) state: StateCommitment,
    /// Votes for its own blocks of the local epoch, as primary (PV).
    pub(super) votes: BTreeMap<BlockSn, VoteCollector>,
    /// Its proposals not notarized yet, resent to voters that appear (N-4, W-7.4).
    pub(super) unnotarized: BTreeMap<BlockSn, Proposal>,
    /// The newest clock message per voter index (E-4).
    pub(super) clocks: BTreeMap<usize, ClockMessage>,
}

/// Production in one epoch (N-1, N-3).
pub(super) struct Production {
    epoch: Epoch,
    next_s: u32,
    awaiting_payload: bool,
}

impl Node {
    /// The primary's own proposals of `L` not notarized yet (N-4): at most K of them (N-3).
    pub fn unnotarized_proposals(&self) -> impl Iterator<Item = BlockSn> + '_ {
        self.proposer.unnotarized.keys().copied()
    }

    /// Whether a block with transactions is not final yet: its finality needs the K
    /// blocks after it, so a driver should not hold back the next block (the block
    /// cadence of N-3). Looks at the head's chain above the finalized head and at this
    /// proposer's unnotarized blocks.
    pub fn carries_unfinalized_transactions(&self) -> bool {
        // Walked without collecting: the stage asks on every round while a block waits.
        let fin = self.chain.finalized();
        let mut sn = self.chain.head();
        let mut on_chain = false;
        while sn > fin {
            let Some(e) = self.chain.get(sn) else { break };
            if !e.block.txs.is_empty() {
                on_chain = true;
                break;
            }
            sn = e.block.parent_sn();
        }
        on_chain
            || self
                .proposer
                .unnotarized
                .values()
                .any(|p| !p.block.txs.is_empty())
    }

    /// N-1, N-2, N-3: decides whether and what to produce.
    pub(super) fn drive_production(&mut self) {
        let epoch = self.epoch;
        if !self.is_primary() {
            self.proposer.production = None;
            self.proposer.gate_started = None;
            return;
        }
        debug_assert!(
            self.proposer
                .production
                .as_ref()
                .is_none_or(|p| p.epoch == epoch),
            "E-7 stops production whenever L moves"
        );
        if self.proposer.production.is_none() {
            // N-1(b)
            if self.chain.head().epoch >= epoch {
                return;
            }
            // A timeout block of epoch E > 1 must carry cnota(E) (I-1).
            if epoch.e > 1 && self.epoch_proof.as_ref().is_none_or(|c| c.epoch != epoch) {
                return;
            }
            if !self.readiness_gate() {
                return;
            }
            let next_s = self.resume_own_blocks(epoch);
            self.proposer.production = Some(Production {
                epoch,
                next_s,
                awaiting_payload: false,
            });
            self.count(CoreEvent::ProductionStarted);
        }
        let k = self.k();
        let prod = self.proposer.production.as_ref().expect("set above");
        if prod.awaiting_payload {
            return;
        }
        let s = prod.next_s;
        if s > k {
            let needed = BlockSn::at(epoch, s - k);
            let have = self.chain.get(needed).is_some_and(|e| e.nota.is_some())
                || needed <= self.chain.finalized();
            if !have {
                return; // NA-6 wakes us when it arrives
            }
        }
        let sn = BlockSn::at(epoch, s);
        if self.after_stop_block(sn) {
            // C-2: no user transactions after the stop block: seal right away.
            let (now_ms, state) = (self.proposer.wall_clock_ms, self.proposer.state);
            if !self.seal(sn, Vec::new(), now_ms, state) {
                self.proposer.production = None;
            }
            self.retry_pending = true;
            return;
        }
        self.proposer
            .production
            .as_mut()
            .expect("set")
            .awaiting_payload = true;
        self.out.push(Output::RequestPayload { sn });
    }

    /// N-4: signs `block`, starts collecting its votes (with this proposer's own share
    /// of the notarization, D-12), remembers it as unnotarized and broadcasts it.
    fn propose(&mut self, c: &Committee, block: Arc<Block>) -> Proposal {
        let (sn, hash) = (block.sn(), block.hash());
        let nid = self.cfg.network_id;
        self.proposer.votes.insert(
            sn,
            VoteCollector::new(
                hash,
                c.voters.len(),
                self.signer.sign(Domain::Vote, nid, &hash.0),
            ),
        );
        let proposal = Proposal {
            proposer: self.me,
            signature: self.signer.sign(Domain::Proposal, nid, &hash.0),
            block,
        };
        self.proposer.unnotarized.insert(sn, proposal.clone());
        self.out
            .push(Output::Broadcast(Message::Proposal(proposal.clone())));
        proposal
    }

    /// Whether the block this proposer would make at `sn` lies after its session's
    /// stop block.
    fn after_stop_block(&self, sn: BlockSn) -> bool {
        let stop = self.cfg.stop_offset;
        if stop == 0 {
            return false;
        }
        let parent = if sn.s == 1 {
            Some(self.chain.head_block())
        } else {
            self.chain.block(BlockSn::at(sn.epoch, sn.s - 1))
        };
        parent.is_some_and(|p| {
            p.sn().epoch.session == sn.epoch.session && p.header.session_offset >= stop
        })
    }

    /// A proposer that restarts inside an epoch it already produced in must not make a
    /// second, different block at an sn it proposed before (that would be equivocation):
    /// it re-proposes the blocks of `epoch` it stored and continues after them.
    fn resume_own_blocks(&mut self, epoch: Epoch) -> u32 {
        let Some(c) = self.committee(epoch.session) else {
            return 1;
        };
        let mut s = 1;
        while let Some(b) = self.chain.block(BlockSn::at(epoch, s)).cloned() {
            let sn = b.sn();
            if self.chain.get(sn).is_none_or(|e| e.nota.is_none()) {
                self.propose(&c, b);
                self.count(CoreEvent::BlocksReproposed);
            }
            s += 1;
        }
        s
    }

    /// N-2. Returns true when production may start now.
    fn readiness_gate(&mut self) -> bool {
        let t0 = *self.proposer.gate_started.get_or_insert_with(|| {
            self.proposer.unnotarized.clear();
            self.now
        });
        let Some(c) = self.committee(self.epoch.session) else {
            return false;
        };
        let head = self.chain.head();
        let mut ids: Vec<NodeId> = self
            .sync
            .peers
            .iter()
            .filter(|(_, p)| p.connected && p.status.as_ref().is_some_and(|s| s.head <= head))
            .map(|(id, _)| *id)
            .collect();
        ids.push(self.me);
        let ready = c.weight_of_ids(ids.iter()) >= c.quorum();
        let delay = self.cfg.first_proposal_delay_ms;
        if head.epoch.session < self.epoch.session && ready {
            return true;
        }
        if self.now < t0 + delay {
            self.set_timer(TimerKind::ProposerGate, t0 + delay);
            return false;
        }
        if ready {
            return true;
        }
        let hard = t0 + 2 * self.cfg.voter_timeout_ms;
        if self.now < hard {
            if self.timers.get(&TimerKind::ProposerGate) != Some(&hard) {
                self.set_timer(TimerKind::ProposerGate, hard);
            }
            return false;
        }
        true
    }

    pub(super) fn on_payload(
        &mut self,
        sn: BlockSn,
        txs: Vec<Vec<u8>>,
        timestamp_ms: u64,
        state: StateCommitment,
    ) {
        self.proposer.wall_clock_ms = self.proposer.wall_clock_ms.max(timestamp_ms);
        if state.height >= self.proposer.state.height {
            self.proposer.state = state;
        }
        let Some(prod) = self.proposer.production.as_mut() else {
            return;
        };
        // Production is always in epoch L (E-7 stops it), so this also drops the late
        // answer to a request of an epoch given up.
        if !prod.awaiting_payload || BlockSn::at(prod.epoch, prod.next_s) != sn {
            return;
        }
        prod.awaiting_payload = false;
        if !self.seal(sn, txs, timestamp_ms, state) {
            self.proposer.production = None;
        }
    }

    /// N-3, N-4: builds, stores, signs and broadcasts block `sn`, stamped with the
    /// driver's wall-clock `timestamp_ms`, but never earlier than its parent, so that
    /// timestamps along a chain never decrease even when a proposer's clock is behind.
    /// `state` is the host's application commitment, sealed as given (the core has no
    /// application; the node's application stage checks commitments when it applies)
    /// unless it is newer than W-12e allows at the block's height: then the block commits
    /// to nothing rather than be refused by every voter.
    fn seal(
        &mut self,
        sn: BlockSn,
        txs: Vec<Vec<u8>>,
        timestamp_ms: u64,
        state: StateCommitment,
    ) -> bool {
        if self.chain.get(sn).is_some() {
            return false; // never a second block at one sn
        }
        let Some(c) = self.committee(sn.epoch.session) else {
            return false;
        };
        let k = self.k();
        let parent = if sn.s == 1 {
            let head = self.chain.head_block().clone();
            if head.sn().epoch >= sn.epoch {
                // N-1(b) held when production began, but the head moved into this epoch
                // while the payload was on its way (chain sync brought blocks this
                // proposer made before it lost its disk): an (e,1) on it would break
                // D-4, so give the epoch up as N-1 would have.
                return false;
            }
            head
        } else {
            match self.chain.block(BlockSn::at(sn.epoch, sn.s - 1)) {
                Some(b) => b.clone(),
                None => return false,
            }
        };
        let mut info = ConsensusInfo::default();
        if sn.s == 1 {
            for (nsn, _) in self.expected_timeout_block_notas(&parent) {
                match self.chain.get(nsn).and_then(|e| e.nota.clone()) {
                    Some(n) => info.notarizations.push(n),
                    None => return false,
                }
            }
            if sn.epoch.e > 1 {
                info.clock = self.epoch_proof.clone();
            }
        } else if sn.s > k {
            let target = BlockSn::at(sn.epoch, sn.s - k);
            // PV-5: fold late votes in before embedding.
            self.materialize_notarization(target);
            match self.chain.get(target).and_then(|e| e.nota.clone()) {
                Some(n) => info.notarizations.push(n),
                None => return false,
            }
        }
        let session_offset = if parent.sn().epoch.session == sn.epoch.session {
            parent.header.session_offset + 1
        } else {
            1
        };
        let stop = self.cfg.stop_offset;
        let txs = if stop > 0 && session_offset > stop {
            // C-2. The payload was asked for when the head was still before the stop
            // block; an (e,1) takes the head at sealing as its parent, which may since
            // have reached the stop block (seed 1449 of the reconfiguration sweep).
            Vec::new()
        } else {
            txs
        };
        let height = parent.height() + 1;
        let state = if state.allowed_at(height, k) {
            state
        } else {
            StateCommitment::NONE
        };
        let block = Arc::new(Block::new(
            BlockHeader {
                sn,
                parent_sn: parent.sn(),
                parent_hash: parent.hash(),
                height,
                session_offset,
                timestamp_ms: timestamp_ms.max(parent.header.timestamp_ms),
                state,
            },
            txs,
            info,
        ));
        self.chain.insert(block.clone());
        self.persist(StateChange::Block(block.clone()));
        let proposal = self.propose(&c, block);
        self.count(CoreEvent::BlocksProposed);
        if let Some(p) = self.proposer.production.as_mut() {
            p.next_s = sn.s + 1;
        }
        if self.committees.is_voter(c.session, &self.me) {
            match self.try_vote(self.me, &proposal) {
                VoteAttempt::Wait => self.add_pending(self.me, proposal),
                VoteAttempt::Voted | VoteAttempt::Drop(_) => {}
            }
        }
        true
    }
}
