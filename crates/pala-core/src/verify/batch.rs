//! Messages in batches: every signature a batch needs, each quorum signature once, in one
//! random linear combination.
//!
//! A voter receives the notarization of block `s` and the proposal of block `s + K`
//! together (the primary sends both when the notarization frees its window, N-3), and the
//! proposal embeds that same notarization. Checked one message at a time and in parallel,
//! that was three signature checks (the embedded copy raced the broadcast one past the
//! [`RecentQuorumSigs`](super::recent) memory); here it is two, combined into one
//! multi-pairing ([`SignatureScheme::verify_with_quorums`]).
//!
//! Each message is first *planned*: its structure is checked (V-3 primary, PV-3 and E-4
//! membership, the D-12 fixes) and the signatures it needs are listed as [`Check`]s; a
//! structural failure rejects that message alone. The batch's distinct checks are then
//! verified together; only when the combination fails are they verified one by one, to
//! reject exactly the messages whose signatures are bad.

use super::{MessageVerifier, SessionKeys, Verified, VerifyError};
use pala_types::{
    BatchItem, Domain, Message, PublicKey, QuorumItem, Session, Signature, SignerBitmap,
};
use std::borrow::Cow;
use std::collections::HashMap;

/// What a quorum signature claims, before its structure is checked.
pub(super) struct QuorumClaim<'m> {
    pub(super) session: Session,
    pub(super) signers: &'m SignerBitmap,
    pub(super) proposer_idx: u16,
    pub(super) domain: Domain,
    pub(super) msg: Cow<'m, [u8]>,
    pub(super) sig: &'m Signature,
    pub(super) what: &'static str,
}

/// One signature a message needs verified.
pub(super) enum Check<'m> {
    /// One signer over one message.
    Single {
        pk: &'m PublicKey,
        domain: Domain,
        msg: Cow<'m, [u8]>,
        sig: &'m Signature,
        what: &'static str,
    },
    /// A quorum signature whose structure passed, against the session's prepared keys
    /// and the aggregating proposer's key.
    Quorum {
        keys: &'m SessionKeys,
        proposer: &'m PublicKey,
        claim: QuorumClaim<'m>,
    },
}

impl Check<'_> {
    fn what(&self) -> &'static str {
        match self {
            Check::Single { what, .. } => what,
            Check::Quorum { claim, .. } => claim.what,
        }
    }

    fn signature(&self) -> &Signature {
        match self {
            Check::Single { sig, .. } => sig,
            Check::Quorum { claim, .. } => claim.sig,
        }
    }

    /// Whether both ask exactly the same question (then one answer serves both).
    fn same_as(&self, other: &Check<'_>) -> bool {
        match (self, other) {
            (
                Check::Single {
                    pk,
                    domain,
                    msg,
                    sig,
                    ..
                },
                Check::Single {
                    pk: pk2,
                    domain: d2,
                    msg: m2,
                    sig: s2,
                    ..
                },
            ) => pk == pk2 && domain == d2 && msg == m2 && sig == s2,
            (
                Check::Quorum {
                    keys,
                    proposer,
                    claim,
                },
                Check::Quorum {
                    keys: k2,
                    proposer: p2,
                    claim: c2,
                },
            ) => {
                std::sync::Arc::ptr_eq(&keys.committee, &k2.committee)
                    && proposer == p2
                    && claim.domain == c2.domain
                    && claim.msg == c2.msg
                    && claim.signers == c2.signers
                    && claim.sig == c2.sig
            }
            _ => false,
        }
    }
}

