//! **INSECURE** signature scheme for tests and large simulations only.
//!
//! A secret is four odd 64-bit lanes `s`; the signature of `msg` is the lane-wise
//! wrapping product `s · H(domain tag, msg)`, where `H` is blake3 of `msg` keyed with a
//! hash of the domain tag (which names the network id), every lane forced odd.
//! Aggregation is lane-wise addition, so an
//! aggregate over signers `S` equals `(Σ_{i∈S} s_i) · H(msg)`: verifying it costs one
//! hash and |S| additions, whatever the committee size. That is what makes simulations
//! and `pala bench poc` with hundreds of voters cheap.
//!
//! Verification looks the secret up in a registry shared by every key the scheme
//! instance created, so a node signing with its own key cannot pass for another one
//! (forged ids fail just as with BLS), a signature does not carry over to another
//! domain, network or message, and keys the registry does not know never verify. But it
//! offers **no security at all against a real adversary**: anyone holding the registry
//! can sign for every key, and since `H(msg)` is public and odd, a single signature
//! reveals the signer's secret (divide by `H(msg)` modulo 2^64). Never use it outside a
//! simulator, a benchmark or a test. The node uses `pala-crypto` (BLS12-381).

use crate::crypto::{
    Domain, PreparedKeys, PublicKey, Signature, SignatureScheme, Signer, SignerBitmap,
};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

const TAG_LEN: usize = 32;

/// Four 64-bit lanes: a secret, a message hash, a signature or an aggregate.
type Lanes = [u64; 4];

/// The insecure test scheme; clones share one key registry.
#[derive(Clone, Default)]
pub struct InsecureTestScheme {
    registry: Arc<RwLock<HashMap<PublicKey, Lanes>>>,
}

/// A secret key of [`InsecureTestScheme`].
#[derive(Clone)]
pub struct InsecureTestSigner {
    secret: Lanes,
    public: PublicKey,
}

impl InsecureTestScheme {
    /// A scheme with an empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates (and registers) the key pair derived from `seed`.
    pub fn keypair(&self, seed: u64) -> InsecureTestSigner {
        let seed_bytes =
            *blake3::hash(&[b"pala-insecure-sk".as_slice(), &seed.to_le_bytes()].concat())
                .as_bytes();
        // The public key (hence the node id) is derived as it always was, so simulation
        // seeds keep their node ids.
        let public = PublicKey(blake3::hash(&seed_bytes).as_bytes().to_vec());
        let secret = odd_lanes(&seed_bytes);
        self.registry
            .write()
            .expect("registry lock")
            .insert(public.clone(), secret);
        InsecureTestSigner { secret, public }
    }

    fn secret_of(&self, pk: &PublicKey) -> Option<Lanes> {
        self.registry
            .read()
            .expect("registry lock")
            .get(pk)
            .copied()
    }
}

/// Odd lanes: multiplying by an odd number is a bijection modulo 2^64, so distinct
/// secrets give distinct signatures of the same message and no lane collapses to zero.
fn odd_lanes(bytes: &[u8; 32]) -> Lanes {
    let mut l = sig_lanes(bytes).expect("32 bytes");
    for x in &mut l {
        *x |= 1;
    }
    l
}

fn sig_lanes(bytes: &[u8]) -> Option<Lanes> {
    if bytes.len() != TAG_LEN {
        return None;
    }
    let mut l = [0u64; 4];
    for (lane, chunk) in l.iter_mut().zip(bytes.chunks_exact(8)) {
        *lane = u64::from_le_bytes(chunk.try_into().expect("8-byte chunk"));
    }
    Some(l)
}

fn lanes_to_sig(l: Lanes) -> Signature {
    let mut b = Vec::with_capacity(TAG_LEN);
    for x in l {
        b.extend_from_slice(&x.to_le_bytes());
    }
    Signature(b)
}

