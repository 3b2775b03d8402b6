//! A transaction as a client submits it, checked by the key-value store the way the
//! mempool does (a committee change or a key-value assignment). A key-value transaction
//! that parses must parse again from its canonical encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pala_node::app::{Application, KvStore, KvTx};

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = KvTx::decode(data) {
        assert_eq!(KvTx::decode(&t.encode()).as_ref(), Ok(&t));
    }
    let store = KvStore::open(None)
        .expect("an in-memory store")
        .with_network(1);
    let _ = store.check_tx(data);
});
