//! POP3 with real clients over TLS (RFC 1939, RFC 2449, RFC 5034): Python
//! `poplib`, `curl pop3s://`, `fetchmail` and `getmail6` against the real
//! `coffre` binary, plus the maildrop lock (`[IN-USE]`), QUIT atomicity and a
//! 50 MiB RETR that must stream.
//!
//! The maildrop holds messages that exercise the wire rules: CRLF with a
//! leading-dot line and UTF-8 (the harness's sample), bare LF with a lone `.`
//! line and `..` lines, a NUL byte (never sent), and UTF-8 headers with no
//! newline at the end. What a client must receive is [`wire`]: LF → CRLF,
//! NUL removed, the last line terminated; every client below is checked
//! byte for byte against it (after removing only the trace headers the
//! client itself adds, and — for getmail's Maildir, which stores LF — after
//! CRLF → LF).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

/// How long an external client may run.
const CLIENT_WAIT: Duration = Duration::from_secs(60);

/// Messages delivered next to the harness's `sample_message()` (Maildir
/// file name, bytes).
fn extra_messages() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "1700000001.M2P1.test",
            b"From: Carol <carol@example.org>\nTo: alice@example.org\nSubject: bare-lf\nMessage-ID: <lf@example.org>\n\nfirst\n.\n..double\n.leading\nlast line\n".to_vec(),
        ),
        (
            "1700000002.M3P1.test",
            b"From: Dan <dan@example.org>\r\nTo: alice@example.org\r\nSubject: nul\r\nMessage-ID: <nul@example.org>\r\n\r\nbefore\0after\r\nend\r\n".to_vec(),
        ),
        (
            "1700000003.M4P1.test",
            "From: Eve <eve@example.org>\r\nTo: alice@example.org\r\nSubject: utf8 Gr\u{fc}\u{df}e\r\nMessage-ID: <utf8@example.org>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nZ\u{fc}rich \u{2603}\r\nno newline at end"
                .as_bytes()
                .to_vec(),
        ),
    ]
}

/// A server whose maildrop holds the sample and [`extra_messages`]; returns
/// the originals by subject.
fn start_with_corpus() -> (TestServer, BTreeMap<String, Vec<u8>>) {
    let server = TestServer::start();
    let mut originals = BTreeMap::new();
    originals.insert(subject(&sample_message()), sample_message());
    for (name, bytes) in extra_messages() {
        deliver(&server.mail_root(), USER, name, &bytes);
        originals.insert(subject(&bytes), bytes);
    }
    (server, originals)
}

/// The message as a POP3 client must receive it (RFC 1939 §3 after
/// un-stuffing): bare LF → CRLF, NUL removed, last line terminated.
fn wire(stored: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(stored.len() + stored.len() / 16 + 2);
    for &b in stored {
        match b {
            0 => {}
            b'\n' if out.last() != Some(&b'\r') => out.extend_from_slice(b"\r\n"),
            _ => out.push(b),
        }
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The `Subject:` of a message (first one, unfolded enough for these tests).
fn subject(message: &[u8]) -> String {
    let text = String::from_utf8_lossy(message);
    text.lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .map(|s| s.trim_end_matches('\r').to_string())
        .unwrap_or_default()
}

/// Removes the header fields named in `names` (and their folded
/// continuation lines) from the top of a delivered message: the trace
/// fields a client adds in front of the message it fetched.
fn strip_added_headers<'a>(mut delivered: &'a [u8], names: &[&str]) -> &'a [u8] {
    let starts_field = |line: &[u8]| {
        names.iter().any(|n| {
            line.len() > n.len()
                && line[..n.len()].eq_ignore_ascii_case(n.as_bytes())
                && line[n.len()] == b':'
        })
    };
    let mut in_added = false;
    loop {
        let Some(end) = delivered.iter().position(|b| *b == b'\n') else {
            return delivered;
        };
        let line = &delivered[..end];
        let continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if starts_field(line) || (in_added && continuation) {
            in_added = true;
            delivered = &delivered[end + 1..];
        } else {
            return delivered;
        }
    }
}

fn crlf_to_lf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
            continue;
        }
        out.push(b);
    }
    out
}

