//! The verifier's memory of quorum signatures it checked recently.
//!
//! Every voter sees each notarization twice, broadcast on its own and embedded in the
//! block K later (N-3); with BLS the second check was a fifth of all CPU time. A hit
//! requires every input (committee, domain, message, proposer, signer bitmap, signature)
//! to be equal, so it answers exactly what verifying again would.

use crate::fasthash::FastHasher;
use pala_types::{Committee, Domain, Signature, SignerBitmap};
use std::hash::Hasher;
use std::sync::Arc;

/// How many recently verified quorum signatures a verifier remembers. The repeat of a
/// notarization comes within the same round trip (the proposer sends nota(s) and then
/// block s+K that embeds it), so a few slots suffice.
const RECENT_SLOTS: usize = 16;
/// Longest message and signature kept inline in a slot (block hashes, epochs; BLS
/// `min_sig` and insecure signatures); anything longer is simply not remembered.
const RECENT_MSG_LEN: usize = 32;
const RECENT_SIG_LEN: usize = 48;

/// A quorum signature (notarization or clock notarization) that verified, with the
/// committee it verified against. Message and signature are stored inline: the
/// lookup runs for every notarization at every node and pointer chasing dominated it.
struct RecentQuorumSig {
    committee: Arc<Committee>,
    domain: Domain,
    proposer_idx: u16,
    msg_len: u8,
    msg: [u8; RECENT_MSG_LEN],
    sig_len: u8,
    sig: [u8; RECENT_SIG_LEN],
    signers: SignerBitmap,
}

impl RecentQuorumSig {
    fn new(
        committee: &Arc<Committee>,
        domain: Domain,
        msg: &[u8],
        proposer_idx: u16,
        signers: &SignerBitmap,
        signature: &Signature,
    ) -> Option<Self> {
        if msg.len() > RECENT_MSG_LEN || signature.0.len() > RECENT_SIG_LEN {
            return None;
        }
        let mut r = RecentQuorumSig {
            committee: committee.clone(),
            domain,
            proposer_idx,
            msg_len: msg.len() as u8,
            msg: [0; RECENT_MSG_LEN],
            sig_len: signature.0.len() as u8,
            sig: [0; RECENT_SIG_LEN],
            signers: signers.clone(),
        };
        r.msg[..msg.len()].copy_from_slice(msg);
        r.sig[..signature.0.len()].copy_from_slice(&signature.0);
        Some(r)
    }

    fn matches(
        &self,
        committee: &Arc<Committee>,
        domain: Domain,
        msg: &[u8],
        proposer_idx: u16,
        signers: &SignerBitmap,
        signature: &Signature,
    ) -> bool {
        self.msg[..self.msg_len as usize] == *msg
            && self.sig[..self.sig_len as usize] == *signature.0
            && self.domain == domain
            && self.proposer_idx == proposer_idx
            && Arc::ptr_eq(&self.committee, committee)
            && self.signers == *signers
    }
}

/// Recently verified quorum signatures, direct-mapped by domain and message.
pub(super) struct RecentQuorumSigs {
    slots: Vec<Option<RecentQuorumSig>>,
}

impl RecentQuorumSigs {
    pub(super) fn new() -> Self {
        RecentQuorumSigs {
            slots: (0..RECENT_SLOTS).map(|_| None).collect(),
        }
    }

    fn slot(domain: Domain, msg: &[u8]) -> usize {
        let mut h = FastHasher::default();
        h.write_u8(domain as u8);
        h.write(msg);
        h.finish() as usize % RECENT_SLOTS
    }

    /// Whether exactly this quorum signature verified against `committee` recently.
    pub(super) fn contains(
        &self,
        committee: &Arc<Committee>,
        domain: Domain,
        msg: &[u8],
        proposer_idx: u16,
        signers: &SignerBitmap,
        signature: &Signature,
    ) -> bool {
        self.slots[Self::slot(domain, msg)]
            .as_ref()
            .is_some_and(|r| r.matches(committee, domain, msg, proposer_idx, signers, signature))
    }

    /// Remembers a quorum signature that verified, in place of the slot's previous one.
    pub(super) fn remember(
        &mut self,
        committee: &Arc<Committee>,
        domain: Domain,
        msg: &[u8],
        proposer_idx: u16,
        signers: &SignerBitmap,
        signature: &Signature,
    ) {
        if let Some(r) =
            RecentQuorumSig::new(committee, domain, msg, proposer_idx, signers, signature)
        {
            self.slots[Self::slot(domain, msg)] = Some(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pala_types::{Hash, VoteCounting};

    fn committee() -> Arc<Committee> {
        Arc::new(Committee {
            session: 1,
            proposers: Vec::new(),
            voters: Vec::new(),
            counting: VoteCounting::Seat,
        })
    }

    /// The memory holds one signature per slot, so two notarizations that map to
    /// different slots are both remembered (a notarization's repeat usually comes while
    /// the next one is already checked); one that maps to the same slot replaces it.
    #[test]
    fn notarizations_in_different_slots_are_remembered_together() {
        let c = committee();
        let signers = SignerBitmap::new(4);
        let msg = |i: u32| Hash::of(&i.to_le_bytes()).0;
        let sig = Signature(vec![7; 48]);
        let slot = |i| RecentQuorumSigs::slot(Domain::Vote, &msg(i));
        let other = (1..1000).find(|&i| slot(i) != slot(0)).expect("16 slots");
        let same = (1..1000).find(|&i| slot(i) == slot(0)).expect("16 slots");
        let mut recent = RecentQuorumSigs::new();
        let has =
            |r: &RecentQuorumSigs, i| r.contains(&c, Domain::Vote, &msg(i), 0, &signers, &sig);
        recent.remember(&c, Domain::Vote, &msg(0), 0, &signers, &sig);
        recent.remember(&c, Domain::Vote, &msg(other), 0, &signers, &sig);
        assert!(has(&recent, 0) && has(&recent, other));
        recent.remember(&c, Domain::Vote, &msg(same), 0, &signers, &sig);
        assert!(!has(&recent, 0) && has(&recent, same) && has(&recent, other));
    }
}
