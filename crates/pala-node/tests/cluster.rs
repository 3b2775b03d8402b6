//! Multi-process tests on loopback: every node is a separate `pala-node` process with real
//! TLS, real storage and the HTTP API; faults are real signals (SIGKILL, SIGSTOP).
//! The clusters run one at a time (a 2-core machine) and every wait is bounded.

mod common;

use common::*;
use pala_node::app::KvTx;
use pala_node::cli::fast_template;
use pala_node::genesis::{testnet, GenesisSession, TestnetParams};
use pala_node::http::{get_json, request, submit_txs};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn cluster_finalizes_and_every_node_serves_transactions() {
    let _g = serial();
    let mut c = Cluster::new(2, 4);
    c.wait("all nodes finalize 10 blocks", 60, |c| {
        (0..6).all(|i| c.finalized(i) >= 10)
    });
    // A transaction submitted to any node (voters forward to the proposers) is finalized
    // once and readable from every node.
    let mut hashes = Vec::new();
    for i in 0..6 {
        let tx = KvTx {
            k: format!("key{i}"),
            v: format!("value{i}"),
            n: i as u64,
        };
        let acc = submit_txs(c.http[i], &[tx]).unwrap();
        assert_eq!(acc.len(), 1, "node {i} accepted the transaction");
        hashes.push(acc[0].clone());
    }
    c.wait("every key readable from every node", 30, |c| {
        (0..6).all(|node| {
            (0..6).all(|k| {
                get_json(c.http[node], &format!("/kv/key{k}"))
                    .map(|(code, v)| code == 200 && v["value"] == format!("value{k}"))
                    .unwrap_or(false)
            })
        })
    });
    for h in &hashes {
        let (_, v) = get_json(c.http[5], &format!("/tx/{h}")).unwrap();
        assert_eq!(v["finalized"], true);
    }
    // Exactly once: each transaction appears once in the finalized chain and was applied
    // once on every node.
    // The application can be ahead of `/status` (published every 200 ms): scan up to the
    // highest block that set one of the keys.
    let top = (0..6)
        .map(|k| {
            get_json(c.http[0], &format!("/kv/key{k}")).unwrap().1["height"]
                .as_u64()
                .unwrap()
        })
        .max()
        .unwrap();
    let mut seen = vec![0; 6];
    for height in 1..=top {
        let (_, b) = get_json(c.http[0], &format!("/block/{height}")).unwrap();
        for tx in b["txs"].as_array().unwrap() {
            let t = KvTx::decode(tx.as_str().unwrap().as_bytes()).unwrap();
            seen[t.n as usize] += 1;
        }
    }
    assert_eq!(
        seen,
        vec![1; 6],
        "occurrences of each transaction in the chain"
    );
    c.wait("every node applied the six transactions", 10, |c| {
        (0..6).all(|i| c.metric(i, "pala_finalized_txs_total") == 6.0)
    });
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..6 {
        assert_eq!(
            c.metric(i, "pala_finalized_txs_total"),
            6.0,
            "node {i} applied each once"
        );
    }
    c.assert_chains_match();
    // Blocks commit to the state a few heights back, and every node agrees with them.
    let (_, b) = get_json(c.http[0], &format!("/block/{top}")).unwrap();
    let committed = b["state"]["height"].as_u64().unwrap();
    assert!(
        committed > 0 && committed < top,
        "block {top} commits to {committed}"
    );
    eprintln!("block {top} commits to the state after height {committed}");
    c.wait("every node checked commitments", 30, |c| {
        (0..6).all(|i| c.metric(i, "pala_state_commitments_checked_total") > 0.0)
    });
    for i in 0..6 {
        assert_eq!(c.metric(i, "pala_state_commitment_mismatches_total"), 0.0);
    }
    // Bad input is refused with a reason, not a crash.
    let (code, body) = request(c.http[2], "POST", "/tx", Some(b"not json")).unwrap();
    assert_eq!(code, 400, "{body}");
    let (code, _) = get_json(c.http[2], "/readyz").unwrap();
    assert_eq!(code, 200);
    let metrics = request(c.http[0], "GET", "/metrics", None).unwrap().1;
    for m in [
        "pala_peers",
        "pala_verify_batch_size_bucket",
        "pala_fsync_seconds_bucket",
        "pala_dropped_messages_total",
        "pala_handshake_failures_total",
        "pala_channel_depth",
        "pala_votes_received_total",
    ] {
        assert!(metrics.contains(m), "metric {m} missing");
    }
    // SIGTERM: clean exit 0.
    for i in (0..6).rev() {
        assert!(c.stop(i), "node {i} exits 0 on SIGTERM");
    }
    // Every node kept snapshots, and at a height they share their manifests are equal
    // byte for byte: the same state digest, chunk hashes and block hash.
    let kept: Vec<_> = (0..6)
        .map(|i| {
            let (store, warnings) =
                pala_node::state_sync::SnapshotStore::open(&c.data_dir(i).join("snapshots"), 2)
                    .unwrap();
            assert!(warnings.is_empty(), "node {i}: {warnings:?}");
            store
        })
        .collect();
    let newest = kept[0].heights()[0];
    assert_eq!(newest % 10, 0);
    let mut compared = 0;
    for store in &kept[1..] {
        for m in store.manifests() {
            if let Some(mine) = kept[0]
                .manifests()
                .into_iter()
                .find(|o| o.height == m.height)
            {
                assert_eq!(mine, m, "snapshot manifests at height {}", m.height);
                compared += 1;
            }
        }
    }
    assert!(compared >= 5, "manifests compared: {compared}");
}

