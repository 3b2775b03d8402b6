//! The role-verification handshake (S-2, S-3, section 0.1 item 10), run over an
//! established TLS 1.3 session:
//!
//! 1. hello both ways: `u16 version ‖ u64 network_id ‖ 6 bytes capability bits`;
//! 2. client first, each side sends `u16 len ‖ blob` with
//!    `blob = 0x01 ‖ u16 key_len ‖ public key ‖ signature` (signature encoded as in
//!    pala-types), signing `Z ‖ exporter ‖ role ‖ network_id` under [`Domain::Handshake`].
//!
//! Z binds the signature to the server's TLS key (a person in the middle must present its own
//! key, so the honest sides sign different Z values); the exporter binds it to this TLS
//! session (a captured signature cannot be replayed on another connection); the role byte
//! stops a server from reflecting the client's signature back.

use crate::admission::Admission;
use crate::config::MIN_PEER_VERSION;
use crate::tls::{spki_of, EXPORTER_LABEL, EXPORTER_LEN};
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use pala_types::crypto::MAX_KEY_OR_SIG_LEN;
use pala_types::{Decode, Domain, Encode, NodeId, PublicKey, Signature, SignatureScheme, Signer};
use std::sync::Arc;
use thiserror::Error;

/// Scheme byte of the challenge blob (BLS).
pub const SCHEME_BYTE: u8 = 0x01;

/// Length of the hello on the wire.
pub const HELLO_LEN: usize = 16;

/// Largest challenge blob: scheme byte, key length, key, signature length, signature.
pub const MAX_CHALLENGE_LEN: usize = 1 + 2 + MAX_KEY_OR_SIG_LEN + 1 + MAX_KEY_OR_SIG_LEN;

/// Capability bits of the hello (S-2.3).
pub mod caps {
    /// The node listens (proposer or bootnode).
    pub const HUB: u64 = 1 << 0;
    /// Chain sync v2 messages.
    pub const CHAIN_SYNC_V2: u64 = 1 << 1;
    /// Snappy compression (never announced by this build).
    pub const SNAPPY: u64 = 1 << 2;
    /// Client puzzle (never announced by this build: optional and off, 0.1 item 10).
    pub const CLIENT_PUZZLE: u64 = 1 << 3;
    /// Logging id exchange.
    pub const LOGGING_ID: u64 = 1 << 4;
}

/// Which end of the connection signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The dialing side.
    Client = 1,
    /// The listening side.
    Server = 2,
}

/// Why a handshake failed. Every variant has its own counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum HandshakeFailure {
    /// The whole handshake did not finish within its deadline.
    #[error("handshake deadline exceeded")]
    Timeout,
    /// TCP connect failed.
    #[error("tcp connect failed")]
    Connect,
    /// The TLS handshake failed.
    #[error("tls handshake failed")]
    Tls,
    /// The socket failed or the peer closed during the handshake.
    #[error("connection closed or failed during the handshake")]
    Io,
    /// Protocol versions differ by more than one.
    #[error("incompatible protocol version")]
    Version,
    /// Different network id.
    #[error("different network id")]
    NetworkId,
    /// The challenge blob is malformed (length, scheme byte, encoding).
    #[error("malformed challenge")]
    Malformed,
    /// The embedded public key is not a key of the scheme.
    #[error("invalid public key")]
    BadKey,
    /// The signature does not verify over this session's challenge.
    #[error("challenge signature does not verify")]
    BadSignature,
    /// The peer has this node's own id.
    #[error("connected to self")]
    SelfConnection,
    /// The server's admission policy refused the client.
    #[error("client not admitted")]
    NotAdmitted,
    /// The server is not the peer the client dialed.
    #[error("unexpected server id")]
    UnexpectedPeer,
    /// TLS state needed by the handshake was missing (no certificate, no exporter).
    #[error("tls session unusable")]
    TlsState,
}

impl HandshakeFailure {
    /// Every reason, in counter order.
    pub const ALL: [HandshakeFailure; 13] = [
        HandshakeFailure::Timeout,
        HandshakeFailure::Connect,
        HandshakeFailure::Tls,
        HandshakeFailure::Io,
        HandshakeFailure::Version,
        HandshakeFailure::NetworkId,
        HandshakeFailure::Malformed,
        HandshakeFailure::BadKey,
        HandshakeFailure::BadSignature,
        HandshakeFailure::SelfConnection,
        HandshakeFailure::NotAdmitted,
        HandshakeFailure::UnexpectedPeer,
        HandshakeFailure::TlsState,
    ];

