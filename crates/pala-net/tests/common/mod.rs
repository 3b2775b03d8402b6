//! Helpers for the loopback tests: nodes with short deadlines, raw clients for attacks.

#![allow(dead_code)]

use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::LocalExecutorBuilder;
use pala_net::handshake::{caps, HandshakeContext};
use pala_net::tls::{client_config, server_name};
use pala_net::{Admission, AdmitAll, CommitteeAdmission, NetConfig, NetEvent, Network, RateLimits};
use pala_types::insecure::{InsecureTestScheme, InsecureTestSigner};
use pala_types::{
    Block, BlockHeader, BlockSn, Committee, ConsensusInfo, Epoch, Hash, Member, Message, NodeId,
    Proposal, Signature, Signer, Status,
};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const NET: u64 = 7;

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Short deadlines so that every test finishes in seconds.
pub fn cfg(listen: bool) -> NetConfig {
    NetConfig {
        network_id: NET,
        listen: listen.then(|| "127.0.0.1:0".parse().unwrap()),
        handshake_timeout: Duration::from_secs(3),
        read_timeout: Duration::from_secs(10),
        write_timeout: Duration::from_secs(3),
        dial_timeout: Duration::from_millis(500),
        dial_backoff_step: Duration::from_millis(50),
        dial_backoff_max: Duration::from_millis(200),
        dial_burst: Duration::from_secs(1),
        reconnect_period: Duration::from_millis(300),
        rate_limits: RateLimits::unlimited(),
        ..NetConfig::default()
    }
}

pub struct Keys {
    pub scheme: InsecureTestScheme,
}

impl Keys {
    pub fn new() -> Self {
        Keys {
            scheme: InsecureTestScheme::new(),
        }
    }

    pub fn signer(&self, seed: u64) -> Arc<InsecureTestSigner> {
        Arc::new(self.scheme.keypair(seed))
    }

    pub fn id(&self, seed: u64) -> NodeId {
        self.scheme.keypair(seed).node_id()
    }

    pub fn start(&self, seed: u64, cfg: NetConfig, admission: Arc<dyn Admission>) -> Network {
        Network::start(
            cfg,
            self.signer(seed),
            Arc::new(self.scheme.clone()),
            admission,
        )
        .expect("network starts")
    }

    /// A committee with the given proposer and voter seeds.
    pub fn committee(&self, proposers: &[u64], voters: &[u64]) -> Committee {
        let m = |s: &u64| {
            Member::new(
                self.scheme.keypair(*s).public_key().clone(),
                Signature::default(),
                1,
                "",
            )
        };
        Committee {
            session: 1,
            proposers: proposers.iter().map(m).collect(),
            voters: voters.iter().map(m).collect(),
            counting: Default::default(),
        }
    }

    pub fn admission(&self, proposers: &[u64], voters: &[u64]) -> Arc<dyn Admission> {
        Arc::new(CommitteeAdmission::new(&self.committee(proposers, voters)))
    }

    pub fn ctx(&self, seed: u64, version: u16, network_id: u64) -> HandshakeContext {
        HandshakeContext {
            signer: self.signer(seed),
            scheme: Arc::new(self.scheme.clone()),
            hello: pala_net::Hello {
                version,
                network_id,
                capabilities: caps::CHAIN_SYNC_V2,
            },
            admission: Arc::new(AdmitAll),
        }
    }
}

pub fn status(n: u64) -> Message {
    Message::Status(Status {
        head: BlockSn::new(1, 1, n as u32),
        head_height: n,
        epoch: Epoch::new(1, 1),
        finalized: BlockSn::new(1, 1, 1),
    })
}

/// A proposal whose frame is about `size` bytes.
pub fn sized_message(size: usize) -> Message {
    let header = BlockHeader {
        sn: BlockSn::new(1, 1, 1),
        parent_sn: BlockSn::GENESIS,
        parent_hash: Hash::ZERO,
        height: 1,
        session_offset: 1,
        timestamp_ms: 0,
        state: pala_types::StateCommitment::NONE,
    };
    let probe = |n: usize| {
        Message::Proposal(Proposal {
            proposer: NodeId([1; 20]),
            signature: Signature(vec![0; 32]),
            block: Arc::new(Block::new(
                header.clone(),
                vec![vec![0xab; n]],
                ConsensusInfo::default(),
            )),
        })
    };
    let mut out = Vec::new();
    probe(0).encode_payload(&mut out);
    let overhead = out.len() + 7 + 4;
    probe(size.saturating_sub(overhead))
}

/// Waits for the first event matching `pred`, skipping others.
pub fn wait_event(
    net: &Network,
    timeout: Duration,
    mut pred: impl FnMut(&NetEvent) -> bool,
) -> Option<NetEvent> {
    let end = Instant::now() + timeout;
    loop {
        let left = end.checked_duration_since(Instant::now())?;
        match net.events().recv_timeout(left) {
            Ok(e) if pred(&e) => return Some(e),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

pub fn wait_up(net: &Network, peer: NodeId, timeout: Duration) -> bool {
    wait_event(
        net,
        timeout,
        |e| matches!(e, NetEvent::PeerUp { peer: p, .. } if *p == peer),
    )
    .is_some()
}

pub fn wait_message(net: &Network, from: NodeId, timeout: Duration) -> Option<Message> {
    match wait_event(
        net,
        timeout,
        |e| matches!(e, NetEvent::Message { peer, .. } if *peer == from),
    ) {
        Some(NetEvent::Message { message, .. }) => Some(message),
        _ => None,
    }
}

pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

/// Runs `f` on a fresh glommio executor thread and returns its result.
pub fn on_glommio<F, Fut, T>(f: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    LocalExecutorBuilder::default()
        .spawn(f)
        .expect("executor")
        .join()
        .expect("join")
}

/// Starts `f` on a glommio executor thread without waiting for it.
pub fn spawn_glommio<F, Fut>(f: F) -> glommio::ExecutorJoinHandle<()>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    LocalExecutorBuilder::default().spawn(f).expect("executor")
}

pub async fn tls_connect(addr: SocketAddr) -> futures_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("tcp connect");
    futures_rustls::TlsConnector::from(client_config().unwrap())
        .connect(server_name(), tcp)
        .await
        .expect("tls connect")
}

/// True when the stream reports end of file or an error within `timeout` (the server
/// closed it), false when it stays open.
pub async fn closed_within<R: futures_lite::io::AsyncRead + Unpin>(
    r: &mut R,
    timeout: Duration,
) -> bool {
    let mut b = [0u8; 4096];
    let end = Instant::now() + timeout;
    loop {
        let left = match end.checked_duration_since(Instant::now()) {
            Some(l) => l,
            None => return false,
        };
        let read = async { Some(r.read(&mut b).await) };
        let sleep = async {
            glommio::timer::sleep(left).await;
            None
        };
        match futures_lite::future::or(read, sleep).await {
            None => return false,
            Some(Ok(0)) | Some(Err(_)) => return true,
            Some(Ok(_)) => continue,
        }
    }
}

pub async fn write_all<W: futures_lite::io::AsyncWrite + Unpin>(
    w: &mut W,
    b: &[u8],
) -> std::io::Result<()> {
    w.write_all(b).await?;
    w.flush().await
}
