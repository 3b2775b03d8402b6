//! The verify loop: batches of network events, verified on the rayon pool.

use super::heads::PeerHeads;
use super::ingress::{VerifyControl, VerifyMailbox};
use super::vote_gate::VoteGate;
use crate::metrics::{peer_label, Metrics};
use crate::stages::consensus::{ConsensusMailbox, ConsensusMessage};
use crate::state_sync::behind::{BehindWatch, Change};
use anyhow::{Context, Result};
use pala_core::{Committees, Input, MessageVerifier};
use pala_net::{Direction, NetCommand, NetEvent, PeerAddr};
use pala_types::{Message, NodeId, SignatureScheme};
use std::collections::HashMap;
use std::sync::Arc;
use tracing::{debug, error, info, trace, warn};

/// Invalid messages from one peer before it is disconnected (section 0.1 item 6).
const MAX_FAILURES: u32 = 100;

/// What the stage needs.
pub struct VerifyDeps {
    /// The network layer's events.
    pub events: flume::Receiver<NetEvent>,
    /// For disconnecting peers that send invalid messages.
    pub commands: flume::Sender<NetCommand>,
    /// The signature scheme and network of the verifier.
    pub scheme: Arc<dyn SignatureScheme>,
    /// The network id messages are signed for.
    pub network_id: u64,
    /// The core's committees at start.
    pub committees: Committees,
    /// The pool the signatures are checked on.
    pub pool: rayon::ThreadPool,
    /// Where verified inputs go.
    pub consensus: ConsensusMailbox,
    /// Largest batch of events verified together.
    pub batch: usize,
    /// `network.bootnodes`: an outbound connection to one of these is a bootnode peer.
    pub bootnodes: Vec<PeerAddr>,
    /// Metrics handle.
    pub metrics: Arc<Metrics>,
    /// Where state-sync requests go (`None`: this node serves none).
    pub state_sync: Option<crossbeam_channel::Sender<crate::state_sync::serve::Job>>,
    /// This node's finalized height, for noticing that it fell behind every peer's
    /// retention (W-12f).
    pub storage: pala_storage::StorageReader,
}

/// The running stage.
pub struct VerifyStage {
    thread: std::thread::JoinHandle<()>,
    mailbox: VerifyMailbox,
}

impl VerifyStage {
    /// Starts the stage on its own thread (the pool's threads do the verification).
    pub fn spawn(deps: VerifyDeps) -> Result<(VerifyStage, VerifyMailbox)> {
        let (tx, rx) = flume::unbounded();
        let mailbox = VerifyMailbox { tx };
        let thread = std::thread::Builder::new()
            .name("pala-verify".into())
            .spawn(move || Loop::new(deps).run(rx))
            .context("starting the verify thread")?;
        Ok((
            VerifyStage {
                thread,
                mailbox: mailbox.clone(),
            },
            mailbox,
        ))
    }

    /// Stops the stage after the batch in hand; nothing more reaches consensus.
    pub fn stop(self) {
        self.mailbox.stop();
        let _ = self.thread.join();
    }
}

enum Next {
    Event(NetEvent),
    Control(VerifyControl),
    Closed,
}

struct Loop {
    deps: VerifyDeps,
    verifier: MessageVerifier,
    failures: HashMap<NodeId, u32>,
    peer_heads: PeerHeads,
    /// Votes waiting for a quorum, tagged (batch, slot in that batch, peer).
    gate: VoteGate<(u64, usize, NodeId)>,
    batch_seq: u64,
    behind: BehindWatch,
}

impl Loop {
    fn new(mut deps: VerifyDeps) -> Loop {
        let committees = std::mem::take(&mut deps.committees);
        let verifier = MessageVerifier::new(deps.scheme.clone(), deps.network_id, committees);
        Loop {
            deps,
            verifier,
            failures: HashMap::new(),
            peer_heads: PeerHeads::default(),
            gate: VoteGate::default(),
            batch_seq: 0,
            behind: BehindWatch::default(),
        }
    }

