//! `datum-hub`: the company's view of every plant. It enrolls edge nodes, accepts their sync over QUIC (or TLS
//! over TCP where UDP is blocked), keeps every site's documents and configuration files (the plant's off-site
//! copy), and answers cross-site questions.
//!
//! Thin on purpose: parse the command line, resolve the data directory, run the command, map the outcome to
//! an exit code (0 ok, 1 findings, 2 usage or input error, 3 internal error).

mod cli;
mod commands;
mod error;
mod identity;
mod serve;
mod store;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::error::{Outcome, UserError};

fn main() -> ExitCode {
    private_files();
    let cli = cli::Cli::parse();
    let default_level = if matches!(cli.command, cli::Command::Serve { .. }) { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DATUM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: start runtime: {e}");
            return ExitCode::from(3);
        }
    };
    let result = runtime.block_on(async {
        let ctx = commands::Context { data: resolve_data(cli.data), database: cli.database, now: resolve_now()? };
        commands::run(ctx, cli.command).await
    });
    match result {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Findings) => ExitCode::from(1),
        Err(e) => {
            let user = e.downcast_ref::<UserError>().is_some();
            eprintln!("error: {e:#}");
            ExitCode::from(if user { 2 } else { 3 })
        }
    }
}

fn resolve_data(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("DATUM_HUB_DATA").filter(|v| !v.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("datum-hub-data"))
}

/// The clock. `DATUM_NOW` (RFC 3339) replaces it for tests of expiry; it is recorded as-is.
fn resolve_now() -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    match std::env::var("DATUM_NOW") {
        Ok(v) if !v.is_empty() => chrono::DateTime::parse_from_rfc3339(&v)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|e| error::user(format!("DATUM_NOW {v:?} is not an RFC 3339 time: {e}"))),
        _ => Ok(chrono::Utc::now()),
    }
}

/// Everything the hub creates (database, keys) is readable by its owner only.
#[allow(unsafe_code)]
fn private_files() {
    // SAFETY: umask has no preconditions and cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}
