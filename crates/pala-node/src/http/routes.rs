//! Answering requests: which path takes which method, and the read endpoints.

use super::api::Api;
use super::auth::Auth;
use super::reply::{block_json, full, json_response, text, with_type};
use super::service::{Body, HttpMetrics, Limits};
use super::{page, sse, submit, HttpContext};
use crate::metrics::{self, ScrapeSources};
use crossbeam_channel::Sender;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, ALLOW};
use hyper::{Method, Request, Response};
use pala_types::Hash;
use prometheus_client::registry::Registry;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The OpenAPI 3 document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Most `/stream` subscribers at once (each holds a thread, see [`sse`]).
const MAX_STREAMS: usize = 32;

/// Longest part of an unknown path quoted back in a 404.
const MAX_ECHO: usize = 128;

/// The endpoints: a path (a prefix when it ends in `/`) and the one method it takes.
const ROUTES: &[(&str, Method)] = &[
    ("/tx", Method::POST),
    ("/tx/", Method::GET),
    ("/status", Method::GET),
    ("/healthz", Method::GET),
    ("/readyz", Method::GET),
    ("/metrics", Method::GET),
    ("/stream", Method::GET),
    ("/openapi.json", Method::GET),
    ("/chain", Method::GET),
    ("/ui", Method::GET),
    ("/ui/ui.js", Method::GET),
    ("/ui/ui.css", Method::GET),
    ("/block/", Method::GET),
    ("/kv/", Method::GET),
];

/// The method `path` takes, if it is an endpoint.
fn allowed(path: &str) -> Option<&'static Method> {
    ROUTES
        .iter()
        .find(|(p, _)| {
            if p.ends_with('/') {
                path.starts_with(p)
            } else {
                path == *p
            }
        })
        .map(|(_, m)| m)
}

impl Api {
    /// The API over `shared`, forwarding to `forward`.
    pub fn new(
        shared: HttpContext,
        auth: Arc<Auth>,
        forward: Option<Sender<Vec<u8>>>,
        metrics: Arc<HttpMetrics>,
    ) -> Api {
        let mut registry = Registry::default();
        shared.metrics.register(
            &mut registry,
            ScrapeSources {
                status: shared.status.clone(),
                net: shared.net_metrics.clone(),
                mempool: shared.mempool.clone(),
                data_dir: shared.cfg.node.data_dir.clone(),
            },
        );
        metrics.register(&mut registry);
        Api {
            registry,
            limits: Limits::from_config(&shared.cfg.http),
            shared,
            auth,
            forward,
            metrics,
            streams: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Answers one request.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_string();
        let Some(method) = allowed(&path) else {
            let shown: String = path.chars().take(MAX_ECHO).collect();
            return json_response(404, json!({"error": "unknown path", "path": shown}));
        };
        if req.method() != method {
            let mut r = json_response(
                405,
                json!({"error": format!("method not allowed; this path takes {method}")}),
            );
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static(method.as_str()));
            return r;
        }
        if path == "/tx" {
            return submit::submit(self, req).await;
        }
        if path == "/metrics" {
            let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
            let (page, content_type) = metrics::encode(&self.registry, accept);
            return with_type(full(200, page), content_type);
        }
        if path == "/chain" {
            return self.chain().await;
        }
        if let Some(r) = page::asset(&path) {
            return r;
        }
        self.read(&path)
    }

