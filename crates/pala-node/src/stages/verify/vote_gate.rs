//! Votes wait for a quorum before they are verified.
//!
//! A proposer can do nothing with the votes of a block until they weigh a quorum
//! (N-5: a notarization needs ceil(2W/3)), and after it has a verified quorum for that
//! exact block it can do nothing with more (the notarization exists). Votes arrive one
//! connection at a time, usually in different verify batches, so checked on arrival every
//! vote cost a signature check of its own; held until their signers weigh a quorum, the
//! votes of a block are checked as one aggregate (PV-3, `verify_votes`) and the ones after
//! the quorum are not checked at all. Holding adds no delay: the core could not notarize
//! earlier.
//!
//! Nothing unverified is ever dropped for good except a vote for a block whose quorum
//! was already delivered verified. Votes the gate cannot weigh (unknown session, a signer
//! outside the voter list) pass at once so the verifier rejects them with its reason.
//! Memory is bounded: past [`MAX_HELD`] held votes the oldest block's votes are released
//! unweighed, and past [`MAX_PER_BLOCK`] votes for one block (a forger racing real voters,
//! PV-2) the block's votes are released. Released blocks that did not reach a verified
//! quorum (a forged vote was among them) let later votes through at once.

use pala_core::Committees;
use pala_types::{BlockSn, Hash, SignerBitmap, Vote};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Most votes held over all blocks.
pub(super) const MAX_HELD: usize = 4096;
/// Most votes held for one block, as a multiple of its voter count.
pub(super) const MAX_PER_BLOCK: usize = 2;
/// Blocks remembered after their votes were released.
const RELEASED_CAP: usize = 4096;

type Key = (BlockSn, Hash);

/// What to do with the votes the gate gives back; `T` is what the caller keeps with each
/// vote (who delivered it, where it goes).
#[derive(Debug)]
pub(super) struct Gated<T> {
    /// Verify these now.
    pub(super) verify: Vec<(T, Vote)>,
    /// Votes not verified because their block's quorum was delivered verified.
    pub(super) redundant: u64,
}

struct Held<T> {
    votes: Vec<(T, Vote)>,
    signers: Option<SignerBitmap>,
}

impl<T> Default for Held<T> {
    fn default() -> Self {
        Held {
            votes: Vec::new(),
            signers: None,
        }
    }
}

/// What became of a block whose votes were released.
enum Released {
    /// Verified votes so far (by voter position), below the quorum.
    Counting(SignerBitmap),
    /// A verified quorum was delivered: later votes are redundant.
    Done,
}

/// The gate.
pub(super) struct VoteGate<T> {
    held: BTreeMap<Key, Held<T>>,
    held_votes: usize,
    released: HashMap<Key, Released>,
    released_order: VecDeque<Key>,
}

impl<T> Default for VoteGate<T> {
    fn default() -> Self {
        VoteGate {
            held: BTreeMap::new(),
            held_votes: 0,
            released: HashMap::new(),
            released_order: VecDeque::new(),
        }
    }
}

impl<T> VoteGate<T> {
    /// Takes the votes of one verify batch; returns those to verify now.
    pub(super) fn admit(&mut self, committees: &Committees, votes: Vec<(T, Vote)>) -> Gated<T> {
        let mut out = Gated {
            verify: Vec::new(),
            redundant: 0,
        };
        for (peer, vote) in votes {
            let key = (vote.sn, vote.block_hash);
            match self.released.get(&key) {
                Some(Released::Done) => {
                    out.redundant += 1;
                    continue;
                }
                Some(Released::Counting(_)) => {
                    out.verify.push((peer, vote));
                    continue;
                }
                None => {}
            }
            let session = vote.sn.epoch.session;
            let (Some(committee), Some(position)) = (
                committees.get(session),
                committees.voter_index(session, &vote.voter),
            ) else {
                out.verify.push((peer, vote));
                continue;
            };
            let held = self.held.entry(key).or_default();
            let signers = held
                .signers
                .get_or_insert_with(|| SignerBitmap::new(committee.voters.len()));
            signers.insert(position);
            held.votes.push((peer, vote));
            self.held_votes += 1;
            let full = held.votes.len() >= MAX_PER_BLOCK * committee.voters.len().max(1);
            if committee.is_quorum(signers) || full {
                self.release(key, &mut out);
            }
        }
        while self.held_votes > MAX_HELD {
            let Some(oldest) = self.held.keys().next().copied() else {
                break;
            };
            self.release(oldest, &mut out);
        }
        out
    }

    fn release(&mut self, key: Key, out: &mut Gated<T>) {
        let Some(held) = self.held.remove(&key) else {
            return;
        };
        self.held_votes -= held.votes.len();
        let len = held.signers.as_ref().map_or(0, SignerBitmap::len);
        self.remember(key, Released::Counting(SignerBitmap::new(len)));
        out.verify.extend(held.votes);
    }

    fn remember(&mut self, key: Key, state: Released) {
        if self.released.insert(key, state).is_none() {
            self.released_order.push_back(key);
            if self.released_order.len() > RELEASED_CAP {
                if let Some(old) = self.released_order.pop_front() {
                    self.released.remove(&old);
                }
            }
        }
    }

