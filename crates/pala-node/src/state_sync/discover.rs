//! What a round of offer requests found (W-12b), and the verdict of W-12f on a node that
//! already stores a finalized chain: is it too far behind its peers' retention to catch
//! up by chain sync?
//!
//! Chain sync (W-7.3) can serve a node only from a peer that finds the node's finalized
//! head on its own finalized chain; a peer that pruned that height answers as for an
//! unknown block, forever. So a node is behind when no peer that said what it stores
//! (offer version 2) holds its finalized head, and some peer offers a checked snapshot
//! above it. Peers that said nothing (no answer, a version-1 build, an empty node) are no
//! evidence either way: with no evidence the node starts from its own data, which is what
//! a cluster restarting together needs.

use super::wire::{Holds, Offer};
use pala_types::NodeId;

/// The answers of one round.
#[derive(Debug, Default, Clone)]
pub struct Discovery {
    /// Offers whose proof checked (for a later session, all but the signatures, which
    /// wait for the chain of committees): the peer, the offer, the index of its
    /// finalized block.
    pub(super) offers: Vec<(NodeId, Offer, usize)>,
    /// What each peer that answered said it stores.
    pub(super) holds: Vec<(NodeId, Holds)>,
}

/// Why a node with data joins by snapshot anyway (W-12f).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behind {
    /// The node's own finalized height.
    pub own: u64,
    /// Peers that said what they store; none holds `own`.
    pub peers: usize,
    /// The lowest height any of them that is ahead still stores.
    pub lowest_kept: u64,
    /// The newest checked snapshot offered.
    pub snapshot: u64,
}

impl Discovery {
    /// The offer to fetch among those above `floor`: the one the most peers can serve
    /// (more peers to fetch from and to fall back on), then the newest; with the index of
    /// its finalized block and the peers that can serve it. A peer that offered a newer
    /// snapshot still keeps this one unless `state_sync.keep` is 1; if it does not, it
    /// says so and is left out.
    pub(super) fn best(&self, floor: u64) -> Option<(NodeId, Offer, usize, Vec<NodeId>)> {
        let above: Vec<&(NodeId, Offer, usize)> = self
            .offers
            .iter()
            .filter(|(_, o, _)| o.manifest.height > floor)
            .collect();
        let servable = |h: u64| {
            above
                .iter()
                .filter(|(_, o, _)| o.manifest.height >= h)
                .count()
        };
        let (peer, offer, f) = *above
            .iter()
            .max_by_key(|(_, o, _)| (servable(o.manifest.height), o.manifest.height))?;
        // In id order: the order session proofs are asked in (W-12a), the same on every
        // run.
        let mut sources: Vec<NodeId> = above
            .iter()
            .filter(|(_, o, _)| o.manifest.height >= offer.manifest.height)
            .map(|(p, _, _)| *p)
            .collect();
        sources.sort();
        Some((*peer, offer.clone(), *f, sources))
    }

