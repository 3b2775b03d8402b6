//! On-disk layout of a segment file and the scanner that validates it.
//!
//! ```text
//! segment := header(40) batch* padding?
//! header  := magic "PALASEG\0" ‖ u32 version ‖ u32 flags ‖ u64 id ‖ u64 nonce ‖ u32 reserved ‖ u32 crc
//! batch   := record* commit
//! record  := u32 len ‖ u8 type ‖ u32 crc ‖ payload[len]
//! commit  := record of type 0xC0 with payload u64 batch_seq ‖ u32 records ‖ u32 batch_bytes
//! ```
//! All integers are little-endian. A record's crc32c covers `len ‖ type ‖ payload` and is
//! seeded from the segment's random nonce, so bytes that merely *contain* a well-formed
//! record (a transaction carrying a crafted one, an old segment's bytes) do not verify in
//! this segment. A batch counts only once its commit marker verifies: the marker names how
//! many records and bytes precede it, so a batch whose pages reached the disk out of order
//! (a hole in the middle) is recognised as torn, which is what makes a batch atomic.
//!
//! `padding` is zero bytes from the end of the last batch to the next 4 KiB boundary, and
//! only there: the DMA writer (`O_DIRECT`) writes whole aligned blocks, so the file ends at
//! a block boundary while the log's logical length ends at its last commit marker. Its next
//! batch rewrites that partial block, committed prefix unchanged, so a torn rewrite can
//! only lose the new batch. Files written through the page cache have no padding; an
//! older reader sees padding as a torn tail and cuts it, which loses nothing. The format
//! version is unchanged (1).

use crate::record::{RecordKind, COMMIT_KIND};
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Magic bytes at the start of every segment.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"PALASEG\0";
/// Layout version written in segment headers (the schema version of P-1). 2: block
/// headers carry the state commitment (protocol version 2), so blocks stored by version
/// 1 cannot be decoded.
pub const SCHEMA_VERSION: u32 = 2;
/// Size of a segment header.
pub(crate) const SEGMENT_HEADER_LEN: usize = core::mem::size_of::<SegmentHeader>();
/// Size of a record header.
pub(crate) const RECORD_HEADER_LEN: usize = core::mem::size_of::<RecordHeader>();
/// Payload size of a commit marker.
pub(crate) const COMMIT_PAYLOAD_LEN: usize = 16;
/// Size of a whole commit marker record.
pub(crate) const COMMIT_RECORD_LEN: usize = RECORD_HEADER_LEN + COMMIT_PAYLOAD_LEN;

/// Fixed segment header.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy)]
#[repr(C)]
pub(crate) struct SegmentHeader {
    magic: [u8; 8],
    version: U32,
    flags: U32,
    id: U64,
    nonce: U64,
    reserved: U32,
    crc: U32,
}

/// Fixed record header, read in place from the map.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy)]
#[repr(C)]
pub(crate) struct RecordHeader {
    len: U32,
    kind: u8,
    crc: U32,
}

impl SegmentHeader {
    pub fn new(id: u64, nonce: u64) -> SegmentHeader {
        let mut h = SegmentHeader {
            magic: SEGMENT_MAGIC,
            version: U32::new(SCHEMA_VERSION),
            flags: U32::new(0),
            id: U64::new(id),
            nonce: U64::new(nonce),
            reserved: U32::new(0),
            crc: U32::new(0),
        };
        h.crc = U32::new(h.compute_crc());
        h
    }

    fn compute_crc(&self) -> u32 {
        crc32c::crc32c(&self.as_bytes()[..SEGMENT_HEADER_LEN - 4])
    }

    pub fn bytes(&self) -> &[u8] {
        self.as_bytes()
    }

    /// Parses and checks a header; `Err` says why it is unusable.
    pub fn parse(bytes: &[u8], expected_id: u64) -> Result<SegmentHeader, String> {
        let (h, _) = SegmentHeader::read_from_prefix(bytes).map_err(|_| {
            format!(
                "file is {} bytes, shorter than the {SEGMENT_HEADER_LEN}-byte header",
                bytes.len()
            )
        })?;
        if h.magic != SEGMENT_MAGIC {
            return Err("bad magic (not a pala segment)".into());
        }
        if h.crc.get() != h.compute_crc() {
            return Err("header checksum mismatch".into());
        }
        if h.version.get() != SCHEMA_VERSION {
            return Err(format!(
                "schema version {} is not supported (this build reads {SCHEMA_VERSION}){}",
                h.version.get(),
                if h.version.get() < SCHEMA_VERSION {
                    ": the data directory was written by an older pala whose blocks this \
                     version cannot read; start this node with an empty data directory and \
                     let it sync, or run the older version"
                } else {
                    ": the data directory was written by a newer pala"
                }
            ));
        }
        if h.id.get() != expected_id {
            return Err(format!(
                "header names segment {} but the file name says {expected_id}",
                h.id.get()
            ));
        }
        Ok(h)
    }

