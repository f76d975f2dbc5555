//! Typed POP3 responses and their encoder: the only place that writes
//! protocol lines (RFC 1939 §3 status indicators and multi-line responses,
//! RFC 2449 §5 CAPA and §8 response codes, RFC 3206 `SYS`/`AUTH` codes,
//! RFC 5034 §4 SASL continuations).
//!
//! Free text is sanitised as it is written: CR, LF, NUL and other control
//! characters become spaces, so no caller can split a response line. Lines of
//! multi-line responses are byte-stuffed; message bodies go through
//! [`crate::BodyEncoder`] instead.

use std::io::Write as _;

use base64::Engine as _;

/// RFC 2449 §8 / RFC 3206 response codes, sent as `-ERR [CODE] text`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseCode {
    /// `[IN-USE]`: the maildrop is locked by another session (RFC 2449 §8.1.1).
    InUse,
    /// `[LOGIN-DELAY]`: logging in too often (RFC 2449 §8.1.2).
    LoginDelay,
    /// `[SYS/TEMP]`: a temporary system failure (RFC 3206 §4).
    SysTemp,
    /// `[SYS/PERM]`: a permanent system failure (RFC 3206 §4).
    SysPerm,
    /// `[AUTH]`: the credentials were wrong (RFC 3206 §5).
    Auth,
}

impl ResponseCode {
    /// The code as written between the brackets.
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseCode::InUse => "IN-USE",
            ResponseCode::LoginDelay => "LOGIN-DELAY",
            ResponseCode::SysTemp => "SYS/TEMP",
            ResponseCode::SysPerm => "SYS/PERM",
            ResponseCode::Auth => "AUTH",
        }
    }
}

/// One capability line of the CAPA response (RFC 2449 §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    /// `TOP` (RFC 2449 §6.1).
    Top,
    /// `USER` (RFC 2449 §6.2).
    User,
    /// `SASL mech...` (RFC 2449 §6.3, RFC 5034 §3).
    Sasl(Vec<String>),
    /// `RESP-CODES` (RFC 2449 §6.4).
    RespCodes,
    /// `AUTH-RESP-CODE` (RFC 3206 §6).
    AuthRespCode,
    /// `PIPELINING` (RFC 2449 §6.6).
    Pipelining,
    /// `UIDL` (RFC 2449 §6.8).
    Uidl,
    /// `IMPLEMENTATION text` (RFC 2449 §6.9).
    Implementation(String),
}

/// One response. Borrowed data keeps listings free of copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response<'a> {
    /// `+OK text`.
    Ok(&'a str),
    /// `-ERR [code] text`.
    Err {
        /// The response code, if one applies.
        code: Option<ResponseCode>,
        /// The reason.
        text: &'a str,
    },
    /// STAT (RFC 1939 §5): `+OK n m`.
    Stat {
        /// Messages not marked deleted.
        messages: usize,
        /// Their total size.
        octets: u64,
    },
    /// LIST with an argument: `+OK msg size`.
    ScanListing {
        /// The message number.
        msg: u32,
        /// Its size.
        octets: u64,
    },
    /// LIST without an argument: `+OK n messages (m octets)` and one
    /// `msg size` line each.
    ScanListings {
        /// Total size of the listed messages.
        octets: u64,
        /// `(message number, size)` of each message not marked deleted.
        listings: &'a [(u32, u64)],
    },
    /// UIDL with an argument: `+OK msg uidl`.
    UniqueId {
        /// The message number.
        msg: u32,
        /// Its unique id.
        uidl: &'a str,
    },
    /// UIDL without an argument: `+OK` and one `msg uidl` line each.
    UniqueIds(&'a [(u32, &'a str)]),
    /// CAPA: `+OK Capability list follows` and one line per capability.
    Capabilities(&'a [Capability]),
    /// AUTH without an argument: `+OK` and one mechanism per line.
    Mechanisms(&'a [&'a str]),
    /// A SASL challenge (RFC 5034 §4): `+ ` and the base64 of the data.
    SaslChallenge(&'a [u8]),
    /// DELE: `+OK message n deleted`.
    Deleted(u32),
    /// RSET: `+OK maildrop has n messages (m octets)`.
    Reset {
        /// Messages in the maildrop.
        messages: usize,
        /// Their total size.
        octets: u64,
    },
    /// RETR: `+OK n octets`; the body follows through [`crate::BodyEncoder`].
    MessageFollows {
        /// The message size, as in LIST.
        octets: u64,
    },
    /// TOP: `+OK top of message follows`; the body follows through
    /// [`crate::BodyEncoder`].
    TopFollows,
    /// QUIT in TRANSACTION after a successful UPDATE:
    /// `+OK Logging out, n messages deleted`.
    LoggedOut {
        /// Messages removed.
        deleted: usize,
    },
}

