//! Status, heartbeats and chain sync (docs/protocol.md section 7.2).
//!
//! - **W-6** The status goes to a peer when it connects, to all peers every heartbeat and
//!   after every batch that moved `head` or `L`; the latest status of each peer is kept.
//! - **W-7** The chain syncer has two slots, epoch and blocks, each with at most one
//!   outstanding request. A request is abandoned after `T_VOTER / 2` and its peer is left
//!   out for `T_VOTER` (W-7.1). Epoch sync asks the peer with the highest epoch for the
//!   clock notarization of the local session (W-7.2); block sync asks the peer with the
//!   freshest head for the notarized blocks after the newest block both have, listing
//!   the path from `head` down to the root (the stop block during reconfiguration, C-7b),
//!   and marks a peer whose finalized chain differs as inconsistent (W-7.3). A newly seen
//!   voter gets the primary's unnotarized proposals, once per cool-down (W-7.4).
//! - **W-8** A new primary's readiness gate (N-2) counts the peers whose status is not
//!   fresher than its head; the statuses kept here feed it.

use super::insertion::InsertError;
use super::Node;
use crate::chain::Chain;
use crate::config::Tick;
use crate::counters::CoreEvent;
use crate::io::{BlockArchive, Output};
use pala_types::{
    Epoch, EpochResponse, FresherHeadRequest, FresherHeadResponse, Hash, Message, NodeId,
    NotarizedBlock, Proposal, Status,
};
use std::collections::{BTreeMap, BTreeSet};

/// What the node knows of its peers, and its outstanding sync requests (W-6, W-7).
#[derive(Default)]
pub(super) struct Syncer {
    pub(super) peers: BTreeMap<NodeId, PeerInfo>,
    epoch_slot: Option<SyncSlot>,
    blocks_slot: Option<SyncSlot>,
    /// Peers left out of sync requests until the tick (W-7.1).
    penalties: BTreeMap<NodeId, Tick>,
    /// Peers whose finalized chain is not ours: never asked for blocks again (W-7.3).
    inconsistent: BTreeSet<NodeId>,
}

/// One peer as seen through its status messages (W-6).
#[derive(Default)]
pub(super) struct PeerInfo {
    pub(super) connected: bool,
    pub(super) status: Option<Status>,
    greeted: bool,
    unnotarized_sent_at: Option<Tick>,
    /// The epoch whose unnotarized proposals this peer got while its status was in that
    /// epoch (W-7.4b): proposals sent before it entered were dropped there (W-11b).
    unnotarized_sent_for: Option<Epoch>,
}

/// An outstanding request (W-7.1).
#[derive(Clone, Copy)]
struct SyncSlot {
    peer: NodeId,
    deadline: Tick,
}

