// The body of one BLS variant. `lib.rs` includes this file twice, in `min_pk` and
// `min_sig`, after bringing `raw` (the blst variant module), `PkAffine`, `SigAffine`,
// `SCHEME_NAME`, `PUBLIC_KEY_LEN` and `SIGNATURE_LEN` into scope. Keeping one body for
// both variants is what lets the benchmarks compare them on exactly the same code.
// (Plain comments here: an included file may not carry inner doc comments.)

use crate::error::{HandshakeError, IdentityError, KeyFileError};
use crate::handshake::HandshakeSignature;
use blst::BLST_ERROR;
use pala_types::{
    BatchItem, Committee, Domain, DomainTag, Member, NodeId, PreparedKeys, PublicKey, QuorumItem,
    Signature, SignatureScheme, Signer, SignerBitmap, VoteCounting,
};
use rand::RngCore;
use rayon::prelude::*;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, RwLock};
use zeroize::Zeroizing;

/// Most decoded public keys kept by a [`BlsScheme`]; the cache is cleared when full so a
/// peer sending endless fresh keys cannot grow memory.
const KEY_CACHE_CAP: usize = 16_384;
/// Below this many items rayon's splitting costs more than it saves.
const PAR_MIN_LEN: usize = 16;

fn decode_sig(sig: &Signature) -> Option<raw::Signature> {
    if sig.0.len() != SIGNATURE_LEN {
        return None;
    }
    // `uncompress` checks the point is on the curve; the subgroup check is left to the
    // verification call so that same-message batches pay it once, on the aggregate.
    raw::Signature::uncompress(&sig.0).ok()
}

fn encode_sig(sig: &raw::Signature) -> Signature {
    Signature(sig.compress().to_vec())
}

fn domain_index(d: Domain) -> usize {
    match d {
        Domain::Proposal => 0,
        Domain::Vote => 1,
        Domain::Clock => 2,
        Domain::Handshake => 3,
        Domain::ProofOfPossession => 4,
    }
}

const DOMAINS: [Domain; 5] = [
    Domain::Proposal,
    Domain::Vote,
    Domain::Clock,
    Domain::Handshake,
    Domain::ProofOfPossession,
];

// ---------------------------------------------------------------------------------------
// Keys

/// A BLS12-381 secret key. blst wipes the scalar when it is dropped; `Debug` never prints it.
#[derive(Clone)]
pub struct SecretKey(raw::SecretKey);

impl SecretKey {
    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Self {
        let mut ikm = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut *ikm);
        Self::from_ikm(&ikm)
    }

    /// The key deterministically derived from `seed`. For tests and `testnet` only: anyone
    /// who knows the seed knows the key.
    pub fn from_seed(seed: &[u8]) -> Self {
        let ikm = Zeroizing::new(blake3::derive_key(
            "pala-crypto deterministic test key v1",
            seed,
        ));
        Self::from_ikm(&ikm)
    }

    fn from_ikm(ikm: &[u8; 32]) -> Self {
        // key_gen only rejects key material shorter than 32 bytes, which a [u8; 32] is not.
        SecretKey(raw::SecretKey::key_gen(ikm, &[]).expect("32 bytes of key material are accepted"))
    }

    /// Parses the 32-byte big-endian scalar; `None` if it is zero or not below the group order.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        raw::SecretKey::from_bytes(bytes).ok().map(SecretKey)
    }

    /// The 32-byte big-endian scalar, wiped when the returned value is dropped.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The matching public key (compressed).
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.sk_to_pk().compress().to_vec())
    }

    /// Writes the key to a new file with mode 0600 (never overwrites an existing file).
    pub fn save(&self, path: &Path) -> Result<(), KeyFileError> {
        crate::keyfile::write_secret(path, &self.to_bytes())
    }

    /// Reads a key file written by [`SecretKey::save`], refusing files that group or others
    /// can access, files of the wrong length and anything that is not a valid key.
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let bytes = crate::keyfile::read_secret(path)?;
        Self::from_bytes(&*bytes).ok_or_else(|| KeyFileError::InvalidKey {
            path: path.to_path_buf(),
        })
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// A node's signing key: implements [`pala_types::Signer`].
#[derive(Clone)]
pub struct BlsSigner {
    sk: SecretKey,
    pk: PublicKey,
}

