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
pub mod watch;

#[cfg(feature = "memory")]
pub mod memory;
pub mod utf7;

pub use error::{StoreError, StoreErrorKind};
pub use types::*;
pub use watch::{ChangeSignal, ChangeSource, ChangeWatcher};

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

    /// Like [`MailStore::open_account`], with the account's storage limits
    /// (from the account record): APPEND and COPY that would exceed them
    /// fail with [`StoreErrorKind::OverQuota`]. `open_account` is this with
    /// [`Quota::UNLIMITED`].
    fn open_account_with_quota(
        &self,
        account: &AccountLocation,
        quota: Quota,
    ) -> impl Future<Output = StoreResult<Self::Account>> + Send;
}

/// A message being received for APPEND, kept outside memory where the
/// backend can (Maildir: a file in the account's `tmp/`), so a large literal
/// is never held whole in RAM. Created by [`AccountStore::create_spool`],
/// filled with [`AppendSpool::write`] as the literal arrives, and made a
/// message by [`AccountStore::append_spool`]. Dropping a spool that was not
/// appended removes whatever it wrote (a client that disconnects mid-APPEND
/// leaves nothing behind).
pub trait AppendSpool: Send + Sync + 'static {
    /// Adds the next bytes of the message. On error the spool is unusable
    /// and should be dropped.
    fn write(&mut self, data: &[u8]) -> impl Future<Output = StoreResult<()>> + Send;

    /// Octets written so far.
    fn len(&self) -> u64;

    /// Whether nothing has been written.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One account's folders (Dovecot's mailbox-list): hierarchy, subscriptions,
/// opening a folder.
pub trait AccountStore: Send + Sync + 'static {
    /// A folder opened for reading and changing messages.
    type Mailbox: Mailbox;

    /// A message being received for APPEND (see [`AppendSpool`]).
    type Spool: AppendSpool;

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

    /// Starts receiving a message for [`AccountStore::append_spool`].
    fn create_spool(&self) -> impl Future<Output = StoreResult<Self::Spool>> + Send;

    /// Appends the message written to `spool` to a folder, exactly as
    /// [`AccountStore::append`] would append its bytes (quota checked, all
    /// or nothing: on error nothing becomes visible and the spool's data is
    /// removed).
    fn append_spool(
        &self,
        name: &FolderName,
        spool: Self::Spool,
        flags: &Flags,
        internal_date: Option<i64>,
    ) -> impl Future<Output = StoreResult<AppendOutcome>> + Send;

    /// Deletes a folder and its messages (RFC 3501 §6.3.4). INBOX cannot be
    /// deleted (`NotPossible`); neither can a folder with child folders
    /// (`NotPossible`, "has children": delete the children first — Coffre
    /// does not keep `\Noselect` placeholders). Subscriptions are kept
    /// (RFC 3501 §6.3.6: the server does not remove them unilaterally).
    fn delete_folder(&self, name: &FolderName) -> impl Future<Output = StoreResult<()>> + Send;

    /// Renames a folder; its children move with it, and so do their
    /// subscriptions (RFC 3501 §6.3.5). `to` must not exist
    /// (`AlreadyExists`), nor be inside `from` (`NotPossible`); missing
    /// parents of `to` are created. Renaming INBOX creates `to`, moves every
    /// INBOX message into it and leaves INBOX empty (INBOX's children stay).
    fn rename_folder(
        &self,
        from: &FolderName,
        to: &FolderName,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Adds a folder to the subscriptions (RFC 3501 §6.3.6); the folder must
    /// exist (`NotFound`). Subscribing twice is fine.
    fn subscribe(&self, name: &FolderName) -> impl Future<Output = StoreResult<()>> + Send;

    /// Removes a name from the subscriptions (RFC 3501 §6.3.7); the folder
    /// need not exist. `NotFound` if the name was not subscribed.
    fn unsubscribe(&self, name: &FolderName) -> impl Future<Output = StoreResult<()>> + Send;

    /// Every subscribed name, including names whose folder no longer exists
    /// (LSUB / `LIST (SUBSCRIBED)` show those as `\NonExistent`).
    fn subscriptions(&self) -> impl Future<Output = StoreResult<Vec<FolderName>>> + Send;

    /// A folder's counters without opening it (STATUS, RFC 3501 §6.3.10):
    /// cheap — message bodies are not read, `\Recent` is not claimed.
    /// `recent` counts messages no read-write session has seen yet.
    fn status(&self, name: &FolderName) -> impl Future<Output = StoreResult<MailboxStatus>> + Send;

    /// Octets of all messages in a folder (STATUS `SIZE`, RFC 8438).
    fn folder_size(&self, name: &FolderName) -> impl Future<Output = StoreResult<u64>> + Send;

    /// The account's current usage (RFC 9208 `GETQUOTAROOT`).
    fn quota_usage(&self) -> impl Future<Output = StoreResult<QuotaUsage>> + Send;

    /// The limits this account was opened with.
    fn quota(&self) -> Quota;

    /// Takes the POP3 maildrop lock (RFC 1939 §8): exclusive between
    /// sessions and processes, released when the returned value is dropped.
    /// A second attempt fails at once with [`StoreErrorKind::InUse`]. IMAP
    /// sessions neither take nor respect it.
    fn lock_maildrop(&self) -> impl Future<Output = StoreResult<MaildropLock>> + Send;
}

