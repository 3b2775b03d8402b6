//! Building responses: whole bodies with their content type, JSON, and a block as JSON.

use super::service::Body;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::Response;
use pala_types::Block;
use serde_json::json;

/// A whole response with `body`.
pub fn full(code: u16, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::OK);
    r
}

pub(super) fn with_type(mut r: Response<Body>, t: &'static str) -> Response<Body> {
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(t));
    r
}

/// A JSON response.
pub fn json_response(code: u16, v: serde_json::Value) -> Response<Body> {
    with_type(full(code, v.to_string()), "application/json")
}

pub(super) fn text(code: u16, s: &'static str) -> Response<Body> {
    with_type(full(code, s), "text/plain; charset=utf-8")
}

/// A block as JSON (transactions as text when they are UTF-8).
pub fn block_json(b: &Block) -> serde_json::Value {
    json!({
        "height": b.height(),
        "sn": b.sn().to_string(),
        "hash": b.hash().to_string(),
        "parent": b.header.parent_hash.to_string(),
        "timestamp_ms": b.header.timestamp_ms,
        "state": {
            "height": b.header.state.height,
            "digest": b.header.state.digest.to_string(),
        },
        "txs": b.txs.iter().map(|t| String::from_utf8_lossy(t).into_owned()).collect::<Vec<_>>(),
    })
}
