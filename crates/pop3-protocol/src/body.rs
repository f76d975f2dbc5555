//! The message body encoder for RETR and TOP (RFC 1939 §3 multi-line
//! responses, §7 TOP, §11 message format).
//!
//! A stored message becomes the lines of a multi-line response:
//! - bare LF becomes CRLF (CRLF stays CRLF; a lone CR is sent as is);
//! - NUL octets are dropped (old Outlook hangs on them), before anything else
//!   is decided, so the wire never sees them and a NUL never hides a dot;
//! - a line starting with `.` gets one more `.` (byte-stuffing);
//! - an unterminated last line gets a CRLF, then `.` CRLF ends the response.
//!
//! The encoder is incremental: feed the message in chunks of any size and the
//! output is the same as for the whole message, so a 50 MiB message can be
//! streamed from storage to the socket without being held twice.
//!
//! **Sizes.** [`BodyEncoder::message_octets`] counts the octets of the message
//! as the client receives it: after the LF→CRLF and NUL changes, including a
//! CRLF added to an unterminated last line, excluding the stuffed dots (the
//! client removes them) and the final `.` CRLF. That is the "exact size of the
//! message" RFC 1939 §5 wants in LIST and STAT, computed by the same code that
//! RETR sends with, so the two can never disagree. [`message_size`] computes
//! it for a whole message without producing output.

/// Where encoded octets go: a buffer, or a counter when only the size is
/// wanted.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Discards output; the encoder counts octets itself.
struct Discard;

impl Sink for Discard {
    fn put(&mut self, _bytes: &[u8]) {}
}

/// Which part of the message is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// The whole message (RETR).
    Whole,
    /// TOP: still in the header section; then `lines` body lines.
    TopHeaders { lines: u32 },
    /// TOP: in the body with `left` lines still to send (> 0).
    TopBody { left: u32 },
}

/// Incremental encoder of one message body; see the module documentation.
#[derive(Debug, Clone)]
pub struct BodyEncoder {
    part: Part,
    /// The next octet starts a line.
    line_start: bool,
    /// The last octet sent was a CR.
    prev_cr: bool,
    /// The current line has something other than a CR before its LF (TOP
    /// uses this to find the empty line that ends the header section).
    line_has_content: bool,
    /// TOP has sent all it should; further input is ignored.
    done: bool,
    message_octets: u64,
    stuffed_octets: u64,
}

impl BodyEncoder {
    /// An encoder for the whole message (RETR).
    pub fn whole() -> Self {
        Self::with_part(Part::Whole)
    }

    /// An encoder for TOP: the header section, the empty line after it, and
    /// then at most `lines` lines of the body (RFC 1939 §7).
    pub fn top(lines: u32) -> Self {
        Self::with_part(Part::TopHeaders { lines })
    }

    fn with_part(part: Part) -> Self {
        BodyEncoder {
            part,
            line_start: true,
            prev_cr: false,
            line_has_content: false,
            done: false,
            message_octets: 0,
            stuffed_octets: 0,
        }
    }

    /// Encodes the next chunk of the stored message into `out`.
    pub fn encode(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        // RETR: room for the chunk and a CR per ~32 octets (text lines are
        // longer), so lines are appended without growing the buffer line by
        // line. TOP may send far less than the chunk: it grows as it goes.
        if self.part == Part::Whole {
            out.reserve(chunk.len() + chunk.len() / 32);
        }
        self.run(chunk, out);
    }

    /// Advances over the next chunk, counting octets without output (used to
    /// size a message chunk by chunk).
    pub fn count(&mut self, chunk: &[u8]) {
        self.run(chunk, &mut Discard);
    }

    /// Whether a TOP encoder has sent everything it should; the caller may
    /// stop reading the message.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Octets of the message as the client receives it so far (see the
    /// module documentation); complete after [`BodyEncoder::finish`].
    pub fn message_octets(&self) -> u64 {
        self.message_octets
    }

    /// Dots added by byte-stuffing so far.
    pub fn stuffed_octets(&self) -> u64 {
        self.stuffed_octets
    }

    /// Ends the response: completes an unterminated last line, then writes
    /// the `.` CRLF terminator. Returns the message size (as for LIST).
    pub fn finish(&mut self, out: &mut Vec<u8>) -> u64 {
        self.complete_last_line(out);
        out.extend_from_slice(b".\r\n");
        self.message_octets
    }

    /// Like [`BodyEncoder::finish`] without output: the final message size.
    pub fn finish_count(&mut self) -> u64 {
        self.complete_last_line(&mut Discard);
        self.message_octets
    }

    fn complete_last_line<O: Sink>(&mut self, out: &mut O) {
        if self.line_start {
            return;
        }
        let ending: &[u8] = if self.prev_cr { b"\n" } else { b"\r\n" };
        self.emit(out, ending);
        self.line_start = true;
        self.prev_cr = false;
    }

    fn emit<O: Sink>(&mut self, out: &mut O, bytes: &[u8]) {
        out.put(bytes);
        self.message_octets += bytes.len() as u64;
    }

