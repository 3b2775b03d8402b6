//! BLS12-381 signatures for PaLa, through blst.
//!
//! The primitives the node's signature rules are built on, and nothing the protocol core
//! should know about: keys and key files, signing, the [`pala_types::Signer`] and
//! [`pala_types::SignatureScheme`] implementations (aggregation, fast-aggregate verify
//! against prepared committee keys, random-linear-combination batches of independent
//! messages) and the handshake signature.
//!
//! The rules themselves (who may sign what, quorums, the D-12 checks of notarizations,
//! vote batches with bisection, committee admission with proofs of possession) live in
//! one place, the node's verifier: `pala_core::verify`.
//!
//! Both blst variants are compiled: [`min_pk`] (keys in G1, signatures in G2) and
//! [`min_sig`] (keys in G2, signatures in G1). The crate root re-exports the one the node
//! uses; `perf/crypto.md` has the measurements behind that choice. The other variant stays
//! available for the benchmarks.
//!
//! Parallel work runs on rayon's current pool (blst is built with `no-threads`): run the
//! calls inside `pool.install(..)` to use a dedicated pool.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod error;
pub mod handshake;
pub mod hex;
mod keyfile;

pub use error::{HandshakeError, IdentityError, KeyFileError};
pub use handshake::HandshakeSignature;
pub use keyfile::SECRET_HEX_LEN;

/// BLS with public keys in G1 (48 bytes compressed) and signatures in G2 (96 bytes).
pub mod min_pk {
    use blst::min_pk as raw;
    type PkAffine = blst::blst_p1_affine;
    type SigAffine = blst::blst_p2_affine;
    /// Name reported by [`pala_types::SignatureScheme::name`].
    pub const SCHEME_NAME: &str = "bls12-381-min-pk";
    /// Length of a compressed public key.
    pub const PUBLIC_KEY_LEN: usize = 48;
    /// Length of a compressed signature.
    pub const SIGNATURE_LEN: usize = 96;
    include!("variant.rs");
}

/// BLS with public keys in G2 (96 bytes compressed) and signatures in G1 (48 bytes).
pub mod min_sig {
    use blst::min_sig as raw;
    type PkAffine = blst::blst_p2_affine;
    type SigAffine = blst::blst_p1_affine;
    /// Name reported by [`pala_types::SignatureScheme::name`].
    pub const SCHEME_NAME: &str = "bls12-381-min-sig";
    /// Length of a compressed public key.
    pub const PUBLIC_KEY_LEN: usize = 96;
    /// Length of a compressed signature.
    pub const SIGNATURE_LEN: usize = 48;
    include!("variant.rs");
}

// The variant the node uses; see perf/crypto.md for the measurements.
pub use min_sig::{
    seeded_committee, BlsPreparedKeys, BlsScheme, BlsSigner, PublicIdentity, SecretKey,
    PUBLIC_KEY_LEN, SCHEME_NAME, SIGNATURE_LEN,
};
