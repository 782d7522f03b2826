//! `datum-hub user …` and `token …`: the corporate team's accounts, their roles (viewer, security-officer,
//! auditor, hub-admin) and the sites each may see, and API tokens acting as them.
//!
//! The command line runs as whoever can read the hub's data directory (the hub's operator); it is recorded by
//! operating-system login in the hub's own record (`hub_events`). Passwords, TOTP secrets and token hashes are
//! kept by `datum_host::auth` in `auth.db` beside the data, as at the edge, never in the hub database.

use anyhow::Result;
use datum_host::auth::{check_new_password, parse_lifetime, read_password_line, AuthStore};
use datum_host::cli::{Account, Json, NewPassword, NewToken, ShowAccount, TokenId};
use datum_host::exit::{user, Outcome};
use datum_host::output::print_list;
use datum_shared::identity::{Role, User};
use serde::Serialize;

use super::print_json;
use crate::cli::{TokenCommand, UserCommand};
use crate::context::Context;
use crate::store::Store;

/// Who runs the command line: `cli:<OS login>`.
fn operator() -> String {
    let uid = datum_host::process::uid();
    format!("cli:{}", datum_host::process::login_of(uid).unwrap_or_else(|| format!("uid {uid}")))
}

fn account_name(raw: &str) -> Result<String> {
    datum_shared::person::normalize_name(raw).map_err(user)
}

/// `--sites a,b`: each a site of this hub, by its name, its enrolled identifier, or another spelling of its name
/// (`werk-sud` or "werk süd" for "Werk Süd": the same derived identifier). The scope keeps the hub's name of each site.
async fn parse_sites(store: &Store, value: &str) -> Result<Vec<String>> {
    let sites = store.sites().await?;
    let mut out = Vec::new();
    for raw in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let spelled = datum_shared::ids::derive_identifier(raw);
        let row = sites
            .iter()
            .find(|s| s.name == raw)
            .or_else(|| {
                sites.iter().find(|s| {
                    s.site_id.as_ref().is_some_and(|sid| sid.as_str() == raw)
                        || (spelled.is_some() && datum_shared::ids::derive_identifier(&s.name) == spelled)
                })
            })
            .ok_or_else(|| {
                user(format!("no site named {raw} at this hub (see `datum-hub site list`); a scope names known sites"))
            })?;
        if !out.contains(&row.name) {
            out.push(row.name.clone());
        }
    }
    if out.is_empty() {
        return Err(user("--sites names no site; leave it out for every site"));
    }
    out.sort();
    Ok(out)
}

/// A person as `user list|show --json` prints them.
#[derive(Serialize)]
struct UserView<'a> {
    name: &'a str,
    display: Option<&'a str>,
    roles: Vec<&'static str>,
    /// The sites the roles apply to; `null` is every site.
    sites: Option<&'a [String]>,
    disabled: bool,
    has_password: bool,
    totp: bool,
    created_at: String,
    created_by: &'a str,
}

async fn view<'a>(u: &'a User, auth: &AuthStore) -> Result<UserView<'a>> {
    Ok(UserView {
        name: &u.name,
        display: u.display.as_deref(),
        roles: u.roles.iter().map(|r| r.as_str()).collect(),
        sites: u.sites.as_deref(),
        disabled: u.disabled,
        has_password: auth.has_password(&u.name).await?,
        totp: auth.has_totp(&u.name).await?,
        created_at: u.created_at.to_rfc3339(),
        created_by: &u.created_by,
    })
}

/// The command groups of this file, run with the hub database and the secrets database open.
pub(super) enum People {
    User(UserCommand),
    Token(TokenCommand),
}

pub(super) async fn people(ctx: &Context, command: People) -> Result<Outcome> {
    let store = ctx.store().await?;
    let auth = AuthStore::open(&ctx.data).await?;
    let result = match command {
        People::User(command) => run_user(ctx, &store, &auth, command).await,
        People::Token(command) => run_token(ctx, &store, &auth, command).await,
    };
    auth.close().await;
    store.close().await;
    result
}