    fn run(mut self, control: flume::Receiver<VerifyControl>) {
        loop {
            let next = flume::Selector::new()
                .recv(&control, |c| c.map_or(Next::Closed, Next::Control))
                .recv(&self.deps.events, |e| e.map_or(Next::Closed, Next::Event))
                .wait();
            let first = match next {
                Next::Event(e) => e,
                Next::Control(VerifyControl::Committees(c)) => {
                    self.install(c);
                    continue;
                }
                Next::Control(VerifyControl::Stop) | Next::Closed => break,
            };
            // A committee change queued behind the event applies to it already.
            while let Ok(c) = control.try_recv() {
                match c {
                    VerifyControl::Committees(c) => self.install(c),
                    VerifyControl::Stop => return,
                }
            }
            let mut batch = vec![first];
            while batch.len() < self.deps.batch {
                match self.deps.events.try_recv() {
                    Ok(e) => batch.push(e),
                    Err(_) => break,
                }
            }
            for input in self.verify(batch) {
                if self.deps.consensus.send(input).is_err() {
                    return;
                }
            }
        }
        debug!("verify stage stopped");
    }

    fn install(&mut self, committees: Committees) {
        self.verifier =
            MessageVerifier::new(self.deps.scheme.clone(), self.deps.network_id, committees);
        let target = self
            .peer_heads
            .committees_changed(self.verifier.committees());
        self.deps.metrics.peer_head_height.set(target);
    }

    /// Verifies one batch; returns what goes to consensus, in arrival order.
    fn verify(&mut self, events: Vec<NetEvent>) -> Vec<ConsensusMessage> {
        let m = &self.deps.metrics;
        let mut slots: Vec<Option<ConsensusMessage>> = Vec::with_capacity(events.len());
        let mut msgs = Vec::new();
        for ev in events {
            match ev {
                NetEvent::PeerUp {
                    peer,
                    addr,
                    direction,
                    dialed,
                    ..
                } => {
                    info!(peer = %peer.to_hex(), %addr, "peer connected");
                    // By the configured entry, since a bootnode named by host may have
                    // any IP.
                    let bootnode = dialed.is_some_and(|d| self.deps.bootnodes.contains(&d));
                    if direction == Direction::Outbound && bootnode {
                        slots.push(Some(ConsensusMessage::BootnodePeer(peer)));
                    }
                    slots.push(Some(ConsensusMessage::Input(Input::PeerConnected(peer))));
                }
                NetEvent::PeerDown { peer, reason } => {
                    info!(peer = %peer.to_hex(), reason = reason.as_str(), "peer disconnected");
                    let target = self.peer_heads.gone(&peer);
                    m.peer_head_height.set(target);
                    m.peer_status_height.remove(&peer_label(&peer));
                    slots.push(Some(ConsensusMessage::Input(Input::PeerDisconnected(peer))));
                }
                NetEvent::OwnKeyElsewhere { addr } => {
                    slots.push(Some(ConsensusMessage::OwnKeyElsewhere(addr)));
                }
                NetEvent::Extension {
                    peer,
                    kind,
                    payload,
                } => {
                    // State sync is not consensus: its own thread answers it (W-12).
                    let queued = self.deps.state_sync.as_ref().is_some_and(|tx| {
                        let job = crate::state_sync::serve::Job::Request(peer, kind, payload);
                        tx.try_send(job).is_ok()
                    });
                    if !queued {
                        m.state_sync_requests_refused.inc();
                    }
                }
                NetEvent::HandshakeFailed { addr, reason, .. } => {
                    debug!(%addr, reason = reason.as_str(), "handshake failed");
                }
                NetEvent::Message { peer, message } => {
                    if let Message::Status(s) = &message {
                        trace!(peer = %peer.to_hex(), head = %s.head, epoch = ?s.epoch, "status received");
                        let target = self.peer_heads.claimed(
                            self.verifier.committees(),
                            peer,
                            s.head_height,
                        );
                        m.peer_head_height.set(target);
                        m.peer_status_height
                            .get_or_create(&peer_label(&peer))
                            .set(s.head_height);
                    }
                    if let Message::FresherHead(r) = &message {
                        debug!(
                            peer = %peer.to_hex(), blocks = r.blocks.len(), finalized = ?r.finalized.map(|f| f.0),
                            "sync response received"
                        );
                        let answer = (peer, r.blocks.len(), r.finalized.map(|f| f.0));
                        watch_behind(&mut self.behind, &self.deps, answer);
                    }
                    crate::stages::consensus::trace_pipeline("verifying", &message);
                    msgs.push((slots.len(), peer, message));
                    slots.push(None);
                }
            }
        }
        if !msgs.is_empty() {
            m.verify_batch.observe(msgs.len() as f64);
            // Votes wait in the gate until their block's signers weigh a quorum, then the
            // votes on one block are checked as one aggregate, with bisection only when an
            // aggregate fails (PV-3); the other messages are checked as one combination.
            let batch = self.batch_seq;
            self.batch_seq += 1;
            let mut votes = Vec::new();
            let mut others = Vec::new();
            for (i, peer, msg) in msgs {
                match msg {
                    Message::Vote(v) => votes.push(((batch, i, peer), v)),
                    msg => others.push((i, peer, msg)),
                }
            }
            let gated = self.gate.admit(self.verifier.committees(), votes);
            m.votes_after_quorum.inc_by(gated.redundant);
            let votes = gated.verify;
            let verifier = &self.verifier;
            let checked: Vec<_> = self.deps.pool.install(|| {
                let (meta, raw): (Vec<_>, Vec<_>) = others
                    .into_iter()
                    .map(|(i, peer, msg)| ((i, peer), msg))
                    .unzip();
                let mut out: Vec<_> = meta
                    .into_iter()
                    .zip(verifier.verify_many(raw))
                    .map(|((i, peer), r)| (Some(i), peer, r))
                    .collect();
                if !votes.is_empty() {
                    let (meta, raw): (Vec<_>, Vec<_>) = votes.into_iter().unzip();
                    m.vote_batch.observe(raw.len() as f64);
                    let results = verifier.verify_votes(raw);
                    for ((b, i, peer), r) in meta.into_iter().zip(results) {
                        if let Ok(v) = &r {
                            self.gate.verified(verifier.committees(), v);
                        }
                        // A vote held from an earlier batch has no slot in this one.
                        out.push(((b == batch).then_some(i), peer, r.map(Into::into)));
                    }
                }
                out
            });
            for (i, peer, r) in checked {
                match r {
                    Ok(msg) => {
                        count_message(m, &msg);
                        let input = ConsensusMessage::Input(Input::Message { from: peer, msg });
                        match i {
                            Some(i) => slots[i] = Some(input),
                            None => slots.push(Some(input)),
                        }
                    }
                    Err(e) => {
                        m.verify_failures.inc();
                        let f = self.failures.entry(peer).or_insert(0);
                        *f += 1;
                        debug!(peer = %peer.to_hex(), error = %e, "message failed verification");
                        if *f == MAX_FAILURES {
                            warn!(peer = %peer.to_hex(), "too many invalid messages; disconnecting");
                            let _ = self.deps.commands.try_send(NetCommand::Disconnect { peer });
                            self.failures.remove(&peer);
                        }
                    }
                }
            }
        }
        slots.into_iter().flatten().collect()
    }
}

