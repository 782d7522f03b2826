//! Command implementations, one file per feature. Each takes the opened site and returns an `Outcome`.

mod assets;
mod audit;
pub mod changes;
mod compare;
pub mod compliance;
pub mod configs;
mod dump;
pub mod evidence;
pub mod federation;
pub mod reports;
mod restore;
pub mod templates;
pub mod users;
pub mod waivers;

use std::path::PathBuf;

use anyhow::Result;
use chrono::{DateTime, Utc};
use datum_shared::model::Asset;
use datum_shared::{AssetName, SlotName};

use crate::cli::{Command, Invitation};
use crate::site::{Access, Site};
use datum_host::exit::{user, Outcome};

pub struct Context {
    pub data: PathBuf,
    pub actor: String,
    /// The actor was typed (`--actor` or `DATUM_ACTOR`), not taken from the OS account.
    pub typed_actor: bool,
    /// The login name of this process's uid (from the account database, never from the environment).
    pub os_login: Option<String>,
    /// `DATUM_TOKEN`: act as this API token's user.
    pub token: Option<String>,
    pub now: DateTime<Utc>,
    /// `now` comes from the drill clock (`DATUM_NOW`); audit entries say so.
    pub drill: bool,
}

pub async fn run(ctx: Context, command: Command) -> Result<Outcome> {
    match command {
        Command::Init { site, id } => {
            let named = datum_shared::ids::NamedId::new("site", &site, id.as_deref()).map_err(user)?;
            let site = Site::init(&ctx.data, &named, &ctx.actor, ctx.now, ctx.drill).await?;
            let shown = match &site.info.display_name {
                Some(display) => format!("{display} (identifier {})", site.info.name),
                None => site.info.name.clone(),
            };
            println!("initialised site {shown} (id {}) in {}", site.info.site_id, ctx.data.display());
            site.close().await;
            Ok(Outcome::Clean)
        }
        Command::RestoreDump { file, json } => dump::restore(&ctx, &file, json).await,
        Command::RestoreFromHub { invitation: Invitation { hub, token, fingerprint }, node, site, transport, json } => {
            let mode = transport.into();
            let args = restore::RestoreArgs { hub, token, fingerprint, node, site, mode, json };
            restore::restore_from_hub(&ctx, args).await
        }
        Command::Diff { old, new, raw, json } => compare::run(&old, &new, raw, json),
        Command::Report { check: Some(datum_host::cli::ReportCmd::Verify { dir, json }), .. } => {
            datum_host::evidence::verify_command(&dir, json)
        }
        Command::Sync { once, transport, interval, no_gso, json } => {
            let mode = transport.into();
            federation::sync(&ctx, once, json, mode, std::time::Duration::from_secs(interval.max(1)), no_gso).await
        }
        Command::Serve { listen, config } => crate::web::serve(&ctx, listen, config).await,
        command => {
            let access = access(&command);
            let mut site = Site::open_as(&ctx.data, &ctx.actor, ctx.now, access).await?;
            site.drill = ctx.drill;
            templates::use_policy(&mut site).await;
            let outcome = match users::authenticate(
                &mut site,
                &ctx,
                &command,
                access == Access::Write && users::action_of(&command) != Some(datum_shared::identity::Action::Read),
            )
            .await
            {
                Ok(acting) => dispatch(&mut site, acting, command).await,
                Err(e) => Err(e),
            };
            site.close().await;
            outcome
        }
    }
}

async fn dispatch(site: &mut Site, acting: Option<users::Acting>, command: Command) -> Result<Outcome> {
    match command {
        Command::Enroll { invitation: Invitation { hub, token, fingerprint }, node, transport } => {
            let mode = transport.into();
            federation::enroll(site, &hub, &token, &fingerprint, node, mode).await
        }
        Command::Init { .. }
        | Command::RestoreDump { .. }
        | Command::RestoreFromHub { .. }
        | Command::Diff { .. }
        | Command::Serve { .. }
        | Command::Sync { .. } => {
            unreachable!("handled before opening a site")
        }
        Command::Asset(cmd) => {
            let writes = site.holds_lock();
            let outcome = assets::run(site, cmd).await;
            if writes && outcome.is_ok() {
                templates::refresh_after(site).await;
            }
            outcome
        }
        Command::Config(cmd) => {
            let writes = site.holds_lock();
            let outcome = configs::run(site, cmd).await;
            if writes && outcome.is_ok() {
                templates::refresh_after(site).await;
            }
            outcome
        }
        Command::Template(cmd) => templates::run(site, cmd).await,
        Command::Waiver(cmd) => waivers::run(site, cmd).await,
        Command::Baseline(cmd) => configs::run_baseline(site, cmd).await,
        Command::Drift { json, zone } => reports::drift(site, json, zone.as_deref()).await,
        Command::Compliance { template, set, asset, summary, json } => {
            let show = compliance::Show { json, summary };
            compliance::compliance(site, template.as_deref(), &set, asset.as_deref(), show).await
        }
        Command::Change(cmd) => changes::run(site, cmd).await,
        Command::RestoreTest(cmd) => reports::restore_test(site, cmd).await,
        Command::Backup(cmd) => reports::backup(site, cmd).await,
        Command::Review(cmd) => reports::review(site, cmd).await,
        Command::Audit(cmd) => audit::run(site, cmd).await,
        Command::Dump { out, json } => dump::dump(site, &out, json).await,
        Command::Report { check: Some(_), .. } => unreachable!("report verify needs no site"),
        Command::Report { check: None, period: datum_host::cli::Period { from, to }, out, zip } => {
            let out = out.ok_or_else(|| user("--out DIR is required"))?;
            evidence::report(site, from, to, &out, zip).await
        }
        Command::User(cmd) => users::run_user(site, acting, cmd).await,
        Command::Token(cmd) => users::run_token(site, acting, cmd).await,
    }
}

