//! Accepting connections: the limits every connection lives under, the cap on how many
//! are open, and an accept loop that outlives accept failures.
//!
//! The server is hyper's HTTP/1.1 connection driver on a tokio multi-thread runtime with
//! `http.threads` workers: a connection is a task, not a thread, so thousands of idle or
//! stalled clients cost memory for their buffers only, and the cap bounds even that.
//! HTTP/2 is not served: a request line saying `HTTP/2.0` gets hyper's 400 and the
//! connection is closed; the HTTP/2 preface is closed without an answer.

use super::conn;
pub use super::service::{Body, Handler, HttpMetrics, Limits};
use anyhow::{Context, Result};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, Semaphore};
use tracing::warn;

/// Where connections come from: a listener, or in tests one that fails on purpose.
pub trait Accept: Send + 'static {
    /// The next connection.
    fn accept(&mut self) -> impl Future<Output = io::Result<TcpStream>> + Send;
}

impl Accept for TcpListener {
    async fn accept(&mut self) -> io::Result<TcpStream> {
        TcpListener::accept(self).await.map(|(s, _)| s)
    }
}

/// A bound listener and its runtime, not serving yet (so a port clash fails start-up
/// before anything else starts).
pub struct Bound {
    rt: tokio::runtime::Runtime,
    listener: TcpListener,
    addr: SocketAddr,
}

impl Bound {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts serving.
    pub fn serve(self, limits: Limits, handler: Handler, metrics: Arc<HttpMetrics>) -> Server {
        Server::start_on(self.rt, self.listener, self.addr, limits, handler, metrics)
    }
}

/// The running server: its runtime and the signal that stops it.
pub struct Server {
    rt: tokio::runtime::Runtime,
    stop: watch::Sender<bool>,
    addr: SocketAddr,
}

impl Server {
    /// Binds `addr` on a new runtime, ready to serve. The listen backlog is long so that
    /// a burst of connections is accepted (and, beyond the cap, refused) rather than left
    /// to SYN retries.
    pub fn bind(addr: SocketAddr, threads: usize) -> Result<Bound> {
        let rt = runtime(threads)?;
        let listener = {
            let _guard = rt.enter();
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()
            } else {
                TcpSocket::new_v6()
            }
            .context("http listener")?;
            socket.set_reuseaddr(true).context("http listener")?;
            socket
                .bind(addr)
                .with_context(|| format!("http.listen {addr}: cannot bind"))?;
            socket.listen(BACKLOG).context("http listener: listen")?
        };
        let addr = listener.local_addr().context("http listener")?;
        Ok(Bound { rt, listener, addr })
    }

    /// Serves connections from `accept`, on `rt`.
    pub fn start_on<A: Accept>(
        rt: tokio::runtime::Runtime,
        accept: A,
        addr: SocketAddr,
        limits: Limits,
        handler: Handler,
        metrics: Arc<HttpMetrics>,
    ) -> Server {
        let (stop, stopped) = watch::channel(false);
        rt.spawn(accept_loop(
            accept,
            Arc::new(limits),
            handler,
            metrics,
            stopped,
        ));
        Server { rt, stop, addr }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and drops every connection.
    pub fn stop(self) {
        let _ = self.stop.send(true);
        self.rt.shutdown_timeout(Duration::from_secs(1));
    }
}

/// The API's runtime: `threads` workers named `pala-http`.
pub fn runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .max_blocking_threads(4)
        .thread_name("pala-http")
        .enable_io()
        .enable_time()
        .build()
        .context("starting the HTTP runtime")
}

const BACKLOG: u32 = 1024;
const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts until stopped. A failed accept is counted, logged at most once a minute and
/// retried after a pause that grows from 10 to 100 ms: out of fds (EMFILE, ENFILE) the
/// pending connection stays queued and an immediate retry would spin; the listener itself
/// is never given up, so the API comes back as soon as fds are free again.
async fn accept_loop<A: Accept>(
    mut accept: A,
    limits: Arc<Limits>,
    handler: Handler,
    metrics: Arc<HttpMetrics>,
    mut stopped: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut backoff = MIN_BACKOFF;
    let mut last_warn: Option<Instant> = None;
    loop {
        let next = tokio::select! {
            r = accept.accept() => r,
            _ = stopped.changed() => return,
        };
        match next {
            Ok(stream) => {
                backoff = MIN_BACKOFF;
                metrics.accepted.inc();
                match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let (limits, handler, metrics) =
                            (limits.clone(), handler.clone(), metrics.clone());
                        let stopped = stopped.clone();
                        tokio::spawn(async move {
                            conn::serve(stream, &limits, handler, &metrics, stopped).await;
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        metrics.refused.inc();
                        conn::refuse(stream);
                    }
                }
            }
            Err(e) => {
                metrics.accept_errors.inc();
                if last_warn.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    warn!("http accept failed (retrying; counted in pala_http_accept_errors_total): {e}");
                    last_warn = Some(Instant::now());
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stopped.changed() => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
