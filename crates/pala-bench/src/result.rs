//! The JSON result of one benchmark run, and comparisons between runs.
//!
//! One file per run under `perf/results/`, named
//! `<scenario>_<params>_<UTC timestamp>.json` so that `ls` sorts the runs of one
//! scenario and parameter set by time. `params` identify what was measured (two runs are
//! comparable when scenario and params are equal); `settings` say how (run length,
//! threads) and do not take part in the comparison key.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where and on what a run happened.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Logical CPUs available to the process.
    pub cores: usize,
    /// `model name` of the first CPU in `/proc/cpuinfo`.
    pub cpu_model: String,
    /// 1-minute load average before the run (the machine is shared).
    pub load_before: Option<f64>,
    /// 1-minute load average after the run.
    pub load_after: Option<f64>,
}

impl Machine {
    /// Describes this machine now (`load_after` is filled in by the caller).
    pub fn detect() -> Machine {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            load_before: crate::stats::load_average(),
            load_after: None,
        }
    }
}

/// The git revision of the working tree, and whether it had uncommitted changes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GitInfo {
    /// `git rev-parse HEAD`, or `unknown` outside a repository.
    pub revision: String,
    /// True when `git status --porcelain` listed changes.
    pub dirty: bool,
}

impl GitInfo {
    /// Reads the revision with read-only git commands.
    pub fn detect() -> GitInfo {
        let run = |args: &[&str]| {
            std::process::Command::new("git")
                .args(args)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        match run(&["rev-parse", "HEAD"]) {
            Some(revision) => GitInfo {
                revision,
                dirty: run(&["status", "--porcelain", "--untracked-files=no"])
                    .is_some_and(|s| !s.is_empty()),
            },
            None => GitInfo {
                revision: "unknown".into(),
                dirty: false,
            },
        }
    }
}

/// One benchmark run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    /// Scenario name (`poc`, later `cluster`).
    pub scenario: String,
    /// What was measured; equal params (and scenario) make two runs comparable.
    pub params: BTreeMap<String, Value>,
    /// How it was measured (run length, threads); not part of the comparison key.
    #[serde(default)]
    pub settings: BTreeMap<String, Value>,
    /// The measured figures (numbers, except a few series).
    pub figures: BTreeMap<String, Value>,
    /// Source revision.
    pub git: GitInfo,
    /// The machine.
    pub machine: Machine,
    /// Start of the run, seconds since the Unix epoch.
    pub unix_time: u64,
    /// Start of the run, `YYYY-MM-DDTHH:MM:SSZ`.
    pub timestamp: String,
    /// The command line that produced it.
    #[serde(default)]
    pub command: String,
}

impl BenchResult {
    /// A result stamped with the current time, revision and machine.
    pub fn new(scenario: &str) -> BenchResult {
        let unix_time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        BenchResult {
            scenario: scenario.into(),
            params: BTreeMap::new(),
            settings: BTreeMap::new(),
            figures: BTreeMap::new(),
            git: GitInfo::detect(),
            machine: Machine::detect(),
            unix_time,
            timestamp: utc_timestamp(unix_time),
            command: std::env::args().collect::<Vec<_>>().join(" "),
        }
    }

    /// The comparison key: scenario plus params, as used in the file name.
    pub fn key(&self) -> String {
        let p: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                format!("{k}-{v}")
            })
            .collect();
        format!("{}_{}", self.scenario, p.join("_"))
    }

    /// The file name: key plus a compact UTC timestamp.
    pub fn file_name(&self) -> String {
        let ts: String = self
            .timestamp
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        format!("{}_{ts}.json", self.key())
    }

    /// Writes the result into `dir` (created if missing) and returns the path. An
    /// existing file of the same name (two runs in one second) gets a numeric suffix.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let mut path = dir.join(self.file_name());
        let mut n = 1;
        while path.exists() {
            path = dir.join(self.file_name().replace(".json", &format!("-{n}.json")));
            n += 1;
        }
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&path, text + "\n")?;
        Ok(path)
    }

    /// A numeric figure.
    pub fn figure(&self, name: &str) -> Option<f64> {
        self.figures.get(name).and_then(Value::as_f64)
    }

    /// A numeric parameter.
    pub fn param(&self, name: &str) -> Option<f64> {
        self.params.get(name).and_then(Value::as_f64)
    }
}

/// Loads every result file in `dir` (files that do not parse are skipped: the directory
/// also holds the older crypto and storage summaries in another format), oldest first.
pub fn load_dir(dir: &Path) -> Vec<(PathBuf, BenchResult)> {
    let mut out: Vec<(PathBuf, BenchResult)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter_map(|p| {
            let r: BenchResult = serde_json::from_str(&std::fs::read_to_string(&p).ok()?).ok()?;
            Some((p, r))
        })
        .collect();
    out.sort_by(|a, b| (a.1.unix_time, &a.0).cmp(&(b.1.unix_time, &b.0)));
    out
}

