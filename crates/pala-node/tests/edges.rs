//! Hostile edges of a real node (issue 13): separate `pala-node` processes on loopback,
//! attacked with raw sockets. Every wait is bounded.

mod common;

use common::*;
use pala_node::genesis::free_port_range;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// A plain HTTP/1.0 GET, independent of the node's own client code.
fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split(' ').nth(1)?.parse().ok()?;
    let body = out
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Some((code, body))
}

fn metric(addr: SocketAddr, name: &str) -> f64 {
    get(addr, "/metrics")
        .and_then(|(_, b)| pala_node::metrics::parse_value(&b, name))
        .unwrap_or(0.0)
}

/// Issue 13 row 2: ~1000 idle TCP connections to a proposer's p2p port at an open-file
/// limit of 1024 made it exit with `Too many open files`. Now the sockets beyond the
/// handshake caps are closed at once and the proposer keeps finalizing.
#[test]
fn thousand_idle_p2p_sockets_at_a_1024_fd_limit_do_not_stop_the_proposer() {
    let _g = serial();
    let mut net = Cluster::configure_plain(1, 3);
    net.start_limited(0, 1024);
    for i in 1..4 {
        net.start(i);
    }
    net.wait("finalize 3 blocks", 60, |n| n.finalized(0) >= 3);
    let target = net.p2p_addr(0);
    let mut idle = Vec::new();
    for _ in 0..1000 {
        if let Ok(s) = TcpStream::connect_timeout(&target, Duration::from_secs(1)) {
            idle.push(s);
        }
    }
    assert!(idle.len() >= 900, "only {} connections opened", idle.len());
    let h = net.finalized(0);
    // Several checkpoint periods (1 s): each checkpoint needs descriptors of its own.
    std::thread::sleep(Duration::from_secs(5));
    net.wait("finalize 10 more blocks under the idle sockets", 60, |n| {
        n.finalized(0) >= h + 10
    });
    assert!(net.running(0), "the proposer is still running");
    let log = std::fs::read_to_string(net.log_path(0)).unwrap_or_default();
    assert!(!log.contains("Too many open files"), "{log}");
    assert_eq!(get(net.http[0], "/healthz").map(|r| r.0), Some(200));
    let refused = metric(net.http[0], "pala_net_refused_per_source_total")
        + metric(net.http[0], "pala_net_refused_handshakes_total")
        + metric(net.http[0], "pala_net_refused_connections_total");
    assert!(refused >= 500.0, "refused {refused}");
    drop(idle);
}

/// Writes a copy of node `i`'s configuration with `edit` applied and returns its path.
fn variant(net: &Cluster, i: usize, name: &str, edit: impl FnOnce(&mut toml::Table)) -> PathBuf {
    let text = std::fs::read_to_string(&net.configs[i]).unwrap();
    let mut t: toml::Table = text.parse().unwrap();
    edit(&mut t);
    let path = net.configs[i].with_file_name(format!("{name}.toml"));
    std::fs::write(&path, toml::to_string(&t).unwrap()).unwrap();
    path
}

fn set(t: &mut toml::Table, section: &str, key: &str, v: toml::Value) {
    t.entry(section)
        .or_insert_with(|| toml::Value::Table(Default::default()))
        .as_table_mut()
        .unwrap()
        .insert(key.into(), v);
}

/// Issue 13 row 9: a node started on another node's data directory (another key) refuses,
/// naming both key ids, instead of running on it.
#[test]
fn data_directory_of_another_key_is_refused_naming_both_ids() {
    let _g = serial();
    let mut net = Cluster::configure_plain(1, 1);
    net.start(0);
    let dir0 = pala_node::config::Config::load(&net.configs[0])
        .unwrap()
        .node
        .data_dir;
    net.wait("the proposer binds its data directory", 30, |_| {
        dir0.join(pala_node::chain_id::FILE).exists()
    });
    let _ = net.procs[0].take().map(|mut c| {
        let _ = c.kill();
        c.wait()
    });
    let foreign = variant(&net, 1, "foreign", |t| {
        set(
            t,
            "node",
            "data_dir",
            toml::Value::String(dir0.display().to_string()),
        )
    });
    let out = Command::new(BIN)
        .args(["node", "--config"])
        .arg(&foreign)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("belongs to the node with key id"), "{err}");
}

