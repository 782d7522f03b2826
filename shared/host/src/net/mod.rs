//! Networking shared by the hub and the edge: the private PKI, the rustls configurations and
//! the framed QUIC / TLS-over-TCP transport.
//!
//! This is the only part of `datum-shared` that does I/O, draws randomness or reads the clock (certificate
//! validity is checked against the current time by webpki). The pure core never depends on it, and without
//! the feature none of tokio, quinn or rustls is compiled (`tests/layering.rs`).

pub mod pki;
pub mod tls;
pub mod transport;
