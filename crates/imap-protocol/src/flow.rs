//! The receiving side of a server connection: framing (stage 1) plus the
//! grammar (stage 2), and what the next input is expected to be.
//!
//! Normally the next input is a command. After the session answers
//! `AUTHENTICATE` with a `+` challenge, the next line is a SASL response
//! (RFC 3501 §6.2.2: base64, or `*` to cancel); after `IDLE`'s `+`, it is
//! `DONE` (RFC 2177). The session says so with [`Receiver::expect`]; the
//! receiver then returns that line raw instead of parsing a command.

use crate::framing::{Frame, Framer, Limits, Refusal};
use crate::parse::{ParseError, parse_command, parse_command_spooled};
use crate::{Command, Tag};

/// What the next line of input is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expect {
    /// A command (with literals).
    #[default]
    Command,
    /// A SASL response line to an AUTHENTICATE challenge.
    AuthenticateResponse,
    /// `DONE`, ending IDLE.
    IdleDone,
}

/// What the receiver found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A parsed command.
    Command(Command),
    /// A synchronising literal was accepted: send a `+` continuation request.
    ContinuationNeeded,
    /// The next octets of a spooled APPEND literal (see
    /// [`Receiver::set_spool_threshold`]); `last` ends the literal. The
    /// command they belong to follows as [`Event::Command`] (its message is
    /// [`crate::AppendData::Spooled`]) or ends as `Refused`/`Malformed`.
    LiteralChunk {
        /// The octets.
        data: Vec<u8>,
        /// This chunk ends the literal.
        last: bool,
    },
    /// The framer refused a command (limits); the session answers BAD or
    /// `NO [TOOBIG]`, and closes if `fatal`.
    Refused {
        /// Tag, when known.
        tag: Option<Tag>,
        /// Which limit.
        reason: Refusal,
        /// The connection must be closed.
        fatal: bool,
    },
    /// A command that did not parse: answer BAD and go on.
    Malformed(ParseError),
    /// The line answering an AUTHENTICATE challenge (CRLF stripped).
    AuthenticateResponse(crate::Secret),
    /// The line ending IDLE: `Ok` for `DONE`, `Err` for anything else.
    IdleDone(Result<(), ()>),
}

/// Framer plus parser plus expectation. Sans-I/O.
#[derive(Debug, Default)]
pub struct Receiver {
    framer: Framer,
    expect: Expect,
}

impl Receiver {
    /// A receiver expecting a command.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds received bytes.
    pub fn enqueue_input(&mut self, bytes: &[u8]) {
        self.framer.enqueue_input(bytes);
    }

    /// Spools APPEND literals larger than `threshold` octets instead of
    /// buffering them ([`crate::Framer::set_spool_threshold`]).
    pub fn set_spool_threshold(&mut self, threshold: Option<u64>) {
        self.framer.set_spool_threshold(threshold);
    }

    /// Sets what the next line is; reset to [`Expect::Command`] once that line is returned.
    pub fn expect(&mut self, expect: Expect) {
        self.expect = expect;
    }

    /// What the next line is expected to be.
    pub fn expecting(&self) -> Expect {
        self.expect
    }

    /// Bytes received and not consumed yet.
    pub fn pending_input(&self) -> usize {
        self.framer.pending_input()
    }

    /// Takes the received bytes not consumed yet (see [`Framer::take_unconsumed`]).
    pub fn take_unconsumed(&mut self) -> Vec<u8> {
        self.framer.take_unconsumed()
    }

    /// The next event, or `None` if more input is needed.
    pub fn next_event(&mut self, limits: &Limits) -> Option<Event> {
        match self.expect {
            Expect::Command => Some(match self.framer.next_frame(limits)? {
                Frame::Complete(bytes) => match parse_command(&bytes) {
                    Ok(command) => Event::Command(command),
                    Err(error) => Event::Malformed(error),
                },
                Frame::CompleteSpooled {
                    command,
                    spooled,
                    nul,
                } => match parse_command_spooled(&command, &spooled, nul) {
                    Ok(command) => Event::Command(command),
                    Err(error) => Event::Malformed(error),
                },
                Frame::LiteralChunk { data, last } => Event::LiteralChunk { data, last },
                Frame::ContinuationNeeded(_) => Event::ContinuationNeeded,
                Frame::Refused { tag, reason, fatal } => Event::Refused {
                    tag: tag.as_deref().and_then(Tag::new),
                    reason,
                    fatal,
                },
            }),
            Expect::AuthenticateResponse => {
                let line = self.framer.next_raw_line(limits.line)?;
                self.expect = Expect::Command;
                Some(match line {
                    Ok(line) => Event::AuthenticateResponse(crate::Secret::new(line)),
                    Err(reason) => Event::Refused {
                        tag: None,
                        reason,
                        fatal: false,
                    },
                })
            }
            Expect::IdleDone => {
                let line = self.framer.next_raw_line(limits.line)?;
                self.expect = Expect::Command;
                Some(Event::IdleDone(match line {
                    Ok(line) if line.eq_ignore_ascii_case(b"DONE") => Ok(()),
                    _ => Err(()),
                }))
            }
        }
    }
}