    /// Index into [`HandshakeFailure::ALL`].
    pub fn index(self) -> usize {
        HandshakeFailure::ALL
            .iter()
            .position(|r| *r == self)
            .expect("ALL lists every variant")
    }

    /// A metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::Connect => "connect",
            HandshakeFailure::Tls => "tls",
            HandshakeFailure::Io => "io",
            HandshakeFailure::Version => "version",
            HandshakeFailure::NetworkId => "network_id",
            HandshakeFailure::Malformed => "malformed",
            HandshakeFailure::BadKey => "bad_key",
            HandshakeFailure::BadSignature => "bad_signature",
            HandshakeFailure::SelfConnection => "self",
            HandshakeFailure::NotAdmitted => "not_admitted",
            HandshakeFailure::UnexpectedPeer => "unexpected_peer",
            HandshakeFailure::TlsState => "tls_state",
        }
    }
}

impl From<std::io::Error> for HandshakeFailure {
    fn from(_: std::io::Error) -> Self {
        HandshakeFailure::Io
    }
}

/// The protocol hello (S-2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// Protocol version.
    pub version: u16,
    /// Network id.
    pub network_id: u64,
    /// Capability bits (48 used).
    pub capabilities: u64,
}

impl Hello {
    /// The 16-byte wire form.
    pub fn to_bytes(&self) -> [u8; HELLO_LEN] {
        let mut b = [0u8; HELLO_LEN];
        b[..2].copy_from_slice(&self.version.to_le_bytes());
        b[2..10].copy_from_slice(&self.network_id.to_le_bytes());
        b[10..].copy_from_slice(&self.capabilities.to_le_bytes()[..6]);
        b
    }

    /// Parses the wire form.
    pub fn from_bytes(b: &[u8; HELLO_LEN]) -> Hello {
        let mut caps = [0u8; 8];
        caps[..6].copy_from_slice(&b[10..]);
        Hello {
            version: u16::from_le_bytes([b[0], b[1]]),
            network_id: u64::from_le_bytes(b[2..10].try_into().expect("8 bytes")),
            capabilities: u64::from_le_bytes(caps),
        }
    }

    /// Checks the peer's hello against ours (S-2.3): versions one apart may talk (a
    /// rolling upgrade), but never across [`MIN_PEER_VERSION`].
    pub fn check(&self, peer: &Hello) -> Result<(), HandshakeFailure> {
        if self.network_id != peer.network_id {
            return Err(HandshakeFailure::NetworkId);
        }
        if self.version.abs_diff(peer.version) > 1 || peer.version < MIN_PEER_VERSION {
            return Err(HandshakeFailure::Version);
        }
        Ok(())
    }
}

/// The bytes each side signs: `Z ‖ exporter ‖ role ‖ network_id (LE)`.
pub fn challenge_message(
    z: &[u8],
    exporter: &[u8; EXPORTER_LEN],
    role: Side,
    network_id: u64,
) -> Vec<u8> {
    let mut m = Vec::with_capacity(z.len() + EXPORTER_LEN + 9);
    m.extend_from_slice(z);
    m.extend_from_slice(exporter);
    m.push(role as u8);
    m.extend_from_slice(&network_id.to_le_bytes());
    m
}

/// Signs a challenge and builds the blob `0x01 ‖ u16 len ‖ public key ‖ signature`.
pub fn sign_challenge(signer: &dyn Signer, network_id: u64, message: &[u8]) -> Vec<u8> {
    let pk = signer.public_key();
    let sig = signer.sign(Domain::Handshake, network_id, message);
    let mut blob = Vec::with_capacity(4 + pk.0.len() + sig.0.len());
    blob.push(SCHEME_BYTE);
    blob.extend_from_slice(&(pk.0.len() as u16).to_le_bytes());
    blob.extend_from_slice(&pk.0);
    sig.encode(&mut blob);
    blob
}

/// Parses a challenge blob into its key and signature.
pub fn parse_challenge(blob: &[u8]) -> Result<(PublicKey, Signature), HandshakeFailure> {
    let (&scheme, rest) = blob.split_first().ok_or(HandshakeFailure::Malformed)?;
    if scheme != SCHEME_BYTE || rest.len() < 2 {
        return Err(HandshakeFailure::Malformed);
    }
    let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
    let rest = &rest[2..];
    if len > MAX_KEY_OR_SIG_LEN || rest.len() < len {
        return Err(HandshakeFailure::Malformed);
    }
    let pk = PublicKey(rest[..len].to_vec());
    let sig = Signature::from_bytes(&rest[len..]).map_err(|_| HandshakeFailure::Malformed)?;
    Ok((pk, sig))
}

