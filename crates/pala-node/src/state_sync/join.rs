//! Joining by state sync (W-12): a node whose data directory holds no finalized block, or
//! whose finalized head no peer stores any more (W-12f, [`super::discover`]), asks its
//! peers for their newest snapshot before it starts, checks each offer's proof
//! ([`super::proof::check`]), fetches the chunks of the best one from every peer that
//! offered it (one outstanding chunk per peer; a chunk that fails its check, a timeout or a
//! disconnect moves to another peer and the chunks already checked are kept), restores the
//! application, and writes the proof's blocks to storage with `F` as the finalized head.
//! The node then starts as after a restart: recovery (P-3) makes `F` the core's finalized
//! root, replay applies the blocks between the snapshot and `F`, and chain sync fetches
//! the rest. Peers whose offer or chunks failed are not asked again. While it asks, a
//! node that listens keeps listening and answers offer requests with what it stores and
//! no snapshot, so the nodes of a network that starts or restarts together learn it within
//! a round trip.

use super::committees::ChainRules;
use super::discover::Discovery;
use super::proof;
use super::restore::Restore;
use super::sessions::SessionStore;
use super::wire::{Holds, Offer, SyncMessage, OFFER_VERSION};
use crate::app::KvStore;
use crate::metrics::Metrics;
use anyhow::{anyhow, Context, Result};
use pala_core::MessageVerifier;
use pala_net::{AdmitAll, DialPolicy, NetCommand, NetConfig, NetEvent, Network, PeerAddr};
use pala_storage::{Record, Storage};
use pala_types::{NodeId, SignatureScheme, Signer};
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

#[path = "join_chain.rs"]
mod chain;
pub use chain::CommitteeChain;

/// An offer checked whole, its committee chain included: what a round fetches.
#[derive(Debug, Clone)]
pub struct Confirmed {
    offer: Offer,
    f: usize,
    sources: Vec<NodeId>,
    chain: CommitteeChain,
}

impl Confirmed {
    /// The snapshot's height.
    pub fn height(&self) -> u64 {
        self.offer.manifest.height
    }
}

/// Rounds of discovery and fetching before the node gives up and starts from genesis.
const ROUNDS: usize = 3;

/// Timeouts of one peer before it is asked no more.
const STRIKES: u32 = 2;

/// What joining needs.
pub struct JoinDeps<'a> {
    /// The network layer's configuration (a node that listens does so while it joins,
    /// so that peers starting at the same time reach it).
    pub net: NetConfig,
    /// This node's key.
    pub signer: Arc<dyn Signer>,
    /// Signature scheme.
    pub scheme: Arc<dyn SignatureScheme>,
    /// Checks the proofs' notarizations (the genesis committee).
    pub verifier: &'a MessageVerifier,
    /// The genesis parameters of the committee rule, for offers of later sessions.
    pub rules: ChainRules,
    /// Where the session proofs of a join are kept, so that this node serves them in
    /// turn (`<data_dir>/sessions`).
    pub sessions_dir: PathBuf,
    /// Whom to ask: bootnodes and the genesis proposers, with the id to expect if known.
    pub peers: Vec<(PeerAddr, Option<NodeId>)>,
    /// K (F-C).
    pub k: u32,
    /// How long to wait for offers.
    pub discovery: Duration,
    /// How long to wait for one chunk.
    pub chunk_timeout: Duration,
    /// Requests a peer serves per second (`state_sync.serve_requests_per_sec`, assumed the
    /// same on every node): each peer is asked at most 80 % of that, so the requests of a
    /// join are never refused by the peers' rate limit.
    pub peer_rate: u32,
    /// Counters.
    pub metrics: &'a Metrics,
}

/// A completed join.
#[derive(Debug)]
pub struct Joined {
    /// The snapshot's height.
    pub height: u64,
    /// The finalized root installed.
    pub finalized: u64,
    /// Chunk bytes accepted.
    pub bytes: u64,
    /// Bytes of the offer taken (manifest and proof).
    pub offer_bytes: u64,
    /// How long it took.
    pub took: Duration,
}

