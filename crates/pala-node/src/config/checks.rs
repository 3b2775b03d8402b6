//! Values that are each valid but contradict one another (issue 13 row 13b): refused at
//! load, with both keys and the reason, instead of a node that drops its peers or times
//! out its own proposer.

use super::{bad, Config, ConfigError};

/// Largest frame payload of the network layer, in MiB.
const MAX_FRAME_MIB: usize = 64;

/// Checks the relations between values; each error names every key involved.
/// The largest K whose snapshot proofs fit (W-12a, W-12e).
const MAX_K_WITH_STATE_SYNC: u32 = 64;

pub(super) fn cross_check(c: &Config) -> Result<(), ConfigError> {
    let n = &c.network;
    let t = &c.consensus;
    // W-6: a heartbeat is all an idle connection carries.
    if n.read_timeout_ms < 2 * t.heartbeat_ms {
        return Err(bad(
            "network.read_timeout_ms",
            format!(
                "{} is below twice consensus.heartbeat_ms ({}): a peer's status heartbeat is \
                 all an idle connection carries, so healthy peers would be dropped; use at \
                 least {}",
                n.read_timeout_ms,
                t.heartbeat_ms,
                2 * t.heartbeat_ms
            ),
        ));
    }
    // W-12a, W-12e: a snapshot's proof runs from the snapshot's block past the block that
    // commits to it (at least 2K + 1 heights later, plus the primary's application lag)
    // and K more, within MAX_PROOF_BLOCKS.
    let serves = c.state_sync.snapshot_interval > 0 || c.state_sync.enabled;
    if serves && t.k > MAX_K_WITH_STATE_SYNC {
        return Err(bad(
            "consensus.k",
            format!(
                "{} is above {MAX_K_WITH_STATE_SYNC}, the most state sync supports (a \
                 snapshot's proof holds about 3K + 2 blocks, at most 256); lower it or set \
                 state_sync.enabled = false and state_sync.snapshot_interval = 0",
                t.k
            ),
        ));
    }
    // E-2: voters that see no block for T_VOTER time the proposer out.
    if c.block.max_wait_ms >= t.voter_timeout_ms {
        return Err(bad(
            "block.max_wait_ms",
            format!(
                "{} is not below consensus.voter_timeout_ms ({}): voters would time out an \
                 idle proposer between two keep-alive blocks",
                c.block.max_wait_ms, t.voter_timeout_ms
            ),
        ));
    }
    // N-2: the gate waits DELAY_FIRST_PROPOSAL, then at most 2·T_VOTER in all.
    if t.first_proposal_delay_ms >= 2 * t.voter_timeout_ms {
        return Err(bad(
            "consensus.first_proposal_delay_ms",
            format!(
                "{} is not below twice consensus.voter_timeout_ms ({}): the readiness gate \
                 gives up waiting after 2·T_VOTER, so the delay would never be honoured",
                t.first_proposal_delay_ms,
                2 * t.voter_timeout_ms
            ),
        ));
    }
    // 7.2: a sync request is abandoned after T_VOTER/2; polling slower than T_VOTER
    // leaves a lagging node behind for whole voter timeouts.
    if t.sync_period_ms > t.voter_timeout_ms {
        return Err(bad(
            "consensus.sync_period_ms",
            format!(
                "{} exceeds consensus.voter_timeout_ms ({}): a lagging node would poll for \
                 the chain less often than voters time out",
                t.sync_period_ms, t.voter_timeout_ms
            ),
        ));
    }
    if n.max_inflight_frame_mib < MAX_FRAME_MIB {
        return Err(bad(
            "network.max_inflight_frame_mib",
            format!(
                "{} is below the {MAX_FRAME_MIB} MiB of one frame of the largest size, which \
                 could then never be received",
                n.max_inflight_frame_mib
            ),
        ));
    }
    if !n.source_address.is_empty() && n.source_address.parse::<std::net::IpAddr>().is_err() {
        return Err(bad(
            "network.source_address",
            format!(
                "`{}` is not an IP address (a local address of this host, e.g. 10.0.0.5, or \
                 empty to let the OS choose)",
                n.source_address
            ),
        ));
    }
    if n.max_handshakes_per_source > n.max_handshakes {
        return Err(bad(
            "network.max_handshakes_per_source",
            format!(
                "{} exceeds network.max_handshakes ({}): one source could take every slot",
                n.max_handshakes_per_source, n.max_handshakes
            ),
        ));
    }
    if n.max_handshakes > n.max_inbound {
        return Err(bad(
            "network.max_handshakes",
            format!(
                "{} exceeds network.max_inbound ({}), which counts handshaking sockets too",
                n.max_handshakes, n.max_inbound
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    const MIN: &str = "[node]\nkey_file = \"k\"\ndata_dir = \"d\"\ngenesis_file = \"g\"\n";

    fn err(extra: &str) -> String {
        Config::from_toml(&format!("{MIN}{extra}"), Path::new("x.toml"), &[])
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn read_timeout_below_twice_the_heartbeat_is_refused_naming_both_keys() {
        let e = err("[network]\nread_timeout_ms = 1\n");
        assert!(
            e.contains("network.read_timeout_ms") && e.contains("consensus.heartbeat_ms"),
            "{e}"
        );
        let e = err("[network]\nread_timeout_ms = 20000\n[consensus]\nheartbeat_ms = 15000\n");
        assert!(e.contains("at least 30000"), "{e}");
    }

    #[test]
    fn a_k_too_large_for_snapshot_proofs_is_refused_unless_state_sync_is_off() {
        let e = err("[consensus]\nk = 65\n");
        assert!(
            e.contains("consensus.k") && e.contains("at most 256"),
            "{e}"
        );
        let off = "[consensus]\nk = 65\n[state_sync]\nenabled = false\nsnapshot_interval = 0\n";
        Config::from_toml(&format!("{MIN}{off}"), Path::new("x.toml"), &[]).unwrap();
    }

    #[test]
    fn timers_and_limits_that_contradict_each_other_are_refused_naming_the_keys() {
        let e = err("[block]\nmax_wait_ms = 7000\n");
        assert!(
            e.contains("block.max_wait_ms") && e.contains("voter_timeout_ms"),
            "{e}"
        );
        let e = err("[consensus]\nfirst_proposal_delay_ms = 12000\n");
        assert!(e.contains("consensus.first_proposal_delay_ms"), "{e}");
        let e = err("[consensus]\nsync_period_ms = 7000\n");
        assert!(e.contains("consensus.sync_period_ms"), "{e}");
        let e = err("[network]\nmax_inflight_frame_mib = 8\n");
        assert!(e.contains("network.max_inflight_frame_mib"), "{e}");
        let e = err("[network]\nsource_address = \"host.example\"\n");
        assert!(e.contains("network.source_address"), "{e}");
        let e = err("[network]\nmax_handshakes = 4\n");
        assert!(e.contains("network.max_handshakes_per_source"), "{e}");
        // The defaults and the fast template are consistent.
        assert!(Config::from_toml(MIN, Path::new("x.toml"), &[]).is_ok());
        crate::config::fast_template();
    }
}
