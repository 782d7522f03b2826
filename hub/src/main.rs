//! `datum-hub`: the company's view of every plant. It enrolls edge nodes, accepts their sync over QUIC (or TLS
//! over TCP where UDP is blocked), keeps every site's documents and configuration files (the plant's off-site
//! copy), and answers cross-site questions.
//!
//! Thin on purpose: parse the command line, resolve the data directory, run the command, map the outcome to
//! an exit code (0 ok, 1 findings, 2 usage or input error, 3 internal error).

mod cli;
mod commands;
mod config;
mod context;
mod identity;
mod serve;
mod store;
mod web;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use datum_host::{exit, process};

fn main() -> ExitCode {
    process::private_files();
    let cli = cli::Cli::parse();
    process::init_logging(if matches!(cli.command, cli::Command::Serve { .. }) { "info" } else { "warn" });
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: start runtime: {e}");
            return ExitCode::from(3);
        }
    };
    exit::finish(runtime.block_on(async {
        // `DATUM_NOW` replaces the clock for tests of expiry; the hub records it as-is.
        let (now, _) = process::now()?;
        let ctx = context::Context { data: resolve_data(cli.data), database: cli.database, now };
        commands::run(ctx, cli.command).await
    }))
}

fn resolve_data(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("DATUM_HUB_DATA").filter(|v| !v.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("datum-hub-data"))
}
