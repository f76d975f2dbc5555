//! Streamed APPEND: literals over `APPEND_SPOOL_THRESHOLD` go to the
//! store's spool as they arrive (the memory store's spool can be made to
//! fail like a full disk), with every limit and response of a buffered
//! APPEND kept.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use account_auth::testing::StaticAuthenticator;
use imap_session::{APPEND_SPOOL_THRESHOLD, ConnectionInfo, ImapConfig, ImapSession, Next};
use mail_store::memory::MemoryStore;
use mail_store::{AccountLocation, AccountStore, FolderName, MailStore, Mailbox, Uid};

type Session = ImapSession<MemoryStore, StaticAuthenticator>;

const USER: &str = "alice@example.org";
/// What the server driver reads at once.
const READ: usize = 16 * 1024;

fn session(store: &MemoryStore, config: ImapConfig, quota_bytes: Option<u64>) -> Session {
    let auth = Arc::new(StaticAuthenticator::new().with_account(
        "secret",
        account_auth::Account {
            login: USER.to_string(),
            mail_location: None,
            quota_bytes,
            quota_messages: None,
        },
    ));
    let conn = ConnectionInfo {
        peer: "192.0.2.1:50000".parse().unwrap(),
        session_id: 9,
        tls: "TLSv1.3".into(),
    };
    ImapSession::new(Arc::new(store.clone()), auth, Arc::new(config), conn)
}

/// Feeds `input` in driver-sized reads, running the session after each
/// until it needs input or closes; returns the output and the last `Next`.
async fn feed(s: &mut Session, input: &[u8]) -> (String, Next) {
    let mut out = Vec::new();
    let mut next = Next::NeedInput;
    for piece in input.chunks(READ) {
        s.enqueue_input(piece);
        loop {
            next = s.process(&mut out).await;
            if next != Next::Continue {
                break;
            }
        }
        if next == Next::Close {
            break;
        }
    }
    (String::from_utf8(out).unwrap(), next)
}

async fn logged_in(store: &MemoryStore, quota_bytes: Option<u64>) -> Session {
    let mut s = session(store, ImapConfig::default(), quota_bytes);
    let (out, _) = feed(&mut s, b"L LOGIN alice@example.org secret\r\n").await;
    assert!(out.starts_with("L OK"), "{out}");
    s
}

/// A message of exactly `len` octets whose bytes depend on `seed`.
fn message(len: usize, seed: u8) -> Vec<u8> {
    let mut m = format!("Subject: big {seed}\r\n\r\n").into_bytes();
    let mut x = u32::from(seed) + 1;
    while m.len() < len - 2 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let c = b'a' + ((x >> 16) % 26) as u8;
        m.push(if (x >> 8) % 61 == 0 { b'\n' } else { c });
    }
    m.extend_from_slice(b"\r\n");
    m.truncate(len);
    m
}

async fn stored(store: &MemoryStore) -> Vec<(Uid, Vec<u8>)> {
    let account = store
        .open_account(&AccountLocation {
            login: USER.into(),
            location: None,
        })
        .await
        .unwrap();
    let mailbox = account
        .open_folder(&FolderName::inbox(), true)
        .await
        .unwrap();
    let mut all = Vec::new();
    for m in mailbox.messages() {
        all.push((m.uid, mailbox.read_message(m.uid).await.unwrap()));
    }
    all
}

const BIG: usize = 1024 * 1024 + 7;

#[tokio::test]
async fn large_sync_literal_is_spooled_and_stored_intact() {
    assert_eq!(APPEND_SPOOL_THRESHOLD, 256 * 1024);
    let store = MemoryStore::new();
    let mut s = logged_in(&store, None).await;
    let big = message(BIG, 1);
    let (out, _) = feed(
        &mut s,
        format!("a APPEND INBOX (\\Seen) {{{BIG}}}\r\n").as_bytes(),
    )
    .await;
    assert_eq!(out, "+ Ready for literal data\r\n");
    let mut rest = big.clone();
    rest.extend_from_slice(b"\r\n");
    let (out, _) = feed(&mut s, &rest).await;
    assert_eq!(out, "a OK [APPENDUID 1000001 1] APPEND completed\r\n");
    assert_eq!(stored(&store).await, vec![(Uid(1), big)]);
}

