//! The hub's identity on disk: its private CA (root and issuing key), its TLS certificate, and the Ed25519 key
//! that signs what the hub publishes. Files are written once by `init`, private to the hub's user.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, Utc};
use datum_host::fs::write_private;
use datum_host::net::pki::{self, Issuer};

use datum_host::exit::user;
use sha2::{Digest, Sha256};

const DIR: &str = "identity";
/// Node certificates are valid this long; edges renew them over the sync channel when a third is left.
pub const NODE_CERT_DAYS: i64 = 90;

pub struct Identity {
    pub name: String,
    pub root_pem: String,
    pub fingerprint: String,
    pub issuer: Issuer,
    pub tls_chain_pem: String,
    pub tls_key_pem: String,
    /// The public half of the publishing key (`signing.key`), given to every node at enrollment.
    pub publishing_key: [u8; 32],
}

fn path(data: &Path, file: &str) -> PathBuf {
    data.join(DIR).join(file)
}

/// Creates the identity files in `data` (which must not hold one).
pub fn create(data: &Path, name: &str, now: DateTime<Utc>) -> Result<Identity> {
    if path(data, "root.pem").exists() {
        return Err(user(format!("{} already holds a hub identity", data.display())));
    }
    fs::create_dir_all(data.join(DIR)).with_context(|| format!("create {}", data.join(DIR).display()))?;
    let ca =
        pki::new_ca(name, now - Duration::hours(1), now + Duration::days(3650)).map_err(|e| user(e.to_string()))?;
    let issuer = Issuer::load(&ca.issuing_cert_pem, &ca.issuing_key_pem, &ca.root_cert_pem)?;
    let (tls_chain_pem, tls_key_pem) = issuer.server_cert(name, now - Duration::hours(1), now + Duration::days(825))?;
    let signing = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    for (file, text) in [
        ("root.pem", ca.root_cert_pem.as_str()),
        ("root.key", ca.root_key_pem.as_str()),
        ("issuing.pem", ca.issuing_cert_pem.as_str()),
        ("issuing.key", ca.issuing_key_pem.as_str()),
        ("hub.pem", tls_chain_pem.as_str()),
        ("hub.key", tls_key_pem.as_str()),
        ("signing.key", &hex::encode(signing.to_bytes())),
        ("name", name),
    ] {
        write_private(&path(data, file), text.as_bytes())?;
    }
    load(data)
}

pub fn load(data: &Path) -> Result<Identity> {
    let read = |file: &str| {
        fs::read_to_string(path(data, file)).with_context(|| {
            format!("read {} (is this a hub data directory? run `datum-hub init`)", path(data, file).display())
        })
    };
    let root_pem = read("root.pem")?;
    let issuer = Issuer::load(&read("issuing.pem")?, &read("issuing.key")?, &root_pem)?;
    let root_der = pki::certs_from_pem(&root_pem)?.into_iter().next().context("root.pem holds no certificate")?;
    Ok(Identity {
        name: read("name")?.trim().to_string(),
        fingerprint: pki::fingerprint(&root_der),
        root_pem,
        issuer,
        tls_chain_pem: read("hub.pem")?,
        tls_key_pem: read("hub.key")?,
        publishing_key: signing_key(data)?.verifying_key().to_bytes(),
    })
}

/// The Ed25519 key that signs what the hub publishes (templates, assignments, evidence packs' manifests).
pub fn signing_key(data: &Path) -> Result<ed25519_dalek::SigningKey> {
    let file = path(data, "signing.key");
    let text = fs::read_to_string(&file).with_context(|| format!("read {}", file.display()))?;
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut bytes).with_context(|| format!("{} is not a key", file.display()))?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&bytes))
}

/// Groups a fingerprint for reading aloud over the phone: `ab12 cd34 …`.
pub fn display_fingerprint(fp: &str) -> String {
    fp.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).to_string()).collect::<Vec<_>>().join(":")
}

pub fn new_token() -> (String, String) {
    let token = hex::encode(rand::random::<[u8; 20]>());
    (token.clone(), token_hash(&token))
}

/// Tokens are stored only as their SHA-256: they are 160 random bits, so no slow hash is needed, and a
/// copy of the database does not let anyone enroll.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}
