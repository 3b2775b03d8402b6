//! In-memory indexes over the log, rebuilt on open and updated after each durable batch.

use crate::record::{BlockMeta, IndexOp};
use pala_types::{BlockSn, Epoch, Hash, Session};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Where a record's payload lives.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Loc {
    /// Segment id.
    pub segment: u64,
    /// Offset of the payload inside the segment file.
    pub offset: u64,
    /// Payload length.
    pub len: u32,
}

#[derive(Copy, Clone, Debug)]
pub(crate) struct BlockEntry {
    pub meta: BlockMeta,
    pub loc: Loc,
}

#[derive(Copy, Clone, Debug)]
pub(crate) struct NotaEntry {
    pub block_hash: Hash,
    pub loc: Loc,
}

/// What [`Index::prune`] removed.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneStats {
    /// Blocks removed from the index (forks, and anything not linked to the finalized chain
    /// at or below the finalized height).
    pub blocks: usize,
    /// Notarizations removed with them.
    pub notarizations: usize,
    /// Vote guards of epochs older than both the local epoch and the finalized head's epoch.
    pub vote_guards: usize,
}

#[derive(Default, Debug)]
pub(crate) struct Index {
    pub by_hash: HashMap<Hash, BlockEntry>,
    /// The latest stored block for each sn (an equivocating proposer can produce two; both
    /// stay reachable by hash).
    pub by_sn: BTreeMap<BlockSn, Hash>,
    pub notarizations: BTreeMap<BlockSn, NotaEntry>,
    pub epoch_status: Option<(Epoch, Loc)>,
    pub clock_notarizations: BTreeMap<Epoch, Loc>,
    pub vote_guards: BTreeMap<Epoch, u32>,
    pub clock_guard: Option<Epoch>,
    pub finalized_head: Option<BlockSn>,
    pub stop_blocks: BTreeMap<Session, u64>,
    /// The latest committee record per session.
    pub committees: BTreeMap<Session, Loc>,
    /// Finalized chain by height: `(sn, hash)`, contiguous over `[finalized_low, top]`.
    pub finalized: BTreeMap<u64, (BlockSn, Hash)>,
    finalized_low: Option<u64>,
    /// Set when something happened that may extend the finalized map.
    dirty: bool,
}

impl Index {
    pub fn apply(&mut self, op: IndexOp, loc: Loc) {
        match op {
            IndexOp::Block(meta) => {
                self.by_hash.insert(meta.hash, BlockEntry { meta, loc });
                self.by_sn.insert(meta.sn, meta.hash);
                // A block filling a gap below the finalized head may extend the chain map.
                if self.finalized_low.is_none_or(|low| meta.height < low)
                    || self.finalized_head == Some(meta.sn)
                {
                    self.dirty = true;
                }
            }
            IndexOp::Notarization { sn, block_hash } => {
                self.notarizations.insert(sn, NotaEntry { block_hash, loc });
            }
            IndexOp::EpochStatus(e) => {
                if self.epoch_status.is_none_or(|(cur, _)| e >= cur) {
                    self.epoch_status = Some((e, loc));
                }
            }
            IndexOp::ClockNotarization(e) => {
                self.clock_notarizations.insert(e, loc);
            }
            IndexOp::VoteGuard { epoch, s } => {
                let g = self.vote_guards.entry(epoch).or_insert(s);
                *g = (*g).max(s);
            }
            IndexOp::ClockGuard(e) => {
                self.clock_guard = Some(self.clock_guard.map_or(e, |c| c.max(e)));
            }
            IndexOp::FinalizedHead(sn) => {
                if self.finalized_head.is_none_or(|cur| sn > cur) {
                    self.finalized_head = Some(sn);
                    self.dirty = true;
                }
            }
            IndexOp::StopBlock { session, height } => {
                self.stop_blocks.insert(session, height);
            }
            IndexOp::Committee(session) => {
                self.committees.insert(session, loc);
            }
        }
    }

    /// The block the finalized head names, if stored.
    pub fn finalized_entry(&self) -> Option<&BlockEntry> {
        let sn = self.finalized_head?;
        self.by_sn.get(&sn).and_then(|h| self.by_hash.get(h))
    }

