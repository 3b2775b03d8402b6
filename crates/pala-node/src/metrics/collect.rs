//! The metrics read at scrape time: the consensus stage's status snapshot, the mempool,
//! the core's event counters, the channel depths, the network layer's counters and the
//! data directory's filesystem. Reading them costs the scrape, never a stage.

use super::Metrics;
use crate::mempool::MempoolHandle;
use crate::status::StatusReader;
use pala_core::{CoreEvent, Role};
use pala_net::{CloseReason, HandshakeFailure, NetMetrics};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Where the scrape-time metrics come from.
#[derive(Clone)]
pub struct ScrapeSources {
    /// The consensus stage's status snapshot.
    pub status: StatusReader,
    /// The network layer's counters.
    pub net: Arc<NetMetrics>,
    /// The mempool (its size).
    pub mempool: MempoolHandle,
    /// The data directory, whose filesystem's free space is exported.
    pub data_dir: PathBuf,
}

impl fmt::Debug for ScrapeSources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScrapeSources")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub(super) struct Scraped {
    pub(super) metrics: Arc<Metrics>,
    pub(super) sources: ScrapeSources,
}

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: i64,
) -> fmt::Result {
    ConstGauge::new(value).encode(enc.encode_descriptor(name, help, unit, MetricType::Gauge)?)
}

/// A family with one label: `(label value, value)` rows. `name` is without `_total`.
fn family<'r, V>(
    enc: &mut DescriptorEncoder,
    kind: MetricType,
    name: &str,
    help: &str,
    label: &'static str,
    rows: impl IntoIterator<Item = (&'r str, V)>,
) -> fmt::Result
where
    V: Into<u64>,
{
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for (value, n) in rows {
        let labels = [(label, value)];
        let sample = m.encode_family(&labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(n.into()).encode(sample)?,
            _ => ConstGauge::new(n.into() as i64).encode(sample)?,
        }
    }
    Ok(())
}

impl Collector for Scraped {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        self.status(&mut enc)?;
        self.core(&mut enc)?;
        self.network(&mut enc)?;
        self.data_dir(&mut enc)
    }
}

impl Scraped {
    fn status(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let st = self.sources.status.get();
        let rows: [(&str, &str, i64); 7] = [
            (
                "pala_epoch_session",
                "Session of the local epoch.",
                st.epoch.0.into(),
            ),
            (
                "pala_epoch",
                "Epoch number within the session of the local epoch.",
                st.epoch.1.into(),
            ),
            (
                "pala_head_height",
                "Height of the freshest notarized head.",
                st.head_height as i64,
            ),
            (
                "pala_finalized_height",
                "Height of the finalized head.",
                st.finalized_height as i64,
            ),
            (
                "pala_applied_height",
                "Height applied by the application.",
                st.applied_height as i64,
            ),
            (
                "pala_producing",
                "1 while this node is the producing primary proposer.",
                st.producing.into(),
            ),
            (
                "pala_ready",
                "1 when connected and caught up (what /readyz answers).",
                st.ready.into(),
            ),
        ];
        for (name, help, v) in rows {
            gauge(enc, name, help, None, v)?;
        }
        family(
            enc,
            MetricType::Gauge,
            "pala_role",
            "1 for the role this node has in the session of its local epoch, 0 for the others.",
            "role",
            Role::ALL.map(|r| (r.as_str(), u64::from(st.role == r.as_str()))),
        )?;
        let (txs, bytes) = self.sources.mempool.size();
        gauge(
            enc,
            "pala_mempool_txs",
            "Transactions in the mempool.",
            None,
            txs as i64,
        )?;
        gauge(
            enc,
            "pala_mempool",
            "Bytes of the transactions in the mempool.",
            Some(&Unit::Bytes),
            bytes as i64,
        )
    }

    fn core(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let m = &self.metrics;
        let core = m
            .core_counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        family(
            enc,
            MetricType::Counter,
            "pala_core_events",
            "Events counted by the protocol core (work done, epoch changes, drops by reason).",
            "event",
            core.iter().map(|(e, n)| (e.as_str(), n)),
        )?;
        let reasons: Vec<(String, u64)> = [
            ("verify_failed".to_string(), m.verify_failures.get()),
            ("net_command_queue_full".to_string(), m.net_queue_full.get()),
        ]
        .into_iter()
        .chain(
            self.sources
                .net
                .dropped()
                .map(|(reason, n)| (reason.to_string(), n)),
        )
        .chain(
            core.iter()
                .filter(|(e, _)| CoreEvent::is_dropped_message(*e))
                .map(|(e, n)| (format!("core_{}", e.as_str()), n)),
        )
        .collect();
        family(
            enc,
            MetricType::Counter,
            "pala_dropped_messages",
            "Messages dropped, by reason (verification, full queues, the network layer's \
             limits, and the core's rules as core_<event>).",
            "reason",
            reasons.iter().map(|(r, n)| (r.as_str(), *n)),
        )?;
        let depths = m
            .channel_depths
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        family(
            enc,
            MetricType::Gauge,
            "pala_channel_depth",
            "Items waiting in a channel between stages.",
            "channel",
            depths.iter().map(|(c, d)| (*c, *d as u64)),
        )
    }

    fn network(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let net = &self.sources.net;
        family(
            enc,
            MetricType::Counter,
            "pala_handshake_failures",
            "Failed handshakes, by reason.",
            "reason",
            HandshakeFailure::ALL.map(|r| (r.as_str(), net.handshake_failures(r))),
        )?;
        family(
            enc,
            MetricType::Counter,
            "pala_connections_closed",
            "Closed connections, by reason.",
            "reason",
            CloseReason::ALL.map(|r| (r.as_str(), net.closes(r))),
        )?;
        for (name, help, v) in net.counters() {
            let name = format!("pala_net_{name}");
            ConstCounter::new(v).encode(enc.encode_descriptor(
                &name,
                help,
                None,
                MetricType::Counter,
            )?)?;
        }
        for (name, help, v) in net.gauges() {
            gauge(enc, &format!("pala_net_{name}"), help, None, v)?;
        }
        Ok(())
    }

    fn data_dir(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let Some(fs) = filesystem_space(&self.sources.data_dir) else {
            return Ok(());
        };
        gauge(
            enc,
            "pala_data_dir_free",
            "Bytes available to the node on the filesystem of its data directory.",
            Some(&Unit::Bytes),
            fs.available as i64,
        )?;
        gauge(
            enc,
            "pala_data_dir_size",
            "Size of the filesystem of the node's data directory.",
            Some(&Unit::Bytes),
            fs.size as i64,
        )
    }
}

struct FilesystemSpace {
    available: u64,
    size: u64,
}

/// `statvfs(2)` of the filesystem holding `path`: one system call per scrape.
fn filesystem_space(path: &std::path::Path) -> Option<FilesystemSpace> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut s = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path and `s` is a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), s.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled `s`.
    let s = unsafe { s.assume_init() };
    // The fields are 32 bits wide on some targets.
    #[allow(clippy::unnecessary_cast)]
    let (frsize, available, blocks) = (s.f_frsize as u64, s.f_bavail as u64, s.f_blocks as u64);
    Some(FilesystemSpace {
        available: available * frsize,
        size: blocks * frsize,
    })
}
