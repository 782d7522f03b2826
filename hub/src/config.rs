//! `datum-hub serve`'s TOML configuration (`/etc/datum/hub.toml` when installed). The command line's
//! `--listen`, `--web` and `--web-domain` win over the file.
//!
//! ```toml
//! listen = "0.0.0.0:7800"          # sync with the edges (QUIC on UDP and TLS on TCP)
//! udp = true                       # false: TLS over TCP only
//! web = "0.0.0.0:8443"             # the dashboard and the API (absent: not served)
//! web_names = ["hub.example.com"]  # the names in the dashboard's certificate from the hub's CA
//! web_domain = "plants.example.com"  # issue each edge a web certificate for SITE.DOMAIN
//! plain_http = false               # true only on a loopback address (a reverse proxy on the box)
//! [session]
//! idle_minutes = 15
//! absolute_hours = 8
//! [tls]                            # a certificate from the company CA instead of the hub's own
//! cert = "/etc/datum/hub-web.crt"
//! key = "/etc/datum/hub-web.key"
//! ```
//! The data directory and database come from the environment (`DATUM_HUB_DATA`, `DATUM_HUB_DATABASE`) or
//! the command line, as for every other command.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Result;
use datum_host::web::config::{self, WebSettings};

/// Where an installed service finds its configuration when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/datum/hub.toml";

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: Option<SocketAddr>,
    pub udp: bool,
    pub web: Option<SocketAddr>,
    pub web_names: Vec<String>,
    pub web_domain: Option<String>,
    pub settings: WebSettings,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: None,
            udp: true,
            web: None,
            web_names: Vec::new(),
            web_domain: None,
            settings: WebSettings::default(),
        }
    }
}

/// Reads the file given, else the default path when it exists, else the defaults.
pub fn load(path: Option<&Path>) -> Result<Config> {
    config::load(path, DEFAULT_CONFIG)
}

impl config::ServiceConfig for Config {
    fn web_settings(&mut self) -> &mut WebSettings {
        &mut self.settings
    }

    fn take(&mut self, key: &str, value: &toml::Value) -> Result<bool, String> {
        match key {
            "listen" => self.listen = Some(config::address(key, value)?),
            "udp" => self.udp = config::boolean(key, value)?,
            "web" => self.web = Some(config::address(key, value)?),
            "web_domain" => self.web_domain = Some(config::string(key, value)?),
            "web_names" => {
                let list = value.as_array().ok_or("web_names must be a list of names")?;
                self.web_names = list.iter().map(|v| config::string("web_names", v)).collect::<Result<_, _>>()?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_keys_and_names_unknown_ones() {
        let (c, unknown) = config::parse::<Config>(
            "listen = \"0.0.0.0:7801\"\nudp = false\nweb = \"127.0.0.1:9443\"\nweb_names = [\"hub.example\"]\n\
             plain_http = true\ncolour = 1\n[session]\nidle_minutes = 5\nfoo = 2\n",
        )
        .expect("valid");
        assert_eq!(c.listen, Some("0.0.0.0:7801".parse().expect("addr")));
        assert!(!c.udp && c.settings.plain_http);
        assert_eq!(c.web, Some("127.0.0.1:9443".parse().expect("addr")));
        assert_eq!(c.web_names, vec!["hub.example".to_string()]);
        assert_eq!(c.settings.idle, std::time::Duration::from_secs(300));
        assert_eq!(unknown, vec!["colour".to_string(), "session.foo".to_string()]);
        // The packaged file holds only known keys.
        let (shipped, unknown) =
            config::parse::<Config>(include_str!("../../deploy/hub.toml")).expect("deploy/hub.toml parses");
        assert!(unknown.is_empty(), "{unknown:?}");
        assert_eq!(shipped.web, Some("0.0.0.0:8443".parse().expect("addr")));
        for bad in ["web = 5", "web_names = \"x\"", "web_names = [1]", "[tls]\nkey = \"k\"", "udp = \"yes\"", "= ="] {
            assert!(config::parse::<Config>(bad).is_err(), "{bad}");
        }
    }
}
