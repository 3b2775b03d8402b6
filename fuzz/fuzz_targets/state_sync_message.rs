//! What a peer sends over the state-sync messages (W-12, type codes 0x30-0x35): the first
//! input byte picks the type (`0x30 + byte % 6`), the rest is the payload given to
//! `SyncMessage::decode`. A message that decodes must encode back to bytes that decode to
//! the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pala_node::state_sync::wire::SyncMessage;

fuzz_target!(|data: &[u8]| {
    let Some((&form, payload)) = data.split_first() else {
        return;
    };
    let kind = 0x30 + form % 6;
    if let Ok(m) = SyncMessage::decode(kind, payload) {
        assert_eq!(m.kind(), kind);
        let again = SyncMessage::decode(kind, &m.encode()).expect("a re-encoded message decodes");
        assert_eq!(again, m, "decode(encode(m)) != m");
    }
});
