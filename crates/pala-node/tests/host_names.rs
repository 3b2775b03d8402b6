//! A cluster configured by host name only: the genesis names the proposers as
//! `localhost:PORT`, the proposers listen on `localhost:PORT`, and a voter also lists the
//! first proposer as a bootnode by name. Every node is a separate `pala-node` process.

use pala_node::cli::fast_template;
use pala_node::genesis::{free_port_range, testnet, GenesisFile, TestnetParams};
use pala_node::http::get_json;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pala-node");

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn finalized(http: SocketAddr) -> u64 {
    get_json(http, "/status")
        .ok()
        .and_then(|(_, v)| v["finalized_height"].as_u64())
        .unwrap_or(0)
}

#[test]
fn cluster_by_host_name_finalizes() {
    let dir = tempfile::tempdir().unwrap();
    let (proposers, voters) = (2, 3);
    let mut t = fast_template();
    t.consensus.k = 2;
    t.block.max_wait_ms = 20;
    t.log.level = "warn".into();
    let p2p = free_port_range(2 * proposers + voters).expect("free ports");
    let params = TestnetParams {
        voters,
        proposers,
        out: dir.path().to_path_buf(),
        network_id: 11,
        p2p_base_port: p2p,
        http_base_port: p2p + proposers as u16,
        template: Some(t),
    };
    let tn = testnet(&params).unwrap();
    let by_name = |i: usize| format!("localhost:{}", p2p as usize + i);
    let gpath = dir.path().join("genesis.toml");
    let mut g = GenesisFile::read(&gpath).unwrap();
    for (i, p) in g.proposers.iter_mut().enumerate() {
        p.address = by_name(i);
    }
    std::fs::write(&gpath, toml::to_string(&g).unwrap()).unwrap();
    for (i, path) in tn.configs.iter().enumerate() {
        let mut cfg: toml::Table = std::fs::read_to_string(path).unwrap().parse().unwrap();
        let net = cfg["network"].as_table_mut().unwrap();
        if i < proposers {
            net.insert("listen".into(), by_name(i).into());
        }
        if i == proposers {
            // Also reached as a bootnode by name: the same entry as its genesis address.
            net.insert(
                "bootnodes".into(),
                toml::Value::Array(vec![by_name(0).into()]),
            );
        }
        std::fs::write(path, toml::to_string(&cfg).unwrap()).unwrap();
    }
    let mut procs = Procs(Vec::new());
    for (i, path) in tn.configs.iter().enumerate() {
        let log = std::fs::File::create(dir.path().join(format!("node{i}.log"))).unwrap();
        procs.0.push(
            Command::new(BIN)
                .env("RUST_BACKTRACE", "0")
                .args(["node", "--config"])
                .arg(path)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
    }
    let http: Vec<SocketAddr> = tn.http.iter().map(|h| h.parse().unwrap()).collect();
    let end = Instant::now() + Duration::from_secs(60);
    while Instant::now() < end && !http.iter().all(|h| finalized(*h) >= 5) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let heights: Vec<u64> = http.iter().map(|h| finalized(*h)).collect();
    if heights.iter().any(|h| *h < 5) {
        for i in 0..http.len() {
            let log = std::fs::read_to_string(dir.path().join(format!("node{i}.log")));
            eprintln!("--- node {i}:\n{}", log.unwrap_or_default());
        }
        panic!("not every node finalized 5 blocks by name: {heights:?}");
    }
}