    /// Extends the height map by walking parent links down from the finalized head. The
    /// map stays contiguous over `[finalized_low, top]`, so a walk that reaches a height
    /// already mapped with the same hash jumps straight below `finalized_low`.
    pub fn refresh_finalized(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let Some(head) = self.finalized_entry().copied() else {
            return;
        };
        // Finality is never rewritten; if a bug ever did, stale heights above must go.
        let stale: Vec<u64> = self
            .finalized
            .range(head.meta.height + 1..)
            .map(|(h, _)| *h)
            .collect();
        for h in stale {
            self.finalized.remove(&h);
        }
        let mut cur = Some(head.meta);
        let mut low = head.meta.height;
        while let Some(m) = cur {
            if self.finalized.get(&m.height) == Some(&(m.sn, m.hash)) {
                if let Some(l) = self.finalized_low.filter(|l| *l <= m.height) {
                    // Already contiguous down to `l`: continue below it.
                    low = l;
                    let (_, bottom_hash) = self.finalized[&l];
                    cur = self
                        .by_hash
                        .get(&bottom_hash)
                        .and_then(|e| self.parent_of(&e.meta));
                    continue;
                }
            }
            self.finalized.insert(m.height, (m.sn, m.hash));
            low = m.height;
            cur = self.parent_of(&m);
        }
        // Anything below a gap is no longer known to link to the head.
        let below: Vec<u64> = self.finalized.range(..low).map(|(h, _)| *h).collect();
        for h in below {
            self.finalized.remove(&h);
        }
        self.finalized_low = Some(low);
    }

    fn parent_of(&self, m: &BlockMeta) -> Option<BlockMeta> {
        if m.height == 0 {
            return None;
        }
        let p = self.by_hash.get(&m.parent_hash)?;
        (p.meta.height + 1 == m.height && p.meta.sn == m.parent_sn).then_some(p.meta)
    }

    /// Stored blocks that descend from `root` (exclusive), parents before children.
    pub fn descendants(&self, root: &BlockMeta) -> Vec<BlockEntry> {
        let mut entries: Vec<&BlockEntry> = self
            .by_hash
            .values()
            .filter(|e| e.meta.height > root.height)
            .collect();
        entries.sort_by_key(|e| (e.meta.height, e.meta.sn, e.meta.hash));
        let mut reachable: HashSet<Hash> = HashSet::from([root.hash]);
        let mut out = Vec::new();
        for e in entries {
            if reachable.contains(&e.meta.parent_hash) {
                reachable.insert(e.meta.hash);
                out.push(*e);
            }
        }
        out
    }

    /// Forgets finalized blocks (and their notarizations) below `height`, for retention.
    pub fn forget_finalized_below(&mut self, height: u64) {
        let old: Vec<(u64, (BlockSn, Hash))> = self
            .finalized
            .range(..height)
            .map(|(h, v)| (*h, *v))
            .collect();
        for (h, (sn, hash)) in old {
            self.finalized.remove(&h);
            self.by_hash.remove(&hash);
            if self.by_sn.get(&sn) == Some(&hash) {
                self.by_sn.remove(&sn);
            }
            if self
                .notarizations
                .get(&sn)
                .is_some_and(|n| n.block_hash == hash)
            {
                self.notarizations.remove(&sn);
            }
        }
        if self.finalized_low.is_some_and(|l| l < height) && !self.finalized.is_empty() {
            self.finalized_low = self.finalized.keys().next().copied();
        }
    }

    /// Drops forks and stale data below the finalized head (see [`PruneStats`]).
    pub fn prune(&mut self) -> PruneStats {
        self.refresh_finalized();
        let mut stats = PruneStats::default();
        let Some(head) = self.finalized_entry().copied() else {
            return stats;
        };
        let live: HashSet<Hash> = self
            .descendants(&head.meta)
            .iter()
            .map(|e| e.meta.hash)
            .chain(self.finalized.values().map(|(_, h)| *h))
            .collect();
        let dead: HashSet<Hash> = self
            .by_hash
            .keys()
            .filter(|h| !live.contains(*h))
            .copied()
            .collect();
        for h in &dead {
            if let Some(e) = self.by_hash.remove(h) {
                stats.blocks += 1;
                if self.by_sn.get(&e.meta.sn) == Some(h) {
                    self.by_sn.remove(&e.meta.sn);
                }
            }
        }
        // A block replaced in `by_sn` by an equivocating twin may still be live by hash.
        for e in self.by_hash.values() {
            self.by_sn.entry(e.meta.sn).or_insert(e.meta.hash);
        }
        let dead_notas: Vec<BlockSn> = self
            .notarizations
            .iter()
            .filter(|(sn, n)| {
                dead.contains(&n.block_hash)
                    || (!live.contains(&n.block_hash) && **sn <= head.meta.sn)
            })
            .map(|(sn, _)| *sn)
            .collect();
        stats.notarizations = dead_notas.len();
        for sn in dead_notas {
            self.notarizations.remove(&sn);
        }
        // The voter never votes in an epoch older than its local epoch (which never
        // regresses), so older guards can no longer prevent anything.
        let local = self.epoch_status.map(|(e, _)| e).unwrap_or(Epoch::NIL);
        let guard_floor = local.min(head.meta.sn.epoch);
        let old: Vec<Epoch> = self
            .vote_guards
            .range(..guard_floor)
            .map(|(e, _)| *e)
            .collect();
        stats.vote_guards = old.len();
        for e in old {
            self.vote_guards.remove(&e);
        }
        stats
    }
}
