//! Serving snapshots to joining peers (W-12): a thread of its own that answers the
//! state-sync requests the verify stage hands over, from the snapshot store and the
//! storage's blocks. Bounded: requests wait in a queue of [`QUEUE`] (a full queue drops
//! and counts), each peer gets `state_sync.serve_requests_per_sec` answers a second
//! (token bucket; more are refused and counted), and a chunk is read only when asked, so
//! a peer costs one chunk of memory at a time whatever it sends.

use super::proof;
use super::store::SnapshotStore;
use super::wire::{Offer, SyncMessage};
use crate::metrics::Metrics;
use pala_net::NetCommand;
use pala_storage::StorageReader;
use pala_types::NodeId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;
use tracing::{debug, info, warn};

/// Requests waiting for the server.
pub const QUEUE: usize = 256;

/// Peers whose rate is tracked at once; beyond it the table starts over (a peer then
/// gets one fresh burst, which bounds memory without a clock per entry).
const MAX_TRACKED_PEERS: usize = 4096;

/// Test-only fault switch of a serving node (never set in production): `corrupt_chunk`
/// flips a byte of every chunk it serves, `bad_offer` offers a manifest whose digest
/// differs from the one its header commits to. The multi-process state-sync tests use it
/// to show that a joining node refuses such peers and uses another.
pub const FAULT_ENV: &str = "PALA_TESTING_STATE_SYNC_FAULT";

/// A request as the verify stage hands it over: sender, type code, payload.
pub type Request = (NodeId, u8, Vec<u8>);

