//! A stream of frames as read from a peer's socket: header size checks, the buffer that
//! grows with what arrives, the attribute check and the payload decoding, frame after
//! frame until the first error (a real connection is dropped there).
#![no_main]

use futures_lite::future::block_on;
use futures_lite::io::Cursor;
use libfuzzer_sys::fuzz_target;
use pala_net::frame::read_frame;

/// Small enough that the fuzzer reaches the "too large" refusal, large enough for the
/// seed frames.
const MAX_PAYLOAD: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let mut r = Cursor::new(data);
    let mut buf = Vec::new();
    block_on(async {
        while read_frame(&mut r, MAX_PAYLOAD, &mut buf).await.is_ok() {
            assert!(buf.len() <= MAX_PAYLOAD);
        }
    });
});
