//! The irreducible BLS cost of a block, timed on this machine: what `pala bench poc
//! --scheme bls` and `pala bench cluster` compare the measured CPU per block with.

/// The BLS operations of one POC block, timed on this machine now.
pub struct BlsFloor {
    /// Median time of one signature.
    pub sign_us: f64,
    /// Median time of one single-signature verification (a proposal).
    pub verify_us: f64,
    /// Median time to aggregate V signatures of one message and check the aggregate
    /// against the V keys (the proposer's vote batch).
    pub aggregate_check_us: f64,
    /// Median time to check an already aggregated signature of all V voters against the
    /// committee's prepared keys (a voter's notarization check).
    pub notarization_check_us: f64,
    /// Median time to check a proposal signature and a notarization of all V voters in
    /// one random linear combination, as the node's voters check the two when they
    /// arrive together (`SignatureScheme::verify_with_quorums`).
    pub proposal_with_notarization_us: f64,
    /// The block's irreducible crypto: V x (verify the proposal + sign the vote + check
    /// the notarization) + 2 signatures + one aggregate check at the proposer.
    pub floor_us: f64,
}

/// Times the operations of [`BlsFloor`] with `voters` fresh keys.
pub fn measure_bls_floor(voters: usize) -> BlsFloor {
    use pala_crypto::{BlsScheme, BlsSigner};
    use pala_types::crypto::{Domain, SignatureScheme, Signer};
    use std::time::Instant;
    fn median_us(reps: usize, mut f: impl FnMut()) -> f64 {
        let mut t: Vec<f64> = (0..reps)
            .map(|_| {
                let t0 = Instant::now();
                f();
                t0.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        t.sort_by(f64::total_cmp);
        t[reps / 2]
    }
    let scheme = BlsScheme::new();
    let signers: Vec<BlsSigner> = (0..voters.max(1))
        .map(|i| BlsSigner::from_seed(format!("floor-{i}").as_bytes()))
        .collect();
    let pks: Vec<_> = signers.iter().map(|s| s.public_key().clone()).collect();
    let pk_refs: Vec<_> = pks.iter().collect();
    let msg = [7u8; 64];
    let sigs: Vec<_> = signers
        .iter()
        .map(|s| s.sign(Domain::Vote, 1, &msg))
        .collect();
    let sign_us = median_us(101, || {
        std::hint::black_box(signers[0].sign(Domain::Vote, 1, &msg));
    });
    let verify_us = median_us(101, || {
        assert!(scheme.verify(&pks[0], Domain::Vote, 1, &msg, &sigs[0]));
    });
    let refs: Vec<_> = sigs.iter().collect();
    let aggregate_check_us = median_us(31, || {
        let agg = scheme.aggregate(&refs).expect("valid signatures");
        assert!(scheme.verify_same_message(&pk_refs, Domain::Vote, 1, &msg, &agg));
    });
    // A voter checks a notarization against the committee's prepared keys (total key
    // minus the missing signers), not by adding up V keys.
    let agg = scheme.aggregate(&refs).expect("valid signatures");
    let prepared = scheme.prepare_keys(&pks);
    let mut everyone = pala_types::crypto::SignerBitmap::new(pks.len());
    for i in 0..pks.len() {
        everyone.insert(i);
    }
    let notarization_check_us = median_us(31, || {
        assert!(prepared.verify_subset(&everyone, None, Domain::Vote, 1, &msg, &agg));
    });
    let proposal_sig = signers[0].sign(Domain::Proposal, 1, &msg);
    let proposal_with_notarization_us = median_us(31, || {
        let single = [pala_types::BatchItem {
            public_key: &pks[0],
            domain: Domain::Proposal,
            msg: &msg,
            signature: &proposal_sig,
        }];
        let quorum = [pala_types::QuorumItem {
            keys: prepared.as_ref(),
            signers: &everyone,
            extra: None,
            domain: Domain::Vote,
            msg: &msg,
            signature: &agg,
        }];
        assert!(scheme.verify_with_quorums(1, &single, &quorum));
    });
    let v = voters as f64;
    BlsFloor {
        proposal_with_notarization_us,
        sign_us,
        verify_us,
        aggregate_check_us,
        notarization_check_us,
        floor_us: v * (verify_us + sign_us + notarization_check_us)
            + 2.0 * sign_us
            + aggregate_check_us,
    }
}
