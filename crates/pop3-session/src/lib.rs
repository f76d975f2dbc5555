//! # pop3-session: the POP3 state machine
//!
//! RFC 1939's AUTHORIZATION → TRANSACTION → UPDATE over the `mail-store`
//! traits, with logins through the `account-auth` trait. No sockets: the
//! server's driver feeds bytes in with [`Pop3Session::enqueue_input`], calls
//! [`Pop3Session::process`] and writes what it appended to `out`.
//!
//! ```text
//! greeting ─▶ AUTHORIZATION { user, failures }  USER/PASS, AUTH PLAIN, CAPA, QUIT
//!                  │ login ok: lock the maildrop, open INBOX, snapshot
//!                  ▼
//!             TRANSACTION { maildrop }          STAT LIST RETR TOP DELE RSET UIDL NOOP CAPA
//!                  │ QUIT
//!                  ▼
//!             UPDATE: one expunge of all DELE'd messages, all or nothing ─▶ close
//! ```
//! A dropped connection or a server shutdown never reaches UPDATE, so it
//! deletes nothing. The maildrop lock (RFC 1939 §8) is held from login to
//! the end of the session; RETR and TOP stream in [`STREAM_CHUNK`] pieces,
//! one per [`Pop3Session::process`] call.
//!
//! Modules: `session.rs` (the session, dispatch and AUTHORIZATION),
//! `transaction.rs` (TRANSACTION commands and UPDATE), `maildrop.rs` (the
//! snapshot, sizes, deletion marks), `uidl.rs` (UIDL format).
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::time::Duration;

mod maildrop;
mod session;
mod transaction;
mod uidl;

pub use maildrop::STREAM_CHUNK;
pub use session::Pop3Session;
pub use uidl::{DEFAULT_UIDL_FORMAT, MAX_UIDL_LEN, UidlFormat, UidlFormatError, is_valid_uidl};

/// Inactivity allowed in TRANSACTION (RFC 1939 §3: at least 10 minutes).
pub const TRANSACTION_IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Inactivity allowed before login.
pub const AUTHORIZATION_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Malformed or unknown commands tolerated before the session closes.
pub const MAX_BAD_COMMANDS: u32 = 20;

/// The SASL mechanisms offered (RFC 5034); PLAIN only, over TLS.
pub const SASL_MECHANISMS: &[&str] = &["PLAIN"];

/// POP3 settings, shared by all sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pop3Config {
    /// How UIDLs are derived from UID and UIDVALIDITY (default Dovecot's
    /// `%08Xu%08Xv`).
    pub uidl_format: UidlFormat,
    /// Failed logins allowed on one connection before it is closed.
    pub max_auth_failures: u32,
    /// The `IMPLEMENTATION` capability text; `None` leaves it out.
    pub implementation: Option<String>,
}

impl Default for Pop3Config {
    fn default() -> Self {
        Pop3Config {
            uidl_format: UidlFormat::default(),
            max_auth_failures: 3,
            implementation: Some("Coffre".to_string()),
        }
    }
}

/// Facts about the connection, for logs and for the authenticator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// The server's id for this connection (in every log line).
    pub session_id: u64,
    /// The negotiated TLS version, e.g. `TLSv1.3`.
    pub tls: String,
}

/// What the driver should do after [`Pop3Session::process`].
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// No complete command is buffered: write `out`, then read more input.
    NeedInput,
    /// A command was handled: write `out`, then call `process` again (more
    /// pipelined input may be buffered).
    Continue,
    /// Write `out`, then close the connection (after QUIT or a fatal error).
    Close,
}
