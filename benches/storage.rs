//! Storage benchmarks: group-commit append throughput and finalized reads.
//!
//! Each `storage::append/records_per_sync=N/block=S` iteration stages N block records of S
//! bytes of transactions and makes them durable with one `sync` (one fdatasync). Criterion
//! reports bytes/s; records/s is N divided by the iteration time (perf/storage.md).
//! Data lives under `target-storage/bench-tmp` (a real disk: fdatasync on tmpfs is free
//! and would make the figures meaningless).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pala_storage::{Options, Record, Storage};
use pala_types::{Block, BlockHeader, BlockSn, ConsensusInfo};
use rand::{Rng, SeedableRng};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

fn bench_dir() -> tempfile::TempDir {
    let base = std::env::var_os("PALA_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("target-storage")
                .join("bench-tmp")
        });
    std::fs::create_dir_all(&base).expect("create bench dir");
    tempfile::tempdir_in(base).expect("temp dir")
}

fn make_chain(n: usize, payload: usize) -> Vec<Arc<Block>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut out: Vec<Arc<Block>> = vec![Arc::new(Block::genesis(b"bench".to_vec()))];
    for s in 1..=n {
        let parent = out.last().expect("genesis");
        let tx: Vec<u8> = (0..payload).map(|_| rng.gen()).collect();
        out.push(Arc::new(Block::new(
            BlockHeader {
                sn: BlockSn::new(1, 1, s as u32),
                parent_sn: parent.sn(),
                parent_hash: parent.hash(),
                height: parent.height() + 1,
                session_offset: s as u32,
                timestamp_ms: s as u64,
            },
            vec![tx],
            ConsensusInfo::default(),
        )));
    }
    out
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("storage::append");
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    for (label, size) in [("1KiB", 1usize << 10), ("64KiB", 64 << 10)] {
        for per_sync in [1usize, 16, 256] {
            let blocks: Vec<Record> = make_chain(per_sync, size)
                .into_iter()
                .skip(1)
                .map(Record::Block)
                .collect();
            let bytes: u64 = blocks
                .iter()
                .map(|r| {
                    let mut v = Vec::new();
                    r.encode_payload(&mut v);
                    v.len() as u64 + 9
                })
                .sum();
            g.throughput(Throughput::Bytes(bytes));
            g.measurement_time(Duration::from_secs(if size > 4096 && per_sync == 256 {
                8
            } else {
                4
            }));
            let dir = bench_dir();
            let mut store = Storage::open(dir.path(), Options::default()).expect("open");
            g.bench_function(format!("records_per_sync={per_sync}/block={label}"), |b| {
                b.iter(|| {
                    for r in &blocks {
                        let _ticket = store.append(r).expect("append");
                    }
                    black_box(store.sync().expect("sync"))
                })
            });
            drop(store);
        }
    }
    g.finish();
}

fn read_finalized(c: &mut Criterion) {
    const N: usize = 20_000;
    let dir = bench_dir();
    let chain = make_chain(N, 1 << 10);
    let mut store = Storage::open(dir.path(), Options::default()).expect("open");
    for chunk in chain.chunks(1000) {
        let recs: Vec<Record> = chunk.iter().cloned().map(Record::Block).collect();
        store.commit(&recs).expect("commit");
    }
    store
        .commit([&Record::FinalizedHead(chain[N].sn())])
        .expect("commit head");
    drop(store);
    // Reopen so the bench also covers an index rebuilt by recovery.
    let store = Storage::open(dir.path(), Options::default()).expect("reopen");
    assert_eq!(store.finalized_range(), Some((0, N as u64)));
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut g = c.benchmark_group("storage");
    g.sample_size(30);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(1));
    g.bench_function("read_finalized_by_height", |b| {
        b.iter_batched(
            || rng.gen_range(0..=N as u64),
            |h| black_box(store.finalized_block(h).expect("read").expect("present")),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("read_finalized_by_height/zero_copy", |b| {
        b.iter_batched(
            || rng.gen_range(0..=N as u64),
            |h| {
                black_box(
                    store
                        .finalized_block_bytes(h)
                        .expect("read")
                        .expect("present")
                        .len(),
                )
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, append, read_finalized);
criterion_main!(benches);
