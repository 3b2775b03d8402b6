//! One storage record payload of any kind (`u8 kind ‖ payload`), as recovery decodes it
//! from a segment. A record that decodes must survive a re-encoding unchanged, since the
//! compactor copies records forward by re-encoding them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pala_storage::{Record, RecordKind};

fuzz_target!(|data: &[u8]| {
    let Some((&code, payload)) = data.split_first() else {
        return;
    };
    let Some(kind) = RecordKind::from_code(code) else {
        return;
    };
    if let Ok(r) = Record::decode_payload(kind, payload) {
        let mut again = Vec::new();
        r.encode_payload(&mut again);
        assert_eq!(Record::decode_payload(kind, &again).ok(), Some(r));
    }
});
