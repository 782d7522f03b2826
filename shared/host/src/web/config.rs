//! What both services read from their TOML file (`/etc/datum/edge.toml`, `/etc/datum/hub.toml`) about the
//! web: plain HTTP (loopback only), the session time-outs and a certificate given as files. Each binary
//! parses its own keys and hands the rest to [`WebSettings::take`]. Unknown keys are warned about, not fatal
//! (an older binary reads a newer file).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::auth::SessionLimits;
use crate::exit::user;

#[derive(Debug, Clone, PartialEq)]
pub struct WebSettings {
    pub plain_http: bool,
    pub idle: Duration,
    pub absolute: Duration,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl Default for WebSettings {
    fn default() -> Self {
        let limits = SessionLimits::default();
        WebSettings { plain_http: false, idle: limits.idle, absolute: limits.absolute, cert: None, key: None }
    }
}

impl WebSettings {
    pub fn session_limits(&self) -> SessionLimits {
        SessionLimits { idle: self.idle, absolute: self.absolute }
    }

    /// Reads one top-level key when it is a web setting (`plain_http`, `[session]`, `[tls]`): true when it
    /// was; unknown keys inside those tables are added to `unknown`.
    pub fn take(&mut self, key: &str, value: &toml::Value, unknown: &mut Vec<String>) -> Result<bool, String> {
        let minutes = |key: &str, v: &toml::Value, unit: u64, max: i64| match v.as_integer() {
            Some(n) if n > 0 && n <= max => Ok(Duration::from_secs(n.unsigned_abs() * unit)),
            _ => Err(format!("{key} must be a whole number from 1 to {max}")),
        };
        match key {
            "plain_http" => self.plain_http = boolean(key, value)?,
            "session" | "tls" => {
                let Some(inner) = value.as_table() else { return Err(format!("[{key}] must be a table")) };
                for (k, v) in inner {
                    let full = format!("{key}.{k}");
                    match (key, k.as_str()) {
                        ("session", "idle_minutes") => self.idle = minutes(&full, v, 60, 24 * 60)?,
                        ("session", "absolute_hours") => self.absolute = minutes(&full, v, 3600, 24 * 7)?,
                        ("tls", "cert") => self.cert = Some(PathBuf::from(string(&full, v)?)),
                        ("tls", "key") => self.key = Some(PathBuf::from(string(&full, v)?)),
                        _ => unknown.push(full),
                    }
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The checks across keys, once the whole file is read.
    pub fn check(&self) -> Result<(), String> {
        if self.cert.is_some() != self.key.is_some() {
            return Err("[tls] needs both cert and key".into());
        }
        Ok(())
    }
}

pub fn string(key: &str, v: &toml::Value) -> Result<String, String> {
    v.as_str().map(str::to_string).ok_or_else(|| format!("{key} must be a string"))
}

pub fn boolean(key: &str, v: &toml::Value) -> Result<bool, String> {
    v.as_bool().ok_or_else(|| format!("{key} must be true or false"))
}

pub fn address(key: &str, v: &toml::Value) -> Result<SocketAddr, String> {
    let s = string(key, v)?;
    s.parse().map_err(|_| format!("{key} {s:?} is not an address like 0.0.0.0:8443"))
}

/// The configuration file's text: the file given (which must exist), else `default` when it exists, else
/// none (the defaults apply).
pub fn read(path: Option<&Path>, default: &str) -> anyhow::Result<Option<(PathBuf, String)>> {
    let (path, required) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from(default), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(t) => Ok(Some((path, t))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(None),
        Err(e) => Err(user(format!("read {}: {e}", path.display()))),
    }
}

/// A service's configuration file: the binary's own keys beside the web settings both binaries share.
pub trait ServiceConfig: Default {
    /// The shared web settings within it.
    fn web_settings(&mut self) -> &mut WebSettings;
    /// Takes `key` when it is one of the binary's own (true), or leaves it (false).
    fn take(&mut self, key: &str, value: &toml::Value) -> Result<bool, String>;
}

/// Parses a configuration file's text: the configuration and the keys it did not know, or why it is wrong.
pub fn parse<C: ServiceConfig>(text: &str) -> Result<(C, Vec<String>), String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    let mut c = C::default();
    let mut unknown = Vec::new();
    for (key, value) in &table {
        if !c.take(key, value)? && !c.web_settings().take(key, value, &mut unknown)? {
            unknown.push(key.clone());
        }
    }
    c.web_settings().check()?;
    Ok((c, unknown))
}

/// A service's configuration: the file given (which must exist), else `default` when it exists, else `C`'s
/// defaults; unknown keys are warned about (an older binary reads a newer file).
pub fn load<C: ServiceConfig>(path: Option<&Path>, default: &str) -> anyhow::Result<C> {
    let Some((path, text)) = read(path, default)? else { return Ok(C::default()) };
    let (config, unknown) = parse(&text).map_err(|e| user(format!("{}: {e}", path.display())))?;
    warn_unknown(&path, &unknown);
    Ok(config)
}

/// Says which keys were ignored, in the log and on standard error.
pub fn warn_unknown(path: &Path, unknown: &[String]) {
    for key in unknown {
        tracing::warn!("{}: unknown key {key} ignored", path.display());
        eprintln!("warning: {}: unknown key {key} ignored", path.display());
    }
}
