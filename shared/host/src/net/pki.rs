//! The hub's private PKI: a root and an issuing CA, the hub's TLS certificate, node certificates signed from
//! an edge's CSR, and the fingerprints users compare by eye.
//!
//! Keys are ECDSA P-256 (the most widely supported by webpki and by hardware that may hold keys later).
//! The hub fingerprint users type at enrollment is the fingerprint of the **root** certificate: it stays the
//! same when the issuing CA or the hub's TLS certificate are replaced.
//!
//! Identity lives in the certificate and is set by the hub, never taken from the CSR: a node certificate has
//! CN = node id, O = site name and the SAN URI `datum:site:<site>:node:<node>`, which [`node_identity`] reads
//! back. Everything here is pure except key generation, which draws from the OS random source.

use chrono::{DateTime, TimeZone, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber, SubjectPublicKeyInfo,
};
use sha2::{Digest, Sha256};
use thiserror::Error;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

/// The DNS name every hub certificate carries and every edge verifies, whatever address it dials.
pub const HUB_SERVER_NAME: &str = "datum-hub";

#[derive(Debug, Error)]
pub enum PkiError {
    #[error("fingerprint must be 64 hex digits (':' and spaces allowed), got {0} hex digits")]
    BadFingerprint(usize),
    #[error("invalid {what} {value:?}: use letters, digits, '.', '_' or '-' (at most 64)")]
    BadName { what: &'static str, value: String },
    #[error("validity period is empty or out of range")]
    BadValidity,
    #[error("no {0} found in pem")]
    MissingPem(&'static str),
    #[error("invalid pem: {0}")]
    Pem(String),
    #[error("certificate signing request is malformed")]
    CsrMalformed,
    #[error("certificate signing request signature does not verify")]
    CsrSignature,
    #[error("certificate is malformed: {0}")]
    CertMalformed(String),
    #[error("certificate is not a datum node certificate: {0}")]
    NotNodeCert(&'static str),
    #[error("issuing certificate is not signed by the root")]
    ChainMismatch,
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
}

/// SHA-256 of a certificate's DER, lowercase hex (64 chars).
pub fn fingerprint(cert_der: &[u8]) -> String {
    hex::encode(Sha256::digest(cert_der))
}

/// Accepts a fingerprint as typed by a user: case-insensitive, ':' / ' ' separators allowed; error if not 64
/// hex digits. Returns the canonical lowercase form that [`fingerprint`] produces.
pub fn parse_fingerprint(s: &str) -> Result<String, PkiError> {
    let mut out = String::with_capacity(64);
    let mut n_digits = 0usize;
    for c in s.trim().chars() {
        match c {
            ':' | ' ' | '\t' => {}
            c if c.is_ascii_hexdigit() => {
                n_digits += 1;
                out.push(c.to_ascii_lowercase());
            }
            // Anything else is not a fingerprint; report how many digits we saw before giving up.
            _ => return Err(PkiError::BadFingerprint(n_digits)),
        }
    }
    if n_digits != 64 {
        return Err(PkiError::BadFingerprint(n_digits));
    }
    Ok(out)
}

/// A new private CA for a hub: a self-signed root and an issuing CA signed by the root, ECDSA P-256, PEM.
/// The root key is meant to go offline (or at least into a separate file); day to day the hub signs with the
/// issuing key.
#[derive(Clone)]
pub struct CaBundle {
    pub root_cert_pem: String,
    pub root_key_pem: String,
    pub issuing_cert_pem: String,
    pub issuing_key_pem: String,
}

impl std::fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaBundle").field("root_cert_pem", &self.root_cert_pem).finish_non_exhaustive()
    }
}

pub fn new_ca(hub_name: &str, not_before: DateTime<Utc>, not_after: DateTime<Utc>) -> Result<CaBundle, PkiError> {
    check_name("hub name", hub_name)?;
    let root_key = KeyPair::generate()?;
    let mut root_params = ca_params(&format!("datum root CA {hub_name}"), hub_name, not_before, not_after)?;
    root_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    let root_cert = root_params.self_signed(&root_key)?;
    let root_issuer = rcgen::Issuer::new(root_params, &root_key);

    let issuing_key = KeyPair::generate()?;
    let mut issuing_params = ca_params(&format!("datum issuing CA {hub_name}"), hub_name, not_before, not_after)?;
    issuing_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    issuing_params.use_authority_key_identifier_extension = true;
    let issuing_cert = issuing_params.signed_by(&issuing_key, &root_issuer)?;

    Ok(CaBundle {
        root_cert_pem: root_cert.pem(),
        root_key_pem: root_key.serialize_pem(),
        issuing_cert_pem: issuing_cert.pem(),
        issuing_key_pem: issuing_key.serialize_pem(),
    })
}

/// The issuing CA, loaded from PEM, signs the hub's TLS cert and node (edge) certs.
pub struct Issuer {
    issuer: rcgen::Issuer<'static, KeyPair>,
    issuing_cert_pem: String,
    root_cert_pem: String,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer").finish_non_exhaustive()
    }
}

