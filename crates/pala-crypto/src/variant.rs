// The body of one BLS variant. `lib.rs` includes this file twice, in `min_pk` and
// `min_sig`, after bringing `raw` (the blst variant module), `PkAffine`, `SigAffine`,
// `SCHEME_NAME`, `PUBLIC_KEY_LEN` and `SIGNATURE_LEN` into scope. Keeping one body for
// both variants is what lets the benchmarks compare them on exactly the same code.
// (Plain comments here: an included file may not carry inner doc comments.)

use crate::error::{
    BuildError, CommitteeError, HandshakeError, IdentityError, KeyFileError, VerifyError,
    VoteRejection,
};
use crate::handshake::HandshakeSignature;
use blst::BLST_ERROR;
use pala_types::{
    BatchItem, BlockSn, ClockMessage, ClockNotarization, Committee, Domain, DomainTag, Encode, Epoch, Hash,
    Member, NodeId, Notarization, PreparedKeys, PublicKey, Signature, SignatureScheme, Signer,
    SignerBitmap, Vote, VoteCounting,
};
use rand::RngCore;
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use zeroize::Zeroizing;

/// Most decoded public keys kept by a [`BlsScheme`]; the cache is cleared when full so a
/// peer sending endless fresh keys cannot grow memory.
const KEY_CACHE_CAP: usize = 16_384;
/// Most verified notarization digests kept per [`CommitteeKeys`].
const VERIFIED_CACHE_CAP: usize = 4_096;
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
/// Parallel work (batch verification, bisection) uses rayon's current pool: call from
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

    fn aggregate(&self, sigs: &[&Signature]) -> Option<Signature> {
        let points: Vec<raw::Signature> =
            sigs.iter().map(|s| decode_sig(s)).collect::<Option<_>>()?;
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
        let decoded: Option<Vec<(PkAffine, SigAffine)>> = items
            .par_iter()
            .with_min_len(PAR_MIN_LEN)
            .map(|i| {
                Some((
                    self.point(i.public_key)?.into(),
                    decode_sig(i.signature)?.into(),
                ))
            })
            .collect();
        let Some(decoded) = decoded else {
            return false;
        };
        let tags: Vec<DomainTag> = DOMAINS.iter().map(|d| d.tag(network_id)).collect();
        let chunk = items
            .len()
            .div_ceil(rayon::current_num_threads().max(1))
            .max(PAR_MIN_LEN / 2);
        let order: Vec<usize> = (0..items.len()).collect();
        let parts: Option<Vec<Vec<blst::Pairing<'_>>>> = order
            .par_chunks(chunk)
            .map(|c| {
                let mut rng = rand::thread_rng();
                let mut ctxs: Vec<Option<blst::Pairing<'_>>> =
                    (0..DOMAINS.len()).map(|_| None).collect();
                for &k in c {
                    let d = domain_index(items[k].domain);
                    let ctx = ctxs[d].get_or_insert_with(|| blst::Pairing::new(true, &tags[d]));
                    let mut r = [0u8; 8];
                    while r == [0u8; 8] {
                        rng.fill_bytes(&mut r);
                    }
                    let (pk, sig) = &decoded[k];
                    if ctx.mul_n_aggregate(pk, false, sig, true, &r, 64, items[k].msg, &[])
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

    fn verify_subset_point(
        &self,
        signers: &SignerBitmap,
        extra: Option<&raw::PublicKey>,
        dst: &[u8],
        msg: &[u8],
        sig: &raw::Signature,
    ) -> bool {
        let agg = match (self.subset(signers), extra) {
            (Some(mut agg), Some(e)) => {
                if agg.add_public_key(e, false).is_err() {
                    return false;
                }
                agg
            }
            (Some(agg), None) => agg,
            // The extra key alone, as `PlainPreparedKeys` allows; quorum rules are the caller's.
            (None, Some(e)) if signers.len() == self.keys.len() && signers.count() == 0 => {
                raw::AggregatePublicKey::from_public_key(e)
            }
            _ => return false,
        };
        verify_point(sig, &agg.to_public_key(), dst, msg)
    }

    fn get(&self, i: usize) -> Option<&raw::PublicKey> {
        self.keys.get(i).and_then(|k| k.as_ref())
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
        let Some(sig) = decode_sig(sig) else {
            return false;
        };
        let extra = match extra {
            None => None,
            Some(pk) => match self.scheme.point(pk) {
                Some(p) => Some(p),
                None => return false,
            },
        };
        self.verify_subset_point(signers, extra.as_ref(), &domain.tag(network_id), msg, &sig)
    }
}

// ---------------------------------------------------------------------------------------
// Committees, notarizations and vote batches

/// The keys of a validated committee for one network: every key checked, every proof of
/// possession verified, the voter aggregate cached. Build with [`validate_committee`].
pub struct CommitteeKeys {
    committee: Committee,
    network_id: u64,
    voters: BlsPreparedKeys,
    proposers: Vec<raw::PublicKey>,
    voter_index: HashMap<NodeId, usize>,
    verified: Mutex<HashSet<[u8; 32]>>,
    cache_hits: AtomicU64,
}

impl fmt::Debug for CommitteeKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CommitteeKeys(session={}, voters={}, proposers={})",
            self.committee.session,
            self.committee.voters.len(),
            self.committee.proposers.len()
        )
    }
}

