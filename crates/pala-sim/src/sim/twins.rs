//! Twins (as in the Twins method of BFT testing): a second instance of one voter's key,
//! with its own disk and core, so the key signs from two views. Each proposer is linked
//! to exactly one instance; which one is the split of views. Both instances count as
//! one byzantine voter against the fault budget.

use super::{Sim, SimConfig};
use pala_types::{NodeId, Signature, Signer};
use std::sync::Arc;

/// Appends a copy of each twin's key (signer and proof of possession); the twin of
/// `cfg.twins[k]` gets node index `cfg.twin_index(k)`, after every key a session names.
pub(super) fn add_keys(
    cfg: &SimConfig,
    mut signers: Vec<Arc<dyn Signer>>,
    mut pops: Vec<Signature>,
) -> (Vec<Arc<dyn Signer>>, Vec<Signature>) {
    for t in &cfg.twins {
        signers.push(signers[t.of].clone());
        pops.push(pops[t.of].clone());
    }
    (signers, pops)
}

impl Sim {
    /// Index of the first twin instance.
    fn first_twin(&self) -> usize {
        self.len() - self.cfg.twins.len()
    }

    /// True when `a` and `b` must not be linked because one is an instance of a twin
    /// key and the other is a proposer on the other instance's side.
    pub(super) fn twin_split(&self, a: usize, b: usize) -> bool {
        if self.cfg.twins.is_empty() {
            return false;
        }
        let first = self.first_twin();
        self.cfg.twins.iter().enumerate().any(|(k, t)| {
            let twin = first + k;
            let cut = |x: usize, p: usize| {
                (x == twin && !t.sides.contains(&p)) || (x == t.of && t.sides.contains(&p))
            };
            cut(a, b) || cut(b, a)
        })
    }

    /// The instance a message from `from` addressed to `to` goes to.
    pub(super) fn route(&self, from: usize, to: &NodeId) -> Option<usize> {
        let j = self.index.get(to).copied()?;
        let first = self.first_twin();
        match self.cfg.twins.iter().position(|t| t.of == j) {
            Some(k) if self.twin_split(from, j) => Some(first + k),
            _ => Some(j),
        }
    }

    /// Whether node `i` is one instance of a twin key.
    pub fn is_twin(&self, i: usize) -> bool {
        i >= self.first_twin() || self.cfg.twins.iter().any(|t| t.of == i)
    }
}
