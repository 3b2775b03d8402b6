//! One executor thread: its connection tasks, and on executor 0 the listener and the
//! coordinator.

use super::*;

pub(super) type Control = (
    flume::Receiver<NetCommand>,
    flume::Receiver<Internal>,
    flume::Sender<Result<Option<SocketAddr>, NetError>>,
    flume::Sender<()>,
);

pub(super) async fn executor_main(
    shared: Arc<Layer>,
    jobs: flume::Receiver<Job>,
    senders: Vec<flume::Sender<Job>>,
    control: Option<Control>,
) {
    // Tasks still running on this executor. glommio does not drop detached tasks when an
    // executor exits, so the executor waits for them: a leaked task would keep its socket
    // (and a SO_REUSEPORT listener) open after shutdown.
    let live = Rc::new(Cell::new(0usize));
    let spawn = |f: Pin<Box<dyn Future<Output = ()>>>| {
        live.set(live.get() + 1);
        let live = live.clone();
        let shared = shared.clone();
        glommio::spawn_local(async move {
            shared.until_stopped(f).await;
            live.set(live.get() - 1);
        })
        .detach();
    };
    // Dropping the sender ends the accept loop, which closes the listening socket.
    let mut listener: Option<flume::Sender<()>> = None;
    let listen = |listener: &mut Option<flume::Sender<()>>, addr: SocketAddr| {
        if let Some(bound) = *shared.local_addr.read().unwrap_or_else(|e| e.into_inner()) {
            if listener.is_some() {
                return Ok(bound);
            }
        }
        let l = TcpListener::bind(addr).map_err(|e| NetError::Bind {
            addr,
            error: e.to_string(),
        })?;
        let bound = l.local_addr().unwrap_or(addr);
        let (off_tx, off_rx) = flume::bounded::<()>(1);
        spawn(Box::pin(accept_loop(
            shared.clone(),
            l,
            senders.clone(),
            off_rx,
        )));
        *listener = Some(off_tx);
        *shared.local_addr.write().unwrap_or_else(|e| e.into_inner()) = Some(bound);
        info!(%bound, "listening");
        Ok(bound)
    };
    if let Some((cmd_rx, int_rx, started, stop_tx)) = control {
        let mut listen_result = Ok(None);
        if let Some(addr) = shared.cfg.listen {
            match listen(&mut listener, addr) {
                Ok(bound) => listen_result = Ok(Some(bound)),
                Err(e) => {
                    let _ = started.send(Err(e));
                    return;
                }
            }
        }
        glommio::spawn_local(coordinator(
            shared.clone(),
            cmd_rx,
            int_rx,
            senders.clone(),
            stop_tx,
        ))
        .detach();
        let _ = started.send(listen_result);
    }
    while let Ok(job) = jobs.recv_async().await {
        match job {
            Job::Accepted(a, permit) => spawn(Box::pin(inbound(
                shared.clone(),
                a.bind_to_executor(),
                permit,
            ))),
            Job::Dial(t) => spawn(Box::pin(dial_loop(shared.clone(), t))),
            Job::Listen { addr, reply } => {
                let r = listen(&mut listener, addr);
                if let Err(e) = &r {
                    warn!(%addr, "cannot listen: {e}");
                }
                if let Some(reply) = reply {
                    let _ = reply.try_send(r);
                }
            }
            Job::Unlisten => {
                if listener.take().is_some() {
                    *shared.local_addr.write().unwrap_or_else(|e| e.into_inner()) = None;
                    info!("stopped listening");
                }
            }
            Job::Stop => break,
        }
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while live.get() > 0 && Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(2)).await;
    }
}
