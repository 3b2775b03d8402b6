//! The storage executor: awaits jobs, commits them in groups, reports durability.

use super::ingress::{CommitStats, Message, PersistJob, StorageEvents, StorageMailbox};
use super::MAX_GROUP;
use anyhow::{anyhow, Context, Result};
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};
use pala_storage::{LogWriter, Storage};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// The running stage.
pub struct StorageStage {
    tx: flume::Sender<Message>,
    join: Option<ExecutorJoinHandle<Result<()>>>,
}

impl StorageStage {
    /// Starts the stage on its own executor (pinned to `cpu` when given). With
    /// `compact_every`, the stage applies the storage's retention policy at most that often,
    /// between two group commits (`[storage]`).
    pub fn spawn(
        writer: Storage,
        cpu: Option<usize>,
        events: StorageEvents,
        compact_every: Option<Duration>,
    ) -> Result<(StorageStage, StorageMailbox)> {
        let (tx, rx) = flume::unbounded();
        let placement = cpu.map_or(Placement::Unbound, Placement::Fixed);
        let join = LocalExecutorBuilder::new(placement)
            .name("pala-storage")
            // Batches are larger than any registered buffer pool worth locking in memory;
            // their DMA buffers come from the heap.
            .io_memory(64 << 10)
            .spawn(move || async move { run(writer, rx, events, compact_every).await })
            .map_err(|e| anyhow!("starting the storage executor: {e}"))?;
        Ok((
            StorageStage {
                tx: tx.clone(),
                join: Some(join),
            },
            StorageMailbox { tx },
        ))
    }

    /// Drains queued jobs, syncs, and stops.
    pub fn shutdown(mut self) -> Result<()> {
        let _ = self.tx.send(Message::Stop);
        let join = self.join.take().expect("joined once");
        join.join()
            .map_err(|e| anyhow!("the storage executor panicked: {e}"))?
    }
}

impl Drop for StorageStage {
    fn drop(&mut self) {
        // Without a shutdown the executor still stops once it has drained the queue.
        let _ = self.tx.send(Message::Stop);
    }
}

async fn run(
    store: Storage,
    rx: flume::Receiver<Message>,
    events: StorageEvents,
    compact_every: Option<Duration>,
) -> Result<()> {
    let mut compacted = Instant::now();
    let mut writer = match LogWriter::new(store).await {
        Ok(w) => w,
        Err(e) => {
            let msg = format!("storage could not start, stopping the node: {e}");
            (events.fatal)(msg.clone());
            return Err(anyhow!(msg));
        }
    };
    info!(io = ?writer.io_path(), "storage stage started");
    let mut stopping = false;
    while !stopping {
        let mut group = match rx.recv_async().await {
            Ok(Message::Persist(job)) => vec![job],
            Ok(Message::Stop) => {
                stopping = true;
                Vec::new()
            }
            Err(_) => break,
        };
        loop {
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(Message::Persist(job)) => group.push(job),
                    Ok(Message::Stop) => stopping = true,
                    Err(_) => break,
                }
            }
            if group.is_empty() {
                break;
            }
            commit(&mut writer, &group, &events).await?;
            group.clear();
            if compact_every.is_some_and(|every| compacted.elapsed() >= every) {
                compacted = Instant::now();
                compact(&mut writer).await;
            }
            // Once stopping, everything queued before (or with) the Stop is committed.
            if !stopping {
                break;
            }
        }
    }
    writer
        .close()
        .await
        .context("closing the storage after the last commit")?;
    debug!("storage stage stopped");
    Ok(())
}

/// Deletes the segments that hold only finalized blocks below the retention window. A
/// failure is logged: the next commit reports a storage that can no longer write.
async fn compact(writer: &mut LogWriter) {
    let t = Instant::now();
    match writer.compact().await {
        Ok(deleted) if !deleted.is_empty() => info!(
            segments = ?deleted,
            ms = t.elapsed().as_millis() as u64,
            finalized = ?writer.finalized_range(),
            "storage compacted below the retention window"
        ),
        Ok(_) => {}
        Err(e) => warn!("storage compaction failed: {e}"),
    }
}

