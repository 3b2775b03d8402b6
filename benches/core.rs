//! Benchmarks of the protocol core (`Node::handle`) per input kind, in steady state.
//!
//! A small cluster (one proposer, V voters, insecure test scheme, zero delay) is run once
//! synchronously and every input each node received is recorded. A bench replays one
//! node's recorded inputs into a fresh core and times only the inputs of one kind, so
//! each measured call sees the state it had in the real run (a voter with K outstanding
//! proposals, a proposer collecting votes, ...). Signature checks are not included: they
//! happen before the core (see `crypto::…` and the verifier).
//!
//! - `core::proposal_at_voter/voters=V`: a proposal with its embedded notarization, at
//!   a voter: block insertion, window rule, vote creation (V-0..V-6);
//! - `core::vote_at_primary/voters=V`: one verified vote at the primary proposer
//!   (PV-1..PV-5), including the notarization it completes and the next proposal;
//! - `core::notarization_insert/voters=V`: the broadcast notarization at a voter (NA-1..
//!   NA-6): head extension, finalization, pending retries;
//! - `core::chain_fork_switch/blocks=N`: the freshest-chain update when a notarization
//!   moves the head to another branch of the block tree (FC-2), on `Chain` directly.
//!
//! Run: `cargo bench --bench core` (about a minute).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pala_core::chain::{Attach, Chain};
use pala_core::driver::{Driver, Durability, Event, Host, Payload, PersistSeq, Released};
use pala_core::{
    Committees, CoreConfig, Input, MessageVerifier, Node, NodeParams, StateChange, Tick, Verified,
};
use pala_types::insecure::InsecureTestScheme;
use pala_types::{
    Block, BlockHeader, BlockSn, Committee, ConsensusInfo, Domain, Member, Message, NodeId,
    Notarization, Signature, SignatureScheme, Signer, SignerBitmap, VoteCounting,
};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

const NET: u64 = 7;
const K: u32 = 10;

struct Cluster {
    scheme: Arc<dyn SignatureScheme>,
    signers: Vec<Arc<dyn Signer>>,
    committees: Committees,
    genesis: Arc<Block>,
    config: CoreConfig,
}

impl Cluster {
    fn new(voters: usize) -> Cluster {
        let s = InsecureTestScheme::new();
        let signers: Vec<Arc<dyn Signer>> = (0..=voters)
            .map(|i| Arc::new(s.keypair(i as u64)) as Arc<dyn Signer>)
            .collect();
        let member = |k: &Arc<dyn Signer>| {
            let pop = k.sign(Domain::ProofOfPossession, NET, &k.public_key().0);
            Member::new(k.public_key().clone(), pop, 1, "")
        };
        let committee = Committee {
            session: 1,
            proposers: vec![member(&signers[0])],
            voters: signers[1..].iter().map(member).collect(),
            counting: VoteCounting::Seat,
        };
        let scheme: Arc<dyn SignatureScheme> = Arc::new(s);
        let mut committees = Committees::default();
        committees.install(scheme.as_ref(), committee);
        Cluster {
            scheme,
            signers,
            committees,
            genesis: Arc::new(Block::genesis(b"bench-core".to_vec())),
            config: CoreConfig {
                network_id: NET,
                k: K,
                first_proposal_delay_ms: 0,
                ..CoreConfig::default()
            },
        }
    }

    fn node(&self, i: usize) -> Node {
        Node::new(NodeParams {
            config: self.config.clone(),
            signer: self.signers[i].clone(),
            scheme: self.scheme.clone(),
            committees: self.committees.clone(),
            genesis: self.genesis.clone(),
            archive: Arc::new(pala_core::NoArchive),
        })
    }

    /// Runs until the proposer finalized `blocks` blocks; returns every node's inputs.
    /// The nodes are driven through pala-core's driver kit, as in the node.
    fn record(&self, blocks: u64) -> Vec<Vec<(Tick, Input)>> {
        let n = self.signers.len();
        let ids: Vec<_> = self.signers.iter().map(|s| s.node_id()).collect();
        let verifier = MessageVerifier::new(self.scheme.clone(), NET, self.committees.clone());
        let mut nodes: Vec<Node> = (0..n).map(|i| self.node(i)).collect();
        let mut drivers: Vec<Driver> = (0..n).map(|_| Driver::new()).collect();
        let mut host = Recorder {
            ids: ids.clone(),
            verifier: verifier.clone(),
            log: vec![Vec::new(); n],
            queue: VecDeque::new(),
            node: 0,
            tick: 0,
            finalized: 0,
        };
        let mut feed = |i: usize, tick: Tick, input: Input, host: &mut Recorder| {
            host.node = i;
            host.tick = tick;
            host.log[i].push((tick, input.clone()));
            drivers[i].handle(&mut nodes[i], tick, input, host);
        };
        for i in 0..n {
            feed(i, 0, Input::Start, &mut host);
            let peers: Vec<usize> = if i == 0 { (1..n).collect() } else { vec![0] };
            for j in peers {
                feed(i, 0, Input::PeerConnected(ids[j]), &mut host);
            }
        }
        let mut steps: u64 = 0;
        while host.finalized < blocks {
            let (from, to, msg) = host.queue.pop_front().expect("the cluster makes progress");
            let msg = verifier.verify(msg).expect("honest messages verify");
            steps += 1;
            let input = Input::Message {
                from: ids[from],
                msg,
            };
            feed(to, steps / 64, input, &mut host);
        }
        host.log
    }
}

