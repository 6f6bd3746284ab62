//! The delivery task: claims due outbox rows, POSTs them, records the outcome.
//!
//! It runs beside the pipeline and never holds the writer: a slow or hanging receiver
//! costs one of `concurrency` slots for at most its subscription's timeout. A claim leases
//! a row (moves its `next_at` past the request timeout), so a crash mid-request only
//! delays the row; receivers dedupe on `event_id`. Rows of one (subscription, incident)
//! go one at a time, in order.
//!
//! A receiver that fails is backed off as a whole (`Breakers`): its pending events wait
//! together, and after each wait at most `concurrency` of them probe it, so a dead
//! receiver with a large backlog costs a few requests per backoff interval, not one per
//! event. Destinations are checked by `outbox::guard`: internal addresses only when
//! allowed.
//!
//! It is apart from `outbox` because it reads the store: the outbox's types and rules sit
//! below the store, the task above it. It must not decide anything about incidents nor
//! which events exist (the writer enqueued them).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::outbox::guard::{Destinations, Resolver};
use crate::outbox::{OutboxEntry, Outcome, Subscription, preset};
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// How often to look for due rows when nothing is in flight.
    pub poll_interval: Duration,
    /// First retry delay; doubles per attempt up to `backoff_max`, with jitter.
    pub backoff_base: chrono::Duration,
    pub backoff_max: chrono::Duration,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Extra trusted CA certificates (PEM) for https:// receivers, beside the system's.
    pub ca_file: Option<PathBuf>,
    /// Delivered rows older than this are deleted (pending and dead rows stay).
    pub retention: chrono::Duration,
    /// Where deliveries may go.
    pub destinations: Arc<Destinations>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("notify.ca_file {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Redirects a delivery follows at most.
const MAX_REDIRECTS: usize = 5;

/// The HTTP(S) client deliveries go through: rustls with the ring provider, the system's
/// trust roots plus `ca_file`'s certificates; names resolve only to allowed addresses,
/// and a redirect to an address not allowed is refused.
pub fn client(
    ca_file: Option<&Path>,
    destinations: Arc<Destinations>,
) -> Result<reqwest::Client, StartError> {
    // Several callers (tests start many daemons in one process) race for this; the
    // first one wins and they all install the same provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let redirect_guard = destinations.clone();
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("sift/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(Resolver { destinations }))
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            match redirect_guard.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(b) => attempt.error(b),
            }
        }));
    if let Some(path) = ca_file {
        let bad = |reason: String| StartError::CaFile {
            path: path.to_path_buf(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| bad(format!("not a PEM certificate bundle: {e}")))?;
        if certs.is_empty() {
            return Err(bad("holds no PEM certificate".into()));
        }
        builder = builder.tls_certs_merge(certs);
    }
    Ok(builder.build()?)
}

/// The delivery loop, ready to run. Made before the daemon serves, so a bad
/// `notify.ca_file` stops it at start rather than after it took traffic.
pub struct Delivery {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    settings: DeliverySettings,
    client: reqwest::Client,
}

impl Delivery {
    pub fn new(
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        settings: DeliverySettings,
    ) -> Result<Self, StartError> {
        let client = client(settings.ca_file.as_deref(), settings.destinations.clone())?;
        Ok(Self {
            store,
            metrics,
            settings,
            client,
        })
    }

    /// Delivers until `shutdown` is cancelled, then stops where it is, requests in flight
    /// included: what was not recorded as delivered stays in the outbox (a claimed row's
    /// lease runs out), and the next start delivers it; receivers dedupe on `event_id`.
    pub async fn run(self, shutdown: CancellationToken) {
        let Self {
            store,
            metrics,
            settings,
            client,
        } = self;
        shutdown
            .run_until_cancelled(run(store, metrics, settings, client))
            .await;
    }
}

/// How often delivered rows past retention are swept (more often when retention is
/// shorter than this, never more often than the poll interval).
const PURGE_EVERY: Duration = Duration::from_secs(600);

/// Receivers that failed: until when their events wait, and how many waits in a row.
#[derive(Default)]
struct Breakers {
    open: HashMap<String, (i64, chrono::DateTime<Utc>)>,
}

impl Breakers {
    /// A delivery to `sub` failed: unless it already waits, it waits `backoff` (growing
    /// with each failed probe); returns the new end of the wait.
    fn failed(&mut self, sub: &str, s: &DeliverySettings) -> Option<chrono::DateTime<Utc>> {
        let now = Utc::now();
        let (trips, until) = self.open.entry(sub.to_string()).or_insert((0, now));
        if *until > now {
            return None; // a failure of the probes already counted
        }
        *trips += 1;
        *until = now + backoff(s, *trips, sub);
        Some(*until)
    }

