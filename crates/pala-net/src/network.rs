//! Executors, connections and the peer registry.
//!
//! Executor 0 runs the coordinator (the only owner of the peer registry, so the duplicate
//! rule and routing need no locks), and the listener. Every executor
//! runs connection tasks handed to it round-robin: accepted sockets and dial loops. Each
//! connection owns its TLS stream; it reads frames and pushes `(peer, Message)` to the user
//! and writes frames from its own bounded queue.
//!
//! Event order per connection is `PeerUp`, messages, `PeerDown`, and a connection that
//! replaces a duplicate waits until the old one has delivered its `PeerDown` before it
//! delivers its `PeerUp` (W-2). The coordinator never waits on the user: only connection
//! tasks block on a full event channel, which throttles the peer that floods.

use crate::addr::{PeerAddr, Resolver};
use crate::admission::Admission;
use crate::config::{CorePlacement, NetConfig};
pub(crate) use crate::deadline::with_deadline;
use crate::frame::{encode_frame, read_frame_within, FrameError, Incoming};
use crate::handshake::{
    caps, client_handshake, server_handshake, HandshakeContext, HandshakeFailure, Hello,
};
use crate::limits::{FrameBudget, InboundGate, InboundPermit, Refused};
use crate::logthrottle::LogThrottle;
use crate::metrics::{CloseReason, NetMetrics};
use crate::ratelimit::{GlobalMeter, TokenBucket};
use crate::tls::{server_name, TlsIdentity};
use futures_lite::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use futures_lite::FutureExt;
use glommio::net::{AcceptedTcpStream, TcpListener, TcpStream};
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};
use pala_types::{Message, NodeId, SignatureScheme, Signer};
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// An encoded frame, shared by every queue a broadcast reaches.
type Frame = Arc<Vec<u8>>;

mod api;
mod connection;
mod coordinator;
mod dial;
mod executor;
mod redial;

pub use api::{Direction, NetCommand, NetError, NetEvent};
use executor::*;
pub use redial::DialPolicy;
use redial::{Attempt, Schedule, Timings};

use connection::*;
use coordinator::*;
use dial::*;

enum Internal {
    Register {
        peer: NodeId,
        serial: u64,
        addr: SocketAddr,
        direction: Direction,
        queue: flume::Sender<Frame>,
        kill: flume::Sender<CloseReason>,
        done: flume::Receiver<()>,
        reply: flume::Sender<Option<Option<flume::Receiver<()>>>>,
    },
    Closed {
        peer: NodeId,
        serial: u64,
    },
}

enum Job {
    Accepted(AcceptedTcpStream, InboundPermit),
    Dial(DialTarget),
    /// Only sent to executor 0, which owns the listener.
    Listen {
        addr: SocketAddr,
        reply: Option<flume::Sender<Result<SocketAddr, NetError>>>,
    },
    Unlisten,
    Stop,
}

struct DialTarget {
    addr: PeerAddr,
    expected: Option<NodeId>,
    cancel: Arc<AtomicBool>,
    /// Set while the address is a committee proposer ([`DialPolicy::Proposer`]); the
    /// coordinator flips it when a later `Dial` of the same address changes the policy.
    proposer: Arc<AtomicBool>,
}

impl DialTarget {
    fn policy(&self) -> DialPolicy {
        if self.proposer.load(Ordering::Relaxed) {
            DialPolicy::Proposer
        } else {
            DialPolicy::Periodic
        }
    }
}

struct Layer {
    cfg: NetConfig,
    ctx: HandshakeContext,
    tls: TlsIdentity,
    own_id: NodeId,
    metrics: Arc<NetMetrics>,
    events: flume::Sender<NetEvent>,
    internal: flume::Sender<Internal>,
    connected: Arc<RwLock<HashSet<NodeId>>>,
    serial: AtomicU64,
    meter: GlobalMeter,
    gate: Arc<InboundGate>,
    frames: FrameBudget,
    handshake_log: LogThrottle<IpAddr>,
    /// Local addresses of our dials still in the handshake: an inbound client proving our
    /// own key from one of them is this node dialing itself, from anywhere else it is
    /// another instance with our key.
    own_dials: std::sync::Mutex<HashSet<SocketAddr>>,
    stopping: AtomicBool,
    /// The bound listen address, if listening.
    local_addr: Arc<RwLock<Option<SocketAddr>>>,
    /// Never receives a value: it reports `Disconnected` once the coordinator drops the
    /// sender at shutdown, which ends every task racing against it.
    stop: flume::Receiver<()>,
}

impl Layer {
    fn is_connected(&self, id: &NodeId) -> bool {
        self.connected
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(id)
    }

