//! State sync at start-up (W-12b, W-12f): before the node's stages start, a node whose
//! store holds no finalized block joins from a snapshot, and a node whose finalized head
//! no peer stores any more sets its data aside and does the same. Any other node (and any
//! node when no peer answers, as in a cluster restarting together) starts from its own
//! data after at most `state_sync.discovery_ms`, and at once when the first peer that
//! stores its finalized head answers.

use super::join::{JoinDeps, Session};
use super::wire::Holds;
use crate::app::{Application, KvStore};
use anyhow::Result;
use pala_net::PeerAddr;
use pala_storage::Storage;
use pala_types::{Committee, NodeId};
use std::path::Path;
use tracing::{info, warn};

/// The node's data as start-up opened it.
pub struct Data {
    /// The block store.
    pub storage: Storage,
    /// The application.
    pub app: KvStore,
}

/// Whom a starting node asks: its bootnodes, then the proposers of the committees it
/// knows (genesis, then what its store recorded: a restarted node's session may have
/// proposers the genesis file does not name), each once, never itself.
pub fn peers(
    me: NodeId,
    bootnodes: impl IntoIterator<Item = (PeerAddr, Option<NodeId>)>,
    committees: &[&Committee],
) -> Vec<(PeerAddr, Option<NodeId>)> {
    let mut peers: Vec<(PeerAddr, Option<NodeId>)> = bootnodes
        .into_iter()
        .filter(|(_, id)| *id != Some(me))
        .collect();
    for p in committees.iter().flat_map(|c| &c.proposers) {
        if p.id == me || p.address.is_empty() {
            continue;
        }
        match p.address.parse::<PeerAddr>() {
            Ok(a) if !peers.iter().any(|(b, _)| *b == a) => peers.push((a, Some(p.id))),
            _ => {}
        }
    }
    peers
}

/// Runs state sync at start-up; returns the data the node starts with. `reopen` opens
/// the (then empty) data directory again after the old contents were set aside.
pub fn at_start(
    deps: JoinDeps<'_>,
    data: Data,
    data_dir: &Path,
    key_file: &Path,
    reopen: impl FnOnce() -> Result<Data>,
) -> Result<Data> {
    let Data {
        mut storage,
        mut app,
    } = data;
    let range = storage.finalized_range();
    let own = match range {
        Some((_, hi)) => hi,
        None if app.applied_height() == 0 => {
            if super::join(deps, &mut app, &mut storage)?.is_none() {
                info!("no peer offered a state-sync snapshot: starting from genesis");
            }
            return Ok(Data { storage, app });
        }
        // Application state without blocks: not a state this code made; start as is.
        None => return Ok(Data { storage, app }),
    };
    let metrics = deps.metrics;
    let Some(mut session) = Session::start(deps, Holds::of(range))? else {
        return Ok(Data { storage, app });
    };
    let found = session.discover(Some(own));
    let Some(behind) = found.behind(own) else {
        session.shutdown();
        return Ok(Data { storage, app });
    };
    // Nothing is moved for an offer that does not check whole (for a later session, its
    // chain of committees from genesis included).
    let Some(confirmed) = session.confirm_best(&found, own) else {
        warn!(
            own_finalized = own,
            "no peer stores this node's finalized head {own}, and no snapshot above it \
             checked: starting from its own data (a restart asks again)"
        );
        session.shutdown();
        return Ok(Data { storage, app });
    };
    warn!(
        own_finalized = behind.own,
        peers = behind.peers,
        lowest_kept = behind.lowest_kept,
        snapshot = confirmed.height(),
        "this node's finalized head {} is older than anything its {} answering peer(s) still \
         store (the lowest kept height is {}): chain sync cannot serve it. Setting its data \
         aside and joining by state sync from snapshot {} (W-12f)",
        behind.own,
        behind.peers,
        behind.lowest_kept,
        confirmed.height()
    );
    storage.close()?;
    drop(app);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let moved = match super::set_aside(data_dir, key_file, now) {
        Ok(p) => p,
        Err(e) => {
            session.shutdown();
            return Err(e.context("setting the old data aside before joining by state sync"));
        }
    };
    metrics.state_sync_set_aside.inc();
    warn!(
        path = %moved.display(),
        "the old data of this node is in {}: nothing was deleted. Delete it once the node \
         runs (or keep its blocks: no peer stores them any more)",
        moved.display()
    );
    let Data {
        mut storage,
        mut app,
    } = reopen()?;
    session.set_holds(Holds::Nothing);
    let joined = session.join(Some(confirmed), own, &mut app, &mut storage);
    session.shutdown();
    if joined?.is_none() {
        warn!(
            "no snapshot above height {own} could be fetched: starting empty, from genesis. \
             The old data is in {}; a restart asks the peers again",
            moved.display()
        );
    }
    Ok(Data { storage, app })
}
