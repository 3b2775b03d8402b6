//! `GET /chain`: the chain view ([`crate::chain_view`]), asked of the consensus stage
//! through its inbox, with the last finalized blocks below the tree's root from storage.
//!
//! The stage builds the view only when asked, so a node nobody watches pays nothing. The
//! ask never waits for room in the inbox and the answer is awaited [`ASK_WAIT`] at most:
//! a busy stage gets a 503, never a hung request.

use super::api::Api;
use super::reply::json_response;
use super::service::Body;
use crate::chain_view::{block_view, BlockView, ChainView};
use crate::stages::consensus::ConsensusMessage;
use hyper::Response;
use serde_json::json;
use std::time::Duration;

/// How long the consensus stage has to answer.
pub const ASK_WAIT: Duration = Duration::from_secs(1);
/// Finalized blocks shown below the root of the block tree.
pub const FINALIZED_BELOW_ROOT: u64 = 32;

impl Api {
    pub(super) async fn chain(&self) -> Response<Body> {
        let (tx, rx) = flume::bounded(1);
        if !self.shared.consensus.offer(ConsensusMessage::ChainView(tx)) {
            return busy("the consensus stage is busy or stopping");
        }
        let mut view = match tokio::time::timeout(ASK_WAIT, rx.recv_async()).await {
            Ok(Ok(v)) => v,
            Ok(Err(_)) => return busy("the consensus stage is stopping"),
            Err(_) => return busy("the consensus stage did not answer within 1 s"),
        };
        let below = self.finalized_below(&view);
        view.blocks.splice(0..0, below);
        json_response(200, serde_json::to_value(&view).unwrap_or_default())
    }

    /// Up to [`FINALIZED_BELOW_ROOT`] finalized blocks just below the tree's root, oldest
    /// first; stops at the first height storage does not have yet.
    fn finalized_below(&self, view: &ChainView) -> Vec<BlockView> {
        let root = view.root.height;
        let mut out = Vec::new();
        for h in (root.saturating_sub(FINALIZED_BELOW_ROOT)..root).rev() {
            let block = if h == 0 {
                Some((*self.shared.genesis_block).clone())
            } else {
                self.shared.storage.finalized_block(h).ok().flatten()
            };
            let Some(b) = block else { break };
            out.push(block_view(&b, view.stop_offset, true, true));
        }
        out.reverse();
        out
    }
}

fn busy(why: &str) -> Response<Body> {
    json_response(503, json!({ "error": why }))
}