/// What the server needs.
pub struct ServeDeps {
    /// The kept snapshots (`None`: this node takes none).
    pub store: Option<Arc<Mutex<SnapshotStore>>>,
    /// Blocks, for the proofs.
    pub storage: StorageReader,
    /// Where answers go.
    pub net: flume::Sender<NetCommand>,
    /// K, for the proofs (F-C).
    pub k: u32,
    /// Answers per peer per second.
    pub per_sec: u32,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fault {
    None,
    CorruptChunk,
    BadOffer,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

struct Server {
    deps: ServeDeps,
    fault: Fault,
    buckets: HashMap<NodeId, Bucket>,
    /// The newest offer built, by snapshot height (proofs are read from storage once).
    cached: Option<(u64, Arc<Offer>)>,
}

/// Starts the server thread; it ends when the sender side of `requests` is dropped.
pub fn spawn(
    deps: ServeDeps,
    requests: crossbeam_channel::Receiver<Request>,
) -> std::io::Result<JoinHandle<()>> {
    let fault = match std::env::var(FAULT_ENV).as_deref() {
        Ok("corrupt_chunk") => Fault::CorruptChunk,
        Ok("bad_offer") => Fault::BadOffer,
        _ => Fault::None,
    };
    if fault != Fault::None {
        warn!(
            ?fault,
            "{FAULT_ENV} is set: this node serves BAD snapshots (test only)"
        );
    }
    let mut s = Server {
        deps,
        fault,
        buckets: HashMap::new(),
        cached: None,
    };
    std::thread::Builder::new()
        .name("pala-state-sync".into())
        .spawn(move || {
            while let Ok((peer, kind, payload)) = requests.recv() {
                s.handle(peer, kind, &payload);
            }
        })
}

impl Server {
    fn admit(&mut self, peer: NodeId) -> bool {
        let rate = self.deps.per_sec as f64;
        if self.buckets.len() >= MAX_TRACKED_PEERS && !self.buckets.contains_key(&peer) {
            self.buckets.clear();
        }
        let now = Instant::now();
        let b = self.buckets.entry(peer).or_insert(Bucket {
            tokens: rate,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(rate);
        b.at = now;
        if b.tokens < 1.0 {
            return false;
        }
        b.tokens -= 1.0;
        true
    }

    fn refuse(&self, peer: NodeId, why: &str) {
        self.deps.metrics.state_sync_requests_refused.inc();
        debug!(peer = %peer.to_hex(), "state-sync request refused: {why}");
    }

    fn send(&self, to: NodeId, m: &SyncMessage) {
        let _ = self.deps.net.send(NetCommand::SendExtension {
            to,
            kind: m.kind(),
            payload: m.encode(),
        });
    }

    fn handle(&mut self, peer: NodeId, kind: u8, payload: &[u8]) {
        let msg = match SyncMessage::decode(kind, payload) {
            Ok(m) => m,
            Err(e) => return self.refuse(peer, &format!("undecodable {kind:#04x}: {e}")),
        };
        if !matches!(msg, SyncMessage::GetOffer | SyncMessage::GetChunk { .. }) {
            // Answers reach a node only while it joins; a running node ignores them.
            return self.refuse(peer, "an answer nobody asked for");
        }
        if !self.admit(peer) {
            return self.refuse(peer, "over state_sync.serve_requests_per_sec");
        }
        match msg {
            SyncMessage::GetOffer => {
                let offer = self.offer();
                if offer.is_some() {
                    self.deps.metrics.state_sync_offers_served.inc();
                }
                let m = SyncMessage::Offer(offer.map(|o| Box::new((*o).clone())));
                self.send(peer, &m);
            }
            SyncMessage::GetChunk { height, index } => {
                let bytes = self.chunk(height, index);
                match &bytes {
                    Some(b) => {
                        self.deps.metrics.state_sync_chunks_served.inc();
                        self.deps
                            .metrics
                            .state_sync_bytes_served
                            .inc_by(b.len() as u64);
                    }
                    None => self.refuse(peer, "a chunk this node does not keep"),
                }
                self.send(
                    peer,
                    &SyncMessage::Chunk {
                        height,
                        index,
                        bytes,
                    },
                );
            }
            _ => unreachable!("answers were refused above"),
        }
    }

    fn chunk(&self, height: u64, index: u32) -> Option<Vec<u8>> {
        let store = self.deps.store.as_ref()?;
        let read = store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .read_chunk(height, index);
        match read {
            Ok(mut b) => {
                if self.fault == Fault::CorruptChunk {
                    b[0] ^= 0xff;
                }
                Some(b)
            }
            Err(e) => {
                debug!(height, index, "not serving a chunk: {e}");
                None
            }
        }
    }

    /// The newest kept snapshot this node can prove, with its proof.
    fn offer(&mut self) -> Option<Arc<Offer>> {
        let store = self.deps.store.as_ref()?;
        let manifests: Vec<_> = store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .manifests()
            .into_iter()
            .cloned()
            .collect();
        for m in manifests {
            if let Some((h, o)) = &self.cached {
                if *h == m.height && o.manifest == m {
                    return Some(o.clone());
                }
            }
            let Some(proof) = proof::build(&m, &self.deps.storage, self.deps.k) else {
                continue;
            };
            let mut manifest = m;
            if self.fault == Fault::BadOffer {
                manifest.state_digest = pala_types::Hash::of(b"not the committed state");
            }
            info!(
                height = manifest.height,
                proof_blocks = proof.len(),
                "serving a state-sync snapshot offer"
            );
            let o = Arc::new(Offer { manifest, proof });
            self.cached = Some((o.manifest.height, o.clone()));
            return Some(o);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state_sync::wire::{CHUNK, GET_CHUNK, GET_OFFER, OFFER};
    use crate::state_sync::{ChunkInfo, Manifest, Snapshot};
    use pala_storage::{Options, Storage};
    use pala_types::Hash;

    fn server(
        dir: &std::path::Path,
        store: Option<SnapshotStore>,
        fault: Fault,
    ) -> (Server, flume::Receiver<NetCommand>, Storage) {
        let st = Storage::open(dir.join("db"), Options::default()).unwrap();
        let (tx, rx) = flume::unbounded();
        let s = Server {
            deps: ServeDeps {
                store: store.map(|s| Arc::new(Mutex::new(s))),
                storage: st.reader(),
                net: tx,
                k: 2,
                per_sec: 2,
                metrics: Arc::new(Metrics::default()),
            },
            fault,
            buckets: HashMap::new(),
            cached: None,
        };
        (s, rx, st)
    }

    fn answer(rx: &flume::Receiver<NetCommand>) -> Option<SyncMessage> {
        match rx.try_recv().ok()? {
            NetCommand::SendExtension { kind, payload, .. } => {
                Some(SyncMessage::decode(kind, &payload).unwrap())
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn answers_are_rate_limited_and_bad_requests_refused_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, rx, _st) = server(dir.path(), None, Fault::None);
        let peer = NodeId([1; 20]);
        let refused = |s: &Server| s.deps.metrics.state_sync_requests_refused.get();
        // No snapshots: an offer of none.
        s.handle(peer, GET_OFFER, &[]);
        assert_eq!(answer(&rx), Some(SyncMessage::Offer(None)));
        s.handle(
            peer,
            GET_CHUNK,
            &SyncMessage::GetChunk {
                height: 10,
                index: 0,
            }
            .encode(),
        );
        assert_eq!(
            answer(&rx),
            Some(SyncMessage::Chunk {
                height: 10,
                index: 0,
                bytes: None
            })
        );
        assert_eq!(refused(&s), 1, "a chunk it does not keep");
        // The bucket (2 a second) is empty: the third request in a burst is refused.
        s.handle(peer, GET_OFFER, &[]);
        assert_eq!(answer(&rx), None);
        assert_eq!(refused(&s), 2);
        // Another peer has its own bucket.
        s.handle(NodeId([2; 20]), GET_OFFER, &[]);
        assert_eq!(answer(&rx), Some(SyncMessage::Offer(None)));
        // Undecodable, and answers nobody asked for: refused without a reply.
        s.handle(peer, GET_CHUNK, &[1, 2, 3]);
        s.handle(peer, OFFER, &SyncMessage::Offer(None).encode());
        s.handle(peer, CHUNK, &[]);
        assert_eq!(answer(&rx), None);
        assert_eq!(refused(&s), 5);
        // Tokens come back with time.
        std::thread::sleep(std::time::Duration::from_millis(600));
        s.handle(peer, GET_OFFER, &[]);
        assert_eq!(answer(&rx), Some(SyncMessage::Offer(None)));
    }

    #[test]
    fn chunks_are_served_from_the_store_and_a_snapshot_without_proof_is_not_offered() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = SnapshotStore::open(&dir.path().join("snapshots"), 2).unwrap();
        let chunks = vec![b"first".to_vec(), b"second".to_vec()];
        store
            .write(&Snapshot {
                manifest: Manifest {
                    height: 10,
                    block_hash: Hash::of(b"b10"),
                    state_digest: Hash::of(b"s10"),
                    total_pairs: 2,
                    app_meta: vec![],
                    chunks: chunks.iter().map(|c| ChunkInfo::of(c)).collect(),
                },
                chunks: chunks.clone(),
            })
            .unwrap();
        let (mut s, rx, _st) = server(dir.path(), Some(store), Fault::None);
        let peer = NodeId([1; 20]);
        // Storage holds no block 10: nothing vouches for the snapshot, so it is not offered.
        s.handle(peer, GET_OFFER, &[]);
        assert_eq!(answer(&rx), Some(SyncMessage::Offer(None)));
        s.handle(
            peer,
            GET_CHUNK,
            &SyncMessage::GetChunk {
                height: 10,
                index: 1,
            }
            .encode(),
        );
        assert_eq!(
            answer(&rx),
            Some(SyncMessage::Chunk {
                height: 10,
                index: 1,
                bytes: Some(b"second".to_vec())
            })
        );
        assert_eq!(s.deps.metrics.state_sync_chunks_served.get(), 1);
        assert_eq!(s.deps.metrics.state_sync_bytes_served.get(), 6);
        // The test-only fault flips a byte.
        s.fault = Fault::CorruptChunk;
        std::thread::sleep(std::time::Duration::from_millis(600));
        s.handle(
            peer,
            GET_CHUNK,
            &SyncMessage::GetChunk {
                height: 10,
                index: 0,
            }
            .encode(),
        );
        let Some(SyncMessage::Chunk { bytes: Some(b), .. }) = answer(&rx) else {
            panic!("a chunk")
        };
        assert_ne!(b, b"first");
    }
}