/// The spool is really used for large literals only: with a spool that
/// holds 100 KiB, a 200 KiB message (under the threshold, buffered) is
/// stored, a 1 MiB one fails like a full disk — after its data has been
/// read and discarded — and the session goes on.
#[tokio::test]
async fn full_disk_mid_literal_fails_that_append_only() {
    let store = MemoryStore::new();
    store.set_spool_capacity(Some(100 * 1024));
    let mut s = logged_in(&store, None).await;
    let small = message(200 * 1024, 2);
    let mut input = format!("a APPEND INBOX {{{}+}}\r\n", small.len()).into_bytes();
    input.extend_from_slice(&small);
    input.extend_from_slice(b"\r\n");
    let (out, _) = feed(&mut s, &input).await;
    assert_eq!(out, "a OK [APPENDUID 1000001 1] APPEND completed\r\n");

    let big = message(BIG, 3);
    let mut input = format!("b APPEND INBOX {{{BIG}+}}\r\n").into_bytes();
    input.extend_from_slice(&big);
    input.extend_from_slice(b"\r\nc NOOP\r\n");
    let (out, next) = feed(&mut s, &input).await;
    assert_eq!(
        out,
        "b NO [UNAVAILABLE] Message not stored: the server could not write it (disk full?), try again\r\nc OK Completed\r\n"
    );
    assert_eq!(next, Next::NeedInput);
    // MULTIAPPEND: one message fits the spool, the next does not: none is kept.
    let fits = message(90 * 1024 + THRESHOLD_PLUS, 4);
    store.set_spool_capacity(Some(fits.len() as u64));
    let mut input = format!("d APPEND INBOX {{{}+}}\r\n", fits.len()).into_bytes();
    input.extend_from_slice(&fits);
    input.extend_from_slice(format!(" {{{BIG}+}}\r\n").as_bytes());
    input.extend_from_slice(&big);
    input.extend_from_slice(b"\r\n");
    let (out, _) = feed(&mut s, &input).await;
    assert!(out.starts_with("d NO [UNAVAILABLE] "), "{out}");
    assert_eq!(stored(&store).await, vec![(Uid(1), small)]);
}

/// Octets that take a message over the spool threshold.
const THRESHOLD_PLUS: usize = 256 * 1024 + 1;

#[tokio::test]
async fn multiappend_mixes_buffered_and_spooled_messages() {
    let store = MemoryStore::new();
    let mut s = logged_in(&store, None).await;
    let small = b"Subject: small\r\n\r\nhi\r\n".to_vec();
    let big1 = message(THRESHOLD_PLUS, 5);
    let big2 = message(BIG, 6);
    // Synchronising first, then LITERAL+ for the rest.
    let (out, _) = feed(
        &mut s,
        format!("a APPEND INBOX (\\Seen) {{{}}}\r\n", big1.len()).as_bytes(),
    )
    .await;
    assert_eq!(out, "+ Ready for literal data\r\n");
    let mut input = big1.clone();
    input.extend_from_slice(format!(" {{{}+}}\r\n", small.len()).as_bytes());
    input.extend_from_slice(&small);
    input.extend_from_slice(
        format!(
            " (\\Flagged) \" 1-Jan-2024 00:00:00 +0000\" {{{}+}}\r\n",
            big2.len()
        )
        .as_bytes(),
    );
    input.extend_from_slice(&big2);
    input.extend_from_slice(b"\r\n");
    let (out, _) = feed(&mut s, &input).await;
    assert_eq!(out, "a OK [APPENDUID 1000001 1:3] APPEND completed\r\n");
    assert_eq!(
        stored(&store).await,
        vec![(Uid(1), big1), (Uid(2), small), (Uid(3), big2)]
    );
    let (out, _) = feed(
        &mut s,
        b"b SELECT INBOX\r\nc FETCH 1:3 (FLAGS RFC822.SIZE)\r\n",
    )
    .await;
    assert!(out.contains(&format!(" RFC822.SIZE {BIG})")), "{out}");
    assert!(out.contains("* 3 FETCH (FLAGS (\\Flagged"), "{out}");
}

