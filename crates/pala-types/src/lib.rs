//! Identifiers, messages, committees and the canonical wire encoding of PaLa.
//!
//! Everything here is plain data plus bounds-checked encoding: decoding any byte string
//! returns a value or a [`DecodeError`], never a panic. The signature traits the protocol
//! core is written against live in [`crypto`]; [`insecure`] holds the fast test double.

#![warn(missing_docs)]

pub mod block;
pub mod codec;
pub mod committee;
pub mod crypto;
pub mod ids;
pub mod insecure;
pub mod messages;
pub mod notarization;

pub use block::{Block, BlockHeader, ConsensusInfo, StateCommitment};
pub use codec::{Decode, DecodeError, Encode, Reader};
pub use committee::{Committee, Member, VoteCounting};
pub use crypto::{
    BatchItem, Domain, DomainTag, PreparedKeys, PublicKey, QuorumItem, Signature, SignatureScheme,
    Signer, SignerBitmap,
};
pub use ids::{BlockSn, Epoch, Hash, NodeId, Session};
pub use messages::{
    ClockMessage, ClockNotarization, EpochResponse, FresherHeadRequest, FresherHeadResponse,
    Message, Notarization, NotarizedBlock, Proposal, Status, Vote,
};
