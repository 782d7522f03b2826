//! The command line of `datum-hub` (clap). Reference: `docs/federation.md` (and `docs/evidence.md` for `report`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "datum-hub",
    version,
    about = "Datum hub: every plant's configuration and change control in one place"
)]
pub struct Cli {
    /// Hub data directory (identity, and the SQLite database unless --database is given).
    #[arg(long, global = true, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// PostgreSQL instead of the embedded SQLite: postgres://user@host/db (also DATUM_HUB_DATABASE). Once given
    /// to `init`, it is remembered in the data directory.
    // The value is never shown in `--help`: a database URL may hold a password.
    #[arg(long, global = true, env = "DATUM_HUB_DATABASE", hide_env_values = true, value_name = "URL")]
    pub database: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create the hub's identity (private CA, TLS certificate, signing key) and database.
    Init {
        /// The hub's name as people say it ("ACME OT"), shown to plants at enrollment
        #[arg(long, default_value = "datum-hub")]
        name: String,
        /// The identifier in the hub's certificates (default: derived from the name)
        #[arg(long)]
        id: Option<String>,
    },
    /// Sites (plants) and their enrollment.
    Site {
        #[command(subcommand)]
        command: SiteCommand,
    },
    /// Accept edges over QUIC and TLS/TCP on the same port number.
    Serve {
        /// Address and port to listen on (UDP for QUIC and TCP)
        #[arg(long, default_value = "0.0.0.0:7800")]
        listen: SocketAddr,
        /// Do not listen on UDP (QUIC): TLS over TCP only.
        #[arg(long)]
        no_udp: bool,
        /// Issue each enrolled edge a web certificate for SITE.DOMAIN from the hub's CA (browsers that trust
        /// the hub's root then trust every plant's workspace)
        #[arg(long, value_name = "DOMAIN")]
        web_domain: Option<String>,
    },
    /// Assets of every site, from the hub's copy.
    Asset {
        #[command(subcommand)]
        command: AssetCommand,
    },
    /// Per site: last contact, sync state, assets, open changes, unauthorized drift, overdue backups.
    Status {
        /// Print the result as JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// The auditor's evidence pack from the hub's copy: one site's, or one per site with a cross-site summary;
    /// or `report verify DIR`
    #[command(
        group(clap::ArgGroup::new("which").required(true).args(["site", "all"])),
        args_conflicts_with_subcommands = true,
        subcommand_negates_reqs = true
    )]
    Report {
        #[command(subcommand)]
        check: Option<ReportCmd>,
        /// The site's pack only
        #[arg(long)]
        site: Option<String>,
        /// Every enrolled site's pack and a cross-site summary
        #[arg(long)]
        all: bool,
        /// Start of the period (YYYY-MM-DD or RFC 3339) [default: a year before --to]
        #[arg(long, value_name = "DATE")]
        from: Option<String>,
        /// End of the period (YYYY-MM-DD or RFC 3339) [default: now]
        #[arg(long, value_name = "DATE")]
        to: Option<String>,
        /// The directory to write (must not exist yet)
        #[arg(long, value_name = "DIR", required = true)]
        out: Option<PathBuf>,
        /// Also write the pack as DIR.zip (one folder inside)
        #[arg(long)]
        zip: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReportCmd {
    /// Check a pack on any machine: the signature and every file's hash; exit 1 naming each altered, missing or
    /// added file
    Verify {
        /// The pack's directory
        dir: PathBuf,
        /// Print the result as JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum SiteCommand {
    /// Add a site and print its one-time enrollment token.
    Add {
        /// The site's name as people say it ("Werk Süd"), the same as the plant's `datum-edge init --site`
        name: String,
        /// The site's identifier (default: derived from the name, as the edge derives it)
        #[arg(long)]
        id: Option<String>,
        /// Hours the token stays valid.
        #[arg(long, default_value_t = 72)]
        valid_hours: u32,
        /// Print the result as JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// A new one-time token for an existing site (a replacement edge).
    Token {
        /// The site
        name: String,
        /// Hours the token stays valid.
        #[arg(long, default_value_t = 72)]
        valid_hours: u32,
        /// Print the result as JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Every site with its enrollment state
    List {
        /// Print the result as JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// One site with its nodes and violations
    Show {
        /// The site
        name: String,
        /// Print the result as JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Refuse the site's nodes from now on and cut their live connections.
    Revoke {
        /// The site
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum AssetCommand {
    /// Assets of every site (or one), active ones unless --all
    List {
        /// Only this site's assets
        #[arg(long)]
        site: Option<String>,
        /// Include retired assets
        #[arg(long)]
        all: bool,
        /// Print the result as JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
}
