//! Counters of the network layer. Every drop and every closed connection is counted by
//! reason, so an operator can tell a hostile peer from a slow one.

use crate::handshake::HandshakeFailure;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Why an established connection was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The peer closed it or the socket failed.
    Io,
    /// No frame arrived within the read deadline.
    ReadTimeout,
    /// A write did not finish within the write deadline.
    WriteTimeout,
    /// A frame was too large or too small.
    Oversize,
    /// A frame of a known type did not decode, or carried unsupported attributes.
    Malformed,
    /// The outbound queue was full (the peer reads too slowly).
    QueueFull,
    /// Another connection to the same peer won the duplicate rule (W-2).
    Duplicate,
    /// The user asked to disconnect the peer.
    Requested,
    /// The layer is shutting down.
    Shutdown,
    /// A frame would have taken the shared budget of partly received frames past its cap.
    FrameBudget,
}

impl CloseReason {
    /// Every reason, in counter order.
    pub const ALL: [CloseReason; 10] = [
        CloseReason::Io,
        CloseReason::ReadTimeout,
        CloseReason::WriteTimeout,
        CloseReason::Oversize,
        CloseReason::Malformed,
        CloseReason::QueueFull,
        CloseReason::Duplicate,
        CloseReason::Requested,
        CloseReason::Shutdown,
        CloseReason::FrameBudget,
    ];

    /// Index into [`CloseReason::ALL`].
    pub fn index(self) -> usize {
        CloseReason::ALL
            .iter()
            .position(|r| *r == self)
            .expect("ALL lists every variant")
    }

    /// A metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Io => "io",
            CloseReason::ReadTimeout => "read_timeout",
            CloseReason::WriteTimeout => "write_timeout",
            CloseReason::Oversize => "oversize",
            CloseReason::Malformed => "malformed",
            CloseReason::QueueFull => "queue_full",
            CloseReason::Duplicate => "duplicate",
            CloseReason::Requested => "requested",
            CloseReason::Shutdown => "shutdown",
            CloseReason::FrameBudget => "frame_budget",
        }
    }
}

/// The counters. Shared by all executors; read them at any time.
#[derive(Debug, Default)]
pub struct NetMetrics {
    handshake_failures: [AtomicU64; HandshakeFailure::ALL.len()],
    closes: [AtomicU64; CloseReason::ALL.len()],
    /// Handshakes that completed.
    pub handshakes_ok: AtomicU64,
    /// Connections registered (after the duplicate rule).
    pub connections_opened: AtomicU64,
    /// Peers connected right now.
    pub peers: AtomicI64,
    /// TCP connections accepted.
    pub accepted: AtomicU64,
    /// TCP connect attempts that failed.
    pub dial_failures: AtomicU64,
    /// Frames received and delivered.
    pub frames_in: AtomicU64,
    /// Bytes of frames received.
    pub bytes_in: AtomicU64,
    /// Frames written.
    pub frames_out: AtomicU64,
    /// Bytes written.
    pub bytes_out: AtomicU64,
    /// Frames of unknown type (ignored).
    pub unknown_types: AtomicU64,
    /// Messages dropped by a per-type request limit.
    pub rate_limited_drops: AtomicU64,
    /// Times a reader was delayed by a rate limit.
    pub rate_limited_delays: AtomicU64,
    /// Outbound messages dropped because they exceed the maximum frame size.
    pub oversize_outbound: AtomicU64,
    /// Outbound messages for a peer that is not connected.
    pub unroutable: AtomicU64,
    /// Accepted sockets closed at once: too many handshakes in progress in total.
    pub refused_handshakes: AtomicU64,
    /// Accepted sockets closed at once: too many handshakes in progress from their source.
    pub refused_per_source: AtomicU64,
    /// Accepted sockets closed at once: too many inbound connections.
    pub refused_connections: AtomicU64,
    /// Handshake failures not logged because their source logged one recently.
    pub handshake_logs_suppressed: AtomicU64,
    /// Inbound sockets in the handshake right now.
    pub handshakes_in_progress: AtomicI64,
    /// Inbound connections (handshaking or established) right now.
    pub inbound: AtomicI64,
}