    pub fn nonce(&self) -> u64 {
        self.nonce.get()
    }
}

/// The crc seed of a segment, derived from its nonce.
pub(crate) fn crc_seed(nonce: u64) -> u32 {
    crc32c::crc32c(&nonce.to_le_bytes())
}

/// Appends one framed record to `out`.
pub(crate) fn put_record(out: &mut Vec<u8>, seed: u32, kind: u8, payload: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[0u8; RECORD_HEADER_LEN]);
    out.extend_from_slice(payload);
    finish_record(out, start, payload.len(), seed, kind);
}

/// Fills in the header of a record whose `len`-byte payload already follows a
/// `RECORD_HEADER_LEN` placeholder at `start`: lets callers encode straight into the
/// batch buffer without an intermediate copy, and re-seal a staged batch for a new segment.
pub(crate) fn finish_record(out: &mut [u8], start: usize, len: usize, seed: u32, kind: u8) {
    let payload = &out[start + RECORD_HEADER_LEN..start + RECORD_HEADER_LEN + len];
    let len = len as u32;
    let mut head = [0u8; 5];
    head[..4].copy_from_slice(&len.to_le_bytes());
    head[4] = kind;
    let crc = crc32c::crc32c_append(crc32c::crc32c_append(seed, &head), payload);
    let h = RecordHeader {
        len: U32::new(len),
        kind,
        crc: U32::new(crc),
    };
    out[start..start + RECORD_HEADER_LEN].copy_from_slice(h.as_bytes());
}

/// Commit marker payload.
pub(crate) fn commit_payload(
    batch_seq: u64,
    records: u32,
    batch_bytes: u32,
) -> [u8; COMMIT_PAYLOAD_LEN] {
    let mut p = [0u8; COMMIT_PAYLOAD_LEN];
    p[..8].copy_from_slice(&batch_seq.to_le_bytes());
    p[8..12].copy_from_slice(&records.to_le_bytes());
    p[12..].copy_from_slice(&batch_bytes.to_le_bytes());
    p
}

/// A record found in a segment.
#[derive(Copy, Clone, Debug)]
pub(crate) struct RawRecord {
    /// Offset of the record header.
    pub offset: usize,
    /// Type code.
    pub kind: u8,
    /// Offset of the payload.
    pub payload_off: usize,
    /// Payload length.
    pub len: usize,
}

impl RawRecord {
    pub fn end(&self) -> usize {
        self.payload_off + self.len
    }
}

/// Parses and verifies the record at `pos`.
pub(crate) fn parse_record(
    buf: &[u8],
    pos: usize,
    seed: u32,
    max_len: usize,
) -> Result<RawRecord, String> {
    let rest = buf.get(pos..).unwrap_or(&[]);
    let (h, _) = RecordHeader::read_from_prefix(rest).map_err(|_| {
        format!(
            "only {} bytes left, a record header needs {RECORD_HEADER_LEN}",
            rest.len()
        )
    })?;
    let len = h.len.get() as usize;
    if len > max_len {
        return Err(format!("impossible record length {len} (limit {max_len})"));
    }
    if len > rest.len() - RECORD_HEADER_LEN {
        return Err(format!(
            "record length {len} runs past the end of the file ({} bytes left)",
            rest.len() - RECORD_HEADER_LEN
        ));
    }
    let payload_off = pos + RECORD_HEADER_LEN;
    let crc = crc32c::crc32c_append(
        crc32c::crc32c_append(seed, &rest[..5]),
        &buf[payload_off..payload_off + len],
    );
    if crc != h.crc.get() {
        return Err(format!(
            "checksum mismatch (stored {:08x}, computed {crc:08x})",
            h.crc.get()
        ));
    }
    Ok(RawRecord {
        offset: pos,
        kind: h.kind,
        payload_off,
        len,
    })
}

