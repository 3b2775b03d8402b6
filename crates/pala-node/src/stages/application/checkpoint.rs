//! What a failed application checkpoint means. The snapshot is only a shortcut for
//! replay (storage holds every finalized block), so a failure the node can outlive (out
//! of descriptors or memory for a moment, an interrupted call) is retried on the next
//! period; only a failing disk stops the node, with what to do.

/// Consecutive failures between two repeated warnings.
const WARN_EVERY: u32 = 30;

/// What to do after a checkpoint attempt.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Nothing to report.
    Quiet,
    /// Log this warning and retry on the next period.
    Retry(String),
    /// Stop the node with this message.
    Fatal(String),
}

/// Counts consecutive failures.
#[derive(Debug, Default)]
pub(super) struct CheckpointPolicy {
    failures: u32,
}

/// Whether `e` says the disk itself cannot take writes.
fn disk_failed(e: &std::io::Error) -> Option<&'static str> {
    match e.raw_os_error()? {
        libc::ENOSPC | libc::EDQUOT => Some("full"),
        libc::EIO | libc::EROFS => Some("failing"),
        _ => None,
    }
}

impl CheckpointPolicy {
    /// The verdict on one attempt's outcome; `dir` is the data directory.
    pub(super) fn outcome(
        &mut self,
        result: std::io::Result<()>,
        dir: &std::path::Path,
    ) -> Verdict {
        let e = match result {
            Ok(()) => {
                self.failures = 0;
                return Verdict::Quiet;
            }
            Err(e) => e,
        };
        self.failures += 1;
        if let Some(how) = disk_failed(&e) {
            let todo = if how == "full" {
                "free space on that filesystem, then restart the node"
            } else {
                "check the disk (dmesg, smartctl) and the mount, then restart the node"
            };
            return Verdict::Fatal(format!(
                "the disk holding {} is {how}: writing the application snapshot failed: {e}. \
                 What to do: {todo}. Nothing finalized is lost: on restart the node rebuilds \
                 the application state by replaying the finalized blocks from storage",
                dir.display()
            ));
        }
        if self.failures == 1 || self.failures.is_multiple_of(WARN_EVERY) {
            return Verdict::Retry(format!(
                "writing the application snapshot failed ({} in a row): {e}; retrying every \
                 second (replay from storage covers the gap)",
                self.failures
            ));
        }
        Verdict::Quiet
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Error;
    use std::path::Path;

    #[test]
    fn failed_checkpoint_is_retried_unless_the_disk_itself_fails() {
        let dir = Path::new("/data");
        let mut p = CheckpointPolicy::default();
        let emfile = || Err(Error::from_raw_os_error(libc::EMFILE));
        assert!(matches!(p.outcome(emfile(), dir), Verdict::Retry(m) if m.contains("retrying")));
        for _ in 2..WARN_EVERY {
            assert_eq!(p.outcome(emfile(), dir), Verdict::Quiet);
        }
        assert!(matches!(p.outcome(emfile(), dir), Verdict::Retry(m) if m.contains("30 in a row")));
        assert_eq!(p.outcome(Ok(()), dir), Verdict::Quiet);
        assert!(matches!(p.outcome(emfile(), dir), Verdict::Retry(m) if m.contains("1 in a row")));
        match p.outcome(Err(Error::from_raw_os_error(libc::ENOSPC)), dir) {
            Verdict::Fatal(m) => {
                assert!(
                    m.contains("/data is full") && m.contains("free space"),
                    "{m}"
                );
                assert!(m.contains("replaying"), "{m}");
            }
            v => panic!("{v:?}"),
        }
        assert!(matches!(
            p.outcome(Err(Error::from_raw_os_error(libc::EIO)), dir),
            Verdict::Fatal(m) if m.contains("failing")
        ));
    }
}
