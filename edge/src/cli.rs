//! The command-line contract of `datum-edge` (documented in docs/cli.md; scripts depend on it).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "datum-edge", version, about = "Configuration and change control for one plant (IEC 62443), offline")]
pub struct Cli {
    /// Data directory [env: DATUM_DATA] [default: ./datum-data]
    #[arg(long, global = true, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Who is acting (recorded in every audit entry) [env: DATUM_ACTOR] [default: the OS user]
    #[arg(long, global = true, value_name = "NAME")]
    pub actor: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the data directory and the site identity
    Init {
        #[arg(long)]
        site: String,
    },
    /// The asset inventory
    #[command(subcommand)]
    Asset(AssetCmd),
    /// Configuration versions (backups) of assets
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Approved baseline configurations
    #[command(subcommand)]
    Baseline(BaselineCmd),
    /// Compare what runs with what was approved; exit 1 on unauthorized drift or stale captures
    Drift {
        #[arg(long)]
        json: bool,
        #[arg(long)]
        zone: Option<String>,
    },
    /// Change requests
    #[command(subcommand)]
    Change(ChangeCmd),
    /// Restore tests of stored versions
    #[command(subcommand, name = "restore-test")]
    RestoreTest(RestoreTestCmd),
    /// Backup status and verification
    #[command(subcommand)]
    Backup(BackupCmd),
    /// Periodic reviews
    #[command(subcommand)]
    Review(ReviewCmd),
    /// The audit trail
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Compare two configuration files directly (no data directory); exit 1 when significantly different
    Diff {
        old: PathBuf,
        new: PathBuf,
        /// Show the raw line diff (secrets still masked) as well
        #[arg(long)]
        raw: bool,
        #[arg(long)]
        json: bool,
    },
    /// Write one verifiable archive of the whole site
    Dump {
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Enroll this site with a hub (once): the node key is made here and never leaves this machine
    Enroll {
        /// The hub's address, HOST:PORT
        #[arg(long)]
        hub: String,
        /// The one-time token from `datum-hub site add` / `site token`
        #[arg(long)]
        token: String,
        /// The hub fingerprint printed with the token (pins the hub)
        #[arg(long)]
        fingerprint: String,
        /// This node's name (default: the site name and 4 random hex digits)
        #[arg(long)]
        node: Option<String>,
        /// auto (QUIC, then TLS over TCP), quic or tcp
        #[arg(long, value_enum, default_value_t = Transport::Auto)]
        transport: Transport,
    },
    /// Sync with the hub: one pass with --once (exit 0 in sync, 1 hub unreachable), else keep syncing
    Sync {
        #[arg(long)]
        once: bool,
        /// auto (QUIC, then TLS over TCP), quic or tcp
        #[arg(long, value_enum, default_value_t = Transport::Auto)]
        transport: Transport,
        /// Seconds between checks for local changes (continuous mode)
        #[arg(long, default_value_t = 5)]
        interval: u64,
        /// Disable UDP segmentation offload (for network cards that misreport it)
        #[arg(long)]
        no_gso: bool,
        #[arg(long)]
        json: bool,
    },
    /// Rebuild a site whose disk died from the hub's copy, as a new node, into a new data directory (--data)
    #[command(name = "restore-from-hub")]
    RestoreFromHub {
        /// The hub's address, HOST:PORT
        #[arg(long)]
        hub: String,
        /// A one-time token from `datum-hub site token SITE`
        #[arg(long)]
        token: String,
        /// The hub fingerprint printed with the token (pins the hub)
        #[arg(long)]
        fingerprint: String,
        /// This new node's name (default: the site name and 4 random hex digits)
        #[arg(long)]
        node: Option<String>,
        /// The site meant to be restored; the hub refuses a token of another site
        #[arg(long)]
        site: Option<String>,
        /// auto (QUIC, then TLS over TCP), quic or tcp
        #[arg(long, value_enum, default_value_t = Transport::Auto)]
        transport: Transport,
        #[arg(long)]
        json: bool,
    },
    /// Rebuild a site from a dump into a new data directory (given with --data)
    #[command(name = "restore-dump")]
    RestoreDump {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

/// How to reach the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// QUIC first, TLS over TCP if QUIC does not answer
    Auto,
    Quic,
    Tcp,
}

impl From<Transport> for datum_shared::net::transport::Mode {
    fn from(t: Transport) -> Self {
        match t {
            Transport::Auto => Self::Auto,
            Transport::Quic => Self::QuicOnly,
            Transport::Tcp => Self::TcpOnly,
        }
    }
}

#[derive(Debug, Args, Default)]
pub struct AssetFieldArgs {
    #[arg(long)]
    pub kind: Option<String>,
    #[arg(long)]
    pub vendor: Option<String>,
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long)]
    pub serial: Option<String>,
    #[arg(long)]
    pub firmware: Option<String>,
    #[arg(long)]
    pub location: Option<String>,
    #[arg(long)]
    pub zone: Option<String>,
    #[arg(long)]
    pub ip: Option<String>,
    /// low, medium, high or critical
    #[arg(long)]
    pub criticality: Option<String>,
    #[arg(long)]
    pub owner: Option<String>,
    /// In scope of IEC 62443 configuration management (the default for new assets)
    #[arg(long, conflicts_with = "out_of_scope")]
    pub in_scope: bool,
    #[arg(long)]
    pub out_of_scope: bool,
    /// A tag; repeat for several (on edit: replaces all tags)
    #[arg(long = "tag")]
    pub tags: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum AssetCmd {
    /// Add an asset
    Add {
        name: String,
        #[command(flatten)]
        fields: AssetFieldArgs,
    },
    /// Change fields of an asset (an empty value clears a field)
    Edit {
        name: String,
        #[command(flatten)]
        fields: AssetFieldArgs,
    },
    /// Retire an asset (it stays in the history; it leaves reports)
    Retire {
        name: String,
        #[arg(long)]
        reason: String,
    },
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        zone: Option<String>,
        #[arg(long)]
        kind: Option<String>,
        /// Include retired assets
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Import assets from CSV (all or nothing)
    Import {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Export the inventory as CSV on standard output
    Export {
        #[arg(long, required = true)]
        csv: bool,
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Store a configuration file as a version of an asset's slot
    Capture {
        asset: String,
        file: PathBuf,
        #[arg(long)]
        slot: Option<String>,
        #[arg(long)]
        note: Option<String>,
        /// The change request this capture implements
        #[arg(long)]
        change: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Versions of an asset
    Log {
        asset: String,
        #[arg(long)]
        slot: Option<String>,
        #[arg(long)]
        json: bool,
    },
    Show {
        asset: String,
        #[arg(long)]
        slot: Option<String>,
        #[arg(long)]
        version: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Write a stored version's exact bytes to a file
    Export {
        asset: String,
        #[arg(long)]
        slot: Option<String>,
        #[arg(long)]
        version: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// What changed between two versions (default: baseline vs latest), by location, noise ignored
    Diff {
        asset: String,
        from: Option<String>,
        to: Option<String>,
        #[arg(long)]
        slot: Option<String>,
        /// Show the raw line diff (secrets still masked) instead of the normalised one
        #[arg(long)]
        raw: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum BaselineCmd {
    Approve {
        asset: String,
        #[arg(long)]
        slot: Option<String>,
        #[arg(long)]
        version: Option<String>,
        #[arg(long)]
        reason: String,
    },
    Show {
        asset: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ChangeCmd {
    New {
        #[arg(long)]
        title: String,
        #[arg(long)]
        reason: String,
        #[arg(long = "asset", required = true)]
        assets: Vec<String>,
        #[arg(long)]
        risk: String,
        #[arg(long)]
        impact: String,
        #[arg(long)]
        rollback: String,
        #[arg(long)]
        test_plan: Option<String>,
        /// FROM..TO, RFC 3339 or YYYY-MM-DD[THH:MM]
        #[arg(long)]
        window: Option<String>,
        #[arg(long)]
        emergency: bool,
        #[arg(long)]
        json: bool,
    },
    Submit {
        id: String,
    },
    Approve {
        id: String,
        #[arg(long)]
        comment: Option<String>,
    },
    Reject {
        id: String,
        #[arg(long)]
        reason: String,
    },
    Implement {
        id: String,
        #[arg(long)]
        note: Option<String>,
    },
    Verify {
        id: String,
    },
    Close {
        id: String,
    },
    Cancel {
        id: String,
        #[arg(long)]
        reason: String,
    },
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RestoreTestCmd {
    Record {
        asset: String,
        #[arg(long)]
        slot: Option<String>,
        #[arg(long)]
        version: String,
        /// pass or fail
        #[arg(long)]
        result: String,
        #[arg(long)]
        method: String,
        #[arg(long)]
        evidence: Option<PathBuf>,
        #[arg(long)]
        notes: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum BackupCmd {
    /// Age of the last backup and last passing restore test per asset; exit 1 when any is overdue
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Re-hash every stored blob; exit 1 on damage
    Verify {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReviewCmd {
    /// Assets whose periodic review is due or overdue; exit 1 when any is overdue
    Due {
        #[arg(long)]
        json: bool,
    },
    /// Record a review of one asset or a whole zone
    Record {
        #[arg(required_unless_present = "zone", conflicts_with = "zone")]
        asset: Option<String>,
        #[arg(long)]
        zone: Option<String>,
        /// ok or findings
        #[arg(long)]
        outcome: String,
        #[arg(long)]
        notes: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    Log {
        /// RFC 3339 time or YYYY-MM-DD
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        asset: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Prove the history is intact; exit 1 naming anything wrong
    Verify {
        #[arg(long)]
        json: bool,
    },
}