/// A voter that first starts after the others finalized past genesis knows nothing but
/// genesis; it must still catch up by chain sync (it missed the first proposals for good).
#[test]
fn voter_started_after_finality_catches_up_from_genesis() {
    let _g = serial();
    let mut c = Cluster::configure(1, 3, |_| {});
    let late = 3;
    for i in (0..4).filter(|&i| i != late) {
        c.start(i);
    }
    c.wait("the others finalize 10 blocks", 60, |c| {
        (0..4).filter(|&i| i != late).all(|i| c.finalized(i) >= 10)
    });
    // From genesis through chain sync: without state sync it would join by snapshot.
    c.start_env(late, &[("PALA_STATE_SYNC_ENABLED", "false")]);
    let h = c.finalized(0);
    c.wait("the late voter catches up from genesis", 30, |c| {
        c.finalized(late) >= h + 5
    });
    c.assert_chains_match();
}

#[test]
fn killed_voter_restarts_catches_up_and_never_double_votes() {
    let _g = serial();
    let mut c = Cluster::new(2, 4);
    c.wait("finalize 5 blocks", 60, |c| {
        (0..6).all(|i| c.finalized(i) >= 5)
    });
    c.kill9(3);
    let h = c.finalized(0);
    c.wait("the others go on without the voter", 30, |c| {
        c.finalized(0) >= h + 10
    });
    c.start(3);
    c.wait("the restarted voter catches up", 45, |c| {
        c.finalized(3) >= c.finalized(0).saturating_sub(2) && c.finalized(3) > h + 10
    });
    c.wait("it keeps up", 30, |c| c.finalized(3) >= h + 20);
    c.assert_chains_match();
    // The proposers saw no second vote from anybody at an sn already voted, neither for
    // the same block nor for another.
    for p in 0..c.proposers {
        for ev in ["vote_duplicate", "vote_hash_mismatch"] {
            let name = format!("pala_core_events_total{{event=\"{ev}\"}}");
            assert_eq!(c.metric(p, &name), 0.0, "proposer {p}: {ev}");
        }
    }
    c.kill9(3);
    let st = pala_storage::Storage::open(c.data_dir(3), Default::default()).unwrap();
    assert!(
        !st.vote_guards().is_empty(),
        "the voter persisted its vote guard"
    );
}

