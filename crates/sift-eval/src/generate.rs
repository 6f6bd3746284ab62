//! The synthetic estate and its alert stream.
//!
//! Estate: business services depend on applications; applications run on hosts and
//! depend on databases, caches, queues and on each other (towards older applications
//! only, as teams build on what exists); databases, caches and queues are hosted on
//! hosts; hosts connect to their rack's top-of-rack switch, racks to their data centre's
//! core switch, core switches to the core router. Some infrastructure is shared (an
//! identity service, a Kafka cluster, a Redis cluster, the core network).
//!
//! Faults: a fault starts on a root CI and spreads to what depends on it, breadth first,
//! each hop with a lower chance and a later start (20–90 s per hop plus jitter), bounded
//! in hops and CIs. Every affected CI emits 1–3 alerts named as its exporters would name
//! them. Monitoring is imperfect: re-sends, flapping, late roots, resolves minutes after
//! recovery, aliases and `IP:port` instances, CIs missing from the CMDB, noise, and
//! faults that overlap in time.
//!
//! [`Knobs`] move the world away from those defaults, one property at a time: how much of
//! an impact monitoring sees (coverage falling with depth, roots that never alert), how
//! slowly impact spreads and how long alert rules wait (`for:`), how wrong the CMDB is,
//! how often independent faults overlap, how much noise there is, and which labels name a
//! CI. Each knob models the world or its monitoring, never what sift does with it. Knobs
//! draw from random streams of their own, and only when set away from their defaults, so
//! `Knobs::default()` gives the original scenarios byte for byte and a knob changes only
//! what it names (the same estate and faults, seen differently).

use std::collections::{HashMap, HashSet, VecDeque};

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::json;

use serde::Serialize;

use super::{EstateSize, GroupKind, Rng, Scenario, TrueGroup, Truth};
use sift::alert::{Fingerprint, Labels};
use sift::cmdb::{Ci, CmdbFile, Criticality, Relation};

/// How far a scenario departs from the default world (see the module doc). The default
/// is the original generator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Knobs {
    /// Share of impacted CIs that alert at three or more hops from the root; the share
    /// falls linearly from 1 at the root to this at depth 3 (per CI and fault: it may be
    /// unmonitored, or degraded below its thresholds). 1 = every impacted CI alerts.
    pub coverage: f64,
    /// Share of faults whose root CI raises no alert at all.
    pub silent_roots: f64,
    /// How long impact takes to cross one dependency.
    pub lag: Lag,
    /// Longest `for:` clause of an alert rule, in minutes. Each alert name is one rule,
    /// with a `for:` of 0, 1, 2, 5, 10 or 15 minutes (as long as this allows; 2 at most
    /// for availability rules such as `HostDown`) fixed per scenario; an alert starts that
    /// much after its CI is impacted, and an impact shorter than the rule's `for:` never
    /// fires. 0 = alerts start when impact does.
    pub for_max_min: u32,
    /// Share of the true relations missing from the CMDB sift is given.
    pub cmdb_missing: f64,
    /// Spurious relations added to the CMDB, as a share of the true relation count.
    pub cmdb_spurious: f64,
    /// Share of CIs absent from the CMDB (with their relations); monitoring still names
    /// them, and a fault rooted on one has no root CI sift could name.
    pub cmdb_absent: f64,
    /// Chance that a fault starts within three minutes of an earlier, independent one.
    pub overlap: f64,
    /// Single noise alerts per fault.
    pub noise: f64,
    /// Which labels name a CI.
    pub labels: LabelStyle,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            coverage: 1.0,
            silent_roots: 0.0,
            lag: Lag::Default,
            for_max_min: 0,
            cmdb_missing: 0.0,
            cmdb_spurious: 0.0,
            cmdb_absent: 0.0,
            overlap: 0.2,
            noise: 1.5,
            labels: LabelStyle::Mixed,
        }
    }
}

/// Per-hop propagation delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lag {
    /// 20–90 s plus up to 15 s of jitter (the original generator).
    Default,
    /// Heavy-tailed: Pareto with shape 1 from 10 s, capped at 5 minutes (median 20 s,
    /// one hop in six over a minute, one in thirty at the cap): most hops are quick,
    /// some are very slow (retries, timeouts, queues draining).
    HeavyTail,
}

/// Which labels monitoring uses to name a CI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelStyle {
    /// The original mix: `instance` as IP, FQDN or CMDB id with the exporter's port,
    /// `service`/`pod` for applications, a `ci` label on one alert in ten.
    Mixed,
    /// `instance` is always `IP:port` where the CI has an address (hosts, datastore
    /// VIPs, network gear); no `ci` labels.
    IpPort,
    /// Zabbix/Nagios style: a `host` label with the CI's short name and no port, instead
    /// of `instance`; no `ci` labels.
    Host,
    /// CMDB-aware senders: every alert carries `ci` with the CMDB id.
    Ci,
}

impl LabelStyle {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "mixed" => Self::Mixed,
            "ip_port" | "ip:port" => Self::IpPort,
            "host" => Self::Host,
            "ci" => Self::Ci,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mixed => "mixed",
            Self::IpPort => "ip:port",
            Self::Host => "host",
            Self::Ci => "ci",
        }
    }
}

impl Knobs {
    /// Probability that an impacted CI `hops` from the root alerts.
    fn alert_chance(&self, hops: u32) -> f64 {
        if hops == 0 {
            1.0 - self.silent_roots
        } else {
            1.0 - (1.0 - self.coverage) * f64::from(hops.min(3)) / 3.0
        }
    }

