//! The HTTP API (tiny_http on its own threads; it need not share the io_uring executors)
//! and a minimal blocking client used for forwarding, the demo and the tests.
//!
//! | method | path | what |
//! |---|---|---|
//! | POST | `/tx` | one or more key-value transactions, one JSON object per line |
//! | GET | `/tx/<hash>` | whether a transaction took effect |
//! | GET | `/status` | role, epoch, head, finalized height, peers |
//! | GET | `/block/<height>` | a finalized block |
//! | GET | `/kv/<key>` | a key of the replicated store |
//! | GET | `/stream` | finalized blocks as server-sent events |
//! | GET | `/metrics` | Prometheus text |
//! | GET | `/healthz`, `/readyz` | liveness; readiness (caught up) |

use crate::app::KvTx;
use crate::config::Config;
use crate::mempool::MempoolHandle;
use crate::metrics::Metrics;
use crate::stages::application::{AppView, ApplicationMailbox};
use crate::status::StatusReader;
use anyhow::{anyhow, Context, Result};
use crossbeam_channel::{bounded, Receiver, Sender};
use pala_net::NetMetrics;
use pala_storage::StorageReader;
use pala_types::{Block, Hash};
use serde_json::json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tiny_http::{Header, Method, Request, Response, Server};
use tracing::{debug, warn};

const FORWARDED: &str = "X-Pala-Forwarded";
const MAX_STREAMS: usize = 32;
const MAX_BODY: usize = 8 << 20;

/// What the API reads and where it hands submissions: read-only views of the stages and
/// their mailboxes, never their state.
#[derive(Clone)]
pub struct HttpContext {
    /// The configuration in force.
    pub cfg: Config,
    /// Block 0.
    pub genesis_block: Arc<Block>,
    /// The node's metrics.
    pub metrics: Arc<Metrics>,
    /// The network layer's counters.
    pub net_metrics: Arc<NetMetrics>,
    /// The consensus stage's status snapshot.
    pub status: StatusReader,
    /// Where submitted transactions wait for a block.
    pub mempool: MempoolHandle,
    /// The applied state.
    pub app_view: AppView,
    /// Submission times and stream subscriptions go to the application stage.
    pub app: ApplicationMailbox,
    /// Finalized blocks.
    pub storage: StorageReader,
}

/// The running API server.
pub struct HttpServer {
    server: Arc<Server>,
    addr: SocketAddr,
    threads: Vec<std::thread::JoinHandle<()>>,
    forwarder: Option<std::thread::JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `addr` and starts the worker threads (and the forwarder, if configured).
    pub fn start(shared: HttpContext, addr: SocketAddr) -> Result<HttpServer> {
        let server = Arc::new(
            Server::http(addr).map_err(|e| anyhow!("http.listen {addr}: cannot bind: {e}"))?,
        );
        let bound = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| anyhow!("http.listen: not an IP address"))?;
        let targets: Vec<SocketAddr> = shared
            .cfg
            .http
            .forward_to
            .iter()
            .filter_map(|a| a.parse().ok())
            .filter(|a| *a != bound)
            .collect();
        let (fwd_tx, forwarder) = if targets.is_empty() {
            (None, None)
        } else {
            let (tx, rx) = bounded::<Vec<u8>>(shared.cfg.mempool.max_txs.min(65536));
            let s = shared.clone();
            let h = std::thread::Builder::new()
                .name("pala-forward".into())
                .spawn(move || forward_loop(s, rx, targets))
                .context("starting the forwarder")?;
            (Some(tx), Some(h))
        };
        let streams = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::new();
        for i in 0..shared.cfg.http.threads {
            let server = server.clone();
            let shared = shared.clone();
            let fwd = fwd_tx.clone();
            let streams = streams.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("pala-http-{i}"))
                    .spawn(move || {
                        while let Ok(req) = server.recv() {
                            handle(&shared, req, fwd.as_ref(), &streams);
                        }
                    })
                    .context("starting an http thread")?,
            );
        }
        Ok(HttpServer {
            server,
            addr: bound,
            threads,
            forwarder,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting requests and joins the workers.
    pub fn stop(self) {
        for _ in &self.threads {
            self.server.unblock();
        }
        for t in self.threads {
            let _ = t.join();
        }
        // The forwarder ends when its last sender (held by the workers) is gone.
        if let Some(f) = self.forwarder {
            let _ = f.join();
        }
    }
}

fn json_response(code: u16, v: serde_json::Value) -> Response<std::io::Cursor<Vec<u8>>> {
    let mut r = Response::from_data(v.to_string().into_bytes()).with_status_code(code);
    if let Ok(h) = Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..]) {
        r.add_header(h);
    }
    r
}

fn text(code: u16, s: impl Into<String>) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string(s.into()).with_status_code(code)
}