#[test]
fn killed_primary_hands_over_after_the_voter_timeout() {
    let _g = serial();
    let mut c = Cluster::new(2, 4);
    c.wait("finalize 5 blocks", 60, |c| {
        (0..6).all(|i| c.finalized(i) >= 5)
    });
    let primary = (0..2)
        .find(|i| c.status(*i).is_some_and(|s| s["producing"] == true))
        .expect("one proposer is producing");
    let other = 1 - primary;
    let before = c.status(other).unwrap();
    let h = before["finalized_height"].as_u64().unwrap();
    let e = before["epoch"][1].as_u64().unwrap();
    c.kill9(primary);
    let t = Instant::now();
    c.wait(
        "epoch advances and finality resumes under the other proposer",
        30,
        |c| {
            c.status(other).is_some_and(|s| {
                s["epoch"][1].as_u64().unwrap_or(0) > e
                    && s["producing"] == true
                    && s["finalized_height"].as_u64().unwrap_or(0) >= h + 5
            })
        },
    );
    eprintln!("handover took {:.1} s", t.elapsed().as_secs_f64());
    c.wait("voters follow", 20, |c| {
        (2..6).all(|i| c.finalized(i) >= h + 5)
    });
    c.assert_chains_match();
}

#[test]
fn stopped_primary_is_replaced_and_rejoins_after_sigcont() {
    let _g = serial();
    let c = Cluster::new(2, 3);
    c.wait("finalize 5 blocks", 60, |c| {
        (0..5).all(|i| c.finalized(i) >= 5)
    });
    let primary = (0..2)
        .find(|i| c.status(*i).is_some_and(|s| s["producing"] == true))
        .expect("one proposer is producing");
    let other = 1 - primary;
    let h = c.finalized(other);
    // SIGSTOP: the process is frozen with its connections open (a hung node, not a
    // crashed one); the voters time out and move to the next epoch.
    c.signal(primary, libc::SIGSTOP);
    c.wait("the other proposer takes over", 30, |c| {
        c.status(other).is_some_and(|s| {
            s["producing"] == true && s["finalized_height"].as_u64().unwrap_or(0) >= h + 5
        })
    });
    c.signal(primary, libc::SIGCONT);
    c.wait("the resumed proposer follows the new epoch", 30, |c| {
        let target = c.finalized(other);
        c.status(primary).is_some_and(|s| {
            s["producing"] == false && s["finalized_height"].as_u64().unwrap_or(0) >= target
        })
    });
    c.assert_chains_match();
}

#[test]
fn torn_storage_tail_is_recovered_on_restart() {
    let _g = serial();
    let mut c = Cluster::new(1, 3);
    c.wait("finalize 10 blocks", 60, |c| {
        (0..4).all(|i| c.finalized(i) >= 10)
    });
    c.kill9(2);
    // A crash in the middle of a write: a partial record after the last batch.
    let dir = c.data_dir(2);
    let mut segs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segs.sort();
    let last = segs.last().expect("a segment file");
    let mut bytes = std::fs::read(last).unwrap();
    let len = bytes.len();
    bytes.extend_from_slice(&[0x40, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef, 7, 7, 7]);
    std::fs::write(last, &bytes).unwrap();
    let report = pala_storage::Storage::open(&dir, Default::default())
        .map(|s| s.recovery_report().is_clean())
        .unwrap();
    assert!(
        !report,
        "the torn tail is detected (segment was {len} bytes)"
    );
    c.start(2);
    let h = c.finalized(0);
    c.wait("the node with the torn tail catches up", 45, |c| {
        c.finalized(2) >= h + 5
    });
    c.assert_chains_match();
}

#[test]
fn startup_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[node]\nkey_file = \"k\"\ndata_dir = \"d\"\ngenesis_file = \"g\"\n[consensus]\nvoter_timeout_ms = \"soon\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["node", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("consensus.voter_timeout_ms"), "{err}");

    // A too-low memlock limit is reported with the fix.
    let _g = serial();
    let c = {
        let mut t = fast_template();
        t.log.level = "warn".into();
        testnet(&TestnetParams {
            voters: 1,
            proposers: 1,
            out: dir.path().join("tn"),
            network_id: 3,
            p2p_base_port: free_base(3),
            http_base_port: free_base(3) + 1,
            template: Some(t),
        })
        .unwrap()
    };
    let mut cmd = Command::new(BIN);
    cmd.args(["node", "--config"]).arg(&c.configs[1]);
    // SAFETY: setrlimit is async-signal-safe and only affects the child.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 64 * 1024,
                rlim_max: 64 * 1024,
            };
            libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim);
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("memlock") && err.contains("ulimit -l"),
        "{err}"
    );
}

