//! The durability gate: persist-before-send (section 0.1 items 7 and 8) without waiting
//! for the disk.
//!
//! Every [`Output::Persist`](crate::Output::Persist) gets the next persist number. Every
//! effect that must not be seen before those records survive a crash (a send, a
//! broadcast, a finalized block handed to the application, or a host effect such as a
//! dial) is queued behind the highest number issued so far. The storage side reports
//! `durable(upto)`: every persist numbered `<= upto` survives a crash. Effects then leave
//! in the order they were queued, so an effect never overtakes another one, and none
//! leaves before every persist issued before it is durable.
//!
//! The host need not stop while a group of records is being synced: the next inputs are
//! handled and their records numbered, which is what lets storage commit them as the
//! next group.

use std::collections::VecDeque;

/// The number of a persist: 1 for the first one a gate issues, then one more each time.
/// `0` means "nothing" (no persist issued, nothing durable yet).
pub type PersistSeq = u64;

/// Effects of type `T` held until the persists issued before them are durable.
#[derive(Debug)]
pub struct DurabilityGate<T> {
    /// The highest persist number issued.
    issued: PersistSeq,
    /// Every persist numbered at or below this is durable.
    durable: PersistSeq,
    /// Held effects with the persist number each waits for, in submission order.
    held: VecDeque<(PersistSeq, T)>,
}

impl<T> Default for DurabilityGate<T> {
    fn default() -> Self {
        DurabilityGate {
            issued: 0,
            durable: 0,
            held: VecDeque::new(),
        }
    }
}

impl<T> DurabilityGate<T> {
    /// A gate with nothing issued and nothing held.
    pub fn new() -> Self {
        Self::default()
    }

    /// Numbers the next persist; effects submitted from now on wait for it.
    pub fn persist(&mut self) -> PersistSeq {
        self.issued += 1;
        self.issued
    }

    /// Submits an effect. Returns it back when it may run at once (every persist issued
    /// so far is durable and nothing is held before it); otherwise holds it.
    pub fn submit(&mut self, effect: T) -> Option<T> {
        if !self.would_hold() {
            Some(effect)
        } else {
            self.held.push_back((self.issued, effect));
            None
        }
    }

    /// The storage side reports every persist numbered `<= upto` durable. Reports may
    /// arrive late or out of order: a report below an earlier one changes nothing.
    /// Effects that may now run are taken with [`DurabilityGate::pop_released`].
    ///
    /// A report above the highest number issued is a bug of the host (it would vouch for
    /// records nobody asked it to write); it is clamped, and panics in debug builds.
    pub fn durable(&mut self, upto: PersistSeq) {
        debug_assert!(
            upto <= self.issued,
            "durable({upto}) reported, but only {} persists were issued",
            self.issued
        );
        self.durable = self.durable.max(upto.min(self.issued));
    }

    /// The next held effect whose persists are all durable, in submission order.
    pub fn pop_released(&mut self) -> Option<T> {
        match self.held.front() {
            Some((need, _)) if *need <= self.durable => self.held.pop_front().map(|(_, e)| e),
            _ => None,
        }
    }

    /// Whether an effect submitted now would be held.
    pub fn would_hold(&self) -> bool {
        !self.held.is_empty() || self.issued > self.durable
    }

    /// The highest persist number issued (what the host's next storage group must cover).
    pub fn issued(&self) -> PersistSeq {
        self.issued
    }

    /// Every persist numbered at or below this is durable.
    pub fn durable_upto(&self) -> PersistSeq {
        self.durable
    }

