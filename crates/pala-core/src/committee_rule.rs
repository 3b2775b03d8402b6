//! C-1 as a pure rule: which committee serves session S+1. The core applies it as
//! finality reaches each block of S (`node/reconfiguration.rs`); a node joining by state
//! sync applies it to a proven chain of S's blocks (W-12a). One home, so both derive the
//! same committee from the same blocks.
//!
//! The committee of S+1 is the newest valid committee-change transaction
//! (`pala_types::committee::parse_committee_change`, checked by
//! [`crate::verify::validate_committee`]) in a block of S at or before its stop block
//! (`session_offset ≤ stop_offset`; section 0.1 item 11), else the genesis schedule's
//! committee for S+1, else S's members again.

use pala_types::{Block, Committee, Session, SignatureScheme};
use std::collections::BTreeMap;

/// Applies the committee-change transactions of `block` (finalized, in chain order) to
/// `latest`, the newest valid one of session `session` so far; returns how many were
/// invalid. Blocks of another session or after the stop block count for nothing.
pub fn note_committee_changes(
    latest: &mut Option<Committee>,
    block: &Block,
    session: Session,
    stop_offset: u32,
    scheme: &dyn SignatureScheme,
    network_id: u64,
) -> u32 {
    if stop_offset == 0
        || block.header.session_offset > stop_offset
        || block.sn().epoch.session != session
    {
        return 0;
    }
    let mut invalid = 0;
    for tx in &block.txs {
        let Some(parsed) = pala_types::committee::parse_committee_change(tx) else {
            continue;
        };
        match parsed {
            Ok(c) if crate::verify::validate_committee(scheme, &c, network_id).is_ok() => {
                *latest = Some(c)
            }
            _ => invalid += 1,
        }
    }
    invalid
}

/// The committee of session `s + 1` (C-1): `latest` (see [`note_committee_changes`]),
/// else the schedule's, else `current`'s members; its session is `s + 1` either way.
pub fn committee_after(
    s: Session,
    latest: Option<Committee>,
    schedule: &BTreeMap<Session, Committee>,
    current: &Committee,
) -> Committee {
    let mut next = latest
        .or_else(|| schedule.get(&(s + 1)).cloned())
        .unwrap_or_else(|| current.clone());
    next.session = s + 1;
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use pala_types::insecure::{InsecureTestScheme, InsecureTestSigner};
    use pala_types::{
        BlockHeader, BlockSn, ConsensusInfo, Domain, Epoch, Hash, Member, Signer, StateCommitment,
        VoteCounting,
    };

    const NET: u64 = 9;

    fn committee(scheme: &InsecureTestScheme, seeds: &[u64], session: Session) -> Committee {
        let member = |k: InsecureTestSigner| {
            let pop = k.sign(Domain::ProofOfPossession, NET, &k.public_key().0);
            Member::new(k.public_key().clone(), pop, 1, "")
        };
        Committee {
            session,
            proposers: vec![member(scheme.keypair(100))],
            voters: seeds.iter().map(|s| member(scheme.keypair(*s))).collect(),
            counting: VoteCounting::Seat,
        }
    }

    fn change(c: &Committee) -> Vec<u8> {
        pala_types::committee::committee_change_tx(c)
    }

    fn block(session: Session, offset: u32, txs: Vec<Vec<u8>>) -> Block {
        Block::new(
            BlockHeader {
                sn: BlockSn::at(Epoch::new(session, 1), offset),
                parent_sn: BlockSn::GENESIS,
                parent_hash: Hash::ZERO,
                height: u64::from(offset),
                session_offset: offset,
                timestamp_ms: 0,
                state: StateCommitment::NONE,
            },
            txs,
            ConsensusInfo::default(),
        )
    }

    #[test]
    fn the_newest_valid_change_at_or_before_the_stop_block_wins() {
        let scheme = InsecureTestScheme::new();
        let (a, b, c) = (
            committee(&scheme, &[1, 2, 3], 7),
            committee(&scheme, &[4, 5, 6], 7),
            committee(&scheme, &[7, 8, 9], 7),
        );
        let mut broken = committee(&scheme, &[1, 2], 7);
        broken.voters[1].proof_of_possession = broken.voters[0].proof_of_possession.clone();
        let mut latest = None;
        let note = |latest: &mut Option<Committee>, b: &Block| {
            note_committee_changes(latest, b, 2, 5, &scheme, NET)
        };
        assert_eq!(note(&mut latest, &block(2, 1, vec![change(&a)])), 0);
        // Later in the same block wins; an invalid one is counted and changes nothing.
        let txs = vec![change(&b), b"plain".to_vec(), change(&broken)];
        assert_eq!(note(&mut latest, &block(2, 3, txs)), 1);
        assert_eq!(latest.as_ref(), Some(&b));
        // After the stop block (offset 6 > 5), or in another session: ignored.
        assert_eq!(note(&mut latest, &block(2, 6, vec![change(&c)])), 0);
        assert_eq!(note(&mut latest, &block(3, 2, vec![change(&c)])), 0);
        assert_eq!(latest.as_ref(), Some(&b));
        // Undecodable committee bytes are invalid too.
        let mut garbage = pala_types::committee::COMMITTEE_CHANGE_TAG.to_vec();
        garbage.push(0xff);
        assert_eq!(note(&mut latest, &block(2, 5, vec![garbage])), 1);
        // Without reconfiguration nothing counts.
        let mut none = None;
        note_committee_changes(
            &mut none,
            &block(2, 1, vec![change(&a)]),
            2,
            0,
            &scheme,
            NET,
        );
        assert_eq!(none, None);

        let schedule: BTreeMap<Session, Committee> = [(3, c.clone())].into();
        let next = committee_after(2, latest, &schedule, &a);
        assert_eq!((next.session, &next.voters), (3, &b.voters));
        // No change: the schedule, then the same members.
        assert_eq!(committee_after(2, None, &schedule, &a).voters, c.voters);
        let same = committee_after(3, None, &schedule, &a);
        assert_eq!((same.session, &same.voters), (4, &a.voters));
    }
}
