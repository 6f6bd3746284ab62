//! Black-box harness: runs the daemon on a fresh store (SQLite file or a fresh PostgreSQL
//! database) and talks to it over HTTP, as a user would. `Sift::start` runs the real
//! `sift` binary (for tests of signals, crashes and the process); `Sift::spawn_app` starts
//! the same daemon in this process (`sift::app::App`, zero2prod's `spawn_app`): no
//! process to spawn nor log line to scrape for the port, the same HTTP answers.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Connection;

pub use reqwest::Method;

const START_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty store: a SQLite file in a temp dir, or a PostgreSQL database created on
/// `TEST_DATABASE_URL`'s server (dropped again when this is dropped).
pub struct Db {
    pub backend: Backend,
    pub url: String,
    /// Working directory for the daemon (so no `config/sift.toml` is picked up) and files.
    pub dir: tempfile::TempDir,
    pg: Option<(String, String)>, // (admin url, database name)
}

fn unique_suffix() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// `postgres://u@h:p/old?x` with the database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[after_scheme..]
        .find('/')
        .map(|i| after_scheme + i)
        .unwrap_or(base.len());
    format!("{}/{name}{query}", &base[..host_end])
}

/// Bound on reaching the PostgreSQL server of `TEST_DATABASE_URL` (a black-holed address).
const PG_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection to `TEST_DATABASE_URL`'s server, or why not. One direct connection, not a
/// pool: a pool retries a refused connection until its 30 s acquire timeout and then says
/// only "pool timed out", where this says "Connection refused" at once.
pub async fn pg_admin_connect(url: &str) -> Result<sqlx::PgConnection, String> {
    match tokio::time::timeout(PG_CONNECT_TIMEOUT, sqlx::PgConnection::connect(url)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(format!(
            "cannot connect to TEST_DATABASE_URL ({}): {e}",
            redact(url)
        )),
        Err(_) => Err(format!(
            "cannot connect to TEST_DATABASE_URL ({}): no answer within {PG_CONNECT_TIMEOUT:?}",
            redact(url)
        )),
    }
}

/// The URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}

/// Says on the terminal that this PostgreSQL test is skipped. libtest has no "skipped"
/// outcome (it will print `ok`) and captures `eprintln!` of passing tests, so this writes
/// to the process's stderr directly, which libtest does not capture: the line shows in
/// plain `cargo test` output, naming the test.
fn report_skip() {
    use std::io::Write;
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a PostgreSQL test");
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIPPED {test}: TEST_DATABASE_URL is not set (libtest reports it as ok)"
    );
}

impl Db {
    /// `None` (after printing why) when the backend is not available here.
    pub async fn new(backend: Backend) -> Option<Db> {
        let dir = tempfile::tempdir().expect("tempdir");
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("sift.db").display());
                Some(Db {
                    backend,
                    url,
                    dir,
                    pg: None,
                })
            }
            Backend::Postgres => {
                let Ok(admin) = std::env::var("TEST_DATABASE_URL") else {
                    // CI sets TEST_REQUIRE_POSTGRES: there the PostgreSQL half never skips.
                    assert!(
                        std::env::var_os("TEST_REQUIRE_POSTGRES").is_none(),
                        "TEST_REQUIRE_POSTGRES is set but TEST_DATABASE_URL is not"
                    );
                    report_skip();
                    return None;
                };
                let name = format!("sift_t_{}", unique_suffix());
                let mut conn = pg_admin_connect(&admin)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
                let _ = conn.close().await;
                Some(Db {
                    backend,
                    url: with_database(&admin, &name),
                    dir,
                    pg: Some((admin, name)),
                })
            }
        }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// Writes `text` to a file in the temp dir and returns its path.
    pub fn write(&self, file: &str, text: &str) -> PathBuf {
        let p = self.path(file);
        std::fs::write(&p, text).expect("write file");
        p
    }

    /// `sift ARGS…` against this store: (success, stdout + stderr).
    pub fn run(&self, args: &[&str]) -> (bool, String) {
        let out = base_command(self, &[])
            .args(args)
            .output()
            .expect("run sift");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// A `sift` command on this store (no `SIFT_*` or `RUST_LOG` from the caller, NO_COLOR
    /// set), to run with extra arguments or environment.
    pub fn command(&self) -> Command {
        base_command(self, &[])
    }

    /// `sift cmdb import FILE` against this store; panics with the output on failure.
    pub fn cmdb_import(&self, file: &Path) -> String {
        let out = base_command(self, &[])
            .args(["cmdb", "import"])
            .arg(file)
            .output()
            .expect("run sift cmdb import");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "sift cmdb import failed:\n{text}");
        text
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let Some((admin, name)) = self.pg.take() else {
            return;
        };
        // Drop is sync and may run inside a runtime: do the async cleanup on its own thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                match pg_admin_connect(&admin).await {
                    Ok(mut conn) => {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(sql))
                            .execute(&mut conn)
                            .await
                        {
                            eprintln!("warning: cannot drop test database {name}: {e}");
                        }
                        let _ = conn.close().await;
                    }
                    Err(e) => eprintln!("warning: cannot drop test database {name}: {e}"),
                }
            });
        })
        .join();
    }
}