    /// Runs `f` until it completes or the layer shuts down.
    async fn until_stopped<F: Future<Output = ()>>(&self, f: F) {
        f.or(async {
            let _ = self.stop.recv_async().await;
        })
        .await
    }

    fn is_own_dial(&self, addr: &SocketAddr) -> bool {
        self.own_dials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(addr)
    }

    fn handshake_failed(&self, addr: SocketAddr, direction: Direction, reason: HandshakeFailure) {
        self.metrics.handshake_failed(reason);
        if reason == HandshakeFailure::SelfConnection
            && direction == Direction::Inbound
            && !self.is_own_dial(&addr)
        {
            warn!(%addr, "a client proved this node's own key: another instance runs with it");
            // Blocking: this event must not be lost to a full queue.
            let _ = self.events.send(NetEvent::OwnKeyElsewhere { addr });
        }
        match self.handshake_log.admit(&addr.ip(), Instant::now()) {
            Some(0) => {
                warn!(%addr, ?direction, reason = reason.as_str(), "handshake failed: {reason}")
            }
            Some(suppressed) => warn!(
                %addr,
                ?direction,
                reason = reason.as_str(),
                suppressed,
                "handshake failed: {reason} (and {suppressed} more from this address since its \
                 last line; see the handshake_failures metric)"
            ),
            None => {
                self.metrics
                    .handshake_logs_suppressed
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        // Non-blocking (S-5): the event is informational.
        let _ = self.events.try_send(NetEvent::HandshakeFailed {
            addr,
            direction,
            reason,
        });
    }
}

/// A running network layer. Usable from any thread: commands and events are flume channels
/// (blocking and async ends both work).
pub struct Network {
    commands: flume::Sender<NetCommand>,
    events: flume::Receiver<NetEvent>,
    metrics: Arc<NetMetrics>,
    connected: Arc<RwLock<HashSet<NodeId>>>,
    local_addr: Arc<RwLock<Option<SocketAddr>>>,
    id: NodeId,
    threads: Vec<ExecutorJoinHandle<()>>,
}

impl Network {
    /// Starts the executors, binds the listener (if configured) and returns once listening.
    /// `admission` decides which verified clients a hub keeps (S-3).
    pub fn start(
        cfg: NetConfig,
        signer: Arc<dyn Signer>,
        scheme: Arc<dyn SignatureScheme>,
        admission: Arc<dyn Admission>,
    ) -> Result<Network, NetError> {
        let tls = TlsIdentity::generate()?;
        let metrics = Arc::new(NetMetrics::default());
        let (events_tx, events_rx) = flume::bounded(cfg.event_queue.max(1));
        let (cmd_tx, cmd_rx) = flume::bounded(cfg.command_queue.max(1));
        let (int_tx, int_rx) = flume::unbounded();
        let (stop_tx, stop_rx) = flume::bounded::<()>(1);
        let connected = Arc::new(RwLock::new(HashSet::new()));
        let local_addr = Arc::new(RwLock::new(None));
        let own_id = signer.node_id();
        let mut capabilities = caps::CHAIN_SYNC_V2;
        if cfg.is_hub || cfg.listen.is_some() {
            capabilities |= caps::HUB;
        }
        let hello = Hello {
            version: cfg.protocol_version,
            network_id: cfg.network_id,
            capabilities,
        };
        let n = cfg.executors.max(1);
        let placement = cfg.placement.clone();
        let gate = Arc::new(InboundGate::new(
            cfg.max_handshakes,
            cfg.max_handshakes_per_source,
            cfg.max_inbound,
        ));
        // Never below one frame of the largest size, or such a frame could never arrive.
        let frames = FrameBudget::new(cfg.max_inflight_frame_bytes.max(cfg.max_payload));
        let handshake_log = LogThrottle::new(cfg.handshake_log_period);
        let shared = Arc::new(Layer {
            ctx: HandshakeContext {
                signer,
                scheme,
                hello,
                admission,
            },
            cfg,
            tls,
            own_id,
            metrics: metrics.clone(),
            events: events_tx,
            internal: int_tx,
            connected: connected.clone(),
            serial: AtomicU64::new(1),
            meter: GlobalMeter::new(),
            gate,
            frames,
            handshake_log,
            own_dials: Default::default(),
            stopping: AtomicBool::new(false),
            local_addr: local_addr.clone(),
            stop: stop_rx,
        });

        let jobs: Vec<(flume::Sender<Job>, flume::Receiver<Job>)> =
            (0..n).map(|_| flume::unbounded()).collect();
        let job_senders: Vec<flume::Sender<Job>> = jobs.iter().map(|(s, _)| s.clone()).collect();
        let (started_tx, started_rx) = flume::bounded::<Result<Option<SocketAddr>, NetError>>(1);
        let mut threads = Vec::with_capacity(n);
        let mut control = Some((cmd_rx, int_rx, started_tx, stop_tx));
        for (i, (_, jobs_rx)) in jobs.into_iter().enumerate() {
            let placement = match &placement {
                CorePlacement::Unbound => Placement::Unbound,
                CorePlacement::Pinned(cpus) if !cpus.is_empty() => {
                    Placement::Fixed(cpus[i % cpus.len()])
                }
                CorePlacement::Pinned(_) => Placement::Unbound,
            };
            let shared = shared.clone();
            let senders = job_senders.clone();
            let control = control.take();
            let builder = LocalExecutorBuilder::new(placement).name(&format!("pala-net-{i}"));
            let handle = builder
                .spawn(move || executor_main(shared, jobs_rx, senders, control))
                .map_err(|e| NetError::Executor(e.to_string()));
            match handle {
                Ok(h) => threads.push(h),
                Err(e) => {
                    for s in &job_senders {
                        let _ = s.send(Job::Stop);
                    }
                    return Err(e);
                }
            }
        }
        let bound = match started_rx.recv() {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                for s in &job_senders {
                    let _ = s.send(Job::Stop);
                }
                for t in threads {
                    let _ = t.join();
                }
                return Err(e);
            }
            Err(_) => return Err(NetError::Executor("executor 0 exited during start".into())),
        };
        info!(id = %own_id, local_addr = ?bound, executors = n, "network started");
        Ok(Network {
            commands: cmd_tx,
            events: events_rx,
            metrics,
            connected,
            local_addr,
            id: own_id,
            threads,
        })
    }

    /// Our consensus id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The bound listen address (with the real port when 0 was configured).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        *self.local_addr.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The counters.
    pub fn metrics(&self) -> &Arc<NetMetrics> {
        &self.metrics
    }

    /// The events towards the user.
    pub fn events(&self) -> &flume::Receiver<NetEvent> {
        &self.events
    }

    /// A sender for commands (clone it into other threads or executors; `send_async` from
    /// async code).
    pub fn commands(&self) -> flume::Sender<NetCommand> {
        self.commands.clone()
    }

    /// Sends a command, blocking while the command queue is full.
    pub fn command(&self, c: NetCommand) -> Result<(), NetError> {
        self.commands.send(c).map_err(|_| NetError::Stopped)
    }

    /// Queues `message` for `to`.
    pub fn send(&self, to: NodeId, message: Message) -> Result<(), NetError> {
        self.command(NetCommand::Send { to, message })
    }

    /// Queues `message` for every connected peer.
    pub fn broadcast(&self, message: Message) -> Result<(), NetError> {
        self.command(NetCommand::Broadcast { message })
    }

    /// Keeps a connection to `addr`, retried on the W-2 period (see [`NetCommand::Dial`]).
    pub fn dial(
        &self,
        addr: impl Into<PeerAddr>,
        expected: Option<NodeId>,
    ) -> Result<(), NetError> {
        self.dial_with(addr, expected, DialPolicy::Periodic)
    }

    /// Keeps a connection to `addr`, retried under `policy` (see [`NetCommand::Dial`]).
    pub fn dial_with(
        &self,
        addr: impl Into<PeerAddr>,
        expected: Option<NodeId>,
        policy: DialPolicy,
    ) -> Result<(), NetError> {
        self.command(NetCommand::Dial {
            addr: addr.into(),
            expected,
            policy,
        })
    }

    /// Starts listening on `addr` and waits for the outcome (see [`NetCommand::Listen`]).
    pub fn listen(&self, addr: SocketAddr) -> Result<SocketAddr, NetError> {
        let (tx, rx) = flume::bounded(1);
        self.command(NetCommand::Listen {
            addr,
            reply: Some(tx),
        })?;
        rx.recv().map_err(|_| NetError::Stopped)?
    }

    /// Stops accepting connections (see [`NetCommand::Unlisten`]).
    pub fn unlisten(&self) -> Result<(), NetError> {
        self.command(NetCommand::Unlisten)
    }

    /// Closes the connection to `peer`.
    pub fn disconnect(&self, peer: NodeId) -> Result<(), NetError> {
        self.command(NetCommand::Disconnect { peer })
    }

    /// Whether a verified connection to `peer` is registered.
    pub fn is_connected(&self, peer: &NodeId) -> bool {
        self.connected
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(peer)
    }

    /// The peers with a registered connection.
    pub fn connected_peers(&self) -> Vec<NodeId> {
        self.connected
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect()
    }

    /// Closes every connection and joins the executor threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.commands.send(NetCommand::Shutdown);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.stop();
    }
}