impl NetMetrics {
    pub(crate) fn handshake_failed(&self, r: HandshakeFailure) {
        self.handshake_failures[r.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn closed(&self, r: CloseReason) {
        self.closes[r.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Handshake failures of one reason so far.
    pub fn handshake_failures(&self, r: HandshakeFailure) -> u64 {
        self.handshake_failures[r.index()].load(Ordering::Relaxed)
    }

    /// All handshake failures so far.
    pub fn handshake_failures_total(&self) -> u64 {
        self.handshake_failures
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Closed connections of one reason so far.
    pub fn closes(&self, r: CloseReason) -> u64 {
        self.closes[r.index()].load(Ordering::Relaxed)
    }

    /// Reads a plain counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// The counters not broken down by reason, for an exporter: each with its name (the
    /// exporter adds its prefix and the `_total` suffix), what it counts, and its value.
    /// The drops are in [`NetMetrics::dropped`], the failures and closes by reason in
    /// [`NetMetrics::handshake_failures`] and [`NetMetrics::closes`].
    pub fn counters(&self) -> [(&'static str, &'static str, u64); 13] {
        let rows = [
            ("handshakes_ok", "Handshakes that completed.", &self.handshakes_ok),
            (
                "connections_opened",
                "Connections registered (after the duplicate rule, W-2).",
                &self.connections_opened,
            ),
            ("accepted", "TCP connections accepted.", &self.accepted),
            ("dial_failures", "TCP connect attempts that failed.", &self.dial_failures),
            ("received_frames", "Frames received and delivered.", &self.frames_in),
            ("received_bytes", "Bytes of frames received.", &self.bytes_in),
            ("sent_frames", "Frames written.", &self.frames_out),
            ("sent_bytes", "Bytes of frames written.", &self.bytes_out),
            (
                "rate_limited_delays",
                "Times a reader was delayed by a rate limit.",
                &self.rate_limited_delays,
            ),
            (
                "refused_handshakes",
                "Accepted sockets closed at once: too many handshakes in progress in total.",
                &self.refused_handshakes,
            ),
            (
                "refused_per_source",
                "Accepted sockets closed at once: too many handshakes in progress from their source.",
                &self.refused_per_source,
            ),
            (
                "refused_connections",
                "Accepted sockets closed at once: too many inbound connections.",
                &self.refused_connections,
            ),
            (
                "handshake_logs_suppressed",
                "Handshake failures not logged because their source logged one recently.",
                &self.handshake_logs_suppressed,
            ),
        ];
        rows.map(|(name, help, c)| (name, help, c.load(Ordering::Relaxed)))
    }

    /// Messages the layer dropped, by reason (the label values of the node's
    /// `pala_dropped_messages_total`).
    pub fn dropped(&self) -> [(&'static str, u64); 4] {
        [
            ("unknown_types", &self.unknown_types),
            ("rate_limited_drops", &self.rate_limited_drops),
            ("oversize_outbound", &self.oversize_outbound),
            ("unroutable", &self.unroutable),
        ]
        .map(|(reason, c)| (reason, c.load(Ordering::Relaxed)))
    }

    /// The gauges, as [`NetMetrics::counters`] lists the counters.
    pub fn gauges(&self) -> [(&'static str, &'static str, i64); 2] {
        [
            (
                "handshakes_in_progress",
                "Inbound sockets in the handshake right now.",
                &self.handshakes_in_progress,
            ),
            (
                "inbound_connections",
                "Inbound connections (handshaking or established) right now.",
                &self.inbound,
            ),
        ]
        .map(|(name, help, g)| (name, help, g.load(Ordering::Relaxed)))
    }
}