fn base_command(db: &Db, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sift"));
    for (k, _) in std::env::vars() {
        if k.starts_with("SIFT_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(db.dir.path())
        .env("NO_COLOR", "1")
        .env("SIFT_STORE__URL", &db.url);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// A running `sift serve`: a child process, or the daemon in this process.
pub struct Sift {
    child: Option<Child>,
    /// `spawn_app`: the daemon runs in this process.
    in_process: bool,
    app: Option<InProcess>,
    pub base: String,
    log: Arc<Mutex<String>>,
    env: Vec<(String, String)>,
    store_url: String,
    dir: PathBuf,
    pub client: reqwest::Client,
}

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub text: String,
    pub body: Value,
}

impl Sift {
    /// Starts `sift serve` on port 0 on `db`'s store with extra `SIFT_*` settings.
    pub fn start(db: &Db, env: &[(&str, &str)]) -> Sift {
        Sift::start_with_store(db, &db.url, env)
    }

    /// As `start`, but the daemon runs in this process (`sift::app::App` on port 0), with
    /// the same `SIFT_*` settings (read from `env` only, never from this process's
    /// environment). Everything but `pid`, `peak_rss` and `crash_restart` works as with
    /// a child process; `log` is what the daemon logged at info and above.
    pub fn spawn_app(db: &Db, env: &[(&str, &str)]) -> Sift {
        Sift::new(db, &db.url, env, true)
    }

    /// As `start`, with the daemon's store URL given (a proxy in front of the database).
    pub fn start_with_store(db: &Db, store_url: &str, env: &[(&str, &str)]) -> Sift {
        Sift::new(db, store_url, env, false)
    }

    fn new(db: &Db, store_url: &str, env: &[(&str, &str)], in_process: bool) -> Sift {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut s = Sift {
            child: None,
            in_process,
            app: None,
            base: String::new(),
            log: Arc::new(Mutex::new(String::new())),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            store_url: store_url.to_string(),
            dir: db.dir.path().to_path_buf(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        if self.in_process {
            return self.spawn_in_process();
        }
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sift"));
        for (k, _) in std::env::vars() {
            if k.starts_with("SIFT_") || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        cmd.arg("serve")
            .current_dir(&self.dir)
            .env("NO_COLOR", "1")
            .env("SIFT_SERVER__LISTEN", "127.0.0.1:0")
            .env("SIFT_STORE__URL", &self.store_url)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn sift serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = self.log.clone();
        let (tx, rx) = mpsc::channel::<String>();
        // Drains stderr for the child's whole life, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                {
                    let mut l = log.lock().unwrap_or_else(|p| p.into_inner());
                    l.push_str(&line);
                    l.push('\n');
                }
                if let Some(addr) = listening_addr(&line)
                    && let Some(t) = tx.take()
                {
                    let _ = t.send(addr);
                }
            }
        });
        self.child = Some(child);
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) => self.base = format!("http://{addr}"),
            Err(_) => {
                let status = self
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                self.kill();
                panic!(
                    "sift did not log `listening on` within {START_TIMEOUT:?} (exit: {status:?}); log:\n{}",
                    self.log()
                );
            }
        }
    }

    /// Builds the app here and runs it on a thread and runtime of its own, so the test's
    /// runtime never has to drive it and a blocking `stop` cannot starve it. Its log goes
    /// to `log` through a subscriber set for that thread: a current-thread runtime keeps
    /// every task of the daemon on it (blocking tasks excepted).
    fn spawn_in_process(&mut self) {
        let mut env: Vec<(String, String)> = vec![
            ("SIFT_SERVER__LISTEN".into(), "127.0.0.1:0".into()),
            ("SIFT_STORE__URL".into(), self.store_url.clone()),
        ];
        env.extend(self.env.iter().cloned());
        // An empty file, so no `config/sift.toml` of the working directory is read.
        let file = self.dir.join("in-process.toml");
        std::fs::write(&file, "").expect("write the empty config file");
        let cfg = sift::config::Config::load_from(Some(&file), &env)
            .unwrap_or_else(|e| panic!("configuration refused: {e}"));
        let shutdown = tokio_util::sync::CancellationToken::new();
        let (tx, rx) = mpsc::channel::<Result<u16, String>>();
        let (token, log) = (shutdown.clone(), self.log.clone());
        let thread = std::thread::spawn(move || -> Result<(), String> {
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::INFO)
                .with_ansi(false)
                .with_writer(move || LogWriter(log.clone()))
                .finish();
            let _log = tracing::subscriber::set_default(subscriber);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let app = match sift::app::App::build(cfg).await {
                    Ok(app) => app,
                    Err(e) => {
                        let _ = tx.send(Err(format!("{e:#}")));
                        return Err(format!("{e:#}"));
                    }
                };
                let _ = tx.send(Ok(app.port()));
                app.run(token).await.map_err(|e| format!("{e:#}"))
            })
        });
        self.app = Some(InProcess { shutdown, thread });
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(port)) => self.base = format!("http://127.0.0.1:{port}"),
            Ok(Err(e)) => panic!("sift did not start: {e}; log:\n{}", self.log()),
            Err(_) => panic!(
                "sift did not start within {START_TIMEOUT:?}; log:\n{}",
                self.log()
            ),
        }
    }

    /// Cancels the in-process daemon's token and waits for `run` to return: `Ok` when it
    /// stopped cleanly within `STOP_TIMEOUT`.
    fn stop_in_process(&mut self) -> Result<(), String> {
        let Some(app) = self.app.take() else {
            return Ok(());
        };
        app.shutdown.cancel();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while !app.thread.is_finished() {
            if Instant::now() > deadline {
                return Err(format!("sift did not stop within {STOP_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        match app.thread.join() {
            Ok(r) => r,
            Err(_) => Err("the daemon's thread panicked".into()),
        }
    }

    /// The daemon's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Peak resident memory of the daemon so far (VmHWM), in bytes (Linux).
    pub fn peak_rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    /// Everything the daemon wrote to stderr so far (all runs).
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn kill(&mut self) {
        // In process there is nothing to kill: the daemon is stopped as on SIGTERM.
        let _ = self.stop_in_process();
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, wait for a clean exit, start again on the same store (new port).
    pub fn restart(&mut self) {
        self.stop();
        self.log.lock().unwrap().push_str("---- restart ----\n");
        self.spawn();
    }

    /// SIGKILL (a crash: no graceful shutdown), then start again on the same store.
    pub fn crash_restart(&mut self) {
        assert!(
            !self.in_process,
            "crash_restart needs a process to kill: start this daemon with Sift::start"
        );
        self.kill();
        self.log
            .lock()
            .unwrap()
            .push_str("---- killed (SIGKILL), restart ----\n");
        self.spawn();
    }

    /// SIGTERM and wait for the process to exit; panics when it does not exit cleanly.
    /// In process: the shutdown token instead of SIGTERM, the same wait.
    pub fn stop(&mut self) {
        if self.in_process {
            if let Err(e) = self.stop_in_process() {
                panic!("{e}; log:\n{}", self.log());
            }
            return;
        }
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -TERM {pid} failed");
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    assert!(
                        status.success(),
                        "sift exited with {status} after SIGTERM; log:\n{}",
                        self.log()
                    );
                    return;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "sift did not exit within {STOP_TIMEOUT:?} of SIGTERM; log:\n{}",
                        self.log()
                    );
                }
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// Sends a request and reads the answer; the body is parsed as JSON when it is JSON.
    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Resp {
        let r = rb
            .send()
            .await
            .unwrap_or_else(|e| panic!("request failed: {e}; log:\n{}", self.log()));
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp { status, text, body }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        let mut rb = self.request(method, path);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        self.send(rb).await
    }

    /// A raw (possibly invalid) JSON body.
    pub async fn raw(&self, method: Method, path: &str, body: &str) -> Resp {
        let rb = self
            .request(method, path)
            .header("content-type", "application/json")
            .body(body.to_string());
        self.send(rb).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None, None).await
    }
    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.call(Method::POST, path, None, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.call(Method::PUT, path, None, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: &Value) -> Resp {
        self.call(Method::PATCH, path, None, Some(body)).await
    }

    /// GET that must answer 200; returns the JSON body.
    pub async fn get_ok(&self, path: &str) -> Value {
        let r = self.get(path).await;
        self.expect(&r, 200, &format!("GET {path}"));
        r.body
    }

    /// Asserts a status, showing the answer and the daemon's log otherwise.
    pub fn expect(&self, r: &Resp, status: u16, what: &str) {
        assert_eq!(
            r.status,
            status,
            "{what}: expected {status}, got {} with body {}\n---- sift log ----\n{}",
            r.status,
            r.text,
            self.log()
        );
    }

    /// `GET /api/v1/alerts` (limit 1000): the alert list.
    pub async fn alerts(&self) -> Vec<Value> {
        list(self.get_ok("/api/v1/alerts?limit=1000").await, "alerts")
    }

    /// `GET /api/v1/incidents` (limit 1000): the incident list.
    pub async fn incidents(&self) -> Vec<Value> {
        list(
            self.get_ok("/api/v1/incidents?limit=1000").await,
            "incidents",
        )
    }

    /// Polls `f` until it returns `Some`, or panics after `timeout` with `what` and the log.
    pub async fn eventually<T, F, Fut>(&self, timeout: Duration, what: &str, mut f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f().await {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for: {what}\n---- sift log ----\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The daemon of `Sift::spawn_app`: its token and the thread that runs it.
struct InProcess {
    shutdown: tokio_util::sync::CancellationToken,
    thread: std::thread::JoinHandle<Result<(), String>>,
}

/// Appends the in-process daemon's log lines to `Sift::log`.
struct LogWriter(Arc<Mutex<String>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_str(&String::from_utf8_lossy(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Sift {
    fn drop(&mut self) {
        self.kill();
    }
}

fn list(v: Value, key: &str) -> Vec<Value> {
    v.get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_else(|| panic!("expected {{\"{key}\": [...]}}, got {v}"))
}

/// The `HOST:PORT` of a `listening on http://HOST:PORT` log line.
fn listening_addr(line: &str) -> Option<String> {
    let i = line.find("listening on http://")? + "listening on http://".len();
    let addr: String = line[i..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']'))
        .collect();
    (!addr.is_empty()).then_some(addr)
}

/// One sample of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, k: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the Prometheus text exposition format strictly: every non-empty, non-comment
/// line must be `name{labels} value` (labels optional) with a float value.
pub fn parse_prometheus(text: &str) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    for (no, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |m: &str| format!("line {}: {m}: {line:?}", no + 1);
        let name_end = line.find(['{', ' ']).ok_or_else(|| err("no value"))?;
        let name = &line[..name_end];
        let valid_name = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        if !valid_name {
            return Err(err("bad metric name"));
        }
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(r) = rest.strip_prefix('{') {
            let mut r = r;
            loop {
                r = r.trim_start_matches(',');
                if let Some(after) = r.strip_prefix('}') {
                    rest = after;
                    break;
                }
                let eq = r.find("=\"").ok_or_else(|| err("bad label"))?;
                let key = r[..eq].to_string();
                if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(err("bad label name"));
                }
                let mut val = String::new();
                let mut chars = r[eq + 2..].char_indices();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => match chars.next() {
                            Some((_, 'n')) => val.push('\n'),
                            Some((_, c2)) => val.push(c2),
                            None => return Err(err("dangling escape")),
                        },
                        '"' => {
                            end = Some(eq + 2 + i + 1);
                            break;
                        }
                        c => val.push(c),
                    }
                }
                let end = end.ok_or_else(|| err("unterminated label value"))?;
                labels.push((key, val));
                r = &r[end..];
            }
        }
        let mut parts = rest.split_whitespace();
        let v = parts.next().ok_or_else(|| err("no value"))?;
        let value = match v {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse::<f64>().map_err(|_| err("value is not a float"))?,
        };
        if let Some(ts) = parts.next()
            && ts.parse::<i64>().is_err()
        {
            return Err(err("bad timestamp"));
        }
        if parts.next().is_some() {
            return Err(err("trailing text"));
        }
        out.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Ok(out)
}

/// Sum of the samples named `name` whose labels include all of `with`.
pub fn metric(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && with.iter().all(|(k, v)| s.label(k) == Some(*v)))
        .map(|s| s.value)
        .sum()
}
