//! Joining by state sync (W-12), multi-process: a 2+3 cluster that keeps only a few dozen
//! finalized heights (so it prunes within seconds), transactions written, then nodes
//! started with empty data directories join from a snapshot: their `/kv` answers equal the
//! others' and their finalized chain matches from the snapshot on. The same with a serving
//! proposer that corrupts its chunks and with one whose offer's digest does not match the
//! header (test-only fault switch `PALA_TESTING_STATE_SYNC_FAULT`): refused, the other
//! proposer used. A node stopped while the others pruned past its finalized head notices
//! it once it runs again, and on restart sets its data aside and joins by snapshot; a
//! cluster restarting together starts from its own data (W-12f). With sessions of 20
//! blocks and a genesis schedule that changes the voters, a node joins by a snapshot of a
//! later session through the chain of committees from genesis, refusing a peer that forges
//! session proofs (W-12a).

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

/// Writes `key{k}` for every `k` in `keys` through node 0, 50 at a time.
fn write_keys(c: &Cluster, keys: std::ops::Range<usize>) {
    let value = "v".repeat(200);
    let all: Vec<usize> = keys.collect();
    for chunk in all.chunks(50) {
        let txs: Vec<KvTx> = chunk
            .iter()
            .map(|&k| KvTx {
                k: format!("key{k}"),
                v: format!("{value}{k}"),
                n: k as u64,
            })
            .collect();
        let acc = submit_txs(c.http[0], &txs).unwrap();
        assert_eq!(acc.len(), txs.len());
    }
}

/// Keeps 400 finalized heights in 64 KiB segments compacted every 300 ms, a snapshot every
/// 10 heights: a cluster of this harness prunes within seconds.
fn prune_fast(c: &Cluster) {
    for i in 0..c.configs.len() {
        edit(c, i, "storage", |t| {
            // About 8 s of blocks here: a joined node must reach its peers' chain before
            // they prune the heights it starts from.
            t.insert("retain_finalized_heights".into(), 400.into());
            t.insert("segment_kib".into(), 64.into());
            t.insert("compact_interval_ms".into(), 300.into());
        });
        edit(c, i, "state_sync", |t| {
            t.insert("chunk_bytes".into(), 4096.into());
            // A snapshot every 10 heights (about 0.2 s here) lives 100 heights: long
            // enough for a join paced at the peers' request rate.
            t.insert("keep".into(), 10.into());
            t.insert("discovery_ms".into(), 1500.into());
            t.insert("chunk_timeout_ms".into(), 2000.into());
        });
    }
}

fn kv(c: &Cluster, node: usize, k: usize) -> Option<String> {
    get_json(c.http[node], &format!("/kv/key{k}"))
        .ok()
        .filter(|(code, _)| *code == 200)
        .and_then(|(_, v)| v["value"].as_str().map(String::from))
}

/// Starts `joiner` empty and checks that it joins by snapshot; returns the seconds it
/// took until its finalized height reached the cluster's.
/// Starts nodes `0..running`, writes every key through node 0 and waits until the two
/// proposers (the serving nodes) have pruned block 1, so a joiner cannot replay the chain.
/// Values of 200 bytes: the state spans several 4 KiB chunks, and the blocks fill the
/// 64 KiB segments that compaction deletes.
fn start_write_and_prune(c: &mut Cluster, running: usize) {
    for i in 0..running {
        c.start(i);
    }
    c.wait("the committee finalizes", 60, |c| c.finalized(0) >= 5);
    write_keys(c, 0..KEYS);
    c.wait("every key written", 60, |c| {
        (0..KEYS).all(|k| kv(c, 0, k).is_some())
    });
    c.wait("the serving nodes pruned block 1", 120, |c| {
        (0..2).all(|i| get_json(c.http[i], "/block/1").is_ok_and(|(code, _)| code == 404))
    });
}

fn join_and_check(c: &mut Cluster, joiner: usize) -> f64 {
    join_and_check_env(c, joiner, &[])
}

