//! The chain view of `GET /chain` (and of the page at `/ui`, which draws it): the block
//! tree the core keeps above its finalized head, as the slides draw PaLa.
//!
//! The view is built on demand: the HTTP handler asks the consensus stage, which builds
//! it from the core's read-only accessors ([`tree_view`] does the tree, the stage adds
//! the node's epoch, role, peers and [`EpochLog`]), so nothing is paid while nobody
//! watches. The handler then adds the finalized blocks below the tree's root from storage
//! ([`block_view`] of each, all finalized).
//!
//! What each block is marked with, by the spec's rules:
//! - *notarized*: it and all its ancestors are notarized, the sense in which the
//!   notarized set counts (FC-1, NA-4; genesis and pre-PaLa blocks count as notarized,
//!   D-3);
//! - *finalized*: on the finalized chain, at or below the finalized head (F-B);
//! - *freshest*: on the freshest notarized chain, the path from `head` down (FC-2);
//! - *timeout*: `s == 1` with its parent in an earlier epoch, the first block after an
//!   epoch change (D-5, E-12), the first block of a session included;
//! - *stop*: the block whose `session_offset` is the stop offset, the last block of its
//!   session's committee (C-1);
//! - *session start*: the first block of a session, `(S+1, 1, 1)` on a block of `S` (C-4);
//! - *K window*: not notarized and proposed in the local epoch `L`: the at most K
//!   outstanding proposals of N-3 (the primary's own proposals, N-4, are among them).
//!
//! The tree keeps at most [`MAX_TREE_BLOCKS`] blocks (the newest by height, and its root);
//! the epoch log the last [`EPOCH_CHANGES_KEPT`] changes.

use pala_core::chain::Chain;
use pala_types::{Block, BlockSn, ClockNotarization, Committee, Epoch, NodeId};
use serde::Serialize;
use std::collections::{BTreeSet, VecDeque};

/// Most blocks of the block tree in one view: the newest by height, and the root.
pub const MAX_TREE_BLOCKS: usize = 256;
/// Epoch changes kept by [`EpochLog`].
pub const EPOCH_CHANGES_KEPT: usize = 16;

/// `(session, e, s)`, as JSON `[session, e, s]`.
pub type SnJson = (u32, u32, u32);
/// `(session, e)`, as JSON `[session, e]` (the form of `/status`).
pub type EpochJson = (u32, u32);

fn sn_json(sn: BlockSn) -> SnJson {
    (sn.epoch.session, sn.epoch.e, sn.s)
}

fn epoch_json(e: Epoch) -> EpochJson {
    (e.session, e.e)
}

/// One block as the page draws it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BlockView {
    /// `(session, epoch, s)`.
    pub sn: SnJson,
    /// Height (genesis is 0).
    pub height: u64,
    /// The parent's `(session, epoch, s)`.
    pub parent: SnJson,
    /// The first 8 hex digits of the block hash.
    pub hash: String,
    /// Transactions carried.
    pub txs: usize,
    /// It and all its ancestors are notarized (FC-1, NA-4).
    pub notarized: bool,
    /// On the finalized chain (F-B).
    pub finalized: bool,
    /// On the freshest notarized chain (FC-2).
    pub freshest: bool,
    /// The first block after an epoch change (D-5, E-12).
    pub timeout: bool,
    /// The stop block of its session (C-1).
    pub stop: bool,
    /// The first block of a session (C-4).
    pub session_start: bool,
    /// An unnotarized proposal of the local epoch (N-3, the K window).
    pub k_window: bool,
}

/// The block `b` with the marks that follow from the block alone (timeout, stop, session
/// start) and the given chain marks.
pub fn block_view(b: &Block, stop_offset: u32, notarized: bool, finalized: bool) -> BlockView {
    let (sn, parent) = (b.sn(), b.parent_sn());
    let pala = sn.is_pala();
    BlockView {
        sn: sn_json(sn),
        height: b.height(),
        parent: sn_json(parent),
        hash: b.hash().to_string()[..8].to_string(),
        txs: b.txs.len(),
        notarized: notarized || !pala,
        finalized,
        freshest: finalized,
        timeout: pala && sn.s == 1 && parent.epoch < sn.epoch,
        stop: pala && stop_offset != 0 && b.header.session_offset == stop_offset,
        session_start: pala && sn.epoch.session > parent.epoch.session,
        k_window: false,
    }
}

/// The block tree, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeView {
    /// The blocks kept, by height then sn.
    pub blocks: Vec<BlockView>,
    /// Blocks of the tree left out by [`MAX_TREE_BLOCKS`].
    pub left_out: usize,
}

