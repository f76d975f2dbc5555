//! The abuse suite (issue 7, point 8): hostile input against the real
//! `coffre` binary over TLS. Every case is bounded in time; after every case
//! a fresh client logs in, SELECTs INBOX and FETCHes the message at once, and
//! the server's resident memory and open file descriptors come back near the
//! baseline taken after startup and one login.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as TokioBufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;

use crate::harness::*;

/// Slack allowed over the baseline once the abusive clients are gone.
const RSS_SLACK_KIB: u64 = 64 * 1024;
const FD_SLACK: usize = 16;

// ---------------------------------------------------------------- helpers

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .map(|v| v.trim().trim_end_matches("kB").trim().parse().unwrap())
        .unwrap()
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[derive(Debug, Clone, Copy)]
struct Baseline {
    rss_kib: u64,
    fds: usize,
}

/// Starts a default server and records its baseline after one full login.
async fn start() -> (TestServer, Baseline) {
    let server = TestServer::start();
    assert_healthy(&server).await;
    let base = Baseline {
        rss_kib: rss_kib(server.pid()),
        fds: fd_count(server.pid()),
    };
    eprintln!("baseline: rss={} KiB fds={}", base.rss_kib, base.fds);
    (server, base)
}

/// A fresh client logs in, SELECTs INBOX and FETCHes the message, at once.
async fn assert_healthy(server: &TestServer) {
    assert_healthy_from(server, None).await;
}

async fn assert_healthy_from(server: &TestServer, local: Option<&str>) {
    healthy_at(server.imaps, &server.ca, local).await;
}

async fn healthy_at(imaps: SocketAddr, ca: &Path, local: Option<&str>) {
    let mut c = match local {
        Some(ip) => connect_from(imaps, ca, ip).await,
        None => Client::connect(imaps, ca).await,
    };
    let greeting = c.line().await;
    assert!(greeting.starts_with("* OK"), "{greeting}");
    c.send(format!("h1 LOGIN {USER} \"{PASSWORD}\"\r\n").as_bytes())
        .await;
    let r = lossy(&c.until_tagged("h1").await);
    assert!(r.contains("h1 OK"), "login: {r}");
    c.send(b"h2 SELECT INBOX\r\n").await;
    let r = lossy(&c.until_tagged("h2").await);
    assert!(
        r.contains("h2 OK") && r.contains("* 1 EXISTS"),
        "select: {r}"
    );
    c.send(b"h3 FETCH 1 (BODY.PEEK[])\r\n").await;
    let r = lossy(&c.until_tagged("h3").await);
    assert!(
        r.contains("h3 OK") && r.contains("Subject: Hello") && r.contains("Hi Alice"),
        "fetch: {r}"
    );
    c.send(b"h4 LOGOUT\r\n").await;
    c.until_tagged("h4").await;
}

