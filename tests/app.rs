//! The application object in process (`sift::app::App`): it binds the port it is given
//! (0 included), serves, and stops when its one shutdown token is cancelled, within its
//! grace period, ending open event streams rather than waiting for their readers.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Db, Sift};
use sift::app::App;
use sift::config::Config;
use tokio_util::sync::CancellationToken;

const GRACE: Duration = Duration::from_secs(5);

fn config(db: &Db) -> Config {
    let file = db.write("empty.toml", "");
    let env = [
        ("SIFT_SERVER__LISTEN", "127.0.0.1:0"),
        ("SIFT_STORE__URL", db.url.as_str()),
        ("SIFT_SERVER__SHUTDOWN_GRACE", "5s"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    Config::load_from(Some(&file), &env).expect("config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_token_stops_the_app_and_ends_event_streams() {
    let Some(db) = Db::new(Backend::Sqlite).await else {
        return;
    };
    let app = App::build(config(&db)).await.expect("build");
    let port = app.port();
    assert_ne!(port, 0, "port 0 is resolved to the bound port");
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(app.run(shutdown.clone()));
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let ready = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status().as_u16(), 200);

    // Two readers, each past the first comment line: the stream is open.
    let mut streams = Vec::new();
    for _ in 0..2 {
        let mut s = client
            .get(format!("{base}/api/v1/events"))
            .send()
            .await
            .expect("event stream");
        assert_eq!(s.status().as_u16(), 200);
        let first = tokio::time::timeout(Duration::from_secs(5), s.chunk())
            .await
            .expect("a first chunk in time")
            .expect("read");
        assert_eq!(first.as_deref(), Some(&b":\n\n"[..]));
        streams.push(s);
    }

    let t = Instant::now();
    shutdown.cancel();
    for mut s in streams {
        // Ends: no more chunks (keep-alives come every 15 s, so one here would be a
        // stream still open).
        let end = tokio::time::timeout(GRACE, s.chunk())
            .await
            .expect("the event stream ends at shutdown");
        assert!(matches!(end, Ok(None)), "stream ended cleanly: {end:?}");
    }
    let stopped = tokio::time::timeout(GRACE + Duration::from_secs(1), run)
        .await
        .expect("run returns within the grace period")
        .expect("run task");
    stopped.expect("run ends without error");
    assert!(
        t.elapsed() < GRACE,
        "stopped in {:?}, not within the grace period {GRACE:?}",
        t.elapsed()
    );
    assert!(
        client.get(format!("{base}/healthz")).send().await.is_err(),
        "nothing listens after run returned"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_dropped_before_run_frees_its_port_and_store() {
    let Some(db) = Db::new(Backend::Sqlite).await else {
        return;
    };
    let app = App::build(config(&db)).await.expect("build");
    let port = app.port();
    drop(app);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the listener closed with the app"
    );
    // Built again on the same store; a token cancelled before `run` stops it at once.
    let again = App::build(config(&db)).await.expect("build again");
    let shutdown = CancellationToken::new();
    shutdown.cancel();
    tokio::time::timeout(GRACE, again.run(shutdown))
        .await
        .expect("an app whose token is already cancelled stops at once")
        .expect("run");
}

/// The harness's in-process daemon: served on its own port, its log captured, stopped by
/// its token like SIGTERM stops the binary, and started again on the same store.
#[tokio::test]
async fn spawn_app_serves_logs_and_restarts() {
    let Some(db) = Db::new(Backend::Sqlite).await else {
        return;
    };
    let mut s = Sift::spawn_app(&db, &[]);
    let r = s.get("/readyz").await;
    s.expect(&r, 200, "readyz");
    s.restart();
    let r = s.get("/readyz").await;
    s.expect(&r, 200, "readyz after the restart");
    s.stop();
    let log = s.log();
    for line in ["listening on http://127.0.0.1:", "shutting down", "stopped"] {
        assert!(log.contains(line), "the log has {line:?}:\n{log}");
    }
}
