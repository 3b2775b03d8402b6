//! What one seed of a sweep simulates: the plan the sweep draws and the swarm sharpens.

use crate::sim::{Action, SimConfig};

/// End of the fault phase (simulated ms).
pub const FAULT_PHASE_MS: u64 = 3_000;

/// What one seed simulates.
#[derive(Clone, Debug)]
pub struct SeedPlan {
    /// Simulator configuration.
    pub cfg: SimConfig,
    /// Scheduled faults.
    pub actions: Vec<(u64, Action)>,
}
