//! The `/metrics` page: the registry encoded by `prometheus_client` in the format the
//! scraper asks for, and the readers `pala demo`, `pala bench cluster` and the tests use
//! on the pages of running nodes (both formats).

use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::registry::Registry;

/// The content type of the OpenMetrics text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of the Prometheus text format 0.0.4.
pub const PROMETHEUS_TEXT_CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Encodes `registry` for a request with this `Accept` header: OpenMetrics (what a
/// Prometheus server asks for first), unless the client names only the older text format
/// (`Accept: text/plain`, what `promtool check metrics` reads). Returns the page and its
/// content type.
pub fn encode(registry: &Registry, accept: Option<&str>) -> (String, &'static str) {
    let accept = accept.unwrap_or("").to_ascii_lowercase();
    let mut page = String::with_capacity(16 * 1024);
    let prometheus_only =
        accept.contains("text/plain") && !accept.contains("application/openmetrics-text");
    // Writing into a String cannot fail, and every metric's encoder only writes.
    if prometheus_only {
        let _ = prometheus_text::encode(&mut page, registry);
        (page, PROMETHEUS_TEXT_CONTENT_TYPE)
    } else {
        let _ = text::encode(&mut page, registry);
        (page, OPENMETRICS_CONTENT_TYPE)
    }
}

/// Estimates quantile `q` from cumulative buckets `(upper bound, count)` by linear
/// interpolation inside the bucket (what PromQL's `histogram_quantile` does).
pub fn quantile(buckets: &[(f64, u64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut prev = (0.0, 0u64);
    for &(le, c) in buckets {
        if c as f64 >= rank {
            if le.is_infinite() {
                return Some(prev.0);
            }
            let in_bucket = (c - prev.1) as f64;
            let frac = if in_bucket > 0.0 {
                (rank - prev.1 as f64) / in_bucket
            } else {
                0.0
            };
            return Some(prev.0 + (le - prev.0) * frac);
        }
        prev = (le, c);
    }
    Some(prev.0)
}

/// Parses the cumulative buckets of the unlabelled histogram `name` out of a page.
pub fn parse_buckets(text: &str, name: &str) -> Vec<(f64, u64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, v) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, sample_value(v)?.parse().ok()?))
        })
        .collect()
}

/// Reads the value of the sample `name` (with its labels, if any, exactly as the page
/// writes them: `pala_role{role="voter"}`) out of a page.
pub fn parse_value(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix(' ')?;
        sample_value(rest)?.parse().ok()
    })
}

/// The value of a sample line's tail: OpenMetrics may follow it with a timestamp or an
/// exemplar.
fn sample_value(tail: &str) -> Option<&str> {
    tail.split_whitespace().next()
}
