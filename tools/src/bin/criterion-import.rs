//! `criterion-import CRITERION_DIR SUITE [OUT_DIR]`: turns the medians of a criterion run
//! into a result file, so criterion suites get the same history and `perf-compare` as the
//! scenario benchmarks.
//!
//! SUITE is a comma-separated list of bench areas (`codec,core`): every benchmark whose
//! name starts with `<area>::` is imported as a figure `<name>_ns` (median, nanoseconds).
//! Example: `criterion-import target/criterion codec,core perf/results`.

use pala_bench::result::BenchResult;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: criterion-import CRITERION_DIR SUITE [OUT_DIR]");
        return ExitCode::FAILURE;
    }
    let dir = PathBuf::from(&args[0]);
    let areas: Vec<&str> = args[1].split(',').collect();
    let out = PathBuf::from(args.get(2).map_or("perf/results", String::as_str));
    let mut res = BenchResult::new("criterion");
    res.params
        .insert("suite".into(), serde_json::json!(areas.join("+")));
    let mut found = Vec::new();
    collect(&dir, &mut found);
    for (name, median) in found {
        if areas.iter().any(|a| name.starts_with(&format!("{a}::"))) {
            res.figures
                .insert(format!("{name}_ns"), serde_json::json!(median));
        }
    }
    if res.figures.is_empty() {
        eprintln!(
            "no criterion results for {} under {}",
            args[1],
            dir.display()
        );
        return ExitCode::FAILURE;
    }
    match res.write_to(&out) {
        Ok(p) => {
            println!("{} figures -> {}", res.figures.len(), p.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// (benchmark name, median ns) of every `<group>/<id>/new/estimates.json` under `dir`.
/// Criterion writes `area::op` groups as `area__op` directories; the name is rebuilt from
/// `benchmark.json`, which holds the original full id.
fn collect(dir: &Path, out: &mut Vec<(String, f64)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "new") {
                let read = |f: &str| -> Option<serde_json::Value> {
                    serde_json::from_str(&std::fs::read_to_string(p.join(f)).ok()?).ok()
                };
                let (Some(b), Some(est)) = (read("benchmark.json"), read("estimates.json")) else {
                    continue;
                };
                let name = b["full_id"].as_str().unwrap_or_default().to_string();
                if let Some(m) = est["median"]["point_estimate"].as_f64() {
                    out.push((name, m));
                }
            } else {
                collect(&p, out);
            }
        }
    }
}
