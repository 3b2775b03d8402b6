//! Driving one node: the simulator hosts pala-core's driver kit for it, then executes
//! what the gate released (with the checkers), starts disk syncs and queues timer
//! wake-ups.

use super::accepted::HeadBounds;
use super::host::SimHost;
use super::{Ev, Sim};
use pala_core::driver::{Driver, Event, Released};
use pala_core::{Input, Node, StateChange};
use pala_types::Message;
use std::convert::Infallible;

impl Sim {
    /// Feeds one input to node `i` and executes its outputs with all checks.
    pub(super) fn feed(&mut self, i: usize, input: Input) {
        let now = self.now;
        // The independent checkers want the proposal behind a block this call stores.
        self.handling = match &input {
            Input::Message { msg, .. } => match &**msg {
                Message::Proposal(p) => Some(p.clone()),
                _ => None,
            },
            _ => None,
        };
        self.drive(i, |d, core, host| d.handle(core, now, input, host));
        self.handling = None;
    }

    /// Runs `f` on node `i`'s core and driver kit with the simulator as host, then
    /// executes what the gate released, starts a disk sync for new records and queues
    /// a wake-up for the earliest timer.
    pub(super) fn drive(&mut self, i: usize, f: impl FnOnce(&mut Driver, &mut Node, &mut SimHost)) {
        let n = &mut self.nodes[i];
        let Some(core) = n.core.as_mut() else {
            return;
        };
        let low = core.head();
        let last_before = n.unsynced.back().map(|(seq, _)| *seq);
        let mut host = SimHost {
            node: i,
            unsynced: &mut n.unsynced,
            verifier: &mut self.verifier,
            rejected: &mut self.rejected,
            out: &mut self.outbox,
            payload_bytes: self.cfg.payload_bytes,
            payload_at_once: self.cfg.block_time_ms == 0,
        };
        f(&mut n.driver, core, &mut host);
        let high = core.head();
        let mut records: Vec<StateChange> = n
            .unsynced
            .iter()
            .rev()
            .take_while(|(seq, _)| Some(*seq) != last_before)
            .filter(|(_, r)| {
                matches!(
                    r,
                    StateChange::Block(_)
                        | StateChange::Notarization(_)
                        | StateChange::Epoch { clock: Some(_), .. }
                        | StateChange::VoteGuard { .. }
                        | StateChange::StopBlock { .. }
                )
            })
            .map(|(_, r)| r.clone())
            .collect();
        records.reverse();
        if let Some(&(last, _)) = n.unsynced.back() {
            if n.batch_ends.back() != Some(&last) {
                n.batch_ends.push_back(last);
            }
        }
        if !records.is_empty() {
            let proposal = self.handling.take();
            let bounds = HeadBounds { low, high };
            self.check_accepted(i, &records, proposal.as_ref(), bounds);
            self.handling = proposal;
        }
        let mut out = std::mem::take(&mut self.outbox);
        for e in out.released.drain(..) {
            self.execute(i, e);
        }
        for e in out.events.drain(..) {
            self.on_event(i, e);
        }
        let inc = self.nodes[i].inc;
        for sn in out.payload_requests.drain(..) {
            let at = self.now + self.cfg.block_time_ms;
            self.push(at, Ev::Payload { node: i, inc, sn });
        }
        self.outbox = out;
        self.start_disk_sync(i);
        self.schedule_wake(i);
        self.check_node(i);
    }

    /// Group commit: one sync in flight per disk, covering every record handed over so
    /// far; records that arrive meanwhile wait for the next one.
    pub(super) fn start_disk_sync(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        let Some(&(upto, _)) = n.unsynced.back() else {
            return;
        };
        if n.syncing {
            return;
        }
        n.syncing = true;
        let (inc, at) = (n.inc, self.now + self.cfg.disk_sync_ms);
        self.push(at, Ev::DiskSynced { node: i, inc, upto });
    }

    pub(super) fn schedule_wake(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        let Some(at) = n.driver.next_deadline() else {
            return;
        };
        if n.wake.is_some_and(|w| w <= at) {
            return; // the queued wake-up comes first; it reschedules
        }
        n.wake = Some(at);
        let inc = n.inc;
        self.push(at.max(self.now), Ev::Wake { node: i, inc, at });
    }

    pub(super) fn execute(&mut self, i: usize, e: Released<Infallible>) {
        match e {
            Released::Send { to, msg } => {
                self.check_persisted_before_send(i, &msg);
                if let Message::Vote(v) = &msg {
                    if v.voter == self.ids[i] && self.is_honest(i) {
                        self.check_vote_window(i, v);
                    }
                }
                if let Some(j) = self.route(i, &to) {
                    self.send_from(i, j, msg);
                }
            }
            Released::Broadcast(msg) => {
                self.check_persisted_before_send(i, &msg);
                if let Message::Proposal(p) = &msg {
                    self.proposed_at
                        .entry(p.block.hash())
                        .or_insert((self.now, 0));
                }
                for j in self.neighbours(i) {
                    self.send_from(i, j, msg.clone());
                }
            }
            Released::Finalized {
                block,
                notarization,
            } => {
                if self.cfg.log_finalized {
                    self.finalized_log.push((i, block.clone(), notarization));
                }
                self.on_finalized(i, &block)
            }
            Released::Host(never) => match never {},
        }
    }

    pub(super) fn on_event(&mut self, i: usize, e: Event) {
        match e {
            Event::EpochChanged(e) => self.log(|| format!("n{i} epoch {e:?}")),
            Event::CommitteeInstalled(c) => {
                self.log(|| format!("n{i} installs the committee of session {}", c.session));
                // The host installed the first one it saw (SimHost::event).
                if self
                    .verifier
                    .committees()
                    .get(c.session)
                    .is_some_and(|old| **old != *c)
                {
                    let d = format!(
                        "node {i} installed a different committee for session {}",
                        c.session
                    );
                    self.violation("committee-mismatch", d);
                }
            }
            Event::ReconfigurationEnded { session } => {
                self.log(|| format!("n{i} reconfiguration ended, session {session}"))
            }
        }
    }
}