/// A certificate the issuer made for a node.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    /// Leaf + issuing + root, PEM: what the node presents.
    pub chain_pem: String,
    pub leaf_der: Vec<u8>,
    pub fingerprint: String,
    pub not_after: DateTime<Utc>,
}

/// Site, node and validity read from a node certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    pub site: String,
    pub node: String,
    pub not_after: DateTime<Utc>,
}

impl Issuer {
    /// Loads the issuing CA and checks that its certificate is signed by `root_cert_pem`, so a mixed-up
    /// data directory fails here rather than at every edge's handshake.
    pub fn load(issuing_cert_pem: &str, issuing_key_pem: &str, root_cert_pem: &str) -> Result<Issuer, PkiError> {
        let issuing_der = first_cert_der(issuing_cert_pem)?;
        let root_der = first_cert_der(root_cert_pem)?;
        let (_, issuing) =
            x509_parser::parse_x509_certificate(&issuing_der).map_err(|e| PkiError::CertMalformed(e.to_string()))?;
        let (_, root) =
            x509_parser::parse_x509_certificate(&root_der).map_err(|e| PkiError::CertMalformed(e.to_string()))?;
        issuing.verify_signature(Some(root.public_key())).map_err(|_| PkiError::ChainMismatch)?;

        let key = KeyPair::from_pem(issuing_key_pem)?;
        if rcgen::PublicKeyData::subject_public_key_info(&key) != issuing.public_key().raw {
            return Err(PkiError::Pem("issuing key does not match the issuing certificate".into()));
        }
        let issuer = rcgen::Issuer::from_ca_cert_der(&issuing_der.clone().into(), key)?;
        Ok(Issuer { issuer, issuing_cert_pem: der_to_pem(&issuing_der), root_cert_pem: der_to_pem(&root_der) })
    }

    /// Hub TLS cert: SAN DNS "datum-hub" (the fixed server name edges verify) plus `hub_name`; returns
    /// (chain PEM leaf+issuing+root, key PEM).
    pub fn server_cert(
        &self,
        hub_name: &str,
        not_before: DateTime<Utc>,
        not_after: DateTime<Utc>,
    ) -> Result<(String, String), PkiError> {
        check_name("hub name", hub_name)?;
        let key = KeyPair::generate()?;
        let mut params = leaf_params(not_before, not_after)?;
        params.distinguished_name.push(DnType::CommonName, hub_name);
        params.subject_alt_names = vec![SanType::DnsName(HUB_SERVER_NAME.try_into()?)];
        if hub_name != HUB_SERVER_NAME {
            params.subject_alt_names.push(SanType::DnsName(hub_name.try_into()?));
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((self.chain(&cert.pem()), key.serialize_pem()))
    }

    /// Signs an edge's CSR. Only the public key is taken from the CSR (after checking the CSR's
    /// self-signature, which proves the requester holds the private key); subject, SAN and usages are set
    /// here: CN = node id, O = site name, SAN URI `datum:site:<site>:node:<node>`, client-auth EKU, not a CA.
    pub fn sign_node_csr(
        &self,
        csr_der: &[u8],
        site: &str,
        node: &str,
        not_before: DateTime<Utc>,
        not_after: DateTime<Utc>,
    ) -> Result<IssuedCert, PkiError> {
        check_name("site name", site)?;
        check_name("node id", node)?;
        let public_key = csr_public_key(csr_der)?;

        let mut params = leaf_params(not_before, not_after)?;
        params.distinguished_name.push(DnType::CommonName, node);
        params.distinguished_name.push(DnType::OrganizationName, site);
        params.subject_alt_names = vec![SanType::URI(node_uri(site, node).try_into()?)];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, &public_key, not_after)
    }

