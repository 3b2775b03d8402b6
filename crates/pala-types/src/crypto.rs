//! The signature abstraction the protocol is written against.
//!
//! The core never sees a concrete curve: it signs and aggregates through
//! [`Signer`] and [`SignatureScheme`], and receives messages whose signatures were
//! already checked by the verification layer. `pala-crypto` implements these traits
//! with BLS12-381 (blst); [`crate::insecure`] has a fast, clearly insecure double for
//! large simulations.

use crate::codec::{Decode, DecodeError, Encode, Reader};
use crate::ids::NodeId;
use std::fmt;
use std::sync::Arc;

/// Longest serialized public key or signature any scheme may use (BLS G2 uncompressed
/// is 192 bytes).
pub const MAX_KEY_OR_SIG_LEN: usize = 192;

/// What a signature is over; each kind has its own domain-separation tag that also names
/// the network id (section 0.1 item 1).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Domain {
    /// A proposal: the primary proposer's signature over the block hash (D-10).
    Proposal,
    /// A vote, and the proposer's own share of a notarization: over the block hash (D-11, D-12).
    Vote,
    /// A clock message, and the proposer's share of a clock notarization: over the epoch (D-13).
    Clock,
    /// A connection handshake challenge (section 8).
    Handshake,
    /// A proof of possession of a secret key (D-8).
    ProofOfPossession,
}

impl Domain {
    /// The domain-separation tag for this kind of message on network `network_id`:
    /// `PALA-V1-<KIND>-NET<network id, 16 lowercase hex digits>` followed by the BLS
    /// ciphersuite id. BLS uses it as the hash-to-curve DST, so these bytes are part of
    /// every signature and must never change.
    ///
    /// Built in a fixed-size buffer: it is computed on every sign and verify, where a
    /// heap-allocated `format!` showed up as a fifth of the insecure scheme's CPU time.
    pub fn tag(self, network_id: u64) -> DomainTag {
        let kind: &[u8] = match self {
            Domain::Proposal => b"PROPOSAL",
            Domain::Vote => b"VOTE",
            Domain::Clock => b"CLOCK",
            Domain::Handshake => b"HANDSHAKE",
            Domain::ProofOfPossession => b"POP",
        };
        let mut t = DomainTag {
            len: 0,
            bytes: [0; MAX_DOMAIN_TAG_LEN],
        };
        t.push(b"PALA-V1-");
        t.push(kind);
        t.push(b"-NET");
        let mut hex = [0u8; 16];
        for (i, d) in hex.iter_mut().enumerate() {
            let nibble = (network_id >> (60 - 4 * i)) & 0xf;
            *d = b"0123456789abcdef"[nibble as usize];
        }
        t.push(&hex);
        t.push(b"_BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_NUL_");
        t
    }
}

/// Length of the longest [`DomainTag`] (the handshake tag).
pub const MAX_DOMAIN_TAG_LEN: usize = 81;

/// A domain-separation tag (see [`Domain::tag`]); dereferences to its bytes.
#[derive(Copy, Clone, PartialEq, Eq, Hash)]
pub struct DomainTag {
    len: u8,
    bytes: [u8; MAX_DOMAIN_TAG_LEN],
}

impl DomainTag {
    fn push(&mut self, s: &[u8]) {
        let at = self.len as usize;
        self.bytes[at..at + s.len()].copy_from_slice(s);
        self.len += s.len() as u8;
    }
}

impl std::ops::Deref for DomainTag {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl AsRef<[u8]> for DomainTag {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl fmt::Debug for DomainTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DomainTag({})", String::from_utf8_lossy(self))
    }
}

macro_rules! bytes_newtype {
    ($name:ident, $what:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, PartialEq, Eq, Hash, Default)]
        pub struct $name(pub Vec<u8>);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($what, "("))?;
                for b in self.0.iter().take(6) {
                    write!(f, "{b:02x}")?;
                }
                write!(f, ")")
            }
        }

        impl Encode for $name {
            fn encode(&self, out: &mut Vec<u8>) {
                out.push(self.0.len() as u8);
                out.extend_from_slice(&self.0);
            }
        }

        impl Decode for $name {
            fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                let n = r.u8($what)? as usize;
                if n > MAX_KEY_OR_SIG_LEN {
                    return Err(DecodeError::Invalid {
                        what: $what,
                        detail: format!("length {n} exceeds {MAX_KEY_OR_SIG_LEN}"),
                    });
                }
                Ok($name(r.take(n, $what)?.to_vec()))
            }
        }
    };
}

bytes_newtype!(
    PublicKey,
    "public key",
    "A serialized public key of the active scheme."
);
bytes_newtype!(
    Signature,
    "signature",
    "A serialized (possibly aggregate) signature."
);

impl PublicKey {
    /// The node id derived from this key (D-7).
    pub fn node_id(&self) -> NodeId {
        NodeId::from_public_key_bytes(&self.0)
    }
}

