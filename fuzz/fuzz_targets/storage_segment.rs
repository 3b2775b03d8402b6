//! A segment file with arbitrary contents in an otherwise empty data directory: the
//! read-only `inspect` and the repairing `Storage::open` must refuse or repair it, never
//! panic. The file is named after the id its header claims, so inputs get past the
//! name check into the record scanner.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pala_storage::{inspect, Options, Storage, WritePath};
use std::sync::OnceLock;

static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let dir = DIR
        .get_or_init(|| tempfile::tempdir().expect("a temp dir"))
        .path();
    for e in std::fs::read_dir(dir).expect("list the temp dir") {
        let p = e.expect("a dir entry").path();
        let _ = std::fs::remove_file(&p).or_else(|_| std::fs::remove_dir_all(&p));
    }
    let id = data
        .get(16..24)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .unwrap_or(1);
    std::fs::write(dir.join(format!("seg-{id:020}.log")), data).expect("write the segment");
    let _ = inspect(dir);
    let opts = Options {
        write_path: WritePath::PageCache,
        ..Options::default()
    };
    if let Ok(s) = Storage::open(dir, opts) {
        let _ = s.close();
    }
});