    /// The end of `sub`'s wait, while it waits.
    fn waiting(&self, sub: &str) -> Option<chrono::DateTime<Utc>> {
        self.open
            .get(sub)
            .map(|(_, until)| *until)
            .filter(|u| *u > Utc::now())
    }

    fn delivered(&mut self, sub: &str) {
        self.open.remove(sub);
    }
}

async fn run(
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    s: DeliverySettings,
    client: reqwest::Client,
) {
    let concurrency = s.concurrency.max(1);
    let mut in_flight: JoinSet<(String, bool)> = JoinSet::new();
    let mut breakers = Breakers::default();
    let purge_every = s
        .retention
        .to_std()
        .unwrap_or(PURGE_EVERY)
        .clamp(s.poll_interval, PURGE_EVERY.max(s.poll_interval));
    let mut next_purge = tokio::time::Instant::now();
    let mut next_count = tokio::time::Instant::now();
    loop {
        if tokio::time::Instant::now() >= next_purge {
            next_purge = tokio::time::Instant::now() + purge_every;
            match store.purge_outbox(Utc::now() - s.retention).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    rows = n,
                    "purged delivered outbox rows past notify.retention"
                ),
                Err(e) => tracing::warn!(error = %e, "cannot purge delivered outbox rows"),
            }
        }
        let free = concurrency.saturating_sub(in_flight.len());
        let mut claimed = 0;
        if free > 0 {
            // Events of a receiver that waits (written since its wait began) join the
            // wait instead of being tried.
            let mut join_wait: HashMap<String, chrono::DateTime<Utc>> = HashMap::new();
            match claim(&store, free).await {
                Ok((subs, rows)) => {
                    claimed = rows.len();
                    for row in rows {
                        let Some(sub) = subs.get(&row.subscription).cloned() else {
                            continue; // deleted since: its rows were removed with it
                        };
                        if let Some(until) = breakers.waiting(&sub.name) {
                            join_wait.insert(sub.name.clone(), until);
                            continue;
                        }
                        let (store, metrics, client, s) =
                            (store.clone(), metrics.clone(), client.clone(), s.clone());
                        in_flight.spawn(async move {
                            let outcome = attempt(&client, &sub, &row, &s).await;
                            let delivered = matches!(outcome, Outcome::Delivered { .. });
                            let label = match &outcome {
                                Outcome::Delivered { .. } => "delivered",
                                Outcome::Retry { error, .. } => {
                                    tracing::warn!(subscription = %sub.name, event_id = %row.event_id, error = %error, "delivery failed; will retry");
                                    "failed"
                                }
                                Outcome::Dead { error, .. } => {
                                    tracing::error!(subscription = %sub.name, event_id = %row.event_id, error = %error, "delivery failed for the last time; dead-lettered");
                                    "dead"
                                }
                            };
                            metrics
                                .notify_deliveries
                                .with_label_values(&[sub.name.as_str(), label])
                                .inc();
                            if let Err(e) = store.finish_outbox(row.id, &outcome).await {
                                // The lease runs out and the row is tried again.
                                tracing::error!(error = %e, "cannot record a delivery outcome");
                            }
                            (sub.name, delivered)
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot claim outbox rows"),
            }
            for (sub, until) in join_wait {
                if let Err(e) = store.postpone_outbox(&sub, until).await {
                    tracing::warn!(error = %e, "cannot postpone a failing receiver's events");
                }
            }
        }
        // Counting pending rows reads the whole queue: once per poll interval at most.
        if tokio::time::Instant::now() >= next_count {
            next_count = tokio::time::Instant::now() + s.poll_interval;
            if let Ok(n) = store.outbox_pending().await {
                metrics.outbox_pending.set(n);
            }
        }
        if claimed > 0 && in_flight.len() < concurrency {
            continue; // there may be more due right now
        }
        tokio::select! {
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                if let Ok((sub, ok)) = done {
                    if ok {
                        breakers.delivered(&sub);
                    } else if let Some(until) = breakers.failed(&sub, &s) {
                        match store.postpone_outbox(&sub, until).await {
                            Ok(n) => tracing::info!(subscription = %sub, events = n, until = %until, "receiver failing; its events wait"),
                            Err(e) => tracing::warn!(error = %e, "cannot postpone a failing receiver's events"),
                        }
                    }
                }
            }
            _ = tokio::time::sleep(s.poll_interval) => {}
        }
    }
}

async fn claim(
    store: &Arc<dyn Store>,
    limit: usize,
) -> Result<(HashMap<String, Subscription>, Vec<OutboxEntry>), crate::store::StoreError> {
    let subs: HashMap<String, Subscription> = store
        .list_subscriptions()
        .await?
        .into_iter()
        .map(|(s, _)| (s.name.clone(), s))
        .collect();
    if subs.is_empty() {
        // Nothing to deliver to: no lock taken (on SQLite a claim holds the write lock).
        return Ok((subs, Vec::new()));
    }
    let longest = subs
        .values()
        .map(|s| s.timeout.0)
        .max()
        .unwrap_or_else(|| chrono::Duration::seconds(10));
    let now = Utc::now();
    let lease_until = now + longest + chrono::Duration::seconds(5);
    let rows = store.claim_outbox(now, lease_until, limit as u32).await?;
    Ok((subs, rows))
}

async fn attempt(
    client: &reqwest::Client,
    sub: &Subscription,
    row: &OutboxEntry,
    s: &DeliverySettings,
) -> Outcome {
    let attempts = row.attempts + 1;
    let result = post(client, sub, row, &s.destinations).await;
    match result {
        Ok(()) => Outcome::Delivered { at: Utc::now() },
        Err(error) if attempts >= i64::from(sub.max_attempts) => Outcome::Dead { attempts, error },
        Err(error) => Outcome::Retry {
            attempts,
            next_at: Utc::now() + backoff(s, attempts, &row.event_id),
            error,
        },
    }
}

async fn post(
    client: &reqwest::Client,
    sub: &Subscription,
    row: &OutboxEntry,
    destinations: &Destinations,
) -> Result<(), String> {
    // An address in the URL never reaches the resolver: check it here.
    if let Ok(u) = reqwest::Url::parse(&sub.url) {
        destinations.check_url(&u).map_err(|b| b.to_string())?;
    }
    let generic: serde_json::Value =
        serde_json::from_str(&row.body).map_err(|e| format!("stored body is corrupt: {e}"))?;
    let body = serde_json::to_vec(&preset::shape(sub.preset, &generic))
        .map_err(|e| format!("cannot encode body: {e}"))?;
    let mut req = client
        .post(&sub.url)
        .timeout(sub.timeout.std())
        .header("content-type", "application/json")
        .header("x-sift-event", row.event.as_str())
        .header("x-sift-event-id", row.event_id.as_str());
    if let Some(secret) = &sub.secret {
        req = req.header("x-sift-signature", preset::signature(secret, &body));
    }
    let resp = req.body(body).send().await.map_err(|e| {
        if e.is_timeout() {
            format!("no answer within {}", sub.timeout)
        } else {
            format!("request failed: {}", chain(&e))
        }
    })?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("receiver answered {status}"))
    }
}

