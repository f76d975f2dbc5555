//! # mail-store: the storage contract
//!
//! What a protocol session may ask of a user's mail, and nothing about how it
//! is kept. IMAP and POP3 sessions talk only to these traits; the Maildir
//! backend (`maildir-store`) and the in-memory backend (feature `memory`)
//! implement them.
//!
//! ```text
//!  MailStore (all accounts) ──open_account──▶ AccountStore (one user's folders)
//!                                              │ open(folder)
//!                                              ▼
//!                                            Mailbox (one folder: snapshot, read, flags, expunge)
//! ```
//!
//! What this crate does **not** do: file I/O, parsing of MIME, protocol
//! encoding. Identity (who may log in) belongs to `account-auth`.
//!
//! Every method is async and returns a `Send` future so that the server can
//! drive sessions on a multi-threaded tokio runtime; backends do their
//! blocking work on a blocking pool.
#![forbid(unsafe_code)]

use std::future::Future;

mod error;
mod types;

#[cfg(feature = "memory")]
pub mod memory;
pub mod utf7;

pub use error::{StoreError, StoreErrorKind};
pub use types::*;

/// Result of every storage operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// Where an account's mail lives, as the account record says.
///
/// `login` is the full login (`user@domain`); `location` an optional override
/// (a path relative to the mail root, or absolute) from the account table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountLocation {
    /// The account's login, `local@domain` or a bare local part.
    pub login: String,
    /// An explicit mail location from the account record, if any.
    pub location: Option<String>,
}

/// The root of all accounts' mail (one per server).
pub trait MailStore: Send + Sync + 'static {
    /// One account's view.
    type Account: AccountStore;

    /// Opens (creating on first use) the mail of one account.
    fn open_account(
        &self,
        account: &AccountLocation,
    ) -> impl Future<Output = StoreResult<Self::Account>> + Send;
}

/// One account's folders (Dovecot's mailbox-list): hierarchy, subscriptions,
/// opening a folder.
pub trait AccountStore: Send + Sync + 'static {
    /// A folder opened for reading and changing messages.
    type Mailbox: Mailbox;

    /// All folders of the account, INBOX first.
    fn list_folders(&self) -> impl Future<Output = StoreResult<Vec<FolderInfo>>> + Send;

    /// Creates a folder (parents are created as needed).
    fn create_folder(&self, name: &FolderName) -> impl Future<Output = StoreResult<()>> + Send;

    /// Opens a folder. `read_only` opens it without changing `\Recent` or flags (EXAMINE).
    fn open_folder(
        &self,
        name: &FolderName,
        read_only: bool,
    ) -> impl Future<Output = StoreResult<Self::Mailbox>> + Send;

    /// Appends one message to a folder and returns its new UID.
    fn append(
        &self,
        name: &FolderName,
        message: &[u8],
        flags: &Flags,
        internal_date: Option<i64>,
    ) -> impl Future<Output = StoreResult<AppendOutcome>> + Send;
}

/// One open folder. Sequence numbers are the session's business: the mailbox
/// speaks in UIDs only.
pub trait Mailbox: Send + Sync + 'static {
    /// The folder's identity and counters.
    fn status(&self) -> MailboxStatus;

    /// Messages as of the last sync, ascending by UID.
    fn messages(&self) -> &[MessageMeta];

    /// Picks up changes made by others (new deliveries, expunges, flag changes)
    /// and returns them; `messages()` reflects them afterwards.
    fn sync(&mut self) -> impl Future<Output = StoreResult<Vec<MailboxChange>>> + Send;

    /// The full message bytes, exactly as stored.
    fn read_message(&self, uid: Uid) -> impl Future<Output = StoreResult<Vec<u8>>> + Send;

    /// Replaces, adds or removes flags on the given messages; returns the new
    /// flags of each message that still exists.
    fn store_flags(
        &mut self,
        uids: &[Uid],
        op: FlagOp,
        flags: &Flags,
    ) -> impl Future<Output = StoreResult<Vec<(Uid, Flags)>>> + Send;

    /// Removes the given messages for good, all or none visible afterwards.
    fn expunge(&mut self, uids: &[Uid]) -> impl Future<Output = StoreResult<Vec<Uid>>> + Send;
}