    /// The `for:` of the rule that raises `alertname` in scenario `seed`: availability
    /// rules (down, unreachable, crash-looping, failed probes) wait 0–2 minutes, as common
    /// rule sets have them; degradation rules (latency, errors, lag, saturation, burn
    /// rates) anything up to `for_max_min`. Fixed per name and scenario.
    pub fn for_clause(&self, seed: u64, alertname: &str) -> Duration {
        if self.for_max_min == 0 {
            return Duration::zero();
        }
        let availability = [
            "Down",
            "Unreachable",
            "NotRunning",
            "CrashLooping",
            "Failed",
        ]
        .iter()
        .any(|w| alertname.contains(w));
        let cap = if availability { 2 } else { 15 };
        let levels: Vec<i64> = [0, 1, 2, 5, 10, 15]
            .into_iter()
            .filter(|&m| m <= i64::from(self.for_max_min).min(cap))
            .collect();
        // FNV-1a of the name, mixed with the seed: one fixed rule set per scenario.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for b in alertname.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let mut r = Rng::new(h);
        Duration::minutes(*r.pick(&levels))
    }

    /// Renames the CI-identifying labels of an alert on `node` to this style.
    fn restyle(&self, labels: &mut Labels, node: Option<&Node>) {
        match self.labels {
            LabelStyle::Mixed => {}
            LabelStyle::Ci => {
                if let Some(n) = node {
                    labels.insert("ci".into(), n.id.clone());
                }
            }
            LabelStyle::IpPort => {
                labels.remove("ci");
                if let (Some(n), Some(inst)) = (node, labels.get("instance"))
                    && let (Some(ip), Some((_, port))) = (&n.ip, inst.rsplit_once(':'))
                    && port.bytes().all(|c| c.is_ascii_digit())
                {
                    let v = format!("{ip}:{port}");
                    labels.insert("instance".into(), v);
                }
            }
            LabelStyle::Host => {
                labels.remove("ci");
                if let Some(inst) = labels.remove("instance") {
                    let host = match node {
                        Some(n) => n.name.clone(),
                        None => match inst.rsplit_once(':') {
                            Some((h, p)) if p.bytes().all(|c| c.is_ascii_digit()) => h.to_string(),
                            _ => inst,
                        },
                    };
                    labels.insert("host".into(), host);
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    BusinessService,
    Application,
    Host,
    Database,
    Cache,
    Queue,
    Network,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::BusinessService => "business_service",
            Kind::Application => "application",
            Kind::Host => "host",
            Kind::Database => "database",
            Kind::Cache => "cache",
            Kind::Queue => "queue",
            Kind::Network => "network",
        }
    }
}

/// What the generator knows of a CI beyond the CMDB record: how monitoring names it.
#[derive(Debug, Clone)]
struct Node {
    kind: Kind,
    /// postgres | mysql | redis | kafka | rabbitmq | switch | router | "" (others).
    flavor: &'static str,
    id: String,
    name: String,
    ip: Option<String>,
    fqdn: Option<String>,
    url: Option<String>,
    /// CIs that depend on this one (impact flows here).
    dependents: Vec<usize>,
}

const SERVICES: &[&str] = &[
    "checkout",
    "payments",
    "orders",
    "catalog",
    "search",
    "accounts",
    "shipping",
    "billing",
    "inventory",
    "pricing",
    "reviews",
    "loyalty",
    "notifications",
    "reporting",
    "returns",
    "recommendations",
    "invoicing",
    "fraud",
    "support",
    "marketing",
];
const COMPONENTS: &[&str] = &[
    "api",
    "web",
    "worker",
    "gateway",
    "scheduler",
    "consumer",
    "backend",
    "frontend",
];

struct Dc {
    n: u32,
    core_sw: usize,
    tor: usize,
    rack: u32,
    in_rack: u32,
    rack_size: u32,
}

struct Builder<'r> {
    rng: &'r mut Rng,
    nodes: Vec<Node>,
    cis: Vec<Ci>,
    relations: Vec<Relation>,
    dcs: Vec<Dc>,
    vips: u32,
    hosts: u32,
    apps: Vec<usize>,
    shared: Vec<usize>,
}

impl Builder<'_> {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        kind: Kind,
        flavor: &'static str,
        id: String,
        name: String,
        ip: Option<String>,
        fqdn: Option<String>,
        url: Option<String>,
        criticality: Criticality,
        owner: &str,
        dc: Option<u32>,
    ) -> usize {
        let mut aliases: Vec<String> = [&ip, &fqdn, &url].into_iter().flatten().cloned().collect();
        if name != id {
            // Names are matched too; keep an alias only when it says something new.
            aliases.retain(|a| *a != name);
        }
        let mut attributes = std::collections::BTreeMap::new();
        attributes.insert("env".to_string(), json!("prod"));
        if let Some(dc) = dc {
            attributes.insert("dc".to_string(), json!(format!("dc{dc}")));
        }
        if !flavor.is_empty() {
            attributes.insert("technology".to_string(), json!(flavor));
        }
        self.cis.push(Ci {
            id: id.clone(),
            name: (name != id).then(|| name.clone()),
            ci_type: Some(kind.as_str().to_string()),
            criticality,
            owner_group: Some(owner.to_string()),
            aliases,
            attributes,
        });
        self.nodes.push(Node {
            kind,
            flavor,
            id,
            name,
            ip,
            fqdn,
            url,
            dependents: Vec::new(),
        });
        self.nodes.len() - 1
    }

    /// `source` depends on `target`.
    fn relate(&mut self, source: usize, target: usize, ty: &str) {
        if source == target || self.nodes[target].dependents.contains(&source) {
            return;
        }
        self.nodes[target].dependents.push(source);
        self.relations.push(Relation {
            source: self.nodes[source].id.clone(),
            target: self.nodes[target].id.clone(),
            rel_type: ty.to_string(),
        });
    }

    fn network(&mut self, dcs: u32) {
        for n in 1..=dcs {
            let rtr = self.add(
                Kind::Network,
                "router",
                format!("core-rtr-dc{n}"),
                format!("core-rtr-dc{n}"),
                Some(format!("10.250.{n}.1")),
                Some(format!("core-rtr-dc{n}.net.prod.example")),
                None,
                Criticality::Critical,
                "network-team",
                Some(n),
            );
            let sw = self.add(
                Kind::Network,
                "switch",
                format!("core-sw-dc{n}"),
                format!("core-sw-dc{n}"),
                Some(format!("10.250.{n}.2")),
                Some(format!("core-sw-dc{n}.net.prod.example")),
                None,
                Criticality::Critical,
                "network-team",
                Some(n),
            );
            self.relate(sw, rtr, "connects_to");
            let rack_size = self.rng.range(12, 24) as u32;
            self.dcs.push(Dc {
                n,
                core_sw: sw,
                tor: usize::MAX,
                rack: 0,
                in_rack: rack_size,
                rack_size,
            });
        }
    }

    /// A new host in a random data centre, in the rack being filled there.
    fn host(&mut self, role: &str, criticality: Criticality) -> usize {
        let d = self.rng.index(self.dcs.len());
        if self.dcs[d].in_rack >= self.dcs[d].rack_size {
            let (n, rack, core) = (self.dcs[d].n, self.dcs[d].rack + 1, self.dcs[d].core_sw);
            let tor = self.add(
                Kind::Network,
                "switch",
                format!("tor-dc{n}-r{rack:03}"),
                format!("tor-dc{n}-r{rack:03}"),
                Some(format!("10.250.{}.{}", n, rack + 10)),
                Some(format!("tor-dc{n}-r{rack:03}.net.prod.example")),
                None,
                Criticality::High,
                "network-team",
                Some(n),
            );
            self.relate(tor, core, "connects_to");
            let dc = &mut self.dcs[d];
            dc.tor = tor;
            dc.rack = rack;
            dc.in_rack = 0;
        }
        let dc = &mut self.dcs[d];
        dc.in_rack += 1;
        let (n, rack, slot, tor) = (dc.n, dc.rack, dc.in_rack, dc.tor);
        self.hosts += 1;
        let id = format!("{role}-dc{n}-{:04}", self.hosts);
        let h = self.add(
            Kind::Host,
            "",
            id.clone(),
            id.clone(),
            Some(format!("10.{}.{}.{}", n, rack % 250, slot + 10)),
            Some(format!("{id}.dc{n}.prod.example")),
            None,
            criticality,
            "linux-ops",
            Some(n),
        );
        self.relate(h, tor, "connects_to");
        h
    }

    fn vip(&mut self) -> String {
        self.vips += 1;
        format!("10.200.{}.{}", self.vips / 250, self.vips % 250 + 1)
    }

    /// A database, cache or queue on 1–3 hosts of its own.
    fn datastore(&mut self, kind: Kind, flavor: &'static str, base: &str, hosts: u32) -> usize {
        let (prefix, owner) = match kind {
            Kind::Database => ("db", "dba-team"),
            Kind::Cache => ("cache", "middleware-team"),
            _ => ("mq", "middleware-team"),
        };
        let id = format!("{prefix}-{base}-{flavor}");
        let name = format!("{base}-{flavor}");
        let vip = self.vip();
        let crit = if kind == Kind::Cache {
            Criticality::Medium
        } else {
            Criticality::High
        };
        let ds = self.add(
            kind,
            flavor,
            id,
            name.clone(),
            Some(vip),
            Some(format!("{name}.db.prod.example")),
            None,
            crit,
            owner,
            None,
        );
        for _ in 0..hosts {
            let h = self.host(prefix, Criticality::Medium);
            self.relate(ds, h, "hosted_on");
        }
        ds
    }

    fn application(&mut self, name: String, criticality: Criticality, team: &str) -> usize {
        let app = self.add(
            Kind::Application,
            "",
            format!("app-{name}"),
            name.clone(),
            None,
            Some(format!("{name}.svc.prod.example")),
            None,
            criticality,
            team,
            None,
        );
        for _ in 0..self.rng.range(2, 4) {
            let h = self.host("app", Criticality::Medium);
            self.relate(app, h, "runs_on");
        }
        if self.rng.chance(0.7) {
            let flavor = if self.rng.chance(0.75) {
                "postgres"
            } else {
                "mysql"
            };
            let hosts = if self.rng.chance(0.3) { 2 } else { 1 };
            let db = self.datastore(Kind::Database, flavor, &name, hosts);
            self.relate(app, db, "depends_on");
        }
        if self.rng.chance(0.35) {
            let c = self.datastore(Kind::Cache, "redis", &name, 1);
            self.relate(app, c, "depends_on");
        }
        if self.rng.chance(0.2) {
            let q = self.datastore(Kind::Queue, "rabbitmq", &name, 1);
            self.relate(app, q, "depends_on");
        }
        for s in self.shared.clone() {
            if self.rng.chance(0.25) {
                self.relate(app, s, "depends_on");
            }
        }
        if !self.apps.is_empty() && self.rng.chance(0.25) {
            let other = *self.rng.pick(&self.apps);
            self.relate(app, other, "depends_on");
        }
        self.apps.push(app);
        app
    }

    fn service(&mut self, idx: usize) {
        let base = SERVICES[idx % SERVICES.len()];
        let name = match idx / SERVICES.len() {
            0 => base.to_string(),
            k => format!("{base}{}", k + 1),
        };
        let crit = if self.rng.chance(0.4) {
            Criticality::Critical
        } else {
            Criticality::High
        };
        let bs = self.add(
            Kind::BusinessService,
            "",
            format!("bs-{name}"),
            name.clone(),
            None,
            None,
            Some(format!("https://{name}.example.com")),
            crit,
            "service-owners",
            None,
        );
        let team = format!("team-{name}");
        let mut comps: Vec<&str> = COMPONENTS.to_vec();
        self.rng.shuffle(&mut comps);
        let n_apps = self.rng.range(2, 5) as usize;
        for comp in comps.into_iter().take(n_apps) {
            let app_crit = if self.rng.chance(0.5) {
                crit
            } else {
                Criticality::Medium
            };
            let app = self.application(format!("{name}-{comp}"), app_crit, &team);
            self.relate(bs, app, "depends_on");
        }
        if self.apps.len() > n_apps && self.rng.chance(0.3) {
            let other = *self.rng.pick(&self.apps);
            self.relate(bs, other, "depends_on");
        }
    }
}

