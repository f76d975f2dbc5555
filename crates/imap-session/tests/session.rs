//! Session tests over the in-memory store and the static authenticator:
//! byte-exact transcripts of the thin slice (what curl and Python imaplib
//! send), plus state gating, limits, flags, IDLE and the other commands.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use account_auth::testing::StaticAuthenticator;
use imap_session::{ConnectionInfo, ImapConfig, ImapSession, Next};
use mail_store::memory::MemoryStore;
use mail_store::{Flag, Flags};

type Session = ImapSession<MemoryStore, StaticAuthenticator>;

const USER: &str = "alice@example.org";
const MSG1: &[u8] =
    b"From: bob@example.org\r\nTo: alice@example.org\r\nSubject: Hello\r\n\r\nHi Alice!\r\n";
const MSG2: &[u8] = b"From: carol@example.org\r\nSubject: Second\r\n\r\nBody two\r\nwith \"quotes\" and {braces}\r\n";

const PRE_CAPS: &str = "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE AUTH=PLAIN AUTH=LOGIN";
const POST_CAPS: &str = "IMAP4rev1 LITERAL+ ID ENABLE IDLE NAMESPACE UNSELECT CHILDREN UIDPLUS MOVE ESEARCH CONDSTORE LIST-EXTENDED LIST-STATUS SPECIAL-USE STATUS=SIZE MULTIAPPEND QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE COMPRESS=DEFLATE APPENDLIMIT=52428800";

fn setup() -> (MemoryStore, Arc<StaticAuthenticator>, Session) {
    setup_with(ImapConfig::default())
}

fn setup_with(config: ImapConfig) -> (MemoryStore, Arc<StaticAuthenticator>, Session) {
    let store = MemoryStore::new();
    let auth = Arc::new(StaticAuthenticator::new().with_user(USER, "secret"));
    let session = new_session(&store, &auth, config);
    (store, auth, session)
}

fn new_session(
    store: &MemoryStore,
    auth: &Arc<StaticAuthenticator>,
    config: ImapConfig,
) -> Session {
    let conn = ConnectionInfo {
        peer: "192.0.2.1:50000".parse().unwrap(),
        session_id: 7,
        tls: "TLSv1.3".into(),
    };
    ImapSession::new(
        Arc::new(store.clone()),
        auth.clone(),
        Arc::new(config),
        conn,
    )
}

fn deliver(store: &MemoryStore, bytes: &[u8], flags: &[Flag]) {
    store
        .deliver(
            USER,
            "INBOX",
            bytes,
            flags.iter().cloned().collect::<Flags>(),
        )
        .unwrap();
}

/// Feeds `input` and runs the session until it needs input or closes.
async fn send(session: &mut Session, input: &str) -> String {
    String::from_utf8(send_bytes(session, input.as_bytes()).await.0).unwrap()
}

async fn send_bytes(session: &mut Session, input: &[u8]) -> (Vec<u8>, Next) {
    session.enqueue_input(input);
    let mut out = Vec::new();
    loop {
        match session.process(&mut out).await {
            Next::Continue => continue,
            next => return (out, next),
        }
    }
}

async fn logged_in() -> (MemoryStore, Arc<StaticAuthenticator>, Session) {
    let (store, auth, mut s) = setup();
    let out = send(&mut s, "L LOGIN alice@example.org secret\r\n").await;
    assert!(out.starts_with("L OK"), "{out}");
    (store, auth, s)
}

#[tokio::test]
async fn greeting_and_pre_login_capability() {
    let (_, _, mut s) = setup();
    let mut out = Vec::new();
    s.greeting(&mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!("* OK [CAPABILITY {PRE_CAPS}] Coffre IMAPS ready.\r\n")
    );
    assert_eq!(
        send(&mut s, "a CAPABILITY\r\n").await,
        format!("* CAPABILITY {PRE_CAPS}\r\na OK Capability completed\r\n")
    );
    assert_eq!(s.idle_timeout().as_secs(), 60);
    assert_eq!(s.user(), None);
}

/// The exchange curl has for `imaps://host/INBOX;UID=1` with AUTH=PLAIN and SASL-IR.
#[tokio::test]
async fn curl_transcript() {
    let (store, _, mut s) = setup();
    deliver(&store, MSG1, &[]);
    assert_eq!(
        send(&mut s, "A001 CAPABILITY\r\n").await,
        format!("* CAPABILITY {PRE_CAPS}\r\nA001 OK Capability completed\r\n")
    );
    // base64("\0alice@example.org\0secret")
    assert_eq!(
        send(
            &mut s,
            "A002 AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHNlY3JldA==\r\n"
        )
        .await,
        format!("A002 OK [CAPABILITY {POST_CAPS}] Logged in\r\n")
    );
    assert_eq!(s.user(), Some(USER));
    assert_eq!(s.idle_timeout().as_secs(), 1800);
    assert_eq!(
        send(&mut s, "A003 SELECT INBOX\r\n").await,
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n\
* 1 EXISTS\r\n\
* 1 RECENT\r\n\
* OK [UNSEEN 1] First unseen\r\n\
* OK [UIDVALIDITY 1000001] UIDs valid\r\n\
* OK [UIDNEXT 2] Predicted next UID\r\n\
* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Limited\r\n\
* OK [HIGHESTMODSEQ 2] Highest\r\n\
A003 OK [READ-WRITE] SELECT completed\r\n"
    );
    let out = send(&mut s, "A004 UID FETCH 1 BODY[]\r\n").await;
    let expected = format!(
        "* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent) BODY[] {{{}}}\r\n{})\r\nA004 OK FETCH completed\r\n",
        MSG1.len(),
        String::from_utf8_lossy(MSG1)
    );
    assert_eq!(out, expected);
    assert_eq!(
        send(&mut s, "A005 LOGOUT\r\n").await,
        "* BYE Logging out\r\nA005 OK Logout completed\r\n"
    );
    let (_, next) = send_bytes(&mut s, b"").await;
    assert_eq!(next, Next::Close);
}

/// What Python imaplib sends: LOGIN with quoted strings, SELECT, FETCH by sequence number.
#[tokio::test]
async fn imaplib_transcript() {
    let (store, _, mut s) = setup();
    deliver(&store, MSG1, &[Flag::Seen]);
    deliver(&store, MSG2, &[]);
    assert_eq!(
        send(&mut s, "JDHB1 LOGIN \"alice@example.org\" \"secret\"\r\n").await,
        format!("JDHB1 OK [CAPABILITY {POST_CAPS}] Logged in\r\n")
    );
    let out = send(&mut s, "JDHB2 EXAMINE INBOX\r\n").await;
    assert!(
        out.contains("* 2 EXISTS\r\n* 2 RECENT\r\n* OK [UNSEEN 2] First unseen\r\n"),
        "{out}"
    );
    assert!(
        out.contains("* OK [PERMANENTFLAGS ()] Limited\r\n"),
        "{out}"
    );
    assert!(
        out.ends_with("JDHB2 OK [READ-ONLY] EXAMINE completed\r\n"),
        "{out}"
    );
    // Read-only: BODY[] does not set \Seen.
    let out = send(&mut s, "JDHB3 FETCH 2 (FLAGS RFC822.SIZE BODY[])\r\n").await;
    let expected = format!(
        "* 2 FETCH (FLAGS (\\Recent) RFC822.SIZE {} BODY[] {{{}}}\r\n{})\r\nJDHB3 OK FETCH completed\r\n",
        MSG2.len(),
        MSG2.len(),
        String::from_utf8_lossy(MSG2)
    );
    assert_eq!(out, expected);
    let out = send(&mut s, "JDHB4 FETCH 1:* (UID FLAGS)\r\n").await;
    assert_eq!(
        out,
        "* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent))\r\n* 2 FETCH (UID 2 FLAGS (\\Recent))\r\nJDHB4 OK FETCH completed\r\n"
    );
    assert_eq!(
        send(&mut s, "JDHB5 CLOSE\r\n").await,
        "JDHB5 OK CLOSE completed\r\n"
    );
    assert_eq!(
        send(&mut s, "JDHB6 LOGOUT\r\n").await,
        "* BYE Logging out\r\nJDHB6 OK Logout completed\r\n"
    );
}

