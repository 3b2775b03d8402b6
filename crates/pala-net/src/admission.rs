//! Server-side admission (S-3): who may complete a handshake with this node.

use pala_types::{Committee, NodeId};
use std::collections::HashSet;
use std::sync::RwLock;

/// Decides whether a client whose consensus id was just verified may stay connected.
pub trait Admission: Send + Sync {
    /// True when the verified client `peer` is admitted.
    fn admit(&self, peer: &NodeId) -> bool;
}

/// Admits anybody: bootnodes serve candidates and full nodes (S-3).
#[derive(Debug, Default, Clone, Copy)]
pub struct AdmitAll;

impl Admission for AdmitAll {
    fn admit(&self, _peer: &NodeId) -> bool {
        true
    }
}

/// A proposer's policy: only the voters and proposers of its current session (S-3), plus
/// optional extra ids (for example the members of the next session during reconfiguration).
#[derive(Debug, Default)]
pub struct CommitteeAdmission {
    members: RwLock<HashSet<NodeId>>,
}

impl CommitteeAdmission {
    /// A policy admitting the members of `committee`.
    pub fn new(committee: &Committee) -> Self {
        let p = CommitteeAdmission::default();
        p.set_committees(&[committee]);
        p
    }

    /// Replaces the admitted set by the members of `committees` (called at reconfiguration;
    /// existing connections are not re-checked).
    pub fn set_committees(&self, committees: &[&Committee]) {
        let set = committees
            .iter()
            .flat_map(|c| c.proposers.iter().chain(c.voters.iter()).map(|m| m.id))
            .collect();
        *self.members.write().unwrap_or_else(|e| e.into_inner()) = set;
    }

    /// Whether `id` is currently admitted.
    pub fn contains(&self, id: &NodeId) -> bool {
        self.members
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(id)
    }
}

impl Admission for CommitteeAdmission {
    fn admit(&self, peer: &NodeId) -> bool {
        self.contains(peer)
    }
}
