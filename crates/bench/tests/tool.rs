//! Tests of the load tool itself: corpus determinism and shape, loopback
//! refusal, user patterns, percentiles, report JSON, PSS parsing, argument
//! validation of the binary, and an IMAP helper parse check.

#![allow(clippy::unwrap_used)] // unwrap is fine in tests

use std::process::Command;

use coffre_bench::corpus::{self, Kind};
use coffre_bench::imap::{appenduid, literal_len, parse_exists, quote};
use coffre_bench::memory::parse_pss;
use coffre_bench::report::Report;
use coffre_bench::stats::Latencies;
use coffre_bench::target::{UserPattern, loopback_addr, loopback_ip};

fn bench_bin() -> &'static str {
    env!("CARGO_BIN_EXE_coffre-bench")
}

fn listing(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir.join("new"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn corpus_is_deterministic_and_seed_dependent() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    corpus::write_maildir(a.path(), 25, 42).unwrap();
    corpus::write_maildir(b.path(), 25, 42).unwrap();
    corpus::write_maildir(c.path(), 25, 43).unwrap();
    let la = listing(a.path());
    assert_eq!(la.len(), 25);
    assert_eq!(la, listing(b.path()));
    let contents_a: Vec<_> = la.iter().map(|(_, b)| b.clone()).collect();
    let contents_c: Vec<_> = listing(c.path()).into_iter().map(|(_, b)| b).collect();
    assert_ne!(contents_a, contents_c);
    assert!(
        std::fs::read_dir(a.path().join("tmp"))
            .unwrap()
            .next()
            .is_none(),
        "tmp/ must be empty"
    );
    assert!(a.path().join("cur").is_dir());
}

#[test]
fn corpus_covers_every_kind_with_crlf_and_valid_shape() {
    let kinds: Vec<Kind> = (0..5).map(Kind::for_index).collect();
    for k in [
        Kind::Plain,
        Kind::Alternative,
        Kind::Attachment,
        Kind::NonAscii,
        Kind::Forwarded,
    ] {
        assert!(kinds.contains(&k));
    }
    let text = |i| String::from_utf8(corpus::message(9, i)).unwrap();
    assert!(text(0).contains("Content-Type: text/plain"));
    assert!(text(1).contains("multipart/alternative") && text(1).contains("text/html"));
    assert!(
        text(2).contains("Content-Transfer-Encoding: base64") && text(2).contains("attachment;")
    );
    assert!(text(3).contains("Subject: =?UTF-8?B?"));
    assert!(text(4).contains("Content-Type: message/rfc822"));
    for i in 0..20 {
        let m = corpus::message(9, i);
        // Every LF is part of a CRLF, and headers end with an empty line.
        for (pos, b) in m.iter().enumerate() {
            if *b == b'\n' {
                assert!(pos > 0 && m[pos - 1] == b'\r', "bare LF in message {i}");
            }
        }
        assert!(m.windows(4).any(|w| w == b"\r\n\r\n"));
    }
}

#[test]
fn base64_and_encoded_words_match_rfc4648_vectors() {
    assert_eq!(corpus::base64_lines(b"foobar"), "Zm9vYmFy\r\n");
    assert_eq!(corpus::base64_lines(b"fo"), "Zm8=\r\n");
    assert_eq!(corpus::base64_lines(b"f"), "Zg==\r\n");
    assert!(
        corpus::base64_lines(&[0u8; 100])
            .lines()
            .all(|l| l.len() <= 76)
    );
    assert_eq!(corpus::encoded_word("é"), "=?UTF-8?B?w6k=?=");
}

#[test]
fn corpus_count_limit_is_enforced() {
    let d = tempfile::tempdir().unwrap();
    assert!(corpus::write_maildir(d.path(), corpus::MAX_COUNT + 1, 1).is_err());
}

#[test]
fn non_loopback_hosts_are_refused() {
    assert!(loopback_ip("127.0.0.1").is_ok());
    assert!(loopback_ip("127.5.6.7").is_ok());
    assert!(loopback_ip("::1").is_ok());
    assert!(loopback_ip("[::1]").is_ok());
    assert!(loopback_ip("localhost").is_ok());
    for bad in [
        "10.0.0.1",
        "192.168.1.1",
        "8.8.8.8",
        "0.0.0.0",
        "::",
        "example.org",
        "mail.example.com",
        "",
    ] {
        assert!(loopback_ip(bad).is_err(), "{bad} must be refused");
    }
    assert!(loopback_addr("127.0.0.1", 0).is_err());
    assert_eq!(loopback_addr("127.0.0.1", 993).unwrap().port(), 993);
}

#[test]
fn user_pattern_spreads_sessions_and_validates() {
    let p = UserPattern::new("user%d@example.org", 3).unwrap();
    assert_eq!(p.login_for(0), "user1@example.org");
    assert_eq!(p.login_for(2), "user3@example.org");
    assert_eq!(p.login_for(3), "user1@example.org");
    assert_eq!(p.users(), 3);
    assert!(UserPattern::new("user@example.org", 2).is_err());
    assert!(UserPattern::new("user%d", 0).is_err());
    assert!(UserPattern::new("a\"b", 1).is_err());
    assert!(UserPattern::new("", 1).is_err());
}

#[test]
fn percentiles_use_nearest_rank() {
    let lat = Latencies::new(
        (1..=100)
            .rev()
            .map(std::time::Duration::from_millis)
            .collect(),
    );
    assert_eq!(lat.ms(0.5), 50.0);
    assert_eq!(lat.ms(0.99), 99.0);
    assert_eq!(lat.max(), Some(std::time::Duration::from_millis(100)));
    assert_eq!(Latencies::new(Vec::new()).percentile(0.5), None);
}

#[test]
fn report_json_is_escaped() {
    let mut r = Report::new("login");
    r.num("logins_per_s", 12.5);
    r.text("first_error", "bad \"quote\"\n");
    assert_eq!(
        r.json(),
        "{\"scenario\":\"login\",\"logins_per_s\":12.5,\"first_error\":\"bad \\\"quote\\\"\\u000a\"}"
    );
    assert!(r.summary().contains("logins_per_s"));
}

#[test]
fn pss_is_read_from_smaps_rollup_text() {
    let text = "55d0-7ff r 0 0:0 0 [rollup]\nRss:  2048 kB\nPss:  1234 kB\nPss_Anon: 1000 kB\n";
    assert_eq!(parse_pss(text), Some(1234));
    assert_eq!(parse_pss("Rss: 1 kB\n"), None);
    // Our own process is readable.
    assert!(coffre_bench::memory::pss_kib(std::process::id()).is_some_and(|k| k > 0));
}

#[test]
fn imap_helpers_parse_responses() {
    assert_eq!(literal_len("* 1 FETCH (BODY[] {123}"), Some(123));
    assert_eq!(literal_len("* 1 FETCH (BODY[] {12+}"), Some(12));
    assert_eq!(literal_len("* 1 FETCH (FLAGS ())"), None);
    assert_eq!(parse_exists("* 42 EXISTS"), Some(42));
    assert_eq!(parse_exists("* 42 RECENT"), None);
    assert_eq!(
        appenduid("b3 OK [APPENDUID 1700 17] APPEND completed"),
        Some(17)
    );
    assert_eq!(appenduid("b3 OK done"), None);
    assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
}

#[test]
fn binary_refuses_remote_hosts_and_bad_arguments() {
    let out = Command::new(bench_bin())
        .args([
            "login",
            "--host",
            "203.0.113.5",
            "--insecure",
            "--password",
            "x",
            "--seconds",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("non-loopback"));
    // Neither --ca nor --insecure.
    let out = Command::new(bench_bin())
        .args(["sync", "--password", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    // Both.
    let out = Command::new(bench_bin())
        .args([
            "sync",
            "--password",
            "x",
            "--insecure",
            "--ca",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    // Out-of-range worker count is refused before any connection.
    let out = Command::new(bench_bin())
        .args([
            "login",
            "--insecure",
            "--password",
            "x",
            "--imap-port",
            "1",
            "--workers",
            "0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--workers"));
    // Mixed load refuses clients sharing a mailbox.
    let out = Command::new(bench_bin())
        .args([
            "mixed",
            "--insecure",
            "--password",
            "x",
            "--imap-port",
            "1",
            "--clients",
            "4",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--users must be >= --clients"));
}

#[test]
fn binary_writes_a_corpus() {
    let d = tempfile::tempdir().unwrap();
    let out = Command::new(bench_bin())
        .args([
            "corpus",
            "--maildir",
            d.path().to_str().unwrap(),
            "--count",
            "7",
            "--seed",
            "3",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(listing(d.path()).len(), 7);
}

#[test]
fn argon2_bound_is_positive() {
    let rate =
        coffre_bench::scenarios::argon2_per_second(std::time::Duration::from_millis(200)).unwrap();
    assert!(rate > 0.0);
}
