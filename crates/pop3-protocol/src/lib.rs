//! # pop3-protocol: the POP3 wire format, sans-I/O
//!
//! Bytes in, typed [`Command`]s out; typed [`Response`]s in, bytes out. No
//! sockets, no tokio, no clock: the session crate decides what to answer and
//! the server's driver moves the bytes.
//!
//! - [`Pop3Decoder`] (`flow.rs`): incremental line framing with the RFC 2449
//!   §4 line limits, bounded memory for over-long lines, and the SASL
//!   continuation-line mode of RFC 5034.
//! - [`parse_command`] (`command.rs`): one line → [`Command`], with strict
//!   argument checks (RFC 1939 §3–§7, RFC 2449 CAPA, RFC 5034 AUTH).
//! - [`Response`] (`response.rs`): every status line and multi-line response,
//!   with RFC 2449/3206 response codes and byte-stuffing.
//! - [`BodyEncoder`] (`body.rs`): RETR/TOP message bodies chunk by chunk —
//!   LF→CRLF, NUL removal, byte-stuffing — and the exact message size that
//!   LIST and STAT report ([`message_size`]).
#![forbid(unsafe_code)]

mod body;
mod command;
mod error;
mod flow;
mod response;

pub use body::{BodyEncoder, message_size};
pub use command::{
    Command, MAX_MECHANISM_LEN, MAX_USER_LEN, MechanismName, Password, SaslData, SaslResponse,
    parse_command, parse_sasl_response,
};
pub use error::ParseError;
pub use flow::{MAX_AUTH_LINE, MAX_COMMAND_LINE, MAX_SASL_LINE, Pop3Decoder};
pub use response::{Capability, Response, ResponseCode};
