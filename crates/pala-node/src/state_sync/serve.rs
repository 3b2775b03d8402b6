//! Serving snapshots to joining peers (W-12): a thread of its own that answers the
//! state-sync requests the verify stage hands over, from the snapshot store, the session
//! proofs and the storage's blocks, and that writes each ended session's proof (W-12a)
//! when the consensus stage reports it. Bounded: requests wait in a queue of [`QUEUE`] (a full queue drops
//! and counts), each peer gets `state_sync.serve_requests_per_sec` answers a second
//! (token bucket; more are refused and counted), and a chunk is read only when asked, so
//! a peer costs one chunk of memory at a time whatever it sends.

use super::proof;
use super::sessions::SessionStore;
use super::store::SnapshotStore;
use super::wire::{
    Holds, Offer, SyncMessage, MAX_SESSION_PAGE_BLOCKS, OFFER_VERSION, SESSION_PAGE_BYTES,
};
use crate::metrics::Metrics;
use pala_net::NetCommand;
use pala_storage::StorageReader;
use pala_types::{NodeId, NotarizedBlock, Session};
use std::collections::{BTreeMap, HashMap};
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
/// differs from the one its header commits to, `forge_session` slips a committee-change
/// transaction into the first block of every session proof it serves. The multi-process
/// state-sync tests use it to show that a joining node refuses such peers and uses
/// another.
pub const FAULT_ENV: &str = "PALA_TESTING_STATE_SYNC_FAULT";

/// What the server is handed.
#[derive(Debug)]
pub enum Job {
    /// A request as the verify stage hands it over: sender, type code, payload.
    Request(NodeId, u8, Vec<u8>),
    /// Session `session` ended here (C-3) and `tail` is the core's proof that its stop
    /// block is final (C-9a): keep the session's proof for joiners.
    SessionEnded {
        /// The session.
        session: Session,
        /// The notarized blocks after the stop block up to the one that finalized it.
        tail: Vec<NotarizedBlock>,
    },
}

/// How often pending session proofs are retried while no job arrives.
const RETRY: std::time::Duration = std::time::Duration::from_millis(250);

/// Tries of a pending session proof (about 30 s) before it is given up, with a warning.
const MAX_TRIES: u32 = 120;

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
    /// The session proofs kept (`None`: the node keeps none).
    pub sessions: Option<SessionStore>,
    /// `genesis.stop_offset` (C-1), for building session proofs.
    pub stop_offset: u32,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fault {
    None,
    CorruptChunk,
    BadOffer,
    ForgeSession,
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
    /// The session proof read last (a joiner reads it page after page).
    session_cached: Option<(Session, Arc<Vec<NotarizedBlock>>)>,
    /// Ended sessions whose blocks were not all readable yet, with the tries so far.
    pending: BTreeMap<Session, (Vec<NotarizedBlock>, u32)>,
}

