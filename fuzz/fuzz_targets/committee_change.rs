//! A committee-change transaction: it arrives in a client's `/tx` body and in blocks of
//! other proposers. One that parses must parse again, to the same committee, from the
//! transaction built from it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pala_types::committee::{committee_change_tx, parse_committee_change};

fuzz_target!(|data: &[u8]| {
    if let Some(Ok(c)) = parse_committee_change(data) {
        let again = parse_committee_change(&committee_change_tx(&c));
        assert!(matches!(again, Some(Ok(ref d)) if *d == c));
    }
});
