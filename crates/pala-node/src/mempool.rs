//! The transaction pool: size-limited, de-duplicated by hash, first in first out.

use crate::config::MempoolSection;
use pala_types::Hash;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use thiserror::Error;

/// Why a transaction was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MempoolError {
    /// The pool holds its maximum of transactions or bytes.
    #[error("mempool full ({0}); retry later")]
    Full(&'static str),
    /// The transaction is larger than `mempool.max_tx_bytes`.
    #[error("transaction of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The same transaction is already pooled.
    #[error("duplicate transaction")]
    Duplicate,
}

/// A bounded pool of transactions waiting for a block.
#[derive(Debug)]
pub struct Mempool {
    limits: MempoolSection,
    order: VecDeque<Hash>,
    txs: HashMap<Hash, Vec<u8>>,
    bytes: usize,
}

impl Mempool {
    /// An empty pool with these limits.
    pub fn new(limits: MempoolSection) -> Self {
        Mempool {
            limits,
            order: VecDeque::new(),
            txs: HashMap::new(),
            bytes: 0,
        }
    }

    /// Adds a transaction.
    pub fn insert(&mut self, tx: Vec<u8>) -> Result<Hash, MempoolError> {
        if tx.len() > self.limits.max_tx_bytes {
            return Err(MempoolError::TooLarge {
                size: tx.len(),
                limit: self.limits.max_tx_bytes,
            });
        }
        if self.txs.len() >= self.limits.max_txs {
            return Err(MempoolError::Full("transaction count"));
        }
        if self.bytes + tx.len() > self.limits.max_bytes {
            return Err(MempoolError::Full("bytes"));
        }
        let h = Hash::of(&tx);
        if self.txs.contains_key(&h) {
            return Err(MempoolError::Duplicate);
        }
        self.bytes += tx.len();
        self.txs.insert(h, tx);
        self.order.push_back(h);
        Ok(h)
    }

    /// Takes up to `max_txs` transactions of at most `max_bytes` in total, oldest first.
    pub fn take(&mut self, max_txs: usize, max_bytes: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut size = 0;
        while out.len() < max_txs {
            let Some(h) = self.order.front().copied() else {
                break;
            };
            let Some(len) = self.txs.get(&h).map(Vec::len) else {
                // Removed because another proposer's block finalized it.
                self.order.pop_front();
                continue;
            };
            if size + len > max_bytes && !out.is_empty() {
                break;
            }
            self.order.pop_front();
            if let Some(tx) = self.txs.remove(&h) {
                size += tx.len();
                self.bytes -= tx.len();
                out.push(tx);
            }
        }
        out
    }

    /// Drops transactions that were finalized (included by another proposer).
    pub fn remove(&mut self, hashes: impl IntoIterator<Item = Hash>) {
        for h in hashes {
            if let Some(tx) = self.txs.remove(&h) {
                self.bytes -= tx.len();
            }
        }
        // Stale entries in `order` are skipped by `take`; compact so a standby proposer
        // that never takes does not grow it without bound.
        if self.order.len() > 2 * self.txs.len() + 1024 {
            let txs = &self.txs;
            self.order.retain(|h| txs.contains_key(h));
        }
    }

    /// (transactions, bytes) held.
    pub fn size(&self) -> (usize, usize) {
        (self.txs.len(), self.bytes)
    }

    /// Whether a block of these limits could be filled now.
    pub fn can_fill(&self, max_txs: usize, max_bytes: usize) -> bool {
        self.txs.len() >= max_txs || self.bytes >= max_bytes
    }
}

/// The pool as the stages use it: the HTTP API inserts, the consensus stage takes a
/// block's worth, the application stage removes what was finalized. Each call holds the
/// pool's lock for its own work only, so no stage waits on another's processing.
#[derive(Clone)]
pub struct MempoolHandle {
    pool: Arc<Mutex<Mempool>>,
    /// Called when a transaction lands in an empty pool (the block cadence wakes on it).
    on_first: Arc<OnceLock<Box<dyn Fn() + Send + Sync>>>,
}

impl std::fmt::Debug for MempoolHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MempoolHandle")
            .field("size", &self.size())
            .finish()
    }
}

impl MempoolHandle {
    /// An empty pool with these limits.
    pub fn new(limits: MempoolSection) -> Self {
        MempoolHandle {
            pool: Arc::new(Mutex::new(Mempool::new(limits))),
            on_first: Arc::new(OnceLock::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Mempool> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a transaction.
    pub fn insert(&self, tx: Vec<u8>) -> Result<Hash, MempoolError> {
        let (res, was_empty) = {
            let mut pool = self.lock();
            let was_empty = pool.txs.is_empty();
            (pool.insert(tx), was_empty)
        };
        if was_empty && res.is_ok() {
            if let Some(wake) = self.on_first.get() {
                wake();
            }
        }
        res
    }

    /// Sets what to call when a transaction lands in an empty pool (once; later calls
    /// are ignored).
    pub fn on_first_transaction(&self, wake: impl Fn() + Send + Sync + 'static) {
        let _ = self.on_first.set(Box::new(wake));
    }

    /// No transaction waits.
    pub fn is_empty(&self) -> bool {
        self.lock().txs.is_empty()
    }

    /// A block's worth of transactions if the pool can fill a block or `anyway` is set
    /// (the block's wait is over); `None` otherwise.
    pub fn take_block(
        &self,
        max_txs: usize,
        max_bytes: usize,
        anyway: bool,
    ) -> Option<Vec<Vec<u8>>> {
        let mut pool = self.lock();
        (anyway || pool.can_fill(max_txs, max_bytes)).then(|| pool.take(max_txs, max_bytes))
    }

    /// Removes finalized transactions.
    pub fn remove(&self, hashes: impl IntoIterator<Item = Hash>) {
        self.lock().remove(hashes)
    }

    /// (transactions, bytes) held.
    pub fn size(&self) -> (usize, usize) {
        self.lock().size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(max_txs: usize, max_bytes: usize) -> Mempool {
        Mempool::new(MempoolSection {
            max_txs,
            max_bytes,
            max_tx_bytes: 10,
        })
    }

    #[test]
    fn limits_and_order() {
        let mut p = pool(3, 20);
        assert_eq!(
            p.insert(vec![0; 11]),
            Err(MempoolError::TooLarge {
                size: 11,
                limit: 10
            })
        );
        p.insert(vec![1; 8]).unwrap();
        assert_eq!(p.insert(vec![1; 8]), Err(MempoolError::Duplicate));
        p.insert(vec![2; 8]).unwrap();
        assert_eq!(p.insert(vec![3; 8]), Err(MempoolError::Full("bytes")));
        p.insert(vec![4; 2]).unwrap();
        assert_eq!(
            p.insert(vec![5; 1]),
            Err(MempoolError::Full("transaction count"))
        );
        p.remove([Hash::of(&[2; 8])]);
        assert_eq!(p.size(), (2, 10));
        assert_eq!(p.take(10, 9), vec![vec![1; 8]]);
        assert_eq!(p.take(10, 100), vec![vec![4; 2]]);
        assert_eq!(p.size(), (0, 0));
    }
}
