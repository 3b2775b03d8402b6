//! Storage benchmarks: group-commit append throughput and finalized reads.
//!
//! Each `storage::append/records_per_sync=N/block=S` iteration stages N block records of S
//! bytes of transactions and makes them durable with one `sync` (one fdatasync). Criterion
//! reports bytes/s; records/s is N divided by the iteration time (perf/storage.md).
//! `storage::commit_latency` times single commits of the same shapes (records/s, MB/s over
//! the run, p50/p99 of one commit). Writes go through [`LogWriter`] on a glommio executor,
//! as in the node (`PALA_BENCH_WRITE_PATH` picks the path).
//! Data lives under `target-storage/bench-tmp` (a real disk: fdatasync on tmpfs is free
//! and would make the figures meaningless).

use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use glommio::{LocalExecutor, LocalExecutorBuilder, Placement};
use pala_storage::{LogWriter, Options, Record, Storage, WritePath};
use pala_types::{Block, BlockHeader, BlockSn, ConsensusInfo};
use rand::{Rng, SeedableRng};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The writer under test on the bench thread's glommio executor: the node's storage stage
/// drives a [`LogWriter`] the same way. `PALA_BENCH_WRITE_PATH` = `auto` (default: direct
/// IO where the filesystem allows it), `dma` or `page-cache`.
struct BenchStore {
    writer: LogWriter,
}

/// One executor for the whole run: glommio files are bound to the executor that opened them.
fn executor() -> &'static LocalExecutor {
    thread_local! {
        static EX: &'static LocalExecutor = Box::leak(Box::new(
            LocalExecutorBuilder::new(Placement::Unbound)
                .io_memory(64 << 10)
                .make()
                .expect("glommio executor"),
        ));
    }
    EX.with(|ex| *ex)
}

fn write_path() -> WritePath {
    match std::env::var("PALA_BENCH_WRITE_PATH").as_deref() {
        Ok("dma") => WritePath::Dma,
        Ok("page-cache") => WritePath::PageCache,
        Ok("auto") | Err(_) => WritePath::Auto,
        Ok(other) => panic!("PALA_BENCH_WRITE_PATH={other}: expected auto, dma or page-cache"),
    }
}

impl BenchStore {
    fn append(&mut self, r: &Record) -> pala_storage::Result<pala_storage::Pending> {
        self.writer.append(r)
    }
    fn sync(&mut self) -> pala_storage::Result<pala_storage::Durable> {
        executor().run(self.writer.sync())
    }
}

fn open_for_bench(dir: &std::path::Path) -> BenchStore {
    let opts = Options {
        write_path: write_path(),
        ..Options::default()
    };
    let store = Storage::open(dir, opts).expect("open");
    let writer = executor().run(LogWriter::new(store)).expect("writer");
    eprintln!("storage bench: write path {:?}", writer.io_path());
    BenchStore { writer }
}

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
                state: pala_types::StateCommitment::NONE,
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
            let mut store = open_for_bench(dir.path());
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

/// One commit's figures for the latency table: Criterion reports means and medians of
/// iterations, but the consensus stage waits on the slowest commits, so the tail matters.
struct LatencyRow {
    name: String,
    commits: usize,
    records_per_s: f64,
    mb_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
}

/// Times every commit of `per_sync` records of `size` bytes for about `budget` (at least 30
/// commits) and reports throughput over the whole run and the p50/p99 of single commits.
fn commit_latency(size: usize, per_sync: usize, budget: Duration) -> LatencyRow {
    let blocks: Vec<Record> = make_chain(per_sync, size)
        .into_iter()
        .skip(1)
        .map(Record::Block)
        .collect();
    let dir = bench_dir();
    let mut store = open_for_bench(dir.path());
    // Warm-up: the first commits allocate the segment and fault in the map.
    for _ in 0..3 {
        for r in &blocks {
            let _ticket = store.append(r).expect("append");
        }
        store.sync().expect("sync");
    }
    let mut lat = Vec::new();
    let mut bytes = 0u64;
    let start = Instant::now();
    while lat.len() < 30 || start.elapsed() < budget {
        let t = Instant::now();
        for r in &blocks {
            let _ticket = store.append(r).expect("append");
        }
        let durable = store.sync().expect("sync");
        lat.push(t.elapsed());
        bytes += durable.bytes();
    }
    let total = start.elapsed().as_secs_f64();
    lat.sort();
    let pct = |q: f64| lat[((lat.len() as f64 * q).ceil() as usize).clamp(1, lat.len()) - 1];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    LatencyRow {
        name: format!("records_per_sync={per_sync}/block={}KiB", size >> 10),
        commits: lat.len(),
        records_per_s: (lat.len() * per_sync) as f64 / total,
        mb_per_s: bytes as f64 / total / 1e6,
        p50_us: us(pct(0.50)),
        p99_us: us(pct(0.99)),
        max_us: us(*lat.last().expect("commits")),
    }
}

/// The latency table (`storage::commit_latency`). Set `PALA_BENCH_LATENCY_ONLY=1` to skip
/// the Criterion groups (for A/B alternation) and `PALA_BENCH_JSON=<file>` to save the rows.
fn latency_table() {
    let secs: f64 = std::env::var("PALA_BENCH_LATENCY_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4.0);
    let mut rows = Vec::new();
    for size in [1usize << 10, 64 << 10] {
        for per_sync in [16usize, 256] {
            let row = commit_latency(size, per_sync, Duration::from_secs_f64(secs));
            println!(
                "storage::commit_latency/{:<32} commits {:>5}  {:>10.0} records/s  {:>7.1} MB/s  p50 {:>9.0} us  p99 {:>9.0} us  max {:>9.0} us",
                row.name, row.commits, row.records_per_s, row.mb_per_s, row.p50_us, row.p99_us, row.max_us
            );
            rows.push(row);
        }
    }
    if let Some(path) = std::env::var_os("PALA_BENCH_JSON") {
        let json: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{{\"bench\":\"{}\",\"commits\":{},\"records_per_s\":{:.0},\"mb_per_s\":{:.2},\"p50_us\":{:.0},\"p99_us\":{:.0},\"max_us\":{:.0}}}",
                    r.name, r.commits, r.records_per_s, r.mb_per_s, r.p50_us, r.p99_us, r.max_us
                )
            })
            .collect();
        std::fs::write(path, format!("[\n{}\n]\n", json.join(",\n"))).expect("write json");
    }
}

criterion_group!(benches, append, read_finalized);

fn main() {
    latency_table();
    if std::env::var_os("PALA_BENCH_LATENCY_ONLY").is_none() {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
}
