//! The kit around a real core: a one-node committee (the proposer is its own voter)
//! makes progress alone, so every output kind flows through the kit.

use super::*;
use crate::{Committees, CoreConfig, NoArchive, NodeParams, TimerKind};
use pala_types::insecure::InsecureTestScheme;
use pala_types::{Domain, Member, Signer, VoteCounting};

fn solo_node() -> Node {
    let scheme = InsecureTestScheme::new();
    let key = scheme.keypair(1);
    let pop = key.sign(Domain::ProofOfPossession, 1, &key.public_key().0);
    let me = Member::new(key.public_key().clone(), pop, 1, "");
    let committee = Committee {
        session: 1,
        proposers: vec![me.clone()],
        voters: vec![me],
        counting: VoteCounting::Seat,
    };
    let mut committees = Committees::default();
    committees.install(&scheme, committee);
    Node::new(NodeParams {
        config: CoreConfig::for_tests(),
        signer: Arc::new(key),
        scheme: Arc::new(scheme),
        committees,
        genesis: Arc::new(Block::genesis(b"driver".to_vec())),
        archive: Arc::new(NoArchive),
    })
}

/// Storage that is durable only when the test says so, and a checker that every
/// released effect's records were reported durable first.
#[derive(Default)]
struct Recorder {
    durable_at_once: bool,
    /// Payload requests not answered at once.
    requests: Vec<BlockSn>,
    answer_payloads: bool,
    records: Vec<StateChange>,
    acked: PersistSeq,
    released: Vec<Released<&'static str>>,
    events: Vec<Event>,
    problems: Vec<String>,
}

impl Recorder {
    fn acked_records(&self) -> &[StateChange] {
        &self.records[..self.acked as usize]
    }

    fn check(&mut self, e: &Released<&'static str>) {
        let acked = self.acked_records();
        let block_durable = |h: pala_types::Hash| {
            acked
                .iter()
                .any(|r| matches!(r, StateChange::Block(b) if b.hash() == h))
        };
        let problem = match e {
            Released::Broadcast(Message::Proposal(p)) if !block_durable(p.block.hash()) => {
                Some(format!("proposal {} before its block", p.block.sn()))
            }
            Released::Send {
                msg: Message::Vote(v),
                ..
            }
            | Released::Broadcast(Message::Vote(v)) => {
                let guard = acked.iter().any(|r| {
                    matches!(r, StateChange::VoteGuard { epoch, s } if *epoch == v.sn.epoch && *s >= v.sn.s)
                });
                (!guard || !block_durable(v.block_hash))
                    .then(|| format!("vote {} before its block and guard", v.sn))
            }
            Released::Finalized { block, .. } => {
                let fin = acked.iter().any(
                    |r| matches!(r, StateChange::Finalized { height, .. } if *height >= block.height()),
                );
                (!fin).then(|| format!("finalized {} before its record", block.sn()))
            }
            _ => None,
        };
        self.problems.extend(problem);
    }
}

impl Host for Recorder {
    type Effect = &'static str;

    fn persist(&mut self, seq: PersistSeq, record: StateChange) -> Durability {
        assert_eq!(
            seq,
            self.records.len() as u64 + 1,
            "persists numbered 1, 2, ..."
        );
        self.records.push(record);
        if self.durable_at_once {
            self.acked = seq;
            Durability::Durable
        } else {
            Durability::Pending
        }
    }

    fn release(&mut self, effect: Released<&'static str>) {
        self.check(&effect);
        self.released.push(effect);
    }

    fn event(&mut self, event: Event) {
        self.events.push(event);
    }

    fn payload(&mut self, now: Tick, sn: BlockSn) -> Option<Payload> {
        if self.answer_payloads {
            Some(Payload {
                txs: vec![sn.to_string().into_bytes()],
                timestamp_ms: 1_000_000 + now,
                state: pala_types::StateCommitment::NONE,
            })
        } else {
            self.requests.push(sn);
            None
        }
    }

    fn reverify(&mut self, _: NodeId, _: Message) -> Option<Verified<Message>> {
        None
    }
}

impl Recorder {
    fn finalized(&self) -> Vec<u64> {
        self.released
            .iter()
            .filter_map(|e| match e {
                Released::Finalized { block, .. } => Some(block.height()),
                _ => None,
            })
            .collect()
    }

    fn proposals(&self) -> Vec<Arc<Block>> {
        self.released
            .iter()
            .filter_map(|e| match e {
                Released::Broadcast(Message::Proposal(p)) => Some(p.block.clone()),
                _ => None,
            })
            .collect()
    }
}