/// Checks a committee before it is installed (section 0.1 item 1, D-8, D-16): non-empty
/// lists of at most 65535, every key a valid subgroup point, every id derived from its key,
/// no key twice in one list, and every proof of possession valid on `network_id`. The
/// proofs are what make same-message aggregation safe against rogue keys.
pub fn validate_committee(
    committee: &Committee,
    network_id: u64,
) -> Result<CommitteeKeys, CommitteeError> {
    validate_committee_with(&BlsScheme::new(), committee, network_id)
}

/// [`validate_committee`] sharing `scheme`'s key cache.
pub fn validate_committee_with(
    scheme: &BlsScheme,
    committee: &Committee,
    network_id: u64,
) -> Result<CommitteeKeys, CommitteeError> {
    if committee.voters.is_empty() {
        return Err(CommitteeError::NoVoters(committee.session));
    }
    if committee.proposers.is_empty() {
        return Err(CommitteeError::NoProposers(committee.session));
    }
    for list in [&committee.voters, &committee.proposers] {
        if list.len() > u16::MAX as usize {
            return Err(CommitteeError::TooLarge(list.len()));
        }
    }
    let lists = [
        ("proposer", &committee.proposers),
        ("voter", &committee.voters),
    ];
    for (name, list) in lists {
        let mut seen: HashMap<&PublicKey, usize> = HashMap::new();
        for (index, m) in list.iter().enumerate() {
            if m.id != m.public_key.node_id() {
                return Err(CommitteeError::IdMismatch {
                    list: name,
                    index,
                    id: m.id,
                });
            }
            if let Some(&first) = seen.get(&m.public_key) {
                return Err(CommitteeError::Duplicate {
                    list: name,
                    index,
                    first,
                });
            }
            seen.insert(&m.public_key, index);
        }
        let bad_key = list
            .par_iter()
            .with_min_len(PAR_MIN_LEN)
            .position_first(|m| !scheme.check_public_key(&m.public_key));
        if let Some(index) = bad_key {
            return Err(CommitteeError::InvalidKey { list: name, index });
        }
        let items: Vec<BatchItem<'_>> = list
            .iter()
            .map(|m| BatchItem {
                public_key: &m.public_key,
                domain: Domain::ProofOfPossession,
                msg: &m.public_key.0,
                signature: &m.proof_of_possession,
            })
            .collect();
        if let Some(index) = scheme
            .verify_batch_each(network_id, &items)
            .iter()
            .position(|ok| !ok)
        {
            return Err(CommitteeError::BadProofOfPossession {
                list: name,
                index,
                id: list[index].id,
            });
        }
    }
    let voter_pks: Vec<PublicKey> = committee
        .voters
        .iter()
        .map(|m| m.public_key.clone())
        .collect();
    let voters = BlsPreparedKeys::new(scheme, &voter_pks);
    let proposers = committee
        .proposers
        .iter()
        .map(|m| scheme.point(&m.public_key))
        .collect::<Option<Vec<_>>>()
        .ok_or(CommitteeError::InvalidKey {
            list: "proposer",
            index: 0,
        })?;
    let voter_index = committee
        .voters
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id, i))
        .collect();
    Ok(CommitteeKeys {
        committee: committee.clone(),
        network_id,
        voters,
        proposers,
        voter_index,
        verified: Mutex::new(HashSet::new()),
        cache_hits: AtomicU64::new(0),
    })
}

