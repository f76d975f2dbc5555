//! Fuzz target `pop3_command`: arbitrary client bytes through the POP3 line
//! decoder and command parser (RFC 1939 §3, RFC 2449, RFC 5034 SASL).
//!
//! Input layout: byte 0 gives `k = byte0 % 8` chunk-size bytes; the next `k`
//! bytes are chunk sizes (`b + 1`, used cyclically); the rest is the stream.
//!
//! Invariants: the decoder and parser never panic; feeding the stream in
//! those chunks (taking results after each chunk) gives exactly the same
//! results, and the same buffered partial line, as feeding it in one piece.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pop3_protocol::{Command, ParseError, Pop3Decoder, SaslResponse, parse_command};

/// One decoded line: a command or, after `AUTH mech` without an initial
/// response, a SASL answer (the session switches the decoder the same way).
#[derive(Debug, PartialEq, Eq)]
enum Item {
    Command(Result<Command, ParseError>),
    Sasl(Result<SaslResponse, ParseError>),
}

fn drain(decoder: &mut Pop3Decoder, sasl_next: &mut bool, items: &mut Vec<Item>) {
    loop {
        if *sasl_next {
            let Some(result) = decoder.next_sasl_response() else {
                return;
            };
            *sasl_next = false;
            items.push(Item::Sasl(result));
        } else {
            let Some(result) = decoder.next() else {
                return;
            };
            if let Ok(Command::Auth {
                mechanism: Some(_),
                initial_response: None,
            }) = &result
            {
                *sasl_next = true;
            }
            items.push(Item::Command(result));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The parser alone, on the whole input as one line.
    let _ = parse_command(data);

    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let k = usize::from(head % 8).min(rest.len());
    let (sizes, stream) = rest.split_at(k);

    let mut whole = Pop3Decoder::new();
    let mut whole_sasl = false;
    let mut whole_items = Vec::new();
    whole.enqueue(stream);
    drain(&mut whole, &mut whole_sasl, &mut whole_items);

    let mut split = Pop3Decoder::new();
    let mut split_sasl = false;
    let mut split_items = Vec::new();
    let mut remaining = stream;
    let mut i = 0;
    while !remaining.is_empty() {
        let size = sizes
            .get(i % sizes.len().max(1))
            .map_or(1, |&b| usize::from(b) + 1)
            .min(remaining.len());
        let (chunk, tail) = remaining.split_at(size);
        split.enqueue(chunk);
        drain(&mut split, &mut split_sasl, &mut split_items);
        remaining = tail;
        i += 1;
    }

    assert_eq!(whole_items, split_items, "results depend on chunking");
    assert_eq!(
        whole.buffered_partial(),
        split.buffered_partial(),
        "buffered partial line depends on chunking"
    );
});
