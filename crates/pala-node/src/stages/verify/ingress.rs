//! The verify stage's control mailbox (its data input is the network's event queue).

use pala_core::Committees;

pub(super) enum VerifyControl {
    /// The core's committees changed: verify against these from the next batch on.
    Committees(Committees),
    /// Stop after the batch in hand.
    Stop,
}

/// The way to steer the verify stage.
#[derive(Clone)]
pub struct VerifyMailbox {
    pub(super) tx: flume::Sender<VerifyControl>,
}

impl VerifyMailbox {
    /// Publishes a snapshot of the core's committees (never blocks: the queue is
    /// unbounded and changes are rare, one per reconfiguration step).
    pub fn committees_changed(&self, committees: Committees) {
        let _ = self.tx.send(VerifyControl::Committees(committees));
    }

    pub(crate) fn stop(&self) {
        let _ = self.tx.send(VerifyControl::Stop);
    }
}
