//! The in-process network: messages stamped with their delivery time, threads that
//! sleep until shortly before the next deadline, and the phase flag of a run.

use crate::stats::{self, Histogram};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use pala_core::Tick;
use pala_types::{Message, NodeId};
use std::cmp::Ordering as CmpOrdering;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::MAX_IDLE;

/// A message in flight: handled at `at`, FIFO among equal deadlines.
pub(super) struct Env<T> {
    pub(super) at: Instant,
    pub(super) seq: u64,
    pub(super) body: T,
}

impl<T> PartialEq for Env<T> {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl<T> Eq for Env<T> {}
impl<T> PartialOrd for Env<T> {
    fn partial_cmp(&self, o: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(o))
    }
}
impl<T> Ord for Env<T> {
    // Reversed: BinaryHeap is a max-heap and we want the earliest deadline on top.
    fn cmp(&self, o: &Self) -> CmpOrdering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// From the proposer to a worker.
pub(super) enum ToWorker {
    /// A broadcast: every voter of the worker receives it.
    All(Arc<Message>),
    /// To one voter (local index).
    One(usize, Message),
}

/// From a worker to the proposer: (sender, message) in send order.
pub(super) type Batch = Vec<(NodeId, Message)>;

/// A link end: stamps the delivery deadline.
pub(super) struct Link<T> {
    pub(super) tx: Sender<Env<T>>,
    pub(super) delay: Duration,
    pub(super) seq: u64,
}

impl<T> Link<T> {
    pub(super) fn send(&mut self, body: T) {
        self.seq += 1;
        // A closed channel means the run is stopping; nothing to do.
        let _ = self.tx.send(Env {
            at: Instant::now() + self.delay,
            seq: self.seq,
            body,
        });
    }
}

/// How long before a delivery deadline a thread stops sleeping and polls its channel.
/// A timed futex wait wakes tens of µs late (more when the other core is busy) and every
/// round trip has two deliveries; at D = 10 ms, K = 10 polling raised blocks/s by about
/// 1 % of the K/2D bound (8 s A/B runs at load 7-10: 477-480 blocks/s sleeping to the
/// deadline, 483-484 polling for the last 60-150 µs).
/// It costs at most this much CPU per wake-up, and only here, in the harness.
pub(super) const SPIN_BEFORE_DEADLINE: Duration = Duration::from_micros(100);

/// Waits until a message arrives, the earliest deadline in `heap` passes or `timer`
/// (a core timer, millisecond precision) is due, whichever comes first; at most
/// [`MAX_IDLE`]. Returns false when the channel is closed.
pub(super) fn wait<T>(
    rx: &Receiver<Env<T>>,
    heap: &mut BinaryHeap<Env<T>>,
    timer: Option<Instant>,
) -> bool {
    let now = Instant::now();
    let deadline = heap.peek().map(|e| e.at);
    let mut wake = now + MAX_IDLE;
    for t in deadline.into_iter().chain(timer) {
        wake = wake.min(t);
    }
    if wake <= now {
        return true;
    }
    let spin = deadline == Some(wake);
    let park_until = if spin {
        wake.checked_sub(SPIN_BEFORE_DEADLINE).unwrap_or(now)
    } else {
        wake
    };
    if park_until > now {
        match rx.recv_deadline(park_until) {
            Ok(e) => {
                heap.push(e);
                return true;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return false,
        }
    }
    if spin {
        loop {
            match rx.try_recv() {
                Ok(e) => {
                    heap.push(e);
                    return true;
                }
                Err(TryRecvError::Disconnected) => return false,
                Err(TryRecvError::Empty) => {}
            }
            if Instant::now() >= wake {
                return true;
            }
            std::hint::spin_loop();
        }
    }
    true
}

/// Asks the kernel to wake this thread on time: the default timer slack of 50 µs would
/// be added to every delivery deadline (two per round trip).
pub(super) fn precise_sleeps() {
    let slack_ns: libc::c_ulong = 1;
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and affects only this thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, slack_ns);
    }
}

pub(super) const PHASE_WARMUP: u8 = 0;
pub(super) const PHASE_MEASURE: u8 = 1;
pub(super) const PHASE_STOP: u8 = 2;

pub(super) struct Shared {
    pub(super) start: Instant,
    pub(super) phase: AtomicU8,
    pub(super) finalized: AtomicU64,
}

impl Shared {
    pub(super) fn tick(&self, now: Instant) -> Tick {
        now.saturating_duration_since(self.start).as_millis() as Tick
    }
    pub(super) fn instant(&self, t: Tick) -> Instant {
        self.start + Duration::from_millis(t)
    }
}

/// Per-thread figures for the measured window.
#[derive(Default)]
pub(super) struct ThreadReport {
    pub(super) cpu_start: Duration,
    pub(super) cpu_end: Duration,
    pub(super) messages: u64,
    pub(super) rejected: u64,
    pub(super) finalized: u64,
    pub(super) latency: Histogram,
    pub(super) lateness: Histogram,
    pub(super) counters: BTreeMap<String, u64>,
}

impl ThreadReport {
    /// Notes phase changes; returns false when the thread must stop.
    pub(super) fn observe(&mut self, shared: &Shared, seen: &mut u8) -> bool {
        let p = shared.phase.load(Ordering::Relaxed);
        if p != *seen {
            if *seen == PHASE_WARMUP {
                self.cpu_start = stats::thread_cpu();
            }
            if p == PHASE_STOP {
                self.cpu_end = stats::thread_cpu();
            }
            *seen = p;
        }
        p != PHASE_STOP
    }

    /// Closes the CPU window when the thread left its loop without seeing the stop
    /// flag (its peer thread stopped first and the channel closed).
    pub(super) fn finish(&mut self) {
        if self.cpu_end.is_zero() {
            self.cpu_end = stats::thread_cpu();
        }
    }
}
