//! Stage 1 of parsing: finding where a command ends (RFC 3501 §2.2, §4.3,
//! §7.5; LITERAL+ RFC 7888; APPENDLIMIT RFC 7889).
//!
//! A command is one or more lines; a line that ends in `{n}` or `{n+}` is
//! followed by exactly `n` octets of literal data and then more of the
//! command. The framer moves input into one command buffer and checks every
//! limit *before* it buffers the bytes the limit is about, so a client can
//! never make the server hold more than the limits allow:
//!
//! - a line (the text between literals) is at most [`Limits::line`] bytes;
//! - one command has at most [`Limits::literals`] literals;
//! - the lines and literals of a command other than APPEND add up to at most
//!   [`Limits::command`] bytes;
//! - the literal data of an APPEND adds up to at most [`Limits::append`]
//!   bytes (APPENDLIMIT); an over-size APPEND gets `NO [TOOBIG]`, anything
//!   else `BAD`;
//! - literal sizes are parsed with checked arithmetic (`{18446744073709551616}`
//!   is simply too large).
//!
//! A synchronising literal within the limits yields
//! [`Frame::ContinuationNeeded`] (the caller sends `+`); one over the limits
//! is refused *without* a `+`, so the client never sends the data. A
//! non-synchronising literal over the limits cannot be refused before the
//! data arrives: that rejection is fatal (RFC 7888 §4 permits closing).
//! An over-long line is refused once and its remainder discarded up to the
//! next LF, so garbage costs no memory.
//!
//! Spooling (off unless [`Framer::set_spool_threshold`] is set): an APPEND
//! literal larger than the threshold is not buffered. Its octets are handed
//! out as they arrive, as [`Frame::LiteralChunk`]s no larger than the input
//! at hand, and its announcement `{n}` / `{n+}` CRLF is replaced in the
//! command by the marker `{~n}`; the command then completes as
//! [`Frame::CompleteSpooled`], which lists the spooled sizes so the parser
//! can tell the framer's markers from a client's imitation. Every limit is
//! checked exactly as without spooling (a spooled literal counts towards
//! APPENDLIMIT, not towards the command limit).

use memchr::memchr;

use crate::command::is_tag_char;

/// The limits one command must keep. The session picks them per state
/// (8 KiB lines before login, 64 KiB after).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest line, CRLF included.
    pub line: usize,
    /// Total of line and literal bytes of a command other than APPEND.
    pub command: u64,
    /// Total literal bytes of an APPEND (APPENDLIMIT).
    pub append: u64,
    /// Literals per command.
    pub literals: usize,
}

impl Limits {
    /// Default literal count cap: a Dovecot login process once crashed on
    /// 50,000 literals in one command.
    pub const DEFAULT_LITERALS: usize = 1_000;
}

/// Why a command was refused by the framer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A line exceeded [`Limits::line`].
    LineTooLong,
    /// A literal would take the command over [`Limits::command`].
    LiteralTooLarge,
    /// An APPEND's literal data would exceed [`Limits::append`] (`NO [TOOBIG]`).
    TooBig,
    /// More than [`Limits::literals`] literals.
    TooManyLiterals,
}

impl Refusal {
    /// Human-readable text for the BAD/NO response.
    pub fn text(self) -> &'static str {
        match self {
            Refusal::LineTooLong => "Command line too long",
            Refusal::LiteralTooLarge => "Literal too large",
            Refusal::TooBig => "Message too large",
            Refusal::TooManyLiterals => "Too many literals in one command",
        }
    }
}

