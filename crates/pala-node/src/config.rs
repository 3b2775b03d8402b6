//! The node's configuration: one TOML file, every key documented in `docs/operators.md`,
//! overridable from the environment (`PALA_<SECTION>_<KEY>`, for example
//! `PALA_CONSENSUS_K=4` or `PALA_HTTP_LISTEN=0.0.0.0:8080`). A bad value is reported with
//! the key that holds it and the form that was expected.

mod checks;

use pala_net::PeerAddr;
use pala_types::NodeId;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use thiserror::Error;

mod http;
mod state_sync;
mod storage;
pub use http::HttpSection;
pub use state_sync::{StateSyncSection, MIN_CHUNK_BYTES};
pub use storage::StorageSection;

/// Why a configuration could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file {path} is not valid TOML: {detail}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Parser message (with line and column).
        detail: String,
    },
    /// A key has a value of the wrong form (or is unknown).
    #[error("config key `{key}`: {detail}")]
    Value {
        /// Dotted key, e.g. `consensus.k`.
        key: String,
        /// What is wrong and what was expected.
        detail: String,
    },
}

fn bad(key: &str, detail: impl Into<String>) -> ConfigError {
    ConfigError::Value {
        key: key.to_string(),
        detail: detail.into(),
    }
}

/// The whole configuration file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Identity and files.
    pub node: NodeSection,
    /// Peer-to-peer network.
    #[serde(default)]
    pub network: NetworkSection,
    /// Protocol timers and K.
    #[serde(default)]
    pub consensus: ConsensusSection,
    /// Executor placement and channel sizes.
    #[serde(default)]
    pub runtime: RuntimeSection,
    /// Transaction pool limits.
    #[serde(default)]
    pub mempool: MempoolSection,
    /// Block making on the primary proposer.
    #[serde(default)]
    pub block: BlockSection,
    /// HTTP API.
    #[serde(default)]
    pub http: HttpSection,
    /// Logging.
    #[serde(default)]
    pub log: LogSection,
    /// Snapshots for state sync.
    #[serde(default)]
    pub state_sync: StateSyncSection,
    /// Retention of finalized blocks.
    #[serde(default)]
    pub storage: StorageSection,
}

/// `[node]`
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// BLS secret key file (written by `pala keygen`, mode 0600).
    pub key_file: PathBuf,
    /// Data directory (created if missing; one node per directory).
    pub data_dir: PathBuf,
    /// Genesis file (written by `pala testnet`).
    pub genesis_file: PathBuf,
}

/// `[network]`
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSection {
    /// Listen address "ip:port" or "host:port" (proposers must listen; voters leave it
    /// empty). A name is resolved once at start: it names this host, whose address does
    /// not change while the process runs.
    pub listen: String,
    /// A listening node also admits clients that are in no committee it knows (S-3: it
    /// acts as a bootnode as well), so followers can sync from it: nodes whose key enters
    /// only through a committee-change transaction, and members retired at C-5. Off, it
    /// admits the members of the sessions in force and of the scheduled later sessions.
    pub serve_followers: bool,
    /// Bootnodes (W-2): nodes with `serve_followers` dialed in addition to the proposers,
    /// so a node can sync when it knows no proposer that is still in office. Each entry is
    /// "host:port" (an IP or a name, resolved again on every dial), or "id@host:port" with
    /// the 40-hex-digit id the bootnode must prove (S-3).
    pub bootnodes: Vec<String>,
    /// Number of network executor threads.
    pub executors: usize,
    /// CPUs to pin the network executors to (empty: unpinned).
    pub cpus: Vec<usize>,
    /// Per-peer incoming message limit per second (0 = unlimited).
    pub peer_messages_per_sec: u32,
    /// Read deadline in milliseconds (a silent peer is dropped); must exceed
    /// `consensus.heartbeat_ms`, since a heartbeat is all an idle peer sends.
    pub read_timeout_ms: u64,
    /// Accepted p2p connections, in the handshake or established (512). Lowered at start
    /// when the open-file limit cannot hold it next to storage, snapshots and HTTP.
    pub max_inbound: usize,
    /// Accepted sockets still in the TLS and role handshake, over all sources (128).
    pub max_handshakes: usize,
    /// Accepted sockets still in the handshake from one source address (32, so a local
    /// testnet whose nodes all start at once from 127.0.0.1 is not refused; an IPv6 /64
    /// counts as one address).
    pub max_handshakes_per_source: usize,
    /// MiB of partly received frames held over all peers (128); beyond it the connection
    /// whose frame does not fit is closed. At least the 64 MiB of one frame of the largest
    /// size.
    pub max_inflight_frame_mib: usize,
    /// Local IP address outbound connections leave from (empty: the OS chooses). For a
    /// host with several addresses whose peers expect one of them, and for emulated
    /// links on one machine (`pala bench cluster --regions`).
    pub source_address: String,
}