#[tokio::test]
async fn authenticate_plain_with_continuation_and_cancel() {
    let (_, auth, mut s) = setup();
    assert_eq!(send(&mut s, "a AUTHENTICATE PLAIN\r\n").await, "+ \r\n");
    assert_eq!(
        send(&mut s, "*\r\n").await,
        "a BAD Authentication cancelled\r\n"
    );
    assert_eq!(send(&mut s, "b AUTHENTICATE PLAIN\r\n").await, "+ \r\n");
    assert_eq!(
        send(&mut s, "!!notbase64\r\n").await,
        "b BAD Invalid base64\r\n"
    );
    assert_eq!(send(&mut s, "c AUTHENTICATE PLAIN\r\n").await, "+ \r\n");
    assert_eq!(
        send(&mut s, "AGFsaWNlQGV4YW1wbGUub3JnAHNlY3JldA==\r\n").await,
        format!("c OK [CAPABILITY {POST_CAPS}] Logged in\r\n")
    );
    assert_eq!(auth.attempts().len(), 1);
}

#[tokio::test]
async fn authenticate_login_mechanism() {
    let (_, _, mut s) = setup();
    assert_eq!(
        send(&mut s, "a AUTHENTICATE LOGIN\r\n").await,
        "+ VXNlcm5hbWU6\r\n"
    );
    // base64("alice@example.org")
    assert_eq!(
        send(&mut s, "YWxpY2VAZXhhbXBsZS5vcmc=\r\n").await,
        "+ UGFzc3dvcmQ6\r\n"
    );
    assert_eq!(
        send(&mut s, "c2VjcmV0\r\n").await,
        format!("a OK [CAPABILITY {POST_CAPS}] Logged in\r\n")
    );
    assert_eq!(s.user(), Some(USER));
}

#[tokio::test]
async fn failed_logins_close_after_limit() {
    let (_, auth, mut s) = setup();
    assert_eq!(
        send(&mut s, "a LOGIN alice@example.org wrong\r\n").await,
        "a NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
    );
    assert_eq!(
        send(&mut s, "b LOGIN nobody@example.org secret\r\n").await,
        "b NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
    );
    // A malformed SASL message counts too.
    let (out, next) = send_bytes(&mut s, b"c AUTHENTICATE PLAIN =\r\n").await;
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "c NO [AUTHENTICATIONFAILED] Authentication failed\r\n* BYE Too many authentication failures\r\n"
    );
    assert_eq!(next, Next::Close);
    assert_eq!(auth.attempts().len(), 2);
}

#[tokio::test]
async fn unavailable_authenticator_is_not_a_failure() {
    let store = MemoryStore::new();
    let auth = Arc::new(
        StaticAuthenticator::new()
            .with_user(USER, "secret")
            .unavailable(),
    );
    let mut s = new_session(&store, &auth, ImapConfig::default());
    for _ in 0..4 {
        assert_eq!(
            send(&mut s, "a LOGIN alice@example.org secret\r\n").await,
            "a NO [UNAVAILABLE] Authentication temporarily unavailable\r\n"
        );
    }
}

#[tokio::test]
async fn gating_by_state() {
    let (_, _, mut s) = setup();
    assert_eq!(
        send(&mut s, "a SELECT INBOX\r\n").await,
        "a BAD Log in first\r\n"
    );
    assert_eq!(
        send(&mut s, "b FETCH 1 UID\r\n").await,
        "b BAD Log in first\r\n"
    );
    assert_eq!(send(&mut s, "c NOOP\r\n").await, "c OK Completed\r\n");
    send(&mut s, "d LOGIN alice@example.org secret\r\n").await;
    assert_eq!(
        send(&mut s, "e FETCH 1 UID\r\n").await,
        "e BAD Select a mailbox first\r\n"
    );
    assert_eq!(
        send(&mut s, "f LOGIN alice@example.org secret\r\n").await,
        "f BAD Already logged in\r\n"
    );
    assert_eq!(
        send(&mut s, "g CLOSE\r\n").await,
        "g BAD Select a mailbox first\r\n"
    );
}

#[tokio::test]
async fn malformed_commands_get_bad_and_session_continues() {
    let (_, _, mut s) = setup();
    assert_eq!(
        send(&mut s, "a FROB\r\n").await,
        "a BAD Unknown command\r\n"
    );
    assert_eq!(
        send(&mut s, "\r\n").await,
        "* BAD Missing or invalid tag\r\n"
    );
    assert_eq!(
        send(&mut s, "b LOGIN \"a\0b\" c\r\n").await,
        "b BAD NUL octet in command\r\n"
    );
    assert_eq!(
        send(&mut s, "c LOGIN onlyone\r\n").await,
        "c BAD Invalid LOGIN arguments\r\n"
    );
    assert_eq!(send(&mut s, "d NOOP\r\n").await, "d OK Completed\r\n");
}

#[tokio::test]
async fn login_with_literals_sends_continuations() {
    let (_, _, mut s) = setup();
    assert_eq!(
        send(&mut s, "a LOGIN {17}\r\n").await,
        "+ Ready for literal data\r\n"
    );
    assert_eq!(
        send(&mut s, "alice@example.org {6}\r\n").await,
        "+ Ready for literal data\r\n"
    );
    assert_eq!(
        send(&mut s, "secret\r\n").await,
        format!("a OK [CAPABILITY {POST_CAPS}] Logged in\r\n")
    );
}

#[tokio::test]
async fn pre_login_limits() {
    let (_, _, mut s) = setup();
    let long = format!("a LOGIN {} x\r\nb NOOP\r\n", "u".repeat(9000));
    assert_eq!(
        send(&mut s, &long).await,
        "a BAD Command line too long\r\nb OK Completed\r\n"
    );
    // APPEND before login is refused at once, before any +.
    assert_eq!(
        send(&mut s, "c APPEND INBOX {10}\r\n").await,
        "c NO [TOOBIG] Message too large\r\n"
    );
    // A synchronising literal over the pre-login limit: BAD, no +.
    assert_eq!(
        send(&mut s, "d LOGIN {9000}\r\n").await,
        "d BAD Literal too large\r\n"
    );
    // An over-limit LITERAL+ is fatal.
    let (out, next) = send_bytes(&mut s, b"e LOGIN {9000+}\r\n").await;
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "e BAD Literal too large\r\n* BYE Literal refused, closing connection\r\n"
    );
    assert_eq!(next, Next::Close);
}

