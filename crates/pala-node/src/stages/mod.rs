//! The stages of a running node, each with its own state, inputs and outputs.
//!
//! A stage is a loop that owns its state; the only ways into it are its mailbox (the
//! messages of its `ingress` module) and, for readers, a narrow read-only view (the
//! status snapshot, the application's query view, the storage reader, metrics). No stage
//! takes a lock of another stage's state.
//!
//! | stage | runs on | inputs | outputs |
//! |---|---|---|---|
//! | [`verify`] | a thread + the rayon verification pool | network events, committee snapshots | verified inputs to consensus |
//! | [`consensus`] | a glommio executor (awaits its inbox, the durability signal and its next timer) | verified inputs, durability, listen replies | persist jobs, network commands and finalized blocks (released after durability), committee snapshots, the status snapshot |
//! | [`storage`] | a glommio executor | persist jobs | durable sequence numbers, commit figures, fatal errors |
//! | [`application`] | a thread | finalized blocks, submissions, stream subscriptions | applied state (query view), metrics, streams |

pub mod application;
pub mod consensus;
pub mod storage;
pub mod verify;
