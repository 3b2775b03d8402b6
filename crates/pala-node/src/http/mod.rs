//! The HTTP API, on hyper 1.x over a small tokio runtime of its own (`http.threads`
//! workers); the consensus stages stay on their glommio executors and never share a
//! thread with it. The API is described by an OpenAPI 3 document, `openapi.json` beside
//! this file, served at `GET /openapi.json`.
//!
//! | method | path | what |
//! |---|---|---|
//! | POST | `/tx` | one or more key-value transactions, one JSON object per line |
//! | GET | `/tx/<hash>` | whether a transaction took effect |
//! | GET | `/status` | role, epoch, head, finalized height, peers |
//! | GET | `/block/<height>` | a finalized block |
//! | GET | `/kv/<key>` | a key of the replicated store |
//! | GET | `/stream` | finalized blocks as server-sent events |
//! | GET | `/chain` | the block tree above the finalized head, peers, epoch changes |
//! | GET | `/ui`, `/ui/ui.js`, `/ui/ui.css` | the live chain page, drawn from `/chain` |
//! | GET | `/metrics` | every metric, OpenMetrics text ([`crate::metrics`]) |
//! | GET | `/healthz`, `/readyz` | liveness; readiness (caught up) |
//! | GET | `/openapi.json` | the OpenAPI document |
//!
//! Modules: [`server`] accepts connections and enforces the limits, [`routes`] answers
//! requests, [`submit`] takes transactions, [`forward`] passes them on to the proposers,
//! [`auth`] decides who may write, [`client`] is the client the node, `pala demo` and
//! the tests use, [`sse`] streams blocks, [`chain`] asks the consensus stage for the
//! chain view and [`page`] serves the page that draws it.

mod api;
pub mod auth;
pub mod chain;
pub mod client;
mod conn;
pub mod forward;
pub mod page;
pub mod reply;
pub mod routes;
pub mod server;
mod service;
pub mod sse;
pub mod submit;

pub use client::{get_json, request, send, submit_txs};
pub use reply::block_json;

use crate::config::Config;
use crate::mempool::MempoolHandle;
use crate::metrics::Metrics;
use crate::stages::application::{AppView, ApplicationMailbox};
use crate::stages::consensus::ConsensusMailbox;
use crate::status::StatusReader;
use anyhow::Result;
use pala_net::NetMetrics;
use pala_storage::StorageReader;
use pala_types::Block;
use server::{HttpMetrics, Limits, Server};
use std::net::SocketAddr;
use std::sync::Arc;
use tracing::warn;

/// What the API reads and where it hands submissions: read-only views of the stages and
/// their mailboxes, never their state.
#[derive(Clone)]
pub struct HttpContext {
    /// The configuration in force.
    pub cfg: Config,
    /// Block 0.
    pub genesis_block: Arc<Block>,
    /// The node's metrics.
    pub metrics: Arc<Metrics>,
    /// The network layer's counters.
    pub net_metrics: Arc<NetMetrics>,
    /// The consensus stage's status snapshot.
    pub status: StatusReader,
    /// Where submitted transactions wait for a block.
    pub mempool: MempoolHandle,
    /// The applied state.
    pub app_view: AppView,
    /// Submission times and stream subscriptions go to the application stage.
    pub app: ApplicationMailbox,
    /// Finalized blocks.
    pub storage: StorageReader,
    /// Where the chain view is asked for (`GET /chain`).
    pub consensus: ConsensusMailbox,
}

/// The running API server.
pub struct HttpServer {
    server: Server,
    forwarder: Option<forward::Forwarder>,
}

impl HttpServer {
    /// Binds `addr` and starts the server (and the forwarder, if configured).
    pub fn start(shared: HttpContext, addr: SocketAddr) -> Result<HttpServer> {
        let auth = Arc::new(auth::Auth::from_config(&shared.cfg.http)?);
        if !addr.ip().is_loopback() && !auth.has_token() {
            warn!(
                http = %addr,
                "the HTTP API listens on a non-loopback address and anyone who reaches it may \
                 submit transactions: set http.auth_token_file (or http.auth_token)"
            );
        }
        let bound = Server::bind(addr, shared.cfg.http.threads)?;
        let forwarder = forward::Forwarder::start(&shared, auth.clone(), bound.addr())?;
        let metrics = Arc::new(HttpMetrics::default());
        let api = Arc::new(api::Api::new(
            shared.clone(),
            auth,
            forwarder.as_ref().map(|f| f.sender()),
            metrics.clone(),
        ));
        let handler: server::Handler = Arc::new(move |req| {
            let api = api.clone();
            Box::pin(async move { api.handle(req).await })
        });
        let server = bound.serve(Limits::from_config(&shared.cfg.http), handler, metrics);
        Ok(HttpServer { server, forwarder })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Stops accepting requests, closes the connections and stops the forwarder.
    pub fn stop(self) {
        self.server.stop();
        if let Some(f) = self.forwarder {
            f.stop();
        }
    }
}
