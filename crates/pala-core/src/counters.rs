//! What the core counts: each thing it did, and each input it dropped, by reason.

use std::fmt;

/// Declares [`CoreEvent`] from one list: each variant with its docs and its stable name,
/// so the enum, [`CoreEvent::ALL`] and [`CoreEvent::as_str`] cannot drift apart.
macro_rules! core_events {
    ($($(#[$doc:meta])* $event:ident => $name:literal,)*) => {
        /// One counted event of the core. The variants follow the rule groups of the crate docs;
        /// [`CoreEvent::as_str`] is the stable name used as a metric label.
        ///
        /// Most events are drops (an input that passed the verifier but could not be used, with
        /// why); the others count work done (votes sent, epochs entered, ...).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum CoreEvent {
            $($(#[$doc])* $event,)*
        }

        impl CoreEvent {
            /// Every event, in declaration order (the order of [`Counters::iter`]).
            pub const ALL: [CoreEvent; [$(CoreEvent::$event),*].len()] = [$(CoreEvent::$event),*];

            /// The stable name, used as a metric label (`pala_core_events_total{event=...}`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(CoreEvent::$event => $name,)*
                }
            }
        }
    };
}

core_events! {
    // Production (N-1..N-4).
    /// The readiness gate opened and production began in an epoch (N-1, N-2).
    ProductionStarted => "production_started",
    /// A block was sealed and proposed (N-4).
    BlocksProposed => "blocks_proposed",
    /// A restarted proposer proposed one of its stored blocks again.
    BlocksReproposed => "blocks_reproposed",

    // Voting (V-0..V-7).
    /// A vote was signed and sent (V-6).
    VotesSent => "votes_sent",
    /// A proposal for an epoch other than `L` (V-0).
    ProposalWrongEpoch => "proposal_wrong_epoch",
    /// A proposal at an sn already voted (V-1).
    ProposalAlreadyVoted => "proposal_already_voted",
    /// A proposal whose parent is not stored; kept pending by a voter (V-4).
    ProposalMissingParent => "proposal_missing_parent",
    /// A proposal for an sn that holds another block (V-4).
    ProposalConflict => "proposal_conflict",
    /// A proposal whose block breaks an insertion rule (N-9, I-2).
    ProposalInvalid => "proposal_invalid",
    /// A proposal below the finalized head or off the finalized chain (N-9.5).
    ProposalStale => "proposal_stale",
    /// A proposal of an epoch behind the head's (V-5b).
    ProposalBehindHead => "proposal_behind_head",
    /// A first-of-epoch proposal built on a head older than ours (V-5c).
    ProposalStaleParent => "proposal_stale_parent",
    /// A proposal held back because it lies beyond the K window of our head (V-5a).
    ProposalBeyondWindow => "window_held_proposals",

    // Votes and notarizations (PV-1..PV-5, NA-1..NA-6).
    /// A vote was added to a collector (PV-4).
    VotesReceived => "votes_received",
    /// A vote for another epoch, or while not the primary proposer (PV-1).
    VoteNotForMe => "vote_not_for_me",
    /// A vote from a node outside the session's voters (PV-3).
    VoteNotAVoter => "vote_not_a_voter",
    /// A vote for a block this proposer is not collecting votes for (PV-3).
    VoteUnknownBlock => "vote_unknown_block",
    /// A vote for another block at the sn (PV-3).
    VoteHashMismatch => "vote_hash_mismatch",
    /// A second vote of one voter for one block (PV-2).
    VoteDuplicate => "vote_duplicate",
    /// A notarization of a block that is not stored (NA-1).
    NotarizationUnknownBlock => "notarization_unknown_block",
    /// A notarization of another block than the one stored at its sn (NA-1).
    NotarizationHashMismatch => "notarization_hash_mismatch",
    /// A notarized block would finalize a block that the head's chain does not contain
    /// (F-C); only possible beyond the fault assumption, so nothing is finalized.
    FinalityOffHeadChain => "finality_off_head_chain",

    // Epochs (E-1..E-9).
    /// A clock message was sent on a timeout (E-3).
    ClockMessagesSent => "clock_messages_sent",
    /// A clock message for an older epoch or another session (E-4).
    ClockStale => "clock_stale",
    /// A clock message reached a node that is no proposer of the session (E-4).
    ClockNotAProposer => "clock_not_a_proposer",
    /// The local epoch advanced (E-7).
    EpochChanges => "epoch_changes",

    // Status and chain sync (W-6..W-8).
    /// A sync response moved the head (W-7.3).
    SyncProgress => "sync_progress",
    /// A sync response without blocks (W-7.3).
    SyncEmptyResponse => "sync_empty_response",
    /// A peer whose finalized chain is not ours (W-7.3).
    SyncPeerInconsistent => "sync_peer_inconsistent",
    /// A stop block proof from a peer that left the session finalized its stop block (C-9).
    StopProofApplied => "stop_proof_applied",
    /// A synced block whose parent is not stored (N-10).
    SyncMissingParent => "sync_missing_parent",
    /// A synced block that breaks an insertion rule (N-10).
    SyncBlockRejected => "sync_block_rejected",
    /// A synced notarized block replaced another block at its sn (N-10).
    SyncReplacedBlock => "sync_replaced_block",
    /// A sync request went unanswered in time (W-7.1).
    SyncTimeouts => "sync_timeouts",

    // Reconfiguration (C-1..C-8).
    /// A reconfiguration began (C-3).
    Reconfigurations => "reconfigurations",
    /// A committee-change transaction that names an invalid committee (C-1).
    CommitteeChangeInvalid => "committee_change_invalid",
}

impl CoreEvent {
    /// The number of distinct events.
    pub const COUNT: usize = Self::ALL.len();

    /// Whether this is a consensus message (proposal, vote, notarization or clock
    /// message) the core dropped, as opposed to work done or a sync outcome: what the
    /// node reports as `pala_dropped_messages_total{reason="core_..."}`.
    pub fn is_dropped_message(self) -> bool {
        use CoreEvent::*;
        matches!(
            self,
            ProposalWrongEpoch
                | ProposalAlreadyVoted
                | ProposalMissingParent
                | ProposalConflict
                | ProposalInvalid
                | ProposalStale
                | ProposalBehindHead
                | ProposalStaleParent
                | VoteNotForMe
                | VoteNotAVoter
                | VoteUnknownBlock
                | VoteHashMismatch
                | VoteDuplicate
                | NotarizationUnknownBlock
                | NotarizationHashMismatch
                | ClockStale
                | ClockNotAProposer
        )
    }
}

impl fmt::Display for CoreEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How often each [`CoreEvent`] happened: one slot per event, so counting on the hot
/// path is an array increment.
#[derive(Clone, PartialEq, Eq)]
pub struct Counters([u64; CoreEvent::COUNT]);

impl Default for Counters {
    fn default() -> Self {
        Counters([0; CoreEvent::COUNT])
    }
}

impl Counters {
    /// How often `event` happened.
    pub fn get(&self, event: CoreEvent) -> u64 {
        self.0[event as usize]
    }

    /// Every event with its count (zeros included), in [`CoreEvent::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (CoreEvent, u64)> + '_ {
        CoreEvent::ALL.iter().map(|&e| (e, self.get(e)))
    }

    pub(crate) fn bump(&mut self, event: CoreEvent) {
        self.0[event as usize] += 1;
    }
}