/// Joins by state sync if a peer offers a snapshot that checks; `Ok(None)` when no peer
/// offers one (the node then starts from genesis). For a node whose store is empty.
pub fn join(
    deps: JoinDeps<'_>,
    app: &mut KvStore,
    storage: &mut Storage,
) -> Result<Option<Joined>> {
    let Some(mut session) = Session::start(deps, Holds::Nothing)? else {
        return Ok(None);
    };
    let joined = session.join(None, 0, app, storage);
    session.shutdown();
    joined
}

/// The network session of a join or of the W-12f check at start-up: the peers dialed,
/// and those that served something that did not check.
pub struct Session<'d> {
    deps: JoinDeps<'d>,
    net: Network,
    /// What this node says it stores when a peer asks it for an offer.
    holds: Holds,
    t0: Instant,
    /// Peers that served something that did not check.
    banned: HashSet<NodeId>,
    connected: HashSet<NodeId>,
    /// The sessions checked so far (W-12a), kept across rounds.
    chain: CommitteeChain,
}

impl<'d> Session<'d> {
    /// Starts the network and dials the peers; `None` when there is nobody to ask.
    pub fn start(deps: JoinDeps<'d>, holds: Holds) -> Result<Option<Session<'d>>> {
        if deps.peers.is_empty() {
            return Ok(None);
        }
        let net = Network::start(
            deps.net.clone(),
            deps.signer.clone(),
            deps.scheme.clone(),
            Arc::new(AdmitAll),
        )
        .map_err(|e| anyhow!("starting the network for state sync: {e}"))?;
        for (addr, expected) in &deps.peers {
            let _ = net.command(NetCommand::Dial {
                addr: addr.clone(),
                expected: *expected,
                policy: DialPolicy::Periodic,
            });
        }
        Ok(Some(Session {
            deps,
            net,
            holds,
            t0: Instant::now(),
            banned: HashSet::new(),
            connected: HashSet::new(),
            chain: CommitteeChain::default(),
        }))
    }

    /// What this node answers from now on (after its old data was set aside: nothing).
    pub fn set_holds(&mut self, holds: Holds) {
        self.holds = holds;
    }

    /// Closes the session's connections (the node's own network starts after it).
    pub fn shutdown(self) {
        self.net.shutdown();
    }

    /// The best offer of `found` above `floor` that checks whole (W-12a: for a later
    /// session with the chain of committees fetched from the peers that offered it);
    /// offers that do not check are dropped, their peers banned, and the next is tried.
    pub fn confirm_best(&mut self, found: &Discovery, floor: u64) -> Option<Confirmed> {
        let mut found = found.clone();
        loop {
            let (peer, offer, f, sources) = found.best(floor)?;
            match self.confirm(&offer, peer, &sources) {
                Ok(chain) => {
                    return Some(Confirmed {
                        offer,
                        f,
                        sources,
                        chain,
                    })
                }
                Err(e) => {
                    warn!("not taking snapshot {}: {e}", offer.manifest.height);
                    // The peer banned, or no chain from anyone: drop this height's offers.
                    let (h, banned) = (offer.manifest.height, &self.banned);
                    found
                        .offers
                        .retain(|(p, o, _)| o.manifest.height != h && !banned.contains(p));
                }
            }
        }
    }

    /// Fetches and installs a snapshot above height `floor`, from `first` (an offer
    /// already confirmed) and then from fresh rounds of offers; `Ok(None)` when none
    /// checks.
    pub fn join(
        &mut self,
        mut first: Option<Confirmed>,
        floor: u64,
        app: &mut KvStore,
        storage: &mut Storage,
    ) -> Result<Option<Joined>> {
        let mut outcome = Ok(None);
        for round in 1..=ROUNDS {
            let confirmed = match first.take() {
                Some(c) => Some(c),
                None => {
                    let found = self.discover(None);
                    if found.best(floor).is_none() {
                        break;
                    }
                    self.confirm_best(&found, floor)
                }
            };
            let Some(Confirmed {
                offer,
                f,
                sources,
                chain,
            }) = confirmed
            else {
                warn!(round, "no snapshot offer checked; asking the peers again");
                continue;
            };
            info!(
                height = offer.manifest.height,
                chunks = offer.manifest.chunks.len(),
                bytes = offer.manifest.total_bytes(),
                peers = sources.len(),
                "fetching a state-sync snapshot"
            );
            match self.fetch(&offer, sources, app) {
                Ok(bytes) => {
                    let (dir, stop) = (&self.deps.sessions_dir, self.deps.rules.stop_offset);
                    outcome =
                        install(&offer, f, &chain, dir, stop, storage, app).map(|finalized| {
                            Some(Joined {
                                height: offer.manifest.height,
                                finalized,
                                bytes,
                                offer_bytes: offer_bytes(&offer),
                                took: self.t0.elapsed(),
                            })
                        });
                    break;
                }
                Err(e) => warn!(
                    round,
                    "state sync round failed: {e}; asking the peers again"
                ),
            }
        }
        if let Ok(Some(done)) = &outcome {
            self.deps.metrics.state_sync_joins.inc();
            info!(
                snapshot = done.height,
                finalized = done.finalized,
                bytes = done.bytes,
                offer_bytes = done.offer_bytes,
                ms = done.took.as_millis() as u64,
                "joined by state sync"
            );
        }
        outcome
    }
}

fn offer_bytes(offer: &Offer) -> u64 {
    SyncMessage::Offer {
        holds: Holds::Unsaid,
        offer: Some(Box::new(offer.clone())),
    }
    .encode()
    .len() as u64
}

/// Writes the proof's blocks with `F` as the finalized head, the committees and stop
/// blocks of the chain (the core recovers the committee of F's session from them, P-3),
/// and keeps the chain's session proofs to serve them in turn; returns F's height.
fn install(
    offer: &Offer,
    f: usize,
    chain: &CommitteeChain,
    sessions_dir: &std::path::Path,
    stop_offset: u32,
    storage: &mut Storage,
    app: &mut KvStore,
) -> Result<u64> {
    if !chain.proofs.is_empty() {
        let store = SessionStore::open(sessions_dir)
            .with_context(|| format!("opening {}", sessions_dir.display()))?;
        for (i, p) in chain.proofs.iter().enumerate() {
            store
                .write(i as u32 + 1, p)
                .with_context(|| format!("keeping the proof of session {}", i + 1))?;
        }
    }
    let mut records = Vec::with_capacity(2 * offer.proof.len() + 2 * chain.proofs.len() + 1);
    for c in &chain.committees {
        records.push(Record::Committee(c.clone()));
    }
    for (i, p) in chain.proofs.iter().enumerate() {
        if let Some(stop) = p
            .iter()
            .find(|nb| nb.block.header.session_offset == stop_offset)
        {
            records.push(Record::StopBlock {
                session: i as u32 + 1,
                height: stop.block.height(),
            });
        }
    }
    for (i, nb) in offer.proof.iter().enumerate() {
        // Above F only the notarized prefix: a stored block without its notarization
        // would never connect (F-B), and the core would ask its peers for blocks after a
        // head it cannot extend. From F on, chain sync brings the rest with their
        // notarizations.
        if i > f && nb.notarization.is_none() {
            break;
        }
        records.push(Record::Block(nb.block.clone()));
        if let Some(n) = &nb.notarization {
            records.push(Record::Notarization(n.clone()));
        }
    }
    let fin = &offer.proof[f].block;
    records.push(Record::FinalizedHead(fin.sn()));
    storage
        .commit(&records)
        .context("writing the snapshot's blocks to storage")?;
    app.checkpoint()
        .context("writing the restored application state")?;
    Ok(fin.height())
}

impl Session<'_> {
    fn send(&self, to: NodeId, m: &SyncMessage) {
        let _ = self.net.command(NetCommand::SendExtension {
            to,
            kind: m.kind(),
            payload: m.encode(),
        });
    }

