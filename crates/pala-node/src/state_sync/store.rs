//! The newest snapshots, kept in `<data_dir>/snapshots/` for peers that join by state
//! sync.
//!
//! ```text
//! snapshot-<height, 20 digits>.bin := magic "PALASNF1" ‖ u32 m ‖ manifest[m]
//!                                     ‖ hash BLAKE3(magic ‖ u32 m ‖ manifest) ‖ chunk*
//! ```
//! The checksum covers the manifest, and the manifest's chunk hashes cover the chunks, so
//! a file is checked whole when the store opens (a damaged one is deleted with a
//! warning: the next snapshot replaces it) and each chunk again when it is read to be
//! served. Files are written to `.tmp`, synced, renamed and the directory synced, so a
//! crash leaves the old set or the new one. A node that found its state disagreeing with
//! a committed one leaves a `DIVERGED` file here and serves no snapshot while it exists.

use super::manifest::Manifest;
use super::Snapshot;
use pala_types::codec::{Decode, Encode};
use pala_types::Hash;
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;

const FILE_MAGIC: &[u8; 8] = b"PALASNF1";
const MARKER: &str = "DIVERGED";

/// Why the store could not do what was asked.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// This node's state disagreed with a committed one; it serves no snapshot.
    #[error("this node serves no snapshot: {0}")]
    Refused(String),
    /// No snapshot at that height is kept.
    #[error("no snapshot at height {0} is kept")]
    NoSuchSnapshot(u64),
    /// The snapshot has no such chunk.
    #[error("snapshot {height} has no chunk {index}")]
    NoSuchChunk {
        /// The snapshot's height.
        height: u64,
        /// The chunk asked for.
        index: u32,
    },
    /// A snapshot file does not hold what its manifest says.
    #[error("snapshot file {path} is damaged: {detail}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// A kept snapshot: its manifest and where its chunks start in its file.
#[derive(Clone, Debug)]
struct Kept {
    manifest: Manifest,
    chunks_at: u64,
}

/// The snapshots kept in one directory.
#[derive(Debug)]
pub struct SnapshotStore {
    dir: PathBuf,
    keep: usize,
    kept: BTreeMap<u64, Kept>,
    refused: Option<String>,
}

fn file_name(height: u64) -> String {
    format!("snapshot-{height:020}.bin")
}

fn header_bytes(manifest: &Manifest) -> Vec<u8> {
    let m = manifest.to_bytes();
    let mut out = Vec::with_capacity(m.len() + 44);
    out.extend_from_slice(FILE_MAGIC);
    out.extend_from_slice(&(m.len() as u32).to_le_bytes());
    out.extend_from_slice(&m);
    let sum = Hash::of(&out);
    out.extend_from_slice(&sum.0);
    out
}

/// Checks a whole snapshot file; returns its manifest and where its chunks start.
fn check_file(bytes: &[u8]) -> Result<Kept, String> {
    if bytes.len() < 12 || &bytes[..8] != FILE_MAGIC {
        return Err("not a pala snapshot file".into());
    }
    let m = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
    let end = 12usize
        .checked_add(m)
        .filter(|e| e + 32 <= bytes.len())
        .ok_or("truncated in its manifest")?;
    if Hash::of(&bytes[..end]).0 != bytes[end..end + 32] {
        return Err("the manifest's checksum does not match".into());
    }
    let manifest = Manifest::from_bytes(&bytes[12..end]).map_err(|e| e.to_string())?;
    let chunks_at = end + 32;
    let mut at = chunks_at;
    for (i, c) in manifest.chunks.iter().enumerate() {
        let chunk = bytes
            .get(at..at + c.len as usize)
            .ok_or_else(|| format!("truncated in chunk {i}"))?;
        if Hash::of(chunk) != c.hash {
            return Err(format!("chunk {i} does not match its hash"));
        }
        at += c.len as usize;
    }
    if at != bytes.len() {
        return Err(format!("{} bytes after the last chunk", bytes.len() - at));
    }
    Ok(Kept {
        manifest,
        chunks_at: chunks_at as u64,
    })
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing directory", dir))
}