/// Hub and spoke with zero delay and no storage; records every input a core receives,
/// the payloads the kit feeds included.
struct Recorder {
    ids: Vec<NodeId>,
    verifier: MessageVerifier,
    log: Vec<Vec<(Tick, Input)>>,
    /// (from, to, message) in send order.
    queue: VecDeque<(usize, usize, Message)>,
    /// The node being driven and its time.
    node: usize,
    tick: Tick,
    /// Blocks finalized at the proposer.
    finalized: u64,
}

impl Host for Recorder {
    type Effect = Infallible;

    fn persist(&mut self, _: PersistSeq, _: StateChange) -> Durability {
        Durability::Durable
    }

    fn release(&mut self, effect: Released<Infallible>) {
        let i = self.node;
        match effect {
            Released::Send { to, msg } => {
                let j = self.ids.iter().position(|x| *x == to).expect("known");
                self.queue.push_back((i, j, msg));
            }
            Released::Broadcast(msg) => {
                let peers: Vec<usize> = if i == 0 {
                    (1..self.ids.len()).collect()
                } else {
                    vec![0]
                };
                for j in peers {
                    self.queue.push_back((i, j, msg.clone()));
                }
            }
            Released::Finalized { .. } if i == 0 => self.finalized += 1,
            _ => {}
        }
    }

    fn event(&mut self, _: Event) {}

    fn payload(&mut self, now: Tick, sn: BlockSn) -> Option<Payload> {
        let payload = Payload {
            txs: vec![vec![0x5a; 256]],
            timestamp_ms: now,
            state: pala_types::StateCommitment::NONE,
        };
        let input = Input::Payload {
            sn,
            txs: payload.txs.clone(),
            timestamp_ms: payload.timestamp_ms,
            state: payload.state,
        };
        self.log[self.node].push((self.tick, input));
        Some(payload)
    }

    fn reverify(&mut self, _: NodeId, sync: Message) -> Option<Verified<Message>> {
        self.verifier.verify(sync).ok()
    }
}

fn kind(i: &Input) -> &'static str {
    match i {
        Input::Message { msg, .. } => msg.kind(),
        Input::Payload { .. } => "payload",
        _ => "other",
    }
}

/// Times the inputs of `target` kind in node `i`'s recorded stream, after `warm` inputs.
fn replay(
    c: &mut Criterion,
    group: &str,
    param: String,
    cluster: &Cluster,
    i: usize,
    log: &[(Tick, Input)],
    target: &'static str,
) {
    let warm = log.len() / 4;
    let mut g = c.benchmark_group(group);
    g.bench_function(BenchmarkId::from_parameter(param), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let mut node = cluster.node(i);
                for (t, input) in &log[..warm] {
                    node.handle(*t, input.clone());
                }
                for (t, input) in &log[warm..] {
                    if done >= iters {
                        break;
                    }
                    let input = input.clone();
                    if kind(&input) == target {
                        let s = Instant::now();
                        let out = node.handle(*t, input);
                        total += s.elapsed();
                        black_box(out);
                        done += 1;
                    } else {
                        node.handle(*t, input);
                    }
                }
            }
            total
        })
    });
    g.finish();
}

fn core_handle(c: &mut Criterion) {
    for (voters, blocks) in [(33usize, 600u64), (100, 300)] {
        let cluster = Cluster::new(voters);
        let log = cluster.record(blocks);
        let p = format!("voters={voters}");
        replay(
            c,
            "core::proposal_at_voter",
            p.clone(),
            &cluster,
            1,
            &log[1],
            "proposal",
        );
        replay(
            c,
            "core::notarization_insert",
            p.clone(),
            &cluster,
            1,
            &log[1],
            "notarization",
        );
        replay(c, "core::vote_at_primary", p, &cluster, 0, &log[0], "vote");
    }
}

/// A tree with a main branch of `n` notarized blocks in epoch 1 and a fork from its
/// middle into epoch 2; attaching the fork's notarization moves the head across (FC-2).
fn chain_fork_switch(c: &mut Criterion) {
    let nota = |b: &Block| Notarization {
        sn: b.sn(),
        block_hash: b.hash(),
        proposer_idx: 0,
        signers: SignerBitmap::new(33),
        signature: Signature(vec![0; 48]),
    };
    let child = |parent: &Block, sn: BlockSn| {
        Arc::new(Block::new(
            BlockHeader {
                sn,
                parent_sn: parent.sn(),
                parent_hash: parent.hash(),
                height: parent.height() + 1,
                session_offset: parent.header.session_offset + 1,
                timestamp_ms: 0,
                state: pala_types::StateCommitment::NONE,
            },
            Vec::new(),
            ConsensusInfo::default(),
        ))
    };
    let mut g = c.benchmark_group("core::chain_fork_switch");
    for n in [16u32, 256] {
        let genesis = Arc::new(Block::genesis(b"fork".to_vec()));
        let mut base = Chain::new(genesis.clone(), None);
        let mut parent = genesis;
        let mut fork_parent = None;
        for s in 1..=n {
            let b = child(&parent, BlockSn::new(1, 1, s));
            base.insert(b.clone());
            base.attach(nota(&b));
            if s == n / 2 {
                fork_parent = Some(b.clone());
            }
            parent = b;
        }
        let fork = child(&fork_parent.expect("n >= 2"), BlockSn::new(1, 2, 1));
        base.insert(fork.clone());
        let fork_nota = nota(&fork);
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("blocks={n}")),
            &n,
            |b, _| {
                b.iter_batched(
                    || (base.clone(), fork_nota.clone()),
                    |(mut chain, nt)| {
                        let r = chain.attach(nt);
                        debug_assert!(matches!(r, Attach::Connected(_)));
                        (r, chain)
                    },
                    criterion::BatchSize::LargeInput,
                )
            },
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    targets = core_handle, chain_fork_switch
}
criterion_main!(benches);