/// Messages in the account's INBOX on disk.
fn maildir_count(server: &TestServer) -> usize {
    let dir = server.mail_root().join("example.org").join("alice");
    ["new", "cur"]
        .iter()
        .map(|sub| {
            std::fs::read_dir(dir.join(sub))
                .map(|d| d.count())
                .unwrap_or(0)
        })
        .sum()
}

/// Every regular file of a directory, read.
fn files_in(dir: &Path) -> Vec<Vec<u8>> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Output of a finished client.
struct Ran {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    stdout_bytes: Vec<u8>,
}

/// Runs a client with output to files and a bounded wait.
fn run_bounded(cmd: &mut Command, scratch: &Path) -> Ran {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let out_path = scratch.join(format!("client-{n}.out"));
    let err_path = scratch.join(format!("client-{n}.err"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + CLIENT_WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "client did not finish in time: {cmd:?}\nstderr: {}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout_bytes = std::fs::read(&out_path).unwrap();
    Ran {
        status,
        stdout: String::from_utf8_lossy(&stdout_bytes).into_owned(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
        stdout_bytes,
    }
}

// ---------------------------------------------------------------------------
// Python poplib

/// The poplib driver. `argv`: port, CA file, user, password, mode, output
/// directory. Prints `KEY value` lines; writes RETR/TOP results to files.
/// A login that meets `[IN-USE]` (the previous connection not yet torn
/// down by the server) is retried for a few seconds.
const POPLIB_SCRIPT: &str = r#"
import base64, poplib, ssl, sys, time

port, ca, user, pw, mode, out = sys.argv[1:7]

def connect():
    ctx = ssl.create_default_context(cafile=ca)
    return poplib.POP3_SSL("127.0.0.1", int(port), context=ctx, timeout=20)

def login(p):
    for _ in range(100):
        p.user(user)
        try:
            p.pass_(pw)
            return
        except poplib.error_proto as e:
            if b"[IN-USE]" not in e.args[0]:
                raise
            time.sleep(0.1)
    raise SystemExit("maildrop stayed locked")

def plain(u, w):
    return base64.b64encode(b"\0" + u.encode() + b"\0" + w.encode()).decode()

def emit(*words):
    print(*words, flush=True)

def save(name, lines):
    with open(out + "/" + name, "wb") as f:
        f.write(b"".join(l + b"\r\n" for l in lines))

if mode == "read":
    p = connect()
    emit("GREETING", p.getwelcome().decode())
    for k, v in p.capa().items():
        emit("CAPA", " ".join([k] + v))
    login(p)
    for k, v in p.capa().items():
        emit("CAPA-AFTER", " ".join([k] + v))
    n, size = p.stat()
    emit("STAT", n, size)
    for l in p.list()[1]:
        emit("LIST", l.decode())
    for l in p.uidl()[1]:
        emit("UIDL", l.decode())
    for i in range(1, n + 1):
        resp, lines, _ = p.retr(i)
        emit("RETR", i, resp.decode())
        save("retr-%d" % i, lines)
        resp, lines, _ = p.top(i, 0)
        save("top-%d" % i, lines)
    emit("NOOP", p.noop().decode())
    emit("QUIT", p.quit().decode())
elif mode == "auth":
    p = connect()
    emit("AUTH-IR", p._shortcmd("AUTH PLAIN " + plain(user, pw)).decode())
    emit("STAT", *p.stat())
    p.quit()
    p = connect()
    p._putcmd("AUTH PLAIN")
    emit("AUTH-CONT", repr(p._getresp().decode()))
    emit("AUTH-CONT-OK", p._shortcmd(plain(user, pw)).decode())
    p.quit()
    p = connect()
    try:
        p._shortcmd("AUTH PLAIN " + plain(user, "wrong"))
        emit("AUTH-WRONG", "accepted")
    except poplib.error_proto as e:
        emit("AUTH-WRONG", e.args[0].decode())
    p.user(user)
    try:
        p.pass_("wrong")
        emit("PASS-WRONG", "accepted")
    except poplib.error_proto as e:
        emit("PASS-WRONG", e.args[0].decode())
    p.quit()
elif mode == "dele-drop":
    p = connect()
    login(p)
    emit("DELE", p.dele(1).decode())
    emit("DELE", p.dele(2).decode())
    p.file.close()
    p.sock.close()
elif mode == "dele-quit":
    p = connect()
    login(p)
    for l in p.uidl()[1]:
        emit("UIDL", l.decode())
    emit("DELE", p.dele(1).decode())
    emit("QUIT", p.quit().decode())
"#;

fn poplib(server: &TestServer, mode: &str, out: &Path) -> Ran {
    let script = server.dir.path().join("poplib_driver.py");
    std::fs::write(&script, POPLIB_SCRIPT).unwrap();
    let ran = run_bounded(
        Command::new("python3")
            .arg(&script)
            .arg(server.pop3s.port().to_string())
            .arg(&server.ca)
            .args([USER, PASSWORD, mode])
            .arg(out),
        server.dir.path(),
    );
    assert!(
        ran.status.success(),
        "poplib {mode} failed: {}\n{}\nlog: {}",
        ran.stdout,
        ran.stderr,
        server.log()
    );
    ran
}

/// The values of `KEY value` lines.
fn values<'a>(stdout: &'a str, key: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(' ')))
        .collect()
}

