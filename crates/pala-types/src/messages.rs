//! Protocol messages (D-10..D-15, W-5) and their canonical encodings.

use crate::block::Block;
use crate::codec::{put_seq, Decode, DecodeError, Encode, Reader};
use crate::crypto::Signature;
use crate::ids::{BlockSn, Epoch, Hash, NodeId, Session};
// Kept here as well so `messages::Notarization` names what it always did.
pub use crate::notarization::{ClockNotarization, Notarization};
use std::sync::Arc;

/// `{proposer_id, sig_P(block_hash), block}` (D-10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// The primary proposer that signed it.
    pub proposer: NodeId,
    /// Signature over the block hash under [`crate::Domain::Proposal`].
    pub signature: Signature,
    /// The proposed block.
    pub block: Arc<Block>,
}

/// `{voter_id, sig_V(block_hash), sn, block_hash}` (D-11).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vote {
    /// The voter.
    pub voter: NodeId,
    /// Block sequence number (for routing).
    pub sn: BlockSn,
    /// The voted block hash.
    pub block_hash: Hash,
    /// Signature over the block hash under [`crate::Domain::Vote`].
    pub signature: Signature,
}

/// `clock(v, e)`: voter `v` asks to enter epoch `e` (D-13).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClockMessage {
    /// The voter.
    pub voter: NodeId,
    /// The requested epoch.
    pub epoch: Epoch,
    /// Signature over `epoch.signing_bytes()` under [`crate::Domain::Clock`].
    pub signature: Signature,
}

/// A node's status / heartbeat (D-15).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Status {
    /// Freshest notarized head.
    pub head: BlockSn,
    /// Height of the head block.
    pub head_height: u64,
    /// Local epoch.
    pub epoch: Epoch,
    /// Finalized head.
    pub finalized: BlockSn,
}

/// A block with the notarization that proves it (the N-10 path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotarizedBlock {
    /// The block.
    pub block: Arc<Block>,
    /// Its notarization (absent only for genesis / pre-PaLa blocks).
    pub notarization: Option<Notarization>,
}

/// Response to `get-epoch` (W-7.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochResponse {
    /// The requester's session the answer is about.
    pub session: Session,
    /// The newest clock notarization known for that session, if any.
    pub clock: Option<ClockNotarization>,
    /// True if the responder has left that session (the answer is its last epoch).
    pub is_last: bool,
    /// When `is_last`: the notarized chain from that session's stop block to the block
    /// whose notarization finalized it, if the responder still has it (C-9). It lets a
    /// node left in the session finalize the stop block when that chain is not part of
    /// the finalized chain (C-7c dropped it), without trusting the next committee.
    pub stop_proof: Vec<NotarizedBlock>,
}

/// `get-fresher-head` (W-7.3): the requester's head and the `(height, hash)` of the blocks
/// from its head back to its finalized block (newest first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FresherHeadRequest {
    /// Requester's head.
    pub head: BlockSn,
    /// Blocks the requester knows, newest first.
    pub known: Vec<(u64, Hash)>,
}

/// Answer to [`FresherHeadRequest`]: consecutive notarized blocks after the newest common
/// block, or (when nothing in common) the responder's finalized head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FresherHeadResponse {
    /// Notarized blocks in chain order.
    pub blocks: Vec<NotarizedBlock>,
    /// When `blocks` is empty: the responder's finalized head `(height, hash, sn)`.
    pub finalized: Option<(u64, Hash, BlockSn)>,
}

/// Every message of the protocol, with its W-5 type code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// 0x12
    Proposal(Proposal),
    /// 0x13
    Vote(Vote),
    /// 0x14
    Notarization(Notarization),
    /// 0x15
    Clock(ClockMessage),
    /// 0x16
    ClockNotarization(ClockNotarization),
    /// 0x20
    UnnotarizedProposals(Vec<Proposal>),
    /// 0x21
    Status(Status),
    /// 0x22
    GetEpoch(Epoch),
    /// 0x23
    Epoch(EpochResponse),
    /// 0x27
    GetFresherHead(FresherHeadRequest),
    /// 0x28
    FresherHead(FresherHeadResponse),
}

