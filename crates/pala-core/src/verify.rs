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
//! | batches of other messages: each quorum signature once, one random linear combination | `verify/batch.rs` |
//! | section 0.1 item 1, D-7, D-8, D-16 committee admission (proofs of possession) | `verify/committee.rs` |
//! | the memory of recently verified quorum signatures (N-3 repeats) | `verify/recent.rs` |

mod batch;
mod committee;
mod recent;
mod votes;

pub use committee::{validate_committee, CommitteeError};

use crate::fasthash::FastMap;
use batch::{Check, QuorumClaim};
use pala_types::{
    Block, ClockMessage, ClockNotarization, Committee, Domain, EpochResponse, Message, NodeId,
    Notarization, NotarizedBlock, PreparedKeys, Proposal, PublicKey, Session, SignatureScheme,
    Vote,
};
use recent::RecentQuorumSigs;
use std::borrow::Cow;
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
            Message::Proposal(_)
            | Message::Vote(_)
            | Message::Notarization(_)
            | Message::Clock(_)
            | Message::ClockNotarization(_)
            | Message::UnnotarizedProposals(_) => {
                let mut checks = Vec::new();
                self.plan(&msg, &mut checks)?;
                self.run(&checks)?;
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

    /// The signature checks of a message that carries no sync data; `Ok` with nothing
    /// planned for the others (they go through [`MessageVerifier::verify`]).
    fn plan<'m>(&'m self, msg: &'m Message, out: &mut Vec<Check<'m>>) -> Result<(), VerifyError> {
        match msg {
            Message::Proposal(p) => self.plan_proposal(p, out),
            Message::Vote(v) => self.plan_vote(v, out),
            Message::Notarization(n) => self.plan_notarization(n, out),
            Message::Clock(c) => self.plan_clock(c, out),
            Message::ClockNotarization(c) => self.plan_clock_notarization(c, out),
            Message::UnnotarizedProposals(ps) => {
                ps.iter().try_for_each(|p| self.plan_proposal(p, out))
            }
            Message::Status(_)
            | Message::GetEpoch(_)
            | Message::Epoch(_)
            | Message::GetFresherHead(_)
            | Message::FresherHead(_) => Ok(()),
        }
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

    /// V-3: the primary of the block's epoch signed it; then what the block embeds.
    fn plan_proposal<'m>(
        &'m self,
        p: &'m Proposal,
        out: &mut Vec<Check<'m>>,
    ) -> Result<(), VerifyError> {
        let sn = p.block.sn();
        let c = &self.committees.keys(sn.epoch.session)?.committee;
        let primary = c.primary(sn.epoch);
        if primary.id != p.proposer {
            return Err(VerifyError::NotPrimary);
        }
        out.push(Check::Single {
            pk: &primary.public_key,
            domain: Domain::Proposal,
            msg: Cow::Owned(p.block.hash().0.to_vec()),
            sig: &p.signature,
            what: "proposal",
        });
        self.plan_block_contents(&p.block, out)
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
        let mut checks = Vec::new();
        self.plan_block_contents(b, &mut checks)?;
        self.run(&checks)
    }

    fn plan_block_contents<'m>(
        &'m self,
        b: &'m Block,
        out: &mut Vec<Check<'m>>,
    ) -> Result<(), VerifyError> {
        for n in &b.consensus.notarizations {
            self.plan_notarization(n, out)?;
        }
        if let Some(c) = &b.consensus.clock {
            self.plan_clock_notarization(c, out)?;
        }
        Ok(())
    }

    /// PV-3: a voter of the vote's session signed it.
    fn plan_vote<'m>(&'m self, v: &'m Vote, out: &mut Vec<Check<'m>>) -> Result<(), VerifyError> {
        out.push(Check::Single {
            pk: self.voter_key(v.sn.epoch.session, &v.voter)?,
            domain: Domain::Vote,
            msg: Cow::Borrowed(&v.block_hash.0),
            sig: &v.signature,
            what: "vote",
        });
        Ok(())
    }

    /// E-4: a voter of the epoch's session signed it.
    fn plan_clock<'m>(
        &'m self,
        c: &'m ClockMessage,
        out: &mut Vec<Check<'m>>,
    ) -> Result<(), VerifyError> {
        out.push(Check::Single {
            pk: self.voter_key(c.epoch.session, &c.voter)?,
            domain: Domain::Clock,
            msg: Cow::Owned(c.epoch.signing_bytes().to_vec()),
            sig: &c.signature,
            what: "clock message",
        });
        Ok(())
    }

    /// D-12 with the fixes of section 0.1 item 5.
    pub fn check_notarization(&self, n: &Notarization) -> Result<(), VerifyError> {
        let mut checks = Vec::new();
        self.plan_notarization(n, &mut checks)?;
        self.run(&checks)
    }

    fn plan_notarization<'m>(
        &'m self,
        n: &'m Notarization,
        out: &mut Vec<Check<'m>>,
    ) -> Result<(), VerifyError> {
        self.plan_quorum(
            QuorumClaim {
                session: n.sn.epoch.session,
                signers: &n.signers,
                proposer_idx: n.proposer_idx,
                domain: Domain::Vote,
                msg: Cow::Borrowed(&n.block_hash.0),
                sig: &n.signature,
                what: "notarization",
            },
            out,
        )
    }

    /// D-14 with the same checks as D-12.
    pub fn check_clock_notarization(&self, c: &ClockNotarization) -> Result<(), VerifyError> {
        let mut checks = Vec::new();
        self.plan_clock_notarization(c, &mut checks)?;
        self.run(&checks)
    }

    fn plan_clock_notarization<'m>(
        &'m self,
        c: &'m ClockNotarization,
        out: &mut Vec<Check<'m>>,
    ) -> Result<(), VerifyError> {
        self.plan_quorum(
            QuorumClaim {
                session: c.epoch.session,
                signers: &c.signers,
                proposer_idx: c.proposer_idx,
                domain: Domain::Clock,
                msg: Cow::Owned(c.epoch.signing_bytes().to_vec()),
                sig: &c.signature,
                what: "clock notarization",
            },
            out,
        )
    }

    /// The structure of a quorum signature (D-12 fixes: bitmap length, quorum recomputed
    /// from the bitmap, proposer index); its signature joins `out` unless the same one
    /// verified recently.
    fn plan_quorum<'m>(
        &'m self,
        q: QuorumClaim<'m>,
        out: &mut Vec<Check<'m>>,
    ) -> Result<(), VerifyError> {
        let sk = self.committees.keys(q.session)?;
        let c = &sk.committee;
        if q.signers.len() != c.voters.len() {
            return Err(VerifyError::BitmapLength {
                got: q.signers.len(),
                expected: c.voters.len(),
            });
        }
        if !c.is_quorum(q.signers) {
            return Err(VerifyError::BelowQuorum {
                got: c.weight(q.signers),
                quorum: c.quorum(),
            });
        }
        let proposer = c
            .proposers
            .get(q.proposer_idx as usize)
            .ok_or(VerifyError::ProposerIndex(q.proposer_idx))?;
        if self
            .recent()
            .contains(c, q.domain, &q.msg, q.proposer_idx, q.signers, q.sig)
        {
            return Ok(());
        }
        out.push(Check::Quorum {
            keys: sk,
            proposer: &proposer.public_key,
            claim: q,
        });
        Ok(())
    }
}
