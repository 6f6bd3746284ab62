//! Layered configuration: built-in defaults < the config file < `SIFT_*` environment.
//!
//! `config/sift.toml` documents every key with its default. Unknown keys are errors (a typo
//! must not be silently ignored). Durations are strings with a unit (`500ms`, `30s`, `5m`,
//! `2h`, `1d`; at most 10,000 years). An environment override of a list or table takes JSON.

use std::fmt;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::alert::Source;
use crate::correlate::CorrelateConfig;
pub use crate::duration::Dur;
use crate::incident::PriorityMatrix;
use crate::sources::kafka::KafkaConfig;
use crate::sources::{alertmanager, registry};
pub use crate::store::{SqliteSync, StoreConfig};

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub auth: AuthConfig,
    pub log: LogConfig,
    pub ingest: IngestConfig,
    pub mapping: MappingConfig,
    pub correlate: CorrelateSection,
    pub incident: IncidentConfig,
    pub kafka: KafkaConfig,
    pub problems: ProblemsConfig,
    pub causality: CausalityConfig,
    pub notify: NotifyConfig,
}

/// Outbound incident events: webhook subscriptions and how they are delivered.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// `[[notify.webhooks]]`: name, url, events, preset, secret, timeout, max_attempts.
    pub webhooks: Vec<crate::outbox::Subscription>,
    /// How often the delivery task looks for due events when idle.
    pub poll_interval: Dur,
    /// First retry delay; doubles per attempt (with jitter) up to `backoff_max`.
    pub backoff_base: Dur,
    pub backoff_max: Dur,
    /// Webhook requests in flight at once.
    pub concurrency: usize,
    /// Extra CA certificates (PEM bundle) trusted for https:// receivers, beside the
    /// system's roots (an in-house CA, a self-signed receiver).
    pub ca_file: Option<PathBuf>,
    /// Delivered events are kept this long (GET /api/v1/outbox), then deleted.
    pub retention: Dur,
    /// Internal networks receivers may be on (`10.20.0.0/16`, `127.0.0.1`): by default
    /// deliveries to loopback, private, link-local (cloud metadata) and other internal
    /// addresses are refused, after DNS resolution and on every redirect.
    pub allow_networks: Vec<String>,
    /// Most subscriptions (config and API together); past it, the API refuses new ones.
    pub max_subscriptions: usize,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            webhooks: Vec::new(),
            poll_interval: Dur::secs(1),
            backoff_base: Dur::secs(5),
            backoff_max: Dur::secs(3600),
            concurrency: 8,
            ca_file: None,
            retention: Dur::secs(7 * 86_400),
            allow_networks: Vec::new(),
            max_subscriptions: 100,
        }
    }
}

/// `[causality]`: how a history of alerts is judged for learned causality
/// (`sift causality learn`; see `crate::causality`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CausalityConfig {
    /// Longest lag from a cause to its effect.
    pub window: Dur,
    /// False-discovery rate over every alert-type pair tested.
    pub fdr: f64,
    /// Only the most frequent alert types are learned (bounds memory).
    pub max_types: usize,
    /// Labels whose values, joined with `/`, make an alert's type.
    pub type_labels: Vec<String>,
    /// How often the daemon relearns from the alerts it stored (`0s`: only on
    /// `POST /api/v1/causality/relearn`).
    pub interval: Dur,
    /// How far back the daemon reads stored alert occurrences (by start time).
    pub lookback: Dur,
    /// Most occurrences one relearn reads (bounds memory); past it the oldest are left out
    /// and the summary says how many.
    pub max_occurrences: usize,
}

impl Default for CausalityConfig {
    fn default() -> Self {
        let c = crate::causality::LearnConfig::default();
        Self {
            window: Dur::secs(c.window_s),
            fdr: c.fdr,
            max_types: c.max_types,
            type_labels: c.type_labels,
            interval: Dur::secs(86_400),
            lookback: Dur::secs(30 * 86_400),
            max_occurrences: 1_000_000,
        }
    }
}

impl CausalityConfig {
    pub fn learn(&self) -> crate::causality::LearnConfig {
        crate::causality::LearnConfig {
            window_s: self.window.0.num_seconds(),
            fdr: self.fdr,
            max_types: self.max_types,
            type_labels: self.type_labels.clone(),
        }
    }
}

