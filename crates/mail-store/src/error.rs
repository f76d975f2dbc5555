//! Storage error kinds, after Dovecot's `mail-error.h`: a small stable set of
//! kinds that the protocol layers map to response codes, plus a detail string
//! for the log (never for the client when the kind is `Internal`).

/// What kind of failure happened; sessions map kinds to response codes
/// (`[NONEXISTENT]`, `[ALREADYEXISTS]`, `[OVERQUOTA]`, `[INUSE]`, `-ERR [SYS/TEMP]`…).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The folder or message does not exist.
    NotFound,
    /// The folder already exists.
    AlreadyExists,
    /// The name is not acceptable (bad characters, traversal, too long).
    InvalidName,
    /// The operation is not allowed (read-only, INBOX deletion…).
    NotPossible,
    /// Over the account's quota.
    OverQuota,
    /// The message is larger than allowed.
    TooBig,
    /// The message was expunged by another session.
    Expunged,
    /// Locked by another session (POP3 maildrop lock).
    InUse,
    /// A temporary failure (disk full, lock timeout); retrying may succeed.
    Temporary,
    /// Anything else: details go to the log only.
    Internal,
}

/// A storage error: a kind for the protocol, a detail for the log.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind:?}: {detail}")]
pub struct StoreError {
    /// What the protocol layer should tell the client.
    pub kind: StoreErrorKind,
    /// Context for the log (folder, UID, OS error); never shown for `Internal`.
    pub detail: String,
}

impl StoreError {
    /// Builds an error of the given kind with context for the log.
    pub fn new(kind: StoreErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }

    /// A filesystem error, classified (ENOSPC and EDQUOT are temporary).
    pub fn io(context: impl std::fmt::Display, err: &std::io::Error) -> Self {
        let kind = match err.kind() {
            std::io::ErrorKind::NotFound => StoreErrorKind::NotFound,
            std::io::ErrorKind::AlreadyExists => StoreErrorKind::AlreadyExists,
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                StoreErrorKind::Temporary
            }
            _ => StoreErrorKind::Internal,
        };
        Self::new(kind, format!("{context}: {err}"))
    }
}