    /// A node that is itself joining or checking serves no snapshot: peers that ask
    /// (other nodes of a network starting or restarting together) learn so, and what it
    /// stores, at once instead of waiting out their discovery.
    fn answer_request(&self, peer: NodeId, kind: u8, payload: &[u8]) -> bool {
        match kind {
            super::wire::GET_OFFER => {
                let holds = match SyncMessage::decode(kind, payload) {
                    Ok(SyncMessage::GetOffer { version }) if version >= OFFER_VERSION => self.holds,
                    _ => Holds::Unsaid,
                };
                self.send(peer, &SyncMessage::Offer { holds, offer: None });
            }
            super::wire::GET_CHUNK => {}
            _ => return false,
        }
        true
    }

    fn ban(&mut self, peer: NodeId) {
        self.banned.insert(peer);
    }

    /// Asks every connected peer for its offer and what it stores, until every peer
    /// answered, `state_sync.discovery_ms` passed, or (with `own` = this node's finalized
    /// height) a peer said it holds that height: then the node is not behind (W-12f) and
    /// waiting longer would only delay its start.
    pub fn discover(&mut self, own: Option<u64>) -> Discovery {
        let deadline = Instant::now() + self.deps.discovery;
        let mut asked: HashSet<NodeId> = HashSet::new();
        let mut found = Discovery::default();
        let ask = SyncMessage::GetOffer {
            version: OFFER_VERSION,
        };
        for p in self.connected.clone() {
            if !self.banned.contains(&p) {
                self.send(p, &ask);
                asked.insert(p);
            }
        }
        while Instant::now() < deadline {
            let answered = found.holds.len();
            // Every peer answered, or was refused before and not asked again (an
            // unreachable one costs the whole window).
            let refused_before = self
                .banned
                .iter()
                .filter(|b| !found.holds.iter().any(|(p, _)| p == *b))
                .count();
            if answered > 0 && answered + refused_before >= self.deps.peers.len() {
                break;
            }
            if own.is_some_and(|h| found.holds.iter().any(|(_, s)| s.covers(h))) {
                break;
            }
            let Ok(ev) = self.net.events().recv_timeout(Duration::from_millis(50)) else {
                continue;
            };
            match ev {
                NetEvent::PeerUp { peer, .. } => {
                    self.connected.insert(peer);
                    if !self.banned.contains(&peer) && asked.insert(peer) {
                        self.send(peer, &ask);
                    }
                }
                NetEvent::PeerDown { peer, .. } => {
                    self.connected.remove(&peer);
                }
                NetEvent::Extension {
                    peer,
                    kind,
                    payload,
                } if self.answer_request(peer, kind, &payload) => {}
                NetEvent::Extension {
                    peer,
                    kind,
                    payload,
                } if asked.contains(&peer) && !found.holds.iter().any(|(p, _)| *p == peer) => {
                    match SyncMessage::decode(kind, &payload) {
                        Ok(SyncMessage::Offer { holds, offer }) => {
                            found.holds.push((peer, holds));
                            let Some(o) = offer else { continue };
                            // A later session's signatures wait for its committee (W-12a,
                            // `confirm`); the rest is checked now.
                            let checked = if proof::session_of(&o) <= 1 {
                                proof::check(&o, self.deps.verifier, self.deps.k)
                            } else {
                                proof::check_links(&o, self.deps.k)
                            };
                            match checked {
                                Ok(f) => found.offers.push((peer, *o, f)),
                                Err(e) => {
                                    self.deps.metrics.state_sync_offers_refused.inc();
                                    error!(
                                        peer = %peer.to_hex(),
                                        height = o.manifest.height,
                                        "refused a state-sync snapshot offer: {e}; trying other peers"
                                    );
                                    self.ban(peer);
                                }
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            self.deps.metrics.state_sync_offers_refused.inc();
                            error!(peer = %peer.to_hex(), "undecodable state-sync answer: {e}");
                            found.holds.push((peer, Holds::Unsaid));
                            self.ban(peer);
                        }
                    }
                }
                _ => {}
            }
        }
        found
    }

    /// Fetches and restores the snapshot; returns the chunk bytes accepted.
    fn fetch(&mut self, offer: &Offer, sources: Vec<NodeId>, app: &mut KvStore) -> Result<u64> {
        let m = &offer.manifest;
        let header = offer
            .proof
            .iter()
            .find(|nb| nb.block.header.state == m.commitment())
            .map(|nb| nb.block.header.state)
            .expect("checked by proof::check");
        let mut restore = Restore::new(m.clone(), header)?;
        let mut todo: VecDeque<u32> = restore.missing().collect();
        let mut busy: HashMap<NodeId, (u32, Instant)> = HashMap::new();
        let pace = Duration::from_secs_f64(1.25 / self.deps.peer_rate.max(1) as f64);
        let mut next_at: HashMap<NodeId, Instant> = HashMap::new();
        let mut strikes: HashMap<NodeId, u32> = HashMap::new();
        let mut live: Vec<NodeId> = sources;
        let mut bytes = 0u64;
        // Peers that left and do not come back must not hold the node forever.
        let mut progress = Instant::now();
        let stall = self.deps.chunk_timeout * 3;
        while !restore.is_complete() {
            if progress.elapsed() > stall {
                return Err(anyhow!(
                    "no chunk of snapshot {} arrived for {} ms ({} peers left)",
                    m.height,
                    stall.as_millis(),
                    live.len()
                ));
            }
            live.retain(|p| !self.banned.contains(p));
            if live.is_empty() {
                return Err(anyhow!(
                    "no peer left to fetch snapshot {} from ({} of {} chunks checked)",
                    m.height,
                    m.chunks.len() - todo.len() - busy.len(),
                    m.chunks.len()
                ));
            }
            for p in &live {
                let early = next_at.get(p).is_some_and(|t| *t > Instant::now());
                if busy.contains_key(p) || !self.connected.contains(p) || early {
                    continue;
                }
                next_at.insert(*p, Instant::now() + pace);
                let Some(i) = todo.pop_front() else { break };
                self.send(
                    *p,
                    &SyncMessage::GetChunk {
                        height: m.height,
                        index: i,
                    },
                );
                busy.insert(*p, (i, Instant::now() + self.deps.chunk_timeout));
            }
            let now = Instant::now();
            let late: Vec<NodeId> = busy
                .iter()
                .filter(|(_, (_, d))| *d <= now)
                .map(|(p, _)| *p)
                .collect();
            for p in late {
                let (i, _) = busy.remove(&p).expect("listed");
                todo.push_front(i);
                self.deps.metrics.state_sync_chunks_refused.inc();
                let s = strikes.entry(p).or_default();
                *s += 1;
                warn!(peer = %p.to_hex(), chunk = i, "a state-sync chunk timed out; asking another peer");
                if *s >= STRIKES {
                    self.ban(p);
                }
            }
            let Ok(ev) = self.net.events().recv_timeout(Duration::from_millis(50)) else {
                continue;
            };
            match ev {
                NetEvent::PeerUp { peer, .. } => {
                    self.connected.insert(peer);
                }
                NetEvent::PeerDown { peer, .. } => {
                    self.connected.remove(&peer);
                    if let Some((i, _)) = busy.remove(&peer) {
                        todo.push_front(i);
                    }
                }
                NetEvent::Extension {
                    peer,
                    kind,
                    payload,
                } if self.answer_request(peer, kind, &payload) => {}
                NetEvent::Extension {
                    peer,
                    kind,
                    payload,
                } => {
                    let Some(&(want, _)) = busy.get(&peer) else {
                        continue;
                    };
                    let msg = SyncMessage::decode(kind, &payload);
                    let Ok(SyncMessage::Chunk {
                        height,
                        index,
                        bytes: data,
                    }) = msg
                    else {
                        continue;
                    };
                    if height != m.height || index != want {
                        continue;
                    }
                    busy.remove(&peer);
                    let Some(data) = data else {
                        warn!(peer = %peer.to_hex(), chunk = index, "peer does not keep the snapshot; asking another");
                        todo.push_front(index);
                        live.retain(|p| *p != peer);
                        continue;
                    };
                    let n = data.len() as u64;
                    match restore.add_chunk(index, data) {
                        Ok(_) => {
                            progress = Instant::now();
                            bytes += n;
                            self.deps.metrics.state_sync_bytes_fetched.inc_by(n);
                        }
                        Err(e) => {
                            self.deps.metrics.state_sync_chunks_refused.inc();
                            error!(
                                peer = %peer.to_hex(),
                                "refused a state-sync chunk: {e}; asking another peer"
                            );
                            todo.push_front(index);
                            self.ban(peer);
                        }
                    }
                }
                _ => {}
            }
        }
        if let Err(e) = restore.finish(app) {
            // Every chunk matched the manifest, yet the state is not the manifest's: the
            // manifest was forged, by every peer that offered it.
            self.deps.metrics.state_sync_offers_refused.inc();
            error!(height = m.height, "refused a state-sync snapshot: {e}");
            return Err(e.into());
        }
        Ok(bytes)
    }
}
