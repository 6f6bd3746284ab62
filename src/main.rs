//! The `sift` command line: parses (the tree is `sift::cli::args`), sets up logging and
//! dispatches: `serve` to the daemon (`sift::app`), the offline commands (migrate, cmdb
//! import, replay, problems cluster, causality learn, incidents import) to
//! `sift::cli::offline`, the online ones to `sift::cli`. Nothing else lives here.

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::Path;

use clap::{CommandFactory, FromArgMatches};
use tracing_subscriber::EnvFilter;

use sift::cli::{
    self,
    args::{CausalityCmd, Cli, Cmd, CmdbCmd, IncidentsCmd, ProblemsCmd},
    offline,
};
use sift::config::{Config, LogFormat};

fn main() -> anyhow::Result<()> {
    let matches = Cli::command()
        .version(env!("BUILD_LONG_VERSION"))
        .get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // The daemon's log is its record; a CLI command's answer is its output, so its log
    // stays at warnings unless asked for (no migration lines on every call).
    let level = match (cli.verbose, &cli.cmd) {
        (0, Cmd::Serve { .. }) => LogLevel::Configured,
        (0, _) => LogLevel::Default("warn"),
        (1, _) => LogLevel::Flag("info"),
        (2, _) => LogLevel::Flag("debug"),
        _ => LogLevel::Flag("trace"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let remote = cli.remote;
    rt.block_on(async move {
        let online = match cli.cmd {
            Cmd::Serve { config } => {
                return sift::app::serve(load(config.config.as_deref(), level)?).await;
            }
            Cmd::Migrate { config } => {
                return offline::migrate(&load(config.config.as_deref(), level)?).await;
            }
            Cmd::Cmdb {
                cmd: CmdbCmd::Import { file, config },
            } => return offline::cmdb_import(&load(config.config.as_deref(), level)?, &file).await,
            Cmd::Replay {
                cmdb,
                alerts,
                changes,
                config,
                output,
                skip_bad,
            } => {
                return offline::replay(
                    &load(config.config.as_deref(), level)?,
                    &cmdb,
                    &alerts,
                    changes.as_deref(),
                    output.as_deref(),
                    skip_bad,
                );
            }
            Cmd::Tune {
                cmdb,
                alerts,
                incidents,
                config,
                json,
            } => {
                let cfg = load(config.config.as_deref(), level)?;
                return offline::tune(&cfg, &cmdb, &alerts, incidents.as_deref(), json);
            }
            Cmd::Problems {
                cmd:
                    ProblemsCmd::Cluster {
                        incidents,
                        cmdb,
                        config,
                        output,
                        skip_bad,
                        strict: _,
                        mapping,
                    },
            } => {
                return offline::problems_cluster(
                    &load(config.config.as_deref(), level)?,
                    &incidents,
                    cmdb.as_deref(),
                    output.as_deref(),
                    skip_bad,
                    mapping.as_deref(),
                );
            }
            Cmd::Incidents {
                cmd:
                    IncidentsCmd::Import {
                        file,
                        mapping,
                        config,
                        skip_bad,
                    },
            } => {
                return offline::incidents_import(
                    &load(config.config.as_deref(), level)?,
                    &file,
                    mapping.as_deref(),
                    skip_bad,
                )
                .await;
            }
            Cmd::Causality {
                cmd:
                    CausalityCmd::Learn {
                        alerts,
                        cmdb,
                        config,
                        output,
                    },
            } => {
                return offline::causality_learn(
                    &load(config.config.as_deref(), level)?,
                    &alerts,
                    &cmdb,
                    output.as_deref(),
                );
            }
            Cmd::Completions { shell } => {
                clap_complete::generate(shell, &mut Cli::command(), "sift", &mut std::io::stdout());
                return Ok(());
            }
            Cmd::Incidents {
                cmd: IncidentsCmd::Online(c),
            } => cli::incidents(&remote, c).await,
            Cmd::Alerts { cmd } => cli::alerts(&remote, cmd).await,
            Cmd::Problems {
                cmd: ProblemsCmd::Online(c),
            } => cli::problems(&remote, c).await,
            Cmd::Cmdb {
                cmd: CmdbCmd::Online(c),
            } => cli::cmdb(&remote, c).await,
        };
        // Online commands: the error and an exit code that says what kind it was.
        if let Err(e) = online {
            eprintln!("sift: {e}");
            std::process::exit(e.exit_code());
        }
        Ok(())
    })
}

/// Where the log filter comes from.
#[derive(Clone, Copy)]
enum LogLevel {
    /// `-v`: wins over `RUST_LOG` and `log.level`.
    Flag(&'static str),
    /// `RUST_LOG` when set, else this.
    Default(&'static str),
    /// `RUST_LOG` when set, else the config's `log.level`.
    Configured,
}

fn load(path: Option<&Path>, level: LogLevel) -> anyhow::Result<Config> {
    let cfg = Config::load(path)?;
    let rust_log = || {
        std::env::var("RUST_LOG")
            .ok()
            .and_then(|f| EnvFilter::try_new(f).ok())
    };
    let filter = match level {
        LogLevel::Flag(l) => Some(EnvFilter::new(l)),
        LogLevel::Default(l) => rust_log().or_else(|| Some(EnvFilter::new(l))),
        LogLevel::Configured => rust_log().or_else(|| EnvFilter::try_new(&cfg.log.level).ok()),
    }
    .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour())
        .with_writer(std::io::stderr);
    match cfg.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    Ok(cfg)
}

/// Colour only for a person at a terminal: never in files, pipes or journald, and never
/// when NO_COLOR is set to anything (https://no-color.org).
fn colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
