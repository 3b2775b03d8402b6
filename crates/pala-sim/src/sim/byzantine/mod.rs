//! Byzantine behaviours applied to what a node sends and receives (section 10:
//! byzantine hooks). The simple ones live here; each sharper one has a module.

mod bad_notarizer;
mod epoch_voter;
mod older_parent;
mod standby;

use super::{Ev, Sim};
use pala_types::{Block, BlockSn, ClockMessage, Domain, Epoch, Hash, Message, Proposal, Vote};
use rand::Rng;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What the sharper behaviours remember of a run.
#[derive(Default)]
pub(super) struct Memory {
    /// Votes received, by block (for notarizations assembled from them).
    votes: BTreeMap<(BlockSn, Hash), Vec<Vote>>,
    /// The older-parent block sent instead of the real one, per sn (None: the real one).
    older: BTreeMap<BlockSn, Option<Arc<Block>>>,
    /// Clock messages this node signed, replayed later.
    clocks: Vec<ClockMessage>,
}

/// Misbehaviour of a byzantine node (section 10: byzantine hooks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Byzantine {
    /// A primary proposer that sends a different block for one sn to half the voters.
    EquivocatingProposer,
    /// A voter that also votes for a block it never saw, and repeats its votes.
    DoubleVoter,
    /// A voter that sends votes and clock messages claiming other voters' ids.
    ForgedIds,
    /// A node that replays old messages it received.
    Replayer,
    /// A node that sends undecodable bytes.
    Junk,
    /// A voter that never answers (crash-silent but connected).
    Silent,
    /// A proposer that ignores every chain update it receives (proposals,
    /// notarizations, sync, status), so when it becomes primary it proposes on its
    /// stale head — the case V-5c rejects.
    StaleView,
    /// A proposer that, as primary, builds some blocks on its head's parent instead of
    /// its head (one notarized block too old).
    OlderParent,
    /// An equivocating proposer that also broadcasts notarizations it assembled from
    /// fewer than a quorum of votes, or from the votes of another block.
    BadNotarizer,
    /// A proposer that proposes blocks of its own in epochs it does not lead.
    Standby,
    /// A voter whose votes are also sent relabelled for the neighbouring epochs and
    /// whose clock messages are also signed for the next epoch.
    EpochShifter,
    /// A voter that replays clock messages it signed long ago.
    ClockReplayer,
}

impl Byzantine {
    /// Whether the behaviour belongs to a proposer (the others are voters').
    pub fn is_proposer_kind(self) -> bool {
        matches!(
            self,
            Byzantine::EquivocatingProposer
                | Byzantine::StaleView
                | Byzantine::OlderParent
                | Byzantine::BadNotarizer
                | Byzantine::Standby
        )
    }
}

impl Sim {
    /// Sends with the node's byzantine behaviour applied.
    pub(super) fn send_from(&mut self, i: usize, j: usize, msg: Message) {
        match self.nodes[i].byz {
            None | Some(Byzantine::Replayer) | Some(Byzantine::Junk) => self.send(i, j, msg),
            Some(Byzantine::Silent) => {
                if !matches!(msg, Message::Vote(_) | Message::Clock(_)) {
                    self.send(i, j, msg)
                }
            }
            Some(Byzantine::EquivocatingProposer) => {
                // Odd voters get a conflicting block first and then the real one.
                if let Message::Proposal(p) = &msg {
                    if j % 2 == 1 && !self.is_proposer(j) {
                        let alt = self.equivocate(i, p);
                        self.send(i, j, Message::Proposal(alt));
                    }
                }
                self.send(i, j, msg)
            }
            Some(Byzantine::StaleView) | Some(Byzantine::Standby) => self.send(i, j, msg),
            Some(Byzantine::OlderParent) => self.send_older_parent(i, j, msg),
            Some(Byzantine::BadNotarizer) => self.send_bad_notarizer(i, j, msg),
            Some(Byzantine::EpochShifter) => self.send_epoch_shifted(i, j, msg),
            Some(Byzantine::ClockReplayer) => self.send_clock_replayer(i, j, msg),
            Some(Byzantine::DoubleVoter) => {
                if let Message::Vote(v) = &msg {
                    let other = Hash::of(&[v.block_hash.0.as_slice(), b"other"].concat());
                    let signer = self.nodes[i].signer.clone();
                    let bad = Vote {
                        voter: v.voter,
                        sn: v.sn,
                        block_hash: other,
                        signature: signer.sign(Domain::Vote, self.cfg.core.network_id, &other.0),
                    };
                    self.send(i, j, Message::Vote(bad));
                    self.send(i, j, msg.clone());
                }
                self.send(i, j, msg)
            }
            Some(Byzantine::ForgedIds) => {
                let victim =
                    self.cfg.proposers + (i + 1 - self.cfg.proposers) % self.cfg.voters.max(1);
                let victim_id = self.ids[victim];
                let signer = self.nodes[i].signer.clone();
                let nid = self.cfg.core.network_id;
                match &msg {
                    Message::Vote(v) => {
                        let forged = Vote {
                            voter: victim_id,
                            sn: v.sn,
                            block_hash: Hash::of(b"forged"),
                            signature: signer.sign(Domain::Vote, nid, &Hash::of(b"forged").0),
                        };
                        self.send(i, j, Message::Vote(forged));
                    }
                    Message::Clock(c) => {
                        let e = Epoch::new(c.epoch.session, c.epoch.e + 5);
                        let forged = ClockMessage {
                            voter: victim_id,
                            epoch: e,
                            signature: signer.sign(Domain::Clock, nid, &e.signing_bytes()),
                        };
                        self.send(i, j, Message::Clock(forged));
                    }
                    _ => {}
                }
                self.send(i, j, msg)
            }
        }
    }