fn add(a: &mut Lanes, b: &Lanes) {
    for (x, y) in a.iter_mut().zip(b) {
        *x = x.wrapping_add(*y);
    }
}

const DOMAINS: usize = 5;
const ALL_DOMAINS: [Domain; DOMAINS] = [
    Domain::Proposal,
    Domain::Vote,
    Domain::Clock,
    Domain::Handshake,
    Domain::ProofOfPossession,
];

fn domain_index(d: Domain) -> usize {
    match d {
        Domain::Proposal => 0,
        Domain::Vote => 1,
        Domain::Clock => 2,
        Domain::Handshake => 3,
        Domain::ProofOfPossession => 4,
    }
}

thread_local! {
    /// The per-domain hash keys of the last network id used on this thread.
    static MSG_KEYS: std::cell::RefCell<Option<(u64, [[u8; 32]; DOMAINS])>> =
        const { std::cell::RefCell::new(None) };
}

/// The key under which messages of `domain` on `network_id` are hashed: a hash of the
/// domain tag. Remembered per thread: hashing the ~80-byte tag along with every 32-byte
/// message tripled the hashing work of a signature check.
fn msg_key(domain: Domain, network_id: u64) -> [u8; 32] {
    MSG_KEYS.with_borrow_mut(|cached| {
        let (_, keys) = match cached {
            Some((net, _)) if *net == network_id => cached.as_ref().expect("matched"),
            _ => cached.insert((
                network_id,
                ALL_DOMAINS.map(|d| {
                    let mut h = blake3::Hasher::new();
                    h.update(b"pala-insecure-msg");
                    h.update(&d.tag(network_id));
                    *h.finalize().as_bytes()
                }),
            )),
        };
        keys[domain_index(domain)]
    })
}

/// `H(domain tag, msg)`: `msg` hashed under the key of its domain and network.
fn message_lanes(domain: Domain, network_id: u64, msg: &[u8]) -> Lanes {
    odd_lanes(blake3::keyed_hash(&msg_key(domain, network_id), msg).as_bytes())
}

/// Whether `sig` is `secret_sum · H(domain, msg)`.
fn check(secret_sum: &Lanes, domain: Domain, network_id: u64, msg: &[u8], sig: &Signature) -> bool {
    let Some(sig) = sig_lanes(&sig.0) else {
        return false;
    };
    let h = message_lanes(domain, network_id, msg);
    (0..4).all(|i| secret_sum[i].wrapping_mul(h[i]) == sig[i])
}

impl Signer for InsecureTestSigner {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }
    fn sign(&self, domain: Domain, network_id: u64, msg: &[u8]) -> Signature {
        let h = message_lanes(domain, network_id, msg);
        let mut t = self.secret;
        for (x, y) in t.iter_mut().zip(h) {
            *x = x.wrapping_mul(y);
        }
        lanes_to_sig(t)
    }
}

impl SignatureScheme for InsecureTestScheme {
    fn name(&self) -> &'static str {
        "insecure-test"
    }
    fn check_public_key(&self, pk: &PublicKey) -> bool {
        pk.0.len() == 32
    }
    fn verify(
        &self,
        pk: &PublicKey,
        domain: Domain,
        network_id: u64,
        msg: &[u8],
        sig: &Signature,
    ) -> bool {
        match self.secret_of(pk) {
            Some(sk) => check(&sk, domain, network_id, msg, sig),
            None => false,
        }
    }
    fn aggregate(&self, sigs: &[&Signature]) -> Option<Signature> {
        let mut acc = [0u64; 4];
        for s in sigs {
            add(&mut acc, &sig_lanes(&s.0)?);
        }
        Some(lanes_to_sig(acc))
    }
    fn verify_same_message(
        &self,
        pks: &[&PublicKey],
        domain: Domain,
        network_id: u64,
        msg: &[u8],
        sig: &Signature,
    ) -> bool {
        if pks.is_empty() {
            return false;
        }
        let mut sum = [0u64; 4];
        {
            let registry = self.registry.read().expect("registry lock");
            for pk in pks {
                match registry.get(*pk) {
                    Some(sk) => add(&mut sum, sk),
                    None => return false,
                }
            }
        }
        check(&sum, domain, network_id, msg, sig)
    }
    fn prepare_keys(&self, pks: &[PublicKey]) -> Arc<dyn PreparedKeys> {
        Arc::new(InsecurePreparedKeys {
            scheme: self.clone(),
            secrets: pks.iter().map(|pk| self.secret_of(pk)).collect(),
            keys: pks.to_vec(),
        })
    }
}

