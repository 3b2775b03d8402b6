//! The height a node must reach to call itself caught up (`/readyz`), from the statuses of
//! its peers. A status is an unsigned claim; only claims of committee members count, so a
//! follower (which anybody can run against a node serving followers) cannot make a
//! proposer report not-ready by advertising a huge height (issue 13 row 8).

use pala_core::Committees;
use pala_types::NodeId;
use std::collections::HashMap;

/// The latest head height claimed by each connected committee member.
#[derive(Debug, Default)]
pub(super) struct PeerHeads {
    heads: HashMap<NodeId, u64>,
}

fn is_member(committees: &Committees, id: &NodeId) -> bool {
    committees.iter().any(|c| {
        c.proposers
            .iter()
            .chain(c.voters.iter())
            .any(|m| m.id == *id)
    })
}

impl PeerHeads {
    /// Records `peer`'s claim and returns the readiness target.
    pub(super) fn claimed(&mut self, committees: &Committees, peer: NodeId, height: u64) -> u64 {
        if is_member(committees, &peer) {
            self.heads.insert(peer, height);
        }
        self.target()
    }

    /// Forgets a disconnected peer and returns the readiness target.
    pub(super) fn gone(&mut self, peer: &NodeId) -> u64 {
        self.heads.remove(peer);
        self.target()
    }

    /// Drops the claims of peers that are no longer members (after a reconfiguration)
    /// and returns the readiness target.
    pub(super) fn committees_changed(&mut self, committees: &Committees) -> u64 {
        self.heads.retain(|id, _| is_member(committees, id));
        self.target()
    }

    /// The highest height a connected member claims (0 without any).
    pub(super) fn target(&self) -> u64 {
        self.heads.values().copied().max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pala_types::insecure::InsecureTestScheme;
    use pala_types::{Committee, Member, Signature, Signer};

    #[test]
    fn a_follower_advertising_a_huge_height_does_not_raise_the_readiness_target() {
        let scheme = InsecureTestScheme::new();
        let member = |seed| {
            Member::new(
                scheme.keypair(seed).public_key().clone(),
                Signature::default(),
                1,
                "",
            )
        };
        let mut committees = Committees::default();
        let committee = Committee {
            session: 1,
            proposers: vec![member(1)],
            voters: vec![member(2), member(3)],
            counting: Default::default(),
        };
        committees.install(&scheme, committee);
        let follower = scheme.keypair(9).node_id();
        let voter = scheme.keypair(2).node_id();
        let mut heads = PeerHeads::default();
        assert_eq!(heads.claimed(&committees, voter, 40), 40);
        assert_eq!(heads.claimed(&committees, follower, 1_000_000_000), 40);
        assert_eq!(heads.gone(&voter), 0);
        assert_eq!(heads.claimed(&committees, voter, 41), 41);
        // The voter leaves the committee at a reconfiguration: its claim stops counting.
        let mut next = Committees::default();
        next.install(
            &scheme,
            Committee {
                session: 2,
                proposers: vec![member(1)],
                voters: vec![member(3)],
                counting: Default::default(),
            },
        );
        assert_eq!(heads.committees_changed(&next), 0);
    }
}