#[tokio::test]
async fn post_login_line_limit_is_larger() {
    let (_, _, mut s) = logged_in().await;
    let ok = format!("a LIST \"\" \"{}\"\r\n", "x".repeat(1000));
    assert_eq!(send(&mut s, &ok).await, "a OK LIST completed\r\n");
    let config = ImapConfig {
        line_limit_post_auth: 100,
        ..ImapConfig::default()
    };
    let (_, _, mut s) = setup_with(config);
    send(&mut s, "L LOGIN alice@example.org secret\r\n").await;
    let long = format!("a LIST \"\" \"{}\"\r\n", "x".repeat(200));
    assert_eq!(send(&mut s, &long).await, "a BAD Command line too long\r\n");
}

#[tokio::test]
async fn append_limit_and_append() {
    let config = ImapConfig {
        max_literal: 100,
        ..ImapConfig::default()
    };
    let (store, _, mut s) = setup_with(config);
    send(&mut s, "L LOGIN alice@example.org secret\r\n").await;
    assert_eq!(
        send(&mut s, "a APPEND INBOX {101}\r\n").await,
        "a NO [TOOBIG] Message too large\r\n"
    );
    assert_eq!(
        send(&mut s, "b APPEND INBOX (\\Seen) {14}\r\n").await,
        "+ Ready for literal data\r\n"
    );
    assert_eq!(
        send(&mut s, "Subject: x\r\n\r\n\r\n").await,
        "b OK [APPENDUID 1000001 1] APPEND completed\r\n"
    );
    assert_eq!(
        send(&mut s, "c APPEND Nope {3+}\r\nabc\r\n").await,
        "c NO [TRYCREATE] No such mailbox\r\n"
    );
    assert_eq!(store.message_count(USER, "INBOX"), 1);
    let out = send(
        &mut s,
        "d SELECT INBOX\r\ne FETCH 1 (FLAGS INTERNALDATE)\r\n",
    )
    .await;
    assert!(
        out.contains("* 1 FETCH (FLAGS (\\Seen \\Recent) INTERNALDATE \""),
        "{out}"
    );
    let out = send(
        &mut s,
        "f APPEND INBOX \"01-Jan-2024 10:00:00 +0100\" {3+}\r\nabc\r\n",
    )
    .await;
    assert_eq!(
        out,
        "* 2 EXISTS\r\n* 2 RECENT\r\nf OK [APPENDUID 1000001 2] APPEND completed\r\n"
    );
    assert_eq!(
        send(&mut s, "g FETCH 2 INTERNALDATE\r\n").await,
        "* 2 FETCH (INTERNALDATE \" 1-Jan-2024 09:00:00 +0000\")\r\ng OK FETCH completed\r\n"
    );
}

#[tokio::test]
async fn fetch_sets_seen_unless_peek_and_partial() {
    let (store, _, mut s) = logged_in().await;
    deliver(&store, MSG1, &[]);
    deliver(&store, MSG2, &[]);
    send(&mut s, "a SELECT INBOX\r\n").await;
    assert_eq!(
        send(&mut s, "b FETCH 1 BODY.PEEK[HEADER.FIELDS (Subject)]\r\n").await,
        "* 1 FETCH (BODY[HEADER.FIELDS (Subject)] {18}\r\nSubject: Hello\r\n\r\n)\r\nb OK FETCH completed\r\n"
    );
    assert_eq!(
        send(&mut s, "c FETCH 1 FLAGS\r\n").await,
        "* 1 FETCH (FLAGS (\\Recent))\r\nc OK FETCH completed\r\n"
    );
    assert_eq!(
        send(&mut s, "d FETCH 1 BODY[]<0.4>\r\n").await,
        "* 1 FETCH (FLAGS (\\Seen \\Recent) BODY[]<0> {4}\r\nFrom)\r\nd OK FETCH completed\r\n"
    );
    assert_eq!(
        send(&mut s, "e FETCH 2 (BODY[TEXT]<5.1000>)\r\n").await,
        "* 2 FETCH (FLAGS (\\Seen \\Recent) BODY[TEXT]<5> {33}\r\ntwo\r\nwith \"quotes\" and {braces}\r\n)\r\ne OK FETCH completed\r\n"
    );
    assert_eq!(
        send(&mut s, "f FETCH 1 RFC822.SIZE\r\n").await,
        format!(
            "* 1 FETCH (RFC822.SIZE {})\r\nf OK FETCH completed\r\n",
            MSG1.len()
        )
    );
    assert_eq!(
        send(&mut s, "g FETCH 3 UID\r\n").await,
        "g BAD Invalid message sequence number\r\n"
    );
    assert_eq!(
        send(&mut s, "h UID FETCH 3:* UID\r\n").await,
        "* 2 FETCH (UID 2)\r\nh OK FETCH completed\r\n"
    );
    assert_eq!(
        send(&mut s, "i UID FETCH 5 UID\r\n").await,
        "i OK FETCH completed\r\n"
    );
    assert_eq!(
        send(&mut s, "j FETCH 2:1 UID\r\n").await,
        "* 1 FETCH (UID 1)\r\n* 2 FETCH (UID 2)\r\nj OK FETCH completed\r\n"
    );
    assert_eq!(
        send(
            &mut s,
            "k FETCH 1 (ENVELOPE BODY BODYSTRUCTURE BODY.PEEK[1.MIME])\r\n"
        )
        .await,
        concat!(
            "* 1 FETCH (ENVELOPE (NIL \"Hello\" ((NIL NIL \"bob\" \"example.org\")) ",
            "((NIL NIL \"bob\" \"example.org\")) ((NIL NIL \"bob\" \"example.org\")) ",
            "((NIL NIL \"alice\" \"example.org\")) NIL NIL NIL NIL) ",
            "BODY (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 11 1) ",
            "BODYSTRUCTURE (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 11 1 NIL NIL NIL NIL) ",
            "BODY[1.MIME] {2}\r\n\r\n)\r\n",
            "k OK FETCH completed\r\n"
        )
    );
}

#[tokio::test]
async fn fetch_in_empty_mailbox() {
    let (_, _, mut s) = logged_in().await;
    send(&mut s, "a SELECT INBOX\r\n").await;
    assert_eq!(
        send(&mut s, "b FETCH 1:* FLAGS\r\n").await,
        "b BAD Invalid message sequence number\r\n"
    );
    assert_eq!(
        send(&mut s, "c FETCH * FLAGS\r\n").await,
        "c OK FETCH completed\r\n"
    );
    assert_eq!(
        send(&mut s, "d UID FETCH 1:* FLAGS\r\n").await,
        "d OK FETCH completed\r\n"
    );
}

#[tokio::test]
async fn store_and_expunge() {
    let (store, _, mut s) = logged_in().await;
    for _ in 0..3 {
        deliver(&store, MSG1, &[]);
    }
    send(&mut s, "a SELECT INBOX\r\n").await;
    assert_eq!(
        send(&mut s, "b STORE 1:2 +FLAGS (\\Deleted)\r\n").await,
        "* 1 FETCH (FLAGS (\\Deleted \\Recent))\r\n* 2 FETCH (FLAGS (\\Deleted \\Recent))\r\nb OK STORE completed\r\n"
    );
    assert_eq!(
        send(&mut s, "c UID STORE 3 FLAGS.SILENT ($Junk \\Recent)\r\n").await,
        "c OK STORE completed\r\n"
    );
    assert_eq!(
        send(&mut s, "d STORE 1 FLAGS (\\Bogus)\r\n").await,
        "d BAD Unknown system flag\r\n"
    );
    assert_eq!(
        send(&mut s, "e UID EXPUNGE 2\r\n").await,
        "* 2 EXPUNGE\r\ne OK EXPUNGE completed\r\n"
    );
    assert_eq!(
        send(&mut s, "f EXPUNGE\r\n").await,
        "* 1 EXPUNGE\r\nf OK EXPUNGE completed\r\n"
    );
    assert_eq!(
        send(&mut s, "g FETCH 1 (UID FLAGS)\r\n").await,
        "* 1 FETCH (UID 3 FLAGS ($Junk \\Recent))\r\ng OK FETCH completed\r\n"
    );
    assert_eq!(store.message_count(USER, "INBOX"), 1);
}

