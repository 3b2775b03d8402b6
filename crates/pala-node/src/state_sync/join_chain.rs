//! The joiner's side of the chain of committees (W-12a): before it fetches a snapshot
//! signed in session T > 1, it asks the peers that offered it for the proofs of sessions
//! 1 .. T−1 (`get-session-proof`, page by page, one peer at a time, at the pace of the
//! chunks), checks each with the committee derived so far ([`super::super::committees`]),
//! and checks the offer with the committees at the end. A peer whose proof does not check
//! is not asked again and the next one is; the proofs that checked are kept for the
//! next round.

use super::super::committees::next_committee;
use super::super::proof;
use super::super::wire::{Offer, SyncMessage, MAX_PROOF_BLOCKS};
use super::Session;
use pala_core::MessageVerifier;
use pala_net::NetEvent;
use pala_types::{Committee, NodeId, NotarizedBlock};
use std::time::{Duration, Instant};
use tracing::{error, info};

/// What an offer of a later session needs beyond its own proof: the committees of
/// sessions 2 ..= T and the session proofs that yield them.
#[derive(Debug, Default, Clone)]
pub struct CommitteeChain {
    /// The derived committees, session 2 first.
    pub committees: Vec<Committee>,
    /// The proofs of sessions 1 .. T−1, session 1 first.
    pub proofs: Vec<Vec<NotarizedBlock>>,
}

impl Session<'_> {
    /// Checks `offer` (from `offered_by`) whole: for a later session, fetches and checks
    /// the chain of committees from `sources` first. The offering peer is banned when
    /// its offer does not check.
    pub(super) fn confirm(
        &mut self,
        offer: &Offer,
        offered_by: NodeId,
        sources: &[NodeId],
    ) -> Result<CommitteeChain, String> {
        let target = proof::session_of(offer);
        if target <= 1 {
            return Ok(CommitteeChain::default());
        }
        // The sessions checked in an earlier round stay checked.
        let mut chain = std::mem::take(&mut self.chain);
        let genesis = self
            .deps
            .verifier
            .committees()
            .get(1)
            .map(|c| Committee::clone(c))
            .ok_or("the genesis committee is not installed")?;
        let mut current = chain.committees.last().cloned().unwrap_or(genesis);
        for session in chain.proofs.len() as u32 + 1..target {
            match self.session_from_any(session, &current, sources) {
                Ok((next, proof)) => {
                    chain.proofs.push(proof);
                    chain.committees.push(next.clone());
                    current = next;
                }
                Err(e) => {
                    self.chain = chain;
                    return Err(e);
                }
            }
        }
        self.chain = chain.clone();
        chain.proofs.truncate(target as usize - 1);
        chain.committees.truncate(target as usize - 1);
        let mut verifier = MessageVerifier::new(
            self.deps.rules.scheme.clone(),
            self.deps.rules.network_id,
            self.deps.verifier.committees().clone(),
        );
        for c in &chain.committees {
            verifier.install(c.clone());
        }
        if let Err(e) = proof::check(offer, &verifier, self.deps.k) {
            self.deps.metrics.state_sync_offers_refused.inc();
            error!(
                peer = %offered_by.to_hex(),
                height = offer.manifest.height,
                "refused a state-sync snapshot offer: {e}; trying other peers"
            );
            self.ban(offered_by);
            return Err(format!(
                "the offer of snapshot {} did not check: {e}",
                offer.manifest.height
            ));
        }
        info!(
            sessions = chain.proofs.len(),
            blocks = chain.proofs.iter().map(Vec::len).sum::<usize>(),
            "checked the chain of committees from genesis to session {target}"
        );
        Ok(chain)
    }

    /// Session `session`'s proof, checked with `committee`, from the first of `sources`
    /// that serves one that checks; with the committee it yields.
    fn session_from_any(
        &mut self,
        session: u32,
        committee: &Committee,
        sources: &[NodeId],
    ) -> Result<(Committee, Vec<NotarizedBlock>), String> {
        for &peer in sources {
            if self.banned.contains(&peer) || !self.connected.contains(&peer) {
                continue;
            }
            let proof = match self.fetch_session(peer, session) {
                Ok(p) => p,
                Err(e) => {
                    error!(peer = %peer.to_hex(), session, "no session proof: {e}; trying another peer");
                    continue;
                }
            };
            match next_committee(&self.deps.rules, session, committee, &proof) {
                Ok(next) => return Ok((next, proof)),
                Err(e) => {
                    self.deps.metrics.state_sync_offers_refused.inc();
                    error!(
                        peer = %peer.to_hex(),
                        session,
                        "refused a session proof: {e}; trying another peer"
                    );
                    self.ban(peer);
                }
            }
        }
        Err(format!(
            "no peer served a proof of session {session} that checks"
        ))
    }

    /// All pages of `session`'s proof from `peer`.
    fn fetch_session(&mut self, peer: NodeId, session: u32) -> Result<Vec<NotarizedBlock>, String> {
        let most = self.deps.rules.stop_offset as u64 + MAX_PROOF_BLOCKS as u64;
        let pace = Duration::from_secs_f64(1.25 / self.deps.peer_rate.max(1) as f64);
        let mut blocks: Vec<NotarizedBlock> = Vec::new();
        let mut total = None;
        while total.is_none_or(|t| (blocks.len() as u64) < t) {
            let from = blocks.len() as u32;
            let asked = Instant::now();
            self.send(peer, &SyncMessage::GetSession { session, from });
            let answer = self.await_answer(peer, asked + self.deps.chunk_timeout, |m| {
                matches!(m, SyncMessage::Session { session: s, from: f, .. } if *s == session && *f == from)
            });
            let Some(SyncMessage::Session { page, .. }) = answer else {
                return Err(format!(
                    "no answer within {} ms",
                    self.deps.chunk_timeout.as_millis()
                ));
            };
            let Some((t, page)) = page else {
                return Err("the peer keeps no proof of this session".into());
            };
            if t as u64 > most || total.is_some_and(|old| old != t as u64) {
                return Err(format!(
                    "a proof of {t} blocks (at most {most} can be one; or it changed between pages)"
                ));
            }
            total = Some(t as u64);
            blocks.extend(page);
            // The peer's rate limit (W-12b): never faster than its chunks.
            if let Some(wait) = (asked + pace).checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        Ok(blocks)
    }

    /// Waits until `until` for a message from `peer` that `want` accepts, answering other
    /// peers' requests meanwhile; `None` on timeout or when `peer` disconnects.
    pub(super) fn await_answer(
        &mut self,
        peer: NodeId,
        until: Instant,
        want: impl Fn(&SyncMessage) -> bool,
    ) -> Option<SyncMessage> {
        while Instant::now() < until {
            let Ok(ev) = self.net.events().recv_timeout(Duration::from_millis(50)) else {
                continue;
            };
            match ev {
                NetEvent::PeerUp { peer: p, .. } => {
                    self.connected.insert(p);
                }
                NetEvent::PeerDown { peer: p, .. } => {
                    self.connected.remove(&p);
                    if p == peer {
                        return None;
                    }
                }
                NetEvent::Extension {
                    peer: p,
                    kind,
                    payload,
                } if self.answer_request(p, kind, &payload) => {}
                NetEvent::Extension {
                    peer: p,
                    kind,
                    payload,
                } if p == peer => {
                    if let Ok(m) = SyncMessage::decode(kind, &payload) {
                        if want(&m) {
                            return Some(m);
                        }
                    }
                }
                _ => {}
            }
        }
        None
    }
}
