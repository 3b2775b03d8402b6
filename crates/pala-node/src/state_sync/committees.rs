//! The chain of committees from genesis (W-12a): a node joining by a snapshot of session
//! T knows only the genesis committee, so for each session S = 1 .. T−1 it checks S's
//! *session proof* with S's committee and derives S+1's committee from it by C-1.
//!
//! A session proof is the chain of S's blocks from its first one (`session_offset` 1) to
//! its stop block (`session_offset` = the stop offset), each the parent of the next, and on
//! through the blocks after the stop block (C-2: of S, past the stop offset) up to a block
//! `(S, e, t)`, notarized by S's committee, whose F-C target `(S, e, t−K)` is the stop block
//! or one after it on the chain (C-9a). That notarization makes the stop block final, so
//! its ancestors are too, and nothing but S's finalized blocks can sit at those offsets:
//! the committee-change transactions among them are the ones the core saw
//! ([`pala_core::committee_rule`], the rule's one home).

use pala_core::committee_rule::{committee_after, note_committee_changes};
use pala_core::MessageVerifier;
use pala_types::{BlockSn, Committee, Message, NotarizedBlock, Session, SignatureScheme};
use std::collections::BTreeMap;
use std::sync::Arc;
use thiserror::Error;

/// What the rule needs besides the proof: the genesis file's parameters.
#[derive(Clone)]
pub struct ChainRules {
    /// Signature scheme.
    pub scheme: Arc<dyn SignatureScheme>,
    /// The network the signatures are for.
    pub network_id: u64,
    /// `genesis.stop_offset` (C-1).
    pub stop_offset: u32,
    /// K (F-C).
    pub k: u32,
    /// Committees fixed in genesis for later sessions.
    pub schedule: BTreeMap<Session, Committee>,
}

/// Why a session proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SessionProofError {
    /// This network has no sessions after the first.
    #[error("the genesis file sets no stop offset: there is no session {0}")]
    NoReconfiguration(Session),
    /// The proof is too short to reach past the stop block.
    #[error(
        "the proof of session {session} holds {blocks} blocks; its stop block alone is the \
         {stop}th"
    )]
    TooShort {
        /// The session.
        session: Session,
        /// Blocks in the proof.
        blocks: usize,
        /// The stop offset.
        stop: u32,
    },
    /// The first block is not the session's first.
    #[error(
        "the proof of session {session} starts with block {sn} (session offset {offset}, \
         parent in session {parent}), not the session's first block"
    )]
    NotFirst {
        /// The session.
        session: Session,
        /// The first block.
        sn: BlockSn,
        /// Its session offset.
        offset: u32,
        /// Its parent's session.
        parent: Session,
    },
    /// Two consecutive blocks do not link.
    #[error("the proof of session {session} breaks at height {height}: not the child of the block before it")]
    BrokenLink {
        /// The session.
        session: Session,
        /// The child's height.
        height: u64,
    },
    /// A block is not where the session's counter puts it.
    #[error(
        "the proof of session {session} has block {sn} at session offset {found} where \
         {want} belongs (a block missing, or one of another session)"
    )]
    WrongOffset {
        /// The session.
        session: Session,
        /// The block.
        sn: BlockSn,
        /// Its session offset.
        found: u32,
        /// The one it must have.
        want: u32,
    },
    /// The last block does not finalize the stop block by F-C.
    #[error(
        "the proof of session {session} does not prove its stop block final: {sn} is not \
         notarized, or ({}, {}, s−K) with K = {k} is not the stop block or after it", sn.epoch.session, sn.epoch.e
    )]
    NotFinal {
        /// The session.
        session: Session,
        /// The last block.
        sn: BlockSn,
        /// K.
        k: u32,
    },
    /// The finalizing notarization is not the session's committee's.
    #[error("the proof of session {session} is not signed by its committee: {detail}")]
    Signature {
        /// The session.
        session: Session,
        /// What the verifier said.
        detail: String,
    },
}

/// Checks `proof` against `committee`, session `session`'s, and returns the committee of
/// `session + 1` (see the module comment).
pub fn next_committee(
    rules: &ChainRules,
    session: Session,
    committee: &Committee,
    proof: &[NotarizedBlock],
) -> Result<Committee, SessionProofError> {
    let stop = rules.stop_offset;
    if stop == 0 {
        return Err(SessionProofError::NoReconfiguration(session + 1));
    }
    if proof.len() <= stop as usize {
        return Err(SessionProofError::TooShort {
            session,
            blocks: proof.len(),
            stop,
        });
    }
    let first = &proof[0].block;
    let parent = first.parent_sn().epoch.session;
    if first.sn().epoch.session != session || first.header.session_offset != 1 || parent >= session
    {
        return Err(SessionProofError::NotFirst {
            session,
            sn: first.sn(),
            offset: first.header.session_offset,
            parent,
        });
    }
    for (i, w) in proof.windows(2).enumerate() {
        let (a, b) = (&w[0].block, &w[1].block);
        if b.header.parent_hash != a.hash()
            || b.parent_sn() != a.sn()
            || b.height() != a.height() + 1
        {
            return Err(SessionProofError::BrokenLink {
                session,
                height: b.height(),
            });
        }
        // The counter follows the chain (C-1): offsets 1, 2, .. up to the stop block, and
        // the blocks after it stay in S (C-2).
        let want = i as u32 + 2;
        if b.sn().epoch.session != session || b.header.session_offset != want {
            return Err(SessionProofError::WrongOffset {
                session,
                sn: b.sn(),
                found: b.header.session_offset,
                want,
            });
        }
    }
    let top = proof.last().expect("longer than the stop offset");
    let sn = top.block.sn();
    let not_final = SessionProofError::NotFinal {
        session,
        sn,
        k: rules.k,
    };
    let Some(n) = top.notarization.as_ref().filter(|_| sn.s > rules.k) else {
        return Err(not_final);
    };
    let target = BlockSn::at(sn.epoch, sn.s - rules.k);
    let at = proof
        .iter()
        .position(|nb| nb.block.sn() == target)
        .ok_or(not_final.clone())?;
    if at + 1 < stop as usize {
        return Err(not_final);
    }
    if n.sn != sn || n.block_hash != top.block.hash() {
        return Err(SessionProofError::Signature {
            session,
            detail: format!(
                "the notarization is for {} {}, not for the block",
                n.sn, n.block_hash
            ),
        });
    }
    let mut committees = pala_core::Committees::default();
    committees.install(rules.scheme.as_ref(), committee.clone());
    let verifier = MessageVerifier::new(rules.scheme.clone(), rules.network_id, committees);
    verifier
        .verify(Message::Notarization(n.clone()))
        .map_err(|e| SessionProofError::Signature {
            session,
            detail: e.to_string(),
        })?;
    let mut latest = None;
    for nb in &proof[..stop as usize] {
        note_committee_changes(
            &mut latest,
            &nb.block,
            session,
            stop,
            rules.scheme.as_ref(),
            rules.network_id,
        );
    }
    Ok(committee_after(session, latest, &rules.schedule, committee))
}

#[cfg(test)]
#[path = "committees_tests.rs"]
mod tests;