#[tokio::test]
async fn examine_refuses_changes() {
    let (store, _, mut s) = logged_in().await;
    deliver(&store, MSG1, &[]);
    send(&mut s, "a EXAMINE INBOX\r\n").await;
    assert_eq!(
        send(&mut s, "b STORE 1 +FLAGS (\\Seen)\r\n").await,
        "b NO [CANNOT] Mailbox is read-only\r\n"
    );
    assert_eq!(
        send(&mut s, "c EXPUNGE\r\n").await,
        "c NO [CANNOT] Mailbox is read-only\r\n"
    );
}

#[tokio::test]
async fn other_sessions_changes_only_where_allowed() {
    let (store, auth, mut s) = logged_in().await;
    deliver(&store, MSG1, &[]);
    deliver(&store, MSG2, &[]);
    send(&mut s, "a SELECT INBOX\r\n").await;
    let mut other = new_session(&store, &auth, ImapConfig::default());
    send(
        &mut other,
        "L LOGIN alice@example.org secret\r\nS SELECT INBOX\r\n",
    )
    .await;
    let out = send(&mut other, "x STORE 1 +FLAGS (\\Deleted)\r\ny EXPUNGE\r\n").await;
    assert!(out.contains("* 1 EXPUNGE\r\n"), "{out}");
    deliver(&store, MSG1, &[]);
    // FETCH by sequence number must not see the EXPUNGE: numbering stays.
    assert_eq!(
        send(&mut s, "b FETCH 1:2 UID\r\n").await,
        "* 1 FETCH (UID 1)\r\n* 2 FETCH (UID 2)\r\nb OK FETCH completed\r\n"
    );
    // NOOP may: expunge, then the new message.
    assert_eq!(
        send(&mut s, "c NOOP\r\n").await,
        "* 1 EXPUNGE\r\n* 2 EXISTS\r\n* 2 RECENT\r\nc OK Completed\r\n"
    );
    // Flag changes by the other session arrive as FETCH FLAGS.
    send(&mut other, "z STORE 1 +FLAGS (\\Flagged)\r\n").await;
    assert_eq!(
        send(&mut s, "d UID SEARCH FLAGGED\r\n").await,
        "* 1 FETCH (UID 2 FLAGS (\\Flagged \\Recent))\r\n* SEARCH 2\r\nd OK SEARCH completed\r\n"
    );
}

#[tokio::test]
async fn idle_push_and_done() {
    let (store, _, mut s) = logged_in().await;
    send(&mut s, "a SELECT INBOX\r\n").await;
    assert!(s.idle_watcher().is_none(), "no watcher outside IDLE");
    assert_eq!(send(&mut s, "b IDLE\r\n").await, "+ idling\r\n");
    assert!(s.idling());
    // The watcher resolves on delivery, so the driver can wake at once.
    let mut watcher = s.idle_watcher().expect("watcher while idling");
    deliver(&store, MSG1, &[]);
    tokio::time::timeout(std::time::Duration::from_secs(5), watcher.changed())
        .await
        .expect("watcher resolves after a delivery");
    let mut out = Vec::new();
    s.wakeup(&mut out).await;
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "* 1 EXISTS\r\n* 1 RECENT\r\n"
    );
    let mut out = Vec::new();
    s.wakeup(&mut out).await;
    assert!(out.is_empty());
    assert_eq!(send(&mut s, "DONE\r\n").await, "b OK IDLE terminated\r\n");
    assert!(!s.idling());
    assert_eq!(send(&mut s, "c IDLE\r\n").await, "+ idling\r\n");
    assert_eq!(send(&mut s, "NOPE\r\n").await, "c BAD Expected DONE\r\n");
    assert_eq!(send(&mut s, "d NOOP\r\n").await, "d OK Completed\r\n");
}

#[tokio::test]
async fn list_create_status() {
    let (store, _, mut s) = logged_in().await;
    deliver(&store, MSG1, &[]);
    assert_eq!(
        send(&mut s, "a CREATE Work.Projects\r\n").await,
        "a OK CREATE completed\r\n"
    );
    assert_eq!(
        send(&mut s, "b CREATE \"Caf&AOk-\"\r\n").await,
        "b OK CREATE completed\r\n"
    );
    assert_eq!(
        send(&mut s, "c CREATE inbox\r\n").await,
        "c NO [ALREADYEXISTS] INBOX always exists\r\n"
    );
    assert_eq!(
        send(&mut s, "c2 CREATE Work\r\n").await,
        "c2 NO [ALREADYEXISTS] Mailbox already exists\r\n"
    );
    assert_eq!(
        send(&mut s, "c3 CREATE \"&AC4ALgAv-\"\r\n").await,
        "c3 NO [CANNOT] Mailbox name is not valid modified UTF-7\r\n"
    );
    assert_eq!(
        send(&mut s, "d LIST \"\" *\r\n").await,
        "* LIST (\\HasNoChildren) \".\" INBOX\r\n\
* LIST (\\HasNoChildren) \".\" Caf&AOk-\r\n\
* LIST (\\HasChildren) \".\" Work\r\n\
* LIST (\\HasNoChildren) \".\" Work.Projects\r\n\
d OK LIST completed\r\n"
    );
    assert_eq!(
        send(&mut s, "e LIST \"\" %\r\n").await,
        "* LIST (\\HasNoChildren) \".\" INBOX\r\n\
* LIST (\\HasNoChildren) \".\" Caf&AOk-\r\n\
* LIST (\\HasChildren) \".\" Work\r\n\
e OK LIST completed\r\n"
    );
    assert_eq!(
        send(&mut s, "f LIST \"\" \"\"\r\n").await,
        "* LIST (\\Noselect) \".\" \"\"\r\nf OK LIST completed\r\n"
    );
    assert_eq!(
        send(&mut s, "g LIST Work. %\r\n").await,
        "* LIST (\\HasNoChildren) \".\" Work.Projects\r\ng OK LIST completed\r\n"
    );
    assert_eq!(
        send(&mut s, "h LSUB \"\" *\r\n").await,
        "* LSUB (\\HasNoChildren) \".\" INBOX\r\nh OK LSUB completed\r\n"
    );
    assert_eq!(
        send(
            &mut s,
            "i STATUS inbox (MESSAGES UNSEEN UIDNEXT UIDVALIDITY RECENT)\r\n"
        )
        .await,
        "* STATUS INBOX (MESSAGES 1 UNSEEN 1 UIDNEXT 2 UIDVALIDITY 1000001 RECENT 1)\r\ni OK STATUS completed\r\n"
    );
    assert_eq!(
        send(&mut s, "j STATUS Nope (MESSAGES)\r\n").await,
        "j NO [NONEXISTENT] No such mailbox or message\r\n"
    );
    assert_eq!(
        send(&mut s, "k SELECT Nope\r\n").await,
        "k NO [NONEXISTENT] No such mailbox or message\r\n"
    );
}