/// Whether a command only reads the site: those open it without the lock and never wait for a sync pass or
/// another command. `audit verify` compares the database with `identity/audit-head`, written just after each
/// commit, so it takes the lock to see the two agree; `dump` reads inside one database snapshot.
fn access(command: &Command) -> Access {
    use crate::cli::{AssetCmd, AuditCmd, BackupCmd, BaselineCmd, ChangeCmd, ConfigCmd, ReviewCmd};
    let reads = match command {
        Command::Asset(cmd) => matches!(cmd, AssetCmd::Show { .. } | AssetCmd::List { .. } | AssetCmd::Export { .. }),
        Command::Config(cmd) => matches!(
            cmd,
            ConfigCmd::Log { .. } | ConfigCmd::Show { .. } | ConfigCmd::Export { .. } | ConfigCmd::Diff { .. }
        ),
        Command::Baseline(cmd) => matches!(cmd, BaselineCmd::Show { .. }),
        Command::Change(cmd) => matches!(cmd, ChangeCmd::Show { .. } | ChangeCmd::List { .. }),
        Command::Backup(cmd) => matches!(cmd, BackupCmd::Status { .. } | BackupCmd::Verify { .. }),
        Command::Review(cmd) => matches!(cmd, ReviewCmd::Due { .. }),
        Command::Audit(cmd) => matches!(cmd, AuditCmd::Log { .. }),
        Command::User(cmd) => matches!(cmd, crate::cli::UserCmd::List(_) | crate::cli::UserCmd::Show(_)),
        Command::Template(cmd) => !matches!(cmd, crate::cli::TemplateCmd::Accept { .. }),
        Command::Waiver(cmd) => matches!(cmd, crate::cli::WaiverCmd::List { .. }),
        Command::Drift { .. } | Command::Compliance { .. } | Command::Dump { .. } => true,
        _ => false,
    };
    if reads {
        Access::Read
    } else {
        Access::Write
    }
}

/// Parses `3` or `v3`.
pub fn parse_version(value: &str) -> Result<u32> {
    let trimmed = value.trim();
    let digits = trimmed.strip_prefix(['v', 'V']).unwrap_or(trimmed);
    match digits.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(user(format!("version {value:?} is not a version number like 3 or v3"))),
    }
}

pub fn parse_asset_name(name: &str) -> Result<AssetName> {
    AssetName::new(name).map_err(|e| user(e.to_string()))
}

/// Looks an asset up by name; a clear error when it does not exist.
pub async fn find_asset(site: &Site, name: &str) -> Result<Asset> {
    let name = parse_asset_name(name)?;
    site.get::<Asset>(Asset::COLLECTION, name.as_str())
        .await?
        .ok_or_else(|| user(format!("asset {name} does not exist (see `datum-edge asset list`)")))
}

/// The slot a command means: the one named, else the asset's only slot, else its kind's default slot.
pub fn resolve_slot(asset: &Asset, slots: &[&SlotName], given: Option<&str>) -> Result<SlotName> {
    if let Some(given) = given {
        return SlotName::new(given).map_err(|e| user(e.to_string()));
    }
    match slots {
        [] => Ok(asset.kind.default_slot()),
        [only] => Ok((*only).clone()),
        many => Err(user(format!(
            "asset {} has several slots ({}); name one with --slot",
            asset.name,
            many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Optional free text from the command line, checked like every other text field.
pub fn text_arg(field: &str, value: Option<String>, max: usize) -> Result<Option<String>> {
    match value {
        None => Ok(None),
        Some(v) => {
            datum_shared::model::check_text(field, &v, max).map_err(user)?;
            Ok(Some(v))
        }
    }
}

/// Required free text: must not be blank.
pub fn required_text(field: &str, value: String, max: usize) -> Result<String> {
    datum_shared::model::check_text(field, &value, max).map_err(user)?;
    if value.trim().is_empty() {
        return Err(user(format!("{field} must not be empty")));
    }
    Ok(value)
}