fn build_estate(rng: &mut Rng, size: EstateSize) -> (Vec<Node>, CmdbFile) {
    let (base, dcs) = match size {
        EstateSize::Small => (50.0, 1),
        EstateSize::Medium => (500.0, 1 + rng.range(0, 1) as u32),
        EstateSize::Large => (2_500.0, 2),
        EstateSize::Huge => (9_400.0, 3),
    };
    let target = (base * (0.85 + 0.3 * rng.unit())) as usize;
    let mut b = Builder {
        rng,
        nodes: Vec::new(),
        cis: Vec::new(),
        relations: Vec::new(),
        dcs: Vec::new(),
        vips: 0,
        hosts: 0,
        apps: Vec::new(),
        shared: Vec::new(),
    };
    b.network(dcs);
    if size != EstateSize::Small {
        let kafka = b.datastore(Kind::Queue, "kafka", "shared", 3);
        let redis = b.datastore(Kind::Cache, "redis", "shared", 2);
        b.shared.push(kafka);
        b.shared.push(redis);
    }
    let identity = b.application(
        "identity-api".into(),
        Criticality::Critical,
        "team-identity",
    );
    b.shared.push(identity);
    let mut idx = 0;
    while b.cis.len() < target {
        b.service(idx);
        idx += 1;
    }
    let cmdb = CmdbFile {
        cis: b.cis,
        relations: b.relations,
    };
    (b.nodes, cmdb)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Root,
    Symptom,
    Noise,
}