impl fmt::Debug for BlsSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlsSigner({})", self.pk.node_id())
    }
}

impl BlsSigner {
    /// Wraps a secret key.
    pub fn new(sk: SecretKey) -> Self {
        let pk = sk.public_key();
        BlsSigner { sk, pk }
    }

    /// A signer with a fresh random key.
    pub fn generate() -> Self {
        Self::new(SecretKey::generate())
    }

    /// A signer with the key derived from `seed` (tests and `testnet` only).
    pub fn from_seed(seed: &[u8]) -> Self {
        Self::new(SecretKey::from_seed(seed))
    }

    /// Loads the secret key file at `path` (see [`SecretKey::load`]).
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        SecretKey::load(path).map(Self::new)
    }

    /// The secret key (to save it).
    pub fn secret_key(&self) -> &SecretKey {
        &self.sk
    }

    fn sign_raw(&self, domain: Domain, network_id: u64, msg: &[u8]) -> raw::Signature {
        self.sk.0.sign(msg, &domain.tag(network_id), &[])
    }

    /// The proof of possession on `network_id`: a signature of the public key bytes under
    /// [`Domain::ProofOfPossession`] (D-8).
    pub fn proof_of_possession(&self, network_id: u64) -> Signature {
        self.sign(Domain::ProofOfPossession, network_id, &self.pk.0)
    }

    /// Public key and proof of possession, to publish (see [`PublicIdentity::to_line`]).
    pub fn identity(&self, network_id: u64) -> PublicIdentity {
        PublicIdentity {
            network_id,
            public_key: self.pk.clone(),
            proof_of_possession: self.proof_of_possession(network_id),
        }
    }

    /// A committee member entry for this key.
    pub fn member(&self, network_id: u64, stake: u64, address: &str) -> Member {
        Member::new(
            self.pk.clone(),
            self.proof_of_possession(network_id),
            stake,
            address,
        )
    }

    /// Signs a handshake challenge (built with [`crate::handshake::challenge`]) into the
    /// S-2.5 blob.
    pub fn sign_handshake(&self, network_id: u64, challenge: &[u8]) -> HandshakeSignature {
        HandshakeSignature {
            public_key: self.pk.clone(),
            signature: self.sign(Domain::Handshake, network_id, challenge),
        }
    }
}

impl Signer for BlsSigner {
    fn public_key(&self) -> &PublicKey {
        &self.pk
    }
    fn sign(&self, domain: Domain, network_id: u64, msg: &[u8]) -> Signature {
        encode_sig(&self.sign_raw(domain, network_id, msg))
    }
}

/// A public key with its proof of possession for one network: what a validator publishes
/// so it can be put into a committee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicIdentity {
    /// The network the proof is for (the proof's tag names it).
    pub network_id: u64,
    /// The public key.
    pub public_key: PublicKey,
    /// The proof of possession.
    pub proof_of_possession: Signature,
}

impl PublicIdentity {
    /// The node id (D-7).
    pub fn node_id(&self) -> NodeId {
        self.public_key.node_id()
    }

    /// One text line: `scheme network_id public_key_hex proof_hex`.
    pub fn to_line(&self) -> String {
        format!(
            "{SCHEME_NAME} {} {} {}",
            self.network_id,
            crate::hex::encode(&self.public_key.0),
            crate::hex::encode(&self.proof_of_possession.0)
        )
    }

