//! Fuzz target: arbitrary client bytes, split at an arbitrary point, through
//! the whole receive path (framing with literals and limits, the command
//! grammar, IDLE and AUTHENTICATE expectations). Checks that nothing panics,
//! that the result does not depend on how the input is chunked, and that
//! the receiver never holds more than the limits allow.
#![no_main]

use imap_protocol::{Command, CommandBody, Event, Expect, Limits, Receiver};
use libfuzzer_sys::fuzz_target;

const LIMITS: Limits = Limits {
    line: 1024,
    command: 4096,
    append: 8192,
    literals: 8,
};

fn run(chunks: &[&[u8]]) -> Vec<Event> {
    let mut receiver = Receiver::new();
    let mut events = Vec::new();
    for chunk in chunks {
        receiver.enqueue_input(chunk);
        while let Some(event) = receiver.next_event(&LIMITS) {
            match &event {
                Event::Command(Command {
                    body: CommandBody::Idle,
                    ..
                }) => receiver.expect(Expect::IdleDone),
                Event::Command(Command {
                    body:
                        CommandBody::Authenticate {
                            initial_response: None,
                            ..
                        },
                    ..
                }) => receiver.expect(Expect::AuthenticateResponse),
                _ => {}
            }
            events.push(event);
        }
        // At most one line and one literal in progress are held back.
        assert!(receiver.pending_input() <= LIMITS.line + 8192 + chunk.len());
    }
    events
}

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (a, b) = data.split_at(split);
    assert_eq!(run(&[data]), run(&[a, b]));
});
