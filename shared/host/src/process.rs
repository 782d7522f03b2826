//! What every binary does first: the clock, logging, the file mode of what it creates, SIGPIPE.

use chrono::{DateTime, Utc};

use crate::exit::user;

/// The clock, and whether it is the drill clock: `DATUM_NOW` (RFC 3339) replaces the system clock for drills
/// and tests of intervals. The edge marks every audit entry written under it as a drill entry.
pub fn now() -> anyhow::Result<(DateTime<Utc>, bool)> {
    match std::env::var("DATUM_NOW") {
        Ok(v) if !v.is_empty() => DateTime::parse_from_rfc3339(&v)
            .map(|t| (t.with_timezone(&Utc), true))
            .map_err(|e| user(format!("DATUM_NOW {v:?} is not an RFC 3339 time: {e}"))),
        _ => Ok((Utc::now(), false)),
    }
}

/// Logs to standard error, filtered by `DATUM_LOG` (an `EnvFilter` directive such as `debug` or
/// `datum_hub=debug`) or else by `default_filter`; colours only on a terminal, so a service's log file and a
/// pipe get plain text.
pub fn init_logging(default_filter: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DATUM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

/// Everything this process creates (databases, WAL, blobs, keys, dumps, exports) is readable by its owner
/// only: configurations hold password hashes, identities hold private keys.
#[allow(unsafe_code)]
pub fn private_files() {
    // SAFETY: umask has no preconditions and cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// Rust ignores SIGPIPE, so `datum-edge config diff X | head` would panic on a closed pipe. A command-line
/// tool should end quietly instead, like every Unix filter. Call first thing in `main`.
#[allow(unsafe_code)]
pub fn restore_sigpipe() {
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The login name of a uid (from the system's account database), or `None` when it has none.
#[allow(unsafe_code)]
pub fn login_of(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: an all-zero passwd is a valid value of this plain C struct; getpwuid_r writes into it and into
    // `buf`, whose length we pass, and sets `result` to point at `pwd` on success (or null).
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: as above.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points at a NUL-terminated string inside `buf`, which is still alive.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    name.to_str().ok().filter(|n| !n.is_empty()).map(str::to_string)
}

/// This process's real uid.
#[allow(unsafe_code)]
pub fn uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// This process's effective uid (whose permissions it has).
#[allow(unsafe_code)]
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Tells systemd the service is ready (`Type=notify`): `READY=1` to `$NOTIFY_SOCKET`, when set. Best effort: a
/// service started by hand has no socket and needs no message.
pub fn notify_ready() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let path = path.to_string_lossy().into_owned();
    let addr = match path.strip_prefix('@') {
        Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes()),
        None => SocketAddr::from_pathname(&path),
    };
    let sent = addr.and_then(|addr| {
        let socket = UnixDatagram::unbound()?;
        socket.send_to_addr(b"READY=1", &addr)
    });
    if let Err(e) = sent {
        tracing::warn!("could not tell systemd the service is ready ({path}): {e}");
    }
}
