//! `datum-edge`: one plant's configuration and change control, from the command line, fully offline.
//!
//! Thin on purpose: parse the command line, resolve the data directory, actor and clock, run the command,
//! turn its outcome into an exit code (0 ok, 1 findings, 2 usage or input error, 3 internal error).

mod blobs;
mod cli;
mod commands;
mod error;
mod output;
mod site;
mod store;
mod view;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::error::{Outcome, UserError};

fn main() -> ExitCode {
    restore_sigpipe();
    private_files();
    let cli = cli::Cli::parse();
    // The continuous sync logs one line per pass outcome by default; commands only warnings.
    let default_filter =
        if matches!(cli.command, cli::Command::Sync { once: false, .. }) { "warn,datum_edge=info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DATUM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: start runtime: {e}");
            return ExitCode::from(3);
        }
    };
    let result = runtime.block_on(async {
        // Comparing two files acts on nothing, so it needs no actor.
        let actor =
            if matches!(cli.command, cli::Command::Diff { .. }) { String::new() } else { resolve_actor(cli.actor)? };
        let (now, drill) = resolve_now()?;
        let ctx = commands::Context { data: resolve_data(cli.data), actor, now, drill };
        commands::run(ctx, cli.command).await
    });
    match result {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Findings) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(if e.downcast_ref::<UserError>().is_some() {
                2
            } else if e.downcast_ref::<error::Damage>().is_some() {
                1
            } else {
                3
            })
        }
    }
}

fn resolve_data(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("DATUM_DATA").filter(|v| !v.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("datum-data"))
}

fn resolve_actor(flag: Option<String>) -> anyhow::Result<String> {
    let actor = flag
        .or_else(|| std::env::var("DATUM_ACTOR").ok().filter(|v| !v.is_empty()))
        .or_else(|| std::env::var("USER").ok().filter(|v| !v.is_empty()))
        .or_else(|| std::env::var("LOGNAME").ok().filter(|v| !v.is_empty()))
        // Services, cron jobs and containers often have no $USER: the account of the process's uid.
        .or_else(os_account)
        .ok_or_else(|| error::user("cannot tell who is acting: pass --actor NAME or set DATUM_ACTOR"))?;
    datum_shared::person::normalize_name(&actor).map_err(error::user)
}

/// The login name of this process's user id, from the account database.
#[allow(unsafe_code)]
fn os_account() -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: an all-zero passwd is a valid value of this plain C struct; getpwuid_r writes into it and into
    // `buf`, whose length we pass, and sets `result` to point at `pwd` on success (or null).
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: as above; getuid cannot fail.
    let rc = unsafe { libc::getpwuid_r(libc::getuid(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points at a NUL-terminated string inside `buf`, which is still alive.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    name.to_str().ok().filter(|n| !n.is_empty()).map(str::to_string)
}

/// The clock, and whether it is the drill clock: `DATUM_NOW` (RFC 3339) replaces it for drills and tests of
/// intervals. Every audit entry written under it is marked as a drill entry, and it cannot date an entry before
/// the newest one (time never goes backwards in the audit trail), so a drill moves a site's clock forward for
/// good: run drills on a copy (`restore-dump`).
fn resolve_now() -> anyhow::Result<(chrono::DateTime<chrono::Utc>, bool)> {
    match std::env::var("DATUM_NOW") {
        Ok(v) if !v.is_empty() => chrono::DateTime::parse_from_rfc3339(&v)
            .map(|t| (t.with_timezone(&chrono::Utc), true))
            .map_err(|e| error::user(format!("DATUM_NOW {v:?} is not an RFC 3339 time: {e}"))),
        _ => Ok((chrono::Utc::now(), false)),
    }
}

/// Rust ignores SIGPIPE, so `datum-edge config diff X | head` would panic on a closed pipe. A command-line
/// tool should end quietly instead, like every Unix filter.
#[allow(unsafe_code)]
fn restore_sigpipe() {
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Everything this process creates (database, WAL, blobs, dumps, exports) is readable by its owner only:
/// configurations hold password hashes and the dump holds the site key.
#[allow(unsafe_code)]
fn private_files() {
    // SAFETY: umask has no preconditions and cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}
