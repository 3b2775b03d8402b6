//! The timer table: one deadline per [`TimerKind`] (section 0.1 item 12: timers are
//! inputs to the core, run by its driver).
//!
//! [`Output::SetTimer`](crate::Output::SetTimer) replaces the deadline of its kind, so the
//! table holds at most one entry per kind and needs no heap: a voter-timer reset on every
//! head extension overwrites a slot instead of queueing another firing. The core ignores
//! a firing whose deadline it replaced, so the table only has to never fire a timer early
//! and never lose the latest deadline.

use crate::config::Tick;
use crate::io::TimerKind;

/// Every timer kind, in the order ties between equal deadlines fire.
const KINDS: [TimerKind; 4] = [
    TimerKind::Voter,
    TimerKind::ProposerGate,
    TimerKind::Sync,
    TimerKind::Heartbeat,
];

fn slot(kind: TimerKind) -> usize {
    match kind {
        TimerKind::Voter => 0,
        TimerKind::ProposerGate => 1,
        TimerKind::Sync => 2,
        TimerKind::Heartbeat => 3,
    }
}

/// The deadlines one core asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimerTable {
    deadlines: [Option<Tick>; KINDS.len()],
}

impl TimerTable {
    /// An empty table.
    pub fn new() -> TimerTable {
        TimerTable::default()
    }

    /// Arms `kind` at `at`, replacing its previous deadline (earlier or later).
    pub fn set(&mut self, kind: TimerKind, at: Tick) {
        self.deadlines[slot(kind)] = Some(at);
    }

    /// Disarms `kind`; returns the deadline it had.
    pub fn cancel(&mut self, kind: TimerKind) -> Option<Tick> {
        self.deadlines[slot(kind)].take()
    }

    /// The deadline of `kind`, if armed.
    pub fn deadline(&self, kind: TimerKind) -> Option<Tick> {
        self.deadlines[slot(kind)]
    }

    /// The earliest armed deadline: when the host must call [`TimerTable::take_due`] next.
    pub fn next_deadline(&self) -> Option<Tick> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Whether no timer is armed.
    pub fn is_empty(&self) -> bool {
        self.deadlines.iter().all(Option::is_none)
    }

    /// Disarms and returns every timer whose deadline is at or before `now`, earliest
    /// first (ties in [`TimerKind`] order). Timers the core arms while the host feeds
    /// these firings are not part of this batch, so a timer re-armed at `now` cannot
    /// loop.
    pub fn take_due(&mut self, now: Tick) -> DueTimers {
        let mut due = DueTimers::default();
        for (i, d) in self.deadlines.iter_mut().enumerate() {
            if let Some(at) = d.filter(|at| *at <= now) {
                *d = None;
                due.push(at, KINDS[i]);
            }
        }
        due
    }
}

/// Timers taken by [`TimerTable::take_due`], in firing order (no allocation).
#[derive(Clone, Debug, Default)]
pub struct DueTimers {
    fired: [(Tick, Option<TimerKind>); KINDS.len()],
    len: usize,
    next: usize,
}

impl DueTimers {
    /// Inserts in deadline order; equal deadlines keep insertion (kind) order.
    fn push(&mut self, at: Tick, kind: TimerKind) {
        let mut i = self.len;
        while i > 0 && self.fired[i - 1].0 > at {
            self.fired[i] = self.fired[i - 1];
            i -= 1;
        }
        self.fired[i] = (at, Some(kind));
        self.len += 1;
    }
}

impl Iterator for DueTimers {
    type Item = TimerKind;

    fn next(&mut self) -> Option<TimerKind> {
        if self.next == self.len {
            return None;
        }
        self.next += 1;
        self.fired[self.next - 1].1
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.len - self.next;
        (n, Some(n))
    }
}

impl ExactSizeIterator for DueTimers {}

#[cfg(test)]
mod tests {
    use super::*;
    use TimerKind::*;

    #[test]
    fn a_later_deadline_replaces_an_earlier_one() {
        let mut t = TimerTable::new();
        t.set(Voter, 10);
        t.set(Voter, 20);
        assert!(!t.is_empty());
        assert_eq!(t.next_deadline(), Some(20));
        assert_eq!(
            t.take_due(19).count(),
            0,
            "the replaced deadline never fires"
        );
        assert_eq!(t.take_due(20).collect::<Vec<_>>(), vec![Voter]);
        assert!(t.is_empty());
    }

    #[test]
    fn an_earlier_deadline_replaces_a_later_one() {
        let mut t = TimerTable::new();
        t.set(Sync, 30);
        t.set(Sync, 25);
        assert_eq!(t.next_deadline(), Some(25));
        assert_eq!(t.take_due(25).collect::<Vec<_>>(), vec![Sync]);
        assert_eq!(
            t.take_due(30).count(),
            0,
            "fired once, at the latest deadline set"
        );
    }

    #[test]
    fn due_timers_come_earliest_first_and_ties_in_kind_order() {
        let mut t = TimerTable::new();
        t.set(Heartbeat, 5);
        t.set(Sync, 7);
        t.set(ProposerGate, 5);
        t.set(Voter, 9);
        let mut due = t.take_due(8);
        assert_eq!(due.len(), 3);
        assert_eq!(due.next(), Some(ProposerGate));
        assert_eq!(due.len(), 2, "what is left");
        assert_eq!(due.collect::<Vec<_>>(), vec![Heartbeat, Sync]);
        assert_eq!(
            t.next_deadline(),
            Some(9),
            "the timer not yet due stays armed"
        );
        assert_eq!(t.deadline(Voter), Some(9));
        assert_eq!(t.deadline(Sync), None);
    }

    #[test]
    fn cancel_disarms_one_kind() {
        let mut t = TimerTable::new();
        t.set(Voter, 4);
        t.set(Heartbeat, 6);
        assert_eq!(t.cancel(Voter), Some(4));
        assert_eq!(t.cancel(Voter), None);
        assert_eq!(t.next_deadline(), Some(6));
        assert_eq!(t.take_due(100).collect::<Vec<_>>(), vec![Heartbeat]);
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn a_deadline_in_the_past_is_due_at_once() {
        let mut t = TimerTable::new();
        t.set(Voter, 3);
        assert_eq!(t.take_due(1_000).collect::<Vec<_>>(), vec![Voter]);
    }

    #[test]
    fn timers_armed_after_take_due_wait_for_the_next_call() {
        let mut t = TimerTable::new();
        t.set(Heartbeat, 10);
        let mut due = t.take_due(10);
        t.set(Heartbeat, 10); // re-armed at `now` while the batch is being fed
        assert_eq!(due.next(), Some(Heartbeat));
        assert_eq!(due.next(), None);
        assert_eq!(t.deadline(Heartbeat), Some(10));
    }
}
