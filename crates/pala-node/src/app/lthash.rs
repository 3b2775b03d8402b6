//! LtHash16: a homomorphic multiset hash, so the digest of the whole key-value store
//! follows every write in O(1) without a walk over the store.
//!
//! The construction is the lattice hash of Bellare and Micciancio ("A New Paradigm for
//! Collision-free Hashing: Incrementality at Reduced Cost", EUROCRYPT 1997) with the
//! parameters of Lewi, Kim, Maykov and Weis ("Securing Update Propagation with
//! Homomorphic Hashing", IACR ePrint 2019/227, section 3): an element is expanded by an
//! extendable-output hash to 1024 lanes of 16 bits, a multiset is the lane-wise sum
//! modulo 2^16 of its elements, and removal subtracts. The paper estimates about 200 bits
//! of security for n = 1024, d = 16, by reduction to the short integer solution
//! problem. BLAKE3 in XOF mode is the expansion, as in Solana's accounts lattice hash.
//!
//! Why not a sum of 256-bit hashes: a single-lane additive hash falls to Wagner's
//! generalized birthday attack ("A Generalized Birthday Problem", CRYPTO 2002), which
//! finds a multiset with a chosen sum far faster than 2^128. Why not the
//! `solana-lattice-hash` crate: since 3.1 it is deprecated in favour of an "unstable API"
//! feature of Agave that "may break without warning", which no consensus digest can
//! depend on; the construction is forty lines over `blake3`, written here with its lanes
//! read little-endian on every platform.

/// Lanes of 16 bits: 2 KiB of state.
pub const LANES: usize = 1024;

/// A multiset of byte strings, summarised in 2 KiB.
#[derive(Clone, PartialEq, Eq)]
pub struct LtHash {
    lanes: Box<[u16; LANES]>,
}

impl std::fmt::Debug for LtHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LtHash({})", pala_types::Hash(self.checksum()))
    }
}

impl Default for LtHash {
    fn default() -> Self {
        LtHash::identity()
    }
}

impl LtHash {
    /// The hash of the empty multiset.
    pub fn identity() -> LtHash {
        LtHash {
            lanes: Box::new([0; LANES]),
        }
    }

    /// The hash of the multiset holding one element, whose bytes the caller fed to
    /// `hasher` (with its own domain separation).
    pub fn of(hasher: &blake3::Hasher) -> LtHash {
        let mut bytes = [0u8; LANES * 2];
        hasher.finalize_xof().fill(&mut bytes);
        let mut h = LtHash::identity();
        for (lane, b) in h.lanes.iter_mut().zip(bytes.chunks_exact(2)) {
            *lane = u16::from_le_bytes([b[0], b[1]]);
        }
        h
    }

    /// Adds the elements of `other` (multiset union).
    pub fn add(&mut self, other: &LtHash) {
        for (a, b) in self.lanes.iter_mut().zip(other.lanes.iter()) {
            *a = a.wrapping_add(*b);
        }
    }

    /// Removes the elements of `other` (which must have been added).
    pub fn remove(&mut self, other: &LtHash) {
        for (a, b) in self.lanes.iter_mut().zip(other.lanes.iter()) {
            *a = a.wrapping_sub(*b);
        }
    }

    /// A 32-byte checksum of the 2 KiB state (BLAKE3 of the lanes, little-endian).
    pub fn checksum(&self) -> [u8; 32] {
        blake3::hash(&self.to_bytes()).into()
    }

    /// The lanes, little-endian (what a snapshot file keeps).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.lanes.iter().flat_map(|l| l.to_le_bytes()).collect()
    }

    /// Reads lanes written by [`LtHash::to_bytes`]; `None` unless exactly 2 KiB.
    pub fn from_bytes(b: &[u8]) -> Option<LtHash> {
        if b.len() != LANES * 2 {
            return None;
        }
        let mut h = LtHash::identity();
        for (lane, b) in h.lanes.iter_mut().zip(b.chunks_exact(2)) {
            *lane = u16::from_le_bytes([b[0], b[1]]);
        }
        Some(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elem(s: &[u8]) -> LtHash {
        let mut h = blake3::Hasher::new();
        h.update(s);
        LtHash::of(&h)
    }

    #[test]
    fn union_is_commutative_and_removal_inverts_it() {
        let (a, b, c) = (elem(b"a"), elem(b"b"), elem(b"c"));
        let mut x = LtHash::identity();
        x.add(&a);
        x.add(&b);
        x.add(&c);
        let mut y = LtHash::identity();
        y.add(&c);
        y.add(&a);
        y.add(&b);
        assert_eq!(x, y);
        x.remove(&b);
        let mut z = LtHash::identity();
        z.add(&a);
        z.add(&c);
        assert_eq!(x, z);
        x.remove(&a);
        x.remove(&c);
        assert_eq!(x, LtHash::identity());
        assert_ne!(z.checksum(), LtHash::identity().checksum());
    }

    #[test]
    fn a_multiset_is_not_a_set() {
        // Adding an element twice is not adding it once: the store never relies on
        // idempotence, it removes the old pair before adding the new one.
        let a = elem(b"a");
        let mut once = LtHash::identity();
        once.add(&a);
        let mut twice = once.clone();
        twice.add(&a);
        assert_ne!(once, twice);
    }

    #[test]
    fn lanes_round_trip_and_the_expansion_is_pinned() {
        let a = elem(b"pala");
        assert_eq!(LtHash::from_bytes(&a.to_bytes()), Some(a.clone()));
        assert_eq!(LtHash::from_bytes(&[0; 10]), None);
        // The first lanes are the first bytes of BLAKE3's XOF output, little-endian: a
        // change of expansion or byte order would split replicas, so it is pinned.
        let mut xof = [0u8; 4];
        let mut h = blake3::Hasher::new();
        h.update(b"pala");
        h.finalize_xof().fill(&mut xof);
        let b = a.to_bytes();
        assert_eq!(&b[..4], &xof);
        assert_eq!(
            LtHash::identity().checksum(),
            <[u8; 32]>::from(blake3::hash(&[0u8; LANES * 2]))
        );
    }
}