impl Default for NetworkSection {
    fn default() -> Self {
        NetworkSection {
            listen: String::new(),
            serve_followers: false,
            bootnodes: Vec::new(),
            executors: 1,
            cpus: Vec::new(),
            peer_messages_per_sec: 0,
            read_timeout_ms: 30_000,
            max_inbound: 512,
            max_handshakes: 128,
            max_handshakes_per_source: 32,
            max_inflight_frame_mib: 128,
            source_address: String::new(),
        }
    }
}

/// `[consensus]`
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ConsensusSection {
    /// K: outstanding unnotarized proposals.
    pub k: u32,
    /// `T_VOTER` in milliseconds.
    pub voter_timeout_ms: u64,
    /// `DELAY_FIRST_PROPOSAL` in milliseconds.
    pub first_proposal_delay_ms: u64,
    /// Status heartbeat period in milliseconds.
    pub heartbeat_ms: u64,
    /// Chain-sync poll period in milliseconds.
    pub sync_period_ms: u64,
    /// After start, the node signs nothing for this long while it listens for its own key
    /// elsewhere (doppelganger protection); 0 disables the wait. Default 3 × the default
    /// voter timeout.
    pub doppelganger_wait_ms: u64,
}

impl Default for ConsensusSection {
    fn default() -> Self {
        let d = pala_core::CoreConfig::default();
        ConsensusSection {
            k: d.k,
            voter_timeout_ms: d.voter_timeout_ms,
            first_proposal_delay_ms: d.first_proposal_delay_ms,
            heartbeat_ms: d.heartbeat_ms,
            sync_period_ms: d.sync_period_ms,
            doppelganger_wait_ms: 3 * d.voter_timeout_ms,
        }
    }
}

/// `[runtime]`
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSection {
    /// "auto": on 8 or more CPUs pin the stages apart (consensus on CPU 1, storage on 2,
    /// network from 3, verification on the rest) unless pinned explicitly; below 8 CPUs
    /// leave everything to the kernel. "manual": use the values below as written.
    pub placement: String,
    /// CPU for the consensus executor (-1: unpinned).
    pub consensus_cpu: i64,
    /// CPU for the storage executor (-1: unpinned).
    pub storage_cpu: i64,
    /// Threads of the signature verification pool.
    pub verify_threads: usize,
    /// Most messages verified as one batch.
    pub verify_batch: usize,
    /// Capacity of each channel between stages.
    pub channel_capacity: usize,
}

impl Default for RuntimeSection {
    fn default() -> Self {
        RuntimeSection {
            placement: "auto".into(),
            consensus_cpu: -1,
            storage_cpu: -1,
            verify_threads: 2,
            verify_batch: 256,
            channel_capacity: 4096,
        }
    }
}

/// `[mempool]`
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MempoolSection {
    /// Most transactions held.
    pub max_txs: usize,
    /// Most bytes held.
    pub max_bytes: usize,
    /// Largest single transaction in bytes.
    pub max_tx_bytes: usize,
}

impl Default for MempoolSection {
    fn default() -> Self {
        MempoolSection {
            max_txs: 100_000,
            max_bytes: 64 << 20,
            max_tx_bytes: 64 << 10,
        }
    }
}