impl Node {
    /// What the node knows of each peer it has heard of (W-6): whether it is connected
    /// and the last status it sent (cleared when it disconnects).
    pub fn peer_statuses(&self) -> impl Iterator<Item = (NodeId, bool, Option<&Status>)> + '_ {
        self.sync
            .peers
            .iter()
            .map(|(id, p)| (*id, p.connected, p.status.as_ref()))
    }

    pub(super) fn on_connected(&mut self, p: NodeId) {
        let info = self.sync.peers.entry(p).or_default();
        info.connected = true;
        info.greeted = false;
        self.out.push(Output::Send {
            to: p,
            msg: Message::Status(self.status()),
        });
    }

    pub(super) fn on_disconnected(&mut self, p: NodeId) {
        if let Some(info) = self.sync.peers.get_mut(&p) {
            info.connected = false;
            info.status = None;
        }
        if self.sync.epoch_slot.is_some_and(|s| s.peer == p) {
            self.sync.epoch_slot = None;
        }
        if self.sync.blocks_slot.is_some_and(|s| s.peer == p) {
            self.sync.blocks_slot = None;
        }
        self.sync_dirty = true;
    }

    /// W-6, W-7.4.
    pub(super) fn on_status(&mut self, from: NodeId, s: Status) {
        let info = self.sync.peers.entry(from).or_default();
        info.connected = true;
        let first = !info.greeted;
        info.greeted = true;
        if s.epoch > self.epoch || s.head > self.chain.head() {
            self.sync_dirty = true;
        }
        let in_our_epoch = s.epoch == self.epoch;
        let came_in = in_our_epoch && info.status.as_ref().is_some_and(|p| p.epoch < self.epoch);
        info.status = Some(s);
        // W-7.4: a newly seen voter gets our unnotarized proposals (once per cool-down);
        // W-7.4b: so does a voter whose status moves into our epoch while we hold some:
        // any we broadcast before were dropped there (W-11b). Once per epoch, so a peer
        // cannot make us repeat them at will.
        if self.is_primary()
            && self.is_voter_of(from, self.epoch.session)
            && !self.proposer.unnotarized.is_empty()
        {
            let (now, epoch) = (self.now, self.epoch);
            let cool = self.cfg.unnotarized_resend_ms;
            let info = self.sync.peers.get_mut(&from).expect("inserted above");
            let greeting = first && info.unnotarized_sent_at.is_none_or(|t| now >= t + cool);
            let entered = came_in && info.unnotarized_sent_for != Some(epoch);
            if greeting || entered {
                info.unnotarized_sent_at = Some(now);
                if in_our_epoch {
                    info.unnotarized_sent_for = Some(epoch);
                }
                let ps: Vec<Proposal> = self.proposer.unnotarized.values().cloned().collect();
                self.out.push(Output::Send {
                    to: from,
                    msg: Message::UnnotarizedProposals(ps),
                });
            }
        }
    }

    fn is_voter_of(&self, id: NodeId, session: u32) -> bool {
        self.committees.is_voter(session, &id)
    }

    /// W-7.2 (serving).
    pub(super) fn on_get_epoch(&mut self, from: NodeId, e: Epoch) {
        let resp = if e.session == self.epoch.session {
            EpochResponse {
                session: e.session,
                clock: self.epoch_proof.clone(),
                is_last: false,
                stop_proof: Vec::new(),
            }
        } else if e.session < self.epoch.session {
            EpochResponse {
                session: e.session,
                clock: self.last_clock_of_session.get(&e.session).cloned(),
                is_last: true,
                // C-9
                stop_proof: self
                    .reconfig
                    .stop_proofs
                    .get(&e.session)
                    .cloned()
                    .unwrap_or_default(),
            }
        } else {
            EpochResponse {
                session: e.session,
                clock: None,
                is_last: false,
                stop_proof: Vec::new(),
            }
        };
        self.out.push(Output::Send {
            to: from,
            msg: Message::Epoch(resp),
        });
    }

    pub(super) fn on_epoch_response(&mut self, from: NodeId, r: EpochResponse) {
        if self.sync.epoch_slot.is_some_and(|s| s.peer == from) {
            self.sync.epoch_slot = None;
        }
        if r.is_last && r.session == self.epoch.session && !r.stop_proof.is_empty() {
            self.apply_stop_proof(&r.stop_proof);
        }
        if let Some(c) = r.clock {
            if c.epoch > self.epoch && c.epoch.session == self.epoch.session {
                self.advance_epoch(c.epoch, Some(c));
            }
        }
        self.sync_dirty = true;
    }

    /// W-7.3 (serving).
    pub(super) fn on_get_fresher_head(&mut self, from: NodeId, req: FresherHeadRequest) {
        let resp = serve_fresher_head(
            &self.chain,
            self.archive.as_ref(),
            &req,
            self.cfg.sync_blocks_per_response,
        );
        self.out.push(Output::Send {
            to: from,
            msg: Message::FresherHead(resp),
        });
    }

    pub(super) fn on_fresher_head(&mut self, from: NodeId, r: FresherHeadResponse) {
        if self.sync.blocks_slot.is_some_and(|s| s.peer == from) {
            self.sync.blocks_slot = None;
        }
        if r.blocks.is_empty() {
            if let Some((h, hash, _)) = r.finalized {
                let fin = self.chain.finalized_block();
                let consistent = if h == fin.height() {
                    hash == fin.hash()
                } else if h < fin.height() {
                    self.archive
                        .finalized_at(h)
                        .is_none_or(|b| b.block.hash() == hash)
                } else {
                    true
                };
                if !consistent {
                    self.count(CoreEvent::SyncPeerInconsistent);
                    self.sync.inconsistent.insert(from);
                }
            }
            self.count(CoreEvent::SyncEmptyResponse);
            self.hold_off_sync_peer(from);
            return;
        }
        let before = self.chain.head();
        self.insert_synced(&r.blocks);
        if self.chain.head() > before {
            self.count(CoreEvent::SyncProgress);
        } else {
            self.hold_off_sync_peer(from);
        }
        self.sync_dirty = true;
    }

    /// N-10 for synced notarized blocks in chain order, stopping at the first that does
    /// not insert (counted by why).
    pub(super) fn insert_synced(&mut self, blocks: &[NotarizedBlock]) {
        for nb in blocks {
            if let Err(e) = self.insert_notarized(&nb.block, nb.notarization.as_ref()) {
                self.count(match e {
                    InsertError::MissingParent(_) => CoreEvent::SyncMissingParent,
                    _ => CoreEvent::SyncBlockRejected,
                });
                return;
            }
        }
    }

    /// [INFERRED] W-7 penalizes only a silent peer; a peer that answers without moving
    /// our head would get the same request again at once, hundreds of times a second
    /// (seen with a server that could not find the requester's genesis). Such a peer
    /// waits out `MAX_REQUEST_WAIT`, as long as a request may take anyway, while other
    /// peers can still be asked.
    fn hold_off_sync_peer(&mut self, peer: NodeId) {
        let until = self.now + self.cfg.sync_request_timeout_ms();
        let p = self.sync.penalties.entry(peer).or_insert(until);
        *p = (*p).max(until);
    }

    /// W-7.1..W-7.3 (requesting): at most one outstanding request per slot.
    pub(super) fn drive_sync(&mut self) {
        let now = self.now;
        for slot in [&mut self.sync.epoch_slot, &mut self.sync.blocks_slot] {
            if let Some(s) = *slot {
                if s.deadline <= now {
                    self.sync
                        .penalties
                        .insert(s.peer, now + self.cfg.sync_penalty_ms());
                    *slot = None;
                    self.counters.bump(CoreEvent::SyncTimeouts);
                }
            }
        }
        self.sync.penalties.retain(|_, until| *until > now);
        let deadline = now + self.cfg.sync_request_timeout_ms();
        if self.sync.epoch_slot.is_none() {
            let best = self
                .sync
                .peers
                .iter()
                .filter(|(id, p)| p.connected && !self.sync.penalties.contains_key(*id))
                .filter_map(|(id, p)| p.status.as_ref().map(|s| (s.epoch, *id)))
                .filter(|(e, _)| *e > self.epoch)
                .max_by_key(|(e, id)| (*e, std::cmp::Reverse(*id)));
            if let Some((_, peer)) = best {
                self.sync.epoch_slot = Some(SyncSlot { peer, deadline });
                self.out.push(Output::Send {
                    to: peer,
                    msg: Message::GetEpoch(self.epoch),
                });
            }
        }
        if self.sync.blocks_slot.is_none() {
            let head = self.chain.head();
            let best = self
                .sync
                .peers
                .iter()
                .filter(|(id, p)| {
                    p.connected
                        && !self.sync.penalties.contains_key(*id)
                        && !self.sync.inconsistent.contains(*id)
                })
                .filter_map(|(id, p)| p.status.as_ref().map(|s| (s.head, *id)))
                .filter(|(h, _)| *h > head)
                .max_by_key(|(h, id)| (*h, std::cmp::Reverse(*id)));
            if let Some((_, peer)) = best {
                self.sync.blocks_slot = Some(SyncSlot { peer, deadline });
                let req = self.fresher_head_request();
                self.out.push(Output::Send {
                    to: peer,
                    msg: Message::GetFresherHead(req),
                });
            }
        }
    }

    fn fresher_head_request(&self) -> FresherHeadRequest {
        let path = self.chain.head_path();
        let limit = self.cfg.sync_known_limit.max(2);
        let mut known: Vec<(u64, Hash)> = path
            .iter()
            .take(limit - 1)
            .map(|e| (e.block.height(), e.block.hash()))
            .collect();
        // The root is the finalized block, or the stop block during a reconfiguration
        // window, so a peer on the new session's branch finds it (C-7b).
        let root = self.chain.root_block();
        if known.last().map(|k| k.0) != Some(root.height()) {
            known.push((root.height(), root.hash()));
        }
        FresherHeadRequest {
            head: self.chain.head(),
            known,
        }
    }
}