    /// W-12f: `Some` when a node whose finalized head is at `own` cannot catch up by chain
    /// sync from any peer that answered, and a snapshot above `own` is on offer.
    pub fn behind(&self, own: u64) -> Option<Behind> {
        let said: Vec<(u64, u64)> = self
            .holds
            .iter()
            .filter_map(|(_, h)| match *h {
                Holds::Heights { low, high } => Some((low, high)),
                _ => None,
            })
            .collect();
        if said.is_empty() || said.iter().any(|(l, h)| *l <= own && own <= *h) {
            return None;
        }
        let snapshot = self
            .offers
            .iter()
            .map(|(_, o, _)| o.manifest.height)
            .filter(|h| *h > own)
            .max()?;
        let lowest_kept = said
            .iter()
            .filter(|(_, h)| *h > own)
            .map(|(l, _)| *l)
            .min()
            .unwrap_or(snapshot);
        Some(Behind {
            own,
            peers: said.len(),
            lowest_kept,
            snapshot,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state_sync::{ChunkInfo, Manifest};
    use pala_types::{Block, Hash, NotarizedBlock};
    use std::sync::Arc;

    fn offer(height: u64) -> Offer {
        Offer {
            manifest: Manifest {
                height,
                block_hash: Hash::of(&height.to_le_bytes()),
                state_digest: Hash::of(b"state"),
                total_pairs: 0,
                app_meta: vec![],
                chunks: vec![ChunkInfo::of(b"c")],
            },
            proof: vec![NotarizedBlock {
                block: Arc::new(Block::genesis(b"net".to_vec())),
                notarization: None,
            }],
        }
    }

    fn peer(i: u8) -> NodeId {
        NodeId([i; 20])
    }

    fn heights(low: u64, high: u64) -> Holds {
        Holds::Heights { low, high }
    }

    #[test]
    fn a_node_is_behind_only_when_no_peer_that_said_holds_its_head() {
        let mut d = Discovery {
            offers: vec![(peer(1), offer(900), 1), (peer(2), offer(1000), 1)],
            holds: vec![(peer(1), heights(600, 1010)), (peer(2), heights(700, 1010))],
        };
        assert_eq!(
            d.behind(500),
            Some(Behind {
                own: 500,
                peers: 2,
                lowest_kept: 600,
                snapshot: 1000
            })
        );
        // Its head at the edge of one peer's retention: that peer serves it by chain sync.
        assert_eq!(d.behind(600), None);
        // A peer that holds it, among others that do not: chain sync from that one.
        d.holds.push((peer(3), heights(1, 1010)));
        assert_eq!(d.behind(500), None);
        // Peers behind it hold nothing it needs, but prove nothing against its data
        // either; only the peer ahead and its snapshot make it behind.
        d.holds[2] = (peer(3), heights(1, 400));
        assert_eq!(d.behind(500).map(|b| b.lowest_kept), Some(600));
    }

    #[test]
    fn no_evidence_keeps_the_node_on_its_own_data() {
        // Nobody answered (a cluster restarting together).
        assert_eq!(Discovery::default().behind(500), None);
        // Only answers that do not say what they store: a version-1 build, empty nodes.
        let d = Discovery {
            offers: vec![(peer(1), offer(1000), 1)],
            holds: vec![(peer(1), Holds::Unsaid), (peer(2), Holds::Nothing)],
        };
        assert_eq!(d.behind(500), None);
        // Peers pruned past it, but no snapshot above it that checked.
        let d = Discovery {
            offers: vec![(peer(1), offer(400), 1)],
            holds: vec![(peer(1), heights(600, 1010))],
        };
        assert_eq!(d.behind(500), None);
    }

    #[test]
    fn the_best_offer_is_the_most_servable_above_the_floor_then_the_newest() {
        let d = Discovery {
            offers: vec![
                (peer(1), offer(900), 1),
                (peer(2), offer(1000), 2),
                (peer(3), offer(1000), 2),
                (peer(4), offer(300), 1),
            ],
            holds: vec![],
        };
        // Every peer can serve 300 (they keep older snapshots too).
        let (_, o, _, sources) = d.best(0).unwrap();
        assert_eq!(o.manifest.height, 300);
        assert_eq!(sources.len(), 4);
        // Above 300, 900 can be served by the peers of 900 and of 1000.
        let (_, o, _, sources) = d.best(300).unwrap();
        assert_eq!(o.manifest.height, 900);
        assert_eq!(sources, vec![peer(1), peer(2), peer(3)]);
        // Above 950 only 1000 remains.
        let (peer2, o, f, sources) = d.best(950).unwrap();
        assert_eq!((peer2, o.manifest.height, f), (peer(3), 1000, 2));
        assert_eq!(sources, vec![peer(2), peer(3)]);
        assert!(d.best(1000).is_none());
    }
}
