//! `datum-edge`: one plant's configuration and change control, from the command line, fully offline.
//!
//! Thin on purpose: parse the command line, resolve the data directory, actor and clock, run the command,
//! turn its outcome into an exit code (0 ok, 1 findings, 2 usage or input error, 3 internal error).

mod blobs;
mod broker;
mod cli;
mod commands;
mod output;
mod site;
mod store;
mod view;
mod web;

/// mimalloc: a one-shot command allocates and frees hundreds of thousands of small lines; glibc's allocator
/// spent ~15 % of a large `diff` in malloc, free and consolidation, plus page faults (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use datum_host::exit::{self, user};
use datum_host::process;

fn main() -> ExitCode {
    process::restore_sigpipe();
    process::private_files();
    let cli = cli::Cli::parse();
    // The continuous sync logs one line per pass outcome by default; commands only warnings.
    let default_filter =
        if matches!(cli.command, cli::Command::Sync { once: false, .. }) { "warn,datum_edge=info" } else { "warn" };
    process::init_logging(default_filter);
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: start runtime: {e}");
            return ExitCode::from(3);
        }
    };
    // Beside a running service, commands go through its local socket and act as this process's OS account.
    if let Some(socket) = broker::socket_for(&cli) {
        return runtime.block_on(broker::call(&socket, &cli));
    }
    exit::finish(runtime.block_on(async {
        let data = resolve_data(cli.data);
        let os_login = os_account(&data);
        // Comparing two files acts on nothing, so it needs no actor.
        let typed_actor = cli.actor.is_some() || std::env::var("DATUM_ACTOR").ok().is_some_and(|v| !v.is_empty());
        let actor = if matches!(cli.command, cli::Command::Diff { .. } | cli::Command::Report { check: Some(_), .. }) {
            String::new()
        } else {
            resolve_actor(cli.actor, os_login.clone())?
        };
        let token = std::env::var("DATUM_TOKEN").ok().filter(|v| !v.is_empty());
        // The drill clock (`DATUM_NOW`): every audit entry written under it is marked as a drill entry, and it
        // cannot date an entry before the newest one (time never goes backwards in the audit trail), so a drill
        // moves a site's clock forward for good: run drills on a copy (`restore-dump`).
        let (now, drill) = process::now()?;
        let ctx = commands::Context { data, actor, typed_actor, os_login, token, now, drill };
        commands::run(ctx, cli.command).await
    }))
}

fn resolve_data(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("DATUM_DATA").filter(|v| !v.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("datum-data"))
}

fn resolve_actor(flag: Option<String>, os_login: Option<String>) -> anyhow::Result<String> {
    let actor = flag
        .or_else(|| std::env::var("DATUM_ACTOR").ok().filter(|v| !v.is_empty()))
        .or_else(|| std::env::var("USER").ok().filter(|v| !v.is_empty()))
        .or_else(|| std::env::var("LOGNAME").ok().filter(|v| !v.is_empty()))
        // Services, cron jobs and containers often have no $USER: the account of the process's uid.
        .or(os_login)
        .ok_or_else(|| user("cannot tell who is acting: pass --actor NAME or set DATUM_ACTOR"))?;
    datum_shared::person::normalize_name(&actor).map_err(user)
}

/// The OS account acting: the caller's, as the service read it from the local socket's peer credentials
/// (see `broker`), else this process's own.
fn os_account(data: &std::path::Path) -> Option<String> {
    match broker::verified_login(data) {
        Some(login) => login,
        None => process::login_of(process::uid()),
    }
}
