//! The typed records stored in the log and their payload encodings.
//!
//! Payloads reuse the canonical encodings of `pala-types`, so a block's stored bytes are
//! exactly its wire bytes and hash input: a reader can hand them to the network or hash
//! them without re-encoding.

use pala_types::codec::{Decode, DecodeError, Encode, Reader};
use pala_types::{
    Block, BlockSn, ClockNotarization, Committee, Epoch, Hash, Notarization, Session,
};
use std::sync::Arc;

/// Type codes of records on disk. Zero is never used so that a zero-filled (torn) region
/// can never look like a record header.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum RecordKind {
    /// A block (canonical block encoding).
    Block = 1,
    /// A notarization; the latest record for an sn is the one the index serves.
    Notarization = 2,
    /// The local epoch with the clock notarization that proves it.
    EpochStatus = 3,
    /// A clock notarization, indexed by its epoch.
    ClockNotarization = 4,
    /// The highest `s` this node voted for in an epoch.
    VoteGuard = 5,
    /// The highest epoch this node signed a clock message for.
    ClockGuard = 6,
    /// The finalized head.
    FinalizedHead = 7,
    /// The stop-block height of a session.
    StopBlock = 8,
    /// A committee installed by a reconfiguration.
    Committee = 9,
}

/// Type code of the internal batch-commit marker (never exposed as a [`Record`]).
pub(crate) const COMMIT_KIND: u8 = 0xC0;

impl RecordKind {
    /// Maps a type code to a kind; `None` for codes this version does not know.
    pub fn from_code(code: u8) -> Option<RecordKind> {
        Some(match code {
            1 => RecordKind::Block,
            2 => RecordKind::Notarization,
            3 => RecordKind::EpochStatus,
            4 => RecordKind::ClockNotarization,
            5 => RecordKind::VoteGuard,
            6 => RecordKind::ClockGuard,
            7 => RecordKind::FinalizedHead,
            8 => RecordKind::StopBlock,
            9 => RecordKind::Committee,
            _ => return None,
        })
    }

    /// The on-disk type code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// A short lowercase name for reports.
    pub fn name(self) -> &'static str {
        match self {
            RecordKind::Block => "block",
            RecordKind::Notarization => "notarization",
            RecordKind::EpochStatus => "epoch-status",
            RecordKind::ClockNotarization => "clock-notarization",
            RecordKind::VoteGuard => "vote-guard",
            RecordKind::ClockGuard => "clock-guard",
            RecordKind::FinalizedHead => "finalized-head",
            RecordKind::StopBlock => "stop-block",
            RecordKind::Committee => "committee",
        }
    }

    /// Every kind, in code order.
    pub const ALL: [RecordKind; 9] = [
        RecordKind::Block,
        RecordKind::Notarization,
        RecordKind::EpochStatus,
        RecordKind::ClockNotarization,
        RecordKind::VoteGuard,
        RecordKind::ClockGuard,
        RecordKind::FinalizedHead,
        RecordKind::StopBlock,
        RecordKind::Committee,
    ];
}

/// The local epoch `L` and, unless it was entered by reconfiguration, the clock
/// notarization that proves it (P-1, P-2, section 0.1 item 8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochStatus {
    /// The local epoch.
    pub epoch: Epoch,
    /// `cnota(epoch)`; `None` for `(S,1)` entered by reconfiguration or genesis.
    pub clock: Option<ClockNotarization>,
}

impl Encode for EpochStatus {
    fn encode(&self, out: &mut Vec<u8>) {
        self.epoch.encode(out);
        match &self.clock {
            None => out.push(0),
            Some(c) => {
                out.push(1);
                c.encode(out);
            }
        }
    }
}

impl Decode for EpochStatus {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let epoch = Epoch::decode(r)?;
        let clock = if r.bool("epoch status has clock notarization")? {
            Some(ClockNotarization::decode(r)?)
        } else {
            None
        };
        Ok(EpochStatus { epoch, clock })
    }
}

/// One durable record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A block. Stored before any vote for it leaves the node (V-4).
    Block(Arc<Block>),
    /// A notarization. A later record for the same sn replaces the earlier one in the
    /// index: the caller decides what "better" means and only writes improvements.
    Notarization(Notarization),
    /// The local epoch with its proof. The index keeps the highest epoch ever written, so
    /// a stale write cannot regress it (section 0.1 item 8).
    EpochStatus(EpochStatus),
    /// A clock notarization for its epoch.
    ClockNotarization(ClockNotarization),
    /// The voter is about to vote for `(epoch, s)`; must be durable before the vote is sent
    /// (section 0.1 item 7). The index keeps the maximum `s` per epoch.
    VoteGuard {
        /// The epoch voted in.
        epoch: Epoch,
        /// The serial voted for.
        s: u32,
    },
    /// The voter is about to sign a clock message for this epoch; the index keeps the maximum.
    ClockGuard(Epoch),
    /// The finalized head moved to this sn. The index keeps the maximum: finality never
    /// moves back.
    FinalizedHead(BlockSn),
    /// The stop block of `session` is at `height` (C-1).
    StopBlock {
        /// The session.
        session: Session,
        /// Height of its stop block.
        height: u64,
    },
    /// The committee of a session, installed from a committee-change transaction or the
    /// genesis schedule (C-3). Only the genesis file can rebuild the genesis committee and
    /// the schedule; a committee from a transaction exists nowhere else once its blocks are
    /// pruned. The index keeps the latest record per session.
    Committee(Committee),
}

