//! Shared harness for the imap-session fuzz targets: a session over the
//! in-memory store and the static authenticator, driven to quiescence on a
//! single-threaded tokio runtime (no I/O, no real clock waits).
#![forbid(unsafe_code)]

use std::sync::{Arc, OnceLock};

use account_auth::testing::StaticAuthenticator;
use imap_session::{ConnectionInfo, ImapConfig, ImapSession, Next};
use mail_store::memory::MemoryStore;
use mail_store::{Flag, Flags};

/// The one account the fuzz sessions log in to.
pub const USER: &str = "alice@example.org";
/// Its password.
pub const PASSWORD: &str = "secret";

/// A session over the memory store and the static authenticator.
pub type Session = ImapSession<MemoryStore, StaticAuthenticator>;

/// The process-wide current-thread runtime (building one per input would
/// dominate the execution time).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("current-thread runtime")
    })
}

/// A fresh store holding `messages` in the account's INBOX (the first one
/// `\Seen`), and a session on it with small limits so that the limit paths
/// are reachable.
pub fn session_with(messages: &[&[u8]]) -> (MemoryStore, Session) {
    let store = MemoryStore::new();
    for (i, message) in messages.iter().enumerate() {
        let flags: Flags = if i == 0 {
            [Flag::Seen].into_iter().collect()
        } else {
            Vec::<Flag>::new().into_iter().collect()
        };
        // A message the store refuses is not a session finding.
        let _ = store.deliver(USER, "INBOX", message, flags);
    }
    let auth = Arc::new(StaticAuthenticator::new().with_user(USER, PASSWORD));
    let config = ImapConfig {
        max_literal: 64 * 1024,
        line_limit_pre_auth: 1024,
        line_limit_post_auth: 8 * 1024,
        ..ImapConfig::default()
    };
    let conn = ConnectionInfo {
        peer: "192.0.2.1:50000".parse().expect("address literal"),
        session_id: 1,
        tls: "TLSv1.3".into(),
    };
    let session = ImapSession::new(Arc::new(store.clone()), auth, Arc::new(config), conn);
    (store, session)
}

/// Feeds `input` and runs `process` until the session needs input or
/// closes, appending to `out`. Returns the last [`Next`] and the number of
/// `process` calls.
pub fn drive(session: &mut Session, input: &[u8], out: &mut Vec<u8>) -> (Next, usize) {
    session.enqueue_input(input);
    runtime().block_on(async {
        let mut calls = 0;
        loop {
            calls += 1;
            match session.process(out).await {
                Next::Continue => {
                    // A livelock (Continue forever without consuming input)
                    // is a finding; the bound is far above any real count.
                    assert!(calls < 1_000_000, "process returned Continue {calls} times");
                }
                next => return (next, calls),
            }
        }
    })
}