impl MessageVerifier {
    /// Verifies `checks` one by one; remembers the quorum signatures that pass.
    pub(super) fn run(&self, checks: &[Check<'_>]) -> Result<(), VerifyError> {
        for c in checks {
            if !self.verify_one(c) {
                return Err(VerifyError::BadSignature(c.what()));
            }
        }
        Ok(())
    }

    fn verify_one(&self, c: &Check<'_>) -> bool {
        match c {
            Check::Single {
                pk,
                domain,
                msg,
                sig,
                ..
            } => self.scheme.verify(pk, *domain, self.network_id, msg, sig),
            Check::Quorum {
                keys,
                proposer,
                claim,
            } => {
                let ok = keys.voter_keys.verify_subset(
                    claim.signers,
                    Some(proposer),
                    claim.domain,
                    self.network_id,
                    &claim.msg,
                    claim.sig,
                );
                if ok {
                    self.remember(c);
                }
                ok
            }
        }
    }

    fn remember(&self, c: &Check<'_>) {
        if let Check::Quorum { keys, claim, .. } = c {
            self.recent().remember(
                &keys.committee,
                claim.domain,
                &claim.msg,
                claim.proposer_idx,
                claim.signers,
                claim.sig,
            );
        }
    }

    /// Verifies every signature of `msgs` (results in input order, as
    /// [`MessageVerifier::verify`] would give them one at a time). Messages that carry
    /// sync data (epoch answers, fresher heads) are verified on their own; votes belong
    /// in [`MessageVerifier::verify_votes`], which aggregates them by block.
    pub fn verify_many(&self, msgs: Vec<Message>) -> Vec<Result<Verified<Message>, VerifyError>> {
        let outcomes = self.batch_outcomes(&msgs);
        msgs.into_iter()
            .zip(outcomes)
            .map(|(msg, outcome)| match outcome {
                Outcome::Checked(Ok(())) => Ok(Verified::new(msg)),
                Outcome::Checked(Err(e)) => Err(e),
                Outcome::Alone => self.verify(msg),
            })
            .collect()
    }

    fn batch_outcomes(&self, msgs: &[Message]) -> Vec<Outcome> {
        let mut checks: Vec<Check<'_>> = Vec::new();
        // Per message: the range of its checks, or its structural error, or alone.
        let mut planned: Vec<Result<std::ops::Range<usize>, Outcome>> =
            Vec::with_capacity(msgs.len());
        for msg in msgs {
            if matches!(
                msg,
                Message::Epoch(_)
                    | Message::FresherHead(_)
                    | Message::Status(_)
                    | Message::GetEpoch(_)
                    | Message::GetFresherHead(_)
            ) {
                planned.push(Err(Outcome::Alone));
                continue;
            }
            let start = checks.len();
            match self.plan(msg, &mut checks) {
                Ok(()) => planned.push(Ok(start..checks.len())),
                Err(e) => {
                    checks.truncate(start);
                    planned.push(Err(Outcome::Checked(Err(e))));
                }
            }
        }
        // Each distinct question once: `first[i]` is the check whose answer `i` takes.
        let mut first: Vec<usize> = Vec::with_capacity(checks.len());
        let mut by_sig: HashMap<&[u8], Vec<usize>> = HashMap::new();
        for (i, c) in checks.iter().enumerate() {
            let same = by_sig.entry(&c.signature().0).or_default();
            let rep = same.iter().copied().find(|&j| checks[j].same_as(c));
            if rep.is_none() {
                same.push(i);
            }
            first.push(rep.unwrap_or(i));
        }
        let distinct: Vec<usize> = (0..checks.len()).filter(|&i| first[i] == i).collect();
        let passed = self.verify_distinct(&checks, &distinct);
        planned
            .into_iter()
            .map(|p| match p {
                Err(outcome) => outcome,
                Ok(range) => Outcome::Checked(match range.clone().find(|&i| !passed[first[i]]) {
                    Some(bad) => Err(VerifyError::BadSignature(checks[bad].what())),
                    None => Ok(()),
                }),
            })
            .collect()
    }

    /// `passed[i]` for every index in `distinct` (other entries are unused): one
    /// combination when all pass, else each on its own.
    fn verify_distinct(&self, checks: &[Check<'_>], distinct: &[usize]) -> Vec<bool> {
        let mut passed = vec![false; checks.len()];
        if distinct.len() > 1 {
            let mut singles = Vec::new();
            let mut quorums = Vec::new();
            for &i in distinct {
                match &checks[i] {
                    Check::Single {
                        pk,
                        domain,
                        msg,
                        sig,
                        ..
                    } => singles.push(BatchItem {
                        public_key: pk,
                        domain: *domain,
                        msg,
                        signature: sig,
                    }),
                    Check::Quorum {
                        keys,
                        proposer,
                        claim,
                    } => quorums.push(QuorumItem {
                        keys: keys.voter_keys.as_ref(),
                        signers: claim.signers,
                        extra: Some(proposer),
                        domain: claim.domain,
                        msg: &claim.msg,
                        signature: claim.sig,
                    }),
                }
            }
            if self
                .scheme
                .verify_with_quorums(self.network_id, &singles, &quorums)
            {
                for &i in distinct {
                    passed[i] = true;
                    self.remember(&checks[i]);
                }
                return passed;
            }
        }
        for &i in distinct {
            passed[i] = self.verify_one(&checks[i]);
        }
        passed
    }
}

/// What became of one message of a batch.
enum Outcome {
    /// Planned and checked (or refused by its structure).
    Checked(Result<(), VerifyError>),
    /// Verified on its own by [`MessageVerifier::verify`].
    Alone,
}