/// Polls (bounded) until memory and descriptors are back near the baseline.
async fn assert_back_to_baseline(server: &TestServer, base: Baseline, case: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (rss, fds) = (rss_kib(server.pid()), fd_count(server.pid()));
        if rss <= base.rss_kib + RSS_SLACK_KIB && fds <= base.fds + FD_SLACK {
            eprintln!(
                "{case}: after: rss={rss} KiB ({:+} KiB) fds={fds} ({:+})",
                rss as i64 - base.rss_kib as i64,
                fds as i64 - base.fds as i64
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{case}: not back to baseline: rss={rss} KiB (base {}) fds={fds} (base {})",
            base.rss_kib,
            base.fds
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The end of every case: healthy at once, resources back near the baseline.
async fn after_case(server: &TestServer, base: Baseline, case: &str) {
    assert_healthy(server).await;
    assert_back_to_baseline(server, base, case).await;
    assert!(
        !server.log().contains("panicked"),
        "{case}: a session panicked: {}",
        server.log()
    );
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A TLS client whose socket is bound to `local` (any 127.0.0.0/8 address
/// reaches the loopback listener on Linux).
async fn connect_from(addr: SocketAddr, ca: &Path, local: &str) -> Client {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    let tcp = tokio::time::timeout(WAIT, socket.connect(addr))
        .await
        .unwrap()
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio::time::timeout(
        WAIT,
        TlsConnector::from(client_config(ca)).connect(name, tcp),
    )
    .await
    .unwrap()
    .unwrap();
    Client {
        stream: TokioBufReader::new(tls),
    }
}

async fn login(server: &TestServer) -> Client {
    let mut c = Client::connect(server.imaps, &server.ca).await;
    c.line().await;
    c.send(format!("l1 LOGIN {USER} \"{PASSWORD}\"\r\n").as_bytes())
        .await;
    let r = lossy(&c.until_tagged("l1").await);
    assert!(r.contains("l1 OK"), "{r}");
    c
}

async fn pop3_login(server: &TestServer) -> Client {
    let mut c = Client::connect(server.pop3s, &server.ca).await;
    assert!(c.line().await.starts_with("+OK"));
    c.send(format!("USER {USER}\r\n").as_bytes()).await;
    assert!(c.line().await.starts_with("+OK"));
    c.send(format!("PASS {PASSWORD}\r\n").as_bytes()).await;
    let r = c.line().await;
    assert!(r.starts_with("+OK"), "{r}");
    c
}

/// Writes without failing the test when the server has closed the connection.
async fn try_send(c: &mut Client, bytes: &[u8]) -> bool {
    let s = c.stream.get_mut();
    let w = async {
        s.write_all(bytes).await?;
        s.flush().await
    };
    matches!(tokio::time::timeout(WAIT, w).await, Ok(Ok(())))
}

/// What came back: lines read until one starts with `tag ` or the
/// connection ends (EOF, reset or a TLS error), bounded by WAIT.
struct Reply {
    text: String,
    closed: bool,
}

async fn read_reply(c: &mut Client, tag: &str) -> Reply {
    let mut all = Vec::new();
    let deadline = Instant::now() + WAIT;
    loop {
        let mut buf = Vec::new();
        let left = deadline.saturating_duration_since(Instant::now());
        let r = tokio::time::timeout(left, c.stream.read_until(b'\n', &mut buf))
            .await
            .unwrap_or_else(|_| panic!("no answer for {tag} in time: {}", lossy(&all)));
        let done = buf.starts_with(format!("{tag} ").as_bytes());
        all.extend_from_slice(&buf);
        match r {
            Ok(0) | Err(_) => {
                return Reply {
                    text: lossy(&all),
                    closed: true,
                };
            }
            Ok(_) if done => {
                return Reply {
                    text: lossy(&all),
                    closed: false,
                };
            }
            Ok(_) => {}
        }
    }
}

/// One line, or `None` when the connection ended.
async fn pop3_reply(c: &mut Client) -> Option<String> {
    let mut buf = Vec::new();
    match tokio::time::timeout(WAIT, c.stream.read_until(b'\n', &mut buf))
        .await
        .expect("POP3 reply in time")
    {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(lossy(&buf)),
    }
}

/// Every path under `root`, relative, as raw bytes made lossy.
fn tree(root: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(p.clone());
            }
            out.insert(p.strip_prefix(root).unwrap().to_path_buf());
        }
    }
    out
}

fn maildir(server: &TestServer) -> PathBuf {
    server.mail_root().join("example.org").join("alice")
}

/// Writes `total` bytes of `fill` (no CRLF) in chunks; false once the server closed.
async fn send_filler(c: &mut Client, total: usize, fill: u8) -> bool {
    let chunk = vec![fill; 64 * 1024];
    let mut sent = 0;
    while sent < total {
        let n = chunk.len().min(total - sent);
        if !try_send(c, &chunk[..n]).await {
            return false;
        }
        sent += n;
    }
    true
}

/// xorshift64*: seeded, reproducible noise.
struct Noise(u64);
impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

// ---------------------------------------------------------------- cases

/// A 10 MB line without CRLF before login, after login, and to POP3.
#[tokio::test]
async fn abuse_ten_megabyte_line() {
    let (server, base) = start().await;
    const TEN_MB: usize = 10 * 1024 * 1024;

    // IMAP before login.
    let mut c = Client::connect(server.imaps, &server.ca).await;
    c.line().await;
    let all_sent = try_send(&mut c, b"a1 LOGIN ").await && send_filler(&mut c, TEN_MB, b'x').await;
    let peak = rss_kib(server.pid());
    let _ = try_send(&mut c, b"\r\na2 NOOP\r\n").await;
    let r = read_reply(&mut c, "a2").await;
    eprintln!(
        "10MB line pre-login: all sent={all_sent} closed={} rss during={peak} KiB ({:+} KiB): {:?}",
        r.closed,
        peak as i64 - base.rss_kib as i64,
        r.text.chars().take(200).collect::<String>()
    );
    assert!(!r.text.contains(" OK LOGIN") && !r.text.contains("a1 OK"));
    assert!(r.closed || r.text.contains("BAD"), "{}", r.text);
    if !r.closed {
        assert!(r.text.contains("a2 OK"), "{}", r.text);
    }
    assert!(peak <= base.rss_kib + RSS_SLACK_KIB, "rss during: {peak}");
    drop(c);

    // IMAP after login.
    let mut c = login(&server).await;
    let all_sent =
        try_send(&mut c, b"b1 SEARCH TEXT ").await && send_filler(&mut c, TEN_MB, b'y').await;
    let peak = rss_kib(server.pid());
    let _ = try_send(&mut c, b"\r\nb2 NOOP\r\n").await;
    let r = read_reply(&mut c, "b2").await;
    eprintln!(
        "10MB line post-login: all sent={all_sent} closed={} rss during={peak} KiB ({:+} KiB): {:?}",
        r.closed,
        peak as i64 - base.rss_kib as i64,
        r.text.chars().take(200).collect::<String>()
    );
    assert!(!r.text.contains("b1 OK"), "{}", r.text);
    assert!(r.closed || r.text.contains("BAD"), "{}", r.text);
    if !r.closed {
        assert!(r.text.contains("b2 OK"), "{}", r.text);
    }
    assert!(peak <= base.rss_kib + RSS_SLACK_KIB, "rss during: {peak}");
    drop(c);

    // POP3 before login.
    let mut c = Client::connect(server.pop3s, &server.ca).await;
    c.line().await;
    let all_sent = try_send(&mut c, b"USER ").await && send_filler(&mut c, TEN_MB, b'z').await;
    let peak = rss_kib(server.pid());
    let _ = try_send(&mut c, b"\r\n").await;
    let r = pop3_reply(&mut c).await;
    eprintln!(
        "10MB line POP3: all sent={all_sent} rss during={peak} KiB ({:+} KiB): {:?}",
        peak as i64 - base.rss_kib as i64,
        r.as_deref()
            .map(|s| s.chars().take(200).collect::<String>())
    );
    if let Some(line) = r {
        assert!(line.starts_with("-ERR"), "{line}");
    }
    assert!(peak <= base.rss_kib + RSS_SLACK_KIB, "rss during: {peak}");
    drop(c);

    after_case(&server, base, "10MB line").await;
}

/// Literals announcing 4 GiB and 2^64 bytes: refused without a `+`.
#[tokio::test]
async fn abuse_append_huge_literal_announcements() {
    let (server, base) = start().await;
    let mut c = login(&server).await;
    c.send(b"a1 APPEND INBOX {4294967296}\r\n").await;
    let l = c.line().await;
    assert!(l.starts_with("a1 NO [TOOBIG]"), "{l}");
    c.send(b"a2 APPEND INBOX {18446744073709551616}\r\n").await;
    let l = c.line().await;
    assert!(
        l.starts_with("a2 NO [TOOBIG]") || l.starts_with("a2 BAD"),
        "{l}"
    );
    c.send(b"a3 APPEND INBOX (\\Seen) {99999999999999999999999999999999}\r\n")
        .await;
    let l = c.line().await;
    assert!(
        l.starts_with("a3 NO [TOOBIG]") || l.starts_with("a3 BAD"),
        "{l}"
    );
    c.send(b"a4 NOOP\r\n").await;
    let r = lossy(&c.until_tagged("a4").await);
    assert!(r.contains("a4 OK"), "{r}");
    drop(c);
    after_case(&server, base, "4 GiB literal").await;
}

/// APPEND of 51 MiB (over the default 50 MiB APPENDLIMIT): `NO [TOOBIG]`
/// before any `+`; the LITERAL+ form may be refused fatally, bounded.
#[tokio::test]
async fn abuse_append_over_the_limit() {
    let (server, base) = start().await;
    let size = 51 * 1024 * 1024;
    let mut c = login(&server).await;
    c.send(format!("a1 APPEND INBOX {{{size}}}\r\n").as_bytes())
        .await;
    let l = c.line().await;
    assert!(l.starts_with("a1 NO [TOOBIG]"), "{l}");
    c.send(b"a2 NOOP\r\n").await;
    assert!(lossy(&c.until_tagged("a2").await).contains("a2 OK"));

    // Non-synchronising: the server cannot refuse before the data comes.
    c.send(format!("a3 APPEND INBOX {{{size}+}}\r\n").as_bytes())
        .await;
    let all_sent = send_filler(&mut c, size, b'm').await;
    let peak = rss_kib(server.pid());
    let _ = try_send(&mut c, b"\r\na4 NOOP\r\n").await;
    let r = read_reply(&mut c, "a4").await;
    eprintln!(
        "51MiB LITERAL+ append: all sent={all_sent} closed={} rss during={peak} KiB ({:+}): {:?}",
        r.closed,
        peak as i64 - base.rss_kib as i64,
        r.text.chars().take(200).collect::<String>()
    );
    assert!(!r.text.contains("a3 OK"), "{}", r.text);
    assert!(peak <= base.rss_kib + RSS_SLACK_KIB, "rss during: {peak}");
    drop(c);
    after_case(&server, base, "APPEND over limit").await;
    // Nothing was stored.
    let mut c = login(&server).await;
    c.send(b"s1 STATUS INBOX (MESSAGES)\r\n").await;
    let r = lossy(&c.until_tagged("s1").await);
    assert!(r.contains("MESSAGES 1)"), "{r}");
}

/// 30,000 nested parentheses in SEARCH and FETCH: BAD, no crash.
#[tokio::test]
async fn abuse_nested_parentheses() {
    let (server, base) = start().await;
    let mut c = login(&server).await;
    c.send(b"s SELECT INBOX\r\n").await;
    c.until_tagged("s").await;
    let deep = |inner: &str| format!("{}{inner}{}", "(".repeat(30_000), ")".repeat(30_000));
    c.send(format!("a1 SEARCH {}\r\n", deep("ALL")).as_bytes())
        .await;
    let r = read_reply(&mut c, "a1").await;
    assert!(!r.closed, "{}", r.text);
    assert!(r.text.contains("a1 BAD"), "{}", r.text);
    eprintln!("30k parentheses in SEARCH: {:?}", r.text);
    c.send(format!("a2 FETCH 1 {}\r\n", deep("FLAGS")).as_bytes())
        .await;
    let r = read_reply(&mut c, "a2").await;
    assert!(!r.closed, "{}", r.text);
    assert!(r.text.contains("a2 BAD"), "{}", r.text);
    eprintln!("30k parentheses in FETCH: {:?}", r.text);
    c.send(format!("a3 UID SEARCH {}\r\n", deep("NOT ALL")).as_bytes())
        .await;
    let r = read_reply(&mut c, "a3").await;
    assert!(r.text.contains("a3 BAD"), "{}", r.text);
    c.send(b"a4 NOOP\r\n").await;
    assert!(lossy(&c.until_tagged("a4").await).contains("a4 OK"));
    drop(c);
    after_case(&server, base, "nested parentheses").await;
}

/// 50,000 LITERAL+ literals in one command, before and after login.
#[tokio::test]
async fn abuse_fifty_thousand_literals() {
    let (server, base) = start().await;
    let mut cmd = b"a1 LOGIN".to_vec();
    for _ in 0..50_000 {
        cmd.extend_from_slice(b" {1+}\r\nx");
    }
    cmd.extend_from_slice(b"\r\na2 NOOP\r\n");

    for logged_in in [false, true] {
        let mut c = if logged_in {
            login(&server).await
        } else {
            let mut c = Client::connect(server.imaps, &server.ca).await;
            c.line().await;
            c
        };
        let all_sent = try_send(&mut c, &cmd).await;
        let r = read_reply(&mut c, "a2").await;
        eprintln!(
            "50k literals (logged in: {logged_in}): all sent={all_sent} closed={}: {:?}",
            r.closed,
            r.text.chars().take(200).collect::<String>()
        );
        assert!(!r.text.contains("a1 OK"), "{}", r.text);
        assert!(
            r.closed || r.text.contains("a1 BAD") || r.text.contains("a1 NO"),
            "{}",
            r.text
        );
    }
    after_case(&server, base, "50k literals").await;
}

/// 10,000 pipelined FETCHes written without reading, then read: all are
/// answered (in order) and memory stays bounded while the output waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abuse_ten_thousand_pipelined_commands() {
    let (server, base) = start().await;
    let mut c = login(&server).await;
    c.send(b"s SELECT INBOX\r\n").await;
    c.until_tagged("s").await;
    let mut batch = Vec::new();
    for i in 0..10_000 {
        batch.extend_from_slice(format!("p{i} FETCH 1 (FLAGS UID BODY.PEEK[])\r\n").as_bytes());
    }
    let before = rss_kib(server.pid());
    let tls = c.stream.into_inner();
    let (mut rd, mut wr) = tokio::io::split(tls);
    let writer = tokio::spawn(async move {
        wr.write_all(&batch).await.unwrap();
        wr.flush().await.unwrap();
        wr
    });
    // Do not read while the writer works; if the server stops reading
    // (back-pressure), the writer stalls and that is allowed.
    let finished = tokio::time::timeout(Duration::from_secs(5), async {
        while !writer.is_finished() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .is_ok();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let peak = rss_kib(server.pid());
    eprintln!(
        "pipelining: writer finished without reading={finished}; rss with ~4 MB of answers pending={peak} KiB \
         ({:+} KiB over the logged-in session, {:+} KiB over the baseline)",
        peak as i64 - before as i64,
        peak as i64 - base.rss_kib as i64
    );
    assert!(peak <= base.rss_kib + RSS_SLACK_KIB, "rss during: {peak}");
    let mut reader = TokioBufReader::new(&mut rd);
    let mut tagged = 0usize;
    let mut next = 0usize;
    let deadline = Instant::now() + WAIT * 3;
    while next < 10_000 {
        let mut buf = Vec::new();
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, reader.read_until(b'\n', &mut buf))
            .await
            .expect("pipelined answers in time")
            .unwrap();
        assert!(n > 0, "EOF after {tagged} tagged answers");
        if buf.starts_with(b"p") {
            let want = format!("p{next} OK");
            assert!(
                lossy(&buf).starts_with(&want),
                "{} (wanted {want})",
                lossy(&buf)
            );
            tagged += 1;
            next += 1;
        }
    }
    assert_eq!(tagged, 10_000);
    let wr = tokio::time::timeout(WAIT, writer).await.unwrap().unwrap();
    drop(reader);
    drop(rd);
    drop(wr);
    after_case(&server, base, "10k pipelined").await;
}

/// NUL and invalid UTF-8 in commands and mailbox names: BAD/NO, and no
/// such folder on disk or in LIST.
#[tokio::test]
async fn abuse_nul_and_invalid_utf8() {
    let (server, base) = start().await;
    let mut c = login(&server).await;
    // Synchronising literal carrying a NUL.
    c.send(b"a1 CREATE {9}\r\n").await;
    let l = c.line().await;
    if l.starts_with('+') {
        c.send(b"evil\0name\r\n").await;
        let r = lossy(&c.until_tagged("a1").await);
        assert!(r.contains("a1 NO") || r.contains("a1 BAD"), "{r}");
    } else {
        assert!(l.starts_with("a1 NO") || l.starts_with("a1 BAD"), "{l}");
    }
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a2", b"a2 CREATE {9+}\r\nevil\0name\r\n".to_vec()),
        ("a3", b"a3 CREATE \"evil\xffname\"\r\n".to_vec()),
        ("a4", b"a4 CREATE {9+}\r\nevil\xffname\r\n".to_vec()),
        ("a5", b"a5 CREATE evil\xfe\xffname\r\n".to_vec()),
        ("a6", b"a6 SELECT \"IN\0BOX\"\r\n".to_vec()),
        ("a7", b"a7 NOOP\0\r\n".to_vec()),
        ("a8", b"a8 RENAME INBOX \"evil\xc0\xafname\"\r\n".to_vec()),
        ("a9", b"a9 CREATE \"evil\xed\xa0\x80name\"\r\n".to_vec()),
    ];
    for (tag, cmd) in cases {
        c.send(&cmd).await;
        let r = read_reply(&mut c, tag).await;
        assert!(!r.closed, "{tag}: {}", r.text);
        assert!(
            r.text.contains(&format!("{tag} NO")) || r.text.contains(&format!("{tag} BAD")),
            "{tag}: {}",
            r.text
        );
    }
    c.send(b"l LIST \"\" \"*\"\r\n").await;
    let r = lossy(&c.until_tagged("l").await);
    assert!(!r.contains("evil"), "{r}");
    drop(c);
    for p in tree(server.dir.path()) {
        let name = p.to_string_lossy();
        assert!(!name.contains("evil"), "created on disk: {p:?}");
        assert!(!name.contains('\u{fffd}'), "non-UTF-8 name on disk: {p:?}");
    }
    after_case(&server, base, "NUL/UTF-8").await;
}

/// Path-traversal folder names in CREATE, SELECT and RENAME: refused, and
/// nothing with such a name appears inside or outside the Maildir root.
#[tokio::test]
async fn abuse_path_traversal_names() {
    let (server, base) = start().await;
    let outside_before = tree(server.dir.path().parent().unwrap())
        .into_iter()
        .filter(|p| p.components().count() == 1)
        .collect::<BTreeSet<_>>();
    let mut c = login(&server).await;
    c.send(b"d LIST \"\" \"\"\r\n").await;
    let r = lossy(&c.until_tagged("d").await);
    let delimiter_is_slash = r.contains("\"/\"");
    c.send(b"k CREATE Legit\r\n").await;
    assert!(lossy(&c.until_tagged("k").await).contains("k OK"));
    let before = tree(server.dir.path());
    let mut names = vec![
        "..",
        "../x",
        "../../x",
        "x/../..",
        ".hidden",
        "~root",
        "&AC4ALgAv-",
        "&AC4ALgAv-x",
        "Legit/../../x",
        "/etc",
        "./x",
        ".",
    ];
    if !delimiter_is_slash {
        names.push("a/b");
    }
    let mut n = 0;
    for name in &names {
        for cmd in [
            format!("CREATE \"{name}\""),
            format!("SELECT \"{name}\""),
            format!("RENAME Legit \"{name}\""),
            format!("RENAME \"{name}\" Legit2"),
            format!("DELETE \"{name}\""),
        ] {
            n += 1;
            let tag = format!("t{n}");
            c.send(format!("{tag} {cmd}\r\n").as_bytes()).await;
            let r = read_reply(&mut c, &tag).await;
            assert!(!r.closed, "{cmd}: {}", r.text);
            assert!(
                r.text.contains(&format!("{tag} NO")) || r.text.contains(&format!("{tag} BAD")),
                "{cmd} was accepted: {}",
                r.text
            );
        }
    }
    if delimiter_is_slash {
        // A hierarchy name: may be created, but only as a folder inside the
        // account's Maildir.
        c.send(b"h CREATE \"a/b\"\r\n").await;
        let r = lossy(&c.until_tagged("h").await);
        eprintln!("a/b with '/' delimiter: {r}");
    }
    c.send(b"l LIST \"\" \"*\"\r\n").await;
    let listing = lossy(&c.until_tagged("l").await);
    for bad in ["hidden", "root", "\"..\"", "etc", "&AC4ALgAv-"] {
        assert!(!listing.contains(bad), "{bad} in LIST: {listing}");
    }
    drop(c);
    let after = tree(server.dir.path());
    let md = maildir(&server);
    for p in after.difference(&before) {
        let full = server.dir.path().join(p);
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !["x", "hidden", ".hidden", "~root", ".~root", "etc"].contains(&name.as_str())
                && !name.contains("hidden")
                && !name.contains("root")
                && !name.contains("&AC4ALgAv-")
                && !name.contains(".."),
            "created: {p:?}"
        );
        if !name.starts_with("accounts.db") && name != "server.log" {
            assert!(full.starts_with(&md), "created outside the Maildir: {p:?}");
        }
    }
    let outside_after = tree(server.dir.path().parent().unwrap())
        .into_iter()
        .filter(|p| p.components().count() == 1)
        .collect::<BTreeSet<_>>();
    for p in outside_after.difference(&outside_before) {
        let name = p.to_string_lossy();
        assert!(
            !["x", "etc", ".hidden", "~root"].contains(&name.as_ref()),
            "created outside the test dir: {p:?}"
        );
    }
    after_case(&server, base, "path traversal").await;
}