    /// Effects waiting for durability.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Whether every persist issued is durable and nothing is held.
    pub fn is_settled(&self) -> bool {
        self.durable == self.issued && self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(g: &mut DurabilityGate<&'static str>) -> Vec<&'static str> {
        std::iter::from_fn(|| g.pop_released()).collect()
    }

    #[test]
    fn effects_run_at_once_while_nothing_is_pending() {
        let mut g = DurabilityGate::new();
        assert_eq!(g.submit("a"), Some("a"));
        let s = g.persist();
        g.durable(s);
        assert_eq!(g.submit("b"), Some("b"));
        assert!(g.is_settled());
    }

    #[test]
    fn an_effect_waits_for_every_persist_issued_before_it() {
        let mut g = DurabilityGate::new();
        let p1 = g.persist();
        assert!(
            !g.is_settled(),
            "a persist is pending, though nothing is held"
        );
        let p2 = g.persist();
        assert_eq!(g.submit("vote"), None);
        g.durable(p1);
        assert_eq!(drain(&mut g), Vec::<&str>::new(), "p2 is not durable yet");
        g.durable(p2);
        assert_eq!(drain(&mut g), vec!["vote"]);
    }

    #[test]
    fn persists_interleaved_with_sends_release_in_order_as_each_becomes_durable() {
        let mut g = DurabilityGate::new();
        assert_eq!(g.submit("status"), Some("status"));
        let block = g.persist();
        let guard = g.persist();
        assert_eq!(g.submit("vote 1"), None);
        let nota = g.persist();
        assert_eq!(g.submit("notarization"), None);
        assert_eq!(g.submit("status 2"), None);
        let fin = g.persist();
        assert_eq!(g.submit("finalized"), None);
        assert_eq!(g.held(), 4);

        g.durable(block);
        assert!(drain(&mut g).is_empty());
        g.durable(guard);
        assert_eq!(drain(&mut g), vec!["vote 1"]);
        g.durable(nota);
        assert_eq!(drain(&mut g), vec!["notarization", "status 2"]);
        g.durable(fin);
        assert_eq!(drain(&mut g), vec!["finalized"]);
        assert!(g.is_settled());
    }

    #[test]
    fn a_durable_report_covering_several_groups_releases_them_all_in_order() {
        let mut g = DurabilityGate::new();
        g.persist();
        g.submit("a");
        g.persist();
        g.submit("b");
        g.persist();
        g.submit("c");
        g.durable(3);
        assert_eq!(drain(&mut g), vec!["a", "b", "c"]);
    }

    #[test]
    fn late_and_out_of_order_reports_never_move_durability_back() {
        let mut g = DurabilityGate::new();
        for _ in 0..4 {
            g.persist();
        }
        g.submit("after 4");
        g.durable(3);
        g.durable(1); // a late report of an earlier group
        assert_eq!(g.durable_upto(), 3);
        assert!(drain(&mut g).is_empty());
        g.durable(2);
        assert!(drain(&mut g).is_empty());
        g.durable(4);
        assert_eq!(drain(&mut g), vec!["after 4"]);
    }

    #[test]
    fn a_partial_report_releases_only_the_prefix_it_covers() {
        let mut g = DurabilityGate::new();
        g.persist();
        g.submit("a");
        g.persist();
        g.submit("b");
        g.durable(1);
        assert_eq!(drain(&mut g), vec!["a"]);
        assert_eq!(g.held(), 1);
        assert!(!g.is_settled());
    }

    #[test]
    fn nothing_overtakes_a_held_effect() {
        let mut g = DurabilityGate::new();
        let p = g.persist();
        assert_eq!(g.submit("held"), None);
        g.durable(p);
        // Durable, but "held" has not been taken yet: a new effect queues behind it.
        assert_eq!(g.submit("later"), None);
        assert_eq!(drain(&mut g), vec!["held", "later"]);
    }

    #[test]
    #[cfg_attr(
        debug_assertions,
        should_panic(expected = "only 1 persists were issued")
    )]
    fn a_report_beyond_what_was_issued_is_a_host_bug() {
        let mut g: DurabilityGate<()> = DurabilityGate::new();
        g.persist();
        g.durable(5);
        assert_eq!(g.durable_upto(), 1, "clamped in release builds");
    }
}
