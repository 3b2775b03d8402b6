//! The node's metrics, on `prometheus_client`: one [`Registry`] per node (built by
//! [`Metrics::register`]), encoded by the crate as OpenMetrics text (or the Prometheus
//! text format for clients that ask only for it) at `GET /metrics`.
//!
//! Names follow the Prometheus conventions: a `pala_` prefix, base units as the last word
//! before the type suffix (`_seconds`, `_bytes`), `_total` on counters (the crate appends
//! it), help text on every metric. What the spec counts by something is a label:
//! dropped messages by `reason`, handshake failures and closed connections by `reason`,
//! core events by `event`, the role by `role`, peers' last status heights by `peer`.
//!
//! What the stages update on the hot path is atomics only: the crate's [`Counter`] and
//! [`Gauge`] are one atomic each, and [`Histogram`] is one atomic per bucket (the crate's
//! own histogram locks per observation). Values that exist elsewhere (the status
//! snapshot, the network layer's counters, the mempool, the core's counters, the data
//! directory's filesystem) are read at scrape time by the collector in `collect`.

mod collect;
mod exposition;
mod histogram;

pub use collect::ScrapeSources;
pub use exposition::{
    encode, parse_buckets, parse_value, quantile, OPENMETRICS_CONTENT_TYPE,
    PROMETHEUS_TEXT_CONTENT_TYPE,
};
pub use histogram::{Histogram, LATENCY_BOUNDS, SIZE_BOUNDS};

use pala_core::Counters;
use pala_types::NodeId;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

/// A gauge of a height or other count that is never negative.
pub type CountGauge = Gauge<u64, AtomicU64>;

