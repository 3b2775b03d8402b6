//! The in-memory block tree from the finalized head upwards (FC-1, FC-2).
//!
//! Invariants:
//! - the tree holds its *root* and the root's descendants only; every other entry's
//!   parent is in the tree (so "parent stored" implies "extends the root", N-9.5). The
//!   root is the finalized block, except during a reconfiguration window (C-7a) when it
//!   is the finalized stop block, so that branches off the stop block stay insertable
//!   and the branch carrying the new session can win (C-7c);
//! - at most one block per sn (N-9.1);
//! - an entry is *connected* iff it and all its ancestors down to the finalized block are
//!   notarized; `head` is the largest connected sn (FC-2), so the notarized set that
//!   counts is prefix-closed (NA-4) and `head` only moves forward.
//!
//! A notarization whose parent is not yet notarized is kept on its entry but does not
//! count until the parent connects; then the whole notarized subtree connects at once
//! (INFERRED: PROD drops such a notarization under NA-4 and waits for it to arrive again
//! inside a later block; keeping it saves that round trip when notarizations are
//! reordered by the network).

use crate::fasthash::FastMap;
use pala_types::{Block, BlockSn, Hash, Notarization};
use std::sync::Arc;

/// One stored block.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The block.
    pub block: Arc<Block>,
    /// The best notarization known for it (most votes, PV-5).
    pub nota: Option<Notarization>,
    /// Notarized together with all its ancestors.
    pub connected: bool,
    /// `block.parent_sn()`, kept next to the key: walks up the tree (F-B on every head
    /// extension) then read no block memory.
    parent: BlockSn,
    children: Vec<BlockSn>,
}

/// Result of attaching a notarization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attach {
    /// The stored one has at least as many votes (NA-2).
    Ignored,
    /// Stored (a replacement, or an orphan waiting for its parent).
    Stored,
    /// Stored, and the block with the notarized descendants that waited for it now
    /// count (NA-4); `head` moved forward if one of them is fresher than it was.
    Connected(Vec<BlockSn>),
}

/// The block tree.
#[derive(Clone, Debug)]
pub struct Chain {
    entries: FastMap<BlockSn, Entry>,
    head: BlockSn,
    finalized: BlockSn,
    root: BlockSn,
}

impl Chain {
    /// A tree rooted at `finalized` (genesis for a new node).
    pub fn new(finalized: Arc<Block>, nota: Option<Notarization>) -> Chain {
        let sn = finalized.sn();
        let mut entries = FastMap::default();
        entries.insert(
            sn,
            Entry {
                parent: finalized.parent_sn(),
                block: finalized,
                nota,
                connected: true,
                children: Vec::new(),
            },
        );
        Chain {
            entries,
            head: sn,
            finalized: sn,
            root: sn,
        }
    }

    /// The oldest block kept: the finalized block, or the stop block during a
    /// reconfiguration window.
    pub fn root(&self) -> BlockSn {
        self.root
    }

    /// The root block.
    pub fn root_block(&self) -> &Arc<Block> {
        &self.entries[&self.root].block
    }

    /// Makes `new_root` (a stored block) the root and prunes everything that does not
    /// descend from it.
    pub fn reroot(&mut self, new_root: BlockSn) {
        if !self.entries.contains_key(&new_root) {
            return;
        }
        let old_root = self.root;
        self.root = new_root;
        self.prune_to_root(old_root);
        if !self.entries.contains_key(&self.head) {
            self.head = self.recompute_head();
        }
    }

    /// Drops everything that does not descend from the (new) root, given the previous
    /// root: only the blocks from the old root up to the new one and the forks hanging
    /// off them leave the tree, so the cost is proportional to what is removed.
    fn prune_to_root(&mut self, old_root: BlockSn) {
        let mut path = Vec::new();
        let mut s = self.root;
        while s != old_root {
            let Some(e) = self.entries.get(&s) else {
                return;
            };
            let p = e.parent;
            path.push((p, s));
            s = p;
        }
        for (p, keep) in path {
            if let Some(e) = self.entries.remove(&p) {
                for c in e.children {
                    if c != keep {
                        self.remove_tree(c);
                    }
                }
            }
        }
    }