async fn run_user(ctx: &Context, store: &Store, auth: &AuthStore, command: UserCommand) -> Result<Outcome> {
    let by = operator();
    match command {
        UserCommand::Add { name, role, sites, display, password_stdin } => {
            let name = account_name(&name)?;
            let roles = Role::parse_list(&role, &Role::HUB).map_err(user)?;
            let sites = match sites {
                Some(s) => Some(parse_sites(store, &s).await?),
                None => None,
            };
            let password = if password_stdin { Some(read_password_line()?) } else { None };
            if let Some(p) = &password {
                check_new_password(p).map_err(|e| user(e.to_string()))?;
            }
            let record = User {
                name: name.clone(),
                display,
                roles,
                os_user: None,
                disabled: false,
                created_at: ctx.now,
                created_by: by.clone(),
                sites,
            };
            // Separation of duties compares people by this key: two accounts must never share it.
            let key = datum_shared::person::comparison_key(&name);
            if let Some(taken) =
                store.users().await?.into_iter().find(|u| datum_shared::person::comparison_key(&u.name) == key)
            {
                return Err(user(format!("{name} already has an account at this hub (as {})", taken.name)));
            }
            // The password first: an account is never left without the password that was given for it.
            if let Some(p) = &password {
                auth.set_password(&name, p, ctx.now).await?;
            }
            if !store.add_user(&record).await? {
                return Err(user(format!("{name} already has an account at this hub")));
            }
            let detail = format!("user {name} added as {} for {}", record.roles_text(), record.scope_text());
            store.record_event(ctx.now, &by, "user.add", None, &detail).await?;
            println!("{detail}");
            if password.is_none() {
                eprintln!("no password yet: set one with `datum-hub user passwd {name} --password-stdin`");
            }
            Ok(Outcome::Clean)
        }
        UserCommand::List(Json { json }) => {
            let users = store.users().await?;
            let mut views = Vec::new();
            for u in &users {
                views.push(view(u, auth).await?);
            }
            print_list(&views, json, &["NAME", "ROLES", "SITES", "STATE", "2FA"], |v| {
                vec![
                    v.name.to_string(),
                    v.roles.join(","),
                    v.sites.map(|s| s.join(",")).unwrap_or_else(|| "all sites".into()),
                    if v.disabled { "disabled" } else { "active" }.into(),
                    if v.totp { "totp" } else { "-" }.into(),
                ]
            })?;
            Ok(Outcome::Clean)
        }
        UserCommand::Show(ShowAccount { name, json }) => {
            let name = account_name(&name)?;
            let u = store.user(&name).await?.ok_or_else(|| user(format!("no account named {name} at this hub")))?;
            let v = view(&u, auth).await?;
            if json {
                print_json(&v)?;
            } else {
                println!("name:       {}", v.name);
                if let Some(d) = v.display {
                    println!("display:    {d}");
                }
                println!("roles:      {}", v.roles.join(","));
                println!("sites:      {}", u.scope_text());
                println!("state:      {}", if v.disabled { "disabled" } else { "active" });
                println!("password:   {}", if v.has_password { "set" } else { "not set" });
                println!("totp:       {}", if v.totp { "set up" } else { "not set up" });
                println!("created:    {} by {}", v.created_at, v.created_by);
            }
            Ok(Outcome::Clean)
        }
        UserCommand::Disable(Account { name }) => {
            let name = account_name(&name)?;
            if !store.disable_user(&name).await? {
                return Err(user(format!("no active account named {name} at this hub")));
            }
            auth.end_sessions_of(&name).await?;
            store.record_event(ctx.now, &by, "user.disable", None, &format!("user {name} disabled")).await?;
            println!("{name} disabled: its sessions ended, its tokens no longer work");
            Ok(Outcome::Clean)
        }
        UserCommand::Log(Json { json }) => {
            let events = store.events(None, 1000).await?;
            if json {
                let list: Vec<_> = events
                    .iter()
                    .map(|e| serde_json::json!({ "seq": e.seq, "at": e.at, "actor": e.actor, "action": e.action, "site": e.site, "detail": e.detail }))
                    .collect();
                print_json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = events
                    .iter()
                    .map(|e| {
                        vec![
                            e.seq.to_string(),
                            e.at.clone(),
                            e.actor.clone(),
                            e.action.clone(),
                            e.site.clone().unwrap_or_else(|| "-".into()),
                            e.detail.clone(),
                        ]
                    })
                    .collect();
                print!("{}", datum_shared::text::table(&["SEQ", "AT", "BY", "ACTION", "SITE", "WHAT"], &rows));
            }
            Ok(Outcome::Clean)
        }
        UserCommand::Passwd(NewPassword { name, password_stdin }) => {
            let name = account_name(&name)?;
            if !password_stdin {
                return Err(user("give the password on standard input with --password-stdin (never as an argument)"));
            }
            store.user(&name).await?.ok_or_else(|| user(format!("no account named {name} at this hub")))?;
            let password = read_password_line()?;
            check_new_password(&password).map_err(|e| user(e.to_string()))?;
            auth.set_password(&name, &password, ctx.now).await?;
            auth.end_sessions_of(&name).await?;
            store.record_event(ctx.now, &by, "user.passwd", None, &format!("password of {name} set")).await?;
            println!("password of {name} set; its sessions ended");
            Ok(Outcome::Clean)
        }
    }
}

async fn run_token(ctx: &Context, store: &Store, auth: &AuthStore, command: TokenCommand) -> Result<Outcome> {
    let by = operator();
    match command {
        TokenCommand::Create(NewToken { user: name, expires, json }) => {
            let name = account_name(&name)?;
            let target =
                store.user(&name).await?.ok_or_else(|| user(format!("no account named {name} at this hub")))?;
            if target.disabled {
                return Err(user(format!("the account {name} is disabled")));
            }
            let expires_at = parse_lifetime(&expires, ctx.now)?;
            let token = auth.create_token(&name, &by, ctx.now, expires_at).await?;
            let detail = format!("token {} made for {name}", token.id);
            store.record_event(ctx.now, &by, "token.create", None, &detail).await?;
            token.announce(&name, expires_at, json, "`Authorization: Bearer`")?;
            Ok(Outcome::Clean)
        }
        TokenCommand::List(Json { json }) => {
            let tokens = auth.tokens(None).await?;
            datum_host::output::print_json_or(&tokens, json, |t| datum_host::auth::tokens_table(t))?;
            Ok(Outcome::Clean)
        }
        TokenCommand::Revoke(TokenId { id }) => {
            if !auth.revoke_token(id.trim(), ctx.now).await? {
                return Err(user(format!("no active token with id {id}")));
            }
            store.record_event(ctx.now, &by, "token.revoke", None, &format!("token {id} revoked")).await?;
            println!("token {id} revoked");
            Ok(Outcome::Clean)
        }
    }
}
