//! The installed committees: what the verifier and the core know of each session.

use crate::fixture::*;
use pala_core::*;

/// Sessions are listed oldest first, and `retain_from` drops the older ones (R-3 keeps
/// the last two after a reconfiguration).
#[test]
fn committees_are_listed_oldest_first_and_old_ones_dropped() {
    let f = Fixture::new(1, 3, 2);
    let mut v = f.verifier.clone();
    for session in [2, 3] {
        let mut c = f.committee.clone();
        c.session = session;
        v.install(c);
    }
    let sessions = |cs: &Committees| cs.iter().map(|c| c.session).collect::<Vec<_>>();
    assert_eq!(sessions(v.committees()), [1, 2, 3]);
    let mut cs = v.committees().clone();
    cs.retain_from(2);
    assert_eq!(sessions(&cs), [2, 3]);
    assert!(cs.get(1).is_none() && cs.get(2).is_some());
}