/// `n value` pairs (LIST, UIDL lines) as a map.
fn numbered<'a>(lines: &[&'a str]) -> BTreeMap<u32, &'a str> {
    lines
        .iter()
        .map(|l| {
            let (n, v) = l.split_once(' ').unwrap();
            (n.parse().unwrap(), v)
        })
        .collect()
}

#[test]
fn poplib_reads_every_message_byte_for_byte() {
    if !require_tool("python3") {
        return;
    }
    let (server, originals) = start_with_corpus();
    let out = tempfile::tempdir().unwrap();
    let ran = poplib(&server, "read", out.path());
    let stdout = &ran.stdout;

    let capa = values(stdout, "CAPA");
    for want in [
        "TOP",
        "UIDL",
        "USER",
        "SASL PLAIN",
        "RESP-CODES",
        "AUTH-RESP-CODE",
        "PIPELINING",
    ] {
        assert!(
            capa.contains(&want),
            "CAPA before login lacks {want}: {capa:?}"
        );
    }
    assert!(
        capa.iter().any(|c| c.starts_with("IMPLEMENTATION ")),
        "{capa:?}"
    );
    let after = values(stdout, "CAPA-AFTER");
    assert!(
        after.contains(&"TOP") && after.contains(&"UIDL"),
        "{after:?}"
    );
    assert!(
        !after.contains(&"USER") && !after.iter().any(|c| c.starts_with("SASL")),
        "login capabilities after login: {after:?}"
    );

    // STAT and LIST agree with what RETR sends.
    let wires: Vec<Vec<u8>> = originals.values().map(|m| wire(m)).collect();
    let total: usize = wires.iter().map(Vec::len).sum();
    assert_eq!(
        values(stdout, "STAT"),
        vec![format!("{} {total}", originals.len())]
    );
    let list = values(stdout, "LIST");
    let list = numbered(&list);
    assert_eq!(list.len(), originals.len());
    let retr = values(stdout, "RETR");
    let mut seen = Vec::new();
    for n in 1..=originals.len() as u32 {
        let got = std::fs::read(out.path().join(format!("retr-{n}"))).unwrap();
        let original = &originals[&subject(&got)];
        assert_eq!(
            got,
            wire(original),
            "RETR {n} ({}) differs",
            subject(original)
        );
        assert!(!got.contains(&0), "a NUL byte was sent");
        assert_eq!(
            list[&n],
            got.len().to_string(),
            "LIST {n} != octets RETR sent"
        );
        assert!(
            retr.contains(&format!("{n} +OK {} octets", got.len()).as_str()),
            "{retr:?}"
        );
        // TOP n 0: the header section and the empty line, nothing more.
        let top = std::fs::read(out.path().join(format!("top-{n}"))).unwrap();
        let header_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert_eq!(top, &got[..header_end], "TOP {n} 0");
        seen.push(subject(&got));
    }
    seen.sort();
    assert_eq!(
        seen,
        originals.keys().cloned().collect::<Vec<_>>(),
        "every message exactly once"
    );

    // UIDLs: unique, printable, Dovecot's default `%08Xu%08Xv` (16 hex digits).
    let uidls = values(stdout, "UIDL");
    let uidls = numbered(&uidls);
    assert_eq!(uidls.len(), originals.len());
    let mut unique: Vec<&str> = uidls.values().copied().collect();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), originals.len(), "UIDLs repeat: {uidls:?}");
    for u in uidls.values() {
        assert!(
            u.len() == 16 && u.bytes().all(|b| b.is_ascii_hexdigit()),
            "UIDL {u}"
        );
    }
    assert_eq!(values(stdout, "QUIT").len(), 1);
    // RETR + QUIT deleted nothing.
    assert_eq!(maildir_count(&server), originals.len());
    assert!(!server.log().contains(PASSWORD));
}

