//! A standby proposer that proposes in epochs it does not lead: whenever the primary's
//! proposal reaches it, it broadcasts a block of its own at the same sn, signed with
//! its own key, so the verifier's primary check (P-2) must refuse it.

use super::super::Sim;
use pala_types::{Block, Domain, Message, Proposal};
use rand::Rng;
use std::sync::Arc;

impl Sim {
    pub(in crate::sim) fn propose_out_of_turn(&mut self, i: usize, msg: &Message) {
        let Message::Proposal(p) = msg else {
            return;
        };
        if p.proposer == self.ids[i] || !self.rng.gen_bool(0.5) {
            return;
        }
        let b = &p.block;
        let own = Arc::new(Block::new(
            b.header.clone(),
            vec![format!("standby:{i}").into_bytes()],
            b.consensus.clone(),
        ));
        let signer = self.nodes[i].signer.clone();
        let prop = Proposal {
            proposer: self.ids[i],
            signature: signer.sign(Domain::Proposal, self.cfg.core.network_id, &own.hash().0),
            block: own,
        };
        for j in self.neighbours(i) {
            self.send(i, j, Message::Proposal(prop.clone()));
        }
    }
}