#[tokio::test]
async fn copy_and_move() {
    let (store, _, mut s) = logged_in().await;
    deliver(&store, MSG1, &[Flag::Flagged]);
    deliver(&store, MSG2, &[]);
    send(&mut s, "a CREATE Archive\r\nb SELECT INBOX\r\n").await;
    assert_eq!(
        send(&mut s, "c COPY 1 Nope\r\n").await,
        "c NO [TRYCREATE] No such mailbox\r\n"
    );
    assert_eq!(
        send(&mut s, "d COPY 1:2 Archive\r\n").await,
        "d OK [COPYUID 1000002 1:2 1:2] COPY completed\r\n"
    );
    assert_eq!(
        send(&mut s, "e UID MOVE 2 Archive\r\n").await,
        "* OK [COPYUID 1000002 2 3] Moved UIDs\r\n* 2 EXPUNGE\r\ne OK MOVE completed\r\n"
    );
    assert_eq!(store.message_count(USER, "Archive"), 3);
    assert_eq!(store.message_count(USER, "INBOX"), 1);
    let out = send(&mut s, "f SELECT Archive\r\ng FETCH 1 FLAGS\r\n").await;
    assert!(
        out.contains("* 1 FETCH (FLAGS (\\Flagged \\Recent))"),
        "{out}"
    );
}

#[tokio::test]
async fn search_basics() {
    let (store, _, mut s) = logged_in().await;
    deliver(&store, MSG1, &[Flag::Seen]);
    deliver(&store, MSG2, &[]);
    deliver(&store, MSG1, &[Flag::Deleted]);
    send(&mut s, "a SELECT INBOX\r\n").await;
    assert_eq!(
        send(&mut s, "b SEARCH ALL\r\n").await,
        "* SEARCH 1 2 3\r\nb OK SEARCH completed\r\n"
    );
    assert_eq!(
        send(&mut s, "c SEARCH UNSEEN\r\n").await,
        "* SEARCH 2 3\r\nc OK SEARCH completed\r\n"
    );
    assert_eq!(
        send(&mut s, "d SEARCH SUBJECT hello\r\n").await,
        "* SEARCH 1 3\r\nd OK SEARCH completed\r\n"
    );
    assert_eq!(
        send(&mut s, "e UID SEARCH BODY quotes NOT DELETED\r\n").await,
        "* SEARCH 2\r\ne OK SEARCH completed\r\n"
    );
    assert_eq!(
        send(&mut s, "f SEARCH OR 1 3 UNDELETED\r\n").await,
        "* SEARCH 1\r\nf OK SEARCH completed\r\n"
    );
    assert_eq!(
        send(&mut s, "g SEARCH 2:* FROM carol\r\n").await,
        "* SEARCH 2\r\ng OK SEARCH completed\r\n"
    );
    assert_eq!(
        send(&mut s, "h SEARCH SINCE 1-Jan-2000 LARGER 10\r\n").await,
        "* SEARCH 1 2 3\r\nh OK SEARCH completed\r\n"
    );
    assert_eq!(
        send(&mut s, "i SEARCH CHARSET KOI8-R ALL\r\n").await,
        "i NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset\r\n"
    );
}

const ENCODED: &[u8] = b"From: =?utf-8?q?J=C3=B6rg?= <jorg@example.org>\r\n\
Subject: =?iso-8859-1?q?Caf=E9?= menu\r\n\
Date: Mon, 3 Mar 2025 23:30:00 -0800\r\n\
X-Tag: blue\r\n\
Content-Type: multipart/alternative; boundary=b\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
cr=E8me br=FBl=E9e\r\n\
--b\r\n\
Content-Type: text/html; charset=utf-8\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
PHA+U2VjcmV0IHdvcmQ6IHBpc3RhY2hpbzwvcD4=\r\n\
--b--\r\n";

#[tokio::test]
async fn search_decoded_text_dates_and_esearch() {
    let (store, _, mut s) = logged_in().await;
    deliver(&store, MSG1, &[Flag::Seen]);
    deliver(&store, ENCODED, &[]);
    deliver(&store, MSG2, &[Flag::Flagged]);
    send(&mut s, "a SELECT INBOX\r\n").await;
    let search = |q: &str| format!("s SEARCH CHARSET UTF-8 {q}\r\n");
    // Encoded words in header fields, QP/ISO-8859-1 and base64/UTF-8 bodies.
    for (query, hits) in [
        ("FROM \"J\u{f6}rg\"", "2"),
        ("SUBJECT \"caf\u{e9}\"", "2"),
        ("SUBJECT Caf=E9", "2"),
        ("BODY \"CR\u{c8}ME\"", "2"),
        ("BODY pistachio", "2"),
        ("TEXT \"J\u{f6}rg\"", "2"),
        ("TEXT alice", "1"),
        ("HEADER X-Tag \"\"", "2"),
        ("HEADER X-Tag green", ""),
        ("BODY nothing-like-this", ""),
        // The Date header's own day (3 March), not converted to UTC (4 March).
        ("SENTON 3-Mar-2025", "2"),
        ("SENTBEFORE 4-Mar-2025", "2"),
        ("SENTSINCE 4-Mar-2025", "1 3"),
        ("NOT SENTON 3-Mar-2025", "1 3"),
    ] {
        let expected = if hits.is_empty() {
            "* SEARCH\r\ns OK SEARCH completed\r\n".to_string()
        } else {
            format!("* SEARCH {hits}\r\ns OK SEARCH completed\r\n")
        };
        let mut input = search(query).into_bytes();
        // Non-ASCII search strings go as literals, as clients send them.
        if !query.is_ascii() {
            let (key, value) = query.split_once(' ').unwrap();
            let value = value.trim_matches('"');
            input = format!(
                "s SEARCH CHARSET UTF-8 {key} {{{}+}}\r\n{value}\r\n",
                value.len()
            )
            .into_bytes();
        }
        assert_eq!(
            String::from_utf8(send_bytes(&mut s, &input).await.0).unwrap(),
            expected,
            "{query}"
        );
    }
    assert_eq!(
        send(&mut s, "e SEARCH RETURN (MIN MAX COUNT ALL) ALL\r\n").await,
        "* ESEARCH (TAG \"e\") MIN 1 MAX 3 COUNT 3 ALL 1:3\r\ne OK SEARCH completed\r\n"
    );
    assert_eq!(
        send(&mut s, "f UID SEARCH RETURN () FLAGGED\r\n").await,
        "* ESEARCH (TAG \"f\") UID ALL 3\r\nf OK SEARCH completed\r\n"
    );
    assert_eq!(
        send(&mut s, "g SEARCH RETURN (COUNT MIN) DELETED\r\n").await,
        "* ESEARCH (TAG \"g\") COUNT 0\r\ng OK SEARCH completed\r\n"
    );
}

#[tokio::test]
async fn misc_commands() {
    let (_, _, mut s) = logged_in().await;
    assert_eq!(
        send(&mut s, "a CAPABILITY\r\n").await,
        format!("* CAPABILITY {POST_CAPS}\r\na OK Capability completed\r\n")
    );
    assert_eq!(
        send(&mut s, "b ID (\"name\" \"curl\")\r\n").await,
        "* ID (\"name\" \"Coffre\")\r\nb OK ID completed\r\n"
    );
    assert_eq!(
        send(&mut s, "c ENABLE X-UNKNOWN condstore CONDSTORE\r\n").await,
        "* ENABLED CONDSTORE\r\nc OK ENABLE completed\r\n"
    );
    assert_eq!(
        send(&mut s, "d NAMESPACE\r\n").await,
        "* NAMESPACE ((\"\" \".\")) NIL NIL\r\nd OK NAMESPACE completed\r\n"
    );
    send(&mut s, "e SELECT INBOX\r\n").await;
    assert_eq!(
        send(&mut s, "f UNSELECT\r\n").await,
        "f OK UNSELECT completed\r\n"
    );
    assert_eq!(
        send(&mut s, "g FETCH 1 UID\r\n").await,
        "g BAD Select a mailbox first\r\n"
    );
}

