//! Streamed APPEND (issue 7, point 2): a large literal goes to the Maildir's
//! `tmp/` as it arrives, never whole into the server's memory; a client that
//! disconnects mid-APPEND leaves no message and no `tmp/` file (point 8).
//! Real binary, real TLS, real Maildir.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness::*;

/// The message APPENDed: 20 MiB.
const SIZE: usize = 20 * 1024 * 1024;
/// How much the server's peak resident memory may grow while it receives it
/// (a buffered APPEND would grow it by at least the message size).
const MAX_GROWTH_KIB: u64 = 8 * 1024;

/// A `/proc/<pid>/status` field in KiB (`VmHWM`: peak resident memory).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|v| v.trim().trim_end_matches("kB").trim().parse().unwrap())
        .unwrap()
}

fn maildir(server: &TestServer) -> PathBuf {
    server.mail_root().join("example.org").join("alice")
}

fn files_in(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// `len` octets of text in CRLF lines, different for each `seed`.
fn message(len: usize, seed: u64) -> Vec<u8> {
    let mut m = format!("From: bob@example.org\r\nSubject: big {seed}\r\n\r\n").into_bytes();
    let mut x = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    while m.len() < len {
        for _ in 0..76 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            m.push(b'!' + (x % 94) as u8);
        }
        m.extend_from_slice(b"\r\n");
    }
    m.truncate(len - 2);
    m.extend_from_slice(b"\r\n");
    m
}

async fn login(server: &TestServer) -> Client {
    let mut c = Client::connect(server.imaps, &server.ca).await;
    c.line().await;
    c.send(format!("l1 LOGIN {USER} \"{PASSWORD}\"\r\n").as_bytes())
        .await;
    let r = String::from_utf8_lossy(&c.until_tagged("l1").await).into_owned();
    assert!(r.contains("l1 OK"), "{r}");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_of_twenty_mib_streams_to_disk() {
    let server = TestServer::start();
    let mut c = login(&server).await;
    let big = message(SIZE, 1);
    let pid = server.pid();
    let hwm_before = status_kib(pid, "VmHWM:");
    c.send(format!("a1 APPEND INBOX (\\Seen) {{{SIZE}}}\r\n").as_bytes())
        .await;
    let plus = c.line().await;
    assert!(plus.starts_with("+ "), "{plus}");
    for piece in big.chunks(64 * 1024) {
        c.send(piece).await;
    }
    c.send(b"\r\n").await;
    let done = String::from_utf8_lossy(&c.until_tagged("a1").await).into_owned();
    assert!(done.starts_with("a1 OK [APPENDUID "), "{done}");
    assert!(done.contains(" 2] APPEND completed"), "{done}");
    let hwm_after = status_kib(pid, "VmHWM:");
    let growth = hwm_after.saturating_sub(hwm_before);
    eprintln!(
        "20 MiB APPEND: server VmHWM {hwm_before} KiB -> {hwm_after} KiB (+{growth} KiB), VmRSS now {} KiB",
        status_kib(pid, "VmRSS:")
    );
    assert!(
        growth < MAX_GROWTH_KIB,
        "peak memory grew by {growth} KiB while receiving a {} KiB message",
        SIZE / 1024
    );
    let root = maildir(&server);
    assert!(files_in(&root.join("tmp")).is_empty());
    // The message is there, byte for byte.
    c.send(b"a2 SELECT INBOX\r\n").await;
    let r = String::from_utf8_lossy(&c.until_tagged("a2").await).into_owned();
    assert!(r.contains("* 2 EXISTS"), "{r}");
    c.send(b"a3 FETCH 2 (RFC822.SIZE BODY.PEEK[])\r\n").await;
    let head = c.line().await;
    assert_eq!(
        head,
        format!("* 2 FETCH (RFC822.SIZE {SIZE} BODY[] {{{SIZE}}}\r\n")
    );
    let body = c.exact(SIZE).await;
    assert!(body == big, "the stored message differs from the one sent");
    let tail = String::from_utf8_lossy(&c.until_tagged("a3").await).into_owned();
    assert!(
        tail.starts_with(")\r\n") && tail.contains("a3 OK"),
        "{tail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_mid_append_leaves_nothing() {
    let server = TestServer::start();
    let root = maildir(&server);
    let cur_before = files_in(&root.join("cur"));
    let new_before = files_in(&root.join("new"));
    let mut c = login(&server).await;
    let big = message(5 * 1024 * 1024, 2);
    c.send(format!("b1 APPEND INBOX {{{}+}}\r\n", big.len()).as_bytes())
        .await;
    for piece in big[..2 * 1024 * 1024].chunks(64 * 1024) {
        c.send(piece).await;
    }
    // The partial message is being written to tmp/ (bounded wait).
    let mut spooling = false;
    for _ in 0..200 {
        if !files_in(&root.join("tmp")).is_empty() {
            spooling = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(spooling, "no spool file appeared in tmp/");
    drop(c);
    // Once the server has seen the disconnect, the spool file is gone.
    let mut left = files_in(&root.join("tmp"));
    for _ in 0..200 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = files_in(&root.join("tmp"));
    }
    assert!(left.is_empty(), "tmp/ leftovers: {left:?}");
    assert_eq!(files_in(&root.join("cur")).len(), cur_before.len());
    assert_eq!(files_in(&root.join("new")).len(), new_before.len());
    // A fresh client sees only the original message.
    let mut c = login(&server).await;
    c.send(b"c1 SELECT INBOX\r\n").await;
    let r = String::from_utf8_lossy(&c.until_tagged("c1").await).into_owned();
    assert!(r.contains("* 1 EXISTS"), "{r}");
}
