//! Votes and notarizations (docs/protocol.md section 3.4).
//!
//! - **PV-1** Only the primary proposer of the local epoch collects votes, and only for
//!   blocks of that epoch.
//! - **PV-2** A vote is recorded only after its signature verified (section 0.1 item 6),
//!   so a forged vote cannot shadow the genuine one.
//! - **PV-3** The voter must be in the session's voter list and vote for the stored hash.
//! - **PV-4** The first quorum is stored and broadcast; late votes keep improving the
//!   stored notarization, folded in lazily when it is embedded (**PV-5**).
//! - **NA-1..NA-6** Every node accepts a verified notarization for a stored block whose
//!   hash matches (NA-1); the chain keeps the one with most votes (NA-2), only on a
//!   notarized parent (NA-4), moves `head` (NA-5) and finalizes (F-B, F-C) and wakes the block
//!   maker (NA-6).

use super::Node;
use crate::chain::Attach;
use crate::counters::CoreEvent;
use crate::io::{Output, StateChange};
use pala_types::{BlockSn, Hash, Message, Notarization, SignerBitmap, Vote};

/// The votes the primary proposer collected for one of its blocks (PV-2..PV-5).
pub(super) struct VoteCollector {
    hash: Hash,
    signers: SignerBitmap,
    aggregate: pala_types::Signature,
    broadcast: bool,
    /// Number of signers in the stored notarization (late votes raise `signers` above it).
    materialized: usize,
}

impl VoteCollector {
    /// Collects votes for block `hash` from `voters` voters, starting from the proposer's
    /// own share of the aggregate (D-12).
    pub(super) fn new(hash: Hash, voters: usize, own_share: pala_types::Signature) -> Self {
        VoteCollector {
            hash,
            signers: SignerBitmap::new(voters),
            aggregate: own_share,
            broadcast: false,
            materialized: 0,
        }
    }
}

impl Node {
    /// NA-1..NA-6 for a notarization whose signatures were verified.
    pub(super) fn add_notarization(&mut self, n: Notarization) -> bool {
        let Some(hash) = self.chain.hash(n.sn) else {
            self.count(CoreEvent::NotarizationUnknownBlock);
            return false;
        };
        if hash != n.block_hash {
            self.count(CoreEvent::NotarizationHashMismatch);
            return false;
        }
        let head_before = self.chain.head();
        match self.chain.attach(n.clone()) {
            Attach::Ignored => false,
            Attach::Stored => {
                self.persist(StateChange::Notarization(n));
                true
            }
            Attach::Connected(connected) => {
                self.persist(StateChange::Notarization(n));
                if self.chain.head() != head_before {
                    self.on_head_extended();
                }
                self.finalize_connected(&connected);
                true
            }
        }
    }

    /// PV-1..PV-5 for a verified vote.
    pub(super) fn on_vote(&mut self, v: Vote) {
        let short = mutated!(self, QuorumOneShort);
        // PV-1
        let c = match self.primary_committee() {
            Some(c) if v.sn.epoch == self.epoch => c,
            _ => {
                self.count(CoreEvent::VoteNotForMe);
                return;
            }
        };
        let Some(idx) = self.committees.voter_index(v.sn.epoch.session, &v.voter) else {
            self.count(CoreEvent::VoteNotAVoter);
            return;
        };
        let Some(col) = self.proposer.votes.get_mut(&v.sn) else {
            self.count(CoreEvent::VoteUnknownBlock);
            return;
        };
        if col.hash != v.block_hash {
            self.count(CoreEvent::VoteHashMismatch);
            return;
        }
        // PV-2: recorded only now that it verified (section 0.1 item 6).
        if col.signers.contains(idx) {
            self.count(CoreEvent::VoteDuplicate);
            return;
        }
        // A signature that verified is a valid point and always aggregates; were it not,
        // the vote is left out rather than recorded without its share.
        let Some(aggregate) = self.scheme.aggregate(&[&col.aggregate, &v.signature]) else {
            return;
        };
        col.signers.insert(idx);
        col.aggregate = aggregate;
        let reached = quorum(&c, &col.signers, short);
        let first = !col.broadcast;
        self.count(CoreEvent::VotesReceived);
        if reached && first {
            // PV-4: first quorum -> store and broadcast; late votes are folded in lazily
            // (materialize_notarization) when the notarization is embedded (PV-5).
            let n = self.materialize_notarization(v.sn).expect("quorum reached");
            self.proposer.unnotarized.remove(&v.sn);
            self.out.push(Output::Broadcast(Message::Notarization(n)));
        }
    }

    /// Builds the notarization of `sn` from the collected votes and stores it if it has
    /// more votes than the stored one.
    pub(super) fn materialize_notarization(&mut self, sn: BlockSn) -> Option<Notarization> {
        let short = mutated!(self, QuorumOneShort);
        let c = self.committee(sn.epoch.session)?;
        let my_idx = c.proposer_index(&self.me)?;
        let col = self.proposer.votes.get_mut(&sn)?;
        if !quorum(&c, &col.signers, short) {
            return None;
        }
        col.broadcast = true;
        let n = Notarization {
            sn,
            block_hash: col.hash,
            proposer_idx: my_idx as u16,
            signers: col.signers.clone(),
            signature: col.aggregate.clone(),
        };
        if col.materialized < n.vote_count() {
            col.materialized = n.vote_count();
            self.add_notarization(n.clone());
        }
        Some(n)
    }
}

/// PV-4's quorum test; `one_short` is the QuorumOneShort mutation (always false in
/// production builds).
fn quorum(c: &pala_types::Committee, signers: &SignerBitmap, one_short: bool) -> bool {
    if one_short {
        signers.len() == c.voters.len() && c.weight(signers) + 1 >= c.quorum()
    } else {
        c.is_quorum(signers)
    }
}
