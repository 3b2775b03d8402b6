//! The PaLa network layer: TCP on glommio executors, TLS 1.3 with self-signed certificates,
//! the role-verification handshake of docs/protocol.md section 8, length-prefixed framing (W-4)
//! and the peer registry of the hub-and-spoke topology (W-1, W-2).
//!
//! The layer knows nothing of the protocol rules: it delivers `(peer, Message)` and
//! connection events to its user and sends what it is told, through bounded channels that
//! work from any thread ([`Network`]). What it enforces is transport hygiene: who may
//! connect ([`Admission`]), frame limits, per-peer rate limits, deadlines and bounded queues,
//! each drop counted in [`NetMetrics`].
//!
//! Who dials whom (W-2) is the user's decision: it calls [`Network::dial`] for every
//! proposer of the session (a proposer only for proposers with a greater id) and for the
//! trusted bootnodes, and again at reconfiguration; the layer keeps each dialed address
//! connected with back-off and applies the duplicate rule when two connections to one peer
//! exist. The user sends its status on [`NetEvent::PeerUp`] and on its own heartbeat timer
//! (W-6; the consensus core owns that timer, so the layer keeps no clock of its own).
//!
//! ```no_run
//! use pala_net::{AdmitAll, NetConfig, NetEvent, Network};
//! use pala_types::insecure::InsecureTestScheme;
//! use std::sync::Arc;
//!
//! let scheme = InsecureTestScheme::new();
//! let cfg = NetConfig { network_id: 7, listen: Some("127.0.0.1:0".parse().unwrap()), ..NetConfig::default() };
//! let net = Network::start(cfg, Arc::new(scheme.keypair(1)), Arc::new(scheme), Arc::new(AdmitAll)).unwrap();
//! while let Ok(event) = net.events().recv() {
//!     match event {
//!         NetEvent::Message { peer, message } => { /* verify, then hand to the core */ }
//!         NetEvent::PeerUp { peer, .. } => { /* send our status to `peer` */ }
//!         _ => {}
//!     }
//! }
//! ```

#![warn(missing_docs)]

pub mod addr;
pub mod admission;
pub mod config;
mod deadline;
pub mod frame;
pub mod handshake;
mod limits;
mod logthrottle;
pub mod metrics;
mod network;
mod ratelimit;
pub mod tls;

pub use addr::{AddrParseError, PeerAddr};
pub use admission::{Admission, AdmitAll, CommitteeAdmission};
pub use config::{CorePlacement, NetConfig, RateLimits, MIN_PEER_VERSION, PROTOCOL_VERSION};
pub use handshake::{HandshakeFailure, Hello, Side};
pub use limits::FrameBudget;
pub use metrics::{CloseReason, NetMetrics};
pub use network::{DialPolicy, Direction, NetCommand, NetError, NetEvent, Network};