/// Verifies a challenge blob over `message` and returns the signer's id.
pub fn verify_challenge(
    scheme: &dyn SignatureScheme,
    network_id: u64,
    blob: &[u8],
    message: &[u8],
) -> Result<NodeId, HandshakeFailure> {
    let (pk, sig) = parse_challenge(blob)?;
    if !scheme.check_public_key(&pk) {
        return Err(HandshakeFailure::BadKey);
    }
    if !scheme.verify(&pk, Domain::Handshake, network_id, message, &sig) {
        return Err(HandshakeFailure::BadSignature);
    }
    Ok(pk.node_id())
}

/// Writes `u16 len ‖ blob`.
pub async fn write_challenge<W: AsyncWrite + Unpin>(
    w: &mut W,
    blob: &[u8],
) -> Result<(), HandshakeFailure> {
    let mut out = Vec::with_capacity(2 + blob.len());
    out.extend_from_slice(&(blob.len() as u16).to_le_bytes());
    out.extend_from_slice(blob);
    w.write_all(&out).await?;
    w.flush().await?;
    Ok(())
}

/// Reads `u16 len ‖ blob`, refusing lengths above [`MAX_CHALLENGE_LEN`].
pub async fn read_challenge<R: AsyncRead + Unpin>(r: &mut R) -> Result<Vec<u8>, HandshakeFailure> {
    let mut len = [0u8; 2];
    r.read_exact(&mut len).await?;
    let len = u16::from_le_bytes(len) as usize;
    if len > MAX_CHALLENGE_LEN {
        return Err(HandshakeFailure::Malformed);
    }
    let mut blob = vec![0u8; len];
    r.read_exact(&mut blob).await?;
    Ok(blob)
}

/// Sends our hello, reads the peer's, and checks compatibility.
pub async fn exchange_hello<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    ours: &Hello,
) -> Result<Hello, HandshakeFailure> {
    s.write_all(&ours.to_bytes()).await?;
    s.flush().await?;
    let mut b = [0u8; HELLO_LEN];
    s.read_exact(&mut b).await?;
    let theirs = Hello::from_bytes(&b);
    ours.check(&theirs)?;
    Ok(theirs)
}

/// What both sides need to run the handshake.
#[derive(Clone)]
pub struct HandshakeContext {
    /// This node's consensus key.
    pub signer: Arc<dyn Signer>,
    /// Verifies the peer's signature.
    pub scheme: Arc<dyn SignatureScheme>,
    /// Our hello.
    pub hello: Hello,
    /// Server-side admission policy.
    pub admission: Arc<dyn Admission>,
}

/// The verified peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// Consensus id of the peer.
    pub peer: NodeId,
    /// The peer's hello.
    pub hello: Hello,
}

/// The exporter value of a TLS connection.
pub fn exporter_of<D>(
    conn: &rustls::ConnectionCommon<D>,
) -> Result<[u8; EXPORTER_LEN], HandshakeFailure> {
    conn.export_keying_material([0u8; EXPORTER_LEN], EXPORTER_LABEL, None)
        .map_err(|_| HandshakeFailure::TlsState)
}

/// Z as seen by a client: the SPKI of the server's end-entity certificate.
pub fn server_spki(conn: &rustls::ClientConnection) -> Result<Vec<u8>, HandshakeFailure> {
    let cert = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or(HandshakeFailure::TlsState)?;
    spki_of(cert).map_err(|_| HandshakeFailure::TlsState)
}

/// The client side after TLS: hello, our signature first, then the server's.
/// `expected` is the id of the proposer we dialed, if we dialed one by id (S-3).
pub async fn client_handshake<IO: AsyncRead + AsyncWrite + Unpin>(
    tls: &mut futures_rustls::client::TlsStream<IO>,
    ctx: &HandshakeContext,
    expected: Option<NodeId>,
) -> Result<Verified, HandshakeFailure> {
    let (z, exporter) = {
        let conn = tls.get_ref().1;
        (server_spki(conn)?, exporter_of(conn)?)
    };
    let hello = exchange_hello(tls, &ctx.hello).await?;
    let network_id = ctx.hello.network_id;
    let ours = challenge_message(&z, &exporter, Side::Client, network_id);
    write_challenge(tls, &sign_challenge(ctx.signer.as_ref(), network_id, &ours)).await?;
    let blob = read_challenge(tls).await?;
    let theirs = challenge_message(&z, &exporter, Side::Server, network_id);
    let peer = verify_challenge(ctx.scheme.as_ref(), network_id, &blob, &theirs)?;
    if peer == ctx.signer.node_id() {
        return Err(HandshakeFailure::SelfConnection);
    }
    if expected.is_some_and(|e| e != peer) {
        return Err(HandshakeFailure::UnexpectedPeer);
    }
    Ok(Verified { peer, hello })
}