    /// Signs a certificate for a node's web workspace: only the public key is taken from the CSR (after
    /// checking its self-signature); the names are the hub's decision (`web_names`), server-auth EKU, not a CA.
    pub fn sign_web_csr(
        &self,
        csr_der: &[u8],
        names: &[String],
        not_before: DateTime<Utc>,
        not_after: DateTime<Utc>,
    ) -> Result<IssuedCert, PkiError> {
        let public_key = csr_public_key(csr_der)?;
        let first = names.first().ok_or(PkiError::Pem("a web certificate needs a name".into()))?;
        let mut params = leaf_params(not_before, not_after)?;
        params.distinguished_name.push(DnType::CommonName, first.as_str());
        params.subject_alt_names =
            names.iter().map(|n| Ok(SanType::DnsName(n.as_str().try_into()?))).collect::<Result<_, PkiError>>()?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params, &public_key, not_after)
    }

    /// The root certificate (PEM) this issuer chains to: what edges store after enrollment.
    pub fn root_cert_pem(&self) -> &str {
        &self.root_cert_pem
    }

    /// Signs `params` for `public_key` and describes the result.
    fn issue(
        &self,
        params: CertificateParams,
        public_key: &SubjectPublicKeyInfo,
        not_after: DateTime<Utc>,
    ) -> Result<IssuedCert, PkiError> {
        let cert = params.signed_by(public_key, &self.issuer)?;
        let leaf_der = cert.der().to_vec();
        Ok(IssuedCert {
            chain_pem: self.chain(&cert.pem()),
            fingerprint: fingerprint(&leaf_der),
            leaf_der,
            not_after: truncate_to_seconds(not_after),
        })
    }

    fn chain(&self, leaf_pem: &str) -> String {
        format!("{leaf_pem}{}{}", self.issuing_cert_pem, self.root_cert_pem)
    }
}

/// The public key of a CSR whose self-signature holds (the requester has the private key).
fn csr_public_key(csr_der: &[u8]) -> Result<SubjectPublicKeyInfo, PkiError> {
    let (rest, csr) = X509CertificationRequest::from_der(csr_der).map_err(|_| PkiError::CsrMalformed)?;
    if !rest.is_empty() {
        return Err(PkiError::CsrMalformed);
    }
    csr.verify_signature().map_err(|_| PkiError::CsrSignature)?;
    SubjectPublicKeyInfo::from_der(csr.certification_request_info.subject_pki.raw).map_err(|_| PkiError::CsrMalformed)
}

/// The names of a site's web certificate: `<site>.<domain>`, the hub's web domain (set by its operator; the
/// edge asks for none of its own, so a plant box cannot obtain a certificate for another name).
pub fn web_names(site: &str, domain: &str) -> Result<Vec<String>, PkiError> {
    check_name("site name", site)?;
    let domain = domain.trim_matches('.').to_ascii_lowercase();
    let ok_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let site = site.to_ascii_lowercase();
    if !ok_label(&site) || domain.split('.').any(|l| !ok_label(l)) || site.len() + 1 + domain.len() > 253 {
        return Err(PkiError::Pem(format!("{site}.{domain} is not a valid DNS name")));
    }
    Ok(vec![format!("{site}.{domain}")])
}

/// A node's new key pair and CSR (DER). The key never leaves the node. The CSR carries no identity: the hub
/// decides it from the enrollment token.
pub fn new_node_key() -> Result<(String, Vec<u8>), PkiError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, "datum node");
    let csr = params.serialize_request(&key)?;
    Ok((key.serialize_pem(), csr.der().to_vec()))
}

/// Reads site, node and validity from a node certificate (for display and as a cross-check). Reads the SAN
/// URI only; CN and O are for humans.
pub fn node_identity(leaf_der: &[u8]) -> Result<NodeIdentity, PkiError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(leaf_der).map_err(|e| PkiError::CertMalformed(e.to_string()))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| PkiError::CertMalformed(e.to_string()))?
        .ok_or(PkiError::NotNodeCert("no subject alternative name"))?;
    let mut found = None;
    for name in &san.value.general_names {
        if let GeneralName::URI(uri) = name {
            if let Some(parsed) = parse_node_uri(uri) {
                if found.is_some() {
                    return Err(PkiError::NotNodeCert("more than one node uri"));
                }
                found = Some(parsed);
            }
        }
    }
    let (site, node) = found.ok_or(PkiError::NotNodeCert("no datum node uri"))?;
    Ok(NodeIdentity { site, node, not_after: asn1_to_chrono(cert.validity().not_after)? })
}

