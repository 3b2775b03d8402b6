//! A node's consensus timers run on a monotonic clock; the wall clock only stamps blocks.
//!
//! Five real nodes (two proposers, three voters) run in this process, each with its own
//! network, storage and stages, and every one of them reads its wall clock from one
//! [`SteppedClock`]. The test steps that clock back 300 s and stops the primary: the
//! voters must time out on schedule, the other proposer must take over and keep
//! finalizing, and block timestamps must never go backwards. Then the clock jumps 600 s
//! forward: no timer fires early, so the epoch stays put while the chain grows.

mod common;

use common::test_template;
use pala_node::clock::SteppedClock;
use pala_node::config::Config;
use pala_node::genesis::{free_port_range, testnet, TestnetParams};
use pala_node::http::get_json;
use pala_node::runtime::RunningNode;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const VOTER_TIMEOUT_MS: u64 = 1500;

struct Nodes {
    _dir: tempfile::TempDir,
    nodes: Vec<Option<RunningNode>>,
    http: Vec<SocketAddr>,
}

impl Nodes {
    fn start(proposers: usize, voters: usize, clock: &Arc<SteppedClock>) -> Nodes {
        let dir = tempfile::tempdir().unwrap();
        let mut t = test_template();
        t.consensus.voter_timeout_ms = VOTER_TIMEOUT_MS;
        let n = proposers + voters;
        let p2p = free_port_range(proposers + n).expect("free ports");
        let tn = testnet(&TestnetParams {
            voters,
            proposers,
            out: dir.path().to_path_buf(),
            network_id: 11,
            p2p_base_port: p2p,
            http_base_port: p2p + proposers as u16,
            template: Some(t),
        })
        .unwrap();
        let nodes = tn
            .configs
            .iter()
            .map(|c| {
                let cfg = Config::load(c).unwrap();
                Some(RunningNode::start_with(cfg, clock.clone()).unwrap())
            })
            .collect();
        Nodes {
            _dir: dir,
            nodes,
            http: tn.http.iter().map(|h| h.parse().unwrap()).collect(),
        }
    }

    fn status(&self, i: usize) -> serde_json::Value {
        get_json(self.http[i], "/status")
            .map(|(_, v)| v)
            .unwrap_or_default()
    }

    fn finalized(&self, i: usize) -> u64 {
        self.status(i)["finalized_height"].as_u64().unwrap_or(0)
    }

    fn epoch(&self, i: usize) -> (u64, u64) {
        let s = self.status(i);
        (
            s["epoch"][0].as_u64().unwrap_or(0),
            s["epoch"][1].as_u64().unwrap_or(0),
        )
    }

    fn timestamp(&self, i: usize, height: u64) -> u64 {
        let (code, v) = get_json(self.http[i], &format!("/block/{height}")).unwrap();
        assert_eq!(code, 200, "block {height} at node {i}: {v}");
        v["timestamp_ms"].as_u64().unwrap()
    }

    /// Waits until node `i` has finalized `height`; returns how long it took.
    fn wait_finalized(&self, i: usize, height: u64, limit: Duration) -> Duration {
        let t0 = Instant::now();
        while self.finalized(i) < height {
            assert!(
                t0.elapsed() < limit,
                "node {i} stuck at {} (want {height}) after {limit:?}",
                self.finalized(i)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        t0.elapsed()
    }

    fn stop(&mut self, i: usize) {
        if let Some(n) = self.nodes[i].take() {
            n.shutdown().unwrap();
        }
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop(i);
        }
    }
}

#[test]
fn stepping_the_wall_clock_neither_stops_nor_fires_timers() {
    let clock = SteppedClock::new();
    let mut c = Nodes::start(2, 3, &clock);
    let voter = 2;
    c.wait_finalized(voter, 4, Duration::from_secs(30));

    // The clock of every node jumps back 300 s, and the primary stops.
    let primary = (0..2)
        .find(|i| c.status(*i)["producing"].as_bool() == Some(true))
        .unwrap_or(0);
    let other = 1 - primary;
    let before_step = c.finalized(voter);
    let stamp_before = c.timestamp(voter, before_step);
    clock.step(-300_000);
    c.stop(primary);
    let epoch_at_stop = c.epoch(voter);

    // The voters time out on schedule (one voter timeout, plus the new primary's
    // readiness and a few rounds), the other proposer takes over, and blocks finalize.
    let took = c.wait_finalized(voter, before_step + 6, Duration::from_secs(20));
    assert!(
        took < Duration::from_millis(VOTER_TIMEOUT_MS * 4 + 3000),
        "taking over after the clock stepped back took {took:?}"
    );
    assert!(
        c.epoch(voter) > epoch_at_stop,
        "the voters moved to a new epoch"
    );
    assert_eq!(c.status(other)["producing"].as_bool(), Some(true));
    let top = c.finalized(voter);
    let mut last = stamp_before;
    for h in before_step..=top {
        let ts = c.timestamp(voter, h);
        assert!(
            ts >= last,
            "block time went back at height {h}: {last} -> {ts}"
        );
        last = ts;
    }

    // 600 s forward: no timer fires early, so the voters stay in their epoch while
    // the surviving proposer keeps finalizing.
    let epoch = c.epoch(voter);
    let height = c.finalized(voter);
    clock.step(600_000);
    c.wait_finalized(voter, height + 10, Duration::from_secs(10));
    assert_eq!(
        c.epoch(voter),
        epoch,
        "a forward step fired a voter timeout"
    );
    let ts = c.timestamp(voter, c.finalized(voter));
    assert!(
        ts >= stamp_before + 290_000,
        "new blocks carry the stepped wall clock: {ts} vs {stamp_before}"
    );
}
