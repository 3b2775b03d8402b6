//! The storage loop: group commit on its own executor.

use super::ingress::{CommitStats, PersistJob, StorageEvents, StorageMailbox};
use crate::preflight::placement;
use anyhow::{anyhow, Result};
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder};
use pala_storage::Storage;
use std::sync::{Arc, RwLock};
use std::time::Instant;
use tracing::debug;

/// The writing half of the store (given to [`StorageStage::spawn`]).
pub struct StorageWriter {
    pub(super) inner: Arc<RwLock<Storage>>,
}

/// The running stage.
pub struct StorageStage {
    executor: ExecutorJoinHandle<()>,
}

/// Jobs taken into one group commit at most.
const GROUP_MAX: usize = 256;

impl StorageStage {
    /// Starts the stage on its own executor (pinned to `cpu` when given).
    pub fn spawn(
        writer: StorageWriter,
        cpu: Option<usize>,
        events: StorageEvents,
    ) -> Result<(StorageStage, StorageMailbox)> {
        let (tx, rx) = flume::unbounded::<PersistJob>();
        let executor = LocalExecutorBuilder::new(placement(cpu.map_or(-1, |c| c as i64)))
            .name("pala-storage")
            .io_memory(64 << 10)
            .spawn(move || async move { run(writer, rx, events).await })
            .map_err(|e| anyhow!("starting the storage executor: {e}"))?;
        Ok((StorageStage { executor }, StorageMailbox { jobs: tx }))
    }

    /// Drains queued jobs, syncs, and stops (once every mailbox is dropped).
    pub fn shutdown(self) -> Result<()> {
        self.executor
            .join()
            .map_err(|e| anyhow!("the storage executor failed: {e}"))
    }
}

async fn run(writer: StorageWriter, jobs: flume::Receiver<PersistJob>, events: StorageEvents) {
    while let Ok(first) = jobs.recv_async().await {
        let mut group = vec![first];
        while group.len() < GROUP_MAX {
            match jobs.try_recv() {
                Ok(j) => group.push(j),
                Err(_) => break,
            }
        }
        let seq = group.iter().map(|j| j.seq).max().unwrap_or(0);
        let t = Instant::now();
        let result = (|| -> pala_storage::Result<pala_storage::Durable> {
            let mut st = writer.inner.write().unwrap_or_else(|e| e.into_inner());
            for j in &group {
                for r in &j.records {
                    let _ = st.append(r)?;
                }
            }
            st.sync()
        })();
        match result {
            Ok(done) => {
                (events.committed)(CommitStats {
                    records: done.records(),
                    bytes: done.bytes(),
                    duration: t.elapsed(),
                });
                (events.durable)(seq);
            }
            Err(e) => {
                (events.fatal)(format!(
                    "storage failed, stopping the node: {e}. Check the disk holding \
                     node.data_dir (space, permissions, kernel log); the node recovers \
                     what is durable on restart"
                ));
                return;
            }
        }
    }
    debug!("storage stage stopped");
}