/// Validity (not before, not after) of a cert, to decide renewal.
pub fn validity(cert_der: &[u8]) -> Result<(DateTime<Utc>, DateTime<Utc>), PkiError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(cert_der).map_err(|e| PkiError::CertMalformed(e.to_string()))?;
    Ok((asn1_to_chrono(cert.validity().not_before)?, asn1_to_chrono(cert.validity().not_after)?))
}

/// All certificates in a PEM string, DER, in order.
pub fn certs_from_pem(pem: &str) -> Result<Vec<Vec<u8>>, PkiError> {
    use rustls_pki_types::pem::PemObject;
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::Pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(PkiError::MissingPem("certificate"));
    }
    Ok(certs)
}

/// A certificate's DER as PEM (for storing a root learned from a pinned chain).
pub fn der_to_pem(cert_der: &[u8]) -> String {
    use std::fmt::Write;
    let b64 = base64_encode(cert_der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        // Base64 output is ASCII, so each 64-byte chunk is valid UTF-8.
        let _ = writeln!(out, "{}", String::from_utf8_lossy(line));
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// The certificate in `chain` (DER, any order) whose fingerprint is `fingerprint`, if any. After a pinned
/// enrollment the edge stores this one as its root.
pub fn find_by_fingerprint<'a>(chain: &'a [Vec<u8>], fingerprint_hex: &str) -> Option<&'a [u8]> {
    chain.iter().find(|der| fingerprint(der) == fingerprint_hex).map(Vec::as_slice)
}

/// The SAN URI naming a node.
pub fn node_uri(site: &str, node: &str) -> String {
    format!("datum:site:{site}:node:{node}")
}

fn parse_node_uri(uri: &str) -> Option<(String, String)> {
    let rest = uri.strip_prefix("datum:site:")?;
    let (site, node) = rest.split_once(":node:")?;
    (is_valid_name(site) && is_valid_name(node)).then(|| (site.to_string(), node.to_string()))
}

fn is_valid_name(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn check_name(what: &'static str, value: &str) -> Result<(), PkiError> {
    if is_valid_name(value) {
        Ok(())
    } else {
        Err(PkiError::BadName { what, value: value.to_string() })
    }
}

fn ca_params(
    common_name: &str,
    hub_name: &str,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    set_validity(&mut params, not_before, not_after)?;
    params.serial_number = Some(random_serial()?);
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.distinguished_name.push(DnType::OrganizationName, hub_name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    Ok(params)
}

fn leaf_params(not_before: DateTime<Utc>, not_after: DateTime<Utc>) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    set_validity(&mut params, not_before, not_after)?;
    params.serial_number = Some(random_serial()?);
    params.distinguished_name = DistinguishedName::new();
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

fn set_validity(
    params: &mut CertificateParams,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
) -> Result<(), PkiError> {
    if not_after <= not_before {
        return Err(PkiError::BadValidity);
    }
    params.not_before = to_offset(not_before)?;
    params.not_after = to_offset(not_after)?;
    Ok(())
}

fn to_offset(t: DateTime<Utc>) -> Result<time::OffsetDateTime, PkiError> {
    time::OffsetDateTime::from_unix_timestamp(t.timestamp()).map_err(|_| PkiError::BadValidity)
}

fn truncate_to_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.timestamp_opt(t.timestamp(), 0).single().unwrap_or(t)
}

fn asn1_to_chrono(t: x509_parser::time::ASN1Time) -> Result<DateTime<Utc>, PkiError> {
    Utc.timestamp_opt(t.timestamp(), 0).single().ok_or_else(|| PkiError::CertMalformed("time out of range".into()))
}

/// A positive 127-bit serial from the OS random source (RFC 5280 asks for unique, at most 20 octets).
fn random_serial() -> Result<SerialNumber, PkiError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| PkiError::Generate(rcgen::Error::RingUnspecified))?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01; // Never a leading zero octet, so the DER length is stable.
    Ok(SerialNumber::from_slice(&bytes))
}

