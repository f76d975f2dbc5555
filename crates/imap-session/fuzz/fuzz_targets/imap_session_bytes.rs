//! Fuzz target `imap_session_bytes`: arbitrary client bytes into a whole
//! IMAP session (RFC 9051 §3 states, §6 commands) over the memory store.
//!
//! Input layout: byte 0 is a prelude selector — bit 0 logs in first, bit 1
//! also selects INBOX — so the fuzzer reaches the authenticated and selected
//! states without having to find the password; bits 2-4 give a chunk size
//! (`2^n` octets) in which the rest is fed, driving the session after each
//! chunk as the server does after each read.
//!
//! Invariants: the session never panics; it never livelocks (`process`
//! keeps returning `Continue` without input); and its output is bounded —
//! at most 64 KiB plus 512 octets per input octet (two small messages make
//! the largest legitimate amplification, e.g. repeated `BODY[]` items, far
//! smaller than that).
#![no_main]

use imap_session::Next;
use imap_session_fuzz::{PASSWORD, USER, drive, session_with};
use libfuzzer_sys::fuzz_target;

const MSG1: &[u8] =
    b"From: bob@example.org\r\nTo: alice@example.org\r\nSubject: Hello\r\n\r\nHi Alice!\r\n";
const MSG2: &[u8] = b"From: carol@example.org\r\nSubject: Second\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\none\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b--\r\n";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let (_store, mut session) = session_with(&[MSG1, MSG2]);
    let mut out = Vec::new();
    session.greeting(&mut out);

    if mode & 1 == 1 {
        let login = format!("p1 LOGIN {USER} {PASSWORD}\r\n");
        drive(&mut session, login.as_bytes(), &mut out);
        assert!(session.user().is_some(), "prelude login failed");
        if mode & 2 == 2 {
            drive(&mut session, b"p2 SELECT INBOX\r\n", &mut out);
        }
    }

    let chunk = 1usize << ((mode >> 2) & 7);
    let bound = 64 * 1024 + 512 * data.len();
    for piece in input.chunks(chunk) {
        let (next, _) = drive(&mut session, piece, &mut out);
        assert!(
            out.len() <= bound,
            "output {} octets for {} input octets",
            out.len(),
            data.len()
        );
        if next == Next::Close {
            return;
        }
        if session.take_compression_start().is_some() {
            // The rest of the stream would be deflate data; stop here.
            return;
        }
    }
    session.shutdown(&mut out);
    assert!(out.len() <= bound + 1024, "output unbounded at shutdown");
});