/// `[block]`
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BlockSection {
    /// Most transactions per block.
    pub max_txs: usize,
    /// Most transaction bytes per block.
    pub max_bytes: usize,
    /// The keep-alive: longest time between two blocks when there is nothing to carry or
    /// to finalize. While transactions wait, or a block with transactions is not final
    /// yet, the primary makes a block as soon as the K window lets it (N-3), whatever
    /// this says; with nothing to do it makes an empty block after this long, so voters
    /// never time it out (below `consensus.voter_timeout_ms`) and an idle chain costs
    /// little CPU.
    pub max_wait_ms: u64,
}

impl Default for BlockSection {
    fn default() -> Self {
        BlockSection {
            max_txs: 10_000,
            max_bytes: 4 << 20,
            // A sixth of the production voter timeout (6 s).
            max_wait_ms: 1000,
        }
    }
}

/// `[log]`
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// "human" or "json".
    pub format: String,
    /// Filter in `RUST_LOG` syntax, e.g. "info" or "pala_node=debug,info".
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            format: "human".into(),
            level: "info".into(),
        }
    }
}

const SECTIONS: [&str; 10] = [
    "node",
    "network",
    "consensus",
    "runtime",
    "mempool",
    "block",
    "http",
    "log",
    "state_sync",
    "storage",
];

fn parse_addr(key: &str, v: &str) -> Result<SocketAddr, ConfigError> {
    v.parse().map_err(|_| {
        bad(
            key,
            format!("`{v}` is not an address; expected \"ip:port\" such as \"127.0.0.1:7000\""),
        )
    })
}

fn parse_peer_addr(key: &str, v: &str) -> Result<PeerAddr, ConfigError> {
    v.parse()
        .map_err(|e: pala_net::AddrParseError| bad(key, e.to_string()))
}

/// One `network.bootnodes` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bootnode {
    /// Where to dial.
    pub addr: PeerAddr,
    /// The id the bootnode must prove, when the entry names one; otherwise it is trusted
    /// by its configured address (S-3).
    pub id: Option<NodeId>,
}

fn parse_bootnode(key: &str, v: &str) -> Result<Bootnode, ConfigError> {
    let form = "expected \"host:port\" or \"id@host:port\" with a 40-hex-digit node id, \
                such as \"10.0.0.5:7100\" or \"pala-proposer-0.pala:7100\"";
    let (id, addr) = match v.split_once('@') {
        Some((id, addr)) => {
            let id = NodeId::from_hex(id).ok_or_else(|| {
                bad(
                    key,
                    format!("`{id}` is not a node id (40 hex digits); {form}"),
                )
            })?;
            (Some(id), addr)
        }
        None => (None, v),
    };
    let addr = addr
        .parse()
        .map_err(|_| bad(key, format!("`{addr}` is not an address; {form}")))?;
    Ok(Bootnode { addr, id })
}

