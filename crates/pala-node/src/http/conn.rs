//! One connection: hyper's HTTP/1.1 driver under the limits, and a watchdog that closes
//! the connection once no byte has moved for `idle_timeout`.

use super::service::{Handler, HttpMetrics, Limits};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::debug;

/// Sent to a connection beyond `http.max_connections` without reading its request: the
/// refusal must cost no task and no buffer.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
Content-Length: 32\r\nConnection: close\r\nRetry-After: 1\r\n\r\n{\"error\":\"too many connections\"}";

/// Answers 503 if the socket takes it at once, and closes. What the client already sent
/// is read and dropped first: closing on unread data would send a reset, which can
/// destroy the 503 before the client reads it.
pub fn refuse(stream: TcpStream) {
    let _ = stream.try_write(REFUSAL);
    let mut sink = [0u8; 2048];
    for _ in 0..4 {
        if !matches!(stream.try_read(&mut sink), Ok(n) if n > 0) {
            break;
        }
    }
}

/// Serves one connection until the client closes it, it breaks a limit or the server
/// stops.
pub async fn serve(
    stream: TcpStream,
    limits: &Limits,
    handler: Handler,
    metrics: &HttpMetrics,
    mut stopped: watch::Receiver<bool>,
) {
    metrics.open.inc();
    let _ = stream.set_nodelay(true);
    let epoch = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let io = TokioIo::new(Tracked {
        inner: stream,
        epoch,
        last: last.clone(),
    });
    let svc = service_fn(move |req| {
        let f = handler(req);
        async move { Ok::<_, Infallible>(f.await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // hyper panics below its minimum buffer of 8192 bytes.
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true)
        .serve_connection(io, svc);
    tokio::pin!(conn);
    loop {
        let idle = epoch
            .elapsed()
            .saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
        let Some(left) = limits
            .idle_timeout
            .checked_sub(idle)
            .filter(|d| !d.is_zero())
        else {
            debug!("http connection idle for {idle:?}: closed");
            break;
        };
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    debug!("http connection: {e}");
                }
                break;
            }
            _ = tokio::time::sleep(left) => {}
            _ = stopped.changed() => break,
        }
    }
    metrics.open.dec();
}

/// The socket, noting when a byte last moved (milliseconds since `epoch`).
struct Tracked {
    inner: TcpStream,
    epoch: Instant,
    last: Arc<AtomicU64>,
}

impl Tracked {
    fn touch(&self) {
        self.last
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