/// An ordered key list of [`InsecureTestScheme`] with the secrets looked up once, by
/// committee position, so that checking a notarization takes no lock and no map lookup
/// per signer.
struct InsecurePreparedKeys {
    scheme: InsecureTestScheme,
    /// `None` for keys the registry did not know when the list was prepared.
    secrets: Vec<Option<Lanes>>,
    keys: Vec<PublicKey>,
}

impl PreparedKeys for InsecurePreparedKeys {
    fn len(&self) -> usize {
        self.secrets.len()
    }
    fn verify_subset(
        &self,
        signers: &SignerBitmap,
        extra: Option<&PublicKey>,
        domain: Domain,
        network_id: u64,
        msg: &[u8],
        sig: &Signature,
    ) -> bool {
        if signers.len() != self.secrets.len() || (signers.count() == 0 && extra.is_none()) {
            return false;
        }
        let mut sum = [0u64; 4];
        for i in signers.iter() {
            // A key registered after preparation is looked up again (rare: tests).
            match self.secrets[i].or_else(|| self.scheme.secret_of(&self.keys[i])) {
                Some(sk) => add(&mut sum, &sk),
                None => return false,
            }
        }
        if let Some(pk) = extra {
            match self.scheme.secret_of(pk) {
                Some(sk) => add(&mut sum, &sk),
                None => return false,
            }
        }
        check(&sum, domain, network_id, msg, sig)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_aggregate() {
        let s = InsecureTestScheme::new();
        let a = s.keypair(1);
        let b = s.keypair(2);
        let m = b"block";
        let sa = a.sign(Domain::Vote, 7, m);
        let sb = b.sign(Domain::Vote, 7, m);
        assert!(s.verify(a.public_key(), Domain::Vote, 7, m, &sa));
        assert!(!s.verify(a.public_key(), Domain::Proposal, 7, m, &sa));
        assert!(!s.verify(a.public_key(), Domain::Vote, 8, m, &sa));
        assert!(!s.verify(b.public_key(), Domain::Vote, 7, m, &sa));
        let agg = s.aggregate(&[&sa, &sb]).unwrap();
        assert!(s.verify_same_message(&[a.public_key(), b.public_key()], Domain::Vote, 7, m, &agg));
        assert!(!s.verify_same_message(&[a.public_key()], Domain::Vote, 7, m, &agg));
        let keys = s.prepare_keys(&[a.public_key().clone(), b.public_key().clone()]);
        let mut bm = SignerBitmap::new(2);
        bm.insert(1);
        assert!(keys.verify_subset(&bm, Some(a.public_key()), Domain::Vote, 7, m, &agg));
        assert!(!keys.verify_subset(&bm, None, Domain::Vote, 7, m, &agg));
    }

    #[test]
    fn unknown_key_never_verifies() {
        let s = InsecureTestScheme::new();
        let other = InsecureTestScheme::new().keypair(5);
        let sig = other.sign(Domain::Vote, 0, b"x");
        assert!(!s.verify(other.public_key(), Domain::Vote, 0, b"x", &sig));
        assert!(!s.verify_same_message(&[other.public_key()], Domain::Vote, 0, b"x", &sig));
        let known = s.keypair(6);
        let keys = s.prepare_keys(&[known.public_key().clone(), other.public_key().clone()]);
        let mut both = SignerBitmap::new(2);
        both.insert(0);
        both.insert(1);
        let agg = s
            .aggregate(&[&known.sign(Domain::Vote, 0, b"x"), &sig])
            .unwrap();
        assert!(!keys.verify_subset(&both, None, Domain::Vote, 0, b"x", &agg));
        let mut first = SignerBitmap::new(2);
        first.insert(0);
        let own = known.sign(Domain::Vote, 0, b"x");
        assert!(keys.verify_subset(&first, None, Domain::Vote, 0, b"x", &own));
        assert!(
            !keys.verify_subset(
                &first,
                Some(other.public_key()),
                Domain::Vote,
                0,
                b"x",
                &agg
            ),
            "an unknown extra key never verifies"
        );
    }

    /// The simulator's forged-id voters sign with their own key and claim another id.
    #[test]
    fn signature_of_another_key_is_rejected() {
        let s = InsecureTestScheme::new();
        let signers: Vec<_> = (0..4).map(|i| s.keypair(i)).collect();
        let m = b"forged";
        let by_3 = signers[3].sign(Domain::Vote, 1, m);
        for k in &signers[..3] {
            assert!(!s.verify(k.public_key(), Domain::Vote, 1, m, &by_3));
            assert!(!s.verify_same_message(&[k.public_key()], Domain::Vote, 1, m, &by_3));
        }
        let keys = s.prepare_keys(
            &signers
                .iter()
                .map(|k| k.public_key().clone())
                .collect::<Vec<_>>(),
        );
        for i in 0..3 {
            let mut bm = SignerBitmap::new(4);
            bm.insert(i);
            assert!(!keys.verify_subset(&bm, None, Domain::Vote, 1, m, &by_3));
        }
        let mut bm = SignerBitmap::new(4);
        bm.insert(3);
        assert!(keys.verify_subset(&bm, None, Domain::Vote, 1, m, &by_3));
    }

    #[test]
    fn other_domain_network_or_message_is_rejected() {
        let s = InsecureTestScheme::new();
        let a = s.keypair(1);
        let sig = a.sign(Domain::Clock, 3, b"epoch");
        assert!(s.verify(a.public_key(), Domain::Clock, 3, b"epoch", &sig));
        for d in [
            Domain::Proposal,
            Domain::Vote,
            Domain::Handshake,
            Domain::ProofOfPossession,
        ] {
            assert!(!s.verify(a.public_key(), d, 3, b"epoch", &sig));
        }
        assert!(!s.verify(a.public_key(), Domain::Clock, 4, b"epoch", &sig));
        assert!(!s.verify(a.public_key(), Domain::Clock, 3, b"epocH", &sig));
        assert!(!s.verify(a.public_key(), Domain::Clock, 3, b"", &sig));
        let mut flipped = sig.clone();
        flipped.0[31] ^= 0x80;
        assert!(!s.verify(a.public_key(), Domain::Clock, 3, b"epoch", &flipped));
        let mut short = sig.clone();
        short.0.pop();
        assert!(!s.verify(a.public_key(), Domain::Clock, 3, b"epoch", &short));
        assert!(s.aggregate(&[&sig, &short]).is_none());
    }

    #[test]
    fn domain_keys_follow_the_network() {
        for (i, d) in ALL_DOMAINS.into_iter().enumerate() {
            assert_eq!(domain_index(d), i);
        }
        let s = InsecureTestScheme::new();
        let a = s.keypair(1);
        // Alternating networks on one thread must not reuse the other network's keys.
        let on_1 = a.sign(Domain::Vote, 1, b"m");
        let on_2 = a.sign(Domain::Vote, 2, b"m");
        assert_ne!(on_1, on_2);
        assert!(s.verify(a.public_key(), Domain::Vote, 1, b"m", &on_1));
        assert!(s.verify(a.public_key(), Domain::Vote, 2, b"m", &on_2));
        assert!(!s.verify(a.public_key(), Domain::Vote, 1, b"m", &on_2));
        let all: std::collections::HashSet<_> = ALL_DOMAINS
            .into_iter()
            .map(|d| a.sign(d, 1, b"m"))
            .collect();
        assert_eq!(all.len(), DOMAINS, "every domain signs differently");
    }

    #[test]
    fn aggregate_must_match_its_bitmap() {
        let s = InsecureTestScheme::new();
        let signers: Vec<_> = (0..10).map(|i| s.keypair(100 + i)).collect();
        let proposer = s.keypair(99);
        let pks: Vec<_> = signers.iter().map(|k| k.public_key().clone()).collect();
        let keys = s.prepare_keys(&pks);
        let m = b"block hash";
        let set = [0usize, 2, 3, 5, 6, 7, 9];
        let mut sigs: Vec<Signature> = set
            .iter()
            .map(|&i| signers[i].sign(Domain::Vote, 1, m))
            .collect();
        sigs.push(proposer.sign(Domain::Vote, 1, m));
        let agg = s.aggregate(&sigs.iter().collect::<Vec<_>>()).unwrap();
        let mut bm = SignerBitmap::new(10);
        for &i in &set {
            bm.insert(i);
        }
        assert!(keys.verify_subset(&bm, Some(proposer.public_key()), Domain::Vote, 1, m, &agg));
        assert!(
            !keys.verify_subset(&bm, None, Domain::Vote, 1, m, &agg),
            "missing the proposer's share"
        );
        assert!(
            !keys.verify_subset(&bm, Some(signers[1].public_key()), Domain::Vote, 1, m, &agg),
            "another extra key"
        );
        for i in 0..10 {
            let mut other = bm.clone();
            if set.contains(&i) {
                // One signer fewer: rebuild the bitmap without it.
                other = SignerBitmap::new(10);
                for &j in set.iter().filter(|&&j| j != i) {
                    other.insert(j);
                }
            } else {
                other.insert(i);
            }
            assert!(
                !keys.verify_subset(
                    &other,
                    Some(proposer.public_key()),
                    Domain::Vote,
                    1,
                    m,
                    &agg
                ),
                "bitmap changed at {i}"
            );
        }
        let mut longer = SignerBitmap::new(11);
        for &i in &set {
            longer.insert(i);
        }
        assert!(!keys.verify_subset(
            &longer,
            Some(proposer.public_key()),
            Domain::Vote,
            1,
            m,
            &agg
        ));
        assert!(!keys.verify_subset(&SignerBitmap::new(10), None, Domain::Vote, 1, m, &agg));
        // The same list through the unprepared path.
        let mut list: Vec<&PublicKey> = set.iter().map(|&i| &pks[i]).collect();
        list.push(proposer.public_key());
        assert!(s.verify_same_message(&list, Domain::Vote, 1, m, &agg));
        list.pop();
        assert!(!s.verify_same_message(&list, Domain::Vote, 1, m, &agg));
    }

    #[test]
    fn a_duplicate_signature_counts_twice() {
        // Aggregation is a sum: a key listed twice needs its signature twice. Vote
        // batches rely on this to reject a repeated vote that was not aggregated twice.
        let s = InsecureTestScheme::new();
        let a = s.keypair(1);
        let sa = a.sign(Domain::Vote, 1, b"m");
        let twice = s.aggregate(&[&sa, &sa]).unwrap();
        assert!(s.verify_same_message(
            &[a.public_key(), a.public_key()],
            Domain::Vote,
            1,
            b"m",
            &twice
        ));
        assert!(!s.verify_same_message(&[a.public_key()], Domain::Vote, 1, b"m", &twice));
        assert!(!s.verify_same_message(
            &[a.public_key(), a.public_key()],
            Domain::Vote,
            1,
            b"m",
            &sa
        ));
    }
}