/// APPENDLIMIT: refused before any `+`, also when a spooled literal took
/// the command near the limit; quota: `[OVERQUOTA]`, nothing stored.
#[tokio::test]
async fn limits_and_quota_are_unchanged() {
    let store = MemoryStore::new();
    let config = ImapConfig {
        max_literal: 2 * 1024 * 1024,
        ..ImapConfig::default()
    };
    let mut s = session(&store, config, Some(1024 * 1024));
    feed(&mut s, b"L LOGIN alice@example.org secret\r\n").await;
    let (out, _) = feed(&mut s, b"a APPEND INBOX {2097153}\r\n").await;
    assert_eq!(out, "a NO [TOOBIG] Message too large\r\n");
    // 1 MiB spooled, then 1 MiB more announced: over the 2 MiB total.
    let big = message(BIG, 7);
    let mut input = format!("b APPEND INBOX {{{BIG}+}}\r\n").into_bytes();
    input.extend_from_slice(&big);
    input.extend_from_slice(format!(" {{{BIG}}}\r\n").as_bytes());
    let (out, _) = feed(&mut s, &input).await;
    assert_eq!(out, "b NO [TOOBIG] Message too large\r\n");
    // Over quota (1 MiB): nothing is stored.
    let mut input = format!("c APPEND INBOX {{{BIG}+}}\r\n").into_bytes();
    input.extend_from_slice(&big);
    input.extend_from_slice(b"\r\n");
    let (out, _) = feed(&mut s, &input).await;
    assert!(out.starts_with("c NO [OVERQUOTA]"), "{out}");
    // TRYCREATE for a missing folder.
    let mut input = format!("d APPEND Nope {{{BIG}+}}\r\n").into_bytes();
    input.extend_from_slice(&big);
    input.extend_from_slice(b"\r\n");
    let (out, _) = feed(&mut s, &input).await;
    assert_eq!(out, "d NO [TRYCREATE] No such mailbox\r\n");
    assert!(stored(&store).await.is_empty());
    // The session is fine.
    let (out, _) = feed(&mut s, b"e APPEND INBOX {3+}\r\nabc\r\n").await;
    assert_eq!(out, "e OK [APPENDUID 1000001 1] APPEND completed\r\n");
}

/// A spooled message in a command that turns out malformed (or carries a
/// NUL, or imitates the framer's marker) is not stored.
#[tokio::test]
async fn malformed_commands_with_spooled_literals_store_nothing() {
    let store = MemoryStore::new();
    let mut s = logged_in(&store, None).await;
    let big = message(THRESHOLD_PLUS, 8);
    let mut input = format!("a APPEND INBOX {{{THRESHOLD_PLUS}+}}\r\n").into_bytes();
    input.extend_from_slice(&big);
    input.extend_from_slice(b" garbage\r\n");
    let (out, _) = feed(&mut s, &input).await;
    assert_eq!(out, "a BAD Invalid APPEND arguments\r\n");
    let mut with_nul = big.clone();
    with_nul[200_000] = 0;
    let mut input = format!("b APPEND INBOX {{{THRESHOLD_PLUS}+}}\r\n").into_bytes();
    input.extend_from_slice(&with_nul);
    input.extend_from_slice(b"\r\n");
    let (out, _) = feed(&mut s, &input).await;
    assert_eq!(out, "b BAD NUL octet in command\r\n");
    // The marker typed by a client is not a spooled message.
    let (out, _) = feed(&mut s, b"c APPEND INBOX {~300000}\r\n").await;
    assert_eq!(out, "c BAD Invalid APPEND arguments\r\n");
    let mut input = format!("d APPEND INBOX {{~5}} {{{THRESHOLD_PLUS}+}}\r\n").into_bytes();
    input.extend_from_slice(&big);
    input.extend_from_slice(b"\r\n");
    let (out, _) = feed(&mut s, &input).await;
    assert_eq!(out, "d BAD Invalid APPEND arguments\r\n");
    // A line too long after a spooled literal: refused, nothing kept.
    let mut input = format!("e APPEND INBOX {{{THRESHOLD_PLUS}+}}\r\n").into_bytes();
    input.extend_from_slice(&big);
    input.extend_from_slice(&vec![b'x'; 70 * 1024]);
    input.extend_from_slice(b"\r\n");
    let (out, _) = feed(&mut s, &input).await;
    assert_eq!(out, "e BAD Command line too long\r\n");
    assert!(stored(&store).await.is_empty());
    let (out, _) = feed(&mut s, b"f NOOP\r\n").await;
    assert_eq!(out, "f OK Completed\r\n");
}

/// Before login, APPEND literals are refused before anything is read, so
/// nothing can be spooled by an anonymous peer.
#[tokio::test]
async fn no_spooling_before_login() {
    let store = MemoryStore::new();
    let mut s = session(&store, ImapConfig::default(), None);
    let (out, _) = feed(&mut s, b"a APPEND INBOX {300000}\r\n").await;
    assert_eq!(out, "a NO [TOOBIG] Message too large\r\n");
    let mut input = b"b APPEND INBOX {300000+}\r\n".to_vec();
    input.extend_from_slice(&message(300_000, 9));
    let (out, next) = feed(&mut s, &input).await;
    assert!(out.starts_with("b NO [TOOBIG]"), "{out}");
    assert_eq!(next, Next::Close);
    assert!(stored(&store).await.is_empty());
}
