//! A node's simulated durable storage: what survives a crash.

use pala_core::{BlockArchive, RecoveredState, StateChange};
use pala_types::{Block, BlockSn, ClockNotarization, Epoch, Notarization, NotarizedBlock};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct DiskState {
    blocks: HashMap<BlockSn, Arc<Block>>,
    notas: HashMap<BlockSn, Notarization>,
    finalized: BTreeMap<u64, NotarizedBlock>,
    finalized_sn: Option<BlockSn>,
    epoch: Option<(Epoch, Option<ClockNotarization>)>,
    vote_guards: BTreeMap<Epoch, u32>,
    clock_guard: Option<Epoch>,
    committees: Vec<pala_types::Committee>,
    records_written: u64,
}

/// Simulated disk: what it holds is durable. The simulator applies a node's records
/// only when their sync completes, and reports that to the node's durability gate;
/// the persist-before-send checker compares each send with this state, independently
/// of the gate.
#[derive(Clone)]
pub struct SimDisk {
    state: Arc<Mutex<DiskState>>,
    genesis: Arc<Block>,
    retain_finalized: Option<u64>,
}

impl SimDisk {
    /// An empty disk; `retain_finalized` bounds how many finalized blocks are kept.
    pub fn new(genesis: Arc<Block>, retain_finalized: Option<u64>) -> SimDisk {
        let d = SimDisk {
            state: Arc::new(Mutex::new(DiskState::default())),
            genesis,
            retain_finalized,
        };
        d.wipe();
        d
    }

    /// Loses everything (disaster).
    pub fn wipe(&self) {
        let mut s = self.state.lock().expect("disk lock");
        *s = DiskState::default();
        s.finalized.insert(
            0,
            NotarizedBlock {
                block: self.genesis.clone(),
                notarization: None,
            },
        );
    }

    /// Applies one persisted record.
    pub fn apply(&self, r: &StateChange) {
        let mut s = self.state.lock().expect("disk lock");
        s.records_written += 1;
        match r {
            StateChange::Block(b) => {
                s.blocks.insert(b.sn(), b.clone());
            }
            StateChange::Notarization(n) => {
                let better = s
                    .notas
                    .get(&n.sn)
                    .is_none_or(|o| o.vote_count() < n.vote_count());
                if better {
                    s.notas.insert(n.sn, n.clone());
                }
            }
            StateChange::Finalized { sn, height, .. } => {
                let prev_h = s.finalized.keys().next_back().copied().unwrap_or(0);
                let mut cur = *sn;
                let mut h = *height;
                while h > prev_h {
                    let Some(b) = s.blocks.get(&cur).cloned() else {
                        break;
                    };
                    let n = s.notas.get(&cur).cloned();
                    s.finalized.insert(
                        h,
                        NotarizedBlock {
                            block: b.clone(),
                            notarization: n,
                        },
                    );
                    cur = b.parent_sn();
                    h -= 1;
                }
                s.finalized_sn = Some(*sn);
                let fin = *sn;
                s.blocks.retain(|k, _| *k > fin);
                s.notas.retain(|k, _| *k > fin);
                if let Some(keep) = self.retain_finalized {
                    let top = *height;
                    if top > keep {
                        let cut = top - keep;
                        s.finalized = s.finalized.split_off(&cut);
                    }
                }
            }
            StateChange::Epoch { epoch, clock } => {
                if s.epoch.as_ref().is_none_or(|(e, _)| e < epoch) {
                    s.epoch = Some((*epoch, clock.clone()));
                }
            }
            StateChange::VoteGuard { epoch, s: serial } => {
                let g = s.vote_guards.entry(*epoch).or_insert(0);
                *g = (*g).max(*serial);
            }
            StateChange::Committee(c) => {
                s.committees.retain(|o| o.session != c.session);
                s.committees.push(c.clone());
            }
            StateChange::StopBlock { .. } => {}
            StateChange::ClockGuard(e) => {
                if s.clock_guard.is_none_or(|c| c < *e) {
                    s.clock_guard = Some(*e);
                }
            }
        }
    }

    /// What a restarting node loads.
    pub fn recovered(&self) -> RecoveredState {
        let s = self.state.lock().expect("disk lock");
        let finalized = s.finalized.values().next_back().cloned();
        let fin_h = finalized.as_ref().map_or(0, |f| f.block.height());
        RecoveredState {
            finalized,
            blocks: s
                .blocks
                .values()
                .filter(|b| b.height() > fin_h)
                .cloned()
                .collect(),
            notarizations: s.notas.values().cloned().collect(),
            epoch: s.epoch.clone(),
            vote_guards: s.vote_guards.iter().map(|(e, v)| (*e, *v)).collect(),
            clock_guard: s.clock_guard,
            committees: s.committees.clone(),
        }
    }

    /// Whether the block `sn` with `hash` is durable.
    pub fn has_block(&self, sn: BlockSn, hash: pala_types::Hash) -> bool {
        let s = self.state.lock().expect("disk lock");
        s.blocks.get(&sn).is_some_and(|b| b.hash() == hash)
            || s.finalized
                .values()
                .any(|f| f.block.sn() == sn && f.block.hash() == hash)
    }

    /// Highest voted serial persisted for `epoch`.
    pub fn vote_guard(&self, epoch: Epoch) -> Option<u32> {
        self.state
            .lock()
            .expect("disk lock")
            .vote_guards
            .get(&epoch)
            .copied()
    }

    /// Highest persisted clock-message epoch.
    pub fn clock_guard(&self) -> Option<Epoch> {
        self.state.lock().expect("disk lock").clock_guard
    }

    /// Persisted epoch.
    pub fn epoch(&self) -> Option<Epoch> {
        self.state
            .lock()
            .expect("disk lock")
            .epoch
            .as_ref()
            .map(|(e, _)| *e)
    }

    /// Number of records written so far.
    pub fn records_written(&self) -> u64 {
        self.state.lock().expect("disk lock").records_written
    }
}

impl BlockArchive for SimDisk {
    fn finalized_at(&self, height: u64) -> Option<NotarizedBlock> {
        self.state
            .lock()
            .expect("disk lock")
            .finalized
            .get(&height)
            .cloned()
    }
}
