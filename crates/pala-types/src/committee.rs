//! Committees of a session (D-16) and vote counting (D-9).

use crate::codec::{put_bytes, Decode, DecodeError, Encode, Reader};
use crate::crypto::{PublicKey, Signature, SignerBitmap};
use crate::ids::{Epoch, NodeId, Session};

/// How votes are weighed (D-9).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum VoteCounting {
    /// One vote per seat.
    #[default]
    Seat,
    /// Weighted by stake.
    Stake,
}

/// A voter or proposer of a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Consensus id (derived from the key).
    pub id: NodeId,
    /// Consensus public key.
    pub public_key: PublicKey,
    /// Proof of possession of the secret key (D-8), checked when the committee is installed.
    pub proof_of_possession: Signature,
    /// Stake, used by [`VoteCounting::Stake`].
    pub stake: u64,
    /// Network address "host:port" (proposers; empty for voters).
    pub address: String,
}

impl Member {
    /// A member with id derived from `public_key`.
    pub fn new(
        public_key: PublicKey,
        proof_of_possession: Signature,
        stake: u64,
        address: impl Into<String>,
    ) -> Self {
        Member {
            id: public_key.node_id(),
            public_key,
            proof_of_possession,
            stake,
            address: address.into(),
        }
    }
}

/// The ordered proposer and voter lists of one session (D-16). The order defines the
/// indexes in notarizations and the primary rotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committee {
    /// The session this committee serves.
    pub session: Session,
    /// Ordered proposers.
    pub proposers: Vec<Member>,
    /// Ordered voters.
    pub voters: Vec<Member>,
    /// Vote counting scheme.
    pub counting: VoteCounting,
}

impl Committee {
    /// Index of `id` in the voter list.
    pub fn voter_index(&self, id: &NodeId) -> Option<usize> {
        self.voters.iter().position(|m| m.id == *id)
    }

    /// Index of `id` in the proposer list.
    pub fn proposer_index(&self, id: &NodeId) -> Option<usize> {
        self.proposers.iter().position(|m| m.id == *id)
    }

    /// Whether `id` is a voter.
    pub fn is_voter(&self, id: &NodeId) -> bool {
        self.voter_index(id).is_some()
    }

    /// Whether `id` is a proposer.
    pub fn is_proposer(&self, id: &NodeId) -> bool {
        self.proposer_index(id).is_some()
    }

    /// Index of the primary proposer of `epoch`: `(E − 1) mod |proposers|`.
    pub fn primary_index(&self, epoch: Epoch) -> usize {
        (epoch.e.saturating_sub(1) as usize) % self.proposers.len().max(1)
    }

    /// The primary proposer of `epoch`.
    pub fn primary(&self, epoch: Epoch) -> &Member {
        &self.proposers[self.primary_index(epoch)]
    }

    /// Total voting weight W.
    pub fn total_weight(&self) -> u64 {
        match self.counting {
            // Checked on every vote and notarization: no walk over the list.
            VoteCounting::Seat => self.voters.len() as u64,
            VoteCounting::Stake => self.voters.iter().map(|m| m.stake).sum(),
        }
    }

    /// The quorum `ceil(2W/3)` in integer arithmetic (D-9).
    pub fn quorum(&self) -> u64 {
        (2 * self.total_weight()).div_ceil(3)
    }

    /// Weight of the voters in `signers` (D-9); zero if the bitmap does not match the list.
    pub fn weight(&self, signers: &SignerBitmap) -> u64 {
        if signers.len() != self.voters.len() {
            return 0;
        }
        match self.counting {
            VoteCounting::Seat => signers.count() as u64,
            VoteCounting::Stake => signers.iter().map(|i| self.voters[i].stake).sum(),
        }
    }

    /// Weight of a set of distinct voter ids; unknown ids and duplicates count nothing.
    pub fn weight_of_ids<'a>(&self, ids: impl IntoIterator<Item = &'a NodeId>) -> u64 {
        let mut set = SignerBitmap::new(self.voters.len());
        for id in ids {
            if let Some(i) = self.voter_index(id) {
                set.insert(i);
            }
        }
        self.weight(&set)
    }

    /// Whether `signers` passes the quorum.
    pub fn is_quorum(&self, signers: &SignerBitmap) -> bool {
        signers.len() == self.voters.len()
            && self.weight(signers) >= self.quorum()
            && self.quorum() > 0
    }
}

