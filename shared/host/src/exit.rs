//! Error categories that decide the exit code, the same for both binaries: 0 clean, 1 findings or damage
//! found, 2 a usage or input error, 3 an internal failure.

use std::fmt;
use std::process::ExitCode;

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

/// The exit code of a command's result.
pub fn code(result: &anyhow::Result<Outcome>) -> u8 {
    match result {
        Ok(Outcome::Clean) => 0,
        Ok(Outcome::Findings) => 1,
        Err(e) if e.downcast_ref::<UserError>().is_some() => 2,
        Err(e) if e.downcast_ref::<Damage>().is_some() => 1,
        Err(_) => 3,
    }
}

/// Ends a command: prints the error with its causes (`error: …: …`) and returns its exit code.
pub fn finish(result: anyhow::Result<Outcome>) -> ExitCode {
    if let Err(e) = &result {
        eprintln!("error: {e:#}");
    }
    ExitCode::from(code(&result))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn every_kind_of_end_has_its_code() {
        assert_eq!(code(&Ok(Outcome::Clean)), 0);
        assert_eq!(code(&Ok(Outcome::Findings)), 1);
        assert_eq!(code(&Err(user("no such asset"))), 2);
        assert_eq!(code(&Err(Damage("blob x is damaged".into()).into())), 1);
        assert_eq!(code(&Err(anyhow::anyhow!("disk full"))), 3);
        // The kind survives context added on the way up.
        let wrapped: anyhow::Result<Outcome> = Err(user("bad --version")).context("config export");
        assert_eq!(code(&wrapped), 2);
    }
}
