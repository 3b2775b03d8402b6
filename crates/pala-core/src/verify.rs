//! The verification layer: the only way to obtain [`Verified`] values.
//!
//! Every signature is checked here, before a message reaches the state machine:
//! proposals (signer must be the primary of the block's epoch, V-3), votes (signer must
//! be a voter of the session, PV-3), clock messages (E-4), notarizations and clock
//! notarizations with the D-12 fixes (bitmap length equals the voter count, quorum
//! recomputed from the bitmap, proposer index bounds-checked, no trusted counter), and
//! everything embedded in blocks. The core checks everything else (sn rules, parents,
//! K window, epochs, equivocation).
//!
//! Verification is pure and thread-safe, so the node runs it on a worker pool and the
//! simulator inline.
//!
//! This is the one home of the signature rules; the signature scheme (pala-crypto for
//! BLS) only provides primitives: sign, verify, aggregate, fast-aggregate verify against
//! prepared committee keys, random-linear-combination batches.
//!
//! | rules | file |
//! |---|---|
//! | V-3 proposals, PV-3 single votes, E-4 clock messages, D-12/D-14 quorum signatures, C-8 sync prefixes | `verify.rs` |
//! | PV-2/PV-3 vote batches: one aggregate per block, bisection on failure | `verify/votes.rs` |
//! | section 0.1 item 1, D-7, D-8, D-16 committee admission (proofs of possession) | `verify/committee.rs` |
//! | the memory of recently verified quorum signatures (N-3 repeats) | `verify/recent.rs` |

mod committee;
mod recent;
mod votes;

pub use committee::{validate_committee, CommitteeError};

use crate::fasthash::FastMap;
use pala_types::{
    Block, ClockMessage, ClockNotarization, Committee, Domain, EpochResponse, Message, NodeId,
    Notarization, NotarizedBlock, PreparedKeys, Proposal, PublicKey, Session, Signature,
    SignatureScheme, SignerBitmap, Vote,
};
use recent::RecentQuorumSigs;
use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use thiserror::Error;

/// A value whose signatures were checked by [`MessageVerifier`]. It cannot be built
/// outside this crate.
///
/// A sync response may end with blocks of a session whose committee is not installed
/// yet (C-8); those are kept aside, unverified, in [`Verified::deferred`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified<T> {
    value: T,
    deferred: Vec<NotarizedBlock>,
}

impl<T> Verified<T> {
    pub(crate) fn new(v: T) -> Self {
        Verified {
            value: v,
            deferred: Vec::new(),
        }
    }
    /// Unwraps the verified value.
    pub fn into_inner(self) -> T {
        self.value
    }
    /// Blocks of a not-yet-installed session that followed the verified part (C-8).
    pub fn deferred(&self) -> &[NotarizedBlock] {
        &self.deferred
    }
    pub(crate) fn into_parts(self) -> (T, Vec<NotarizedBlock>) {
        (self.value, self.deferred)
    }
}

/// A verified vote is a verified message (votes are checked in batches, PV-3).
impl From<Verified<Vote>> for Verified<Message> {
    fn from(v: Verified<Vote>) -> Self {
        Verified::new(Message::Vote(v.value))
    }
}

