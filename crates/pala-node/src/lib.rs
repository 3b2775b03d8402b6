//! The PaLa validator runtime.
//!
//! [`runtime::RunningNode`] wires the deterministic core (`pala-core`) to the network
//! (`pala-net`), the storage (`pala-storage`), a rayon pool for signature verification, the
//! mempool, the application and the HTTP API. Each stage (verify, consensus, storage,
//! application) is a module of [`stages`] with its own state and mailbox; the policies
//! they share are [`membership`] (whom to admit and dial), [`clock`] (monotonic consensus
//! time, the wall clock for timestamps) and [`persistence`] (records to storage and back).
//! Configuration is [`config::Config`]; the operator commands (`keygen`, `testnet`,
//! `node`, `demo`) are in [`cli`].
//!
//! The binary that embeds this crate should use [`Allocator`] as its global allocator:
//! `#[global_allocator] static GLOBAL: pala_node::Allocator = pala_node::Allocator;`
//! (mimalloc: the node allocates many short-lived messages from several threads).

#![warn(missing_docs)]

pub mod app;
pub mod chain_id;
pub mod chain_view;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod fatal;
pub mod fd_budget;
pub mod genesis;
pub mod http;
pub mod layout;
pub mod membership;
pub mod mempool;
pub mod metrics;
pub mod persistence;
pub mod preflight;
pub mod runtime;
pub mod stages;
pub mod state_sync;
pub mod status;
#[cfg(test)]
mod test_blocks;

/// The global allocator the node binaries use (mimalloc).
pub use mimalloc::MiMalloc as Allocator;
