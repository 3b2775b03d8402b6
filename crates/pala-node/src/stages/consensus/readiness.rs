//! `/readyz`: whether the node can do its part now, from verified facts only (issue 13
//! item 4: heads proven by committee members' statuses, peers whose id the handshake
//! proved, S-3).
//!
//! Every node must be caught up: its head within `2K + 2` blocks of the highest head a
//! connected committee member claims (the verify stage keeps that target; a follower's
//! claim does not count). Besides, by the role in the session of the local epoch:
//!
//! * a **proposer** must be connected to voters of that session whose weight reaches the
//!   quorum (D-9), each having sent a status on its current connection. A proposer that
//!   reaches fewer can neither notarize as primary nor take over as standby, so an
//!   operator who restarts the next node on its word would stall the chain (a rolling
//!   upgrade, issue 15 item 5). Its own weight counts when it also votes.
//! * a **voter** must be connected to the primary of its local epoch, which is the
//!   proposer its votes go to (W-3); the primary itself answers for the voter.
//! * a **follower** has no one it must reach beyond some peer.
//!
//! A member is not ready either while it signs nothing: during the doppelganger wait
//! after start (`consensus.doppelganger_wait_ms`), or for good once its key was seen
//! elsewhere.

use pala_core::Role;
use pala_types::{Committee, Epoch, NodeId};
use std::collections::BTreeSet;
use std::fmt;

/// What readiness is decided from.
pub(super) struct Facts<'a> {
    pub me: NodeId,
    pub role: Role,
    pub epoch: Epoch,
    /// The committee of the local epoch's session, if installed.
    pub committee: Option<&'a Committee>,
    /// Any peer connected (followers have nothing else to reach).
    pub any_peer: bool,
    /// Connected peers that sent a status on their current connection.
    pub answering: &'a BTreeSet<NodeId>,
    pub head_height: u64,
    pub k: u32,
    /// The highest head height a connected committee member claims.
    pub target: u64,
    /// The node stopped signing: its key is live elsewhere.
    pub doppelganger: bool,
    /// Milliseconds left of the start-up wait in which the node signs nothing (0: over).
    pub quiet_ms: u64,
}

/// Why the node is not ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Unready {
    NoPeers,
    Doppelganger,
    Quiet { ms: u64 },
    CatchingUp { head: u64, target: u64 },
    NoCommittee { session: u32 },
    VoterQuorum { weight: u64, quorum: u64 },
    NoPrimary { primary: NodeId },
}

impl fmt::Display for Unready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unready::NoPeers => write!(f, "no peers"),
            Unready::Doppelganger => write!(f, "this node's key is live elsewhere"),
            Unready::Quiet { ms } => write!(
                f,
                "listening for this node's key elsewhere before signing ({ms} ms left)"
            ),
            Unready::CatchingUp { head, target } => {
                write!(f, "catching up: head {head}, peers at {target}")
            }
            Unready::NoCommittee { session } => {
                write!(f, "the committee of session {session} is not installed")
            }
            Unready::VoterQuorum { weight, quorum } => write!(
                f,
                "a proposer connected to voters of weight {weight}, below the quorum {quorum}"
            ),
            Unready::NoPrimary { primary } => {
                write!(
                    f,
                    "a voter not connected to the primary {}",
                    primary.to_hex()
                )
            }
        }
    }
}