/// Alert names (and severities) per CI kind and technology, as common exporters and
/// rule sets name them.
fn alertnames(kind: Kind, flavor: &str, role: Role) -> &'static [(&'static str, &'static str)] {
    use Role::*;
    match (kind, flavor, role) {
        (Kind::Host, _, Root) => &[
            ("HostDown", "critical"),
            ("HostOutOfMemory", "critical"),
            ("HostHighCpuLoad", "warning"),
            ("HostNetworkInterfaceDown", "critical"),
        ],
        (Kind::Host, _, Symptom) => &[
            ("HostUnreachable", "critical"),
            ("NodeExporterDown", "warning"),
            ("HostNetworkErrors", "warning"),
            ("HostHighIOWait", "warning"),
        ],
        (Kind::Host, _, Noise) => &[
            ("DiskFull", "warning"),
            ("HostClockSkew", "warning"),
            ("CertificateExpiringSoon", "info"),
            ("HostSwapUsageHigh", "warning"),
        ],
        (Kind::Database, "mysql", Root) => &[
            ("MySQLDown", "critical"),
            ("MySQLReplicationLag", "warning"),
            ("MySQLTooManyConnections", "critical"),
        ],
        (Kind::Database, "mysql", Symptom) => &[
            ("MySQLDown", "critical"),
            ("MySQLExporterDown", "warning"),
            ("MySQLSlowQueries", "warning"),
        ],
        (Kind::Database, "mysql", Noise) => &[
            ("MySQLSlowQueries", "warning"),
            ("MySQLBackupFailed", "warning"),
        ],
        (Kind::Database, _, Root) => &[
            ("PostgresDown", "critical"),
            ("PostgresReplicationLag", "warning"),
            ("PostgresTooManyConnections", "critical"),
            ("PostgresDeadlocks", "warning"),
        ],
        (Kind::Database, _, Symptom) => &[
            ("PostgresDown", "critical"),
            ("PostgresExporterDown", "warning"),
            ("PostgresReplicationLag", "warning"),
            ("PostgresSlowQueries", "warning"),
        ],
        (Kind::Database, _, Noise) => &[
            ("PostgresSlowQueries", "warning"),
            ("PostgresBackupFailed", "warning"),
            ("PostgresTableBloat", "info"),
        ],
        (Kind::Cache, _, Root) => &[
            ("RedisDown", "critical"),
            ("RedisOutOfMemory", "critical"),
            ("RedisRejectedConnections", "warning"),
        ],
        (Kind::Cache, _, Symptom) => &[
            ("RedisDown", "critical"),
            ("RedisRejectedConnections", "warning"),
            ("RedisReplicationBroken", "warning"),
        ],
        (Kind::Cache, _, Noise) => &[
            ("RedisMemoryFragmentation", "info"),
            ("RedisKeyEvictions", "warning"),
        ],
        (Kind::Queue, "kafka", Root) => &[
            ("KafkaBrokerDown", "critical"),
            ("KafkaOfflinePartitions", "critical"),
            ("KafkaUnderReplicatedPartitions", "warning"),
        ],
        (Kind::Queue, "kafka", Symptom) => &[
            ("KafkaUnderReplicatedPartitions", "warning"),
            ("KafkaConsumerLagHigh", "warning"),
            ("KafkaBrokerDown", "critical"),
        ],
        (Kind::Queue, "kafka", Noise) => &[
            ("KafkaConsumerLagHigh", "warning"),
            ("KafkaTopicNearRetention", "info"),
        ],
        (Kind::Queue, _, Root) => &[
            ("RabbitmqDown", "critical"),
            ("RabbitmqNodeNotRunning", "critical"),
            ("RabbitmqMemoryHigh", "warning"),
        ],
        (Kind::Queue, _, Symptom) => &[
            ("RabbitmqDown", "critical"),
            ("RabbitmqQueueBacklog", "warning"),
            ("RabbitmqUnroutableMessages", "warning"),
        ],
        (Kind::Queue, _, Noise) => &[
            ("RabbitmqQueueBacklog", "warning"),
            ("RabbitmqTooManyConnections", "warning"),
        ],
        (Kind::Application, _, Root) => &[
            ("ErrorRate5xx", "critical"),
            ("HighLatency", "warning"),
            ("PodCrashLooping", "critical"),
            ("DeploymentReplicasMismatch", "warning"),
        ],
        (Kind::Application, _, Symptom) => &[
            ("ErrorRate5xx", "critical"),
            ("HighLatency", "warning"),
            ("UpstreamConnectionErrors", "warning"),
            ("ApdexLow", "warning"),
        ],
        (Kind::Application, _, Noise) => &[
            ("PodRestarted", "info"),
            ("HighLatencyP99", "warning"),
            ("CertificateExpiringSoon", "info"),
        ],
        (Kind::BusinessService, _, Noise) => &[("SyntheticCheckSlow", "warning")],
        (Kind::BusinessService, _, _) => &[
            ("ProbeFailed", "critical"),
            ("SLOBurnRateHigh", "critical"),
            ("SyntheticCheckFailed", "warning"),
        ],
        (Kind::Network, "router", Root) => &[
            ("RouterDown", "critical"),
            ("BGPSessionDown", "critical"),
            ("HighPacketLoss", "warning"),
        ],
        (Kind::Network, _, Root) => &[
            ("SwitchDown", "critical"),
            ("InterfaceDown", "critical"),
            ("HighPacketLoss", "warning"),
        ],
        (Kind::Network, _, Symptom) => &[
            ("SwitchUplinkDown", "critical"),
            ("HighPacketLoss", "warning"),
            ("InterfaceErrors", "warning"),
        ],
        (Kind::Network, _, Noise) => &[
            ("InterfaceErrors", "warning"),
            ("FanFailure", "warning"),
            ("PowerSupplyDegraded", "warning"),
        ],
    }
}