    fn remove_tree(&mut self, sn: BlockSn) {
        let mut stack = vec![sn];
        while let Some(s) = stack.pop() {
            if let Some(e) = self.entries.remove(&s) {
                stack.extend(e.children);
            }
        }
    }

    /// Freshest notarized head.
    pub fn head(&self) -> BlockSn {
        self.head
    }

    /// Finalized head.
    pub fn finalized(&self) -> BlockSn {
        self.finalized
    }

    /// The entry at `sn`.
    pub fn get(&self, sn: BlockSn) -> Option<&Entry> {
        self.entries.get(&sn)
    }

    /// The block at `sn`.
    pub fn block(&self, sn: BlockSn) -> Option<&Arc<Block>> {
        self.entries.get(&sn).map(|e| &e.block)
    }

    /// The head block.
    pub fn head_block(&self) -> &Arc<Block> {
        &self.entries[&self.head].block
    }

    /// The finalized block.
    pub fn finalized_block(&self) -> &Arc<Block> {
        &self.entries[&self.finalized].block
    }

    /// Number of blocks in memory (never 0: the finalized block is always there).
    pub fn block_count(&self) -> usize {
        self.entries.len()
    }

    /// Whether the block at `sn` is notarized in the counted sense (connected).
    pub fn is_connected(&self, sn: BlockSn) -> bool {
        self.entries.get(&sn).is_some_and(|e| e.connected)
    }

    /// Stores a block whose parent is in the tree. The caller has run the N-9 checks.
    pub fn insert(&mut self, block: Arc<Block>) {
        let sn = block.sn();
        let parent = block.parent_sn();
        debug_assert!(
            self.entries.contains_key(&parent),
            "parent of {sn:?} must be stored"
        );
        if let Some(p) = self.entries.get_mut(&parent) {
            p.children.push(sn);
        }
        self.entries.insert(
            sn,
            Entry {
                block,
                nota: None,
                connected: false,
                parent,
                children: Vec::new(),
            },
        );
    }

    /// Attaches a notarization whose block is stored with the matching hash.
    pub fn attach(&mut self, nota: Notarization) -> Attach {
        let sn = nota.sn;
        let Some(e) = self.entries.get_mut(&sn) else {
            return Attach::Ignored;
        };
        if e.nota
            .as_ref()
            .is_some_and(|old| old.vote_count() >= nota.vote_count())
        {
            return Attach::Ignored;
        }
        e.nota = Some(nota);
        if e.connected {
            return Attach::Stored;
        }
        let parent = e.parent;
        if !self.is_connected(parent) {
            return Attach::Stored;
        }
        let mut stack = vec![sn];
        let mut connected = Vec::with_capacity(1);
        while let Some(s) = stack.pop() {
            let e = self.entries.get_mut(&s).expect("child entries exist");
            e.connected = true;
            connected.push(s);
            for c in e.children.clone() {
                if self
                    .entries
                    .get(&c)
                    .is_some_and(|ce| ce.nota.is_some() && !ce.connected)
                {
                    stack.push(c);
                }
            }
        }
        let max = connected.iter().copied().max().unwrap_or(sn);
        self.head = self.head.max(max);
        Attach::Connected(connected)
    }

    /// Walks `n` parents up from `sn` (None if the walk leaves the tree).
    pub fn ancestor(&self, mut sn: BlockSn, n: u32) -> Option<BlockSn> {
        if n == 0 {
            return Some(sn);
        }
        // One lookup per step: the entry found for a parent is the next step's start
        // (F-B walks K parents on every head extension).
        let mut e = self.entries.get(&sn)?;
        for _ in 0..n {
            sn = e.parent;
            e = self.entries.get(&sn)?;
        }
        Some(sn)
    }

    /// Whether `sn` is `anc` or one of its descendants.
    pub fn descends_from(&self, mut sn: BlockSn, anc: BlockSn) -> bool {
        loop {
            if sn == anc {
                return true;
            }
            if sn < anc {
                return false;
            }
            match self.entries.get(&sn) {
                Some(e) if sn != self.root => sn = e.parent,
                _ => return false,
            }
        }
    }

    /// The path from the head down to the root, newest first.
    pub fn head_path(&self) -> Vec<&Entry> {
        let mut out = Vec::new();
        let mut sn = self.head;
        loop {
            let e = &self.entries[&sn];
            out.push(e);
            if sn == self.root {
                return out;
            }
            sn = e.parent;
        }
    }