#[tokio::test]
async fn close_expunges_deleted_silently() {
    let (store, _, mut s) = logged_in().await;
    deliver(&store, MSG1, &[Flag::Deleted]);
    deliver(&store, MSG2, &[]);
    send(&mut s, "a SELECT INBOX\r\n").await;
    assert_eq!(
        send(&mut s, "b CLOSE\r\n").await,
        "b OK CLOSE completed\r\n"
    );
    assert_eq!(store.message_count(USER, "INBOX"), 1);
}

#[tokio::test]
async fn shutdown_says_bye() {
    let (_, _, mut s) = logged_in().await;
    let mut out = Vec::new();
    s.shutdown(&mut out);
    assert_eq!(out, b"* BYE Server shutting down\r\n");
    assert_eq!(send_bytes(&mut s, b"a NOOP\r\n").await.1, Next::Close);
}

/// The same client script, fed in chunks of 1, 2, 4 … 512 bytes, gives the same output.
#[tokio::test]
async fn chunked_input_gives_identical_transcript() {
    let script: &[u8] = b"a LOGIN {17}\r\nalice@example.org secret\r\nb SELECT INBOX\r\nc UID FETCH 1:* (UID FLAGS BODY.PEEK[])\r\nd APPEND INBOX {5+}\r\nhello\r\ne NOOP\r\nf LOGOUT\r\n";
    let mut reference: Option<Vec<u8>> = None;
    let mut chunk = 1;
    while chunk <= 512 {
        let (store, _, mut s) = setup();
        deliver(&store, MSG1, &[]);
        let mut out = Vec::new();
        for piece in script.chunks(chunk) {
            out.extend(send_bytes(&mut s, piece).await.0);
        }
        match &reference {
            None => reference = Some(out),
            Some(r) => assert_eq!(&out, r, "chunk size {chunk}"),
        }
        chunk *= 2;
    }
    let reference = String::from_utf8(reference.unwrap()).unwrap();
    assert!(
        reference.ends_with("f OK Logout completed\r\n"),
        "{reference}"
    );
}

#[test]
fn process_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let (_, _, mut s) = setup();
    let mut out = Vec::new();
    let fut = s.process(&mut out);
    assert_send(&fut);
}

#[tokio::test]
async fn delete_rename_subscribe() {
    let (store, _, mut s) = logged_in().await;
    deliver(&store, MSG1, &[]);
    send(&mut s, "a CREATE Work.Old\r\nb CREATE Empty\r\n").await;
    assert_eq!(
        send(&mut s, "c DELETE INBOX\r\n").await,
        "c NO [CANNOT] INBOX cannot be deleted\r\n"
    );
    assert_eq!(
        send(&mut s, "d DELETE Nope\r\n").await,
        "d NO [NONEXISTENT] No such mailbox or message\r\n"
    );
    let out = send(&mut s, "e DELETE Work\r\n").await;
    assert!(out.starts_with("e NO [CANNOT]"), "{out}");
    assert_eq!(
        send(&mut s, "f DELETE Empty\r\n").await,
        "f OK DELETE completed\r\n"
    );
    assert_eq!(
        send(&mut s, "g RENAME Work Projects\r\n").await,
        "g OK RENAME completed\r\n"
    );
    assert_eq!(
        send(&mut s, "h LIST \"\" \"Projects*\"\r\n").await,
        "* LIST (\\HasChildren) \".\" Projects\r\n\
* LIST (\\HasNoChildren) \".\" Projects.Old\r\n\
h OK LIST completed\r\n"
    );
    assert_eq!(
        send(&mut s, "i RENAME Projects INBOX\r\n").await,
        "i NO [ALREADYEXISTS] INBOX always exists\r\n"
    );
    assert_eq!(
        send(&mut s, "j RENAME Projects.Old Projects\r\n").await,
        "j NO [ALREADYEXISTS] Mailbox already exists\r\n"
    );
    assert_eq!(
        send(&mut s, "k SUBSCRIBE Projects.Old\r\n").await,
        "k OK SUBSCRIBE completed\r\n"
    );
    assert_eq!(
        send(&mut s, "l LSUB \"\" \"Projects*\"\r\n").await,
        "* LSUB (\\HasNoChildren) \".\" Projects.Old\r\nl OK LSUB completed\r\n"
    );
    assert_eq!(
        send(
            &mut s,
            "m UNSUBSCRIBE Projects.Old\r\nn UNSUBSCRIBE Projects.Old\r\n"
        )
        .await,
        "m OK UNSUBSCRIBE completed\r\nn OK UNSUBSCRIBE completed\r\n"
    );
    assert_eq!(
        send(&mut s, "o LSUB \"\" \"Projects*\"\r\n").await,
        "o OK LSUB completed\r\n"
    );
    // §6.3.9: `%` stopping above a subscribed name returns the level as \Noselect.
    assert_eq!(
        send(&mut s, "o2 SUBSCRIBE Projects.Old\r\no3 LSUB \"\" %\r\n").await,
        "o2 OK SUBSCRIBE completed\r\n* LSUB (\\HasNoChildren) \".\" INBOX\r\n* LSUB (\\Noselect) \".\" Projects\r\no3 OK LSUB completed\r\n"
    );
    assert_eq!(
        send(&mut s, "o4 LSUB \"\" *\r\no5 UNSUBSCRIBE Projects.Old\r\n").await,
        "* LSUB (\\HasNoChildren) \".\" INBOX\r\n* LSUB (\\HasNoChildren) \".\" Projects.Old\r\no4 OK LSUB completed\r\no5 OK UNSUBSCRIBE completed\r\n"
    );
    assert_eq!(
        send(&mut s, "p SUBSCRIBE Nope\r\n").await,
        "p NO [NONEXISTENT] No such mailbox or message\r\n"
    );
    // RENAME INBOX moves its messages and leaves INBOX empty.
    assert_eq!(
        send(&mut s, "q RENAME INBOX Saved\r\n").await,
        "q OK RENAME completed\r\n"
    );
    assert_eq!(store.message_count(USER, "Saved"), 1);
    assert_eq!(store.message_count(USER, "INBOX"), 0);
    assert_eq!(
        send(&mut s, "r STATUS Saved (MESSAGES UNSEEN SIZE)\r\n").await,
        format!(
            "* STATUS Saved (MESSAGES 1 UNSEEN 1 SIZE {})\r\nr OK STATUS completed\r\n",
            MSG1.len()
        )
    );
}

const MULTIPART: &[u8] = b"From: a@example.org\r\n\
Subject: parts\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain\r\n\
\r\n\
first\r\n\
--b\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
Subject: inner\r\n\
\r\n\
inner body\r\n\
--b--\r\n";