impl Message {
    /// The W-5 type code.
    pub fn type_code(&self) -> u8 {
        match self {
            Message::Proposal(_) => 0x12,
            Message::Vote(_) => 0x13,
            Message::Notarization(_) => 0x14,
            Message::Clock(_) => 0x15,
            Message::ClockNotarization(_) => 0x16,
            Message::UnnotarizedProposals(_) => 0x20,
            Message::Status(_) => 0x21,
            Message::GetEpoch(_) => 0x22,
            Message::Epoch(_) => 0x23,
            Message::GetFresherHead(_) => 0x27,
            Message::FresherHead(_) => 0x28,
        }
    }

    /// A short name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Proposal(_) => "proposal",
            Message::Vote(_) => "vote",
            Message::Notarization(_) => "notarization",
            Message::Clock(_) => "clock",
            Message::ClockNotarization(_) => "clock_notarization",
            Message::UnnotarizedProposals(_) => "unnotarized_proposals",
            Message::Status(_) => "status",
            Message::GetEpoch(_) => "get_epoch",
            Message::Epoch(_) => "epoch",
            Message::GetFresherHead(_) => "get_fresher_head",
            Message::FresherHead(_) => "fresher_head",
        }
    }

    /// Encodes the payload only (no type byte).
    pub fn encode_payload(&self, out: &mut Vec<u8>) {
        match self {
            Message::Proposal(m) => m.encode(out),
            Message::Vote(m) => m.encode(out),
            Message::Notarization(m) => m.encode(out),
            Message::Clock(m) => m.encode(out),
            Message::ClockNotarization(m) => m.encode(out),
            Message::UnnotarizedProposals(m) => put_seq(out, m),
            Message::Status(m) => m.encode(out),
            Message::GetEpoch(m) => m.encode(out),
            Message::Epoch(m) => m.encode(out),
            Message::GetFresherHead(m) => m.encode(out),
            Message::FresherHead(m) => m.encode(out),
        }
    }

    /// Decodes a payload of type `code`; the payload must be consumed exactly.
    pub fn decode_payload(code: u8, payload: &[u8]) -> Result<Message, DecodeError> {
        let mut r = Reader::new(payload);
        let m = match code {
            0x12 => Message::Proposal(Proposal::decode(&mut r)?),
            0x13 => Message::Vote(Vote::decode(&mut r)?),
            0x14 => Message::Notarization(Notarization::decode(&mut r)?),
            0x15 => Message::Clock(ClockMessage::decode(&mut r)?),
            0x16 => Message::ClockNotarization(ClockNotarization::decode(&mut r)?),
            0x20 => Message::UnnotarizedProposals(r.seq(60, "proposals")?),
            0x21 => Message::Status(Status::decode(&mut r)?),
            0x22 => Message::GetEpoch(Epoch::decode(&mut r)?),
            0x23 => Message::Epoch(EpochResponse::decode(&mut r)?),
            0x27 => Message::GetFresherHead(FresherHeadRequest::decode(&mut r)?),
            0x28 => Message::FresherHead(FresherHeadResponse::decode(&mut r)?),
            c => return Err(DecodeError::UnknownType(c)),
        };
        r.finish()?;
        Ok(m)
    }
}

/// `u8 type ‖ payload`.
impl Encode for Message {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.type_code());
        self.encode_payload(out);
    }
}

impl Decode for Message {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let code = r.u8("message type")?;
        let rest = r.take(r.remaining(), "payload")?;
        Message::decode_payload(code, rest)
    }
}

impl Encode for Proposal {
    fn encode(&self, out: &mut Vec<u8>) {
        self.proposer.encode(out);
        self.signature.encode(out);
        self.block.encode(out);
    }
}
impl Decode for Proposal {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Proposal {
            proposer: NodeId::decode(r)?,
            signature: Signature::decode(r)?,
            block: Arc::new(Block::decode(r)?),
        })
    }
}