/// What a [`VoteBatch`] was collected for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchTarget {
    /// Votes for the block `hash` at `sn` (D-11).
    Block {
        /// The block's sn.
        sn: BlockSn,
        /// The block's hash.
        hash: Hash,
    },
    /// Clock messages for `epoch` (D-13).
    Epoch(Epoch),
}

/// A vote or clock message that was not aggregated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RejectedVote {
    /// Index in the input slice.
    pub index: usize,
    /// The voter the message claims to be from.
    pub voter: NodeId,
    /// Why it was rejected.
    pub reason: VoteRejection,
}

impl RejectedVote {
    /// True when the message could only have been produced by someone lying (a forged or
    /// corrupted signature), as opposed to arriving late, twice or for another block.
    pub fn is_forgery(&self) -> bool {
        matches!(
            self.reason,
            VoteRejection::BadSignature | VoteRejection::MalformedSignature
        )
    }
}

/// The result of checking many votes (or clock messages) for one target: the verified
/// ones aggregated, the others named with a reason.
#[derive(Clone)]
pub struct VoteBatch {
    /// What the votes are for.
    pub target: BatchTarget,
    /// Input indexes whose signature verified and is part of the aggregate, ascending.
    pub accepted: Vec<usize>,
    /// Input messages that were not aggregated, ascending by index.
    pub rejected: Vec<RejectedVote>,
    /// The voters of `accepted`, over the session's voter list.
    pub signers: SignerBitmap,
    /// Weight of `signers` (D-9).
    pub weight: u64,
    aggregate: Option<raw::AggregateSignature>,
}

impl fmt::Debug for VoteBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VoteBatch")
            .field("target", &self.target)
            .field("accepted", &self.accepted)
            .field("rejected", &self.rejected)
            .field("weight", &self.weight)
            .finish()
    }
}

impl VoteBatch {
    /// The aggregate signature of the accepted votes (without a proposer's share).
    pub fn aggregate_signature(&self) -> Option<Signature> {
        self.aggregate.map(|a| encode_sig(&a.to_signature()))
    }

    /// Voters whose message carried a forged or corrupt signature: the peers to count
    /// against (section 0.1 item 6).
    pub fn forgers(&self) -> Vec<NodeId> {
        self.rejected
            .iter()
            .filter(|r| r.is_forgery())
            .map(|r| r.voter)
            .collect()
    }
}

struct Candidate {
    index: usize,
    voter: usize,
    sig: raw::Signature,
}

fn sum_sigs<'a>(
    sigs: impl IntoIterator<Item = &'a raw::Signature>,
) -> Option<raw::AggregateSignature> {
    let mut it = sigs.into_iter();
    let mut agg = raw::AggregateSignature::from_signature(it.next()?);
    for s in it {
        // Cannot fail without a group check.
        let _ = agg.add_signature(s, false);
    }
    Some(agg)
}

impl CommitteeKeys {
    /// The committee these keys belong to.
    pub fn committee(&self) -> &Committee {
        &self.committee
    }

    /// The network the proofs of possession were checked for.
    pub fn network_id(&self) -> u64 {
        self.network_id
    }

    /// How many notarization checks were answered from the verification cache.
    pub fn cache_hits(&self) -> u64 {
        self.cache_hits.load(Ordering::Relaxed)
    }