/// The label set of a per-peer metric: the peer's node id in hex.
pub type PeerLabel = [(&'static str, String); 1];

/// The label set of `peer`.
pub fn peer_label(peer: &NodeId) -> PeerLabel {
    [("peer", peer.to_hex())]
}

/// All metrics the stages update. Field names are the stages' vocabulary; the exported
/// names are in [`Metrics::register`].
#[derive(Debug)]
pub struct Metrics {
    /// Votes that reached the core.
    pub votes_in: Counter,
    /// Notarizations that reached the core.
    pub notarizations_in: Counter,
    /// Proposals that reached the core.
    pub proposals_in: Counter,
    /// Clock messages and clock notarizations that reached the core.
    pub clock_in: Counter,
    /// Messages that failed signature verification.
    pub verify_failures: Counter,
    /// Votes not verified because a verified quorum for their block was delivered.
    pub votes_after_quorum: Counter,
    /// Sizes of verification batches.
    pub verify_batch: Histogram,
    /// Votes per aggregate-verified vote batch at the primary proposer.
    pub vote_batch: Histogram,
    /// Seconds per fdatasync batch.
    pub fsync: Histogram,
    /// Records per storage batch.
    pub storage_batch: Histogram,
    /// Finalized blocks applied.
    pub finalized_blocks: Counter,
    /// Transactions applied.
    pub finalized_txs: Counter,
    /// Transactions rejected by the application when applied (duplicates, invalid).
    pub txs_skipped: Counter,
    /// Finalized blocks whose state commitment this node checked and found agreeing.
    pub state_commitments_checked: Counter,
    /// Finalized blocks whose state commitment disagreed with this node's state.
    pub state_commitment_mismatches: Counter,
    /// Proposals whose state commitment this node checked before voting and found agreeing.
    pub proposal_commitments_checked: Counter,
    /// Proposals whose state commitment this node could not check before voting.
    pub proposal_commitments_unchecked: Counter,
    /// Proposals not voted for because their commitment contradicted this node's state.
    pub proposal_commitments_refused: Counter,
    /// State snapshots written for state sync.
    pub state_snapshots: Counter,
    /// State-sync snapshot offers sent to peers (with a snapshot).
    pub state_sync_offers_served: Counter,
    /// State-sync snapshot chunks sent to peers.
    pub state_sync_chunks_served: Counter,
    /// Bytes of state-sync snapshot chunks sent to peers.
    pub state_sync_bytes_served: Counter,
    /// State-sync requests refused: over the per-peer rate, undecodable, for a snapshot not kept, or the queue to the state-sync server full.
    pub state_sync_requests_refused: Counter,
    /// Snapshot offers and session proofs a joining node refused (proof, digest or session proof did not check).
    pub state_sync_offers_refused: Counter,
    /// Snapshot chunks a joining node refused (hash or length did not match the manifest), plus chunk requests that timed out.
    pub state_sync_chunks_refused: Counter,
    /// Bytes of snapshot chunks a joining node accepted.
    pub state_sync_bytes_fetched: Counter,
    /// Times this node installed a snapshot instead of replaying from genesis.
    pub state_sync_joins: Counter,
    /// Times this node set its data aside at start because no peer stored its finalized
    /// head any more (W-12f).
    pub state_sync_set_aside: Counter,
    /// 1 while chain sync shows that no peer stores this node's finalized head (W-12f).
    pub state_sync_behind: Gauge,
    /// Submitted-to-applied latency of transactions submitted through this node.
    pub tx_latency: Histogram,
    /// Block timestamp to finalization on this node.
    pub block_latency: Histogram,
    /// Transactions accepted by the HTTP API.
    pub txs_submitted: Counter,
    /// Transactions refused by the HTTP API (full pool, invalid, too large).
    pub txs_refused: Counter,
    /// Outputs dropped because the network command queue was full.
    pub net_queue_full: Counter,
    /// Forwarding requests to proposers that failed.
    pub forward_failures: Counter,
    /// This node's signed messages held back by doppelganger protection.
    pub doppelganger_held: Counter,
    /// 1 once this node saw its own key live elsewhere and stopped signing.
    pub doppelganger_tripped: Gauge,
    /// Highest head height a connected committee member announced (readiness target).
    pub peer_head_height: CountGauge,
    /// The head height each connected peer announced in its last status. A family takes
    /// a read lock per update: the verify stage updates it once per status message (a
    /// peer's heartbeat), never per vote or proposal.
    pub peer_status_height: Family<PeerLabel, CountGauge>,
    /// The core's event counters (a copy the consensus stage publishes).
    pub core_counters: Mutex<Counters>,
    /// Channel depths (snapshot): name -> depth.
    pub channel_depths: Mutex<Vec<(&'static str, usize)>>,
    /// Peers connected.
    pub peers: Gauge,
    /// Voting weight of the local epoch's session among the connected peers and this
    /// node (D-9).
    pub voter_weight_connected: CountGauge,
    /// The quorum of that session: the weight a notarization needs (D-9).
    pub voter_quorum: CountGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            votes_in: Counter::default(),
            notarizations_in: Counter::default(),
            proposals_in: Counter::default(),
            clock_in: Counter::default(),
            verify_failures: Counter::default(),
            votes_after_quorum: Counter::default(),
            verify_batch: Histogram::new(SIZE_BOUNDS),
            vote_batch: Histogram::new(SIZE_BOUNDS),
            fsync: Histogram::new(LATENCY_BOUNDS),
            storage_batch: Histogram::new(SIZE_BOUNDS),
            finalized_blocks: Counter::default(),
            finalized_txs: Counter::default(),
            txs_skipped: Counter::default(),
            state_commitments_checked: Counter::default(),
            state_commitment_mismatches: Counter::default(),
            proposal_commitments_checked: Counter::default(),
            proposal_commitments_unchecked: Counter::default(),
            proposal_commitments_refused: Counter::default(),
            state_snapshots: Counter::default(),
            state_sync_offers_served: Counter::default(),
            state_sync_chunks_served: Counter::default(),
            state_sync_bytes_served: Counter::default(),
            state_sync_requests_refused: Counter::default(),
            state_sync_offers_refused: Counter::default(),
            state_sync_chunks_refused: Counter::default(),
            state_sync_bytes_fetched: Counter::default(),
            state_sync_joins: Counter::default(),
            state_sync_set_aside: Counter::default(),
            state_sync_behind: Gauge::default(),
            tx_latency: Histogram::new(LATENCY_BOUNDS),
            block_latency: Histogram::new(LATENCY_BOUNDS),
            txs_submitted: Counter::default(),
            txs_refused: Counter::default(),
            net_queue_full: Counter::default(),
            forward_failures: Counter::default(),
            doppelganger_held: Counter::default(),
            doppelganger_tripped: Gauge::default(),
            peer_head_height: CountGauge::default(),
            peer_status_height: Family::default(),
            core_counters: Mutex::new(Counters::default()),
            channel_depths: Mutex::new(Vec::new()),
            peers: Gauge::default(),
            voter_weight_connected: CountGauge::default(),
            voter_quorum: CountGauge::default(),
        }
    }
}

impl Metrics {
    /// Registers every metric of the node in `registry`: the stages' counters, gauges and
    /// histograms, and a collector that reads `sources` at each scrape. Call once per
    /// node (the HTTP API does, and serves the registry at `/metrics`).
    pub fn register(self: &Arc<Self>, registry: &mut Registry, sources: ScrapeSources) {
        let counters = [
            (
                "pala_votes_received",
                "Verified votes handed to the core.",
                &self.votes_in,
            ),
            (
                "pala_notarizations_received",
                "Verified notarizations handed to the core.",
                &self.notarizations_in,
            ),
            (
                "pala_proposals_received",
                "Verified proposals handed to the core.",
                &self.proposals_in,
            ),
            (
                "pala_votes_after_quorum",
                "Votes left unverified because a verified quorum of their block had reached \
                 the core (the notarization needs no more).",
                &self.votes_after_quorum,
            ),
            (
                "pala_clock_received",
                "Verified clock messages and clock notarizations handed to the core.",
                &self.clock_in,
            ),
            (
                "pala_finalized_blocks",
                "Finalized blocks applied.",
                &self.finalized_blocks,
            ),
            (
                "pala_finalized_txs",
                "Finalized transactions applied.",
                &self.finalized_txs,
            ),
            (
                "pala_txs_skipped",
                "Finalized transactions the application skipped (duplicate or invalid).",
                &self.txs_skipped,
            ),
            (
                "pala_state_commitments_checked",
                "Finalized blocks whose state commitment agreed with this node's own digest \
                 at that height.",
                &self.state_commitments_checked,
            ),
            (
                "pala_state_commitment_mismatches",
                "Finalized blocks whose state commitment disagreed with this node's own \
                 digest at that height (this node then serves no snapshot).",
                &self.state_commitment_mismatches,
            ),
            (
                "pala_proposal_commitments_checked",
                "Proposals whose state commitment agreed with this node's digest before it \
                 voted (W-12e).",
                &self.proposal_commitments_checked,
            ),
            (
                "pala_proposal_commitments_unchecked",
                "Proposals with a state commitment to a height this node had not applied \
                 (or no longer kept) when it voted.",
                &self.proposal_commitments_unchecked,
            ),
            (
                "pala_proposal_commitments_refused",
                "Proposals not voted for because their state commitment contradicted this \
                 node's digest.",
                &self.proposal_commitments_refused,
            ),
            (
                "pala_state_snapshots",
                "State snapshots written for state sync.",
                &self.state_snapshots,
            ),
            (
                "pala_state_sync_offers_served",
                "State-sync snapshot offers sent to peers (with a snapshot).",
                &self.state_sync_offers_served,
            ),
            (
                "pala_state_sync_chunks_served",
                "State-sync snapshot chunks sent to peers.",
                &self.state_sync_chunks_served,
            ),
            (
                "pala_state_sync_bytes_served",
                "Bytes of state-sync snapshot chunks sent to peers.",
                &self.state_sync_bytes_served,
            ),
            (
                "pala_state_sync_requests_refused",
                "State-sync requests refused: over the per-peer rate, undecodable, for a snapshot not kept, or the queue to the state-sync server full.",
                &self.state_sync_requests_refused,
            ),
            (
                "pala_state_sync_offers_refused",
                "Snapshot offers and session proofs a joining node refused (proof, digest or session proof did not check).",
                &self.state_sync_offers_refused,
            ),
            (
                "pala_state_sync_chunks_refused",
                "Snapshot chunks a joining node refused (hash or length did not match the manifest), plus chunk requests that timed out.",
                &self.state_sync_chunks_refused,
            ),
            (
                "pala_state_sync_bytes_fetched",
                "Bytes of snapshot chunks a joining node accepted.",
                &self.state_sync_bytes_fetched,
            ),
            (
                "pala_state_sync_joins",
                "Times this node installed a snapshot instead of replaying from genesis.",
                &self.state_sync_joins,
            ),
            (
                "pala_state_sync_set_aside",
                "Times this node set its data directory's contents aside at start, because no \
                 peer stored its finalized head any more, and joined by state sync.",
                &self.state_sync_set_aside,
            ),
            (
                "pala_txs_submitted",
                "Transactions accepted by the API.",
                &self.txs_submitted,
            ),
            (
                "pala_txs_refused",
                "Transactions refused by the API (full pool, invalid, too large).",
                &self.txs_refused,
            ),
            (
                "pala_forward_failures",
                "Failed forwards of transactions to proposers.",
                &self.forward_failures,
            ),
            (
                "pala_doppelganger_held",
                "Own votes, clock messages and proposals not sent: start-up wait or key live elsewhere.",
                &self.doppelganger_held,
            ),
        ];
        for (name, help, c) in counters {
            registry.register(name, help, c.clone());
        }
        registry.register("pala_peers", "Connected peers.", self.peers.clone());
        registry.register(
            "pala_state_sync_behind",
            "1 while chain sync shows that no peer stores this node's finalized head any more \
             (it fell behind every peer's retention; a restart joins by state sync).",
            self.state_sync_behind.clone(),
        );
        registry.register(
            "pala_doppelganger_tripped",
            "1 once this node saw its own key live on another node and stopped signing.",
            self.doppelganger_tripped.clone(),
        );
        registry.register(
            "pala_peer_head_height",
            "Highest head height a connected committee member announced (the readiness target).",
            self.peer_head_height.clone(),
        );
        registry.register(
            "pala_peer_status_head_height",
            "Head height each connected peer announced in its last status.",
            self.peer_status_height.clone(),
        );
        registry.register(
            "pala_voter_weight_connected",
            "Voting weight of the local epoch's session held by this node and its connected peers (D-9).",
            self.voter_weight_connected.clone(),
        );
        registry.register(
            "pala_voter_quorum",
            "Voting weight a notarization needs in the session of the local epoch (D-9).",
            self.voter_quorum.clone(),
        );
        let histograms = [
            (
                "pala_verify_batch_size",
                "Messages per signature verification batch.",
                None,
                &self.verify_batch,
            ),
            (
                "pala_vote_batch_size",
                "Votes per aggregate-checked vote batch (PV-3).",
                None,
                &self.vote_batch,
            ),
            (
                "pala_fsync",
                "Duration of one storage group commit (write + fdatasync).",
                Some(Unit::Seconds),
                &self.fsync,
            ),
            (
                "pala_storage_batch_records",
                "Records per storage group commit.",
                None,
                &self.storage_batch,
            ),
            (
                "pala_tx_finality_latency",
                "From submission to this node until the transaction is applied.",
                Some(Unit::Seconds),
                &self.tx_latency,
            ),
            (
                "pala_block_finality_latency",
                "From the block's timestamp until it is finalized on this node.",
                Some(Unit::Seconds),
                &self.block_latency,
            ),
        ];
        for (name, help, unit, h) in histograms {
            match unit {
                Some(u) => registry.register_with_unit(name, help, u, h.clone()),
                None => registry.register(name, help, h.clone()),
            }
        }
        registry.register_collector(Box::new(collect::Scraped {
            metrics: self.clone(),
            sources,
        }));
    }
}

#[cfg(test)]
mod tests;