    fn read(&self, path: &str) -> Response<Body> {
        let shared = &self.shared;
        match path {
            "/status" => {
                let st = shared.status.get();
                json_response(200, serde_json::to_value(&*st).unwrap_or_default())
            }
            "/healthz" => text(200, "ok\n"),
            "/readyz" => {
                let st = shared.status.get();
                if st.ready && !st.stopping {
                    text(200, "ready\n")
                } else {
                    let why = if st.stopping {
                        "stopping"
                    } else {
                        st.not_ready.as_str()
                    };
                    with_type(
                        full(503, format!("not ready: {why}\n")),
                        "text/plain; charset=utf-8",
                    )
                }
            }
            "/openapi.json" => with_type(full(200, OPENAPI), "application/json"),
            "/stream" => self.stream(),
            p if p.starts_with("/tx/") => match hash_from_hex(&p[4..]) {
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
            p if p.starts_with("/kv/") => {
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
            p => match p.strip_prefix("/block/").map(str::parse::<u64>) {
                Some(Ok(0)) => json_response(200, block_json(&shared.genesis_block)),
                Some(Ok(h)) => match shared.storage.finalized_block(h).ok().flatten() {
                    Some(b) => json_response(200, block_json(&b)),
                    None => json_response(
                        404,
                        json!({"error": "no finalized block at this height", "height": h}),
                    ),
                },
                _ => json_response(400, json!({"error": "expected /block/<height>"})),
            },
        }
    }

    fn stream(&self) -> Response<Body> {
        if self.streams.fetch_add(1, Ordering::SeqCst) >= MAX_STREAMS {
            self.streams.fetch_sub(1, Ordering::SeqCst);
            return text(503, "too many streams\n");
        }
        let Some(rx) = self.shared.app.subscribe(1024) else {
            self.streams.fetch_sub(1, Ordering::SeqCst);
            return text(503, "the node is busy or stopping\n");
        };
        // SSE comments must keep the connection busier than the idle watchdog allows.
        let keep_alive = (self.limits.idle_timeout / 2).min(std::time::Duration::from_secs(15));
        sse::response(rx, keep_alive, self.streams.clone())
    }
}

/// What `handle`, `read` and `submit` conclude from a request's method, target and `/tx`
/// body by parsing alone, with no node behind them: the status they would answer (404,
/// 405, 400) or 200. It exists for the fuzz target of the HTTP request path (`fuzz/`),
/// which cannot run a node per input; it calls the same parsers, so a panic in any of
/// them shows up there.
#[doc(hidden)]
pub fn parse_request(
    method: &[u8],
    target: &[u8],
    body: &[u8],
    app: &dyn crate::app::Application,
) -> u16 {
    let (Ok(method), Ok(uri)) = (
        Method::from_bytes(method),
        hyper::Uri::try_from(target.to_vec()),
    ) else {
        return 400;
    };
    let path = uri.path();
    let Some(allowed) = allowed(path) else {
        let _shown: String = path.chars().take(MAX_ECHO).collect();
        return 404;
    };
    if method != allowed {
        return 405;
    }
    match path {
        "/tx" => {
            let mut any = false;
            for tx in submit::tx_lines(body) {
                any |= app.check_tx(tx).is_ok();
            }
            if any {
                200
            } else {
                400
            }
        }
        p if p.starts_with("/tx/") => match hash_from_hex(&p[4..]) {
            Some(_) => 200,
            None => 400,
        },
        p if p.starts_with("/kv/") => {
            let _key = percent_decode(&p[4..]);
            200
        }
        p => match p.strip_prefix("/block/").map(str::parse::<u64>) {
            Some(Err(_)) => 400,
            _ => 200,
        },
    }
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
            if let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_has_one_method() {
        assert_eq!(allowed("/status"), Some(&Method::GET));
        assert_eq!(allowed("/tx"), Some(&Method::POST));
        assert_eq!(allowed("/tx/00"), Some(&Method::GET));
        assert_eq!(allowed("/kv/a%20b"), Some(&Method::GET));
        assert_eq!(allowed("/statusx"), None);
        assert_eq!(allowed("/"), None);
    }

    #[test]
    fn percent_decoding_survives_bad_escapes() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("%zz%"), "%zz%");
        assert_eq!(percent_decode("%e2%82%ac"), "€");
        assert_eq!(percent_decode("%\u{e9}0"), "%\u{e9}0");
    }

    #[test]
    fn openapi_document_is_json_naming_every_route() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let paths = doc["paths"].as_object().unwrap();
        for (p, _) in ROUTES {
            assert!(
                paths.keys().any(|k| k == p || k.starts_with(p)),
                "{p} is not in openapi.json"
            );
        }
    }
}
