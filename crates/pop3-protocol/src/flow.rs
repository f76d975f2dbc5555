//! The incremental line decoder: bytes in, [`Command`]s (or SASL
//! continuation lines) out. Sans-I/O: the driver hands over whatever it read
//! with [`Pop3Decoder::enqueue`] and drains complete lines with
//! [`Pop3Decoder::next`].
//!
//! Framing (RFC 1939 §3, RFC 2449 §4): a line ends at LF; a CR before the LF
//! is dropped, so CRLF and bare LF are both accepted. Limits, counted in
//! octets *including* a CRLF terminator:
//! - command lines: [`MAX_COMMAND_LINE`] (RFC 2449 §4: 255);
//! - `AUTH` lines: [`MAX_AUTH_LINE`] (RFC 5034 §4 allows an initial response
//!   up to the command-line limit; Coffre is lenient up to 512);
//! - SASL continuation lines: [`MAX_SASL_LINE`].
//!
//! Memory stays bounded: a line that grows past [`MAX_SASL_LINE`] is dropped
//! as it arrives, the decoder skips to its LF keeping only its first octets
//! (to tell an `AUTH` line), and then reports one [`ParseError::LineTooLong`]
//! in its place, in order with the lines around it. The limit a line is held
//! to, and the one reported, depend only on the line and on what the session
//! expects when it takes the line — never on how TCP split the stream (an
//! earlier version dropped at 512 or 8 KiB depending on whether lines were
//! queued; see F1 in docs/fuzzing.md). Pipelined lines are kept until drained; the driver
//! bounds them by draining before it reads more.

use std::collections::VecDeque;

use crate::ParseError;
use crate::command::{Command, SaslResponse, parse_command, parse_sasl_response};

/// Longest command line, octets including CRLF (RFC 2449 §4).
pub const MAX_COMMAND_LINE: usize = 255;

/// Longest `AUTH` command line (with an initial response), octets including CRLF.
pub const MAX_AUTH_LINE: usize = 512;

/// Longest SASL continuation line, octets including CRLF.
pub const MAX_SASL_LINE: usize = 8 * 1024;

/// Octets kept of a dropped line: enough to tell `AUTH ` from other keywords.
const DROPPED_HEAD: usize = 5;

/// One framed line.
#[derive(Debug)]
enum Frame {
    /// A complete line without its terminator.
    Line(Vec<u8>),
    /// A line that was dropped because it grew past [`MAX_SASL_LINE`]; its
    /// first octets.
    TooLong { head: Vec<u8> },
}

/// The incremental POP3 line decoder.
#[derive(Debug)]
pub struct Pop3Decoder {
    /// Complete lines (and dropped-line markers) not yet taken.
    frames: VecDeque<Frame>,
    /// The line being received.
    partial: Vec<u8>,
    /// Set while skipping the rest of a line that was too long: holds its
    /// first octets.
    skipping: Option<Vec<u8>>,
}

impl Default for Pop3Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Pop3Decoder {
    /// A decoder expecting a command line.
    pub fn new() -> Self {
        Pop3Decoder {
            frames: VecDeque::new(),
            partial: Vec::new(),
            skipping: None,
        }
    }

    /// Adds bytes received from the client.
    pub fn enqueue(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let Some(lf) = bytes.iter().position(|&b| b == b'\n') else {
                self.extend_partial(bytes);
                return;
            };
            self.extend_partial(&bytes[..lf]);
            bytes = &bytes[lf + 1..];
            self.end_line();
        }
    }

    /// Whether a complete line (or a dropped-line report) is waiting.
    pub fn has_line(&self) -> bool {
        !self.frames.is_empty()
    }

    /// How many octets of incomplete input are held (for tests and metrics).
    pub fn buffered_partial(&self) -> usize {
        self.partial.len()
    }

    /// Takes the next line as a command. `None` means more input is needed.
    #[allow(clippy::should_implement_trait)] // fallible, and not an iterator over owned input
    pub fn next(&mut self) -> Option<Result<Command, ParseError>> {
        let frame = self.frames.pop_front()?;
        Some(match frame {
            Frame::TooLong { head } => Err(ParseError::LineTooLong {
                limit: command_limit(&head),
            }),
            Frame::Line(line) => {
                let limit = command_limit(&line);
                if line.len() + 2 > limit {
                    Err(ParseError::LineTooLong { limit })
                } else {
                    parse_command(&line)
                }
            }
        })
    }

    /// Takes the next line as a SASL continuation answer (after the session
    /// sent `+ `), held to [`MAX_SASL_LINE`]. `None` means more input is
    /// needed.
    pub fn next_sasl_response(&mut self) -> Option<Result<SaslResponse, ParseError>> {
        let frame = self.frames.pop_front()?;
        Some(match frame {
            Frame::TooLong { .. } => Err(ParseError::LineTooLong {
                limit: MAX_SASL_LINE,
            }),
            Frame::Line(line) if line.len() + 2 > MAX_SASL_LINE => Err(ParseError::LineTooLong {
                limit: MAX_SASL_LINE,
            }),
            Frame::Line(line) => parse_sasl_response(&line),
        })
    }

    fn extend_partial(&mut self, bytes: &[u8]) {
        if self.skipping.is_some() {
            return;
        }
        // One cap for every line, whatever the session expects now: which
        // limit applies is decided when the line is taken. The partial line
        // may still hold its CR, hence `- 1`.
        if self.partial.len() + bytes.len() > MAX_SASL_LINE - 1 {
            let mut head = std::mem::take(&mut self.partial);
            head.extend_from_slice(&bytes[..bytes.len().min(DROPPED_HEAD)]);
            head.truncate(DROPPED_HEAD);
            self.skipping = Some(head);
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }

    fn end_line(&mut self) {
        if let Some(head) = self.skipping.take() {
            self.frames.push_back(Frame::TooLong { head });
            return;
        }
        let mut line = std::mem::take(&mut self.partial);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        self.frames.push_back(Frame::Line(line));
    }
}