/// The newest result in `all` with the same key as `cur` that is older than it.
pub fn previous<'a>(
    all: &'a [(PathBuf, BenchResult)],
    cur: &(PathBuf, BenchResult),
) -> Option<&'a (PathBuf, BenchResult)> {
    all.iter()
        .filter(|(p, r)| {
            r.key() == cur.1.key() && p != &cur.0 && (r.unix_time, p) <= (cur.1.unix_time, &cur.0)
        })
        .max_by(|a, b| (a.1.unix_time, &a.0).cmp(&(b.1.unix_time, &b.0)))
}

/// The change of one numeric figure between two runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// Figure name.
    pub figure: String,
    /// Value in the older run.
    pub before: f64,
    /// Value in the newer run.
    pub after: f64,
}

impl Change {
    /// Relative change in percent (infinite when `before` is 0 and `after` is not).
    pub fn percent(&self) -> f64 {
        if self.before == 0.0 {
            if self.after == 0.0 {
                0.0
            } else {
                f64::INFINITY
            }
        } else {
            (self.after - self.before) / self.before.abs() * 100.0
        }
    }
}

/// Numeric figures present in both runs, in name order.
pub fn compare(before: &BenchResult, after: &BenchResult) -> Vec<Change> {
    after
        .figures
        .iter()
        .filter_map(|(k, v)| {
            Some(Change {
                figure: k.clone(),
                before: before.figures.get(k)?.as_f64()?,
                after: v.as_f64()?,
            })
        })
        .collect()
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (no time-zone database needed).
pub fn utc_timestamp(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let rem = unix % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Prints the change of the headline figures of the result at `path` against the
/// previous result of the same scenario and parameters in `dir`.
pub fn print_change_against_previous(dir: &Path, path: &Path) {
    let all = load_dir(dir);
    let Some(cur) = all.iter().find(|(p, _)| p == path) else {
        return;
    };
    match previous(&all, cur) {
        Some((pp, prev)) => {
            for c in compare(prev, &cur.1) {
                if [
                    "blocks_per_sec",
                    "latency_p50_ms",
                    "latency_p99_ms",
                    "cpu_per_block_us",
                    "tx_per_sec",
                    "tx_latency_p50_ms",
                    "tx_latency_p99_ms",
                    "cpu_ms_per_block_primary",
                    "cpu_ms_per_block_voter",
                ]
                .contains(&c.figure.as_str())
                {
                    println!(
                        "  vs {}: {} {:.2} -> {:.2} ({:+.1} %)",
                        pp.file_name().unwrap_or_default().to_string_lossy(),
                        c.figure,
                        c.before,
                        c.after,
                        c.percent()
                    );
                }
            }
        }
        None => println!("  (first result of {})", cur.1.key()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn result(t: u64, bps: f64) -> BenchResult {
        let mut r = BenchResult::new("poc");
        r.unix_time = t;
        r.timestamp = utc_timestamp(t);
        r.params.insert("voters".into(), json!(33));
        r.params.insert("k".into(), json!(10));
        r.params.insert("scheme".into(), json!("insecure"));
        r.figures.insert("blocks_per_sec".into(), json!(bps));
        r.figures.insert("rss_series".into(), json!([[0.0, 1.0]]));
        r
    }

    #[test]
    fn timestamps() {
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_timestamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_timestamp(1_795_566_896), "2026-11-25T00:34:56Z");
    }

    #[test]
    fn write_load_and_compare_with_previous() {
        let dir = std::env::temp_dir().join(format!("pala-bench-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = result(1_000, 400.0);
        let b = result(2_000, 500.0);
        let mut other = result(1_500, 1.0);
        other.params.insert("k".into(), json!(5));
        let pa = a.write_to(&dir).unwrap();
        b.write_to(&dir).unwrap();
        other.write_to(&dir).unwrap();
        std::fs::write(dir.join("foreign.json"), "{\"x\": 1}").unwrap();
        assert!(pa
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("poc_k-10_scheme-insecure_voters-33_19700101T001640Z"));

        let all = load_dir(&dir);
        assert_eq!(all.len(), 3, "the foreign file is skipped");
        let newest = all.iter().find(|(_, r)| r.unix_time == 2_000).unwrap();
        let prev = previous(&all, newest).expect("has a previous run");
        assert_eq!(prev.1.unix_time, 1_000);
        let ch = compare(&prev.1, &newest.1);
        assert_eq!(ch.len(), 1, "only numeric figures: {ch:?}");
        assert_eq!(ch[0].figure, "blocks_per_sec");
        assert!((ch[0].percent() - 25.0).abs() < 1e-9);
        let oldest = all.iter().find(|(p, _)| *p == pa).unwrap();
        assert!(previous(&all, oldest).is_none());
        // The same second again gets a suffix instead of overwriting.
        let pa2 = a.write_to(&dir).unwrap();
        assert_ne!(pa, pa2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
