//! Keys, the committee and the cores of a run, and the no-crypto scheme.

use pala_core::{Committees, CoreConfig, MessageVerifier, NoArchive, Node, NodeParams};
use pala_types::insecure::InsecureTestScheme;
use pala_types::{
    Block, Committee, Domain, Member, PreparedKeys, PublicKey, Signature, SignatureScheme, Signer,
    SignerBitmap, VoteCounting,
};
use std::sync::Arc;

use super::{PocParams, SchemeKind, NETWORK_ID};

/// Scheme, proposer key, voter keys and the committee they form.
pub(super) type Keys = (
    Arc<dyn SignatureScheme>,
    Arc<dyn Signer>,
    Vec<Arc<dyn Signer>>,
    Committee,
);

/// Session 1 with `keys[0]` as the proposer and the rest as voters (one seat each).
pub(super) fn one_proposer_committee(
    keys: Vec<Arc<dyn Signer>>,
    member: impl Fn(&Arc<dyn Signer>) -> Member,
) -> (Arc<dyn Signer>, Vec<Arc<dyn Signer>>, Committee) {
    let committee = Committee {
        session: 1,
        proposers: vec![member(&keys[0])],
        voters: keys[1..].iter().map(&member).collect(),
        counting: VoteCounting::Seat,
    };
    let mut keys = keys.into_iter();
    let proposer = keys.next().expect("proposer key");
    (proposer, keys.collect(), committee)
}

/// Keys, committee and the parameters every core needs.
pub(super) struct Setup {
    pub(super) kind: SchemeKind,
    pub(super) scheme: Arc<dyn SignatureScheme>,
    pub(super) committee: Committee,
    pub(super) proposer: Arc<dyn Signer>,
    pub(super) voters: Vec<Arc<dyn Signer>>,
    pub(super) committees: Committees,
    pub(super) genesis: Arc<Block>,
    pub(super) config: CoreConfig,
}

impl Setup {
    pub(super) fn new(p: &PocParams) -> Setup {
        let (scheme, proposer, voters, committee): Keys = match p.scheme {
            SchemeKind::Insecure => {
                let s = InsecureTestScheme::new();
                let keys = (0..=p.voters)
                    .map(|i| Arc::new(s.keypair(i as u64)) as Arc<dyn Signer>)
                    .collect();
                let (prop, voters, committee) = one_proposer_committee(keys, |k| {
                    let pop = k.sign(Domain::ProofOfPossession, NETWORK_ID, &k.public_key().0);
                    Member::new(k.public_key().clone(), pop, 1, "")
                });
                (Arc::new(s), prop, voters, committee)
            }
            SchemeKind::None => {
                let keys = (0..=p.voters)
                    .map(|i| Arc::new(NoCryptoSigner::new(i as u64)) as Arc<dyn Signer>)
                    .collect();
                let (prop, voters, committee) = one_proposer_committee(keys, |k| {
                    Member::new(k.public_key().clone(), sig48(), 1, "")
                });
                (Arc::new(NoCrypto), prop, voters, committee)
            }
            SchemeKind::Bls => {
                let (committee, ps, vs) = pala_crypto::seeded_committee(
                    "pala-bench-poc",
                    1,
                    1,
                    p.voters,
                    NETWORK_ID,
                    VoteCounting::Seat,
                );
                let prop: Arc<dyn Signer> = Arc::new(ps.into_iter().next().expect("proposer"));
                let voters = vs
                    .into_iter()
                    .map(|v| Arc::new(v) as Arc<dyn Signer>)
                    .collect();
                (
                    Arc::new(pala_crypto::BlsScheme::new()),
                    prop,
                    voters,
                    committee,
                )
            }
        };
        let mut committees = Committees::default();
        committees.install(scheme.as_ref(), committee.clone());
        Setup {
            kind: p.scheme,
            scheme,
            proposer,
            voters,
            committee,
            committees,
            genesis: Arc::new(Block::genesis(b"pala-bench-poc".to_vec())),
            config: CoreConfig {
                network_id: NETWORK_ID,
                k: p.k,
                // The readiness gate only needs the voters' first statuses here.
                first_proposal_delay_ms: 10,
                ..CoreConfig::default()
            },
        }
    }

    pub(super) fn node(&self, signer: &Arc<dyn Signer>) -> Node {
        Node::new(NodeParams {
            config: self.config.clone(),
            signer: signer.clone(),
            scheme: self.scheme.clone(),
            committees: self.committees.clone(),
            genesis: self.genesis.clone(),
            archive: Arc::new(NoArchive),
        })
    }

    /// A verifier with caches of its own: `BlsScheme` remembers decoded keys and
    /// verified notarizations, and in a real network every node pays for its own checks,
    /// so voters sharing a worker thread must not share those caches.
    pub(super) fn verifier(&self) -> MessageVerifier {
        match self.kind {
            SchemeKind::Bls => {
                let scheme: Arc<dyn SignatureScheme> = Arc::new(pala_crypto::BlsScheme::new());
                let mut committees = Committees::default();
                committees.install(scheme.as_ref(), self.committee.clone());
                MessageVerifier::new(scheme, NETWORK_ID, committees)
            }
            // No caches to share.
            SchemeKind::Insecure | SchemeKind::None => {
                MessageVerifier::new(self.scheme.clone(), NETWORK_ID, self.committees.clone())
            }
        }
    }
}

// ---------------------------------------------------------------------------- no crypto

/// A signature scheme that accepts everything (`--scheme none`): signatures are 48 zero
/// bytes, the size of a BLS `min_sig` signature. It exists only to measure the protocol
/// core and the harness without any signature cost; never a node configuration.
pub struct NoCrypto;

/// A key of [`NoCrypto`]: a distinct public key per seed, so node ids differ.
pub struct NoCryptoSigner {
    pub(super) public: PublicKey,
}

impl NoCryptoSigner {
    /// The key of `seed`.
    pub fn new(seed: u64) -> Self {
        let mut pk = vec![0u8; 96];
        pk[..8].copy_from_slice(&seed.to_le_bytes());
        NoCryptoSigner {
            public: PublicKey(pk),
        }
    }
}

pub(super) fn sig48() -> Signature {
    Signature(vec![0; 48])
}

impl Signer for NoCryptoSigner {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }
    fn sign(&self, _: Domain, _: u64, _: &[u8]) -> Signature {
        sig48()
    }
}

impl PreparedKeys for NoCrypto {
    fn len(&self) -> usize {
        usize::MAX
    }
    fn verify_subset(
        &self,
        _: &SignerBitmap,
        _: Option<&PublicKey>,
        _: Domain,
        _: u64,
        _: &[u8],
        _: &Signature,
    ) -> bool {
        true
    }
}

impl SignatureScheme for NoCrypto {
    fn name(&self) -> &'static str {
        "none (benchmark only)"
    }
    fn check_public_key(&self, _: &PublicKey) -> bool {
        true
    }
    fn verify(&self, _: &PublicKey, _: Domain, _: u64, _: &[u8], _: &Signature) -> bool {
        true
    }
    fn aggregate(&self, sigs: &[&Signature]) -> Option<Signature> {
        sigs.first().map(|s| (*s).clone())
    }
    fn verify_same_message(
        &self,
        _: &[&PublicKey],
        _: Domain,
        _: u64,
        _: &[u8],
        _: &Signature,
    ) -> bool {
        true
    }
    fn prepare_keys(&self, _: &[PublicKey]) -> Arc<dyn PreparedKeys> {
        Arc::new(NoCrypto)
    }
}