/// The limit a command line is held to: [`MAX_AUTH_LINE`] for `AUTH`, else
/// [`MAX_COMMAND_LINE`].
fn command_limit(line: &[u8]) -> usize {
    if is_auth_line(line) {
        MAX_AUTH_LINE
    } else {
        MAX_COMMAND_LINE
    }
}

/// Whether a line starts with the `AUTH` keyword (which gets the longer limit).
fn is_auth_line(line: &[u8]) -> bool {
    line.len() >= 4
        && line[..4].eq_ignore_ascii_case(b"AUTH")
        && (line.len() == 4 || line[4] == b' ')
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::command::{Password, SaslData};

    fn drain(decoder: &mut Pop3Decoder) -> Vec<Result<Command, ParseError>> {
        std::iter::from_fn(|| decoder.next()).collect()
    }

    const SCRIPT: &[u8] = b"CAPA\r\nUSER alice@example.org\r\nPASS s3cret with spaces\r\n\
        AUTH PLAIN AGFsaWNlAHB3\r\nSTAT\nLIST\r\nLIST 2\r\nUIDL\r\nUIDL 3\r\nTOP 1 10\r\n\
        RETR 1\r\nDELE 1\r\nRSET\r\nNOOP\r\nbogus\r\nRETR -3\r\nQUIT\r\n";

    #[test]
    fn chunked_input_gives_identical_commands() {
        let mut whole = Pop3Decoder::new();
        whole.enqueue(SCRIPT);
        let expected = drain(&mut whole);
        assert_eq!(expected.len(), 17);
        assert_eq!(
            expected[2],
            Ok(Command::Pass(Password::new("s3cret with spaces")))
        );
        assert_eq!(expected[14], Err(ParseError::UnknownCommand));
        let mut size = 1;
        while size <= 512 {
            let mut decoder = Pop3Decoder::new();
            let mut got = Vec::new();
            for chunk in SCRIPT.chunks(size) {
                decoder.enqueue(chunk);
                got.extend(drain(&mut decoder));
            }
            assert_eq!(got, expected, "chunk size {size}");
            size *= 2;
        }
    }

    #[test]
    fn crlf_and_bare_lf() {
        let mut d = Pop3Decoder::new();
        d.enqueue(b"STAT\r\nNOOP\nQUIT\r");
        assert_eq!(d.next(), Some(Ok(Command::Stat)));
        assert_eq!(d.next(), Some(Ok(Command::Noop)));
        assert_eq!(d.next(), None);
        d.enqueue(b"\n");
        assert_eq!(d.next(), Some(Ok(Command::Quit)));
        assert_eq!(d.next(), None);
    }

    #[test]
    fn command_line_limit() {
        // 253 octets of content + CRLF = 255: accepted.
        let mut d = Pop3Decoder::new();
        let ok = format!("USER {}\r\n", "a".repeat(248));
        assert_eq!(ok.len(), MAX_COMMAND_LINE);
        d.enqueue(ok.as_bytes());
        assert_eq!(d.next(), Some(Ok(Command::User("a".repeat(248)))));
        let long = format!("USER {}\r\n", "a".repeat(249));
        d.enqueue(long.as_bytes());
        assert_eq!(
            d.next(),
            Some(Err(ParseError::LineTooLong {
                limit: MAX_COMMAND_LINE
            }))
        );
        d.enqueue(b"NOOP\r\n");
        assert_eq!(d.next(), Some(Ok(Command::Noop)));
    }

    #[test]
    fn auth_line_limit() {
        let mut d = Pop3Decoder::new();
        // 510 octets of content: "AUTH PLAIN " (11) + 499 base64-ish chars is not
        // valid base64, so use a valid 496-char encoding + "=" padding check.
        let data = vec![b'x'; 372]; // 372 octets → 496 base64 chars
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &data);
        let line = format!("AUTH PLAIN {b64}\r\n");
        assert!(line.len() <= MAX_AUTH_LINE && line.len() > MAX_COMMAND_LINE);
        d.enqueue(line.as_bytes());
        match d.next() {
            Some(Ok(Command::Auth {
                initial_response: Some(ir),
                ..
            })) => {
                assert_eq!(ir, SaslData::new(data));
            }
            other => panic!("{other:?}"),
        }
        let too_long = format!("AUTH PLAIN {}\r\n", "A".repeat(MAX_AUTH_LINE));
        d.enqueue(too_long.as_bytes());
        assert_eq!(
            d.next(),
            Some(Err(ParseError::LineTooLong {
                limit: MAX_AUTH_LINE
            }))
        );
        // A non-AUTH line between 255 and 512 octets is too long.
        let user = format!("USER {}\r\n", "b".repeat(300));
        d.enqueue(user.as_bytes());
        assert_eq!(
            d.next(),
            Some(Err(ParseError::LineTooLong {
                limit: MAX_COMMAND_LINE
            }))
        );
    }

    #[test]
    fn over_long_line_is_not_buffered() {
        let mut d = Pop3Decoder::new();
        d.enqueue(b"NOOP\r\n");
        assert_eq!(d.next(), Some(Ok(Command::Noop)));
        for _ in 0..10_000 {
            d.enqueue(&[b'A'; 1024]);
            assert!(d.buffered_partial() < MAX_SASL_LINE);
            assert!(!d.has_line());
        }
        d.enqueue(b"AAAA\r\nSTAT\r\n");
        assert_eq!(
            d.next(),
            Some(Err(ParseError::LineTooLong {
                limit: MAX_COMMAND_LINE
            }))
        );
        assert_eq!(d.next(), Some(Ok(Command::Stat)));
        assert_eq!(d.next(), None);
    }

    #[test]
    fn over_long_line_error_keeps_its_place_in_a_pipeline() {
        let mut d = Pop3Decoder::new();
        let mut input = b"STAT\r\n".to_vec();
        input.extend(vec![b'x'; 20_000]);
        input.extend(b"\r\nNOOP\r\n");
        d.enqueue(&input);
        assert_eq!(d.next(), Some(Ok(Command::Stat)));
        assert_eq!(
            d.next(),
            Some(Err(ParseError::LineTooLong {
                limit: MAX_COMMAND_LINE
            }))
        );
        assert_eq!(d.next(), Some(Ok(Command::Noop)));
    }

    #[test]
    fn sasl_lines_get_the_longer_limit() {
        let mut d = Pop3Decoder::new();
        d.enqueue(b"AUTH PLAIN\r\n");
        assert!(matches!(
            d.next(),
            Some(Ok(Command::Auth {
                initial_response: None,
                ..
            }))
        ));
        let data = vec![7u8; 6000]; // 8000 base64 chars
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &data);
        for chunk in b64.as_bytes().chunks(100) {
            d.enqueue(chunk);
        }
        assert_eq!(d.next_sasl_response(), None);
        d.enqueue(b"\r\n");
        assert_eq!(
            d.next_sasl_response(),
            Some(Ok(SaslResponse::Data(SaslData::new(data))))
        );
        // Back to commands: a 1000-octet line is too long again.
        d.enqueue(&[b'A'; 1000]);
        d.enqueue(b"\r\n");
        assert_eq!(
            d.next(),
            Some(Err(ParseError::LineTooLong {
                limit: MAX_COMMAND_LINE
            }))
        );
        // And a SASL line over 8 KiB is dropped.
        d.enqueue(&[b'A'; MAX_SASL_LINE]);
        d.enqueue(b"\r\n");
        assert_eq!(
            d.next_sasl_response(),
            Some(Err(ParseError::LineTooLong {
                limit: MAX_SASL_LINE
            }))
        );
        d.enqueue(b"*\r\n");
        assert_eq!(d.next_sasl_response(), Some(Ok(SaslResponse::Cancel)));
    }

    /// F1 (docs/fuzzing.md): the same bytes give the same results however
    /// the stream is split and whatever is queued before them.
    #[test]
    fn over_long_lines_are_reported_alike_however_they_arrive() {
        let mut stream = b"NOOP\r\n".to_vec();
        stream.extend(vec![b'x'; 600]);
        stream.extend(b"\r\nAUTH PLAIN ");
        stream.extend(vec![b'A'; 9_000]);
        stream.extend(b"\r\nUSER ");
        stream.extend(vec![b'u'; 20_000]);
        stream.extend(b"\r\nSTAT\r\nRETR 1");
        stream.extend(vec![b'9'; 563]);
        let mut whole = Pop3Decoder::new();
        whole.enqueue(&stream);
        let expected = drain(&mut whole);
        assert_eq!(
            expected,
            vec![
                Ok(Command::Noop),
                Err(ParseError::LineTooLong {
                    limit: MAX_COMMAND_LINE
                }),
                Err(ParseError::LineTooLong {
                    limit: MAX_AUTH_LINE
                }),
                Err(ParseError::LineTooLong {
                    limit: MAX_COMMAND_LINE
                }),
                Ok(Command::Stat),
            ]
        );
        let partial = whole.buffered_partial();
        assert_eq!(partial, 6 + 563);
        for size in [1, 2, 3, 7, 64, 255, 256, 511, 512, 513, 4096, 8191, 8192] {
            let mut d = Pop3Decoder::new();
            let mut got = Vec::new();
            for chunk in stream.chunks(size) {
                d.enqueue(chunk);
                got.extend(drain(&mut d));
            }
            assert_eq!(got, expected, "chunk size {size}");
            assert_eq!(d.buffered_partial(), partial, "chunk size {size}");
        }
    }

    /// Replays the fuzz target's chunking invariant on the two F1 crash
    /// files (docs/fuzzing.md), with the target's input layout.
    #[test]
    fn f1_fuzz_artifacts_now_hold_the_invariant() {
        fn run(stream: &[u8], sizes: &[u8], chunked: bool) -> (Vec<String>, usize) {
            let mut d = Pop3Decoder::new();
            let mut items = Vec::new();
            let mut sasl_next = false;
            let mut drain = |d: &mut Pop3Decoder, items: &mut Vec<String>| {
                loop {
                    if sasl_next {
                        let Some(r) = d.next_sasl_response() else {
                            return;
                        };
                        sasl_next = false;
                        items.push(format!("{r:?}"));
                    } else {
                        let Some(r) = d.next() else { return };
                        if let Ok(Command::Auth {
                            mechanism: Some(_),
                            initial_response: None,
                        }) = &r
                        {
                            sasl_next = true;
                        }
                        items.push(format!("{r:?}"));
                    }
                }
            };
            if chunked {
                let mut rest = stream;
                let mut i = 0;
                while !rest.is_empty() {
                    let size = sizes
                        .get(i % sizes.len().max(1))
                        .map_or(1, |&b| usize::from(b) + 1)
                        .min(rest.len());
                    let (chunk, tail) = rest.split_at(size);
                    d.enqueue(chunk);
                    drain(&mut d, &mut items);
                    rest = tail;
                    i += 1;
                }
            } else {
                d.enqueue(stream);
                drain(&mut d, &mut items);
            }
            (items, d.buffered_partial())
        }
        let artifacts: [&[u8]; 2] = [
            include_bytes!(
                "../fuzz/artifacts-known/pop3_command/crash-101b5b943c8bfd0063fd3f8e5fa77b8afcfbe26d"
            ),
            include_bytes!(
                "../fuzz/artifacts-known/pop3_command/crash-c078ddad8e1edd274c28f2bcf7bb86ebac61aca3"
            ),
        ];
        for data in artifacts {
            let (&head, rest) = data.split_first().unwrap();
            let k = usize::from(head % 8).min(rest.len());
            let (sizes, stream) = rest.split_at(k);
            assert_eq!(run(stream, sizes, false), run(stream, sizes, true));
        }
    }

    #[test]
    fn empty_lines_and_cr_inside() {
        let mut d = Pop3Decoder::new();
        d.enqueue(b"\r\n\nST\rAT\r\n");
        assert_eq!(d.next(), Some(Err(ParseError::Empty)));
        assert_eq!(d.next(), Some(Err(ParseError::Empty)));
        assert_eq!(d.next(), Some(Err(ParseError::ControlCharacter)));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_input_never_panics_and_stays_bounded(
            input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20_000),
            chunk in 1usize..700,
            sasl_every in 1usize..5,
        ) {
            let mut d = Pop3Decoder::new();
            let mut taken = 0usize;
            for piece in input.chunks(chunk) {
                d.enqueue(piece);
                proptest::prop_assert!(d.buffered_partial() < MAX_SASL_LINE);
                loop {
                    taken += 1;
                    let got = if taken.is_multiple_of(sasl_every) {
                                        d.next_sasl_response().map(|r| r.map(|_| ()))
                    } else {
                        d.next().map(|r| r.map(|_| ()))
                    };
                    if got.is_none() {
                        break;
                    }
                }
            }
        }
    }

    #[test]
    fn auth_keyword_detection() {
        assert!(is_auth_line(b"AUTH"));
        assert!(is_auth_line(b"auth PLAIN x"));
        assert!(!is_auth_line(b"AUTHX"));
        assert!(!is_auth_line(b"AUT"));
    }
}