impl<T> Deref for Verified<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// Why a message was rejected by the verification layer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VerifyError {
    /// No committee is installed for the session (possibly a future session, C-8).
    #[error("unknown session {0}")]
    UnknownSession(Session),
    /// The claimed signer is not in the relevant committee list.
    #[error("signer is not a {0} of the session")]
    NotAMember(&'static str),
    /// A proposal not signed by the primary proposer of its epoch (V-3).
    #[error("proposal not signed by the primary proposer of its epoch")]
    NotPrimary,
    /// A signature did not verify.
    #[error("bad {0} signature")]
    BadSignature(&'static str),
    /// The signer bitmap does not match the voter list.
    #[error("signer bitmap length {got} does not match {expected} voters")]
    BitmapLength {
        /// Bitmap length.
        got: usize,
        /// Voter count.
        expected: usize,
    },
    /// The signers do not reach the quorum (D-12 fix b).
    #[error("signers weigh {got}, below the quorum {quorum}")]
    BelowQuorum {
        /// Weight of the signers.
        got: u64,
        /// Required quorum.
        quorum: u64,
    },
    /// The aggregating proposer index is out of range (D-12 fix a).
    #[error("proposer index {0} out of range")]
    ProposerIndex(u16),
    /// A notarized block whose notarization is for another block.
    #[error("notarization does not match its block")]
    Mismatch,
    /// A stop block proof that is not a notarized chain of the session asked about (C-9).
    #[error("stop block proof: {0}")]
    StopProof(&'static str),
}

/// One session's committee with its prepared voter keys.
#[derive(Clone)]
pub struct SessionKeys {
    /// The committee.
    pub committee: Arc<Committee>,
    voter_keys: Arc<dyn PreparedKeys>,
    /// Voter id -> position: every vote, clock message and status is attributed to a
    /// voter, and a linear scan of the list made that O(V).
    voter_index: Arc<FastMap<NodeId, usize>>,
}

/// The committees of recent sessions, as needed by the verifier and the core.
#[derive(Clone, Default)]
pub struct Committees {
    sessions: BTreeMap<Session, SessionKeys>,
}

impl Committees {
    /// Installs (or replaces) the committee of its session, preparing its keys.
    pub fn install(&mut self, scheme: &dyn SignatureScheme, committee: Committee) {
        let keys: Vec<_> = committee
            .voters
            .iter()
            .map(|m| m.public_key.clone())
            .collect();
        let voter_keys = scheme.prepare_keys(&keys);
        let mut voter_index = FastMap::default();
        for (i, m) in committee.voters.iter().enumerate() {
            // The first position wins, as in `Committee::voter_index`.
            voter_index.entry(m.id).or_insert(i);
        }
        self.sessions.insert(
            committee.session,
            SessionKeys {
                committee: Arc::new(committee),
                voter_keys,
                voter_index: Arc::new(voter_index),
            },
        );
    }

    /// The committee of `session`.
    pub fn get(&self, session: Session) -> Option<&Arc<Committee>> {
        self.sessions.get(&session).map(|s| &s.committee)
    }

    /// Position of `id` in the voter list of `session` (same answer as
    /// [`Committee::voter_index`], without scanning the list).
    pub fn voter_index(&self, session: Session, id: &NodeId) -> Option<usize> {
        self.sessions.get(&session)?.voter_index.get(id).copied()
    }

    /// Whether `id` is a voter of `session`.
    pub fn is_voter(&self, session: Session, id: &NodeId) -> bool {
        self.voter_index(session, id).is_some()
    }

    fn keys(&self, session: Session) -> Result<&SessionKeys, VerifyError> {
        self.sessions
            .get(&session)
            .ok_or(VerifyError::UnknownSession(session))
    }

    /// Drops committees of sessions before `keep_from` (R-3: only recent ones are kept).
    pub fn retain_from(&mut self, keep_from: Session) {
        self.sessions.retain(|s, _| *s >= keep_from);
    }

    /// The installed committees, oldest session first.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Committee>> {
        self.sessions.values().map(|s| &s.committee)
    }
}

/// Checks signatures of incoming messages against the installed committees.
///
/// Clones share one small cache of verified quorum signatures (a clone serves the same
/// node, for example on another worker thread). The cache only skips repeating a check
/// whose inputs, committee included, are identical, so it never changes a result.
#[derive(Clone)]
pub struct MessageVerifier {
    scheme: Arc<dyn SignatureScheme>,
    network_id: u64,
    committees: Committees,
    recent: Arc<Mutex<RecentQuorumSigs>>,
}

impl MessageVerifier {
    /// A verifier for `network_id` with the given committees.
    pub fn new(scheme: Arc<dyn SignatureScheme>, network_id: u64, committees: Committees) -> Self {
        MessageVerifier {
            scheme,
            network_id,
            committees,
            recent: Arc::new(Mutex::new(RecentQuorumSigs::new())),
        }
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, RecentQuorumSigs> {
        // The cache holds only complete entries, so a panic elsewhere cannot leave it
        // inconsistent.
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The installed committees.
    pub fn committees(&self) -> &Committees {
        &self.committees
    }

    /// Installs a committee (on genesis or a committee-change output of the core).
    pub fn install(&mut self, committee: Committee) {
        self.committees.install(self.scheme.as_ref(), committee);
    }

    /// Verifies every signature in `msg`.
    pub fn verify(&self, msg: Message) -> Result<Verified<Message>, VerifyError> {
        match &msg {
            Message::Proposal(p) => self.check_proposal(p)?,
            Message::Vote(v) => self.check_vote(v)?,
            Message::Notarization(n) => self.check_notarization(n)?,
            Message::Clock(c) => self.check_clock(c)?,
            Message::ClockNotarization(c) => self.check_clock_notarization(c)?,
            Message::UnnotarizedProposals(ps) => {
                for p in ps {
                    self.check_proposal(p)?;
                }
            }
            Message::Epoch(r) => {
                if let Some(c) = &r.clock {
                    self.check_clock_notarization(c)?;
                }
                self.check_stop_proof(r)?;
            }
            Message::FresherHead(r) => {
                // C-8: verify the longest prefix whose sessions are installed; keep the
                // rest aside for after the reconfiguration.
                let mut cut = None;
                for (i, nb) in r.blocks.iter().enumerate() {
                    let res = self.check_notarized_block(nb);
                    match res {
                        Ok(()) => {}
                        Err(VerifyError::UnknownSession(s))
                            if i > 0 && s > nb.block.parent_sn().epoch.session =>
                        {
                            cut = Some(i);
                            break;
                        }
                        Err(e) => return Err(e),
                    }
                }
                if let Some(i) = cut {
                    let Message::FresherHead(mut r) = msg else {
                        unreachable!("matched above")
                    };
                    let deferred = r.blocks.split_off(i);
                    return Ok(Verified {
                        value: Message::FresherHead(r),
                        deferred,
                    });
                }
            }
            Message::Status(_) | Message::GetEpoch(_) | Message::GetFresherHead(_) => {}
        }
        Ok(Verified::new(msg))
    }

    /// Position of voter `id` in the voter list of `session` (PV-3: votes and clock
    /// messages count only from voters of their session).
    fn voter_position(&self, session: Session, id: &NodeId) -> Result<usize, VerifyError> {
        let sk = self.committees.keys(session)?;
        sk.voter_index
            .get(id)
            .copied()
            .ok_or(VerifyError::NotAMember("voter"))
    }

    fn voter_key(&self, session: Session, id: &NodeId) -> Result<&PublicKey, VerifyError> {
        let i = self.voter_position(session, id)?;
        Ok(&self.committees.keys(session)?.committee.voters[i].public_key)
    }

    fn check_proposal(&self, p: &Proposal) -> Result<(), VerifyError> {
        let sn = p.block.sn();
        let c = &self.committees.keys(sn.epoch.session)?.committee;
        let primary = c.primary(sn.epoch);
        if primary.id != p.proposer {
            return Err(VerifyError::NotPrimary);
        }
        if !self.scheme.verify(
            &primary.public_key,
            Domain::Proposal,
            self.network_id,
            &p.block.hash().0,
            &p.signature,
        ) {
            return Err(VerifyError::BadSignature("proposal"));
        }
        self.check_block_contents(&p.block)
    }

    /// C-9: a chain of notarized blocks of the session the answer is about, each the
    /// parent of the next; the core decides what it proves.
    fn check_stop_proof(&self, r: &EpochResponse) -> Result<(), VerifyError> {
        if !r.stop_proof.is_empty() && !r.is_last {
            return Err(VerifyError::StopProof(
                "sent by a node still in the session",
            ));
        }
        let mut prev: Option<&NotarizedBlock> = None;
        for nb in &r.stop_proof {
            if nb.block.sn().epoch.session != r.session {
                return Err(VerifyError::StopProof("block of another session"));
            }
            if nb.notarization.is_none() {
                return Err(VerifyError::StopProof("block without notarization"));
            }
            if let Some(p) = prev {
                if nb.block.parent_sn() != p.block.sn()
                    || nb.block.header.parent_hash != p.block.hash()
                {
                    return Err(VerifyError::StopProof("not a chain"));
                }
            }
            self.check_notarized_block(nb)?;
            prev = Some(nb);
        }
        Ok(())
    }

    fn check_notarized_block(&self, nb: &NotarizedBlock) -> Result<(), VerifyError> {
        if let Some(n) = &nb.notarization {
            if n.sn != nb.block.sn() || n.block_hash != nb.block.hash() {
                return Err(VerifyError::Mismatch);
            }
            self.check_notarization(n)?;
        }
        self.check_block_contents(&nb.block)
    }

    /// Verifies the notarizations and clock notarization embedded in a block.
    pub fn check_block_contents(&self, b: &Block) -> Result<(), VerifyError> {
        for n in &b.consensus.notarizations {
            self.check_notarization(n)?;
        }
        if let Some(c) = &b.consensus.clock {
            self.check_clock_notarization(c)?;
        }
        Ok(())
    }

    fn check_vote(&self, v: &Vote) -> Result<(), VerifyError> {
        let pk = self.voter_key(v.sn.epoch.session, &v.voter)?;
        if self.scheme.verify(
            pk,
            Domain::Vote,
            self.network_id,
            &v.block_hash.0,
            &v.signature,
        ) {
            Ok(())
        } else {
            Err(VerifyError::BadSignature("vote"))
        }
    }

    fn check_clock(&self, c: &ClockMessage) -> Result<(), VerifyError> {
        let pk = self.voter_key(c.epoch.session, &c.voter)?;
        if self.scheme.verify(
            pk,
            Domain::Clock,
            self.network_id,
            &c.epoch.signing_bytes(),
            &c.signature,
        ) {
            Ok(())
        } else {
            Err(VerifyError::BadSignature("clock message"))
        }
    }

    /// D-12 with the fixes of section 0.1 item 5.
    pub fn check_notarization(&self, n: &Notarization) -> Result<(), VerifyError> {
        self.check_quorum_signature(
            n.sn.epoch.session,
            &n.signers,
            n.proposer_idx,
            Domain::Vote,
            &n.block_hash.0,
            &n.signature,
            "notarization",
        )
    }

    /// D-14 with the same checks as D-12.
    pub fn check_clock_notarization(&self, c: &ClockNotarization) -> Result<(), VerifyError> {
        self.check_quorum_signature(
            c.epoch.session,
            &c.signers,
            c.proposer_idx,
            Domain::Clock,
            &c.epoch.signing_bytes(),
            &c.signature,
            "clock notarization",
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn check_quorum_signature(
        &self,
        session: Session,
        signers: &SignerBitmap,
        proposer_idx: u16,
        domain: Domain,
        msg: &[u8],
        sig: &Signature,
        what: &'static str,
    ) -> Result<(), VerifyError> {
        let sk = self.committees.keys(session)?;
        let c = &sk.committee;
        if signers.len() != c.voters.len() {
            return Err(VerifyError::BitmapLength {
                got: signers.len(),
                expected: c.voters.len(),
            });
        }
        if !c.is_quorum(signers) {
            return Err(VerifyError::BelowQuorum {
                got: c.weight(signers),
                quorum: c.quorum(),
            });
        }
        let proposer = c
            .proposers
            .get(proposer_idx as usize)
            .ok_or(VerifyError::ProposerIndex(proposer_idx))?;
        if self
            .recent()
            .contains(c, domain, msg, proposer_idx, signers, sig)
        {
            return Ok(());
        }
        if !sk.voter_keys.verify_subset(
            signers,
            Some(&proposer.public_key),
            domain,
            self.network_id,
            msg,
            sig,
        ) {
            return Err(VerifyError::BadSignature(what));
        }
        self.recent()
            .remember(c, domain, msg, proposer_idx, signers, sig);
        Ok(())
    }
}
