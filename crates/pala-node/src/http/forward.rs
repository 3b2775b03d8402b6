//! Passing transactions submitted here on to the proposers (`http.forward_to`), batched,
//! so whichever is primary can include them. Each batch carries the proof of
//! [`super::auth`] that it comes from a node of the cluster.

use super::auth::Auth;
use super::client;
use super::HttpContext;
use anyhow::{Context, Result};
use crossbeam_channel::{bounded, Receiver, Sender};
use std::net::SocketAddr;
use std::sync::Arc;
use tracing::debug;

const MAX_BATCH: usize = 2000;

/// The forwarding thread and its queue.
pub struct Forwarder {
    tx: Sender<Vec<u8>>,
    thread: std::thread::JoinHandle<()>,
}

impl Forwarder {
    /// Starts forwarding to `http.forward_to` other than `bound` (this node); `None` when
    /// there is no other.
    pub fn start(
        shared: &HttpContext,
        auth: Arc<Auth>,
        bound: SocketAddr,
    ) -> Result<Option<Forwarder>> {
        let targets: Vec<SocketAddr> = shared
            .cfg
            .http
            .forward_to
            .iter()
            .filter_map(|a| a.parse().ok())
            .filter(|a| *a != bound)
            .collect();
        if targets.is_empty() {
            return Ok(None);
        }
        let (tx, rx) = bounded::<Vec<u8>>(shared.cfg.mempool.max_txs.min(65536));
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("pala-forward".into())
            .spawn(move || forward_loop(s, auth, rx, targets))
            .context("starting the forwarder")?;
        Ok(Some(Forwarder { tx, thread }))
    }

    /// Where the API queues transactions to forward.
    pub fn sender(&self) -> Sender<Vec<u8>> {
        self.tx.clone()
    }

    /// Ends the thread once the queue is drained (the API's senders are gone by then).
    pub fn stop(self) {
        drop(self.tx);
        let _ = self.thread.join();
    }
}

fn forward_loop(
    shared: HttpContext,
    auth: Arc<Auth>,
    rx: Receiver<Vec<u8>>,
    targets: Vec<SocketAddr>,
) {
    let failed = || shared.metrics.forward_failures.inc();
    while let Ok(first) = rx.recv() {
        let mut body = first;
        body.push(b'\n');
        let mut n = 1;
        while n < MAX_BATCH {
            match rx.try_recv() {
                Ok(tx) => {
                    body.extend_from_slice(&tx);
                    body.push(b'\n');
                    n += 1;
                }
                Err(_) => break,
            }
        }
        let headers = auth.forward_headers(&body);
        for t in &targets {
            match client::send(*t, "POST", "/tx", &headers, &body) {
                // 401: the target does not share this node's forward secret or token.
                Ok((code, _)) if code < 500 && code != 401 => {}
                Ok((code, _)) => {
                    debug!(%t, code, "forward refused");
                    failed();
                }
                Err(e) => {
                    debug!(%t, "forward failed: {e:#}");
                    failed();
                }
            }
        }
    }
}
