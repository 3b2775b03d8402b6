//! A rolling restart of a 2 + 4 cluster, as docs/operators.md tells an operator to upgrade:
//! one node at a time, each down for a few seconds and started once the previous one
//! answers `/readyz`, voters first, then the standby proposer, the primary last. A steady trickle of transactions
//! runs throughout; a sampler reads every node's finalized height every 50 ms. The longest
//! finality pause of the whole restart must not exceed a plain primary failover (measured
//! in the same test, on the same cluster) by more than a second (issue 15 item 5): the
//! restart of the primary is a failover, every other restart must cost nothing.

mod common;

use common::*;
use pala_node::app::KvTx;
use pala_node::http::{get_json, submit_txs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PROPOSERS: usize = 2;
const VOTERS: usize = 4;
const NODES: usize = PROPOSERS + VOTERS;
/// How long an upgraded node stays down (swapping the binary, pulling an image): longer
/// than pala-net's 5 s burst of quick redials, after which a dialer falls back to its
/// reconnect period, so the test sees the redial policy for proposers at work.
const DOWNTIME: Duration = Duration::from_secs(6);
/// No node is being restarted.
const NONE: usize = usize::MAX;
/// A restarted node listens this long for its own key elsewhere before it signs: short,
/// but long enough that a `/readyz` which ignored the wait would be caught.
const DOPPELGANGER_WAIT: (&str, &str) = ("PALA_CONSENSUS_DOPPELGANGER_WAIT_MS", "1000");

/// The highest finalized height any node reported, over time.
struct Samples {
    points: Mutex<Vec<(Instant, u64)>>,
}

impl Samples {
    fn record(&self, t: Instant, h: u64) {
        self.points.lock().unwrap().push((t, h));
    }

    /// The longest time in `[from, to]` without a new highest finalized height.
    fn longest_pause(&self, from: Instant, to: Instant) -> Duration {
        let points = self.points.lock().unwrap();
        let mut best = points
            .iter()
            .filter(|(t, _)| *t <= from)
            .map(|(_, h)| *h)
            .max()
            .unwrap_or(0);
        let (mut last_rise, mut longest) = (from, Duration::ZERO);
        for &(t, h) in points.iter().filter(|(t, _)| *t > from && *t <= to) {
            if h > best {
                best = h;
                longest = longest.max(t - last_rise);
                last_rise = t;
            }
        }
        longest.max(to.saturating_duration_since(last_rise))
    }

    fn highest(&self) -> u64 {
        let points = self.points.lock().unwrap();
        points.iter().map(|(_, h)| *h).max().unwrap_or(0)
    }
}

/// The node ids (hex) of nodes `range`.
fn ids(c: &Cluster, range: std::ops::Range<usize>) -> Vec<String> {
    range
        .map(|i| c.status(i).unwrap()["id"].as_str().unwrap().to_string())
        .collect()
}

fn ready(c: &Cluster, i: usize) -> bool {
    get_json(c.http[i], "/readyz").is_ok_and(|(code, _)| code == 200)
}

/// The primary proposer and its epoch, once the proposers agree on both: the one
/// producing, the other not, the same epoch, and the same answer twice 300 ms apart (the
/// status is a snapshot published every 200 ms).
fn find_primary(c: &Cluster) -> (usize, u64) {
    let read = |c: &Cluster| {
        let st: Vec<_> = (0..PROPOSERS).map(|i| c.status(i)).collect();
        let st: Option<Vec<_>> = st.into_iter().collect();
        let st = st?;
        let producing: Vec<usize> = (0..PROPOSERS)
            .filter(|i| st[*i]["producing"] == true)
            .collect();
        let epochs: Vec<u64> = st.iter().filter_map(|s| s["epoch"][1].as_u64()).collect();
        (producing.len() == 1 && epochs.len() == PROPOSERS && epochs[0] == epochs[1])
            .then(|| (producing[0], epochs[0]))
    };
    let mut found = None;
    c.wait("the proposers agree on the primary", 60, |c| {
        let first = read(c);
        std::thread::sleep(Duration::from_millis(300));
        found = first.filter(|f| read(c) == Some(*f));
        found.is_some()
    });
    found.unwrap()
}

fn epoch_of(c: &Cluster, i: usize) -> u64 {
    c.status(i)
        .and_then(|s| s["epoch"][1].as_u64())
        .unwrap_or(0)
}

/// Whether the transaction that set key `rolling{n}` is applied on node `i` (by the
/// key, not `/tx/<hash>`: hashes are remembered for the deduplication window only, and
/// the run is longer than that).
fn applied_on(c: &Cluster, i: usize, n: u64) -> bool {
    get_json(c.http[i], &format!("/kv/rolling{n}"))
        .is_ok_and(|(code, v)| code == 200 && v["value"] == format!("v{n}"))
}

#[test]
fn rolling_restart_pauses_finality_no_longer_than_a_failover() {
    let _g = serial();
    let c = Arc::new(Mutex::new(Cluster::new(PROPOSERS, VOTERS)));
    let http = c.lock().unwrap().http.clone();
    {
        let c = c.lock().unwrap();
        c.wait("every node finalizes 5 blocks and is ready", 90, |c| {
            (0..NODES).all(|i| c.finalized(i) >= 5 && ready(c, i))
        });
    }
    let voter_ids = ids(&c.lock().unwrap(), PROPOSERS..NODES);
    let done = Arc::new(AtomicBool::new(false));

    // The sampler: every node's /status every 50 ms, the highest finalized height kept.
    let samples = Arc::new(Samples {
        points: Mutex::new(Vec::new()),
    });
    let sampler = {
        let (samples, done, http) = (samples.clone(), done.clone(), http.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let h = http
                    .iter()
                    .filter_map(|a| get_json(*a, "/status").ok())
                    .filter_map(|(_, v)| v["finalized_height"].as_u64())
                    .max();
                if let Some(h) = h {
                    samples.record(Instant::now(), h);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };

    // The trickle: one transaction every 100 ms to a voter (which forwards it to both
    // proposers), never to the node being restarted; the lock is held over a submission,
    // so taking it means none is in flight to that node.
    let restarting = Arc::new(Mutex::new(NONE));
    // The keys of the accepted transactions.
    let accepted: Arc<Mutex<Vec<u64>>> = Arc::default();
    let submitted = Arc::new(AtomicUsize::new(0));
    let trickle = {
        let (restarting, accepted, submitted, done, http) = (
            restarting.clone(),
            accepted.clone(),
            submitted.clone(),
            done.clone(),
            http.clone(),
        );
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !done.load(Ordering::Relaxed) {
                let node = PROPOSERS + (n as usize % VOTERS);
                {
                    let r = restarting.lock().unwrap();
                    if *r != node {
                        let tx = KvTx {
                            k: format!("rolling{n}"),
                            v: format!("v{n}"),
                            n,
                        };
                        submitted.fetch_add(1, Ordering::Relaxed);
                        if submit_txs(http[node], &[tx]).is_ok_and(|h| h.len() == 1) {
                            accepted.lock().unwrap().push(n);
                        }
                    }
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    // Takes node `i` out of the trickle and waits until every transaction accepted so far
    // is final (a mempool does not outlive its process, so a transaction pooled only on
    // the node would be lost with it), then stops it cleanly.
    let seen_final = Mutex::new(std::collections::HashSet::new());
    let stop = |i: usize| {
        *restarting.lock().unwrap() = i;
        let so_far: Vec<u64> = accepted.lock().unwrap().clone();
        let other = if i == 0 { 1 } else { 0 };
        let mut cluster = c.lock().unwrap();
        cluster.wait("the transactions accepted so far are final", 60, |c| {
            let mut seen = seen_final.lock().unwrap();
            for n in &so_far {
                if !seen.contains(n) && applied_on(c, other, *n) {
                    seen.insert(*n);
                }
            }
            so_far.iter().all(|n| seen.contains(n))
        });
        assert!(cluster.stop(i), "node {i} exits cleanly");
    };

    // A plain failover first: the primary stops, the voters time out and move to the
    // other proposer. Its pause is the yardstick.
    std::thread::sleep(Duration::from_secs(2));
    let (primary, epoch) = find_primary(&c.lock().unwrap());
    let h = samples.highest();
    let t0 = Instant::now();
    stop(primary);
    {
        let c = c.lock().unwrap();
        c.wait(
            "a new epoch, and finality under the other proposer",
            60,
            |c| epoch_of(c, 1 - primary) > epoch && samples.highest() >= h + 10,
        );
    }
    let failover = samples.longest_pause(t0, Instant::now());
    std::thread::sleep(DOWNTIME);
    {
        let mut c = c.lock().unwrap();
        c.start_env(primary, &[DOPPELGANGER_WAIT]);
        c.wait("the stopped primary is back and ready", 90, |c| {
            ready(c, primary)
        });
    }
    *restarting.lock().unwrap() = NONE;
    std::thread::sleep(Duration::from_secs(2));

    // The rolling restart: voters, then the standby proposer, the primary last.
    let (primary, _) = find_primary(&c.lock().unwrap());
    let standby = 1 - primary;
    let order: Vec<usize> = (PROPOSERS..NODES).chain([standby, primary]).collect();
    let start = Instant::now();
    let mut to_ready = Vec::new();
    for &i in &order {
        stop(i);
        std::thread::sleep(DOWNTIME);
        let t = Instant::now();
        let mut c = c.lock().unwrap();
        c.start_env(i, &[DOPPELGANGER_WAIT]);
        c.wait("the restarted node is ready", 90, |c| ready(c, i));
        to_ready.push((i, t.elapsed()));
        let st = c.status(i).unwrap();
        if i < PROPOSERS {
            // Ready means reachable: a quorum (3 of 4) of the voters is connected to it.
            let peers: Vec<&str> = st["peers"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|p| p.as_str())
                .collect();
            let voters = voter_ids
                .iter()
                .filter(|v| peers.contains(&v.as_str()))
                .count();
            assert!(voters >= 3, "proposer {i} ready with {voters} voters: {st}");
        }
        drop(c);
        *restarting.lock().unwrap() = NONE;
    }
    let end = Instant::now();
    // The last restart's effect on finality ends once the chain moves again.
    let h = samples.highest();
    c.lock()
        .unwrap()
        .wait("finality continues after the restart", 60, |_| {
            samples.highest() >= h + 10
        });
    let rolling = samples.longest_pause(start, end.max(Instant::now()));
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    trickle.join().unwrap();

    eprintln!(
        "rolling restart of {NODES} nodes in {:.1} s; time to /readyz: {}",
        (end - start).as_secs_f64(),
        to_ready
            .iter()
            .map(|(i, d)| format!("node {i} {:.1} s", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", "),
    );
    eprintln!(
        "longest finality pause: rolling restart {:.2} s, plain primary failover {:.2} s",
        rolling.as_secs_f64(),
        failover.as_secs_f64()
    );
    assert!(
        rolling <= failover + Duration::from_secs(1),
        "the rolling restart paused finality {rolling:?}, a failover {failover:?}"
    );
    let c = c.lock().unwrap();
    let accepted: Vec<u64> = accepted.lock().unwrap().clone();
    c.wait(
        "every accepted transaction is applied on every node",
        60,
        |c| (0..NODES).all(|i| accepted.iter().all(|n| applied_on(c, i, *n))),
    );
    c.assert_chains_match();
    eprintln!(
        "{} of {} transactions accepted, all applied on every node",
        accepted.len(),
        submitted.load(Ordering::Relaxed)
    );
}
