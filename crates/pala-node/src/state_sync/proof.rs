//! What vouches for a snapshot (W-12, docs/protocol.md section 7): the chain of blocks
//! from the snapshot's block `s` up to a notarized block `top = (S, e, t)`, `t > K`,
//! hash-linked parent to child, where the chain holds the block `F = (S, e, t−K)` and a
//! block `c` with `s < c ≤ F` whose header commits to the snapshot's state.
//!
//! By F-C (section 4.2) a notarized `(e, t)` with `t > K` finalizes `(e, t−K)` and every
//! ancestor of it, so `c` is final and so is its commitment; every notarization of the
//! proof is checked with BLS against the committee of its session: the genesis committee
//! for session 1, and for a later session the one the joining node derived through the
//! chain of session proofs ([`super::committees`]). What a finalized commitment is worth
//! is stated in docs/protocol.md, W-12 (e): the honest voters of its quorum that had
//! applied the committed height checked it before voting, and every node after finality.
//! `c` is at least 2K + 1 heights above `s` (W-12e), so a proof spans 3K + 2 blocks or
//! more.

use super::manifest::Manifest;
use super::wire::{Offer, MAX_PROOF_BLOCKS};
use pala_core::{MessageVerifier, VerifyError};
use pala_storage::StorageReader;
use pala_types::{BlockSn, FresherHeadResponse, Message, NotarizedBlock};
use thiserror::Error;

/// Why an offer's proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProofError {
    /// The first block is not the snapshot's block.
    #[error(
        "the proof starts at height {height} with block {hash}, not at the snapshot's block \
         (height {want_height}, {want_hash})"
    )]
    WrongStart {
        /// The first block's height.
        height: u64,
        /// Its hash.
        hash: pala_types::Hash,
        /// The manifest's height.
        want_height: u64,
        /// The manifest's block hash.
        want_hash: pala_types::Hash,
    },
    /// Two consecutive blocks of the proof do not link.
    #[error("the proof's block at height {height} is not the child of the block before it")]
    BrokenLink {
        /// The child's height.
        height: u64,
    },
    /// The last block carries no notarization.
    #[error("the proof's last block {sn} carries no notarization")]
    NotNotarized {
        /// The last block.
        sn: BlockSn,
    },
    /// The last block does not finalize anything in the proof under F-C.
    #[error(
        "the proof's notarized block {sn} does not finalize a block of the proof (F-C needs \
         ({}, {}, s−K) in the chain and s > K = {k})", sn.epoch.session, sn.epoch.e
    )]
    NotFinal {
        /// The last block.
        sn: BlockSn,
        /// K.
        k: u32,
    },
    /// No finalized block of the proof commits to the snapshot's state.
    #[error(
        "the snapshot's digest does not match the header: no finalized block of the proof \
         commits to height {height} with digest {digest}"
    )]
    NoCommitment {
        /// The manifest's height.
        height: u64,
        /// The manifest's digest.
        digest: pala_types::Hash,
    },
    /// The proof is signed in a session whose committee the checker was not given.
    #[error(
        "the snapshot's proof is signed in session {0}, whose committee is not known here \
         (the chain of session proofs from genesis did not reach it)"
    )]
    UnknownSession(u32),
    /// A notarization of the proof does not verify.
    #[error("a notarization of the proof does not verify: {0}")]
    Signature(String),
}

/// Checks that `offer.proof` vouches for `offer.manifest` (see the module comment) with
/// `verifier`, which must hold the committees of the proof's sessions; returns the index
/// of the finalized block `F` in the proof.
pub fn check(offer: &Offer, verifier: &MessageVerifier, k: u32) -> Result<usize, ProofError> {
    let f = check_links(offer, k)?;
    let msg = Message::FresherHead(FresherHeadResponse {
        blocks: offer.proof.clone(),
        finalized: None,
    });
    match verifier.verify(msg) {
        Ok(v) if v.deferred().is_empty() => Ok(f),
        Ok(v) => Err(ProofError::UnknownSession(
            v.deferred()[0].block.sn().epoch.session,
        )),
        Err(VerifyError::UnknownSession(s)) => Err(ProofError::UnknownSession(s)),
        Err(e) => Err(ProofError::Signature(e.to_string())),
    }
}

/// The session the offer's proof is signed in (that of its notarized last block).
pub fn session_of(offer: &Offer) -> u32 {
    offer
        .proof
        .last()
        .map_or(1, |nb| nb.block.sn().epoch.session)
}

