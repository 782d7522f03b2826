//! `user …`, `token …`, and who is acting: the authenticated person behind every command once a site has users.
//!
//! A site without users works as it always did: the typed name (`--actor`, `DATUM_ACTOR`, the OS user) is
//! recorded, and every entry is marked unauthenticated. Once the first user exists (it must hold site-admin), a
//! command acts as the person its operating-system account is mapped to (`--os-user`, read from the kernel's
//! uid, never from the environment) or as an API token's user (`DATUM_TOKEN`); `--actor` is refused for writes.

use anyhow::Result;
use chrono::{DateTime, Utc};
use datum_host::auth::AuthStore;
use datum_host::cli::{Account, Json, NewPassword, NewToken, ShowAccount, TokenId};
use datum_host::exit::{user, Outcome};
use datum_shared::identity::{authorize, Action, AuthMethod, Role, User};
use serde::Serialize;

use super::Context;
use crate::cli::{Command, MfaCmd, TokenCmd, UserCmd};
use crate::output::{print_json, print_json_or, print_list};
use crate::site::{Site, Write};

/// Everyone with an account at the site (from the projection), by name.
pub async fn users(site: &Site) -> Result<Vec<User>> {
    site.list::<User>(User::COLLECTION).await
}

/// The person a command acts as, once a site has users.
#[derive(Debug, Clone)]
pub struct Acting {
    pub user: User,
    pub auth: AuthMethod,
}

/// Finds who is acting and checks they may run `command`; sets the site's actor and authentication method
/// for the audit entries the command writes. `None` in a site without users.
pub async fn authenticate(site: &mut Site, ctx: &Context, command: &Command, writes: bool) -> Result<Option<Acting>> {
    let all = users(site).await?;
    if all.is_empty() {
        if matches!(command, Command::Token(_)) {
            return Err(user("this site has no users yet: add the first (a site-admin) with `datum-edge user add`"));
        }
        return Ok(None);
    }
    let acting = if let Some(token) = &ctx.token {
        let store = AuthStore::open(&site.dir).await?;
        let name = store.token_user(token, site.now).await?;
        store.close().await;
        let name =
            name.ok_or_else(|| user("DATUM_TOKEN is not a valid token of this site (unknown, revoked or expired)"))?;
        let found = all.iter().find(|u| u.name == name).cloned();
        let found = found.ok_or_else(|| user(format!("the token's user {name} no longer exists")))?;
        Acting { user: found, auth: AuthMethod::Token }
    } else {
        if ctx.typed_actor && writes {
            return Err(user(
                "this site has users: --actor and DATUM_ACTOR are refused for writes; a command acts as the person \
                 its OS account is mapped to (`datum-edge user add NAME --os-user LOGIN`) or as DATUM_TOKEN's user",
            ));
        }
        let login = ctx.os_login.as_deref().ok_or_else(|| user("cannot tell this process's OS account"))?;
        let found = all.iter().find(|u| u.os_user.as_deref() == Some(login)).cloned().ok_or_else(|| {
            user(format!(
                "this site has users, and the OS account {login} is not mapped to one: a site-admin maps it with \
                 `datum-edge user add NAME --os-user {login}`, or use an API token (DATUM_TOKEN)"
            ))
        })?;
        Acting { user: found, auth: AuthMethod::OsAccount }
    };
    if let Some(action) = action_of(command) {
        authorize(&acting.user, action).map_err(|r| user(r.to_string()))?;
        if acting.auth == AuthMethod::Token && action.asks_mfa_again() {
            return Err(user(format!(
                "an API token may not {}: that needs the person, with their second factor",
                action.describe()
            )));
        }
    } else if acting.user.disabled {
        return Err(user(format!("the account {} is disabled", acting.user.name)));
    }
    site.actor = acting.user.name.clone();
    site.auth = Some(acting.auth);
    Ok(Some(acting))
}

