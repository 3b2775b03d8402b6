//! `pala bench cluster --regions FILE`: nodes placed in the regions of a public latency
//! matrix, each dialing from its own loopback address so the relay in front of a
//! proposer delays every connection by the one-way delay between the two regions.
//!
//! The file (JSON; `perf/regions/aws-10.json` is one) names its `source`, the `regions`
//! and the round-trip times `rtt_ms[i][j]` between them. Node `n` (proposers first, in
//! genesis order, then voters) is in region `n mod R` and dials from `127.0.0.(10 + n)`.

use anyhow::{bail, Context, Result};
use pala_bench::link::LinkProfile;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

/// A latency matrix between regions.
#[derive(Debug, Deserialize)]
pub struct RegionMatrix {
    /// Where the figures come from.
    pub source: String,
    /// Region names.
    pub regions: Vec<String>,
    /// Round-trip times in milliseconds, from row to column.
    pub rtt_ms: Vec<Vec<f64>>,
}

impl RegionMatrix {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<RegionMatrix> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let m: RegionMatrix = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a region matrix", path.display()))?;
        let r = m.regions.len();
        if r == 0 {
            bail!("{}: `regions` is empty", path.display());
        }
        if m.rtt_ms.len() != r || m.rtt_ms.iter().any(|row| row.len() != r) {
            bail!(
                "{}: `rtt_ms` must be {r} rows of {r} round-trip times, one per region",
                path.display()
            );
        }
        if m.rtt_ms
            .iter()
            .flatten()
            .any(|t| !t.is_finite() || *t < 0.0)
        {
            bail!(
                "{}: round-trip times must be finite and not negative",
                path.display()
            );
        }
        Ok(m)
    }

    /// The region of node `n`.
    pub fn region_of(&self, n: usize) -> usize {
        n % self.regions.len()
    }

    /// One-way delay between the regions of nodes `a` and `b`: the mean of both
    /// directions' round trips, halved.
    pub fn one_way_ms(&self, a: usize, b: usize) -> f64 {
        let (ra, rb) = (self.region_of(a), self.region_of(b));
        (self.rtt_ms[ra][rb] + self.rtt_ms[rb][ra]) / 4.0
    }

    /// The relay profiles in front of proposer `p`: one per other node, by its source
    /// address, with `base`'s jitter, bandwidth and loss.
    pub fn profiles_for(
        &self,
        p: usize,
        nodes: usize,
        base: LinkProfile,
    ) -> HashMap<IpAddr, LinkProfile> {
        (0..nodes)
            .filter(|&n| n != p)
            .map(|n| {
                let delay = Duration::from_secs_f64(self.one_way_ms(p, n) / 1000.0);
                (source_address(n), LinkProfile { delay, ..base })
            })
            .collect()
    }

    /// Hub-and-spoke finality for the primary `p` and its voters (indexes `voters`), seat
    /// counting: a block is final at the primary after two round trips to the quorum's
    /// slowest member (4 of its one-way delays), at a voter one delay later.
    pub fn theory(&self, p: usize, voters: &[usize]) -> RegionTheory {
        let mut d: Vec<f64> = voters.iter().map(|&v| self.one_way_ms(p, v)).collect();
        d.sort_by(f64::total_cmp);
        let quorum = (2 * d.len()).div_ceil(3).max(1);
        let quorum_delay = d.get(quorum - 1).copied().unwrap_or(0.0);
        let primary = 4.0 * quorum_delay;
        let at_voters: Vec<f64> = d.iter().map(|x| primary + x).collect();
        RegionTheory {
            quorum_delay_ms: quorum_delay,
            primary_ms: primary,
            voter_p50_ms: at_voters[at_voters.len() / 2],
            voter_max_ms: at_voters.last().copied().unwrap_or(primary),
        }
    }
}

/// What [`RegionMatrix::theory`] says.
#[derive(Debug, Clone, Copy)]
pub struct RegionTheory {
    /// One-way delay to the voter that completes the quorum.
    pub quorum_delay_ms: f64,
    /// Block finality at the primary.
    pub primary_ms: f64,
    /// Median over voters of block finality.
    pub voter_p50_ms: f64,
    /// The farthest voter's block finality.
    pub voter_max_ms: f64,
}

/// The loopback address node `n` dials from.
pub fn source_address(n: usize) -> IpAddr {
    IpAddr::from([127, 0, 0, 10 + n as u8])
}

/// Sets `network.source_address` in the config at `path` (a file the cluster wrote,
/// which names every field, `source_address = ""` included).
pub fn set_source_address(path: &Path, n: usize) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let empty = "\nsource_address = \"\"\n";
    if !text.contains(empty) {
        bail!(
            "{} has no empty network.source_address to set",
            path.display()
        );
    }
    let line = format!("\nsource_address = \"{}\"\n", source_address(n));
    std::fs::write(path, text.replacen(empty, &line, 1))
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix() -> RegionMatrix {
        RegionMatrix {
            source: "test".into(),
            regions: vec!["a".into(), "b".into(), "c".into()],
            rtt_ms: vec![
                vec![0.0, 20.0, 100.0],
                vec![20.0, 0.0, 60.0],
                vec![100.0, 60.0, 0.0],
            ],
        }
    }

    #[test]
    fn one_way_delays_and_the_quorum_theory() {
        let m = matrix();
        assert_eq!(m.one_way_ms(0, 1), 10.0);
        assert_eq!(m.one_way_ms(0, 3), 0.0, "node 3 is in region 0");
        // Primary node 0 (region a); voters 1..=4 in regions b, c, a, b: delays 10, 50, 0,
        // 10; the quorum of 4 is 3, so the third smallest (10 ms) completes it.
        let t = m.theory(0, &[1, 2, 3, 4]);
        assert_eq!(t.quorum_delay_ms, 10.0);
        assert_eq!(t.primary_ms, 40.0);
        assert_eq!(t.voter_max_ms, 90.0);
    }

    #[test]
    fn a_bad_matrix_is_refused_with_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.json");
        std::fs::write(&p, r#"{"source":"x","regions":["a","b"],"rtt_ms":[[0,1]]}"#).unwrap();
        let e = RegionMatrix::load(&p).unwrap_err().to_string();
        assert!(e.contains("2 rows of 2"), "{e}");
        std::fs::write(&p, r#"{"source":"x","regions":["a"],"rtt_ms":[[-1]]}"#).unwrap();
        let e = RegionMatrix::load(&p).unwrap_err().to_string();
        assert!(e.contains("not negative"), "{e}");
        let shipped = RegionMatrix::load(Path::new("perf/regions/aws-10.json")).unwrap();
        assert_eq!(shipped.regions.len(), 10);
    }
}