/// What the framer found in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A whole command: its lines and literal data in wire order, final CRLF included.
    Complete(Vec<u8>),
    /// The next octets of a spooled APPEND literal (never empty); `last`
    /// on the literal's final chunk.
    LiteralChunk {
        /// The octets, in wire order.
        data: Vec<u8>,
        /// This chunk ends the literal.
        last: bool,
    },
    /// A whole command some of whose APPEND literals were spooled: as
    /// [`Frame::Complete`], with each spooled literal (announcement and
    /// data) replaced by the marker `{~n}`.
    CompleteSpooled {
        /// The command with markers.
        command: Vec<u8>,
        /// Sizes of the spooled literals, in order.
        spooled: Vec<u64>,
        /// A spooled literal contained a NUL octet (the command is invalid).
        nul: bool,
    },
    /// A synchronising literal of this size was announced and accepted: send `+`.
    ContinuationNeeded(u64),
    /// The command was refused; everything buffered for it is dropped.
    Refused {
        /// The command's tag, if it could be read.
        tag: Option<Vec<u8>>,
        /// Why.
        reason: Refusal,
        /// The connection must be closed (an over-limit `{n+}` literal whose
        /// data is already on its way).
        fatal: bool,
    },
}

/// Where the framer is within the current command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a line; `len` bytes of it are buffered already.
    Line { len: usize },
    /// Reading literal data; `remaining` octets still to come.
    Literal { remaining: u64 },
    /// Passing a spooled literal's data on; `remaining` octets still to come.
    Spool { remaining: u64 },
    /// Discarding the rest of an over-long line, up to its LF.
    SkipLine,
}

/// A literal announcement at the end of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Announced {
    /// Announced size; `None` when it does not fit in 64 bits.
    size: Option<u64>,
    /// `{n+}` (LITERAL+): the data follows without waiting for `+`.
    non_sync: bool,
}

/// The framer: input in, [`Frame`]s out. Sans-I/O.
#[derive(Debug)]
pub struct Framer {
    /// Bytes received and not yet consumed.
    input: Vec<u8>,
    /// Start of the unconsumed part of `input`.
    pos: usize,
    /// The command assembled so far.
    command: Vec<u8>,
    /// Literals seen in the current command.
    literals: usize,
    /// Literal bytes accepted for the current command.
    literal_bytes: u64,
    /// Whether the current command is an APPEND (known after its first line).
    is_append: bool,
    /// Tag of the current command, once its first line has been seen.
    tag: Option<Vec<u8>>,
    state: State,
    /// APPEND literals larger than this are spooled (`None`: never).
    spool_threshold: Option<u64>,
    /// Sizes of the current command's spooled literals.
    spooled: Vec<u64>,
    /// A spooled literal of the current command contained a NUL.
    spooled_nul: bool,
    /// Octets by which the markers are shorter than the announcements they
    /// replace (so limits count the command as sent).
    spool_shrink: u64,
    /// The APPEND's first literal is its mailbox name (never spooled).
    mailbox_literal: bool,
}

impl Default for Framer {
    fn default() -> Self {
        Self::new()
    }
}

impl Framer {
    /// An empty framer at the start of a command.
    pub fn new() -> Self {
        Framer {
            input: Vec::new(),
            pos: 0,
            command: Vec::new(),
            literals: 0,
            literal_bytes: 0,
            is_append: false,
            tag: None,
            state: State::Line { len: 0 },
            spool_threshold: None,
            spooled: Vec::new(),
            spooled_nul: false,
            spool_shrink: 0,
            mailbox_literal: false,
        }
    }

    /// From the next literal on, APPEND literals larger than `threshold`
    /// octets are spooled (see the module documentation); `None` turns
    /// spooling off.
    pub fn set_spool_threshold(&mut self, threshold: Option<u64>) {
        self.spool_threshold = threshold;
    }

    /// Adds received bytes.
    pub fn enqueue_input(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos == self.input.len() {
            self.input.clear();
            self.pos = 0;
        }
        self.input.extend_from_slice(bytes);
    }

    /// Bytes received and not consumed yet.
    pub fn pending_input(&self) -> usize {
        self.input.len() - self.pos
    }

    /// Takes every received byte not consumed yet, leaving the framer empty.
    /// Used when the byte stream changes meaning between commands (COMPRESS,
    /// RFC 4978: what follows the command is compressed).
    pub fn take_unconsumed(&mut self) -> Vec<u8> {
        let rest = self.input.split_off(self.pos);
        self.input.clear();
        self.pos = 0;
        rest
    }

