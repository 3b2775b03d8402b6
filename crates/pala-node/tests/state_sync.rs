//! Joining by state sync (W-12), multi-process: a 2+3 cluster that keeps only a few dozen
//! finalized heights (so it prunes within seconds), transactions written, then nodes
//! started with empty data directories join from a snapshot: their `/kv` answers equal the
//! others' and their finalized chain matches from the snapshot on. The same with a serving
//! proposer that corrupts its chunks and with one whose offer's digest does not match the
//! header (test-only fault switch `PALA_TESTING_STATE_SYNC_FAULT`): refused, the other
//! proposer used.

mod common;

use common::*;
use pala_node::app::KvTx;
use pala_node::http::{get_json, submit_txs};
use std::time::{Duration, Instant};

const KEYS: usize = 300;

fn edit(c: &Cluster, i: usize, section: &str, f: impl FnOnce(&mut toml::Table)) {
    let text = std::fs::read_to_string(&c.configs[i]).unwrap();
    let mut cfg: toml::Table = text.parse().unwrap();
    let t = cfg
        .entry(section)
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    f(t.as_table_mut().unwrap());
    std::fs::write(&c.configs[i], toml::to_string(&cfg).unwrap()).unwrap();
}

fn kv(c: &Cluster, node: usize, k: usize) -> Option<String> {
    get_json(c.http[node], &format!("/kv/key{k}"))
        .ok()
        .filter(|(code, _)| *code == 200)
        .and_then(|(_, v)| v["value"].as_str().map(String::from))
}

/// Starts `joiner` empty and checks that it joins by snapshot; returns the seconds it
/// took until its finalized height reached the cluster's.
fn join_and_check(c: &mut Cluster, joiner: usize) -> f64 {
    let t0 = Instant::now();
    c.start(joiner);
    let target = c.finalized(0);
    c.wait("the joiner catches up", 90, |c| {
        c.finalized(joiner) >= target
    });
    let took = t0.elapsed().as_secs_f64();
    assert_eq!(
        c.metric(joiner, "pala_state_sync_joins_total"),
        1.0,
        "joined by snapshot, not by replay"
    );
    let bytes = c.metric(joiner, "pala_state_sync_bytes_fetched_total");
    assert!(bytes > 0.0);
    eprintln!("node {joiner} joined in {took:.2} s, {bytes} chunk bytes fetched");
    // It never saw the early blocks: they were pruned everywhere before it started.
    let (code, _) = get_json(c.http[joiner], "/block/1").unwrap();
    assert_eq!(code, 404, "the joiner has no block 1");
    c.wait("the joiner's /kv answers equal node 0's", 30, |c| {
        (0..KEYS).all(|k| kv(c, joiner, k).is_some() && kv(c, joiner, k) == kv(c, 0, k))
    });
    // It starts at its snapshot, and its finalized chain matches node 0's after it.
    let has = |c: &Cluster, node: usize, h: u64| c.block_hash(node, h).is_some();
    // /status may run ahead of the blocks readable through /block for a moment.
    let mut low = None;
    c.wait("the joiner serves its finalized blocks", 10, |c| {
        low = (1..=c.finalized(joiner).saturating_sub(2))
            .rev()
            .take_while(|h| has(c, joiner, *h))
            .last();
        low.is_some()
    });
    let low = low.unwrap();
    assert!(low > 1, "the joiner starts at its snapshot, not at genesis");
    // Both reads may fail for a moment on this loaded machine (`finalized` is then 0).
    let mut top = 0;
    c.wait(
        "the joiner finalizes 20 blocks past its snapshot",
        30,
        |c| {
            top = c.finalized(joiner).min(c.finalized(0));
            top >= low + 20
        },
    );
    // Both keep the last 400 heights: the 20 up to `top` are on both.
    let from = top - 20;
    for h in from..=top {
        let ours = c.block_hash(joiner, h);
        assert!(ours.is_some(), "the joiner lacks {h}");
        assert_eq!(ours, c.block_hash(0, h), "joiner differs at {h}");
    }
    eprintln!("node {joiner}: starts at {low}, chain matches node 0 from {from} to {top}");
    took
}

