//! What the session tests over the in-memory store share: a session for
//! alice, input fed and run until it needs more, deliveries.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;

use account_auth::testing::StaticAuthenticator;
use imap_session::{ConnectionInfo, ImapConfig, ImapSession, Next};
use mail_store::memory::MemoryStore;
use mail_store::{Flags, MailStore};

pub type Session = ImapSession<MemoryStore, StaticAuthenticator>;

pub const USER: &str = "alice@example.org";

/// A new session (not logged in) on `store`, with this session id.
pub fn session<S: MailStore + Clone>(store: &S, id: u64) -> ImapSession<S, StaticAuthenticator> {
    let auth = Arc::new(StaticAuthenticator::new().with_user(USER, "secret"));
    let conn = ConnectionInfo {
        peer: "192.0.2.1:50000".parse().unwrap(),
        session_id: id,
        tls: "TLSv1.3".into(),
    };
    ImapSession::new(
        Arc::new(store.clone()),
        auth,
        Arc::new(ImapConfig::default()),
        conn,
    )
}

/// Feeds `input` and runs the session until it needs more; its output.
pub async fn send_bytes<S: MailStore>(
    session: &mut ImapSession<S, StaticAuthenticator>,
    input: &str,
) -> Vec<u8> {
    session.enqueue_input(input.as_bytes());
    let mut out = Vec::new();
    loop {
        match session.process(&mut out).await {
            Next::Continue => continue,
            _ => return out,
        }
    }
}

/// [`send_bytes`], the output as text.
pub async fn send<S: MailStore>(
    session: &mut ImapSession<S, StaticAuthenticator>,
    input: &str,
) -> String {
    String::from_utf8(send_bytes(session, input).await).unwrap()
}

/// A logged-in session.
pub async fn logged_in(store: &MemoryStore, id: u64) -> Session {
    let mut s = session(store, id);
    let out = send(&mut s, "L LOGIN alice@example.org secret\r\n").await;
    assert!(out.starts_with("L OK"), "{out}");
    s
}

/// Delivers `n` small messages (`Subject: message 1`, …) to alice's INBOX.
pub fn deliver(store: &MemoryStore, n: usize) {
    for i in 1..=n {
        let message = format!("Subject: message {i}\r\n\r\nbody {i}\r\n");
        store
            .deliver(USER, "INBOX", message.as_bytes(), Flags::new())
            .unwrap();
    }
}
