//! A genesis file: the TOML is parsed, then every identity line is decoded and the
//! committees are built and validated (keys, proofs of possession, addresses).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pala_node::genesis::GenesisFile;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(g) = GenesisFile::parse(text) {
        let _ = g.load();
    }
});
