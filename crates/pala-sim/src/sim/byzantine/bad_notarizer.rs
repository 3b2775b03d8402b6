//! An equivocating proposer that also forges notarizations from the votes it receives:
//! one assembled from one vote less than a quorum, and one that makes up the quorum
//! with votes of the other block at the same sn. Signatures are real, so only the
//! verifier's quorum and aggregate checks stand between them and an honest chain;
//! every one must show up in `Sim::rejected`.

use super::super::Sim;
use pala_types::{Message, Notarization, SignerBitmap};

impl Sim {
    /// Keeps the votes reaching this proposer; once a block has one vote less than a
    /// quorum, or a quorum while this node holds a conflicting block at its sn, the
    /// forged notarization goes to every neighbour at once, whether or not the core
    /// itself ever aggregates.
    pub(in crate::sim) fn remember_vote(&mut self, i: usize, msg: &Message) {
        let Message::Vote(v) = msg else {
            return;
        };
        let Some(committee) = self.committee_of(v.sn.epoch.session) else {
            return;
        };
        let quorum = committee.quorum() as usize;
        let votes = &mut self.nodes[i].mem.votes;
        let seen = votes.entry((v.sn, v.block_hash)).or_default();
        if seen.iter().any(|o| o.voter == v.voter) {
            return;
        }
        seen.push(v.clone());
        let count = seen.len();
        if votes.len() > 64 {
            votes.pop_first();
        }
        let Some(proposer_idx) = committee.proposers.iter().position(|m| m.id == self.ids[i])
        else {
            return;
        };
        let mut forged = Vec::new();
        if count + 1 == quorum {
            forged.extend(self.assemble(i, v.sn, &[v.block_hash], count, proposer_idx as u16));
        }
        // Votes of other blocks at the same sn (the equivocation split them) make up
        // the quorum the block's own votes lack.
        let others: Vec<pala_types::Hash> = self.nodes[i]
            .mem
            .votes
            .keys()
            .filter(|(sn, h)| *sn == v.sn && *h != v.block_hash)
            .map(|(_, h)| *h)
            .collect();
        if count < quorum && !others.is_empty() {
            let mut hashes = vec![v.block_hash];
            hashes.extend(others);
            forged.extend(self.assemble(i, v.sn, &hashes, quorum, proposer_idx as u16));
        }
        for n in forged {
            for j in self.neighbours(i) {
                self.send(i, j, Message::Notarization(n.clone()));
            }
        }
    }

    /// A notarization claiming `hashes[0]` at `sn`, from the first `count` distinct
    /// voters among the votes received for `hashes` (in that order); None when fewer.
    fn assemble(
        &self,
        i: usize,
        sn: pala_types::BlockSn,
        hashes: &[pala_types::Hash],
        count: usize,
        proposer_idx: u16,
    ) -> Option<Notarization> {
        let committee = self.committee_of(sn.epoch.session)?;
        let mut signers = SignerBitmap::new(committee.voters.len());
        let mut sigs = Vec::new();
        let mem = &self.nodes[i].mem;
        for v in hashes
            .iter()
            .filter_map(|h| mem.votes.get(&(sn, *h)))
            .flatten()
        {
            if sigs.len() == count {
                break;
            }
            let k = committee.voters.iter().position(|m| m.id == v.voter)?;
            if signers.insert(k) {
                sigs.push(&v.signature);
            }
        }
        if sigs.len() < count {
            return None;
        }
        let signature = self.scheme.aggregate(&sigs)?;
        Some(Notarization {
            sn,
            block_hash: hashes[0],
            proposer_idx,
            signers,
            signature,
        })
    }

    /// Equivocates like [`super::Byzantine::EquivocatingProposer`], so the votes of one
    /// sn split between two blocks and neither gets a quorum of its own.
    pub(in crate::sim) fn send_bad_notarizer(&mut self, i: usize, j: usize, msg: Message) {
        if let Message::Proposal(p) = &msg {
            if j % 2 == 1 && !self.is_proposer(j) {
                let alt = self.equivocate(i, p);
                self.send(i, j, Message::Proposal(alt));
            }
        }
        self.send(i, j, msg)
    }
}
