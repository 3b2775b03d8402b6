//! The HTTP API of a real `pala-node` process against hostile clients (issue 13, rows 1,
//! 3, 12, 13): one proposer and one voter on loopback, counted through /proc/<pid>.

mod common;

use common::*;
use pala_node::app::KvTx;
use pala_node::http::{get_json, request, send};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A 1-proposer, 1-voter testnet whose nodes are started one by one.
struct Pair(Cluster);

const PROPOSER: usize = 0;
const VOTER: usize = 1;

impl std::ops::Deref for Pair {
    type Target = Cluster;
    fn deref(&self) -> &Cluster {
        &self.0
    }
}

impl Pair {
    /// Writes the testnet; starts nothing.
    fn new() -> Pair {
        Pair(Cluster::configure_plain(1, 1))
    }

    fn start(&mut self, i: usize) {
        self.start_with(i, &[]);
    }

    /// Starts node `i` with these environment overrides and waits for its API.
    fn start_with(&mut self, i: usize, env: &[(&str, &str)]) {
        self.0.start_env(i, env);
        let addr = self.http[i];
        wait_for("the API to answer", 20, || healthz(addr));
    }

    /// Entries of `/proc/<pid>/<what>` (`task`: threads, `fd`: open files).
    fn count(&self, i: usize, what: &str) -> usize {
        std::fs::read_dir(format!("/proc/{}/{what}", self.pid(i)))
            .unwrap()
            .count()
    }
}

fn healthz(addr: SocketAddr) -> bool {
    matches!(request(addr, "GET", "/healthz", None), Ok((200, b)) if b == "ok\n")
}

/// Sends `raw` on a fresh connection and reads until the server closes.
fn raw(addr: SocketAddr, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn wrong_method_on_a_known_path_gets_405_with_allow() {
    let _g = serial();
    let mut p = Pair::new();
    p.start(VOTER);
    let r = raw(
        p.http[VOTER],
        b"DELETE /status HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 405"), "{r}");
    assert!(r.to_ascii_lowercase().contains("\r\nallow: get\r\n"), "{r}");
    let (code, _) = request(p.http[VOTER], "GET", "/tx", None).unwrap();
    assert_eq!(code, 405);
    let (code, doc) = get_json(p.http[VOTER], "/openapi.json").unwrap();
    assert_eq!(code, 200);
    assert!(doc["paths"]["/status"]["get"].is_object());
}

