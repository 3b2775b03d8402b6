//! Error types shared by both BLS variants.

use std::path::PathBuf;

/// Why a secret key file could not be read or written. Every variant names the file, so
/// an operator can fix the right one.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be opened, read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is readable or writable by group or others.
    #[error("key file {path}: permissions {mode:o} are too open (group/other may access it); run `chmod 600 {path}`")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file does not hold the expected number of characters.
    #[error("key file {path}: expected {expected} hex characters, found {found}")]
    Length {
        /// The file.
        path: PathBuf,
        /// Expected number of characters.
        expected: usize,
        /// Number found (without a trailing newline).
        found: usize,
    },
    /// The content is not lowercase/uppercase hex.
    #[error("key file {path}: not hex encoded ({detail})")]
    Encoding {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// The bytes are not a valid BLS12-381 secret scalar (zero or not below the group order).
    #[error("key file {path}: not a valid BLS12-381 secret key")]
    InvalidKey {
        /// The file.
        path: PathBuf,
    },
    /// Refusing to overwrite an existing key.
    #[error("key file {path} already exists; refusing to overwrite a secret key")]
    AlreadyExists {
        /// The file.
        path: PathBuf,
    },
}

/// Why a public identity line (public key + proof of possession) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// Not `scheme network_id pk_hex pop_hex`.
    #[error("identity line: expected 4 space-separated fields `scheme network_id public_key proof`, found {0}")]
    Fields(usize),
    /// Written for another signature variant.
    #[error("identity line: scheme `{found}` does not match `{expected}`")]
    Scheme {
        /// Scheme of this build.
        expected: &'static str,
        /// Scheme named by the line.
        found: String,
    },
    /// A field is not valid hex or a valid number.
    #[error("identity line: bad {field}: {detail}")]
    Encoding {
        /// Which field.
        field: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The key is not a valid key of the scheme.
    #[error("identity line: invalid public key")]
    InvalidKey,
    /// The proof of possession does not verify.
    #[error("identity line: proof of possession does not verify")]
    BadProof,
}

/// Why a handshake signature was rejected (section 8, S-2.5, S-3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The blob is shorter than its header or its declared key length.
    #[error("handshake signature truncated")]
    Truncated,
    /// The scheme byte is not 0x01 (BLS).
    #[error("handshake signature scheme {0:#04x} is not BLS (0x01)")]
    UnknownScheme(u8),
    /// Key or signature has the wrong length or is not a valid point.
    #[error("handshake signature carries a malformed key or signature")]
    Malformed,
    /// The signature does not verify over the challenge.
    #[error("handshake signature does not verify")]
    BadSignature,
}
