//! Framing (W-4): `u32 size ‖ u8 type ‖ u16 attributes ‖ payload`, little-endian, where
//! `size` counts the whole packet including the size field itself.

use crate::limits::{FrameBudget, Reservation};
use futures_lite::io::{AsyncRead, AsyncReadExt};
use pala_types::{DecodeError, Message};
use thiserror::Error;
use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Length of the fixed frame header.
pub const HEADER_LEN: usize = 7;

/// Attribute bit 4: the payload is snappy-compressed. This build never announces the
/// capability, so a peer that sets it breaks the protocol.
pub const ATTR_COMPRESSED: u16 = 1 << 4;

/// Type codes the layer delivers undecoded to its user ([`Incoming::Extension`]): messages
/// that are not consensus (state sync, W-5 group 0x3) and that the node decodes itself, so
/// the consensus core's message type stays as it is.
pub const EXTENSION_KINDS: std::ops::RangeInclusive<u8> = 0x30..=0x3F;

/// Largest step by which the payload buffer grows while a frame arrives.
pub const READ_CHUNK: usize = 1 << 20;

/// The fixed header, read without copying field by field.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct FrameHeader {
    /// Size of the whole packet, header included.
    pub size: U32,
    /// W-5 type code.
    pub kind: u8,
    /// Attribute bits.
    pub attributes: U16,
}

/// Why a frame could not be read.
#[derive(Debug, Error)]
pub enum FrameError {
    /// The socket failed or closed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The announced size is below the header size or above the maximum.
    #[error("frame size {size} outside [{HEADER_LEN}, {max}]")]
    BadSize {
        /// Announced size.
        size: u64,
        /// Largest allowed size.
        max: u64,
    },
    /// An attribute this build does not support (compression was not negotiated).
    #[error("unsupported attributes 0x{0:04x}")]
    Attributes(u16),
    /// The frame would take the shared budget of partly received frames past its cap.
    #[error("frame of {size} bytes exceeds the shared in-flight frame budget")]
    Budget {
        /// Announced payload size.
        size: usize,
    },
    /// The payload of a known type did not decode.
    #[error("undecodable {kind:#04x} payload: {error}")]
    Decode {
        /// Type code.
        kind: u8,
        /// Decoder error.
        error: DecodeError,
    },
}

/// One frame read from the wire.
#[derive(Debug)]
pub enum Incoming {
    /// A decoded message; `wire_len` is the whole frame size.
    Message {
        /// The message.
        message: Message,
        /// Bytes the frame took on the wire.
        wire_len: usize,
    },
    /// A frame of a type in [`EXTENSION_KINDS`], its payload undecoded.
    Extension {
        /// The type code.
        kind: u8,
        /// The payload.
        payload: Vec<u8>,
        /// Bytes the frame took on the wire.
        wire_len: usize,
    },
    /// A frame with a type this build does not know; it was skipped (W-5).
    Unknown {
        /// The type code.
        kind: u8,
        /// Bytes the frame took on the wire.
        wire_len: usize,
    },
}

/// Encodes `message` as one frame; `None` if its payload exceeds `max_payload`.
pub fn encode_frame(message: &Message, max_payload: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(&[0u8; HEADER_LEN]);
    message.encode_payload(&mut out);
    let payload = out.len() - HEADER_LEN;
    if payload > max_payload || out.len() > u32::MAX as usize {
        return None;
    }
    let header = FrameHeader {
        size: U32::new(out.len() as u32),
        kind: message.type_code(),
        attributes: U16::new(0),
    };
    out[..HEADER_LEN].copy_from_slice(header.as_bytes());
    Some(out)
}

/// Encodes a frame around raw payload bytes (tests and benchmarks of the framing itself).
pub fn encode_raw_frame(kind: u8, attributes: u16, payload: &[u8]) -> Vec<u8> {
    let header = FrameHeader {
        size: U32::new((HEADER_LEN + payload.len()) as u32),
        kind,
        attributes: U16::new(attributes),
    };
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(payload);
    out
}

/// Reads one frame header and returns `(type, attributes, payload length)` after the size
/// checks; the payload is not read.
pub async fn read_header<R: AsyncRead + Unpin>(
    r: &mut R,
    max_payload: usize,
) -> Result<(u8, u16, usize), FrameError> {
    let mut raw = [0u8; HEADER_LEN];
    r.read_exact(&mut raw).await?;
    let header = FrameHeader::read_from_bytes(&raw).expect("the array has the header's size");
    let size = header.size.get() as u64;
    let max = (max_payload + HEADER_LEN) as u64;
    if size < HEADER_LEN as u64 || size > max {
        return Err(FrameError::BadSize { size, max });
    }
    Ok((
        header.kind,
        header.attributes.get(),
        size as usize - HEADER_LEN,
    ))
}

/// Reads and decodes one frame. `buf` is reused between calls so that a steady stream of
/// frames does not allocate per frame; it never grows beyond `max_payload`.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max_payload: usize,
    buf: &mut Vec<u8>,
) -> Result<Incoming, FrameError> {
    read_frame_within(r, max_payload, buf, None).await
}

