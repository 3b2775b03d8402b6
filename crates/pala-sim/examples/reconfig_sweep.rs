//! `cargo run --release -p pala-sim --example reconfig_sweep -- FROM COUNT`
use pala_sim::sweep::run_seed_mode;
fn main() {
    let a: Vec<u64> = std::env::args()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    let (from, n) = (
        a.first().copied().unwrap_or(0),
        a.get(1).copied().unwrap_or(50),
    );
    let (mut fails, mut min_changes) = (0, u32::MAX);
    for seed in from..from + n {
        let r = run_seed_mode(seed, true);
        min_changes = min_changes.min(r.sessions_changed);
        if let Some(f) = r.failure {
            fails += 1;
            println!("seed {seed}: {f}");
        }
    }
    println!(
        "{} passed, {fails} failed; fewest committee changes in a seed: {min_changes}",
        n - fails
    );
}
