//! `plot [DIR] [OUT_DIR]`: draws `pala bench poc` results as SVG.
//!
//! - `OUT_DIR/poc-blocks-vs-k.svg`: finalized blocks/s against K (V = 33), one line per
//!   (delay, scheme), with the bound K/2D of each delay dashed;
//! - `OUT_DIR/poc-blocks-vs-v.svg`: blocks/s against V (K = 10), one line per
//!   (delay, scheme);
//! - `OUT_DIR/poc-latency-vs-k.svg`: finality latency p50 and p99 against K.
//!
//! For each point the newest result file wins. Defaults: `perf/results`, `perf`.

use pala_bench::result::{load_dir, BenchResult};
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

type Series = BTreeMap<(u64, String), BTreeMap<u64, f64>>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "perf/results".into()));
    let out = PathBuf::from(args.next().unwrap_or_else(|| "perf".into()));
    let all: Vec<BenchResult> = load_dir(&dir)
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| r.scenario == "poc" && r.param("payload_bytes").unwrap_or(0.0) == 0.0)
        .collect();
    let by_k = collect(
        &all,
        "k",
        |r| r.param("voters") == Some(33.0),
        "blocks_per_sec",
    );
    let by_v = collect(
        &all,
        "voters",
        |r| r.param("k") == Some(10.0),
        "blocks_per_sec",
    );
    let p50 = collect(
        &all,
        "k",
        |r| r.param("voters") == Some(33.0),
        "latency_p50_ms",
    );
    let p99 = collect(
        &all,
        "k",
        |r| r.param("voters") == Some(33.0),
        "latency_p99_ms",
    );
    std::fs::create_dir_all(&out)?;
    let f1 = out.join("poc-blocks-vs-k.svg");
    draw(
        &f1,
        "pala bench poc: finalized blocks/s vs K (33 voters)",
        "K (outstanding proposals)",
        "finalized blocks/s",
        &[("", &by_k)],
        true,
    )?;
    let f2 = out.join("poc-blocks-vs-v.svg");
    draw(
        &f2,
        "pala bench poc: finalized blocks/s vs voters (K = 10)",
        "V (voters)",
        "finalized blocks/s",
        &[("", &by_v)],
        false,
    )?;
    let f3 = out.join("poc-latency-vs-k.svg");
    draw(
        &f3,
        "pala bench poc: finality latency vs K (33 voters)",
        "K (outstanding proposals)",
        "latency at the proposer (ms)",
        &[("p50 ", &p50), ("p99 ", &p99)],
        false,
    )?;
    for f in [f1, f2, f3] {
        println!("wrote {}", f.display());
    }
    Ok(())
}

/// (delay, scheme) -> x -> figure, newest result per point.
fn collect(
    all: &[BenchResult],
    x: &str,
    filter: impl Fn(&BenchResult) -> bool,
    figure: &str,
) -> Series {
    let mut s = Series::new();
    for r in all.iter().filter(|r| filter(r)) {
        let (Some(xv), Some(d), Some(y)) = (r.param(x), r.param("delay_ms"), r.figure(figure))
        else {
            continue;
        };
        let scheme = r
            .params
            .get("scheme")
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_string();
        // `all` is oldest first, so later inserts are newer.
        s.entry((d as u64, scheme))
            .or_default()
            .insert(xv as u64, y);
    }
    s
}

fn draw(
    path: &Path,
    title: &str,
    xlabel: &str,
    ylabel: &str,
    sets: &[(&str, &Series)],
    bound: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let xs: Vec<u64> = sets
        .iter()
        .flat_map(|(_, s)| {
            s.values()
                .filter(|m| m.len() >= 2)
                .flat_map(|m| m.keys().copied())
        })
        .collect();
    let ys = sets.iter().flat_map(|(_, s)| {
        s.values()
            .filter(|m| m.len() >= 2)
            .flat_map(|m| m.values().copied())
    });
    let xmax = xs.iter().copied().max().unwrap_or(1).max(1) as f64;
    let ymax = ys.fold(1.0f64, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..xmax * 1.05, 0f64..ymax)?;
    chart
        .configure_mesh()
        .x_desc(xlabel)
        .y_desc(ylabel)
        .draw()?;
    let mut i = 0;
    let mut bounds_drawn = std::collections::BTreeSet::new();
    for (prefix, s) in sets {
        // A single point is not a curve (for example one BLS run at K = 10).
        for ((delay, scheme), pts) in s.iter().filter(|(_, pts)| pts.len() >= 2) {
            let color = Palette99::pick(i).to_rgba();
            i += 1;
            let line: Vec<(f64, f64)> = pts.iter().map(|(&x, &y)| (x as f64, y)).collect();
            chart
                .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))?
                .label(format!("{prefix}D = {delay} ms, {scheme}"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart.draw_series(
                line.iter()
                    .map(|&(x, y)| Circle::new((x, y), 4, color.filled())),
            )?;
            if bound && *delay > 0 && bounds_drawn.insert(*delay) {
                // K / 2D: one block per K per round trip.
                let b: Vec<(f64, f64)> = pts
                    .keys()
                    .map(|&k| (k as f64, k as f64 * 1000.0 / (2.0 * *delay as f64)))
                    .collect();
                chart
                    .draw_series(DashedLineSeries::new(b, 6, 4, color.stroke_width(1)))?
                    .label(format!("bound K/2D, D = {delay} ms"))
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(1))
                    });
            }
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}
