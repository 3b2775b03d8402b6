//! What a peer sends during the role-verification handshake, before it is authenticated:
//! its 16-byte hello, then the `u16 len ‖ blob` challenge answer, which is parsed into a
//! public key and a signature and verified.
#![no_main]

use futures_lite::future::block_on;
use futures_lite::io::Cursor;
use libfuzzer_sys::fuzz_target;
use pala_net::handshake::{parse_challenge, read_challenge, verify_challenge, Hello, HELLO_LEN};
use pala_types::insecure::InsecureTestScheme;
use pala_types::SignatureScheme;

fuzz_target!(|data: &[u8]| {
    let Some((hello, rest)) = data.split_first_chunk::<HELLO_LEN>() else {
        return;
    };
    let theirs = Hello::from_bytes(hello);
    assert_eq!(Hello::from_bytes(&theirs.to_bytes()), theirs);
    let ours = Hello {
        version: 1,
        network_id: 1,
        capabilities: 0,
    };
    let _ = ours.check(&theirs);
    let Ok(blob) = block_on(read_challenge(&mut Cursor::new(rest))) else {
        return;
    };
    if let Ok((pk, _sig)) = parse_challenge(&blob) {
        // The node's scheme parses the key (point decoding and subgroup check); the
        // signature check itself runs on the cheap test scheme, a pairing per input would
        // leave the fuzzer too slow to explore the parser.
        let _ = pala_crypto::BlsScheme::new().check_public_key(&pk);
    }
    let _ = verify_challenge(&InsecureTestScheme::new(), 1, &blob, b"challenge");
});
