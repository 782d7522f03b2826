//! rustls configurations for the hub (server) and the edge (client): mutual TLS 1.3 on the hub's private CA,
//! ALPN `datum-sync/2` or `/1`, ring as the only crypto provider.
//!
//! Choices that matter for security, each deliberate:
//! - TLS 1.3 only (QUIC needs it; TCP uses the same config so both paths behave alike).
//! - 0-RTT off (`max_early_data_size = 0`) and session resumption off on both sides: a resumed session would
//!   skip the client-certificate check, so a revoked or expired certificate could ride an old ticket.
//! - Client certificates are optional at the TLS layer (an enrolling edge has none yet); when one is presented
//!   it must chain to the hub's root and be valid now. The session layer demands one for everything except
//!   enrollment and checks the hub's deny-list.
//! - The edge always verifies the hub for the fixed server name [`HUB_SERVER_NAME`], whatever address it dials.

use std::sync::Arc;

use datum_shared::sync::wire::offered_alpns;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use thiserror::Error;

pub use super::pki::HUB_SERVER_NAME;
use super::pki::{self, PkiError};

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("invalid pem: {0}")]
    Pem(String),
    #[error("no {0} found in pem")]
    MissingPem(&'static str),
    #[error("invalid hub fingerprint: {0}")]
    Fingerprint(#[from] PkiError),
    #[error("tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("certificate verifier: {0}")]
    Verifier(String),
}

/// Hub side. Client certificates are optional at the TLS layer but, when presented, must chain to
/// `client_root_pem` and be valid now. `max_early_data_size` = 0 (0-RTT off), no resumption, ALPN
/// `datum-sync/2` and `/1` offered, newest preferred, so either end may be of an earlier build (and enforced
/// by the transport after the handshake).
pub fn server_config(
    chain_pem: &str,
    key_pem: &str,
    client_root_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = provider();
    let chain = parse_certs(chain_pem)?;
    let key = parse_key(key_pem)?;
    let client_roots = root_store(client_root_pem)?;
    let client_verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(client_roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = offered_alpns();
    config.max_early_data_size = 0;
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    Ok(Arc::new(config))
}

/// How an edge recognises its hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubTrust {
    /// Before enrollment: accept the server chain only if it contains a certificate whose fingerprint
    /// (as typed by the user; parsed with [`pki::parse_fingerprint`]) equals this, and the leaf verifies
    /// against that certificate as root for server name `datum-hub`.
    Pinned(String),
    /// After enrollment: the stored root certificate (PEM).
    Root(String),
}

/// Edge side: verifies the hub per `trust` for server name `datum-hub` and presents `identity`
/// (chain PEM, key PEM) when given. No resumption, no early data.
pub fn client_config(trust: HubTrust, identity: Option<(&str, &str)>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let builder = match trust {
        HubTrust::Root(root_pem) => builder.with_root_certificates(root_store(&root_pem)?),
        HubTrust::Pinned(typed) => {
            let fingerprint = pki::parse_fingerprint(&typed)?;
            builder.dangerous().with_custom_certificate_verifier(Arc::new(PinnedVerifier { fingerprint, provider }))
        }
    };
    let mut config = match identity {
        Some((chain_pem, key_pem)) => builder.with_client_auth_cert(parse_certs(chain_pem)?, parse_key(key_pem)?)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = offered_alpns();
    config.enable_early_data = false;
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// The one crypto provider of the project: ring (aws-lc-rs would need cmake and a C toolchain).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Verifies a hub whose root the edge does not have yet, by a fingerprint the user copied from the hub.
#[derive(Debug)]
struct PinnedVerifier {
    fingerprint: String,
    provider: Arc<CryptoProvider>,
}

/// The reason a pinned verification failed; shown to the user, who most likely mistyped the fingerprint or
/// dialled the wrong hub.
#[derive(Error)]
#[error("the hub's certificate chain does not contain the pinned fingerprint")]
pub struct PinMismatch;

// rustls shows the inner error of `CertificateError::Other` with `Debug`; make that the readable sentence.
impl std::fmt::Debug for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The pin names a CA (normally the hub's root); the leaf itself cannot serve as its own trust anchor.
        let anchor = intermediates.iter().find(|cert| pki::fingerprint(cert) == self.fingerprint).ok_or_else(|| {
            rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(PinMismatch))))
        })?;
        let mut roots = RootCertStore::empty();
        roots.add(anchor.clone().into_owned())?;
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        verifier.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

fn parse_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::MissingPem("certificate"));
    }
    Ok(certs)
}

fn parse_key(pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::MissingPem("private key"),
        e => TlsError::Pem(e.to_string()),
    })
}

fn root_store(pem: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in parse_certs(pem)? {
        roots.add(cert)?;
    }
    Ok(roots)
}

/// The web workspaces' HTTPS: TLS 1.3 and 1.2 (browsers on older plant PCs), ALPN `http/1.1`, 0-RTT off, no
/// client certificate.
pub fn web_server_config(chain_pem: &str, key_pem: &str) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = parse_certs(chain_pem)?;
    let key = parse_key(key_pem)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.max_early_data_size = 0;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A certificate chain and its key, ready to serve (the key checked against the leaf).
pub fn certified_key(chain_pem: &str, key_pem: &str) -> Result<Arc<rustls::sign::CertifiedKey>, TlsError> {
    let chain = parse_certs(chain_pem)?;
    let key = parse_key(key_pem)?;
    let certified = rustls::sign::CertifiedKey::from_der(chain, key, &provider())?;
    Ok(Arc::new(certified))
}

/// The web workspaces' HTTPS with a certificate chosen per handshake (one that can change while serving).
pub fn web_server_config_with(
    resolver: Arc<dyn rustls::server::ResolvesServerCert>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.max_early_data_size = 0;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A self-signed web certificate for a node not (yet) given one by its hub: (certificate PEM, key PEM).
pub fn self_signed_web_cert(names: &[String]) -> Result<(String, String), TlsError> {
    let certified = rcgen::generate_simple_self_signed(names.to_vec()).map_err(|e| TlsError::Pem(e.to_string()))?;
    Ok((certified.cert.pem(), certified.signing_key.serialize_pem()))
}