#[test]
fn poplib_auth_plain_and_wrong_passwords() {
    if !require_tool("python3") {
        return;
    }
    let server = TestServer::start();
    let out = tempfile::tempdir().unwrap();
    let ran = poplib(&server, "auth", out.path());
    let stdout = &ran.stdout;
    assert!(values(stdout, "AUTH-IR")[0].starts_with("+OK"), "{stdout}");
    assert_eq!(
        values(stdout, "STAT"),
        vec![format!("1 {}", wire(&sample_message()).len())]
    );
    assert_eq!(
        values(stdout, "AUTH-CONT"),
        vec!["'+ '"],
        "RFC 5034 empty challenge"
    );
    assert!(
        values(stdout, "AUTH-CONT-OK")[0].starts_with("+OK"),
        "{stdout}"
    );
    assert!(
        values(stdout, "AUTH-WRONG")[0].starts_with("-ERR [AUTH]"),
        "{stdout}"
    );
    assert!(
        values(stdout, "PASS-WRONG")[0].starts_with("-ERR [AUTH]"),
        "{stdout}"
    );
    assert!(!server.log().contains(PASSWORD));
}

#[test]
fn poplib_dele_then_drop_deletes_nothing_and_quit_deletes() {
    if !require_tool("python3") {
        return;
    }
    let (server, originals) = start_with_corpus();
    let out = tempfile::tempdir().unwrap();
    let total = originals.len();

    // DELE twice, then the connection drops without QUIT: nothing deleted.
    let ran = poplib(&server, "dele-drop", out.path());
    assert_eq!(values(&ran.stdout, "DELE").len(), 2, "{}", ran.stdout);
    assert_eq!(maildir_count(&server), total);

    // DELE, QUIT: exactly that message is gone, the others keep their UIDL.
    let ran = poplib(&server, "dele-quit", out.path());
    let before = values(&ran.stdout, "UIDL");
    let before = numbered(&before);
    assert_eq!(before.len(), total, "the dropped session deleted something");
    assert_eq!(
        values(&ran.stdout, "QUIT"),
        vec!["+OK Logging out, 1 messages deleted"]
    );
    assert_eq!(maildir_count(&server), total - 1);

    let ran = poplib(&server, "read", out.path());
    let after = values(&ran.stdout, "UIDL");
    let after: Vec<&str> = numbered(&after).into_values().collect();
    let expected: Vec<&str> = before
        .iter()
        .filter(|(n, _)| **n != 1)
        .map(|(_, u)| *u)
        .collect();
    assert_eq!(after, expected, "UIDLs of the remaining messages changed");
}

// ---------------------------------------------------------------------------
// The maildrop lock and QUIT atomicity with the raw client

/// Logs a raw client in; returns the answer to PASS.
async fn raw_login(c: &mut Client) -> String {
    let greeting = c.line().await;
    assert!(greeting.starts_with("+OK"), "{greeting}");
    c.send(format!("USER {USER}\r\n").as_bytes()).await;
    assert!(c.line().await.starts_with("+OK"));
    c.send(format!("PASS {PASSWORD}\r\n").as_bytes()).await;
    c.line().await
}

