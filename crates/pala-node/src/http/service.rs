//! What the server and each connection share: the handler type, the limits from
//! `[http]` and the server's counters.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::{Request, Response};
use std::convert::Infallible;
use std::fmt::Write;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A response body: whole or streamed.
pub type Body = BoxBody<Bytes, Infallible>;

/// Answers one request.
pub type Handler = Arc<
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send + Sync,
>;

/// What one connection may take (from `[http]`).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// A request head must arrive within this long.
    pub header_timeout: Duration,
    /// A request body must arrive within this long of its head.
    pub body_timeout: Duration,
    /// A connection on which nothing moved this long is closed.
    pub idle_timeout: Duration,
    /// Largest request head (hyper's read buffer; at least 8192).
    pub max_header_bytes: usize,
    /// Largest request body.
    pub max_body_bytes: usize,
}

impl Limits {
    /// The limits `[http]` sets.
    pub fn from_config(h: &crate::config::HttpSection) -> Limits {
        Limits {
            max_connections: h.max_connections,
            header_timeout: Duration::from_millis(h.header_timeout_ms),
            body_timeout: Duration::from_millis(h.body_timeout_ms),
            idle_timeout: Duration::from_millis(h.idle_timeout_ms),
            max_header_bytes: h.max_header_bytes,
            max_body_bytes: h.max_body_bytes,
        }
    }
}

/// The server's counters, appended to `/metrics`.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    /// Connections accepted (including those then refused).
    pub accepted: AtomicU64,
    /// Failed `accept()` calls (EMFILE, ENFILE, ECONNABORTED, ...).
    pub accept_errors: AtomicU64,
    /// Connections refused because `http.max_connections` were open.
    pub refused: AtomicU64,
    /// Connections open now.
    pub open: AtomicI64,
    /// Requests whose body did not arrive within `http.body_timeout_ms`.
    pub body_timeouts: AtomicU64,
}

impl HttpMetrics {
    /// Appends the counters in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let rows = [
            (
                "pala_http_connections_total",
                "counter",
                "HTTP connections accepted (including those then refused)",
                self.accepted.load(Ordering::Relaxed) as i64,
            ),
            (
                "pala_http_accept_errors_total",
                "counter",
                "failed accept() calls of the HTTP listener (it backs off and retries)",
                self.accept_errors.load(Ordering::Relaxed) as i64,
            ),
            (
                "pala_http_connections_refused_total",
                "counter",
                "HTTP connections refused because http.max_connections were open",
                self.refused.load(Ordering::Relaxed) as i64,
            ),
            (
                "pala_http_connections_open",
                "gauge",
                "HTTP connections open",
                self.open.load(Ordering::Relaxed),
            ),
            (
                "pala_http_body_timeouts_total",
                "counter",
                "HTTP requests whose body did not arrive within http.body_timeout_ms",
                self.body_timeouts.load(Ordering::Relaxed) as i64,
            ),
        ];
        for (name, kind, help, v) in rows {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
    }
}
