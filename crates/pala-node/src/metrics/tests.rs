use super::*;
use crate::config::MempoolSection;
use crate::mempool::MempoolHandle;
use crate::status::{status_board, StatusView};
use pala_net::NetMetrics;

/// A registry over fresh metrics, with a status snapshot and a mempool holding one
/// transaction.
fn node_registry() -> (Arc<Metrics>, Registry) {
    let metrics = Arc::new(Metrics::default());
    let (publisher, status) = status_board(StatusView::default());
    publisher.publish(StatusView {
        role: "voter".into(),
        epoch: (2, 7),
        head_height: 41,
        finalized_height: 39,
        ready: true,
        ..StatusView::default()
    });
    let mempool = MempoolHandle::new(MempoolSection::default());
    mempool.insert(b"k=v".to_vec()).expect("room in the pool");
    let mut registry = Registry::default();
    metrics.register(
        &mut registry,
        ScrapeSources {
            status,
            net: Arc::new(NetMetrics::default()),
            mempool,
            data_dir: std::env::temp_dir(),
        },
    );
    (metrics, registry)
}

#[test]
fn quantiles_from_the_encoded_histogram() {
    let (m, registry) = node_registry();
    for _ in 0..90 {
        m.tx_latency.observe(0.04);
    }
    for _ in 0..10 {
        m.tx_latency.observe(0.9);
    }
    for accept in [None, Some("text/plain; version=0.0.4")] {
        let (page, _) = encode(&registry, accept);
        let b = parse_buckets(&page, "pala_tx_finality_latency_seconds");
        assert_eq!(b.len(), LATENCY_BOUNDS.len() + 1, "{page}");
        assert_eq!(b.last(), Some(&(f64::INFINITY, 100)));
        let p50 = quantile(&b, 0.5).unwrap();
        assert!(p50 > 0.03 && p50 <= 0.05, "{p50}");
        let p99 = quantile(&b, 0.99).unwrap();
        assert!(p99 > 0.75 && p99 <= 1.0, "{p99}");
        assert_eq!(
            parse_value(&page, "pala_tx_finality_latency_seconds_count"),
            Some(100.0)
        );
        let sum = parse_value(&page, "pala_tx_finality_latency_seconds_sum").unwrap();
        assert!((sum - 12.6).abs() < 1e-6, "{sum}");
    }
}

#[test]
fn openmetrics_by_default_and_the_text_format_when_asked_for_only() {
    let (_, registry) = node_registry();
    let (om, t) = encode(&registry, None);
    assert_eq!(t, OPENMETRICS_CONTENT_TYPE);
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(om.contains("# TYPE pala_votes_received counter\n"), "{om}");
    let prometheus_accept = "application/openmetrics-text;version=1.0.0,text/plain;q=0.5";
    assert_eq!(
        encode(&registry, Some(prometheus_accept)).1,
        OPENMETRICS_CONTENT_TYPE
    );
    let (text, t) = encode(&registry, Some("text/plain"));
    assert_eq!(t, PROMETHEUS_TEXT_CONTENT_TYPE);
    assert!(!text.contains("# EOF"));
    assert!(
        text.contains("# TYPE pala_votes_received_total counter\n"),
        "{text}"
    );
}

#[test]
fn every_sample_has_help_and_a_type_and_counters_end_in_total() {
    let (m, registry) = node_registry();
    m.votes_in.inc();
    let (page, _) = encode(&registry, Some("text/plain"));
    let mut helped = std::collections::HashSet::new();
    let mut typed = std::collections::HashMap::new();
    for line in page.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap();
            assert!(help.len() > 10, "{line}");
            helped.insert(name.to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            typed.insert(name.to_string(), kind.to_string());
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(name.starts_with("pala_"), "{line}");
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|f| typed.get(*f).is_some_and(|k| k == "histogram"))
                })
                .unwrap_or(name);
            let kind = typed
                .get(family)
                .unwrap_or_else(|| panic!("no TYPE for {line}"));
            assert!(helped.contains(family), "no HELP for {line}");
            assert_eq!(kind == "counter", family.ends_with("_total"), "{line}");
        }
    }
    for name in [
        "pala_votes_received_total 1",
        "pala_epoch 7",
        "pala_epoch_session 2",
        "pala_head_height 41",
        "pala_finalized_height 39",
        "pala_ready 1",
        "pala_role{role=\"voter\"} 1",
        "pala_role{role=\"proposer\"} 0",
        "pala_mempool_txs 1",
        "pala_mempool_bytes 3",
        "pala_handshake_failures_total{reason=\"timeout\"} 0",
        "pala_dropped_messages_total{reason=\"core_vote_duplicate\"} 0",
        "pala_core_events_total{event=\"epoch_changes\"} 0",
    ] {
        assert!(page.lines().any(|l| l == name), "{name} missing:\n{page}");
    }
    let free = parse_value(&page, "pala_data_dir_free_bytes").unwrap();
    let size = parse_value(&page, "pala_data_dir_size_bytes").unwrap();
    assert!(free > 0.0 && free <= size, "{free} {size}");
}

#[test]
fn per_peer_status_heights_come_and_go_with_the_peer() {
    let (m, registry) = node_registry();
    let peer = pala_types::NodeId::default();
    m.peer_status_height
        .get_or_create(&peer_label(&peer))
        .set(12);
    let line = format!("pala_peer_status_head_height{{peer=\"{}\"}}", peer.to_hex());
    assert_eq!(parse_value(&encode(&registry, None).0, &line), Some(12.0));
    m.peer_status_height.remove(&peer_label(&peer));
    assert_eq!(parse_value(&encode(&registry, None).0, &line), None);
}
