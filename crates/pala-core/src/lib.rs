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
//! Rules are cited by their PROTOCOL.md ids (for example `V-5c`) next to the code that
//! implements them.

#![warn(missing_docs)]

pub mod chain;
pub mod config;
mod fasthash;
pub mod io;
pub mod node;
mod role;
pub mod verify;

pub use chain::rewind_finalized;
#[cfg(feature = "mutations")]
pub use config::Mutation;
pub use config::{CoreConfig, Tick};
pub use io::{BlockArchive, Input, NoArchive, Output, Record, Recovered, TimerKind};
pub use node::{serve_fresher_head, Counters, InsertError, Node, NodeParams};
pub use role::Role;
pub use verify::{Committees, MessageVerifier, Verified, VerifyError};
