//! People and what they may do: user records, roles, the authorization rule, TOTP and the lockout back-off.
//!
//! Users and their role grants are records of the site document (collection `users`): synced to the hub and
//! audited like everything else. What proves who someone is (password hashes, TOTP secrets, token hashes) is
//! not here: it stays in the edge's local database and never leaves the machine. This module holds only the
//! rules, with time and secrets passed in, so every rule is tested without a clock or a database.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};

/// A role a person may hold; a person may hold several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Reads the site's records.
    Viewer,
    /// Captures, edits the inventory, creates and implements change requests, records restore tests and reviews.
    Engineer,
    /// Approves or rejects changes, approves baselines and waivers.
    Approver,
    /// Reads everything and exports evidence; never writes.
    Auditor,
    /// Manages users, tokens and the site's settings.
    SiteAdmin,
    /// At the hub: decides central approvals and waivers, manages shared templates.
    SecurityOfficer,
    /// At the hub: manages the hub's users, tokens and sites.
    HubAdmin,
}

impl Role {
    /// The roles of a plant's people (the edge).
    pub const EDGE: [Role; 5] = [Role::Viewer, Role::Engineer, Role::Approver, Role::Auditor, Role::SiteAdmin];
    /// The roles of the corporate team's people (the hub).
    pub const HUB: [Role; 4] = [Role::Viewer, Role::SecurityOfficer, Role::Auditor, Role::HubAdmin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Engineer => "engineer",
            Role::Approver => "approver",
            Role::Auditor => "auditor",
            Role::SiteAdmin => "site-admin",
            Role::SecurityOfficer => "security-officer",
            Role::HubAdmin => "hub-admin",
        }
    }

    /// Holders of this role must sign in with a second factor (TOTP).
    pub fn needs_mfa(self) -> bool {
        matches!(self, Role::Approver | Role::SiteAdmin | Role::SecurityOfficer | Role::HubAdmin)
    }

    /// One of the roles `allowed` ([`Role::EDGE`] or [`Role::HUB`]) by its name.
    pub fn parse(value: &str, allowed: &[Role]) -> Result<Role, String> {
        let value = value.trim();
        allowed.iter().copied().find(|r| r.as_str() == value).ok_or_else(|| {
            format!(
                "unknown role {value:?}; the roles are {}",
                allowed.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
            )
        })
    }

    /// Parses `engineer,approver` among the roles `allowed`: at least one role, duplicates dropped, sorted.
    pub fn parse_list(value: &str, allowed: &[Role]) -> Result<Vec<Role>, String> {
        let mut roles = value
            .split(',')
            .filter(|r| !r.trim().is_empty())
            .map(|r| Role::parse(r, allowed))
            .collect::<Result<Vec<_>, _>>()?;
        if roles.is_empty() {
            return Err("give at least one role".into());
        }
        roles.sort();
        roles.dedup();
        Ok(roles)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A person's account at the site. The key is the account name, normalised like every person's name
/// ([`crate::person::normalize_name`]): separation of duties compares accounts by it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    pub roles: Vec<Role>,
    /// The operating-system login that acts as this user on the edge box (the CLI, by kernel credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_user: Option<String>,
    #[serde(default)]
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    /// At the hub: the sites (identifiers) this person's roles apply to; `None` is every site. A plant's users
    /// have none (their site is the only one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sites: Option<Vec<String>>,
}

impl User {
    pub const COLLECTION: &'static str = "users";

    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether this user must use a second factor.
    pub fn needs_mfa(&self) -> bool {
        self.roles.iter().any(|r| r.needs_mfa())
    }

    pub fn roles_text(&self) -> String {
        self.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(",")
    }

    /// Whether this person may see anything of the site `site_id` (at the hub: every site, or one of theirs).
    pub fn sees_site(&self, site_id: &str) -> bool {
        self.sites.as_ref().is_none_or(|sites| sites.iter().any(|s| s == site_id))
    }

    /// "all sites" or the list, for people.
    pub fn scope_text(&self) -> String {
        match &self.sites {
            None => "all sites".into(),
            Some(sites) => sites.join(","),
        }
    }
}

