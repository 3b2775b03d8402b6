//! What the server and each connection share: the handler type, the limits from
//! `[http]` and the server's counters.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::{Request, Response};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
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

/// The server's counters, registered in the node's `/metrics` registry.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    /// Connections accepted (including those then refused).
    pub accepted: Counter,
    /// Failed `accept()` calls (EMFILE, ENFILE, ECONNABORTED, ...).
    pub accept_errors: Counter,
    /// Connections refused because `http.max_connections` were open.
    pub refused: Counter,
    /// Connections open now.
    pub open: Gauge,
    /// Requests whose body did not arrive within `http.body_timeout_ms`.
    pub body_timeouts: Counter,
}

impl HttpMetrics {
    /// Registers the counters in the node's registry.
    pub fn register(&self, registry: &mut Registry) {
        let counters = [
            (
                "pala_http_connections",
                "HTTP connections accepted (including those then refused).",
                &self.accepted,
            ),
            (
                "pala_http_accept_errors",
                "Failed accept() calls of the HTTP listener (it backs off and retries).",
                &self.accept_errors,
            ),
            (
                "pala_http_connections_refused",
                "HTTP connections refused because http.max_connections were open.",
                &self.refused,
            ),
            (
                "pala_http_body_timeouts",
                "HTTP requests whose body did not arrive within http.body_timeout_ms.",
                &self.body_timeouts,
            ),
        ];
        for (name, help, c) in counters {
            registry.register(name, help, c.clone());
        }
        registry.register(
            "pala_http_connections_open",
            "HTTP connections open.",
            self.open.clone(),
        );
    }
}
