//! Votes in batches (PV-3): the votes of one block share a message, so they are checked
//! as one aggregate against the session's prepared voter keys, and only when that
//! aggregate fails are the bad ones found by bisection.
//!
//! Per group of votes for one `(sn, block hash)`:
//! - the first vote of each voter is a *candidate*; a later vote of that voter with the
//!   same signature bytes is a copy and shares the candidate's result;
//! - a later vote with *different* bytes is kept aside and checked on its own: a forger
//!   may have raced the real voter, and the real vote must not be lost (PV-2);
//! - the candidates' signatures are summed and checked once, with the aggregate key
//!   derived from the prepared keys (total minus the missing voters);
//! - on failure, bisection: when a failing set's left half passes, the right half must
//!   fail (a sum of valid same-message signatures is valid for the sum of their keys), so
//!   one check per level finds a single forgery.

use super::{MessageVerifier, SessionKeys, Verified, VerifyError};
use pala_types::{BlockSn, Domain, Hash, Signature, SignerBitmap, Vote};
use std::collections::BTreeMap;

/// A vote whose signature goes into the group's aggregate.
#[derive(Clone, Copy)]
struct Candidate {
    /// Index in the input.
    index: usize,
    /// Position of its voter in the session's voter list.
    voter: usize,
}

/// What became of one input vote of a group.
enum Fate {
    Candidate,
    /// Same voter and same bytes as the voter's candidate: shares its result.
    Copy,
    /// Same voter, other bytes: checked on its own.
    Aside,
}

impl MessageVerifier {
    /// Verifies many votes, aggregating those of the same block and checking each
    /// aggregate once; bad votes are found by bisection only when an aggregate fails
    /// (PV-3). Results are in input order.
    pub fn verify_votes(&self, votes: Vec<Vote>) -> Vec<Result<Verified<Vote>, VerifyError>> {
        let mut results: Vec<Result<(), VerifyError>> = votes.iter().map(|_| Ok(())).collect();
        let mut groups: BTreeMap<(BlockSn, Hash), Vec<(usize, usize)>> = BTreeMap::new();
        for (i, v) in votes.iter().enumerate() {
            match self.voter_position(v.sn.epoch.session, &v.voter) {
                Ok(p) => groups.entry((v.sn, v.block_hash)).or_default().push((i, p)),
                Err(e) => results[i] = Err(e),
            }
        }
        for ((sn, hash), members) in groups {
            let keys = self
                .committees
                .keys(sn.epoch.session)
                .expect("grouped votes have a session");
            for bad in self.check_group(keys, &hash, &votes, &members) {
                results[bad] = Err(VerifyError::BadSignature("vote"));
            }
        }
        votes
            .into_iter()
            .zip(results)
            .map(|(v, r)| r.map(|()| Verified::new(v)))
            .collect()
    }

    /// Input indexes of the bad votes among `members` (input index, voter position), all
    /// for block `hash` of the session of `keys`.
    fn check_group(
        &self,
        keys: &SessionKeys,
        hash: &Hash,
        votes: &[Vote],
        members: &[(usize, usize)],
    ) -> Vec<usize> {
        let mut first: Vec<Option<usize>> = vec![None; keys.committee.voters.len()];
        let mut candidates = Vec::with_capacity(members.len());
        let mut fates = Vec::with_capacity(members.len());
        for &(index, voter) in members {
            let fate = match first[voter] {
                None => {
                    first[voter] = Some(index);
                    candidates.push(Candidate { index, voter });
                    Fate::Candidate
                }
                Some(f) if votes[f].signature == votes[index].signature => Fate::Copy,
                Some(_) => Fate::Aside,
            };
            fates.push(fate);
        }
        let group = Group {
            verifier: self,
            keys,
            msg: &hash.0,
            votes,
        };
        let mut bad = Vec::new();
        if !group.aggregate_verifies(&candidates) {
            group.bisect(&candidates, &mut bad);
        }
        let mut voter_bad = vec![false; first.len()];
        for c in candidates.iter().filter(|c| bad.contains(&c.index)) {
            voter_bad[c.voter] = true;
        }
        for (&(index, voter), fate) in members.iter().zip(&fates) {
            match fate {
                Fate::Candidate => {}
                Fate::Copy => {
                    if voter_bad[voter] {
                        bad.push(index);
                    }
                }
                Fate::Aside => {
                    if !group.aggregate_verifies(&[Candidate { index, voter }]) {
                        bad.push(index);
                    }
                }
            }
        }
        bad
    }
}

/// The votes of one group, with what checking them needs.
struct Group<'a> {
    verifier: &'a MessageVerifier,
    keys: &'a SessionKeys,
    msg: &'a [u8],
    votes: &'a [Vote],
}

impl Group<'_> {
    /// Whether the sum of the candidates' signatures verifies against the sum of their
    /// voters' keys (fast aggregate verify). Distinct voters only: a bitmap names each
    /// voter once.
    fn aggregate_verifies(&self, set: &[Candidate]) -> bool {
        if set.is_empty() {
            return true;
        }
        let sigs: Vec<&Signature> = set.iter().map(|c| &self.votes[c.index].signature).collect();
        let Some(aggregate) = self.verifier.scheme.aggregate(&sigs) else {
            return false;
        };
        let mut signers = SignerBitmap::new(self.keys.committee.voters.len());
        for c in set {
            signers.insert(c.voter);
        }
        self.keys.voter_keys.verify_subset(
            &signers,
            None,
            Domain::Vote,
            self.verifier.network_id,
            self.msg,
            &aggregate,
        )
    }

    /// Adds to `bad` the input indexes of the bad votes of `set`, which is known to fail.
    fn bisect(&self, set: &[Candidate], bad: &mut Vec<usize>) {
        if let [only] = set {
            bad.push(only.index);
            return;
        }
        let (left, right) = set.split_at(set.len() / 2);
        if self.aggregate_verifies(left) {
            // The failure is in the right half: no need to check it.
            self.bisect(right, bad);
        } else {
            self.bisect(left, bad);
            if !self.aggregate_verifies(right) {
                self.bisect(right, bad);
            }
        }
    }
}
