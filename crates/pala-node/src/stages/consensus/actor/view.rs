//! The chain view (`GET /chain`), built when asked from the core's read-only accessors,
//! and the epoch changes it shows, recorded as the core reports them.

use super::Loop;
use crate::chain_view::{member_name, tree_view, BlockRef, ChainView, EpochChange, PeerView};
use pala_types::Epoch;

impl Loop {
    /// Records the move of the local epoch to `epoch` with its cause and the time.
    pub(super) fn note_epoch_change(&mut self, epoch: Epoch) {
        let c = &self.core;
        let committee = c.committees().get(epoch.session).map(|c| &**c);
        let change = EpochChange::new(
            epoch,
            self.epoch,
            c.epoch_proof(),
            committee,
            &c.id(),
            self.host.wall.now_ms(),
        );
        self.epochs.push(change);
        self.epoch = epoch;
    }

    pub(super) fn chain_view(&self) -> ChainView {
        let c = &self.core;
        let epoch = c.epoch();
        let committee = c.committees().get(epoch.session).map(|c| &**c);
        let tree = tree_view(
            c.chain(),
            epoch,
            c.config().stop_offset,
            c.unnotarized_proposals(),
        );
        ChainView {
            id: c.id().to_hex(),
            name: member_name(committee, &c.id()),
            role: self.role.as_str().into(),
            epoch: (epoch.session, epoch.e),
            k: c.config().k,
            stop_offset: c.config().stop_offset,
            producing: c.is_producing(),
            head: BlockRef::of(c.head_block()),
            finalized: BlockRef::of(c.finalized_block()),
            root: BlockRef::of(c.chain().root_block()),
            blocks: tree.blocks,
            blocks_left_out: tree.left_out,
            peers: c
                .peer_statuses()
                .map(|(id, connected, status)| PeerView::new(id, committee, connected, status))
                .collect(),
            epoch_changes: self.epochs.newest_first(),
            now_unix_ms: self.host.wall.now_ms(),
        }
    }
}
