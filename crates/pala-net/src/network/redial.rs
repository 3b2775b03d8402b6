//! When a dial loop tries again (W-2, S-5), as a pure schedule so the policy is tested
//! without sockets.
//!
//! A bootnode (and any address dialed without a committee role) follows W-2 as written: a
//! burst of retries with a linearly growing back-off, then the `RETRY_CONNECT` period
//! (15 s). A committee proposer is different: the chain needs it, and a proposer restarted
//! by its operator (a rolling upgrade) must see its voters back within about a voter
//! timeout, or killing the other proposer next stalls the chain for a whole period. So a
//! proposer is retried forever at a short interval: the same linear back-off, capped at
//! `proposer_redial_max` (1 s by default, at most half a voter timeout in the node),
//! jittered so that the voters of a cluster do not dial in lockstep. A refused connect is
//! one SYN and one RST, so the short interval costs nothing while the proposer is down;
//! a black-holed address costs one dial timeout per attempt.
//!
//! S-5 still holds where it matters: a handshake that fails for what the peer *is* (wrong
//! id, network, version, key, signature, not admitted) waits the full period, whatever the
//! policy, because retrying cannot change the answer and only loads the server's handshake
//! caps. A handshake cut short by the transport (the socket closed or timed out, TLS
//! aborted) is what a proposer that is shutting down or starting up looks like; under the
//! proposer policy it waits the capped interval instead.

use crate::handshake::HandshakeFailure;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

/// How a dial loop retries an address after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DialPolicy {
    /// W-2 as written: a burst of retries, then the reconnect period (bootnodes).
    Periodic,
    /// A committee proposer: retried at a short jittered interval for as long as it is
    /// dialed, so a restarted proposer is reached within about a voter timeout.
    Proposer,
}

/// What one attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Attempt {
    /// The address did not resolve or no TCP connect succeeded.
    ConnectFailed,
    /// A connection was made, but the handshake failed for this reason.
    HandshakeFailed(HandshakeFailure),
    /// A connection was established and has ended.
    Ran,
}

/// The timings of the schedule (from [`crate::NetConfig`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Timings {
    pub step: Duration,
    pub backoff_max: Duration,
    pub burst: Duration,
    pub period: Duration,
    pub proposer_max: Duration,
}

/// The retry state of one dial loop.
pub(super) struct Schedule {
    t: Timings,
    backoff: Duration,
    burst_start: Instant,
    jitter: u64,
}

/// A failure of the handshake that a retry cannot change (S-5: wait the full period).
fn is_refusal(f: HandshakeFailure) -> bool {
    !matches!(
        f,
        HandshakeFailure::Timeout
            | HandshakeFailure::Connect
            | HandshakeFailure::Io
            | HandshakeFailure::Tls
    )
}

impl Schedule {
    pub(super) fn new(mut t: Timings, now: Instant) -> Schedule {
        t.step = t.step.max(Duration::from_millis(1));
        t.proposer_max = t.proposer_max.max(t.step);
        Schedule {
            t,
            backoff: t.step,
            burst_start: now,
            // Per-process random keys: the voters of one cluster draw different jitter.
            jitter: RandomState::new().build_hasher().finish() | 1,
        }
    }

    /// How long to wait before the next attempt, after `attempt` under `policy` (which
    /// may change between attempts: a bootnode can become a proposer at a
    /// reconfiguration).
    pub(super) fn after(&mut self, policy: DialPolicy, attempt: Attempt, now: Instant) -> Duration {
        match attempt {
            Attempt::Ran => {
                self.backoff = self.t.step;
                self.burst_start = now;
                self.t.step
            }
            Attempt::HandshakeFailed(f) if is_refusal(f) => self.t.period,
            Attempt::HandshakeFailed(_) if policy == DialPolicy::Periodic => self.t.period,
            Attempt::HandshakeFailed(_) => self.jittered(self.t.proposer_max),
            Attempt::ConnectFailed => match policy {
                DialPolicy::Proposer => {
                    let d = self.backoff.min(self.t.proposer_max);
                    self.grow(self.t.proposer_max);
                    self.jittered(d)
                }
                DialPolicy::Periodic if now.duration_since(self.burst_start) < self.t.burst => {
                    let d = self.backoff;
                    self.grow(self.t.backoff_max);
                    d
                }
                DialPolicy::Periodic => self.t.period,
            },
        }
    }