#[tokio::test]
async fn second_pop3_session_is_in_use_while_imap_keeps_working() {
    let server = TestServer::start();
    let mut first = Client::connect(server.pop3s, &server.ca).await;
    assert!(raw_login(&mut first).await.starts_with("+OK"));
    first.send(b"DELE 1\r\n").await;
    assert!(first.line().await.starts_with("+OK"));

    let mut second = Client::connect(server.pop3s, &server.ca).await;
    let refused = raw_login(&mut second).await;
    assert!(refused.starts_with("-ERR [IN-USE]"), "{refused}");
    // Still in AUTHORIZATION: no maildrop commands.
    second.send(b"STAT\r\n").await;
    assert!(second.line().await.starts_with("-ERR"));

    // IMAP on the same mailbox is not blocked by the POP3 lock.
    let mut imap = Client::connect(server.imaps, &server.ca).await;
    assert!(imap.line().await.starts_with("* OK"));
    imap.send(format!("a LOGIN \"{USER}\" \"{PASSWORD}\"\r\n").as_bytes())
        .await;
    let login = imap.until_tagged("a").await;
    assert!(
        String::from_utf8_lossy(&login).contains("a OK"),
        "{}",
        String::from_utf8_lossy(&login)
    );
    imap.send(b"b SELECT INBOX\r\n").await;
    let select = String::from_utf8(imap.until_tagged("b").await).unwrap();
    assert!(
        select.contains("* 1 EXISTS") && select.contains("b OK"),
        "{select}"
    );
    imap.send(b"c FETCH 1 BODY.PEEK[]\r\n").await;
    let fetch = imap.until_tagged("c").await;
    assert!(String::from_utf8_lossy(&fetch).contains("c OK"));
    imap.send(b"d LOGOUT\r\n").await;
    imap.until_tagged("d").await;

    // The first session's QUIT releases the lock.
    first.send(b"QUIT\r\n").await;
    assert_eq!(
        first.line().await,
        "+OK Logging out, 1 messages deleted\r\n"
    );
    let mut third = Client::connect(server.pop3s, &server.ca).await;
    assert!(raw_login(&mut third).await.starts_with("+OK"));
    third.send(b"STAT\r\n").await;
    assert_eq!(third.line().await, "+OK 0 0\r\n");
    // The refused client is still in AUTHORIZATION and may retry; `third`
    // holds the lock now, so it is refused again.
    second
        .send(format!("USER {USER}\r\nPASS {PASSWORD}\r\n").as_bytes())
        .await;
    assert!(second.line().await.starts_with("+OK"));
    assert!(second.line().await.starts_with("-ERR [IN-USE]"));
}

#[tokio::test]
async fn the_lock_holds_across_server_processes() {
    let server = TestServer::start();
    // A second `coffre` process on the same configuration: same database,
    // same mail root, its own ephemeral ports.
    let other = TestServer::spawn(
        tempfile::tempdir().unwrap(),
        server.config.clone(),
        server.ca.clone(),
        &["serve", "--config"],
    );
    let mut first = Client::connect(server.pop3s, &server.ca).await;
    assert!(raw_login(&mut first).await.starts_with("+OK"));
    let mut second = Client::connect(other.pop3s, &other.ca).await;
    let refused = raw_login(&mut second).await;
    assert!(
        refused.starts_with("-ERR [IN-USE]"),
        "{refused}\nlog: {}",
        other.log()
    );
    first.send(b"QUIT\r\n").await;
    assert!(first.line().await.starts_with("+OK"));
    second
        .send(format!("USER {USER}\r\nPASS {PASSWORD}\r\n").as_bytes())
        .await;
    assert!(second.line().await.starts_with("+OK"));
    let answer = second.line().await;
    assert!(answer.starts_with("+OK"), "{answer}");
}

#[tokio::test]
async fn dropped_connection_releases_the_lock_and_deletes_nothing() {
    let server = TestServer::start();
    let mut c = Client::connect(server.pop3s, &server.ca).await;
    assert!(raw_login(&mut c).await.starts_with("+OK"));
    c.send(b"DELE 1\r\n").await;
    assert!(c.line().await.starts_with("+OK"));
    drop(c);
    // The server notices the drop asynchronously: retry while [IN-USE].
    let deadline = Instant::now() + WAIT;
    loop {
        let mut again = Client::connect(server.pop3s, &server.ca).await;
        let answer = raw_login(&mut again).await;
        if answer.starts_with("+OK") {
            again.send(b"STAT\r\n").await;
            assert!(
                again.line().await.starts_with("+OK 1 "),
                "the dropped DELE was applied"
            );
            break;
        }
        assert!(answer.starts_with("-ERR [IN-USE]"), "{answer}");
        assert!(Instant::now() < deadline, "lock never released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(maildir_count(&server), 1);
}

// ---------------------------------------------------------------------------
// curl

fn curl(server: &TestServer, path: &str, extra: &[&str], password: &str) -> Ran {
    let url = format!("pop3s://127.0.0.1:{}/{path}", server.pop3s.port());
    run_bounded(
        Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "20", "--cacert"])
            .arg(&server.ca)
            .args(extra)
            .args([url.as_str(), "-u", &format!("{USER}:{password}")]),
        server.dir.path(),
    )
}

