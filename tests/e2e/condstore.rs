//! CONDSTORE (RFC 7162 §3.1) end to end over TLS against the real binary
//! and its Maildir store: ENABLE, SELECT (CONDSTORE) with HIGHESTMODSEQ, a
//! STORE in one connection seen through FETCH CHANGEDSINCE in another, a
//! stale UNCHANGEDSINCE answered with [MODIFIED], and mod-sequences that
//! survive a server restart. Also the derived-field cache the same FETCH
//! path uses on Maildir: ENVELOPE / BODYSTRUCTURE answers identical whether
//! parsed or cached, before and after a restart.

use crate::harness::*;
use crate::imap_slice::assert_parses;

async fn login(server: &TestServer) -> Client {
    let mut c = Client::connect(server.imaps, &server.ca).await;
    assert!(c.line().await.starts_with("* OK "));
    c.send(format!("L LOGIN {USER} \"{PASSWORD}\"\r\n").as_bytes())
        .await;
    let r = text(c.until_tagged("L").await);
    assert!(r.contains("L OK"), "{r}");
    c
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Sends one command and returns its whole answer, which must parse with
/// the independent imap-proto parser (it knows the CONDSTORE responses
/// these tests see; not `SEARCH … (MODSEQ n)`, which they do not use).
async fn command(c: &mut Client, tag: &str, line: &str) -> String {
    let answer = unparsed(c, tag, line).await;
    assert_parses(answer.as_bytes());
    answer
}

/// Like [`command`] without the imap-proto check (it has no grammar for
/// the non-extensible BODY item).
async fn unparsed(c: &mut Client, tag: &str, line: &str) -> String {
    c.send(format!("{tag} {line}\r\n").as_bytes()).await;
    text(c.until_tagged(tag).await)
}

/// The number after `key` (e.g. `HIGHESTMODSEQ ` or `MODSEQ (`) in `s`.
fn number_after(s: &str, key: &str) -> u64 {
    let start = s.find(key).unwrap_or_else(|| panic!("no {key:?} in {s}")) + key.len();
    s[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no number after {key:?} in {s}"))
}

#[tokio::test]
async fn condstore_across_two_connections() {
    let server = TestServer::start();
    let mut a = login(&server).await;
    let caps = command(&mut a, "c", "CAPABILITY").await;
    assert!(caps.contains(" CONDSTORE"), "{caps}");
    let enabled = command(&mut a, "e", "ENABLE CONDSTORE").await;
    assert!(enabled.starts_with("* ENABLED CONDSTORE\r\n"), "{enabled}");
    let select = command(&mut a, "s", "SELECT INBOX (CONDSTORE)").await;
    assert!(select.contains("s OK [READ-WRITE]"), "{select}");
    let highest = number_after(&select, "[HIGHESTMODSEQ ");
    assert!(highest >= 1, "{select}");
    let fetch = command(&mut a, "f", "FETCH 1 (UID MODSEQ)").await;
    let first = number_after(&fetch, "MODSEQ (");
    assert!(first <= highest, "{fetch}");

    // Another connection (CONDSTORE not enabled there) changes a flag.
    let mut b = login(&server).await;
    command(&mut b, "s", "SELECT INBOX").await;
    let store = command(&mut b, "t", "UID STORE 1 +FLAGS (\\Flagged)").await;
    assert!(!store.contains("MODSEQ"), "{store}");
    assert!(store.contains("t OK"), "{store}");

    // The first sees it through CHANGEDSINCE, with a higher MODSEQ.
    let changed = command(
        &mut a,
        "g",
        &format!("UID FETCH 1:* (FLAGS) (CHANGEDSINCE {highest})"),
    )
    .await;
    assert!(changed.contains("\\Flagged"), "{changed}");
    let raised = number_after(&changed, "MODSEQ (");
    assert!(raised > highest, "{changed}");
    let none = command(
        &mut a,
        "h",
        &format!("UID FETCH 1:* (FLAGS) (CHANGEDSINCE {raised})"),
    )
    .await;
    assert_eq!(none, "h OK FETCH completed\r\n");

    // A STORE conditional on the stale value is refused with [MODIFIED].
    let stale = command(
        &mut a,
        "i",
        &format!("UID STORE 1 (UNCHANGEDSINCE {highest}) +FLAGS (\\Seen)"),
    )
    .await;
    assert!(
        stale.ends_with("i OK [MODIFIED 1] Conditional STORE failed\r\n"),
        "{stale}"
    );
    assert!(!stale.contains("FETCH"), "{stale}");
    // On the current value it goes through and reports the new MODSEQ.
    let fresh = command(
        &mut a,
        "j",
        &format!("UID STORE 1 (UNCHANGEDSINCE {raised}) +FLAGS (\\Seen)"),
    )
    .await;
    assert!(fresh.contains("\\Seen"), "{fresh}");
    assert!(number_after(&fresh, "MODSEQ (") > raised, "{fresh}");
    assert!(fresh.ends_with("j OK STORE completed\r\n"), "{fresh}");

    // The other connection hears of it at its next NOOP, without MODSEQ.
    let noop = command(&mut b, "n", "NOOP").await;
    assert!(
        noop.contains("\\Seen") && !noop.contains("MODSEQ"),
        "{noop}"
    );
    let status = command(&mut b, "st", "STATUS INBOX (HIGHESTMODSEQ)").await;
    assert!(number_after(&status, "HIGHESTMODSEQ ") > raised, "{status}");
}

#[tokio::test]
async fn condstore_modseqs_survive_a_restart() {
    let mut server = TestServer::start();
    let (highest, modseq) = {
        let mut c = login(&server).await;
        command(&mut c, "s", "SELECT INBOX").await;
        command(&mut c, "t", "STORE 1 +FLAGS.SILENT (\\Answered)").await;
        let fetch = command(&mut c, "f", "FETCH 1 (MODSEQ)").await;
        let modseq = number_after(&fetch, "MODSEQ (");
        let status = command(&mut c, "st", "STATUS INBOX (HIGHESTMODSEQ)").await;
        let highest = number_after(&status, "HIGHESTMODSEQ ");
        assert!(highest >= modseq, "{status} {fetch}");
        command(&mut c, "z", "LOGOUT").await;
        (highest, modseq)
    };
    assert!(server.terminate().success(), "log: {}", server.log());
    // Same configuration, database and mail root: a new server process.
    let restarted = TestServer::spawn(
        tempfile::tempdir().unwrap(),
        server.config.clone(),
        server.ca.clone(),
        &["serve", "--config"],
    );
    let mut c = login(&restarted).await;
    let select = command(&mut c, "s", "EXAMINE INBOX (CONDSTORE)").await;
    assert_eq!(
        number_after(&select, "[HIGHESTMODSEQ "),
        highest,
        "{select}"
    );
    let fetch = command(&mut c, "f", "FETCH 1 (FLAGS MODSEQ)").await;
    assert!(fetch.contains("\\Answered"), "{fetch}");
    assert_eq!(number_after(&fetch, "MODSEQ ("), modseq, "{fetch}");
    assert_eq!(
        command(
            &mut c,
            "g",
            &format!("UID FETCH 1:* (FLAGS) (CHANGEDSINCE {highest})")
        )
        .await,
        "g OK FETCH completed\r\n"
    );
    command(&mut c, "s2", "SELECT INBOX").await;
    let store = command(
        &mut c,
        "h",
        &format!("STORE 1 (UNCHANGEDSINCE {modseq}) +FLAGS (\\Flagged)"),
    )
    .await;
    assert!(store.ends_with("h OK STORE completed\r\n"), "{store}");
    assert!(number_after(&store, "MODSEQ (") > highest, "{store}");
}

#[tokio::test]
async fn envelope_and_bodystructure_are_identical_from_the_cache() {
    let mut server = TestServer::start();
    // imap-proto 0.17 has no grammar for the BODY (non-extensible) item:
    // the ENVELOPE / BODYSTRUCTURE answer alone is parsed by it.
    let fetch = "UID FETCH 1:* (UID ENVELOPE BODYSTRUCTURE BODY)";
    let first = {
        let mut c = login(&server).await;
        command(&mut c, "s", "EXAMINE INBOX").await;
        let first = unparsed(&mut c, "f", fetch).await;
        command(&mut c, "p", "UID FETCH 1:* (UID ENVELOPE BODYSTRUCTURE)").await;
        assert!(first.contains(" BODY (\"text\" \"plain\""), "{first}");
        assert!(first.contains("ENVELOPE (\"Fri, 27 Nov 2026"), "{first}");
        assert!(
            first.contains("BODYSTRUCTURE (\"text\" \"plain\" (\"charset\" \"utf-8\")"),
            "{first}"
        );
        // Served from the cache the second time: the same bytes.
        assert_eq!(unparsed(&mut c, "f", fetch).await, first);
        command(&mut c, "z", "LOGOUT").await;
        first
    };
    assert!(server.terminate().success(), "log: {}", server.log());
    let restarted = TestServer::spawn(
        tempfile::tempdir().unwrap(),
        server.config.clone(),
        server.ca.clone(),
        &["serve", "--config"],
    );
    let mut c = login(&restarted).await;
    command(&mut c, "s", "EXAMINE INBOX").await;
    assert_eq!(unparsed(&mut c, "f", fetch).await, first);
}
