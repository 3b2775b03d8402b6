//! The PaLa protocol (doubly pipelined, K outstanding proposals) as a deterministic,
//! IO-free state machine.
//!
//! # Driving it
//! [`Node::handle`] takes the current time and one [`Input`] and returns [`Output`]s to
//! execute **in order**:
//! - [`Output::Persist`] must be durable before any later `Send`/`Broadcast` of the same
//!   batch runs (persist-before-send, section 0.1 items 7 and 8): blocks before votes
//!   (V-4), the vote guard before the vote, the epoch before the status announcing it.
//! - [`Output::SetTimer`] replaces the previous deadline of that timer kind; the driver
//!   answers with [`Input::Timer`]. Stale firings are ignored.
//! - [`Output::RequestPayload`] asks for transactions; the driver answers with
//!   [`Input::Payload`] (immediately or after filling a block), carrying the wall-clock
//!   time for the block's timestamp.
//! - `now` is a monotonic [`Tick`]: timers never depend on the wall clock.
//! - [`Output::Finalized`] delivers finalized blocks exactly once, in chain order.
//!
//! Messages reach the core only as [`Verified`] values from [`MessageVerifier`]; the core
//! checks every non-signature rule itself.
//!
//! # Invariants (checked by the simulator after every event)
//! - `head.epoch <= L` (E-9); `L` and `head` never move backwards;
//! - the node never signs two different blocks at one sn (V-1, V-4, vote guard);
//! - finalized blocks form one chain that only grows (F-B);
//! - memory holds only the finalized block and its descendants.
//!
//! # Where each rule lives
//! Rules are cited by their docs/protocol.md ids (for example `V-5c`) next to the code that
//! implements them. [`Node`] is one type whose `impl` is split by rule group; each file
//! owns the state its rules need:
//!
//! | rules | docs/protocol.md | file | state it owns |
//! |---|---|---|---|
//! | node state, recovery (P-3), input dispatch | 3.1, 9 | `node/mod.rs` | `L`, timers, outputs |
//! | block insertion N-9, N-10, placement I-2 | 3.6, 4.1 | `node/insertion.rs` | |
//! | voting V-0..V-7 | 3.3 | `node/voting.rs` | `Voter` |
//! | votes PV-1..PV-5, notarizations NA-1..NA-6 | 3.4 | `node/notarization.rs` | vote collectors |
//! | head extension FC-3, finality F-B, F-2 | 3.5, 4.2 | `node/finality.rs` | |
//! | local epoch, timeouts, clock messages E-1..E-9 | 5 | `node/epochs.rs` | |
//! | production N-1..N-4 | 3.2 | `node/production.rs` | `Proposer` |
//! | status and chain sync W-6..W-8 | 7.2 | `node/sync.rs` | `Syncer` |
//! | reconfiguration C-1..C-8 | 6 | `node/reconfiguration.rs` | `Reconfiguration` |
//! | the committee of the next session C-1 (pure) | 6 | `committee_rule.rs` | |
//! | the block tree, freshest chain FC-1/FC-2, rewind F-3 | 3.5, 4.2 | `chain.rs` | [`Chain`](chain::Chain) |
//! | signatures and committees D-12..D-14, R-3 | 1, 2 | `verify.rs` | [`Committees`] |
//! | roles R-1 | 2 | `role.rs` | |
//! | what the node did and dropped, by reason | | `counters.rs` | [`Counters`] |

#![warn(missing_docs)]

pub mod chain;
pub mod committee_rule;
pub mod config;
mod counters;
pub mod driver;
mod fasthash;
pub mod io;
pub mod node;
mod role;
pub mod verify;

pub use chain::rewind_finalized;
#[cfg(feature = "mutations")]
pub use config::Mutation;
pub use config::{CoreConfig, Tick};
pub use counters::{CoreEvent, Counters};
pub use driver::{
    Driver, Durability, DurabilityGate, Event, Host, Payload, PersistSeq, Released, TimerTable,
};
pub use io::{BlockArchive, Input, NoArchive, Output, RecoveredState, StateChange, TimerKind};
pub use node::{serve_fresher_head, InsertError, Node, NodeParams};
pub use role::Role;
pub use verify::{Committees, MessageVerifier, Verified, VerifyError};