impl Encode for Member {
    fn encode(&self, out: &mut Vec<u8>) {
        self.public_key.encode(out);
        self.proof_of_possession.encode(out);
        self.stake.encode(out);
        put_bytes(out, self.address.as_bytes());
    }
}

impl Decode for Member {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let public_key = PublicKey::decode(r)?;
        let proof_of_possession = Signature::decode(r)?;
        let stake = r.u64("stake")?;
        let address =
            String::from_utf8(r.bytes("address")?.to_vec()).map_err(|_| DecodeError::Invalid {
                what: "address",
                detail: "not UTF-8".into(),
            })?;
        Ok(Member::new(public_key, proof_of_possession, stake, address))
    }
}

impl Encode for Committee {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.session.to_le_bytes());
        out.push(match self.counting {
            VoteCounting::Seat => 0,
            VoteCounting::Stake => 1,
        });
        crate::codec::put_seq(out, &self.proposers);
        crate::codec::put_seq(out, &self.voters);
    }
}

impl Decode for Committee {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let session = r.u32("session")?;
        let counting = match r.u8("vote counting")? {
            0 => VoteCounting::Seat,
            1 => VoteCounting::Stake,
            v => {
                return Err(DecodeError::Invalid {
                    what: "vote counting",
                    detail: format!("{v}"),
                })
            }
        };
        let proposers = r.seq(11, "proposers")?;
        let voters: Vec<Member> = r.seq(11, "voters")?;
        if voters.len() > u16::MAX as usize || proposers.len() > u16::MAX as usize {
            return Err(DecodeError::Invalid {
                what: "committee",
                detail: "more than 65535 members".into(),
            });
        }
        Ok(Committee {
            session,
            proposers,
            voters,
            counting,
        })
    }
}

/// Prefix of a committee-change transaction: the transaction is this tag followed by
/// the canonical encoding of the next session's [`Committee`] (section 0.1 item 11).
pub const COMMITTEE_CHANGE_TAG: &[u8] = b"PALA/COMMITTEE-CHANGE/1\0";

/// Builds a committee-change transaction.
pub fn committee_change_tx(c: &Committee) -> Vec<u8> {
    let mut tx = COMMITTEE_CHANGE_TAG.to_vec();
    c.encode(&mut tx);
    tx
}

/// `None` if `tx` is not a committee-change transaction; otherwise the decoded committee
/// or why it does not decode.
pub fn parse_committee_change(tx: &[u8]) -> Option<Result<Committee, DecodeError>> {
    tx.strip_prefix(COMMITTEE_CHANGE_TAG)
        .map(Committee::from_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(i: u8, stake: u64) -> Member {
        Member::new(PublicKey(vec![i; 4]), Signature(vec![]), stake, "")
    }

    #[test]
    fn t13_seat_and_stake_counting() {
        let mut c = Committee {
            session: 1,
            proposers: vec![member(100, 1), member(101, 1)],
            voters: (0..4).map(|i| member(i, 1 + i as u64)).collect(),
            counting: VoteCounting::Seat,
        };
        assert_eq!(c.quorum(), 3); // N = 4 = 3f+1, f = 1 -> 2f+1
        let mut b = SignerBitmap::new(4);
        b.insert(0);
        b.insert(1);
        assert!(!c.is_quorum(&b));
        b.insert(3);
        assert!(c.is_quorum(&b));
        c.counting = VoteCounting::Stake; // stakes 1,2,3,4: W = 10, q = 7
        assert_eq!(c.quorum(), 7);
        assert_eq!(c.weight(&b), 7);
        assert!(c.is_quorum(&b));
        let ids = [c.voters[3].id, c.voters[3].id, NodeId([9; 20])];
        assert_eq!(
            c.weight_of_ids(ids.iter()),
            4,
            "duplicates and unknown ids count nothing"
        );
        assert_eq!(c.primary(Epoch::new(1, 1)).id, c.proposers[0].id);
        assert_eq!(c.primary(Epoch::new(1, 2)).id, c.proposers[1].id);
        assert_eq!(c.primary(Epoch::new(1, 3)).id, c.proposers[0].id);
        assert!(
            !c.is_quorum(&SignerBitmap::new(3)),
            "bitmap of the wrong length never passes"
        );
    }

    #[test]
    fn committee_round_trip() {
        let c = Committee {
            session: 3,
            proposers: vec![member(1, 5)],
            voters: vec![member(2, 7), member(3, 8)],
            counting: VoteCounting::Stake,
        };
        assert_eq!(Committee::from_bytes(&c.to_bytes()).unwrap(), c);
    }
}
