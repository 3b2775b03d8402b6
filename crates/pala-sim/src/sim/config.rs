//! What a simulation runs: the cluster, the network, the faults.

use pala_core::CoreConfig;
use pala_types::{SignatureScheme, Signer};
use std::collections::BTreeMap;
use std::sync::Arc;

use super::adversary::LinkRule;
use super::Byzantine;

/// Builds a node's signer and proof of possession from a seed.
pub type KeyGen = Arc<dyn Fn(u64) -> (Arc<dyn Signer>, pala_types::Signature) + Send + Sync>;

/// Which signature scheme the simulated nodes use.
#[derive(Clone)]
pub enum SchemeChoice {
    /// The fast insecure test double.
    Insecure,
    /// Any real scheme with a key factory (seed -> signer), e.g. BLS from pala-crypto.
    Custom {
        /// The scheme.
        scheme: Arc<dyn SignatureScheme>,
        /// Builds a signer from a seed.
        keygen: KeyGen,
    },
}

impl std::fmt::Debug for SchemeChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SchemeChoice::Insecure => f.write_str("Insecure"),
            SchemeChoice::Custom { scheme, .. } => write!(f, "Custom({})", scheme.name()),
        }
    }
}

/// Parameters of one simulation.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Number of proposers (node indexes `0..proposers`).
    pub proposers: usize,
    /// Number of voters (node indexes `proposers..proposers+voters`).
    pub voters: usize,
    /// Protocol parameters.
    pub core: CoreConfig,
    /// Mean one-way link delay.
    pub delay_ms: u64,
    /// Uniform jitter added to each delay, `0..=jitter_ms`.
    pub jitter_ms: u64,
    /// Probability that a message is lost.
    pub loss: f64,
    /// Byzantine nodes by index.
    pub byzantine: BTreeMap<usize, Byzantine>,
    /// Signature scheme.
    pub scheme: SchemeChoice,
    /// How many finalized blocks each simulated disk retains (None = all).
    pub retain_finalized: Option<u64>,
    /// Payload bytes per block.
    pub payload_bytes: usize,
    /// Committees of sessions 2, 3, ...: (proposer indexes, voter indexes) each; node
    /// indexes may be new (nodes that join later) or reused. Needs `core.stop_offset`.
    pub sessions: Vec<(Vec<usize>, Vec<usize>)>,
    /// Time the block maker spends filling a block before answering a payload request
    /// (the block time of N-3; 0 = answer within the request, as a full mempool does).
    pub block_time_ms: u64,
    /// Time the simulated disk takes to make a group of records durable. Records
    /// handed to it while a group is being synced form the next group (group commit).
    /// With 0 a group is durable at the same virtual time, but only after the node's
    /// call returns, so sends still wait for the gate.
    pub disk_sync_ms: u64,
    /// Keep every finalized block with its notarization in [`Sim::finalized_log`].
    pub log_finalized: bool,
    /// Record a human-readable trace.
    pub trace: bool,
    /// Rules of the targeted network adversary (see [`LinkRule`]).
    pub adversary: Vec<LinkRule>,
    /// Twins: a second instance of each listed voter's key, with its own disk and core,
    /// linked to the proposers in `sides` while the original keeps the others (split
    /// views). The key counts against the fault budget, so both instances are byzantine.
    pub twins: Vec<Twin>,
    /// A torn crash ([`Action::CrashTorn`]) cuts only between output batches (the
    /// records of one driver call), never inside one: what the node guarantees, since
    /// its storage stage commits whole rounds of the consensus stage as one batch and
    /// pala-storage's commit markers make a batch all or nothing. On by default; off,
    /// any prefix of the unsynced records may survive, which the core does not handle
    /// at a stop block (docs/protocol.md section 13, P-3).
    pub torn_at_batch_ends: bool,
}

/// A second instance of voter `of`'s key (the Twins method of BFT testing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Twin {
    /// The voter whose key the twin shares.
    pub of: usize,
    /// Proposers that talk to the twin instead of the original.
    pub sides: Vec<usize>,
}

impl SimConfig {
    /// Number of distinct keys: session 1's members and every node a later session
    /// names. Twin instances come after them.
    pub fn key_count(&self) -> usize {
        self.sessions
            .iter()
            .flat_map(|(p, v)| p.iter().chain(v))
            .map(|i| i + 1)
            .chain([self.proposers + self.voters])
            .max()
            .unwrap_or(0)
    }

    /// Node index of the second instance of `self.twins[k]`'s key.
    pub fn twin_index(&self, k: usize) -> usize {
        self.key_count() + k
    }

    /// One proposer, `voters` voters, the spec's test timers.
    pub fn new(seed: u64, proposers: usize, voters: usize) -> Self {
        SimConfig {
            seed,
            proposers,
            voters,
            core: CoreConfig::for_tests(),
            delay_ms: 5,
            jitter_ms: 0,
            loss: 0.0,
            byzantine: BTreeMap::new(),
            scheme: SchemeChoice::Insecure,
            retain_finalized: None,
            payload_bytes: 16,
            block_time_ms: 0,
            disk_sync_ms: 0,
            sessions: Vec::new(),
            log_finalized: false,
            trace: false,
            adversary: Vec::new(),
            twins: Vec::new(),
            torn_at_batch_ends: true,
        }
    }
}

/// A scripted fault or environment change.
#[derive(Clone, Debug)]
pub enum Action {
    /// Split the nodes into groups; links across groups go down.
    Partition(Vec<Vec<usize>>),
    /// All links up again.
    Heal,
    /// The node stops (its disk survives).
    Crash(usize),
    /// The node restarts from its disk (`wipe`: from an empty disk).
    Restart {
        /// Node index.
        node: usize,
        /// Lose the disk first.
        wipe: bool,
    },
    /// Change the loss probability.
    SetLoss(f64),
    /// Drop every message from `from` of the given kind until `Allow` (drop rules of section 10).
    Block {
        /// Sender index.
        from: usize,
        /// Message kind (`Message::kind`).
        kind: &'static str,
    },
    /// Remove the drop rules of a sender.
    Allow(usize),
    /// The node stops inside a write: a random prefix of the records it handed to the
    /// disk and had not yet synced survives, the rest is lost (a torn group commit).
    CrashTorn(usize),
}