/// A decoded commit marker.
#[derive(Copy, Clone, Debug)]
struct Commit {
    seq: u64,
    records: u32,
    batch_bytes: u32,
}

fn parse_commit(buf: &[u8], rec: &RawRecord) -> Option<Commit> {
    if rec.kind != COMMIT_KIND || rec.len != COMMIT_PAYLOAD_LEN {
        return None;
    }
    let p = &buf[rec.payload_off..rec.end()];
    Some(Commit {
        seq: u64::from_le_bytes(p[..8].try_into().ok()?),
        records: u32::from_le_bytes(p[8..12].try_into().ok()?),
        batch_bytes: u32::from_le_bytes(p[12..16].try_into().ok()?),
    })
}

/// Where and why a segment stops being valid.
#[derive(Clone, Debug)]
pub(crate) struct Damage {
    /// Offset of the first byte that is not part of a committed batch.
    pub committed_end: usize,
    /// Offset of the first record that failed to verify (or of the missing commit marker).
    pub bad_offset: usize,
    /// Why.
    pub reason: String,
    /// Records after `committed_end` that verified on their own but whose batch never
    /// committed (dropped with the tail).
    pub uncommitted_records: usize,
    /// True if a complete, verifiable batch exists after the damage: the damage is then
    /// not a torn tail but corruption in the middle.
    pub valid_data_after: bool,
}

/// Result of scanning one segment.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Records of committed batches, in order (commit markers excluded).
    pub records: Vec<RawRecord>,
    /// Number of committed batches.
    pub batches: u64,
    /// Sequence number of the last committed batch.
    pub last_batch_seq: Option<u64>,
    /// Set when the segment does not end with a committed batch.
    pub damage: Option<Damage>,
    /// Logical end: the end of the last committed batch, where the next batch goes. Equal
    /// to the file length, except after zero padding to the block boundary (DMA writes).
    pub end: usize,
}

/// Unit of the DMA writer's writes (`O_DIRECT` alignment, page size).
pub(crate) const DMA_BLOCK: usize = 4096;

/// True if `buf[from..]` is what a DMA writer leaves after its last batch: zeros up to the
/// next [`DMA_BLOCK`] boundary and nothing more. A torn write can also leave zeros, but
/// then nothing after `from` was ever acknowledged, so reading it as padding loses nothing;
/// zeros running past that boundary are still reported as a torn tail.
pub(crate) fn is_block_padding(buf: &[u8], from: usize) -> bool {
    from < buf.len()
        && buf.len() == from.next_multiple_of(DMA_BLOCK)
        && buf[from..].iter().all(|b| *b == 0)
}

/// Walks every batch of a segment image, stopping at the first thing that does not verify.
/// `prev_seq` is the last batch sequence number of earlier segments: sequence numbers must
/// strictly increase, which catches a stale segment file placed among newer ones.
pub(crate) fn scan(buf: &[u8], seed: u32, max_len: usize, prev_seq: Option<u64>) -> Scan {
    let mut out = Scan::default();
    let mut pos = SEGMENT_HEADER_LEN;
    let mut committed_end = pos;
    let mut pending: Vec<RawRecord> = Vec::new();
    let mut last_seq = prev_seq;
    let fail = |bad_offset: usize,
                reason: String,
                committed_end: usize,
                pending: &Vec<RawRecord>| Damage {
        committed_end,
        bad_offset,
        reason,
        uncommitted_records: pending.len(),
        valid_data_after: false,
    };
    while pos < buf.len() {
        let rec = match parse_record(buf, pos, seed, max_len) {
            Ok(r) => r,
            Err(_) if pending.is_empty() && is_block_padding(buf, pos) => break,
            Err(reason) => {
                out.damage = Some(fail(pos, reason, committed_end, &pending));
                break;
            }
        };
        if rec.kind == COMMIT_KIND {
            let check = match parse_commit(buf, &rec) {
                None => Err(format!("commit marker payload is {} bytes, expected {COMMIT_PAYLOAD_LEN}", rec.len)),
                Some(c) if c.records as usize != pending.len() || c.batch_bytes as usize != pos - committed_end => {
                    Err(format!(
                        "commit marker covers {} records / {} bytes but {} records / {} bytes precede it",
                        c.records,
                        c.batch_bytes,
                        pending.len(),
                        pos - committed_end
                    ))
                }
                Some(c) if last_seq.is_some_and(|p| c.seq <= p) => Err(format!(
                    "batch sequence {} does not follow {}",
                    c.seq,
                    last_seq.unwrap_or(0)
                )),
                Some(c) => Ok(c),
            };
            match check {
                Ok(c) => {
                    out.records.append(&mut pending);
                    out.batches += 1;
                    last_seq = Some(c.seq);
                    out.last_batch_seq = Some(c.seq);
                    pos = rec.end();
                    committed_end = pos;
                }
                Err(reason) => {
                    out.damage = Some(fail(pos, reason, committed_end, &pending));
                    break;
                }
            }
        } else {
            pending.push(rec);
            pos = rec.end();
        }
    }
    if out.damage.is_none() && !pending.is_empty() {
        out.damage = Some(fail(
            buf.len(),
            format!("{} records at the end have no commit marker", pending.len()),
            committed_end,
            &pending,
        ));
    }
    out.end = match &out.damage {
        Some(d) => d.committed_end,
        None if pending.is_empty() && committed_end < buf.len() => committed_end,
        None => buf.len(),
    };
    if let Some(d) = &mut out.damage {
        // Count what else verifies individually in the dropped range, for the report.
        let mut p = d.bad_offset;
        while let Ok(r) = parse_record(buf, p, seed, max_len) {
            if r.kind != COMMIT_KIND {
                d.uncommitted_records += 1;
            }
            p = r.end();
        }
        d.valid_data_after = committed_batch_after(buf, d.committed_end, seed, max_len);
    }
    out
}

