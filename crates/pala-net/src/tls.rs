//! TLS 1.3 with self-signed certificates (S-2.2).
//!
//! There is no certificate authority: the client accepts any certificate, and the identity
//! check happens afterwards in the challenge-response, which signs the server's
//! SubjectPublicKeyInfo (Z) together with a value exported from this TLS session. The client
//! still checks the TLS 1.3 CertificateVerify signature, so the server proves it holds the
//! private key of Z.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};
use std::sync::Arc;
use thiserror::Error;

/// The DNS name in the certificate and in the client's SNI; it carries no trust.
pub const SERVER_NAME: &str = "pala-node";

/// Label of the TLS keying-material exporter used by the handshake challenge.
pub const EXPORTER_LABEL: &[u8] = b"pala handshake";

/// Length of the exported keying material.
pub const EXPORTER_LEN: usize = 32;

/// Why the TLS identity or configuration could not be built.
#[derive(Debug, Error)]
pub enum TlsError {
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("tls configuration: {0}")]
    Config(#[from] rustls::Error),
    /// The generated certificate could not be parsed back.
    #[error("certificate parsing: {0}")]
    Parse(String),
}

/// A node's TLS identity: a fresh self-signed ECDSA P-384 certificate and the server and
/// client configurations built around it.
pub struct TlsIdentity {
    /// Z: the DER SubjectPublicKeyInfo of the certificate.
    pub spki: Vec<u8>,
    /// Configuration for accepting connections.
    pub server: Arc<ServerConfig>,
    /// Configuration for dialing.
    pub client: Arc<ClientConfig>,
}

impl TlsIdentity {
    /// Generates a certificate (valid 10 years) and builds the configurations.
    pub fn generate() -> Result<TlsIdentity, TlsError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)?;
        let mut params = rcgen::CertificateParams::new(vec![SERVER_NAME.to_string()])?;
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "PaLa");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let year = 1970 + (now / 31_557_600) as i32;
        params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
        params.not_after = rcgen::date_time_ymd(year + 10, 1, 1);
        let cert = params.self_signed(&key)?;
        let cert_der: CertificateDer<'static> = cert.der().clone();
        let spki = spki_of(&cert_der)?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));

        let provider = Arc::new(ring::default_provider());
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(vec![cert_der], key_der)?;
        // Tickets would only serve resumption, which the challenge-response makes pointless.
        server.send_tls13_tickets = 0;
        Ok(TlsIdentity {
            spki,
            server: Arc::new(server),
            client: client_config()?,
        })
    }
}

/// A client configuration that accepts any server certificate (still checking the TLS 1.3
/// handshake signature against it).
pub fn client_config() -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(ring::default_provider());
    let mut client = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServerCert { provider }))
        .with_no_client_auth();
    client.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(client))
}

/// The server name the client presents.
pub fn server_name() -> ServerName<'static> {
    ServerName::try_from(SERVER_NAME).expect("a valid DNS name")
}

/// Z of a certificate: its SubjectPublicKeyInfo DER, outer SEQUENCE included. Both sides
/// derive it through this one function so they agree byte for byte.
pub fn spki_of(cert: &CertificateDer<'_>) -> Result<Vec<u8>, TlsError> {
    let ee =
        webpki::EndEntityCert::try_from(cert).map_err(|e| TlsError::Parse(format!("{e:?}")))?;
    Ok(ee.subject_public_key_info().as_ref().to_vec())
}

/// Accepts any certificate chain; verifies handshake signatures with the provider's
/// algorithms.
#[derive(Debug)]
struct AnyServerCert {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