/// Starts the server thread; it ends when the sender side of `requests` is dropped.
pub fn spawn(
    deps: ServeDeps,
    jobs: crossbeam_channel::Receiver<Job>,
) -> std::io::Result<JoinHandle<()>> {
    let fault = match std::env::var(FAULT_ENV).as_deref() {
        Ok("corrupt_chunk") => Fault::CorruptChunk,
        Ok("bad_offer") => Fault::BadOffer,
        Ok("forge_session") => Fault::ForgeSession,
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
        session_cached: None,
        pending: BTreeMap::new(),
    };
    std::thread::Builder::new()
        .name("pala-state-sync".into())
        .spawn(move || loop {
            match jobs.recv_timeout(RETRY) {
                Ok(Job::Request(peer, kind, payload)) => s.handle(peer, kind, &payload),
                Ok(Job::SessionEnded { session, tail }) => {
                    s.pending.insert(session, (tail, 0));
                    s.keep_sessions();
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => s.keep_sessions(),
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
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
        if !matches!(
            msg,
            SyncMessage::GetOffer { .. }
                | SyncMessage::GetChunk { .. }
                | SyncMessage::GetSession { .. }
        ) {
            // Answers reach a node only while it joins; a running node ignores them.
            return self.refuse(peer, "an answer nobody asked for");
        }
        if !self.admit(peer) {
            return self.refuse(peer, "over state_sync.serve_requests_per_sec");
        }
        match msg {
            SyncMessage::GetOffer { version } => {
                let offer = self.offer();
                if offer.is_some() {
                    self.deps.metrics.state_sync_offers_served.inc();
                }
                // What this node stores lets a requester whose data is older than every
                // peer's retention tell (W-12f); a version-1 requester cannot read it.
                let holds = if version >= OFFER_VERSION {
                    Holds::of(self.deps.storage.finalized_range())
                } else {
                    Holds::Unsaid
                };
                let m = SyncMessage::Offer {
                    holds,
                    offer: offer.map(|o| Box::new((*o).clone())),
                };
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
            SyncMessage::GetSession { session, from } => {
                let page = self.session_page(session, from);
                if page.is_none() {
                    self.refuse(peer, "a session proof this node does not keep");
                }
                self.send(
                    peer,
                    &SyncMessage::Session {
                        session,
                        from,
                        page,
                    },
                );
            }
            _ => unreachable!("answers were refused above"),
        }
    }

    /// Blocks `from ..` of `session`'s proof, up to about [`SESSION_PAGE_BYTES`].
    fn session_page(&mut self, session: Session, from: u32) -> Option<(u32, Vec<NotarizedBlock>)> {
        let proof = match &self.session_cached {
            Some((s, p)) if *s == session => p.clone(),
            _ => {
                let read = self.deps.sessions.as_ref()?.read(session);
                let proof = match read {
                    Ok(p) => Arc::new(p?),
                    Err(e) => {
                        warn!("not serving the proof of session {session}: {e}");
                        return None;
                    }
                };
                self.session_cached = Some((session, proof.clone()));
                proof
            }
        };
        let rest = proof.get(from as usize..).filter(|r| !r.is_empty())?;
        let mut bytes = 0;
        let page: Vec<NotarizedBlock> = rest
            .iter()
            .take(MAX_SESSION_PAGE_BLOCKS)
            .take_while(|nb| {
                let fits = bytes < SESSION_PAGE_BYTES;
                // Transactions dominate a block; the rest is a few hundred bytes.
                bytes += 512 + nb.block.txs.iter().map(|t| t.len() + 4).sum::<usize>();
                fits
            })
            .cloned()
            .collect();
        let mut page = page;
        if self.fault == Fault::ForgeSession && from == 0 {
            let b = &page[0].block;
            let mut txs = b.txs.clone();
            txs.push(pala_types::committee::COMMITTEE_CHANGE_TAG.to_vec());
            let forged = pala_types::Block::new(b.header.clone(), txs, b.consensus.clone());
            page[0].block = Arc::new(forged);
        }
        Some((proof.len() as u32, page))
    }

    /// Writes the proofs of ended sessions whose blocks are readable (W-12a).
    fn keep_sessions(&mut self) {
        let Some(store) = self.deps.sessions.as_ref() else {
            self.pending.clear();
            return;
        };
        let stop = self.deps.stop_offset;
        let pending = std::mem::take(&mut self.pending);
        for (session, (tail, tries)) in pending {
            if store.has(session) {
                continue;
            }
            match super::sessions::build(&self.deps.storage, session, stop, &tail) {
                Some(proof) => match store.write(session, &proof) {
                    Ok(()) => info!(session, blocks = proof.len(), "kept the proof of session"),
                    Err(e) => warn!("could not keep the proof of session {session}: {e}"),
                },
                None if tries + 1 >= MAX_TRIES => warn!(
                    session,
                    "the blocks of session {session} up to its stop block are not all in \
                     storage: its proof is not kept, joiners ask other peers for it"
                ),
                None => {
                    self.pending.insert(session, (tail, tries + 1));
                }
            }
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
            let built = proof::build(&m, &self.deps.storage, self.deps.k, self.deps.stop_offset);
            let Some(proof) = built else {
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
    use crate::state_sync::wire::{CHUNK, GET_CHUNK, GET_OFFER, GET_SESSION, OFFER};
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
                sessions: Some(SessionStore::open(&dir.join("sessions")).unwrap()),
                stop_offset: 3,
                metrics: Arc::new(Metrics::default()),
            },
            fault,
            buckets: HashMap::new(),
            cached: None,
            session_cached: None,
            pending: BTreeMap::new(),
        };
        (s, rx, st)
    }

    fn none(holds: Holds) -> SyncMessage {
        SyncMessage::Offer { holds, offer: None }
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
        // No snapshots: an offer of none; a version-2 request learns that this node
        // stores no finalized block, a version-1 request gets the version-1 answer.
        let get2 = SyncMessage::GetOffer { version: 2 }.encode();
        s.handle(peer, GET_OFFER, &get2);
        assert_eq!(answer(&rx), Some(none(Holds::Nothing)));
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
        assert_eq!(answer(&rx), Some(none(Holds::Unsaid)));
        // Undecodable, and answers nobody asked for: refused without a reply.
        s.handle(peer, GET_CHUNK, &[1, 2, 3]);
        s.handle(peer, OFFER, &none(Holds::Nothing).encode());
        s.handle(peer, CHUNK, &[]);
        assert_eq!(answer(&rx), None);
        assert_eq!(refused(&s), 5);
        // Tokens come back with time.
        std::thread::sleep(std::time::Duration::from_millis(600));
        s.handle(peer, GET_OFFER, &[]);
        assert_eq!(answer(&rx), Some(none(Holds::Unsaid)));
    }

    #[test]
    fn a_version_2_answer_says_which_finalized_heights_the_node_stores() {
        use pala_storage::Record;
        use pala_types::{Block, BlockHeader, BlockSn, ConsensusInfo, Epoch, StateCommitment};
        let dir = tempfile::tempdir().unwrap();
        let (mut s, rx, mut st) = server(dir.path(), None, Fault::None);
        let mut records = Vec::new();
        let (mut parent_sn, mut parent_hash) = (BlockSn::GENESIS, Hash::of(b"genesis"));
        for h in 7..=9u64 {
            let b = Block::new(
                BlockHeader {
                    sn: BlockSn::at(Epoch::new(1, 1), h as u32),
                    parent_sn,
                    parent_hash,
                    height: h,
                    session_offset: h as u32,
                    timestamp_ms: h,
                    state: StateCommitment::NONE,
                },
                vec![],
                ConsensusInfo::default(),
            );
            (parent_sn, parent_hash) = (b.sn(), b.hash());
            records.push(Record::Block(Arc::new(b)));
        }
        records.push(Record::FinalizedHead(parent_sn));
        st.commit(&records).unwrap();
        let peer = NodeId([1; 20]);
        s.handle(
            peer,
            GET_OFFER,
            &SyncMessage::GetOffer { version: 2 }.encode(),
        );
        assert_eq!(answer(&rx), Some(none(Holds::Heights { low: 7, high: 9 })));
        // A newer requester gets the newest version this node speaks.
        s.handle(
            peer,
            GET_OFFER,
            &SyncMessage::GetOffer { version: 9 }.encode(),
        );
        assert_eq!(answer(&rx), Some(none(Holds::Heights { low: 7, high: 9 })));
    }

    /// Blocks of session 1 at offsets (and heights, slots) `1..=to`, linked.
    fn session_blocks(to: u32) -> Vec<pala_types::Block> {
        use pala_types::{Block, BlockHeader, BlockSn, ConsensusInfo, Epoch};
        let mut out: Vec<Block> = Vec::new();
        for i in 1..=to {
            let (parent_sn, parent_hash) = out
                .last()
                .map_or((BlockSn::GENESIS, Hash::of(b"genesis")), |p| {
                    (p.sn(), p.hash())
                });
            out.push(Block::new(
                BlockHeader {
                    sn: BlockSn::at(Epoch::new(1, 1), i),
                    parent_sn,
                    parent_hash,
                    height: u64::from(i),
                    session_offset: i,
                    timestamp_ms: 0,
                    state: pala_types::StateCommitment::NONE,
                },
                vec![],
                ConsensusInfo::default(),
            ));
        }
        out
    }

    #[test]
    fn an_ended_session_is_kept_once_its_blocks_are_readable_and_served_in_pages() {
        use pala_storage::Record;
        let dir = tempfile::tempdir().unwrap();
        let (mut s, rx, mut st) = server(dir.path(), None, Fault::None);
        let blocks = session_blocks(5);
        let nb = |b: &pala_types::Block| NotarizedBlock {
            block: Arc::new(b.clone()),
            notarization: None,
        };
        // The stop block is the 3rd; the core's tail is blocks 4 and 5.
        let tail = vec![nb(&blocks[3]), nb(&blocks[4])];
        s.pending.insert(1, (tail.clone(), 0));
        s.keep_sessions();
        assert_eq!(s.pending.len(), 1, "not in storage yet: retried later");
        let records: Vec<Record> = blocks[..3]
            .iter()
            .map(|b| Record::Block(Arc::new(b.clone())))
            .collect();
        st.commit(&records).unwrap();
        s.keep_sessions();
        assert!(s.pending.is_empty());
        let peer = NodeId([1; 20]);
        let get = |from| SyncMessage::GetSession { session: 1, from }.encode();
        s.handle(peer, GET_SESSION, &get(0));
        let Some(SyncMessage::Session {
            page: Some((total, page)),
            ..
        }) = answer(&rx)
        else {
            panic!("a page")
        };
        assert_eq!(total, 5);
        let heights: Vec<u64> = page.iter().map(|nb| nb.block.height()).collect();
        assert_eq!(heights, [1, 2, 3, 4, 5]);
        // Past the end, and an unknown session: nothing.
        s.handle(peer, GET_SESSION, &get(5));
        assert!(matches!(
            answer(&rx),
            Some(SyncMessage::Session { page: None, .. })
        ));
        std::thread::sleep(std::time::Duration::from_millis(600));
        s.handle(
            peer,
            GET_SESSION,
            &SyncMessage::GetSession {
                session: 2,
                from: 0,
            }
            .encode(),
        );
        assert!(matches!(
            answer(&rx),
            Some(SyncMessage::Session { page: None, .. })
        ));
        // The test-only fault slips a transaction into the first block.
        s.fault = Fault::ForgeSession;
        std::thread::sleep(std::time::Duration::from_millis(600));
        s.handle(peer, GET_SESSION, &get(0));
        let Some(SyncMessage::Session {
            page: Some((_, page)),
            ..
        }) = answer(&rx)
        else {
            panic!("a page")
        };
        assert_ne!(page[0].block.hash(), blocks[0].hash());
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
        assert_eq!(answer(&rx), Some(none(Holds::Unsaid)));
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
