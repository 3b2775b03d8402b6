//! The status snapshot and the gauges the consensus stage publishes.

use super::super::readiness::{readiness, Facts};
use super::Loop;
use crate::status::StatusView;
use pala_types::SignerBitmap;

impl Loop {
    pub(super) fn publish(&self) {
        let c = &self.core;
        let m = &self.d.metrics;
        let peers: Vec<String> = self.d.links.peers().iter().map(|p| p.to_hex()).collect();
        m.peers.set(peers.len() as i64);
        let session = c.epoch().session;
        if let Some(committee) = c.committees().get(session) {
            // By the committees' voter index: one lookup per peer, not a scan of the list.
            let me = c.id();
            let mut reached = SignerBitmap::new(committee.voters.len());
            for peer in self.d.links.peers().iter().chain([&me]) {
                if let Some(i) = c.committees().voter_index(session, peer) {
                    reached.insert(i);
                }
            }
            m.voter_weight_connected.set(committee.weight(&reached));
            m.voter_quorum.set(committee.quorum());
        }
        m.doppelganger_tripped
            .set(self.host.doppelganger.tripped().into());
        let target = m.peer_head_height.get();
        let session = c.epoch().session;
        let ready = readiness(&Facts {
            me: c.id(),
            role: c.role(),
            epoch: c.epoch(),
            committee: c.committees().get(session).map(|c| &**c),
            any_peer: !peers.is_empty(),
            answering: self.d.links.answering(),
            head_height: c.head_block().height(),
            k: c.config().k,
            target,
            // A node that stopped signing (its key is live elsewhere) is not fit for traffic.
            doppelganger: self.host.doppelganger.tripped(),
            quiet_ms: self
                .host
                .doppelganger
                .quiet_until()
                .saturating_sub(self.d.ticks.now()),
        });
        self.d.status.publish(StatusView {
            id: c.id().to_hex(),
            role: self.role.as_str().into(),
            epoch: (c.epoch().session, c.epoch().e),
            head: c.head().to_string(),
            head_height: c.head_block().height(),
            finalized: c.finalized().to_string(),
            finalized_height: c.finalized_block().height(),
            producing: c.is_producing(),
            peers,
            applied_height: self.d.app_view.applied_height(),
            mempool_txs: self.d.mempool.size().0,
            ready: ready.is_ok(),
            not_ready: ready.err().map(|r| r.to_string()).unwrap_or_default(),
            stopping: self.stopping,
        });
        *m.core_counters.lock().unwrap_or_else(|e| e.into_inner()) = c.counters().clone();
        let depths = [
            ("consensus_inbox", self.d.inbox.len()),
            ("consensus_gate", self.driver.gate().held()),
            ("storage_jobs", self.host.storage.queued()),
            ("application", self.d.app.queued()),
            ("net_commands", self.host.net.len()),
        ];
        let mut d = m.channel_depths.lock().unwrap_or_else(|e| e.into_inner());
        d.retain(|(n, _)| !depths.iter().any(|(m, _)| m == n));
        d.extend(depths);
    }
}
