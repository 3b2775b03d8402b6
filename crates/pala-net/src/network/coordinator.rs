//! The coordinator: the only owner of the peer registry, so the duplicate-connection rule
//! (W-2) and routing need no locks.

use super::*;

struct Entry {
    serial: u64,
    addr: SocketAddr,
    direction: Direction,
    queue: flume::Sender<Frame>,
    kill: flume::Sender<CloseReason>,
    done: flume::Receiver<()>,
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// The duplicate rule (W-2): prefer the connection with a private address when exactly one
/// has one; between an inbound and an outbound connection keep the one dialed by the smaller
/// id, so both ends pick the same connection when they dial each other at once; otherwise
/// keep the newest.
fn keep_new(
    own: &NodeId,
    peer: &NodeId,
    old: &Entry,
    new_addr: SocketAddr,
    new_dir: Direction,
) -> bool {
    let (op, np) = (is_private(old.addr.ip()), is_private(new_addr.ip()));
    if op != np {
        return np;
    }
    if old.direction != new_dir {
        let new_dialer = if new_dir == Direction::Outbound {
            own
        } else {
            peer
        };
        return new_dialer == own.min(peer);
    }
    true
}

pub(super) async fn coordinator(
    shared: Arc<Layer>,
    commands: flume::Receiver<NetCommand>,
    internal: flume::Receiver<Internal>,
    executors: Vec<flume::Sender<Job>>,
    stop: flume::Sender<()>,
) {
    enum In {
        Cmd(Result<NetCommand, flume::RecvError>),
        Int(Result<Internal, flume::RecvError>),
    }
    let m = shared.metrics.clone();
    let max = shared.cfg.max_payload;
    let mut peers: HashMap<NodeId, Entry> = HashMap::new();
    // Per dialed address: its cancel flag and its proposer-policy flag.
    let mut dials: HashMap<PeerAddr, (Arc<AtomicBool>, Arc<AtomicBool>)> = HashMap::new();
    let mut next_exec = 0usize;
    let set_connected = |peers: &HashMap<NodeId, Entry>| {
        let mut c = shared.connected.write().unwrap_or_else(|e| e.into_inner());
        c.clear();
        c.extend(peers.keys().copied());
        m.peers.store(peers.len() as i64, Ordering::Relaxed);
    };
    let kill = |e: Entry, r: CloseReason| {
        let _ = e.kill.try_send(r);
    };
    loop {
        let next = async { In::Cmd(commands.recv_async().await) }
            .race(async { In::Int(internal.recv_async().await) })
            .await;
        match next {
            In::Cmd(Ok(NetCommand::Send { to, message })) => {
                let Some(frame) = encode_frame(&message, max) else {
                    m.oversize_outbound.fetch_add(1, Ordering::Relaxed);
                    warn!(
                        kind = message.kind(),
                        "outbound message exceeds the frame limit; dropped"
                    );
                    continue;
                };
                route(&m, &mut peers, to, Arc::new(frame), &kill, &set_connected);
            }
            In::Cmd(Ok(NetCommand::SendExtension { to, kind, payload })) => {
                if payload.len() > max || !crate::frame::EXTENSION_KINDS.contains(&kind) {
                    m.oversize_outbound.fetch_add(1, Ordering::Relaxed);
                    warn!(
                        kind,
                        bytes = payload.len(),
                        "outbound extension frame exceeds the frame limit or is not of an \
                         extension type; dropped"
                    );
                    continue;
                }
                let frame = crate::frame::encode_raw_frame(kind, 0, &payload);
                route(&m, &mut peers, to, Arc::new(frame), &kill, &set_connected);
            }
            In::Cmd(Ok(NetCommand::Broadcast { message })) => {
                let Some(frame) = encode_frame(&message, max) else {
                    m.oversize_outbound.fetch_add(1, Ordering::Relaxed);
                    warn!(
                        kind = message.kind(),
                        "outbound message exceeds the frame limit; dropped"
                    );
                    continue;
                };
                let frame = Arc::new(frame);
                let ids: Vec<NodeId> = peers.keys().copied().collect();
                for id in ids {
                    route(&m, &mut peers, id, frame.clone(), &kill, &set_connected);
                }
            }
            In::Cmd(Ok(NetCommand::Dial {
                addr,
                expected,
                policy,
            })) => {
                let is_proposer = policy == DialPolicy::Proposer;
                if let Some((_, p)) = dials.get(&addr) {
                    p.store(is_proposer, Ordering::Relaxed);
                    continue;
                }
                let cancel = Arc::new(AtomicBool::new(false));
                let proposer = Arc::new(AtomicBool::new(is_proposer));
                dials.insert(addr.clone(), (cancel.clone(), proposer.clone()));
                let target = DialTarget {
                    addr,
                    expected,
                    cancel,
                    proposer,
                };
                let _ = executors[next_exec % executors.len()].send(Job::Dial(target));
                next_exec = next_exec.wrapping_add(1);
            }
            In::Cmd(Ok(NetCommand::Undial { addr })) => {
                if let Some((c, _)) = dials.remove(&addr) {
                    c.store(true, Ordering::Relaxed);
                }
            }
            In::Cmd(Ok(NetCommand::Listen { addr, reply })) => {
                let _ = executors[0].send(Job::Listen { addr, reply });
            }
            In::Cmd(Ok(NetCommand::Unlisten)) => {
                let _ = executors[0].send(Job::Unlisten);
            }
            In::Cmd(Ok(NetCommand::Disconnect { peer })) => {
                if let Some(e) = peers.remove(&peer) {
                    kill(e, CloseReason::Requested);
                    set_connected(&peers);
                }
            }
            In::Cmd(Ok(NetCommand::Shutdown)) | In::Cmd(Err(_)) => {
                shared.stopping.store(true, Ordering::Relaxed);
                for (_, e) in peers.drain() {
                    kill(e, CloseReason::Shutdown);
                }
                set_connected(&peers);
                for (c, _) in dials.values() {
                    c.store(true, Ordering::Relaxed);
                }
                drop(stop);
                for s in &executors {
                    let _ = s.send(Job::Stop);
                }
                return;
            }
            In::Int(Ok(Internal::Register {
                peer,
                serial,
                addr,
                direction,
                queue,
                kill: kill_tx,
                done,
                reply,
            })) => {
                let new = Entry {
                    serial,
                    addr,
                    direction,
                    queue,
                    kill: kill_tx,
                    done,
                };
                let predecessor = match peers.get(&peer) {
                    None => {
                        debug!(%peer, serial, %addr, ?direction, "registry: registered");
                        None
                    }
                    Some(old) if keep_new(&shared.own_id, &peer, old, addr, direction) => {
                        let old = peers.remove(&peer).expect("present");
                        debug!(
                            %peer, serial, %addr, ?direction, old_serial = old.serial,
                            old_addr = %old.addr, old_direction = ?old.direction,
                            "registry: duplicate, keeping the new connection"
                        );
                        let done = old.done.clone();
                        kill(old, CloseReason::Duplicate);
                        Some(done)
                    }
                    Some(old) => {
                        debug!(
                            %peer, serial, %addr, ?direction, old_serial = old.serial,
                            old_addr = %old.addr, old_direction = ?old.direction,
                            "registry: duplicate, keeping the old connection"
                        );
                        let _ = reply.try_send(None);
                        continue;
                    }
                };
                peers.insert(peer, new);
                m.connections_opened.fetch_add(1, Ordering::Relaxed);
                set_connected(&peers);
                let _ = reply.try_send(Some(predecessor));
            }
            In::Int(Ok(Internal::Closed { peer, serial })) => {
                if peers.get(&peer).is_some_and(|e| e.serial == serial) {
                    debug!(%peer, serial, "registry: closed");
                    peers.remove(&peer);
                    set_connected(&peers);
                } else {
                    debug!(%peer, serial, "registry: closed (already removed or replaced)");
                }
            }
            In::Int(Err(_)) => return,
        }
    }
}

fn route(
    m: &NetMetrics,
    peers: &mut HashMap<NodeId, Entry>,
    to: NodeId,
    frame: Frame,
    kill: &impl Fn(Entry, CloseReason),
    set_connected: &impl Fn(&HashMap<NodeId, Entry>),
) {
    let Some(e) = peers.get(&to) else {
        m.unroutable.fetch_add(1, Ordering::Relaxed);
        return;
    };
    match e.queue.try_send(frame) {
        Ok(()) => {}
        Err(flume::TrySendError::Full(_)) => {
            warn!(peer = %to, "outbound queue full; closing the connection");
            let e = peers.remove(&to).expect("present");
            kill(e, CloseReason::QueueFull);
            set_connected(peers);
        }
        Err(flume::TrySendError::Disconnected(_)) => {
            // The connection ended; its Closed notice is on the way.
            m.unroutable.fetch_add(1, Ordering::Relaxed);
        }
    }
}
