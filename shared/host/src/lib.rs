//! `datum-host`: what both binaries share with the operating system, written once.
//!
//! The pure core (`datum-shared`) decides; this crate does: the QUIC / TLS-over-TCP transport and the private
//! PKI ([`net`]), the mapping of outcomes and error kinds to exit codes ([`exit`]), the command-line arguments
//! both take ([`cli`]) and what they print ([`output`]), the process set-up every binary does first — clock,
//! logging, file mode, SIGPIPE ([`process`]) — crash-safe private files ([`fs`]), the web server scaffolding,
//! sessions and authentication ([`web`], [`auth`]) and the auditor's evidence pack on disk ([`evidence`]),
//! once, for edge and hub.

pub mod auth;
pub mod cli;
pub mod evidence;
pub mod exit;
pub mod fs;
pub mod net;
pub mod output;
pub mod process;
pub mod web;
pub mod zip;
