//! # imap-protocol: the IMAP4rev1 wire format, sans-I/O
//!
//! Bytes in, typed [`Command`]s out; typed [`Response`]s in, bytes out.
//! This crate does **not** do I/O, hold a socket, read a clock, know about
//! storage or accounts, or decide what a command means: that is
//! `imap-session`. It depends on no internal crate, so it builds, tests and
//! fuzzes on its own.
//!
//! ```text
//!  bytes ─▶ framing::Framer ──(lines + literals, limits checked first)──▶ Frame
//!                │ {n}: ContinuationNeeded → caller sends "+"
//!                ▼
//!           parse::parse_command (nom, RFC 3501 §9) ──▶ Command | ParseError (BAD)
//!  flow::Receiver = the two stages + what is expected next (command,
//!  AUTHENTICATE response line, IDLE's DONE)
//!
//!  Response (typed) ──encode::encode──▶ bytes (atom / quoted / literal chosen here)
//! ```
//!
//! Mailbox names stay raw bytes in both directions: the session converts
//! between modified UTF-7 and UTF-8 with `mail_store::utf7`.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod command;
pub mod datetime;
pub mod encode;
pub mod flow;
pub mod framing;
pub mod parse;
pub mod response;

use std::fmt;

pub use command::*;
pub use flow::{Event, Expect, Receiver};
pub use framing::{Frame, Framer, Limits, Refusal};
pub use parse::{ParseError, parse_command, parse_command_spooled};
pub use response::*;

/// A credential or SASL payload. Its `Debug` output is always redacted, in
/// debug builds too (imap-types shows secrets in debug builds; we do not).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into())
    }

    /// The bytes, for checking only.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}
