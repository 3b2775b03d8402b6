//! The core's integration tests, in one binary: one link per build instead of one per
//! file (mutation testing builds them once for every mutant, `tools/mutants.sh`).

mod cadence;
mod clocks;
mod committee_change;
mod committees;
mod driver;
mod finality;
mod fixture;
mod gate;
mod insertion;
mod peers;
mod reconfig;
mod recovery;
mod roles;
mod rules;
mod sealing;
mod serving;
mod sync_answers;
mod sync_requests;
mod timers;
mod unnotarized;
mod verify_batch;
mod verify_bls;
mod votes;
mod voting;
