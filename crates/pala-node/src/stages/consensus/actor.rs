//! The consensus loop, on its own glommio executor.
//!
//! The loop awaits whichever comes first: a message in its inbox, a durability report
//! from storage, or its next deadline (the earliest timer, the pending payload's wait,
//! the next status snapshot) on a glommio timer. It never blocks the executor: network
//! commands are `try_send`, records go to an unbounded storage queue, finalized blocks
//! are awaited into the application's bounded queue, and the one request with a reply
//! (listening, C-3 step 3) is a task on this executor whose answer comes back as a
//! message into the inbox.

mod publish;
mod view;

use super::host::{PendingPayload, StageHost};
use super::ingress::{ConsensusMailbox, ConsensusMessage, DurableWatch};
use super::links::Links;
use crate::chain_view::EpochLog;
use crate::clock::Ticks;
use crate::membership::Membership;
use crate::mempool::MempoolHandle;
use crate::metrics::Metrics;
use crate::preflight::placement;
use crate::stages::application::{AppView, ApplicationMailbox};
use crate::status::StatusPublisher;
use anyhow::{anyhow, Result};
use futures_lite::future;
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder};
use pala_core::driver::{Driver, Event};
use pala_core::{Committees, Input, MessageVerifier, Node, Role, Tick};
use pala_net::NetCommand;
use pala_types::{Committee, Epoch, Message, SignatureScheme};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tracing::info;

/// How often the status snapshot and the gauges are refreshed.
const PUBLISH_EVERY_MS: Tick = 200;
/// Inputs taken from the inbox per round at most, so one storage group covers many.
const ROUND_MAX: usize = 1024;
/// How long a shutdown waits for the last records to become durable.
const DRAIN_WAIT: Duration = Duration::from_secs(10);
/// How long the network layer has to answer a request to listen.
const LISTEN_WAIT: Duration = Duration::from_secs(5);

/// What the stage is made of.
pub struct ConsensusDeps {
    /// The core, recovered from storage.
    pub core: Node,
    /// The consensus clock.
    pub ticks: Ticks,
    /// The inbox (see [`super::inbox`]).
    pub inbox: flume::Receiver<ConsensusMessage>,
    /// A mailbox of its own inbox, for replies that come back as messages.
    pub mailbox: ConsensusMailbox,
    /// Durability reports from the storage stage.
    pub durable: DurableWatch,
    /// Where the core's outputs go.
    pub host: StageHost,
    /// Whom the node admits, dials and keeps.
    pub links: Links,
    /// The genesis schedule of later sessions.
    pub schedule: BTreeMap<u32, Committee>,
    /// The verifier's scheme and network (the committees are the core's).
    pub scheme: Arc<dyn SignatureScheme>,
    /// The network id.
    pub network_id: u64,
    /// Called with a snapshot of the core's committees after each change (the verify
    /// stage's mailbox).
    pub committees_changed: Box<dyn Fn(Committees) + Send>,
    /// Called when a session ends here (C-3) with the core's proof that its stop block is
    /// final (C-9a), so that the session's proof is kept for joiners (W-12a).
    pub session_ended: Box<dyn Fn(u32, Vec<pala_types::NotarizedBlock>) + Send>,
    /// Finalized blocks go here, after durability.
    pub app: ApplicationMailbox,
    /// The applied height, for the status.
    pub app_view: AppView,
    /// The pool blocks are filled from.
    pub mempool: MempoolHandle,
    /// `block.max_txs`, `block.max_bytes`.
    pub block_limits: (usize, usize),
    /// The status snapshot this stage publishes.
    pub status: StatusPublisher,
    /// Metrics handle.
    pub metrics: Arc<Metrics>,
}

/// The running stage.
pub struct ConsensusStage {
    executor: ExecutorJoinHandle<()>,
}

impl ConsensusStage {
    /// Starts the stage on its own executor (pinned to `cpu` when given).
    pub fn spawn(deps: ConsensusDeps, cpu: Option<usize>) -> Result<ConsensusStage> {
        let executor = LocalExecutorBuilder::new(placement(cpu.map_or(-1, |c| c as i64)))
            .name("pala-consensus")
            .io_memory(64 << 10)
            .spawn(move || async move { Loop::new(deps).run().await })
            .map_err(|e| anyhow!("starting the consensus executor: {e}"))?;
        Ok(ConsensusStage { executor })
    }

