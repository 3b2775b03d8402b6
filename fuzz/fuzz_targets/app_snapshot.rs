//! The key-value store's snapshot file (`app-kv.bin`). The first input byte picks the
//! form: odd, the rest is the file as is; even, the rest is a snapshot body to which the
//! target appends its correct checksum, since random bytes never match a BLAKE3 sum and
//! the fuzzer would otherwise never get past it to the decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pala_node::app::decode_snapshot;
use pala_types::Hash;

fuzz_target!(|data: &[u8]| {
    let Some((&form, rest)) = data.split_first() else {
        return;
    };
    if form & 1 == 1 {
        let _ = decode_snapshot(rest);
    } else {
        let mut file = rest.to_vec();
        file.extend_from_slice(&Hash::of(rest).0);
        let _ = decode_snapshot(&file);
    }
});
