//! The multi-process harness the pala-node integration tests share: a testnet written by
//! `pala testnet`'s own code with fast timers, one `pala-node` process per node (its own
//! process group, one log per node), bounded waits, and clean-up that keeps the directory
//! of a failed test for the post-mortem. The clusters run one at a time ([`serial`]): the
//! machines are 2-core.

// Each test binary uses its own part of the harness.
#![allow(dead_code)]

use pala_node::cli::fast_template;
use pala_node::config::Config;
use pala_node::genesis::{
    free_port_range, testnet, testnet_spares, GenesisFile, GenesisMember, TestnetParams,
};
use pala_node::http::{get_json, request};
use pala_node::metrics::parse_value;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub static SERIAL: Mutex<()> = Mutex::new(());

pub const BIN: &str = env!("CARGO_BIN_EXE_pala-node");

/// A testnet on loopback and its node processes (proposers first).
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub configs: Vec<PathBuf>,
    pub http: Vec<SocketAddr>,
    pub procs: Vec<Option<Child>>,
    pub proposers: usize,
}

pub fn free_base(n: usize) -> u16 {
    free_port_range(n).expect("free ports")
}

impl Cluster {
    pub fn new(proposers: usize, voters: usize) -> Cluster {
        Cluster::new_with(proposers, voters, |_| {})
    }

    /// Like `new`, with a change to the genesis file before the nodes start.
    pub fn new_with(
        proposers: usize,
        voters: usize,
        edit: impl FnOnce(&mut GenesisFile),
    ) -> Cluster {
        let mut c = Cluster::configure(proposers, voters, edit);
        for i in 0..c.procs.len() {
            c.start(i);
        }
        c
    }

    /// Writes the keys, genesis and configurations of a plain testnet; starts nothing.
    pub fn configure_plain(proposers: usize, voters: usize) -> Cluster {
        Cluster::configure(proposers, voters, |_| {})
    }

    /// Writes the keys, genesis and configurations without starting any node.
    pub fn configure(
        proposers: usize,
        voters: usize,
        edit: impl FnOnce(&mut GenesisFile),
    ) -> Cluster {
        Cluster::configure_with_spares(proposers, voters, 0, |g, _| edit(g))
    }

