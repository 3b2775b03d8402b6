//! How a stage stops the node: a message to the node's owner, which shuts down and
//! exits non-zero.

/// Where a stage reports an error the node cannot continue after (the node shuts down
/// and exits non-zero).
#[derive(Clone)]
pub struct Fatal {
    tx: crossbeam_channel::Sender<String>,
}

impl Fatal {
    /// A reporter and the receiver the node's owner waits on.
    pub fn channel() -> (Fatal, crossbeam_channel::Receiver<String>) {
        let (tx, rx) = crossbeam_channel::bounded(4);
        (Fatal { tx }, rx)
    }

    /// Reports `msg` (logged here; the first few reach the receiver).
    pub fn fail(&self, msg: String) {
        tracing::error!("{msg}");
        let _ = self.tx.try_send(msg);
    }
}
