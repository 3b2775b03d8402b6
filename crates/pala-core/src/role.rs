//! what a node does in a session, decided from that session's committee.

use pala_types::{Committee, NodeId};

/// What a node does in a session. It follows from the committees the core knows,
/// so it changes at reconfigurations; [`crate::Node::role`] gives it for the local epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Proposes when the rotation makes it primary. A node that is both proposer
    /// and voter of a session counts as a proposer.
    Proposer,
    /// Votes on proposals and sends clock messages.
    Voter,
    /// In no committee of the session (or the session's committee is not installed):
    /// syncs, verifies and serves the chain, never signs.
    Follower,
}

impl Role {
    /// Every role, in the order metrics list them.
    pub const ALL: [Role; 3] = [Role::Proposer, Role::Voter, Role::Follower];

    /// The role of `id` in committee `c`.
    pub fn in_committee(c: &Committee, id: &NodeId) -> Role {
        if c.is_proposer(id) {
            Role::Proposer
        } else if c.is_voter(id) {
            Role::Voter
        } else {
            Role::Follower
        }
    }

    /// The name shown by `/status` and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Proposer => "proposer",
            Role::Voter => "voter",
            Role::Follower => "follower",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names are an interface: `/status` shows them and `pala_role{role=...}` labels
    /// carry them (docs/operators.md), so dashboards and alerts depend on them.
    #[test]
    fn role_names_are_the_documented_ones() {
        let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names, ["proposer", "voter", "follower"]);
    }
}
