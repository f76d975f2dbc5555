//! # account-auth: who may log in
//!
//! The [`Authenticator`] trait the protocol sessions call, the account record
//! they get back, [`Secret`] for passwords, and SASL PLAIN decoding (RFC 4616).
//! The SQL implementation (sqlx: SQLite, PostgreSQL, MariaDB) with the
//! admin's own queries as an option, password schemes, throttling and the
//! audit counters live in the submodules.
//!
//! What this crate does **not** do: sockets, protocol encoding, mail storage.
#![forbid(unsafe_code)]

use std::fmt;
use std::future::Future;
use std::net::IpAddr;

pub use audit::{AuthCounters, AuthCounts};

pub mod audit;
pub mod password;
pub mod pool;
pub mod query;
pub mod sasl;
pub mod sessions;
pub mod sql;
#[cfg(feature = "testing")]
pub mod testing;
pub mod throttle;

/// Longest login accepted, in bytes (an RFC 5321 path: 64 local + 1 + 255 domain).
pub const MAX_LOGIN_LEN: usize = 320;
/// Longest credential (login or password) accepted from a client, in bytes.
/// Anything longer is rejected before any hashing or database work.
pub const MAX_CREDENTIAL_LEN: usize = 1024;

/// Why a login string was refused by [`normalize_login`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidLogin {
    /// The empty string.
    #[error("login is empty")]
    Empty,
    /// More than [`MAX_LOGIN_LEN`] bytes.
    #[error("login is longer than 320 bytes")]
    TooLong,
    /// Contains a control character (C0, DEL or C1), NUL included.
    #[error("login contains a control character")]
    ControlCharacter,
}

/// The one place a login is put into canonical form, used for storing,
/// looking up and comparing accounts.
///
/// Nothing is trimmed. The login is refused if it is empty, longer than
/// [`MAX_LOGIN_LEN`] bytes or contains a control character. The domain part
/// (after the last `@`) is lower-cased, because domains are case-insensitive;
/// the local part is kept as sent, because RFC 5321 §2.4 leaves its case to the
/// receiving system. A login without `@` is returned unchanged.
pub fn normalize_login(login: &str) -> Result<String, InvalidLogin> {
    if login.is_empty() {
        return Err(InvalidLogin::Empty);
    }
    if login.len() > MAX_LOGIN_LEN {
        return Err(InvalidLogin::TooLong);
    }
    if login.chars().any(char::is_control) {
        return Err(InvalidLogin::ControlCharacter);
    }
    let canonical = match login.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_lowercase()),
        None => login.to_owned(),
    };
    // Unicode lower-casing can grow a string; the limit holds after it too.
    if canonical.len() > MAX_LOGIN_LEN {
        return Err(InvalidLogin::TooLong);
    }
    Ok(canonical)
}

/// The checks every [`Authenticator`] makes before any hashing or lookup:
/// login and password non-empty and at most [`MAX_CREDENTIAL_LEN`] bytes, and
/// the login acceptable to [`normalize_login`]. Returns the canonical login.
pub fn check_credentials(attempt: &LoginAttempt) -> Result<String, AuthError> {
    if attempt.login.is_empty() {
        return Err(AuthError::Malformed("empty login"));
    }
    if attempt.login.len() > MAX_CREDENTIAL_LEN {
        return Err(AuthError::Malformed("login too long"));
    }
    if attempt.password.expose().is_empty() {
        return Err(AuthError::Malformed("empty password"));
    }
    if attempt.password.expose().len() > MAX_CREDENTIAL_LEN {
        return Err(AuthError::Malformed("password too long"));
    }
    normalize_login(&attempt.login).map_err(|e| match e {
        InvalidLogin::Empty => AuthError::Malformed("empty login"),
        InvalidLogin::TooLong => AuthError::Malformed("login too long"),
        InvalidLogin::ControlCharacter => AuthError::Malformed("control character in login"),
    })
}

/// A password or other credential. Its `Debug` output is always redacted, in
/// debug builds too, so it cannot end up in a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The credential itself, for hashing only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// How the credentials arrived (for the audit log and per-mechanism policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// IMAP `LOGIN`.
    ImapLogin,
    /// POP3 `USER`/`PASS`.
    Pop3UserPass,
    /// SASL PLAIN (IMAP AUTHENTICATE or POP3 AUTH).
    SaslPlain,
    /// SASL LOGIN.
    SaslLogin,
}

impl Mechanism {
    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::ImapLogin => "imap-login",
            Mechanism::Pop3UserPass => "pop3-userpass",
            Mechanism::SaslPlain => "sasl-plain",
            Mechanism::SaslLogin => "sasl-login",
        }
    }
}