    /// Reports a vote that verified: once the verified votes of its block weigh a
    /// quorum, later votes of that block are redundant.
    pub(super) fn verified(&mut self, committees: &Committees, vote: &Vote) {
        let key = (vote.sn, vote.block_hash);
        let Some(Released::Counting(signers)) = self.released.get_mut(&key) else {
            return;
        };
        let session = vote.sn.epoch.session;
        let (Some(committee), Some(position)) = (
            committees.get(session),
            committees.voter_index(session, &vote.voter),
        ) else {
            return;
        };
        if signers.len() != committee.voters.len() {
            *signers = SignerBitmap::new(committee.voters.len());
        }
        signers.insert(position);
        if committee.is_quorum(signers) {
            self.released.insert(key, Released::Done);
        }
    }

    /// Votes held now.
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.held_votes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pala_crypto::{seeded_committee, BlsSigner};
    use pala_types::{Domain, Signer, VoteCounting};

    fn setup() -> (Committees, Vec<BlsSigner>) {
        let (committee, _, voters) = seeded_committee("gate", 1, 1, 4, 7, VoteCounting::Seat);
        let mut c = Committees::default();
        c.install(&pala_crypto::BlsScheme::new(), committee);
        (c, voters)
    }

    fn vote(v: &BlsSigner, s: u32) -> (pala_types::NodeId, Vote) {
        let hash = Hash::of(&s.to_le_bytes());
        (
            v.node_id(),
            Vote {
                voter: v.node_id(),
                sn: BlockSn::new(1, 1, s),
                block_hash: hash,
                signature: v.sign(Domain::Vote, 7, &hash.0),
            },
        )
    }

    #[test]
    fn votes_are_held_until_their_signers_weigh_a_quorum_then_later_ones_are_redundant() {
        let (c, voters) = setup();
        let mut gate = VoteGate::<pala_types::NodeId>::default();
        // Quorum of 4 seats is 3.
        assert!(gate.admit(&c, vec![vote(&voters[0], 5)]).verify.is_empty());
        // The same voter twice still weighs one.
        assert!(gate.admit(&c, vec![vote(&voters[0], 5)]).verify.is_empty());
        assert!(gate.admit(&c, vec![vote(&voters[1], 5)]).verify.is_empty());
        assert_eq!(gate.held(), 3);
        let out = gate.admit(&c, vec![vote(&voters[2], 5)]);
        assert_eq!(out.verify.len(), 4);
        assert_eq!(gate.held(), 0);
        for (_, v) in &out.verify {
            gate.verified(&c, v);
        }
        let late = gate.admit(&c, vec![vote(&voters[3], 5)]);
        assert!(late.verify.is_empty());
        assert_eq!(late.redundant, 1);
    }

    #[test]
    fn a_released_block_without_a_verified_quorum_lets_later_votes_through() {
        let (c, voters) = setup();
        let mut gate = VoteGate::<pala_types::NodeId>::default();
        let out = gate.admit(
            &c,
            vec![
                vote(&voters[0], 5),
                vote(&voters[1], 5),
                vote(&voters[2], 5),
            ],
        );
        assert_eq!(out.verify.len(), 3);
        // Only two verified (the third was a forgery).
        gate.verified(&c, &out.verify[0].1);
        gate.verified(&c, &out.verify[1].1);
        let next = gate.admit(&c, vec![vote(&voters[3], 5)]);
        assert_eq!(next.verify.len(), 1);
        gate.verified(&c, &next.verify[0].1);
        assert_eq!(gate.admit(&c, vec![vote(&voters[2], 5)]).redundant, 1);
    }

    #[test]
    fn votes_the_gate_cannot_weigh_pass_at_once() {
        let (c, _) = setup();
        let mut gate = VoteGate::<pala_types::NodeId>::default();
        let outsider = BlsSigner::from_seed(b"outsider");
        assert_eq!(gate.admit(&c, vec![vote(&outsider, 5)]).verify.len(), 1);
        let mut other_session = vote(&outsider, 5);
        other_session.1.sn = BlockSn::new(9, 1, 5);
        assert_eq!(gate.admit(&c, vec![other_session]).verify.len(), 1);
        assert_eq!(gate.held(), 0);
    }

    #[test]
    fn memory_is_bounded_by_releasing_the_oldest_blocks() {
        let (c, voters) = setup();
        let mut gate = VoteGate::<pala_types::NodeId>::default();
        let mut released = 0;
        for s in 1..=(MAX_HELD as u32 + 10) {
            released += gate.admit(&c, vec![vote(&voters[0], s)]).verify.len();
        }
        assert_eq!(gate.held(), MAX_HELD);
        assert_eq!(released, 10);
        // One voter flooding one block with many different votes (PV-2 forgeries): the
        // block is released once it holds twice its voter count.
        let mut flood = Vec::new();
        for _ in 0..(MAX_PER_BLOCK * 4) {
            flood.push(vote(&voters[1], 1_000_000));
        }
        assert_eq!(gate.admit(&c, flood).verify.len(), MAX_PER_BLOCK * 4);
    }
}
