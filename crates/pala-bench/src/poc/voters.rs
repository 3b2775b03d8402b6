//! A voter worker thread: many voter cores, each behind its own driver kit.

use super::link::PHASE_MEASURE;
use super::link::{precise_sleeps, wait, Batch, Env, Link, Shared, ThreadReport, ToWorker};
use crossbeam_channel::Receiver;
use pala_core::driver::{Driver, Durability, Event, Host, Payload, PersistSeq, Released};
use pala_core::{Input, MessageVerifier, Node, StateChange, Tick, Verified};
use pala_types::{BlockSn, Message, NodeId};
use std::collections::BinaryHeap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

pub(super) struct Worker {
    pub(super) shared: Arc<Shared>,
    pub(super) nodes: Vec<Node>,
    pub(super) drivers: Vec<Driver>,
    pub(super) rx: Receiver<Env<ToWorker>>,
    pub(super) link: Link<Batch>,
    pub(super) host: WorkerHost,
}

/// What a worker's voter cores do to the world: everything goes to the proposer, in
/// one batch per handling round.
pub(super) struct WorkerHost {
    pub(super) ids: Vec<NodeId>,
    pub(super) proposer: NodeId,
    /// One per voter (see [`Setup::verifier`]).
    pub(super) verifiers: Vec<MessageVerifier>,
    /// The voter being driven.
    pub(super) current: usize,
    pub(super) outbox: Batch,
    pub(super) report: ThreadReport,
    pub(super) phase: u8,
}

impl Host for WorkerHost {
    type Effect = Infallible;

    fn persist(&mut self, _: PersistSeq, _: StateChange) -> Durability {
        Durability::Durable
    }

    fn release(&mut self, effect: Released<Infallible>) {
        let me = self.ids[self.current];
        match effect {
            // Hub and spoke (W-1): a voter's only peer is the proposer.
            Released::Send { to, msg } if to == self.proposer => self.outbox.push((me, msg)),
            Released::Broadcast(msg) => self.outbox.push((me, msg)),
            Released::Finalized { .. } if self.phase == PHASE_MEASURE => self.report.finalized += 1,
            _ => {}
        }
    }

    fn event(&mut self, _: Event) {}

    /// Voters never propose.
    fn payload(&mut self, _: Tick, _: BlockSn) -> Option<Payload> {
        None
    }

    fn reverify(&mut self, _: NodeId, sync: Message) -> Option<Verified<Message>> {
        self.verifiers[self.current].verify(sync).ok()
    }
}

impl Worker {
    pub(super) fn run(mut self) -> ThreadReport {
        precise_sleeps();
        let now = self.shared.tick(Instant::now());
        let proposer = self.host.proposer;
        for i in 0..self.nodes.len() {
            self.feed(i, now, Input::Start);
            self.feed(i, now, Input::PeerConnected(proposer));
        }
        self.flush();
        let mut heap: BinaryHeap<Env<ToWorker>> = BinaryHeap::new();
        while self.host.report.observe(&self.shared, &mut self.host.phase) {
            let next = self.drivers.iter().filter_map(Driver::next_deadline).min();
            let timer = next.map(|t| self.shared.instant(t));
            if !wait(&self.rx, &mut heap, timer) {
                break;
            }
            heap.extend(self.rx.try_iter());
            let now = Instant::now();
            let tick = self.shared.tick(now);
            let measuring = self.host.phase == PHASE_MEASURE;
            while heap.peek().is_some_and(|e| e.at <= now) {
                let e = heap.pop().expect("peeked");
                if measuring {
                    self.host
                        .report
                        .lateness
                        .record_duration(now.saturating_duration_since(e.at));
                }
                match e.body {
                    ToWorker::All(msg) => {
                        for i in 0..self.nodes.len() {
                            self.deliver(i, (*msg).clone(), tick);
                        }
                    }
                    ToWorker::One(i, msg) => self.deliver(i, msg, tick),
                }
                // Votes leave as soon as their proposal is handled, not after the
                // notarizations and statuses queued behind it.
                self.flush();
            }
            if next.is_some_and(|t| t <= tick) {
                for i in 0..self.nodes.len() {
                    self.host.current = i;
                    self.drivers[i].fire_due(&mut self.nodes[i], tick, &mut self.host);
                }
            }
            self.flush();
        }
        let mut report = self.host.report;
        report.finish();
        report
    }

    pub(super) fn feed(&mut self, i: usize, tick: Tick, input: Input) {
        self.host.current = i;
        self.drivers[i].handle(&mut self.nodes[i], tick, input, &mut self.host);
    }

    pub(super) fn deliver(&mut self, i: usize, msg: Message, tick: Tick) {
        if self.host.phase == PHASE_MEASURE {
            self.host.report.messages += 1;
        }
        match self.host.verifiers[i].verify(msg) {
            Ok(msg) => {
                let from = self.host.proposer;
                self.feed(i, tick, Input::Message { from, msg });
            }
            Err(_) => self.host.report.rejected += 1,
        }
    }

    pub(super) fn flush(&mut self) {
        if !self.host.outbox.is_empty() {
            let b = std::mem::take(&mut self.host.outbox);
            self.link.send(b);
        }
    }
}