/// Every check of [`check`] but the signatures: what can be checked before the
/// committees of a later session are known.
pub fn check_links(offer: &Offer, k: u32) -> Result<usize, ProofError> {
    let m = &offer.manifest;
    let p = &offer.proof;
    let first = &p[0].block;
    if first.height() != m.height || first.hash() != m.block_hash {
        return Err(ProofError::WrongStart {
            height: first.height(),
            hash: first.hash(),
            want_height: m.height,
            want_hash: m.block_hash,
        });
    }
    for w in p.windows(2) {
        let (a, b) = (&w[0].block, &w[1].block);
        if b.header.parent_hash != a.hash()
            || b.parent_sn() != a.sn()
            || b.height() != a.height() + 1
        {
            return Err(ProofError::BrokenLink { height: b.height() });
        }
    }
    let top = p.last().expect("decoded proofs are not empty");
    let sn = top.block.sn();
    if top.notarization.is_none() {
        return Err(ProofError::NotNotarized { sn });
    }
    let not_final = ProofError::NotFinal { sn, k };
    if sn.s <= k {
        return Err(not_final);
    }
    let target = BlockSn::at(sn.epoch, sn.s - k);
    let f = p
        .iter()
        .position(|nb| nb.block.sn() == target)
        .ok_or(not_final)?;
    // `c` lies above the snapshot's block and at or below `F` (so it is final).
    if f == 0 || !(1..=f).any(|j| p[j].block.header.state == m.commitment()) {
        return Err(ProofError::NoCommitment {
            height: m.height,
            digest: m.state_digest,
        });
    }
    Ok(f)
}

/// Builds the proof for `manifest` from what `storage` holds: the finalized blocks from
/// the snapshot's height up to the first one that commits to it, on to a block `F` in the
/// same epoch as a stored notarized block K sequence numbers later. `F` is never one of
/// the empty blocks after a stop block (C-2, `session_offset > stop_offset`): a node that
/// starts from such a root would sit in a reconfiguration window that start-up does not
/// resume (section 13, P-3). `None` while the commitment is not finalized yet (a fresh
/// snapshot) or the blocks are gone.
pub fn build(
    manifest: &Manifest,
    storage: &StorageReader,
    k: u32,
    stop_offset: u32,
) -> Option<Vec<NotarizedBlock>> {
    let (_, hi) = storage.finalized_range()?;
    let s = manifest.height;
    let at = |h: u64| -> Option<NotarizedBlock> {
        let (sn, hash) = storage.finalized_at(h)?;
        let nb = storage.notarized_block(sn).ok()??;
        (nb.block.hash() == hash).then_some(nb)
    };
    let first = at(s)?;
    if first.block.hash() != manifest.block_hash {
        return None;
    }
    let mut proof = vec![first];
    let mut committed = false;
    for h in s + 1..=hi {
        if proof.len() + k as usize + 1 > MAX_PROOF_BLOCKS {
            return None;
        }
        let nb = at(h)?;
        committed |= nb.block.header.state == manifest.commitment();
        let after_stop = stop_offset > 0 && nb.block.header.session_offset > stop_offset;
        proof.push(nb);
        if !committed || after_stop {
            continue;
        }
        // Is F = this block finalized by a stored notarized (e, s+K)?
        if let Some(tail) = tail_after(storage, &proof, k) {
            proof.extend(tail);
            return Some(proof);
        }
    }
    None
}

/// The K blocks after the proof's last block in its epoch, the last one notarized.
fn tail_after(
    storage: &StorageReader,
    proof: &[NotarizedBlock],
    k: u32,
) -> Option<Vec<NotarizedBlock>> {
    let f = proof.last()?.block.clone();
    let mut prev = f.clone();
    let mut tail = Vec::with_capacity(k as usize);
    for i in 1..=k {
        let sn = BlockSn::at(f.sn().epoch, f.sn().s + i);
        let nb = storage.notarized_block(sn).ok()??;
        if nb.block.header.parent_hash != prev.hash() || nb.block.height() != prev.height() + 1 {
            return None;
        }
        prev = nb.block.clone();
        tail.push(nb);
    }
    tail.last()?.notarization.as_ref()?;
    Some(tail)
}

#[cfg(test)]
#[path = "proof_tests.rs"]
mod tests;
