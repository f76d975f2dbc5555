//! What a first sync costs the IMAP session per message: `UID FETCH 1:*
//! (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)` on a folder
//! of realistic messages, the first time (every message read and parsed:
//! MIME structure, ENVELOPE, then kept in the store's derived-field cache)
//! and again (served from the cache), plus Thunderbird's header-fields
//! FETCH. The store is the in-memory one, so the figures are the session's
//! own work (parsing, encoding), not the disk's.
//!
//! Run with `cargo bench -p imap-session --bench fetch_metadata`;
//! `COFFRE_BENCH_MESSAGES` sets the folder size (default 5,000).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::Instant;

use account_auth::testing::StaticAuthenticator;
use imap_session::{ConnectionInfo, ImapConfig, ImapSession, Next};
use mail_store::Flags;
use mail_store::memory::MemoryStore;

const USER: &str = "alice@example.org";

type Session = ImapSession<MemoryStore, StaticAuthenticator>;

/// Message `i`: one of four shapes seen in real mailboxes.
fn message(i: usize) -> Vec<u8> {
    let head = format!(
        "Return-Path: <sender{i}@example.net>\r\nReceived: from mx.example.net by mail.example.org; Tue, 24 Nov 2026 09:15:02 +0100\r\n\
         Date: Tue, 24 Nov 2026 09:15:02 +0100\r\nFrom: =?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <joerg{i}@example.de>\r\n\
         To: Alice <alice@example.org>, bob@example.org\r\nCc: team@example.org\r\n\
         Subject: =?UTF-8?B?UXVhcnRhbHN6YWhsZW4=?= draft {i}\r\nMessage-ID: <{i}.abc@mail.example.de>\r\n\
         In-Reply-To: <{}.abc@mail.example.de>\r\nMIME-Version: 1.0\r\n",
        i.saturating_sub(1)
    );
    let body = match i % 4 {
        0 => "Content-Type: text/plain; charset=utf-8\r\n\r\nHello,\r\n\r\nthe figures are attached.\r\n\r\nJ.\r\n".to_string(),
        1 => "Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlain part\r\nsecond line\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>HTML part</p>\r\n--alt--\r\n".to_string(),
        2 => format!(
            "Content-Type: multipart/mixed; boundary=\"mix\"\r\n\r\n--mix\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee attachment.\r\n--mix\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\nContent-Disposition: attachment; filename=\"report.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}--mix--\r\n",
            "JVBERi0xLjQKJcTl8uXrp/Og0MTGCjQgMCBvYmoKPDwvTGVuZ3RoIDUgMCBSPj4Kc3RyZWFtCg==\r\n".repeat(40)
        ),
        _ => "Content-Type: multipart/mixed; boundary=\"fwd\"\r\n\r\n--fwd\r\nContent-Type: text/plain\r\n\r\nForwarded below.\r\n--fwd\r\nContent-Type: message/rfc822\r\n\r\nFrom: carol@example.org\r\nTo: joerg@example.de\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=\"in\"\r\n\r\n--in\r\nContent-Type: text/plain\r\n\r\ninner\r\n--in\r\nContent-Type: text/html\r\n\r\n<b>inner</b>\r\n--in--\r\n--fwd--\r\n".to_string(),
    };
    format!("{head}{body}").into_bytes()
}

async fn send(session: &mut Session, input: &str) -> Vec<u8> {
    session.enqueue_input(input.as_bytes());
    let mut out = Vec::new();
    loop {
        match session.process(&mut out).await {
            Next::Continue => continue,
            _ => return out,
        }
    }
}

async fn timed(session: &mut Session, what: &str, command: &str, n: usize) {
    let start = Instant::now();
    let out = send(session, command).await;
    let took = start.elapsed();
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains("F OK"),
        "{what}: {}",
        &text[text.len().saturating_sub(200)..]
    );
    assert_eq!(text.matches(" FETCH (").count(), n, "{what}");
    let secs = took.as_secs_f64();
    println!(
        "{what:<52} {n:>7} {:>9.1} ms {:>10.0} msgs/s {:>8.1} MB/s out",
        secs * 1e3,
        n as f64 / secs,
        out.len() as f64 / secs / 1e6
    );
}

fn main() {
    let n: usize = std::env::var("COFFRE_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let store = MemoryStore::new();
    for i in 0..n {
        store
            .deliver(USER, "INBOX", &message(i), Flags::new())
            .unwrap();
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let auth = Arc::new(StaticAuthenticator::new().with_user(USER, "secret"));
        let conn = ConnectionInfo {
            peer: "192.0.2.1:50000".parse().unwrap(),
            session_id: 1,
            tls: "TLSv1.3".into(),
        };
        let mut session = ImapSession::new(
            Arc::new(store.clone()),
            auth,
            Arc::new(ImapConfig::default()),
            conn,
        );
        assert!(send(&mut session, "L LOGIN alice@example.org secret\r\n").await.starts_with(b"L OK"));
        assert!(String::from_utf8_lossy(&send(&mut session, "S EXAMINE INBOX\r\n").await).contains("S OK"));
        println!("{:<52} {:>7} {:>12} {:>17} {:>15}", "FETCH", "msgs", "time", "rate", "output");
        let headers = "F UID FETCH 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Bcc Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type Reply-To)])\r\n";
        timed(&mut session, "Thunderbird header fields, first (read + keep)", headers, n).await;
        timed(&mut session, "Thunderbird header fields, again (from the cache)", headers, n).await;
        let meta = "F UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)\r\n";
        timed(&mut session, "ENVELOPE+BODYSTRUCTURE, first (parse + keep)", meta, n).await;
        timed(&mut session, "ENVELOPE+BODYSTRUCTURE, again (from the cache)", meta, n).await;
    });
}
