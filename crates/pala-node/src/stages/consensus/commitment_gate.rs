//! W-12e before voting: a proposal whose state commitment contradicts this node's own
//! digest at the committed height never reaches the core, so this node neither stores
//! nor votes for it. A commitment to a height this node has not applied yet passes
//! unchecked (the application may lag consensus by a few blocks, and waiting for it
//! would put the application on the vote path). The rule and the trust it buys are in
//! `stages::application::commitments` and docs/protocol.md, W-12 (e).

use crate::metrics::Metrics;
use crate::stages::application::{AppView, BeforeVote};
use pala_types::{Message, NodeId, Proposal};
use tracing::warn;

/// Whether `msg` from `from` may go on to the core. Only proposals are inspected; a batch
/// of unnotarized proposals (W-7.4b) is refused whole when one of them contradicts,
/// since one primary sent them all.
pub fn admits(view: &AppView, metrics: &Metrics, from: &NodeId, msg: &Message) -> bool {
    let proposals: &[Proposal] = match msg {
        Message::Proposal(p) => std::slice::from_ref(p),
        Message::UnnotarizedProposals(ps) => ps,
        _ => return true,
    };
    for p in proposals {
        match view.before_vote(&p.block) {
            BeforeVote::Nothing => {}
            BeforeVote::Agrees => {
                metrics.proposal_commitments_checked.inc();
            }
            BeforeVote::NotApplied => {
                metrics.proposal_commitments_unchecked.inc();
            }
            BeforeVote::Contradicts(m) => {
                metrics.proposal_commitments_refused.inc();
                warn!(
                    peer = %from,
                    sn = %p.block.sn(),
                    height = m.block_height,
                    committed_height = m.committed.height,
                    committed_digest = %m.committed.digest,
                    this_node = %m.mine.unwrap_or_default(),
                    "proposal refused, no vote: its state commitment contradicts this \
                     node's digest at the committed height"
                );
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::application::tests::{applied, block};
    use pala_types::{Hash, Signature, StateCommitment};

    fn proposal(height: u64, state: StateCommitment) -> Proposal {
        Proposal {
            proposer: NodeId::default(),
            signature: Signature(vec![]),
            block: block(height, state),
        }
    }

    #[test]
    fn a_proposal_that_contradicts_this_nodes_state_is_kept_from_the_core() {
        let (r, honest, _dir) = applied(4);
        let m = Metrics::default();
        let from = NodeId::default();
        let mut forged = honest[1];
        forged.digest = Hash::of(b"not the state");
        let ahead = StateCommitment {
            height: 9,
            ..honest[3]
        };
        let admit = |msg: Message| admits(&r.view, &m, &from, &msg);
        assert!(admit(Message::Proposal(proposal(20, honest[1]))));
        assert!(admit(Message::Proposal(proposal(20, ahead))));
        assert!(admit(Message::Proposal(proposal(
            20,
            StateCommitment::NONE
        ))));
        assert!(!admit(Message::Proposal(proposal(20, forged))));
        assert!(!admit(Message::UnnotarizedProposals(vec![
            proposal(19, honest[0]),
            proposal(20, forged),
        ])));
        assert_eq!(
            (
                m.proposal_commitments_checked.get(),
                m.proposal_commitments_unchecked.get(),
                m.proposal_commitments_refused.get()
            ),
            (2, 1, 2)
        );
    }
}
