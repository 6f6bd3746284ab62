//! The daemon, assembled. `App::build` opens the store, starts the writer and makes every
//! part that can refuse to start (webhook client, Kafka consumer, forwarder, the
//! listener), so a bad setting stops the daemon before it serves; `App::run` serves until
//! its shutdown token is cancelled, then stops within `server.shutdown_grace`.
//!
//! One token stops everything that runs on its own: the HTTP server (no new connections;
//! requests in flight finish), open event streams, the Kafka consumer (it stores what it
//! holds, commits and leaves its group), webhook delivery, and the problem and causality
//! schedules. The writer is not told: it drains and ends once the last pipeline handle is
//! gone, and the store closes last.
//!
//! This module wires and times; it must not parse arguments nor install logging (the
//! `sift` binary does), and decides nothing about alerts, incidents or deliveries.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::api::auth::Auth;
use crate::api::{self, ApiSettings, AppState};
use crate::cmdb::CiMapper;
use crate::config::{Config, ProblemsConfig};
use crate::delivery::{Delivery, DeliverySettings};
use crate::metrics::Metrics;
use crate::outbox::guard::Destinations;
use crate::pipeline::{Pipeline, Settings};
use crate::sources::Normalize;
use crate::sources::forward::Forwarder;
use crate::sources::kafka::KafkaSource;
use crate::store::{self, Store};

/// A built daemon: the store open, the writer running, the port bound; nothing served and
/// no background task started until `run`.
pub struct App {
    cfg: Config,
    store: Arc<dyn Store>,
    pipeline: Pipeline,
    writer: JoinHandle<()>,
    metrics: Arc<Metrics>,
    normalize: Arc<Normalize>,
    forward: Option<Arc<Forwarder>>,
    destinations: Arc<Destinations>,
    delivery: Delivery,
    kafka: Option<KafkaSource>,
    auth: Auth,
    listener: TcpListener,
    addr: SocketAddr,
}