    fn run<O: Sink>(&mut self, mut input: &[u8], out: &mut O) {
        while let Some(&octet) = input.first() {
            if self.done {
                return;
            }
            match octet {
                0 => input = &input[1..],
                b'\n' => {
                    let ending: &[u8] = if self.prev_cr { b"\n" } else { b"\r\n" };
                    self.emit(out, ending);
                    self.end_of_line();
                    input = &input[1..];
                }
                b'\r' => {
                    if self.prev_cr {
                        // The previous CR was not followed by LF: it is content.
                        self.line_has_content = true;
                    }
                    self.emit(out, b"\r");
                    self.prev_cr = true;
                    self.line_start = false;
                    input = &input[1..];
                }
                _ => {
                    if self.line_start && octet == b'.' {
                        out.put(b".");
                        self.stuffed_octets += 1;
                    }
                    let end = memchr::memchr3(0, b'\n', b'\r', input).unwrap_or(input.len());
                    self.emit(out, &input[..end]);
                    self.line_start = false;
                    self.prev_cr = false;
                    self.line_has_content = true;
                    input = &input[end..];
                }
            }
        }
    }

    /// Bookkeeping after a CRLF was sent: line state, and TOP's line budget.
    fn end_of_line(&mut self) {
        let was_empty = !self.line_has_content;
        self.line_start = true;
        self.prev_cr = false;
        self.line_has_content = false;
        match self.part {
            Part::Whole => {}
            Part::TopHeaders { lines } => {
                if was_empty {
                    if lines == 0 {
                        self.done = true;
                    } else {
                        self.part = Part::TopBody { left: lines };
                    }
                }
            }
            Part::TopBody { left } => {
                if left <= 1 {
                    self.done = true;
                } else {
                    self.part = Part::TopBody { left: left - 1 };
                }
            }
        }
    }
}

