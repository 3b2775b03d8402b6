//! Group commit through io_uring with direct IO (`O_DIRECT`), on a glommio executor.
//!
//! A batch is staged and sealed exactly as on the page-cache path (same records, same
//! crc32c, same commit marker); only the write and the fdatasync change. `O_DIRECT` wants
//! offsets and lengths in whole blocks ([`DMA_BLOCK`]), so each commit writes from the
//! start of the block holding the log's logical end: the committed bytes already in that
//! block (kept in memory from the previous write), then the new batch, then zeros up to
//! the next block boundary. The committed prefix is rewritten with identical bytes, so a
//! write torn anywhere can only damage the new, unacknowledged batch; recovery then cuts
//! at the last commit marker as always. The file length ends on a block boundary; the
//! logical length (the end of the last commit marker) is kept apart from it, and recovery
//! recognises the zero padding (`segment` module docs). Reads keep using the memory maps:
//! the kernel invalidates cached pages of a range written with `O_DIRECT`, and readers only
//! touch bytes below the published logical length.
//!
//! `O_DIRECT` does not work everywhere (tmpfs, some overlay filesystems): [`LogWriter::new`]
//! probes the directory with an aligned direct write and, unless [`WritePath::Dma`] was
//! demanded, falls back to the page cache with a warning.

use crate::error::{Result, StorageError};
use crate::segment::DMA_BLOCK;
use crate::store::{Durable, WritePath};
use crate::writer::{CommitIoHook, Sealed, Storage};
use crate::{Pending, Record};
use glommio::io::{DmaFile, OpenOptions};
use std::ops::{Deref, DerefMut};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Which write path a [`LogWriter`] ended up on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoPath {
    /// `O_DIRECT` writes and fdatasync submitted through io_uring.
    Dma,
    /// Positional writes and fdatasync through the page cache (blocking the executor for
    /// the sync; used only where direct IO is unavailable or was not wanted).
    PageCache,
}

/// The writer a storage executor drives: [`Storage`] with its write and fdatasync
/// submitted through glommio's io_uring reactor. Must be created and used on a glommio
/// executor (glommio files are bound to their executor); it is not `Send`.
///
/// Everything else of [`Storage`] (staging, reads, pruning) is reachable through `Deref`;
/// use [`LogWriter::sync`] and [`LogWriter::commit`] instead of the blocking ones.
pub struct LogWriter {
    store: Storage,
    dma: Option<DmaTail>,
}

/// The open direct-IO file of the active segment and the committed bytes of its last,
/// partial block (rewritten in front of the next batch).
struct DmaTail {
    segment: u64,
    file: DmaFile,
    /// Offset of the block holding the logical end.
    block_at: u64,
    /// Committed bytes from `block_at` to the logical end (less than one block).
    committed: Vec<u8>,
}

impl Deref for LogWriter {
    type Target = Storage;
    fn deref(&self) -> &Storage {
        &self.store
    }
}

impl DerefMut for LogWriter {
    fn deref_mut(&mut self) -> &mut Storage {
        &mut self.store
    }
}

impl LogWriter {
    /// Takes over `store` (opened and recovered with [`Storage::open`]) and chooses the
    /// write path from its [`Options::write_path`](crate::Options::write_path).
    pub async fn new(store: Storage) -> Result<LogWriter> {
        let want = store.options().write_path;
        let mut w = LogWriter { store, dma: None };
        if want == WritePath::PageCache {
            return Ok(w);
        }
        let probed = match probe_direct_io(w.store.dir()) {
            Ok(()) => w.open_tail().await.map_err(|e| e.to_string()),
            Err(reason) => Err(reason),
        };
        match probed {
            Ok(tail) => {
                w.dma = Some(tail);
                tracing::info!(dir = %w.store.dir().display(), "storage writes with O_DIRECT through io_uring");
            }
            Err(reason) if want == WritePath::Dma => {
                return Err(StorageError::DirectIoUnsupported {
                    dir: w.store.dir().to_path_buf(),
                    reason,
                })
            }
            Err(reason) => {
                tracing::warn!(
                    dir = %w.store.dir().display(),
                    %reason,
                    "O_DIRECT is not supported here; storage falls back to page-cache writes \
                     (slower for large batches; put the data directory on ext4/xfs for direct IO)"
                );
            }
        }
        Ok(w)
    }

    /// The write path in use.
    pub fn io_path(&self) -> IoPath {
        match self.dma {
            Some(_) => IoPath::Dma,
            None => IoPath::PageCache,
        }
    }

    /// Gives the [`Storage`] back (for a blocking caller, after the executor is done).
    pub fn into_storage(self) -> Storage {
        self.store
    }

    async fn open_tail(&self) -> Result<DmaTail> {
        let a = &self.store.active;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .dma_open(&a.path)
            .await
            .map_err(|e| glommio_err("open for direct IO", &a.path, e))?;
        if file.alignment() > DMA_BLOCK as u64 {
            return Err(StorageError::DirectIoUnsupported {
                dir: self.store.dir().to_path_buf(),
                reason: format!(
                    "the device needs {}-byte alignment, more than the log's {DMA_BLOCK}-byte blocks",
                    file.alignment()
                ),
            });
        }
        let block_at = a.len - a.len % DMA_BLOCK as u64;
        let mut committed = vec![0u8; (a.len - block_at) as usize];
        a.file
            .read_exact_at(&mut committed, block_at)
            .map_err(crate::error::io_err("read the tail block of", &a.path))?;
        Ok(DmaTail {
            segment: a.id,
            file,
            block_at,
            committed,
        })
    }

    /// Stages a record (see [`Storage::append`]).
    pub fn append(&mut self, record: &Record) -> Result<Pending> {
        self.store.append(record)
    }

