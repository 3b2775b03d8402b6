//! Doppelganger protection (issue 13 row 10): one key run by two instances signs
//! conflicting votes sooner or later, and the vote guard of each instance sees only its
//! own history. So the node signs nothing (no vote, clock message or proposal) for
//! `consensus.doppelganger_wait_ms` after start, listening for its key elsewhere, and stops
//! signing for good once it sees the key live: a message signed with it that this instance
//! did not send, or a client proving it from another address. The core is not involved:
//! not sending is always safe, and the vote guard stays the last line of defence.

use pala_core::Tick;
use pala_types::{Message, NodeId};
use std::net::SocketAddr;
use tracing::error;

/// The policy; time is the consensus stage's tick (milliseconds).
#[derive(Debug)]
pub struct Doppelganger {
    me: NodeId,
    quiet_until: Tick,
    tripped: bool,
}

impl Doppelganger {
    /// A guard that lets the node sign from `start + wait_ms` on (0: at once).
    pub fn new(me: NodeId, start: Tick, wait_ms: u64) -> Doppelganger {
        Doppelganger {
            me,
            quiet_until: start + wait_ms,
            tripped: false,
        }
    }

    /// When the start-up wait ends.
    pub fn quiet_until(&self) -> Tick {
        self.quiet_until
    }

    /// Whether the key was seen live elsewhere.
    pub fn tripped(&self) -> bool {
        self.tripped
    }

    /// Whether the node may sign at `now`.
    pub fn may_sign(&self, now: Tick) -> bool {
        !self.tripped && now >= self.quiet_until
    }

    /// Whether `msg`, about to be sent, carries this node's signature and must be held
    /// back at `now`.
    pub fn holds_back(&self, msg: &Message, now: Tick) -> bool {
        !self.may_sign(now) && self.signed_by_me(msg)
    }

    fn signed_by_me(&self, msg: &Message) -> bool {
        match msg {
            Message::Vote(v) => v.voter == self.me,
            Message::Clock(c) => c.voter == self.me,
            Message::Proposal(p) => p.proposer == self.me,
            _ => false,
        }
    }

    /// Checks a verified message from `from`: nobody relays votes, clock messages or
    /// proposals (W-3), so one signed with our key comes from another instance.
    pub fn inspect(&mut self, from: &NodeId, msg: &Message) {
        if self.signed_by_me(msg) {
            self.trip(&format!(
                "peer {} delivered a message of type {:#04x} signed with this node's key that \
                 this instance did not send",
                from.to_hex(),
                msg.type_code()
            ));
        }
    }

    /// A client at `addr` proved this node's key in a handshake.
    pub fn own_key_elsewhere(&mut self, addr: SocketAddr) {
        self.trip(&format!(
            "a node at {addr} proved this node's key in a handshake"
        ));
    }

    fn trip(&mut self, seen: &str) {
        if std::mem::replace(&mut self.tripped, true) {
            return;
        }
        error!(
            id = %self.me.to_hex(),
            "another instance is running with this node's key: {seen}. This node has \
             stopped voting and proposing so the key cannot sign conflicting messages. What \
             to do: find the other instance (another host, container or data directory \
             using the same node.key_file) and stop it for good, then restart this node. \
             Never run one key twice"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pala_types::{BlockSn, Hash, Signature, Vote};

    fn vote(voter: NodeId) -> Message {
        Message::Vote(Vote {
            voter,
            sn: BlockSn::new(1, 1, 1),
            block_hash: Hash::ZERO,
            signature: Signature::default(),
        })
    }

    #[test]
    fn own_votes_are_held_back_during_the_start_wait_and_after_the_key_is_seen_elsewhere() {
        let me = NodeId([1; 20]);
        let other = NodeId([2; 20]);
        let mut g = Doppelganger::new(me, 1000, 5000);
        assert!(g.holds_back(&vote(me), 1000));
        assert!(g.holds_back(&vote(me), 5999));
        assert!(!g.holds_back(&vote(other), 1000), "only our own signatures");
        assert!(!g.holds_back(&vote(me), 6000), "the wait is over");
        // Another node's vote is ordinary; one with our id means our key is live elsewhere.
        g.inspect(&other, &vote(other));
        assert!(!g.tripped());
        g.inspect(&other, &vote(me));
        assert!(g.tripped());
        assert!(g.holds_back(&vote(me), 1_000_000), "for good");
        let mut g = Doppelganger::new(me, 0, 0);
        assert!(g.may_sign(0), "0 disables the wait");
        g.own_key_elsewhere("10.0.0.9:7000".parse().unwrap());
        assert!(!g.may_sign(1));
    }
}
