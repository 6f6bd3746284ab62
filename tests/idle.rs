//! Clients that connect and send nothing, or send half a request's headers and stall, are
//! disconnected after `server.header_read_timeout`; a normal client is still served.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Backend, Db, Sift};

/// Reads until the server closes the connection; `Err` when it is still open after
/// `limit` (a bound so a broken server fails the test instead of hanging it).
fn read_to_close(mut s: TcpStream, limit: Duration) -> std::io::Result<Vec<u8>> {
    s.set_read_timeout(Some(limit))?;
    let mut got = Vec::new();
    s.read_to_end(&mut got)?;
    Ok(got)
}

#[tokio::test]
async fn idle_and_slow_clients_are_disconnected() {
    let db = Db::new(Backend::Sqlite)
        .await
        .expect("sqlite is always available");
    let s = Sift::start(&db, &[("SIFT_SERVER__HEADER_READ_TIMEOUT", "300ms")]);
    let addr = s.base.trim_start_matches("http://").to_string();

    let idle = TcpStream::connect(&addr).unwrap();
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.write_all(b"POST /api/v2/alerts HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let (idle, slow) = tokio::task::spawn_blocking(move || {
        (
            read_to_close(idle, Duration::from_secs(30)),
            read_to_close(slow, Duration::from_secs(30)),
        )
    })
    .await
    .unwrap();
    let idle = idle.expect("an idle connection is closed by the server");
    assert!(
        idle.is_empty(),
        "nothing is sent to a client that sent nothing"
    );
    slow.expect("a connection stalled mid-headers is closed by the server");

    // The server itself is fine.
    let r = s.get("/healthz").await;
    assert_eq!(r.status, 200, "{}", r.text);
}
