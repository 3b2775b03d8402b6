//! The API's state, shared by the routes and the handlers they call.

use super::auth::Auth;
use super::service::{HttpMetrics, Limits};
use super::HttpContext;
use crossbeam_channel::Sender;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

/// The API's state: the node's views and the server's limits.
pub struct Api {
    pub(super) shared: HttpContext,
    pub(super) auth: Arc<Auth>,
    pub(super) forward: Option<Sender<Vec<u8>>>,
    pub(super) limits: Limits,
    pub(super) metrics: Arc<HttpMetrics>,
    pub(super) streams: Arc<AtomicUsize>,
    /// Every metric of the node, served at `/metrics`.
    pub(super) registry: Registry,
}