/// What a command does, for authorization; `None` where the command checks for itself (`user`, `token`) or is
/// the machine's own work (`sync`).
pub fn action_of(command: &Command) -> Option<Action> {
    use crate::cli::{AssetCmd, BaselineCmd, ChangeCmd, ConfigCmd, ReviewCmd};
    Some(match command {
        Command::Asset(AssetCmd::Show { .. } | AssetCmd::List { .. } | AssetCmd::Export { .. }) => Action::Read,
        Command::Asset(_) => Action::EditInventory,
        Command::Config(ConfigCmd::Capture { .. }) => Action::EditInventory,
        Command::Config(_) => Action::Read,
        Command::Baseline(BaselineCmd::Approve { .. }) => Action::ApproveBaseline,
        Command::Baseline(_) => Action::Read,
        Command::Change(ChangeCmd::Approve { .. } | ChangeCmd::Reject { .. }) => Action::DecideChange,
        Command::Change(ChangeCmd::Show { .. } | ChangeCmd::List { .. }) => Action::Read,
        Command::Change(_) => Action::WorkOnChange,
        Command::RestoreTest(_) => Action::RecordRestoreTest,
        Command::Review(ReviewCmd::Record { .. }) => Action::RecordReview,
        Command::Template(crate::cli::TemplateCmd::Accept { .. }) => Action::ApproveBaseline,
        Command::Waiver(crate::cli::WaiverCmd::Request { .. }) => Action::WorkOnChange,
        Command::Waiver(crate::cli::WaiverCmd::List { .. }) => Action::Read,
        Command::Waiver(_) => Action::ApproveBaseline,
        Command::Review(_)
        | Command::Backup(_)
        | Command::Audit(_)
        | Command::Drift { .. }
        | Command::Compliance { .. }
        | Command::Template(_) => Action::Read,
        Command::Dump { .. } | Command::Report { .. } => Action::ExportEvidence,
        Command::Enroll { .. } => Action::ManageSite,
        Command::Serve { .. } => Action::ManageSite,
        Command::User(_) | Command::Token(_) | Command::Sync { .. } => return None,
        Command::Init { .. } | Command::Diff { .. } | Command::RestoreDump { .. } | Command::RestoreFromHub { .. } => {
            return None
        }
    })
}

fn require_admin(acting: &Option<Acting>) -> Result<()> {
    match acting {
        Some(a) => authorize(&a.user, Action::ManageUsers).map_err(|r| user(r.to_string())),
        None => Ok(()),
    }
}

fn find<'a>(all: &'a [User], name: &str) -> Result<&'a User> {
    all.iter().find(|u| u.name == name).ok_or_else(|| user(format!("no user {name} (see `datum-edge user list`)")))
}

fn account_name(raw: &str) -> Result<String> {
    datum_shared::person::normalize_name(raw).map_err(user)
}

/// Whether removing `name`'s admin powers would leave the site with no enabled site-admin.
fn last_admin(all: &[User], name: &str) -> bool {
    !all.iter().any(|u| u.name != name && !u.disabled && u.has(Role::SiteAdmin))
}

async fn put_user(site: &mut Site, op: &str, record: &User, summary: String) -> Result<()> {
    let mut w = Write::new(op, record.name.clone(), None);
    w.put(&site.doc_id("site"), User::COLLECTION, &record.name, record)?;
    site.apply(w, summary).await?;
    Ok(())
}

#[derive(Serialize)]
struct UserView<'a> {
    #[serde(flatten)]
    user: &'a User,
    has_password: bool,
    has_totp: bool,
    mfa_required: bool,
}