/// Reconfiguration in the real node: the genesis ends every session at its 6th block and
/// hands session 2 (and, by default, the sessions after it) to three of the four voters;
/// the nodes go through the committee changes and finality continues. The voter left out
/// stops voting when session 2 begins and follows the chain from then on (the testnet's
/// proposers serve followers).
#[test]
fn genesis_schedule_changes_the_committee() {
    let _g = serial();
    let c = Cluster::new_with(2, 4, |g| {
        g.stop_offset = 6;
        g.sessions = vec![GenesisSession {
            proposers: g.proposers.clone(),
            voters: g.voters[..3].to_vec(),
        }];
    });
    let retired = 5; // proposers are nodes 0-1, voters 2-5
    let members: Vec<usize> = (0..6).filter(|&i| i != retired).collect();
    let session_of = |f: &str| -> u64 {
        f.trim_start_matches('(')
            .split(',')
            .next()
            .and_then(|x| x.parse().ok())
            .unwrap_or(0)
    };
    c.wait(
        "the members finalize blocks of session 3 or later",
        60,
        |c| {
            members.iter().all(|&i| {
                c.status(i)
                    .is_some_and(|s| s["finalized"].as_str().is_some_and(|f| session_of(f) >= 3))
            })
        },
    );
    let h = c.finalized(2);
    c.wait("finality continues", 30, |c| c.finalized(2) >= h + 10);
    c.wait("the retired voter follows the chain", 30, |c| {
        c.finalized(retired) >= h + 10
    });
    assert_eq!(c.status(retired).unwrap()["role"], "follower");
    c.assert_chains_match();
}

/// A validator whose key is in no genesis committee joins through the genesis schedule:
/// session 2 adds it as a voter and drops one of the original voters. The joiner starts as
/// a follower, syncs, votes from session 2 on, and its votes are needed once another of
/// the original voters is stopped. The dropped voter goes back to following the chain.
/// Proposer 0 admits members only (the joiner as a member-to-be of the schedule), proposer
/// 1 also serves followers (which is where the dropped voter syncs from).
#[test]
fn scheduled_joiner_follows_then_votes_and_its_votes_count() {
    let _g = serial();
    let mut c = Cluster::configure_with_spares(2, 4, 1, |g, spares| {
        g.stop_offset = 6;
        let mut voters = g.voters[..3].to_vec();
        voters.push(spares[0].clone());
        g.sessions = vec![GenesisSession {
            proposers: g.proposers.clone(),
            voters,
        }];
    });
    let text = std::fs::read_to_string(&c.configs[0]).unwrap();
    assert!(text.contains("serve_followers = true"), "{text}");
    std::fs::write(
        &c.configs[0],
        text.replace("serve_followers = true", "serve_followers = false"),
    )
    .unwrap();
    let (joiner, dropped) = (6, 5); // proposers 0-1, voters 2-5, the spare 6
    let votes_sent = "pala_core_events_total{event=\"votes_sent\"}";
    let role = |c: &Cluster, i: usize| {
        c.status(i)
            .and_then(|s| s["role"].as_str().map(String::from))
            .unwrap_or_default()
    };
    // The joiner and the proposers first: without voters session 1 cannot end, so the
    // joiner's start as a follower and its admission by both proposers are observable.
    c.start(joiner);
    c.wait("the joiner serves /status as a follower", 30, |c| {
        role(c, joiner) == "follower"
    });
    assert_eq!(c.metric(joiner, "pala_role{role=\"follower\"}"), 1.0);
    c.start(0);
    c.start(1);
    c.wait("both proposers admit the follower", 30, |c| {
        c.status(joiner)
            .is_some_and(|s| s["peers"].as_array().is_some_and(|p| p.len() == 2))
    });
    assert_eq!(role(&c, joiner), "follower");
    for i in 2..6 {
        c.start(i);
    }
    c.wait(
        "the joiner is a voter of session 2 or later and votes",
        90,
        |c| {
            role(c, joiner) == "voter"
                && c.status(joiner)
                    .is_some_and(|s| s["epoch"][0].as_u64().unwrap_or(0) >= 2)
                && c.metric(joiner, votes_sent) > 0.0
        },
    );
    assert_eq!(c.metric(joiner, "pala_role{role=\"voter\"}"), 1.0);
    c.wait("the dropped voter is a follower", 30, |c| {
        role(c, dropped) == "follower"
    });
    let h = c.finalized(0);
    c.wait("the joiner keeps up", 30, |c| c.finalized(joiner) >= h + 5);

    // Session 2 on: voters 2, 3, 4 and the joiner. With voter 2 stopped, every
    // notarization (quorum 3 of 4) needs the joiner's vote.
    assert!(c.stop(2), "voter 2 exits 0 on SIGTERM");
    // Counters are published every 200 ms: let the last ones of session 1 arrive.
    std::thread::sleep(Duration::from_millis(500));
    let h = c.finalized(0);
    let joiner_votes = c.metric(joiner, votes_sent);
    let dropped_votes = c.metric(dropped, votes_sent);
    c.wait("finality continues with the joiner's votes", 60, |c| {
        c.finalized(0) >= h + 10 && c.finalized(joiner) >= h + 10
    });
    assert!(c.metric(joiner, votes_sent) > joiner_votes);
    c.wait("the dropped voter keeps syncing", 30, |c| {
        c.finalized(dropped) >= h + 10
    });
    assert_eq!(role(&c, dropped), "follower");
    assert_eq!(
        c.metric(dropped, votes_sent),
        dropped_votes,
        "a follower does not vote"
    );
    c.assert_chains_match();
}

