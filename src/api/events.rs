//! `GET /api/v1/events`: a Server-Sent Events stream of incident events (the same
//! `incident.*` events as the webhooks, generic body) for live consumers, sent after their
//! batch commits. Best effort by design: a reader that falls behind gets a `lagged` event
//! and continues with newer events; durable delivery is the outbox's job.

use std::convert::Infallible;
use std::sync::OnceLock;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::AppState;

/// Set at shutdown: open streams end, so graceful shutdown does not wait for readers.
fn stop() -> &'static tokio::sync::watch::Sender<bool> {
    static STOP: OnceLock<tokio::sync::watch::Sender<bool>> = OnceLock::new();
    STOP.get_or_init(|| tokio::sync::watch::channel(false).0)
}

/// Ends every open event stream (called when the daemon starts shutting down).
pub fn stop_streams() {
    stop().send_replace(true);
}

pub async fn stream(
    State(st): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = st.pipeline.events();
    let halt = stop().subscribe();
    let events = futures_util::stream::unfold((rx, halt), |(mut rx, mut halt)| async move {
        if *halt.borrow() {
            return None;
        }
        let got = tokio::select! {
            r = rx.recv() => r,
            _ = halt.changed() => return None,
        };
        let e = match got {
            Ok(ev) => Event::default()
                .event(ev.kind.as_str())
                .id(ev.event_id.clone())
                .data(ev.body.as_str()),
            Err(RecvError::Lagged(n)) => Event::default().event("lagged").data(n.to_string()),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(e), (rx, halt)))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}