pub async fn run_user(site: &mut Site, acting: Option<Acting>, cmd: UserCmd) -> Result<Outcome> {
    let all = users(site).await?;
    match cmd {
        UserCmd::Add { name, role, display, os_user, password_stdin } => {
            require_admin(&acting)?;
            let password = if password_stdin { Some(datum_host::auth::read_password_line()?) } else { None };
            let record =
                add_user(site, &all, NewUser { name, role, display, os_user, password: password.clone() }).await?;
            let name = &record.name;
            println!(
                "added user {name} ({}){}",
                record.roles_text(),
                if password.is_some() {
                    ""
                } else {
                    "; set a password with `datum-edge user passwd NAME --password-stdin`"
                }
            );
            if record.needs_mfa() {
                println!("{name} must set up a second factor (TOTP) at the first sign-in");
            }
            Ok(Outcome::Clean)
        }
        UserCmd::List(Json { json }) => {
            let store = AuthStore::open(&site.dir).await?;
            let mut views = Vec::new();
            for u in &all {
                views.push(UserView {
                    user: u,
                    has_password: store.has_password(&u.name).await?,
                    has_totp: store.has_totp(&u.name).await?,
                    mfa_required: u.needs_mfa(),
                });
            }
            store.close().await;
            let header = ["NAME", "ROLES", "OS USER", "STATE", "PASSWORD", "2ND FACTOR"];
            print_list(&views, json, &header, |v| {
                vec![
                    v.user.name.clone(),
                    v.user.roles_text(),
                    v.user.os_user.clone().unwrap_or_else(|| "-".into()),
                    if v.user.disabled { "disabled".into() } else { "enabled".into() },
                    if v.has_password { "yes".into() } else { "no".into() },
                    match (v.mfa_required, v.has_totp) {
                        (_, true) => "totp".into(),
                        (true, false) => "REQUIRED, not set up".into(),
                        (false, false) => "-".into(),
                    },
                ]
            })?;
            Ok(Outcome::Clean)
        }
        UserCmd::Show(ShowAccount { name, json }) => {
            let found = find(&all, &account_name(&name)?)?;
            let store = AuthStore::open(&site.dir).await?;
            let view = UserView {
                user: found,
                has_password: store.has_password(&found.name).await?,
                has_totp: store.has_totp(&found.name).await?,
                mfa_required: found.needs_mfa(),
            };
            store.close().await;
            if json {
                print_json(&view)?;
            } else {
                println!("name         {}", found.name);
                if let Some(d) = &found.display {
                    println!("display      {d}");
                }
                println!("roles        {}", found.roles_text());
                println!("os user      {}", found.os_user.as_deref().unwrap_or("-"));
                println!("state        {}", if found.disabled { "disabled" } else { "enabled" });
                println!("password     {}", if view.has_password { "set" } else { "not set" });
                println!(
                    "2nd factor   {}",
                    if view.has_totp {
                        "totp"
                    } else if view.mfa_required {
                        "required, not set up"
                    } else {
                        "-"
                    }
                );
                println!("created      {} by {}", found.created_at.to_rfc3339(), found.created_by);
            }
            Ok(Outcome::Clean)
        }
        UserCmd::Disable(Account { name }) | UserCmd::Enable(Account { name }) if acting.is_none() => {
            Err(user(format!("no user {name} (this site has no users yet)")))
        }
        UserCmd::Disable(Account { name }) => {
            require_admin(&acting)?;
            if set_disabled(site, &all, &name, true).await? {
                println!("disabled {name} (sessions ended; tokens refused while disabled)");
            } else {
                println!("{name} is already disabled");
            }
            Ok(Outcome::Clean)
        }
        UserCmd::Enable(Account { name }) => {
            require_admin(&acting)?;
            if set_disabled(site, &all, &name, false).await? {
                println!("enabled {name}");
            } else {
                println!("{name} is already enabled");
            }
            Ok(Outcome::Clean)
        }
        UserCmd::Roles { name, role } => {
            require_admin(&acting)?;
            let record = set_roles(site, &all, &name, &role).await?;
            println!("{}: roles are now {}", record.name, record.roles_text());
            Ok(Outcome::Clean)
        }
        UserCmd::Passwd(NewPassword { name, password_stdin }) => {
            require_admin(&acting)?;
            find(&all, &account_name(&name)?)?;
            if !password_stdin {
                return Err(user("give the password on standard input with --password-stdin (never as an argument)"));
            }
            let password = datum_host::auth::read_password_line()?;
            set_password(site, &all, &name, &password).await?;
            println!("password of {name} set; its sessions were ended");
            Ok(Outcome::Clean)
        }
        UserCmd::Mfa(MfaCmd::Reset(Account { name })) => {
            require_admin(&acting)?;
            reset_mfa(site, &all, &name).await?;
            println!("second factor of {name} removed; it sets up a new one at the next sign-in");
            Ok(Outcome::Clean)
        }
    }
}

/// A new account as given by a site-admin (or, for the first one, by the site's operator).
pub struct NewUser {
    pub name: String,
    pub role: String,
    pub display: Option<String>,
    pub os_user: Option<String>,
    pub password: Option<String>,
}

