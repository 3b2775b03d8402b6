//! The verify stage: checks every message from the network before the consensus stage
//! sees it (section 0.1 item 6: the core takes only verified messages).
//!
//! Inputs: the network layer's events, and committee snapshots ([`VerifyMailbox`]) that
//! the consensus stage publishes after each change of the core's committees (C-3, C-5),
//! so the verifier checks against the core's committees and keeps no copy of its own
//! making. Output: verified messages and peer events, in arrival order, into the
//! consensus stage's mailbox. Messages of a batch are verified in parallel on the rayon
//! pool; votes on one block as one aggregate, bisected only when it fails (PV-3). A peer
//! past 100 invalid messages is disconnected.

mod actor;
mod heads;
mod ingress;
mod vote_gate;

pub use actor::{VerifyDeps, VerifyStage};
pub use ingress::VerifyMailbox;
