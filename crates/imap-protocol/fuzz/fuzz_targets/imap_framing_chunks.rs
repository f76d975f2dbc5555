//! Fuzz target `imap_framing_chunks`: the IMAP framer/receiver must not
//! depend on how TCP split the stream (RFC 9051 §2.2: literals and lines may
//! arrive in any number of reads).
//!
//! Input layout: byte 0 gives `k = byte0 % 8` chunk-size bytes; the next `k`
//! bytes are chunk sizes (`b + 1`, used cyclically); the rest is the stream.
//!
//! Invariant: feeding the stream in those chunks, draining events after each
//! chunk, yields exactly the same sequence of events (and the same number of
//! pending bytes at the end) as feeding it in one piece. Neither run panics.
//! (The older `receiver` target checks one split point; this one checks up
//! to seven cyclic chunk sizes, down to byte-by-byte.)
#![no_main]

use imap_protocol::{CommandBody, Event, Expect, Limits, Receiver};
use libfuzzer_sys::fuzz_target;

/// Small limits so that the refusal paths are reachable with short inputs.
const LIMITS: Limits = Limits {
    line: 1024,
    command: 4096,
    append: 8192,
    literals: 16,
};

fn drain(receiver: &mut Receiver, events: &mut Vec<Event>) {
    while let Some(event) = receiver.next_event(&LIMITS) {
        // Switch modes as the session does, so IDLE and AUTHENTICATE
        // continuation lines are framed the same way in both runs.
        if let Event::Command(command) = &event {
            match &command.body {
                CommandBody::Idle => receiver.expect(Expect::IdleDone),
                CommandBody::Authenticate {
                    initial_response: None,
                    ..
                } => receiver.expect(Expect::AuthenticateResponse),
                _ => {}
            }
        }
        events.push(event);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let k = usize::from(head % 8).min(rest.len());
    let (sizes, stream) = rest.split_at(k);

    let mut whole = Receiver::new();
    let mut whole_events = Vec::new();
    whole.enqueue_input(stream);
    drain(&mut whole, &mut whole_events);

    let mut split = Receiver::new();
    let mut split_events = Vec::new();
    let mut remaining = stream;
    let mut i = 0;
    while !remaining.is_empty() {
        let size = sizes
            .get(i % sizes.len().max(1))
            .map_or(1, |&b| usize::from(b) + 1)
            .min(remaining.len());
        let (chunk, tail) = remaining.split_at(size);
        split.enqueue_input(chunk);
        drain(&mut split, &mut split_events);
        remaining = tail;
        i += 1;
    }

    assert_eq!(whole_events, split_events, "events depend on chunking");
    assert_eq!(
        whole.pending_input(),
        split.pending_input(),
        "pending input depends on chunking"
    );
});