/// A wrong-password flood from 127.0.0.1 over many parallel connections for
/// 15 s while the real user logs in from 127.0.0.2 (known-good beforehand).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abuse_wrong_password_flood() {
    let (server, base) = start().await;
    // The owner's address becomes known-good.
    assert_healthy_from(&server, Some("127.0.0.2")).await;

    let failed = Arc::new(AtomicUsize::new(0));
    let throttled = Arc::new(AtomicUsize::new(0));
    let other = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let attempts = Arc::new(AtomicUsize::new(0));
    let flood_for = Duration::from_secs(15);
    let stop = Instant::now() + flood_for;
    let mut tasks = Vec::new();
    for w in 0..40 {
        let (addr, ca) = (server.imaps, server.ca.clone());
        let refused = refused.clone();
        let (failed, throttled, other, closed, attempts) = (
            failed.clone(),
            throttled.clone(),
            other.clone(),
            closed.clone(),
            attempts.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let work = async {
                let mut i = 0u64;
                loop {
                    // A short pause between connections keeps the churn
                    // (evictions at the per-address cap) from exhausting ports.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let Ok(Ok(tcp)) =
                        tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
                            .await
                    else {
                        refused.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
                    let Ok(tls) = TlsConnector::from(client_config(&ca))
                        .connect(name, tcp)
                        .await
                    else {
                        refused.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let mut c = Client {
                        stream: TokioBufReader::new(tls),
                    };
                    let mut g = Vec::new();
                    if !matches!(c.stream.read_until(b'\n', &mut g).await, Ok(n) if n > 0) {
                        refused.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    loop {
                        i += 1;
                        let tag = format!("w{w}x{i}");
                        attempts.fetch_add(1, Ordering::Relaxed);
                        if !try_send(
                            &mut c,
                            format!("{tag} LOGIN {USER} \"wrong-{w}-{i}\"\r\n").as_bytes(),
                        )
                        .await
                        {
                            closed.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        let mut line = Vec::new();
                        let ok = loop {
                            line.clear();
                            match c.stream.read_until(b'\n', &mut line).await {
                                Ok(n) if n > 0 => {
                                    if line.starts_with(tag.as_bytes()) {
                                        break true;
                                    }
                                }
                                _ => break false,
                            }
                        };
                        if !ok {
                            closed.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        let l = lossy(&line);
                        if l.contains("NO [AUTHENTICATIONFAILED]") {
                            failed.fetch_add(1, Ordering::Relaxed);
                        } else if l.contains("NO [UNAVAILABLE]") {
                            throttled.fetch_add(1, Ordering::Relaxed);
                        } else {
                            assert!(!l.contains(" OK"), "a wrong password was accepted: {l}");
                            other.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            };
            let _ = tokio::time::timeout_at(stop.into(), work).await;
        }));
    }
    // The owner logs in from the known-good address during the flood.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let t0 = Instant::now();
    assert_healthy_from(&server, Some("127.0.0.2")).await;
    let owner_mid = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let t0 = Instant::now();
    assert_healthy_from(&server, Some("127.0.0.2")).await;
    let owner_late = t0.elapsed();
    for t in tasks {
        tokio::time::timeout(WAIT, t).await.unwrap().unwrap();
    }
    let secs = flood_for.as_secs_f64();
    let rf = refused.load(Ordering::Relaxed);
    let (f, th, o, cl, a) = (
        failed.load(Ordering::Relaxed),
        throttled.load(Ordering::Relaxed),
        other.load(Ordering::Relaxed),
        closed.load(Ordering::Relaxed),
        attempts.load(Ordering::Relaxed),
    );
    eprintln!(
        "wrong-password flood, 40 parallel connections for {secs} s from 127.0.0.1: \
         attempts sent={a}, NO [AUTHENTICATIONFAILED]={f} ({:.2}/s), NO [UNAVAILABLE]={th} ({:.2}/s), \
         other answers={o}, connections closed with a LOGIN pending={cl}, \
         connections closed before the greeting={rf}; owner login from 127.0.0.2 took {owner_mid:?} and {owner_late:?}",
        f as f64 / secs,
        th as f64 / secs
    );
    assert!(f + th > 0, "no wrong-password answer at all");
    // Password checks actually performed are bounded by the throttle
    // (3 free, then doubling spacing from 1 s), far below the attempts.
    assert!(
        f <= 30,
        "{f} passwords checked in {secs} s from one address"
    );
    // 127.0.0.1 is the throttled guesser now (per-address spacing applies to
    // every login from it, by design); the health check comes from the owner's address.
    assert_healthy_from(&server, Some("127.0.0.2")).await;
    assert_back_to_baseline(&server, base, "wrong-password flood").await;
    assert!(!server.log().contains("panicked"));
    assert!(!server.log().contains("wrong-0-1"));
}

/// 200 slowloris connections (plain TCP: nothing, or a few bytes of a TLS
/// ClientHello) from 127.0.0.1 while normal clients from 127.0.0.2 and
/// 127.0.0.1 are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abuse_slowloris() {
    let (server, base) = start().await;
    let before = rss_kib(server.pid());
    let mut idle = Vec::new();
    for i in 0..200 {
        let mut s = TcpStream::connect(server.imaps).await.unwrap();
        if i % 2 == 0 {
            // A TLS record header announcing a ClientHello that never comes.
            let _ = s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await;
        }
        idle.push(s);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss, fds) = (rss_kib(server.pid()), fd_count(server.pid()));
    eprintln!(
        "slowloris: 200 open: rss={rss} KiB ({:+} KiB, {:.1} KiB per attempted connection) fds={fds} ({:+})",
        rss as i64 - before as i64,
        (rss as f64 - before as f64) / 200.0,
        fds as i64 - base.fds as i64
    );
    let t0 = Instant::now();
    assert_healthy_from(&server, Some("127.0.0.2")).await;
    let from2 = t0.elapsed();
    let t0 = Instant::now();
    assert_healthy_from(&server, Some("127.0.0.1")).await;
    let from1 = t0.elapsed();
    // Keep dribbling on the survivors while the normal clients are served.
    for s in idle.iter_mut().take(20) {
        let _ = s.write_all(&[0x00]).await;
    }
    assert_healthy_from(&server, Some("127.0.0.2")).await;
    eprintln!(
        "slowloris: normal client from 127.0.0.2 served in {from2:?}, from 127.0.0.1 in {from1:?}"
    );
    // The server holds no more than the per-address cap of them.
    let fds_now = fd_count(server.pid());
    assert!(
        fds_now <= base.fds + FD_SLACK,
        "fds with 200 slowloris open: {fds_now}"
    );
    drop(idle);
    after_case(&server, base, "slowloris").await;
}

/// Seeded pseudo-random bytes to the IMAPS and POP3S ports.
#[tokio::test]
async fn abuse_random_bytes_to_tls_ports() {
    let (server, base) = start().await;
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    for i in 0..8 {
        let addr = if i % 2 == 0 {
            server.imaps
        } else {
            server.pop3s
        };
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut data = noise.bytes(4096);
        if i == 0 {
            // Starts like a TLS handshake record, then noise.
            data[..3].copy_from_slice(&[0x16, 0x03, 0x01]);
        }
        let _ = s.write_all(&data).await;
        let mut sink = Vec::new();
        let r = tokio::time::timeout(WAIT, s.read_to_end(&mut sink)).await;
        assert!(r.is_ok(), "server kept a garbage connection open");
        assert!(
            sink.len() < 1024,
            "server answered garbage with {} bytes",
            sink.len()
        );
    }
    after_case(&server, base, "random bytes").await;
}

/// A client that drops mid-APPEND leaves no partial message and no tmp/ file.
#[tokio::test]
async fn abuse_disconnect_mid_append() {
    let (server, base) = start().await;
    let mut c = login(&server).await;
    c.send(b"a1 APPEND INBOX {100000}\r\n").await;
    let l = c.line().await;
    assert!(l.starts_with('+'), "{l}");
    let mut half = b"Subject: ABUSE-PARTIAL-APPEND\r\n\r\n".to_vec();
    half.resize(50_000, b'q');
    c.send(&half).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(c);

    let md = maildir(&server);
    let deadline = Instant::now() + WAIT;
    loop {
        let leftovers: Vec<PathBuf> = tree(&md)
            .into_iter()
            .filter(|p| {
                p.parent()
                    .and_then(|d| d.file_name())
                    .is_some_and(|n| n == "tmp")
            })
            .collect();
        if leftovers.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "tmp/ leftovers: {leftovers:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // No file anywhere holds the partial data (spools included).
    for p in tree(server.dir.path()) {
        let full = server.dir.path().join(&p);
        if p.file_name().is_some_and(|n| n == "server.log") || !full.is_file() {
            continue;
        }
        let bytes = std::fs::read(&full).unwrap_or_default();
        assert!(
            !bytes.windows(20).any(|w| w == b"ABUSE-PARTIAL-APPEND"),
            "partial APPEND data kept in {p:?}"
        );
    }
    let mut c = login(&server).await;
    c.send(b"s SELECT INBOX\r\n").await;
    let r = lossy(&c.until_tagged("s").await);
    assert!(r.contains("* 1 EXISTS"), "{r}");
    c.send(b"f FETCH 1:* (RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n")
        .await;
    let r = lossy(&c.until_tagged("f").await);
    assert!(!r.contains("ABUSE-PARTIAL"), "{r}");
    drop(c);
    after_case(&server, base, "disconnect mid-APPEND").await;
}

/// POP3 with huge and out-of-range arguments: `-ERR` with a reason, and the
/// session goes on; a 100 KB USER argument is refused or closed cleanly.
#[tokio::test]
async fn abuse_pop3_huge_arguments() {
    let (server, base) = start().await;
    let mut c = pop3_login(&server).await;
    for cmd in [
        "RETR 99999999999999999999",
        "RETR 18446744073709551616",
        "LIST -1",
        "LIST 0",
        "TOP 1 -5",
        "TOP 1 99999999999999999999",
        "TOP 99999999999999999999 1",
        "DELE 0",
        "DELE 2",
        "RETR 2",
        "UIDL 4294967297",
        "RETR",
        "RETR 1 2 3",
    ] {
        c.send(format!("{cmd}\r\n").as_bytes()).await;
        let l = pop3_reply(&mut c)
            .await
            .unwrap_or_else(|| panic!("{cmd}: closed"));
        assert!(l.starts_with("-ERR "), "{cmd}: {l}");
        assert!(l.trim_end().len() > "-ERR ".len(), "{cmd}: no reason: {l}");
    }
    c.send(b"STAT\r\n").await;
    let l = c.line().await;
    assert!(l.starts_with("+OK 1 "), "{l}");
    c.send(b"QUIT\r\n").await;
    assert!(c.line().await.starts_with("+OK"));
    drop(c);

    let mut c = Client::connect(server.pop3s, &server.ca).await;
    c.line().await;
    let mut user = b"USER ".to_vec();
    user.resize(100 * 1024, b'u');
    user.extend_from_slice(b"\r\n");
    let sent = try_send(&mut c, &user).await;
    match pop3_reply(&mut c).await {
        Some(l) => {
            assert!(l.starts_with("-ERR "), "{l}");
            eprintln!("POP3 100 KB USER: {l:?} (all sent: {sent})");
            if try_send(&mut c, b"QUIT\r\n").await
                && let Some(l) = pop3_reply(&mut c).await
            {
                assert!(l.starts_with("+OK") || l.starts_with("-ERR"), "{l}");
            }
        }
        None => eprintln!("POP3 100 KB USER: connection closed (all sent: {sent})"),
    }
    drop(c);
    after_case(&server, base, "POP3 huge arguments").await;
}

/// Login churn: 30 logins, 5 at a time (a desktop client's connection pool). Resident memory must
/// plateau (password hashing buffers are reused or returned), not grow with
/// the number of logins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abuse_login_churn_memory_plateaus() {
    let (server, base) = start().await;
    let mut samples = Vec::new();
    for round in 0..6 {
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let (imaps, ca) = (server.imaps, server.ca.clone());
            tasks.push(tokio::spawn(
                async move { healthy_at(imaps, &ca, None).await },
            ));
        }
        for t in tasks {
            tokio::time::timeout(WAIT, t).await.unwrap().unwrap();
        }
        let rss = rss_kib(server.pid());
        eprintln!(
            "login churn: after round {round} (5 parallel logins): rss={rss} KiB ({:+} KiB)",
            rss as i64 - base.rss_kib as i64
        );
        samples.push(rss);
    }
    after_case(&server, base, "login churn").await;
    // The last rounds grow no more than a little over the second one.
    assert!(
        samples[5] <= samples[1] + 8 * 1024,
        "memory keeps growing with logins: {samples:?}"
    );
}
