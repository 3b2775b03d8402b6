//! Notarizations (D-12) and clock notarizations (D-14): the aggregate certificates that
//! blocks carry (I-1, C-7) and messages convey. A module of their own because both blocks
//! and messages depend on them, and they on neither.

use crate::codec::{Decode, DecodeError, Encode, Reader};
use crate::crypto::{Signature, SignerBitmap};
use crate::ids::{BlockSn, Epoch, Hash};

/// A notarization of a block (D-12): aggregate of the proposer's and a quorum of voters'
/// signatures over the block hash. The signer set is a bitmap over the session's voter list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notarization {
    /// Notarized block's sn.
    pub sn: BlockSn,
    /// Notarized block's hash.
    pub block_hash: Hash,
    /// Index of the aggregating proposer in the session's proposer list.
    pub proposer_idx: u16,
    /// Included voters.
    pub signers: SignerBitmap,
    /// Aggregate signature.
    pub signature: Signature,
}

impl Notarization {
    /// Number of included voters.
    pub fn vote_count(&self) -> usize {
        self.signers.count()
    }
}

/// `cnota(e)`: aggregate of a quorum of clock messages for `e` (D-14).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClockNotarization {
    /// The epoch it proves.
    pub epoch: Epoch,
    /// Index of the aggregating proposer.
    pub proposer_idx: u16,
    /// Included voters.
    pub signers: SignerBitmap,
    /// Aggregate signature.
    pub signature: Signature,
}

impl Encode for Notarization {
    fn encode(&self, out: &mut Vec<u8>) {
        self.sn.encode(out);
        self.block_hash.encode(out);
        out.extend_from_slice(&self.proposer_idx.to_le_bytes());
        self.signers.encode(out);
        self.signature.encode(out);
    }
}
impl Decode for Notarization {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Notarization {
            sn: BlockSn::decode(r)?,
            block_hash: Hash::decode(r)?,
            proposer_idx: r.u16("proposer index")?,
            signers: SignerBitmap::decode(r)?,
            signature: Signature::decode(r)?,
        })
    }
}

impl Encode for ClockNotarization {
    fn encode(&self, out: &mut Vec<u8>) {
        self.epoch.encode(out);
        out.extend_from_slice(&self.proposer_idx.to_le_bytes());
        self.signers.encode(out);
        self.signature.encode(out);
    }
}
impl Decode for ClockNotarization {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ClockNotarization {
            epoch: Epoch::decode(r)?,
            proposer_idx: r.u16("proposer index")?,
            signers: SignerBitmap::decode(r)?,
            signature: Signature::decode(r)?,
        })
    }
}