impl App {
    /// Everything `cfg` asks for, ready to run; `server.listen` may name port 0.
    pub async fn build(cfg: Config) -> anyhow::Result<App> {
        let store = open_store(&cfg).await?;
        tracing::info!(store = %redact(&cfg.store.url), backend = store.backend(), "store ready");
        let metrics = Arc::new(Metrics::new());
        store
            .sync_config_subscriptions(&cfg.notify.webhooks)
            .await
            .context("cannot store the notify.webhooks subscriptions")?;
        let (pipeline, writer) =
            Pipeline::start(store.clone(), pipeline_settings(&cfg), metrics.clone()).await?;
        let destinations = Arc::new(
            Destinations::new(&cfg.notify.allow_networks).context("notify.allow_networks")?,
        );
        let delivery = Delivery::new(
            store.clone(),
            metrics.clone(),
            DeliverySettings {
                poll_interval: cfg.notify.poll_interval.std(),
                backoff_base: cfg.notify.backoff_base.0,
                backoff_max: cfg.notify.backoff_max.0,
                concurrency: cfg.notify.concurrency,
                ca_file: cfg.notify.ca_file.clone(),
                retention: cfg.notify.retention.0,
                destinations: destinations.clone(),
            },
        )
        .context("cannot start webhook delivery")?;
        let auth = Auth::new(cfg.auth.tokens.clone());
        if !auth.enabled() {
            tracing::warn!("auth is OFF: no auth.tokens configured, every API call is allowed");
        }
        let normalize = Arc::new(cfg.normalize());
        let kafka = match cfg
            .kafka
            .brokers
            .as_deref()
            .filter(|b| !b.trim().is_empty())
        {
            Some(brokers) => Some(
                KafkaSource::new(
                    &cfg.kafka,
                    pipeline.clone(),
                    metrics.clone(),
                    normalize.clone(),
                )
                .with_context(|| format!("cannot start the Kafka consumer on {brokers}"))?,
            ),
            None => None,
        };
        let forward = if cfg.kafka.forward_http {
            let f = Forwarder::new(
                &cfg.kafka,
                pipeline.topology().clone(),
                CiMapper::new(cfg.mapping.labels.clone()),
            )
            .context("cannot start forwarding HTTP intake to Kafka")?;
            tracing::info!("kafka.forward_http: HTTP intake is produced to Kafka");
            Some(Arc::new(f))
        } else {
            None
        };
        let listener = TcpListener::bind(&cfg.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", cfg.server.listen))?;
        let addr = listener.local_addr()?;
        Ok(App {
            cfg,
            store,
            pipeline,
            writer,
            metrics,
            normalize,
            forward,
            destinations,
            delivery,
            kafka,
            auth,
            listener,
            addr,
        })
    }

    /// The bound HTTP port (the one the system chose when `server.listen` names port 0).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Serves until `shutdown` is cancelled, then stops: `server.shutdown_grace` from the
    /// cancel bounds the whole exit, its last tenth (at most 2 s) kept for closing the
    /// store. Nothing acknowledged is lost when a part is cut short: re-sends not yet folded
    /// stay in the durable journal, an unfinished batch rolls back unacknowledged, and
    /// undelivered events stay in the outbox for the next start.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let App {
            cfg,
            store,
            pipeline,
            writer,
            metrics,
            normalize,
            forward,
            destinations,
            delivery,
            kafka,
            auth,
            listener,
            addr,
        } = self;
        let state = AppState {
            pipeline,
            store: store.clone(),
            metrics,
            normalize,
            forward,
            destinations,
            max_subscriptions: cfg.notify.max_subscriptions,
            shutdown: shutdown.clone(),
        };
        let learner =
            api::causality::Learner::with_correlate(cfg.causality.clone(), &cfg.correlate());
        // Loaded before serving, so the first alerts are grouped with the stored graph. One
        // that cannot be read does not stop the daemon: correlation goes on without one (as
        // with nothing learned), the log says why, and the next run replaces it.
        if let Err(e) = api::causality::refresh(&state, &learner).await {
            tracing::error!(error = %e, "cannot load the learned causality graph; going on without it");
        }
        let mut tasks: Vec<(&str, JoinHandle<()>)> = Vec::new();
        tasks.push((
            "webhook delivery",
            tokio::spawn(delivery.run(shutdown.clone())),
        ));
        if let Some(k) = kafka {
            tasks.push(("kafka consumer", tokio::spawn(k.run(shutdown.clone()))));
        }
        tasks.push((
            "problem clustering schedule",
            tokio::spawn(until(
                shutdown.clone(),
                cluster_problems(state.clone(), cfg.problems.clone()),
            )),
        ));
        tasks.push((
            "causality schedule",
            tokio::spawn(until(
                shutdown.clone(),
                keep_causality(state.clone(), learner.clone()),
            )),
        ));
        // The API plus the console's pages (the console calls the API's functions, so the
        // API does not know the console).
        let console = crate::console::router(&auth);
        let router = api::router_with(
            state,
            ApiSettings {
                auth,
                body_limit: cfg.server.body_limit_bytes,
                request_timeout: cfg.server.request_timeout.std(),
                problems: cfg.problems.clone(),
                causality: learner,
            },
            console,
        );
        tracing::info!("listening on http://{addr}");
        let server = serve_http(
            listener,
            router,
            cfg.server.header_read_timeout.std(),
            shutdown.clone().cancelled_owned(),
        );
        let mut server = std::pin::pin!(server);
        // The server ends only after the token is cancelled; whichever is seen first, the
        // grace period starts now.
        let served = tokio::select! {
            () = &mut server => true,
            () = shutdown.cancelled() => false,
        };
        tracing::info!("shutting down: no new connections, finishing in-flight requests");
        let grace = cfg.server.shutdown_grace.std();
        let close_budget = (grace / 10).min(Duration::from_secs(2));
        let deadline = Instant::now() + grace.saturating_sub(close_budget);
        if !served && tokio::time::timeout_at(deadline, server).await.is_err() {
            tracing::warn!("in-flight requests did not finish within {grace:?}; stopping anyway");
        }
        for (name, task) in tasks {
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                tracing::warn!("{name} did not stop within the grace period");
            }
        }
        // The router and the tasks (and with them every pipeline handle) are gone: the
        // writer drains and ends.
        let mut writer = writer;
        if tokio::time::timeout_at(deadline, &mut writer)
            .await
            .is_err()
        {
            tracing::warn!("writer did not drain within the grace period; stopping it");
            writer.abort();
            let _ = tokio::time::timeout(close_budget / 2, writer).await;
        }
        if tokio::time::timeout(close_budget / 2, store.close())
            .await
            .is_err()
        {
            tracing::warn!("store connections did not close in time; exiting anyway");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// `sift serve`: builds the daemon from `cfg` and runs it until SIGTERM or SIGINT.
pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    // Before anything else: from here on a signal is a graceful stop, never the default
    // exit, even while the store is still being opened.
    cancel_on_signal(shutdown.clone()).context("cannot install the signal handlers")?;
    App::build(cfg).await?.run(shutdown).await
}

