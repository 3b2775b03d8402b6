//! `GET /stream`: finalized blocks as server-sent events.
//!
//! The application stage hands subscribers a blocking channel, so each stream has a
//! small bridge thread (at most `MAX_STREAMS` of them) that moves blocks into the
//! response body; a closed client ends its thread at the next event or keep-alive.

use super::reply::block_json;
use super::service::Body;
use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::Response;
use pala_types::Block;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;

/// The event stream over `rx`; `streams` counts open streams and is decremented when this
/// one ends.
pub fn response(
    rx: Receiver<Arc<Block>>,
    keep_alive: Duration,
    streams: Arc<AtomicUsize>,
) -> Response<Body> {
    let (tx, body_rx) = mpsc::channel::<Bytes>(16);
    let spawned = std::thread::Builder::new().name("pala-sse".into()).spawn({
        let streams = streams.clone();
        move || {
            bridge(rx, tx, keep_alive);
            streams.fetch_sub(1, Ordering::SeqCst);
        }
    });
    if spawned.is_err() {
        streams.fetch_sub(1, Ordering::SeqCst);
    }
    let mut r = Response::new(ChannelBody(body_rx).boxed());
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn bridge(rx: Receiver<Arc<Block>>, tx: mpsc::Sender<Bytes>, keep_alive: Duration) {
    if tx
        .blocking_send(Bytes::from_static(b": pala finalized blocks\n\n"))
        .is_err()
    {
        return;
    }
    loop {
        // A comment now and then keeps proxies (and the idle watchdog) from closing an
        // idle stream and reveals a closed client.
        let msg = match rx.recv_timeout(keep_alive) {
            Ok(b) => format!("event: finalized\ndata: {}\n\n", block_json(&b)),
            Err(RecvTimeoutError::Timeout) => ": keep-alive\n\n".into(),
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if tx.blocking_send(Bytes::from(msg)).is_err() {
            return;
        }
    }
}

struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|m| m.map(|b| Ok(Frame::data(b))))
    }
}
