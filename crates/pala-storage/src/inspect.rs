//! A read-only summary of a data directory, for `pala inspect DATADIR`.

use crate::error::Result;
use crate::reader::heads_of;
use crate::recover::inspect_dir;
use crate::store::{Heads, Options, RecoveryReport, SegmentInfo};
use pala_types::{Epoch, Session};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// What `inspect` prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The directory.
    pub dir: PathBuf,
    /// Heads.
    pub heads: Heads,
    /// Indexed blocks (after pruning).
    pub blocks: usize,
    /// Indexed notarizations (after pruning).
    pub notarizations: usize,
    /// Heights `(lowest, highest)` of the stored finalized chain.
    pub finalized_range: Option<(u64, u64)>,
    /// Vote guards.
    pub vote_guards: BTreeMap<Epoch, u32>,
    /// Clock guard.
    pub clock_guard: Option<Epoch>,
    /// Stop blocks.
    pub stop_blocks: BTreeMap<Session, u64>,
    /// Sessions with a stored committee.
    pub committees: Vec<Session>,
    /// Segment files, oldest first.
    pub segments: Vec<SegmentInfo>,
    /// What recovery found; a torn tail is reported but, unlike [`crate::Storage::open`],
    /// not cut off.
    pub recovery: RecoveryReport,
}

/// Reads a data directory without modifying it (no truncation, no lock taken, so it can
/// look at the directory of a running node) and summarises it.
pub fn inspect(dir: impl AsRef<Path>) -> Result<Summary> {
    let dir = dir.as_ref();
    let i = inspect_dir(dir, &Options::default())?;
    let finalized_range = match (
        i.index.finalized.keys().next(),
        i.index.finalized.keys().next_back(),
    ) {
        (Some(lo), Some(hi)) => Some((*lo, *hi)),
        _ => None,
    };
    Ok(Summary {
        dir: dir.to_path_buf(),
        heads: heads_of(&i.index),
        blocks: i.index.by_hash.len(),
        notarizations: i.index.notarizations.len(),
        finalized_range,
        vote_guards: i.index.vote_guards.clone(),
        clock_guard: i.index.clock_guard,
        stop_blocks: i.index.stop_blocks.clone(),
        committees: i.index.committees.keys().copied().collect(),
        segments: i.segments,
        recovery: i.report,
    })
}

fn opt<T: fmt::Display>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "-".to_string(), |v| v.to_string())
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = &self.heads;
        writeln!(f, "data directory {}", self.dir.display())?;
        writeln!(f, "epoch               {}", opt(&h.epoch))?;
        let fin_block = h
            .finalized_block
            .map(|(height, hash)| format!(" height {height} hash {hash}"))
            .unwrap_or_else(|| {
                if h.finalized.is_some() {
                    " (block not stored)".into()
                } else {
                    String::new()
                }
            });
        writeln!(f, "finalized head      {}{fin_block}", opt(&h.finalized))?;
        writeln!(f, "freshest notarized  {}", opt(&h.freshest_notarized))?;
        writeln!(f, "freshest block      {}", opt(&h.freshest_block))?;
        let range = self.finalized_range.map_or_else(
            || "-".to_string(),
            |(lo, hi)| format!("heights {lo}..={hi}"),
        );
        writeln!(f, "finalized chain     {range}")?;
        writeln!(f, "blocks              {}", self.blocks)?;
        writeln!(f, "notarizations       {}", self.notarizations)?;
        let guards: Vec<String> = self
            .vote_guards
            .iter()
            .map(|(e, s)| format!("{e}:{s}"))
            .collect();
        writeln!(
            f,
            "vote guards         {}",
            if guards.is_empty() {
                "-".into()
            } else {
                guards.join(" ")
            }
        )?;
        writeln!(f, "clock guard         {}", opt(&self.clock_guard))?;
        let stops: Vec<String> = self
            .stop_blocks
            .iter()
            .map(|(s, h)| format!("session {s} @ {h}"))
            .collect();
        writeln!(
            f,
            "stop blocks         {}",
            if stops.is_empty() {
                "-".into()
            } else {
                stops.join(", ")
            }
        )?;
        let committees: Vec<String> = self.committees.iter().map(|s| s.to_string()).collect();
        writeln!(
            f,
            "committees          {}",
            if committees.is_empty() {
                "-".into()
            } else {
                format!("sessions {}", committees.join(", "))
            }
        )?;
        writeln!(f, "segments            {}", self.segments.len())?;
        for s in &self.segments {
            writeln!(
                f,
                "  {:>6} {:>12} bytes {:>8} records  {}{}",
                s.id,
                s.len,
                s.records,
                s.path.display(),
                if s.active { "  (last)" } else { "" }
            )?;
        }
        write!(f, "{}", self.recovery)
    }
}