    /// Parses a line written by [`PublicIdentity::to_line`] and checks the key and its proof.
    pub fn from_line(line: &str) -> Result<Self, IdentityError> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() != 4 {
            return Err(IdentityError::Fields(fields.len()));
        }
        if fields[0] != SCHEME_NAME {
            return Err(IdentityError::Scheme {
                expected: SCHEME_NAME,
                found: fields[0].to_string(),
            });
        }
        let network_id = fields[1]
            .parse::<u64>()
            .map_err(|e| IdentityError::Encoding {
                field: "network id",
                detail: e.to_string(),
            })?;
        let pk = crate::hex::decode(fields[2]).map_err(|detail| IdentityError::Encoding {
            field: "public key",
            detail,
        })?;
        let pop = crate::hex::decode(fields[3]).map_err(|detail| IdentityError::Encoding {
            field: "proof of possession",
            detail,
        })?;
        let id = PublicIdentity {
            network_id,
            public_key: PublicKey(pk),
            proof_of_possession: Signature(pop),
        };
        let scheme = BlsScheme::new();
        if !scheme.check_public_key(&id.public_key) {
            return Err(IdentityError::InvalidKey);
        }
        if !scheme.verify_possession(&id.public_key, network_id, &id.proof_of_possession) {
            return Err(IdentityError::BadProof);
        }
        Ok(id)
    }
}

// ---------------------------------------------------------------------------------------
// The scheme

/// BLS12-381 through blst: implements [`pala_types::SignatureScheme`].
///
/// Clones share a cache of decoded and subgroup-checked public keys: decompressing and
/// checking a key costs a noticeable fraction of a verification, and the keys a node sees
/// are almost always the same few committee members.
///
/// Parallel work (aggregation, batch verification, key preparation) uses rayon's current pool: call from
/// inside `pool.install(..)` to run it on a dedicated pool.
#[derive(Clone, Default)]
pub struct BlsScheme {
    keys: Arc<RwLock<HashMap<PublicKey, raw::PublicKey>>>,
}

impl fmt::Debug for BlsScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SCHEME_NAME)
    }
}

impl BlsScheme {
    /// A scheme with an empty key cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The decoded key, if `pk` is a compressed point in the prime-order subgroup and not
    /// the identity.
    fn point(&self, pk: &PublicKey) -> Option<raw::PublicKey> {
        if let Some(p) = self.keys.read().unwrap_or_else(|e| e.into_inner()).get(pk) {
            return Some(*p);
        }
        if pk.0.len() != PUBLIC_KEY_LEN {
            return None;
        }
        let p = raw::PublicKey::uncompress(&pk.0).ok()?;
        p.validate().ok()?;
        let mut cache = self.keys.write().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= KEY_CACHE_CAP {
            cache.clear();
        }
        cache.insert(pk.clone(), p);
        Some(p)
    }

    /// The decoded key and signature of a batch item, or `None` if either is malformed.
    fn resolve<'a>(&self, i: &BatchItem<'a>) -> Option<Resolved<'a>> {
        Some(Resolved {
            pk: self.point(i.public_key)?.into(),
            sig: decode_sig(i.signature)?.into(),
            domain: i.domain,
            msg: i.msg,
        })
    }

    /// Verifies each item; when the whole batch passes (the common case) this costs one
    /// random-linear-combination check, otherwise the items are checked one by one in
    /// parallel to say which failed.
    pub fn verify_batch_each(&self, network_id: u64, items: &[BatchItem<'_>]) -> Vec<bool> {
        if self.verify_batch(network_id, items) {
            return vec![true; items.len()];
        }
        items
            .par_iter()
            .with_min_len(4)
            .map(|i| self.verify(i.public_key, i.domain, network_id, i.msg, i.signature))
            .collect()
    }

    /// Verifies a handshake blob over `challenge`; returns the signer's id (D-7).
    pub fn verify_handshake(
        &self,
        blob: &[u8],
        network_id: u64,
        challenge: &[u8],
    ) -> Result<NodeId, HandshakeError> {
        let hs = HandshakeSignature::decode(blob)?;
        if hs.public_key.0.len() != PUBLIC_KEY_LEN || hs.signature.0.len() != SIGNATURE_LEN {
            return Err(HandshakeError::Malformed);
        }
        if !self.check_public_key(&hs.public_key) || decode_sig(&hs.signature).is_none() {
            return Err(HandshakeError::Malformed);
        }
        if !self.verify(
            &hs.public_key,
            Domain::Handshake,
            network_id,
            challenge,
            &hs.signature,
        ) {
            return Err(HandshakeError::BadSignature);
        }
        Ok(hs.public_key.node_id())
    }
}