fn hash_from_hex(s: &str) -> Option<Hash> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut h = [0u8; 32];
    for (i, b) in h.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(Hash(h))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A block as JSON (transactions as text when they are UTF-8).
pub fn block_json(b: &Block) -> serde_json::Value {
    json!({
        "height": b.height(),
        "sn": b.sn().to_string(),
        "hash": b.hash().to_string(),
        "parent": b.header.parent_hash.to_string(),
        "timestamp_ms": b.header.timestamp_ms,
        "txs": b.txs.iter().map(|t| String::from_utf8_lossy(t).into_owned()).collect::<Vec<_>>(),
    })
}

fn handle(
    shared: &HttpContext,
    mut req: Request,
    fwd: Option<&Sender<Vec<u8>>>,
    streams: &Arc<AtomicUsize>,
) {
    let url = req.url().to_string();
    let path = url.split('?').next().unwrap_or("").to_string();
    let method = req.method().clone();
    let r = match (&method, path.as_str()) {
        (Method::Post, "/tx") => submit(shared, &mut req, fwd),
        (Method::Get, "/status") => {
            let st = shared.status.get();
            json_response(200, serde_json::to_value(&*st).unwrap_or_default())
        }
        (Method::Get, "/healthz") => text(200, "ok\n"),
        (Method::Get, "/readyz") => {
            let st = shared.status.get();
            if st.ready && !st.stopping {
                text(200, "ready\n")
            } else {
                text(503, "not ready: catching up or no peers\n")
            }
        }
        (Method::Get, "/metrics") => {
            let st = shared.status.get();
            let pool = shared.mempool.size();
            let body = shared
                .metrics
                .render(&st, &shared.net_metrics.snapshot(), pool);
            let mut r = Response::from_string(body);
            if let Ok(h) =
                Header::from_bytes(&b"Content-Type"[..], &b"text/plain; version=0.0.4"[..])
            {
                r.add_header(h);
            }
            r
        }
        (Method::Get, "/stream") => {
            if streams.fetch_add(1, Ordering::SeqCst) >= MAX_STREAMS {
                streams.fetch_sub(1, Ordering::SeqCst);
                text(503, "too many streams\n")
            } else {
                let Some(rx) = shared.app.subscribe(1024) else {
                    streams.fetch_sub(1, Ordering::SeqCst);
                    let _ = req.respond(text(503, "the node is busy or stopping\n"));
                    return;
                };
                let streams = streams.clone();
                // A stream holds its connection open: serve it on its own thread so the
                // workers stay free.
                let _ = std::thread::Builder::new()
                    .name("pala-sse".into())
                    .spawn(move || {
                        sse(req.into_writer(), rx);
                        streams.fetch_sub(1, Ordering::SeqCst);
                    });
                return;
            }
        }
        (Method::Get, p) if p.starts_with("/tx/") => match hash_from_hex(&p[4..]) {
            Some(h) => {
                // The store remembers hashes for its deduplication window only; an
                // older transaction reads as not (known to be) finalized.
                let height = shared.app_view.applied(&h);
                json_response(
                    200,
                    json!({ "hash": &p[4..], "finalized": height.is_some(), "height": height }),
                )
            }
            None => json_response(400, json!({"error": "expected /tx/<64 hex characters>"})),
        },
        (Method::Get, p) if p.starts_with("/kv/") => {
            let key = percent_decode(&p[4..]);
            match shared.app_view.get(&key) {
                (Some(e), applied) => json_response(
                    200,
                    json!({"key": key, "value": e.value, "height": e.height, "applied_height": applied}),
                ),
                (None, applied) => json_response(
                    404,
                    json!({"key": key, "error": "not found", "applied_height": applied}),
                ),
            }
        }
        (Method::Get, p) if p.starts_with("/block/") => match p[7..].parse::<u64>() {
            Ok(0) => json_response(200, block_json(&shared.genesis_block)),
            Ok(h) => {
                let b = shared.storage.finalized_block(h).ok().flatten();
                match b {
                    Some(b) => json_response(200, block_json(&b)),
                    None => json_response(
                        404,
                        json!({"error": "no finalized block at this height", "height": h}),
                    ),
                }
            }
            Err(_) => json_response(400, json!({"error": "expected /block/<height>"})),
        },
        _ => json_response(404, json!({"error": "unknown path", "path": path})),
    };
    if let Err(e) = req.respond(r) {
        debug!("http respond: {e}");
    }
}

