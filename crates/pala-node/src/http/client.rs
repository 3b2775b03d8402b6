//! The HTTP client of the node (forwarding), `pala demo`, the bench cluster and the
//! tests: hyper-util's pooled client on one small runtime thread of its own, behind a
//! blocking call. hyper rather than a second HTTP implementation (ureq) keeps one HTTP
//! stack in the tree, and the pool's keep-alive connections spare the submission load of
//! `pala demo` a TCP handshake per request.

use crate::app::KvTx;
use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;
use tracing::warn;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const TIMEOUT: Duration = Duration::from_secs(5);
const MAX_RESPONSE: usize = 64 << 20;

struct Shared {
    rt: tokio::runtime::Handle,
    client: Client<HttpConnector, Full<Bytes>>,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("starting the HTTP client runtime");
        let handle = rt.handle().clone();
        // The runtime's driver runs on this thread for the life of the process; callers
        // only spawn onto it.
        std::thread::Builder::new()
            .name("pala-http-client".into())
            .spawn(move || rt.block_on(std::future::pending::<()>()))
            .expect("starting the HTTP client thread");
        let mut conn = HttpConnector::new();
        conn.set_connect_timeout(Some(CONNECT_TIMEOUT));
        conn.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            // Shorter than any server's idle timeout, so a pooled connection is rarely
            // one the server is closing.
            .pool_idle_timeout(Duration::from_secs(4))
            .pool_max_idle_per_host(8)
            .build(conn);
        Shared { rt: handle, client }
    })
}

/// A blocking HTTP/1.1 request with a 5 s timeout and extra `headers`; returns status and
/// body.
pub fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<(u16, String)> {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let req = req
        .body(Full::new(Bytes::copy_from_slice(body)))
        .with_context(|| format!("building {method} {path}"))?;
    let s = shared();
    let client = s.client.clone();
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    s.rt.spawn(async move {
        let r = tokio::time::timeout(TIMEOUT, async move {
            let resp = client.request(req).await?;
            let code = resp.status().as_u16();
            let body = Limited::new(resp.into_body(), MAX_RESPONSE)
                .collect()
                .await
                .map_err(|e| anyhow!("reading the response: {e}"))?
                .to_bytes();
            Ok::<_, anyhow::Error>((code, String::from_utf8_lossy(&body).into_owned()))
        })
        .await
        .unwrap_or_else(|_| Err(anyhow!("no response within {TIMEOUT:?}")));
        let _ = tx.send(r);
    });
    rx.recv()
        .map_err(|_| anyhow!("the HTTP client runtime stopped"))?
        .with_context(|| format!("{method} http://{addr}{path}"))
}

/// A blocking HTTP/1.1 request with a 5 s timeout; returns status and body.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> Result<(u16, String)> {
    send(addr, method, path, &[], body.unwrap_or_default())
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
    let (code, text) = request(addr, "POST", "/tx", Some(&body))?;
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
