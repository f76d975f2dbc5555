//! Fuzz target `imap_command`: arbitrary client bytes through the IMAP
//! command framer and parser (RFC 9051 §2.2, §9 grammar).
//!
//! Invariant: neither [`imap_protocol::parse_command`] nor the
//! [`imap_protocol::Receiver`] panics on any input, in any expect mode, and the
//! receiver always terminates (every `next_event` call consumes input or
//! returns `None`; a livelock shows up as a libFuzzer timeout).
#![no_main]

use imap_protocol::{CommandBody, Event, Expect, Limits, Receiver, parse_command};
use libfuzzer_sys::fuzz_target;

/// Small limits so that the refusal paths are reachable with short inputs.
const LIMITS: Limits = Limits {
    line: 1024,
    command: 4096,
    append: 8192,
    literals: 16,
};

fuzz_target!(|data: &[u8]| {
    // The parser alone, on the whole input as one "line".
    let _ = parse_command(data);

    // The receiver, starting in the mode the first byte picks.
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let mut receiver = Receiver::new();
    receiver.expect(match mode % 3 {
        0 => Expect::Command,
        1 => Expect::AuthenticateResponse,
        _ => Expect::IdleDone,
    });
    receiver.enqueue_input(input);
    while let Some(event) = receiver.next_event(&LIMITS) {
        // Follow the session's mode switches so those paths are reached too.
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
    }
    let _ = receiver.take_unconsumed();
});
