//! Settings of the network layer. Defaults are the numbers of docs/protocol.md section 11.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The protocol version this build speaks (S-2.3); peers within one version are accepted.
pub const PROTOCOL_VERSION: u16 = 2;

/// The oldest peer version accepted: version 2 block headers carry the state commitment,
/// so version 1 blocks and messages cannot be decoded (upgrading from 1 takes a restart of
/// the whole network, not a rolling one).
pub const MIN_PEER_VERSION: u16 = 2;

/// Largest payload a frame may carry by default: 64 MiB (W-4, 2^26 bytes).
pub const DEFAULT_MAX_PAYLOAD: usize = 1 << 26;

/// Where the network executors run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CorePlacement {
    /// Let the kernel schedule the executor threads (a small shared machine).
    Unbound,
    /// Pin executor `i` to `cpus[i % cpus.len()]`.
    Pinned(Vec<usize>),
}

/// Per-peer incoming rate limits (W-11e). Reads are delayed, not dropped, except for the
/// per-type request limits whose excess is dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// Messages per second a peer may deliver (0 = unlimited).
    pub messages_per_sec: u32,
    /// Bytes per second a peer may deliver (0 = unlimited). Applies only while the total over
    /// all peers exceeds [`RateLimits::global_bytes_threshold`] (PROD semantics: one busy peer
    /// is not throttled on an otherwise idle node).
    pub bytes_per_sec: u64,
    /// Total incoming bytes per second above which the per-peer byte limit applies.
    pub global_bytes_threshold: u64,
    /// `(type code, per second)`: messages of that type beyond the rate are dropped and
    /// counted (get-fresher-head: 10/s).
    pub request_limits: Vec<(u8, u32)>,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            messages_per_sec: 200,
            bytes_per_sec: 10_000_000,
            global_bytes_threshold: 10_000_000,
            request_limits: vec![(0x24, 10), (0x27, 10)],
        }
    }
}

impl RateLimits {
    /// No limit at all (benchmarks, tests of other features).
    pub fn unlimited() -> Self {
        RateLimits {
            messages_per_sec: 0,
            bytes_per_sec: 0,
            global_bytes_threshold: 0,
            request_limits: Vec::new(),
        }
    }
}

/// Configuration of one node's network layer.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Network id; connections between different networks are refused (S-2.3).
    pub network_id: u64,
    /// Protocol version announced in the hello.
    pub protocol_version: u16,
    /// Address to listen on (hubs); `None` for a spoke that only dials.
    pub listen: Option<SocketAddr>,
    /// Number of glommio executors (threads) for connection IO; at least 1.
    pub executors: usize,
    /// Placement of the executors.
    pub placement: CorePlacement,
    /// Deadline of the whole handshake: TLS, hello and challenge-response (10 s).
    pub handshake_timeout: Duration,
    /// A connection that delivers no frame for this long is closed (30 s).
    pub read_timeout: Duration,
    /// A write (one batch of queued frames) that does not finish in this time closes the
    /// connection (30 s).
    pub write_timeout: Duration,
    /// Per-attempt TCP connect timeout (3 s).
    pub dial_timeout: Duration,
    /// First back-off after a failed dial (100 ms); it grows linearly by the same step.
    pub dial_backoff_step: Duration,
    /// Largest back-off during the burst phase (2 s).
    pub dial_backoff_max: Duration,
    /// How long the burst phase of retries lasts (5 s) before falling back to the period.
    pub dial_burst: Duration,
    /// Period of redialing after the burst or after a failed handshake (15 s, W-2).
    pub reconnect_period: Duration,
    /// Longest wait between two dials of a committee proposer ([`crate::DialPolicy`],
    /// 1 s): a restarted proposer is reached within it, not within the reconnect period.
    pub proposer_redial_max: Duration,
    /// TCP keep-alive idle time (150 s); `None` leaves the OS default.
    pub tcp_keepalive: Option<Duration>,
    /// Local address outbound connections are bound to (`None`: the OS chooses). For a
    /// host with several addresses whose peers admit or route by source, and for
    /// emulated wide-area links on one machine, where each node dials from its own
    /// 127.0.0.x so a relay can tell them apart.
    pub source_address: Option<IpAddr>,
    /// Largest frame payload accepted or sent (64 MiB).
    pub max_payload: usize,
    /// Capacity of each connection's outbound queue in messages (1024); a full queue closes
    /// the connection.
    pub outbound_queue: usize,
    /// Capacity of the channel of events towards the user.
    pub event_queue: usize,
    /// Capacity of the channel of commands from the user.
    pub command_queue: usize,
    /// Incoming rate limits per peer.
    pub rate_limits: RateLimits,
    /// Announce the hub capability bit (set for proposers and bootnodes).
    pub is_hub: bool,
    /// Accepted sockets still in the TLS or role handshake, over all sources (128); beyond
    /// it an accepted socket is closed at once and counted.
    pub max_handshakes: usize,
    /// Accepted sockets still in the handshake from one source address, an IPv6 /64
    /// counting as one (32: a
    /// local testnet starts all its nodes at once from one address).
    pub max_handshakes_per_source: usize,
    /// Inbound connections, in the handshake or established (512). The node sets it from
    /// its file-descriptor budget so that storage and checkpoints never run out of fds.
    pub max_inbound: usize,
    /// Bytes of partly received frames held over all connections (128 MiB, two frames of
    /// the largest size). The first MiB of each frame is not counted; a frame that would
    /// take the total beyond it closes its connection.
    pub max_inflight_frame_bytes: usize,
    /// Least time between two log lines about failed handshakes from one source (10 s);
    /// every failure is still counted.
    pub handshake_log_period: Duration,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            network_id: 0,
            protocol_version: PROTOCOL_VERSION,
            listen: None,
            executors: 1,
            placement: CorePlacement::Unbound,
            handshake_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            dial_timeout: Duration::from_secs(3),
            dial_backoff_step: Duration::from_millis(100),
            dial_backoff_max: Duration::from_secs(2),
            dial_burst: Duration::from_secs(5),
            reconnect_period: Duration::from_secs(15),
            proposer_redial_max: Duration::from_secs(1),
            tcp_keepalive: Some(Duration::from_secs(150)),
            source_address: None,
            max_payload: DEFAULT_MAX_PAYLOAD,
            outbound_queue: 1024,
            event_queue: 8192,
            command_queue: 8192,
            rate_limits: RateLimits::default(),
            is_hub: false,
            max_handshakes: 128,
            max_handshakes_per_source: 32,
            max_inbound: 512,
            max_inflight_frame_bytes: 2 * DEFAULT_MAX_PAYLOAD,
            handshake_log_period: Duration::from_secs(10),
        }
    }
}