/// The tree of `chain` in the local epoch `local`: every stored block marked, the newest
/// [`MAX_TREE_BLOCKS`] kept (the root always). `proposals` are the node's own
/// unnotarized proposals (N-4), in the K window even if the tree had not stored one.
pub fn tree_view(
    chain: &Chain,
    local: Epoch,
    stop_offset: u32,
    proposals: impl IntoIterator<Item = BlockSn>,
) -> TreeView {
    let root = chain.root();
    // The finalized chain inside the tree: from the finalized head down to the root
    // (one block, or the blocks after the stop block during a reconfiguration, C-7a).
    let finalized = path_to_root(chain, chain.finalized());
    let freshest = path_to_root(chain, chain.head());
    let proposals: BTreeSet<BlockSn> = proposals.into_iter().collect();
    let mut entries: Vec<_> = chain.entries().collect();
    entries.sort_by_key(|(sn, e)| (e.block.height(), *sn));
    let cut = entries.len().saturating_sub(MAX_TREE_BLOCKS);
    let blocks: Vec<BlockView> = entries
        .iter()
        .enumerate()
        .filter(|(i, (sn, _))| *i >= cut || *sn == root)
        .map(|(_, (sn, e))| {
            let mut v = block_view(&e.block, stop_offset, e.connected, finalized.contains(sn));
            v.freshest = freshest.contains(sn);
            v.k_window =
                !v.notarized && (proposals.contains(sn) || sn.epoch == local && sn.is_pala());
            v
        })
        .collect();
    let left_out = entries.len() - blocks.len();
    TreeView { blocks, left_out }
}

fn path_to_root(chain: &Chain, from: BlockSn) -> BTreeSet<BlockSn> {
    let mut out = BTreeSet::new();
    let mut sn = from;
    while let Some(e) = chain.get(sn) {
        out.insert(sn);
        if sn == chain.root() {
            break;
        }
        sn = e.block.parent_sn();
    }
    out
}

/// Why the local epoch `L` changed, as far as the core tells (section 5, C-3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EpochCause {
    /// `L` as the node started: recovered from storage (P-3), or `(1, 1)` on a new node.
    Start,
    /// This proposer formed `cnota(L)` from a quorum of clock messages, which voters send
    /// when their timer expires (E-3, E-5).
    ClockNotarizationFormed,
    /// A clock notarization formed by another proposer arrived: broadcast (E-6), in a
    /// timeout block (I-1) or by epoch sync (W-7.2). The voters behind it timed out.
    ClockNotarizationReceived,
    /// The stop block of the previous session became final: `L := (S+1, 1)` without a
    /// clock notarization (C-3).
    NewSession,
}

/// One change of the local epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EpochChange {
    /// The new local epoch.
    pub epoch: EpochJson,
    /// The epoch before (absent for [`EpochCause::Start`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<EpochJson>,
    /// Why.
    pub cause: EpochCause,
    /// For a clock notarization: the proposer that formed it ("proposer 1").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub formed_by: Option<String>,
    /// For a clock notarization: how many voters signed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signers: Option<usize>,
    /// Wall-clock time of the change, milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}

impl EpochChange {
    /// The change to `epoch` from `from`, its cause read from `proof`, the clock
    /// notarization the core holds for its local epoch now, and `committee`, the
    /// committee of that epoch's session, with `me`, this node.
    ///
    /// An epoch with `e > 1` is only entered with a clock notarization, and `e == 1` of a
    /// later session only by C-3 (E-11); `proof` says who formed it when it is this
    /// epoch's (one input may move `L` twice, and then the first move's proof is gone).
    pub fn new(
        epoch: Epoch,
        from: Epoch,
        proof: Option<&ClockNotarization>,
        committee: Option<&Committee>,
        me: &NodeId,
        at_unix_ms: u64,
    ) -> EpochChange {
        let proof = proof.filter(|c| c.epoch == epoch);
        let mine = committee.and_then(|c| c.proposer_index(me));
        let cause = if epoch.e == 1 && epoch.session > from.session {
            EpochCause::NewSession
        } else if proof.is_some_and(|c| Some(c.proposer_idx as usize) == mine) {
            EpochCause::ClockNotarizationFormed
        } else {
            EpochCause::ClockNotarizationReceived
        };
        EpochChange {
            epoch: epoch_json(epoch),
            from: Some(epoch_json(from)),
            cause,
            formed_by: proof.map(|c| format!("proposer {}", c.proposer_idx)),
            signers: proof.map(|c| c.signers.count()),
            at_unix_ms,
        }
    }
}

/// The last [`EPOCH_CHANGES_KEPT`] epoch changes, kept by the consensus stage (it has the
/// clock; the core has none).
#[derive(Debug)]
pub struct EpochLog {
    changes: VecDeque<EpochChange>,
}

