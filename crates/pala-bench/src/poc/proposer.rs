//! The primary proposer's thread: its core behind the driver kit, batched vote checks.

use super::link::precise_sleeps;
use super::link::{wait, Batch, Env, Link, Shared, ThreadReport, ToWorker, PHASE_MEASURE};
use crossbeam_channel::Receiver;
use pala_core::driver::{Driver, Durability, Event, Host, Payload, PersistSeq, Released};
use pala_core::{Input, MessageVerifier, Node, StateChange, Tick, Verified};
use pala_types::{BlockSn, Message, NodeId, Vote};
use std::collections::{BinaryHeap, HashMap};
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

pub(super) struct Proposer {
    pub(super) shared: Arc<Shared>,
    pub(super) node: Node,
    pub(super) driver: Driver,
    pub(super) verifier: MessageVerifier,
    pub(super) rx: Receiver<Env<Batch>>,
    /// Consecutive votes waiting for one batch check (kept to reuse its buffer).
    pub(super) vote_run: Vec<(NodeId, Vote)>,
    pub(super) host: ProposerHost,
}

/// What the proposer's core does to the world: broadcasts to the workers, sends to one
/// voter, finalized blocks counted.
pub(super) struct ProposerHost {
    pub(super) shared: Arc<Shared>,
    pub(super) links: Vec<Link<ToWorker>>,
    /// Voter id -> (worker, local index).
    pub(super) route: HashMap<NodeId, (usize, usize)>,
    pub(super) payload: Vec<Vec<u8>>,
    pub(super) proposed_at: HashMap<BlockSn, Instant>,
    pub(super) report: ThreadReport,
    pub(super) phase: u8,
}

impl Host for ProposerHost {
    type Effect = Infallible;

    /// No storage in this scenario (see `pala bench cluster`).
    fn persist(&mut self, _: PersistSeq, _: StateChange) -> Durability {
        Durability::Durable
    }

    fn release(&mut self, effect: Released<Infallible>) {
        match effect {
            Released::Broadcast(msg) => {
                if let Message::Proposal(p) = &msg {
                    self.proposed_at.insert(p.block.sn(), Instant::now());
                }
                let msg = Arc::new(msg);
                for l in &mut self.links {
                    l.send(ToWorker::All(msg.clone()));
                }
            }
            Released::Send { to, msg } => {
                if let Some(&(w, i)) = self.route.get(&to) {
                    self.links[w].send(ToWorker::One(i, msg));
                }
            }
            Released::Finalized { block, .. } => {
                let sn = block.sn();
                let proposed = self.proposed_at.remove(&sn);
                self.shared.finalized.fetch_add(1, Ordering::Relaxed);
                if self.phase == PHASE_MEASURE {
                    self.report.finalized += 1;
                    if let Some(t) = proposed {
                        self.report.latency.record_duration(t.elapsed());
                    }
                }
                // Blocks of an abandoned fork would stay forever otherwise.
                if self.proposed_at.len() > 4096 {
                    self.proposed_at.retain(|s, _| *s > sn);
                }
            }
            Released::Host(never) => match never {},
        }
    }

    fn event(&mut self, _: Event) {}

    /// No block time: the scenario measures consensus, not block filling. The kit builds
    /// the block at once, so the proposal goes out before the rest of the batch (the
    /// status broadcast) and voters see it one handling round earlier.
    fn payload(&mut self, _: Tick, _: BlockSn) -> Option<Payload> {
        Some(Payload {
            txs: self.payload.clone(),
            timestamp_ms: unix_ms(),
            state: pala_types::StateCommitment::NONE,
        })
    }

    /// One session: nothing is ever deferred for a later committee.
    fn reverify(&mut self, _: NodeId, _: Message) -> Option<Verified<Message>> {
        None
    }
}

pub(super) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Proposer {
    pub(super) fn run(mut self, voters: Vec<NodeId>) -> ThreadReport {
        precise_sleeps();
        let now = self.shared.tick(Instant::now());
        self.feed(now, Input::Start);
        for v in voters {
            self.feed(now, Input::PeerConnected(v));
        }
        let mut heap: BinaryHeap<Env<Batch>> = BinaryHeap::new();
        let mut due: Vec<Env<Batch>> = Vec::new();
        while self.host.report.observe(&self.shared, &mut self.host.phase) {
            let timer = self.driver.next_deadline().map(|t| self.shared.instant(t));
            if !wait(&self.rx, &mut heap, timer) {
                break;
            }
            heap.extend(self.rx.try_iter());
            let now = Instant::now();
            let tick = self.shared.tick(now);
            while heap.peek().is_some_and(|e| e.at <= now) {
                due.push(heap.pop().expect("peeked"));
            }
            if !due.is_empty() {
                self.deliver(&mut due, now, tick);
            }
            self.driver.fire_due(&mut self.node, tick, &mut self.host);
        }
        let mut report = self.host.report;
        report.finish();
        report.counters = self
            .node
            .counters()
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(event, n)| (event.to_string(), n))
            .collect();
        report
    }

    pub(super) fn feed(&mut self, tick: Tick, input: Input) {
        self.driver
            .handle(&mut self.node, tick, input, &mut self.host);
    }

    /// Hands every due message to the core, in arrival order.
    ///
    /// Runs of consecutive votes are checked together with
    /// [`MessageVerifier::verify_votes`] (one aggregate check per block, bisection only
    /// on failure), as the node does at the proposer; everything else one by one.
    pub(super) fn deliver(&mut self, due: &mut Vec<Env<Batch>>, now: Instant, tick: Tick) {
        let measuring = self.host.phase == PHASE_MEASURE;
        let mut votes = std::mem::take(&mut self.vote_run);
        for e in due.drain(..) {
            if measuring {
                self.host
                    .report
                    .lateness
                    .record_duration(now.saturating_duration_since(e.at));
            }
            for (from, m) in e.body {
                if measuring {
                    self.host.report.messages += 1;
                }
                match m {
                    Message::Vote(v) => votes.push((from, v)),
                    m => {
                        self.deliver_votes(&mut votes, tick);
                        match self.verifier.verify(m) {
                            Ok(msg) => self.feed(tick, Input::Message { from, msg }),
                            Err(_) => self.host.report.rejected += 1,
                        }
                    }
                }
            }
        }
        self.deliver_votes(&mut votes, tick);
        self.vote_run = votes;
    }

    pub(super) fn deliver_votes(&mut self, votes: &mut Vec<(NodeId, Vote)>, tick: Tick) {
        if votes.is_empty() {
            return;
        }
        let (from, batch): (Vec<NodeId>, Vec<Vote>) = votes.drain(..).unzip();
        for (from, r) in from.into_iter().zip(self.verifier.verify_votes(batch)) {
            match r {
                Ok(v) => self.feed(
                    tick,
                    Input::Message {
                        from,
                        msg: v.into(),
                    },
                ),
                Err(_) => self.host.report.rejected += 1,
            }
        }
    }
}