fn submit(
    shared: &HttpContext,
    req: &mut Request,
    fwd: Option<&Sender<Vec<u8>>>,
) -> Response<std::io::Cursor<Vec<u8>>> {
    let status = shared.status.get();
    if status.stopping {
        return json_response(503, json!({"error": "node is shutting down"}));
    }
    let forwarded = req
        .headers()
        .iter()
        .any(|h| h.field.as_str().as_str().eq_ignore_ascii_case(FORWARDED));
    let mut body = Vec::new();
    if req
        .as_reader()
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut body)
        .is_err()
        || body.len() > MAX_BODY
    {
        return json_response(
            413,
            json!({"error": format!("body larger than {MAX_BODY} bytes")}),
        );
    }
    let m = &shared.metrics;
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    let mut full = false;
    let mut submitted = Vec::new();
    let now = Instant::now();
    for line in body.split(|b| *b == b'\n') {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let tx = line.to_vec();
        if let Err(e) = shared.app_view.check_tx(&tx) {
            refused.push(json!({"error": e}));
            m.txs_refused.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if tx.len() > shared.cfg.mempool.max_tx_bytes {
            refused.push(json!({"error": format!("transaction larger than {} bytes", shared.cfg.mempool.max_tx_bytes)}));
            m.txs_refused.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let h = Hash::of(&tx);
        if status.is_proposer() {
            let r = shared.mempool.insert(tx.clone());
            match r {
                Ok(_) | Err(crate::mempool::MempoolError::Duplicate) => {}
                Err(e) => {
                    full |= matches!(e, crate::mempool::MempoolError::Full(_));
                    refused.push(json!({"error": e.to_string()}));
                    m.txs_refused.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
        }
        if !forwarded {
            submitted.push((h, now));
            if let Some(f) = fwd {
                if f.try_send(tx).is_err() {
                    m.forward_failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        m.txs_submitted.fetch_add(1, Ordering::Relaxed);
        accepted.push(h.to_string());
    }
    if !submitted.is_empty() {
        shared.app.submitted(submitted);
    }
    let code = if !accepted.is_empty() {
        200
    } else if full {
        503
    } else {
        400
    };
    json_response(code, json!({"accepted": accepted, "refused": refused}))
}

/// Sends transactions submitted here to the proposers, batched, so whichever is primary
/// can include them.
fn forward_loop(shared: HttpContext, rx: Receiver<Vec<u8>>, targets: Vec<SocketAddr>) {
    while let Ok(first) = rx.recv() {
        let mut body = first;
        body.push(b'\n');
        let mut n = 1;
        while n < 2000 {
            match rx.try_recv() {
                Ok(tx) => {
                    body.extend_from_slice(&tx);
                    body.push(b'\n');
                    n += 1;
                }
                Err(_) => break,
            }
        }
        for t in &targets {
            match request(*t, "POST", "/tx", Some((&body, true))) {
                Ok((code, _)) if code < 500 => {}
                Ok((code, _)) => {
                    debug!(%t, code, "forward refused");
                    shared
                        .metrics
                        .forward_failures
                        .fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    debug!(%t, "forward failed: {e}");
                    shared
                        .metrics
                        .forward_failures
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Writes server-sent events for finalized blocks straight to the connection, flushing
/// each one (a chunked response would sit in the server's buffer).
fn sse(mut w: Box<dyn Write + Send>, rx: Receiver<Arc<Block>>) {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n: pala finalized blocks\n\n";
    if w.write_all(head.as_bytes())
        .and_then(|_| w.flush())
        .is_err()
    {
        return;
    }
    loop {
        // A comment every 15 s keeps proxies from closing an idle stream and reveals a
        // closed client.
        let msg = match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(b) => format!("event: finalized\ndata: {}\n\n", block_json(&b)),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => ": keep-alive\n\n".into(),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        };
        if w.write_all(msg.as_bytes()).and_then(|_| w.flush()).is_err() {
            return;
        }
    }
}

/// A blocking HTTP/1.1 request with a 5 s timeout; returns status and body. `body` is
/// `(bytes, forwarded)`.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<(&[u8], bool)>,
) -> Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let (b, fwd) = body.unwrap_or((&[], false));
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        b.len()
    );
    if fwd {
        head.push_str(&format!("{FORWARDED}: 1\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(b)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("malformed HTTP response from {addr}"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("malformed HTTP status from {addr}"))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((code, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// `GET path` parsed as JSON.
pub fn get_json(addr: SocketAddr, path: &str) -> Result<(u16, serde_json::Value)> {
    let (code, body) = request(addr, "GET", path, None)?;
    let v = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
    Ok((code, v))
}

/// Submits key-value transactions to `addr`; returns the accepted hashes.
pub fn submit_txs(addr: SocketAddr, txs: &[KvTx]) -> Result<Vec<String>> {
    let mut body = Vec::new();
    for t in txs {
        body.extend_from_slice(&t.encode());
        body.push(b'\n');
    }
    let (code, text) = request(addr, "POST", "/tx", Some((&body, false)))?;
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    if code != 200 {
        warn!(%addr, code, body = %text, "submission refused");
    }
    Ok(v["accepted"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|h| h.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default())
}
