//! The file-descriptor budget, settled before any stage starts: what the node needs for
//! peers, HTTP connections, storage and snapshots plus a reserve; the soft RLIMIT_NOFILE
//! raised up to the hard limit; and the cap on accepted p2p connections chosen so that
//! sockets can never take the descriptors storage and checkpoints need (issue 13 row 2: at
//! a soft limit of 1024, ~1000 idle sockets made `persisting the application state` fail
//! with EMFILE and the proposer exit).

use crate::config::Config;
use anyhow::{bail, Result};
use pala_types::Committee;

/// stdio, the log, signal handling, the data directory lock and what libraries open.
const FIXED: u64 = 32;
/// One glommio executor: its io_uring rings, eventfd and timer descriptors.
const PER_EXECUTOR: u64 = 8;
/// The active and the next segment, the directory (fsync) and recovery's transient opens;
/// closed segments are memory-mapped and hold no descriptor.
const STORAGE: u64 = 16;
/// The application snapshot: the temp file, the directory fsync, the old file on read.
const SNAPSHOTS: u64 = 4;
/// Head room for everything not counted above, so a miscount ends in a refused socket and
/// not in a failed fsync.
const RESERVE: u64 = 64;
/// Outbound dials beyond the proposers and bootnodes known at start (reconfiguration).
const DIAL_SLACK: u64 = 16;
/// Inbound connections a hub needs beyond its committee (followers, reconnects that
/// overlap the connection they replace).
const INBOUND_SLACK: u64 = 8;

/// What the budget is computed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdNeeds {
    /// glommio executors (network executors, consensus, storage).
    pub executors: u64,
    /// Peers this node dials at start (proposers and bootnodes).
    pub dials: u64,
    /// Members of the committee at start: the inbound connections a hub cannot do without.
    pub members: u64,
    /// Concurrent HTTP connections the API admits (its listener included separately).
    pub http_connections: u64,
    /// `network.max_inbound` as configured.
    pub max_inbound: u64,
}

/// The outcome: the soft limit to set and the cap on accepted p2p connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdPlan {
    /// The soft RLIMIT_NOFILE to set (never above the hard limit).
    pub soft: u64,
    /// The cap on accepted p2p connections (≤ `network.max_inbound`).
    pub max_inbound: u64,
    /// Descriptors needed by everything but accepted p2p connections.
    pub fixed: u64,
}

/// Descriptors of everything except accepted p2p connections.
fn without_inbound(n: &FdNeeds) -> u64 {
    FIXED
        + PER_EXECUTOR * n.executors
        + STORAGE
        + SNAPSHOTS
        + RESERVE
        + n.dials
        + DIAL_SLACK
        + n.http_connections
        + 2 // the HTTP and p2p listeners
}

/// Soft limits above this are not asked for: the kernel's per-process fd table grows with
/// the highest descriptor, and the node never needs more.
const SOFT_CEILING: u64 = 1 << 20;

/// The plan for limits `(soft, hard)`, or why the node cannot run within them.
pub fn plan(n: &FdNeeds, soft: u64, hard: u64) -> Result<FdPlan> {
    let fixed = without_inbound(n);
    let wanted = fixed + n.max_inbound;
    let least = fixed + n.members + INBOUND_SLACK;
    // Raise only as far as useful, and never lower what the operator granted.
    let soft = soft.max(wanted.min(hard).min(SOFT_CEILING)).min(hard);
    if soft < least {
        bail!(
            "the open-file limit is {soft} (hard limit {hard}) but this node needs at least \
             {least} file descriptors: {fixed} for storage, snapshots, {} executors, {} dialed \
             peers, {} HTTP connections and a reserve of {RESERVE}, plus {} for the \
             connections of its committee's {} members.\nFix: raise the limit (`ulimit -n \
             {wanted}`, `LimitNOFILE={wanted}` in a systemd unit, `--ulimit \
             nofile={wanted}:{wanted}` for docker run), or lower http.max_connections",
            n.executors,
            n.dials,
            n.http_connections,
            n.members + INBOUND_SLACK,
            n.members,
        );
    }
    Ok(FdPlan {
        soft,
        max_inbound: n.max_inbound.min(soft - fixed),
        fixed,
    })
}

/// The needs of the node configured by `cfg` whose committee at start is `committee`.
pub fn needs_of(cfg: &Config, committee: &Committee) -> FdNeeds {
    FdNeeds {
        executors: cfg.network.executors as u64 + 2,
        dials: (committee.proposers.len() + cfg.network.bootnodes.len()) as u64,
        members: (committee.proposers.len() + committee.voters.len()) as u64,
        // The HTTP server refuses connections beyond `http.max_connections`, and its
        // listener and the refusing socket need two more.
        http_connections: if cfg.http_addr().is_some() {
            cfg.http.max_connections as u64 + 2
        } else {
            0
        },
        max_inbound: cfg.network.max_inbound as u64,
    }
}

/// Reads RLIMIT_NOFILE, raises the soft limit as [`plan`] says and returns the plan.
pub fn apply(n: &FdNeeds) -> Result<FdPlan> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        bail!(
            "cannot read the open-file limit: {}",
            std::io::Error::last_os_error()
        );
    }
    let p = plan(n, lim.rlim_cur, lim.rlim_max)?;
    if p.soft != lim.rlim_cur {
        let new = libc::rlimit {
            rlim_cur: p.soft,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } != 0 {
            bail!(
                "cannot raise the open-file limit from {} to {}: {}",
                lim.rlim_cur,
                p.soft,
                std::io::Error::last_os_error()
            );
        }
    }
    if p.max_inbound < n.max_inbound {
        tracing::warn!(
            limit = p.soft,
            configured = n.max_inbound,
            capped = p.max_inbound,
            "the open-file limit caps accepted p2p connections below network.max_inbound; \
             raise the limit (ulimit -n, LimitNOFILE) to admit more"
        );
    }
    tracing::info!(
        limit = p.soft,
        others = p.fixed,
        p2p_inbound = p.max_inbound,
        "file-descriptor budget"
    );
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needs() -> FdNeeds {
        FdNeeds {
            executors: 3,
            dials: 2,
            members: 6,
            http_connections: 512,
            max_inbound: 512,
        }
    }

    #[test]
    fn soft_limit_is_raised_up_to_the_hard_limit_only_as_far_as_needed() {
        let n = needs();
        let fixed = without_inbound(&n);
        let p = plan(&n, 1024, 1 << 20).unwrap();
        assert_eq!(p.soft, fixed + 512);
        assert_eq!(p.max_inbound, 512);
        // A generous soft limit is left as it is.
        assert_eq!(plan(&n, 100_000, 1 << 20).unwrap().soft, 100_000);
    }

    #[test]
    fn a_low_hard_limit_caps_accepted_connections_so_storage_keeps_its_fds() {
        let n = needs();
        let p = plan(&n, 1024, 1024).unwrap();
        assert_eq!(p.soft, 1024);
        assert_eq!(p.max_inbound, 1024 - without_inbound(&n));
        assert!(p.max_inbound + p.fixed <= 1024);
    }

    #[test]
    fn a_limit_below_the_minimum_refuses_with_the_numbers() {
        let n = needs();
        let e = plan(&n, 256, 256).unwrap_err().to_string();
        assert!(e.contains("limit is 256"), "{e}");
        assert!(e.contains("512 HTTP connections"), "{e}");
        assert!(e.contains("ulimit -n"), "{e}");
    }
}
