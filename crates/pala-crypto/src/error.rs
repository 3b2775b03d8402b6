//! Error types shared by both BLS variants.

use pala_types::{Epoch, NodeId, Session};
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

/// Why a committee cannot be installed (section 0.1 item 1, D-8, D-16).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitteeError {
    /// The voter list is empty (no quorum can ever be reached).
    #[error("committee of session {0} has no voters")]
    NoVoters(Session),
    /// The proposer list is empty (no notarization can be aggregated).
    #[error("committee of session {0} has no proposers")]
    NoProposers(Session),
    /// More members than the u16 indexes of the wire format allow.
    #[error("committee has {0} members in one list, more than 65535")]
    TooLarge(usize),
    /// A member's key is malformed, the identity point or outside the prime-order subgroup.
    #[error("{list} {index}: invalid public key")]
    InvalidKey {
        /// "voter" or "proposer".
        list: &'static str,
        /// Index in that list.
        index: usize,
    },
    /// A member's id is not the id derived from its key (D-7).
    #[error("{list} {index}: id {id} is not derived from its public key")]
    IdMismatch {
        /// "voter" or "proposer".
        list: &'static str,
        /// Index in that list.
        index: usize,
        /// The claimed id.
        id: NodeId,
    },
    /// A member's proof of possession does not verify: without it, same-message aggregation
    /// is open to rogue-key attacks (D-8).
    #[error("{list} {index} ({id}): proof of possession does not verify")]
    BadProofOfPossession {
        /// "voter" or "proposer".
        list: &'static str,
        /// Index in that list.
        index: usize,
        /// The member.
        id: NodeId,
    },
    /// The same key appears twice in one list, which would count its weight twice.
    #[error("{list} {index}: duplicate of member {first}")]
    Duplicate {
        /// "voter" or "proposer".
        list: &'static str,
        /// Index of the second occurrence.
        index: usize,
        /// Index of the first occurrence.
        first: usize,
    },
}

/// Why a notarization or clock notarization was rejected (D-12, D-14, with the MUST-fixes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The object belongs to another session than the committee it was checked against.
    #[error("session {got} does not match the committee's session {expected}")]
    WrongSession {
        /// The committee's session.
        expected: Session,
        /// The object's session.
        got: Session,
    },
    /// The notarization is for a different block than the one known at its sn.
    #[error("block hash does not match the block known at this sn")]
    BlockHashMismatch,
    /// The clock notarization is for another epoch than the one expected.
    #[error("clock notarization is for epoch {got}, expected {expected}")]
    EpochMismatch {
        /// Expected epoch.
        expected: Epoch,
        /// The object's epoch.
        got: Epoch,
    },
    /// The signer bitmap does not index the session's voter list.
    #[error("signer bitmap covers {got} voters, the committee has {expected}")]
    BitmapLength {
        /// Number of voters.
        expected: usize,
        /// Bitmap length.
        got: usize,
    },
    /// `proposer_idx` is not an index into the proposer list.
    #[error("proposer index {index} out of range ({proposers} proposers)")]
    ProposerIndex {
        /// The index.
        index: u16,
        /// Number of proposers.
        proposers: usize,
    },
    /// The included voters do not reach the quorum (recomputed from the bitmap, D-9).
    #[error("included voters weigh {weight}, below the quorum {quorum}")]
    BelowQuorum {
        /// Weight of the included voters.
        weight: u64,
        /// The quorum.
        quorum: u64,
    },
    /// The signature bytes are not a point of the scheme.
    #[error("malformed aggregate signature")]
    MalformedSignature,
    /// The aggregate signature does not verify against the derived aggregate key.
    #[error("aggregate signature does not verify")]
    BadSignature,
}

/// Why a single vote or clock message of a batch was not aggregated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoteRejection {
    /// The sender is not a voter of the session.
    UnknownVoter,
    /// The vote is for another sn / block hash (or the clock message for another epoch).
    WrongTarget,
    /// The same voter already has an accepted vote in this batch.
    Duplicate,
    /// The signature bytes are not a point of the scheme.
    MalformedSignature,
    /// The signature does not verify (found by bisection or individual check).
    BadSignature,
}

/// Why a notarization could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// `proposer_idx` is not an index into the proposer list.
    #[error("proposer index {index} out of range ({proposers} proposers)")]
    ProposerIndex {
        /// The index.
        index: u16,
        /// Number of proposers.
        proposers: usize,
    },
    /// The batch is of clock messages where votes were needed, or the reverse.
    #[error("the vote batch is for another kind of target")]
    WrongTarget,
    /// The signer is not the proposer at `proposer_idx`.
    #[error("signer is not the proposer at index {0}")]
    NotTheProposer(u16),
    /// The verified votes do not reach the quorum.
    #[error("verified votes weigh {weight}, below the quorum {quorum}")]
    BelowQuorum {
        /// Weight of the verified votes.
        weight: u64,
        /// The quorum.
        quorum: u64,
    },
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