/// Messages being read ahead ([`Mailbox::read_ahead`]): one result per UID,
/// in the order asked. It owns all it needs, so it can be kept while its
/// owner does other work.
pub type ReadAhead<T> = std::pin::Pin<Box<dyn Future<Output = Vec<StoreResult<T>>> + Send + Sync>>;

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

    /// Several whole messages, one result per UID in the order asked, each
    /// as [`Mailbox::read_message`] would return it. A storage may read
    /// them in one go (the Maildir store reads them in one blocking task
    /// instead of one thread hand-off per message); the caller bounds how
    /// many bytes it asks for at once.
    fn read_messages(
        &self,
        uids: &[Uid],
    ) -> impl Future<Output = Vec<StoreResult<Vec<u8>>>> + Send {
        async move {
            let mut out = Vec::with_capacity(uids.len());
            for &uid in uids {
                out.push(self.read_message(uid).await);
            }
            out
        }
    }

    /// Starts reading several whole messages, as [`Mailbox::read_messages`]
    /// would, and returns before they are read: the reads go on whether or
    /// not the future is polled, so the caller can work on earlier messages
    /// meanwhile (a FETCH of many messages reads the next batch while it
    /// answers for this one). Each message read is handed to `prepare` (with
    /// its UID) where it was read (the Maildir store: on its blocking pool, in the same
    /// task), so work that needs only the bytes runs beside the caller too.
    /// Dropping the future drops the results, not the reads under way.
    ///
    /// `None`: this storage reads only when asked (the default); the caller
    /// uses `read_messages` instead.
    fn read_ahead<T, F>(&self, uids: &[Uid], prepare: F) -> Option<ReadAhead<T>>
    where
        T: Send + Sync + 'static,
        F: Fn(Uid, Vec<u8>) -> T + Send + 'static,
    {
        let _ = (uids, prepare);
        None
    }

    /// Replaces, adds or removes flags on the given messages; returns the new
    /// flags of each message that still exists.
    fn store_flags(
        &mut self,
        uids: &[Uid],
        op: FlagOp,
        flags: &Flags,
    ) -> impl Future<Output = StoreResult<Vec<(Uid, Flags)>>> + Send;

    /// [`Mailbox::store_flags`] on the messages whose mod-sequence is at most
    /// `unchanged_since` (RFC 7162 §3.1.3), decided and applied atomically
    /// against other sessions; the others are returned as `modified`.
    fn store_flags_unchanged_since(
        &mut self,
        uids: &[Uid],
        op: FlagOp,
        flags: &Flags,
        unchanged_since: u64,
    ) -> impl Future<Output = StoreResult<ConditionalStore>> + Send;

    /// Values kept for these messages by [`Mailbox::cache_fields`], one per
    /// UID in order (`None` where nothing is kept).
    fn cached_fields(
        &self,
        uids: &[Uid],
        field: CachedField,
    ) -> impl Future<Output = StoreResult<Vec<Option<Vec<u8>>>>> + Send;

    /// Keeps derived values for later [`Mailbox::cached_fields`] calls, by
    /// this and other sessions. A backend may drop entries (it is a cache);
    /// failing to keep them is not an error the client needs to see.
    fn cache_fields(
        &self,
        field: CachedField,
        entries: Vec<(Uid, Vec<u8>)>,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Removes the given messages for good, all or none visible afterwards.
    fn expunge(&mut self, uids: &[Uid]) -> impl Future<Output = StoreResult<Vec<Uid>>> + Send;

    /// Copies messages into another folder of the same account (COPY, RFC
    /// 3501 §6.4.7), keeping flags and internal date; the copies are
    /// `\Recent` there. UIDs that no longer exist are skipped. All or none:
    /// on error nothing is visible in `dest` (over quota: `OverQuota`).
    /// Allowed on a read-only mailbox.
    fn copy_to(
        &self,
        uids: &[Uid],
        dest: &FolderName,
    ) -> impl Future<Output = StoreResult<CopyOutcome>> + Send;

    /// Moves messages into another folder (MOVE, RFC 6851): each message is
    /// in exactly one of the two folders at every moment, also across a
    /// crash. The moved UIDs leave this mailbox's `messages()` as with
    /// [`Mailbox::expunge`]. Moving into the same folder is `NotPossible`.
    fn move_to(
        &mut self,
        uids: &[Uid],
        dest: &FolderName,
    ) -> impl Future<Output = StoreResult<CopyOutcome>> + Send;

    /// `len` octets of a message starting at `offset` (fewer at its end;
    /// empty past it), for partial FETCH without reading the whole file.
    fn read_range(
        &self,
        uid: Uid,
        offset: u64,
        len: u64,
    ) -> impl Future<Output = StoreResult<Vec<u8>>> + Send;

    /// A watcher that resolves when this folder may have changed since the
    /// last `sync` (see [`watch`]), for IDLE.
    fn watch(&self) -> ChangeWatcher;
}