    /// Whether the framer is between commands (no partial command buffered).
    pub fn is_idle(&self) -> bool {
        self.command.is_empty() && self.state == State::Line { len: 0 }
    }

    /// Compacts the input buffer once consumed bytes dominate it.
    fn compact(&mut self) {
        if self.pos == self.input.len() {
            self.input.clear();
            self.pos = 0;
        } else if self.pos > 4096 && self.pos * 2 > self.input.len() {
            self.input.drain(..self.pos);
            self.pos = 0;
        }
    }

    fn reset_command(&mut self) {
        self.command = Vec::new();
        self.literals = 0;
        self.literal_bytes = 0;
        self.is_append = false;
        self.tag = None;
        self.state = State::Line { len: 0 };
        self.spooled = Vec::new();
        self.spooled_nul = false;
        self.spool_shrink = 0;
        self.mailbox_literal = false;
    }

    /// Takes one raw line (AUTHENTICATE response, IDLE's `DONE`), without
    /// literal processing. `None`: more input is needed. `Some(Err(()))`:
    /// the line exceeded `limit` and is being discarded.
    pub fn next_raw_line(&mut self, limit: usize) -> Option<Result<Vec<u8>, Refusal>> {
        let frame = self.next(
            &Limits {
                line: limit,
                command: limit as u64,
                append: 0,
                literals: 0,
            },
            false,
        );
        let result = match frame? {
            Frame::Complete(mut line) => {
                strip_line_end(&mut line);
                Ok(line)
            }
            Frame::Refused { reason, .. } => Err(reason),
            // Literals are not interpreted (nor spooled) in raw mode.
            Frame::ContinuationNeeded(_)
            | Frame::LiteralChunk { .. }
            | Frame::CompleteSpooled { .. } => Err(Refusal::LiteralTooLarge),
        };
        Some(result)
    }

    /// Finds the next frame. `None`: more input is needed.
    pub fn next_frame(&mut self, limits: &Limits) -> Option<Frame> {
        self.next(limits, true)
    }

    fn next(&mut self, limits: &Limits, literals: bool) -> Option<Frame> {
        let frame = self.step(limits, literals);
        self.compact();
        frame
    }

    fn step(&mut self, limits: &Limits, literals: bool) -> Option<Frame> {
        loop {
            let available = &self.input[self.pos..];
            match self.state {
                State::SkipLine => {
                    let Some(lf) = memchr(b'\n', available) else {
                        self.pos = self.input.len();
                        return None;
                    };
                    self.pos += lf + 1;
                    self.reset_command();
                }
                State::Literal { remaining } => {
                    if available.is_empty() {
                        return None;
                    }
                    let take = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(available.len());
                    self.command.extend_from_slice(&available[..take]);
                    self.pos += take;
                    let remaining = remaining - take as u64;
                    self.state = if remaining == 0 {
                        State::Line { len: 0 }
                    } else {
                        State::Literal { remaining }
                    };
                }
                State::Spool { remaining } => {
                    if available.is_empty() {
                        return None;
                    }
                    let take = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(available.len());
                    let data = available[..take].to_vec();
                    self.spooled_nul |= memchr(0, &data).is_some();
                    self.pos += take;
                    let remaining = remaining - take as u64;
                    self.state = if remaining == 0 {
                        State::Line { len: 0 }
                    } else {
                        State::Spool { remaining }
                    };
                    return Some(Frame::LiteralChunk {
                        data,
                        last: remaining == 0,
                    });
                }
                State::Line { len } => {
                    let lf = memchr(b'\n', available);
                    let chunk = lf.map_or(available.len(), |i| i + 1);
                    if len + chunk > limits.line || self.over_command(chunk as u64, limits) {
                        // Checked before buffering: the bytes are never stored.
                        // The tag is at the start of the command, which may
                        // lie before a literal already read.
                        let tag = self.tag.clone().or_else(|| {
                            if self.command.is_empty() {
                                extract_tag(available)
                            } else {
                                extract_tag(&self.command)
                            }
                        });
                        self.pos += chunk;
                        self.command = Vec::new();
                        self.state = State::SkipLine;
                        if lf.is_some() {
                            self.reset_command();
                        }
                        return Some(Frame::Refused {
                            tag,
                            reason: Refusal::LineTooLong,
                            fatal: false,
                        });
                    }
                    let line_start = self.command.len() - len;
                    self.command.extend_from_slice(&available[..chunk]);
                    self.pos += chunk;
                    if lf.is_none() {
                        self.state = State::Line { len: len + chunk };
                        return None;
                    }
                    if self.tag.is_none() {
                        self.tag = extract_tag(&self.command);
                        self.is_append = is_append(&self.command);
                        self.mailbox_literal =
                            self.is_append && append_mailbox_is_literal(&self.command);
                    }
                    let line = &self.command[line_start..];
                    let announced = if literals {
                        literal_announcement(line)
                    } else {
                        None
                    };
                    let Some(announced) = announced else {
                        let command = std::mem::take(&mut self.command);
                        let spooled = std::mem::take(&mut self.spooled);
                        let nul = self.spooled_nul;
                        self.reset_command();
                        if spooled.is_empty() {
                            return Some(Frame::Complete(command));
                        }
                        return Some(Frame::CompleteSpooled {
                            command,
                            spooled,
                            nul,
                        });
                    };
                    if let Some(frame) = self.accept_literal(announced, limits) {
                        return Some(frame);
                    }
                }
            }
        }
    }

