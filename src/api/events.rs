//! `GET /api/v1/events`: a Server-Sent Events stream of incident events (the same
//! `incident.*` events as the webhooks, generic body) for live consumers, sent after their
//! batch commits. Best effort by design: a reader that falls behind gets a `lagged` event
//! and continues with newer events; durable delivery is the outbox's job.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::AppState;

/// Most bytes of frames written to a reader at once.
const COALESCE_BYTES: usize = 256 * 1024;

/// `first` and the frames already waiting behind it, as one write: under a storm a
/// reader costs one write per batch, not one per event. A lone frame is not copied.
fn coalesce(first: Arc<[u8]>, rx: &mut tokio::sync::broadcast::Receiver<Arc<[u8]>>) -> Bytes {
    let mut buf: Option<Vec<u8>> = None;
    loop {
        if buf.as_ref().is_some_and(|b| b.len() >= COALESCE_BYTES) {
            break;
        }
        match rx.try_recv() {
            Ok(f) => buf
                .get_or_insert_with(|| first.to_vec())
                .extend_from_slice(&f),
            Err(TryRecvError::Lagged(n)) => buf
                .get_or_insert_with(|| first.to_vec())
                .extend_from_slice(format!("event: lagged\ndata: {n}\n\n").as_bytes()),
            Err(_) => break,
        }
    }
    match buf {
        Some(b) => Bytes::from(b),
        None => Bytes::from_owner(first),
    }
}

/// Every reader gets the same prebuilt frames (a reference count each, no copy nor
/// encoding per reader), so hundreds of readers cost the writer nothing and the runtime
/// little; a comment line at once, then every 15 s, keeps idle connections open through
/// proxies. A stream ends when the daemon's shutdown token is cancelled, so a graceful
/// shutdown does not wait for its readers.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "events",
    summary = "Live incident events (Server-Sent Events)",
    description = "`event: incident.opened|incident.updated|incident.resolved|incident.closed` with the incident event as `data` (the generic webhook body), sent after their batch commits; `event: lagged` with how many were missed when a reader falls behind; a comment line at once and every 15 s. Best effort: durable delivery is the outbox's (webhook subscriptions).",
    responses(
        (status = 200, description = "An endless `text/event-stream`.", content_type = "text/event-stream", body = String),
    ),
)]
pub async fn stream(State(st): State<AppState>) -> Response {
    let rx = st.pipeline.events();
    let halt = st.shutdown.clone();
    let mut keep_alive = tokio::time::interval(Duration::from_secs(15));
    keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: a comment at once tells the reader the stream is open
    // (Firefox's EventSource reports it open only on the first bytes, not on the headers).
    let frames = futures_util::stream::unfold(
        (rx, halt, keep_alive),
        |(mut rx, halt, mut keep_alive)| async move {
            if halt.is_cancelled() {
                return None;
            }
            let frame = tokio::select! {
                r = rx.recv() => match r {
                    Ok(f) => coalesce(f, &mut rx),
                    Err(RecvError::Lagged(n)) => Bytes::from(format!("event: lagged\ndata: {n}\n\n")),
                    Err(RecvError::Closed) => return None,
                },
                _ = keep_alive.tick() => Bytes::from_static(b":\n\n"),
                () = halt.cancelled() => return None,
            };
            Some((Ok::<_, Infallible>(frame), (rx, halt, keep_alive)))
        },
    );
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(frames),
    )
        .into_response()
}