/// [`read_frame`] where every byte of a payload beyond its first [`READ_CHUNK`] is reserved
/// from `budget` before it is buffered, and returned once the frame is decoded. Small
/// frames never touch the budget (their memory is bounded by the number of connections),
/// so a stalled large frame cannot delay votes and statuses.
pub async fn read_frame_within<R: AsyncRead + Unpin>(
    r: &mut R,
    max_payload: usize,
    buf: &mut Vec<u8>,
    budget: Option<&FrameBudget>,
) -> Result<Incoming, FrameError> {
    let (kind, attributes, len) = read_header(r, max_payload).await?;
    buf.clear();
    let mut held = Reservation::new(budget);
    // Grow with the data actually received: a peer that announces a huge frame and then
    // trickles bytes does not get the whole allocation up front.
    while buf.len() < len {
        let start = buf.len();
        let end = start + (len - start).min(READ_CHUNK);
        if !held.grow_to(end.saturating_sub(READ_CHUNK)) {
            return Err(FrameError::Budget { size: len });
        }
        buf.resize(end, 0);
        r.read_exact(&mut buf[start..]).await?;
    }
    let wire_len = len + HEADER_LEN;
    if attributes & ATTR_COMPRESSED != 0 {
        return Err(FrameError::Attributes(attributes));
    }
    if EXTENSION_KINDS.contains(&kind) {
        return Ok(Incoming::Extension {
            kind,
            payload: std::mem::take(buf),
            wire_len,
        });
    }
    match Message::decode_payload(kind, buf) {
        Ok(message) => Ok(Incoming::Message { message, wire_len }),
        Err(DecodeError::UnknownType(kind)) => Ok(Incoming::Unknown { kind, wire_len }),
        Err(error) => Err(FrameError::Decode { kind, error }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pala_types::{BlockSn, Epoch, Status};

    fn status() -> Message {
        Message::Status(Status {
            head: BlockSn::new(1, 2, 3),
            head_height: 9,
            epoch: Epoch::new(1, 2),
            finalized: BlockSn::new(1, 1, 1),
        })
    }

    fn read(bytes: &[u8], max: usize) -> Result<Incoming, FrameError> {
        let mut cursor = futures_lite::io::Cursor::new(bytes.to_vec());
        futures_lite::future::block_on(read_frame(&mut cursor, max, &mut Vec::new()))
    }

    #[test]
    fn round_trip() {
        let f = encode_frame(&status(), 1024).unwrap();
        assert_eq!(
            u32::from_le_bytes(f[..4].try_into().unwrap()) as usize,
            f.len()
        );
        match read(&f, 1024).unwrap() {
            Incoming::Message { message, wire_len } => {
                assert_eq!(message, status());
                assert_eq!(wire_len, f.len());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn large_frames_beyond_the_shared_budget_are_refused_small_ones_pass() {
        let payload = vec![0u8; 3 * READ_CHUNK];
        let big = encode_raw_frame(0x7f, 0, &payload);
        let small = encode_raw_frame(0x7f, 0, &payload[..READ_CHUNK]);
        let read_with = |bytes: &[u8], b: &FrameBudget| {
            let mut cursor = futures_lite::io::Cursor::new(bytes.to_vec());
            futures_lite::future::block_on(read_frame_within(
                &mut cursor,
                1 << 26,
                &mut Vec::new(),
                Some(b),
            ))
        };
        // Another peer holds most of the budget with a frame it has not finished.
        let budget = FrameBudget::new(2 * READ_CHUNK + 10);
        assert!(budget.try_reserve(READ_CHUNK));
        assert!(matches!(
            read_with(&big, &budget),
            Err(FrameError::Budget { .. })
        ));
        assert_eq!(
            budget.used(),
            READ_CHUNK,
            "a refused frame returns what it took"
        );
        assert!(read_with(&small, &budget).is_ok());
        budget.release(READ_CHUNK);
        assert!(read_with(&big, &budget).is_ok());
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn extension_frames_are_delivered_undecoded() {
        let f = encode_raw_frame(0x31, 0, b"manifest bytes");
        match read(&f, 1024).unwrap() {
            Incoming::Extension {
                kind,
                payload,
                wire_len,
            } => {
                assert_eq!((kind, payload.as_slice()), (0x31, &b"manifest bytes"[..]));
                assert_eq!(wire_len, f.len());
            }
            other => panic!("{other:?}"),
        }
        // The size limit holds for them as for every frame.
        assert!(matches!(read(&f, 4), Err(FrameError::BadSize { .. })));
    }

    #[test]
    fn size_limits_and_errors() {
        let f = encode_frame(&status(), 1024).unwrap();
        assert!(encode_frame(&status(), 3).is_none());
        assert!(matches!(read(&f, 3), Err(FrameError::BadSize { .. })));
        let tiny = encode_raw_frame(0x21, 0, &[]);
        let mut bad = tiny.clone();
        bad[0] = 3;
        assert!(matches!(read(&bad, 1024), Err(FrameError::BadSize { .. })));
        assert!(matches!(read(&tiny, 1024), Err(FrameError::Decode { .. })));
        let unknown = encode_raw_frame(0x7f, 0, b"whatever");
        assert!(matches!(
            read(&unknown, 1024),
            Ok(Incoming::Unknown { kind: 0x7f, .. })
        ));
        let compressed = encode_raw_frame(0x21, ATTR_COMPRESSED, &f[HEADER_LEN..]);
        assert!(matches!(
            read(&compressed, 1024),
            Err(FrameError::Attributes(_))
        ));
        assert!(matches!(
            read(&f[..f.len() - 1], 1024),
            Err(FrameError::Io(_))
        ));
    }
}
