//! Setting a data directory's contents aside before a node that is too far behind its
//! peers joins by snapshot (W-12f). Nothing is deleted: the old chain may be the only copy
//! of blocks every peer pruned, and an operator may want it back (or its key-value state)
//! whatever the node concluded.
//!
//! Beside the data directory when it can be renamed (`<data_dir>.set-aside-<unix
//! seconds>`), else inside it (`<data_dir>/set-aside-<unix seconds>/`): the data directory
//! of the shipped deployments is a mount point (the container volume, the Kubernetes
//! persistent volume) or the only writable path (the systemd unit's `StateDirectory`
//! under `ProtectSystem=strict`), where a rename fails or a sibling cannot be created. A
//! key file kept inside the data directory stays where it is, and so do earlier
//! set-aside directories.

use anyhow::{Context, Result};
use std::fs;
use std::path::{Path, PathBuf};

/// The prefix of a set-aside directory inside the data directory.
pub const INSIDE_PREFIX: &str = "set-aside-";

/// Moves everything in `data_dir` out of the node's way and leaves it empty; returns
/// where the old contents are. `keep` (the key file) stays if it lies inside.
pub fn set_aside(data_dir: &Path, keep: &Path, unix_secs: u64) -> Result<PathBuf> {
    let key_inside = keep
        .canonicalize()
        .ok()
        .zip(data_dir.canonicalize().ok())
        .is_some_and(|(k, d)| k.starts_with(d));
    if !key_inside {
        if let Some(to) = beside(data_dir, unix_secs) {
            let perms = fs::metadata(data_dir)
                .with_context(|| format!("reading {}", data_dir.display()))?
                .permissions();
            if fs::rename(data_dir, &to).is_ok() {
                fs::create_dir(data_dir)
                    .and_then(|_| fs::set_permissions(data_dir, perms))
                    .with_context(|| {
                        format!(
                            "recreating {} after moving its contents to {}",
                            data_dir.display(),
                            to.display()
                        )
                    })?;
                sync(data_dir.parent().unwrap_or(Path::new(".")))?;
                return Ok(to);
            }
        }
    }
    inside(data_dir, keep, unix_secs)
}

/// A sibling name that does not exist yet; `None` for a directory without a parent.
fn beside(data_dir: &Path, unix_secs: u64) -> Option<PathBuf> {
    let name = data_dir.file_name()?.to_string_lossy().into_owned();
    let parent = data_dir.parent()?;
    (0..)
        .map(|n| {
            let suffix = if n == 0 {
                String::new()
            } else {
                format!("-{n}")
            };
            parent.join(format!("{name}.set-aside-{unix_secs}{suffix}"))
        })
        .find(|p| !p.exists())
}

fn inside(data_dir: &Path, keep: &Path, unix_secs: u64) -> Result<PathBuf> {
    let to = (0..)
        .map(|n| {
            let suffix = if n == 0 {
                String::new()
            } else {
                format!("-{n}")
            };
            data_dir.join(format!("{INSIDE_PREFIX}{unix_secs}{suffix}"))
        })
        .find(|p| !p.exists())
        .expect("some name is free");
    fs::create_dir(&to).with_context(|| format!("creating {}", to.display()))?;
    let keep = keep.canonicalize().ok();
    let entries =
        fs::read_dir(data_dir).with_context(|| format!("listing {}", data_dir.display()))?;
    for entry in entries {
        let path = entry
            .with_context(|| format!("listing {}", data_dir.display()))?
            .path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let earlier = name.is_some_and(|n| n.starts_with(INSIDE_PREFIX));
        let is_key = keep
            .as_ref()
            .is_some_and(|k| path.canonicalize().ok().as_ref() == Some(k));
        let holds_key = keep
            .as_ref()
            .is_some_and(|k| path.is_dir() && k.starts_with(&path));
        if path == to || earlier || is_key || holds_key {
            continue;
        }
        let dest = to.join(path.file_name().expect("a directory entry has a name"));
        fs::rename(&path, &dest)
            .with_context(|| format!("moving {} to {}", path.display(), dest.display()))?;
    }
    sync(&to)?;
    sync(data_dir)?;
    Ok(to)
}

fn sync(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(dir: &Path) {
        fs::create_dir_all(dir.join("snapshots")).unwrap();
        fs::write(dir.join("seg-00000000000000000001.log"), b"segment").unwrap();
        fs::write(dir.join("snapshots/snapshot-1.bin"), b"snap").unwrap();
    }

    #[test]
    fn contents_move_beside_and_the_directory_stays_empty() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("node0");
        fill(&data);
        let key = root.path().join("node0.key");
        fs::write(&key, b"key").unwrap();
        let to = set_aside(&data, &key, 1700).unwrap();
        assert_eq!(to, root.path().join("node0.set-aside-1700"));
        assert_eq!(
            fs::read(to.join("seg-00000000000000000001.log")).unwrap(),
            b"segment"
        );
        assert_eq!(
            fs::read(to.join("snapshots/snapshot-1.bin")).unwrap(),
            b"snap"
        );
        assert_eq!(fs::read_dir(&data).unwrap().count(), 0);
        // A second time in the same second gets a name of its own.
        fill(&data);
        let again = set_aside(&data, &key, 1700).unwrap();
        assert_eq!(again, root.path().join("node0.set-aside-1700-1"));
        assert!(to.join("snapshots").exists());
    }

    #[test]
    fn a_key_inside_stays_and_the_rest_moves_inside() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("node0");
        fill(&data);
        fs::create_dir_all(data.join("keys")).unwrap();
        let key = data.join("keys/node0.key");
        fs::write(&key, b"key").unwrap();
        fs::create_dir(data.join("set-aside-1")).unwrap();
        let to = set_aside(&data, &key, 1700).unwrap();
        assert_eq!(to, data.join("set-aside-1700"));
        assert_eq!(fs::read(&key).unwrap(), b"key", "the key stays");
        assert!(data.join("set-aside-1").is_dir(), "an earlier one stays");
        assert!(to.join("seg-00000000000000000001.log").exists());
        assert!(to.join("snapshots/snapshot-1.bin").exists());
        let mut left: Vec<String> = fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["keys", "set-aside-1", "set-aside-1700"]);
    }
}
