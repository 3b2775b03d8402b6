//! Caps on what strangers can make this node hold before they prove who they are: sockets
//! still in the handshake (per source and in total), accepted connections in total, and the
//! bytes of partly received frames over all peers. Each refusal is counted by the caller.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Why an accepted socket was closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Too many handshakes in progress over all sources.
    Handshakes,
    /// Too many handshakes in progress from this source.
    Source,
    /// Too many inbound connections (handshaking or established).
    Connections,
}

#[derive(Debug, Default)]
struct GateState {
    per_source: HashMap<IpAddr, usize>,
    handshakes: usize,
    inbound: usize,
}

/// Admission of accepted sockets, before TLS: the only work a stranger gets for free is
/// an accept and a close once the caps are reached.
#[derive(Debug)]
pub(crate) struct InboundGate {
    max_handshakes: usize,
    max_per_source: usize,
    max_inbound: usize,
    state: Mutex<GateState>,
}

/// IPv6 hosts usually own a whole /64, so a source is counted by its /64 prefix.
fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

impl InboundGate {
    pub(crate) fn new(max_handshakes: usize, max_per_source: usize, max_inbound: usize) -> Self {
        InboundGate {
            max_handshakes: max_handshakes.max(1),
            max_per_source: max_per_source.max(1),
            max_inbound: max_inbound.max(1),
            state: Mutex::new(GateState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A permit for a socket accepted from `ip`, or why it must be closed now.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<InboundPermit, Refused> {
        let source = source_of(ip);
        let mut s = self.lock();
        if s.inbound >= self.max_inbound {
            return Err(Refused::Connections);
        }
        if s.handshakes >= self.max_handshakes {
            return Err(Refused::Handshakes);
        }
        let n = s.per_source.entry(source).or_insert(0);
        if *n >= self.max_per_source {
            return Err(Refused::Source);
        }
        *n += 1;
        s.handshakes += 1;
        s.inbound += 1;
        Ok(InboundPermit {
            gate: self.clone(),
            source,
            handshaking: true,
        })
    }

    /// `(handshakes in progress, inbound connections)`.
    pub(crate) fn load(&self) -> (usize, usize) {
        let s = self.lock();
        (s.handshakes, s.inbound)
    }

    fn end_handshake(&self, s: &mut GateState, source: IpAddr) {
        s.handshakes = s.handshakes.saturating_sub(1);
        if let Some(n) = s.per_source.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                s.per_source.remove(&source);
            }
        }
    }
}

/// Held by an inbound connection for its whole life; its handshake slot is returned as
/// soon as the handshake ends, its connection slot when it is dropped.
#[derive(Debug)]
pub(crate) struct InboundPermit {
    gate: Arc<InboundGate>,
    source: IpAddr,
    handshaking: bool,
}

impl InboundPermit {
    pub(crate) fn handshake_done(&mut self) {
        if std::mem::take(&mut self.handshaking) {
            let mut s = self.gate.lock();
            self.gate.end_handshake(&mut s, self.source);
        }
    }
}

impl Drop for InboundPermit {
    fn drop(&mut self) {
        let mut s = self.gate.lock();
        if self.handshaking {
            self.gate.end_handshake(&mut s, self.source);
        }
        s.inbound = s.inbound.saturating_sub(1);
    }
}

/// Bytes of frame payload buffered over all connections before the frame is complete.
/// A peer that announces a large frame and trickles it holds memory for as long as its
/// read deadline; without a shared cap, a few peers hold max_payload each.
#[derive(Debug)]
pub struct FrameBudget {
    cap: usize,
    used: AtomicUsize,
}

impl FrameBudget {
    /// A budget of `cap` bytes.
    pub fn new(cap: usize) -> Self {
        FrameBudget {
            cap,
            used: AtomicUsize::new(0),
        }
    }

    /// Bytes reserved now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Reserves `n` bytes if they fit.
    pub fn try_reserve(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|t| *t <= self.cap)
            })
            .is_ok()
    }

    /// Returns `n` reserved bytes.
    pub fn release(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// Bytes one frame holds from a [`FrameBudget`]; returned when dropped.
pub(crate) struct Reservation<'a> {
    budget: Option<&'a FrameBudget>,
    bytes: usize,
}

impl<'a> Reservation<'a> {
    pub(crate) fn new(budget: Option<&'a FrameBudget>) -> Self {
        Reservation { budget, bytes: 0 }
    }

    /// Grows the reservation to `total` bytes; false when the budget is exhausted.
    pub(crate) fn grow_to(&mut self, total: usize) -> bool {
        let Some(b) = self.budget else {
            return true;
        };
        let more = total.saturating_sub(self.bytes);
        if more == 0 || b.try_reserve(more) {
            self.bytes = self.bytes.max(total);
            true
        } else {
            false
        }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if let Some(b) = self.budget {
            b.release(self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_caps_handshakes_per_source_and_in_total_and_connections() {
        let g = Arc::new(InboundGate::new(3, 2, 4));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        let mut a1 = g.admit(a).unwrap();
        let _a2 = g.admit(a).unwrap();
        assert_eq!(g.admit(a).unwrap_err(), Refused::Source);
        let _b1 = g.admit(b).unwrap();
        assert_eq!(g.admit(c).unwrap_err(), Refused::Handshakes);
        // A finished handshake frees its handshake slot but keeps its connection slot.
        a1.handshake_done();
        let _c1 = g.admit(c).unwrap();
        assert_eq!(g.load(), (3, 4));
        a1.handshake_done();
        assert_eq!(g.admit(c).unwrap_err(), Refused::Connections);
        drop(a1);
        assert_eq!(g.load(), (3, 3));
        drop(_a2);
        assert_eq!(g.load(), (2, 2));
        assert!(g.admit(a).is_ok());
    }

    #[test]
    fn ipv6_sources_are_counted_per_64_prefix() {
        let g = Arc::new(InboundGate::new(10, 1, 10));
        let _p = g.admit("2001:db8::1".parse().unwrap()).unwrap();
        assert_eq!(
            g.admit("2001:db8::2".parse().unwrap()).unwrap_err(),
            Refused::Source
        );
        assert!(g.admit("2001:db8:0:1::1".parse().unwrap()).is_ok());
    }

    #[test]
    fn frame_budget_reserves_and_releases() {
        let b = FrameBudget::new(100);
        {
            let mut r = Reservation::new(Some(&b));
            assert!(r.grow_to(60));
            let mut r2 = Reservation::new(Some(&b));
            assert!(!r2.grow_to(50));
            assert!(r2.grow_to(40));
            assert_eq!(b.used(), 100);
        }
        assert_eq!(b.used(), 0);
        assert!(Reservation::new(None).grow_to(usize::MAX));
    }
}
