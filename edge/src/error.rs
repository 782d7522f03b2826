//! Error categories that decide the exit code: usage/input errors (2) versus internal failures (3).

use std::fmt;

/// An error caused by what the user asked for or gave us (bad argument, bad file, illegal transition).
/// Exits with code 2. Anything else that reaches `main` is internal and exits with 3.
#[derive(Debug)]
pub struct UserError(pub String);

impl UserError {
    pub fn new(message: impl Into<String>) -> UserError {
        UserError(message.into())
    }
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UserError {}

/// Shorthand: `Err(user("..."))?`.
pub fn user(message: impl Into<String>) -> anyhow::Error {
    UserError::new(message).into()
}

/// Damage found while doing what was asked (a stored file that no longer matches its hash, a broken delta
/// chain): reported like a finding, exit code 1, never as an internal error or a crash.
#[derive(Debug)]
pub struct Damage(pub String);

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Damage {}

/// What a command found: `Clean` exits 0, `Findings` exits 1 (drift, overdue backups, tampering…).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Clean,
    Findings,
}

impl Outcome {
    pub fn from_findings(any: bool) -> Outcome {
        if any {
            Outcome::Findings
        } else {
            Outcome::Clean
        }
    }
}