/// An error with its causes, `a: b: c` (reqwest's own text leaves out why: a refused
/// connection, an untrusted certificate).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cause = c.source();
    }
    out
}

/// `base * 2^(attempts-1)`, capped at `max`, then scaled into [50%, 100%] by a jitter
/// derived from the event id and attempt (spreads retries of a burst without a RNG).
pub fn backoff(s: &DeliverySettings, attempts: i64, event_id: &str) -> chrono::Duration {
    let exp = attempts.clamp(1, 30) - 1;
    let base = s.backoff_base.num_milliseconds().max(1);
    let max = s.backoff_max.num_milliseconds().max(base);
    let full = base.saturating_mul(1i64 << exp).min(max);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in event_id.bytes().chain(attempts.to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let frac = 500 + (h % 501) as i64; // per mille
    chrono::Duration::milliseconds(full * frac / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_ca_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = client(Some(&missing), Arc::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("notify.ca_file ") && e.contains("nope.pem"),
            "{e}"
        );
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let d = Arc::new(Destinations::default());
        let e = client(Some(&junk), d.clone()).unwrap_err().to_string();
        assert!(e.contains("no PEM certificate"), "{e}");
        assert!(client(None, d).is_ok());
    }

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let s = DeliverySettings {
            poll_interval: Duration::from_secs(1),
            backoff_base: chrono::Duration::seconds(1),
            backoff_max: chrono::Duration::seconds(60),
            concurrency: 1,
            ca_file: None,
            retention: chrono::Duration::days(7),
            destinations: Arc::default(),
        };
        let ms = |a| backoff(&s, a, "INC0000001:3:incident.opened").num_milliseconds();
        assert!((500..=1000).contains(&ms(1)));
        assert!((2000..=4000).contains(&ms(3)));
        assert!((30_000..=60_000).contains(&ms(20)));
        assert_ne!(
            backoff(&s, 2, "a").num_milliseconds(),
            backoff(&s, 2, "b").num_milliseconds()
        );
    }
}
