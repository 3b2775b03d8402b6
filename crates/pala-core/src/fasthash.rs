//! A fast, deterministic hasher for the core's small in-memory maps.
//!
//! `std`'s SipHash was about a tenth of the core's CPU time on `BlockSn` and `NodeId`
//! keys. Those maps hold only verified items (blocks signed by the primary, committee
//! members), bounded by the protocol, so flooding them with crafted colliding keys is
//! not a concern. Being unseeded, it also makes iteration order reproducible.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The FxHash step (as in rustc), with a final mix so that the low bits hashbrown uses
/// for the bucket index depend on every input bit.
#[derive(Default, Clone, Copy)]
pub struct FastHasher {
    hash: u64,
}

const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FastHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.hash = (self.hash.rotate_left(5) ^ w).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        let h = self.hash;
        (h ^ (h >> 32)).wrapping_mul(K) ^ (h >> 29)
    }
}

/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use pala_types::BlockSn;
    use std::hash::{BuildHasher, BuildHasherDefault};

    #[test]
    fn consecutive_sns_spread_over_buckets() {
        let b = BuildHasherDefault::<FastHasher>::default();
        let mut low = std::collections::HashSet::new();
        for s in 0..1024u32 {
            low.insert(b.hash_one(BlockSn::new(1, 1, s)) & 1023);
        }
        assert!(
            low.len() > 600,
            "only {} distinct low-bit buckets",
            low.len()
        );
    }

    /// Every write feeds the state: inputs that differ in one place hash apart (a write
    /// that ignored its input would still give a correct map, only a slow one).
    #[test]
    fn every_write_reaches_the_hash() {
        fn h(f: impl Fn(&mut FastHasher)) -> u64 {
            let mut x = FastHasher::default();
            f(&mut x);
            x.finish()
        }
        assert_ne!(h(|x| x.write(b"abc")), h(|x| x.write(b"abd")), "tail bytes");
        assert_ne!(h(|x| x.write(b"12345678")), h(|x| x.write(b"12345679")));
        assert_ne!(h(|x| x.write(b"12345678")), h(|x| x.write(b"")));
        assert_ne!(h(|x| x.write_u8(1)), h(|x| x.write_u8(2)));
        assert_ne!(h(|x| x.write_u16(1)), h(|x| x.write_u16(2)));
        assert_ne!(h(|x| x.write_u32(1)), h(|x| x.write_u32(2)));
        assert_ne!(h(|x| x.write_u64(1)), h(|x| x.write_u64(2)));
        assert_ne!(h(|x| x.write_usize(1)), h(|x| x.write_usize(2)));
    }
}
