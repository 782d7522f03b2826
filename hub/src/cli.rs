//! The command line of `datum-hub` (clap). Reference: `docs/federation.md` (and `docs/evidence.md` for
//! `report`, `docs/templates.md` for `template` and `compliance`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use datum_host::cli::{Account, Json, NewPassword, NewToken, Period, ReportCmd, ShowAccount, TokenId};

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
    /// The hub's people: accounts of the corporate team, their roles and the sites they see (docs/hub.md).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// API tokens acting as one of the hub's people (shown once; stored hashed).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Sites (plants) and their enrollment.
    Site {
        #[command(subcommand)]
        command: SiteCommand,
    },
    /// Accept edges over QUIC and TLS/TCP on the same port number; with --web, serve the dashboard too.
    Serve {
        /// Address and port to listen on for sync (UDP for QUIC and TCP) [default: from the config file, else
        /// 0.0.0.0:7800]
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Do not listen on UDP (QUIC): TLS over TCP only.
        #[arg(long)]
        no_udp: bool,
        /// Issue each enrolled edge a web certificate for SITE.DOMAIN from the hub's CA (browsers that trust
        /// the hub's root then trust every plant's workspace)
        #[arg(long, value_name = "DOMAIN")]
        web_domain: Option<String>,
        /// Serve the dashboard and the JSON API on this address (HTTPS; docs/hub.md)
        #[arg(long, value_name = "ADDR")]
        web: Option<SocketAddr>,
        /// TOML configuration file [default: /etc/datum/hub.toml when it exists]
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Assets of every site, from the hub's copy.
    Asset {
        #[command(subcommand)]
        command: AssetCommand,
    },
    /// Per site: last contact, sync state, assets, open changes, unauthorized drift, overdue backups.
    Status(Json),
    /// Shared templates: standards written once here, signed, rolled out to the sites (docs/templates.md).
    Template {
        #[command(subcommand)]
        command: TemplateCommand,
    },
    /// Per site and template: the version assigned, the plant's state of it, its latest results and failing
    /// rules (exit 1 when a site is non-compliant or refused a template).
    Compliance {
        /// Only this site
        #[arg(long)]
        site: Option<String>,
        /// Only this template (its id)
        #[arg(long)]
        template: Option<String>,
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
        #[command(flatten)]
        period: Period,
        /// The directory to write (must not exist yet)
        #[arg(long, value_name = "DIR", required = true)]
        out: Option<PathBuf>,
        /// Also write the pack as DIR.zip (one folder inside)
        #[arg(long)]
        zip: bool,
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
    List(Json),
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

#[derive(Subcommand, Debug)]
pub enum TemplateCommand {
    /// Validate a template file (its rules' own examples run) and keep it as a draft.
    Add {
        /// The template file (TOML)
        file: PathBuf,
        /// Print the result as JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Templates: published versions, drafts, sites assigned
    List(Json),
    /// One template: its versions, and per site the version assigned and what the plant reports
    Show {
        /// The template's id
        id: String,
        /// Print the result as JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Sign a draft with the hub's publishing key and publish it (immutable from then on); sites running an
    /// earlier version get the new one with their next sync.
    Publish {
        /// The template's id
        id: String,
        /// The draft's version [default: the highest drafted]
        #[arg(long)]
        version: Option<String>,
    },
    /// Assign a published version to one site or every site, with the site's parameter values.
    #[command(group(clap::ArgGroup::new("where").required(true).args(["site", "all"])))]
    Assign {
        /// The template's id
        id: String,
        /// The site
        #[arg(long)]
        site: Option<String>,
        /// Every enrolled site
        #[arg(long)]
        all: bool,
        /// The published version [default: the newest]
        #[arg(long)]
        version: Option<String>,
        /// A parameter's value for the site (repeatable; kept from an earlier assignment unless set again)
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
    },
    /// Withdraw a template from one site or every site.
    #[command(group(clap::ArgGroup::new("where").required(true).args(["site", "all"])))]
    Unassign {
        /// The template's id
        id: String,
        /// The site
        #[arg(long)]
        site: Option<String>,
        /// Every site it is assigned to
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a person
    Add {
        /// The account name (how the person signs in)
        name: String,
        /// Roles, comma-separated: viewer, security-officer, auditor, hub-admin
        #[arg(long, value_name = "ROLE[,ROLE]")]
        role: String,
        /// The sites the roles apply to, comma-separated [default: every site]
        #[arg(long, value_name = "SITE[,SITE]")]
        sites: Option<String>,
        /// The name shown in pages and reports
        #[arg(long, value_name = "TEXT")]
        display: Option<String>,
        /// Read the initial password from standard input (one line)
        #[arg(long)]
        password_stdin: bool,
    },
    /// Everyone, with roles, sites and second-factor state
    List(Json),
    /// One person's account
    Show(ShowAccount),
    /// Disable an account (its sessions and tokens stop working at once)
    Disable(Account),
    /// The hub's own record of what was done to accounts and tokens, newest first
    Log(Json),
    /// Set an account's password from standard input (ends its sessions)
    Passwd(NewPassword),
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Make an API token acting as a person
    Create(NewToken),
    /// Tokens (never their secrets)
    List(Json),
    /// Revoke a token by id
    Revoke(TokenId),
}
