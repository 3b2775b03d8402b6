//! Serving block sync (W-7.3, `serve_fresher_head`): where an answer starts, where it
//! stops, and what it says when nothing is in common.

use crate::fixture::*;
use pala_core::*;
use pala_types::*;
use std::sync::Arc;

/// A node whose notarized chain is (1,1,1..6) with K = 2, so (1,1,4) is final and the
/// root: heights 0..3 are served from the archive, 4..6 from memory.
fn server(f: &Fixture) -> (Node, Arc<MemArchive>, Vec<Arc<Block>>) {
    let (n, archive, c) = f.synced_with_archive(2, 6);
    assert_eq!((n.head(), n.finalized()), (sn(1, 1, 6), sn(1, 1, 4)));
    (n, archive, c)
}

fn heights(r: &FresherHeadResponse) -> Vec<u64> {
    r.blocks.iter().map(|nb| nb.block.height()).collect()
}

fn ask(known: &[(u64, Hash)]) -> FresherHeadRequest {
    FresherHeadRequest {
        head: BlockSn::GENESIS,
        known: known.to_vec(),
    }
}

/// The answer starts right after the newest listed block that is on the server's chain
/// (its height and its hash), goes up in height order, from the archive and then from
/// memory, and holds at most `max_blocks`.
#[test]
fn w7_3_an_answer_starts_after_the_newest_common_block_and_keeps_to_the_limit() {
    let f = Fixture::new(2, 3, 2);
    let (n, archive, c) = server(&f);
    let serve = |known: &[(u64, Hash)], max| {
        serve_fresher_head(n.chain(), archive.as_ref(), &ask(known), max)
    };
    let bogus = Hash([7; 32]);
    let r = serve(&[(6, bogus), (5, c[4].hash())], 10);
    assert_eq!(
        heights(&r),
        [6],
        "height 6 with another hash is not in common"
    );
    assert_eq!(r.finalized, None);
    assert_eq!(heights(&serve(&[(2, c[1].hash())], 10)), [3, 4, 5, 6]);
    assert_eq!(heights(&serve(&[(2, c[1].hash())], 2)), [3, 4]);
    assert_eq!(heights(&serve(&[(0, f.genesis.hash())], 3)), [1, 2, 3]);
    assert!(serve(&[(2, c[1].hash())], 10)
        .blocks
        .iter()
        .all(|nb| nb.notarization.is_some()));
    let none = serve(&[(2, bogus), (5, bogus)], 10);
    assert!(none.blocks.is_empty());
    assert_eq!(
        none.finalized,
        Some((4, c[3].hash(), sn(1, 1, 4))),
        "nothing in common: the server names its finalized block (W-7.3)"
    );
}

/// An answer never carries a block without its notarization: it stops before an
/// archived block that lost it (C-9b/W-7.3: every synced block is checked with one).
#[test]
fn w7_3_an_answer_stops_before_a_block_without_its_notarization() {
    let f = Fixture::new(2, 3, 2);
    let (n, archive, c) = server(&f);
    archive.0.lock().unwrap().insert(
        3,
        NotarizedBlock {
            block: c[2].clone(),
            notarization: None,
        },
    );
    let r = serve_fresher_head(n.chain(), archive.as_ref(), &ask(&[(1, c[0].hash())]), 10);
    assert_eq!(heights(&r), [2]);
}
