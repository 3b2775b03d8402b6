//! `perf-compare [RESULT.json | DIR]`: prints, for a benchmark result, the change of every
//! numeric figure against the previous result of the same scenario and parameters.
//!
//! With a directory (default `perf/results`), compares the newest result of every
//! scenario and parameter set with the one before it.

use pala_bench::result::{compare, load_dir, previous, BenchResult};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let arg = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "perf/results".into());
    if arg == "-h" || arg == "--help" {
        eprintln!("usage: perf-compare [RESULT.json | DIR]   (default DIR: perf/results)");
        return ExitCode::SUCCESS;
    }
    let path = PathBuf::from(&arg);
    let (dir, only): (PathBuf, Option<PathBuf>) = if path.is_dir() {
        (path, None)
    } else {
        let dir = path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        (dir, Some(path))
    };
    let all = load_dir(&dir);
    let targets: Vec<&(PathBuf, BenchResult)> = match &only {
        Some(p) => {
            let canon = |q: &Path| q.canonicalize().unwrap_or_else(|_| q.to_path_buf());
            match all.iter().find(|(q, _)| canon(q) == canon(p)) {
                Some(t) => vec![t],
                None => {
                    eprintln!("{}: not a benchmark result", p.display());
                    return ExitCode::FAILURE;
                }
            }
        }
        None => {
            // The newest result of each key.
            let mut newest: Vec<&(PathBuf, BenchResult)> = Vec::new();
            for r in all.iter().rev() {
                if !newest.iter().any(|n| n.1.key() == r.1.key()) {
                    newest.push(r);
                }
            }
            newest.sort_by_key(|a| a.1.key());
            newest
        }
    };
    for cur in targets {
        print!("{}", report(&all, cur));
    }
    ExitCode::SUCCESS
}

fn report(all: &[(PathBuf, BenchResult)], cur: &(PathBuf, BenchResult)) -> String {
    let name = |p: &Path| {
        p.file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string()
    };
    let mut s = format!(
        "{} ({} {}, load {:.2})\n",
        cur.1.key(),
        cur.1.timestamp,
        &cur.1.git.revision[..cur.1.git.revision.len().min(10)],
        cur.1.machine.load_before.unwrap_or(f64::NAN)
    );
    let Some(prev) = previous(all, cur) else {
        s.push_str("  no previous result of this scenario and parameters\n");
        return s;
    };
    s.push_str(&format!(
        "  against {} ({} {}, load {:.2})\n",
        name(&prev.0),
        prev.1.timestamp,
        &prev.1.git.revision[..prev.1.git.revision.len().min(10)],
        prev.1.machine.load_before.unwrap_or(f64::NAN)
    ));
    for c in compare(&prev.1, &cur.1) {
        s.push_str(&format!(
            "  {:<28} {:>14.3} -> {:>14.3}  {:>+8.1} %\n",
            c.figure,
            c.before,
            c.after,
            c.percent()
        ));
    }
    s
}