    /// Like `configure`, plus `spares` nodes in no genesis committee (the last indexes);
    /// `edit` gets their identities, for example to schedule them into a later session.
    pub fn configure_with_spares(
        proposers: usize,
        voters: usize,
        spares: usize,
        edit: impl FnOnce(&mut GenesisFile, &[GenesisMember]),
    ) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let t = test_template();
        // One range for both, so the two cannot overlap.
        let p2p = free_base(2 * proposers + voters + spares);
        let http = p2p + proposers as u16;
        let params = TestnetParams {
            voters,
            proposers,
            out: dir.path().to_path_buf(),
            network_id: 9,
            p2p_base_port: p2p,
            http_base_port: http,
            template: Some(t),
        };
        let tn = testnet(&params).unwrap();
        let sp = testnet_spares(&params, spares).unwrap();
        let gpath = dir.path().join("genesis.toml");
        let mut g = GenesisFile::read(&gpath).unwrap();
        let spare_members: Vec<GenesisMember> = sp
            .identities
            .iter()
            .map(|identity| GenesisMember {
                identity: identity.clone(),
                address: String::new(),
            })
            .collect();
        edit(&mut g, &spare_members);
        std::fs::write(&gpath, toml::to_string(&g).unwrap()).unwrap();
        let configs: Vec<PathBuf> = tn.configs.into_iter().chain(sp.configs).collect();
        let n = configs.len();
        Cluster {
            dir,
            configs,
            http: tn
                .http
                .iter()
                .chain(&sp.http)
                .map(|h| h.parse().unwrap())
                .collect(),
            procs: (0..n).map(|_| None).collect(),
            proposers,
        }
    }

    pub fn start(&mut self, i: usize) {
        self.start_env(i, &[]);
    }

    /// Starts node `i` with these environment variables (config overrides, for example).
    pub fn start_env(&mut self, i: usize, env: &[(&str, &str)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .unwrap();
        let child = Command::new(BIN)
            .process_group(0)
            .env("RUST_BACKTRACE", "0")
            .envs(env.iter().copied())
            .args(["node", "--config"])
            .arg(&self.configs[i])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.procs[i] = Some(child);
    }

    /// The pid of node `i` (started).
    pub fn pid(&self, i: usize) -> u32 {
        self.procs[i].as_ref().unwrap().id()
    }

    /// Starts node `i` with its open-file limit (soft and hard) set to `nofile`.
    pub fn start_limited(&mut self, i: usize, nofile: u64) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .unwrap();
        let mut cmd = Command::new(BIN);
        cmd.process_group(0)
            .args(["node", "--config"])
            .arg(&self.configs[i])
            .stdout(Stdio::null())
            .stderr(log);
        // SAFETY: setrlimit is async-signal-safe and only affects the child.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: nofile,
                    rlim_max: nofile,
                };
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
                Ok(())
            });
        }
        self.procs[i] = Some(cmd.spawn().unwrap());
    }

    /// Node `i`'s log (stderr).
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node{i}.log"))
    }

    /// Whether node `i` was started and has not exited.
    pub fn running(&mut self, i: usize) -> bool {
        matches!(self.procs[i].as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// The peer-to-peer address node `i` listens on (a proposer).
    pub fn p2p_addr(&self, i: usize) -> SocketAddr {
        let c = Config::load(&self.configs[i]).unwrap();
        c.listen_addr().unwrap().expect("a proposer listens")
    }

    pub fn signal(&self, i: usize, sig: i32) {
        let pid = self.procs[i].as_ref().unwrap().id() as i32;
        // SAFETY: a pid of our own child.
        unsafe { libc::kill(pid, sig) };
    }

    pub fn kill9(&mut self, i: usize) {
        self.signal(i, libc::SIGKILL);
        let _ = self.procs[i].take().unwrap().wait();
    }

    /// SIGTERM and the exit status (must be a clean 0).
    pub fn stop(&mut self, i: usize) -> bool {
        self.signal(i, libc::SIGTERM);
        let mut c = self.procs[i].take().unwrap();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(st)) = c.try_wait() {
                return st.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    pub fn status(&self, i: usize) -> Option<serde_json::Value> {
        get_json(self.http[i], "/status").ok().map(|(_, v)| v)
    }

    pub fn finalized(&self, i: usize) -> u64 {
        self.status(i)
            .and_then(|s| s["finalized_height"].as_u64())
            .unwrap_or(0)
    }

    pub fn block_hash(&self, i: usize, h: u64) -> Option<String> {
        let (code, v) = get_json(self.http[i], &format!("/block/{h}")).ok()?;
        (code == 200).then(|| v["hash"].as_str().map(String::from))?
    }

    pub fn wait(&self, what: &str, secs: u64, mut f: impl FnMut(&Cluster) -> bool) {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(secs) {
            if f(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        self.dump();
        panic!("timed out after {secs} s waiting for: {what}");
    }

    pub fn live(&self) -> Vec<usize> {
        (0..self.procs.len())
            .filter(|i| self.procs[*i].is_some())
            .collect()
    }

    pub fn dump(&self) {
        for i in 0..self.procs.len() {
            eprintln!("node {i}: {:?}", self.status(i));
            let log = std::fs::read_to_string(self.dir.path().join(format!("node{i}.log")))
                .unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let from = lines.len().saturating_sub(15);
            for l in lines
                .iter()
                .filter(|l| l.contains("panicked") || l.contains("Error"))
            {
                eprintln!("  ! {l}");
            }
            for l in &lines[from..] {
                eprintln!("  {l}");
            }
        }
    }

    pub fn metric(&self, i: usize, name: &str) -> f64 {
        let text = request(self.http[i], "GET", "/metrics", None)
            .map(|(_, b)| b)
            .unwrap_or_default();
        parse_value(&text, name).unwrap_or(0.0)
    }

    pub fn data_dir(&self, i: usize) -> PathBuf {
        let name = self.configs[i]
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        self.dir.path().join("data").join(name)
    }

    /// Every live node's finalized chain agrees with node `a` up to the lowest height.
    pub fn assert_chains_match(&self) {
        let live = self.live();
        let h = live.iter().map(|i| self.finalized(*i)).min().unwrap();
        assert!(h > 0);
        for height in 1..=h {
            let reference = self.block_hash(live[0], height);
            assert!(reference.is_some(), "block {height} missing");
            for i in &live[1..] {
                assert_eq!(
                    self.block_hash(*i, height),
                    reference,
                    "node {i} differs at {height}"
                );
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.procs.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // A failed test keeps its node logs and data for the post-mortem.
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!("kept the cluster directory {}", self.dir.path().display());
        }
    }
}

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The timers of the multi-process tests: a voter timeout short enough for failovers in
/// seconds, K = 2, 20 ms blocks, warnings only in the logs.
pub fn test_template() -> Config {
    let mut t = fast_template();
    t.consensus.voter_timeout_ms = 1500;
    t.consensus.first_proposal_delay_ms = 100;
    t.consensus.heartbeat_ms = 500;
    t.consensus.sync_period_ms = 100;
    t.consensus.k = 2;
    t.block.max_wait_ms = 20;
    t.log.level = "warn".into();
    // Snapshots for state sync every 10 heights, so every multi-process test takes some.
    t.state_sync.snapshot_interval = 10;
    t
}

/// Polls `f` every 100 ms until it holds; panics after `secs` seconds naming `what`.
pub fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out after {secs} s waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
