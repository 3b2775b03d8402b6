use pala_sim::bench::{run, BenchParams};

#[test]
fn smoke_bench() {
    for (k, v) in [(10, 33), (1, 33), (5, 33)] {
        let t = std::time::Instant::now();
        let r = run(&BenchParams { voters: v, delay_ms: 10, k, seconds: 20 }).unwrap();
        println!("k={k} {r:?} wall={:?}", t.elapsed());
    }
}