fn verify_point(sig: &raw::Signature, pk: &raw::PublicKey, dst: &[u8], msg: &[u8]) -> bool {
    // Group-check the signature (the only one, or the aggregate); keys were checked when
    // decoded. blst rejects an identity key, which is what rogue keys cancelling out yield.
    sig.verify(true, msg, dst, &[], pk, false) == BLST_ERROR::BLST_SUCCESS
}

/// One decoded (key, signature, message) triple of a batch.
struct Resolved<'a> {
    pk: PkAffine,
    sig: SigAffine,
    domain: Domain,
    msg: &'a [u8],
}

/// The random-linear-combination check of decoded triples (see
/// [`SignatureScheme::verify_batch`] of [`BlsScheme`]). A lone triple is checked as it is.
fn rlc_verify(network_id: u64, items: &[Resolved<'_>]) -> bool {
    let tags: Vec<DomainTag> = DOMAINS.iter().map(|d| d.tag(network_id)).collect();
    if let [i] = items {
        let mut ctx = blst::Pairing::new(true, &tags[domain_index(i.domain)]);
        return ctx.aggregate(&i.pk, false, &i.sig, true, i.msg, &[]) == BLST_ERROR::BLST_SUCCESS
            && {
                ctx.commit();
                ctx.finalverify(None)
            };
    }
    let chunk = items
        .len()
        .div_ceil(rayon::current_num_threads().max(1))
        .max(PAR_MIN_LEN / 2);
    let parts: Option<Vec<Vec<blst::Pairing<'_>>>> = items
        .par_chunks(chunk)
        .map(|c| {
            let mut rng = rand::thread_rng();
            let mut ctxs: Vec<Option<blst::Pairing<'_>>> =
                (0..DOMAINS.len()).map(|_| None).collect();
            for item in c {
                let d = domain_index(item.domain);
                let ctx = ctxs[d].get_or_insert_with(|| blst::Pairing::new(true, &tags[d]));
                let mut r = [0u8; 8];
                while r == [0u8; 8] {
                    rng.fill_bytes(&mut r);
                }
                if ctx.mul_n_aggregate(&item.pk, false, &item.sig, true, &r, 64, item.msg, &[])
                    != BLST_ERROR::BLST_SUCCESS
                {
                    return None;
                }
            }
            let mut out: Vec<blst::Pairing<'_>> = ctxs.into_iter().flatten().collect();
            for ctx in &mut out {
                ctx.commit();
            }
            Some(out)
        })
        .collect();
    let Some(parts) = parts else {
        return false;
    };
    let mut all = parts.into_iter().flatten();
    let Some(mut acc) = all.next() else {
        return false;
    };
    for ctx in all {
        if acc.merge(&ctx) != BLST_ERROR::BLST_SUCCESS {
            return false;
        }
    }
    acc.finalverify(None)
}

impl SignatureScheme for BlsScheme {
    fn name(&self) -> &'static str {
        SCHEME_NAME
    }

    fn check_public_key(&self, pk: &PublicKey) -> bool {
        self.point(pk).is_some()
    }

    fn verify(
        &self,
        pk: &PublicKey,
        domain: Domain,
        network_id: u64,
        msg: &[u8],
        sig: &Signature,
    ) -> bool {
        match (self.point(pk), decode_sig(sig)) {
            (Some(pk), Some(sig)) => verify_point(&sig, &pk, &domain.tag(network_id), msg),
            _ => false,
        }
    }

    /// Decompression is most of the cost of summing many signatures (a square root per
    /// point), so it runs in parallel; no subgroup check here, the verification of the
    /// aggregate does it once.
    fn aggregate(&self, sigs: &[&Signature]) -> Option<Signature> {
        let points: Vec<raw::Signature> = sigs
            .par_iter()
            .with_min_len(PAR_MIN_LEN)
            .map(|s| decode_sig(s))
            .collect::<Option<_>>()?;
        let refs: Vec<&raw::Signature> = points.iter().collect();
        let agg = raw::AggregateSignature::aggregate(&refs, false).ok()?;
        Some(encode_sig(&agg.to_signature()))
    }

    fn verify_same_message(
        &self,
        pks: &[&PublicKey],
        domain: Domain,
        network_id: u64,
        msg: &[u8],
        sig: &Signature,
    ) -> bool {
        let Some(sig) = decode_sig(sig) else {
            return false;
        };
        let Some(points) = pks
            .iter()
            .map(|p| self.point(p))
            .collect::<Option<Vec<_>>>()
        else {
            return false;
        };
        let refs: Vec<&raw::PublicKey> = points.iter().collect();
        match raw::AggregatePublicKey::aggregate(&refs, false) {
            Ok(agg) => verify_point(&sig, &agg.to_public_key(), &domain.tag(network_id), msg),
            Err(_) => false,
        }
    }

    /// Random linear combination: each triple is weighted by a fresh random 64-bit scalar
    /// so that invalid signatures cannot cancel out, then all pairings share one final
    /// exponentiation. Work is split over rayon's pool; per-domain tags are handled by one
    /// pairing context per (chunk, domain), merged at the end.
    fn verify_batch(&self, network_id: u64, items: &[BatchItem<'_>]) -> bool {
        match items {
            [] => return true,
            [i] => return self.verify(i.public_key, i.domain, network_id, i.msg, i.signature),
            _ => {}
        }
        let decoded: Option<Vec<Resolved<'_>>> = items
            .par_iter()
            .with_min_len(PAR_MIN_LEN)
            .map(|i| self.resolve(i))
            .collect();
        decoded.is_some_and(|d| rlc_verify(network_id, &d))
    }

    /// Quorum signatures join the same random linear combination with the aggregate key
    /// of their signers (derived from this scheme's prepared keys: total minus the
    /// missing), so a proposal and the notarization that comes with it cost one final
    /// exponentiation and three Miller loops instead of two and four.
    fn verify_with_quorums(
        &self,
        network_id: u64,
        singles: &[BatchItem<'_>],
        quorums: &[QuorumItem<'_>],
    ) -> bool {
        if quorums.is_empty() {
            return self.verify_batch(network_id, singles);
        }
        if singles.is_empty() && quorums.len() == 1 {
            let q = &quorums[0];
            return q
                .keys
                .verify_subset(q.signers, q.extra, q.domain, network_id, q.msg, q.signature);
        }
        let mut resolved = Vec::with_capacity(singles.len() + quorums.len());
        for i in singles {
            let Some(r) = self.resolve(i) else {
                return false;
            };
            resolved.push(r);
        }
        for q in quorums {
            let Some(keys) = q
                .keys
                .as_any()
                .and_then(|a| a.downcast_ref::<BlsPreparedKeys>())
            else {
                // Keys of another scheme: checked on their own.
                if !q
                    .keys
                    .verify_subset(q.signers, q.extra, q.domain, network_id, q.msg, q.signature)
                {
                    return false;
                }
                continue;
            };
            let (Some(pk), Some(sig)) = (keys.subset_key(q.signers, q.extra), decode_sig(q.signature))
            else {
                return false;
            };
            resolved.push(Resolved {
                pk: pk.into(),
                sig: sig.into(),
                domain: q.domain,
                msg: q.msg,
            });
        }
        rlc_verify(network_id, &resolved)
    }

    fn prepare_keys(&self, pks: &[PublicKey]) -> Arc<dyn PreparedKeys> {
        Arc::new(BlsPreparedKeys::new(self, pks))
    }
}

// ---------------------------------------------------------------------------------------
// Prepared committee keys

/// An ordered key list with its total aggregate cached, so the key of a large subset is
/// derived as total minus the few missing keys (D-12 notarizations usually miss few voters).
pub struct BlsPreparedKeys {
    scheme: BlsScheme,
    keys: Vec<Option<raw::PublicKey>>,
    invalid: usize,
    total: Option<raw::AggregatePublicKey>,
}

impl fmt::Debug for BlsPreparedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BlsPreparedKeys(len={}, invalid={})",
            self.keys.len(),
            self.invalid
        )
    }
}

