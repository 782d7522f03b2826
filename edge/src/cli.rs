//! The command-line contract of `datum-edge` (documented in docs/cli.md; scripts depend on it).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use datum_host::cli::{Account, Json, NewPassword, NewToken, Period, ReportCmd, ShowAccount, TokenId};

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
        /// The site's name, as people say it ("Plant North 2"); its identifier is derived from it unless --id
        #[arg(long)]
        site: String,
        /// The identifier in keys, certificates and at the hub (letters, digits, '.', '_', '-'; default: derived)
        #[arg(long)]
        id: Option<String>,
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
        /// Print the result as JSON (for scripts)
        #[arg(long)]
        json: bool,
        /// Only assets of this zone
        #[arg(long)]
        zone: Option<String>,
    },
    /// Try a template (a standard as a TOML file) on this site's records: every rule for every asset in scope
    /// it applies to; exit 1 when anything is non-compliant. Reads only
    Compliance {
        /// One assigned template (its id), or a template file to try out (docs/templates.md) [default: every
        /// template active here]
        #[arg(long, value_name = "ID|FILE")]
        template: Option<PathBuf>,
        /// A parameter's value for this site (repeatable)
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// Only this asset
        #[arg(long)]
        asset: Option<String>,
        /// Per template, the counts and the failing (asset, rule) pairs (what the hub is sent), not every
        /// result
        #[arg(long)]
        summary: bool,
        /// Print the result as JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Templates the hub assigned to this site: their state here and latest results
    #[command(subcommand)]
    Template(TemplateCmd),
    /// Waivers: time-limited exceptions to a template's rule for one asset, approved by another person
    #[command(subcommand)]
    Waiver(WaiverCmd),
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
        /// The older file
        old: PathBuf,
        /// The newer file
        new: PathBuf,
        /// Show the raw line diff (secrets still masked) as well
        #[arg(long)]
        raw: bool,
        /// Print the result as JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// People who may act at this site, and their roles
    #[command(subcommand)]
    User(UserCmd),
    /// API tokens for scripts
    #[command(subcommand)]
    Token(TokenCmd),
    /// Run as the plant's service: the web workspace and JSON API (and continuous sync when enrolled)
    Serve {
        /// Address to listen on for the web UI and the API [default: from the config file, else 127.0.0.1:8443]
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// TOML configuration file [default: /etc/datum/edge.toml when it exists]
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// The auditor's evidence pack (IEC 62443, keyed by requirement) for a period; or `report verify DIR`
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Report {
        #[command(subcommand)]
        check: Option<ReportCmd>,
        #[command(flatten)]
        period: Period,
        /// The directory to write (must not exist yet); `-`: the pack as a ZIP on standard output
        #[arg(long, value_name = "DIR", required = true)]
        out: Option<PathBuf>,
        /// Also write the pack as DIR.zip (one folder inside)
        #[arg(long)]
        zip: bool,
    },
    /// Write one verifiable archive of the whole site
    Dump {
        /// File to write (`-` for standard output)
        #[arg(long)]
        out: PathBuf,
        /// Print the result as JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Enroll this site with a hub (once): the node key is made here and never leaves this machine
    Enroll {
        #[command(flatten)]
        invitation: Invitation,
        /// This node's name (default: the site name and 4 random hex digits)
        #[arg(long)]
        node: Option<String>,
        /// auto (QUIC, then TLS over TCP), quic or tcp
        #[arg(long, value_enum, default_value_t = Transport::Auto)]
        transport: Transport,
    },
    /// Sync with the hub: one pass with --once (exit 0 in sync, 1 hub unreachable), else keep syncing
    Sync {
        /// One pass, then exit
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
        /// Print the result as JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Rebuild a site whose disk died from the hub's copy, as a new node, into a new data directory (--data)
    #[command(name = "restore-from-hub")]
    RestoreFromHub {
        #[command(flatten)]
        invitation: Invitation,
        /// This new node's name (default: the site name and 4 random hex digits)
        #[arg(long)]
        node: Option<String>,
        /// The site meant to be restored; the hub refuses a token of another site
        #[arg(long)]
        site: Option<String>,
        /// auto (QUIC, then TLS over TCP), quic or tcp
        #[arg(long, value_enum, default_value_t = Transport::Auto)]
        transport: Transport,
        /// Print the result as JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Rebuild a site from a dump into a new data directory (given with --data)
    #[command(name = "restore-dump")]
    RestoreDump {
        /// The dump file (from `datum-edge dump`)
        file: PathBuf,
        /// Print the result as JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
}

/// How to reach the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// QUIC first, TLS over TCP if QUIC does not answer
    Auto,
    /// QUIC only (UDP)
    Quic,
    /// TLS over TCP only
    Tcp,
}

impl From<Transport> for datum_host::net::transport::Mode {
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
    /// Asset kind: plc, dcs, scada, hmi, switch, router, firewall, rtu, historian, engineering-workstation, server, other
    #[arg(long)]
    pub kind: Option<String>,
    /// Manufacturer
    #[arg(long)]
    pub vendor: Option<String>,
    /// Model or part number
    #[arg(long)]
    pub model: Option<String>,
    /// Serial number
    #[arg(long)]
    pub serial: Option<String>,
    /// Firmware or software version
    #[arg(long)]
    pub firmware: Option<String>,
    /// Where it stands (building, hall, cabinet)
    #[arg(long)]
    pub location: Option<String>,
    /// IEC 62443 security zone
    #[arg(long)]
    pub zone: Option<String>,
    /// IPv4 or IPv6 address
    #[arg(long)]
    pub ip: Option<String>,
    /// low, medium, high or critical
    #[arg(long)]
    pub criticality: Option<String>,
    /// Who is responsible for it
    #[arg(long)]
    pub owner: Option<String>,
    /// In scope of IEC 62443 configuration management (the default for new assets)
    #[arg(long, conflicts_with = "out_of_scope")]
    pub in_scope: bool,
    /// Not in scope of IEC 62443 configuration management
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
        /// The asset's name (unique in the site)
        name: String,
        #[command(flatten)]
        fields: AssetFieldArgs,
    },
    /// Change fields of an asset (an empty value clears a field)
    Edit {
        /// The asset to change
        name: String,
        #[command(flatten)]
        fields: AssetFieldArgs,
    },
    /// Retire an asset (it stays in the history; it leaves reports)
    Retire {
        /// The asset to retire
        name: String,
        /// Why (recorded in the audit trail)
        #[arg(long)]
        reason: String,
    },
    /// Show one asset
    Show {
        /// The asset to show
        name: String,
        /// Print the result as JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// List assets (active ones unless --all)
    List {
        /// Only assets of this zone
        #[arg(long)]
        zone: Option<String>,
        /// Only assets of this kind
        #[arg(long)]
        kind: Option<String>,
        /// Include retired assets
        #[arg(long)]
        all: bool,
        /// Print the result as JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Import assets from CSV (all or nothing)
    Import {
        /// CSV file (UTF-8, UTF-16 or Windows-1252; `,` or `;`)
        file: PathBuf,
        /// Print the result as JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Export the inventory as CSV on standard output
    Export {
        /// Write CSV (the only export format)
        #[arg(long, required = true)]
        csv: bool,
        /// Include retired assets
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Store a configuration file as a version of an asset's slot
    Capture {
        /// The asset the file belongs to
        asset: String,
        /// The exported configuration file
        file: PathBuf,
        /// The configuration slot (default: the asset's only slot, or its kind's default)
        #[arg(long)]
        slot: Option<String>,
        /// A note recorded with the version
        #[arg(long)]
        note: Option<String>,
        /// The change request this capture implements
        #[arg(long)]
        change: Option<String>,
        /// Print the result as JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Versions of an asset
    Log {
        /// The asset
        asset: String,
        /// The configuration slot (default: the asset's only slot, or its kind's default)
        #[arg(long)]
        slot: Option<String>,
        /// Print the result as JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Show one version (default: the latest)
    Show {
        #[command(flatten)]
        of: VersionOf,
        /// Print the result as JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Write a stored version's exact bytes to a file
    Export {
        #[command(flatten)]
        of: ExactVersion,
        /// File to write (`-` for standard output)
        #[arg(long)]
        out: PathBuf,
    },
    /// What changed between two versions (default: baseline vs latest), by location, noise ignored
    Diff {
        /// The asset
        asset: String,
        /// Older version (default: the approved baseline)
        from: Option<String>,
        /// Newer version (default: the latest)
        to: Option<String>,
        /// The configuration slot (default: the asset's only slot, or its kind's default)
        #[arg(long)]
        slot: Option<String>,
        /// Show the raw line diff (secrets still masked) instead of the normalised one
        #[arg(long)]
        raw: bool,
        /// Print the result as JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum BaselineCmd {
    /// Approve a version as the baseline of its slot (default: the latest)
    Approve {
        #[command(flatten)]
        of: VersionOf,
        /// Why (recorded in the audit trail)
        #[arg(long)]
        reason: String,
    },
    /// The baseline of each slot of an asset and whether the latest version matches it
    Show {
        /// The asset
        asset: String,
        /// Print the result as JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ChangeCmd {
    /// Open a change request (draft)
    New {
        /// Short title of the change
        #[arg(long)]
        title: String,
        /// Why (recorded in the audit trail)
        #[arg(long)]
        reason: String,
        /// An asset the change concerns; repeat for several
        #[arg(long = "asset", required = true)]
        assets: Vec<String>,
        /// low, medium or high (high needs two approvers)
        #[arg(long)]
        risk: String,
        /// What the change affects
        #[arg(long)]
        impact: String,
        /// How to undo it
        #[arg(long)]
        rollback: String,
        /// How the change will be verified
        #[arg(long)]
        test_plan: Option<String>,
        /// FROM..TO, RFC 3339 or YYYY-MM-DD[THH:MM]
        #[arg(long)]
        window: Option<String>,
        /// Done first, approved afterwards (within 72 hours)
        #[arg(long)]
        emergency: bool,
        /// Print the result as JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Submit a draft for approval
    Submit {
        /// The change request id (CR-0001)
        id: String,
    },
    /// Approve a submitted change (never your own; high risk needs two approvers)
    Approve(Approve),
    /// Reject a submitted change (with a reason)
    Reject(WithReason),
    /// Mark an approved change as implemented
    Implement {
        /// The change request id (CR-0001)
        id: String,
        /// A note recorded with the step
        #[arg(long)]
        note: Option<String>,
        /// Confirm every item of the change's checklist (from the site's change-request templates) done
        #[arg(long)]
        checklist_done: bool,
    },
    /// Verify an implemented change: its captures become the baselines
    Verify {
        /// The change request id (CR-0001)
        id: String,
    },
    /// Close a verified change
    Close {
        /// The change request id (CR-0001)
        id: String,
    },
    /// Cancel a change that is not implemented yet
    Cancel {
        /// The change request id (CR-0001)
        id: String,
        /// Why it is cancelled
        #[arg(long)]
        reason: String,
    },
    /// New content for a change not yet implemented (only what is given changes): every approval given so far
    /// is withdrawn, a central approval becomes stale, and the change is submitted again
    Amend {
        /// The change request id (CR-0001)
        id: String,
        /// Short title of the change
        #[arg(long)]
        title: Option<String>,
        /// Why (recorded in the audit trail)
        #[arg(long)]
        reason: Option<String>,
        /// An asset the change concerns; repeat for several (replaces the list)
        #[arg(long = "asset")]
        assets: Vec<String>,
        /// low, medium or high
        #[arg(long)]
        risk: Option<String>,
        /// What the change affects
        #[arg(long)]
        impact: Option<String>,
        /// How to undo it
        #[arg(long)]
        rollback: Option<String>,
        /// How the change will be verified
        #[arg(long)]
        test_plan: Option<String>,
        /// FROM..TO, RFC 3339 or YYYY-MM-DD[THH:MM]
        #[arg(long)]
        window: Option<String>,
    },
    /// Show one change request with its history
    Show {
        /// The change request id (CR-0001)
        id: String,
        /// Print the result as JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// List change requests
    List {
        /// Only changes in this state (draft, submitted, approved, rejected, implemented, verified, closed, cancelled)
        #[arg(long)]
        state: Option<String>,
        /// Print the result as JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RestoreTestCmd {
    /// Record a restore test of a stored version
    Record {
        #[command(flatten)]
        of: ExactVersion,
        /// pass or fail
        #[arg(long)]
        result: String,
        /// How the restore was tested
        #[arg(long)]
        method: String,
        /// A file kept as evidence of the test (photo, log, checksum list)
        #[arg(long)]
        evidence: Option<PathBuf>,
        /// Notes recorded with it
        #[arg(long)]
        notes: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum BackupCmd {
    /// Age of the last backup and last passing restore test per asset; exit 1 when any is overdue
    Status(Json),
    /// Re-hash every stored blob; exit 1 on damage
    Verify(Json),
}

#[derive(Debug, Subcommand)]
pub enum ReviewCmd {
    /// Assets whose periodic review is due or overdue; exit 1 when any is overdue
    Due(Json),
    /// Record a review of one asset or a whole zone
    Record {
        /// The asset reviewed (or --zone)
        #[arg(required_unless_present = "zone", conflicts_with = "zone")]
        asset: Option<String>,
        /// Review every active asset of this zone
        #[arg(long)]
        zone: Option<String>,
        /// ok or findings
        #[arg(long)]
        outcome: String,
        /// Notes recorded with it
        #[arg(long)]
        notes: String,
        /// An answer to a template's manual checklist item, for every asset reviewed (repeatable):
        /// TEMPLATE/RULE=yes|no|n/a, or RULE=… when one active template has that rule
        #[arg(long = "answer", value_name = "TEMPLATE/RULE=ANSWER")]
        answers: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Add a person (the first one must hold site-admin)
    Add {
        /// The account name (how the person signs in; separation of duties compares it)
        name: String,
        /// Roles, comma-separated: viewer, engineer, approver, auditor, site-admin
        #[arg(long, value_name = "ROLE[,ROLE]")]
        role: String,
        /// The name shown in pages and reports
        #[arg(long, value_name = "TEXT")]
        display: Option<String>,
        /// The operating-system login that acts as this person on this machine's command line
        #[arg(long, value_name = "LOGIN")]
        os_user: Option<String>,
        /// Read the initial password from standard input (one line)
        #[arg(long)]
        password_stdin: bool,
    },
    /// Everyone, with roles and second-factor state
    List(Json),
    /// One person's account
    Show(ShowAccount),
    /// Disable an account (its sessions and tokens stop working at once)
    Disable(Account),
    /// Enable a disabled account
    Enable(Account),
    /// Replace an account's roles
    Roles {
        /// The account name
        name: String,
        /// Roles, comma-separated
        #[arg(long, value_name = "ROLE[,ROLE]")]
        role: String,
    },
    /// Set an account's password (read from standard input; ends its sessions)
    Passwd(NewPassword),
    /// Second factor
    #[command(subcommand)]
    Mfa(MfaCmd),
}

#[derive(Debug, Subcommand)]
pub enum MfaCmd {
    /// Remove an account's TOTP and recovery codes; it sets up a new one at its next sign-in
    Reset(Account),
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Make an API token acting as a user (shown once; stored hashed)
    Create(NewToken),
    /// Tokens (never their secrets)
    List {
        /// Only this user's
        #[arg(long)]
        user: Option<String>,
        /// Print the result as JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id
    Revoke(TokenId),
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Who did what, when and why (filter by time or asset)
    Log {
        /// RFC 3339 time or YYYY-MM-DD
        #[arg(long)]
        since: Option<String>,
        /// Only entries concerning this asset
        #[arg(long)]
        asset: Option<String>,
        /// Print the result as JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Prove the history is intact; exit 1 naming anything wrong
    Verify(Json),
}

/// A hub address must name its port (`hub.example:7800`, `[2001:db8::1]:7800`): without one, the failure
/// would only show up as "unreachable" after a network time-out.
fn hub_address(value: &str) -> Result<String, String> {
    let (host, port) = value
        .rsplit_once(':')
        .ok_or_else(|| format!("{value:?} has no port; give HOST:PORT, e.g. hub.example:7800"))?;
    let host_ok = !host.is_empty() && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']')));
    if !host_ok {
        return Err(format!("{value:?} is not HOST:PORT (an IPv6 address goes in brackets: [2001:db8::1]:7800)"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(value.to_string()),
        _ => Err(format!("{value:?}: the port {port:?} is not a number from 1 to 65535")),
    }
}

#[derive(Subcommand, Debug)]
pub enum TemplateCmd {
    /// Every template assigned to this site: version, state (assigned, active, rejected, unassigned), latest
    /// result (exit 1 when one was refused)
    List(Json),
    /// One assigned template: its signature, parameters, rules, state and failing rules
    Show {
        /// The template's id
        id: String,
        /// Print the result as JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Let the version the hub assigned run here, for a template that asks for local acceptance (a site
    /// approver; the acceptance holds for exactly the text checked)
    Accept {
        /// The template's id
        id: String,
        /// Why, or what was checked before accepting
        #[arg(long)]
        comment: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum WaiverCmd {
    /// Ask for a time-limited exception to one rule of an active template for one asset; another person
    /// approves it
    Request {
        /// The template's id
        #[arg(long)]
        template: String,
        /// The rule's id
        #[arg(long)]
        rule: String,
        /// The asset excused
        #[arg(long)]
        asset: String,
        /// Why the rule cannot be met now, and what makes up for it
        #[arg(long)]
        reason: String,
        /// When it ends (YYYY-MM-DD means 00:00 UTC that day, or RFC 3339); at most 366 days ahead
        #[arg(long)]
        expires: String,
        /// Print the result as JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
    /// Approve a waiver someone else requested (a site approver)
    Approve(Approve),
    /// Reject a waiver someone else requested (a site approver)
    Reject(WithReason),
    /// End an approved waiver before it expires (a site approver)
    Revoke(WithReason),
    /// Every waiver with its status now: requested, active, expired, rejected, revoked
    List(Json),
}

/// A decision for a change request or a waiver, by someone other than who asked for it.
#[derive(Debug, Args)]
pub struct Approve {
    /// The change request's or waiver's id (CR-0001, W-0001)
    pub id: String,
    /// A comment recorded with the approval
    #[arg(long)]
    pub comment: Option<String>,
}

/// Rejecting a change request or a waiver, or revoking a waiver, always with a reason.
#[derive(Debug, Args)]
pub struct WithReason {
    /// The change request's or waiver's id (CR-0001, W-0001)
    pub id: String,
    /// Why
    #[arg(long)]
    pub reason: String,
}

/// How a node reaches a hub it does not know yet: its address, a one-time token of the site, and the
/// fingerprint that pins the hub (`enroll`, `restore-from-hub`).
#[derive(Debug, Args)]
pub struct Invitation {
    /// The hub's address, HOST:PORT
    #[arg(long, value_parser = hub_address)]
    pub hub: String,
    /// The one-time token from `datum-hub site add` or `datum-hub site token SITE`
    #[arg(long)]
    pub token: String,
    /// The hub fingerprint printed with the token (pins the hub)
    #[arg(long)]
    pub fingerprint: String,
}

/// One stored version of an asset's configuration slot.
#[derive(Debug, Args)]
pub struct VersionOf {
    /// The asset
    pub asset: String,
    /// The configuration slot (default: the asset's only slot, or its kind's default)
    #[arg(long)]
    pub slot: Option<String>,
    /// Version number (3 or v3; default: the latest)
    #[arg(long)]
    pub version: Option<String>,
}

/// One stored version of an asset's configuration slot, named exactly.
#[derive(Debug, Args)]
pub struct ExactVersion {
    /// The asset
    pub asset: String,
    /// The configuration slot (default: the asset's only slot, or its kind's default)
    #[arg(long)]
    pub slot: Option<String>,
    /// Version number (3 or v3)
    #[arg(long)]
    pub version: String,
}