#[tokio::test]
async fn fetch_multipart_parts() {
    let (store, _, mut s) = logged_in().await;
    deliver(&store, MULTIPART, &[]);
    send(&mut s, "a EXAMINE INBOX\r\n").await;
    assert_eq!(
        send(
            &mut s,
            "b FETCH 1 (BODY[1] BODY[2.HEADER] BODY[2.TEXT] BODY[2.1] BODY[1.MIME] BODY[3])\r\n"
        )
        .await,
        "* 1 FETCH (BODY[1] {5}\r\nfirst BODY[2.HEADER] {18}\r\nSubject: inner\r\n\r\n \
BODY[2.TEXT] {10}\r\ninner body BODY[2.1] {10}\r\ninner body \
BODY[1.MIME] {28}\r\nContent-Type: text/plain\r\n\r\n BODY[3] {0}\r\n)\r\n\
b OK FETCH completed\r\n"
    );
    let out = send(&mut s, "c FETCH 1 BODYSTRUCTURE\r\n").await;
    assert!(
        out.starts_with("* 1 FETCH (BODYSTRUCTURE ((\"text\" \"plain\" NIL NIL NIL \"7BIT\" 5 1 NIL NIL NIL NIL)(\"message\" \"rfc822\" NIL NIL NIL \"7BIT\" 28 (NIL \"inner\" NIL NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 10 1 NIL NIL NIL NIL) 3 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"b\") NIL NIL NIL))"),
        "{out}"
    );
}

#[tokio::test]
async fn list_extended_special_use_and_status() {
    let store = MemoryStore::new().with_special_use(mail_store::SpecialUseNames::english());
    let auth = Arc::new(StaticAuthenticator::new().with_user(USER, "secret"));
    let mut s = new_session(&store, &auth, ImapConfig::default());
    assert!(
        send(&mut s, "L LOGIN alice@example.org secret\r\n")
            .await
            .starts_with("L OK")
    );
    deliver(&store, MSG1, &[]);
    send(
        &mut s,
        "b CREATE Work.Deep\r\nc SUBSCRIBE Work.Deep\r\nd CREATE Gone\r\ne SUBSCRIBE Gone\r\nf DELETE Gone\r\n",
    )
    .await;
    // Only special-use folders.
    let out = send(&mut s, "g LIST (SPECIAL-USE) \"\" *\r\n").await;
    assert!(out.contains("\\Sent) \".\" Sent\r\n"), "{out}");
    assert!(
        !out.contains(" INBOX\r\n") && !out.contains(" Work"),
        "{out}"
    );
    // Subscribed names, existing or not, with CHILDINFO for a parent.
    let out = send(
        &mut s,
        "h LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (Work Work.* Gone)\r\n",
    )
    .await;
    assert!(
        out.contains("* LIST (\\HasChildren) \".\" Work (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"),
        "{out}"
    );
    assert!(
        out.contains("* LIST (\\HasNoChildren \\Subscribed) \".\" Work.Deep\r\n"),
        "{out}"
    );
    assert!(
        out.contains("* LIST (\\NonExistent \\Subscribed) \".\" Gone\r\n"),
        "{out}"
    );
    assert!(out.ends_with("h OK LIST completed\r\n"), "{out}");
    // LIST-STATUS: a STATUS line right after each selectable mailbox.
    assert_eq!(
        send(
            &mut s,
            "i LIST \"\" (INBOX Work) RETURN (SUBSCRIBED CHILDREN STATUS (MESSAGES UNSEEN))\r\n"
        )
        .await,
        "* LIST (\\HasNoChildren \\Subscribed) \".\" INBOX\r\n\
* STATUS INBOX (MESSAGES 1 UNSEEN 1)\r\n\
* LIST (\\HasChildren) \".\" Work\r\n\
* STATUS Work (MESSAGES 0 UNSEEN 0)\r\n\
i OK LIST completed\r\n"
    );
    assert_eq!(
        send(&mut s, "j LIST (RECURSIVEMATCH) \"\" *\r\n").await,
        "j BAD RECURSIVEMATCH needs another selection option\r\n"
    );
    // LSUB shows a subscribed name that no longer exists as \Noselect.
    assert_eq!(
        send(&mut s, "k LSUB \"\" Gone\r\n").await,
        "* LSUB (\\Noselect) \".\" Gone\r\nk OK LSUB completed\r\n"
    );
}

#[tokio::test]
async fn quota_roots_and_over_quota() {
    let store = MemoryStore::new();
    let auth = Arc::new(StaticAuthenticator::new().with_account(
        "secret",
        account_auth::Account {
            login: USER.to_string(),
            mail_location: None,
            quota_bytes: Some(2048),
            quota_messages: Some(2),
        },
    ));
    let mut s = new_session(&store, &auth, ImapConfig::default());
    assert!(
        send(&mut s, "L LOGIN alice@example.org secret\r\n")
            .await
            .starts_with("L OK")
    );
    deliver(&store, MSG1, &[]);
    assert_eq!(
        send(&mut s, "a GETQUOTAROOT INBOX\r\n").await,
        "* QUOTAROOT INBOX \"\"\r\n* QUOTA \"\" (STORAGE 1 2 MESSAGE 1 2)\r\na OK GETQUOTAROOT completed\r\n"
    );
    assert_eq!(
        send(&mut s, "b GETQUOTA \"\"\r\n").await,
        "* QUOTA \"\" (STORAGE 1 2 MESSAGE 1 2)\r\nb OK GETQUOTA completed\r\n"
    );
    assert_eq!(
        send(&mut s, "c GETQUOTA other\r\n").await,
        "c NO [NONEXISTENT] No such quota root\r\n"
    );
    assert_eq!(
        send(&mut s, "d GETQUOTAROOT Nope\r\n").await,
        "d NO [NONEXISTENT] No such mailbox or message\r\n"
    );
    let out = send(&mut s, "e APPEND INBOX {3000+}\r\n").await;
    assert_eq!(out, "");
    let big = format!("Subject: big\r\n\r\n{}\r\n", "x".repeat(2982));
    assert_eq!(big.len(), 3000);
    let out = send(&mut s, &format!("{big}\r\n")).await;
    assert!(out.starts_with("e NO [OVERQUOTA]"), "{out}");
}

#[tokio::test]
async fn no_quota_root_without_limits() {
    let (_, _, mut s) = logged_in().await;
    assert_eq!(
        send(&mut s, "a GETQUOTAROOT INBOX\r\n").await,
        "* QUOTAROOT INBOX\r\na OK GETQUOTAROOT completed\r\n"
    );
    assert_eq!(
        send(&mut s, "b GETQUOTA \"\"\r\n").await,
        "b NO [NONEXISTENT] No such quota root\r\n"
    );
}

#[tokio::test]
async fn partial_whole_message_fetch_reads_ranges() {
    let (store, _, mut s) = logged_in().await;
    deliver(&store, MSG1, &[]);
    send(&mut s, "a EXAMINE INBOX\r\n").await;
    let tail = &MSG1[MSG1.len() - 5..];
    assert_eq!(
        send(
            &mut s,
            &format!(
                "b FETCH 1 (BODY.PEEK[]<{}.100> BODY.PEEK[]<100000.10> BODY.PEEK[]<0.6>)\r\n",
                MSG1.len() - 5
            )
        )
        .await,
        format!(
            "* 1 FETCH (BODY[]<{}> {{5}}\r\n{} BODY[]<100000> {{0}}\r\n BODY[]<0> {{6}}\r\nFrom: )\r\nb OK FETCH completed\r\n",
            MSG1.len() - 5,
            String::from_utf8_lossy(tail)
        )
    );
}