/// [`join_and_check`] with environment variables for the joiner.
fn join_and_check_env(c: &mut Cluster, joiner: usize, env: &[(&str, &str)]) -> f64 {
    let t0 = Instant::now();
    c.start_env(joiner, env);
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
    prune_fast(&c);
    start_write_and_prune(&mut c, 5);
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

#[test]
fn a_node_behind_every_peers_retention_notices_it_and_joins_by_snapshot_on_restart() {
    let _g = serial();
    let mut c = Cluster::configure(2, 3, |_| {});
    prune_fast(&c);
    for i in 0..c.configs.len() {
        // The others drop the frozen voter's connections 2 s after it froze: what they
        // had sent until then waits in its socket buffers, and it catches up that far
        // when it runs again, no farther.
        edit(&c, i, "network", |t| {
            t.insert("read_timeout_ms".into(), 2000.into());
        });
    }
    for i in 0..5 {
        c.start(i);
    }
    c.wait("the committee finalizes", 60, |c| c.finalized(0) >= 5);
    write_keys(&c, 0..KEYS / 2);
    let late = 4;
    c.wait("the first keys reach the voter", 60, |c| {
        (0..KEYS / 2).all(|k| kv(c, late, k).is_some())
    });
    // Frozen, not stopped: its connections stay up until the others give up on them.
    c.signal(late, libc::SIGSTOP);
    let own = c.finalized(0);
    write_keys(&c, KEYS / 2..KEYS);
    c.wait("every key written", 60, |c| {
        (0..KEYS).all(|k| kv(c, 0, k).is_some())
    });
    // Well past its head and what it will read from its socket buffers (2 s of blocks).
    let gone = own + 300;
    let t_prune = Instant::now();
    c.wait("the others pruned past the frozen voter's head", 120, |c| {
        // (A height not reached yet is a 404 too.)
        (0..4).all(|i| {
            c.finalized(i) > gone
                && get_json(c.http[i], &format!("/block/{gone}")).is_ok_and(|(code, _)| code == 404)
        })
    });
    eprintln!(
        "the voter froze at or below {own}; the others pruned {gone} {:.1} s after the last write",
        t_prune.elapsed().as_secs_f64()
    );
    c.signal(late, libc::SIGCONT);
    // Running, it notices that chain sync cannot serve it.
    c.wait("the voter says it is behind", 60, |c| {
        c.metric(late, "pala_state_sync_behind") == 1.0
    });
    let log = std::fs::read_to_string(c.log_path(late)).unwrap();
    assert!(log.contains("behind every peer's retention"), "{log}");
    let (stuck, others) = (c.finalized(late), c.finalized(0));
    assert!(
        stuck < gone && others > gone,
        "stuck at {stuck}, the others at {others}"
    );
    eprintln!("the voter is stuck at {stuck} and says so; the others are at {others}");

    // Restarted, it sets its data aside and joins by snapshot.
    assert!(c.stop(late));
    let data = c.data_dir(late);
    join_and_check(&mut c, late);
    assert_eq!(c.metric(late, "pala_state_sync_set_aside_total"), 1.0);
    assert_eq!(c.metric(late, "pala_state_sync_behind"), 0.0);
    let parent = data.parent().unwrap();
    let name = data.file_name().unwrap().to_string_lossy().into_owned();
    let aside: Vec<std::path::PathBuf> = std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{name}.set-aside-"))
        })
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    let segments = std::fs::read_dir(&aside[0])
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("seg-")
        })
        .count();
    assert!(
        segments > 0,
        "the old segments are kept in {}",
        aside[0].display()
    );
    assert!(aside[0].join("app-kv.bin").exists());
    let log = std::fs::read_to_string(c.log_path(late)).unwrap();
    assert!(log.contains("Setting its data aside"), "{log}");
    assert!(log.contains(&aside[0].display().to_string()), "{log}");

    // A cluster restarting together starts from its own data, and quickly.
    let before = c.finalized(0);
    for i in 0..5 {
        assert!(c.stop(i));
    }
    let t0 = Instant::now();
    for i in 0..5 {
        c.start(i);
    }
    c.wait("the restarted cluster finalizes again", 60, |c| {
        c.finalized(0) > before + 5
    });
    eprintln!(
        "the cluster restarted together and finalized again in {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    for i in 0..5 {
        assert_eq!(c.metric(i, "pala_state_sync_joins_total"), 0.0, "node {i}");
        assert_eq!(
            c.metric(i, "pala_state_sync_set_aside_total"),
            0.0,
            "node {i}"
        );
    }
}

#[test]
fn a_node_joins_a_later_session_through_the_chain_of_committees_and_refuses_forged_proofs() {
    let _g = serial();
    // Sessions end at their 20th block (about 0.5 s here); from session 2 on three of the
    // four voters serve, so the joiner needs the schedule's committee, derived through
    // every session since genesis.
    let mut c = Cluster::configure_with_spares(2, 4, 1, |g, _| {
        g.stop_offset = 20;
        g.sessions = vec![pala_node::genesis::GenesisSession {
            proposers: g.proposers.clone(),
            voters: g.voters[..3].to_vec(),
        }];
    });
    prune_fast(&c);
    for i in 0..c.configs.len() {
        // The chain of some 30 sessions takes a few seconds at the peers' request rate:
        // the snapshot must outlive it (60 kept, 600 heights, about 12 s here).
        edit(&c, i, "state_sync", |t| {
            t.insert("keep".into(), 60.into());
        });
    }
    start_write_and_prune(&mut c, 6);
    // The joiner asks the offering peers for session proofs in id order: the first one
    // forges them.
    let id = |c: &Cluster, i: usize| c.status(i).unwrap()["id"].as_str().unwrap().to_string();
    let forger = if id(&c, 0) < id(&c, 1) { 0 } else { 1 };
    assert!(c.stop(forger));
    c.start_env(
        forger,
        &[("PALA_TESTING_STATE_SYNC_FAULT", "forge_session")],
    );
    c.wait("the forging proposer is back", 60, |c| {
        c.finalized(forger) + 2 >= c.finalized(0)
    });
    std::thread::sleep(Duration::from_secs(1));
    let joiner = 6;
    join_and_check_env(&mut c, joiner, &[("PALA_LOG_LEVEL", "info")]);
    let log = std::fs::read_to_string(c.log_path(joiner)).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("checked the chain of committees from genesis to session"))
        .unwrap_or_else(|| panic!("no chain of committees checked: {log}"));
    let session: u32 = line
        .rsplit("to session ")
        .next()
        .and_then(|t| t.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(session >= 3, "joined in session {session}: {line}");
    assert!(log.contains("refused a session proof"), "{log}");
    assert!(c.metric(joiner, "pala_state_sync_offers_refused_total") >= 1.0);
    let status = c.status(joiner).unwrap();
    eprintln!(
        "the joiner checked sessions 1..{session} and runs in {} as a {}",
        status["finalized"], status["role"]
    );
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