impl Response<'_> {
    /// Appends the encoded response to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        // Writing to a Vec cannot fail; the results are discarded on purpose.
        match self {
            Response::Ok(text) => ok_line(out, text),
            Response::Err { code, text } => {
                out.extend_from_slice(b"-ERR ");
                if let Some(code) = code {
                    out.push(b'[');
                    out.extend_from_slice(code.as_str().as_bytes());
                    out.extend_from_slice(b"] ");
                }
                push_text(out, text);
                out.extend_from_slice(b"\r\n");
            }
            Response::Stat { messages, octets } => {
                let _ = write!(out, "+OK {messages} {octets}\r\n");
            }
            Response::ScanListing { msg, octets } => {
                let _ = write!(out, "+OK {msg} {octets}\r\n");
            }
            Response::ScanListings { octets, listings } => {
                let n = listings.len();
                let _ = write!(out, "+OK {n} messages ({octets} octets)\r\n");
                for (msg, size) in *listings {
                    let _ = write!(out, "{msg} {size}\r\n");
                }
                terminator(out);
            }
            Response::UniqueId { msg, uidl } => {
                let _ = write!(out, "+OK {msg} ");
                push_text(out, uidl);
                out.extend_from_slice(b"\r\n");
            }
            Response::UniqueIds(ids) => {
                ok_line(out, "Unique-ID listing follows");
                for (msg, uidl) in *ids {
                    let _ = write!(out, "{msg} ");
                    push_text(out, uidl);
                    out.extend_from_slice(b"\r\n");
                }
                terminator(out);
            }
            Response::Capabilities(capabilities) => {
                ok_line(out, "Capability list follows");
                for capability in *capabilities {
                    let mut line = Vec::new();
                    encode_capability(capability, &mut line);
                    multiline_line(out, &line);
                }
                terminator(out);
            }
            Response::Mechanisms(mechanisms) => {
                ok_line(out, "Supported mechanisms follow");
                for mechanism in *mechanisms {
                    let mut line = Vec::new();
                    push_text(&mut line, mechanism);
                    multiline_line(out, &line);
                }
                terminator(out);
            }
            Response::SaslChallenge(data) => {
                out.extend_from_slice(b"+ ");
                out.extend_from_slice(
                    base64::engine::general_purpose::STANDARD
                        .encode(data)
                        .as_bytes(),
                );
                out.extend_from_slice(b"\r\n");
            }
            Response::Deleted(msg) => {
                let _ = write!(out, "+OK message {msg} deleted\r\n");
            }
            Response::Reset { messages, octets } => {
                let _ = write!(
                    out,
                    "+OK maildrop has {messages} messages ({octets} octets)\r\n"
                );
            }
            Response::MessageFollows { octets } => {
                let _ = write!(out, "+OK {octets} octets\r\n");
            }
            Response::TopFollows => ok_line(out, "Top of message follows"),
            Response::LoggedOut { deleted } => {
                let _ = write!(out, "+OK Logging out, {deleted} messages deleted\r\n");
            }
        }
    }

    /// The encoded response as a new buffer (for tests and logs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

fn ok_line(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b"+OK");
    if !text.is_empty() {
        out.push(b' ');
        push_text(out, text);
    }
    out.extend_from_slice(b"\r\n");
}

fn encode_capability(capability: &Capability, line: &mut Vec<u8>) {
    match capability {
        Capability::Top => line.extend_from_slice(b"TOP"),
        Capability::User => line.extend_from_slice(b"USER"),
        Capability::Sasl(mechanisms) => {
            line.extend_from_slice(b"SASL");
            for mechanism in mechanisms {
                line.push(b' ');
                push_text(line, mechanism);
            }
        }
        Capability::RespCodes => line.extend_from_slice(b"RESP-CODES"),
        Capability::AuthRespCode => line.extend_from_slice(b"AUTH-RESP-CODE"),
        Capability::Pipelining => line.extend_from_slice(b"PIPELINING"),
        Capability::Uidl => line.extend_from_slice(b"UIDL"),
        Capability::Implementation(name) => {
            line.extend_from_slice(b"IMPLEMENTATION ");
            push_text(line, name);
        }
    }
}

/// One line of a multi-line response, byte-stuffed (RFC 1939 §3).
fn multiline_line(out: &mut Vec<u8>, line: &[u8]) {
    if line.first() == Some(&b'.') {
        out.push(b'.');
    }
    out.extend_from_slice(line);
    out.extend_from_slice(b"\r\n");
}

/// The `.` CRLF that ends a multi-line response.
fn terminator(out: &mut Vec<u8>) {
    out.extend_from_slice(b".\r\n");
}

