//! Scripted faults: partitions, healing, crashes (also inside a write), restarts and
//! drop rules.

use super::{Action, Sim};
use pala_core::driver::Driver;
use pala_types::Epoch;
use rand::Rng;
use std::collections::BTreeSet;

impl Sim {
    pub(super) fn act(&mut self, a: Action) {
        self.log(|| format!("action {a:?}"));
        match a {
            Action::Partition(groups) => {
                let before: Vec<(usize, usize)> = self
                    .all_links()
                    .into_iter()
                    .filter(|&(a, b)| self.link_up(a, b))
                    .collect();
                let mut g = vec![usize::MAX; self.len()];
                for (gi, members) in groups.iter().enumerate() {
                    for &m in members {
                        g[m] = gi;
                    }
                }
                // Nodes not listed form their own group each.
                for (i, x) in g.iter_mut().enumerate() {
                    if *x == usize::MAX {
                        *x = 1000 + i;
                    }
                }
                self.partition = Some(g);
                for (a, b) in before {
                    if !self.link_up(a, b) {
                        self.disconnect(a, b);
                    }
                }
            }
            Action::Heal => {
                let before: BTreeSet<(usize, usize)> = self
                    .all_links()
                    .into_iter()
                    .filter(|&(a, b)| self.link_up(a, b))
                    .collect();
                self.partition = None;
                for (a, b) in self.all_links() {
                    if self.link_up(a, b) && !before.contains(&(a, b)) {
                        self.connect(a, b);
                    }
                }
            }
            Action::Crash(i) => self.crash(i, false),
            Action::CrashTorn(i) => self.crash(i, true),
            Action::Restart { node, wipe } => {
                if self.nodes[node].core.is_some() {
                    return;
                }
                if wipe {
                    self.nodes[node].disk.wipe();
                    if !self.is_proposer(node) {
                        // A wiped voter forgot what it signed: it is no longer honest.
                        self.nodes[node].wiped = true;
                    }
                    self.nodes[node].max_epoch = Epoch::NIL;
                }
                self.boot(node);
                let peers: Vec<usize> = self
                    .neighbours(node)
                    .into_iter()
                    .filter(|&j| self.link_up(node, j))
                    .collect();
                for j in peers {
                    *self.link_gen.entry(Self::key(node, j)).or_insert(0) += 1;
                    self.connect(node, j);
                }
            }
            Action::SetLoss(p) => self.cfg.loss = p,
            Action::Block { from, kind } => {
                self.drop_rules.entry(from).or_default().insert(kind);
            }
            Action::Allow(from) => {
                self.drop_rules.remove(&from);
            }
        }
    }

    pub(super) fn all_links(&self) -> Vec<(usize, usize)> {
        let mut v = Vec::new();
        for a in 0..self.len() {
            for b in a + 1..self.len() {
                if self.is_proposer(a) || self.is_proposer(b) {
                    v.push((a, b));
                }
            }
        }
        v
    }

    /// Stops node `i`; with `torn`, inside a write (see [`Action::CrashTorn`]).
    fn crash(&mut self, i: usize, torn: bool) {
        if self.nodes[i].core.is_none() {
            return;
        }
        let peers: Vec<usize> = self
            .neighbours(i)
            .into_iter()
            .filter(|&j| self.link_up(i, j))
            .collect();
        for j in peers {
            self.disconnect(i, j);
        }
        // Whatever the disk had not synced is lost with the process, so the
        // node may restart below the epoch it had reached in memory (nothing of
        // that epoch left the gate), never below its durable one.
        if torn {
            self.keep_torn_prefix(i);
        }
        let n = &mut self.nodes[i];
        n.max_epoch = n.max_epoch.min(n.disk.epoch().unwrap_or(Epoch::NIL));
        n.core = None;
        n.inc += 1;
        n.driver = Driver::new();
        n.unsynced.clear();
        n.batch_ends.clear();
        n.syncing = false;
        n.wake = None;
    }

    /// A crash inside a group commit: the disk wrote its records in order and the
    /// process died after a random prefix of them reached the platter. The core never
    /// learnt they were durable, so it must cope with finding them (or not) on restart.
    /// With [`crate::SimConfig::torn_at_batch_ends`] the prefix ends where one driver
    /// call's records end, as pala-storage's commit markers guarantee.
    fn keep_torn_prefix(&mut self, i: usize) {
        let len = self.nodes[i].unsynced.len();
        let keep = if self.cfg.torn_at_batch_ends {
            let n = &self.nodes[i];
            let cuts: Vec<usize> = std::iter::once(0)
                .chain(
                    n.batch_ends
                        .iter()
                        .map(|e| n.unsynced.iter().take_while(|(s, _)| s <= e).count()),
                )
                .collect();
            cuts[self.rng.gen_range(0..cuts.len())]
        } else {
            self.rng.gen_range(0..=len)
        };
        let n = &mut self.nodes[i];
        for (_, r) in n.unsynced.iter().take(keep) {
            n.disk.apply(r);
        }
        let kinds: Vec<String> = if self.cfg.trace {
            let n = &self.nodes[i];
            n.unsynced
                .iter()
                .map(|(_, r)| format!("{r:?}").chars().take(60).collect())
                .collect()
        } else {
            Vec::new()
        };
        self.log(|| format!("n{i} torn crash keeps {keep} of {len} unsynced records: {kinds:?}"));
    }
}
