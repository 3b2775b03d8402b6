//! Protocol parameters (docs/protocol.md section 11; section 0.1 item 12: every timer is
//! configurable and an input to the core).

/// A monotonic millisecond count (virtual time in the simulator; the driver chooses the
/// origin). The core never reads a clock: every input carries the current `Tick`, and
/// the core only measures timeouts with it. It must never go backwards, so a driver
/// derives it from a monotonic clock, never from the wall clock; block timestamps come
/// separately with [`crate::Input::Payload`].
pub type Tick = u64;

use pala_types::{Committee, Session};
use std::collections::BTreeMap;

/// Parameters of the state machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreConfig {
    /// Network id, part of every signature domain.
    pub network_id: u64,
    /// K: maximum outstanding unnotarized proposals (section 3.2).
    pub k: u32,
    /// `T_VOTER`: voter timer period (E-2).
    pub voter_timeout_ms: u64,
    /// `DELAY_FIRST_PROPOSAL` of the readiness gate (N-2).
    pub first_proposal_delay_ms: u64,
    /// Status heartbeat period (W-6).
    pub heartbeat_ms: u64,
    /// Chain syncer poll period (W-7).
    pub sync_period_ms: u64,
    /// Blocks per fresher-head response (W-7.3, `N_SYNC_BLOCKS`).
    pub sync_blocks_per_response: usize,
    /// Most `(height, hash)` entries a fresher-head request lists.
    pub sync_known_limit: usize,
    /// Cool-down between unnotarized-proposal deliveries to one voter (W-7.4).
    pub unnotarized_resend_ms: u64,
    /// The stop block of every session is its block with this session offset (C-1,
    /// production convention: the `STOP_OFFSET`-th block); 0 = sessions never end.
    pub stop_offset: u32,
    /// Committees of later sessions fixed in genesis (section 0.1 item 11); a valid
    /// committee-change transaction in the chain takes precedence.
    pub schedule: BTreeMap<Session, Committee>,
    /// A deliberately broken rule (tests of the checkers only).
    #[cfg(feature = "mutations")]
    pub mutation: Option<Mutation>,
}

/// Deliberately broken rules, to show that the simulator's checkers catch them.
#[cfg(feature = "mutations")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// F-B finalizes one block too early: head `(e,t)` finalizes `(e, t-K+1)`.
    FinalizeOneEarly,
    /// The voter ignores V-1 and V-4: a different block at an sn it already stored
    /// replaces the stored one and is voted too.
    IgnoreConflicts,
    /// The driver kit's durability gate lets the first vote that has to wait for a
    /// persist go out at once (section 0.1 items 7 and 8).
    SendBeforePersist,
    /// PV-4 counts one vote too many: the aggregating proposer takes a quorum minus
    /// one vote as a notarization (for its own chain and its broadcast).
    QuorumOneShort,
    /// V-5a is skipped: a voter votes for `(e, s)` however far `s` is beyond its head
    /// (the K window is not checked).
    VoteOutsideKWindow,
    /// V-5c's stale-parent drop is skipped: the first block of a new epoch is voted
    /// even when its parent is older than the voter's head.
    VoteStaleParent,
}

impl Default for CoreConfig {
    /// Production defaults of section 11.
    fn default() -> Self {
        CoreConfig {
            network_id: 1,
            k: 2,
            voter_timeout_ms: 6000,
            first_proposal_delay_ms: 1000,
            heartbeat_ms: 15_000,
            sync_period_ms: 1000,
            sync_blocks_per_response: 10,
            sync_known_limit: 64,
            unnotarized_resend_ms: 10_000,
            stop_offset: 0,
            schedule: BTreeMap::new(),
            #[cfg(feature = "mutations")]
            mutation: None,
        }
    }
}

impl CoreConfig {
    /// The defaults of the spec's simulator tests (section 10: K = 2, as in production,
    /// `T_VOTER` 60 ms, first-proposal delay 10 ms), with heartbeats and sync polls
    /// scaled to match.
    // Assignments rather than `..Default::default()`: cargo-mutants 27.1 generates field
    // deletions for struct update syntax past its exclude_re (this fixture is excluded in
    // .cargo/mutants.toml).
    #[allow(clippy::field_reassign_with_default)]
    pub fn for_tests() -> Self {
        let mut c = CoreConfig::default();
        c.voter_timeout_ms = 60;
        c.first_proposal_delay_ms = 10;
        c.heartbeat_ms = 100;
        c.sync_period_ms = 20;
        c.unnotarized_resend_ms = 100;
        c
    }

    /// Sync request timeout: `T_VOTER / 2` (W-7.1).
    pub fn sync_request_timeout_ms(&self) -> u64 {
        (self.voter_timeout_ms / 2).max(1)
    }

    /// Penalty for a peer that timed out a request: `T_VOTER` (W-7.1).
    pub fn sync_penalty_ms(&self) -> u64 {
        self.voter_timeout_ms
    }
}
