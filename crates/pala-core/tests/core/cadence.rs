//! The block cadence signal for drivers (N-3, issue 14): whether a block with
//! transactions waits for the K blocks that finalize it.

use crate::fixture::*;
use pala_core::*;
use pala_types::*;

#[test]
fn unfinalized_transactions_on_the_head_chain_are_seen_and_final_ones_are_not() {
    let f = Fixture::new(1, 3, 2);
    let e = Epoch::new(1, 1);
    let mut n = f.node(1);
    assert!(!n.carries_unfinalized_transactions(), "only genesis");
    // (1,1,1) carries transactions; (1,1,2) and (1,1,3) do not.
    let c = f.chain(std::slice::from_ref(&f.genesis), e, 1);
    let b2 = f.empty_block(&c[0], sn(1, 1, 2), vec![], None);
    let b3 = f.empty_block(&b2, sn(1, 1, 3), vec![f.nota(&c[0])], None);
    f.deliver(&mut n, 0, 0, fresher(&[&c[0], &b2], &f));
    assert_eq!(n.chain().finalized(), f.genesis.sn());
    assert!(
        n.carries_unfinalized_transactions(),
        "(1,1,1) below the head and not final"
    );
    // The notarization of (1,1,3) finalizes (1,1,1) (F-B, K = 2): what is above it is
    // empty, and the finalized block itself no longer counts.
    f.deliver(&mut n, 0, 0, fresher(&[&b3], &f));
    assert_eq!(n.chain().finalized(), sn(1, 1, 1));
    assert!(!n.carries_unfinalized_transactions());
    // An empty chain above genesis carries none.
    let mut m = f.node(1);
    let g = &f.genesis;
    let d1 = f.empty_block(g, sn(1, 1, 1), vec![], None);
    let d2 = f.empty_block(&d1, sn(1, 1, 2), vec![], None);
    f.deliver(&mut m, 0, 0, fresher(&[&d1, &d2], &f));
    assert_eq!(m.chain().head(), sn(1, 1, 2));
    assert!(!m.carries_unfinalized_transactions());
}

#[test]
fn the_primarys_own_unnotarized_blocks_with_transactions_count() {
    let f = Fixture::new(1, 3, 2);
    let mut p = Solo::new(f.node(0));
    p.input(Input::Start);
    p.advance(2 * f.cfg.voter_timeout_ms + 5); // N-2 step 5, then blocks with "tx"
    let own: Vec<BlockSn> = p.node.unnotarized_proposals().collect();
    assert!(!own.is_empty());
    assert!(
        own.iter().all(|s| s.epoch == Epoch::new(1, 1) && s.s >= 1),
        "{own:?}"
    );
    assert_eq!(p.node.chain().head(), f.genesis.sn(), "none notarized");
    assert!(p.node.carries_unfinalized_transactions());
}