/// W-12f while running: says once, in the log and `pala_state_sync_behind`, that no
/// peer can serve this node by chain sync any more, and that a restart repairs it.
fn watch_behind(
    behind: &mut BehindWatch,
    deps: &VerifyDeps,
    (peer, blocks, peer_finalized): (NodeId, usize, Option<u64>),
) {
    let own = deps.storage.finalized_range().map_or(0, |(_, hi)| hi);
    match behind.answer(peer, blocks, peer_finalized, own) {
        Some(Change::Behind {
            own,
            peers,
            peer_finalized,
        }) => {
            deps.metrics.state_sync_behind.set(1);
            error!(
                own_finalized = own,
                peers,
                peer_finalized,
                "this node is behind every peer's retention: its finalized head {own} is \
                 older than any block the {peers} peer(s) that answered its chain sync \
                 still store (they finalized up to {peer_finalized}), so it cannot catch \
                 up by chain sync. Restart it: at start it sees this, sets its data \
                 aside (never deleted) and joins by state sync (W-12f)"
            );
        }
        Some(Change::CaughtUp) => {
            deps.metrics.state_sync_behind.set(0);
            info!("chain sync serves this node again: no longer behind its peers' retention");
        }
        None => {}
    }
}

fn count_message(m: &Metrics, msg: &Message) {
    let c = match msg {
        Message::Vote(_) => &m.votes_in,
        Message::Proposal(_) | Message::UnnotarizedProposals(_) => &m.proposals_in,
        Message::Notarization(_) => &m.notarizations_in,
        Message::Clock(_) | Message::ClockNotarization(_) => &m.clock_in,
        _ => return,
    };
    c.inc();
}