#[tokio::test]
async fn multiappend_is_all_or_nothing() {
    let store = MemoryStore::new();
    let auth = Arc::new(StaticAuthenticator::new().with_account(
        "secret",
        account_auth::Account {
            login: USER.to_string(),
            mail_location: None,
            quota_bytes: None,
            quota_messages: Some(3),
        },
    ));
    let mut s = new_session(&store, &auth, ImapConfig::default());
    assert!(
        send(&mut s, "L LOGIN alice@example.org secret\r\n")
            .await
            .starts_with("L OK")
    );
    deliver(&store, MSG1, &[]);
    // Two messages fit: both are appended, APPENDUID names both.
    let out = send(
        &mut s,
        "a APPEND INBOX (\\Seen) {6+}\r\nA: b\r\n \" 1-Jan-2024 00:00:00 +0000\" {6+}\r\nC: d\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("a OK [APPENDUID "), "{out}");
    assert!(out.contains(" 2:3] APPEND completed"), "{out}");
    assert_eq!(store.message_count(USER, "INBOX"), 3);
    // Only one more fits: the first of two is taken back, none is kept.
    let out = send(
        &mut s,
        "b APPEND INBOX {6+}\r\nE: f\r\n {6+}\r\nG: h\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("b NO [OVERQUOTA]"), "{out}");
    assert_eq!(store.message_count(USER, "INBOX"), 3);
}

/// COMPRESS=DEFLATE (RFC 4978): advertised after login only, DEFLATE only,
/// and the bytes pipelined after the command are handed to the driver
/// untouched (they are compressed), never parsed.
#[tokio::test]
async fn compress_deflate_hands_over_the_stream() {
    let (_store, _auth, mut s) = setup();
    let mut out = Vec::new();
    s.greeting(&mut out);
    assert!(!String::from_utf8_lossy(&out).contains("COMPRESS=DEFLATE"));
    let r = send(&mut s, "c0 COMPRESS DEFLATE\r\n").await;
    assert!(r.starts_with("c0 BAD"), "{r}");
    assert!(s.take_compression_start().is_none());

    let (_store, _auth, mut s) = logged_in().await;
    let r = send(&mut s, "c1 CAPABILITY\r\n").await;
    assert!(r.contains(" COMPRESS=DEFLATE"), "{r}");
    let r = send(&mut s, "c2 COMPRESS LZW\r\n").await;
    assert!(r.starts_with("c2 BAD"), "{r}");
    assert!(s.take_compression_start().is_none());

    // The command and compressed bytes arrive in one read.
    s.enqueue_input(b"c3 COMPRESS DEFLATE\r\n\x78\x9c\x00\x01");
    let mut out = Vec::new();
    assert_eq!(s.process(&mut out).await, Next::Continue);
    assert_eq!(String::from_utf8_lossy(&out), "c3 OK DEFLATE active\r\n");
    // Until the driver takes the stream over, nothing more is parsed.
    let mut more = Vec::new();
    assert_eq!(s.process(&mut more).await, Next::NeedInput);
    assert!(more.is_empty());
    assert_eq!(
        s.take_compression_start().as_deref(),
        Some(&b"\x78\x9c\x00\x01"[..])
    );
    assert!(s.take_compression_start().is_none(), "handed over once");

    let r = send(&mut s, "c4 COMPRESS DEFLATE\r\n").await;
    assert_eq!(r, "c4 NO [COMPRESSIONACTIVE] DEFLATE is already active\r\n");
}

/// Sessions per account: over the limit LOGIN answers `NO [LIMIT]`; a
/// closed session frees its place.
#[tokio::test]
async fn sessions_per_account_are_limited() {
    let limits = account_auth::sessions::SessionLimits::new(1);
    let config = ImapConfig {
        session_limits: Some(limits.clone()),
        ..ImapConfig::default()
    };
    let (store, auth, mut first) = setup_with(config.clone());
    let r = send(&mut first, "a LOGIN alice@example.org secret\r\n").await;
    assert!(r.starts_with("a OK"), "{r}");
    let mut second = new_session(&store, &auth, config.clone());
    let r = send(&mut second, "b LOGIN alice@example.org secret\r\n").await;
    assert_eq!(r, "b NO [LIMIT] Too many sessions for this account\r\n");
    assert_eq!(second.user(), None);
    drop(first);
    let r = send(&mut second, "c LOGIN alice@example.org secret\r\n").await;
    assert!(r.starts_with("c OK"), "{r}");
    assert_eq!(limits.open_sessions("alice@example.org"), 1);
}

/// RENAME of the selected folder keeps it selected under the new name, with
/// its messages and UIDs; DELETE of the selected folder ends the session
/// after the tagged OK.
#[tokio::test]
async fn rename_and_delete_of_the_selected_folder() {
    let (store, _auth, mut s) = logged_in().await;
    store
        .deliver(USER, "Work", b"Subject: a\r\n\r\nx\r\n", Default::default())
        .unwrap();
    store
        .deliver(USER, "Work", b"Subject: b\r\n\r\ny\r\n", Default::default())
        .unwrap();
    let r = send(&mut s, "a SELECT Work\r\n").await;
    assert!(r.contains("* 2 EXISTS"), "{r}");
    let r = send(&mut s, "b RENAME Work Jobs\r\n").await;
    assert_eq!(r, "b OK RENAME completed\r\n");
    let r = send(&mut s, "c UID FETCH 1:* (UID)\r\n").await;
    assert!(
        r.contains("* 1 FETCH (UID 1)") && r.contains("* 2 FETCH (UID 2)") && r.contains("c OK"),
        "{r}"
    );
    let r = send(&mut s, "d DELETE Jobs\r\n").await;
    assert_eq!(
        r,
        "d OK DELETE completed\r\n* BYE Selected mailbox was deleted or renamed\r\n"
    );
    let mut out = Vec::new();
    assert_eq!(s.process(&mut out).await, Next::Close);
}

/// A FETCH of more than the output budget goes out in pieces, one per
/// `process` call (each written by the driver before the next), and the
/// command pipelined after it runs only once the FETCH is complete.
#[tokio::test]
async fn large_fetch_streams_in_pieces() {
    let (store, _auth, mut s) = logged_in().await;
    let body = vec![b'x'; 200 * 1024];
    let mut message = b"Subject: big\r\n\r\n".to_vec();
    message.extend_from_slice(&body);
    for _ in 0..20 {
        deliver(&store, &message, &[]);
    }
    let r = send(&mut s, "a SELECT INBOX\r\n").await;
    assert!(r.contains("* 20 EXISTS"), "{r}");
    s.enqueue_input(b"b FETCH 1:* BODY.PEEK[]\r\nc NOOP\r\n");
    let mut pieces = Vec::new();
    loop {
        let mut out = Vec::new();
        let next = s.process(&mut out).await;
        if out.is_empty() {
            assert_eq!(next, Next::NeedInput);
            break;
        }
        pieces.push(out);
    }
    assert!(pieces.len() >= 4, "{} pieces", pieces.len());
    for p in &pieces {
        // Each piece is about one budget (1 MiB) plus at most one message.
        assert!(
            p.len() <= 1024 * 1024 + message.len() + 1024,
            "piece of {} bytes",
            p.len()
        );
    }
    let all: Vec<u8> = pieces.concat();
    let text = String::from_utf8_lossy(&all);
    assert_eq!(text.matches(" FETCH (BODY[] {").count(), 20);
    let b_ok = text.find("b OK FETCH completed").expect("b completes");
    let c_ok = text.find("c OK").expect("c completes");
    assert!(b_ok < c_ok, "NOOP ran before the FETCH finished");
    assert!(text.find("* 20 FETCH").unwrap() < b_ok);
}