/// What someone wants to do, as far as authorization is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Read any record, file or report.
    Read,
    /// Add or edit assets, import the inventory, capture configurations, record checks.
    EditInventory,
    /// Create, submit, implement, verify, close or cancel a change request.
    WorkOnChange,
    /// Approve or reject a change request.
    DecideChange,
    /// Approve a baseline (or a waiver).
    ApproveBaseline,
    /// Record a restore test or a backup verification.
    RecordRestoreTest,
    /// Record a periodic review.
    RecordReview,
    /// Add users, change roles, reset passwords and second factors, manage tokens of others.
    ManageUsers,
    /// Site settings: enrollment with the hub, the site's name.
    ManageSite,
    /// Export an evidence pack or a dump.
    ExportEvidence,
    /// At the hub: approve or reject a change or waiver that needs a central decision.
    DecideCentral,
    /// At the hub: add, publish and assign shared templates.
    ManageTemplates,
}

impl Action {
    /// The roles that allow this action (any one of them).
    pub fn roles(self) -> &'static [Role] {
        use Role::*;
        match self {
            Action::Read => &[Viewer, Engineer, Approver, Auditor, SiteAdmin, SecurityOfficer, HubAdmin],
            Action::EditInventory | Action::WorkOnChange | Action::RecordRestoreTest => &[Engineer],
            Action::RecordReview => &[Engineer, Approver],
            Action::DecideChange | Action::ApproveBaseline => &[Approver],
            Action::ManageUsers | Action::ManageSite => &[SiteAdmin, HubAdmin],
            Action::ExportEvidence => &[Auditor, SiteAdmin],
            Action::DecideCentral | Action::ManageTemplates => &[SecurityOfficer],
        }
    }

    /// Actions that ask for the second factor again, however recently the person signed in.
    pub fn asks_mfa_again(self) -> bool {
        matches!(self, Action::DecideChange | Action::ApproveBaseline | Action::ManageUsers | Action::DecideCentral)
    }

    pub fn describe(self) -> &'static str {
        match self {
            Action::Read => "read the site's records",
            Action::EditInventory => "change the inventory or capture configurations",
            Action::WorkOnChange => "work on change requests",
            Action::DecideChange => "approve or reject change requests",
            Action::ApproveBaseline => "approve baselines",
            Action::RecordRestoreTest => "record restore tests and backup checks",
            Action::RecordReview => "record reviews",
            Action::ManageUsers => "manage users and tokens",
            Action::ManageSite => "change the site's settings",
            Action::ExportEvidence => "export evidence",
            Action::DecideCentral => "decide central approvals",
            Action::ManageTemplates => "manage shared templates",
        }
    }
}

/// Why an authenticated person may not do something (a 403, or exit 2 on the command line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

/// The whole authorization rule: a disabled account may do nothing; otherwise one of the action's roles.
pub fn authorize(user: &User, action: Action) -> Result<(), Refusal> {
    if user.disabled {
        return Err(Refusal(format!("the account {} is disabled", user.name)));
    }
    if action.roles().iter().any(|r| user.has(*r)) {
        return Ok(());
    }
    let needed = action.roles().iter().map(|r| r.as_str()).collect::<Vec<_>>().join(" or ");
    Err(Refusal(format!(
        "{} may not {} (needs the role {needed}; holds {})",
        user.name,
        action.describe(),
        if user.roles.is_empty() { "none".to_string() } else { user.roles_text() }
    )))
}

/// How the person behind an audit entry proved who they are. An entry without one was written under a typed
/// name (a site with no users yet) and counts as unauthenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMethod {
    /// Password only (an account that needs no second factor).
    Password,
    /// Password and a TOTP code (or a recovery code).
    #[serde(rename = "password+totp")]
    PasswordTotp,
    /// An API token.
    Token,
    /// The operating-system account running the command on the edge box.
    OsAccount,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::PasswordTotp => "password+totp",
            AuthMethod::Token => "token",
            AuthMethod::OsAccount => "os-account",
        }
    }
}

/// Failed sign-ins allowed before the back-off starts.
pub const FREE_FAILURES: u32 = 5;
/// The longest back-off.
pub const MAX_LOCKOUT: Duration = Duration::from_secs(15 * 60);

/// How long sign-in stays refused after `failures` consecutive failures (per account and per source address):
/// nothing for the first [`FREE_FAILURES`], then 30 s doubling up to [`MAX_LOCKOUT`].
pub fn lockout_after(failures: u32) -> Duration {
    if failures < FREE_FAILURES {
        return Duration::ZERO;
    }
    let doublings = (failures - FREE_FAILURES).min(10);
    Duration::from_secs(30u64 << doublings).min(MAX_LOCKOUT)
}

/// TOTP (RFC 6238 over HMAC-SHA-1, 6 digits, 30-second steps), as every authenticator app reads it.
pub mod totp {
    use super::*;

