//! Fuzz target `pop3_body`: the RETR/TOP body encoder (RFC 1939 §3
//! byte-stuffing, §7 TOP, §11 message format).
//!
//! Input layout: byte 0 picks RETR (even) or TOP (odd, with byte 1 as the
//! line count); then `k = byte % 8` chunk-size bytes (`b + 1`, cyclic); the
//! rest is the stored message.
//!
//! Invariants:
//! - chunking independence: encoding in those chunks gives byte-identical
//!   output and the same size as encoding the message in one piece, and the
//!   counting path (`count` + `finish_count`) gives the same size;
//! - size equality: for RETR the size equals `message_size(message)` (what
//!   LIST/STAT report), and for both the output length is exactly
//!   size + stuffed dots + the 3-octet `.` CRLF terminator;
//! - the wire form is clean: no NUL, every LF is preceded by CR, no line
//!   starts with a lone `.` other than the terminator, and it ends in CRLF `.` CRLF
//!   (or is just `.` CRLF for an empty result).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pop3_protocol::{BodyEncoder, message_size};

fuzz_target!(|data: &[u8]| {
    let [mode, lines, k, rest @ ..] = data else {
        return;
    };
    let top = mode % 2 == 1;
    let new_encoder = || {
        if top {
            BodyEncoder::top(u32::from(*lines))
        } else {
            BodyEncoder::whole()
        }
    };
    let k = usize::from(k % 8).min(rest.len());
    let (sizes, message) = rest.split_at(k);
    let chunks = || {
        let mut out = Vec::new();
        let mut remaining = message;
        let mut i = 0;
        while !remaining.is_empty() {
            let size = sizes
                .get(i % sizes.len().max(1))
                .map_or(1, |&b| usize::from(b) + 1)
                .min(remaining.len());
            let (chunk, tail) = remaining.split_at(size);
            out.push(chunk);
            remaining = tail;
            i += 1;
        }
        out
    };

    let mut whole = new_encoder();
    let mut whole_out = Vec::new();
    whole.encode(message, &mut whole_out);
    let whole_size = whole.finish(&mut whole_out);
    let whole_stuffed = whole.stuffed_octets();

    let mut split = new_encoder();
    let mut split_out = Vec::new();
    for chunk in chunks() {
        split.encode(chunk, &mut split_out);
    }
    let split_size = split.finish(&mut split_out);

    let mut counter = new_encoder();
    for chunk in chunks() {
        counter.count(chunk);
    }
    let counted = counter.finish_count();

    assert_eq!(whole_out, split_out, "output depends on chunking");
    assert_eq!(whole_size, split_size, "size depends on chunking");
    assert_eq!(whole_size, counted, "count path disagrees with encode path");
    if !top {
        assert_eq!(whole_size, message_size(message), "message_size disagrees");
    }
    assert_eq!(
        whole_out.len() as u64,
        whole_size + whole_stuffed + 3,
        "output length != size + stuffed + terminator"
    );

    // Wire form.
    assert!(!whole_out.contains(&0), "NUL on the wire");
    for (i, &b) in whole_out.iter().enumerate() {
        if b == b'\n' {
            assert!(i > 0 && whole_out[i - 1] == b'\r', "bare LF on the wire");
        }
    }
    assert!(
        whole_out == b".\r\n" || whole_out.ends_with(b"\r\n.\r\n"),
        "bad terminator"
    );
    let body = &whole_out[..whole_out.len() - 3];
    let mut line_start = true;
    for (i, &b) in body.iter().enumerate() {
        if line_start && b == b'.' {
            assert_eq!(body.get(i + 1), Some(&b'.'), "unstuffed dot at line start");
        }
        line_start = b == b'\n';
    }
});
