//! Noticing, while running, that this node fell behind every peer's retention (W-12f):
//! for example after it was stopped (SIGSTOP, a suspended VM) while the others finalized
//! and pruned more than `storage.retain_finalized_heights` heights.
//!
//! The evidence is chain sync's own (W-7.3): a peer that finds none of the blocks the
//! node listed, its finalized head included, answers with no blocks and its own
//! finalized head. From a peer whose finalized head is above the node's that means the
//! peer no longer stores the node's head, since finalized chains agree (F-3). The core
//! asks again after `MAX_REQUEST_WAIT`, the next time perhaps another peer; a few such
//! answers in a row, with no answer carrying blocks between them and the node's own
//! finalized head not moving, say that no peer it reaches can serve it. The claim in the
//! answer is unsigned, so the verdict only raises the alarm (a log line and the gauge
//! `pala_state_sync_behind`); what repairs the node is a restart, where the offers'
//! checked proofs decide (W-12f at start-up).

use pala_types::NodeId;
use std::collections::BTreeSet;

/// Answers in a row that found none of this node's blocks before it says it is behind:
/// more than one peer's worth of a transient answer (a peer that just joined by snapshot
/// above this node's head answers so, and the core then asks another).
pub const ANSWERS: u32 = 3;

/// What changed with an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The node cannot catch up by chain sync from the peers that answered.
    Behind {
        /// Its finalized height.
        own: u64,
        /// The peers that answered so.
        peers: usize,
        /// The highest finalized height they reported.
        peer_finalized: u64,
    },
    /// A peer served blocks again after the node was said to be behind.
    CaughtUp,
}

/// The answers seen since the last one that carried blocks.
#[derive(Debug, Default)]
pub struct BehindWatch {
    own: u64,
    misses: u32,
    peers: BTreeSet<NodeId>,
    peer_finalized: u64,
    behind: bool,
}

impl BehindWatch {
    /// One chain-sync answer from `peer`: `blocks` blocks, and when it found none of
    /// ours, its finalized height; `own` is this node's finalized height now.
    pub fn answer(
        &mut self,
        peer: NodeId,
        blocks: usize,
        peer_finalized: Option<u64>,
        own: u64,
    ) -> Option<Change> {
        if blocks > 0 || own != self.own {
            let was = self.behind;
            *self = BehindWatch {
                own,
                ..BehindWatch::default()
            };
            if blocks > 0 {
                return was.then_some(Change::CaughtUp);
            }
            // The head moved without blocks from this peer (another one served them):
            // count afresh from this answer, and say so if the alarm was up.
            if was {
                self.observe(peer, peer_finalized);
                return Some(Change::CaughtUp);
            }
        }
        self.observe(peer, peer_finalized);
        if !self.behind && self.misses >= ANSWERS {
            self.behind = true;
            return Some(Change::Behind {
                own,
                peers: self.peers.len(),
                peer_finalized: self.peer_finalized,
            });
        }
        None
    }

    fn observe(&mut self, peer: NodeId, peer_finalized: Option<u64>) {
        if let Some(h) = peer_finalized.filter(|h| *h > self.own) {
            self.misses += 1;
            self.peers.insert(peer);
            self.peer_finalized = self.peer_finalized.max(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(i: u8) -> NodeId {
        NodeId([i; 20])
    }

    #[test]
    fn answers_without_our_blocks_in_a_row_raise_the_alarm_and_blocks_lower_it() {
        let mut w = BehindWatch::default();
        assert_eq!(w.answer(p(1), 0, Some(900), 100), None);
        assert_eq!(w.answer(p(2), 0, Some(905), 100), None);
        assert_eq!(
            w.answer(p(1), 0, Some(903), 100),
            Some(Change::Behind {
                own: 100,
                peers: 2,
                peer_finalized: 905
            })
        );
        // Said once, not on every answer.
        assert_eq!(w.answer(p(2), 0, Some(910), 100), None);
        // A peer serves blocks again.
        assert_eq!(w.answer(p(3), 10, None, 100), Some(Change::CaughtUp));
        assert_eq!(w.answer(p(3), 10, None, 110), None);
    }

    #[test]
    fn a_transient_miss_is_no_alarm() {
        let mut w = BehindWatch::default();
        // A peer that just joined by snapshot above our head cannot serve us, another
        // can: the count starts over.
        assert_eq!(w.answer(p(1), 0, Some(900), 100), None);
        assert_eq!(w.answer(p(1), 0, Some(900), 100), None);
        assert_eq!(w.answer(p(2), 5, None, 100), None);
        assert_eq!(w.answer(p(1), 0, Some(900), 105), None);
        assert_eq!(w.answer(p(1), 0, Some(900), 105), None);
        // Our head moved (blocks from a peer served through another path): afresh.
        assert_eq!(w.answer(p(1), 0, Some(900), 106), None);
        assert_eq!(w.answer(p(1), 0, Some(900), 106), None);
        // Peers that are not ahead of us prove nothing.
        assert_eq!(w.answer(p(4), 0, Some(50), 106), None);
        assert_eq!(w.answer(p(4), 0, None, 106), None);
        assert!(matches!(
            w.answer(p(1), 0, Some(900), 106),
            Some(Change::Behind { peers: 1, .. })
        ));
        // The head moves while the alarm is up: lowered, and counted afresh.
        assert_eq!(w.answer(p(1), 0, Some(900), 107), Some(Change::CaughtUp));
    }
}
