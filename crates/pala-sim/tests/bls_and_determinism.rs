//! The simulator with real BLS signatures (pala-crypto) in place of the insecure test
//! scheme, and the determinism guarantee (same seed, same trace).

use pala_crypto::{BlsScheme, BlsSigner};
use pala_sim::{scenarios, Action, Byzantine, SchemeChoice, Sim, SimConfig};
use pala_types::{Signature, Signer};
use std::sync::Arc;

fn bls() -> SchemeChoice {
    SchemeChoice::Custom {
        scheme: Arc::new(BlsScheme::new()),
        keygen: Arc::new(|seed: u64| {
            let s = BlsSigner::from_seed(&seed.to_le_bytes());
            let pop: Signature = s.proof_of_possession(1);
            (Arc::new(s) as Arc<dyn Signer>, pop)
        }),
    }
}

#[test]
fn real_bls_cluster_finalizes() {
    let mut cfg = SimConfig::new(1, 2, 4);
    cfg.scheme = bls();
    cfg.block_time_ms = 20;
    let mut sim = Sim::new(cfg);
    assert!(sim.run_until(600), "{:?}", sim.violations);
    assert!(
        sim.min_honest_finalized() >= 5,
        "finalized {}",
        sim.min_honest_finalized()
    );
}

#[test]
fn real_bls_proposer_switch_and_forged_votes() {
    let mut cfg = SimConfig::new(2, 2, 4);
    cfg.scheme = bls();
    cfg.block_time_ms = 20;
    cfg.byzantine.insert(5, Byzantine::ForgedIds);
    let mut sim = Sim::new(cfg);
    sim.schedule(200, Action::Crash(0));
    assert!(sim.run_until(1_200), "{:?}", sim.violations);
    let n = sim.node(2).unwrap();
    assert!(n.epoch().e >= 2, "epoch {:?}", n.epoch());
    assert!(
        n.finalized().epoch.e >= 2,
        "finality resumed under proposer 1: {:?}",
        n.finalized()
    );
    assert!(
        sim.rejected
            .keys()
            .any(|k| k.contains("bad vote signature")),
        "{:?}",
        sim.rejected
    );
}

#[test]
fn same_seed_same_trace() {
    let a = scenarios::run("random", 17, true).unwrap();
    let b = scenarios::run("random", 17, true).unwrap();
    assert!(!a.sim.trace.is_empty());
    assert_eq!(a.sim.trace, b.sim.trace);
    let c = scenarios::run("random", 18, true).unwrap();
    assert_ne!(a.sim.trace, c.sim.trace);
}