    /// Forgets every cached verification result (benchmarks measure the uncached cost).
    pub fn clear_verification_cache(&self) {
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// D-12 structural checks, in the order an attacker's cheapest tricks are caught.
    fn check_structure(
        &self,
        session: u32,
        signers: &SignerBitmap,
        proposer_idx: u16,
    ) -> Result<(), VerifyError> {
        let c = &self.committee;
        if session != c.session {
            return Err(VerifyError::WrongSession {
                expected: c.session,
                got: session,
            });
        }
        if signers.len() != c.voters.len() {
            return Err(VerifyError::BitmapLength {
                expected: c.voters.len(),
                got: signers.len(),
            });
        }
        if proposer_idx as usize >= self.proposers.len() {
            return Err(VerifyError::ProposerIndex {
                index: proposer_idx,
                proposers: self.proposers.len(),
            });
        }
        if !c.is_quorum(signers) {
            return Err(VerifyError::BelowQuorum {
                weight: c.weight(signers),
                quorum: c.quorum(),
            });
        }
        Ok(())
    }

    fn cached(&self, digest: &[u8; 32]) -> bool {
        let hit = self
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(digest);
        if hit {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    fn remember(&self, digest: [u8; 32]) {
        let mut set = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if set.len() >= VERIFIED_CACHE_CAP {
            set.clear();
        }
        set.insert(digest);
    }

    fn verify_aggregate(
        &self,
        signers: &SignerBitmap,
        proposer_idx: u16,
        domain: Domain,
        msg: &[u8],
        sig: &Signature,
        digest: [u8; 32],
    ) -> Result<(), VerifyError> {
        if self.cached(&digest) {
            return Ok(());
        }
        let sig = decode_sig(sig).ok_or(VerifyError::MalformedSignature)?;
        let proposer = self.proposers.get(proposer_idx as usize);
        if !self.voters.verify_subset_point(
            signers,
            proposer,
            &domain.tag(self.network_id),
            msg,
            &sig,
        ) {
            return Err(VerifyError::BadSignature);
        }
        self.remember(digest);
        Ok(())
    }

    /// Verifies a notarization (D-12 with its MUST-fixes): session, bitmap length equal to
    /// the voter count, `proposer_idx` in range, quorum recomputed from the bitmap (there
    /// is no vote counter to trust), then the aggregate against the proposer's key plus the
    /// included voters' keys. Successes are cached per exact object.
    pub fn verify_notarization(&self, n: &Notarization) -> Result<(), VerifyError> {
        self.check_structure(n.sn.epoch.session, &n.signers, n.proposer_idx)?;
        let digest = object_digest(b"nota", &n.to_bytes());
        self.verify_aggregate(
            &n.signers,
            n.proposer_idx,
            Domain::Vote,
            &n.block_hash.0,
            &n.signature,
            digest,
        )
    }

    /// [`CommitteeKeys::verify_notarization`] for the block known locally at `n.sn` with
    /// hash `known_hash` (D-12: "the block at sn must be known and have hash block_hash").
    pub fn verify_notarization_of(
        &self,
        n: &Notarization,
        known_hash: &Hash,
    ) -> Result<(), VerifyError> {
        if n.block_hash != *known_hash {
            return Err(VerifyError::BlockHashMismatch);
        }
        self.verify_notarization(n)
    }

    /// Verifies a clock notarization (D-14): the same checks as
    /// [`CommitteeKeys::verify_notarization`] over `epoch.signing_bytes()`.
    pub fn verify_clock_notarization(&self, c: &ClockNotarization) -> Result<(), VerifyError> {
        self.check_structure(c.epoch.session, &c.signers, c.proposer_idx)?;
        let digest = object_digest(b"cnota", &c.to_bytes());
        self.verify_aggregate(
            &c.signers,
            c.proposer_idx,
            Domain::Clock,
            &c.epoch.signing_bytes(),
            &c.signature,
            digest,
        )
    }

    /// [`CommitteeKeys::verify_clock_notarization`] that also requires the epoch `expected`.
    pub fn verify_clock_notarization_for(
        &self,
        c: &ClockNotarization,
        expected: Epoch,
    ) -> Result<(), VerifyError> {
        if c.epoch != expected {
            return Err(VerifyError::EpochMismatch {
                expected,
                got: c.epoch,
            });
        }
        self.verify_clock_notarization(c)
    }

    /// Checks the votes for block `hash` at `sn` as one batch: the well-formed votes of
    /// distinct committee voters are aggregated and verified once with the cached
    /// committee key; only if that fails are the bad ones found by bisection. The good
    /// votes stay aggregated either way.
    pub fn verify_votes(&self, sn: BlockSn, hash: Hash, votes: &[Vote]) -> VoteBatch {
        let msgs: Vec<(NodeId, bool, &Signature)> = votes
            .iter()
            .map(|v| (v.voter, v.sn == sn && v.block_hash == hash, &v.signature))
            .collect();
        self.verify_batch_for(
            BatchTarget::Block { sn, hash },
            Domain::Vote,
            &hash.0,
            &msgs,
        )
    }

    /// [`CommitteeKeys::verify_votes`] for clock messages of `epoch` (D-13).
    pub fn verify_clock_messages(&self, epoch: Epoch, msgs: &[ClockMessage]) -> VoteBatch {
        let m: Vec<(NodeId, bool, &Signature)> = msgs
            .iter()
            .map(|c| (c.voter, c.epoch == epoch, &c.signature))
            .collect();
        self.verify_batch_for(
            BatchTarget::Epoch(epoch),
            Domain::Clock,
            &epoch.signing_bytes(),
            &m,
        )
    }

    fn verify_batch_for(
        &self,
        target: BatchTarget,
        domain: Domain,
        msg: &[u8],
        msgs: &[(NodeId, bool, &Signature)],
    ) -> VoteBatch {
        let dst = domain.tag(self.network_id);
        let n_voters = self.committee.voters.len();
        let mut rejected = Vec::new();
        // Signatures are decompressed in parallel: at a few tens of microseconds each this
        // is the per-vote cost of the whole batch.
        let decoded: Vec<Result<Candidate, VoteRejection>> = msgs
            .par_iter()
            .enumerate()
            .with_min_len(PAR_MIN_LEN)
            .map(|(index, (voter, on_target, sig))| {
                let voter = *self
                    .voter_index
                    .get(voter)
                    .ok_or(VoteRejection::UnknownVoter)?;
                if !on_target {
                    return Err(VoteRejection::WrongTarget);
                }
                let sig = decode_sig(sig).ok_or(VoteRejection::MalformedSignature)?;
                Ok(Candidate { index, voter, sig })
            })
            .collect();
        // First message per voter goes in the batch. A later one with identical bytes is a
        // plain duplicate; a later *different* one is kept aside, because a forger may
        // have raced the real voter and the real vote must not be lost (PV-2).
        let mut first: Vec<Option<usize>> = vec![None; n_voters];
        let mut primary: Vec<Candidate> = Vec::new();
        let mut spare: Vec<Candidate> = Vec::new();
        for r in decoded.into_iter().enumerate() {
            match r {
                (index, Err(reason)) => rejected.push(RejectedVote {
                    index,
                    voter: msgs[index].0,
                    reason,
                }),
                (_, Ok(c)) => match first[c.voter] {
                    None => {
                        first[c.voter] = Some(c.index);
                        primary.push(c);
                    }
                    Some(f) if msgs[f].2 == msgs[c.index].2 => rejected.push(RejectedVote {
                        index: c.index,
                        voter: msgs[c.index].0,
                        reason: VoteRejection::Duplicate,
                    }),
                    Some(_) => spare.push(c),
                },
            }
        }
        let bad: HashSet<usize> =
            if primary.is_empty() || self.check_candidates(&primary, &dst, msg) {
                HashSet::new()
            } else {
                self.bisect(&primary, &dst, msg, true).into_iter().collect()
            };
        let mut good: Vec<Candidate> = Vec::with_capacity(primary.len());
        let mut voter_bad = vec![false; n_voters];
        for c in primary {
            if bad.contains(&c.index) {
                voter_bad[c.voter] = true;
                rejected.push(RejectedVote {
                    index: c.index,
                    voter: msgs[c.index].0,
                    reason: VoteRejection::BadSignature,
                });
            } else {
                good.push(c);
            }
        }
        for c in spare {
            let reason = if !voter_bad[c.voter] {
                Some(VoteRejection::Duplicate)
            } else if let Some(pk) = self.voters.get(c.voter) {
                if verify_point(&c.sig, pk, &dst, msg) {
                    voter_bad[c.voter] = false;
                    None
                } else {
                    Some(VoteRejection::BadSignature)
                }
            } else {
                Some(VoteRejection::BadSignature)
            };
            match reason {
                None => good.push(c),
                Some(reason) => rejected.push(RejectedVote {
                    index: c.index,
                    voter: msgs[c.index].0,
                    reason,
                }),
            }
        }
        good.sort_by_key(|c| c.index);
        rejected.sort_by_key(|r| r.index);
        let mut signers = SignerBitmap::new(n_voters);
        for c in &good {
            signers.insert(c.voter);
        }
        VoteBatch {
            target,
            accepted: good.iter().map(|c| c.index).collect(),
            rejected,
            weight: self.committee.weight(&signers),
            signers,
            aggregate: sum_sigs(good.iter().map(|c| &c.sig)),
        }
    }

    /// Whether the aggregate of `cands` verifies against the aggregate of their keys.
    fn check_candidates(&self, cands: &[Candidate], dst: &[u8], msg: &[u8]) -> bool {
        let Some(agg) = sum_sigs(cands.iter().map(|c| &c.sig)) else {
            return true;
        };
        let mut signers = SignerBitmap::new(self.committee.voters.len());
        for c in cands {
            signers.insert(c.voter);
        }
        self.voters
            .verify_subset_point(&signers, None, dst, msg, &agg.to_signature())
    }

    /// Input indexes of the bad signatures among `cands`. `known_bad` says the caller
    /// already knows this set fails, which saves its check: when a failing set's left half
    /// passes, the right half must fail (the check is multiplicative), so one verification
    /// per level suffices for a single forgery.
    fn bisect(&self, cands: &[Candidate], dst: &[u8], msg: &[u8], known_bad: bool) -> Vec<usize> {
        if cands.is_empty() || (!known_bad && self.check_candidates(cands, dst, msg)) {
            return Vec::new();
        }
        if cands.len() == 1 {
            return vec![cands[0].index];
        }
        let (l, r) = cands.split_at(cands.len() / 2);
        if self.check_candidates(l, dst, msg) {
            self.bisect(r, dst, msg, true)
        } else {
            let (mut a, b) = rayon::join(
                || self.bisect(l, dst, msg, true),
                || self.bisect(r, dst, msg, false),
            );
            a.extend(b);
            a
        }
    }

    fn own_share(
        &self,
        proposer_idx: u16,
        signer: &BlsSigner,
        batch: &VoteBatch,
        domain: Domain,
        msg: &[u8],
    ) -> Result<Signature, BuildError> {
        let c = &self.committee;
        let member = c
            .proposers
            .get(proposer_idx as usize)
            .ok_or(BuildError::ProposerIndex {
                index: proposer_idx,
                proposers: c.proposers.len(),
            })?;
        if member.public_key != *signer.public_key() {
            return Err(BuildError::NotTheProposer(proposer_idx));
        }
        if !c.is_quorum(&batch.signers) {
            return Err(BuildError::BelowQuorum {
                weight: batch.weight,
                quorum: c.quorum(),
            });
        }
        let own = signer.sign_raw(domain, self.network_id, msg);
        let mut agg = raw::AggregateSignature::from_signature(&own);
        if let Some(votes) = &batch.aggregate {
            agg.add_aggregate(votes);
        }
        Ok(encode_sig(&agg.to_signature()))
    }

    /// Builds the notarization of a verified vote batch (D-12): the batch's signer bitmap
    /// and aggregate plus the aggregating proposer's own signature on the block hash.
    pub fn build_notarization(
        &self,
        batch: &VoteBatch,
        proposer_idx: u16,
        signer: &BlsSigner,
    ) -> Result<Notarization, BuildError> {
        let BatchTarget::Block { sn, hash } = batch.target else {
            return Err(BuildError::WrongTarget);
        };
        let signature = self.own_share(proposer_idx, signer, batch, Domain::Vote, &hash.0)?;
        Ok(Notarization {
            sn,
            block_hash: hash,
            proposer_idx,
            signers: batch.signers.clone(),
            signature,
        })
    }

    /// Builds the clock notarization of a verified clock-message batch (D-14).
    pub fn build_clock_notarization(
        &self,
        batch: &VoteBatch,
        proposer_idx: u16,
        signer: &BlsSigner,
    ) -> Result<ClockNotarization, BuildError> {
        let BatchTarget::Epoch(epoch) = batch.target else {
            return Err(BuildError::WrongTarget);
        };
        let signature = self.own_share(
            proposer_idx,
            signer,
            batch,
            Domain::Clock,
            &epoch.signing_bytes(),
        )?;
        Ok(ClockNotarization {
            epoch,
            proposer_idx,
            signers: batch.signers.clone(),
            signature,
        })
    }
}

fn object_digest(kind: &[u8], bytes: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(kind);
    h.update(bytes);
    *h.finalize().as_bytes()
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