/// One login attempt.
#[derive(Debug, Clone)]
pub struct LoginAttempt {
    /// The login as the client sent it.
    pub login: String,
    /// The password.
    pub password: Secret,
    /// Where the attempt came from (throttling, audit).
    pub peer: IpAddr,
    /// Which mechanism carried it.
    pub mechanism: Mechanism,
}

/// An authenticated account, as the sessions need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The canonical login (domain part lower-cased).
    pub login: String,
    /// An explicit mail location, overriding the mail-root template.
    pub mail_location: Option<String>,
    /// Storage quota in bytes, if any.
    pub quota_bytes: Option<u64>,
    /// Quota in number of messages, if any.
    pub quota_messages: Option<u64>,
}

/// Why a login did not succeed. Unknown user, disabled account and wrong
/// password are deliberately one variant: the client must not tell them apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Wrong credentials (or unknown or disabled account).
    #[error("authentication failed")]
    Failed,
    /// Credentials rejected before any hashing (empty, over-long, not UTF-8, bad SASL form).
    #[error("malformed credentials: {0}")]
    Malformed(&'static str),
    /// A temporary failure (database unreachable); the detail is for the log.
    #[error("temporary failure: {0}")]
    Unavailable(String),
}

/// What the sessions call to check credentials.
pub trait Authenticator: Send + Sync + 'static {
    /// Checks one attempt. Implementations must take the same time whether the
    /// account exists or not.
    fn authenticate(
        &self,
        attempt: &LoginAttempt,
    ) -> impl Future<Output = Result<Account, AuthError>> + Send;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn domain_is_lower_cased_local_part_is_not() {
        assert_eq!(
            normalize_login("Bob.Smith@Example.ORG").unwrap(),
            "Bob.Smith@example.org"
        );
        assert_eq!(
            normalize_login("a@b@EXAMPLE.org").unwrap(),
            "a@b@example.org"
        );
        assert_eq!(normalize_login("ALICE").unwrap(), "ALICE");
        assert_eq!(normalize_login("x@ÉCOLE.fr").unwrap(), "x@école.fr");
    }

    #[test]
    fn nothing_is_trimmed() {
        assert_eq!(
            normalize_login(" bob@example.org ").unwrap(),
            " bob@example.org "
        );
    }

    #[test]
    fn login_limits() {
        assert_eq!(normalize_login(""), Err(InvalidLogin::Empty));
        let max = format!("{}@example.org", "a".repeat(MAX_LOGIN_LEN - 12));
        assert_eq!(max.len(), MAX_LOGIN_LEN);
        assert!(normalize_login(&max).is_ok());
        let over = format!("a{max}");
        assert_eq!(normalize_login(&over), Err(InvalidLogin::TooLong));
        for bad in ["a\0b", "a\rb", "a\nb", "a\tb", "a\u{7f}b", "a\u{85}b"] {
            assert_eq!(
                normalize_login(bad),
                Err(InvalidLogin::ControlCharacter),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn lower_casing_cannot_push_past_the_limit() {
        // 'İ' (2 bytes) lower-cases to "i̇" (3 bytes).
        let domain = "İ".repeat(100);
        let login = format!("{}@{domain}", "a".repeat(MAX_LOGIN_LEN - 201));
        assert_eq!(login.len(), MAX_LOGIN_LEN);
        assert_eq!(normalize_login(&login), Err(InvalidLogin::TooLong));
    }

    fn attempt(login: &str, password: &str) -> LoginAttempt {
        LoginAttempt {
            login: login.into(),
            password: Secret::new(password),
            peer: IpAddr::from([127, 0, 0, 1]),
            mechanism: Mechanism::ImapLogin,
        }
    }

    #[test]
    fn credential_limits() {
        assert_eq!(
            check_credentials(&attempt("a@B.org", "pw")).unwrap(),
            "a@b.org"
        );
        assert!(matches!(
            check_credentials(&attempt("", "pw")),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            check_credentials(&attempt("a", "")),
            Err(AuthError::Malformed(_))
        ));
        let long = "p".repeat(MAX_CREDENTIAL_LEN);
        assert!(check_credentials(&attempt("a", &long)).is_ok());
        let longer = "p".repeat(MAX_CREDENTIAL_LEN + 1);
        assert_eq!(
            check_credentials(&attempt("a", &longer)),
            Err(AuthError::Malformed("password too long"))
        );
        assert_eq!(
            check_credentials(&attempt(&longer, "pw")),
            Err(AuthError::Malformed("login too long"))
        );
        assert_eq!(
            check_credentials(&attempt(&"l".repeat(400), "pw")),
            Err(AuthError::Malformed("login too long"))
        );
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(
            format!("{:?}", Secret::new("hunter2")),
            "Secret(<redacted>)"
        );
        assert!(!format!("{:?}", attempt("a", "hunter2")).contains("hunter2"));
    }
}
