//! Legacy plaintext notice listeners: one line, then close; never an answer
//! to LOGIN/USER.

use std::io::{BufRead, BufReader, Read, Write};

use crate::harness::*;

fn check_notice(addr: std::net::SocketAddr, expected: &str, attempt: &[u8]) {
    let s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, expected);
    // Whatever the client sends now is never answered: the next read is EOF
    // (or a reset, once the server has closed).
    let mut w = s;
    let _ = w.write_all(attempt);
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    assert!(
        rest.is_empty(),
        "notice listener answered: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

#[test]
fn imap_notice_says_use_993_and_closes() {
    let server = TestServer::start();
    check_notice(
        server.notice_imap,
        "* BYE Plaintext IMAP is closed: use IMAPS on port 993 (SSL/TLS)\r\n",
        b"a1 LOGIN alice@example.org secret\r\n",
    );
    check_notice(
        server.notice_pop3,
        "-ERR Plaintext POP3 is closed: use POP3S on port 995 (SSL/TLS)\r\n",
        b"USER alice@example.org\r\nPASS secret\r\n",
    );
    let log = server.log();
    assert!(log.contains("legacy plaintext connection refused"), "{log}");
    assert!(
        log.contains("protocol=\"imap\"") || log.contains("protocol=imap"),
        "{log}"
    );
    assert!(
        !log.contains("secret"),
        "credentials must never be read or logged"
    );
}

/// Each hit is recorded, and `coffre legacy-report` lists who still comes.
#[test]
fn hits_are_recorded_and_reported() {
    let hits_dir = tempfile::tempdir().unwrap();
    let hits = hits_dir.path().join("legacy-hits.tsv");
    let hits_line = format!(
        "[legacy_notice]\nhits_file = {:?}\n",
        hits.display().to_string()
    );
    let server = TestServer::start_custom("", |text| text.replace("[legacy_notice]\n", &hits_line));
    for addr in [server.notice_imap, server.notice_imap, server.notice_pop3] {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut got = String::new();
        let _ = s.read_to_string(&mut got);
        assert!(got.contains("is closed: use"), "{got}");
    }
    let deadline = std::time::Instant::now() + WAIT;
    while std::fs::read_to_string(&hits)
        .unwrap_or_default()
        .lines()
        .count()
        < 3
    {
        assert!(std::time::Instant::now() < deadline, "hits not recorded");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = run_coffre(
        &[
            "legacy-report",
            "--config",
            server.config.to_str().unwrap(),
            "--days",
            "1",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    let row = report
        .lines()
        .find(|l| l.starts_with("127.0.0.1"))
        .unwrap_or_else(|| panic!("{report}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[..3], &["127.0.0.1", "imap,pop3", "3"], "{report}");
}

/// After the cut-off date the notice ports close without a word.
#[test]
fn past_the_cut_off_the_port_just_closes() {
    let server = TestServer::start_custom("", |text| {
        text.replace(
            "[legacy_notice]\n",
            "[legacy_notice]\nrefuse_after = \"2020-01-01\"\n",
        )
    });
    for addr in [server.notice_imap, server.notice_pop3] {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    }
    assert!(server.log().contains("past the cut-off date"));
}

/// Waits (bounded) until the hits file has `n` lines, and returns them.
fn hits_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "hits not recorded: {text:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A client that talks first: its first line is recorded, reduced to the
/// command verb (never the login or password), and shown by the report.
#[test]
fn the_clients_first_line_is_recorded_without_credentials() {
    let hits_dir = tempfile::tempdir().unwrap();
    let hits = hits_dir.path().join("legacy-hits.tsv");
    let hits_line = format!(
        "[legacy_notice]\nhits_file = {:?}\n",
        hits.display().to_string()
    );
    let server = TestServer::start_custom("", |text| text.replace("[legacy_notice]\n", &hits_line));
    let talk = |addr: std::net::SocketAddr, send: &[u8], read_first: bool| {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut got = Vec::new();
        if read_first {
            // A client that waits for the greeting, then sends.
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            assert!(line.contains("is closed: use"), "{line}");
            let _ = s.write_all(send);
            let _ = r.read_to_end(&mut got);
        } else {
            // A client that pipelines before reading anything.
            s.write_all(send).unwrap();
            let _ = s.read_to_end(&mut got);
            assert!(
                String::from_utf8_lossy(&got).contains("is closed: use"),
                "{got:?}"
            );
        }
        // Never an answer besides the notice.
        assert!(
            !String::from_utf8_lossy(&got).contains(" OK")
                && !String::from_utf8_lossy(&got).contains("+OK"),
            "{got:?}"
        );
    };
    talk(server.notice_imap, b"a1 LOGIN bob secret\r\n", true);
    let lines = hits_lines(&hits, 1);
    talk(server.notice_imap, b"CAPABILITY\r\n", false);
    let lines2 = hits_lines(&hits, 2);
    talk(server.notice_pop3, b"USER bob\r\nPASS secret\r\n", false);
    let all = hits_lines(&hits, 3);
    assert_eq!(lines[0], all[0]);
    assert_eq!(lines2[1], all[1]);
    let cols: Vec<Vec<&str>> = all.iter().map(|l| l.split('\t').collect()).collect();
    assert_eq!(&cols[0][1..], &["imap", "127.0.0.1", "a1 LOGIN"], "{all:?}");
    assert_eq!(
        &cols[1][1..],
        &["imap", "127.0.0.1", "CAPABILITY"],
        "{all:?}"
    );
    assert_eq!(&cols[2][1..], &["pop3", "127.0.0.1", "USER"], "{all:?}");
    let text = std::fs::read_to_string(&hits).unwrap();
    assert!(!text.contains("bob") && !text.contains("secret"), "{text}");
    let log = server.log();
    assert!(log.contains("first line"), "{log}");
    assert!(!log.contains("bob") && !log.contains("secret"), "{log}");

    // A client that says nothing: a hit without a fourth column.
    let mut s = std::net::TcpStream::connect(server.notice_pop3).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut got = String::new();
    let _ = s.read_to_string(&mut got);
    let all = hits_lines(&hits, 4);
    assert_eq!(all[3].split('\t').count(), 3, "{all:?}");

    let out = run_coffre(
        &[
            "legacy-report",
            "--config",
            server.config.to_str().unwrap(),
            "--days",
            "1",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(report.contains("client said"), "{report}");
    let row = report
        .lines()
        .find(|l| l.starts_with("127.0.0.1"))
        .unwrap_or_else(|| panic!("{report}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[..3], &["127.0.0.1", "imap,pop3", "4"], "{report}");
    // The most recent line a client sent from there.
    assert!(row.trim_end().ends_with("USER"), "{report}");
    assert!(!report.contains("bob") && !report.contains("secret"));
}

/// A client that sends a long line without an end: at most 512 bytes are
/// read, the connection is closed anyway, and the hit is recorded.
#[test]
fn a_long_first_line_is_bounded() {
    let hits_dir = tempfile::tempdir().unwrap();
    let hits = hits_dir.path().join("legacy-hits.tsv");
    let hits_line = format!(
        "[legacy_notice]\nhits_file = {:?}\n",
        hits.display().to_string()
    );
    let server = TestServer::start_custom("", |text| text.replace("[legacy_notice]\n", &hits_line));
    let mut s = std::net::TcpStream::connect(server.notice_imap).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut long = b"a1 ID (\"name\" \"".to_vec();
    long.extend(std::iter::repeat_n(b'x', 4000));
    let _ = s.write_all(&long);
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let line = hits_lines(&hits, 1).remove(0);
    let said = line
        .split('\t')
        .nth(3)
        .unwrap_or_else(|| panic!("nothing recorded as said: {line:?}"));
    assert!(said.starts_with("a1 ID (\"name\" \"xxx"), "{line}");
    assert_eq!(said.len(), 100, "{line}");
}