impl Record {
    /// The record's kind.
    pub fn kind(&self) -> RecordKind {
        match self {
            Record::Block(_) => RecordKind::Block,
            Record::Notarization(_) => RecordKind::Notarization,
            Record::EpochStatus(_) => RecordKind::EpochStatus,
            Record::ClockNotarization(_) => RecordKind::ClockNotarization,
            Record::VoteGuard { .. } => RecordKind::VoteGuard,
            Record::ClockGuard(_) => RecordKind::ClockGuard,
            Record::FinalizedHead(_) => RecordKind::FinalizedHead,
            Record::StopBlock { .. } => RecordKind::StopBlock,
            Record::Committee(_) => RecordKind::Committee,
        }
    }

    /// Appends the payload (without kind byte) to `out`.
    pub fn encode_payload(&self, out: &mut Vec<u8>) {
        match self {
            Record::Block(b) => b.encode(out),
            Record::Notarization(n) => n.encode(out),
            Record::EpochStatus(s) => s.encode(out),
            Record::ClockNotarization(c) => c.encode(out),
            Record::VoteGuard { epoch, s } => {
                epoch.encode(out);
                out.extend_from_slice(&s.to_le_bytes());
            }
            Record::ClockGuard(e) => e.encode(out),
            Record::FinalizedHead(sn) => sn.encode(out),
            Record::StopBlock { session, height } => {
                out.extend_from_slice(&session.to_le_bytes());
                out.extend_from_slice(&height.to_le_bytes());
            }
            Record::Committee(c) => c.encode(out),
        }
    }

    /// Decodes a payload of the given kind; it must span all of `payload`.
    pub fn decode_payload(kind: RecordKind, payload: &[u8]) -> Result<Record, DecodeError> {
        let mut r = Reader::new(payload);
        let rec = match kind {
            RecordKind::Block => Record::Block(Arc::new(Block::decode(&mut r)?)),
            RecordKind::Notarization => Record::Notarization(Notarization::decode(&mut r)?),
            RecordKind::EpochStatus => Record::EpochStatus(EpochStatus::decode(&mut r)?),
            RecordKind::ClockNotarization => {
                Record::ClockNotarization(ClockNotarization::decode(&mut r)?)
            }
            RecordKind::VoteGuard => Record::VoteGuard {
                epoch: Epoch::decode(&mut r)?,
                s: r.u32("vote guard s")?,
            },
            RecordKind::ClockGuard => Record::ClockGuard(Epoch::decode(&mut r)?),
            RecordKind::FinalizedHead => Record::FinalizedHead(BlockSn::decode(&mut r)?),
            RecordKind::StopBlock => Record::StopBlock {
                session: r.u32("stop block session")?,
                height: r.u64("stop block height")?,
            },
            RecordKind::Committee => Record::Committee(Committee::decode(&mut r)?),
        };
        r.finish()?;
        Ok(rec)
    }

    /// What the in-memory index needs from this record, taken from the typed value so the
    /// write path never re-decodes or re-hashes what it just encoded.
    pub(crate) fn index_op(&self) -> IndexOp {
        match self {
            Record::Block(b) => IndexOp::Block(BlockMeta::of(b)),
            Record::Notarization(n) => IndexOp::Notarization {
                sn: n.sn,
                block_hash: n.block_hash,
            },
            Record::EpochStatus(s) => IndexOp::EpochStatus(s.epoch),
            Record::ClockNotarization(c) => IndexOp::ClockNotarization(c.epoch),
            Record::VoteGuard { epoch, s } => IndexOp::VoteGuard {
                epoch: *epoch,
                s: *s,
            },
            Record::ClockGuard(e) => IndexOp::ClockGuard(*e),
            Record::FinalizedHead(sn) => IndexOp::FinalizedHead(*sn),
            Record::StopBlock { session, height } => IndexOp::StopBlock {
                session: *session,
                height: *height,
            },
            Record::Committee(c) => IndexOp::Committee(c.session),
        }
    }
}

/// `u8 kind ‖ payload`, so a `Record` can travel on its own (for example to a test oracle).
impl Encode for Record {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.kind().code());
        self.encode_payload(out);
    }
}

impl Decode for Record {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let code = r.u8("record kind")?;
        let kind = RecordKind::from_code(code).ok_or(DecodeError::UnknownType(code))?;
        let rest = r.take(r.remaining(), "record payload")?;
        Record::decode_payload(kind, rest)
    }
}

/// The header fields of a stored block the index keeps in memory.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct BlockMeta {
    pub sn: BlockSn,
    pub hash: Hash,
    pub parent_sn: BlockSn,
    pub parent_hash: Hash,
    pub height: u64,
}

impl BlockMeta {
    pub fn of(b: &Block) -> BlockMeta {
        BlockMeta {
            sn: b.sn(),
            hash: b.hash(),
            parent_sn: b.parent_sn(),
            parent_hash: b.header.parent_hash,
            height: b.height(),
        }
    }
}

/// The index update a record causes.
#[derive(Copy, Clone, Debug)]
pub(crate) enum IndexOp {
    Block(BlockMeta),
    Notarization { sn: BlockSn, block_hash: Hash },
    EpochStatus(Epoch),
    ClockNotarization(Epoch),
    VoteGuard { epoch: Epoch, s: u32 },
    ClockGuard(Epoch),
    FinalizedHead(BlockSn),
    StopBlock { session: Session, height: u64 },
    Committee(Session),
}