/// `Ok` when ready, else the first reason found.
pub(super) fn readiness(f: &Facts) -> Result<(), Unready> {
    if !f.any_peer {
        return Err(Unready::NoPeers);
    }
    if f.doppelganger {
        return Err(Unready::Doppelganger);
    }
    // A member that signs nothing yet is one voter or proposer short: restarting the next
    // node on its word would take the cluster below its quorum.
    if f.quiet_ms > 0 && f.role != Role::Follower {
        return Err(Unready::Quiet { ms: f.quiet_ms });
    }
    if f.head_height + 2 * f.k as u64 + 2 < f.target {
        return Err(Unready::CatchingUp {
            head: f.head_height,
            target: f.target,
        });
    }
    if f.role == Role::Follower {
        return Ok(());
    }
    let Some(c) = f.committee else {
        return Err(Unready::NoCommittee {
            session: f.epoch.session,
        });
    };
    if f.role == Role::Proposer {
        let weight = c.weight_of_ids(f.answering.iter().chain(std::iter::once(&f.me)));
        let quorum = c.quorum();
        if weight < quorum {
            return Err(Unready::VoterQuorum { weight, quorum });
        }
        return Ok(());
    }
    let primary = c.primary(f.epoch).id;
    if primary != f.me && !f.answering.contains(&primary) {
        return Err(Unready::NoPrimary { primary });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pala_types::insecure::InsecureTestScheme;
    use pala_types::{Member, Signature, Signer};

    struct World {
        scheme: InsecureTestScheme,
        committee: Committee,
    }

    impl World {
        /// Proposers from keys 1 and 2, four voters of stake 1 from keys 11..=14.
        fn new() -> World {
            let scheme = InsecureTestScheme::new();
            let member = |seed| {
                Member::new(
                    scheme.keypair(seed).public_key().clone(),
                    Signature::default(),
                    1,
                    "",
                )
            };
            let committee = Committee {
                session: 1,
                proposers: vec![member(1), member(2)],
                voters: (11..=14).map(member).collect(),
                counting: Default::default(),
            };
            World { scheme, committee }
        }

        fn id(&self, seed: u64) -> NodeId {
            self.scheme.keypair(seed).node_id()
        }

        fn check(&self, me: u64, role: Role, e: u32, answering: &[u64]) -> Result<(), Unready> {
            let answering: BTreeSet<NodeId> = answering.iter().map(|s| self.id(*s)).collect();
            readiness(&Facts {
                me: self.id(me),
                role,
                epoch: Epoch { session: 1, e },
                committee: Some(&self.committee),
                any_peer: !answering.is_empty(),
                answering: &answering,
                head_height: 100,
                k: 2,
                target: 100,
                doppelganger: false,
                quiet_ms: 0,
            })
        }
    }

    #[test]
    fn a_proposer_is_ready_only_with_a_quorum_of_voters_answering() {
        let w = World::new();
        // The other proposer answers, and two voters: weight 2 of a quorum of 3.
        assert_eq!(
            w.check(1, Role::Proposer, 1, &[2, 11, 12]),
            Err(Unready::VoterQuorum {
                weight: 2,
                quorum: 3
            })
        );
        assert_eq!(w.check(1, Role::Proposer, 1, &[11, 12, 13]), Ok(()));
        // The standby proposer just the same.
        assert_eq!(w.check(2, Role::Proposer, 1, &[12, 13, 14]), Ok(()));
    }

    #[test]
    fn a_voter_is_ready_only_when_the_primary_of_its_epoch_answers() {
        let w = World::new();
        // Epoch 1's primary is proposer 1, epoch 2's proposer 2.
        assert_eq!(w.check(11, Role::Voter, 1, &[1]), Ok(()));
        assert_eq!(
            w.check(11, Role::Voter, 1, &[2]),
            Err(Unready::NoPrimary { primary: w.id(1) })
        );
        assert_eq!(w.check(11, Role::Voter, 2, &[2]), Ok(()));
    }

    #[test]
    fn catching_up_comes_first_whatever_the_role() {
        let w = World::new();
        let answering: BTreeSet<NodeId> = [11, 12, 13].iter().map(|s| w.id(*s)).collect();
        let mut facts = Facts {
            me: w.id(1),
            role: Role::Proposer,
            epoch: Epoch { session: 1, e: 1 },
            committee: Some(&w.committee),
            any_peer: true,
            answering: &answering,
            head_height: 10,
            k: 2,
            target: 17,
            doppelganger: false,
            quiet_ms: 0,
        };
        assert_eq!(
            readiness(&facts),
            Err(Unready::CatchingUp {
                head: 10,
                target: 17
            })
        );
        // Within 2K + 2 blocks of the target is caught up.
        facts.target = 16;
        assert_eq!(readiness(&facts), Ok(()));
        facts.quiet_ms = 700;
        assert_eq!(readiness(&facts), Err(Unready::Quiet { ms: 700 }));
        facts.doppelganger = true;
        assert_eq!(readiness(&facts), Err(Unready::Doppelganger));
    }

    #[test]
    fn a_follower_needs_only_a_peer() {
        let w = World::new();
        assert_eq!(w.check(9, Role::Follower, 1, &[1]), Ok(()));
        assert_eq!(w.check(9, Role::Follower, 1, &[]), Err(Unready::NoPeers));
    }
}
