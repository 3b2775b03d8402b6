//! The local epoch, timeouts and clock messages (docs/protocol.md section 5).
//!
//! - **E-2** The voter timer (`T_VOTER`) is reset when `L` advances, when `head` extends
//!   in epoch `L`, and when it fires.
//! - **E-3** On timeout a voter of `L.session` signs `clock(L+1)` (once per epoch,
//!   guarded by the persisted clock guard) and sends it to every proposer of the session;
//!   `L` does not change.
//! - **E-4** Every proposer keeps the newest clock message per voter, for epochs `>= L`
//!   of its session.
//! - **E-5** A quorum of clock messages for `x` (with the proposer's own share) forms
//!   `cnota(x)`, broadcast first, then processed locally.
//! - **E-6** A clock notarization for `x > L` of this session advances `L` to `x`.
//! - **E-7** Advancing: persist `(x, cnota(x))`, reset the voter timer, stop producing
//!   and clear the readiness gate, drop votes and proposals of older epochs, announce the
//!   status, poke the chain syncer.

use super::Node;
use crate::counters::CoreEvent;
use crate::io::{Output, StateChange, TimerKind};
use pala_types::{ClockMessage, ClockNotarization, Domain, Epoch, Message, SignerBitmap};

impl Node {
    pub(super) fn reset_voter_timer(&mut self) {
        if self.is_voter(self.epoch.session) {
            let at = self.now + self.cfg.voter_timeout_ms;
            self.set_timer(TimerKind::Voter, at);
        }
    }

    /// E-2(c), E-3.
    pub(super) fn on_voter_timeout(&mut self) {
        self.reset_voter_timer();
        let Some(c) = self.committee(self.epoch.session) else {
            return;
        };
        if !self.committees.is_voter(c.session, &self.me) {
            return;
        }
        let target = self.epoch.next();
        let msg = match &self.voter.last_clock {
            Some(m) if m.epoch == target => m.clone(),
            _ => {
                if self.voter.clock_guard < target {
                    self.voter.clock_guard = target;
                    self.persist(StateChange::ClockGuard(target));
                }
                let m = ClockMessage {
                    voter: self.me,
                    epoch: target,
                    signature: self.signer.sign(
                        Domain::Clock,
                        self.cfg.network_id,
                        &target.signing_bytes(),
                    ),
                };
                self.voter.last_clock = Some(m.clone());
                m
            }
        };
        self.count(CoreEvent::ClockMessagesSent);
        for p in &c.proposers {
            if p.id == self.me {
                continue;
            }
            self.out.push(Output::Send {
                to: p.id,
                msg: Message::Clock(msg.clone()),
            });
        }
        if c.is_proposer(&self.me) {
            self.on_clock(msg);
        }
    }

    /// E-4, E-5.
    pub(super) fn on_clock(&mut self, m: ClockMessage) {
        if m.epoch < self.epoch || m.epoch.session != self.epoch.session {
            self.count(CoreEvent::ClockStale);
            return;
        }
        let Some(c) = self.committee(m.epoch.session) else {
            return;
        };
        let Some(my_idx) = c.proposer_index(&self.me) else {
            self.count(CoreEvent::ClockNotAProposer);
            return;
        };
        let Some(vidx) = self.committees.voter_index(m.epoch.session, &m.voter) else {
            return;
        };
        if self
            .proposer
            .clocks
            .get(&vidx)
            .is_some_and(|old| old.epoch >= m.epoch)
        {
            return;
        }
        let target = m.epoch;
        self.proposer.clocks.insert(vidx, m);
        if target <= self.epoch {
            return;
        }
        let mut signers = SignerBitmap::new(c.voters.len());
        let mut sigs = Vec::new();
        for (i, cm) in &self.proposer.clocks {
            if cm.epoch == target {
                signers.insert(*i);
                sigs.push(cm.signature.clone());
            }
        }
        if !c.is_quorum(&signers) {
            return;
        }
        let own = self
            .signer
            .sign(Domain::Clock, self.cfg.network_id, &target.signing_bytes());
        sigs.push(own);
        let refs: Vec<_> = sigs.iter().collect();
        let Some(aggregate) = self.scheme.aggregate(&refs) else {
            return;
        };
        let cn = ClockNotarization {
            epoch: target,
            proposer_idx: my_idx as u16,
            signers,
            signature: aggregate,
        };
        // E-5: broadcast first, then process locally.
        self.out
            .push(Output::Broadcast(Message::ClockNotarization(cn.clone())));
        self.advance_epoch(target, Some(cn));
    }

    /// E-6.
    pub(super) fn on_clock_notarization(&mut self, c: ClockNotarization) {
        if c.epoch <= self.epoch || c.epoch.session != self.epoch.session {
            return;
        }
        self.advance_epoch(c.epoch, Some(c));
    }

    /// E-7.
    pub(super) fn advance_epoch(&mut self, x: Epoch, clock: Option<ClockNotarization>) {
        if x <= self.epoch {
            return;
        }
        self.persist(StateChange::Epoch {
            epoch: x,
            clock: clock.clone(),
        });
        if let Some(c) = &clock {
            self.last_clock_of_session.insert(x.session, c.clone());
        }
        self.epoch = x;
        self.epoch_proof = clock;
        self.reset_voter_timer();
        self.proposer.production = None;
        self.proposer.gate_started = None;
        // Votes, unnotarized proposals and pending proposals of older epochs can no
        // longer be used (PV-1, V-0).
        self.proposer.votes.clear();
        self.proposer.unnotarized.clear();
        self.voter.pending.retain(|sn, _| sn.epoch >= x);
        self.proposer.clocks.retain(|_, c| c.epoch > x);
        self.out.push(Output::EpochChanged(x));
        self.status_dirty = true;
        self.sync_dirty = true;
        self.count(CoreEvent::EpochChanges);
    }
}
