//! The driver kit's re-verification plumbing (C-8) around a real core: blocks of a
//! session whose committee arrives in the same sync response come back verified within
//! the same call.

use crate::fixture::*;
use pala_core::*;
use pala_types::*;
use std::sync::Arc;

/// A host whose verifier learns committees from the core's events, as the node's does.
struct Learning {
    verifier: MessageVerifier,
    reverified: usize,
    finalized: Vec<BlockSn>,
}

impl Host for Learning {
    type Effect = std::convert::Infallible;

    fn persist(&mut self, _: PersistSeq, _: StateChange) -> Durability {
        Durability::Durable
    }

    fn release(&mut self, effect: Released<Self::Effect>) {
        if let Released::Finalized { block, .. } = effect {
            self.finalized.push(block.sn());
        }
    }

    fn event(&mut self, event: Event) {
        if let Event::CommitteeInstalled(c) = event {
            self.verifier.install((*c).clone());
        }
    }

    fn payload(&mut self, _: Tick, _: BlockSn) -> Option<Payload> {
        None
    }

    fn reverify(&mut self, _: NodeId, sync: Message) -> Option<Verified<Message>> {
        self.reverified += 1;
        self.verifier.verify(sync).ok()
    }
}

#[test]
fn deferred_blocks_come_back_verified_once_their_committee_is_installed() {
    let mut f = Fixture::new(2, 3, 2);
    f.cfg.stop_offset = 5;
    f.schedule_same_members(2, false);
    let c1 = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 7);
    let s2 = f.chain(&c1[..7], Epoch::new(2, 1), 4);
    let all: Vec<&Arc<Block>> = c1.iter().chain(&s2).collect();
    let msg = f
        .verifier
        .verify(fresher(&all, &f))
        .expect("session 1 verifies");
    assert_eq!(msg.deferred().len(), 4, "session-2 blocks are kept aside");

    let mut host = Learning {
        verifier: f.verifier.clone(),
        reverified: 0,
        finalized: Vec::new(),
    };
    let (mut node, mut driver) = (f.node(2), Driver::new());
    let input = Input::Message { from: f.id(0), msg };
    driver.handle(&mut node, 0, input, &mut host);
    assert_eq!(host.reverified, 1);
    assert_eq!(
        node.head(),
        BlockSn::new(2, 1, 4),
        "fed back in the same call"
    );
    assert_eq!(node.finalized(), BlockSn::new(2, 1, 2));
    assert_eq!(host.finalized.last(), Some(&BlockSn::new(2, 1, 2)));
}

#[test]
fn blocks_whose_committee_the_host_lacks_stay_out() {
    let mut f = Fixture::new(2, 3, 2);
    f.cfg.stop_offset = 5;
    f.schedule_same_members(2, false);
    let c1 = f.chain(std::slice::from_ref(&f.genesis), Epoch::new(1, 1), 7);
    let s2 = f.chain(&c1[..7], Epoch::new(2, 1), 4);
    let all: Vec<&Arc<Block>> = c1.iter().chain(&s2).collect();
    let msg = f.verifier.verify(fresher(&all, &f)).unwrap();
    // A host whose verifier never learns session 2.
    struct Stubborn(MessageVerifier, usize);
    impl Host for Stubborn {
        type Effect = std::convert::Infallible;
        fn persist(&mut self, _: PersistSeq, _: StateChange) -> Durability {
            Durability::Durable
        }
        fn release(&mut self, _: Released<Self::Effect>) {}
        fn event(&mut self, _: Event) {}
        fn payload(&mut self, _: Tick, _: BlockSn) -> Option<Payload> {
            None
        }
        fn reverify(&mut self, _: NodeId, sync: Message) -> Option<Verified<Message>> {
            self.1 += 1;
            self.0.verify(sync).ok()
        }
    }
    let mut host = Stubborn(f.verifier.clone(), 0);
    let (mut node, mut driver) = (f.node(2), Driver::new());
    driver.handle(
        &mut node,
        0,
        Input::Message { from: f.id(0), msg },
        &mut host,
    );
    assert_eq!(host.1, 1, "asked once");
    assert_eq!(node.head().epoch.session, 1, "nothing of session 2 entered");
}