/// Adds an account: checks, stores the password first (an account that exists always has the password it was
/// given), then the record.
pub async fn add_user(site: &mut Site, all: &[User], spec: NewUser) -> Result<User> {
    let NewUser { name, role, display, os_user, password } = spec;
    let name = account_name(&name)?;
    let roles = Role::parse_list(&role, &Role::EDGE).map_err(user)?;
    if all.is_empty() && !roles.contains(&Role::SiteAdmin) {
        return Err(user(
            "the first user must hold site-admin (--role site-admin[,...]): once a site has users, only a \
             site-admin can add more",
        ));
    }
    if all.iter().any(|u| u.name == name) {
        return Err(user(format!("user {name} already exists (see `datum-edge user show {name}`)")));
    }
    let display = super::text_arg("display", display, 128)?;
    let os_user = os_user.filter(|l| !l.trim().is_empty());
    if let Some(login) = &os_user {
        check_login(login)?;
        if let Some(other) = all.iter().find(|u| u.os_user.as_deref() == Some(login.as_str())) {
            return Err(user(format!("the OS account {login} is already mapped to {}", other.name)));
        }
    }
    if let Some(p) = &password {
        datum_host::auth::check_new_password(p).map_err(|e| user(e.to_string()))?;
    }
    let record = User {
        name: name.clone(),
        display,
        roles,
        os_user,
        disabled: false,
        created_at: site.now,
        created_by: site.actor.clone(),
        sites: None,
    };
    if let Some(p) = &password {
        let store = AuthStore::open(&site.dir).await?;
        let stored = store.set_password(&name, p, site.now).await;
        store.close().await;
        stored?;
    }
    put_user(site, "user.add", &record, format!("user {name} added as {}", record.roles_text())).await?;
    Ok(record)
}

/// Disables or enables an account; disabling ends its sessions (its tokens are refused while disabled).
/// Returns false when it already was so.
pub async fn set_disabled(site: &mut Site, all: &[User], name: &str, disabled: bool) -> Result<bool> {
    let mut record = find(all, &account_name(name)?)?.clone();
    if disabled && record.has(Role::SiteAdmin) && last_admin(all, &record.name) {
        return Err(user(format!("{} is the last enabled site-admin; enable or add another first", record.name)));
    }
    if record.disabled == disabled {
        return Ok(false);
    }
    record.disabled = disabled;
    if disabled {
        let store = AuthStore::open(&site.dir).await?;
        let ended = store.end_sessions_of(&record.name).await;
        store.close().await;
        ended?;
    }
    let (op, what) = if disabled { ("user.disable", "disabled") } else { ("user.enable", "enabled") };
    put_user(site, op, &record, format!("user {} {what}", record.name)).await?;
    Ok(true)
}

/// Replaces an account's roles (never leaving the site without an enabled site-admin).
pub async fn set_roles(site: &mut Site, all: &[User], name: &str, role: &str) -> Result<User> {
    let mut record = find(all, &account_name(name)?)?.clone();
    let roles = Role::parse_list(role, &Role::EDGE).map_err(user)?;
    if record.has(Role::SiteAdmin) && !roles.contains(&Role::SiteAdmin) && last_admin(all, &record.name) {
        return Err(user(format!(
            "{} is the last enabled site-admin; keep site-admin or add another first",
            record.name
        )));
    }
    let before = record.roles_text();
    record.roles = roles;
    put_user(site, "user.roles", &record, format!("{}: roles {before} -> {}", record.name, record.roles_text()))
        .await?;
    Ok(record)
}

/// Sets an account's password (ends its sessions), audited.
pub async fn set_password(site: &mut Site, all: &[User], name: &str, password: &str) -> Result<()> {
    let record = find(all, &account_name(name)?)?.clone();
    let store = AuthStore::open(&site.dir).await?;
    let stored = store.set_password(&record.name, password, site.now).await;
    store.close().await;
    stored.map_err(|e| user(e.to_string()))?;
    audit_only(site, "user.passwd", &record.name, format!("password of {} set; sessions ended", record.name)).await
}

