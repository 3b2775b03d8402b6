//! The simulator as host of pala-core's driver kit: a node's records go to its
//! simulated disk, which makes them durable later (see [`crate::SimConfig::disk_sync_ms`]);
//! what the gate releases is executed by the simulator once the node's call returns,
//! where the persist-before-send checker looks at the disk on its own.

use pala_core::driver::{Durability, Event, Host, Payload, PersistSeq, Released};
use pala_core::{MessageVerifier, StateChange, Tick, Verified};
use pala_types::{BlockSn, Message, NodeId};
use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;

/// What a node's call left for the simulator to execute, in order of kind.
#[derive(Default)]
pub(crate) struct Outbox {
    /// Effects the gate released.
    pub released: Vec<Released<Infallible>>,
    /// Epoch and committee changes.
    pub events: Vec<Event>,
    /// Payload requests to answer after the block time.
    pub payload_requests: Vec<BlockSn>,
}

/// One node's view of the simulator during one call into its driver kit.
pub(crate) struct SimHost<'a> {
    pub node: usize,
    /// Records handed to the disk and not yet durable.
    pub unsynced: &'a mut VecDeque<(PersistSeq, StateChange)>,
    pub verifier: &'a mut MessageVerifier,
    pub rejected: &'a mut BTreeMap<String, u64>,
    pub out: &'a mut Outbox,
    pub payload_bytes: usize,
    /// No block time: payloads are answered within the request.
    pub payload_at_once: bool,
}

impl Host for SimHost<'_> {
    type Effect = Infallible;

    fn persist(&mut self, seq: PersistSeq, record: StateChange) -> Durability {
        self.unsynced.push_back((seq, record));
        Durability::Pending
    }

    fn release(&mut self, effect: Released<Infallible>) {
        self.out.released.push(effect);
    }

    fn event(&mut self, event: Event) {
        if let Event::CommitteeInstalled(c) = &event {
            // At once: blocks deferred for this committee may come back for
            // re-verification within this same call (C-8).
            if self.verifier.committees().get(c.session).is_none() {
                self.verifier.install((**c).clone());
            }
        }
        self.out.events.push(event);
    }

    fn payload(&mut self, now: Tick, sn: BlockSn) -> Option<Payload> {
        if self.payload_at_once {
            return Some(block_payload(self.node, sn, self.payload_bytes, now));
        }
        self.out.payload_requests.push(sn);
        None
    }

    fn reverify(&mut self, _: NodeId, sync: Message) -> Option<Verified<Message>> {
        match self.verifier.verify(sync) {
            Ok(v) => Some(v),
            Err(e) => {
                *self.rejected.entry(format!("reverify: {e}")).or_insert(0) += 1;
                None
            }
        }
    }
}

/// The transactions of block `sn` of `node`: one tagged transaction of `bytes` bytes.
pub(super) fn block_payload(
    node: usize,
    sn: pala_types::BlockSn,
    bytes: usize,
    now: Tick,
) -> Payload {
    let tx = format!("tx:{node}:{sn:?}")
        .into_bytes()
        .into_iter()
        .chain(std::iter::repeat(0u8))
        .take(bytes.max(1))
        .collect();
    Payload {
        txs: vec![tx],
        // Virtual time stands in for the wall clock.
        timestamp_ms: now,
        state: pala_types::StateCommitment::NONE,
    }
}
