//! A primary that builds on an older parent than its head: half of its blocks name an
//! ancestor 1..=K+1 blocks below the intended parent as their parent, so honest voters
//! must refuse a block that does not extend the freshest notarized chain they know
//! (V-5c for the first block of an epoch, insertion rules for the others), while the
//! chain the proposer skips stays notarized. Reaching K+1 back matters: only a fork
//! below the last K notarized blocks can undo a finalized one.

use super::super::Sim;
use pala_types::{Block, BlockHeader, ConsensusInfo, Domain, Message, Proposal};
use rand::Rng;
use std::sync::Arc;

impl Sim {
    pub(in crate::sim) fn send_older_parent(&mut self, i: usize, j: usize, msg: Message) {
        let Message::Proposal(p) = &msg else {
            return self.send(i, j, msg);
        };
        if p.proposer != self.ids[i] {
            return self.send(i, j, msg);
        }
        let sn = p.block.sn();
        if !self.nodes[i].mem.older.contains_key(&sn) {
            // One decision per block, so every receiver sees the same (no equivocation).
            let alt = if self.rng.gen_bool(0.5) {
                self.older_block(i, &p.block)
            } else {
                None
            };
            let mem = &mut self.nodes[i].mem;
            mem.older.insert(sn, alt);
            if mem.older.len() > 64 {
                mem.older.pop_first();
            }
        }
        match self.nodes[i].mem.older.get(&sn).cloned().flatten() {
            Some(alt) => {
                let signer = self.nodes[i].signer.clone();
                let older = Proposal {
                    proposer: p.proposer,
                    signature: signer.sign(
                        Domain::Proposal,
                        self.cfg.core.network_id,
                        &alt.hash().0,
                    ),
                    block: alt,
                };
                self.send(i, j, Message::Proposal(older))
            }
            None => self.send(i, j, msg),
        }
    }

    /// `b` rebuilt on its grandparent, when the proposer's chain still holds both.
    fn older_block(&self, i: usize, b: &Block) -> Option<Arc<Block>> {
        let core = self.nodes[i].core.as_ref()?;
        let chain = core.chain();
        let depth = ((b.sn().s + b.sn().epoch.e) as u64 % (core.config().k as u64 + 1)) + 1;
        let mut parent = chain.block(b.parent_sn())?;
        let mut grand = parent;
        for _ in 0..depth {
            if grand.height() == 0 {
                break;
            }
            parent = grand;
            grand = chain.block(parent.parent_sn())?;
        }
        if grand.sn() == b.parent_sn() {
            return None;
        }
        let consensus = ConsensusInfo {
            notarizations: b
                .consensus
                .notarizations
                .iter()
                .filter(|n| n.sn <= grand.sn())
                .cloned()
                .collect(),
            clock: b.consensus.clock.clone(),
        };
        Some(Arc::new(Block::new(
            BlockHeader {
                parent_sn: grand.sn(),
                parent_hash: grand.hash(),
                height: grand.height() + 1,
                session_offset: parent.header.session_offset,
                ..b.header.clone()
            },
            b.txs.clone(),
            consensus,
        )))
    }
}
