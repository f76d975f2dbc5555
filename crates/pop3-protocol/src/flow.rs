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
//! Memory stays bounded: a line that grows past the limit in force is dropped
//! as it arrives, the decoder skips to its LF without keeping any of it, and
//! then reports one [`ParseError::LineTooLong`] in its place, in order with
//! the lines around it. Pipelined lines are kept until drained; the driver
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

/// What kind of line the session expects next; it decides how long the line
/// now arriving may grow before it is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineMode {
    Command,
    SaslResponse,
}

impl LineMode {
    /// The longest line this mode may ever accept, including CRLF.
    fn cap(self) -> usize {
        match self {
            // An AUTH line is a command line; its keyword is not known yet.
            LineMode::Command => MAX_AUTH_LINE,
            LineMode::SaslResponse => MAX_SASL_LINE,
        }
    }
}

/// One framed line.
#[derive(Debug)]
enum Frame {
    /// A complete line without its terminator.
    Line(Vec<u8>),
    /// A line that was dropped because it grew past `limit`.
    TooLong { limit: usize },
}

/// The incremental POP3 line decoder.
#[derive(Debug)]
pub struct Pop3Decoder {
    /// Complete lines (and dropped-line markers) not yet taken.
    frames: VecDeque<Frame>,
    /// The line being received.
    partial: Vec<u8>,
    /// Set while skipping the rest of a line that was too long: holds the
    /// limit it broke.
    skipping: Option<usize>,
    mode: LineMode,
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
            mode: LineMode::Command,
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
        self.mode = LineMode::Command;
        let frame = self.frames.pop_front()?;
        Some(match frame {
            Frame::TooLong { limit } => Err(ParseError::LineTooLong { limit }),
            Frame::Line(line) => {
                let limit = if is_auth_line(&line) {
                    MAX_AUTH_LINE
                } else {
                    MAX_COMMAND_LINE
                };
                if line.len() + 2 > limit {
                    Err(ParseError::LineTooLong { limit })
                } else {
                    parse_command(&line)
                }
            }
        })
    }

    /// Tells the decoder that the next line is a SASL continuation answer
    /// (call after sending `+ `), so that it may be up to [`MAX_SASL_LINE`].
    pub fn expect_sasl_response(&mut self) {
        self.mode = LineMode::SaslResponse;
    }

    /// Takes the next line as a SASL continuation answer. `None` means more
    /// input is needed. After a line was taken the decoder expects commands
    /// again.
    pub fn next_sasl_response(&mut self) -> Option<Result<SaslResponse, ParseError>> {
        let frame = self.frames.pop_front()?;
        self.mode = LineMode::Command;
        Some(match frame {
            Frame::TooLong { limit } => Err(ParseError::LineTooLong { limit }),
            Frame::Line(line) if line.len() + 2 > MAX_SASL_LINE => Err(ParseError::LineTooLong {
                limit: MAX_SASL_LINE,
            }),
            Frame::Line(line) => parse_sasl_response(&line),
        })
    }

    /// The cap for the line now arriving: the current mode's when it is the
    /// next line the session will read, else the largest (the session may
    /// switch modes before it gets there).
    fn partial_cap(&self) -> usize {
        if self.frames.is_empty() {
            self.mode.cap()
        } else {
            MAX_SASL_LINE
        }
    }

    fn extend_partial(&mut self, bytes: &[u8]) {
        if self.skipping.is_some() {
            return;
        }
        let cap = self.partial_cap();
        // The partial line may still hold its CR, hence `cap - 1`.
        if self.partial.len() + bytes.len() > cap - 1 {
            self.partial = Vec::new();
            self.skipping = Some(cap);
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }

    fn end_line(&mut self) {
        if let Some(limit) = self.skipping.take() {
            self.frames.push_back(Frame::TooLong { limit });
            return;
        }
        let mut line = std::mem::take(&mut self.partial);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        self.frames.push_back(Frame::Line(line));
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
            assert!(d.buffered_partial() < MAX_AUTH_LINE);
            assert!(!d.has_line());
        }
        d.enqueue(b"AAAA\r\nSTAT\r\n");
        assert_eq!(
            d.next(),
            Some(Err(ParseError::LineTooLong {
                limit: MAX_AUTH_LINE
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
                limit: MAX_SASL_LINE
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
        d.expect_sasl_response();
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
                limit: MAX_AUTH_LINE
            }))
        );
        // And a SASL line over 8 KiB is dropped.
        d.expect_sasl_response();
        d.enqueue(&[b'A'; MAX_SASL_LINE]);
        d.enqueue(b"\r\n");
        assert_eq!(
            d.next_sasl_response(),
            Some(Err(ParseError::LineTooLong {
                limit: MAX_SASL_LINE
            }))
        );
        d.expect_sasl_response();
        d.enqueue(b"*\r\n");
        assert_eq!(d.next_sasl_response(), Some(Ok(SaslResponse::Cancel)));
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
                        d.expect_sasl_response();
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
