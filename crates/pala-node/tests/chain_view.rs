//! `GET /chain` and `/ui` of real `pala-node` processes (issue 16 items 4 and 5): the
//! tree a voter shows while blocks finalize, then the epoch change and the timeout block
//! after the primary proposer is killed.

mod common;

use common::*;
use pala_node::http::{get_json, request};
use serde_json::Value;

const PROPOSERS: usize = 2;
const VOTER: usize = PROPOSERS;

fn chain(c: &Cluster, i: usize) -> Option<Value> {
    match get_json(c.http[i], "/chain") {
        Ok((200, v)) => Some(v),
        _ => None,
    }
}

fn sn(v: &Value) -> (u64, u64, u64) {
    let n = |i: usize| v[i].as_u64().expect("an sn is three integers");
    (n(0), n(1), n(2))
}

/// What must hold of every view: blocks by height, the finalized and head blocks
/// present and marked, finalized blocks notarized, parents present unless cut off.
fn check_shape(v: &Value) {
    let blocks = v["blocks"].as_array().expect("blocks");
    assert!(!blocks.is_empty());
    let heights: Vec<u64> = blocks
        .iter()
        .map(|b| b["height"].as_u64().unwrap())
        .collect();
    assert!(
        heights.windows(2).all(|w| w[0] <= w[1]),
        "by height: {heights:?}"
    );
    let find = |r: &Value| {
        blocks
            .iter()
            .find(|b| b["sn"] == r["sn"])
            .unwrap_or_else(|| panic!("{r} is not among the blocks"))
    };
    let fin = find(&v["finalized"]);
    assert_eq!(fin["finalized"], true);
    assert_eq!(fin["height"], v["finalized"]["height"]);
    let head = find(&v["head"]);
    assert_eq!(
        (&head["freshest"], &head["notarized"]),
        (&Value::Bool(true), &Value::Bool(true))
    );
    for b in blocks {
        if b["finalized"] == true {
            assert_eq!(b["notarized"], true, "{b}");
            assert!(
                b["height"].as_u64() <= v["finalized"]["height"].as_u64(),
                "{b}"
            );
        }
        let h = b["height"].as_u64().unwrap();
        if h > heights[0] && v["blocks_left_out"] == 0 {
            assert!(
                blocks
                    .iter()
                    .any(|p| p["sn"] == b["parent"] && p["height"].as_u64() == Some(h - 1)),
                "the parent of {b} is listed"
            );
        }
        assert_eq!(b["hash"].as_str().unwrap().len(), 8);
    }
    let k = v["k"].as_u64().unwrap();
    let window = blocks.iter().filter(|b| b["k_window"] == true).count() as u64;
    assert!(
        window <= k,
        "at most K unnotarized proposals in the window (N-3)"
    );
}

#[test]
fn chain_view_and_page_follow_a_failover() {
    let _g = serial();
    let mut c = Cluster::new(PROPOSERS, 4);
    c.wait("the voter finalizes 5 blocks", 60, |c| {
        c.finalized(VOTER) >= 5
    });

    let v = chain(&c, VOTER).expect("/chain answers");
    check_shape(&v);
    assert_eq!(v["role"], "voter");
    assert_eq!(v["name"], "voter 0");
    assert_eq!(v["k"], 2, "the test template's K");
    assert_eq!(v["epoch_changes"][0]["cause"], "start");
    let proposers_seen = v["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"].as_str().unwrap().starts_with("proposer") && p["connected"] == true)
        .count();
    assert_eq!(
        proposers_seen, PROPOSERS,
        "the voter is connected to both proposers"
    );
    assert!(
        v["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["finalized"] == true)
            .count()
            > 1,
        "finalized blocks below the tree come from storage"
    );
    let first = v["finalized"]["height"].as_u64().unwrap();
    c.wait("the view's finalized height grows", 30, |c| {
        chain(c, VOTER).is_some_and(|v| v["finalized"]["height"].as_u64().unwrap() > first)
    });

    let primary = (0..PROPOSERS)
        .find(|i| chain(&c, *i).is_some_and(|v| v["producing"] == true))
        .expect("one proposer is producing");
    let other = 1 - primary;
    // Read just before the kill: the epoch may have moved since the start.
    let e = chain(&c, VOTER).unwrap()["epoch"][1].as_u64().unwrap();
    c.kill9(primary);

    // The voter's view shows the epoch change with its cause, then the new epoch's
    // timeout block on a block of an earlier epoch (E-12).
    let mut after = Value::Null;
    c.wait(
        "the voter's view shows the epoch change and the timeout block",
        40,
        |c| {
            let Some(v) = chain(c, VOTER) else {
                return false;
            };
            let l = v["epoch"][1].as_u64().unwrap();
            let logged = v["epoch_changes"][0]["epoch"][1].as_u64() == Some(l);
            let timeout = v["blocks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|b| b["timeout"] == true && sn(&b["sn"]).1 == l && sn(&b["sn"]).2 == 1);
            let done = l > e && logged && timeout;
            if done {
                after = v;
            }
            done
        },
    );
    check_shape(&after);
    let change = &after["epoch_changes"][0];
    assert_eq!(change["cause"], "clock_notarization_received", "{change}");
    // Only the surviving proposer forms clock notarizations now (E-5).
    assert_eq!(change["formed_by"], format!("proposer {other}"));
    assert!(
        change["signers"].as_u64().unwrap() >= 3,
        "a quorum of the 4 voters"
    );
    assert!(change["from"][1].as_u64().unwrap() >= e, "{change}");
    let l = after["epoch"][1].as_u64().unwrap();
    let tb = after["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["timeout"] == true && sn(&b["sn"]).1 == l)
        .unwrap();
    assert!(sn(&tb["parent"]).1 < l, "its parent is in an earlier epoch");
    let dead = after["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == format!("proposer {primary}"))
        .expect("the killed proposer is still listed");
    assert_eq!(dead["connected"], false);
    assert!(
        dead.get("status").is_none(),
        "no status of a disconnected peer"
    );

    // The new primary formed the clock notarization itself (E-5).
    let mut np = Value::Null;
    c.wait("the other proposer produces", 30, |c| {
        np = chain(c, other).unwrap_or(Value::Null);
        np["producing"] == true
    });
    check_shape(&np);
    assert_eq!(np["epoch_changes"][0]["cause"], "clock_notarization_formed");

    // The page and its assets are served with a policy that allows nothing else.
    let (code, page) = request(c.http[VOTER], "GET", "/ui", None).unwrap();
    assert_eq!(code, 200);
    assert!(page.contains("<script src=\"/ui/ui.js\""), "{page}");
    let raw = raw_get(c.http[VOTER], "/ui");
    let lower = raw.to_ascii_lowercase();
    assert!(lower.contains("content-type: text/html"), "{raw}");
    assert!(
        lower.contains("content-security-policy: default-src 'none'"),
        "{raw}"
    );
    for (path, kind) in [("/ui/ui.js", "text/javascript"), ("/ui/ui.css", "text/css")] {
        let raw = raw_get(c.http[VOTER], path);
        assert!(raw.starts_with("HTTP/1.1 200"), "{path}: {raw}");
        assert!(
            raw.to_ascii_lowercase()
                .contains(&format!("content-type: {kind}")),
            "{path}"
        );
    }
    let (code, _) = request(c.http[VOTER], "POST", "/chain", Some(b"")).unwrap();
    assert_eq!(code, 405);
}

/// A GET on a fresh connection, the whole response with its headers.
fn raw_get(addr: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}