    /// [`Storage::sync`] with the write and the fdatasync submitted through io_uring:
    /// the executor runs other tasks while the disk works, and readers are never held up.
    pub async fn sync(&mut self) -> Result<Durable> {
        if self.dma.is_none() {
            return self.store.sync();
        }
        let Some(sealed) = self.store.seal()? else {
            return Ok(self.store.ack_durable());
        };
        if self
            .dma
            .as_ref()
            .is_some_and(|t| t.segment != sealed.segment)
        {
            // Rolled over: the new segment holds only its header so far.
            let old = self.dma.take().expect("dma tail");
            let tail = self.open_tail().await;
            let _ = old.file.close().await;
            match tail {
                Ok(t) => self.dma = Some(t),
                // The sealed batch cannot be written; sealing again would stack commit
                // markers, so the storage is unusable until reopened.
                Err(e) => {
                    self.store.poison_with(e.to_string());
                    return Err(e);
                }
            }
        }
        let tail = self.dma.as_mut().expect("dma tail");
        if let Err(e) = tail
            .write(&self.store.buf, &sealed, &self.store.commit_io_hook)
            .await
        {
            return Err(self.store.poison("direct write/fdatasync of", e));
        }
        self.store.publish(sealed)
    }

    /// Stages `records` and syncs them as one batch (see [`Storage::commit`]).
    pub async fn commit<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a Record>,
    ) -> Result<Durable> {
        self.store.stage_all(records)?;
        self.sync().await
    }

    /// [`Storage::compact`] with the copies written through this writer's path: a
    /// blocking write beside the direct-IO tail would leave the tail's cached block stale.
    /// Returns the deleted segment ids.
    pub async fn compact(&mut self) -> Result<Vec<u64>> {
        self.store.check_poisoned()?;
        let crate::store::Retention::KeepFinalizedHeights(keep) = self.store.options().retention
        else {
            return Ok(Vec::new());
        };
        let Some(victims) = self.store.compaction_victims(keep) else {
            return Ok(Vec::new());
        };
        let copies = self.store.compaction_copies(&victims)?;
        self.commit(&copies).await?;
        self.store.remove_segments(&victims)?;
        Ok(victims)
    }

    /// Syncs anything staged and closes the direct-IO file.
    pub async fn close(mut self) -> Result<Durable> {
        let d = self.sync().await?;
        if let Some(t) = self.dma.take() {
            let _ = t.file.close().await;
        }
        Ok(d)
    }
}

impl DmaTail {
    /// Writes committed tail + `batch` + zero padding at `block_at`, then fdatasyncs.
    async fn write(
        &mut self,
        batch: &[u8],
        sealed: &Sealed,
        hook: &CommitIoHook,
    ) -> std::io::Result<()> {
        debug_assert_eq!(self.block_at + self.committed.len() as u64, sealed.base);
        let data = self.committed.len() + batch.len();
        let padded = data.next_multiple_of(DMA_BLOCK);
        let mut buf = self.file.alloc_dma_buffer(padded);
        let bytes = buf.as_bytes_mut();
        bytes[..self.committed.len()].copy_from_slice(&self.committed);
        bytes[self.committed.len()..data].copy_from_slice(batch);
        bytes[data..].fill(0);
        // Keep the new partial block before the buffer goes to the kernel.
        let last_block = data - data % DMA_BLOCK;
        let next_committed = bytes[last_block..data].to_vec();
        let written = self
            .file
            .write_at(buf, self.block_at)
            .await
            .map_err(std::io::Error::from)?;
        if written != padded {
            return Err(std::io::Error::other(format!(
                "short direct write: {written} of {padded} bytes"
            )));
        }
        hook.fire();
        self.file.fdatasync().await.map_err(std::io::Error::from)?;
        self.block_at += last_block as u64;
        self.committed = next_committed;
        Ok(())
    }
}

fn glommio_err(op: &'static str, path: &Path, e: glommio::GlommioError<()>) -> StorageError {
    StorageError::Io {
        op,
        path: path.to_path_buf(),
        source: std::io::Error::from(e),
    }
}

/// Checks that `dir` accepts an aligned `O_DIRECT` write (and is not tmpfs, where glommio
/// would silently fall back to buffered IO). The reason names what failed.
pub(crate) fn probe_direct_io(dir: &Path) -> std::result::Result<(), String> {
    let cdir = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: statfs writes into the zeroed struct we pass; the path is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(cdir.as_ptr(), &mut st) } != 0 {
        return Err(format!("statfs: {}", std::io::Error::last_os_error()));
    }
    // The field's integer type differs between architectures.
    #[allow(clippy::unnecessary_cast)]
    if st.f_type as i64 == libc::TMPFS_MAGIC as i64 {
        return Err("the directory is on tmpfs, which has no direct IO".into());
    }
    let path = dir.join(".pala-dma-probe");
    let result = (|| {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
            .map_err(|e| format!("open with O_DIRECT: {e}"))?;
        let layout = std::alloc::Layout::from_size_align(DMA_BLOCK, DMA_BLOCK).expect("layout");
        // SAFETY: the layout has a non-zero size; the block is freed below and only read
        // through the slice while alive.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err("out of memory".to_string());
        }
        let block = unsafe { std::slice::from_raw_parts(ptr, DMA_BLOCK) };
        let r = f.write_at(block, 0);
        unsafe { std::alloc::dealloc(ptr, layout) };
        match r {
            Ok(n) if n == DMA_BLOCK => Ok(()),
            Ok(n) => Err(format!(
                "aligned O_DIRECT write wrote {n} of {DMA_BLOCK} bytes"
            )),
            Err(e) => Err(format!("aligned O_DIRECT write: {e}")),
        }
    })();
    let _ = std::fs::remove_file(&path);
    result
}