    /// Moves the finalized head to `target` (a connected descendant of the root) and
    /// returns the newly finalized blocks in chain order with their notarizations: the
    /// blocks from `target` back to the current finalized chain. Normally that is the
    /// current finalized block; during a reconfiguration window `target` may be on
    /// another branch after the stop block (C-7c), and the blocks after the common
    /// ancestor are returned. Then `keep_root` becomes the root and the rest is pruned.
    pub fn finalize(
        &mut self,
        target: BlockSn,
        keep_root: BlockSn,
    ) -> Vec<(Arc<Block>, Option<Notarization>)> {
        // Usually just the root: a short list beats a set.
        let mut on_final = Vec::new();
        let mut s = self.finalized;
        loop {
            on_final.push(s);
            if s == self.root {
                break;
            }
            match self.entries.get(&s) {
                Some(e) => s = e.parent,
                None => break,
            }
        }
        let mut path = Vec::new();
        let mut sn = target;
        while !on_final.contains(&sn) {
            let Some(e) = self.entries.get(&sn) else {
                break;
            };
            path.push((e.block.clone(), e.nota.clone()));
            sn = e.parent;
        }
        path.reverse();
        self.finalized = target;
        let old_root = self.root;
        self.root = if self.entries.contains_key(&keep_root) {
            keep_root
        } else {
            target
        };
        self.prune_to_root(old_root);
        path
    }

    /// Removes the block at `sn` and all its descendants (N-10 replacement). Never the
    /// finalized block.
    pub fn remove_subtree(&mut self, sn: BlockSn) {
        if sn == self.finalized || sn == self.root {
            return;
        }
        let Some(e) = self.entries.get(&sn) else {
            return;
        };
        let parent = e.parent;
        if let Some(p) = self.entries.get_mut(&parent) {
            p.children.retain(|c| *c != sn);
        }
        self.remove_tree(sn);
        if !self.entries.contains_key(&self.head) {
            self.head = self.recompute_head();
        }
    }

    fn recompute_head(&self) -> BlockSn {
        self.entries
            .iter()
            .filter(|(_, e)| e.connected)
            .map(|(s, _)| *s)
            .max()
            .unwrap_or(self.finalized)
    }

    /// The hash at `sn`, if stored.
    pub fn hash(&self, sn: BlockSn) -> Option<Hash> {
        self.entries.get(&sn).map(|e| e.block.hash())
    }

    /// Every stored entry with its sn (unordered), for views of the whole tree.
    pub fn entries(&self) -> impl Iterator<Item = (BlockSn, &Entry)> + '_ {
        self.entries.iter().map(|(sn, e)| (*sn, e))
    }
}