/// One group commit; on failure reports the fatal error and returns it.
async fn commit(
    writer: &mut LogWriter,
    group: &[PersistJob],
    events: &StorageEvents,
) -> Result<()> {
    let seq = group.iter().map(|j| j.seq).max().unwrap_or(0);
    let records: usize = group.iter().map(|j| j.records.len()).sum();
    let t = Instant::now();
    let result = async {
        for r in group.iter().flat_map(|j| &j.records) {
            let _ticket = writer.append(r)?;
        }
        writer.sync().await
    }
    .await;
    match result {
        Ok(durable) => {
            (events.durable)(seq);
            (events.committed)(CommitStats {
                records,
                bytes: durable.bytes(),
                duration: t.elapsed(),
            });
            Ok(())
        }
        Err(e) => {
            let msg = format!(
                "storage failed, stopping the node: {e}; restart it to recover the data \
                 directory (recovery keeps every acknowledged batch)"
            );
            (events.fatal)(msg.clone());
            Err(anyhow!(msg))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::storage::StorageStopped;
    use pala_storage::{Options, Record};
    use std::sync::{Arc, Mutex};

    /// Direct IO needs a real filesystem: the workspace's target dir, not /tmp.
    fn disk_dir() -> tempfile::TempDir {
        let base = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/stage-tests");
        std::fs::create_dir_all(base).unwrap();
        tempfile::tempdir_in(base).unwrap()
    }

    #[test]
    fn commits_in_groups_and_reports_durability_in_order() {
        let tmp = disk_dir();
        let store = Storage::open(tmp.path(), Options::default()).unwrap();
        let reader = store.reader();
        let durable = Arc::new(Mutex::new(Vec::new()));
        let commits = Arc::new(Mutex::new(Vec::new()));
        let fatal = Arc::new(Mutex::new(Vec::new()));
        let events = StorageEvents {
            durable: Box::new({
                let d = durable.clone();
                move |seq| d.lock().unwrap().push(seq)
            }),
            committed: Box::new({
                let c = commits.clone();
                move |s| c.lock().unwrap().push(s)
            }),
            fatal: Box::new({
                let f = fatal.clone();
                move |m| f.lock().unwrap().push(m)
            }),
        };
        let (stage, mailbox) = StorageStage::spawn(store, None, events, None).unwrap();
        const JOBS: u32 = 600;
        for i in 1..=JOBS {
            let job = PersistJob {
                seq: i as u64,
                records: vec![Record::StopBlock {
                    session: i,
                    height: i as u64,
                }],
            };
            mailbox.persist(job).unwrap();
        }
        stage.shutdown().unwrap();
        assert!(fatal.lock().unwrap().is_empty());
        let durable = durable.lock().unwrap();
        assert!(durable.windows(2).all(|w| w[0] < w[1]), "{durable:?}");
        assert_eq!(durable.last(), Some(&(JOBS as u64)));
        let commits = commits.lock().unwrap();
        assert_eq!(
            commits.iter().map(|c| c.records).sum::<usize>(),
            JOBS as usize
        );
        assert!(commits
            .iter()
            .all(|c| c.records <= MAX_GROUP && c.bytes > 0));
        assert_eq!(commits.len(), durable.len());
        // The reader taken before the hand-over saw every commit.
        assert_eq!(reader.stop_blocks().len(), JOBS as usize);
        assert_eq!(
            mailbox.persist(PersistJob {
                seq: 601,
                records: Vec::new()
            }),
            Err(StorageStopped)
        );
        drop(reader);
        let reopened = Storage::open(tmp.path(), Options::default()).unwrap();
        assert!(reopened.recovery_report().is_clean());
        assert_eq!(reopened.stop_blocks().len(), JOBS as usize);
    }
}