#[test]
fn curl_lists_retrieves_and_deletes() {
    if !require_tool("curl") {
        return;
    }
    let (server, originals) = start_with_corpus();

    // LIST: one line per message with the octets RETR sends.
    let list = curl(&server, "", &[], PASSWORD);
    assert!(
        list.status.success(),
        "{}\nlog: {}",
        list.stderr,
        server.log()
    );
    let lines: Vec<&str> = list
        .stdout
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .collect();
    let sizes = numbered(&lines);
    assert_eq!(sizes.len(), originals.len(), "{}", list.stdout);

    // RETR n: exactly the message (curl un-stuffs and drops the terminator).
    let mut seen = Vec::new();
    for (n, size) in &sizes {
        let got = curl(&server, &n.to_string(), &[], PASSWORD);
        assert!(got.status.success(), "{}", got.stderr);
        let original = &originals[&subject(&got.stdout_bytes)];
        assert_eq!(got.stdout_bytes, wire(original), "message {n}");
        assert_eq!(size.to_string(), got.stdout_bytes.len().to_string());
        seen.push(subject(original));
    }
    assert_eq!(seen.len(), originals.len());

    // UIDL and TOP as custom commands.
    let uidl = curl(&server, "", &["-X", "UIDL"], PASSWORD);
    assert!(uidl.status.success(), "{}", uidl.stderr);
    assert_eq!(
        uidl.stdout.lines().count(),
        originals.len(),
        "{}",
        uidl.stdout
    );
    let top = curl(&server, "", &["-X", "TOP 1 0"], PASSWORD);
    assert!(top.status.success(), "{}", top.stderr);
    assert!(
        top.stdout.ends_with("\r\n\r\n") && top.stdout.contains("Subject: "),
        "{:?}",
        top.stdout
    );

    // DELE (curl sends QUIT afterwards, so it is applied).
    let dele = curl(&server, "1", &["-X", "DELE", "--head"], PASSWORD);
    assert!(dele.status.success(), "{}", dele.stderr);
    assert_eq!(maildir_count(&server), originals.len() - 1);
}

#[test]
fn curl_wrong_password_is_refused() {
    if !require_tool("curl") {
        return;
    }
    let server = TestServer::start();
    let ran = curl(&server, "1", &[], "not the password");
    // curl: 67 = "The user name, password, or similar was not accepted".
    assert_eq!(ran.status.code(), Some(67), "{}", ran.stderr);
    assert!(ran.stdout.is_empty());
    assert_eq!(maildir_count(&server), 1);
}

// ---------------------------------------------------------------------------
// fetchmail

