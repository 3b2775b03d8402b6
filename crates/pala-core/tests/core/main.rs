//! The core's integration tests, in one binary: one link per build instead of one per
//! file (mutation testing builds them once for every mutant, `tools/mutants.sh`).

mod fixture;

mod clocks;
mod committees;
mod driver;
mod finality;
mod reconfig;
mod recovery;
mod roles;
mod rules;
mod sync_answers;
mod timers;
mod verify_batch;
mod verify_bls;