impl BlsPreparedKeys {
    /// Decodes and aggregates `pks`. Invalid keys are kept as holes: any subset including
    /// one fails to verify, others are unaffected.
    pub fn new(scheme: &BlsScheme, pks: &[PublicKey]) -> Self {
        let keys: Vec<Option<raw::PublicKey>> = pks
            .par_iter()
            .with_min_len(PAR_MIN_LEN)
            .map(|p| scheme.point(p))
            .collect();
        let invalid = keys.iter().filter(|k| k.is_none()).count();
        let valid: Vec<&raw::PublicKey> = keys.iter().flatten().collect();
        let total = raw::AggregatePublicKey::aggregate(&valid, false).ok();
        BlsPreparedKeys {
            scheme: scheme.clone(),
            keys,
            invalid,
            total,
        }
    }

    /// Aggregate key of the members in `signers`; `None` if the bitmap does not match the
    /// list, is empty, or includes an invalid key.
    fn subset(&self, signers: &SignerBitmap) -> Option<raw::AggregatePublicKey> {
        let n = self.keys.len();
        if signers.len() != n {
            return None;
        }
        let count = signers.count();
        if count == 0 {
            return None;
        }
        if self.invalid > 0 && signers.iter().any(|i| self.keys[i].is_none()) {
            return None;
        }
        let missing = n - count;
        if missing * 2 < n {
            let mut agg = self.total?;
            for i in (0..n).filter(|&i| !signers.contains(i)) {
                if let Some(k) = &self.keys[i] {
                    agg.sub_aggregate(&raw::AggregatePublicKey::from_public_key(k));
                }
            }
            Some(agg)
        } else {
            let mut it = signers.iter();
            let mut agg = raw::AggregatePublicKey::from_public_key(self.keys[it.next()?].as_ref()?);
            for i in it {
                agg.add_public_key(self.keys[i].as_ref()?, false).ok()?;
            }
            Some(agg)
        }
    }

