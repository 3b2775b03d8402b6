//! Benchmark scenarios for pala and the machine-readable results they leave behind.
//!
//! - [`poc`]: one proposer and V voters in one process, connected by in-memory channels
//!   with an injected one-way delay in wall-clock time, running the real core and the
//!   real verifier (`pala bench poc`). It reproduces the scenario of the Go proof of
//!   concept so the two can be compared on one machine.
//! - [`floor`]: the BLS operations a block needs, timed now (the crypto floor).
//! - [`link`]: a user-space wide-area link emulator (delay, jitter, bandwidth, loss as
//!   delay spikes) that relays the TCP connections between real node processes.
//! - [`result`]: the JSON result every run writes under `perf/results/`, and the
//!   comparison of a result with the previous one of the same scenario and parameters
//!   (`tools/perf-compare`, `tools/plot`).
//! - [`stats`]: latency histogram and process measurements (CPU time, resident memory).
//!
//! `pala bench cluster` (real processes over TLS with storage) belongs next to [`poc`]
//! once `pala-node` can be driven from here; its results use the same [`result`] format
//! with scenario `cluster`.

#![warn(missing_docs)]

pub mod floor;
pub mod link;
pub mod poc;
pub mod result;
pub mod stats;