/// How monitoring names a CI: the `job` and the labels that identify it, varied the way
/// real estates vary (IP:port, FQDN:port, service names, pods, CMDB-aware `ci` labels).
fn identify(rng: &mut Rng, node: &Node, alertname: &str) -> Labels {
    let mut l = Labels::new();
    let mut put = |k: &str, v: String| {
        l.insert(k.to_string(), v);
    };
    let host_or_ip = |rng: &mut Rng| -> String {
        match (rng.unit(), &node.ip, &node.fqdn) {
            (u, Some(ip), _) if u < 0.55 => ip.clone(),
            (u, _, Some(fqdn)) if u < 0.85 => fqdn.clone(),
            _ => node.id.clone(),
        }
    };
    match node.kind {
        Kind::Host => {
            put("job", "node".into());
            let h = host_or_ip(rng);
            put("instance", format!("{h}:9100"));
        }
        Kind::Database | Kind::Cache | Kind::Queue => {
            let (job, port) = match node.flavor {
                "postgres" => ("postgres", 9187),
                "mysql" => ("mysql", 9104),
                "redis" => ("redis", 9121),
                "kafka" => ("kafka", 9308),
                _ => ("rabbitmq", 15692),
            };
            put("job", job.into());
            let h = host_or_ip(rng);
            put("instance", format!("{h}:{port}"));
        }
        Kind::Application => {
            put("job", "app".into());
            put("service", node.name.clone());
            put("namespace", "prod".into());
            if alertname.starts_with("Pod") || rng.chance(0.5) {
                put("pod", format!("{}-{:05x}", node.name, rng.below(0x10_0000)));
            }
        }
        Kind::BusinessService => {
            put("job", "blackbox".into());
            match &node.url {
                Some(url) if rng.chance(0.7) => put("instance", url.clone()),
                _ => put("service", node.name.clone()),
            }
        }
        Kind::Network => {
            put("job", "snmp".into());
            let h = host_or_ip(rng);
            put("instance", h);
            if alertname.starts_with("Interface") || alertname.ends_with("UplinkDown") {
                put("ifName", format!("Ethernet1/{}", rng.range(1, 48)));
            }
        }
    }
    if rng.chance(0.1) {
        // Senders that know the CMDB name the CI outright.
        put("ci", node.id.clone());
    }
    l
}

/// One distinct alert and when it fired: `(start, end)` per occurrence (more than one
/// when it flaps).
struct Spec {
    labels: Labels,
    occurrences: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// Re-send period of firing events, when the sender re-sends.
    resend: Option<Duration>,
    give_fingerprint: bool,
}

struct Stream<'r> {
    rng: &'r mut Rng,
    /// Draws of knobs set away from their defaults (never touched at the defaults).
    krng: Rng,
    knobs: &'r Knobs,
    seed: u64,
    /// The CI being alerted on is not seen by monitoring in this fault: its alerts are
    /// drawn (so the rest of the world stays the same) but not sent.
    silent: bool,
    specs: Vec<Spec>,
    used: HashSet<Fingerprint>,
    truth: Truth,
}