impl EpochLog {
    /// A log whose first entry is the epoch the node started in.
    pub fn new(start: Epoch, at_unix_ms: u64) -> EpochLog {
        let mut changes = VecDeque::with_capacity(EPOCH_CHANGES_KEPT);
        changes.push_back(EpochChange {
            epoch: epoch_json(start),
            from: None,
            cause: EpochCause::Start,
            formed_by: None,
            signers: None,
            at_unix_ms,
        });
        EpochLog { changes }
    }

    /// Records a change, dropping the oldest beyond [`EPOCH_CHANGES_KEPT`].
    pub fn push(&mut self, change: EpochChange) {
        if self.changes.len() == EPOCH_CHANGES_KEPT {
            self.changes.pop_front();
        }
        self.changes.push_back(change);
    }

    /// The changes, newest first.
    pub fn newest_first(&self) -> Vec<EpochChange> {
        self.changes.iter().rev().cloned().collect()
    }
}

/// A peer and its last status (W-6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PeerView {
    /// Node id (hex).
    pub id: String,
    /// Its place in the committee of the local epoch's session ("proposer 0", "voter 2"),
    /// or "follower".
    pub name: String,
    /// Connected now.
    pub connected: bool,
    /// Its last status, while connected and once one arrived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<PeerStatus>,
}

/// What a peer's last status said.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PeerStatus {
    /// Its local epoch.
    pub epoch: EpochJson,
    /// Its freshest notarized head.
    pub head: SnJson,
    /// Its head's height.
    pub head_height: u64,
    /// Its finalized head.
    pub finalized: SnJson,
}

impl PeerView {
    /// The peer `id` as `committee` places it, with its last `status`.
    pub fn new(
        id: NodeId,
        committee: Option<&Committee>,
        connected: bool,
        status: Option<&pala_types::Status>,
    ) -> PeerView {
        PeerView {
            id: id.to_hex(),
            name: member_name(committee, &id),
            connected,
            status: status.map(|s| PeerStatus {
                epoch: epoch_json(s.epoch),
                head: sn_json(s.head),
                head_height: s.head_height,
                finalized: sn_json(s.finalized),
            }),
        }
    }
}

/// "proposer i", "voter i" or "follower": `id`'s place in `committee`.
pub fn member_name(committee: Option<&Committee>, id: &NodeId) -> String {
    let Some(c) = committee else {
        return "follower".into();
    };
    if let Some(i) = c.proposer_index(id) {
        format!("proposer {i}")
    } else if let Some(i) = c.voter_index(id) {
        format!("voter {i}")
    } else {
        "follower".into()
    }
}

/// A block named by sn and height.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BlockRef {
    /// `(session, epoch, s)`.
    pub sn: SnJson,
    /// Height.
    pub height: u64,
}

impl BlockRef {
    /// The block `b`.
    pub fn of(b: &Block) -> BlockRef {
        BlockRef {
            sn: sn_json(b.sn()),
            height: b.height(),
        }
    }
}

/// The whole view, as `GET /chain` answers it.
#[derive(Clone, Debug, Serialize)]
pub struct ChainView {
    /// This node's id (hex).
    pub id: String,
    /// Its place in the committee of its local epoch's session.
    pub name: String,
    /// Its role in that session: "proposer", "voter" or "follower".
    pub role: String,
    /// The local epoch `L` (E-1).
    pub epoch: EpochJson,
    /// K, the outstanding unnotarized proposals an epoch may have (N-3).
    pub k: u32,
    /// The session offset of stop blocks (C-1; 0: no reconfiguration).
    pub stop_offset: u32,
    /// Producing blocks now (the primary proposer of `L`, N-1).
    pub producing: bool,
    /// The freshest notarized head (FC-2).
    pub head: BlockRef,
    /// The finalized head (F-B).
    pub finalized: BlockRef,
    /// The oldest block of the tree: the finalized head, or the stop block during a
    /// reconfiguration (C-7a).
    pub root: BlockRef,
    /// Finalized blocks below the root (from storage), then the tree; by height.
    pub blocks: Vec<BlockView>,
    /// Blocks of the tree left out (beyond [`MAX_TREE_BLOCKS`]).
    pub blocks_left_out: usize,
    /// The peers the node has heard of, with their last statuses.
    pub peers: Vec<PeerView>,
    /// The last local epoch changes, newest first.
    pub epoch_changes: Vec<EpochChange>,
    /// Wall-clock time the view was built, milliseconds since the Unix epoch.
    pub now_unix_ms: u64,
}

#[cfg(test)]
#[path = "chain_view_tests.rs"]
mod tests;