/// A set of signer indexes into an ordered committee list, as a bitmap.
///
/// On the wire: `u16 len ‖ ceil(len/8) bytes`, bit `i` = byte `i/8`, bit `i%8`.
/// Unused high bits of the last byte must be zero (canonical encoding).
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct SignerBitmap {
    len: u16,
    bytes: Vec<u8>,
}

impl SignerBitmap {
    /// An empty set over a list of `len` members.
    pub fn new(len: usize) -> Self {
        let len = u16::try_from(len).expect("committee lists are at most 65535 long");
        SignerBitmap {
            len,
            bytes: vec![0u8; (len as usize).div_ceil(8)],
        }
    }

    /// Size of the list the bitmap indexes.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when the indexed list is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds index `i`; returns false if it was already present or out of range.
    pub fn insert(&mut self, i: usize) -> bool {
        if i >= self.len() || self.contains(i) {
            return false;
        }
        self.bytes[i / 8] |= 1 << (i % 8);
        true
    }

    /// Whether index `i` is in the set (false when out of range).
    pub fn contains(&self, i: usize) -> bool {
        i < self.len() && self.bytes[i / 8] & (1 << (i % 8)) != 0
    }

    /// Number of members in the set.
    pub fn count(&self) -> usize {
        self.bytes.iter().map(|b| b.count_ones() as usize).sum()
    }

    /// The member indexes, ascending.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        // Byte by byte, skipping clear bits: verifiers walk the signers of every
        // notarization. Bits beyond `len` are always zero (see `insert` and `decode`).
        self.bytes.iter().enumerate().flat_map(|(at, &byte)| {
            let mut rest = byte;
            std::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let bit = rest.trailing_zeros() as usize;
                    rest &= rest - 1;
                    at * 8 + bit
                })
            })
        })
    }
}

impl fmt::Debug for SignerBitmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Encode for SignerBitmap {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.bytes);
    }
}

impl Decode for SignerBitmap {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let len = r.u16("bitmap length")?;
        let bytes = r.take((len as usize).div_ceil(8), "bitmap")?.to_vec();
        if len % 8 != 0 {
            let last = *bytes.last().expect("len > 0 so at least one byte");
            if last >> (len % 8) != 0 {
                return Err(DecodeError::Invalid {
                    what: "bitmap",
                    detail: "bits set beyond the list length".into(),
                });
            }
        }
        Ok(SignerBitmap { len, bytes })
    }
}

/// The node's own signing key.
pub trait Signer: Send + Sync {
    /// The matching public key.
    fn public_key(&self) -> &PublicKey;
    /// Signs `msg` under `domain` on network `network_id`.
    fn sign(&self, domain: Domain, network_id: u64, msg: &[u8]) -> Signature;
    /// The node id of the public key.
    fn node_id(&self) -> NodeId {
        self.public_key().node_id()
    }
}

/// The public keys of one ordered committee list, prepared once so that the key of any
/// subset can be derived cheaply (for example total minus the missing members).
pub trait PreparedKeys: Send + Sync {
    /// Number of keys in the list.
    fn len(&self) -> usize;
    /// True when the list is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Verifies `sig` as the aggregate signature over `msg` of the members in `signers`
    /// plus, if given, the `extra` key (the aggregating proposer, D-12).
    fn verify_subset(
        &self,
        signers: &SignerBitmap,
        extra: Option<&PublicKey>,
        domain: Domain,
        network_id: u64,
        msg: &[u8],
        sig: &Signature,
    ) -> bool;
    /// The concrete type, so a scheme can reach its own prepared keys inside a batch of
    /// [`SignatureScheme::verify_with_quorums`]; `None` makes it check them on their own.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
}

/// A quorum signature for [`SignatureScheme::verify_with_quorums`]: the aggregate over
/// `msg` of the members `signers` of a prepared list plus `extra` (D-12, D-14).
#[derive(Clone, Copy)]
pub struct QuorumItem<'a> {
    /// The prepared list the bitmap indexes.
    pub keys: &'a dyn PreparedKeys,
    /// The members who signed.
    pub signers: &'a SignerBitmap,
    /// A key outside the list that signed too (the aggregating proposer).
    pub extra: Option<&'a PublicKey>,
    /// Domain of the message.
    pub domain: Domain,
    /// The signed bytes.
    pub msg: &'a [u8],
    /// The aggregate signature.
    pub signature: &'a Signature,
}

/// One independent (key, message, signature) triple for [`SignatureScheme::verify_batch`].
#[derive(Debug, Clone, Copy)]
pub struct BatchItem<'a> {
    /// Signer.
    pub public_key: &'a PublicKey,
    /// Domain of the message.
    pub domain: Domain,
    /// The signed bytes.
    pub msg: &'a [u8],
    /// The signature.
    pub signature: &'a Signature,
}