    fn grow(&mut self, cap: Duration) {
        self.backoff = (self.backoff + self.t.step).min(cap.max(self.t.step));
    }

    /// `d` scaled into [d/2, d]: bounded above by the cap, never shorter than half of it.
    fn jittered(&mut self, d: Duration) -> Duration {
        // xorshift64: enough to spread voters apart, no dependency.
        let mut x = self.jitter;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.jitter = x;
        let half = d / 2;
        let nanos = half.as_nanos() as u64;
        half + Duration::from_nanos(if nanos == 0 { 0 } else { x % (nanos + 1) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timings() -> Timings {
        Timings {
            step: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            burst: Duration::from_secs(5),
            period: Duration::from_secs(15),
            proposer_max: Duration::from_secs(1),
        }
    }

    /// The total time of the waits after `n` refused connects, and the longest one.
    fn refused(policy: DialPolicy, n: usize) -> (Duration, Duration) {
        let start = Instant::now();
        let mut s = Schedule::new(timings(), start);
        let (mut now, mut longest) = (start, Duration::ZERO);
        for _ in 0..n {
            let d = s.after(policy, Attempt::ConnectFailed, now);
            longest = longest.max(d);
            now += d;
        }
        (now - start, longest)
    }

    #[test]
    fn a_bootnode_falls_back_to_the_reconnect_period_after_the_burst() {
        let (_, longest) = refused(DialPolicy::Periodic, 40);
        assert_eq!(longest, Duration::from_secs(15));
    }

    #[test]
    fn a_proposer_is_retried_within_the_cap_for_as_long_as_it_is_down() {
        // Two minutes of a proposer that refuses: never a wait above the cap, and the
        // waits settle near it (not at the burst's short steps).
        let (total, longest) = refused(DialPolicy::Proposer, 200);
        assert!(longest <= Duration::from_secs(1), "{longest:?}");
        assert!(total >= Duration::from_secs(90), "{total:?}");
    }

    #[test]
    fn proposer_waits_are_jittered_between_half_the_cap_and_the_cap() {
        let start = Instant::now();
        let mut s = Schedule::new(timings(), start);
        let waits: Vec<Duration> = (0..50)
            .map(|_| s.after(DialPolicy::Proposer, Attempt::ConnectFailed, start))
            .skip(20)
            .collect();
        assert!(waits
            .iter()
            .all(|d| *d >= Duration::from_millis(500) && *d <= Duration::from_secs(1)));
        assert!(waits.iter().any(|d| *d != waits[0]), "no jitter: {waits:?}");
    }

    #[test]
    fn a_handshake_refusal_waits_the_period_under_either_policy() {
        for policy in [DialPolicy::Periodic, DialPolicy::Proposer] {
            let now = Instant::now();
            let mut s = Schedule::new(timings(), now);
            for f in [
                HandshakeFailure::UnexpectedPeer,
                HandshakeFailure::NotAdmitted,
                HandshakeFailure::NetworkId,
                HandshakeFailure::BadSignature,
            ] {
                let d = s.after(policy, Attempt::HandshakeFailed(f), now);
                assert_eq!(d, Duration::from_secs(15), "{policy:?} {f:?}");
            }
        }
    }

    #[test]
    fn a_handshake_cut_by_the_transport_is_retried_soon_only_for_a_proposer() {
        let now = Instant::now();
        let mut s = Schedule::new(timings(), now);
        let cut = Attempt::HandshakeFailed(HandshakeFailure::Io);
        assert!(s.after(DialPolicy::Proposer, cut, now) <= Duration::from_secs(1));
        assert_eq!(
            s.after(DialPolicy::Periodic, cut, now),
            Duration::from_secs(15)
        );
    }

    #[test]
    fn an_ended_connection_restarts_the_burst() {
        let start = Instant::now();
        let mut s = Schedule::new(timings(), start);
        let late = start + Duration::from_secs(60);
        assert_eq!(
            s.after(DialPolicy::Periodic, Attempt::ConnectFailed, late),
            Duration::from_secs(15)
        );
        assert_eq!(
            s.after(DialPolicy::Periodic, Attempt::Ran, late),
            Duration::from_millis(100)
        );
        assert_eq!(
            s.after(DialPolicy::Periodic, Attempt::ConnectFailed, late),
            Duration::from_millis(100)
        );
    }
}