    pub(super) fn equivocate(&mut self, i: usize, p: &Proposal) -> Proposal {
        let b = &p.block;
        let parent_hash = self.nodes[i]
            .alt_blocks
            .get(&b.parent_sn())
            .map_or(b.header.parent_hash, |a| a.hash());
        let alt = Arc::new(Block::new(
            pala_types::BlockHeader {
                parent_hash,
                ..b.header.clone()
            },
            vec![b"equivocation".to_vec()],
            b.consensus.clone(),
        ));
        self.nodes[i].alt_blocks.insert(b.sn(), alt.clone());
        if self.nodes[i].alt_blocks.len() > 64 {
            self.nodes[i].alt_blocks.pop_first();
        }
        let signer = self.nodes[i].signer.clone();
        Proposal {
            proposer: p.proposer,
            signature: signer.sign(Domain::Proposal, self.cfg.core.network_id, &alt.hash().0),
            block: alt,
        }
    }

    /// What a byzantine receiver does with a delivered message before its core sees it;
    /// false: the core never sees it.
    pub(super) fn byzantine_receive(&mut self, from: usize, to: usize, msg: &Message) -> bool {
        match self.nodes[to].byz {
            Some(Byzantine::StaleView) => !matches!(
                msg,
                Message::Proposal(_)
                    | Message::Notarization(_)
                    | Message::UnnotarizedProposals(_)
                    | Message::FresherHead(_)
                    | Message::Status(_)
            ),
            Some(Byzantine::Replayer) => {
                if self.nodes[to].replay.len() < 64 {
                    self.nodes[to].replay.push((from, msg.clone()));
                }
                true
            }
            Some(Byzantine::BadNotarizer) => {
                self.remember_vote(to, msg);
                true
            }
            Some(Byzantine::Standby) => {
                self.propose_out_of_turn(to, msg);
                true
            }
            _ => true,
        }
    }

    pub(super) fn byzantine_tick(&mut self, i: usize) {
        match self.nodes[i].byz {
            Some(Byzantine::Replayer) if !self.nodes[i].replay.is_empty() => {
                let k = self.rng.gen_range(0..self.nodes[i].replay.len());
                let (_, m) = self.nodes[i].replay[k].clone();
                for j in self.neighbours(i) {
                    self.send(i, j, m.clone());
                }
            }
            Some(Byzantine::ClockReplayer) => self.replay_clock(i),
            Some(Byzantine::Junk) => {
                let len = self.rng.gen_range(0..200);
                let mut bytes: Vec<u8> = (0..len).map(|_| self.rng.gen()).collect();
                if let Some(b) = bytes.first_mut() {
                    *b = [0x12u8, 0x13, 0x14, 0x15, 0x16, 0x20, 0x21, 0x28]
                        [self.rng.gen_range(0..8)];
                }
                for j in self.neighbours(i) {
                    if self.link_up(i, j) {
                        let at = self.now + self.cfg.delay_ms;
                        self.push(
                            at,
                            Ev::Junk {
                                from: i,
                                to: j,
                                bytes: bytes.clone(),
                            },
                        );
                    }
                }
            }
            _ => {}
        }
    }
}
