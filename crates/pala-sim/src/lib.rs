//! A deterministic discrete-event simulator for the PaLa core.
//!
//! Many nodes of the real [`pala_core::Node`] run over a virtual clock and a scripted
//! network (delay, jitter, loss, partitions), with crashes and restarts from each node's
//! simulated disk, wipes, and byzantine nodes. Checkers run after every event:
//! (a) finalized chains of honest nodes never conflict; (b) no honest voter signs two
//! blocks at one sn or goes back in epoch; (c) `head.epoch <= L`; (d) persist-before-send;
//! (e) liveness after healing (in [`scenarios`] and [`sweep`]). The same seed always gives
//! the same trace.

#![warn(missing_docs)]

pub mod bench;
pub mod disk;
pub mod plan;
/// Named scenarios.
pub mod scenarios;
pub mod sim;
pub mod swarm;
pub mod sweep;

pub use sim::{
    Action, Byzantine, LinkRule, SchemeChoice, Sim, SimConfig, Twin, Violation, Withhold,
    CLOCK_KINDS, SYNC_KINDS,
};
