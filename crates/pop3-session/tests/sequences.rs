//! Property test: arbitrary command sequences against the memory store.
//! Whatever the client sends, the session never panics, every response is
//! well-formed CRLF lines without NUL, and the maildrop changes only through
//! a QUIT in TRANSACTION — by exactly the messages DELE marked since the last
//! RSET.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use account_auth::testing::StaticAuthenticator;
use mail_store::Flags;
use mail_store::memory::MemoryStore;
use pop3_session::{ConnectionInfo, Next, Pop3Config, Pop3Session};
use proptest::prelude::*;

const ALICE: &str = "alice@example.org";

fn command() -> impl Strategy<Value = String> {
    let n = 0u32..6;
    prop_oneof![
        Just("CAPA".to_string()),
        Just(format!("USER {ALICE}")),
        Just("PASS secret".to_string()),
        Just("PASS wrong".to_string()),
        Just("AUTH PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHNlY3JldA==".to_string()),
        Just("AUTH PLAIN".to_string()),
        Just("AUTH".to_string()),
        Just("*".to_string()),
        Just("STAT".to_string()),
        Just("LIST".to_string()),
        n.clone().prop_map(|n| format!("LIST {n}")),
        n.clone().prop_map(|n| format!("RETR {n}")),
        n.clone().prop_map(|n| format!("DELE {n}")),
        (n.clone(), 0u32..3).prop_map(|(n, l)| format!("TOP {n} {l}")),
        Just("UIDL".to_string()),
        n.prop_map(|n| format!("UIDL {n}")),
        Just("RSET".to_string()),
        Just("NOOP".to_string()),
        Just("QUIT".to_string()),
        "[ -~]{0,12}",
    ]
}

fn check_lines(out: &[u8]) -> Result<(), TestCaseError> {
    prop_assert!(!out.contains(&0), "NUL in output");
    prop_assert!(
        out.is_empty() || out.ends_with(b"\r\n"),
        "unterminated output"
    );
    for line in out.split(|&b| b == b'\n') {
        if let Some(i) = line.iter().position(|&b| b == b'\r') {
            prop_assert_eq!(i, line.len() - 1, "CR inside a line");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn sequences_keep_the_invariants(commands in proptest::collection::vec(command(), 0..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let store = MemoryStore::new();
            for body in [&b"A: 1\n\nx\n"[..], b".\r\n..\r\n", b"\0", b"B: 2\n\n"] {
                store.deliver(ALICE, "INBOX", body, Flags::new()).unwrap();
            }
            let auth = StaticAuthenticator::new().with_user(ALICE, "secret");
            let conn = ConnectionInfo {
                peer: SocketAddr::from(([198, 51, 100, 1], 1)),
                session_id: 1,
                tls: "TLSv1.3".into(),
            };
            let mut session = Pop3Session::new(
                Arc::new(store.clone()),
                Arc::new(auth),
                Arc::new(Pop3Config::default()),
                conn,
            );
            let mut logged_in = false;
            let mut marked = BTreeSet::new();
            let mut expected = 4usize;
            for command in &commands {
                session.enqueue_input(format!("{command}\r\n").as_bytes());
                let mut out = Vec::new();
                let next = session.process(&mut out).await;
                check_lines(&out)?;
                let reply = String::from_utf8_lossy(&out).into_owned();
                if reply.starts_with("+OK Logged in.") {
                    logged_in = true;
                }
                if logged_in {
                    if let Some(n) = command.strip_prefix("DELE ")
                        && reply.starts_with("+OK")
                    {
                        marked.insert(n.to_string());
                    }
                    if command == "RSET" {
                        marked.clear();
                    }
                }
                if next == Next::Close {
                    if logged_in && command == "QUIT" {
                        prop_assert!(reply.starts_with("+OK Logging out"));
                        expected -= marked.len();
                    }
                    break;
                }
                prop_assert_eq!(next, Next::Continue);
                prop_assert_eq!(store.message_count(ALICE, "INBOX"), 4, "changed before QUIT");
            }
            drop(session);
            prop_assert_eq!(store.message_count(ALICE, "INBOX"), expected);
            Ok(())
        })?;
    }
}
