//! The session proofs a node keeps for joiners (W-12a), in `<data_dir>/sessions/`, one
//! file per session, outside the block store: compaction (`storage.retain_finalized_heights`)
//! deletes old segments whole, and a joiner of a later session needs every earlier
//! session's proof however old. A store of its own keeps them out of compaction's way
//! without teaching the storage which blocks to spare, and a proof is written once, when
//! the session ends, and never changes.
//!
//! ```text
//! session-<session, 10 digits>.bin := magic "PALASES1" ‖ u32 session ‖ u32 n
//!                                     ‖ n × notarized block ‖ hash BLAKE3(everything before)
//! ```
//! Files are written to `.tmp`, synced and renamed; one that does not check when read is
//! reported and not served (the next joiner asks another peer).
//!
//! What a proof costs: session S's blocks up to its stop block, all of them (the
//! committee rule looks at every block up to it), plus a few empty blocks after it. A
//! network whose sessions are short next to its retention keeps most of its chain here.

use pala_storage::StorageReader;
use pala_types::codec::{put_seq, Reader};
use pala_types::{Hash, NotarizedBlock, Session};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"PALASES1";

/// The kept session proofs.
#[derive(Debug)]
pub struct SessionStore {
    dir: PathBuf,
}

fn file_name(session: Session) -> String {
    format!("session-{session:010}.bin")
}

impl SessionStore {
    /// Opens `dir` (created if missing); leftovers of interrupted writes are removed.
    pub fn open(dir: &Path) -> std::io::Result<SessionStore> {
        std::fs::create_dir_all(dir)?;
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                std::fs::remove_file(&path)?;
            }
        }
        Ok(SessionStore {
            dir: dir.to_path_buf(),
        })
    }

    /// Whether the proof of `session` is kept.
    pub fn has(&self, session: Session) -> bool {
        self.dir.join(file_name(session)).exists()
    }

    /// Keeps `proof` as session `session`'s.
    pub fn write(&self, session: Session, proof: &[NotarizedBlock]) -> std::io::Result<()> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&session.to_le_bytes());
        put_seq(&mut out, proof);
        let sum = Hash::of(&out);
        out.extend_from_slice(&sum.0);
        let path = self.dir.join(file_name(session));
        let tmp = path.with_extension("tmp");
        let written = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut f, &out)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(&self.dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    /// The proof of `session`; `Ok(None)` when none is kept, `Err` naming the file when
    /// it does not check.
    pub fn read(&self, session: Session) -> Result<Option<Vec<NotarizedBlock>>, String> {
        let path = self.dir.join(file_name(session));
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        let damaged =
            |why: &str| format!("session proof file {} is damaged: {why}", path.display());
        if bytes.len() < MAGIC.len() + 4 + 32 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(damaged("not a pala session proof file"));
        }
        let (body, sum) = bytes.split_at(bytes.len() - 32);
        if Hash::of(body).0 != sum {
            return Err(damaged("the checksum does not match"));
        }
        let mut r = Reader::new(&body[MAGIC.len()..]);
        let stored = r.u32("session").map_err(|e| damaged(&e.to_string()))?;
        if stored != session {
            return Err(damaged(&format!("it holds session {stored}")));
        }
        let proof: Vec<NotarizedBlock> = r
            .seq(60, "session proof blocks")
            .map_err(|e| damaged(&e.to_string()))?;
        r.finish().map_err(|e| damaged(&e.to_string()))?;
        Ok(Some(proof))
    }
}

/// Session `session`'s proof from what `storage` holds and `tail`, the core's proof that
/// its stop block is final (C-9a: the notarized blocks after the stop block up to the one
/// that finalized it): the stop block and its ancestors back to the session's first
/// block, then `tail`. `None` while a block is not readable (not durable yet).
pub fn build(
    storage: &StorageReader,
    session: Session,
    stop_offset: u32,
    tail: &[NotarizedBlock],
) -> Option<Vec<NotarizedBlock>> {
    let mut hash = tail.first()?.block.header.parent_hash;
    let mut blocks = Vec::with_capacity(stop_offset as usize + tail.len());
    for want in (1..=stop_offset).rev() {
        let b = storage.block_by_hash(&hash).ok()??;
        if b.sn().epoch.session != session || b.header.session_offset != want {
            return None;
        }
        hash = b.header.parent_hash;
        blocks.push(NotarizedBlock {
            block: std::sync::Arc::new(b),
            notarization: None,
        });
    }
    blocks.reverse();
    blocks.extend_from_slice(tail);
    Some(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pala_types::Block;
    use std::sync::Arc;

    #[test]
    fn proofs_are_kept_checked_and_a_damaged_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("sessions");
        let s = SessionStore::open(&d).unwrap();
        assert!(!s.has(3));
        assert_eq!(s.read(3), Ok(None));
        let nb = NotarizedBlock {
            block: Arc::new(Block::genesis(b"net".to_vec())),
            notarization: None,
        };
        s.write(3, &[nb.clone(), nb.clone()]).unwrap();
        assert!(s.has(3));
        assert_eq!(s.read(3).unwrap().unwrap().len(), 2);
        std::fs::write(d.join("session-0000000004.tmp"), b"torn").unwrap();
        drop(s);
        let s = SessionStore::open(&d).unwrap();
        assert!(!d.join("session-0000000004.tmp").exists());
        // A flipped byte, and a file renamed to another session.
        let p = d.join(file_name(3));
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[20] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        assert!(s.read(3).unwrap_err().contains("checksum"));
        s.write(5, &[nb]).unwrap();
        std::fs::rename(d.join(file_name(5)), d.join(file_name(6))).unwrap();
        assert!(s.read(6).unwrap_err().contains("holds session 5"));
    }
}