/// Verification and aggregation of a signature scheme.
pub trait SignatureScheme: Send + Sync {
    /// A short name for logs ("bls12-381-min-pk", "insecure-test").
    fn name(&self) -> &'static str;
    /// Checks that `pk` is a well-formed key of this scheme.
    fn check_public_key(&self, pk: &PublicKey) -> bool;
    /// Verifies a single signature.
    fn verify(
        &self,
        pk: &PublicKey,
        domain: Domain,
        network_id: u64,
        msg: &[u8],
        sig: &Signature,
    ) -> bool;
    /// Adds signatures (over the same message) into one; `None` if any is malformed.
    fn aggregate(&self, sigs: &[&Signature]) -> Option<Signature>;
    /// Verifies an aggregate of signatures over one message by all of `pks`.
    fn verify_same_message(
        &self,
        pks: &[&PublicKey],
        domain: Domain,
        network_id: u64,
        msg: &[u8],
        sig: &Signature,
    ) -> bool;
    /// Verifies independent triples at once; true only if every one is valid.
    /// Schemes may use a random linear combination; the default checks them one by one.
    fn verify_batch(&self, network_id: u64, items: &[BatchItem<'_>]) -> bool {
        items
            .iter()
            .all(|i| self.verify(i.public_key, i.domain, network_id, i.msg, i.signature))
    }
    /// Verifies independent single signatures and quorum signatures at once; true only
    /// if every one is valid. A voter receives a proposal and the notarization it must
    /// check for it together (one multi-pairing instead of two). The default checks them
    /// one by one.
    fn verify_with_quorums(
        &self,
        network_id: u64,
        singles: &[BatchItem<'_>],
        quorums: &[QuorumItem<'_>],
    ) -> bool {
        self.verify_batch(network_id, singles)
            && quorums.iter().all(|q| {
                q.keys
                    .verify_subset(q.signers, q.extra, q.domain, network_id, q.msg, q.signature)
            })
    }
    /// Prepares an ordered key list for subset verification.
    fn prepare_keys(&self, pks: &[PublicKey]) -> Arc<dyn PreparedKeys>;
    /// Verifies a proof of possession of the secret key of `pk` (D-8).
    fn verify_possession(&self, pk: &PublicKey, network_id: u64, proof: &Signature) -> bool {
        self.verify(pk, Domain::ProofOfPossession, network_id, &pk.0, proof)
    }
}

/// A [`PreparedKeys`] that sums keys on demand through [`SignatureScheme::verify_same_message`];
/// suitable for schemes without a faster subset operation.
pub struct PlainPreparedKeys<S> {
    scheme: S,
    keys: Vec<PublicKey>,
}

impl<S: SignatureScheme> PlainPreparedKeys<S> {
    /// Wraps `keys` for `scheme`.
    pub fn new(scheme: S, keys: Vec<PublicKey>) -> Self {
        PlainPreparedKeys { scheme, keys }
    }
}

impl<S: SignatureScheme> PreparedKeys for PlainPreparedKeys<S> {
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
        if signers.len() != self.keys.len() {
            return false;
        }
        let mut pks: Vec<&PublicKey> = signers.iter().map(|i| &self.keys[i]).collect();
        pks.extend(extra);
        !pks.is_empty()
            && self
                .scheme
                .verify_same_message(&pks, domain, network_id, msg, sig)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_basics_and_canonical_decoding() {
        let mut b = SignerBitmap::new(10);
        assert!(b.insert(0));
        assert!(b.insert(9));
        assert!(!b.insert(9));
        assert!(!b.insert(10));
        assert_eq!(b.count(), 2);
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![0, 9]);
        let bytes = b.to_bytes();
        assert_eq!(SignerBitmap::from_bytes(&bytes).unwrap(), b);
        let mut bad = bytes.clone();
        *bad.last_mut().unwrap() |= 0x80;
        assert!(SignerBitmap::from_bytes(&bad).is_err());
    }

    #[test]
    fn domain_tags_differ_by_kind_and_network() {
        assert_ne!(Domain::Vote.tag(1), Domain::Proposal.tag(1));
        assert_ne!(Domain::Vote.tag(1), Domain::Vote.tag(2));
    }

    /// The tag is the BLS DST: its bytes must stay those of the original `format!`.
    #[test]
    fn domain_tags_keep_their_bytes() {
        let kinds = [
            (Domain::Proposal, "PROPOSAL"),
            (Domain::Vote, "VOTE"),
            (Domain::Clock, "CLOCK"),
            (Domain::Handshake, "HANDSHAKE"),
            (Domain::ProofOfPossession, "POP"),
        ];
        for (d, kind) in kinds {
            for net in [0, 1, 7, 0xdead_beef, u64::MAX] {
                let want = format!(
                    "PALA-V1-{kind}-NET{net:016x}_BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_NUL_"
                );
                assert_eq!(&*d.tag(net), want.as_bytes());
            }
        }
        assert_eq!(
            Domain::Handshake.tag(u64::MAX).len(),
            MAX_DOMAIN_TAG_LEN,
            "the buffer fits the longest tag exactly"
        );
    }
}