/// Rewrites keys of node `i`'s `[network]` section.
fn edit_network(c: &Cluster, i: usize, f: impl FnOnce(&mut toml::Table)) {
    let text = std::fs::read_to_string(&c.configs[i]).unwrap();
    let mut cfg: toml::Table = text.parse().unwrap();
    let net = cfg
        .entry("network")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    f(net.as_table_mut().unwrap());
    std::fs::write(&c.configs[i], toml::to_string(&cfg).unwrap()).unwrap();
}

/// W-2: a follower whose only way in is a `network.bootnodes` entry syncs through it. The
/// proposer admits members only, so it refuses the follower; voter 1 listens with
/// `serve_followers` (a bootnode) and is named by id and address in the follower's config.
#[test]
fn follower_syncs_through_a_configured_bootnode() {
    let _g = serial();
    let mut c = Cluster::configure_with_spares(1, 3, 1, |_, _| {});
    let (bootnode, follower) = (1, 4); // proposer 0, voters 1-3, the spare 4
    let port = free_base(1);
    edit_network(&c, 0, |n| {
        n.insert("serve_followers".into(), false.into());
    });
    edit_network(&c, bootnode, |n| {
        n.insert("listen".into(), format!("127.0.0.1:{port}").into());
        n.insert("serve_followers".into(), true.into());
    });
    for i in 0..4 {
        c.start(i);
    }
    c.wait("the committee finalizes", 30, |c| c.finalized(0) >= 5);
    // A busy node may miss one /status request; ask until it answers.
    c.wait("the bootnode answers /status", 30, |c| {
        c.status(bootnode).is_some()
    });
    let boot_id = c.status(bootnode).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    edit_network(&c, follower, |n| {
        let entry = format!("{boot_id}@127.0.0.1:{port}");
        n.insert("bootnodes".into(), vec![toml::Value::from(entry)].into());
    });
    // Chain sync through the bootnode, not a snapshot.
    c.start_env(follower, &[("PALA_STATE_SYNC_ENABLED", "false")]);
    let h = c.finalized(0);
    c.wait("the follower syncs through the bootnode", 60, |c| {
        c.finalized(follower) >= h + 5
    });
    let st = c.status(follower).unwrap();
    assert_eq!(st["role"], "follower");
    let peers: Vec<&str> = st["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    assert_eq!(
        peers,
        vec![boot_id.as_str()],
        "the proposer refuses the follower"
    );
    c.assert_chains_match();
}