/// The size of a whole stored message as LIST and STAT report it: exactly
/// the message octets RETR sends (see the module documentation).
pub fn message_size(message: &[u8]) -> u64 {
    let mut encoder = BodyEncoder::whole();
    encoder.count(message);
    encoder.finish_count()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode_whole(message: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = BodyEncoder::whole();
        encoder.encode(message, &mut out);
        encoder.finish(&mut out);
        out
    }

    fn encode_top(message: &[u8], lines: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = BodyEncoder::top(lines);
        encoder.encode(message, &mut out);
        encoder.finish(&mut out);
        out
    }

    /// What a client does: split into CRLF lines, stop at ".", unstuff.
    fn client_view(wire: &[u8]) -> Vec<u8> {
        let mut message = Vec::new();
        let mut rest = wire;
        loop {
            let end = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("every line ends with CRLF");
            let line = &rest[..end];
            rest = &rest[end + 2..];
            if line == b"." {
                assert!(rest.is_empty(), "data after the terminator");
                return message;
            }
            let line = line.strip_prefix(b".").unwrap_or(line);
            message.extend_from_slice(line);
            message.extend_from_slice(b"\r\n");
        }
    }

    #[test]
    fn bare_lf_becomes_crlf() {
        assert_eq!(encode_whole(b"a\nb\n"), b"a\r\nb\r\n.\r\n");
        assert_eq!(encode_whole(b"a\r\nb\r\n"), b"a\r\nb\r\n.\r\n");
        assert_eq!(encode_whole(b"a\r\nb\nc\r\n"), b"a\r\nb\r\nc\r\n.\r\n");
        assert_eq!(message_size(b"a\nb\n"), 6);
    }

    #[test]
    fn lone_cr_is_kept() {
        assert_eq!(encode_whole(b"a\rb\n"), b"a\rb\r\n.\r\n");
        assert_eq!(encode_whole(b"a\r\r\n"), b"a\r\r\n.\r\n");
        // A CR at the very end becomes a full line end.
        assert_eq!(encode_whole(b"a\r"), b"a\r\n.\r\n");
    }

    #[test]
    fn dot_stuffing() {
        assert_eq!(encode_whole(b".\n"), b"..\r\n.\r\n");
        assert_eq!(encode_whole(b"a\n.b\n..c\n"), b"a\r\n..b\r\n...c\r\n.\r\n");
        assert_eq!(encode_whole(b".start"), b"..start\r\n.\r\n");
        // Not at a line start: untouched.
        assert_eq!(encode_whole(b"a.b\n"), b"a.b\r\n.\r\n");
        assert_eq!(encode_whole(b"a\r.b\n"), b"a\r.b\r\n.\r\n");
        // Stuffing is not part of the size.
        assert_eq!(message_size(b".\n"), 3);
    }

    #[test]
    fn nul_octets_are_dropped() {
        assert_eq!(encode_whole(b"a\0b\n"), b"ab\r\n.\r\n");
        assert_eq!(encode_whole(b"\0\0\0"), b".\r\n");
        // A NUL does not hide a dot at a line start, nor split a CRLF.
        assert_eq!(encode_whole(b"x\n\0.y\n"), b"x\r\n..y\r\n.\r\n");
        assert_eq!(encode_whole(b"x\r\0\ny\n"), b"x\r\ny\r\n.\r\n");
        assert_eq!(message_size(b"a\0b\n"), 4);
    }

    #[test]
    fn unterminated_last_line_and_empty_message() {
        assert_eq!(encode_whole(b"abc"), b"abc\r\n.\r\n");
        assert_eq!(message_size(b"abc"), 5);
        assert_eq!(encode_whole(b""), b".\r\n");
        assert_eq!(message_size(b""), 0);
    }

    #[test]
    fn top_sends_headers_blank_line_and_n_lines() {
        let msg = b"Subject: x\nFrom: y\n\nline1\nline2\n.line3\n";
        assert_eq!(encode_top(msg, 0), b"Subject: x\r\nFrom: y\r\n\r\n.\r\n");
        assert_eq!(
            encode_top(msg, 1),
            b"Subject: x\r\nFrom: y\r\n\r\nline1\r\n.\r\n"
        );
        assert_eq!(
            encode_top(msg, 3),
            b"Subject: x\r\nFrom: y\r\n\r\nline1\r\nline2\r\n..line3\r\n.\r\n"
        );
        assert_eq!(encode_top(msg, u32::MAX), encode_whole(msg));
        // CRLF message, NUL-only blank line.
        let msg = b"A: b\r\n\0\r\nbody\r\nmore\r\n";
        assert_eq!(encode_top(msg, 1), b"A: b\r\n\r\nbody\r\n.\r\n");
        // A line of a lone CR is not the end of the headers.
        assert_eq!(
            encode_top(b"A: b\n\r\r\nC: d\n\nx\n", 0),
            b"A: b\r\n\r\r\nC: d\r\n\r\n.\r\n"
        );
        // No body separator: everything is header.
        assert_eq!(encode_top(b"A: b\nC: d", 0), b"A: b\r\nC: d\r\n.\r\n");
    }

    #[test]
    fn top_stops_reading() {
        let mut encoder = BodyEncoder::top(1);
        let mut out = Vec::new();
        encoder.encode(b"A: b\n\nfirst\n", &mut out);
        assert!(encoder.is_done());
        encoder.encode(b"second\n", &mut out);
        encoder.finish(&mut out);
        assert_eq!(out, b"A: b\r\n\r\nfirst\r\n.\r\n");
    }

    #[test]
    fn fifty_mib_streams_in_chunks() {
        let line = b"0123456789abcdefghijklmnopqrstuvwxyz.0123456789abcdefghijklmnopqrstuvwxyz\n";
        let chunk: Vec<u8> = line.iter().copied().cycle().take(64 * 1024).collect();
        let mut encoder = BodyEncoder::whole();
        let mut total_out = 0u64;
        let mut out = Vec::with_capacity(80 * 1024);
        for _ in 0..(50 * 16) {
            encoder.encode(&chunk, &mut out);
            total_out += out.len() as u64;
            out.clear();
        }
        let size = encoder.finish(&mut out);
        total_out += out.len() as u64;
        assert_eq!(total_out, size + encoder.stuffed_octets() + 3);
        assert!(size > 50 * 1024 * 1024);
    }

    fn message_strategy() -> impl Strategy<Value = Vec<u8>> {
        // Biased towards the octets that matter.
        let octet = prop_oneof![
            4 => Just(b'\n'),
            3 => Just(b'\r'),
            3 => Just(b'.'),
            2 => Just(0u8),
            10 => any::<u8>(),
        ];
        proptest::collection::vec(octet, 0..400)
    }

    proptest! {
        #[test]
        fn size_equals_what_the_client_receives(message in message_strategy()) {
            let wire = encode_whole(&message);
            let received = client_view(&wire);
            prop_assert_eq!(received.len() as u64, message_size(&message));
            prop_assert!(!wire.contains(&0));
        }

        #[test]
        fn chunk_boundaries_do_not_matter(
            message in message_strategy(),
            cuts in proptest::collection::vec(1usize..17, 1..40),
            top in proptest::option::of(0u32..6),
        ) {
            let make = || top.map_or_else(BodyEncoder::whole, BodyEncoder::top);
            let mut whole = make();
            let mut expected = Vec::new();
            whole.encode(&message, &mut expected);
            let expected_size = whole.finish(&mut expected);

            let mut chunked = make();
            let mut got = Vec::new();
            let mut rest = &message[..];
            for cut in cuts.iter().cycle() {
                if rest.is_empty() { break; }
                let n = (*cut).min(rest.len());
                chunked.encode(&rest[..n], &mut got);
                rest = &rest[n..];
            }
            let got_size = chunked.finish(&mut got);
            prop_assert_eq!(got, expected);
            prop_assert_eq!(got_size, expected_size);
        }

        #[test]
        fn lf_only_text_round_trips(lines in proptest::collection::vec("[ -~]{0,20}", 0..20)) {
            // Printable lines with LF endings come back as the same lines with CRLF.
            let stored: Vec<u8> = lines.iter().flat_map(|l| l.bytes().chain(*b"\n")).collect();
            let expected: Vec<u8> = lines.iter().flat_map(|l| l.bytes().chain(*b"\r\n")).collect();
            prop_assert_eq!(client_view(&encode_whole(&stored)), expected);
        }
    }
}
