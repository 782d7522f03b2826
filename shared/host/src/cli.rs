//! Command-line arguments both binaries take in the same words: `--json`, an account name, a new password,
//! an API token. Each is a clap `Args` struct that the binaries' subcommands hold (`List(Json)`), so the flags,
//! their help and their checks are written once.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `--json`.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct Json {
    /// Print the result as JSON (for scripts)
    #[arg(long)]
    pub json: bool,
}

/// One person's account, by name.
#[derive(Args, Debug, Clone)]
pub struct Account {
    /// The account name
    pub name: String,
}

/// One person's account, by name, printed.
#[derive(Args, Debug, Clone)]
pub struct ShowAccount {
    /// The account name
    pub name: String,
    /// Print the result as JSON (for scripts)
    #[arg(long)]
    pub json: bool,
}

/// A new password for an account, read from standard input.
#[derive(Args, Debug, Clone)]
pub struct NewPassword {
    /// The account name
    pub name: String,
    /// Read the password from standard input (one line); required
    #[arg(long)]
    pub password_stdin: bool,
}

/// A new API token.
#[derive(Args, Debug, Clone)]
pub struct NewToken {
    /// The account the token acts as
    #[arg(long)]
    pub user: String,
    /// Lifetime, e.g. 30d, 12h [default: 90d]; `never` for none
    #[arg(long, default_value = "90d")]
    pub expires: String,
    /// Print the result as JSON (for scripts)
    #[arg(long)]
    pub json: bool,
}

/// An API token, by id.
#[derive(Args, Debug, Clone)]
pub struct TokenId {
    /// The token's id (from `token list`)
    pub id: String,
}

/// The period an evidence pack covers.
#[derive(Args, Debug, Clone, Default)]
pub struct Period {
    /// Start of the period (YYYY-MM-DD or RFC 3339) [default: a year before --to]
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,
    /// End of the period (YYYY-MM-DD or RFC 3339) [default: now]
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,
}

/// `report verify`: what either binary checks of an evidence pack, on any machine.
#[derive(Debug, Subcommand)]
pub enum ReportCmd {
    /// Check a pack on any machine: the signature and every file's hash; exit 1 naming each altered, missing or
    /// added file
    Verify {
        /// The pack's directory
        dir: PathBuf,
        /// Print the result as JSON (for scripts)
        #[arg(long)]
        json: bool,
    },
}