impl Config {
    /// Reads `path`, applies the `PALA_*` environment overrides and validates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with("PALA_"))
            .collect();
        let mut cfg = Config::from_toml(&text, path, &env)?;
        cfg.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        Ok(cfg)
    }

    /// Parses TOML text with overrides `(PALA_SECTION_KEY, value)`. Paths stay as written.
    pub fn from_toml(
        text: &str,
        path: &Path,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let mut value: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    path: path.to_path_buf(),
                    detail: e.to_string(),
                })?;
        for (k, v) in env {
            apply_override(&mut value, k, v)?;
        }
        let de = toml::Value::Table(value);
        let cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            bad(&key, e.into_inner().message().trim().to_string())
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Makes relative file paths relative to the config file's directory, so a testnet
    /// directory can be moved as a whole.
    fn resolve_paths(&mut self, base: &Path) {
        for p in [
            &mut self.node.key_file,
            &mut self.node.data_dir,
            &mut self.node.genesis_file,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        self.http.resolve_paths(base);
    }

    /// Checks values serde cannot check, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.network.listen.is_empty() {
            parse_peer_addr("network.listen", &self.network.listen)?;
        }
        self.http.validate()?;
        self.state_sync.validate()?;
        self.storage.validate(&self.state_sync)?;
        for (i, b) in self.network.bootnodes.iter().enumerate() {
            parse_bootnode(&format!("network.bootnodes[{i}]"), b)?;
        }
        let positive = [
            ("consensus.k", self.consensus.k as u64),
            (
                "consensus.voter_timeout_ms",
                self.consensus.voter_timeout_ms,
            ),
            ("consensus.heartbeat_ms", self.consensus.heartbeat_ms),
            ("consensus.sync_period_ms", self.consensus.sync_period_ms),
            ("network.executors", self.network.executors as u64),
            ("network.read_timeout_ms", self.network.read_timeout_ms),
            ("network.max_inbound", self.network.max_inbound as u64),
            ("network.max_handshakes", self.network.max_handshakes as u64),
            (
                "network.max_handshakes_per_source",
                self.network.max_handshakes_per_source as u64,
            ),
            ("runtime.verify_threads", self.runtime.verify_threads as u64),
            ("runtime.verify_batch", self.runtime.verify_batch as u64),
            (
                "runtime.channel_capacity",
                self.runtime.channel_capacity as u64,
            ),
            ("mempool.max_txs", self.mempool.max_txs as u64),
            ("mempool.max_bytes", self.mempool.max_bytes as u64),
            ("mempool.max_tx_bytes", self.mempool.max_tx_bytes as u64),
            ("block.max_txs", self.block.max_txs as u64),
            ("block.max_bytes", self.block.max_bytes as u64),
        ];
        for (k, v) in positive {
            if v == 0 {
                return Err(bad(k, "must be a positive integer"));
            }
        }
        if self.block.max_bytes > (32 << 20) {
            return Err(bad(
                "block.max_bytes",
                "must be at most 33554432 (32 MiB) so a proposal fits a network frame",
            ));
        }
        for (k, v) in [
            ("runtime.consensus_cpu", self.runtime.consensus_cpu),
            ("runtime.storage_cpu", self.runtime.storage_cpu),
        ] {
            if v < -1 {
                return Err(bad(k, "expected a CPU number, or -1 for unpinned"));
            }
        }
        if !matches!(self.runtime.placement.as_str(), "auto" | "manual") {
            return Err(bad("runtime.placement", "expected \"auto\" or \"manual\""));
        }
        if !matches!(self.log.format.as_str(), "human" | "json") {
            return Err(bad("log.format", "expected \"human\" or \"json\""));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(bad(
                "log.level",
                "expected a filter such as \"info\" or \"pala_node=debug,info\"",
            ));
        }
        checks::cross_check(self)
    }

    /// Where the stages run: `(network cpus, consensus cpu, storage cpu, verify threads)`
    /// for a machine with `cpus` CPUs (see `runtime.placement`).
    pub fn placement(&self, cpus: usize) -> (Vec<usize>, i64, i64, usize) {
        let r = &self.runtime;
        let untouched = r.consensus_cpu < 0 && r.storage_cpu < 0 && self.network.cpus.is_empty();
        if r.placement == "auto" && untouched && cpus >= 8 {
            let net: Vec<usize> = (3..3 + self.network.executors).collect();
            let rest = cpus.saturating_sub(3 + self.network.executors);
            return (net, 1, 2, rest.max(r.verify_threads));
        }
        (
            self.network.cpus.clone(),
            r.consensus_cpu,
            r.storage_cpu,
            r.verify_threads,
        )
    }

    /// The network listen address, if any, with a host name resolved (blocking: call it
    /// at start-up, not from an executor). Fails naming the key when a name does not
    /// resolve.
    pub fn listen_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        if self.network.listen.is_empty() {
            return Ok(None);
        }
        let addr = parse_peer_addr("network.listen", &self.network.listen)?;
        let found = addr
            .resolve_blocking()
            .map_err(|e| bad("network.listen", e))?;
        Ok(found.first().copied())
    }

    /// The `network.bootnodes` entries (valid after [`Config::validate`]).
    pub fn bootnodes(&self) -> Vec<Bootnode> {
        self.network
            .bootnodes
            .iter()
            .filter_map(|b| parse_bootnode("network.bootnodes", b).ok())
            .collect()
    }

    /// The HTTP listen address, if any.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.listen.parse().ok()
    }

    /// The core's parameters.
    pub fn core_config(&self, network_id: u64) -> pala_core::CoreConfig {
        pala_core::CoreConfig {
            network_id,
            k: self.consensus.k,
            voter_timeout_ms: self.consensus.voter_timeout_ms,
            first_proposal_delay_ms: self.consensus.first_proposal_delay_ms,
            heartbeat_ms: self.consensus.heartbeat_ms,
            sync_period_ms: self.consensus.sync_period_ms,
            ..pala_core::CoreConfig::default()
        }
    }

    /// The TOML text of this configuration.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