fn first_cert_der(pem: &str) -> Result<Vec<u8>, PkiError> {
    certs_from_pem(pem)?.into_iter().next().ok_or(PkiError::MissingPem("certificate"))
}

fn base64_encode(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(TABLE[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn check_fp(input: &str, expect: Result<&str, usize>) {
        match (parse_fingerprint(input), expect) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "input {input:?}"),
            (Err(PkiError::BadFingerprint(got)), Err(want)) => assert_eq!(got, want, "input {input:?}"),
            (got, want) => panic!("input {input:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn parse_fingerprint_cases() {
        let canonical = "ab".repeat(32);
        check_fp(&canonical, Ok(&canonical));
        check_fp(&"AB".repeat(32), Ok(&canonical));
        check_fp(&vec!["Ab"; 32].join(":"), Ok(&canonical));
        check_fp(&format!("  {}  ", vec!["ab"; 32].join(" ")), Ok(&canonical));
        check_fp(&"ab".repeat(31), Err(62));
        check_fp(&"ab".repeat(33), Err(66));
        check_fp("", Err(0));
        check_fp(&format!("{}zz", "ab".repeat(31)), Err(62));
        check_fp(&format!("{}-ab", "ab".repeat(31)), Err(62));
    }

    #[test]
    fn fingerprint_is_sha256_hex() {
        // SHA-256 of the empty input, a well-known value.
        assert_eq!(fingerprint(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn der_to_pem_round_trips() {
        for len in [0usize, 1, 2, 3, 4, 47, 48, 49, 100] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
            let pem = der_to_pem(&bytes);
            use rustls_pki_types::pem::PemObject;
            let back = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes());
            match back {
                Ok(der) => assert_eq!(der.as_ref(), bytes.as_slice(), "len {len}"),
                Err(e) => assert_eq!(len, 0, "len {len}: {e}"),
            }
        }
    }

    fn test_issuer() -> (CaBundle, Issuer) {
        let now = Utc::now();
        let ca = new_ca("hub-test", now - Duration::hours(1), now + Duration::days(3650)).expect("new ca");
        let issuer = Issuer::load(&ca.issuing_cert_pem, &ca.issuing_key_pem, &ca.root_cert_pem).expect("load");
        (ca, issuer)
    }

    #[test]
    fn node_identity_round_trips() {
        let (_, issuer) = test_issuer();
        let (_key_pem, csr) = new_node_key().expect("node key");
        let now = Utc::now();
        let not_after = now + Duration::days(90);
        let issued = issuer.sign_node_csr(&csr, "plant-north", "edge-1", now, not_after).expect("sign");
        let identity = node_identity(&issued.leaf_der).expect("identity");
        assert_eq!(
            identity,
            NodeIdentity {
                site: "plant-north".into(),
                node: "edge-1".into(),
                not_after: truncate_to_seconds(not_after)
            }
        );
        assert_eq!(issued.not_after, identity.not_after);
        assert_eq!(issued.fingerprint, fingerprint(&issued.leaf_der));
        assert_eq!(certs_from_pem(&issued.chain_pem).expect("chain").len(), 3);
        let (nb, na) = validity(&issued.leaf_der).expect("validity");
        assert_eq!((nb, na), (truncate_to_seconds(now), truncate_to_seconds(not_after)));
    }

    #[test]
    fn csr_with_bad_signature_is_refused() {
        let (_, issuer) = test_issuer();
        let (_, mut csr) = new_node_key().expect("node key");
        // The signature is the last element of the CSR; flipping its last byte breaks it but keeps the DER valid.
        let last = csr.len() - 1;
        csr[last] ^= 0x01;
        let now = Utc::now();
        let err = issuer.sign_node_csr(&csr, "plant", "edge", now, now + Duration::days(1)).expect_err("refused");
        assert!(matches!(err, PkiError::CsrSignature | PkiError::CsrMalformed), "{err:?}");
        let err = issuer.sign_node_csr(b"garbage", "plant", "edge", now, now + Duration::days(1)).expect_err("refused");
        assert!(matches!(err, PkiError::CsrMalformed), "{err:?}");
    }

    #[test]
    fn csr_subject_is_ignored_and_names_are_checked() {
        let (_, issuer) = test_issuer();
        // A CSR asking for another site's identity and a server-auth EKU: the hub ignores all of that.
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec!["datum-hub".to_string()]).expect("params");
        params.distinguished_name.push(DnType::OrganizationName, "other-site");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.subject_alt_names.push(SanType::URI(node_uri("other-site", "x").try_into().expect("uri")));
        let csr = params.serialize_request(&key).expect("csr");
        let now = Utc::now();
        let issued = issuer.sign_node_csr(csr.der(), "plant", "edge", now, now + Duration::days(1)).expect("sign");
        let identity = node_identity(&issued.leaf_der).expect("identity");
        assert_eq!((identity.site.as_str(), identity.node.as_str()), ("plant", "edge"));
        let (_, cert) = x509_parser::parse_x509_certificate(&issued.leaf_der).expect("parse");
        let eku = cert.extended_key_usage().expect("eku").expect("present").value;
        assert!(eku.client_auth && !eku.server_auth);
        assert!(!cert.is_ca());

        let (_, csr) = new_node_key().expect("node key");
        let err = issuer.sign_node_csr(&csr, "pl:ant", "edge", now, now + Duration::days(1)).expect_err("bad site");
        assert!(matches!(err, PkiError::BadName { what: "site name", .. }), "{err:?}");
    }

    #[test]
    fn issuer_load_checks_the_chain() {
        let (ca, _) = test_issuer();
        let (other, _) = test_issuer();
        let err = Issuer::load(&ca.issuing_cert_pem, &ca.issuing_key_pem, &other.root_cert_pem).expect_err("mismatch");
        assert!(matches!(err, PkiError::ChainMismatch), "{err:?}");
        let err = Issuer::load(&ca.issuing_cert_pem, &other.issuing_key_pem, &ca.root_cert_pem).expect_err("key");
        assert!(matches!(err, PkiError::Pem(_)), "{err:?}");
    }

    #[test]
    fn web_certificates_name_the_site_under_the_hubs_domain_only() {
        assert_eq!(web_names("north", "Plants.Example.com.").expect("valid"), ["north.plants.example.com"]);
        for (site, domain) in [("north", "evil.com/x"), ("north", "a..b"), ("north", "-a.b"), ("north", "")] {
            assert!(web_names(site, domain).is_err(), "{site} {domain}");
        }
        let (_, issuer) = test_issuer();
        let (_, csr) = new_node_key().expect("key");
        let now = Utc::now();
        let names = web_names("north", "plants.example.com").expect("names");
        let issued = issuer.sign_web_csr(&csr, &names, now, now + Duration::days(90)).expect("signed");
        let (_, cert) = x509_parser::parse_x509_certificate(&issued.leaf_der).expect("parse");
        let san = cert.subject_alternative_name().expect("san").expect("present").value;
        let dns: Vec<String> = san
            .general_names
            .iter()
            .filter_map(|n| if let GeneralName::DNSName(d) = n { Some(d.to_string()) } else { None })
            .collect();
        assert_eq!(dns, ["north.plants.example.com"]);
        let eku = cert.extended_key_usage().expect("eku").expect("present").value;
        assert!(eku.server_auth && !eku.client_auth, "a web certificate is for serving only");
        assert!(node_identity(&issued.leaf_der).is_err(), "it is not a node certificate");
        let mut bad = csr.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(issuer.sign_web_csr(&bad, &names, now, now + Duration::days(1)).is_err(), "a forged CSR");
    }

    #[test]
    fn server_cert_names_datum_hub() {
        let (_, issuer) = test_issuer();
        let now = Utc::now();
        let (chain, _key) = issuer.server_cert("hub-test", now, now + Duration::days(1)).expect("server cert");
        let certs = certs_from_pem(&chain).expect("chain");
        assert_eq!(certs.len(), 3);
        let (_, cert) = x509_parser::parse_x509_certificate(&certs[0]).expect("parse");
        let san = cert.subject_alternative_name().expect("san").expect("present").value;
        let dns: Vec<String> = san
            .general_names
            .iter()
            .filter_map(|n| if let GeneralName::DNSName(d) = n { Some(d.to_string()) } else { None })
            .collect();
        assert_eq!(dns, ["datum-hub", "hub-test"]);
        assert!(node_identity(&certs[0]).is_err());
    }
}
