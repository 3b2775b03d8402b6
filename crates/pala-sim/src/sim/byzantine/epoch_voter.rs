//! Voters that sign for other epochs: an epoch shifter sends each vote also relabelled
//! for the previous and the next epoch (the signature covers the block hash, so it
//! stays valid) and signs clock messages for an epoch it has not reached; a clock
//! replayer resends clock messages it signed long ago. Cores must neither count the
//! relabelled votes for another block nor let old clock messages move their epoch.

use super::super::Sim;
use pala_types::{BlockSn, ClockMessage, Domain, Epoch, Message, Vote};
use rand::Rng;

impl Sim {
    pub(in crate::sim) fn send_epoch_shifted(&mut self, i: usize, j: usize, msg: Message) {
        match &msg {
            Message::Vote(v) => {
                let e = v.sn.epoch;
                for shifted in [
                    Epoch::new(e.session, e.e.saturating_sub(1)),
                    Epoch::new(e.session, e.e + 1),
                ] {
                    let relabelled = Vote {
                        sn: BlockSn {
                            epoch: shifted,
                            s: v.sn.s,
                        },
                        ..v.clone()
                    };
                    self.send(i, j, Message::Vote(relabelled));
                }
            }
            Message::Clock(c) => {
                let ahead = Epoch::new(c.epoch.session, c.epoch.e + 1);
                let signer = self.nodes[i].signer.clone();
                let early = ClockMessage {
                    voter: c.voter,
                    epoch: ahead,
                    signature: signer.sign(
                        Domain::Clock,
                        self.cfg.core.network_id,
                        &ahead.signing_bytes(),
                    ),
                };
                self.send(i, j, Message::Clock(early));
            }
            _ => {}
        }
        self.send(i, j, msg)
    }

    pub(in crate::sim) fn send_clock_replayer(&mut self, i: usize, j: usize, msg: Message) {
        if let Message::Clock(c) = &msg {
            let clocks = &mut self.nodes[i].mem.clocks;
            if !clocks.contains(c) {
                clocks.push(c.clone());
                if clocks.len() > 16 {
                    clocks.remove(0);
                }
            }
        }
        self.send(i, j, msg)
    }

    /// On a timer: one old clock message to every neighbour.
    pub(in crate::sim) fn replay_clock(&mut self, i: usize) {
        let n = self.nodes[i].mem.clocks.len();
        if n == 0 {
            return;
        }
        let old = self.nodes[i].mem.clocks[self.rng.gen_range(0..n)].clone();
        for j in self.neighbours(i) {
            self.send(i, j, Message::Clock(old.clone()));
        }
    }
}
