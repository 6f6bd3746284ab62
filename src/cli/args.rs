//! The `sift` command tree (clap): what `main` parses. Every argument has help text (a
//! test walks the tree).
//!
//! Two kinds of command share the tree. Offline commands work on files and on the store
//! named by the configuration (`--config`, `SIFT_STORE__URL`): `serve`, `migrate`,
//! `cmdb import`, `incidents import`, `replay`, `problems cluster`, `causality learn`.
//! Online commands ask a
//! running daemon over its HTTP API (`--url`, `SIFT_TOKEN`): `incidents list|show|ack|
//! resolve|comment`, `alerts list`, `problems list|show|accept|reject`, `cmdb show`. A noun
//! (`incidents`, `problems`, `cmdb`) holds both kinds; each verb is one or the other, and
//! its help says which.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The daemon's own default listen address (`server.listen`), as a URL.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9400";

#[derive(Parser)]
#[command(
    name = "sift",
    about = "Alerts in, deduplicated, mapped to CIs, correlated into incidents",
    after_help = "Commands that ask a running daemon take --url, --token-file and --json; \
                  the others read --config and work on the store or on files directly."
)]
pub struct Cli {
    /// More log on stderr: -v info, -vv debug, -vvv trace. Without it `serve` logs at
    /// `log.level` (or `RUST_LOG`) and the other commands only warnings and errors.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(flatten)]
    pub remote: Remote,
    #[command(subcommand)]
    pub cmd: Cmd,
}

const ONLINE: &str = "Online commands (ask a running daemon)";

/// How online commands reach the daemon.
#[derive(Args, Clone, Debug)]
pub struct Remote {
    /// The daemon's base URL (online commands). `host:port` alone means http.
    #[arg(long, env = "SIFT_URL", default_value = DEFAULT_URL, global = true, help_heading = ONLINE)]
    pub url: String,
    /// A file holding the API token (online commands); without it the token is read from
    /// the SIFT_TOKEN environment variable, and without either no token is sent.
    #[arg(long, value_name = "FILE", global = true, help_heading = ONLINE)]
    pub token_file: Option<PathBuf>,
    /// Print the daemon's JSON answer as it came instead of a table (online commands).
    #[arg(long, global = true, help_heading = ONLINE)]
    pub json: bool,
}

