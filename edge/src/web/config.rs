//! The service's TOML configuration (`/etc/datum/edge.toml` when installed) and its web certificate.
//!
//! ```toml
//! listen = "0.0.0.0:8443"          # the web UI and API
//! data = "/var/lib/datum"          # the data directory
//! plain_http = false               # true only on a loopback address (a reverse proxy on the box)
//! sync = true                      # continuous sync with the hub when enrolled
//! socket = "/run/datum-edge/cli.sock"  # the command line beside the service (default: none)
//! [session]
//! idle_minutes = 15
//! absolute_hours = 8
//! [tls]                            # a certificate from the company CA; default: one made on first start
//! cert = "/etc/datum/web.crt"
//! key = "/etc/datum/web.key"
//! ```
//! Unknown keys are warned about, not fatal (an older binary reads a newer file).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use datum_host::exit::user;
use datum_host::net::{pki, tls};
use datum_host::web::config::{self, WebSettings};

/// Where an installed service finds its configuration when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/datum/edge.toml";

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: Option<SocketAddr>,
    pub data: Option<PathBuf>,
    pub sync: bool,
    /// Plain HTTP, session time-outs, certificate files: as at the hub.
    pub web: WebSettings,
    /// The local socket for the command line (`broker`).
    pub socket: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config { listen: None, data: None, sync: true, web: WebSettings::default(), socket: None }
    }
}

/// Reads the file given, else the default path when it exists, else the defaults.
pub fn load(path: Option<&Path>) -> Result<Config> {
    config::load(path, DEFAULT_CONFIG)
}

impl config::ServiceConfig for Config {
    fn web_settings(&mut self) -> &mut WebSettings {
        &mut self.web
    }

