//! **INSECURE** signature scheme for tests and large simulations only.
//!
//! Signatures are keyed blake3 tags, aggregated by lane-wise addition. Verification
//! looks the secret up in a registry shared by every key the scheme instance created,
//! so a party without the secret still cannot produce a valid tag (forged ids fail just
//! as with BLS), but anyone holding the registry can. Never use it outside a simulator
//! or a test: it offers no security against a real adversary. The node uses
//! `pala-crypto` (BLS12-381).

use crate::crypto::{
    Domain, PlainPreparedKeys, PreparedKeys, PublicKey, Signature, SignatureScheme, Signer,
};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

const TAG_LEN: usize = 32;

/// The insecure test scheme; clones share one key registry.
#[derive(Clone, Default)]
pub struct InsecureTestScheme {
    registry: Arc<RwLock<HashMap<PublicKey, [u8; 32]>>>,
}

/// A secret key of [`InsecureTestScheme`].
#[derive(Clone)]
pub struct InsecureTestSigner {
    secret: [u8; 32],
    public: PublicKey,
}

impl InsecureTestScheme {
    /// A scheme with an empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates (and registers) the key pair derived from `seed`.
    pub fn keypair(&self, seed: u64) -> InsecureTestSigner {
        let secret = *blake3::hash(&[b"pala-insecure-sk".as_slice(), &seed.to_le_bytes()].concat())
            .as_bytes();
        let public = PublicKey(blake3::hash(&secret).as_bytes().to_vec());
        self.registry
            .write()
            .expect("registry lock")
            .insert(public.clone(), secret);
        InsecureTestSigner { secret, public }
    }

    fn secret_of(&self, pk: &PublicKey) -> Option<[u8; 32]> {
        self.registry
            .read()
            .expect("registry lock")
            .get(pk)
            .copied()
    }
}

fn tag(secret: &[u8; 32], domain: Domain, network_id: u64, msg: &[u8]) -> [u8; TAG_LEN] {
    let mut h = blake3::Hasher::new_keyed(secret);
    h.update(&domain.tag(network_id));
    h.update(msg);
    *h.finalize().as_bytes()
}

fn add_into(acc: &mut [u64; 4], sig: &[u8]) {
    for (i, lane) in acc.iter_mut().enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&sig[i * 8..i * 8 + 8]);
        *lane = lane.wrapping_add(u64::from_le_bytes(b));
    }
}

fn lanes_to_sig(acc: [u64; 4]) -> Signature {
    Signature(acc.iter().flat_map(|l| l.to_le_bytes()).collect())
}

impl Signer for InsecureTestSigner {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }
    fn sign(&self, domain: Domain, network_id: u64, msg: &[u8]) -> Signature {
        Signature(tag(&self.secret, domain, network_id, msg).to_vec())
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
            Some(sk) => sig.0 == tag(&sk, domain, network_id, msg),
            None => false,
        }
    }
    fn aggregate(&self, sigs: &[&Signature]) -> Option<Signature> {
        let mut acc = [0u64; 4];
        for s in sigs {
            if s.0.len() != TAG_LEN {
                return None;
            }
            add_into(&mut acc, &s.0);
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
        if sig.0.len() != TAG_LEN || pks.is_empty() {
            return false;
        }
        let mut acc = [0u64; 4];
        for pk in pks {
            match self.secret_of(pk) {
                Some(sk) => add_into(&mut acc, &tag(&sk, domain, network_id, msg)),
                None => return false,
            }
        }
        lanes_to_sig(acc) == *sig
    }
    fn prepare_keys(&self, pks: &[PublicKey]) -> Arc<dyn PreparedKeys> {
        Arc::new(PlainPreparedKeys::new(self.clone(), pks.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SignerBitmap;

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
    }
}
