//! `POST /tx`: reading the body under the limits, who may write, and handing the
//! transactions to the mempool and the forwarder.

use super::api::Api;
use super::auth::Forwarded;
use super::reply::json_response;
use super::service::{Body, HttpMetrics, Limits};
use crate::mempool::MempoolError;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_LENGTH};
use hyper::{HeaderMap, Request, Response};
use pala_types::Hash;
use serde_json::json;
use std::time::Instant;

/// Reads a whole request body, or says why not: 413 when it is (announced as) larger than
/// `max_body_bytes`, 408 when it does not arrive within `body_timeout`. Either answer
/// closes the connection, whose unread rest would otherwise be taken for the next request.
pub async fn read_body(
    headers: &HeaderMap,
    body: Incoming,
    limits: &Limits,
    metrics: &HttpMetrics,
) -> Result<Bytes, Response<Body>> {
    let max = limits.max_body_bytes;
    let too_large = || {
        closing(json_response(
            413,
            json!({"error": format!("body larger than {max} bytes")}),
        ))
    };
    let announced = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    match tokio::time::timeout(limits.body_timeout, Limited::new(body, max).collect()).await {
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(closing(json_response(
            400,
            json!({"error": format!("reading the body: {e}")}),
        ))),
        Err(_) => {
            metrics.body_timeouts.inc();
            Err(closing(json_response(
                408,
                json!({"error": format!(
                    "body not received within {} ms",
                    limits.body_timeout.as_millis()
                )}),
            )))
        }
    }
}

fn closing(mut r: Response<Body>) -> Response<Body> {
    r.headers_mut()
        .insert(CONNECTION, hyper::header::HeaderValue::from_static("close"));
    r
}

/// `POST /tx`.
pub async fn submit(api: &Api, req: Request<Incoming>) -> Response<Body> {
    let shared = &api.shared;
    if shared.status.get().stopping {
        return json_response(503, json!({"error": "node is shutting down"}));
    }
    let (parts, body) = req.into_parts();
    let body = match read_body(&parts.headers, body, &api.limits, &api.metrics).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let forwarded = match api.auth.forwarded(&parts.headers, &body) {
        Forwarded::Bad => {
            return json_response(
                401,
                json!({"error": "X-Pala-Forward-Mac does not verify: the nodes' http.forward_secret_file differ"}),
            )
        }
        Forwarded::Yes => true,
        Forwarded::No if !api.auth.token_ok(&parts.headers) => {
            let mut r = json_response(
                401,
                json!({"error": "this endpoint needs Authorization: Bearer <http.auth_token>"}),
            );
            r.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Bearer"),
            );
            return r;
        }
        Forwarded::No => false,
    };
    take(api, &body, forwarded)
}

/// The transactions of a `/tx` body: one per line, surrounding whitespace and empty lines
/// ignored.
pub(crate) fn tx_lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    body.split(|b| *b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|line| !line.is_empty())
}

/// Checks each line, pools it on a proposer and forwards what is new here.
fn take(api: &Api, body: &[u8], forwarded: bool) -> Response<Body> {
    let shared = &api.shared;
    let status = shared.status.get();
    let m = &shared.metrics;
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    let mut full = false;
    let mut submitted = Vec::new();
    let now = Instant::now();
    for line in tx_lines(body) {
        let tx = line.to_vec();
        if let Err(e) = shared.app_view.check_tx(&tx) {
            refused.push(json!({"error": e}));
            m.txs_refused.inc();
            continue;
        }
        if tx.len() > shared.cfg.mempool.max_tx_bytes {
            refused.push(json!({"error": format!("transaction larger than {} bytes", shared.cfg.mempool.max_tx_bytes)}));
            m.txs_refused.inc();
            continue;
        }
        let h = Hash::of(&tx);
        // A node that pools transactions forwards only those new to it: that, not any
        // mark on the request, is what keeps proposers from forwarding in circles.
        let mut new_here = true;
        if status.is_proposer() {
            match shared.mempool.insert(tx.clone()) {
                Ok(_) => {}
                Err(MempoolError::Duplicate) => new_here = false,
                Err(e) => {
                    full |= matches!(e, MempoolError::Full(_));
                    refused.push(json!({"error": e.to_string()}));
                    m.txs_refused.inc();
                    continue;
                }
            }
        }
        if !forwarded {
            submitted.push((h, now));
        }
        if !forwarded && new_here {
            if let Some(f) = &api.forward {
                if f.try_send(tx).is_err() {
                    m.forward_failures.inc();
                }
            }
        }
        m.txs_submitted.inc();
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