/// Runs the solo node for `ms` milliseconds, 1 ms per step, calling `ack` after each.
fn run(
    d: &mut Driver<&'static str>,
    n: &mut Node,
    h: &mut Recorder,
    ms: Tick,
    mut ack: impl FnMut(Tick, &mut Driver<&'static str>, &mut Recorder),
) {
    d.handle(n, 0, Input::Start, h);
    for now in 1..=ms {
        if d.next_deadline().is_some_and(|t| t <= now) {
            d.fire_due(n, now, h);
        }
        ack(now, d, h);
    }
}

#[test]
fn nothing_is_released_before_its_records_are_durable_even_with_late_partial_acks() {
    let (mut d, mut n) = (Driver::new(), solo_node());
    let mut h = Recorder {
        answer_payloads: true,
        ..Recorder::default()
    };
    // Storage lags: every 7 ms it reports part of what it was given, and now and then
    // a stale report of an older group arrives after a newer one.
    let mut reports = Vec::new();
    run(&mut d, &mut n, &mut h, 300, |now, d, h| {
        if now % 7 == 0 {
            let upto = (h.records.len() as u64).saturating_sub(2);
            reports.push(upto);
            h.acked = h.acked.max(upto);
            d.durable(upto, h);
            if now % 21 == 0 && reports.len() > 2 {
                let stale = reports[reports.len() - 3];
                d.durable(stale, h);
            }
        }
        assert_eq!(d.gate().durable_upto(), h.acked);
    });
    assert!(h.problems.is_empty(), "{:?}", h.problems);
    assert!(d.gate().held() > 0, "the lag holds effects back");
    let before = h.finalized().len();
    let all = d.gate().issued();
    h.acked = all;
    d.durable(all, &mut h);
    assert!(d.gate().is_settled());
    assert!(h.problems.is_empty(), "{:?}", h.problems);
    let fin = h.finalized();
    assert!(
        fin.len() > before,
        "the last report releases held finalized blocks"
    );
    assert!(fin.len() >= 10, "progress despite slow storage: {fin:?}");
    assert!(
        fin.windows(2).all(|w| w[1] == w[0] + 1),
        "finalized blocks are released once each, in chain order: {fin:?}"
    );
}

#[test]
fn finalized_blocks_wait_behind_their_persist() {
    let (mut d, mut n) = (Driver::new(), solo_node());
    let mut h = Recorder {
        answer_payloads: true,
        ..Recorder::default()
    };
    run(&mut d, &mut n, &mut h, 100, |_, _, _| {});
    assert!(
        h.finalized().is_empty(),
        "nothing is durable, nothing final"
    );
    assert!(h
        .records
        .iter()
        .any(|r| matches!(r, StateChange::Finalized { .. })));
    // Make durable exactly up to the first Finalized record.
    let first = h
        .records
        .iter()
        .position(|r| matches!(r, StateChange::Finalized { .. }))
        .unwrap() as u64
        + 1;
    h.acked = first - 1;
    d.durable(first - 1, &mut h);
    assert!(h.finalized().is_empty(), "one persist short");
    h.acked = first;
    d.durable(first, &mut h);
    assert!(!h.finalized().is_empty());
    assert!(h.problems.is_empty(), "{:?}", h.problems);
}

#[test]
fn a_host_with_synchronous_storage_never_holds_anything() {
    let (mut d, mut n) = (Driver::new(), solo_node());
    let mut h = Recorder {
        durable_at_once: true,
        answer_payloads: true,
        ..Recorder::default()
    };
    run(&mut d, &mut n, &mut h, 100, |_, d, _| {
        assert!(d.gate().is_settled());
    });
    assert!(h.problems.is_empty(), "{:?}", h.problems);
    assert!(h.finalized().len() >= 5);
}

/// Steps 1 ms at a time until the node proposes; returns that time.
fn until_first_proposal(d: &mut Driver<&'static str>, n: &mut Node, h: &mut Recorder) -> Tick {
    d.handle(n, 0, Input::Start, h);
    if !h.proposals().is_empty() {
        return 0;
    }
    for now in 1..=1_000 {
        if d.next_deadline().is_some_and(|t| t <= now) {
            d.fire_due(n, now, h);
        }
        if !h.proposals().is_empty() {
            return now;
        }
    }
    panic!("no proposal within 1 s: {:?}", h.released);
}

#[test]
fn an_immediate_payload_becomes_a_proposal_in_the_same_call() {
    let (mut d, mut n) = (Driver::new(), solo_node());
    let mut h = Recorder {
        durable_at_once: true,
        answer_payloads: true,
        ..Recorder::default()
    };
    let at = until_first_proposal(&mut d, &mut n, &mut h);
    let p = h.proposals();
    assert_eq!(p.len(), 1, "one block per call: {:?}", h.released);
    let statuses_after: Vec<u64> = h
        .released
        .iter()
        .skip_while(|e| !matches!(e, Released::Broadcast(Message::Proposal(_))))
        .filter_map(|e| match e {
            Released::Broadcast(Message::Status(s)) => Some(s.head_height),
            _ => None,
        })
        .collect();
    assert!(
        statuses_after.iter().all(|h| *h >= p[0].height()),
        "no stale status after the proposal: {statuses_after:?}"
    );
    assert_eq!(p[0].txs, vec![p[0].sn().to_string().into_bytes()]);
    assert_eq!(
        p[0].header.timestamp_ms,
        1_000_000 + at,
        "the host's timestamp, asked for in this call"
    );
}

#[test]
fn a_deferred_payload_is_answered_later_through_the_kit() {
    let (mut d, mut n) = (Driver::new(), solo_node());
    let mut h = Recorder {
        durable_at_once: true,
        ..Recorder::default()
    };
    d.handle(&mut n, 0, Input::Start, &mut h);
    let at = d.next_deadline().unwrap();
    for t in at..=at + 20 {
        d.fire_due(&mut n, t, &mut h);
    }
    assert!(
        h.proposals().is_empty(),
        "nothing proposed without a payload"
    );
    let sn = h.requests.pop().expect("the core asked for a payload");
    let payload = Payload {
        txs: vec![b"late".to_vec()],
        timestamp_ms: 42,
        state: pala_types::StateCommitment::NONE,
    };
    d.payload(&mut n, at + 20, sn, payload, &mut h);
    let p = h.proposals();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].sn(), sn);
    assert_eq!(p[0].txs, vec![b"late".to_vec()]);
}

