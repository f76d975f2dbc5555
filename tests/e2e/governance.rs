//! Connection governance before login: a per-source cap that evicts the
//! oldest unauthenticated connection, and a total pre-login time limit that
//! a slow client cannot stretch byte by byte.

use std::io::Read;

use crate::harness::*;

/// Three idle TCP connections (no TLS handshake, the slowloris pattern) from
/// 127.0.0.1 fill the cap of 3; a real client from the same address still
/// gets in, the oldest idle one is closed, and logged-in sessions never count.
#[tokio::test]
async fn oldest_unauthenticated_connection_is_evicted_at_the_cap() {
    let server = TestServer::start_with_limits("max_prelogin_per_address = 3\n");
    let idle: Vec<std::net::TcpStream> = (0..3)
        .map(|_| {
            let s = std::net::TcpStream::connect(server.imaps).unwrap();
            s.set_read_timeout(Some(WAIT)).unwrap();
            s
        })
        .collect();
    // Give the server time to register all three (bounded wait on the log).
    let deadline = std::time::Instant::now() + WAIT;
    while server.log().matches("connection opened").count() < 3 {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut logged_in = Vec::new();
    for i in 0..3 {
        let mut c = Client::connect(server.imaps, &server.ca).await;
        c.line().await;
        c.send(format!("a{i} LOGIN {USER} \"{PASSWORD}\"\r\n").as_bytes())
            .await;
        let r = String::from_utf8_lossy(&c.until_tagged(&format!("a{i}")).await).to_string();
        assert!(r.contains(&format!("a{i} OK")), "{r}");
        logged_in.push(c);
    }
    // Each of the three logins needed a place: all three idle ones were evicted.
    for mut s in idle {
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "idle connection was not closed");
    }
    // The logged-in sessions are untouched by further unauthenticated connections.
    let _more: Vec<_> = (0..5)
        .map(|_| std::net::TcpStream::connect(server.imaps).unwrap())
        .collect();
    for (i, c) in logged_in.iter_mut().enumerate() {
        c.send(format!("n{i} NOOP\r\n").as_bytes()).await;
        assert!(String::from_utf8_lossy(&c.until_tagged(&format!("n{i}")).await).contains("OK"));
    }
    assert!(
        server.log().contains("reason=Evicted")
            || server.log().contains("evicted during the TLS handshake")
    );
}

/// The pre-login limit is a total: a client that completes TLS but never
/// logs in is closed after `prelogin_timeout_secs`, while a logged-in client
/// idle for longer stays.
#[tokio::test]
async fn prelogin_time_limit_is_total() {
    let server = TestServer::start_with_limits("prelogin_timeout_secs = 2\n");
    let mut authed = Client::connect(server.imaps, &server.ca).await;
    authed.line().await;
    authed
        .send(format!("a1 LOGIN {USER} \"{PASSWORD}\"\r\n").as_bytes())
        .await;
    authed.until_tagged("a1").await;

    let mut slow = Client::connect(server.imaps, &server.ca).await;
    slow.line().await;
    // Dribble a command one byte at a time, never finishing it, for longer
    // than the limit; the server closes the connection on the way.
    use tokio::io::AsyncWriteExt;
    for b in b"a1 CAPABILITY" {
        let s = slow.stream.get_mut();
        if s.write_all(&[*b]).await.is_err() || s.flush().await.is_err() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let rest = String::from_utf8_lossy(&slow.rest().await).to_string();
    assert_eq!(
        rest, "* BYE Autologout; idle for too long\r\n",
        "slow client got an answer"
    );
    assert!(
        server.log().contains("reason=PreLoginTimeout"),
        "{}",
        server.log()
    );

    authed.send(b"a2 NOOP\r\n").await;
    assert!(String::from_utf8_lossy(&authed.until_tagged("a2").await).contains("a2 OK"));
}

/// `[limits] max_sessions_per_account`: the next login gets `NO [LIMIT]`
/// until a session of that account ends.
#[tokio::test]
async fn sessions_per_account_are_capped() {
    let server = TestServer::start_with_limits("max_sessions_per_account = 2\n");
    let mut open = Vec::new();
    for i in 0..3 {
        let mut c = Client::connect(server.imaps, &server.ca).await;
        c.line().await;
        c.send(format!("a{i} LOGIN {USER} \"{PASSWORD}\"\r\n").as_bytes())
            .await;
        let r = String::from_utf8_lossy(&c.until_tagged(&format!("a{i}")).await).to_string();
        if i < 2 {
            assert!(r.contains(&format!("a{i} OK")), "{r}");
        } else {
            assert!(
                r.contains("a2 NO [LIMIT] Too many sessions for this account"),
                "{r}"
            );
        }
        open.push(c);
    }
    let mut first = open.remove(0);
    first.send(b"z LOGOUT\r\n").await;
    first.until_tagged("z").await;
    assert!(first.rest().await.is_empty());
    // The refused client may retry on the same connection once a place is free.
    let refused = open.last_mut().unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        refused
            .send(format!("r LOGIN {USER} \"{PASSWORD}\"\r\n").as_bytes())
            .await;
        let r = String::from_utf8_lossy(&refused.until_tagged("r").await).to_string();
        if r.contains("r OK") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{r}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