#[test]
fn empty_nodes_join_by_snapshot_after_the_others_pruned_and_refuse_bad_peers() {
    let _g = serial();
    let mut c = Cluster::configure_with_spares(2, 3, 3, |_, _| {});
    let n = c.configs.len();
    for i in 0..n {
        edit(&c, i, "storage", |t| {
            // About 8 s of blocks here: a joined node must reach its peers' chain before
            // they prune the heights it starts from.
            t.insert("retain_finalized_heights".into(), 400.into());
            t.insert("segment_kib".into(), 64.into());
            t.insert("compact_interval_ms".into(), 300.into());
        });
        edit(&c, i, "state_sync", |t| {
            t.insert("chunk_bytes".into(), 4096.into());
            // A snapshot every 10 heights (about 0.2 s here) lives 100 heights: long
            // enough for a join paced at the peers' request rate.
            t.insert("keep".into(), 10.into());
            t.insert("discovery_ms".into(), 1500.into());
            t.insert("chunk_timeout_ms".into(), 2000.into());
        });
    }
    for i in 0..5 {
        c.start(i);
    }
    c.wait("the committee finalizes", 60, |c| c.finalized(0) >= 5);
    // Values of 200 bytes: the state spans several 4 KiB chunks, and the blocks fill the
    // 64 KiB segments that compaction deletes.
    let value = "v".repeat(200);
    for batch in 0..KEYS / 50 {
        let txs: Vec<KvTx> = (batch * 50..(batch + 1) * 50)
            .map(|k| KvTx {
                k: format!("key{k}"),
                v: format!("{value}{k}"),
                n: k as u64,
            })
            .collect();
        let acc = submit_txs(c.http[0], &txs).unwrap();
        assert_eq!(acc.len(), 50);
    }
    c.wait("every key written", 60, |c| {
        (0..KEYS).all(|k| kv(c, 0, k).is_some())
    });
    c.wait("the serving nodes pruned block 1", 120, |c| {
        (0..2).all(|i| get_json(c.http[i], "/block/1").is_ok_and(|(code, _)| code == 404))
    });
    let (joiner_ok, joiner_bad_chunk, joiner_bad_offer) = (5, 6, 7);
    let honest = join_and_check(&mut c, joiner_ok);
    assert_eq!(
        c.metric(joiner_ok, "pala_state_sync_offers_refused_total"),
        0.0
    );
    assert_eq!(
        c.metric(joiner_ok, "pala_state_sync_chunks_refused_total"),
        0.0
    );

    // (a) Proposer 1 corrupts every chunk it serves.
    assert!(c.stop(1));
    c.start_env(1, &[("PALA_TESTING_STATE_SYNC_FAULT", "corrupt_chunk")]);
    c.wait("proposer 1 is back", 60, |c| {
        c.finalized(1) + 2 >= c.finalized(0)
    });
    std::thread::sleep(Duration::from_secs(1));
    join_and_check(&mut c, joiner_bad_chunk);
    assert!(
        c.metric(joiner_bad_chunk, "pala_state_sync_chunks_refused_total") >= 1.0,
        "the corrupted chunk was refused"
    );
    let log = std::fs::read_to_string(c.log_path(joiner_bad_chunk)).unwrap();
    assert!(log.contains("refused a state-sync chunk"), "{log}");

    // (b) Proposer 1 offers a manifest whose digest is not the one its header commits to.
    assert!(c.stop(1));
    c.start_env(1, &[("PALA_TESTING_STATE_SYNC_FAULT", "bad_offer")]);
    c.wait("proposer 1 is back", 60, |c| {
        c.finalized(1) + 2 >= c.finalized(0)
    });
    std::thread::sleep(Duration::from_secs(1));
    join_and_check(&mut c, joiner_bad_offer);
    assert_eq!(
        c.metric(joiner_bad_offer, "pala_state_sync_offers_refused_total"),
        1.0,
        "the forged offer was refused"
    );
    let log = std::fs::read_to_string(c.log_path(joiner_bad_offer)).unwrap();
    assert!(log.contains("digest does not match the header"), "{log}");
    eprintln!("honest join took {honest:.2} s");
    for i in c.live() {
        assert_eq!(c.metric(i, "pala_state_commitment_mismatches_total"), 0.0);
    }
}

/// The figures of perf/state-sync.md: time to join and bytes transferred for
/// `PALA_SYNC_KEYS` keys (default 10^5) written through transactions. Not run by default
/// (minutes of load); run with
/// `cargo test --release -p pala-node --test state_sync figures -- --ignored --nocapture`.
#[test]
#[ignore]
fn figures_for_a_large_state() {
    let _g = serial();
    let keys: usize = std::env::var("PALA_SYNC_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mut c = Cluster::configure_with_spares(2, 3, 1, |_, _| {});
    for i in 0..c.configs.len() {
        edit(&c, i, "state_sync", |t| {
            t.insert("snapshot_interval".into(), 200.into());
        });
        edit(&c, i, "storage", |t| {
            t.insert("retain_finalized_heights".into(), 400.into());
            t.insert("segment_kib".into(), 1024.into());
            t.insert("compact_interval_ms".into(), 1000.into());
        });
    }
    for i in 0..5 {
        c.start(i);
    }
    c.wait("the committee finalizes", 60, |c| c.finalized(0) >= 5);
    let t0 = Instant::now();
    const BATCH: usize = 1000;
    for b in 0..keys.div_ceil(BATCH) {
        let txs: Vec<KvTx> = (b * BATCH..((b + 1) * BATCH).min(keys))
            .map(|k| KvTx {
                k: format!("key{k}"),
                v: format!("value-{k:032}"),
                n: k as u64,
            })
            .collect();
        // A full pool refuses: wait and send the batch again.
        let mut tries = 0;
        while submit_txs(c.http[b % 2], &txs).map_or(0, |a| a.len()) < txs.len() {
            tries += 1;
            assert!(tries < 600, "batch {b} refused for a minute");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    c.wait("every key written", 600, |c| kv(c, 0, keys - 1).is_some());
    let written = t0.elapsed().as_secs_f64();
    // The newest snapshot holds every key once it is taken and provable.
    let h = c.finalized(0);
    c.wait("a snapshot after the last write", 120, |c| {
        c.finalized(0) >= h + 200 + 10
    });
    let t1 = Instant::now();
    let joiner = 5;
    c.start_env(joiner, &[("PALA_LOG_LEVEL", "info")]);
    let target = c.finalized(0);
    c.wait("the joiner catches up", 600, |c| {
        c.finalized(joiner) >= target
    });
    let caught_up = t1.elapsed().as_secs_f64();
    let log = std::fs::read_to_string(c.log_path(joiner)).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("joined by state sync"))
        .expect("joined by snapshot")
        .to_string();
    let bytes = c.metric(joiner, "pala_state_sync_bytes_fetched_total");
    for k in [0, keys / 2, keys - 1] {
        assert_eq!(kv(&c, joiner, k), kv(&c, 0, k), "key{k}");
    }
    eprintln!(
        "FIGURES keys={keys} written_in_s={written:.1} join_to_caught_up_s={caught_up:.2} \
         chunk_bytes={bytes}"
    );
    eprintln!("FIGURES {line}");
}
