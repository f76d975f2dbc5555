//! The POP3 thin slice: CAPA, USER/PASS, STAT, LIST, RETR, QUIT over TLS.

use crate::harness::*;

/// The message as RETR sends it: dot-stuffed, then `.` CRLF.
fn stuffed(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in msg.split_inclusive(|b| *b == b'\n') {
        if line.starts_with(b".") {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[tokio::test]
async fn pop3_slice_byte_for_byte() {
    let server = TestServer::start();
    let msg = sample_message();
    let mut c = Client::connect(server.pop3s, &server.ca).await;
    assert!(c.line().await.starts_with("+OK"));
    c.send(b"CAPA\r\n").await;
    assert!(c.line().await.starts_with("+OK"));
    let mut caps = Vec::new();
    loop {
        let l = c.line().await;
        if l == ".\r\n" {
            break;
        }
        caps.push(l.trim_end().to_string());
    }
    for want in ["USER", "UIDL", "TOP", "SASL PLAIN", "RESP-CODES"] {
        assert!(
            caps.iter().any(|c| c == want),
            "CAPA lacks {want}: {caps:?}"
        );
    }
    c.send(format!("USER {USER}\r\n").as_bytes()).await;
    assert!(c.line().await.starts_with("+OK"));
    c.send(format!("PASS {PASSWORD}\r\n").as_bytes()).await;
    let pass = c.line().await;
    assert!(pass.starts_with("+OK"), "{pass}");
    c.send(b"STAT\r\n").await;
    assert_eq!(c.line().await, format!("+OK 1 {}\r\n", msg.len()));
    c.send(b"LIST\r\n").await;
    assert!(c.line().await.starts_with("+OK"));
    assert_eq!(c.line().await, format!("1 {}\r\n", msg.len()));
    assert_eq!(c.line().await, ".\r\n");
    c.send(b"RETR 1\r\n").await;
    assert!(c.line().await.starts_with("+OK"));
    let expected = stuffed(&msg);
    assert_eq!(c.exact(expected.len()).await, expected);
    c.send(b"QUIT\r\n").await;
    assert!(c.line().await.starts_with("+OK"));
    assert!(c.rest().await.is_empty());
    assert!(!server.log().contains(PASSWORD));
}

#[tokio::test]
async fn pop3_wrong_password_is_err() {
    let server = TestServer::start();
    let mut c = Client::connect(server.pop3s, &server.ca).await;
    c.line().await;
    c.send(format!("USER {USER}\r\n").as_bytes()).await;
    c.line().await;
    c.send(b"PASS wrong\r\n").await;
    let r = c.line().await;
    assert!(r.starts_with("-ERR [AUTH]"), "{r}");
}

#[test]
fn curl_reads_the_message_over_pop3s() {
    if !require_tool("curl") {
        return;
    }
    let server = TestServer::start();
    let url = format!("pop3s://localhost:{}/1", server.pop3s.port());
    let out = curl(&server.ca, &url, USER, PASSWORD);
    assert!(
        out.status.success(),
        "curl failed: {}\nlog: {}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    assert_eq!(out.stdout, sample_message());
}

/// `[pop3s] uidl_format` reaches the sessions (here Cyrus' `%v.%u`).
#[tokio::test]
async fn uidl_format_from_the_config() {
    let server = TestServer::start_custom("", |text| {
        text.replace(
            "[pop3s]\nlisten = [\"127.0.0.1:0\"]\n",
            "[pop3s]\nlisten = [\"127.0.0.1:0\"]\nuidl_format = \"%v.%u\"\n",
        )
    });
    let mut c = Client::connect(server.pop3s, &server.ca).await;
    c.line().await;
    c.send(format!("USER {USER}\r\nPASS {PASSWORD}\r\nUIDL 1\r\n").as_bytes())
        .await;
    assert!(c.line().await.starts_with("+OK"));
    assert!(c.line().await.starts_with("+OK"));
    let uidl = c.line().await;
    let uidvalidity =
        std::fs::read_to_string(server.mail_root().join("example.org/alice/dovecot-uidlist"))
            .unwrap();
    let v: u32 = uidvalidity
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_start_matches('V')
        .parse()
        .unwrap();
    assert_eq!(uidl, format!("+OK 1 {v}.1\r\n"));
}