impl SnapshotStore {
    /// Opens `dir` (created if missing), keeping at most `keep` snapshots. Damaged files
    /// and leftovers of interrupted writes are deleted; the returned warnings say which.
    pub fn open(dir: &Path, keep: usize) -> Result<(SnapshotStore, Vec<String>), StoreError> {
        std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
        let mut warnings = Vec::new();
        let mut kept = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(io("listing", dir))? {
            let path = entry.map_err(io("listing", dir))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(".tmp") {
                std::fs::remove_file(&path).map_err(io("removing", &path))?;
                continue;
            }
            let Some(height) = name
                .strip_prefix("snapshot-")
                .and_then(|n| n.strip_suffix(".bin"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let bytes = std::fs::read(&path).map_err(io("reading", &path))?;
            match check_file(&bytes) {
                Ok(k) if k.manifest.height == height => {
                    kept.insert(height, k);
                }
                Ok(k) => {
                    warnings.push(format!(
                        "deleted snapshot file {}: it holds height {}",
                        path.display(),
                        k.manifest.height
                    ));
                    std::fs::remove_file(&path).map_err(io("removing", &path))?;
                }
                Err(detail) => {
                    warnings.push(format!(
                        "deleted damaged snapshot file {}: {detail} (the next snapshot \
                         replaces it)",
                        path.display()
                    ));
                    std::fs::remove_file(&path).map_err(io("removing", &path))?;
                }
            }
        }
        let marker = dir.join(MARKER);
        let refused = match std::fs::read_to_string(&marker) {
            Ok(reason) => Some(reason.trim().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io("reading", &marker)(e)),
        };
        let mut store = SnapshotStore {
            dir: dir.to_path_buf(),
            keep: keep.max(1),
            kept,
            refused,
        };
        store.prune()?;
        Ok((store, warnings))
    }

    /// Writes `snap` and deletes the oldest snapshots beyond `keep`.
    pub fn write(&mut self, snap: &Snapshot) -> Result<(), StoreError> {
        if let Some(r) = &self.refused {
            return Err(StoreError::Refused(r.clone()));
        }
        let height = snap.manifest.height;
        let path = self.dir.join(file_name(height));
        let tmp = path.with_extension("tmp");
        let header = header_bytes(&snap.manifest);
        let written = (|| {
            let f = std::fs::File::create(&tmp)?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
            w.write_all(&header)?;
            for c in &snap.chunks {
                w.write_all(c)?;
            }
            w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(io("writing snapshot", &path)(e));
        }
        sync_dir(&self.dir)?;
        self.kept.insert(
            height,
            Kept {
                manifest: snap.manifest.clone(),
                chunks_at: header.len() as u64,
            },
        );
        self.prune()
    }

    fn prune(&mut self) -> Result<(), StoreError> {
        let mut removed = false;
        while self.kept.len() > self.keep {
            let (h, _) = self.kept.pop_first().expect("more than keep >= 1");
            let path = self.dir.join(file_name(h));
            std::fs::remove_file(&path).map_err(io("removing", &path))?;
            removed = true;
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// The kept snapshots' manifests, newest first (none while serving is refused).
    pub fn manifests(&self) -> Vec<&Manifest> {
        if self.refused.is_some() {
            return Vec::new();
        }
        self.kept.values().rev().map(|k| &k.manifest).collect()
    }

    /// Heights of the kept snapshots, newest first, whether or not they are served.
    pub fn heights(&self) -> Vec<u64> {
        self.kept.keys().rev().copied().collect()
    }

    /// Reads chunk `index` of the snapshot at `height`, checked against its manifest.
    pub fn read_chunk(&self, height: u64, index: u32) -> Result<Vec<u8>, StoreError> {
        if let Some(r) = &self.refused {
            return Err(StoreError::Refused(r.clone()));
        }
        let kept = self
            .kept
            .get(&height)
            .ok_or(StoreError::NoSuchSnapshot(height))?;
        let info = *kept
            .manifest
            .chunks
            .get(index as usize)
            .ok_or(StoreError::NoSuchChunk { height, index })?;
        let offset = kept.chunks_at
            + kept.manifest.chunks[..index as usize]
                .iter()
                .map(|c| c.len as u64)
                .sum::<u64>();
        let path = self.dir.join(file_name(height));
        let mut f = std::fs::File::open(&path).map_err(io("opening", &path))?;
        let mut buf = vec![0; info.len as usize];
        f.seek(SeekFrom::Start(offset))
            .and_then(|_| f.read_exact(&mut buf))
            .map_err(io("reading", &path))?;
        if Hash::of(&buf) != info.hash {
            return Err(StoreError::Damaged {
                path,
                detail: format!("chunk {index} does not match its hash"),
            });
        }
        Ok(buf)
    }

    /// Stops serving snapshots, now and after restarts, for `reason` (kept in the
    /// `DIVERGED` file until an operator removes it).
    pub fn refuse_serving(&mut self, reason: &str) -> Result<(), StoreError> {
        self.refused = Some(reason.to_string());
        let marker = self.dir.join(MARKER);
        let tmp = marker.with_extension("tmp");
        std::fs::write(&tmp, format!("{reason}\n"))
            .and_then(|_| std::fs::rename(&tmp, &marker))
            .map_err(io("writing", &marker))?;
        sync_dir(&self.dir)
    }

    /// Why serving is refused, if it is.
    pub fn refused(&self) -> Option<&str> {
        self.refused.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state_sync::ChunkInfo;

    fn snap(height: u64, chunks: &[&[u8]]) -> Snapshot {
        let chunks: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_vec()).collect();
        Snapshot {
            manifest: Manifest {
                height,
                block_hash: Hash::of(&height.to_le_bytes()),
                state_digest: Hash::of(b"state"),
                total_pairs: chunks.len() as u64,
                app_meta: vec![],
                chunks: chunks.iter().map(|c| ChunkInfo::of(c)).collect(),
            },
            chunks,
        }
    }

    #[test]
    fn keeps_the_newest_and_reloads_them_checked() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("snapshots");
        let (mut s, w) = SnapshotStore::open(&d, 2).unwrap();
        assert!(w.is_empty());
        for h in [10, 20, 30] {
            s.write(&snap(h, &[b"first chunk", b"second", &h.to_le_bytes()]))
                .unwrap();
        }
        assert_eq!(s.heights(), vec![30, 20]);
        assert!(!d.join(file_name(10)).exists(), "the oldest is deleted");
        assert_eq!(s.read_chunk(20, 1).unwrap(), b"second");
        assert_eq!(s.read_chunk(30, 2).unwrap(), 30u64.to_le_bytes());
        assert!(matches!(
            s.read_chunk(10, 0),
            Err(StoreError::NoSuchSnapshot(10))
        ));
        assert!(matches!(
            s.read_chunk(20, 3),
            Err(StoreError::NoSuchChunk { index: 3, .. })
        ));
        std::fs::write(d.join("snapshot-00000000000000000040.tmp"), b"torn").unwrap();
        drop(s);

        let (s, w) = SnapshotStore::open(&d, 2).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(s.heights(), vec![30, 20]);
        assert_eq!(
            s.manifests()[0],
            &snap(30, &[b"first chunk", b"second", &30u64.to_le_bytes()]).manifest
        );
        assert!(!d.join("snapshot-00000000000000000040.tmp").exists());
        drop(s);
        // A smaller `keep` prunes on open.
        let (s, _) = SnapshotStore::open(&d, 1).unwrap();
        assert_eq!(s.heights(), vec![30]);
    }

    #[test]
    fn a_damaged_file_is_deleted_on_open_and_a_damaged_chunk_is_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        let (mut s, _) = SnapshotStore::open(&d, 3).unwrap();
        s.write(&snap(5, &[b"aaaa", b"bbbb"])).unwrap();
        s.write(&snap(6, &[b"cccc", b"dddd"])).unwrap();
        // Damage chunk 1 of snapshot 6 after it was loaded: reading it says so.
        let p6 = d.join(file_name(6));
        let mut bytes = std::fs::read(&p6).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 1;
        std::fs::write(&p6, &bytes).unwrap();
        assert_eq!(s.read_chunk(6, 0).unwrap(), b"cccc");
        assert!(matches!(
            s.read_chunk(6, 1),
            Err(StoreError::Damaged { .. })
        ));
        // Truncate snapshot 5.
        let p5 = d.join(file_name(5));
        let bytes = std::fs::read(&p5).unwrap();
        std::fs::write(&p5, &bytes[..bytes.len() - 2]).unwrap();
        drop(s);
        let (s, w) = SnapshotStore::open(&d, 3).unwrap();
        assert!(s.heights().is_empty());
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w.iter().any(|w| w.contains("truncated in chunk 1")),
            "{w:?}"
        );
        assert!(
            w.iter().any(|w| w.contains("chunk 1 does not match")),
            "{w:?}"
        );
        assert!(!p5.exists() && !p6.exists());
    }

    #[test]
    fn a_node_that_diverged_serves_nothing_even_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        let (mut s, _) = SnapshotStore::open(&d, 2).unwrap();
        s.write(&snap(5, &[b"aaaa"])).unwrap();
        s.refuse_serving("state commitment mismatch at height 4")
            .unwrap();
        assert!(s.manifests().is_empty());
        assert!(
            matches!(s.read_chunk(5, 0), Err(StoreError::Refused(r)) if r.contains("height 4"))
        );
        assert!(matches!(
            s.write(&snap(6, &[b"b"])),
            Err(StoreError::Refused(_))
        ));
        drop(s);
        let (s, _) = SnapshotStore::open(&d, 2).unwrap();
        assert_eq!(s.refused(), Some("state commitment mismatch at height 4"));
        assert!(s.manifests().is_empty());
        assert_eq!(s.heights(), vec![5]);
    }
}
