//! `pala bench cluster` end to end: real node processes under a small transaction load
//! must finalize blocks and transactions and leave a complete result file.

use std::process::Command;

#[test]
fn bench_cluster_writes_a_result_with_every_role() {
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_pala"))
        .args([
            "bench",
            "cluster",
            "--duration",
            "4",
            "--rate",
            "500",
            "--out",
        ])
        .arg(out.path())
        .output()
        .expect("pala runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "pala bench cluster failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("summary"), "{stdout}");
    let files: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("cluster_"), "{name}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    let f = &v["figures"];
    assert!(f["blocks_per_sec"].as_f64().unwrap() > 0.0, "{f}");
    assert!(f["finalized_txs"].as_u64().unwrap() > 0, "{f}");
    for role in ["primary", "proposer", "voter"] {
        let cpu = f[format!("cpu_ms_per_block_{role}")].as_f64().unwrap();
        assert!(cpu > 0.0, "{role}: {f}");
        assert!(f[format!("peak_rss_kb_{role}")].as_u64().unwrap() > 0);
    }
    assert_eq!(f["nodes"].as_array().unwrap().len(), 6);
    assert_eq!(v["params"]["voters"], 4);
    assert!(v["git"]["revision"].as_str().is_some());
}