/// Issue 13 row 10: a second instance with the proposer's key connects to it; the original
/// stops proposing and says why and what to do.
#[test]
fn proposer_that_sees_its_key_live_elsewhere_stops_and_says_what_to_do() {
    let _g = serial();
    let mut net = Cluster::configure_plain(1, 3);
    for i in 0..4 {
        net.start(i);
    }
    net.wait("finalize 3 blocks", 60, |n| n.finalized(0) >= 3);
    let ports = free_port_range(2).unwrap();
    let orig = net.p2p_addr(0);
    let clone_dir = net.dir.path().join("clone-data");
    let clone = variant(&net, 0, "clone", |t| {
        let s = toml::Value::String;
        set(t, "network", "listen", s(format!("127.0.0.1:{ports}")));
        set(t, "http", "listen", s(format!("127.0.0.1:{}", ports + 1)));
        set(t, "node", "data_dir", s(clone_dir.display().to_string()));
        set(
            t,
            "network",
            "bootnodes",
            toml::Value::Array(vec![s(orig.to_string())]),
        );
    });
    net.configs.push(clone);
    net.procs.push(None);
    net.http
        .push(format!("127.0.0.1:{}", ports + 1).parse().unwrap());
    net.start(4);
    net.wait("the original reports its key live elsewhere", 30, |n| {
        std::fs::read_to_string(n.log_path(0))
            .unwrap_or_default()
            .contains("another instance is running with this node's key")
    });
    let log = std::fs::read_to_string(net.log_path(0)).unwrap();
    assert!(log.contains("What to do"), "{log}");
    // It no longer makes blocks: the chain stops growing at the original.
    std::thread::sleep(Duration::from_secs(2));
    let h = net.finalized(0);
    std::thread::sleep(Duration::from_secs(3));
    assert!(net.finalized(0) <= h + 1, "still finalizing after the trip");
    assert!(net.running(0), "it stays up, serving reads");
}

/// Issue 13 row 14: a damaged `app-kv.bin` stops the start with what to do (delete it, the
/// state is rebuilt by replay), and nothing claims a clean stop.
#[test]
fn damaged_snapshot_is_refused_with_the_way_out_and_no_clean_stop_claim() {
    let _g = serial();
    let net = Cluster::configure_plain(1, 1);
    let dir = pala_node::config::Config::load(&net.configs[1])
        .unwrap()
        .node
        .data_dir;
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("app-kv.bin"), b"not a snapshot").unwrap();
    let out = Command::new(BIN)
        .args(["node", "--config"])
        .arg(&net.configs[1])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("app-kv.bin is damaged"), "{err}");
    assert!(
        err.contains("delete that file") && err.contains("replaying"),
        "{err}"
    );
    assert!(!err.contains("stopped cleanly"), "{err}");
    assert!(!dir.join("app-kv.tmp").exists());
}

/// Issue 13 row 10, start-up: with `consensus.doppelganger_wait_ms` the nodes sign nothing
/// for that long after start (no block is finalized), then make progress as usual.
#[test]
fn nodes_sign_nothing_during_the_doppelganger_wait_then_finalize() {
    let _g = serial();
    let mut net = Cluster::configure_plain(1, 3);
    for i in 0..4 {
        let path = variant(&net, i, &format!("wait{i}"), |t| {
            set(
                t,
                "consensus",
                "doppelganger_wait_ms",
                toml::Value::Integer(4000),
            )
        });
        net.configs[i] = path;
    }
    let t0 = Instant::now();
    for i in 0..4 {
        net.start(i);
    }
    std::thread::sleep(Duration::from_millis(3000));
    assert_eq!(net.finalized(0), 0, "a block was finalized during the wait");
    net.wait("finalize 5 blocks after the wait", 60, |n| {
        n.finalized(0) >= 5
    });
    assert!(t0.elapsed() >= Duration::from_secs(4));
    // A voter's clock messages (T_VOTER is 1.5 s here) fell into the wait and were held.
    assert!(metric(net.http[1], "pala_doppelganger_held_total") > 0.0);
}
