//! The handshake signature blob of section 8 (S-2.5) and the challenge it signs
//! (section 0.1 item 10).
//!
//! Blob: `0x01 (BLS) ‖ u16 len ‖ public key (len bytes) ‖ signature (rest)`, little-endian.
//! The signer's id is derived from the embedded key (D-7); signing and verifying live in
//! the variant modules ([`crate::BlsSigner::sign_handshake`], [`crate::BlsScheme::verify_handshake`]).

use crate::error::HandshakeError;
use pala_types::{PublicKey, Signature};

/// The scheme byte for BLS.
pub const SCHEME_BLS: u8 = 0x01;

/// Role byte of the dialing side in the challenge.
pub const ROLE_CLIENT: u8 = 0x01;
/// Role byte of the listening side in the challenge.
pub const ROLE_SERVER: u8 = 0x02;

/// A decoded handshake signature blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeSignature {
    /// The signer's public key.
    pub public_key: PublicKey,
    /// The signature over the challenge under [`pala_types::Domain::Handshake`].
    pub signature: Signature,
}

impl HandshakeSignature {
    /// Encodes the blob.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(3 + self.public_key.0.len() + self.signature.0.len());
        out.push(SCHEME_BLS);
        // Keys are at most 192 bytes (pala_types::crypto::MAX_KEY_OR_SIG_LEN), so this fits.
        out.extend_from_slice(&(self.public_key.0.len() as u16).to_le_bytes());
        out.extend_from_slice(&self.public_key.0);
        out.extend_from_slice(&self.signature.0);
        out
    }

    /// Decodes a blob; lengths are checked against the scheme when verifying.
    pub fn decode(blob: &[u8]) -> Result<Self, HandshakeError> {
        let (&scheme, rest) = blob.split_first().ok_or(HandshakeError::Truncated)?;
        if scheme != SCHEME_BLS {
            return Err(HandshakeError::UnknownScheme(scheme));
        }
        if rest.len() < 2 {
            return Err(HandshakeError::Truncated);
        }
        let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
        let rest = &rest[2..];
        if rest.len() < len {
            return Err(HandshakeError::Truncated);
        }
        let (pk, sig) = rest.split_at(len);
        if pk.len() > pala_types::crypto::MAX_KEY_OR_SIG_LEN
            || sig.len() > pala_types::crypto::MAX_KEY_OR_SIG_LEN
        {
            return Err(HandshakeError::Malformed);
        }
        Ok(HandshakeSignature {
            public_key: PublicKey(pk.to_vec()),
            signature: Signature(sig.to_vec()),
        })
    }
}

/// The bytes each side signs: `u32 len ‖ Z ‖ u32 len ‖ TLS exporter value ‖ role ‖ u64
/// network id`. Length prefixes keep the fields unambiguous; the exporter value binds the
/// signature to this TLS session so a captured one cannot be replayed (S-4), and the role
/// keeps a client's signature from being reflected back as a server's.
pub fn challenge(server_key: &[u8], tls_exporter: &[u8], role: u8, network_id: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(server_key.len() + tls_exporter.len() + 16);
    for part in [server_key, tls_exporter] {
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&part[..len as usize]);
    }
    out.push(role);
    out.extend_from_slice(&network_id.to_le_bytes());
    out
}
