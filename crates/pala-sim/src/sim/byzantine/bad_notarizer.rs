//! An equivocating proposer that also forges notarizations: for each notarization its
//! core broadcasts it first sends one assembled from one vote less than a quorum, and
//! one that carries the real votes but names its conflicting block. Signatures are
//! real, so only the verifier's quorum and aggregate checks stand between them and an
//! honest chain; every one must show up in `Sim::rejected`.

use super::super::Sim;
use pala_types::{Message, Notarization, SignerBitmap};

impl Sim {
    pub(in crate::sim) fn remember_vote(&mut self, i: usize, msg: &Message) {
        if let Message::Vote(v) = msg {
            let votes = &mut self.nodes[i].mem.votes;
            let seen = votes.entry((v.sn, v.block_hash)).or_default();
            if !seen.iter().any(|o| o.voter == v.voter) {
                seen.push(v.clone());
            }
            if votes.len() > 64 {
                votes.pop_first();
            }
        }
    }

    pub(in crate::sim) fn send_bad_notarizer(&mut self, i: usize, j: usize, msg: Message) {
        match &msg {
            Message::Proposal(p) if j % 2 == 1 && !self.is_proposer(j) => {
                let alt = self.equivocate(i, p);
                self.send(i, j, Message::Proposal(alt));
            }
            Message::Notarization(n) => {
                for forged in self.forged_notarizations(i, n) {
                    self.send(i, j, Message::Notarization(forged));
                }
            }
            _ => {}
        }
        self.send(i, j, msg)
    }

    fn forged_notarizations(&self, i: usize, n: &Notarization) -> Vec<Notarization> {
        let mut out = Vec::new();
        let Some(committee) = self.committee_of(n.sn.epoch.session) else {
            return out;
        };
        // Another block's votes: the real aggregate, the equivocating block's hash.
        if let Some(alt) = self.nodes[i].alt_blocks.get(&n.sn) {
            if alt.hash() != n.block_hash {
                out.push(Notarization {
                    block_hash: alt.hash(),
                    ..n.clone()
                });
            }
        }
        // One vote short of a quorum, from votes this node received.
        let short = (committee.quorum() as usize).saturating_sub(1);
        let Some(votes) = self.nodes[i].mem.votes.get(&(n.sn, n.block_hash)) else {
            return out;
        };
        let mut signers = SignerBitmap::new(committee.voters.len());
        let mut sigs = Vec::new();
        for v in votes.iter().take(short) {
            if let Some(k) = committee.voters.iter().position(|m| m.id == v.voter) {
                signers.insert(k);
                sigs.push(&v.signature);
            }
        }
        if !sigs.is_empty() {
            if let Some(signature) = self.scheme.aggregate(&sigs) {
                out.push(Notarization {
                    signers,
                    signature,
                    ..n.clone()
                });
            }
        }
        out
    }
}
