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

use crate::admission::Admission;
use crate::config::{CorePlacement, NetConfig};
use crate::frame::{encode_frame, read_frame, FrameError, Incoming};
use crate::handshake::{
    caps, client_handshake, server_handshake, HandshakeContext, HandshakeFailure, Hello,
};
use crate::metrics::{CloseReason, NetMetrics};
use crate::ratelimit::{GlobalMeter, TokenBucket};
use crate::tls::{server_name, TlsError, TlsIdentity};
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
use thiserror::Error;
use tracing::{debug, info, warn};

/// An encoded frame, shared by every queue a broadcast reaches.
type Frame = Arc<Vec<u8>>;

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
    /// Send to every connected peer (W-3: a broadcast goes to our own connections only).
    Broadcast {
        /// The message.
        message: Message,
    },
    /// Keep a connection to `addr`, redialing with back-off; a no-op if already dialing it.
    Dial {
        /// Address to dial.
        addr: SocketAddr,
        /// The id the server must prove (a proposer dialed by id); `None` for a trusted
        /// bootnode address (S-3).
        expected: Option<NodeId>,
    },
    /// Stop redialing `addr` (an established connection stays until it closes).
    Undial {
        /// The address given to [`NetCommand::Dial`].
        addr: SocketAddr,
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
    Accepted(AcceptedTcpStream),
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
    addr: SocketAddr,
    expected: Option<NodeId>,
    cancel: Arc<AtomicBool>,
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

    fn handshake_failed(&self, addr: SocketAddr, direction: Direction, reason: HandshakeFailure) {
        self.metrics.handshake_failed(reason);
        warn!(%addr, ?direction, reason = reason.as_str(), "handshake failed: {reason}");
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

    /// Keeps a connection to `addr` (see [`NetCommand::Dial`]).
    pub fn dial(&self, addr: SocketAddr, expected: Option<NodeId>) -> Result<(), NetError> {
        self.command(NetCommand::Dial { addr, expected })
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

type Control = (
    flume::Receiver<NetCommand>,
    flume::Receiver<Internal>,
    flume::Sender<Result<Option<SocketAddr>, NetError>>,
    flume::Sender<()>,
);

async fn executor_main(
    shared: Arc<Layer>,
    jobs: flume::Receiver<Job>,
    senders: Vec<flume::Sender<Job>>,
    control: Option<Control>,
) {
    // Tasks still running on this executor. glommio does not drop detached tasks when an
    // executor exits, so the executor waits for them: a leaked task would keep its socket
    // (and a SO_REUSEPORT listener) open after shutdown.
    let live = Rc::new(Cell::new(0usize));
    let spawn = |f: Pin<Box<dyn Future<Output = ()>>>| {
        live.set(live.get() + 1);
        let live = live.clone();
        let shared = shared.clone();
        glommio::spawn_local(async move {
            shared.until_stopped(f).await;
            live.set(live.get() - 1);
        })
        .detach();
    };
    // Dropping the sender ends the accept loop, which closes the listening socket.
    let mut listener: Option<flume::Sender<()>> = None;
    let listen = |listener: &mut Option<flume::Sender<()>>, addr: SocketAddr| {
        if let Some(bound) = *shared.local_addr.read().unwrap_or_else(|e| e.into_inner()) {
            if listener.is_some() {
                return Ok(bound);
            }
        }
        let l = TcpListener::bind(addr).map_err(|e| NetError::Bind {
            addr,
            error: e.to_string(),
        })?;
        let bound = l.local_addr().unwrap_or(addr);
        let (off_tx, off_rx) = flume::bounded::<()>(1);
        spawn(Box::pin(accept_loop(
            shared.clone(),
            l,
            senders.clone(),
            off_rx,
        )));
        *listener = Some(off_tx);
        *shared.local_addr.write().unwrap_or_else(|e| e.into_inner()) = Some(bound);
        info!(%bound, "listening");
        Ok(bound)
    };
    if let Some((cmd_rx, int_rx, started, stop_tx)) = control {
        let mut listen_result = Ok(None);
        if let Some(addr) = shared.cfg.listen {
            match listen(&mut listener, addr) {
                Ok(bound) => listen_result = Ok(Some(bound)),
                Err(e) => {
                    let _ = started.send(Err(e));
                    return;
                }
            }
        }
        glommio::spawn_local(coordinator(
            shared.clone(),
            cmd_rx,
            int_rx,
            senders.clone(),
            stop_tx,
        ))
        .detach();
        let _ = started.send(listen_result);
    }
    while let Ok(job) = jobs.recv_async().await {
        match job {
            Job::Accepted(a) => spawn(Box::pin(inbound(shared.clone(), a.bind_to_executor()))),
            Job::Dial(t) => spawn(Box::pin(dial_loop(shared.clone(), t))),
            Job::Listen { addr, reply } => {
                let r = listen(&mut listener, addr);
                if let Err(e) = &r {
                    warn!(%addr, "cannot listen: {e}");
                }
                if let Some(reply) = reply {
                    let _ = reply.try_send(r);
                }
            }
            Job::Unlisten => {
                if listener.take().is_some() {
                    *shared.local_addr.write().unwrap_or_else(|e| e.into_inner()) = None;
                    info!("stopped listening");
                }
            }
            Job::Stop => break,
        }
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while live.get() > 0 && Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(2)).await;
    }
}

async fn accept_loop(
    shared: Arc<Layer>,
    listener: TcpListener,
    executors: Vec<flume::Sender<Job>>,
    off: flume::Receiver<()>,
) {
    let mut next = 0usize;
    loop {
        let accepted = async { Some(listener.shared_accept().await) }
            .or(async {
                let _ = off.recv_async().await;
                None
            })
            .await;
        let Some(accepted) = accepted else {
            return;
        };
        match accepted {
            Ok(s) => {
                shared.metrics.accepted.fetch_add(1, Ordering::Relaxed);
                let _ = executors[next % executors.len()].send(Job::Accepted(s));
                next = next.wrapping_add(1);
            }
            Err(e) => {
                // Typically out of file descriptors: back off instead of spinning.
                warn!("accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Runs `f` with a deadline; `None` when it expired.
pub(crate) async fn with_deadline<F: Future>(d: Duration, f: F) -> Option<F::Output> {
    async { Some(f.await) }
        .or(async {
            glommio::timer::sleep(d).await;
            None
        })
        .await
}

fn tune_socket(shared: &Layer, s: &TcpStream) {
    let _ = s.set_nodelay(true);
    if let Some(idle) = shared.cfg.tcp_keepalive {
        // SAFETY: the descriptor is owned by `s`, which outlives the borrow.
        let fd = unsafe { BorrowedFd::borrow_raw(s.as_raw_fd()) };
        let sock = socket2::SockRef::from(&fd);
        let _ = sock.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(idle));
    }
}

async fn inbound(shared: Arc<Layer>, stream: TcpStream) {
    let Ok(addr) = stream.peer_addr() else {
        return;
    };
    tune_socket(&shared, &stream);
    let acceptor = futures_rustls::TlsAcceptor::from(shared.tls.server.clone());
    let ctx = &shared.ctx;
    let z = &shared.tls.spki;
    let result = with_deadline(shared.cfg.handshake_timeout, async {
        let mut tls = acceptor.accept(stream).await.map_err(|e| {
            debug!(%addr, "tls accept: {e}");
            HandshakeFailure::Tls
        })?;
        let v = server_handshake(&mut tls, ctx, z).await?;
        Ok::<_, HandshakeFailure>((tls, v))
    })
    .await
    .unwrap_or(Err(HandshakeFailure::Timeout));
    match result {
        Ok((tls, v)) => {
            shared.metrics.handshakes_ok.fetch_add(1, Ordering::Relaxed);
            run_established(&shared, tls, v.peer, addr, Direction::Inbound, v.hello).await;
        }
        Err(r) => shared.handshake_failed(addr, Direction::Inbound, r),
    }
}

enum DialOutcome {
    ConnectFailed,
    HandshakeFailed,
    Ran,
}

async fn dial_once(shared: &Arc<Layer>, addr: SocketAddr, expected: Option<NodeId>) -> DialOutcome {
    let stream = match with_deadline(shared.cfg.dial_timeout, TcpStream::connect(addr)).await {
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            debug!(%addr, "connect failed: {e}");
            shared.metrics.dial_failures.fetch_add(1, Ordering::Relaxed);
            return DialOutcome::ConnectFailed;
        }
        None => {
            shared.metrics.dial_failures.fetch_add(1, Ordering::Relaxed);
            return DialOutcome::ConnectFailed;
        }
    };
    tune_socket(shared, &stream);
    let connector = futures_rustls::TlsConnector::from(shared.tls.client.clone());
    let ctx = &shared.ctx;
    let result = with_deadline(shared.cfg.handshake_timeout, async {
        let mut tls = connector
            .connect(server_name(), stream)
            .await
            .map_err(|e| {
                debug!(%addr, "tls connect: {e}");
                HandshakeFailure::Tls
            })?;
        let v = client_handshake(&mut tls, ctx, expected).await?;
        Ok::<_, HandshakeFailure>((tls, v))
    })
    .await
    .unwrap_or(Err(HandshakeFailure::Timeout));
    match result {
        Ok((tls, v)) => {
            shared.metrics.handshakes_ok.fetch_add(1, Ordering::Relaxed);
            run_established(shared, tls, v.peer, addr, Direction::Outbound, v.hello).await;
            DialOutcome::Ran
        }
        Err(r) => {
            shared.handshake_failed(addr, Direction::Outbound, r);
            DialOutcome::HandshakeFailed
        }
    }
}

async fn dial_loop(shared: Arc<Layer>, t: DialTarget) {
    let cfg = &shared.cfg;
    let step = cfg.dial_backoff_step.max(Duration::from_millis(1));
    let mut backoff = step;
    let mut burst_start = Instant::now();
    loop {
        if t.cancel.load(Ordering::Relaxed) || shared.stopping.load(Ordering::Relaxed) {
            return;
        }
        // Already connected to the expected peer (it dialed us): nothing to do until it drops.
        if let Some(id) = t.expected {
            if shared.is_connected(&id) {
                glommio::timer::sleep(cfg.reconnect_period.min(Duration::from_secs(1))).await;
                continue;
            }
        }
        debug!(addr = %t.addr, expected = ?t.expected, "dialing");
        match dial_once(&shared, t.addr, t.expected).await {
            DialOutcome::Ran => {
                backoff = step;
                burst_start = Instant::now();
                glommio::timer::sleep(step).await;
            }
            DialOutcome::ConnectFailed => {
                if burst_start.elapsed() < cfg.dial_burst {
                    glommio::timer::sleep(backoff).await;
                    backoff = (backoff + step).min(cfg.dial_backoff_max);
                } else {
                    glommio::timer::sleep(cfg.reconnect_period).await;
                }
            }
            // No immediate retry after a failed handshake (S-5).
            DialOutcome::HandshakeFailed => glommio::timer::sleep(cfg.reconnect_period).await,
        }
    }
}

/// Registers a verified connection, runs it, and reports its end.
async fn run_established<S>(
    shared: &Arc<Layer>,
    stream: S,
    peer: NodeId,
    addr: SocketAddr,
    direction: Direction,
    hello: Hello,
) where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let serial = shared.serial.fetch_add(1, Ordering::Relaxed);
    let (queue_tx, queue_rx) = flume::bounded(shared.cfg.outbound_queue.max(1));
    let (kill_tx, kill_rx) = flume::bounded(1);
    let (done_tx, done_rx) = flume::bounded::<()>(1);
    let (reply_tx, reply_rx) = flume::bounded(1);
    let reg = Internal::Register {
        peer,
        serial,
        addr,
        direction,
        queue: queue_tx,
        kill: kill_tx,
        done: done_rx,
        reply: reply_tx,
    };
    if shared.internal.send_async(reg).await.is_err() {
        return;
    }
    let predecessor = match reply_rx.recv_async().await {
        Ok(Some(p)) => p,
        _ => {
            shared.metrics.closed(CloseReason::Duplicate);
            debug!(%peer, serial, %addr, "duplicate connection refused");
            return;
        }
    };
    if let Some(p) = predecessor {
        // Returns when the replaced connection dropped its `done` sender after its PeerDown.
        let _ = p.recv_async().await;
    }
    info!(%peer, serial, %addr, ?direction, "peer up");
    let up = NetEvent::PeerUp {
        peer,
        addr,
        direction,
        hello,
    };
    let reason = if shared.events.send_async(up).await.is_err() {
        CloseReason::Shutdown
    } else {
        connection_io(shared, stream, peer, queue_rx, kill_rx).await
    };
    shared.metrics.closed(reason);
    info!(%peer, serial, %addr, reason = reason.as_str(), "peer down");
    let _ = shared
        .events
        .send_async(NetEvent::PeerDown { peer, reason })
        .await;
    drop(done_tx);
    let _ = shared
        .internal
        .send_async(Internal::Closed { peer, serial })
        .await;
}

async fn connection_io<S>(
    shared: &Arc<Layer>,
    stream: S,
    peer: NodeId,
    queue: flume::Receiver<Frame>,
    kill: flume::Receiver<CloseReason>,
) -> CloseReason
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let (rd, wr) = futures_lite::io::split(stream);
    // Headers are 7 bytes: without a buffer every header would be a separate read call.
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let killed = async { kill.recv_async().await.unwrap_or(CloseReason::Shutdown) };
    let reader = read_loop(shared, &mut rd, peer);
    let writer = write_loop(shared, wr, queue);
    killed.or(reader.or(writer)).await
}

async fn read_loop<R: AsyncRead + Unpin>(
    shared: &Arc<Layer>,
    rd: &mut R,
    peer: NodeId,
) -> CloseReason {
    let cfg = &shared.cfg;
    let limits = &cfg.rate_limits;
    let m = &shared.metrics;
    let mut msgs =
        (limits.messages_per_sec > 0).then(|| TokenBucket::new(limits.messages_per_sec as f64));
    let mut bytes =
        (limits.bytes_per_sec > 0).then(|| TokenBucket::new(limits.bytes_per_sec as f64));
    let mut per_type: Vec<(u8, TokenBucket)> = limits
        .request_limits
        .iter()
        .map(|&(k, r)| (k, TokenBucket::new(r.max(1) as f64)))
        .collect();
    let mut buf = Vec::new();
    loop {
        let (message, wire_len) = match with_deadline(
            cfg.read_timeout,
            read_frame(rd, cfg.max_payload, &mut buf),
        )
        .await
        {
            None => return CloseReason::ReadTimeout,
            Some(Ok(Incoming::Message { message, wire_len })) => (message, wire_len),
            Some(Ok(Incoming::Unknown { kind, wire_len })) => {
                m.unknown_types.fetch_add(1, Ordering::Relaxed);
                m.bytes_in.fetch_add(wire_len as u64, Ordering::Relaxed);
                debug!(%peer, "ignored frame of unknown type {kind:#04x}");
                continue;
            }
            Some(Err(FrameError::Io(e))) => {
                debug!(%peer, "read: {e}");
                return CloseReason::Io;
            }
            Some(Err(e @ FrameError::BadSize { .. })) => {
                warn!(%peer, "closing: {e}");
                return CloseReason::Oversize;
            }
            Some(Err(e)) => {
                warn!(%peer, "closing: {e}");
                return CloseReason::Malformed;
            }
        };
        // Buffers that served one huge frame are not kept for a stream of small ones.
        if buf.capacity() > 1 << 20 {
            buf = Vec::new();
        }
        let now = Instant::now();
        let kind = message.type_code();
        if let Some((_, b)) = per_type.iter_mut().find(|(k, _)| *k == kind) {
            if !b.try_take(1.0, now) {
                m.rate_limited_drops.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        }
        let mut wait = msgs.as_mut().map_or(Duration::ZERO, |b| b.take(1.0, now));
        let total = shared.meter.add(wire_len as u64, now);
        if let Some(b) = bytes.as_mut() {
            if total > limits.global_bytes_threshold {
                wait = wait.max(b.take(wire_len as f64, now));
            }
        }
        if !wait.is_zero() {
            m.rate_limited_delays.fetch_add(1, Ordering::Relaxed);
            glommio::timer::sleep(wait).await;
        }
        m.frames_in.fetch_add(1, Ordering::Relaxed);
        m.bytes_in.fetch_add(wire_len as u64, Ordering::Relaxed);
        if shared
            .events
            .send_async(NetEvent::Message { peer, message })
            .await
            .is_err()
        {
            return CloseReason::Shutdown;
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    shared: &Arc<Layer>,
    wr: W,
    queue: flume::Receiver<Frame>,
) -> CloseReason {
    let m = &shared.metrics;
    let mut w = BufWriter::with_capacity(64 * 1024, wr);
    loop {
        let Ok(first) = queue.recv_async().await else {
            return CloseReason::Shutdown;
        };
        let batch = async {
            let mut n = 1u64;
            let mut bytes = first.len() as u64;
            w.write_all(&first).await?;
            // Drain what is already queued before one flush: fewer TLS records and syscalls.
            while let Ok(f) = queue.try_recv() {
                w.write_all(&f).await?;
                n += 1;
                bytes += f.len() as u64;
            }
            w.flush().await?;
            Ok::<_, std::io::Error>((n, bytes))
        };
        match with_deadline(shared.cfg.write_timeout, batch).await {
            None => return CloseReason::WriteTimeout,
            Some(Err(_)) => return CloseReason::Io,
            Some(Ok((n, bytes))) => {
                m.frames_out.fetch_add(n, Ordering::Relaxed);
                m.bytes_out.fetch_add(bytes, Ordering::Relaxed);
            }
        }
    }
}

struct Entry {
    serial: u64,
    addr: SocketAddr,
    direction: Direction,
    queue: flume::Sender<Frame>,
    kill: flume::Sender<CloseReason>,
    done: flume::Receiver<()>,
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// The duplicate rule (W-2): prefer the connection with a private address when exactly one
/// has one; between an inbound and an outbound connection keep the one dialed by the smaller
/// id, so both ends pick the same connection when they dial each other at once; otherwise
/// keep the newest.
fn keep_new(
    own: &NodeId,
    peer: &NodeId,
    old: &Entry,
    new_addr: SocketAddr,
    new_dir: Direction,
) -> bool {
    let (op, np) = (is_private(old.addr.ip()), is_private(new_addr.ip()));
    if op != np {
        return np;
    }
    if old.direction != new_dir {
        let new_dialer = if new_dir == Direction::Outbound {
            own
        } else {
            peer
        };
        return new_dialer == own.min(peer);
    }
    true
}

async fn coordinator(
    shared: Arc<Layer>,
    commands: flume::Receiver<NetCommand>,
    internal: flume::Receiver<Internal>,
    executors: Vec<flume::Sender<Job>>,
    stop: flume::Sender<()>,
) {
    enum In {
        Cmd(Result<NetCommand, flume::RecvError>),
        Int(Result<Internal, flume::RecvError>),
    }
    let m = shared.metrics.clone();
    let max = shared.cfg.max_payload;
    let mut peers: HashMap<NodeId, Entry> = HashMap::new();
    let mut dials: HashMap<SocketAddr, Arc<AtomicBool>> = HashMap::new();
    let mut next_exec = 0usize;
    let set_connected = |peers: &HashMap<NodeId, Entry>| {
        let mut c = shared.connected.write().unwrap_or_else(|e| e.into_inner());
        c.clear();
        c.extend(peers.keys().copied());
        m.peers.store(peers.len() as i64, Ordering::Relaxed);
    };
    let kill = |e: Entry, r: CloseReason| {
        let _ = e.kill.try_send(r);
    };
    loop {
        let next = async { In::Cmd(commands.recv_async().await) }
            .race(async { In::Int(internal.recv_async().await) })
            .await;
        match next {
            In::Cmd(Ok(NetCommand::Send { to, message })) => {
                let Some(frame) = encode_frame(&message, max) else {
                    m.oversize_outbound.fetch_add(1, Ordering::Relaxed);
                    warn!(
                        kind = message.kind(),
                        "outbound message exceeds the frame limit; dropped"
                    );
                    continue;
                };
                route(&m, &mut peers, to, Arc::new(frame), &kill, &set_connected);
            }
            In::Cmd(Ok(NetCommand::Broadcast { message })) => {
                let Some(frame) = encode_frame(&message, max) else {
                    m.oversize_outbound.fetch_add(1, Ordering::Relaxed);
                    warn!(
                        kind = message.kind(),
                        "outbound message exceeds the frame limit; dropped"
                    );
                    continue;
                };
                let frame = Arc::new(frame);
                let ids: Vec<NodeId> = peers.keys().copied().collect();
                for id in ids {
                    route(&m, &mut peers, id, frame.clone(), &kill, &set_connected);
                }
            }
            In::Cmd(Ok(NetCommand::Dial { addr, expected })) => {
                if dials.contains_key(&addr) {
                    continue;
                }
                let cancel = Arc::new(AtomicBool::new(false));
                dials.insert(addr, cancel.clone());
                let target = DialTarget {
                    addr,
                    expected,
                    cancel,
                };
                let _ = executors[next_exec % executors.len()].send(Job::Dial(target));
                next_exec = next_exec.wrapping_add(1);
            }
            In::Cmd(Ok(NetCommand::Undial { addr })) => {
                if let Some(c) = dials.remove(&addr) {
                    c.store(true, Ordering::Relaxed);
                }
            }
            In::Cmd(Ok(NetCommand::Listen { addr, reply })) => {
                let _ = executors[0].send(Job::Listen { addr, reply });
            }
            In::Cmd(Ok(NetCommand::Unlisten)) => {
                let _ = executors[0].send(Job::Unlisten);
            }
            In::Cmd(Ok(NetCommand::Disconnect { peer })) => {
                if let Some(e) = peers.remove(&peer) {
                    kill(e, CloseReason::Requested);
                    set_connected(&peers);
                }
            }
            In::Cmd(Ok(NetCommand::Shutdown)) | In::Cmd(Err(_)) => {
                shared.stopping.store(true, Ordering::Relaxed);
                for (_, e) in peers.drain() {
                    kill(e, CloseReason::Shutdown);
                }
                set_connected(&peers);
                for c in dials.values() {
                    c.store(true, Ordering::Relaxed);
                }
                drop(stop);
                for s in &executors {
                    let _ = s.send(Job::Stop);
                }
                return;
            }
            In::Int(Ok(Internal::Register {
                peer,
                serial,
                addr,
                direction,
                queue,
                kill: kill_tx,
                done,
                reply,
            })) => {
                let new = Entry {
                    serial,
                    addr,
                    direction,
                    queue,
                    kill: kill_tx,
                    done,
                };
                let predecessor = match peers.get(&peer) {
                    None => {
                        debug!(%peer, serial, %addr, ?direction, "registry: registered");
                        None
                    }
                    Some(old) if keep_new(&shared.own_id, &peer, old, addr, direction) => {
                        let old = peers.remove(&peer).expect("present");
                        debug!(
                            %peer, serial, %addr, ?direction, old_serial = old.serial,
                            old_addr = %old.addr, old_direction = ?old.direction,
                            "registry: duplicate, keeping the new connection"
                        );
                        let done = old.done.clone();
                        kill(old, CloseReason::Duplicate);
                        Some(done)
                    }
                    Some(old) => {
                        debug!(
                            %peer, serial, %addr, ?direction, old_serial = old.serial,
                            old_addr = %old.addr, old_direction = ?old.direction,
                            "registry: duplicate, keeping the old connection"
                        );
                        let _ = reply.try_send(None);
                        continue;
                    }
                };
                peers.insert(peer, new);
                m.connections_opened.fetch_add(1, Ordering::Relaxed);
                set_connected(&peers);
                let _ = reply.try_send(Some(predecessor));
            }
            In::Int(Ok(Internal::Closed { peer, serial })) => {
                if peers.get(&peer).is_some_and(|e| e.serial == serial) {
                    debug!(%peer, serial, "registry: closed");
                    peers.remove(&peer);
                    set_connected(&peers);
                } else {
                    debug!(%peer, serial, "registry: closed (already removed or replaced)");
                }
            }
            In::Int(Err(_)) => return,
        }
    }
}

fn route(
    m: &NetMetrics,
    peers: &mut HashMap<NodeId, Entry>,
    to: NodeId,
    frame: Frame,
    kill: &impl Fn(Entry, CloseReason),
    set_connected: &impl Fn(&HashMap<NodeId, Entry>),
) {
    let Some(e) = peers.get(&to) else {
        m.unroutable.fetch_add(1, Ordering::Relaxed);
        return;
    };
    match e.queue.try_send(frame) {
        Ok(()) => {}
        Err(flume::TrySendError::Full(_)) => {
            warn!(peer = %to, "outbound queue full; closing the connection");
            let e = peers.remove(&to).expect("present");
            kill(e, CloseReason::QueueFull);
            set_connected(peers);
        }
        Err(flume::TrySendError::Disconnected(_)) => {
            // The connection ended; its Closed notice is on the way.
            m.unroutable.fetch_add(1, Ordering::Relaxed);
        }
    }
}