    /// Waits until the stage has stopped (after [`ConsensusMessage::Shutdown`]).
    pub fn join(self) -> Result<()> {
        self.executor
            .join()
            .map_err(|e| anyhow!("the consensus executor failed: {e}"))
    }
}

struct Loop {
    core: Node,
    driver: Driver<NetCommand>,
    host: StageHost,
    d: Rest,
    local: VecDeque<Input>,
    role: Role,
    stopping: bool,
    shutdown: bool,
    next_publish: Tick,
    /// The local epoch as of the last epoch event, the `from` of the next change.
    epoch: Epoch,
    /// The last epoch changes, for the chain view.
    epochs: EpochLog,
}

/// The parts of [`ConsensusDeps`] the loop keeps as they are.
struct Rest {
    ticks: Ticks,
    inbox: flume::Receiver<ConsensusMessage>,
    mailbox: ConsensusMailbox,
    durable: DurableWatch,
    links: Links,
    schedule: BTreeMap<u32, Committee>,
    scheme: Arc<dyn SignatureScheme>,
    network_id: u64,
    committees_changed: Box<dyn Fn(Committees) + Send>,
    session_ended: Box<dyn Fn(u32, Vec<pala_types::NotarizedBlock>) + Send>,
    app: ApplicationMailbox,
    app_view: AppView,
    mempool: MempoolHandle,
    block_limits: (usize, usize),
    status: StatusPublisher,
    metrics: Arc<Metrics>,
}

enum Woke {
    Message(Option<ConsensusMessage>),
    Durable,
    Deadline,
}

impl Loop {
    fn new(d: ConsensusDeps) -> Loop {
        let role = d.core.role();
        let epoch = d.core.epoch();
        let epochs = EpochLog::new(epoch, d.host.wall.now_ms());
        Loop {
            core: d.core,
            driver: Driver::new(),
            host: d.host,
            d: Rest {
                ticks: d.ticks,
                inbox: d.inbox,
                mailbox: d.mailbox,
                durable: d.durable,
                links: d.links,
                schedule: d.schedule,
                scheme: d.scheme,
                network_id: d.network_id,
                committees_changed: d.committees_changed,
                session_ended: d.session_ended,
                app: d.app,
                app_view: d.app_view,
                mempool: d.mempool,
                block_limits: d.block_limits,
                status: d.status,
                metrics: d.metrics,
            },
            local: VecDeque::new(),
            role,
            stopping: false,
            shutdown: false,
            next_publish: 0,
            epoch,
            epochs,
        }
    }

    async fn run(mut self) {
        // W-2: bootnodes and the proposers in force, before the core starts talking.
        for c in self.d.links.bootnode_dials() {
            let _ = self.host.net.try_send(c);
        }
        for c in self.align() {
            let _ = self.host.net.try_send(c);
        }
        self.handle(Input::Start);
        self.end_round().await;
        while !self.shutdown {
            let woke = self.wait().await;
            match woke {
                Woke::Message(Some(m)) => self.take(m),
                Woke::Message(None) => self.shutdown = true,
                Woke::Durable | Woke::Deadline => {}
            }
            while self.local.len() < ROUND_MAX {
                match self.d.inbox.try_recv() {
                    Ok(m) => self.take(m),
                    Err(_) => break,
                }
            }
            self.driver.durable(self.d.durable.upto(), &mut self.host);
            let now = self.d.ticks.now();
            self.host.now = now;
            self.driver.fire_due(&mut self.core, now, &mut self.host);
            self.after_events();
            self.maybe_payload(now);
            while let Some(i) = self.local.pop_front() {
                self.handle(i);
                if self.local.is_empty() {
                    self.maybe_payload(self.d.ticks.now());
                }
            }
            self.end_round().await;
        }
        self.drain().await;
    }

    /// Waits for a message, a durability report or the next deadline.
    async fn wait(&self) -> Woke {
        let now = self.d.ticks.now();
        let mut deadline = self.next_publish;
        if let Some(t) = self.driver.next_deadline() {
            deadline = deadline.min(t);
        }
        if let Some(p) = self.host.payload {
            deadline = deadline.min(p.deadline.max(self.host.doppelganger.quiet_until()));
        }
        let sleep = Duration::from_millis(deadline.saturating_sub(now));
        let inbox = &self.d.inbox;
        let durable = &self.d.durable;
        future::or(
            async { Woke::Message(inbox.recv_async().await.ok()) },
            future::or(
                async {
                    durable.changed().await;
                    Woke::Durable
                },
                async {
                    glommio::timer::sleep(sleep).await;
                    Woke::Deadline
                },
            ),
        )
        .await
    }