    /// The key that verifies a quorum signature of `signers` plus `extra`, or `None`.
    fn subset_key(&self, signers: &SignerBitmap, extra: Option<&PublicKey>) -> Option<raw::PublicKey> {
        let extra = match extra {
            None => None,
            Some(pk) => Some(self.scheme.point(pk)?),
        };
        let agg = match (self.subset(signers), extra) {
            (Some(mut agg), Some(e)) => {
                agg.add_public_key(&e, false).ok()?;
                agg
            }
            (Some(agg), None) => agg,
            (None, Some(e)) if signers.len() == self.keys.len() && signers.count() == 0 => {
                raw::AggregatePublicKey::from_public_key(&e)
            }
            _ => return None,
        };
        Some(agg.to_public_key())
    }
}

impl PreparedKeys for BlsPreparedKeys {
    fn len(&self) -> usize {
        self.keys.len()
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
        let (Some(sig), Some(pk)) = (decode_sig(sig), self.subset_key(signers, extra)) else {
            return false;
        };
        verify_point(&sig, &pk, &domain.tag(network_id), msg)
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

/// A committee of `proposers` + `voters` members with keys derived from seeds
/// `"{label}-p{i}"` / `"{label}-v{i}"`, stake 1 each. For tests, benchmarks and `testnet`.
pub fn seeded_committee(
    label: &str,
    session: u32,
    proposers: usize,
    voters: usize,
    network_id: u64,
    counting: VoteCounting,
) -> (Committee, Vec<BlsSigner>, Vec<BlsSigner>) {
    let make = |kind: &str, n: usize| -> Vec<BlsSigner> {
        (0..n)
            .into_par_iter()
            .map(|i| BlsSigner::from_seed(format!("{label}-{kind}{i}").as_bytes()))
            .collect()
    };
    let ps = make("p", proposers);
    let vs = make("v", voters);
    let committee = Committee {
        session,
        proposers: ps.par_iter().map(|s| s.member(network_id, 1, "")).collect(),
        voters: vs.par_iter().map(|s| s.member(network_id, 1, "")).collect(),
        counting,
    };
    (committee, ps, vs)
}