/// Removes an account's second factor and recovery codes (ends its sessions), audited.
pub async fn reset_mfa(site: &mut Site, all: &[User], name: &str) -> Result<()> {
    let record = find(all, &account_name(name)?)?.clone();
    let store = AuthStore::open(&site.dir).await?;
    let reset = store.reset_mfa(&record.name).await;
    store.close().await;
    reset?;
    audit_only(site, "user.mfa-reset", &record.name, format!("second factor of {} removed", record.name)).await
}

/// An OS login as `useradd` accepts it.
fn check_login(login: &str) -> Result<()> {
    let ok = !login.is_empty()
        && login.len() <= 32
        && login.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && !login.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(user(format!("{login:?} is not an OS login (letters, digits, '_', '-', '.'; at most 32)")))
    }
}

/// Records an operation on secrets (which live outside the documents) in the audit trail: a counter record in
/// the site document changes, so the entry is chained and signed like every other.
pub async fn audit_only(site: &mut Site, op: &str, subject: &str, summary: String) -> Result<()> {
    #[derive(Serialize)]
    struct CredentialEvent<'a> {
        op: &'a str,
        user: &'a str,
        at: DateTime<Utc>,
        by: &'a str,
    }
    let mut w = Write::new(op, subject.to_string(), None);
    let event = CredentialEvent { op, user: subject, at: site.now, by: &site.actor };
    w.put(&site.doc_id("site"), "credential_events", subject, &event)?;
    site.apply(w, summary).await?;
    Ok(())
}

pub async fn run_token(site: &mut Site, acting: Option<Acting>, cmd: TokenCmd) -> Result<Outcome> {
    let Some(acting) = acting else {
        return Err(user("this site has no users yet: add the first (a site-admin) with `datum-edge user add`"));
    };
    let all = users(site).await?;
    let is_admin = authorize(&acting.user, Action::ManageUsers).is_ok();
    let store = AuthStore::open(&site.dir).await?;
    let result = async {
        match cmd {
            TokenCmd::Create(NewToken { user: name, expires, json }) => {
                let target = find(&all, &account_name(&name)?)?.clone();
                if target.name != acting.user.name && !is_admin {
                    return Err(user(format!("{} may only make tokens for themself", acting.user.name)));
                }
                if target.disabled {
                    return Err(user(format!("the account {} is disabled", target.name)));
                }
                let expires_at = datum_host::auth::parse_lifetime(&expires, site.now)?;
                let token = store.create_token(&target.name, &acting.user.name, site.now, expires_at).await?;
                audit_only(site, "token.create", &target.name, format!("token {} made for {}", token.id, target.name))
                    .await?;
                token.announce(&target.name, expires_at, json, "DATUM_TOKEN or `Authorization: Bearer`")?;
                Ok(Outcome::Clean)
            }
            TokenCmd::List { user: name, json } => {
                let filter = match name {
                    Some(n) => Some(account_name(&n)?),
                    None if is_admin => None,
                    None => Some(acting.user.name.clone()),
                };
                if filter.as_deref() != Some(acting.user.name.as_str()) && !is_admin {
                    return Err(user(format!("{} may only list their own tokens", acting.user.name)));
                }
                let tokens = store.tokens(filter.as_deref()).await?;
                print_json_or(&tokens, json, |t| datum_host::auth::tokens_table(t))?;
                Ok(Outcome::Clean)
            }
            TokenCmd::Revoke(TokenId { id }) => {
                let tokens = store.tokens(None).await?;
                let t = tokens.iter().find(|t| t.id == id).ok_or_else(|| user(format!("no token {id}")))?;
                if t.user != acting.user.name && !is_admin {
                    return Err(user(format!("{} may only revoke their own tokens", acting.user.name)));
                }
                if !store.revoke_token(&id, site.now).await? {
                    println!("token {id} was already revoked");
                    return Ok(Outcome::Clean);
                }
                let owner = t.user.clone();
                audit_only(site, "token.revoke", &owner, format!("token {id} of {owner} revoked")).await?;
                println!("revoked token {id} of {owner}");
                Ok(Outcome::Clean)
            }
        }
    }
    .await;
    store.close().await;
    result
}