    /// Whether `extra` more bytes would take a non-APPEND command over its total.
    fn over_command(&self, extra: u64, limits: &Limits) -> bool {
        // An APPEND's literal data (the part of it in `command`: spooled
        // data is not) does not count towards the command limit.
        let spooled: u64 = self.spooled.iter().sum();
        let line_bytes =
            (self.command.len() as u64 + self.spool_shrink).saturating_sub(if self.is_append {
                self.literal_bytes - spooled
            } else {
                0
            });
        line_bytes.saturating_add(extra) > limits.command
    }

    /// Checks a literal announcement against the limits. `None`: a `{n+}`
    /// literal was accepted and reading goes on.
    fn accept_literal(&mut self, announced: Announced, limits: &Limits) -> Option<Frame> {
        self.literals += 1;
        let refusal = if self.literals > limits.literals {
            Some(Refusal::TooManyLiterals)
        } else {
            match announced.size {
                None => Some(if self.is_append {
                    Refusal::TooBig
                } else {
                    Refusal::LiteralTooLarge
                }),
                Some(size) if self.is_append => (self.literal_bytes.saturating_add(size)
                    > limits.append)
                    .then_some(Refusal::TooBig),
                Some(size) => self
                    .over_command(size, limits)
                    .then_some(Refusal::LiteralTooLarge),
            }
        };
        if let Some(reason) = refusal {
            let tag = self.tag.clone();
            self.reset_command();
            return Some(Frame::Refused {
                tag,
                reason,
                fatal: announced.non_sync,
            });
        }
        // `size` is Some here: a None size was refused above.
        let size = announced.size.unwrap_or(0);
        self.literal_bytes += size;
        // Every literal of an APPEND after its mailbox is a message
        // (flags and date-time are never literals).
        let is_message = self.is_append && !(self.mailbox_literal && self.literals == 1);
        if is_message && self.spool_threshold.is_some_and(|t| size > t) {
            // The announcement (`{n}` or `{n+}`, then CRLF) ends the
            // command so far; it becomes the marker, the data goes out
            // as chunks.
            let before = self.command.len();
            if let Some(open) = memchr::memrchr(b'{', &self.command) {
                self.command.truncate(open);
            }
            self.command
                .extend_from_slice(format!("{{~{size}}}").as_bytes());
            self.spool_shrink += (before as u64).saturating_sub(self.command.len() as u64);
            self.spooled.push(size);
            self.state = State::Spool { remaining: size };
            return (!announced.non_sync).then_some(Frame::ContinuationNeeded(size));
        }
        self.state = if size == 0 {
            State::Line { len: 0 }
        } else {
            State::Literal { remaining: size }
        };
        if announced.non_sync {
            None
        } else {
            Some(Frame::ContinuationNeeded(size))
        }
    }
}