/// The server side after TLS: hello, verify and admit the client, then sign.
/// `z` is the SPKI of our own certificate.
pub async fn server_handshake<IO: AsyncRead + AsyncWrite + Unpin>(
    tls: &mut futures_rustls::server::TlsStream<IO>,
    ctx: &HandshakeContext,
    z: &[u8],
) -> Result<Verified, HandshakeFailure> {
    let exporter = exporter_of(tls.get_ref().1)?;
    let hello = exchange_hello(tls, &ctx.hello).await?;
    let network_id = ctx.hello.network_id;
    let blob = read_challenge(tls).await?;
    let theirs = challenge_message(z, &exporter, Side::Client, network_id);
    let peer = verify_challenge(ctx.scheme.as_ref(), network_id, &blob, &theirs)?;
    if peer == ctx.signer.node_id() {
        return Err(HandshakeFailure::SelfConnection);
    }
    // The client proved its identity before we spend a signature on it (S-2.5).
    if !ctx.admission.admit(&peer) {
        return Err(HandshakeFailure::NotAdmitted);
    }
    let ours = challenge_message(z, &exporter, Side::Server, network_id);
    write_challenge(tls, &sign_challenge(ctx.signer.as_ref(), network_id, &ours)).await?;
    Ok(Verified { peer, hello })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pala_types::insecure::InsecureTestScheme;

    #[test]
    fn hello_round_trip_and_rules() {
        let h = Hello {
            version: 5,
            network_id: 42,
            capabilities: caps::HUB | caps::LOGGING_ID,
        };
        assert_eq!(Hello::from_bytes(&h.to_bytes()), h);
        assert!(h.check(&Hello { version: 4, ..h }).is_ok());
        assert!(h.check(&Hello { version: 6, ..h }).is_ok());
        assert_eq!(
            h.check(&Hello { version: 3, ..h }),
            Err(HandshakeFailure::Version)
        );
        assert_eq!(
            h.check(&Hello { version: 7, ..h }),
            Err(HandshakeFailure::Version)
        );
        // Version 1 blocks carry no state commitment: a version 2 node cannot decode them.
        let ours = Hello {
            version: crate::PROTOCOL_VERSION,
            ..h
        };
        assert_eq!(
            ours.check(&Hello { version: 1, ..h }),
            Err(HandshakeFailure::Version)
        );
        assert_eq!(
            h.check(&Hello { network_id: 1, ..h }),
            Err(HandshakeFailure::NetworkId)
        );
    }

    #[test]
    fn challenge_blob_round_trip_and_rejections() {
        let scheme = InsecureTestScheme::new();
        let signer = scheme.keypair(1);
        let m = challenge_message(b"z", &[7; 32], Side::Client, 9);
        let blob = sign_challenge(&signer, 9, &m);
        assert_eq!(
            verify_challenge(&scheme, 9, &blob, &m),
            Ok(signer.node_id())
        );
        let other_role = challenge_message(b"z", &[7; 32], Side::Server, 9);
        assert_eq!(
            verify_challenge(&scheme, 9, &blob, &other_role),
            Err(HandshakeFailure::BadSignature)
        );
        assert_eq!(
            verify_challenge(&scheme, 8, &blob, &m),
            Err(HandshakeFailure::BadSignature)
        );
        let mut wrong_scheme = blob.clone();
        wrong_scheme[0] = 2;
        assert_eq!(
            verify_challenge(&scheme, 9, &wrong_scheme, &m),
            Err(HandshakeFailure::Malformed)
        );
        assert_eq!(
            verify_challenge(&scheme, 9, &blob[..blob.len() - 1], &m),
            Err(HandshakeFailure::Malformed)
        );
        let mut trailing = blob.clone();
        trailing.push(0);
        assert_eq!(
            verify_challenge(&scheme, 9, &trailing, &m),
            Err(HandshakeFailure::Malformed)
        );
        assert_eq!(
            verify_challenge(&scheme, 9, &[], &m),
            Err(HandshakeFailure::Malformed)
        );
    }
}