/// Writes free text with every control character replaced by a space.
fn push_text(out: &mut Vec<u8>, text: &str) {
    out.extend(
        text.bytes()
            .map(|b| if b.is_ascii_control() { b' ' } else { b }),
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn wire(response: Response<'_>) -> String {
        String::from_utf8(response.to_bytes()).expect("ASCII")
    }

    #[test]
    fn single_line_responses() {
        assert_eq!(
            wire(Response::Ok("Coffre POP3S ready.")),
            "+OK Coffre POP3S ready.\r\n"
        );
        assert_eq!(wire(Response::Ok("")), "+OK\r\n");
        assert_eq!(
            wire(Response::Err {
                code: None,
                text: "No such message"
            }),
            "-ERR No such message\r\n"
        );
        assert_eq!(
            wire(Response::Err {
                code: Some(ResponseCode::Auth),
                text: "Authentication failed"
            }),
            "-ERR [AUTH] Authentication failed\r\n"
        );
        assert_eq!(
            wire(Response::Err {
                code: Some(ResponseCode::InUse),
                text: "x"
            }),
            "-ERR [IN-USE] x\r\n"
        );
        assert_eq!(
            wire(Response::Err {
                code: Some(ResponseCode::SysTemp),
                text: "x"
            }),
            "-ERR [SYS/TEMP] x\r\n"
        );
        assert_eq!(
            wire(Response::Err {
                code: Some(ResponseCode::SysPerm),
                text: "x"
            }),
            "-ERR [SYS/PERM] x\r\n"
        );
        assert_eq!(
            wire(Response::Err {
                code: Some(ResponseCode::LoginDelay),
                text: "x"
            }),
            "-ERR [LOGIN-DELAY] x\r\n"
        );
        assert_eq!(
            wire(Response::Stat {
                messages: 2,
                octets: 320
            }),
            "+OK 2 320\r\n"
        );
        assert_eq!(
            wire(Response::ScanListing {
                msg: 2,
                octets: 200
            }),
            "+OK 2 200\r\n"
        );
        assert_eq!(
            wire(Response::UniqueId {
                msg: 2,
                uidl: "QhdPYR:00WBw1Ph7x7"
            }),
            "+OK 2 QhdPYR:00WBw1Ph7x7\r\n"
        );
        assert_eq!(wire(Response::Deleted(1)), "+OK message 1 deleted\r\n");
        assert_eq!(
            wire(Response::Reset {
                messages: 2,
                octets: 320
            }),
            "+OK maildrop has 2 messages (320 octets)\r\n"
        );
        assert_eq!(
            wire(Response::MessageFollows { octets: 120 }),
            "+OK 120 octets\r\n"
        );
        assert_eq!(wire(Response::TopFollows), "+OK Top of message follows\r\n");
        assert_eq!(
            wire(Response::LoggedOut { deleted: 3 }),
            "+OK Logging out, 3 messages deleted\r\n"
        );
    }

    #[test]
    fn text_cannot_break_the_line() {
        assert_eq!(wire(Response::Ok("a\r\nb\0c")), "+OK a  b c\r\n");
        assert_eq!(
            wire(Response::Err {
                code: None,
                text: "x\r\n+OK fake"
            }),
            "-ERR x  +OK fake\r\n"
        );
    }

    #[test]
    fn multi_line_responses() {
        assert_eq!(
            wire(Response::ScanListings {
                octets: 320,
                listings: &[(1, 120), (2, 200)]
            }),
            "+OK 2 messages (320 octets)\r\n1 120\r\n2 200\r\n.\r\n"
        );
        assert_eq!(
            wire(Response::ScanListings {
                octets: 0,
                listings: &[]
            }),
            "+OK 0 messages (0 octets)\r\n.\r\n"
        );
        assert_eq!(
            wire(Response::UniqueIds(&[
                (1, "whqtswO00WBw418f9t5JxYwZ"),
                (2, "QhdPYR:00WBw1Ph7x7")
            ])),
            "+OK Unique-ID listing follows\r\n1 whqtswO00WBw418f9t5JxYwZ\r\n2 QhdPYR:00WBw1Ph7x7\r\n.\r\n"
        );
        assert_eq!(
            wire(Response::Mechanisms(&["PLAIN"])),
            "+OK Supported mechanisms follow\r\nPLAIN\r\n.\r\n"
        );
    }

    #[test]
    fn capabilities() {
        let caps = [
            Capability::Top,
            Capability::Uidl,
            Capability::User,
            Capability::Sasl(vec!["PLAIN".into()]),
            Capability::RespCodes,
            Capability::AuthRespCode,
            Capability::Pipelining,
            Capability::Implementation("Coffre 0.1".into()),
        ];
        assert_eq!(
            wire(Response::Capabilities(&caps)),
            "+OK Capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\nSASL PLAIN\r\nRESP-CODES\r\n\
             AUTH-RESP-CODE\r\nPIPELINING\r\nIMPLEMENTATION Coffre 0.1\r\n.\r\n"
        );
    }

    #[test]
    fn multiline_lines_are_stuffed() {
        assert_eq!(
            wire(Response::Mechanisms(&[".HIDDEN"])),
            "+OK Supported mechanisms follow\r\n..HIDDEN\r\n.\r\n"
        );
    }

    #[test]
    fn sasl_challenge() {
        assert_eq!(wire(Response::SaslChallenge(b"")), "+ \r\n");
        assert_eq!(wire(Response::SaslChallenge(b"hi")), "+ aGk=\r\n");
    }
}