/// Removes the trailing LF and an optional CR before it.
fn strip_line_end(line: &mut Vec<u8>) {
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
}

/// Reads a `{n}` / `{n+}` announcement at the end of a line (CRLF or LF).
fn literal_announcement(line: &[u8]) -> Option<Announced> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let open = memchr::memrchr(b'{', line)?;
    let mut inner = &line[open + 1..];
    let non_sync = inner.last() == Some(&b'+');
    if non_sync {
        inner = &inner[..inner.len() - 1];
    }
    if inner.is_empty() || !inner.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let size = inner.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    });
    Some(Announced { size, non_sync })
}

/// The tag at the start of a command, if it is a valid one followed by SP.
fn extract_tag(bytes: &[u8]) -> Option<Vec<u8>> {
    let end = bytes.iter().position(|&b| !is_tag_char(b))?;
    if end == 0 || bytes[end] != b' ' || end > crate::Tag::MAX_LEN {
        return None;
    }
    Some(bytes[..end].to_vec())
}

/// Whether an APPEND's first line gives the mailbox as a literal
/// (`tag APPEND {n}`), so its first literal is not a message.
fn append_mailbox_is_literal(line: &[u8]) -> bool {
    let Some(sp) = memchr(b' ', line) else {
        return false;
    };
    line.get(sp + 8) == Some(&b'{')
}

