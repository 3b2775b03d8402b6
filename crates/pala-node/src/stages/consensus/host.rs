//! The consensus stage's side of the driver kit: where the core's outputs go once the
//! kit has routed them (persist-before-send is the kit's gate, section 0.1 items 7-8).

use super::doppelganger::Doppelganger;
use crate::clock::WallClock;
use crate::fatal::Fatal;
use crate::metrics::Metrics;
use crate::persistence::storage_records;
use crate::stages::storage::{PersistJob, StorageMailbox};
use pala_core::driver::{Durability, Event, Host, Payload, PersistSeq, Released};
use pala_core::{MessageVerifier, Tick, Verified};
use pala_net::NetCommand;
use pala_types::{Block, BlockSn, Message, NodeId, StateCommitment};
use std::sync::Arc;
use tracing::{debug, trace};

/// A payload request the stage answers once the mempool fills a block or its wait ends.
#[derive(Clone, Copy, Debug)]
pub struct PendingPayload {
    /// The block asked for.
    pub sn: BlockSn,
    /// The tick at which the block is made with what the pool has (N-3).
    pub deadline: Tick,
}

/// The IO of the consensus stage, as the driver kit sees it.
pub struct StageHost {
    /// Network commands (never waited on: a full queue drops and counts the command).
    pub net: flume::Sender<NetCommand>,
    /// Where records go, one job per round.
    pub storage: StorageMailbox,
    /// Storage records of this round.
    pub records: Vec<pala_storage::Record>,
    /// The persist number of the last record of this round.
    pub last_seq: PersistSeq,
    /// Finalized blocks released and not yet handed to the application.
    pub finalized: Vec<Arc<Block>>,
    /// Epoch and committee events, handled after the input with the core at hand.
    pub events: Vec<Event>,
    /// The payload request in wait, if any.
    pub payload: Option<PendingPayload>,
    /// `block.max_wait_ms`.
    pub block_wait_ms: u64,
    /// Checks deferred blocks (C-8) against the core's committees.
    pub verifier: MessageVerifier,
    /// For block timestamps.
    pub wall: Arc<dyn WallClock>,
    /// Metrics handle.
    pub metrics: Arc<Metrics>,
    /// Where a stopped storage stage is reported.
    pub fatal: Fatal,
    /// Holds back this node's signed messages while its key may be live elsewhere.
    pub doppelganger: Doppelganger,
    /// The tick of the input being handled.
    pub now: Tick,
}

impl StageHost {
    /// Hands this round's records to the storage stage as one group.
    pub fn flush(&mut self) {
        if self.records.is_empty() {
            return;
        }
        let job = PersistJob {
            seq: self.last_seq,
            records: std::mem::take(&mut self.records),
        };
        if self.storage.persist(job).is_err() {
            self.fatal.fail("the storage stage stopped".into());
        }
    }

    /// The payload of a block: transactions, the wall-clock timestamp (D-6) and the
    /// newest applied state `state` (the application stage's commitment).
    pub fn payload_of(&self, txs: Vec<Vec<u8>>, state: StateCommitment) -> Payload {
        Payload {
            txs,
            timestamp_ms: self.wall.now_ms(),
            state,
        }
    }

    fn command(&self, c: NetCommand) {
        // Never wait on the network: a full queue means the peer or layer is overloaded,
        // and the protocol recovers from a lost message.
        if let Err(flume::TrySendError::Full(_)) = self.net.try_send(c) {
            self.metrics.net_queue_full.inc();
        }
    }
}

impl Host for StageHost {
    type Effect = NetCommand;

    fn persist(&mut self, seq: PersistSeq, record: pala_core::StateChange) -> Durability {
        self.records.extend(storage_records(record));
        self.last_seq = seq;
        Durability::Pending
    }

    fn release(&mut self, effect: Released<NetCommand>) {
        if let Released::Send { msg, .. } | Released::Broadcast(msg) = &effect {
            if self.doppelganger.holds_back(msg, self.now) {
                self.metrics.doppelganger_held.inc();
                return;
            }
        }
        match effect {
            Released::Send { to, msg } => {
                log_sync(&to, &msg);
                trace_pipeline("send", &msg);
                self.command(NetCommand::Send { to, message: msg })
            }
            Released::Broadcast(msg) => {
                trace_pipeline("broadcast", &msg);
                self.command(NetCommand::Broadcast { message: msg })
            }
            Released::Finalized { block, .. } => self.finalized.push(block),
            Released::Host(c) => self.command(c),
        }
    }

    fn event(&mut self, event: Event) {
        self.events.push(event);
    }

    fn payload(&mut self, now: Tick, sn: BlockSn) -> Option<Payload> {
        trace!(%sn, "payload asked");
        // The mempool is consulted by the stage, which knows whether it is stopping.
        self.payload = Some(PendingPayload {
            sn,
            deadline: now + self.block_wait_ms,
        });
        None
    }

    fn reverify(&mut self, _from: NodeId, sync: Message) -> Option<Verified<Message>> {
        match self.verifier.verify(sync) {
            Ok(msg) => Some(msg),
            Err(e) => {
                debug!(error = %e, "deferred blocks failed verification");
                None
            }
        }
    }
}

/// The pipeline's messages at `trace` level (`RUST_LOG=pala_node::stages::consensus=trace`),
/// so a timeline of one block (proposal, votes, notarization) can be read off the logs of
/// the nodes when finality is slower than the round trips explain.
pub(crate) fn trace_pipeline(what: &'static str, msg: &Message) {
    match msg {
        Message::Proposal(p) => trace!(sn = %p.block.sn(), "{what} proposal"),
        Message::Vote(v) => trace!(sn = %v.sn, voter = %v.voter.to_hex(), "{what} vote"),
        Message::Notarization(n) => trace!(sn = %n.sn, "{what} notarization"),
        _ => {}
    }
}

fn log_sync(to: &NodeId, msg: &Message) {
    match msg {
        Message::GetEpoch(e) => debug!(peer = %to.to_hex(), epoch = ?e, "sync request: epoch"),
        Message::GetFresherHead(r) => debug!(
            peer = %to.to_hex(), head = %r.head, known = ?r.known.iter().map(|k| k.0).collect::<Vec<_>>(),
            "sync request: fresher head"
        ),
        Message::FresherHead(r) => debug!(
            peer = %to.to_hex(), blocks = r.blocks.len(), finalized = ?r.finalized.map(|f| f.0),
            "sync response: fresher head"
        ),
        _ => {}
    }
}
