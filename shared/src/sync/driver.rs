//! The one shape of every driver of a [`Session`]: the session says what to do (its events), a [`Host`] does
//! it with its own store and link, and [`pump`] runs the two in the order the protocol needs. The hub's
//! `serve`, the edge's `sync` and the simulator in `tests/` differ only in their `Host`.
//!
//! No I/O here: the host's methods are `async` so that a driver can await its database and its connection,
//! and a driver with an in-memory store answers them at once.

use super::{Event, Session};

/// What a driver does for its session.
// Drivers are called with concrete types, so whether their futures are `Send` is seen through; no bound is
// needed on the trait.
#[allow(async_fn_in_trait)]
pub trait Host {
    type Error;

    /// Acts on one event: loads or stores what it names, answers the session (`provide`, `want_blobs`,
    /// `blob_stored`…). For `SendBlobs` every frame the session queued before has been sent already, and the
    /// host streams the pieces itself (`Session::blob_chunk_frame`, then `Session::blobs_sent`).
    async fn on_event(&mut self, session: &mut Session, event: Event) -> Result<(), Self::Error>;

    /// Called before queued frames are sent: a frame may acknowledge what the host has been handed, so it must
    /// be stored first (the hub stores received pieces in batches).
    async fn before_transmit(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }

    /// Sends one frame to the peer.
    async fn transmit(&mut self, frame: Vec<u8>) -> Result<(), Self::Error>;
}

/// Acts on every queued event, then sends every queued frame. A driver calls it after each frame it hands to
/// `Session::handle` (and once at the start); between calls it only receives.
pub async fn pump<H: Host>(session: &mut Session, host: &mut H) -> Result<(), H::Error> {
    while let Some(event) = session.poll_event() {
        if matches!(event, Event::SendBlobs(_)) {
            // The host's pieces follow what the session queued before (frames are numbered in that order).
            transmit(session, host).await?;
        }
        host.on_event(session, event).await?;
    }
    transmit(session, host).await
}

async fn transmit<H: Host>(session: &mut Session, host: &mut H) -> Result<(), H::Error> {
    let mut frames = std::iter::from_fn(|| session.poll_transmit()).peekable();
    if frames.peek().is_none() {
        return Ok(());
    }
    host.before_transmit().await?;
    for frame in frames {
        host.transmit(frame).await?;
    }
    Ok(())
}
