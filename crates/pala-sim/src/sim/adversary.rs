//! The targeted network adversary: rules that withhold or delay chosen message kinds
//! from chosen senders to chosen receivers for a window of virtual time. Unlike uniform
//! loss, a rule can keep one node's notarizations from everyone for several epochs
//! while its proposals get through, or cut a→b while b→a stays up, which is what a
//! relay in the path or a selective DoS does to a real deployment.

use super::Sim;
use pala_types::Message;
use rand::Rng;

/// What a matching rule does to a message.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Withhold {
    /// The message is lost (the link stays up, so only resends and sync repair it).
    Drop,
    /// The message arrives this much later, overtaking nothing: later messages on the
    /// same link are not held behind it (a selective relay, not a slow TCP stream).
    Delay(u64),
}

/// One rule of the adversary. Empty `kinds`, `from` or `to` match everything.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkRule {
    /// Message kinds (`Message::kind`) the rule applies to.
    pub kinds: Vec<&'static str>,
    /// Senders.
    pub from: Vec<usize>,
    /// Receivers.
    pub to: Vec<usize>,
    /// Active from this virtual time...
    pub start: u64,
    /// ...until (excluded) this one.
    pub end: u64,
    /// Drop or delay.
    pub effect: Withhold,
    /// Probability that a matching message is affected (1.0: every one).
    pub prob: f64,
}

/// Kinds that answer a lagging node (status and sync, W-6): withholding them starves
/// catch-up while consensus traffic flows.
pub const SYNC_KINDS: [&str; 6] = [
    "status",
    "get_epoch",
    "epoch",
    "get_fresher_head",
    "fresher_head",
    "unnotarized_proposals",
];

/// Kinds of the clock (epoch change, E-rules).
pub const CLOCK_KINDS: [&str; 2] = ["clock", "clock_notarization"];

impl LinkRule {
    /// Drops every message of `kinds` from `from` to `to` in `[start, end)`.
    pub fn drop(
        kinds: &[&'static str],
        from: &[usize],
        to: &[usize],
        start: u64,
        end: u64,
    ) -> Self {
        LinkRule {
            kinds: kinds.to_vec(),
            from: from.to_vec(),
            to: to.to_vec(),
            start,
            end,
            effect: Withhold::Drop,
            prob: 1.0,
        }
    }

    fn matches(&self, now: u64, from: usize, to: usize, kind: &str) -> bool {
        (self.start..self.end).contains(&now)
            && (self.from.is_empty() || self.from.contains(&from))
            && (self.to.is_empty() || self.to.contains(&to))
            && (self.kinds.is_empty() || self.kinds.contains(&kind))
    }
}

impl Sim {
    /// The adversary's verdict on one send: None drops it, Some(extra) delays it by
    /// `extra` ms (0: untouched). The first matching rule that fires decides.
    pub(super) fn adversary_verdict(
        &mut self,
        from: usize,
        to: usize,
        msg: &Message,
    ) -> Option<u64> {
        let kind = msg.kind();
        let now = self.now;
        for k in 0..self.cfg.adversary.len() {
            let r = &self.cfg.adversary[k];
            if !r.matches(now, from, to, kind) {
                continue;
            }
            let (effect, prob) = (r.effect, r.prob);
            if prob < 1.0 && !self.rng.gen_bool(prob.max(0.0)) {
                continue;
            }
            self.adversary_hits += 1;
            return match effect {
                Withhold::Drop => None,
                Withhold::Delay(ms) => Some(ms),
            };
        }
        Some(0)
    }
}