/// Whether the first line names the APPEND command.
fn is_append(line: &[u8]) -> bool {
    let Some(sp) = memchr(b' ', line) else {
        return false;
    };
    let rest = &line[sp + 1..];
    rest.len() > 6 && rest[..6].eq_ignore_ascii_case(b"APPEND") && rest[6] == b' '
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            line: 100,
            command: 200,
            append: 1000,
            literals: 3,
        }
    }

    /// Feeds `input` in chunks of `chunk` bytes and collects every frame,
    /// answering each continuation request (the caller's job) by doing nothing.
    fn frames(input: &[u8], chunk: usize, limits: &Limits) -> Vec<Frame> {
        let mut framer = Framer::new();
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            framer.enqueue_input(piece);
            while let Some(frame) = framer.next_frame(limits) {
                out.push(frame);
            }
        }
        out
    }

    #[test]
    fn simple_lines() {
        let f = frames(b"a NOOP\r\nb CAPABILITY\r\n", 512, &limits());
        assert_eq!(
            f,
            vec![
                Frame::Complete(b"a NOOP\r\n".to_vec()),
                Frame::Complete(b"b CAPABILITY\r\n".to_vec())
            ]
        );
    }

    #[test]
    fn sync_literal_asks_for_continuation() {
        let f = frames(b"a LOGIN {3}\r\nbob {2}\r\npw\r\n", 512, &limits());
        assert_eq!(
            f,
            vec![
                Frame::ContinuationNeeded(3),
                Frame::ContinuationNeeded(2),
                Frame::Complete(b"a LOGIN {3}\r\nbob {2}\r\npw\r\n".to_vec()),
            ]
        );
    }

    #[test]
    fn literal_plus_needs_no_continuation() {
        let f = frames(b"a LOGIN {3+}\r\nbob {2+}\r\npw\r\n", 512, &limits());
        assert_eq!(
            f,
            vec![Frame::Complete(
                b"a LOGIN {3+}\r\nbob {2+}\r\npw\r\n".to_vec()
            )]
        );
    }

    #[test]
    fn zero_literal() {
        let f = frames(b"a LOGIN {0}\r\n {0+}\r\n\r\n", 512, &limits());
        assert_eq!(
            f,
            vec![
                Frame::ContinuationNeeded(0),
                Frame::Complete(b"a LOGIN {0}\r\n {0+}\r\n\r\n".to_vec())
            ]
        );
    }

    #[test]
    fn literal_containing_crlf_and_braces_is_data() {
        let f = frames(b"a X {8}\r\n{2}\r\n\r\nz\r\n", 512, &limits());
        assert_eq!(
            f,
            vec![
                Frame::ContinuationNeeded(8),
                Frame::Complete(b"a X {8}\r\n{2}\r\n\r\nz\r\n".to_vec())
            ]
        );
    }

    #[test]
    fn line_limit_is_checked_before_buffering() {
        let mut framer = Framer::new();
        let mut line = b"a NOOP ".to_vec();
        line.extend(std::iter::repeat_n(b'x', 200));
        framer.enqueue_input(&line);
        let f = framer.next_frame(&limits());
        assert_eq!(
            f,
            Some(Frame::Refused {
                tag: Some(b"a".to_vec()),
                reason: Refusal::LineTooLong,
                fatal: false
            })
        );
        assert!(
            framer.command.is_empty(),
            "nothing of the long line is kept"
        );
        // The rest of the line is skipped, the next command is read normally.
        framer.enqueue_input(&[b'y'; 5000]);
        assert_eq!(framer.next_frame(&limits()), None);
        assert!(framer.input.len() < 100, "discarded bytes are not kept");
        framer.enqueue_input(b"yy\r\nb NOOP\r\n");
        assert_eq!(
            framer.next_frame(&limits()),
            Some(Frame::Complete(b"b NOOP\r\n".to_vec()))
        );
    }

    #[test]
    fn line_exactly_at_limit_passes() {
        let mut line = b"a NOOP ".to_vec();
        line.extend(std::iter::repeat_n(b'x', 100 - 9));
        line.extend(b"\r\n");
        assert_eq!(line.len(), 100);
        assert_eq!(
            frames(&line, 7, &limits()),
            vec![Frame::Complete(line.clone())]
        );
        line.insert(8, b'x');
        assert!(matches!(
            frames(&line, 7, &limits())[0],
            Frame::Refused {
                reason: Refusal::LineTooLong,
                ..
            }
        ));
    }

    #[test]
    fn oversize_sync_literal_refused_without_continuation() {
        let f = frames(b"a LOGIN {201}\r\nb NOOP\r\n", 512, &limits());
        assert_eq!(
            f,
            vec![
                Frame::Refused {
                    tag: Some(b"a".to_vec()),
                    reason: Refusal::LiteralTooLarge,
                    fatal: false
                },
                Frame::Complete(b"b NOOP\r\n".to_vec())
            ]
        );
    }

    #[test]
    fn append_over_appendlimit_is_toobig() {
        let f = frames(b"A1 APPEND INBOX {1001}\r\n", 512, &limits());
        assert_eq!(
            f,
            vec![Frame::Refused {
                tag: Some(b"A1".to_vec()),
                reason: Refusal::TooBig,
                fatal: false
            }]
        );
        // At the limit it is accepted: APPEND literals do not count against `command`.
        let f = frames(b"A1 APPEND INBOX {1000}\r\n", 512, &limits());
        assert_eq!(f, vec![Frame::ContinuationNeeded(1000)]);
    }

    #[test]
    fn oversize_non_sync_literal_is_fatal() {
        let f = frames(b"a LOGIN {500+}\r\n", 512, &limits());
        assert_eq!(
            f,
            vec![Frame::Refused {
                tag: Some(b"a".to_vec()),
                reason: Refusal::LiteralTooLarge,
                fatal: true
            }]
        );
    }

    #[test]
    fn huge_literal_numbers_do_not_overflow() {
        for n in [
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999999999",
        ] {
            let input = format!("a LOGIN {{{n}}}\r\n");
            let f = frames(input.as_bytes(), 512, &limits());
            assert_eq!(
                f,
                vec![Frame::Refused {
                    tag: Some(b"a".to_vec()),
                    reason: Refusal::LiteralTooLarge,
                    fatal: false
                }]
            );
            let input = format!("a APPEND INBOX {{{n}}}\r\n");
            let f = frames(input.as_bytes(), 512, &limits());
            assert_eq!(
                f,
                vec![Frame::Refused {
                    tag: Some(b"a".to_vec()),
                    reason: Refusal::TooBig,
                    fatal: false
                }]
            );
        }
    }

    #[test]
    fn too_many_literals() {
        let f = frames(
            b"a X {1+}\r\na {1+}\r\nb {1+}\r\nc {1+}\r\nd\r\n",
            512,
            &limits(),
        );
        assert_eq!(
            f[0],
            Frame::Refused {
                tag: Some(b"a".to_vec()),
                reason: Refusal::TooManyLiterals,
                fatal: true
            }
        );
    }

    #[test]
    fn command_total_counts_lines_and_literals() {
        // 11 + 50 + 59 + 50 + 8 = 178 bytes buffered; a third literal of 50 exceeds 200.
        let mut input = Vec::new();
        input.extend(b"a X {50+}\r\n");
        input.extend([b'l'; 50]);
        input.extend(b" ");
        input.extend([b'x'; 50]);
        input.extend(b" {50+}\r\n");
        input.extend([b'm'; 50]);
        input.extend(b" {50+}\r\n");
        let f = frames(&input, 512, &limits());
        assert_eq!(f.len(), 1);
        assert!(matches!(
            f[0],
            Frame::Refused {
                reason: Refusal::LiteralTooLarge,
                ..
            }
        ));
    }

    #[test]
    fn chunking_does_not_change_frames() {
        let script: &[u8] = b"a LOGIN {3}\r\nbob \"pw\"\r\nb APPEND INBOX (\\Seen) {11+}\r\nhello\r\nworld\r\nc FETCH 1:* (BODY[])\r\nd X {500}\r\ne NOOP\r\n";
        let reference = frames(script, script.len(), &limits());
        assert_eq!(reference.len(), 6);
        let mut chunk = 1;
        while chunk <= 512 {
            assert_eq!(
                frames(script, chunk, &limits()),
                reference,
                "chunk size {chunk}"
            );
            chunk *= 2;
        }
    }

    /// Feeds `input` in chunks to a spooling framer; consecutive chunks of
    /// one literal are merged, so the result must not depend on `chunk`.
    fn spooled_frames(input: &[u8], chunk: usize, limits: &Limits, threshold: u64) -> Vec<Frame> {
        let mut framer = Framer::new();
        framer.set_spool_threshold(Some(threshold));
        let mut out: Vec<Frame> = Vec::new();
        for piece in input.chunks(chunk) {
            framer.enqueue_input(piece);
            while let Some(frame) = framer.next_frame(limits) {
                if let Frame::LiteralChunk { data, last } = &frame {
                    assert!(!data.is_empty());
                    assert!(
                        data.len() <= chunk,
                        "a chunk is bounded by the input at hand"
                    );
                    if let Some(Frame::LiteralChunk {
                        data: merged,
                        last: false,
                    }) = out.last_mut()
                    {
                        merged.extend_from_slice(data);
                        if let Some(Frame::LiteralChunk { last: l, .. }) = out.last_mut() {
                            *l = *last;
                        }
                        continue;
                    }
                }
                out.push(frame);
            }
        }
        out
    }

    #[test]
    fn large_append_literals_are_spooled() {
        let script: &[u8] =
            b"a APPEND INBOX (\\Seen) {12}\r\nhello world!\r\nb APPEND x {3}\r\nabc {20+}\r\n01234567890123456789 {5+}\r\nsmall\r\n";
        let reference = spooled_frames(script, script.len(), &limits(), 10);
        assert_eq!(
            reference,
            vec![
                Frame::ContinuationNeeded(12),
                Frame::LiteralChunk {
                    data: b"hello world!".to_vec(),
                    last: true
                },
                Frame::CompleteSpooled {
                    command: b"a APPEND INBOX (\\Seen) {~12}\r\n".to_vec(),
                    spooled: vec![12],
                    nul: false
                },
                Frame::ContinuationNeeded(3),
                Frame::LiteralChunk {
                    data: b"01234567890123456789".to_vec(),
                    last: true
                },
                Frame::CompleteSpooled {
                    command: b"b APPEND x {3}\r\nabc {~20} {5+}\r\nsmall\r\n".to_vec(),
                    spooled: vec![20],
                    nul: false
                },
            ]
        );
        for chunk in 1..=script.len() {
            assert_eq!(
                spooled_frames(script, chunk, &limits(), 10),
                reference,
                "chunk size {chunk}"
            );
        }
        // Without a threshold nothing changes.
        assert!(
            frames(script, 7, &limits())
                .iter()
                .all(|f| matches!(f, Frame::Complete(_) | Frame::ContinuationNeeded(_)))
        );
    }

    #[test]
    fn only_append_message_literals_are_spooled() {
        // The mailbox literal of an APPEND and literals of other commands stay inline.
        let script: &[u8] = b"a APPEND {12}\r\nINBOX.folder {12+}\r\nmessage-data\r\nb LOGIN {12+}\r\nabcdefghijkl x\r\n";
        let f = spooled_frames(script, 5, &limits(), 10);
        assert_eq!(
            f,
            vec![
                Frame::ContinuationNeeded(12),
                Frame::LiteralChunk {
                    data: b"message-data".to_vec(),
                    last: true
                },
                Frame::CompleteSpooled {
                    command: b"a APPEND {12}\r\nINBOX.folder {~12}\r\n".to_vec(),
                    spooled: vec![12],
                    nul: false
                },
                Frame::Complete(b"b LOGIN {12+}\r\nabcdefghijkl x\r\n".to_vec()),
            ]
        );
    }

    #[test]
    fn spooling_keeps_every_limit() {
        // APPENDLIMIT counts spooled literals: 600 + 401 > 1000, refused before `+`.
        let mut script = b"a APPEND INBOX {600+}\r\n".to_vec();
        script.extend([b'x'; 600]);
        script.extend(b" {401}\r\n");
        let f = spooled_frames(&script, 64, &limits(), 10);
        assert_eq!(
            f.last(),
            Some(&Frame::Refused {
                tag: Some(b"a".to_vec()),
                reason: Refusal::TooBig,
                fatal: false
            })
        );
        assert_eq!(f.len(), 2, "{f:?}");
        // Literal count and line length as without spooling.
        let script = b"a APPEND INBOX {11+}\r\nhello world {11+}\r\nhello world {11+}\r\nhello world {11+}\r\n";
        assert!(matches!(
            spooled_frames(script, 8, &limits(), 10).last(),
            Some(Frame::Refused {
                reason: Refusal::TooManyLiterals,
                fatal: true,
                ..
            })
        ));
        let mut script = b"a APPEND INBOX {11+}\r\nhello world ".to_vec();
        script.extend([b'y'; 120]);
        script.extend(b"\r\nb NOOP\r\n");
        let f = spooled_frames(&script, 8, &limits(), 10);
        assert!(matches!(
            f[1],
            Frame::Refused {
                reason: Refusal::LineTooLong,
                ..
            }
        ));
        assert_eq!(f[2], Frame::Complete(b"b NOOP\r\n".to_vec()));
        // A NUL in spooled data is reported with the command.
        let f = spooled_frames(
            b"a APPEND INBOX {11+}\r\nhello\0world\r\n",
            4,
            &limits(),
            10,
        );
        assert!(matches!(
            f.last(),
            Some(Frame::CompleteSpooled { nul: true, .. })
        ));
    }

    #[test]
    fn raw_line_mode() {
        let mut framer = Framer::new();
        framer.enqueue_input(b"dGVzdA== {5}\r\nDONE\r\n");
        assert_eq!(
            framer.next_raw_line(100),
            Some(Ok(b"dGVzdA== {5}".to_vec()))
        );
        assert_eq!(framer.next_raw_line(100), Some(Ok(b"DONE".to_vec())));
        assert_eq!(framer.next_raw_line(100), None);
        framer.enqueue_input(&[b'x'; 200]);
        assert_eq!(framer.next_raw_line(100), Some(Err(Refusal::LineTooLong)));
    }
}
