//! The layer's public vocabulary: what it tells its user, what it is asked, and why it
//! refuses.

use super::DialPolicy;
use crate::addr::PeerAddr;
use crate::handshake::{HandshakeFailure, Hello};
use crate::metrics::CloseReason;
use crate::tls::TlsError;
use pala_types::{Message, NodeId};
use std::net::SocketAddr;
use thiserror::Error;

/// Which side dialed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The peer dialed us.
    Inbound,
    /// We dialed the peer.
    Outbound,
}

/// What the layer tells its user.
#[derive(Debug, Clone)]
pub enum NetEvent {
    /// A verified connection to `peer` is ready; send it our status now (W-6).
    PeerUp {
        /// The peer's consensus id.
        peer: NodeId,
        /// Its socket address.
        addr: SocketAddr,
        /// Who dialed.
        direction: Direction,
        /// The address given to [`NetCommand::Dial`] for an outbound connection (a name
        /// stays a name, so the user can tell which configured entry this peer is).
        dialed: Option<PeerAddr>,
        /// The peer's hello (version, capabilities).
        hello: Hello,
    },
    /// The connection to `peer` is gone.
    PeerDown {
        /// The peer.
        peer: NodeId,
        /// Why it closed.
        reason: CloseReason,
    },
    /// A message from a verified peer.
    Message {
        /// Sender.
        peer: NodeId,
        /// The decoded message.
        message: Message,
    },
    /// A frame of a type in [`crate::frame::EXTENSION_KINDS`] from a verified peer, its
    /// payload undecoded (the user decodes it and bounds what it keeps).
    Extension {
        /// Sender.
        peer: NodeId,
        /// The type code.
        kind: u8,
        /// The payload.
        payload: Vec<u8>,
    },
    /// A client at `addr` proved this node's own consensus key, and it is not one of this
    /// node's own dials: another instance runs with the same key (a doppelganger). The
    /// connection was closed; what to do about it is the user's decision.
    OwnKeyElsewhere {
        /// The other instance's address.
        addr: SocketAddr,
    },
    /// A handshake failed (the connection was closed; dial loops retry on their period).
    HandshakeFailed {
        /// Remote address.
        addr: SocketAddr,
        /// Who dialed.
        direction: Direction,
        /// Why.
        reason: HandshakeFailure,
    },
}

/// What the user asks of the layer.
#[derive(Debug, Clone)]
pub enum NetCommand {
    /// Send to one connected peer (dropped and counted if it is not connected).
    Send {
        /// Destination.
        to: NodeId,
        /// The message.
        message: Message,
    },
    /// Send a frame of a type in [`crate::frame::EXTENSION_KINDS`] to one connected peer
    /// (dropped and counted if it is not connected, or if the payload exceeds the frame
    /// limit).
    SendExtension {
        /// Destination.
        to: NodeId,
        /// The type code.
        kind: u8,
        /// The encoded payload.
        payload: Vec<u8>,
    },
    /// Send to every connected peer (W-3: a broadcast goes to our own connections only).
    Broadcast {
        /// The message.
        message: Message,
    },
    /// Keep a connection to `addr`, redialing with back-off; when already dialing it, only
    /// the policy is updated. A host name is resolved again on every attempt.
    Dial {
        /// Address to dial.
        addr: PeerAddr,
        /// The id the server must prove (a proposer dialed by id); `None` for a trusted
        /// bootnode address (S-3).
        expected: Option<NodeId>,
        /// How failed attempts are retried.
        policy: DialPolicy,
    },
    /// Stop redialing `addr` (an established connection stays until it closes).
    Undial {
        /// The address given to [`NetCommand::Dial`].
        addr: PeerAddr,
    },
    /// Close the connection to `peer`.
    Disconnect {
        /// The peer.
        peer: NodeId,
    },
    /// Start accepting connections on `addr` (C-3: a node that becomes a proposer at a
    /// reconfiguration must become a hub). When already listening, the listener stays as
    /// it is and its address is the answer.
    Listen {
        /// Address to bind.
        addr: SocketAddr,
        /// Receives the bound address (the real port when 0 was asked) or why binding
        /// failed; `None` when nobody waits for the outcome (a failure is still logged).
        reply: Option<flume::Sender<Result<SocketAddr, NetError>>>,
    },
    /// Stop accepting connections; established connections stay until they close.
    Unlisten,
    /// Close everything and stop the executors.
    Shutdown,
}

/// Why the layer could not start or accept a command.
#[derive(Debug, Error)]
pub enum NetError {
    /// TLS identity generation failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// An executor could not be started.
    #[error("executor: {0}")]
    Executor(String),
    /// The listen address could not be bound.
    #[error("bind {addr}: {error}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        error: String,
    },
    /// The layer has stopped.
    #[error("network stopped")]
    Stopped,
}
