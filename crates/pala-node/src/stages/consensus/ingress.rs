//! What goes into the consensus stage.

use crate::chain_view::ChainView;
use pala_core::Input;
use pala_types::NodeId;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A message into the consensus stage's inbox.
#[derive(Debug)]
pub enum ConsensusMessage {
    /// A verified message or a peer event, for the core.
    Input(Input),
    /// An outbound connection to a configured bootnode came up: that peer stays connected
    /// when a reconfiguration ends (C-5), whatever committee it is in.
    BootnodePeer(NodeId),
    /// The network layer's answer to the stage's request to listen (C-3 step 3).
    Listening {
        /// The session whose committee made this node a proposer.
        session: u32,
        /// The address asked for.
        addr: SocketAddr,
        /// The bound address, or why listening failed.
        result: Result<SocketAddr, String>,
    },
    /// A client at this address proved this node's own key (another instance runs it).
    OwnKeyElsewhere(SocketAddr),
    /// Stop proposing (payload requests are no longer answered) and show it in the status.
    StopProposing,
    /// Transactions arrived in an empty pool: a block in wait may be cut now.
    TransactionsWaiting,
    /// Build the chain view (`GET /chain`) and send it back here; the asker waits a
    /// bounded time and drops the receiver when it gives up.
    ChainView(flume::Sender<ChainView>),
    /// Persist what is pending, release what it allows, and stop.
    Shutdown,
}

/// The consensus stage stopped.
#[derive(Debug, thiserror::Error)]
#[error("the consensus stage has stopped")]
pub struct ConsensusStopped;

/// The way into the consensus stage.
#[derive(Clone)]
pub struct ConsensusMailbox {
    pub(super) tx: flume::Sender<ConsensusMessage>,
}

impl ConsensusMailbox {
    /// From a thread (the verify stage, the node's owner): waits while the stage is
    /// behind, which is how the network's queue fills up and the peers slow down.
    pub fn send(&self, msg: ConsensusMessage) -> Result<(), ConsensusStopped> {
        self.tx.send(msg).map_err(|_| ConsensusStopped)
    }

    /// Never waits: a full inbox means the stage is busy and will look at the pool
    /// anyway when it gets through it.
    pub fn nudge(&self, msg: ConsensusMessage) {
        let _ = self.tx.try_send(msg);
    }

    /// Never waits: `false` when the inbox is full or the stage has stopped, so that a
    /// reader (the HTTP API) cannot hold up the senders that feed the core.
    pub fn offer(&self, msg: ConsensusMessage) -> bool {
        self.tx.try_send(msg).is_ok()
    }

    /// Messages queued.
    pub fn queued(&self) -> usize {
        self.tx.len()
    }
}

/// How the storage stage tells the consensus stage what is durable: a watermark it
/// raises and a wake-up. The consensus stage is the only reader.
#[derive(Clone)]
pub struct DurableNotifier {
    upto: Arc<AtomicU64>,
    wake: flume::Sender<()>,
}

/// The consensus stage's side of the durability signal.
pub struct DurableWatch {
    upto: Arc<AtomicU64>,
    wake: flume::Receiver<()>,
}

/// A connected notifier and watch.
pub fn durable_signal() -> (DurableNotifier, DurableWatch) {
    let upto = Arc::new(AtomicU64::new(0));
    // One pending wake-up is enough: the watch reads the watermark, not the messages.
    let (tx, rx) = flume::bounded(1);
    (
        DurableNotifier {
            upto: upto.clone(),
            wake: tx,
        },
        DurableWatch { upto, wake: rx },
    )
}

impl DurableNotifier {
    /// Every persist numbered `<= upto` is durable.
    pub fn durable(&self, upto: u64) {
        self.upto.fetch_max(upto, Ordering::Release);
        let _ = self.wake.try_send(());
    }
}

impl DurableWatch {
    /// The highest persist number known durable.
    pub fn upto(&self) -> u64 {
        self.upto.load(Ordering::Acquire)
    }

    /// Waits for the next report (returns at once if one came since the last call).
    pub async fn changed(&self) {
        if self.wake.recv_async().await.is_err() {
            // The storage stage is gone: nothing will become durable any more.
            std::future::pending::<()>().await
        }
    }
}