/// Runs fetchmail once with an rcfile built for this server; each message
/// goes through an MDA that writes it to its own file in `out`.
fn fetchmail(server: &TestServer, home: &Path, out: &Path, extra: &[&str]) -> Ran {
    let mda = home.join("deliver.sh");
    std::fs::write(
        &mda,
        format!(
            "#!/bin/sh\nexec cat > \"{}/msg-$(date +%s%N)-$$.eml\"\n",
            out.display()
        ),
    )
    .unwrap();
    set_mode(&mda, 0o755);
    let rc = home.join("fetchmailrc");
    std::fs::write(
        &rc,
        format!(
            "set no syslog\n\
             poll 127.0.0.1 protocol pop3 port {port} uidl\n\
             \x20 user '{USER}' there with password '{PASSWORD}' is 'localuser' here\n\
             \x20 options ssl sslcertfile '{ca}' sslcertck sslcommonname localhost\n\
             \x20   keep no rewrite no stripcr mda '{mda}'\n",
            port = server.pop3s.port(),
            ca = server.ca.display(),
            mda = mda.display(),
        ),
    )
    .unwrap();
    // fetchmail refuses an rcfile others can read.
    set_mode(&rc, 0o600);
    run_bounded(
        Command::new("fetchmail")
            .env("FETCHMAILHOME", home)
            .env("HOME", home)
            .arg("-f")
            .arg(&rc)
            .args(["--nodetach", "--nosyslog"])
            .args(extra),
        server.dir.path(),
    )
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Checks that each delivered message is an original as sent over POP3,
/// after the trace fields the client added; returns the subjects.
fn check_delivered(
    delivered: &[Vec<u8>],
    originals: &BTreeMap<String, Vec<u8>>,
    added: &[&str],
    lf: bool,
) -> Vec<String> {
    let mut subjects: Vec<String> = delivered
        .iter()
        .map(|d| {
            let body = strip_added_headers(d, added);
            assert_ne!(
                body.len(),
                d.len(),
                "no trace header added? {}",
                String::from_utf8_lossy(d)
            );
            let original = originals.get(&subject(body)).unwrap_or_else(|| {
                panic!("unknown message delivered: {}", String::from_utf8_lossy(d))
            });
            let expected = if lf {
                crlf_to_lf(&wire(original))
            } else {
                wire(original)
            };
            assert_eq!(
                String::from_utf8_lossy(body),
                String::from_utf8_lossy(&expected),
                "delivered message differs from the original"
            );
            assert_eq!(body, &expected[..]);
            subject(body)
        })
        .collect();
    subjects.sort();
    subjects
}

#[test]
fn fetchmail_keep_twice_then_fetch_and_delete() {
    if !require_tool("fetchmail") {
        return;
    }
    let (server, originals) = start_with_corpus();
    let all: Vec<String> = originals.keys().cloned().collect();
    let home = tempfile::tempdir().unwrap();
    let first_out = tempfile::tempdir().unwrap();

    // 1. --keep (rcfile `keep`): everything arrives, nothing is deleted.
    let ran = fetchmail(&server, home.path(), first_out.path(), &[]);
    assert_eq!(
        ran.status.code(),
        Some(0),
        "fetchmail: {}\n{}\nlog: {}",
        ran.stdout,
        ran.stderr,
        server.log()
    );
    let delivered = files_in(first_out.path());
    assert_eq!(
        check_delivered(&delivered, &originals, &["Received"], false),
        all
    );
    assert_eq!(maildir_count(&server), originals.len());

    // 2. Again with keep: UIDL tracking → nothing new (exit 1 = no mail).
    let second_out = tempfile::tempdir().unwrap();
    let ran = fetchmail(&server, home.path(), second_out.path(), &[]);
    assert_eq!(
        ran.status.code(),
        Some(1),
        "fetchmail: {}\n{}",
        ran.stdout,
        ran.stderr
    );
    assert!(
        files_in(second_out.path()).is_empty(),
        "second run fetched again"
    );
    assert_eq!(maildir_count(&server), originals.len());

    // 3. Without keep (and --all, since all were seen): fetched and deleted.
    let third_out = tempfile::tempdir().unwrap();
    let ran = fetchmail(
        &server,
        home.path(),
        third_out.path(),
        &["--nokeep", "--all"],
    );
    assert_eq!(
        ran.status.code(),
        Some(0),
        "fetchmail: {}\n{}",
        ran.stdout,
        ran.stderr
    );
    let delivered = files_in(third_out.path());
    assert_eq!(
        check_delivered(&delivered, &originals, &["Received"], false),
        all
    );
    assert_eq!(maildir_count(&server), 0, "mailbox not emptied");
}

// ---------------------------------------------------------------------------
// getmail6

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn getmail(server: &TestServer, getmaildir: &Path, maildir: &Path, extra: &[&str]) -> Ran {
    // getmail refuses to deliver to a Maildir as root without a `user` to
    // switch to; that user must be able to write the Maildir.
    let user = if running_as_root() {
        "user = nobody\n"
    } else {
        ""
    };
    std::fs::write(
        getmaildir.join("getmailrc"),
        format!(
            "[retriever]\ntype = SimplePOP3SSLRetriever\nserver = 127.0.0.1\nport = {port}\n\
             username = {USER}\npassword = {PASSWORD}\nca_certs = {ca}\n\n\
             [destination]\ntype = Maildir\npath = {maildir}/\n{user}\n\
             [options]\nread_all = false\ndelete = false\nverbose = 1\n",
            port = server.pop3s.port(),
            ca = server.ca.display(),
            maildir = maildir.display(),
        ),
    )
    .unwrap();
    run_bounded(
        Command::new("getmail")
            .env("HOME", getmaildir)
            .arg("--getmaildir")
            .arg(getmaildir)
            .args(["--rcfile", "getmailrc"])
            .args(extra),
        server.dir.path(),
    )
}

#[test]
fn getmail6_fetches_once_then_deletes() {
    if !require_tool("getmail") {
        return;
    }
    let (server, originals) = start_with_corpus();
    let all: Vec<String> = originals.keys().cloned().collect();
    let getmaildir = tempfile::tempdir().unwrap();
    let top = tempfile::tempdir().unwrap();
    set_mode(top.path(), 0o755);
    let maildir = top.path().join("Maildir");
    for sub in ["", "tmp", "new", "cur"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
        set_mode(&maildir.join(sub), 0o777);
    }

    let ran = getmail(&server, getmaildir.path(), &maildir, &[]);
    assert!(
        ran.status.success(),
        "getmail: {}\n{}\nlog: {}",
        ran.stdout,
        ran.stderr,
        server.log()
    );
    let delivered = files_in(&maildir.join("new"));
    // getmail adds Return-Path, Delivered-To and Received; its Maildir
    // files use LF line ends.
    let added = ["Return-Path", "Delivered-To", "Received"];
    assert_eq!(check_delivered(&delivered, &originals, &added, true), all);
    assert_eq!(maildir_count(&server), originals.len());

    // Second run: the UIDLs are known, nothing is fetched.
    let ran = getmail(&server, getmaildir.path(), &maildir, &[]);
    assert!(
        ran.status.success(),
        "getmail: {}\n{}",
        ran.stdout,
        ran.stderr
    );
    assert_eq!(
        files_in(&maildir.join("new")).len(),
        originals.len(),
        "second run fetched again"
    );

    // --all --delete: fetched again and deleted on the server.
    let ran = getmail(&server, getmaildir.path(), &maildir, &["--all", "--delete"]);
    assert!(
        ran.status.success(),
        "getmail: {}\n{}",
        ran.stdout,
        ran.stderr
    );
    assert_eq!(files_in(&maildir.join("new")).len(), 2 * originals.len());
    assert_eq!(maildir_count(&server), 0);
}

// ---------------------------------------------------------------------------
// A 50 MiB message streams

/// Peak resident memory of a process (Linux `VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[tokio::test]
async fn retr_of_a_50_mib_message_streams() {
    let server = TestServer::start();
    // Lines of text with bare LF, leading dots and NULs, 50 MiB in all.
    let mut big = b"From: big@example.org\nSubject: big\n\n".to_vec();
    let pattern: &[u8] =
        b".dot line\nplain text line with some words in it\r\nnul\0line\n..two dots\n";
    while big.len() < 50 * 1024 * 1024 {
        big.extend_from_slice(pattern);
    }
    deliver(&server.mail_root(), USER, "1700000009.M9P1.test", &big);
    let expected = wire(&big);

    let mut c = Client::connect(server.pop3s, &server.ca).await;
    assert!(raw_login(&mut c).await.starts_with("+OK"));
    let before = peak_rss_kib(server.pid());
    c.send(b"LIST 2\r\n").await;
    assert_eq!(c.line().await, format!("+OK 2 {}\r\n", expected.len()));
    c.send(b"RETR 2\r\n").await;
    assert_eq!(c.line().await, format!("+OK {} octets\r\n", expected.len()));
    // Read line by line, un-stuffing, and compare as we go.
    let mut received = Vec::with_capacity(expected.len());
    loop {
        let mut line = Vec::new();
        let n = tokio::time::timeout(
            Duration::from_secs(120),
            tokio::io::AsyncBufReadExt::read_until(&mut c.stream, b'\n', &mut line),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(n > 0, "EOF in the middle of RETR");
        if line == b".\r\n" {
            break;
        }
        received.extend_from_slice(line.strip_prefix(b".").unwrap_or(&line));
    }
    assert_eq!(received.len(), expected.len());
    assert!(received == expected, "50 MiB RETR differs");
    c.send(b"QUIT\r\n").await;
    assert!(c.line().await.starts_with("+OK"));
    // Streaming: the server's peak memory grew by far less than the message
    // (a whole read plus its encoding would add > 100 MiB).
    if let (Some(before), Some(after)) = (before, peak_rss_kib(server.pid())) {
        let grown_mib = after.saturating_sub(before) / 1024;
        assert!(
            grown_mib < 25,
            "server peak RSS grew by {grown_mib} MiB during a 50 MiB RETR"
        );
    }
}