    fn take(&mut self, key: &str, value: &toml::Value) -> Result<bool, String> {
        match key {
            "listen" => self.listen = Some(config::address(key, value)?),
            "data" => self.data = Some(PathBuf::from(config::string(key, value)?)),
            "sync" => self.sync = config::boolean(key, value)?,
            "socket" => self.socket = Some(PathBuf::from(config::string(key, value)?)),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// The web certificate the hub issued from the company CA (fetched by sync when the hub has a web domain):
/// preferred over the node's own, and picked up while serving.
pub const HUB_WEB_CERT: &str = "identity/web-hub.crt";
pub const HUB_WEB_KEY: &str = "identity/web-hub.key";
/// How often a handshake looks whether sync brought a new hub-issued certificate.
const RECHECK: Duration = Duration::from_secs(5);

/// The HTTPS configuration: the configured certificate; else the hub-issued one when sync fetched it, else
/// the node's own (made on first start, kept in `identity/web.crt` and `identity/web.key`). Returns it with
/// the SHA-256 fingerprint of the certificate served first.
pub fn tls(data: &Path, config: &Config) -> Result<(Arc<rustls::ServerConfig>, String)> {
    if let (Some(cert), Some(key)) = (&config.web.cert, &config.web.key) {
        let cert_pem = std::fs::read_to_string(cert).with_context(|| format!("read {}", cert.display()))?;
        let key_pem = std::fs::read_to_string(key).with_context(|| format!("read {}", key.display()))?;
        return Ok((tls::web_server_config(&cert_pem, &key_pem)?, leaf_fingerprint(&cert_pem)?));
    }
    let (cert, key) = (data.join("identity/web.crt"), data.join("identity/web.key"));
    if !cert.exists() {
        let mut names = vec!["localhost".to_string()];
        if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
            let host = host.trim();
            if !host.is_empty() && host != "localhost" {
                names.push(host.to_string());
            }
        }
        let (cert_pem, key_pem) = tls::self_signed_web_cert(&names)?;
        datum_host::fs::write_private(&key, key_pem.as_bytes())?;
        datum_host::fs::write_private(&cert, cert_pem.as_bytes())?;
    }
    let (current, hub_mtime, fingerprint) = load_current(data)?;
    let certs = WebCerts {
        data: data.to_path_buf(),
        state: std::sync::Mutex::new(CertState { current, hub_mtime, checked: std::time::Instant::now() }),
    };
    Ok((tls::web_server_config_with(Arc::new(certs))?, fingerprint))
}

fn leaf_fingerprint(chain_pem: &str) -> Result<String> {
    let leaf = pki::certs_from_pem(chain_pem)?
        .into_iter()
        .next()
        .ok_or_else(|| user("the web certificate file holds no certificate"))?;
    Ok(pki::fingerprint(&leaf))
}

/// The hub-issued pair when it is there and loads, else the node's own; with the hub file's modification
/// time and the fingerprint.
fn load_current(data: &Path) -> Result<(Arc<rustls::sign::CertifiedKey>, Option<std::time::SystemTime>, String)> {
    let read = |name: &str| std::fs::read_to_string(data.join(name)).with_context(|| format!("read {name}"));
    let hub_mtime = std::fs::metadata(data.join(HUB_WEB_CERT)).and_then(|m| m.modified()).ok();
    if hub_mtime.is_some() {
        let hub = (|| -> Result<_> {
            let (cert, key) = (read(HUB_WEB_CERT)?, read(HUB_WEB_KEY)?);
            Ok((tls::certified_key(&cert, &key)?, leaf_fingerprint(&cert)?))
        })();
        match hub {
            Ok((certified, fingerprint)) => return Ok((certified, hub_mtime, fingerprint)),
            Err(e) => tracing::warn!("the hub-issued web certificate does not load ({e:#}); serving the node's own"),
        }
    }
    let (cert, key) = (read("identity/web.crt")?, read("identity/web.key")?);
    Ok((tls::certified_key(&cert, &key)?, None, leaf_fingerprint(&cert)?))
}

/// The certificate served, re-read when sync brings a new hub-issued one.
#[derive(Debug)]
struct WebCerts {
    data: PathBuf,
    state: std::sync::Mutex<CertState>,
}

#[derive(Debug)]
struct CertState {
    current: Arc<rustls::sign::CertifiedKey>,
    hub_mtime: Option<std::time::SystemTime>,
    checked: std::time::Instant,
}

impl rustls::server::ResolvesServerCert for WebCerts {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let mut state = self.state.lock().ok()?;
        if state.checked.elapsed() >= RECHECK {
            state.checked = std::time::Instant::now();
            let mtime = std::fs::metadata(self.data.join(HUB_WEB_CERT)).and_then(|m| m.modified()).ok();
            if mtime.is_some() && mtime != state.hub_mtime {
                // A pair caught between its two writes does not load: kept as it was, tried again next time.
                match load_current(&self.data) {
                    Ok((current, Some(m), fingerprint)) if Some(m) == mtime => {
                        tracing::info!("serving the web certificate issued by the hub (SHA-256 {fingerprint})");
                        state.current = current;
                        state.hub_mtime = Some(m);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("web certificate: {e:#}"),
                }
            }
        }
        Some(state.current.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_keys_and_names_unknown_ones() {
        let (c, unknown) = config::parse::<Config>(
            "listen = \"127.0.0.1:9000\"\nplain_http = true\nsocket = \"/run/x.sock\"\ncolour = \"blue\"\n[session]\nidle_minutes = 5\nfoo = 1\n",
        )
        .expect("valid");
        assert_eq!(c.listen, Some("127.0.0.1:9000".parse().expect("addr")));
        assert!(c.web.plain_http);
        assert_eq!(c.socket, Some(PathBuf::from("/run/x.sock")));
        assert_eq!(c.web.idle, Duration::from_secs(300));
        assert_eq!(unknown, vec!["colour".to_string(), "session.foo".to_string()]);
        assert!(config::parse::<Config>("listen = 5").is_err());
        assert!(config::parse::<Config>("[session]\nidle_minutes = 0").is_err());
        assert!(config::parse::<Config>("[tls]\ncert = \"x\"").is_err());
        assert!(config::parse::<Config>("not toml ===").is_err());
    }
}