/// Looks for a complete committed batch starting at or after `from`. A torn write can only
/// damage the final batch, so finding one means the damage sits in the middle of the data.
/// Only commit markers (fixed kind and length) are candidates, which keeps the search linear.
fn committed_batch_after(buf: &[u8], from: usize, seed: u32, max_len: usize) -> bool {
    let mut y = from + 1;
    while y + COMMIT_RECORD_LEN <= buf.len() {
        let is_candidate = buf[y + 4] == COMMIT_KIND
            && buf[y..y + 4] == (COMMIT_PAYLOAD_LEN as u32).to_le_bytes()
            && y > from;
        if is_candidate {
            if let Ok(rec) = parse_record(buf, y, seed, max_len) {
                if let Some(c) = parse_commit(buf, &rec) {
                    if batch_verifies(buf, y, c, from, seed, max_len) {
                        return true;
                    }
                }
            }
        }
        y += 1;
    }
    false
}

fn batch_verifies(
    buf: &[u8],
    commit_at: usize,
    c: Commit,
    from: usize,
    seed: u32,
    max_len: usize,
) -> bool {
    let Some(start) = commit_at.checked_sub(c.batch_bytes as usize) else {
        return false;
    };
    if start < from {
        return false;
    }
    let mut p = start;
    let mut n = 0u32;
    while p < commit_at {
        match parse_record(buf, p, seed, max_len) {
            Ok(r) if r.kind != COMMIT_KIND => {
                n += 1;
                p = r.end();
            }
            _ => return false,
        }
    }
    p == commit_at && n == c.records
}

/// Human name of a type code for reports.
pub(crate) fn kind_name(code: u8) -> String {
    match RecordKind::from_code(code) {
        Some(k) => k.name().to_string(),
        None if code == COMMIT_KIND => "commit".to_string(),
        None => format!("unknown(0x{code:02x})"),
    }
}

#[cfg(test)]
mod version_tests {
    use super::*;

    /// A data directory of the first schema (blocks without state commitments) is
    /// refused with what to do, never read as damage.
    #[test]
    fn a_segment_of_an_older_schema_is_refused_with_the_way_out() {
        let mut h = SegmentHeader::new(3, 42);
        h.version = U32::new(SCHEMA_VERSION - 1);
        h.crc = U32::new(h.compute_crc());
        let e = SegmentHeader::parse(h.bytes(), 3).err().unwrap();
        assert!(
            e.contains("older pala") && e.contains("empty data directory"),
            "{e}"
        );
        h.version = U32::new(SCHEMA_VERSION + 1);
        h.crc = U32::new(h.compute_crc());
        let e = SegmentHeader::parse(h.bytes(), 3).err().unwrap();
        assert!(e.contains("newer pala"), "{e}");
        assert!(SegmentHeader::parse(SegmentHeader::new(3, 42).bytes(), 3).is_ok());
    }
}
