//! Committee admission (section 0.1 item 1, D-7, D-8, D-16): the checks a committee must
//! pass before it is installed, whether it comes from genesis or from a committee-change
//! transaction.
//!
//! Proofs of possession are what make same-message aggregation (votes, notarizations)
//! safe against rogue keys: a member who cannot sign its own key under
//! [`Domain::ProofOfPossession`] could have chosen its key to cancel another's.

use pala_types::{
    BatchItem, Committee, Domain, Member, NodeId, PublicKey, Session, SignatureScheme,
};
use std::collections::HashMap;
use thiserror::Error;

/// Why a committee cannot be installed (section 0.1 item 1, D-8, D-16).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommitteeError {
    /// The voter list is empty (no quorum can ever be reached).
    #[error("committee of session {0} has no voters")]
    NoVoters(Session),
    /// The proposer list is empty (no notarization can be aggregated).
    #[error("committee of session {0} has no proposers")]
    NoProposers(Session),
    /// More members than the u16 indexes of the wire format allow.
    #[error("committee has {0} members in one list, more than 65535")]
    TooLarge(usize),
    /// A member's key is not a valid key of the scheme (for BLS: malformed, the identity
    /// or outside the prime-order subgroup).
    #[error("{list} {index}: invalid public key")]
    InvalidKey {
        /// "voter" or "proposer".
        list: &'static str,
        /// Index in that list.
        index: usize,
    },
    /// A member's id is not the id derived from its key (D-7).
    #[error("{list} {index}: id {id} is not derived from its public key")]
    IdMismatch {
        /// "voter" or "proposer".
        list: &'static str,
        /// Index in that list.
        index: usize,
        /// The claimed id.
        id: NodeId,
    },
    /// A member's proof of possession does not verify (D-8).
    #[error("{list} {index} ({id}): proof of possession does not verify")]
    BadProofOfPossession {
        /// "voter" or "proposer".
        list: &'static str,
        /// Index in that list.
        index: usize,
        /// The member.
        id: NodeId,
    },
    /// The same key appears twice in one list, which would count its weight twice.
    #[error("{list} {index}: duplicate of member {first}")]
    Duplicate {
        /// "voter" or "proposer".
        list: &'static str,
        /// Index of the second occurrence.
        index: usize,
        /// Index of the first occurrence.
        first: usize,
    },
}

/// Checks a committee before it is installed: non-empty lists of at most 65535 members,
/// every id derived from its key (D-7), no key twice in one list, every key valid, and
/// every proof of possession valid on `network_id` (D-8). Errors name the first offending
/// member, proposers before voters.
pub fn validate_committee(
    scheme: &dyn SignatureScheme,
    committee: &Committee,
    network_id: u64,
) -> Result<(), CommitteeError> {
    if committee.voters.is_empty() {
        return Err(CommitteeError::NoVoters(committee.session));
    }
    if committee.proposers.is_empty() {
        return Err(CommitteeError::NoProposers(committee.session));
    }
    for list in [&committee.voters, &committee.proposers] {
        if list.len() > u16::MAX as usize {
            return Err(CommitteeError::TooLarge(list.len()));
        }
    }
    validate_list(scheme, "proposer", &committee.proposers, network_id)?;
    validate_list(scheme, "voter", &committee.voters, network_id)
}

fn validate_list(
    scheme: &dyn SignatureScheme,
    list: &'static str,
    members: &[Member],
    network_id: u64,
) -> Result<(), CommitteeError> {
    let mut seen: HashMap<&PublicKey, usize> = HashMap::with_capacity(members.len());
    for (index, m) in members.iter().enumerate() {
        if m.id != m.public_key.node_id() {
            return Err(CommitteeError::IdMismatch {
                list,
                index,
                id: m.id,
            });
        }
        if let Some(&first) = seen.get(&m.public_key) {
            return Err(CommitteeError::Duplicate { list, index, first });
        }
        seen.insert(&m.public_key, index);
    }
    // All proofs as one random-linear-combination batch: it decodes every key (in
    // parallel, for BLS), so the per-key checks below find them decoded; only when the
    // batch fails are the proofs checked one by one to name the bad one.
    let proofs: Vec<BatchItem<'_>> = members
        .iter()
        .map(|m| BatchItem {
            public_key: &m.public_key,
            domain: Domain::ProofOfPossession,
            msg: &m.public_key.0,
            signature: &m.proof_of_possession,
        })
        .collect();
    let all_proofs_verify = scheme.verify_batch(network_id, &proofs);
    if let Some(index) = members
        .iter()
        .position(|m| !scheme.check_public_key(&m.public_key))
    {
        return Err(CommitteeError::InvalidKey { list, index });
    }
    if all_proofs_verify {
        return Ok(());
    }
    // The single checks are authoritative: a batch can only fail because one of them does.
    match members
        .iter()
        .position(|m| !scheme.verify_possession(&m.public_key, network_id, &m.proof_of_possession))
    {
        Some(index) => Err(CommitteeError::BadProofOfPossession {
            list,
            index,
            id: members[index].id,
        }),
        None => Ok(()),
    }
}