/// `PALA_CONSENSUS_VOTER_TIMEOUT_MS=1500` sets `consensus.voter_timeout_ms`. The value is
/// read as a TOML value when it parses as one (numbers, booleans, arrays) and as a string
/// otherwise.
fn apply_override(table: &mut toml::Table, var: &str, raw: &str) -> Result<(), ConfigError> {
    let rest = var.trim_start_matches("PALA_").to_ascii_lowercase();
    let Some(section) = SECTIONS.iter().find(|s| rest.starts_with(&format!("{s}_"))) else {
        // Other PALA_ variables (for example PALA_LOG used by tools) are not ours.
        return Ok(());
    };
    let key = &rest[section.len() + 1..];
    let value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let entry = table
        .entry(section.to_string())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    match entry {
        toml::Value::Table(t) => {
            t.insert(key.to_string(), value);
            Ok(())
        }
        _ => Err(bad(section, "expected a table")),
    }
}

/// A config with short timers for local clusters (demo, tests).
pub fn fast_template() -> Config {
    let mut c = Config::from_toml(
        "[node]\nkey_file = \"\"\ndata_dir = \"\"\ngenesis_file = \"\"\n",
        std::path::Path::new("template"),
        &[],
    )
    .expect("the built-in template is valid");
    c.consensus.voter_timeout_ms = 2000;
    c.consensus.first_proposal_delay_ms = 200;
    c.consensus.heartbeat_ms = 1000;
    // Four missed heartbeats: a peer cut off for longer is redialed (every second for a
    // proposer) instead of waiting on TCP retransmissions, whose back-off after a
    // partition of 8 s held finality back 3 s longer after healing (tools/netns-test.sh).
    c.network.read_timeout_ms = 4000;
    c.consensus.sync_period_ms = 200;
    // On one machine there is no round trip for a deep pipeline to hide: every block in
    // flight costs CPU that the blocks to finalize are waiting for (perf/cluster.md:
    // K = 2 gave the lowest tail of K = 1, 2 and 4 under load).
    c.consensus.k = 2;
    // Local clusters start every node at once: a wait would only delay the first blocks.
    c.consensus.doppelganger_wait_ms = 0;
    // The keep-alive, a quarter of the voter timeout: blocks with transactions and the
    // ones that finalize them are made at once anyway.
    c.block.max_wait_ms = 500;
    c.runtime.verify_threads = 1;
    c.http.threads = 2;
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
[node]
key_file = "k"
data_dir = "d"
genesis_file = "g"
"#;

    #[test]
    fn defaults_and_override() {
        let env = vec![("PALA_CONSENSUS_K".to_string(), "5".to_string())];
        let c = Config::from_toml(MIN, Path::new("x.toml"), &env).unwrap();
        assert_eq!(c.consensus.k, 5);
        assert_eq!(c.block.max_wait_ms, 1000);
    }

    #[test]
    fn placement_spreads_on_large_machines_only() {
        let c = Config::from_toml(MIN, Path::new("x.toml"), &[]).unwrap();
        assert_eq!(c.placement(2), (vec![], -1, -1, 2));
        assert_eq!(c.placement(16), (vec![3], 1, 2, 12));
        let env = vec![("PALA_RUNTIME_PLACEMENT".to_string(), "manual".to_string())];
        let c = Config::from_toml(MIN, Path::new("x.toml"), &env).unwrap();
        assert_eq!(c.placement(16), (vec![], -1, -1, 2));
    }

    #[test]
    fn bad_value_names_key() {
        let text = format!("{MIN}\n[consensus]\nk = \"many\"\n");
        let e = Config::from_toml(&text, Path::new("x.toml"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("consensus.k"), "{e}");
        let env = vec![("PALA_HTTP_LISTEN".to_string(), "nowhere".to_string())];
        let e = Config::from_toml(MIN, Path::new("x.toml"), &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("http.listen") && e.contains("ip:port"), "{e}");
        let text = format!("{MIN}\n[block]\nmax_wait = 3\n");
        let e = Config::from_toml(&text, Path::new("x.toml"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("block") && e.contains("max_wait"), "{e}");
    }

    #[test]
    fn bootnodes_by_address_or_with_id() {
        let id = "00112233445566778899aabbccddeeff00112233";
        let text = format!(
            "{MIN}\n[network]\nbootnodes = [\"10.0.0.5:7100\", \"{id}@[::1]:7101\", \
             \"pala-proposer-0.pala:7100\"]\n"
        );
        let c = Config::from_toml(&text, Path::new("x.toml"), &[]).unwrap();
        assert_eq!(
            c.bootnodes(),
            vec![
                Bootnode {
                    addr: "10.0.0.5:7100".parse().unwrap(),
                    id: None
                },
                Bootnode {
                    addr: "[::1]:7101".parse().unwrap(),
                    id: NodeId::from_hex(id)
                },
                Bootnode {
                    addr: PeerAddr::Name {
                        host: "pala-proposer-0.pala".into(),
                        port: 7100
                    },
                    id: None
                },
            ]
        );
        assert!(Config::from_toml(MIN, Path::new("x.toml"), &[])
            .unwrap()
            .bootnodes()
            .is_empty());
        // The environment form is a TOML array.
        let env = vec![(
            "PALA_NETWORK_BOOTNODES".to_string(),
            "[\"127.0.0.1:9\"]".to_string(),
        )];
        let c = Config::from_toml(MIN, Path::new("x.toml"), &env).unwrap();
        assert_eq!(c.bootnodes()[0].addr, "127.0.0.1:9".parse().unwrap());
        for (entry, what) in [
            ("boot.example.org", "not an address"),
            ("10.0.0.5", "not an address"),
            ("10.0.0.256:7100", "not an address"),
            ("boot_node!:7100", "not an address"),
            ("abc@10.0.0.5:7100", "not a node id"),
            ("@10.0.0.5:7100", "not a node id"),
        ] {
            let text = format!("{MIN}\n[network]\nbootnodes = [\"127.0.0.1:1\", \"{entry}\"]\n");
            let e = Config::from_toml(&text, Path::new("x.toml"), &[])
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("network.bootnodes[1]")
                    && e.contains(what)
                    && e.contains("\"id@host:port\""),
                "{entry}: {e}"
            );
        }
        let text = format!("{MIN}\n[network]\nbootnodes = \"10.0.0.5:7100\"\n");
        let e = Config::from_toml(&text, Path::new("x.toml"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("network.bootnodes"), "{e}");
    }

    /// `network.listen` takes a name (resolved at start), and a malformed one is refused
    /// naming the key.
    #[test]
    fn listen_by_host_name() {
        let with = |listen: &str| {
            let env = vec![("PALA_NETWORK_LISTEN".to_string(), listen.to_string())];
            Config::from_toml(MIN, Path::new("x.toml"), &env)
        };
        let c = with("localhost:7100").unwrap();
        let a = c.listen_addr().unwrap().unwrap();
        assert!(a.ip().is_loopback() && a.port() == 7100, "{a}");
        assert_eq!(
            with("0.0.0.0:7100").unwrap().listen_addr().unwrap(),
            Some("0.0.0.0:7100".parse().unwrap())
        );
        assert_eq!(with("").unwrap().listen_addr().unwrap(), None);
        for bad in ["localhost", "pala proposer:7100", "host:70000"] {
            let e = with(bad).unwrap_err().to_string();
            assert!(
                e.contains("network.listen") && e.contains("host:port"),
                "{bad}: {e}"
            );
        }
        let e = with("no-such-host.invalid:7100")
            .unwrap()
            .listen_addr()
            .unwrap_err()
            .to_string();
        assert!(e.contains("network.listen") && e.contains("resolve"), "{e}");
    }
}