/// `--config` of the offline commands.
#[derive(Args, Clone, Debug)]
pub struct ConfigArg {
    /// Configuration file (TOML). Default: config/sift.toml when it exists, else built-in
    /// defaults; SIFT_* environment variables override either (SIFT_STORE__URL=...).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Run the daemon (migrations are applied at start).
    Serve {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Apply database migrations and exit.
    Migrate {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// CMDB: import a file into the store (offline) or show a CI (online).
    Cmdb {
        #[command(subcommand)]
        cmd: CmdbCmd,
    },
    /// Run the pipeline offline over recorded alerts and write the incidents it would open.
    /// A bad line is named (FILE:LINE: reason) and nothing is replayed (`--skip-bad`:
    /// replay the rest).
    Replay {
        /// CMDB file (YAML or JSON).
        #[arg(long, value_name = "FILE")]
        cmdb: PathBuf,
        /// JSON lines, one Alertmanager alert object per line, in arrival order.
        #[arg(long, value_name = "FILE")]
        alerts: PathBuf,
        /// Change records (a JSON list); maintenance windows among them suppress alerts.
        #[arg(long, value_name = "FILE")]
        changes: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigArg,
        /// Where to write `{"incidents": [...]}`; standard output when absent.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Report bad lines and replay the others instead of refusing the file.
        #[arg(long)]
        skip_bad: bool,
    },
    /// Measure a history of alerts (offline): each alert rule's hold-back (its `for:`), the
    /// lags per relation type, the `[correlate]` settings they recommend, and a backtest of
    /// each against the current config (against the operators' incidents with
    /// `--incidents`).
    Tune {
        /// CMDB file (YAML or JSON).
        #[arg(long, value_name = "FILE")]
        cmdb: PathBuf,
        /// JSON lines, one Alertmanager alert object per line, in arrival order.
        #[arg(long, value_name = "FILE")]
        alerts: PathBuf,
        /// How operators grouped these alerts: `{"incidents": [...]}` as `sift replay`
        /// writes it, or JSON lines, each an object with `alert_fingerprints`.
        #[arg(long, value_name = "FILE")]
        incidents: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigArg,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Problem management: cluster a history file (offline); list, show, accept or reject
    /// the daemon's problem candidates (online).
    Problems {
        #[command(subcommand)]
        cmd: ProblemsCmd,
    },
    /// Incidents: import a history into the store (offline); list, show, acknowledge,
    /// resolve or comment on the daemon's incidents (online).
    Incidents {
        #[command(subcommand)]
        cmd: IncidentsCmd,
    },
    /// Alerts the daemon holds (online).
    Alerts {
        #[command(subcommand)]
        cmd: AlertsCmd,
    },
    /// Learned causality between alert types (offline).
    Causality {
        #[command(subcommand)]
        cmd: CausalityCmd,
    },
    /// Print a shell completion script, e.g. `sift completions bash > /etc/bash_completion.d/sift`.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
pub enum CausalityCmd {
    /// Learn from a history of alerts which alert types follow which along the topology,
    /// and write `{"edges": [...], "summary": {...}}` (docs/causality.md). A bad line is
    /// named (FILE:LINE: reason) and nothing is written.
    Learn {
        /// JSON lines, one Alertmanager alert object per line (what `replay` reads).
        #[arg(long, value_name = "FILE")]
        alerts: PathBuf,
        /// CMDB file (YAML or JSON).
        #[arg(long, value_name = "FILE")]
        cmdb: PathBuf,
        #[command(flatten)]
        config: ConfigArg,
        /// Where to write the result; standard output when absent.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum IncidentsCmd {
    /// Import an incident history into the store (offline, as `POST
    /// /api/v1/incidents/import`): JSON lines, or a CSV export with `--mapping`. Streamed;
    /// all or nothing: any bad row is reported with its line and nothing is stored
    /// (`--skip-bad`: store the rest).
    Import {
        /// The history file: JSON lines (or one JSON list), or CSV with `--mapping`.
        file: PathBuf,
        /// A preset (servicenow, jira, bpi2014) or a mapping file (TOML): read FILE as CSV.
        #[arg(long)]
        mapping: Option<String>,
        #[command(flatten)]
        config: ConfigArg,
        /// Store the good records even when some rows are bad.
        #[arg(long)]
        skip_bad: bool,
    },
    #[command(flatten)]
    Online(IncidentsOnline),
}

/// The incident verbs that ask the daemon.
#[derive(Subcommand, Clone, Debug)]
pub enum IncidentsOnline {
    /// List incidents, newest first (online; viewer).
    List(IncidentFilter),
    /// One incident with its alerts and timeline (online; viewer).
    Show {
        /// Incident id, e.g. INC0000001.
        id: String,
    },
    /// Acknowledge an incident (online; operator).
    Ack {
        /// Incident id.
        id: String,
        /// Assign it to this person as well.
        #[arg(long, value_name = "NAME")]
        assignee: Option<String>,
        /// Add this comment to its timeline as well.
        #[arg(long, short)]
        comment: Option<String>,
    },
    /// Resolve an incident (online; operator).
    Resolve {
        /// Incident id.
        id: String,
        /// How it was fixed: shown on similar incidents later.
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
        /// Add this comment to its timeline as well.
        #[arg(long, short)]
        comment: Option<String>,
    },
    /// Add a comment to an incident's timeline (online; operator).
    Comment {
        /// Incident id.
        id: String,
        /// The comment.
        text: String,
    },
}

#[derive(Args, Clone, Debug)]
pub struct IncidentFilter {
    /// Only incidents in this state.
    #[arg(long, value_enum)]
    pub status: Option<IncidentStatusArg>,
    /// Only incidents of this priority (1 highest .. 5).
    #[arg(long, short, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub priority: Option<u8>,
    /// Only incidents on this CI.
    #[arg(long)]
    pub ci: Option<String>,
    /// At most this many (1..1000).
    #[arg(long, short = 'n', default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    /// Continue after this incident id (the `next_cursor` of an earlier page).
    #[arg(long, value_name = "ID")]
    pub cursor: Option<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum IncidentStatusArg {
    Open,
    Acknowledged,
    Resolved,
    Closed,
}

#[derive(Subcommand)]
pub enum ProblemsCmd {
    /// Cluster an incident history (JSON lines, or CSV with `--mapping`) into problem
    /// candidates (offline). A bad record is named (FILE:LINE: reason) and nothing is
    /// written (`--skip-bad`: cluster the rest); it fails when no record is usable.
    Cluster {
        /// JSON lines, one history record per line (or one JSON list of records).
        #[arg(long, value_name = "FILE")]
        incidents: PathBuf,
        /// CMDB file (YAML or JSON) for topology: dependents point at what they depend on.
        #[arg(long, value_name = "FILE")]
        cmdb: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigArg,
        /// Where to write `{"problems": [...]}`; standard output when absent.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Report bad records and cluster the others instead of refusing the file.
        #[arg(long, conflicts_with = "strict")]
        skip_bad: bool,
        /// Refuse the file when any record is bad: the default, kept for older scripts.
        #[arg(long)]
        strict: bool,
        /// A preset (servicenow, jira, bpi2014) or a mapping file (TOML): read the
        /// incidents as a CSV export.
        #[arg(long)]
        mapping: Option<String>,
    },
    #[command(flatten)]
    Online(ProblemsOnline),
}

/// The problem verbs that ask the daemon.
#[derive(Subcommand, Clone, Debug)]
pub enum ProblemsOnline {
    /// List problem candidates, best first (online; viewer).
    List {
        /// Only problems in this state.
        #[arg(long, value_enum)]
        status: Option<ProblemStatusArg>,
    },
    /// One problem with its incidents and evidence (online; viewer).
    Show {
        /// Problem id.
        id: String,
    },
    /// Accept a candidate as a problem (online; operator).
    Accept {
        /// Problem id.
        id: String,
    },
    /// Reject a candidate (online; operator).
    Reject {
        /// Problem id.
        id: String,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum ProblemStatusArg {
    Candidate,
    Accepted,
    Rejected,
}

#[derive(Subcommand)]
pub enum CmdbCmd {
    /// Upsert CIs and relations from a YAML or JSON file into the store (offline). A running
    /// daemon on the same store notices within about a second.
    Import {
        /// The CMDB file (YAML or JSON): `cis` and `relations`.
        file: PathBuf,
        #[command(flatten)]
        config: ConfigArg,
    },
    #[command(flatten)]
    Online(CmdbOnline),
}

/// The CMDB verbs that ask the daemon.
#[derive(Subcommand, Clone, Debug)]
pub enum CmdbOnline {
    /// A CI with what it depends on and what depends on it (online; viewer).
    Show {
        /// CI id.
        ci: String,
        /// Also list everything that depends on it, transitively, with the path.
        #[arg(long)]
        impact: bool,
    },
}

#[derive(Subcommand, Clone, Debug)]
pub enum AlertsCmd {
    /// List alerts, latest start first (online; viewer).
    List(AlertFilter),
}

#[derive(Args, Clone, Debug)]
pub struct AlertFilter {
    /// Only alerts in this state.
    #[arg(long, value_enum)]
    pub status: Option<AlertStatusArg>,
    /// Only alerts on this CI.
    #[arg(long)]
    pub ci: Option<String>,
    /// Only alerts of this incident.
    #[arg(long, value_name = "ID")]
    pub incident: Option<String>,
    /// At most this many (1..1000).
    #[arg(long, short = 'n', default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    /// Continue from the `next_cursor` of an earlier page.
    #[arg(long)]
    pub cursor: Option<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum AlertStatusArg {
    Firing,
    Resolved,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every argument of every subcommand, `--config` included, says what it is for.
    #[test]
    fn every_argument_of_every_subcommand_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let has = arg
                    .get_help()
                    .is_some_and(|h| !h.to_string().trim().is_empty())
                    || arg.get_long_help().is_some();
                if !has {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(format!("{path} {} (the command)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        walk(&cmd, "sift", &mut missing);
        assert!(missing.is_empty(), "without help text: {missing:#?}");
        // The walk reaches what users asked about.
        let serve = cmd.find_subcommand("serve").expect("serve");
        assert!(serve.get_arguments().any(|a| a.get_id() == "config"));
    }

    #[test]
    fn online_and_offline_verbs_share_their_noun() {
        let p = |args: &[&str]| Cli::try_parse_from(args).map(|c| c.cmd);
        assert!(matches!(
            p(&["sift", "incidents", "import", "h.jsonl"]),
            Ok(Cmd::Incidents {
                cmd: IncidentsCmd::Import { .. }
            })
        ));
        assert!(matches!(
            p(&["sift", "incidents", "ack", "INC1", "--url", "h:1"]),
            Ok(Cmd::Incidents {
                cmd: IncidentsCmd::Online(IncidentsOnline::Ack { .. })
            })
        ));
        assert!(matches!(
            p(&["sift", "cmdb", "show", "db-01", "--impact"]),
            Ok(Cmd::Cmdb {
                cmd: CmdbCmd::Online(CmdbOnline::Show { impact: true, .. })
            })
        ));
        assert!(p(&["sift", "incidents", "list", "--priority", "9"]).is_err());
        assert!(
            p(&[
                "sift",
                "problems",
                "cluster",
                "--incidents",
                "f",
                "--strict",
                "--skip-bad"
            ])
            .is_err()
        );
    }
}
