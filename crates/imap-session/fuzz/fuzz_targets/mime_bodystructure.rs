//! Fuzz target `mime_bodystructure`: an arbitrary stored message through the
//! session's MIME parser and the BODYSTRUCTURE / ENVELOPE / BODY builders
//! (RFC 9051 §7.5.2, RFC 2045/2046).
//!
//! The builder itself is crate-private in imap-session, so the target reaches
//! it through the public session API: the input is delivered to INBOX, then
//! the session logs in, selects and runs
//! `FETCH 1 (BODYSTRUCTURE ENVELOPE RFC822.SIZE)`.
//!
//! Invariants: no panic, and the untagged `* 1 FETCH` response parses with the
//! independent `imap-proto` client parser as a complete FETCH response whose
//! attributes include a BODYSTRUCTURE and an ENVELOPE; the command completes
//! with a tagged `f1 OK`; the same FETCH again, now served from the store's
//! derived-field cache, gives byte-identical output.
#![no_main]

use imap_proto::{AttributeValue, Response};
use imap_session_fuzz::{PASSWORD, USER, drive, session_with};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|message: &[u8]| {
    if message.is_empty() {
        return;
    }
    let (_store, mut session) = session_with(&[message]);
    let mut out = Vec::new();
    let setup = format!("p1 LOGIN {USER} {PASSWORD}\r\np2 SELECT INBOX\r\n");
    drive(&mut session, setup.as_bytes(), &mut out);
    let mut out = Vec::new();
    drive(
        &mut session,
        b"f1 FETCH 1 (BODYSTRUCTURE ENVELOPE RFC822.SIZE)\r\n",
        &mut out,
    );
    if out.starts_with(b"f1 NO") {
        // The store refused the message (e.g. empty or over a limit).
        return;
    }

    let (rest, response) = match Response::parse(&out) {
        Ok(parsed) => parsed,
        Err(error) => panic!(
            "imap-proto rejects our FETCH response: {error:?}\n{}",
            String::from_utf8_lossy(&out)
        ),
    };
    let Response::Fetch(1, attributes) = response else {
        panic!(
            "expected `* 1 FETCH`, got {response:?}\n{}",
            String::from_utf8_lossy(&out)
        );
    };
    assert!(
        attributes
            .iter()
            .any(|a| matches!(a, AttributeValue::BodyStructure(_))),
        "no BODYSTRUCTURE in {attributes:?}"
    );
    assert!(
        attributes
            .iter()
            .any(|a| matches!(a, AttributeValue::Envelope(_))),
        "no ENVELOPE in {attributes:?}"
    );
    assert!(
        rest.starts_with(b"f1 OK"),
        "FETCH did not complete: {}",
        String::from_utf8_lossy(rest)
    );

    // The first FETCH put the ENVELOPE and BODYSTRUCTURE in the store's
    // derived-field cache; the same FETCH again is served from it and must
    // give the same bytes (the cache value round-trips every structure).
    let mut again = Vec::new();
    drive(
        &mut session,
        b"f1 FETCH 1 (BODYSTRUCTURE ENVELOPE RFC822.SIZE)\r\n",
        &mut again,
    );
    assert_eq!(
        String::from_utf8_lossy(&again),
        String::from_utf8_lossy(&out),
        "the cached answer differs from the parsed one"
    );
});
