//! The verifier's checks of sync answers (W-7): each block and the notarization sent with
//! it must be about the same block.

use crate::fixture::*;
use pala_core::*;
use pala_types::*;
use std::sync::Arc;

/// A block paired with a valid notarization of another block at the same sn (a sibling
/// the voters did notarize) is refused: the notarization must name the block's sn and
/// hash.
#[test]
fn a_block_sent_with_a_siblings_notarization_is_refused() {
    let f = Fixture::new(1, 3, 2);
    let b = f.block_with(&f.genesis, BlockSn::new(1, 1, 1), vec![], None, b"b");
    let sibling = f.block_with(&f.genesis, BlockSn::new(1, 1, 1), vec![], None, b"s");
    let answer = |block: &Arc<Block>, nota: Notarization| {
        Message::FresherHead(FresherHeadResponse {
            blocks: vec![NotarizedBlock {
                block: block.clone(),
                notarization: Some(nota),
            }],
            finalized: None,
        })
    };
    assert!(f.verifier.verify(answer(&b, f.nota(&b))).is_ok());
    assert_eq!(
        f.verifier.verify(answer(&b, f.nota(&sibling))).err(),
        Some(VerifyError::Mismatch)
    );
    let c = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 2);
    assert_eq!(
        f.verifier.verify(answer(&c[1], f.nota(&c[0]))).err(),
        Some(VerifyError::Mismatch),
        "a notarization of another sn"
    );
}

/// The notarizations a synced block embeds are checked like the block's own: one below
/// the quorum makes the whole answer invalid.
#[test]
fn a_synced_block_embedding_a_short_notarization_is_refused() {
    let f = Fixture::new(1, 3, 2);
    let c = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 2);
    let short = f.nota_by(&c[0], &[1]);
    let b3 = f.block(&c[1], BlockSn::new(1, 1, 3), vec![short], None);
    let good = f.block(&c[1], BlockSn::new(1, 1, 3), vec![f.nota(&c[0])], None);
    assert!(f.verifier.verify(fresher(&[&good], &f)).is_ok());
    assert!(f.verifier.verify(fresher(&[&b3], &f)).is_err());
}