    fn take(&mut self, m: ConsensusMessage) {
        match m {
            ConsensusMessage::Input(i) => {
                match &i {
                    Input::PeerConnected(p) => self.d.links.peer(*p, true),
                    Input::PeerDisconnected(p) => self.d.links.peer(*p, false),
                    Input::Message { from, msg } if matches!(**msg, Message::Status(_)) => {
                        self.d.links.answered(*from)
                    }
                    _ => {}
                }
                self.local.push_back(i)
            }
            ConsensusMessage::BootnodePeer(p) => self.d.links.bootnode_peer(p),
            ConsensusMessage::Listening {
                session,
                addr,
                result,
            } => self.d.links.listened(session, addr, result),
            ConsensusMessage::OwnKeyElsewhere(addr) => {
                self.host.doppelganger.own_key_elsewhere(addr)
            }
            ConsensusMessage::StopProposing => {
                // Stop proposing: a pending request is dropped, never answered.
                self.stopping = true;
                self.host.payload = None;
                self.publish();
            }
            // The round ends with `maybe_payload`, which is all this asks for.
            ConsensusMessage::TransactionsWaiting => {}
            ConsensusMessage::ChainView(reply) => {
                // The asker may have given up (its wait is bounded): nothing to do then.
                let _ = reply.try_send(self.chain_view());
            }
            ConsensusMessage::Shutdown => self.shutdown = true,
        }
    }

    fn handle(&mut self, input: Input) {
        let now = self.d.ticks.now();
        self.host.now = now;
        if let Input::Message { from, msg } = &input {
            self.host.doppelganger.inspect(from, msg);
            super::host::trace_pipeline("received", msg);
            if !super::commitment_gate::admits(&self.d.app_view, &self.host.metrics, from, msg) {
                return;
            }
        }
        self.driver
            .handle(&mut self.core, now, input, &mut self.host);
        self.after_events();
    }

    /// Answers the core's payload request (the block cadence, N-3): at once while there
    /// is something to carry or to finalize, that is transactions in the pool or blocks
    /// with transactions that are not final yet (their finality needs the K blocks after
    /// them, which should follow without waiting); otherwise when the block is full or
    /// the keep-alive wait (`block.max_wait_ms`) is over. The K window still bounds
    /// production, so the cadence follows the round trip to the voters by itself.
    fn maybe_payload(&mut self, now: Tick) {
        let Some(PendingPayload { sn, deadline }) = self.host.payload else {
            return;
        };
        if self.stopping || self.host.doppelganger.tripped() {
            self.host.payload = None;
            return;
        }
        if !self.host.doppelganger.may_sign(now) {
            return;
        }
        let (max_txs, max_bytes) = self.d.block_limits;
        let now_or_never = now >= deadline
            || !self.d.mempool.is_empty()
            || self.core.carries_unfinalized_transactions();
        let Some(txs) = self.d.mempool.take_block(max_txs, max_bytes, now_or_never) else {
            return;
        };
        self.host.payload = None;
        tracing::trace!(%sn, txs = txs.len(), "payload given");
        // The block at `sn` extends the head (N-1), so this is its height.
        let height = self.core.head_block().height() + 1;
        let state = self
            .d
            .app_view
            .commitment_for(height, self.core.config().k.max(1));
        let payload = self.host.payload_of(txs, state);
        self.driver
            .payload(&mut self.core, now, sn, payload, &mut self.host);
        self.after_events();
    }

    /// Handles the epoch and committee events of the last input, with the core at hand.
    fn after_events(&mut self) {
        while !self.host.events.is_empty() {
            for e in std::mem::take(&mut self.host.events) {
                self.event(e);
            }
        }
    }