/// `[problems]`: scheduled problem clustering and its settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProblemsConfig {
    /// How often the daemon reclusters (`0s`: never on a schedule, only on request).
    pub interval: Dur,
    /// How far back incidents are clustered (by when they opened).
    pub lookback: Dur,
    /// DBSCAN radius on unit word vectors (cosine ≥ 1 - eps²/2).
    pub eps: f64,
    /// Smallest problem, and DBSCAN's core size.
    pub min_pts: usize,
    /// How many dependency hops upstream an incident may point for its root CI.
    pub hops: u32,
    /// False-discovery rate of candidates judged against their scope's base rate.
    pub fdr: f64,
    /// No candidate holds more than this share of the history.
    pub max_share: f64,
}

impl Default for ProblemsConfig {
    fn default() -> Self {
        let c = crate::problem::ProblemConfig::default();
        Self {
            interval: Dur::secs(86_400),
            lookback: Dur::secs(180 * 86_400),
            eps: c.eps,
            min_pts: c.min_pts,
            hops: c.hops,
            fdr: c.fdr,
            max_share: c.max_share,
        }
    }
}

impl ProblemsConfig {
    pub fn cluster(&self) -> crate::problem::ProblemConfig {
        crate::problem::ProblemConfig {
            eps: self.eps,
            min_pts: self.min_pts,
            hops: self.hops,
            fdr: self.fdr,
            max_share: self.max_share,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorrelateSection {
    /// An alert joins the incident of a firing CI it depends on when it starts within
    /// this long of that CI's first alert in the incident (propagation window). `"auto"`:
    /// learned from history per relation type (`causality::lags`), 5m until learned; it
    /// then also sets `late_root_window`.
    pub window: crate::duration::WindowSetting,
    /// A CI that an incident's root depends on, alerting within this long of the incident
    /// opening, becomes the new root.
    pub late_root_window: Dur,
    /// Most dependency hops between two alerting CIs that are correlated.
    pub max_hops: u32,
    /// Most CIs on that path that are not alerting themselves (a bound on the walk).
    pub max_silent_hops: u32,
    /// The propagation window grows by this per hop beyond the first ...
    pub hop_window: Dur,
    /// ... up to this.
    pub max_window: Dur,
    /// Score factor of each CI on a link's path that is not alerting (before fan-out).
    pub silent_weight: f64,
    /// A CI this many CIs depend on weighs half as a silent link or suspected root.
    pub fanout_scale: u32,
    /// Least score of a link through silent CIs.
    pub min_link_score: f64,
    /// Least support of a suspected root.
    pub min_root_support: f64,
    /// Factor per silent CI between a symptom and a suspected root.
    pub root_gap_weight: f64,
    /// Least share of a suspected root's direct dependents that must be symptoms.
    pub min_root_share: f64,
    /// Name a shared dependency that is not alerting as the suspected root.
    pub silent_roots: bool,
    /// Let an orphan (a CI with no dependency in the CMDB while most CIs of its type have
    /// one) join an incident whose root has CIs of its type alerting under it.
    pub orphan_links: bool,
    /// An alert changing state more than `flap_threshold` times within `flap_window` is
    /// flapping: its incident stays open until it has been steady for `flap_window`.
    pub flap_threshold: usize,
    pub flap_window: Dur,
    /// Per alert name: how long its rule holds an alert back before firing (its `for:`).
    /// Timing is judged from each alert's start less this. Learned holds (`sift tune`,
    /// `[causality]`) fill in the names not listed here.
    pub rule_hold: std::collections::BTreeMap<String, Dur>,
    /// Use the holds the causality learner finds for alert names `rule_hold` does not list.
    pub learn_holds: bool,
}

impl Default for CorrelateSection {
    fn default() -> Self {
        let c = CorrelateConfig::default();
        Self {
            window: if c.auto_window {
                crate::duration::WindowSetting::Auto
            } else {
                crate::duration::WindowSetting::Fixed(Dur(c.window))
            },
            late_root_window: Dur(c.late_root_window),
            max_hops: c.max_hops,
            max_silent_hops: c.max_silent_hops,
            hop_window: Dur(c.hop_window),
            max_window: Dur(c.max_window),
            silent_weight: c.silent_weight,
            fanout_scale: c.fanout_scale,
            min_link_score: c.min_link_score,
            min_root_support: c.min_root_support,
            root_gap_weight: c.root_gap_weight,
            min_root_share: c.min_root_share,
            silent_roots: c.silent_roots,
            orphan_links: c.orphan_links,
            flap_threshold: c.flap_threshold,
            flap_window: Dur(c.flap_window),
            rule_hold: c.rule_hold.into_iter().map(|(k, v)| (k, Dur(v))).collect(),
            learn_holds: c.learn_holds,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: String,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// A request taking longer than this is answered 503.
    pub request_timeout: Dur,
    /// A client must send a request's complete headers within this long of connecting (or
    /// of its previous response); otherwise the connection is closed. Idle and slow
    /// clients cannot hold connections open.
    pub header_read_timeout: Dur,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish.
    pub shutdown_grace: Dur,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9400".into(),
            body_limit_bytes: 10 * 1024 * 1024,
            request_timeout: Dur::secs(30),
            header_read_timeout: Dur::secs(10),
            shutdown_grace: Dur::secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    pub token: String,
    pub role: Role,
    /// Shown in incident timelines as the actor; defaults to the role.
    #[serde(default)]
    pub name: Option<String>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("role", &self.role)
            .field("name", &self.name)
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Empty: auth is off (the log says so at start).
    pub tokens: Vec<Token>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `sift=debug,info`. `RUST_LOG` wins when set.
    pub level: String,
}

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Requests waiting for the writer; past this, senders get 503 + Retry-After.
    pub queue_capacity: usize,
    /// Most alerts written in one transaction (group commit).
    pub max_batch_alerts: usize,
    /// How often event time moves on with the clock when no alert arrives.
    pub tick_interval: Dur,
    /// A re-send that changes only an alert's count and `endsAt` is journaled (compact,
    /// durable) and the alert's row is rewritten once it is this old (or the journal holds
    /// a million entries), so each alert's row is written about once per interval however
    /// often it is re-sent.
    pub resend_flush: Dur,
    /// Entries (about 40 bytes each) the re-send journal may hold before its oldest rows
    /// are folded into alert rows whatever their age: bounds its size, what a restart after
    /// a crash reads, and what `GET /api/v1/alerts` reads through.
    pub resend_journal_max: usize,
    /// A firing alert sent without `endsAt` (API v2 list) expires this long after arrival.
    pub resolve_timeout: Dur,
    /// Alert timestamps further ahead of arrival than this are taken as arrival time.
    pub max_future_skew: Dur,
    /// Per-source dedup label sets, e.g. `alertmanager = ["alertname", "instance"]`.
    /// Unset: the sender's fingerprint, else the hash of all labels.
    pub dedup_labels: std::collections::BTreeMap<String, Vec<String>>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 1024,
            max_batch_alerts: 5000,
            tick_interval: Dur::secs(5),
            resend_flush: Dur::secs(300),
            resend_journal_max: 1_000_000,
            resolve_timeout: Dur::secs(300),
            max_future_skew: Dur::secs(300),
            dedup_labels: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MappingConfig {
    /// Labels tried in order to find an alert's CI.
    pub labels: Vec<String>,
}

impl Default for MappingConfig {
    fn default() -> Self {
        Self {
            labels: crate::cmdb::CiMapper::default().labels().to_vec(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentConfig {
    /// Wait between the last alert resolving and the incident resolving.
    pub resolve_hold_off: Dur,
    /// An alert firing again within this long of its incident resolving reopens it;
    /// later, it opens a new incident.
    pub reopen_window: Dur,
    /// How long resolved alerts and incidents stay in memory for dedup of late re-sends.
    pub memory_retention: Dur,
    /// Labels left out of the fallback group key of alerts that map to no CI.
    pub fallback_ignore_labels: Vec<String>,
    /// ITIL matrix: key `"<impact><urgency>"` (each 1..3) → priority 1..5. Unset: the
    /// ITIL default (priority = impact + urgency - 1). When set, all nine cells are needed
    /// (`PriorityMatrix` parses and checks them).
    pub priority_matrix: Option<PriorityMatrix>,
    /// Changes on the root CI or what it depends on that ended within this long before an
    /// incident opened are listed in its enrichment (`recent_changes`).
    pub change_lookback: Dur,
    /// Assignment when the root CI has no owner group (or there is no CI): the first rule
    /// matching the opening alert's labels, `{label, value?, group?}`; without `group` the
    /// label's value is the group.
    pub assignment_rules: Vec<crate::correlate::AssignmentRule>,
    /// `[incident.sla] p1 = {respond = "15m", resolve = "4h"}`: targets per priority
    /// (`p1`..`p5`). A priority without an entry has no SLA. Default: none.
    pub sla: std::collections::BTreeMap<SlaPriority, SlaConfig>,
    /// How many finished incidents (the newest) are read at start as the history that
    /// `similar_incidents` draws on; later ones join it as they finish.
    pub similar_history: u32,
}

/// A key of `incident.sla`: `p1` (the highest priority) .. `p5`, as written in TOML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlaPriority(u8);

impl SlaPriority {
    /// The priority, 1..=5.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl fmt::Display for SlaPriority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

impl std::str::FromStr for SlaPriority {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_prefix('p').and_then(|n| n.parse::<u8>().ok()) {
            Some(p @ 1..=5) if s.len() == 2 => Ok(SlaPriority(p)),
            _ => Err(format!("incident.sla: key {s:?} must be one of p1..p5")),
        }
    }
}

impl Serialize for SlaPriority {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SlaPriority {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Response (acknowledge) and resolution targets of one priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaConfig {
    pub respond: Dur,
    pub resolve: Dur,
}

impl Default for IncidentConfig {
    fn default() -> Self {
        let c = CorrelateConfig::default();
        Self {
            resolve_hold_off: Dur(c.resolve_hold_off),
            reopen_window: Dur(c.reopen_window),
            memory_retention: Dur(c.alert_retention),
            fallback_ignore_labels: c.fallback_ignore_labels,
            priority_matrix: None,
            change_lookback: Dur(c.change_lookback),
            assignment_rules: c.assignment_rules,
            sla: Default::default(),
            similar_history: 20_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    Missing(PathBuf),
    #[error("environment variable {var} holds invalid JSON: {err}")]
    EnvJson { var: String, err: serde_json::Error },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// `SIFT_*` variables of the online commands (`sift::cli`): not configuration, so a shell
/// that sets them can still run `sift serve` or `sift cmdb import`.
const CLIENT_VARS: &[&str] = &["SIFT_URL", "SIFT_TOKEN"];

impl Config {
    /// Loads defaults < `file` (or `config/sift.toml` when it exists) < `SIFT_*` env.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, &env)
    }

    pub fn load_from(file: Option<&Path>, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(p) if !p.exists() => return Err(ConfigError::Missing(p.to_path_buf())),
            Some(p) => fig = fig.merge(Toml::file(p)),
            None => {
                let p = Path::new("config/sift.toml");
                if p.exists() {
                    fig = fig.merge(Toml::file(p));
                }
            }
        }
        // Lists and tables come as JSON; scalars are read the way figment reads env values.
        let mut tree = figment::value::Dict::new();
        for (k, v) in env {
            let Some(rest) = k.strip_prefix("SIFT_") else {
                continue;
            };
            // The operator CLI's own variables, set in the same shells: not daemon settings.
            if CLIENT_VARS.contains(&k.as_str()) {
                continue;
            }
            let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
            let t = v.trim_start();
            let val: figment::value::Value = if t.starts_with('[') || t.starts_with('{') {
                let json: serde_json::Value =
                    serde_json::from_str(v).map_err(|err| ConfigError::EnvJson {
                        var: k.clone(),
                        err,
                    })?;
                figment::value::Value::serialize(json)
                    .map_err(|e| ConfigError::Invalid(format!("{k}: {e}")))?
            } else {
                v.parse()
                    .unwrap_or_else(|_| figment::value::Value::from(v.clone()))
            };
            insert_path(&mut tree, &path, val);
        }
        fig = fig.merge(Serialized::globals(tree));
        let cfg: Config = fig
            .extract()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        cfg.check()?;
        Ok(cfg)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        let c = &self.correlate;
        let unit = |x: f64| x > 0.0 && x <= 1.0;
        for (k, v) in [
            ("silent_weight", c.silent_weight),
            ("min_link_score", c.min_link_score),
            ("min_root_support", c.min_root_support),
            ("root_gap_weight", c.root_gap_weight),
            ("min_root_share", c.min_root_share),
        ] {
            if !unit(v) {
                return bad(format!("correlate.{k} must be in (0, 1], not {v}"));
            }
        }
        if c.fanout_scale == 0 {
            return bad("correlate.fanout_scale must be at least 1".into());
        }
        if let Err(e) = self.causality.learn().validate() {
            return bad(format!("causality: {e}"));
        }
        if self.causality.lookback.0 <= chrono::Duration::zero() {
            return bad("causality.lookback must be more than zero".into());
        }
        if self.causality.max_occurrences == 0 {
            return bad("causality.max_occurrences must be at least 1".into());
        }
        for (k, v) in &self.incident.sla {
            if v.respond.0 <= chrono::Duration::zero() || v.resolve.0 < v.respond.0 {
                return bad(format!(
                    "incident.sla.{k}: respond must be more than zero and resolve at least respond"
                ));
            }
        }
        crate::outbox::validate_all(&self.notify.webhooks)
            .map_err(|e| ConfigError::Invalid(format!("notify.webhooks: {e}")))?;
        let dest = crate::outbox::guard::Destinations::new(&self.notify.allow_networks)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        for w in &self.notify.webhooks {
            if let Ok(u) = reqwest::Url::parse(&w.url) {
                dest.check_url(&u).map_err(|e| {
                    ConfigError::Invalid(format!("notify.webhooks {}: {e}", w.name))
                })?;
            }
        }
        if self.notify.webhooks.len() > self.notify.max_subscriptions {
            return Err(ConfigError::Invalid(format!(
                "notify.webhooks has {} subscriptions, more than notify.max_subscriptions ({})",
                self.notify.webhooks.len(),
                self.notify.max_subscriptions
            )));
        }
        if self.notify.retention.0 <= chrono::Duration::zero() {
            return Err(ConfigError::Invalid(
                "notify.retention must be more than zero".into(),
            ));
        }
        if self.notify.concurrency == 0 || self.notify.poll_interval.0 <= chrono::Duration::zero() {
            return bad(
                "notify.concurrency and notify.poll_interval must be more than zero".into(),
            );
        }
        if self.ingest.queue_capacity == 0 || self.ingest.max_batch_alerts == 0 {
            return bad(
                "ingest.queue_capacity and ingest.max_batch_alerts must be at least 1".into(),
            );
        }
        if self
            .kafka
            .brokers
            .as_deref()
            .is_some_and(|b| !b.trim().is_empty())
        {
            if self.kafka.topics.is_empty() {
                return bad("kafka.brokers is set but kafka.topics is empty".into());
            }
            if self.kafka.group_id.trim().is_empty()
                || self.kafka.dead_letter_topic.trim().is_empty()
            {
                return bad("kafka.group_id and kafka.dead_letter_topic must not be empty".into());
            }
            if self.kafka.forward_http
                && !self
                    .kafka
                    .topics
                    .iter()
                    .any(|t| t.format.as_str() == alertmanager::ALERT_LIST.name)
            {
                return bad(
                    "kafka.forward_http needs a kafka.topics entry with format alert_list".into(),
                );
            }
            if self.kafka.batch_max_messages == 0 {
                return bad("kafka.batch_max_messages must be at least 1".into());
            }
        }
        for src in self.ingest.dedup_labels.keys() {
            if Source::parse(src).is_none() {
                return bad(format!(
                    "ingest.dedup_labels: unknown source {src:?} ({})",
                    registry::sources().join(", ")
                ));
            }
        }
        if !(self.problems.eps.is_finite() && self.problems.eps > 0.0) || self.problems.min_pts < 2
        {
            return bad(format!(
                "problems.eps must be a positive number and problems.min_pts at least 2 (got {} and {})",
                self.problems.eps, self.problems.min_pts
            ));
        }
        for t in &self.auth.tokens {
            if t.token.len() < 8 {
                return bad(format!(
                    "auth.tokens: the {} token is shorter than 8 characters",
                    t.role.as_str()
                ));
            }
        }
        Ok(())
    }

    pub fn correlate(&self) -> CorrelateConfig {
        CorrelateConfig {
            resolve_hold_off: self.incident.resolve_hold_off.0,
            alert_retention: self.incident.memory_retention.0,
            fallback_ignore_labels: self.incident.fallback_ignore_labels.clone(),
            priority_matrix: self.incident.priority_matrix.unwrap_or_default(),
            max_hops: self.correlate.max_hops,
            window: match self.correlate.window {
                crate::duration::WindowSetting::Fixed(d) => d.0,
                crate::duration::WindowSetting::Auto => CorrelateConfig::default().window,
            },
            late_root_window: self.correlate.late_root_window.0,
            max_silent_hops: self.correlate.max_silent_hops,
            hop_window: self.correlate.hop_window.0,
            max_window: self.correlate.max_window.0,
            silent_weight: self.correlate.silent_weight,
            fanout_scale: self.correlate.fanout_scale,
            min_link_score: self.correlate.min_link_score,
            min_root_support: self.correlate.min_root_support,
            root_gap_weight: self.correlate.root_gap_weight,
            min_root_share: self.correlate.min_root_share,
            silent_roots: self.correlate.silent_roots,
            orphan_links: self.correlate.orphan_links,
            reopen_window: self.incident.reopen_window.0,
            flap_threshold: self.correlate.flap_threshold,
            flap_window: self.correlate.flap_window.0,
            change_lookback: self.incident.change_lookback.0,
            assignment_rules: self.incident.assignment_rules.clone(),
            sla: self
                .incident
                .sla
                .iter()
                .map(|(k, v)| {
                    (
                        k.get(),
                        crate::correlate::SlaTarget {
                            respond: v.respond.0,
                            resolve: v.resolve.0,
                        },
                    )
                })
                .collect(),
            rule_hold: self
                .correlate
                .rule_hold
                .iter()
                .map(|(k, v)| (k.clone(), v.0))
                .collect(),
            learn_holds: self.correlate.learn_holds,
            auto_window: self.correlate.window == crate::duration::WindowSetting::Auto,
            relation_window: Default::default(),
        }
    }

    pub fn normalize(&self) -> crate::sources::Normalize {
        crate::sources::Normalize {
            received_at: None,
            resolve_timeout: self.ingest.resolve_timeout.0,
            max_future_skew: self.ingest.max_future_skew.0,
            dedup_labels: self
                .ingest
                .dedup_labels
                .iter()
                .filter_map(|(s, l)| Source::parse(s).map(|s| (s, l.clone())))
                .collect(),
        }
    }
}

fn insert_path(tree: &mut figment::value::Dict, path: &[String], val: figment::value::Value) {
    match path {
        [] => {}
        [last] => {
            tree.insert(last.clone(), val);
        }
        [head, rest @ ..] => {
            let e = tree
                .entry(head.clone())
                .or_insert_with(|| figment::value::Dict::new().into());
            if e.as_dict().is_none() {
                *e = figment::value::Dict::new().into();
            }
            if let figment::value::Value::Dict(_, m) = e {
                insert_path(m, rest, val);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn defaults_and_env_overrides() {
        let c = Config::load_from(
            Some(Path::new("config/sift.toml")).filter(|p| p.exists()),
            &[],
        )
        .unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:9400");
        let c = Config::load_from(
            None,
            &env(&[
                ("SIFT_SERVER__LISTEN", "127.0.0.1:0"),
                ("SIFT_STORE__URL", "sqlite:///tmp/x.db"),
                (
                    "SIFT_AUTH__TOKENS",
                    r#"[{"token":"t1-secret","role":"admin"}]"#,
                ),
                ("SIFT_INCIDENT__RESOLVE_HOLD_OFF", "2m"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:0");
        assert_eq!(c.store.url, "sqlite:///tmp/x.db");
        assert_eq!(c.auth.tokens[0].role, Role::Admin);
        assert_eq!(c.incident.resolve_hold_off, Dur::secs(120));
    }

    #[test]
    fn sift_toml_documents_exactly_the_built_in_defaults() {
        // The shipped file is the defaults written out: loading it must change nothing, or
        // a user reading it is told a default the daemon does not have.
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sift.toml");
        let from_file = Config::load_from(Some(&file), &[]).unwrap();
        let built_in = Config::default();
        let (a, b) = (
            serde_json::to_value(&from_file).unwrap(),
            serde_json::to_value(&built_in).unwrap(),
        );
        let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
            panic!("config is not an object");
        };
        for (section, v) in b {
            assert_eq!(
                a.get(section),
                Some(v),
                "[{section}] in config/sift.toml differs from the built-in defaults"
            );
        }
        assert_eq!(a.len(), b.len());
    }

    #[test]
    fn the_window_can_be_auto_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sift.toml");
        // The default.
        assert!(
            Config::load_from(None, &[])
                .unwrap()
                .correlate()
                .auto_window
        );
        std::fs::write(&file, "[correlate]\nwindow = \"auto\"\n").unwrap();
        let c = Config::load_from(Some(&file), &[]).unwrap().correlate();
        assert!(c.auto_window);
        // Until something is learned, the default window.
        assert_eq!(c.window, CorrelateConfig::default().window);
        std::fs::write(&file, "[correlate]\nwindow = \"7m\"\n").unwrap();
        let c = Config::load_from(Some(&file), &[]).unwrap().correlate();
        assert!(!c.auto_window);
        assert_eq!(c.window, chrono::Duration::minutes(7));
        std::fs::write(&file, "[correlate]\nwindow = \"learned\"\n").unwrap();
        let e = Config::load_from(Some(&file), &[]).unwrap_err().to_string();
        assert!(e.contains("window") && e.contains("auto"), "{e}");
    }

    #[test]
    fn rule_holds_are_read_from_the_file_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sift.toml");
        std::fs::write(
            &file,
            "[correlate]\nlearn_holds = false\n[correlate.rule_hold]\nSLOBurnRateHigh = \"15m\"\n\"Kube Pod\" = \"90s\"\n",
        )
        .unwrap();
        let c = Config::load_from(Some(&file), &[]).unwrap().correlate();
        assert!(!c.learn_holds);
        assert_eq!(
            c.rule_hold["SLOBurnRateHigh"],
            chrono::Duration::minutes(15)
        );
        assert_eq!(c.rule_hold["Kube Pod"], chrono::Duration::seconds(90));
        std::fs::write(&file, "[correlate.rule_hold]\nX = \"soon\"\n").unwrap();
        let e = Config::load_from(Some(&file), &[]).unwrap_err().to_string();
        assert!(e.contains("rule_hold"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let e = Config::load_from(
            None,
            &env(&[("SIFT_INCIDENT__RESOLVE_HOLD_OFF", "5 minutes")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("unit"), "{e}");
        let e = Config::load_from(None, &env(&[("SIFT_SERVER__LISTN", "x")])).unwrap_err();
        assert!(e.to_string().contains("listn"), "{e}");
        let e = Config::load_from(
            None,
            &env(&[("SIFT_INCIDENT__PRIORITY_MATRIX", r#"{"11":1}"#)]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("no entry"), "{e}");
    }

    #[test]
    fn closed_sets_of_words_are_parsed_at_load() {
        let c = Config::load_from(
            None,
            &env(&[
                ("SIFT_LOG__FORMAT", "json"),
                ("SIFT_STORE__SQLITE_SYNCHRONOUS", "normal"),
                (
                    "SIFT_INCIDENT__SLA",
                    r#"{"p1":{"respond":"15m","resolve":"4h"},"p5":{"respond":"1d","resolve":"7d"}}"#,
                ),
            ]),
        )
        .unwrap();
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.store.sqlite_synchronous, SqliteSync::Normal);
        let keys: Vec<String> = c.incident.sla.keys().map(|k| k.to_string()).collect();
        assert_eq!(keys, ["p1", "p5"]);
        assert_eq!(
            c.correlate().sla.keys().copied().collect::<Vec<_>>(),
            [1, 5]
        );
        // Written back as they were read.
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["log"]["format"], "json");
        assert_eq!(v["store"]["sqlite_synchronous"], "normal");
        assert!(v["incident"]["sla"]["p5"].is_object());
        for (k, v, named) in [
            ("SIFT_LOG__FORMAT", "xml", "xml"),
            ("SIFT_STORE__SQLITE_SYNCHRONOUS", "off", "off"),
            (
                "SIFT_INCIDENT__SLA",
                r#"{"p6":{"respond":"1m","resolve":"1h"}}"#,
                "p1..p5",
            ),
            (
                "SIFT_INCIDENT__SLA",
                r#"{"p01":{"respond":"1m","resolve":"1h"}}"#,
                "p01",
            ),
        ] {
            let e = Config::load_from(None, &env(&[(k, v)])).unwrap_err();
            assert!(e.to_string().contains(named), "{k}={v}: {e}");
        }
    }

    #[test]
    fn the_operator_cli_variables_are_not_settings() {
        let c = Config::load_from(
            None,
            &env(&[
                ("SIFT_URL", "http://sift:9400"),
                ("SIFT_TOKEN", "t0ken"),
                ("SIFT_SERVER__LISTEN", "127.0.0.1:0"),
            ]),
        )
        .expect("SIFT_URL and SIFT_TOKEN are the CLI's");
        assert_eq!(c.server.listen, "127.0.0.1:0");
        let e = Config::load_from(None, &env(&[("SIFT_URLS", "x")])).unwrap_err();
        assert!(e.to_string().contains("urls"), "{e}");
    }

    #[test]
    fn kafka_keys() {
        let c = Config::load_from(None, &[]).unwrap();
        assert!(c.kafka.brokers.is_none(), "Kafka is off by default");
        let c = Config::load_from(
            None,
            &env(&[
                ("SIFT_KAFKA__BROKERS", "127.0.0.1:9092"),
                (
                    "SIFT_KAFKA__TOPICS",
                    r#"[{"name":"alerts","format":"alertmanager_webhook"},{"name":"pd","format":"pagerduty"}]"#,
                ),
            ]),
        )
        .unwrap();
        assert_eq!(c.kafka.brokers.as_deref(), Some("127.0.0.1:9092"));
        assert_eq!(c.kafka.group_id, "sift");
        assert_eq!(c.kafka.dead_letter_topic, "sift-dead-letter");
        assert_eq!(c.kafka.topics[1].format.as_str(), "pagerduty");
        for (bad, says) in [
            (r#"[{"name":"a","format":"avro"}]"#, "avro"),
            (
                r#"[{"name":"a","format":"alert_list","partitions":3}]"#,
                "partitions",
            ),
            ("[]", "topics is empty"),
        ] {
            let e = Config::load_from(
                None,
                &env(&[
                    ("SIFT_KAFKA__BROKERS", "k:9092"),
                    ("SIFT_KAFKA__TOPICS", bad),
                ]),
            )
            .unwrap_err();
            assert!(e.to_string().contains(says), "{bad}: {e}");
        }
        let e = Config::load_from(
            None,
            &env(&[
                ("SIFT_KAFKA__BROKERS", "k:9092"),
                ("SIFT_KAFKA__FORWARD_HTTP", "true"),
                (
                    "SIFT_KAFKA__TOPICS",
                    r#"[{"name":"a","format":"pagerduty"}]"#,
                ),
            ]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("alert_list"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(Dur::parse("500ms").unwrap().0.num_milliseconds(), 500);
        assert_eq!(Dur::parse("2h").unwrap().to_string(), "2h");
        assert_eq!(Dur::parse("0").unwrap().0.num_milliseconds(), 0);
        assert!(Dur::parse("5x").is_err());
        assert!(Dur::parse("3650000d").is_ok());
        let e = Dur::parse("999999999999d").unwrap_err();
        assert!(e.contains("at most 3650000d"), "{e}");
    }
}
