//! [`Mutation::SendBeforePersist`](crate::Mutation::SendBeforePersist), only with the
//! `mutations` feature: the first vote that has to wait for a persist goes out at once.
//! A file of its own so that mutation testing (`.cargo/mutants.toml`) leaves this
//! deliberately broken rule alone.

use super::{Driver, Released};
use crate::node::Node;
use pala_types::Message;

impl<E> Driver<E> {
    pub(super) fn breaks_gate(&mut self, node: &Node, effect: &Released<E>) -> bool {
        let vote = matches!(
            effect,
            Released::Send {
                msg: Message::Vote(_),
                ..
            } | Released::Broadcast(Message::Vote(_))
        );
        let fire = vote
            && !self.broke_gate
            && self.gate.would_hold()
            && node.config().mutation == Some(crate::Mutation::SendBeforePersist);
        self.broke_gate |= fire;
        fire
    }
}
