//! An HTTP request as the API parses it: `method \n target \n body`. The target goes
//! through URI parsing, the route table, and per route the hash, key (percent-decoding)
//! or height parser; a `/tx` body is split into transactions and each is checked by the
//! key-value store as a submission is.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pala_node::app::KvStore;
use pala_node::http::routes::parse_request;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return;
    };
    let body = parts.next().unwrap_or_default();
    let store = KvStore::open(None)
        .expect("an in-memory store")
        .with_network(1);
    let code = parse_request(method, target, body, &store);
    assert!(matches!(code, 200 | 400 | 404 | 405), "status {code}");
});