/// F-3 (rewind, a recovery tool): after truncating the notarized chain to block `b`,
/// the new finalized head is found by walking back from `b` over blocks with `S <= K` to
/// the first block `(e, t)` with `t > K`, and taking `(e, t - K)`; pre-PaLa blocks are
/// final. `parent` maps a stored block to its parent.
pub fn rewind_finalized(
    b: BlockSn,
    k: u32,
    parent: impl Fn(BlockSn) -> Option<BlockSn>,
) -> BlockSn {
    let mut sn = b;
    loop {
        if !sn.is_pala() {
            return sn;
        }
        if sn.s > k {
            return BlockSn::at(sn.epoch, sn.s - k);
        }
        match parent(sn) {
            Some(p) => sn = p,
            None => return sn,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pala_types::{BlockHeader, ConsensusInfo, Signature, SignerBitmap};

    pub(crate) fn child(parent: &Block, sn: BlockSn) -> Arc<Block> {
        Arc::new(Block::new(
            BlockHeader {
                sn,
                parent_sn: parent.sn(),
                parent_hash: parent.hash(),
                height: parent.height() + 1,
                session_offset: parent.header.session_offset + 1,
                timestamp_ms: 0,
                state: pala_types::StateCommitment::NONE,
            },
            vec![],
            ConsensusInfo::default(),
        ))
    }

    fn nota(b: &Block, votes: usize) -> Notarization {
        let mut signers = SignerBitmap::new(4);
        for i in 0..votes {
            signers.insert(i);
        }
        Notarization {
            sn: b.sn(),
            block_hash: b.hash(),
            proposer_idx: 0,
            signers,
            signature: Signature(vec![]),
        }
    }

    /// F-C's check that a finality target lies on the head's chain (finality.rs) rests on
    /// this walk: a block of a fork, an older block and an unknown one do not descend.
    #[test]
    fn descends_from_follows_parents_only() {
        let g = Arc::new(Block::genesis(vec![]));
        let mut c = Chain::new(g.clone(), None);
        let b11 = child(&g, BlockSn::new(1, 1, 1));
        let b12 = child(&b11, BlockSn::new(1, 1, 2));
        let fork = child(&b11, BlockSn::new(1, 2, 1));
        for b in [&b11, &b12, &fork] {
            c.insert(b.clone());
        }
        assert!(c.descends_from(b12.sn(), b11.sn()));
        assert!(c.descends_from(b12.sn(), b12.sn()));
        assert!(c.descends_from(fork.sn(), g.sn()));
        assert!(
            !c.descends_from(fork.sn(), b12.sn()),
            "a fork is fresher but no descendant"
        );
        assert!(
            !c.descends_from(b11.sn(), b12.sn()),
            "an ancestor does not descend"
        );
        assert!(
            !c.descends_from(BlockSn::new(1, 3, 1), b11.sn()),
            "unknown block"
        );
    }

    #[test]
    fn t1_freshest_is_not_longest_and_newest_is_not_notarized() {
        let g = Arc::new(Block::genesis(vec![]));
        let mut c = Chain::new(g.clone(), None);
        let b11 = child(&g, BlockSn::new(1, 1, 1));
        c.insert(b11.clone());
        let mut prev = b11.clone();
        let mut long = vec![];
        for s in 2..=4 {
            let b = child(&prev, BlockSn::new(1, 1, s));
            c.insert(b.clone());
            long.push(b.clone());
            prev = b;
        }
        let b21 = child(&b11, BlockSn::new(1, 2, 1));
        let b31 = child(&b21, BlockSn::new(1, 3, 1));
        c.insert(b21.clone());
        c.insert(b31.clone());
        assert_eq!(c.attach(nota(&b11, 3)), Attach::Connected(vec![b11.sn()]));
        for b in &long {
            c.attach(nota(b, 3));
        }
        assert_eq!(c.head(), BlockSn::new(1, 1, 4));
        // (3,1) notarized before its parent (2,1): stored but not counted yet.
        assert_eq!(c.attach(nota(&b31, 3)), Attach::Stored);
        assert_eq!(c.head(), BlockSn::new(1, 1, 4));
        assert_eq!(
            c.attach(nota(&b21, 3)),
            Attach::Connected(vec![b21.sn(), b31.sn()])
        );
        assert_eq!(c.head(), BlockSn::new(1, 3, 1), "freshest is not longest");
        let b15 = child(&long[2], BlockSn::new(1, 1, 5));
        c.insert(b15);
        assert_eq!(
            c.head(),
            BlockSn::new(1, 3, 1),
            "an unnotarized newer block is ignored"
        );
        // Late votes replace a notarization without moving the head.
        assert_eq!(c.attach(nota(&b31, 4)), Attach::Stored);
        assert_eq!(c.attach(nota(&b31, 4)), Attach::Ignored);
    }

    #[test]
    fn t8_rewind() {
        // K = 1; chain (1,1,1..5) and (1,2,1..5) with (1,2,1) on (1,1,5).
        let parent = |sn: BlockSn| -> Option<BlockSn> {
            Some(match (sn.epoch.e, sn.s) {
                (_, 0) => return None,
                (1, 1) => BlockSn::GENESIS,
                (2, 1) => BlockSn::new(1, 1, 5),
                (e, s) => BlockSn::new(1, e, s - 1),
            })
        };
        let r = |b| rewind_finalized(b, 1, parent);
        assert_eq!(
            r(BlockSn::new(1, 2, 5)),
            BlockSn::new(1, 2, 4),
            "same height"
        );
        assert_eq!(
            r(BlockSn::new(1, 2, 3)),
            BlockSn::new(1, 2, 2),
            "to a normal block"
        );
        assert_eq!(
            r(BlockSn::new(1, 2, 1)),
            BlockSn::new(1, 1, 4),
            "to a timeout block"
        );
        assert_eq!(
            r(BlockSn::new(1, 1, 4)),
            BlockSn::new(1, 1, 3),
            "to the previous epoch"
        );
        assert_eq!(r(BlockSn::new(1, 1, 1)), BlockSn::GENESIS);
    }

    #[test]
    fn finalize_prunes_forks() {
        let g = Arc::new(Block::genesis(vec![]));
        let mut c = Chain::new(g.clone(), None);
        let a = child(&g, BlockSn::new(1, 1, 1));
        let b = child(&a, BlockSn::new(1, 1, 2));
        let fork = child(&a, BlockSn::new(1, 2, 1));
        for x in [&a, &b, &fork] {
            c.insert(x.clone());
        }
        for x in [&a, &b] {
            c.attach(nota(x, 3));
        }
        assert_eq!(c.block_count(), 4, "genesis, a, b and the fork");
        let done = c.finalize(b.sn(), b.sn());
        assert_eq!(
            done.iter().map(|(b, _)| b.sn()).collect::<Vec<_>>(),
            vec![a.sn(), b.sn()]
        );
        assert_eq!(c.block_count(), 1);
        assert_eq!(c.root(), b.sn());
        assert!(c.get(fork.sn()).is_none());
    }

    /// Rerooting at the stop block (a reconfiguration window) keeps only what descends
    /// from it; the head moves only if it was pruned; an unknown root changes nothing.
    #[test]
    fn reroot_keeps_only_what_descends_from_the_new_root() {
        let g = Arc::new(Block::genesis(vec![]));
        let mut c = Chain::new(g.clone(), None);
        let a = child(&g, BlockSn::new(1, 1, 1));
        let b = child(&a, BlockSn::new(1, 1, 2));
        let fork = child(&g, BlockSn::new(1, 2, 1));
        for x in [&a, &b, &fork] {
            c.insert(x.clone());
            c.attach(nota(x, 3));
        }
        assert_eq!(c.head(), fork.sn(), "the fresher epoch's block is the head");
        c.reroot(BlockSn::new(1, 1, 7));
        assert_eq!(
            (c.root(), c.block_count()),
            (BlockSn::GENESIS, 4),
            "unknown root"
        );
        c.reroot(a.sn());
        assert_eq!(c.root(), a.sn());
        assert_eq!(c.block_count(), 2, "a and b stay");
        assert!(c.get(fork.sn()).is_none() && c.get(BlockSn::GENESIS).is_none());
        assert_eq!(c.head(), b.sn(), "the pruned head is recomputed");
        assert!(c.descends_from(b.sn(), a.sn()));
    }

    /// N-10 replacement removes a block with its descendants, unlinks it from its
    /// parent (so later pruning walks only live children), recomputes a removed head,
    /// and never removes the finalized block or the root, which differ during a
    /// reconfiguration window.
    #[test]
    fn remove_subtree_drops_a_branch_and_spares_the_finalized_block_and_the_root() {
        let g = Arc::new(Block::genesis(vec![]));
        let mut c = Chain::new(g.clone(), None);
        let a = child(&g, BlockSn::new(1, 1, 1));
        let b = child(&a, BlockSn::new(1, 1, 2));
        let x = child(&b, BlockSn::new(1, 1, 3));
        let x2 = child(&x, BlockSn::new(1, 1, 4));
        let y = child(&b, BlockSn::new(1, 2, 1));
        for blk in [&a, &b, &x, &x2, &y] {
            c.insert(blk.clone());
            c.attach(nota(blk, 3));
        }
        c.finalize(b.sn(), a.sn());
        assert_eq!((c.root(), c.finalized()), (a.sn(), b.sn()));
        assert_eq!(c.head(), y.sn());
        c.remove_subtree(y.sn());
        assert_eq!(c.head(), x2.sn(), "the removed head is recomputed");
        assert_eq!(c.entries[&b.sn()].children, vec![x.sn()]);
        c.remove_subtree(x.sn());
        assert!(c.get(x2.sn()).is_none(), "descendants go too");
        assert_eq!(c.head(), b.sn());
        assert!(c.entries[&b.sn()].children.is_empty());
        c.remove_subtree(b.sn());
        c.remove_subtree(a.sn());
        assert_eq!(c.block_count(), 2, "the finalized block and the root stay");
    }
}
