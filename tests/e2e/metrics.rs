//! The Prometheus endpoint: off by default, on `[metrics] listen` it reports
//! connections, logins by result, bytes and legacy-notice hits.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::harness::*;

fn scrape(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test]
async fn metrics_endpoint_counts_what_happened() {
    let server = TestServer::start_custom("[metrics]\nlisten = \"127.0.0.1:0\"\n", |text| text);
    let deadline = Instant::now() + WAIT;
    let metrics = loop {
        assert!(Instant::now() < deadline, "no metrics address printed");
        if let Ok(l) = server.stdout.recv_timeout(Duration::from_millis(200))
            && let Some(a) = l.strip_prefix("coffre: metrics on http://")
        {
            break a
                .trim_end_matches("/metrics")
                .parse::<std::net::SocketAddr>()
                .unwrap();
        }
    };

    // One legacy hit, one failed and one good login.
    let mut n = std::net::TcpStream::connect(server.notice_imap).unwrap();
    let mut line = String::new();
    n.set_read_timeout(Some(WAIT)).unwrap();
    let _ = n.read_to_string(&mut line);
    let mut c = Client::connect(server.imaps, &server.ca).await;
    c.line().await;
    c.send(
        format!("a1 LOGIN {USER} not-it\r\na2 LOGIN {USER} \"{PASSWORD}\"\r\na3 LOGOUT\r\n")
            .as_bytes(),
    )
    .await;
    c.until_tagged("a3").await;
    c.rest().await;

    // The close is counted, and the open-connections gauge brought down,
    // when the server's task ends (two separate updates): poll briefly.
    let deadline = Instant::now() + WAIT;
    let text = loop {
        let text = scrape(metrics, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        let closed = text.contains(
            "coffre_connections_closed_total{protocol=\"imaps\",reason=\"session_end\"} 1",
        );
        let gone = text.contains("coffre_connections_active{protocol=\"imaps\"} 0\n");
        if (closed && gone) || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.contains("Content-Type: text/plain; version=0.0.4"),
        "{text}"
    );
    for want in [
        "coffre_connections_total{protocol=\"imaps\"} 1\n",
        "coffre_connections_active{protocol=\"imaps\"} 0\n",
        "coffre_connections_closed_total{protocol=\"imaps\",reason=\"session_end\"} 1\n",
        "coffre_legacy_notice_total{protocol=\"imap\"} 1\n",
        "coffre_logins_total{result=\"success\"} 1\n",
        "coffre_logins_total{result=\"failed\"} 1\n",
        "coffre_commands_total{protocol=\"imaps\",command=\"LOGIN\"} 2\n",
        "coffre_commands_total{protocol=\"imaps\",command=\"LOGOUT\"} 1\n",
        "# TYPE coffre_command_duration_seconds histogram\n",
        "coffre_command_duration_seconds_count{protocol=\"imaps\",command=\"LOGIN\"} 2\n",
        "coffre_command_duration_seconds_bucket{protocol=\"imaps\",command=\"LOGIN\",le=\"+Inf\"} 2\n",
    ] {
        assert!(text.contains(want), "missing {want:?} in {text}");
    }
    let received: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("coffre_received_bytes_total{protocol=\"imaps\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(received > 40, "{received}");
    assert!(scrape(metrics, "GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
}