    pub const STEP_SECONDS: i64 = 30;
    pub const DIGITS: u32 = 6;
    /// Secret length in bytes (160 bits, RFC 4226's recommendation).
    pub const SECRET_BYTES: usize = 20;

    /// The code for one time step (RFC 4226's HOTP).
    pub fn code_at_step(secret: &[u8], step: u64) -> u32 {
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret).expect("HMAC takes a key of any length");
        mac.update(&step.to_be_bytes());
        let digest = mac.finalize().into_bytes();
        let offset = usize::from(digest[19] & 0x0f);
        let value =
            u32::from_be_bytes([digest[offset] & 0x7f, digest[offset + 1], digest[offset + 2], digest[offset + 3]]);
        value % 10u32.pow(DIGITS)
    }

    pub fn step_of(unix_seconds: i64) -> u64 {
        u64::try_from(unix_seconds.max(0) / STEP_SECONDS).unwrap_or(0)
    }

    /// Why a code was refused.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    pub enum TotpError {
        #[error("the code must be 6 digits")]
        Malformed,
        #[error("the code is wrong or expired")]
        Wrong,
        #[error("this code was already used; wait for the next one")]
        Replayed,
    }

    /// Checks a code against the current step and one step either side (clock skew), refusing any step at or
    /// before `last_used` (a code is good once). Returns the step it matched, to be stored as the new
    /// `last_used`.
    pub fn verify(secret: &[u8], code: &str, unix_seconds: i64, last_used: Option<u64>) -> Result<u64, TotpError> {
        let code = code.trim();
        if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TotpError::Malformed);
        }
        let given: u32 = code.parse().map_err(|_| TotpError::Malformed)?;
        let now = step_of(unix_seconds);
        let mut replayed = false;
        for step in [now.saturating_sub(1), now, now + 1] {
            if code_at_step(secret, step) != given {
                continue;
            }
            if last_used.is_some_and(|last| step <= last) {
                replayed = true;
                continue;
            }
            return Ok(step);
        }
        Err(if replayed { TotpError::Replayed } else { TotpError::Wrong })
    }

    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

    /// RFC 4648 base32 without padding: how authenticator apps take a secret.
    pub fn base32(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
        for chunk in bytes.chunks(5) {
            let mut buf = [0u8; 5];
            buf[..chunk.len()].copy_from_slice(chunk);
            let bits = buf.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            let chars = (chunk.len() * 8).div_ceil(5);
            for i in 0..chars {
                let index = (bits >> (35 - 5 * i)) & 31;
                out.push(char::from(ALPHABET[index as usize]));
            }
        }
        out
    }

    /// The `otpauth://` address an authenticator app scans or is given.
    pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
        fn escape(s: &str) -> String {
            s.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
                    _ => format!("%{b:02X}"),
                })
                .collect()
        }
        format!(
            "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits=6&period=30",
            escape(issuer),
            escape(account),
            base32(secret),
            escape(issuer)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(roles: &[Role]) -> User {
        User {
            name: "ana".into(),
            display: None,
            roles: roles.to_vec(),
            os_user: None,
            disabled: false,
            created_at: DateTime::<Utc>::from_timestamp(0, 0).expect("epoch"),
            created_by: "root".into(),
            sites: None,
        }
    }

    #[test]
    fn rfc6238_vectors() {
        // RFC 6238 appendix B, SHA-1 secret "12345678901234567890", 8 digits there; 6 digits are its last six.
        let secret = b"12345678901234567890";
        for (time, code8) in [(59, 94287082u32), (1111111109, 7081804), (1234567890, 89005924), (2000000000, 69279037)]
        {
            assert_eq!(totp::code_at_step(secret, totp::step_of(time)), code8 % 1_000_000, "time {time}");
        }
    }

    #[test]
    fn totp_window_and_replay() {
        let secret = b"12345678901234567890";
        let now = 1_234_567_890;
        let code = format!("{:06}", totp::code_at_step(secret, totp::step_of(now)));
        let step = totp::verify(secret, &code, now, None).expect("good code");
        assert_eq!(totp::verify(secret, &code, now, Some(step)), Err(totp::TotpError::Replayed));
        // One step of skew either way is accepted; two are not.
        assert!(totp::verify(secret, &code, now + 30, None).is_ok());
        assert!(totp::verify(secret, &code, now - 30, None).is_ok());
        assert_eq!(totp::verify(secret, &code, now + 90, None), Err(totp::TotpError::Wrong));
        assert_eq!(totp::verify(secret, "12345", now, None), Err(totp::TotpError::Malformed));
        assert_eq!(totp::verify(secret, "12345a", now, None), Err(totp::TotpError::Malformed));
    }

    #[test]
    fn base32_matches_rfc4648() {
        assert_eq!(totp::base32(b""), "");
        assert_eq!(totp::base32(b"f"), "MY");
        assert_eq!(totp::base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(totp::base32(b"12345678901234567890"), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }

    #[test]
    fn every_action_allows_exactly_its_roles() {
        let actions = [
            Action::Read,
            Action::EditInventory,
            Action::WorkOnChange,
            Action::DecideChange,
            Action::ApproveBaseline,
            Action::RecordRestoreTest,
            Action::RecordReview,
            Action::ManageUsers,
            Action::ManageSite,
            Action::ExportEvidence,
            Action::DecideCentral,
            Action::ManageTemplates,
        ];
        let every_role: Vec<Role> = Role::EDGE
            .iter()
            .chain(&Role::HUB)
            .copied()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut table = String::new();
        for action in actions {
            let allowed: Vec<&str> =
                every_role.iter().filter(|r| authorize(&user(&[**r]), action).is_ok()).map(|r| r.as_str()).collect();
            table.push_str(&format!("{action:?}: {}\n", allowed.join(" ")));
        }
        expect_test::expect![[r#"
            Read: viewer engineer approver auditor site-admin security-officer hub-admin
            EditInventory: engineer
            WorkOnChange: engineer
            DecideChange: approver
            ApproveBaseline: approver
            RecordRestoreTest: engineer
            RecordReview: engineer approver
            ManageUsers: site-admin hub-admin
            ManageSite: site-admin hub-admin
            ExportEvidence: auditor site-admin
            DecideCentral: security-officer
            ManageTemplates: security-officer
        "#]]
        .assert_eq(&table);
        // The auditor never writes; nobody without a role does anything; a disabled account nothing at all.
        assert!(actions.iter().filter(|a| **a != Action::Read && **a != Action::ExportEvidence).all(|a| authorize(
            &user(&[Role::Auditor]),
            *a
        )
        .is_err()));
        assert!(actions.iter().all(|a| authorize(&user(&[]), *a).is_err()));
        let mut disabled = user(&every_role);
        disabled.disabled = true;
        let refusal = authorize(&disabled, Action::Read).expect_err("disabled");
        assert!(refusal.0.contains("disabled"), "{refusal}");
    }

    #[test]
    fn roles_parse_and_refuse_clearly() {
        let edge = &Role::EDGE;
        assert_eq!(
            Role::parse_list("approver,engineer,approver", edge).expect("ok"),
            vec![Role::Engineer, Role::Approver]
        );
        let err = Role::parse_list("engineer,admin", edge).expect_err("unknown");
        assert!(err.contains("site-admin"), "{err}");
        assert!(Role::parse_list(" , ", edge).is_err());
        // Each place has its own roles: a plant has no security officer, the hub no engineer.
        let err = Role::parse_list("security-officer", edge).expect_err("a hub role at a plant");
        assert!(err.contains("site-admin") && !err.contains("hub-admin"), "{err}");
        let err = Role::parse_list("engineer", &Role::HUB).expect_err("a plant role at the hub");
        assert!(err.contains("security-officer, auditor, hub-admin"), "{err}");
        assert_eq!(Role::parse_list("hub-admin,viewer", &Role::HUB).expect("ok"), vec![Role::Viewer, Role::HubAdmin]);
    }

    #[test]
    fn a_scoped_person_sees_only_their_sites() {
        let mut u = user(&[Role::Viewer]);
        assert!(u.sees_site("north") && u.sees_site("south"));
        assert_eq!(u.scope_text(), "all sites");
        u.sites = Some(vec!["north".into()]);
        assert!(u.sees_site("north") && !u.sees_site("south") && !u.sees_site("nort") && !u.sees_site(""));
        u.sites = Some(Vec::new());
        assert!(!u.sees_site("north"), "an empty list is no site, not every site");
    }

    #[test]
    fn lockout_backs_off_and_is_capped() {
        assert_eq!(lockout_after(0), Duration::ZERO);
        assert_eq!(lockout_after(4), Duration::ZERO);
        assert_eq!(lockout_after(5), Duration::from_secs(30));
        assert_eq!(lockout_after(6), Duration::from_secs(60));
        assert_eq!(lockout_after(9), Duration::from_secs(480));
        assert_eq!(lockout_after(10), MAX_LOCKOUT);
        assert_eq!(lockout_after(u32::MAX), MAX_LOCKOUT);
    }
}