/// W-7.3: answers a fresher-head request from the freshest notarized chain (`chain` for
/// the part above the finalized head, `archive` below it). Pure, so the node can also
/// run it off the consensus executor.
pub fn serve_fresher_head(
    chain: &Chain,
    archive: &dyn BlockArchive,
    req: &FresherHeadRequest,
    max_blocks: usize,
) -> FresherHeadResponse {
    let path = chain.head_path(); // newest first, down to the root
    let fin = chain.root_block();
    let fin_h = fin.height();
    let on_my_chain = |h: u64, hash: Hash| -> bool {
        if h >= fin_h {
            path.iter()
                .any(|e| e.block.height() == h && e.block.hash() == hash)
        } else {
            archive
                .finalized_at(h)
                .is_some_and(|b| b.block.hash() == hash)
        }
    };
    let Some(&(common_h, _)) = req.known.iter().find(|(h, hash)| on_my_chain(*h, *hash)) else {
        let f = chain.finalized_block();
        return FresherHeadResponse {
            blocks: Vec::new(),
            finalized: Some((f.height(), f.hash(), f.sn())),
        };
    };
    let mut blocks = Vec::new();
    let head_h = chain.head_block().height();
    let mut h = common_h + 1;
    while h <= head_h && blocks.len() < max_blocks.max(1) {
        let nb = if h > fin_h {
            path.iter()
                .find(|e| e.block.height() == h)
                .map(|e| NotarizedBlock {
                    block: e.block.clone(),
                    notarization: e.nota.clone(),
                })
        } else if h == fin_h {
            let e = &path[path.len() - 1];
            Some(NotarizedBlock {
                block: e.block.clone(),
                notarization: e.nota.clone(),
            })
        } else {
            archive.finalized_at(h)
        };
        match nb {
            Some(nb) if nb.notarization.is_some() || !nb.block.sn().is_pala() => blocks.push(nb),
            _ => break,
        }
        h += 1;
    }
    FresherHeadResponse {
        blocks,
        finalized: None,
    }
}