#[test]
fn http2_request_lines_do_not_leak_threads_or_fds_of_the_node() {
    let _g = serial();
    let mut p = Pair::new();
    p.start(VOTER);
    let (t0, fd0) = (p.count(VOTER, "task"), p.count(VOTER, "fd"));
    for _ in 0..2000 {
        let mut s = TcpStream::connect(p.http[VOTER]).unwrap();
        let _ = s.write_all(b"GET /healthz HTTP/2.0\r\nHost: t\r\n\r\n");
    }
    // (Some of the burst may meet the connection cap, even the metrics request.)
    let settled = |p: &Pair| {
        let Ok((_, t)) = request(p.http[VOTER], "GET", "/metrics", None) else {
            return false;
        };
        let v = |n| pala_node::metrics::parse_value(&t, n).unwrap_or(-1.0);
        v("pala_http_connections_total") >= 2000.0 && v("pala_http_connections_open") <= 1.0
    };
    wait_for("the burst to be served", 20, || settled(&p));
    let r = raw(p.http[VOTER], b"GET /healthz HTTP/2.0\r\nHost: t\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    let (t1, fd1) = (p.count(VOTER, "task"), p.count(VOTER, "fd"));
    // A few for the client pool and the metrics request itself.
    assert!(t1 <= t0 + 2, "threads {t0} -> {t1}");
    assert!(fd1 <= fd0 + 4, "fds {fd0} -> {fd1}");
    assert!(healthz(p.http[VOTER]));
}

fn set_soft_nofile(pid: u32, soft: u64) -> u64 {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit on our own child with local structs.
    unsafe {
        assert_eq!(
            libc::prlimit(pid as i32, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old),
            0
        );
        let new = libc::rlimit {
            rlim_cur: soft,
            rlim_max: old.rlim_max,
        };
        assert_eq!(
            libc::prlimit(pid as i32, libc::RLIMIT_NOFILE, &new, std::ptr::null_mut()),
            0
        );
    }
    old.rlim_cur
}

#[test]
fn accept_failing_with_emfile_does_not_kill_the_api() {
    let _g = serial();
    let mut p = Pair::new();
    p.start(VOTER);
    let addr = p.http[VOTER];
    // Once every stage is up (the API answers before the protocol stages start) and the
    // client's pooled connection is warm, leave the node two spare fds.
    wait_for("the consensus stage's first status", 20, || {
        get_json(addr, "/status")
            .map(|(_, v)| v["head"].as_str().is_some_and(|h| !h.is_empty()))
            .unwrap_or(false)
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(healthz(addr));
    let fds = p.count(VOTER, "fd") as u64;
    let old = set_soft_nofile(p.pid(VOTER), fds + 2);
    let held: Vec<TcpStream> = (0..8)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    set_soft_nofile(p.pid(VOTER), old);
    drop(held);
    wait_for("/healthz after the fds came back", 10, || healthz(addr));
    assert!(p.metric(VOTER, "pala_http_accept_errors_total") >= 1.0);
}

#[test]
fn client_set_forwarded_header_is_not_trusted() {
    let _g = serial();
    let mut p = Pair::new();
    p.start(PROPOSER);
    p.start(VOTER);
    wait_for("a finalized block", 60, || {
        get_json(p.http[VOTER], "/status")
            .map(|(_, v)| v["finalized_height"].as_u64().unwrap_or(0) >= 1)
            .unwrap_or(false)
    });
    let tx = KvTx {
        k: "forged".into(),
        v: "header".into(),
        n: 1,
    };
    let mut body = tx.encode();
    body.push(b'\n');
    // What a client could set: the old plain header, and a MAC made up.
    let (code, text) = send(
        p.http[VOTER],
        "POST",
        "/tx",
        &[("X-Pala-Forwarded", "1".into())],
        &body,
    )
    .unwrap();
    assert_eq!(code, 200, "{text}");
    let (code, _) = send(
        p.http[VOTER],
        "POST",
        "/tx",
        &[("X-Pala-Forward-Mac", "00".repeat(32))],
        &body,
    )
    .unwrap();
    assert_eq!(code, 401);
    let hash = serde_json::from_str::<serde_json::Value>(&text).unwrap()["accepted"][0]
        .as_str()
        .unwrap()
        .to_string();
    wait_for("the transaction to be finalized", 30, || {
        get_json(p.http[VOTER], &format!("/tx/{hash}"))
            .map(|(_, v)| v["finalized"] == true)
            .unwrap_or(false)
    });
}

#[test]
fn bearer_token_guards_submissions_but_not_reads() {
    let _g = serial();
    let mut p = Pair::new();
    p.start_with(VOTER, &[("PALA_HTTP_AUTH_TOKEN", "s3cret")]);
    let addr = p.http[VOTER];
    let tx = KvTx {
        k: "k".into(),
        v: "v".into(),
        n: 1,
    }
    .encode();
    let (code, _) = request(addr, "POST", "/tx", Some(&tx)).unwrap();
    assert_eq!(code, 401);
    let wrong = [("Authorization", "Bearer nope".to_string())];
    assert_eq!(send(addr, "POST", "/tx", &wrong, &tx).unwrap().0, 401);
    let right = [("Authorization", "Bearer s3cret".to_string())];
    let (code, body) = send(addr, "POST", "/tx", &right, &tx).unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(get_json(addr, "/status").unwrap().0, 200);
}
