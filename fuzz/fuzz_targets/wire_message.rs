//! A wire message as a peer sends it (`u8 type ‖ payload`). Beyond "never panics", a
//! message that decodes must encode back to bytes that decode to the same message:
//! signatures and hashes are computed over re-encodings, so a lossy decoder would let
//! two peers disagree about what was signed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pala_types::{Decode, Encode, Message};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::from_bytes(data) {
        let again = Message::from_bytes(&m.to_bytes()).expect("a re-encoded message decodes");
        assert_eq!(again, m, "decode(encode(m)) != m");
    }
});