impl Encode for Vote {
    fn encode(&self, out: &mut Vec<u8>) {
        self.voter.encode(out);
        self.sn.encode(out);
        self.block_hash.encode(out);
        self.signature.encode(out);
    }
}
impl Decode for Vote {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Vote {
            voter: NodeId::decode(r)?,
            sn: BlockSn::decode(r)?,
            block_hash: Hash::decode(r)?,
            signature: Signature::decode(r)?,
        })
    }
}

impl Encode for ClockMessage {
    fn encode(&self, out: &mut Vec<u8>) {
        self.voter.encode(out);
        self.epoch.encode(out);
        self.signature.encode(out);
    }
}
impl Decode for ClockMessage {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ClockMessage {
            voter: NodeId::decode(r)?,
            epoch: Epoch::decode(r)?,
            signature: Signature::decode(r)?,
        })
    }
}

impl Encode for Status {
    fn encode(&self, out: &mut Vec<u8>) {
        self.head.encode(out);
        out.extend_from_slice(&self.head_height.to_le_bytes());
        self.epoch.encode(out);
        self.finalized.encode(out);
    }
}
impl Decode for Status {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Status {
            head: BlockSn::decode(r)?,
            head_height: r.u64("head height")?,
            epoch: Epoch::decode(r)?,
            finalized: BlockSn::decode(r)?,
        })
    }
}

impl Encode for NotarizedBlock {
    fn encode(&self, out: &mut Vec<u8>) {
        self.block.encode(out);
        match &self.notarization {
            None => out.push(0),
            Some(n) => {
                out.push(1);
                n.encode(out);
            }
        }
    }
}
impl Decode for NotarizedBlock {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let block = Arc::new(Block::decode(r)?);
        let notarization = if r.bool("has notarization")? {
            Some(Notarization::decode(r)?)
        } else {
            None
        };
        Ok(NotarizedBlock {
            block,
            notarization,
        })
    }
}

impl Encode for EpochResponse {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.session.to_le_bytes());
        out.push(self.clock.is_some() as u8);
        out.push(self.is_last as u8);
        if let Some(c) = &self.clock {
            c.encode(out);
        }
        put_seq(out, &self.stop_proof);
    }
}
impl Decode for EpochResponse {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let session = r.u32("session")?;
        let has = r.bool("has clock notarization")?;
        let is_last = r.bool("is last")?;
        let clock = if has {
            Some(ClockNotarization::decode(r)?)
        } else {
            None
        };
        let stop_proof = r.seq(60, "stop block proof")?;
        Ok(EpochResponse {
            session,
            clock,
            is_last,
            stop_proof,
        })
    }
}

impl Encode for (u64, Hash) {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_le_bytes());
        self.1.encode(out);
    }
}
impl Decode for (u64, Hash) {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok((r.u64("height")?, Hash::decode(r)?))
    }
}

impl Encode for FresherHeadRequest {
    fn encode(&self, out: &mut Vec<u8>) {
        self.head.encode(out);
        put_seq(out, &self.known);
    }
}
impl Decode for FresherHeadRequest {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(FresherHeadRequest {
            head: BlockSn::decode(r)?,
            known: r.seq(40, "known blocks")?,
        })
    }
}

impl Encode for FresherHeadResponse {
    fn encode(&self, out: &mut Vec<u8>) {
        put_seq(out, &self.blocks);
        match &self.finalized {
            None => out.push(0),
            Some((h, hash, sn)) => {
                out.push(1);
                out.extend_from_slice(&h.to_le_bytes());
                hash.encode(out);
                sn.encode(out);
            }
        }
    }
}
impl Decode for FresherHeadResponse {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let blocks = r.seq(60, "notarized blocks")?;
        let finalized = if r.bool("has finalized head")? {
            Some((r.u64("height")?, Hash::decode(r)?, BlockSn::decode(r)?))
        } else {
            None
        };
        Ok(FresherHeadResponse { blocks, finalized })
    }
}
