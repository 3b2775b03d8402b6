//! Joining by state sync (W-12): a node whose data directory holds no finalized block asks
//! its peers for their newest snapshot before it starts, checks each offer's proof
//! ([`super::proof::check`]), fetches the chunks of the best one from every peer that
//! offered it (one outstanding chunk per peer; a chunk that fails its check, a timeout or a
//! disconnect moves to another peer and the chunks already checked are kept), restores the
//! application, and writes the proof's blocks to storage with `F` as the finalized head.
//! The node then starts as after a restart: recovery (P-3) makes `F` the core's finalized
//! root, replay applies the blocks between the snapshot and `F`, and chain sync fetches
//! the rest. Peers whose offer or chunks failed are not asked again. While it joins, a
//! node that listens keeps listening and answers offer requests with "none", so the nodes
//! of a network that starts from genesis (all empty at once) learn it within a round trip.

use super::proof;
use super::restore::Restore;
use super::wire::{Offer, SyncMessage};
use crate::app::KvStore;
use crate::metrics::Metrics;
use anyhow::{anyhow, Context, Result};
use pala_core::MessageVerifier;
use pala_net::{AdmitAll, DialPolicy, NetCommand, NetConfig, NetEvent, Network, PeerAddr};
use pala_storage::{Record, Storage};
use pala_types::{NodeId, SignatureScheme, Signer};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

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
/// offers one (the node then starts from genesis).
pub fn join(
    deps: JoinDeps<'_>,
    app: &mut KvStore,
    storage: &mut Storage,
) -> Result<Option<Joined>> {
    if deps.peers.is_empty() {
        return Ok(None);
    }
    let t0 = Instant::now();
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
    let mut j = Joiner {
        deps: &deps,
        net: &net,
        banned: HashSet::new(),
        connected: HashSet::new(),
    };
    let mut outcome = Ok(None);
    for round in 1..=ROUNDS {
        let Some((offer, f, sources)) = j.discover() else {
            break;
        };
        match j.fetch(&offer, sources, app) {
            Ok(bytes) => {
                outcome = install(&offer, f, storage, app).map(|finalized| {
                    Some(Joined {
                        height: offer.manifest.height,
                        finalized,
                        bytes,
                        offer_bytes: SyncMessage::Offer(Some(Box::new(offer.clone())))
                            .encode()
                            .len() as u64,
                        took: t0.elapsed(),
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
    net.shutdown();
    if let Ok(Some(done)) = &outcome {
        deps.metrics.state_sync_joins.inc();
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

/// Writes the proof's blocks with `F` as the finalized head; returns F's height.
fn install(offer: &Offer, f: usize, storage: &mut Storage, app: &mut KvStore) -> Result<u64> {
    let mut records = Vec::with_capacity(2 * offer.proof.len() + 1);
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

struct Joiner<'a, 'd> {
    deps: &'a JoinDeps<'d>,
    net: &'a Network,
    /// Peers that served something that did not check.
    banned: HashSet<NodeId>,
    connected: HashSet<NodeId>,
}

impl Joiner<'_, '_> {
    fn send(&self, to: NodeId, m: &SyncMessage) {
        let _ = self.net.command(NetCommand::SendExtension {
            to,
            kind: m.kind(),
            payload: m.encode(),
        });
    }

    /// A node that is itself joining serves nothing: peers that ask (other nodes of a
    /// network starting from genesis, all empty at once) learn so at once instead of
    /// waiting out their discovery.
    fn answer_request(&self, peer: NodeId, kind: u8) -> bool {
        match kind {
            super::wire::GET_OFFER => self.send(peer, &SyncMessage::Offer(None)),
            super::wire::GET_CHUNK => {}
            _ => return false,
        }
        true
    }

    fn ban(&mut self, peer: NodeId) {
        self.banned.insert(peer);
    }

    /// Asks every connected peer for its offer; returns the best offer that checks, the
    /// index of its finalized block, and the peers that offered it.
    fn discover(&mut self) -> Option<(Offer, usize, Vec<NodeId>)> {
        let deadline = Instant::now() + self.deps.discovery;
        let mut asked: HashSet<NodeId> = HashSet::new();
        let mut answered: HashSet<NodeId> = HashSet::new();
        let mut offers: Vec<(NodeId, Offer, usize)> = Vec::new();
        for p in self.connected.clone() {
            if !self.banned.contains(&p) {
                self.send(p, &SyncMessage::GetOffer);
                asked.insert(p);
            }
        }
        while Instant::now() < deadline {
            // Every peer answered, or was refused before and not asked again (an
            // unreachable one costs the whole window).
            let refused_before = self.banned.iter().filter(|b| !answered.contains(b)).count();
            if !answered.is_empty() && answered.len() + refused_before >= self.deps.peers.len() {
                break;
            }
            let Ok(ev) = self.net.events().recv_timeout(Duration::from_millis(50)) else {
                continue;
            };
            match ev {
                NetEvent::PeerUp { peer, .. } => {
                    self.connected.insert(peer);
                    if !self.banned.contains(&peer) && asked.insert(peer) {
                        self.send(peer, &SyncMessage::GetOffer);
                    }
                }
                NetEvent::PeerDown { peer, .. } => {
                    self.connected.remove(&peer);
                }
                NetEvent::Extension { peer, kind, .. } if self.answer_request(peer, kind) => {}
                NetEvent::Extension {
                    peer,
                    kind,
                    payload,
                } if asked.contains(&peer) && !answered.contains(&peer) => {
                    match SyncMessage::decode(kind, &payload) {
                        Ok(SyncMessage::Offer(None)) => {
                            answered.insert(peer);
                        }
                        Ok(SyncMessage::Offer(Some(o))) => {
                            answered.insert(peer);
                            match proof::check(&o, self.deps.verifier, self.deps.k) {
                                Ok(f) => offers.push((peer, *o, f)),
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
                            answered.insert(peer);
                            self.ban(peer);
                        }
                    }
                }
                _ => {}
            }
        }
        // The snapshot the most peers can serve (more peers to fetch from and to fall
        // back on), then the newest. A peer that offered a newer one still keeps this one
        // unless `state_sync.keep` is 1; if it does not, it says so and is left out.
        let servable = |m: &super::Manifest| {
            offers
                .iter()
                .filter(|(_, o, _)| o.manifest.height >= m.height)
                .count()
        };
        let best = offers
            .iter()
            .max_by_key(|(_, o, _)| (servable(&o.manifest), o.manifest.height))?
            .clone();
        let sources: Vec<NodeId> = offers
            .iter()
            .filter(|(_, o, _)| o.manifest.height >= best.1.manifest.height)
            .map(|(p, _, _)| *p)
            .collect();
        info!(
            height = best.1.manifest.height,
            chunks = best.1.manifest.chunks.len(),
            bytes = best.1.manifest.total_bytes(),
            peers = sources.len(),
            "fetching a state-sync snapshot"
        );
        Some((best.1, best.2, sources))
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
                NetEvent::Extension { peer, kind, .. } if self.answer_request(peer, kind) => {}
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