impl Stream<'_> {
    fn group(&mut self, kind: GroupKind, root: Option<String>) -> usize {
        let id = self.truth.groups.len();
        self.truth.groups.push(TrueGroup {
            id,
            kind,
            root,
            root_alerted: true,
        });
        id
    }

    /// Adds one alert firing from `start` to `end`. `None` when its fingerprint is taken
    /// (the same alert on the same CI in another group would be one dedup key for two
    /// truths); `Some(false)` when it never fires (its CI is silent, or the impact ended
    /// before the rule's `for:` did); `Some(true)` when it is sent.
    fn alert(
        &mut self,
        mut labels: Labels,
        (name, severity): (&str, &str),
        group: usize,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Option<bool> {
        labels.insert("alertname".into(), name.into());
        labels.insert("severity".into(), severity.into());
        let fp = Fingerprint::of_labels(&labels);
        if !self.used.insert(fp.clone()) {
            return None;
        }
        let end = end.max(start + Duration::seconds(60));
        let mut occurrences = Vec::new();
        if self.rng.chance(0.1) && end - start > Duration::minutes(4) {
            // Flapping: fires, resolves, fires again, a few times, then stays resolved.
            let mut t = start;
            while t < end {
                let on = Duration::seconds(self.rng.range(60, 240));
                let off = Duration::seconds(self.rng.range(30, 150));
                let stop = (t + on).min(end);
                occurrences.push((t, stop));
                t = stop + off;
            }
        } else {
            occurrences.push((start, end));
        }
        let resend = self
            .rng
            .chance(0.6)
            .then(|| Duration::seconds(self.rng.range(60, 300)));
        let give_fingerprint = self.rng.chance(0.5);
        // The rule's `for:` holds each firing back; a firing shorter than it never shows.
        let hold = self.knobs.for_clause(self.seed, name);
        if hold > Duration::zero() {
            occurrences = occurrences
                .into_iter()
                .filter_map(|(a, b)| (a + hold < b).then_some((a + hold, b)))
                .collect();
        }
        if self.silent || occurrences.is_empty() {
            return Some(false);
        }
        self.truth.alerts.insert(fp, group);
        self.specs.push(Spec {
            labels,
            occurrences,
            resend,
            give_fingerprint,
        });
        Some(true)
    }

    /// 1..=`max` distinct alerts of `role` on a known CI; returns how many were sent.
    fn ci_alerts(
        &mut self,
        node: &Node,
        role: Role,
        max: i64,
        group: usize,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> usize {
        let mut names = alertnames(node.kind, node.flavor, role).to_vec();
        self.rng.shuffle(&mut names);
        let want = self.rng.range(1, max) as usize;
        let mut made = 0;
        let mut sent = 0;
        for name in names {
            if made == want {
                break;
            }
            let mut labels = identify(self.rng, node, name.0);
            self.knobs.restyle(&mut labels, Some(node));
            // Alerts of one CI do not all fire in the same second ("for:" clauses).
            let s = start + Duration::seconds(self.rng.range(0, 45));
            if let Some(fired) = self.alert(labels, name, group, s, end) {
                made += 1;
                sent += usize::from(fired);
            }
        }
        sent
    }

    /// An alert on a CI the generator does not model (unknown to the CMDB).
    fn other_alert(
        &mut self,
        mut labels: Labels,
        name: (&str, &str),
        group: usize,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) {
        self.knobs.restyle(&mut labels, None);
        self.alert(labels, name, group, start, end);
    }
}

fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Generates the scenario of `seed`: same seed and size, same scenario, byte for byte.
pub fn generate(seed: u64, size: EstateSize) -> Scenario {
    generate_with(seed, size, &Knobs::default())
}

/// Generates the scenario of `seed` in the world `knobs` describe (see [`Knobs`]).
pub fn generate_with(seed: u64, size: EstateSize, knobs: &Knobs) -> Scenario {
    let mut rng = Rng::new(seed);
    let (nodes, cmdb) = build_estate(&mut rng, size);
    let base = DateTime::<Utc>::from_timestamp(1_795_420_800, 0).unwrap_or_default()
        + Duration::days((seed % 28) as i64);

    let by_kind =
        |k: Kind| -> Vec<usize> { (0..nodes.len()).filter(|&i| nodes[i].kind == k).collect() };
    let hosts = by_kind(Kind::Host);
    let dbs = by_kind(Kind::Database);
    let caches = by_kind(Kind::Cache);
    let queues = by_kind(Kind::Queue);
    let apps = by_kind(Kind::Application);
    let net: Vec<usize> = by_kind(Kind::Network);
    let tors: Vec<usize> = net
        .iter()
        .copied()
        .filter(|&i| nodes[i].id.starts_with("tor-"))
        .collect();
    let core: Vec<usize> = net
        .iter()
        .copied()
        .filter(|&i| nodes[i].id.starts_with("core-"))
        .collect();

    // A fixed observation period (4-8 hours) with a fault rate that grows with the
    // estate: a 10k-CI estate sees several independent faults an hour, so faults overlap
    // by chance as well as by the forced overlaps below.
    let faults = match size {
        EstateSize::Small => rng.range(4, 8),
        EstateSize::Medium => rng.range(15, 25),
        EstateSize::Large => rng.range(35, 50),
        EstateSize::Huge => rng.range(70, 100),
    } as usize;
    let horizon = Duration::minutes(rng.range(4 * 60, 8 * 60));
    let mut stream = Stream {
        rng: &mut rng,
        krng: Rng::new(seed ^ 0x4B4E_0B5E_5EED_0001),
        knobs,
        seed,
        silent: false,
        specs: Vec::new(),
        used: HashSet::new(),
        truth: Truth::default(),
    };

    let mut fault_starts: Vec<DateTime<Utc>> = Vec::new();
    let mut unknown_n = 0;
    for _ in 0..faults {
        let r = &mut *stream.rng;
        let t0 = if !fault_starts.is_empty() && r.chance(knobs.overlap) {
            // Overlap: an independent fault within the same few minutes as another.
            *r.pick(&fault_starts) + Duration::seconds(r.range(0, 180))
        } else {
            base + Duration::seconds(r.range(0, horizon.num_seconds()))
        };
        fault_starts.push(t0);
        let duration = Duration::seconds(r.range(5 * 60, 40 * 60));
        if r.chance(0.08) {
            unknown_n += 1;
            unknown_fault(&mut stream, unknown_n, t0, duration);
            continue;
        }
        let u = r.unit();
        let pool = match u {
            _ if u < 0.35 => &hosts,
            _ if u < 0.53 => &dbs,
            _ if u < 0.63 => &caches,
            _ if u < 0.72 => &queues,
            _ if u < 0.87 => &apps,
            _ if u < 0.97 => &tors,
            _ => &core,
        };
        let pool = if pool.is_empty() { &hosts } else { pool };
        let root = *r.pick(pool);
        propagate(&mut stream, &nodes, root, t0, duration, &mut unknown_n);
    }

    // Noise: single alerts on random CIs (some unknown to the CMDB), each its own group.
    let noise = (faults as f64 * knobs.noise) as usize;
    for _ in 0..noise {
        let r = &mut *stream.rng;
        let start = base + Duration::seconds(r.range(0, horizon.num_seconds()));
        let end = start + Duration::seconds(r.range(120, 90 * 60));
        if r.chance(0.2) {
            unknown_n += 1;
            let host = format!("unknown-host-{unknown_n}");
            let name = *r.pick(alertnames(Kind::Host, "", Role::Noise));
            let mut l = Labels::new();
            l.insert("job".into(), "node".into());
            l.insert("instance".into(), format!("{host}:9100"));
            let g = stream.group(GroupKind::Noise, None);
            stream.other_alert(l, name, g, start, end);
        } else {
            let node = &nodes[r.index(nodes.len())];
            let g = stream.group(GroupKind::Noise, Some(node.id.clone()));
            stream.ci_alerts(node, Role::Noise, 1, g, start, end);
        }
    }
    let Stream {
        rng, specs, truth, ..
    } = stream;
    // Groups that lost every alert to fingerprint clashes are not groups.
    let mut truth = compact(truth);
    let alerts = emit(rng, &specs);
    let cmdb = corrupt_cmdb(seed, knobs, cmdb, &mut truth);
    Scenario {
        seed,
        size,
        knobs: knobs.clone(),
        cmdb,
        alerts,
        truth,
    }
}

/// The CMDB sift is given: the true one with CIs left out, relations missing and
/// spurious relations added, as `knobs` say. A fault rooted on a CI left out has no root
/// sift could name (`None`, as for hosts the CMDB never knew).
fn corrupt_cmdb(seed: u64, knobs: &Knobs, mut cmdb: CmdbFile, truth: &mut Truth) -> CmdbFile {
    if knobs.cmdb_absent <= 0.0 && knobs.cmdb_missing <= 0.0 && knobs.cmdb_spurious <= 0.0 {
        return cmdb;
    }
    let mut r = Rng::new(seed ^ 0xC4DB_0000_E44E_0000);
    let true_relations = cmdb.relations.len();
    if knobs.cmdb_absent > 0.0 {
        let absent: HashSet<String> = cmdb
            .cis
            .iter()
            .filter(|_| r.chance(knobs.cmdb_absent))
            .map(|c| c.id.clone())
            .collect();
        cmdb.cis.retain(|c| !absent.contains(&c.id));
        cmdb.relations
            .retain(|rel| !absent.contains(&rel.source) && !absent.contains(&rel.target));
        for g in &mut truth.groups {
            if g.root.as_ref().is_some_and(|id| absent.contains(id)) {
                g.root = None;
            }
        }
    }
    if knobs.cmdb_missing > 0.0 {
        cmdb.relations.retain(|_| !r.chance(knobs.cmdb_missing));
    }
    let spurious = (true_relations as f64 * knobs.cmdb_spurious).round() as usize;
    if spurious > 0 && cmdb.cis.len() > 1 {
        let mut have: HashSet<(String, String)> = cmdb
            .relations
            .iter()
            .map(|rel| (rel.source.clone(), rel.target.clone()))
            .collect();
        let mut added = 0;
        let mut tries = 0;
        while added < spurious && tries < spurious * 20 {
            tries += 1;
            let a = cmdb.cis[r.index(cmdb.cis.len())].id.clone();
            let b = cmdb.cis[r.index(cmdb.cis.len())].id.clone();
            if a == b
                || have.contains(&(b.clone(), a.clone()))
                || !have.insert((a.clone(), b.clone()))
            {
                continue;
            }
            cmdb.relations.push(Relation {
                source: a,
                target: b,
                rel_type: "depends_on".to_string(),
            });
            added += 1;
        }
    }
    cmdb
}

/// A fault on a known CI: breadth first over dependents, each hop less likely and later.
fn propagate(
    s: &mut Stream,
    nodes: &[Node],
    root: usize,
    t0: DateTime<Utc>,
    duration: Duration,
    unknown_n: &mut usize,
) {
    let g = s.group(GroupKind::Fault, Some(nodes[root].id.clone()));
    let max_ci = s.rng.range(4, 40) as usize;
    let max_hops = 5;
    // (node, hops, onset)
    let mut affected: Vec<(usize, u32, DateTime<Utc>)> = vec![(root, 0, t0)];
    let mut seen = HashSet::from([root]);
    let mut queue = VecDeque::from([(root, 0u32, t0)]);
    while let Some((n, hops, at)) = queue.pop_front() {
        if hops >= max_hops {
            continue;
        }
        let mut deps = nodes[n].dependents.clone();
        s.rng.shuffle(&mut deps);
        for d in deps {
            if affected.len() >= max_ci {
                break;
            }
            let p = 0.85 * 0.8f64.powi(hops as i32);
            if !seen.insert(d) || !s.rng.chance(p) {
                continue;
            }
            let mut lag = s.rng.range(20, 90) + s.rng.range(0, 15);
            if s.knobs.lag == Lag::HeavyTail {
                // Pareto, shape 1, scale 10 s: P(lag > x) = 10 / x, capped at 5 minutes.
                lag = (10.0 / (1.0 - s.krng.unit())).min(300.0) as i64;
            }
            let onset = at + Duration::seconds(lag);
            affected.push((d, hops + 1, onset));
            queue.push_back((d, hops + 1, onset));
        }
    }
    let recovery = t0 + duration;
    // A late root: its exporter is down with it, or its rule has a long `for:`; the first
    // word comes from a dependent.
    let late_root = affected.len() > 1 && s.rng.chance(0.2);
    let first_dep = affected.iter().skip(1).map(|a| a.2).min();
    for &(n, hops, onset) in &affected {
        let (role, max) = if hops == 0 {
            (Role::Root, 3)
        } else {
            (Role::Symptom, 2)
        };
        let start = match (hops, late_root, first_dep) {
            (0, true, Some(dep)) => dep + Duration::seconds(s.rng.range(30, 150)),
            _ => onset,
        };
        // Recovery spreads back out hop by hop; some alerts resolve minutes later.
        let end = recovery
            + Duration::seconds(i64::from(hops) * s.rng.range(10, 60) + s.rng.range(0, 240));
        let p = s.knobs.alert_chance(hops);
        s.silent = p < 1.0 && !s.krng.chance(p);
        let sent = s.ci_alerts(&nodes[n], role, max, g, start, end);
        s.silent = false;
        if hops == 0 {
            s.truth.groups[g].root_alerted = sent > 0;
        }
    }
    if s.rng.chance(0.1) {
        // A consumer nobody put in the CMDB also notices.
        *unknown_n += 1;
        let mut l = Labels::new();
        l.insert("job".into(), "app".into());
        l.insert("service".into(), format!("unknown-svc-{unknown_n}"));
        l.insert("namespace".into(), "prod".into());
        let start = t0 + Duration::seconds(s.rng.range(40, 200));
        let end = recovery + Duration::seconds(s.rng.range(0, 180));
        s.other_alert(l, ("UpstreamConnectionErrors", "warning"), g, start, end);
    }
}

/// A fault on a host the CMDB does not know, and on services running there.
fn unknown_fault(s: &mut Stream, k: usize, t0: DateTime<Utc>, duration: Duration) {
    let g = s.group(GroupKind::Fault, None);
    let host = format!("unknown-host-{k}");
    let end = t0 + duration;
    for name in [("HostDown", "critical"), ("NodeExporterDown", "warning")]
        .into_iter()
        .take(s.rng.range(1, 2) as usize)
    {
        let mut l = Labels::new();
        l.insert("job".into(), "node".into());
        l.insert("instance".into(), format!("{host}:9100"));
        let st = t0 + Duration::seconds(s.rng.range(0, 30));
        let until = end + Duration::seconds(s.rng.range(0, 120));
        s.other_alert(l, name, g, st, until);
    }
    for j in 1..=s.rng.range(1, 4) {
        let mut l = Labels::new();
        l.insert("job".into(), "app".into());
        l.insert("service".into(), format!("unknown-svc-{k}-{j}"));
        l.insert("instance".into(), format!("{host}:8080"));
        let name = *s.rng.pick(alertnames(Kind::Application, "", Role::Symptom));
        let st = t0 + Duration::seconds(s.rng.range(20, 90) + s.rng.range(0, 15));
        let until = end + Duration::seconds(s.rng.range(0, 180));
        s.other_alert(l, name, g, st, until);
    }
}

/// Drops groups without alerts and renumbers the rest densely.
fn compact(truth: Truth) -> Truth {
    let mut used = vec![false; truth.groups.len()];
    for &g in truth.alerts.values() {
        used[g] = true;
    }
    let mut map = HashMap::new();
    let mut groups = Vec::new();
    for g in truth.groups {
        if used[g.id] {
            map.insert(g.id, groups.len());
            groups.push(TrueGroup {
                id: groups.len(),
                ..g
            });
        }
    }
    let alerts = truth
        .alerts
        .into_iter()
        .map(|(fp, g)| (fp, map[&g]))
        .collect();
    Truth { alerts, groups }
}

/// Every event of every alert as a JSON line, in arrival order: sorted by send time with
/// a few seconds of network jitter.
fn emit(rng: &mut Rng, specs: &[Spec]) -> Vec<String> {
    let mut events: Vec<(DateTime<Utc>, usize, String)> = Vec::new();
    for spec in specs {
        let fp = Fingerprint::of_labels(&spec.labels);
        let summary = format!(
            "{} on {}",
            spec.labels.get("alertname").unwrap_or(""),
            spec.labels
                .get("instance")
                .or_else(|| spec.labels.get("service"))
                .unwrap_or("?")
        );
        let line = |status: &str, start: DateTime<Utc>, end: Option<DateTime<Utc>>| {
            let mut v = json!({
                "status": status,
                "labels": spec.labels,
                "annotations": {"summary": summary},
                "startsAt": fmt_time(start),
                "endsAt": end.map(fmt_time).unwrap_or_else(|| ZERO_TIME.to_string()),
            });
            if spec.give_fingerprint {
                v["fingerprint"] = json!(fp.0);
            }
            v.to_string()
        };
        for &(start, end) in &spec.occurrences {
            let mut sends = vec![start];
            if let Some(every) = spec.resend {
                let mut t = start + every;
                while t < end && sends.len() < 8 {
                    sends.push(t);
                    t += every;
                }
            }
            for t in sends {
                let j = Duration::seconds(rng.range(-4, 4));
                events.push((t + j, events.len(), line("firing", start, None)));
            }
            let j = Duration::seconds(rng.range(-4, 4));
            events.push((end + j, events.len(), line("resolved", start, Some(end))));
        }
    }
    events.sort_by_key(|a| (a.0, a.1));
    events.into_iter().map(|e| e.2).collect()
}