impl fmt::Debug for Counters {
    /// Only the events that happened, by name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(e, n)| (e.as_str(), n)),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_event_has_its_own_slot_and_name() {
        for (i, e) in CoreEvent::ALL.iter().enumerate() {
            assert_eq!(*e as usize, i, "{e}: ALL follows the declaration order");
        }
        let names: BTreeSet<&str> = CoreEvent::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(names.len(), CoreEvent::COUNT, "names are distinct");
    }

    /// The node used to pick dropped messages by name prefix; the typed answer must
    /// name the same set, so the `pala_dropped_messages_total` series stay the same.
    #[test]
    fn dropped_messages_are_those_the_node_picked_by_name() {
        for e in CoreEvent::ALL {
            let name = e.as_str();
            let by_name = name.starts_with("proposal_")
                || name.starts_with("vote_")
                || name.starts_with("notarization_")
                || name.starts_with("clock_") && name != "clock_messages_sent";
            assert_eq!(e.is_dropped_message(), by_name, "{name}");
        }
    }

    #[test]
    fn counts_each_event_apart() {
        let mut c = Counters::default();
        c.bump(CoreEvent::VoteDuplicate);
        c.bump(CoreEvent::VoteDuplicate);
        c.bump(CoreEvent::SyncTimeouts);
        assert_eq!(c.get(CoreEvent::VoteDuplicate), 2);
        assert_eq!(c.get(CoreEvent::SyncTimeouts), 1);
        assert_eq!(c.get(CoreEvent::VotesSent), 0);
        assert_eq!(c.iter().count(), CoreEvent::COUNT);
        assert_eq!(
            format!("{c:?}"),
            r#"{"vote_duplicate": 2, "sync_timeouts": 1}"#
        );
    }
}