/// Cancels `shutdown` on SIGTERM or SIGINT. The handlers are installed when this returns.
pub fn cancel_on_signal(shutdown: CancellationToken) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => shutdown.cancel(),
                _ = int.recv() => shutdown.cancel(),
                () = shutdown.cancelled() => {}
            }
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        tokio::select! {
            r = tokio::signal::ctrl_c() => if r.is_ok() { shutdown.cancel() },
            () = shutdown.cancelled() => {}
        }
    });
    Ok(())
}

/// The store of `cfg`, opened and migrated.
pub async fn open_store(cfg: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let store: Arc<dyn Store> = Arc::from(
        store::open(&cfg.store)
            .await
            .with_context(|| format!("cannot open store {}", redact(&cfg.store.url)))?,
    );
    store.migrate().await.context("cannot apply migrations")?;
    Ok(store)
}

/// The store URL without its password, for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

fn pipeline_settings(cfg: &Config) -> Settings {
    Settings {
        queue_capacity: cfg.ingest.queue_capacity,
        max_batch_alerts: cfg.ingest.max_batch_alerts,
        // Under the request timeout, so a write that cannot finish is answered by the
        // pipeline, which knows whether it was withdrawn or may have been stored.
        reply_deadline: {
            let t = cfg.server.request_timeout.std();
            t.saturating_sub(Duration::from_secs(1)).max(t / 2)
        },
        tick_interval: cfg
            .ingest
            .tick_interval
            .std()
            .max(Duration::from_millis(100)),
        resend_flush: cfg.ingest.resend_flush.std(),
        resend_journal_max: cfg.ingest.resend_journal_max,
        correlate: cfg.correlate(),
        mapper: CiMapper::new(cfg.mapping.labels.clone()),
        similar_history: cfg.incident.similar_history,
        causality_types: cfg.causality.type_labels.clone(),
    }
}

/// `work` until `shutdown` is cancelled, dropped where it is then (a schedule's run is
/// cut short; the next start runs it again).
async fn until(shutdown: CancellationToken, work: impl Future<Output = ()>) {
    shutdown.run_until_cancelled(work).await;
}

/// Reclusters every `problems.interval` (at least a minute; the first run a minute after
/// start, so a daemon restarted more often than the interval still reclusters); never
/// when the interval is zero.
async fn cluster_problems(st: AppState, cfg: ProblemsConfig) {
    let period = cfg.interval.std();
    if period.is_zero() {
        return;
    }
    let period = period.max(Duration::from_secs(60));
    let first = Instant::now() + Duration::from_secs(60);
    let mut tick = tokio::time::interval_at(first, period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = api::problems::recluster(&st, &cfg, Utc::now()).await {
            tracing::warn!(error = %e, "scheduled problem clustering failed");
        }
    }
}

/// How often the causality schedule looks at the store: picks up a graph or overrides
/// another daemon on the same store changed, and relearns when `causality.interval` has
/// passed since the stored run (so a restart neither repeats nor postpones a run).
const CAUSALITY_CHECK_EVERY: Duration = Duration::from_secs(60);

/// Keeps the pipeline's causality graph fresh and relearns every `causality.interval`
/// (never when it is zero; the first run at the earliest a minute after start).
async fn keep_causality(st: AppState, learner: Arc<api::causality::Learner>) {
    let first = Instant::now() + CAUSALITY_CHECK_EVERY;
    let mut tick = tokio::time::interval_at(first, CAUSALITY_CHECK_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let every = learner.cfg.interval.0;
    loop {
        tick.tick().await;
        let due = if every <= chrono::Duration::zero() {
            false
        } else {
            match st.store.load_causality().await {
                Ok(Some(g)) => Utc::now() - g.learned_at >= every,
                Ok(None) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the stored causality graph");
                    false
                }
            }
        };
        if due {
            if let Err(e) = api::causality::relearn(&st, &learner, Utc::now()).await {
                tracing::warn!(error = %e, "scheduled causality learning failed");
            }
        } else if let Err(e) = api::causality::refresh(&st, &learner).await {
            tracing::warn!(error = %e, "cannot refresh the causality graph");
        }
    }
}

/// Serves HTTP/1.1 like `axum::serve`, plus a header read timeout (axum sets no timer, so
/// hyper's own would never fire): a connection that does not deliver a request's headers
/// within `header_read_timeout` is closed. When `shutdown` completes: stop accepting, let
/// open connections finish their in-flight request, then return.
async fn serve_http(
    listener: TcpListener,
    app: axum::Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(
            redact("postgres://sift:secret@db:5432/sift"),
            "postgres://sift:***@db:5432/sift"
        );
        assert_eq!(redact("postgres://sift@db/sift"), "postgres://sift@db/sift");
        assert_eq!(redact("sqlite://sift.db"), "sqlite://sift.db");
    }
}