    fn event(&mut self, e: Event) {
        match e {
            Event::EpochChanged(epoch) => {
                info!(?epoch, "epoch changed");
                self.note_epoch_change(epoch);
                self.update_role();
            }
            Event::CommitteeInstalled(c) => {
                info!(session = c.session, "committee installed");
                let ended = c.session.saturating_sub(1);
                if let Some(tail) = self.core.stop_proof(ended) {
                    (self.d.session_ended)(ended, tail.to_vec());
                }
                self.committees_changed();
                if let Some(addr) = self.d.links.listen_for(&c) {
                    self.listen(c.session, addr);
                }
                // C-3 step 3: admit the new members and connect to the new proposers,
                // once what led here is durable.
                for cmd in self.align() {
                    self.driver.after_persists(cmd, &mut self.host);
                }
                self.update_role();
            }
            Event::ReconfigurationEnded { session } => {
                // C-5: the new session is final; retired voters and proposers go. A
                // follower keeps its connections: they are how it syncs.
                info!(session, "reconfiguration ended");
                self.committees_changed();
                for cmd in self.align() {
                    self.driver.after_persists(cmd, &mut self.host);
                }
                self.update_role();
                if self.core.role_in(session) != Role::Follower {
                    for peer in self.d.links.retired() {
                        self.driver
                            .after_persists(NetCommand::Disconnect { peer }, &mut self.host);
                    }
                }
            }
        }
    }

    /// The sessions in force begin at the finalized head's (R-3, C-5).
    fn align(&mut self) -> Vec<NetCommand> {
        let floor = self.core.finalized().epoch.session.max(1);
        let m = Membership::new(
            self.core.id(),
            self.core.committees(),
            floor,
            &self.d.schedule,
        );
        self.d.links.align(&m)
    }

    /// The verify stage and the re-verification of deferred blocks (C-8) check against
    /// the core's committees from now on.
    fn committees_changed(&mut self) {
        let committees = self.core.committees().clone();
        self.host.verifier =
            MessageVerifier::new(self.d.scheme.clone(), self.d.network_id, committees.clone());
        (self.d.committees_changed)(committees);
    }

    /// Asks the network layer to listen; the answer comes back into the inbox.
    fn listen(&self, session: u32, addr: std::net::SocketAddr) {
        let (tx, rx) = flume::bounded(1);
        let cmd = NetCommand::Listen {
            addr,
            reply: Some(tx),
        };
        let mailbox = self.d.mailbox.clone();
        let reply = move |result| ConsensusMessage::Listening {
            session,
            addr,
            result,
        };
        if self.host.net.try_send(cmd).is_err() {
            let _ = mailbox.tx.try_send(reply(Err(
                "the network layer did not take the command".into()
            )));
            return;
        }
        glommio::spawn_local(async move {
            let answer = future::or(async { rx.recv_async().await.ok() }, async {
                glommio::timer::sleep(LISTEN_WAIT).await;
                None
            })
            .await;
            let result = match answer {
                Some(r) => r.map_err(|e| e.to_string()),
                None => Err("the network layer did not answer".into()),
            };
            let _ = mailbox.tx.send_async(reply(result)).await;
        })
        .detach();
    }

    /// Follows the role in the session of the local epoch, which is what the core acts
    /// on (it votes and proposes only as a member of that session's committee).
    fn update_role(&mut self) {
        let role = self.core.role();
        if role == self.role {
            return;
        }
        info!(
            session = self.core.epoch().session,
            from = self.role.as_str(),
            to = role.as_str(),
            "role changed"
        );
        self.role = role;
        self.publish();
    }

    /// Hands this round's records to storage, the released blocks to the application,
    /// and refreshes the status when it is due.
    async fn end_round(&mut self) {
        self.host.flush();
        for block in std::mem::take(&mut self.host.finalized) {
            if self.d.app.finalized(block).await.is_err() {
                break;
            }
        }
        let now = self.d.ticks.now();
        if now >= self.next_publish {
            self.publish();
            self.next_publish = now + PUBLISH_EVERY_MS;
        }
    }

    /// Shutdown: persist what is pending, wait until durable, release the last effects.
    async fn drain(&mut self) {
        self.host.flush();
        let issued = self.driver.gate().issued();
        let waited = future::or(
            async {
                while self.d.durable.upto() < issued {
                    self.d.durable.changed().await;
                }
                true
            },
            async {
                glommio::timer::sleep(DRAIN_WAIT).await;
                false
            },
        )
        .await;
        if !waited {
            tracing::warn!("shutdown: storage did not confirm the last records in time");
        }
        self.driver.durable(self.d.durable.upto(), &mut self.host);
        self.end_round().await;
        self.publish();
    }
}
