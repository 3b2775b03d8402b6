//! One established connection: its read loop (frames to events, rate limits) and its
//! write loop (its own bounded queue), until either side ends it.

use super::*;

/// Registers a verified connection, runs it, and reports its end.
pub(super) async fn run_established<S>(
    shared: &Arc<Layer>,
    stream: S,
    peer: NodeId,
    addr: SocketAddr,
    direction: Direction,
    dialed: Option<PeerAddr>,
    hello: Hello,
) where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let serial = shared.serial.fetch_add(1, Ordering::Relaxed);
    let (queue_tx, queue_rx) = flume::bounded(shared.cfg.outbound_queue.max(1));
    let (kill_tx, kill_rx) = flume::bounded(1);
    let (done_tx, done_rx) = flume::bounded::<()>(1);
    let (reply_tx, reply_rx) = flume::bounded(1);
    let reg = Internal::Register {
        peer,
        serial,
        addr,
        direction,
        queue: queue_tx,
        kill: kill_tx,
        done: done_rx,
        reply: reply_tx,
    };
    if shared.internal.send_async(reg).await.is_err() {
        return;
    }
    let predecessor = match reply_rx.recv_async().await {
        Ok(Some(p)) => p,
        _ => {
            shared.metrics.closed(CloseReason::Duplicate);
            debug!(%peer, serial, %addr, "duplicate connection refused");
            return;
        }
    };
    if let Some(p) = predecessor {
        // Returns when the replaced connection dropped its `done` sender after its PeerDown.
        let _ = p.recv_async().await;
    }
    info!(%peer, serial, %addr, ?direction, "peer up");
    let up = NetEvent::PeerUp {
        peer,
        addr,
        direction,
        dialed,
        hello,
    };
    let reason = if shared.events.send_async(up).await.is_err() {
        CloseReason::Shutdown
    } else {
        connection_io(shared, stream, peer, queue_rx, kill_rx).await
    };
    shared.metrics.closed(reason);
    info!(%peer, serial, %addr, reason = reason.as_str(), "peer down");
    let _ = shared
        .events
        .send_async(NetEvent::PeerDown { peer, reason })
        .await;
    drop(done_tx);
    let _ = shared
        .internal
        .send_async(Internal::Closed { peer, serial })
        .await;
}

async fn connection_io<S>(
    shared: &Arc<Layer>,
    stream: S,
    peer: NodeId,
    queue: flume::Receiver<Frame>,
    kill: flume::Receiver<CloseReason>,
) -> CloseReason
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let (rd, wr) = futures_lite::io::split(stream);
    // Headers are 7 bytes: without a buffer every header would be a separate read call.
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let killed = async { kill.recv_async().await.unwrap_or(CloseReason::Shutdown) };
    let reader = read_loop(shared, &mut rd, peer);
    let writer = write_loop(shared, wr, queue);
    killed.or(reader.or(writer)).await
}

async fn read_loop<R: AsyncRead + Unpin>(
    shared: &Arc<Layer>,
    rd: &mut R,
    peer: NodeId,
) -> CloseReason {
    let cfg = &shared.cfg;
    let limits = &cfg.rate_limits;
    let m = &shared.metrics;
    let mut msgs =
        (limits.messages_per_sec > 0).then(|| TokenBucket::new(limits.messages_per_sec as f64));
    let mut bytes =
        (limits.bytes_per_sec > 0).then(|| TokenBucket::new(limits.bytes_per_sec as f64));
    let mut per_type: Vec<(u8, TokenBucket)> = limits
        .request_limits
        .iter()
        .map(|&(k, r)| (k, TokenBucket::new(r.max(1) as f64)))
        .collect();
    let mut buf = Vec::new();
    loop {
        let (event, kind, wire_len) = match with_deadline(
            cfg.read_timeout,
            read_frame_within(rd, cfg.max_payload, &mut buf, Some(&shared.frames)),
        )
        .await
        {
            None => return CloseReason::ReadTimeout,
            Some(Ok(Incoming::Message { message, wire_len })) => {
                let kind = message.type_code();
                (NetEvent::Message { peer, message }, kind, wire_len)
            }
            Some(Ok(Incoming::Extension {
                kind,
                payload,
                wire_len,
            })) => (
                NetEvent::Extension {
                    peer,
                    kind,
                    payload,
                },
                kind,
                wire_len,
            ),
            Some(Ok(Incoming::Unknown { kind, wire_len })) => {
                m.unknown_types.fetch_add(1, Ordering::Relaxed);
                m.bytes_in.fetch_add(wire_len as u64, Ordering::Relaxed);
                debug!(%peer, "ignored frame of unknown type {kind:#04x}");
                continue;
            }
            Some(Err(FrameError::Io(e))) => {
                debug!(%peer, "read: {e}");
                return CloseReason::Io;
            }
            Some(Err(e @ FrameError::Budget { .. })) => {
                warn!(%peer, "closing: {e} (network.max_inflight_frame_mib)");
                return CloseReason::FrameBudget;
            }
            Some(Err(e @ FrameError::BadSize { .. })) => {
                warn!(%peer, "closing: {e}");
                return CloseReason::Oversize;
            }
            Some(Err(e)) => {
                warn!(%peer, "closing: {e}");
                return CloseReason::Malformed;
            }
        };
        // Buffers that served one huge frame are not kept for a stream of small ones.
        if buf.capacity() > 1 << 20 {
            buf = Vec::new();
        }
        let now = Instant::now();
        if let Some((_, b)) = per_type.iter_mut().find(|(k, _)| *k == kind) {
            if !b.try_take(1.0, now) {
                m.rate_limited_drops.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        }
        let mut wait = msgs.as_mut().map_or(Duration::ZERO, |b| b.take(1.0, now));
        let total = shared.meter.add(wire_len as u64, now);
        if let Some(b) = bytes.as_mut() {
            if total > limits.global_bytes_threshold {
                wait = wait.max(b.take(wire_len as f64, now));
            }
        }
        if !wait.is_zero() {
            m.rate_limited_delays.fetch_add(1, Ordering::Relaxed);
            glommio::timer::sleep(wait).await;
        }
        m.frames_in.fetch_add(1, Ordering::Relaxed);
        m.bytes_in.fetch_add(wire_len as u64, Ordering::Relaxed);
        if shared.events.send_async(event).await.is_err() {
            return CloseReason::Shutdown;
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    shared: &Arc<Layer>,
    wr: W,
    queue: flume::Receiver<Frame>,
) -> CloseReason {
    let m = &shared.metrics;
    let mut w = BufWriter::with_capacity(64 * 1024, wr);
    loop {
        let Ok(first) = queue.recv_async().await else {
            return CloseReason::Shutdown;
        };
        let batch = async {
            let mut n = 1u64;
            let mut bytes = first.len() as u64;
            w.write_all(&first).await?;
            // Drain what is already queued before one flush: fewer TLS records and syscalls.
            while let Ok(f) = queue.try_recv() {
                w.write_all(&f).await?;
                n += 1;
                bytes += f.len() as u64;
            }
            w.flush().await?;
            Ok::<_, std::io::Error>((n, bytes))
        };
        match with_deadline(shared.cfg.write_timeout, batch).await {
            None => return CloseReason::WriteTimeout,
            Some(Err(_)) => return CloseReason::Io,
            Some(Ok((n, bytes))) => {
                m.frames_out.fetch_add(n, Ordering::Relaxed);
                m.bytes_out.fetch_add(bytes, Ordering::Relaxed);
            }
        }
    }
}