#[test]
fn host_effects_keep_their_place_behind_persists() {
    let (mut d, mut n) = (Driver::new(), solo_node());
    let mut h = Recorder {
        answer_payloads: true,
        ..Recorder::default()
    };
    d.after_persists("before anything", &mut h);
    assert!(matches!(
        h.released.last(),
        Some(Released::Host("before anything"))
    ));
    run(&mut d, &mut n, &mut h, 40, |_, _, _| {});
    assert!(d.gate().issued() > 0);
    d.after_persists("dial", &mut h);
    assert!(!matches!(h.released.last(), Some(Released::Host("dial"))));
    let held = d.gate().held();
    let all = d.gate().issued();
    h.acked = all;
    d.durable(all, &mut h);
    assert!(
        matches!(h.released.last(), Some(Released::Host("dial"))),
        "released last, after the {} effects queued before it",
        held - 1
    );
}

#[test]
fn timers_the_core_arms_fire_through_the_kit() {
    let (mut d, mut n) = (Driver::new(), solo_node());
    let mut h = Recorder::default();
    d.handle(&mut n, 0, Input::Start, &mut h);
    let cfg = CoreConfig::for_tests();
    let first = d.next_deadline().expect("the core armed timers");
    assert!(
        first > 0 && first <= cfg.sync_period_ms,
        "the host is next due at the earliest timer, {first}"
    );
    assert_eq!(
        d.timers().deadline(TimerKind::Heartbeat),
        Some(cfg.heartbeat_ms)
    );
    assert_eq!(
        d.timers().deadline(TimerKind::Sync),
        Some(cfg.sync_period_ms)
    );
    d.fire_due(&mut n, cfg.sync_period_ms - 1, &mut h);
    assert_eq!(
        d.timers().deadline(TimerKind::Sync),
        Some(cfg.sync_period_ms)
    );
    d.fire_due(&mut n, cfg.sync_period_ms, &mut h);
    assert_eq!(
        d.timers().deadline(TimerKind::Sync),
        Some(2 * cfg.sync_period_ms),
        "the core re-armed the sync poll (W-7)"
    );
}

#[test]
fn a_node_that_is_its_own_quorum_builds_one_block_in_place_per_call() {
    let (mut d, mut n) = (Driver::new(), solo_node());
    let mut h = Recorder {
        durable_at_once: true,
        answer_payloads: true,
        ..Recorder::default()
    };
    let at = until_first_proposal(&mut d, &mut n, &mut h);
    assert_eq!(h.proposals().len(), 1);
    assert_eq!(
        d.next_deadline(),
        Some(at),
        "its own vote notarized the block; the next request is due at once"
    );
    d.fire_due(&mut n, at, &mut h);
    let p = h.proposals();
    assert!(p.len() == 2 || p.len() == 3, "{}", p.len());
    assert!(p.windows(2).all(|w| w[1].height() == w[0].height() + 1));
}
