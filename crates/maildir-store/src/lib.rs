//! # maildir-store: the Maildir++ backend of `mail-store`
//!
//! Keeps each account's mail in a Maildir++ directory as Dovecot and Courier
//! lay it out, so existing Maildirs are taken over in place and a rollback to
//! Dovecot keeps every UID:
//!
//! - [`layout`]: where the account root is (account location or `%d/%n`
//!   template, traversal-proof), folder ↔ `.Folder` directory in modified
//!   UTF-7, listing, subscriptions, folder creation;
//! - [`uidlist`]: the `dovecot-uidlist` v3 file (UIDVALIDITY, next UID,
//!   UID → base name, POP3 UIDLs);
//! - [`flags`]: `:2,` info letters and the `dovecot-keywords` table;
//! - [`delivery`]: unique names and writing through `tmp/`;
//! - `folder`: the per-folder inter-process lock, sync, and the changes made
//!   under the lock;
//! - [`account`]: subscriptions, delete / rename, special-use folders and
//!   aliases, STATUS, quota usage, the POP3 maildrop lock;
//! - `transfer`: COPY (hard links) and MOVE (atomic renames);
//! - [`spool`]: streamed APPEND, a large literal written to `tmp/` as it
//!   arrives instead of being held in memory;
//! - [`index`]: `coffre-index`, per-folder mod-sequences (CONDSTORE) and
//!   the internal date and size of each message, so a cold open `stat`s
//!   nothing it indexed;
//! - [`cache`]: `coffre-cache`, values sessions derive from messages
//!   (ENVELOPE, BODYSTRUCTURE…) kept on disk;
//! - [`watch`]: change detection for IDLE (in-process signal, inotify,
//!   polling fallback).
//!
//! Every file-system call runs inside `tokio::task::spawn_blocking`; the
//! futures this crate returns are `Send`.
#![forbid(unsafe_code)]

use std::collections::{BTreeSet, HashMap};
use std::io::{Read as _, Seek as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use mail_store::{
    AccountLocation, AccountStore, AppendOutcome, CachedField, ChangeWatcher, ConditionalStore,
    CopyOutcome, Flag, FlagOp, Flags, FolderInfo, FolderName, MailStore, Mailbox, MailboxChange,
    MailboxStatus, MaildropLock, MessageMeta, Quota, QuotaUsage, SpecialUseNames, StoreError,
    StoreErrorKind, StoreResult, Uid, UidValidity,
};

pub mod account;
pub mod cache;
pub mod courier;
pub mod delivery;
pub mod flags;
mod folder;
pub mod index;
pub mod layout;
pub mod spool;
mod transfer;
pub mod uidlist;
pub mod watch;

pub use folder::{LOCK_FILE, RECENT_FILE, UIDVALIDITY_FILE};
pub use layout::DEFAULT_TEMPLATE;
pub use watch::DEFAULT_WATCH_INTERVAL;

/// How long an operation waits for a folder lock held by another session or
/// process before failing with a temporary error.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// How long `cache_fields` waits for a busy folder before giving up (the
/// values are only a cache).
const CACHE_LOCK_WAIT: Duration = Duration::from_secs(1);

/// Runs blocking file work on tokio's blocking pool.
async fn blocking<T, F>(work: F) -> StoreResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> StoreResult<T> + Send + 'static,
{
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        StoreError::new(
            StoreErrorKind::Internal,
            format!("storage task failed: {e}"),
        )
    })?
}

/// All accounts' Maildirs under one mail root.
#[derive(Debug, Clone)]
pub struct MaildirStore {
    mail_root: PathBuf,
    template: String,
    lock_timeout: Duration,
    special_use: Arc<SpecialUseNames>,
    watch_interval: Duration,
}

impl MaildirStore {
    /// A store under `mail_root`; accounts without an explicit location live
    /// at `template` (see [`layout`]; usually [`DEFAULT_TEMPLATE`], `%d/%n`).
    /// Special-use folders default to [`SpecialUseNames::english`].
    pub fn new(mail_root: PathBuf, template: String) -> Self {
        Self {
            mail_root,
            template,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            special_use: Arc::new(SpecialUseNames::english()),
            watch_interval: DEFAULT_WATCH_INTERVAL,
        }
    }

    /// Sets the special-use folders created (and subscribed) on an account's
    /// first open, and their aliases ([`SpecialUseNames::none`] for none).
    pub fn with_special_use(mut self, names: SpecialUseNames) -> Self {
        self.special_use = Arc::new(names);
        self
    }

    /// Sets how often an IDLE watcher polls for changes made outside this
    /// process (default [`DEFAULT_WATCH_INTERVAL`]). With inotify working,
    /// changes on this host wake watchers at once and the interval bounds
    /// only the delay for changes inotify cannot see (another host on NFS).
    pub fn with_watch_interval(mut self, interval: Duration) -> Self {
        self.watch_interval = interval;
        self
    }

    /// Sets how long to wait for a folder lock (default [`DEFAULT_LOCK_TIMEOUT`]).
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// The Maildir root an account maps to (validated; nothing is created).
    pub fn account_root(&self, account: &AccountLocation) -> StoreResult<PathBuf> {
        layout::account_root(&self.mail_root, &self.template, account)
    }
}

impl MailStore for MaildirStore {
    type Account = MaildirAccount;

    fn open_account(
        &self,
        account: &AccountLocation,
    ) -> impl Future<Output = StoreResult<MaildirAccount>> + Send {
        self.open_account_with_quota(account, Quota::UNLIMITED)
    }

    fn open_account_with_quota(
        &self,
        account: &AccountLocation,
        quota: Quota,
    ) -> impl Future<Output = StoreResult<MaildirAccount>> + Send {
        let root = self.account_root(account);
        let lock_timeout = self.lock_timeout;
        let special_use = Arc::clone(&self.special_use);
        let watch_interval = self.watch_interval;
        async move {
            let root = root?;
            let dir = root.clone();
            let special = Arc::clone(&special_use);
            blocking(move || {
                layout::ensure_maildir(&dir)?;
                account::init_account(&dir, &special, lock_timeout)
            })
            .await?;
            Ok(MaildirAccount {
                root: Arc::new(root),
                lock_timeout,
                quota,
                special_use,
                watch_interval,
            })
        }
    }
}

/// One account's Maildir++.
#[derive(Debug, Clone)]
pub struct MaildirAccount {
    root: Arc<PathBuf>,
    lock_timeout: Duration,
    quota: Quota,
    special_use: Arc<SpecialUseNames>,
    watch_interval: Duration,
}

impl MaildirAccount {
    /// The account's Maildir root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Runs `work` on the blocking pool with the root, the special-use names
    /// and the lock timeout.
    async fn with_root<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Path, &SpecialUseNames, Duration) -> StoreResult<T> + Send + 'static,
    {
        let root = Arc::clone(&self.root);
        let special = Arc::clone(&self.special_use);
        let timeout = self.lock_timeout;
        blocking(move || work(&root, &special, timeout)).await
    }

    /// The directory of an existing folder (`NotFound` if missing or a symlink).
    fn existing_folder_dir(root: &Path, name: &FolderName) -> StoreResult<PathBuf> {
        let dir = layout::folder_dir(root, name);
        if !layout::is_real_dir(&dir) {
            return Err(StoreError::new(
                StoreErrorKind::NotFound,
                format!("folder {name} does not exist"),
            ));
        }
        Ok(dir)
    }
}

impl AccountStore for MaildirAccount {
    type Mailbox = MaildirMailbox;
    type Spool = spool::MaildirSpool;

    async fn create_spool(&self) -> StoreResult<spool::MaildirSpool> {
        let root = Arc::clone(&self.root);
        let (tmp, file) = blocking(move || delivery::create_tmp(&root)).await?;
        Ok(spool::MaildirSpool::new(tmp, file))
    }

    async fn append_spool(
        &self,
        name: &FolderName,
        spool: spool::MaildirSpool,
        flags: &Flags,
        internal_date: Option<i64>,
    ) -> StoreResult<AppendOutcome> {
        let date = internal_date.unwrap_or_else(|| delivery::epoch_secs(SystemTime::now()));
        // On any error below, dropping the spool's `tmp/` file removes it.
        let tmp = spool.finish(date).await?;
        let name_owned = name.clone();
        let flags = flags.clone();
        let quota = self.quota;
        let (uid_validity, uid) = self
            .with_root(move |root, special, timeout| {
                let name = account::resolve(root, special, &name_owned);
                let dir = Self::existing_folder_dir(root, &name)?;
                if quota != Quota::UNLIMITED {
                    quota.check(account::usage(root)?, tmp.size, 1)?;
                }
                let _lock = folder::lock_folder(&dir, timeout)?;
                folder::deliver_locked(&dir, root, tmp, &flags, timeout)
            })
            .await?;
        tracing::debug!(folder = %name, %uid, "appended from spool");
        Ok(AppendOutcome { uid_validity, uid })
    }

    async fn list_folders(&self) -> StoreResult<Vec<FolderInfo>> {
        self.with_root(|root, special, _| {
            let mut list = layout::list_folders(root)?;
            account::mark_special_use(&mut list, special);
            Ok(list)
        })
        .await
    }

    async fn create_folder(&self, name: &FolderName) -> StoreResult<()> {
        let name = name.clone();
        self.with_root(move |root, special, _| {
            layout::create_folder(root, &account::resolve(root, special, &name))
        })
        .await
    }

    async fn open_folder(&self, name: &FolderName, read_only: bool) -> StoreResult<MaildirMailbox> {
        let requested = name.clone();
        let name = self
            .with_root(move |root, special, _| Ok(account::resolve(root, special, &requested)))
            .await?;
        let dir = layout::folder_dir(&self.root, &name);
        let (root, folder_name, folder_dir) = (Arc::clone(&self.root), name.clone(), dir.clone());
        let watch = blocking(move || {
            MaildirAccount::existing_folder_dir(&root, &folder_name)?;
            layout::ensure_maildir(&folder_dir)?;
            if !read_only {
                let removed = delivery::clean_stale_tmp(&folder_dir, SystemTime::now());
                if removed > 0 {
                    tracing::info!(folder = %folder_name, removed, "removed stale tmp/ files");
                }
            }
            // Watched from before the first sync on.
            Ok(watch::InotifyGuard::new(&folder_dir))
        })
        .await?;
        let folder = Arc::new(FolderCtx {
            root: Arc::clone(&self.root),
            name: name.clone(),
            lock_timeout: self.lock_timeout,
            special_use: Arc::clone(&self.special_use),
            quota: self.quota,
            watch_interval: self.watch_interval,
            _index: index::shared(&dir),
            shared: SNAPSHOTS.get(&dir),
            cache: cache::shared(&dir),
            watch,
            dir,
        });
        let mut mailbox = MaildirMailbox {
            folder,
            read_only,
            uid_validity: UidValidity(0),
            uid_next: Uid(1),
            snapshot: Arc::new(Vec::new()),
            files: Arc::new(Mutex::new(Arc::new(HashMap::new()))),
            recent: BTreeSet::new(),
            highest_modseq: 1,
            stamp: None,
            seen_version: 0,
            epoch: None,
            verified: None,
        };
        mailbox.sync().await?;
        Ok(mailbox)
    }

    async fn append(
        &self,
        name: &FolderName,
        message: &[u8],
        flags: &Flags,
        internal_date: Option<i64>,
    ) -> StoreResult<AppendOutcome> {
        let name_owned = name.clone();
        let message = message.to_vec();
        let flags = flags.clone();
        let quota = self.quota;
        let date = internal_date.unwrap_or_else(|| delivery::epoch_secs(SystemTime::now()));
        let (uid_validity, uid) = self
            .with_root(move |root, special, timeout| {
                let name = account::resolve(root, special, &name_owned);
                let dir = Self::existing_folder_dir(root, &name)?;
                if quota != Quota::UNLIMITED {
                    quota.check(account::usage(root)?, message.len() as u64, 1)?;
                }
                let tmp = delivery::write_tmp(&dir, &message, date)?;
                let _lock = folder::lock_folder(&dir, timeout)?;
                folder::deliver_locked(&dir, root, tmp, &flags, timeout)
            })
            .await?;
        tracing::debug!(folder = %name, %uid, "appended");
        Ok(AppendOutcome { uid_validity, uid })
    }

    async fn delete_folder(&self, name: &FolderName) -> StoreResult<()> {
        let name = name.clone();
        self.with_root(move |root, special, timeout| {
            account::delete_folder(root, &account::resolve(root, special, &name), timeout)
        })
        .await
    }

    async fn rename_folder(&self, from: &FolderName, to: &FolderName) -> StoreResult<()> {
        let (from, to) = (from.clone(), to.clone());
        self.with_root(move |root, special, timeout| {
            let from = account::resolve(root, special, &from);
            let to = account::resolve(root, special, &to);
            account::rename_folder(root, &from, &to, timeout)
        })
        .await
    }

    async fn subscribe(&self, name: &FolderName) -> StoreResult<()> {
        let name = name.clone();
        self.with_root(move |root, special, timeout| {
            account::subscribe(root, &account::resolve(root, special, &name), timeout)
        })
        .await
    }

    async fn unsubscribe(&self, name: &FolderName) -> StoreResult<()> {
        let name = name.clone();
        self.with_root(move |root, special, timeout| {
            account::unsubscribe(root, &account::resolve(root, special, &name), timeout)
        })
        .await
    }

    async fn subscriptions(&self) -> StoreResult<Vec<FolderName>> {
        self.with_root(|root, _, _| Ok(layout::read_subscriptions(root)?.into_iter().collect()))
            .await
    }

    async fn status(&self, name: &FolderName) -> StoreResult<MailboxStatus> {
        let name = name.clone();
        self.with_root(move |root, special, timeout| {
            let name = account::resolve(root, special, &name);
            let dir = Self::existing_folder_dir(root, &name)?;
            account::status(&dir, root, timeout)
        })
        .await
    }

    async fn folder_size(&self, name: &FolderName) -> StoreResult<u64> {
        let name = name.clone();
        self.with_root(move |root, special, _| {
            let name = account::resolve(root, special, &name);
            account::folder_size(&Self::existing_folder_dir(root, &name)?)
        })
        .await
    }

    async fn quota_usage(&self) -> StoreResult<QuotaUsage> {
        self.with_root(|root, _, _| account::usage(root)).await
    }

    fn quota(&self) -> Quota {
        self.quota
    }

    async fn lock_maildrop(&self) -> StoreResult<MaildropLock> {
        let file = self
            .with_root(|root, _, _| account::lock_maildrop(root))
            .await?;
        Ok(MaildropLock::new(file))
    }
}

/// What every operation on one open folder needs.
#[derive(Debug)]
struct FolderCtx {
    dir: PathBuf,
    root: Arc<PathBuf>,
    name: FolderName,
    lock_timeout: Duration,
    special_use: Arc<SpecialUseNames>,
    quota: Quota,
    watch_interval: Duration,
    /// This process's copy of the folder's `coffre-index` (kept alive while
    /// the folder is open; shared with every session of the folder).
    _index: Arc<Mutex<index::FolderIndex>>,
    /// This process's view of the folder's `coffre-cache`.
    cache: Arc<Mutex<cache::FolderCache>>,
    /// The latest scan any session of this process made of the folder.
    shared: Arc<Mutex<SharedSnapshot>>,
    /// This mailbox's share of the folder's inotify watches: while a
    /// folder is open it is watched, so that "no change signalled" means
    /// no change on this host (see [`MaildirMailbox::sync`]).
    watch: Option<watch::InotifyGuard>,
}

impl Drop for FolderCtx {
    fn drop(&mut self) {
        // Kept a while: a client that selects the folder again soon (most
        // do) finds it still watched and its latest scan still good.
        if let Some(guard) = self.watch.take() {
            watch::linger(guard, Box::new(Arc::clone(&self.shared)));
        }
    }
}

/// How long a sync that found no change signalled may answer "unchanged"
/// without looking at the folder's stamp: changes on this host are
/// signalled (in-process or inotify); this bounds how late a change made
/// where inotify cannot see it (another NFS client) is noticed.
const VERIFY_EVERY: Duration = Duration::from_secs(1);

/// How long work on the blocking pool waits for the inotify thread to
/// catch up before it stops trusting "no change signalled" (see
/// [`watch::wait_quiet`]).
const QUIET_WAIT: Duration = Duration::from_millis(5);

/// A folder's state shared by its sessions in this process. The latest
/// scan's messages (`recent` all false) and file names are shared by every
/// session whose view is the same: a thousand idle sessions on one INBOX
/// hold one copy, not a thousand. A session that differs (its own `\Recent`
/// messages, its own change not yet synced by others) copies on write
/// (`Arc::make_mut`) and shares again after its next sync.
#[derive(Debug, Default)]
struct SharedSnapshot {
    /// The latest scan of the folder in this process, for the sessions that
    /// wake up after it (see [`SyncRecord`]).
    latest: Option<SyncRecord>,
    /// Taken (asynchronously) by a session before it scans: sessions that
    /// woke together wait here, without holding a thread, and the first
    /// one's scan usually serves the rest.
    scan_gate: Arc<tokio::sync::Mutex<()>>,
}

/// One scan of a folder, handed to every session of this process that
/// syncs after it while nothing changed since: when new mail wakes a
/// thousand IDLE sessions of one INBOX, one of them rescans the folder and
/// the others take its result (and the list of changes, computed once)
/// instead of each reading `cur/` and the UID list under the folder lock,
/// one after another.
///
/// A session may take it only if no change was signalled after the scan
/// started (`version`), inotify was watching the folder from before the
/// scan and still is (so a change by another process on this host cannot
/// go unsignalled), and the folder's stamp still equals the one taken after
/// the scan (changes inotify cannot see, e.g. by another NFS client).
#[derive(Debug, Clone)]
struct SyncRecord {
    /// The folder's signal version read under the lock before the scan:
    /// every change signalled up to it is in the result.
    version: u64,
    /// The epoch of the folder's inotify watch from before the scan
    /// (`None`: not watched).
    epoch: Option<u64>,
    /// The stamp before the scan (a session's baseline, as for a session
    /// that scans itself) and after it.
    before: folder::Stamp,
    after: folder::Stamp,
    /// When the scan ended (or an own change updated it).
    finished: Instant,
    /// When the scan began: changes made where inotify cannot see them are
    /// in the result if made before then.
    verified: Instant,
    uid_validity: UidValidity,
    uid_next: u32,
    /// The first UID no session has claimed as `\Recent` after the scan.
    first_unclaimed: u32,
    highest_modseq: u64,
    messages: Arc<Vec<MessageMeta>>,
    files: Arc<HashMap<Uid, String>>,
    /// The shared snapshot this scan replaced, and what changed from it to
    /// `messages` (empty if nothing did).
    previous: std::sync::Weak<Vec<MessageMeta>>,
    changes: Arc<Vec<MailboxChange>>,
}

impl SyncRecord {
    /// Whether a session that last saw signal `version` and now finds the
    /// folder at `stamp` may take this result; a read-write session
    /// (`claim`) only if no message is left for it to claim as `\Recent`.
    fn reusable(&self, dir: &Path, version: u64, stamp: folder::Stamp, claim: bool) -> bool {
        self.after == stamp && self.covers(dir, version, claim)
    }

    /// Whether the scan covers every change signalled up to `version`, will
    /// be told of any later one (inotify) and leaves nothing to claim.
    fn covers(&self, dir: &Path, version: u64, claim: bool) -> bool {
        self.version >= version
            && (!claim || self.first_unclaimed >= self.uid_next)
            && watch::watched_since(dir, self.epoch)
            // A change whose event is still queued is not signalled yet.
            && watch::quiet()
    }

    /// Applies a change this process made under the folder lock to this
    /// record, if the record was the folder's state just before it (same
    /// signal version and stamp): the record then stays current, at the
    /// signal version and stamp after the change, and the folder's other
    /// sessions take it instead of rescanning. Returns whether it applied.
    fn apply_own(&mut self, change: &OwnChange, edit: &OwnEdit<'_>) -> bool {
        if self.version != change.version
            || self.after != change.before
            || !change.clean
            || self.epoch.is_none()
            || self.epoch != change.epoch
        {
            return false;
        }
        // Sessions holding the current list keep it (copy on write) and
        // take the changes from it.
        let previous = Arc::clone(&self.messages);
        let changes = edit.apply(&mut self.messages, &mut self.files);
        self.previous = Arc::downgrade(&previous);
        self.changes = Arc::new(changes);
        self.highest_modseq = self.highest_modseq.max(change.highest_modseq);
        self.version = change.version_after;
        self.before = change.after;
        self.after = change.after;
        self.finished = Instant::now();
        true
    }
}

/// What a session's own change under the folder lock did to the folder's
/// signal and stamp.
#[derive(Debug, Clone, Copy)]
struct OwnChange {
    /// The signal version and the stamp just before the change (under the
    /// lock) and just after it.
    version: u64,
    version_after: u64,
    before: folder::Stamp,
    after: folder::Stamp,
    /// Whether every event inotify had queued before the change was
    /// signalled, and the signal then moved only by the change's own
    /// notification (nothing else was signalled meanwhile).
    clean: bool,
    /// The epoch of the folder's inotify watch during the change.
    epoch: Option<u64>,
    /// HIGHESTMODSEQ after the change.
    highest_modseq: u64,
}

impl OwnChange {
    /// Runs `change` (under the folder lock the caller holds), which
    /// notifies the folder's watchers `bumps(&result)` times, and records
    /// the signal and stamp around it.
    fn around<T>(
        dir: &Path,
        change: impl FnOnce() -> StoreResult<T>,
        bumps: impl FnOnce(&T) -> u64,
        highest: impl FnOnce(&T) -> u64,
    ) -> StoreResult<(T, Self)> {
        let signal = watch::signal(dir);
        let epoch = watch::inotify_epoch(dir);
        // The previous own change's events may still be queued.
        let quiet = epoch.is_some() && watch::wait_quiet(QUIET_WAIT);
        let version = signal.version();
        let before = folder::stamp(dir);
        let result = change()?;
        let after = folder::stamp(dir);
        let version_after = signal.version();
        let clean =
            quiet && watch::watched_since(dir, epoch) && version_after == version + bumps(&result);
        let own = Self {
            version,
            version_after,
            before,
            after,
            clean,
            epoch,
            highest_modseq: highest(&result),
        };
        Ok((result, own))
    }
}

/// What a session's own change did to the messages.
enum OwnEdit<'a> {
    /// New names, flags and mod-sequences.
    Flags(&'a [(Uid, String, Flags, u64)]),
    /// Removed, ascending.
    Removed(&'a [Uid]),
}

impl OwnEdit<'_> {
    /// Applies the change to a message list and its file names (a
    /// session's or the folder's latest scan), copying either only if it
    /// changes; returns what changed.
    fn apply(
        &self,
        messages: &mut Arc<Vec<MessageMeta>>,
        files: &mut Arc<HashMap<Uid, String>>,
    ) -> Vec<MailboxChange> {
        let mut changes = Vec::new();
        match self {
            OwnEdit::Flags(stored) => {
                for (uid, filename, flags, modseq) in *stored {
                    let Ok(i) = messages.binary_search_by_key(uid, |m| m.uid) else {
                        continue;
                    };
                    if files.get(uid) != Some(filename) {
                        Arc::make_mut(files).insert(*uid, filename.clone());
                    }
                    if messages[i].flags != *flags || messages[i].modseq != *modseq {
                        let m = &mut Arc::make_mut(messages)[i];
                        m.flags = flags.clone();
                        m.modseq = *modseq;
                        changes.push(MailboxChange::FlagsChanged(*uid, flags.clone()));
                    }
                }
            }
            OwnEdit::Removed(uids) => {
                if uids.is_empty() {
                    return changes;
                }
                let files = Arc::make_mut(files);
                changes.extend(
                    uids.iter()
                        .filter(|uid| files.remove(uid).is_some())
                        .map(|uid| MailboxChange::Expunged(*uid)),
                );
                Arc::make_mut(messages).retain(|m| uids.binary_search(&m.uid).is_err());
            }
        }
        changes
    }
}

/// What a session's sync found without waiting for anyone.
enum QuickSync {
    /// Unchanged since the session's last sync.
    Unchanged,
    /// Another session's scan, still current.
    Reused(Box<SyncRecord>),
    /// A scan is needed: it must cover the signal version given.
    Stale(u64),
}

/// What a session's sync found after its turn at the folder's scan gate.
enum GatedSync {
    /// A scan made while it waited, current enough.
    Reused(Box<SyncRecord>),
    /// A scan of its own.
    Scanned(Box<Scan>),
}

/// The latest scan of the folder if a session that saw signal `version`
/// and needs `claim` may take it now (the stamp is taken here).
fn reusable_record(ctx: &FolderCtx, version: u64, claim: bool) -> Option<Box<SyncRecord>> {
    let shared = index::lock(&ctx.shared);
    let record = shared.latest.as_ref()?;
    record
        .reusable(&ctx.dir, version, folder::stamp(&ctx.dir), claim)
        .then(|| Box::new(record.clone()))
}

/// A session's own scan of a folder.
struct Scan {
    synced: folder::Synced,
    /// The signal version the result covers: the one before the scan, or
    /// after it if only the scan's own notification moved it.
    seen: u64,
    /// The folder's stamps before and after the scan.
    before: folder::Stamp,
    after: folder::Stamp,
    /// The epoch of the folder's inotify watch from before the scan.
    epoch: Option<u64>,
    /// When the scan began.
    began: Instant,
}

static SNAPSHOTS: index::Registry<SharedSnapshot> = index::Registry::new();

/// One folder opened by one session.
#[derive(Debug)]
pub struct MaildirMailbox {
    folder: Arc<FolderCtx>,
    read_only: bool,
    uid_validity: UidValidity,
    /// UIDNEXT as of the last sync.
    uid_next: Uid,
    /// Messages as of the last sync, ascending by UID.
    snapshot: Arc<Vec<MessageMeta>>,
    /// UID → current file name in `cur/`; shared with the read tasks
    /// ([`Mailbox::read_ahead`]) that find a renamed file.
    files: Arc<Mutex<Arc<HashMap<Uid, String>>>>,
    /// UIDs this session owns as `\Recent`.
    recent: BTreeSet<Uid>,
    /// HIGHESTMODSEQ as of the last sync or own change.
    highest_modseq: u64,
    /// The folder's stamp taken at the start of the last sync.
    stamp: Option<folder::Stamp>,
    /// The in-process change signal's version at the last sync.
    seen_version: u64,
    /// The epoch of the folder's inotify watch as of the last sync: while
    /// it is unchanged, every change made on this host since has bumped
    /// the signal.
    epoch: Option<u64>,
    /// When the folder was last found unchanged by its stamp or scanned.
    verified: Option<Instant>,
}

fn lock_files(
    files: &Mutex<Arc<HashMap<Uid, String>>>,
) -> std::sync::MutexGuard<'_, Arc<HashMap<Uid, String>>> {
    files
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MaildirMailbox {
    fn not_writable(&self) -> StoreError {
        StoreError::new(
            StoreErrorKind::NotPossible,
            format!("folder {} is open read-only", self.folder.name),
        )
    }

    /// The known file names of the given UIDs that are in the snapshot.
    fn known(&self, uids: &[Uid]) -> Vec<folder::KnownFile> {
        let files = lock_files(&self.files);
        let mut known: Vec<folder::KnownFile> = uids
            .iter()
            .filter_map(|uid| {
                files.get(uid).map(|f| folder::KnownFile {
                    uid: *uid,
                    filename: f.clone(),
                })
            })
            .collect();
        known.sort_by_key(|k| k.uid);
        known.dedup_by_key(|k| k.uid);
        known
    }

    /// Whether the folder was watched by inotify all along since the last
    /// sync and every event queued so far is signalled: then an unchanged
    /// signal means nothing changed on this host.
    fn trusted(&self) -> bool {
        watch::watched_since(&self.folder.dir, self.epoch) && watch::quiet()
    }

    /// After this session's own change under the folder lock (its snapshot
    /// already updated): if the session was current just before the change
    /// and nothing else was signalled meanwhile, it is current after it too,
    /// so the next sync need not rescan; the folder's latest scan is brought
    /// up to date the same way for the other sessions.
    fn after_own_change(&mut self, change: OwnChange, edit: &OwnEdit<'_>) {
        self.highest_modseq = self.highest_modseq.max(change.highest_modseq);
        let mut shared = index::lock(&self.folder.shared);
        let applied = shared
            .latest
            .as_mut()
            .is_some_and(|record| record.apply_own(&change, edit));
        let record = shared.latest.as_ref().filter(|_| applied);
        if change.clean
            && self.seen_version == change.version
            && self.stamp == Some(change.before)
            && watch::watched_since(&self.folder.dir, self.epoch)
        {
            self.seen_version = change.version_after;
            self.stamp = Some(change.after);
            // Share the updated lists again if this session's view is the
            // same (it holds no `\Recent` of its own).
            if let Some(record) = record
                && *record.messages == *self.snapshot
            {
                self.snapshot = Arc::clone(&record.messages);
                let mut files = lock_files(&self.files);
                if **files == *record.files {
                    *files = Arc::clone(&record.files);
                }
            }
        }
    }

    /// STORE, optionally only where the mod-sequence is at most
    /// `unchanged_since`, decided and applied under the folder lock.
    async fn store_conditional(
        &mut self,
        uids: &[Uid],
        op: FlagOp,
        flags: &Flags,
        unchanged_since: Option<u64>,
    ) -> StoreResult<ConditionalStore> {
        if self.read_only {
            return Err(self.not_writable());
        }
        let known = self.known(uids);
        let ctx = Arc::clone(&self.folder);
        let change = flags.clone();
        let (outcome, own) = blocking(move || {
            let _lock = folder::lock_folder(&ctx.dir, ctx.lock_timeout)?;
            OwnChange::around(
                &ctx.dir,
                || folder::store_flags_locked(&ctx.dir, &known, op, &change, unchanged_since),
                |_| 1,
                |outcome| outcome.highest_modseq,
            )
        })
        .await?;
        // Our own change is not news to us at the next sync.
        let edit = OwnEdit::Flags(&outcome.stored);
        edit.apply(&mut self.snapshot, &mut lock_files(&self.files));
        self.after_own_change(own, &edit);
        Ok(ConditionalStore {
            stored: outcome
                .stored
                .into_iter()
                .map(|(uid, _, flags, _)| (uid, flags))
                .collect(),
            modified: outcome.modified,
        })
    }

    /// The directory of `dest` (resolved through the alias table).
    fn dest_dir(&self, dest: &FolderName) -> impl Future<Output = StoreResult<PathBuf>> + Send {
        let ctx = Arc::clone(&self.folder);
        let dest = dest.clone();
        blocking(move || {
            let name = account::resolve(&ctx.root, &ctx.special_use, &dest);
            MaildirAccount::existing_folder_dir(&ctx.root, &name)
        })
    }

    /// Turns this session's own scan into the folder's latest
    /// [`SyncRecord`] (claiming `\Recent` for this session if `claim`), sharing
    /// the message list with the sessions that hold the same one.
    fn share_scan(&mut self, scan: Scan, claim: bool) -> SyncRecord {
        // The scan covers every change signalled up to `seen` (the
        // version before it, or after it if only its own notification
        // moved it), so the folder's other sessions can take it at once.
        let Scan {
            synced,
            seen: version,
            before,
            after,
            epoch,
            began,
            ..
        } = scan;
        if claim {
            self.recent.extend(
                synced
                    .messages
                    .iter()
                    .filter(|m| m.uid.0 >= synced.first_recent)
                    .map(|m| m.uid),
            );
        }
        let mut files = HashMap::with_capacity(synced.messages.len());
        let mut fresh = Vec::with_capacity(synced.messages.len());
        for m in synced.messages {
            fresh.push(MessageMeta {
                uid: m.uid,
                flags: m.flags,
                size: m.size,
                internal_date: m.internal_date,
                recent: false,
                pop3_uidl: m.pop3_uidl,
                modseq: m.modseq,
            });
            files.insert(m.uid, m.filename);
        }
        let mut shared = index::lock(&self.folder.shared);
        // Keep the previous scan's lists where they are the same, so that
        // sessions holding them keep sharing them.
        let (previous, changes, messages, files) = match &shared.latest {
            Some(last) => {
                let (changes, messages) = if *last.messages == fresh {
                    (Vec::new(), Arc::clone(&last.messages))
                } else {
                    (diff(&last.messages, &fresh), Arc::new(fresh))
                };
                let files = if *last.files == files {
                    Arc::clone(&last.files)
                } else {
                    Arc::new(files)
                };
                (Arc::downgrade(&last.messages), changes, messages, files)
            }
            // The first scan: no session holds an earlier shared list.
            None => (
                std::sync::Weak::new(),
                Vec::new(),
                Arc::new(fresh),
                Arc::new(files),
            ),
        };
        let record = SyncRecord {
            version,
            epoch,
            before,
            after,
            finished: Instant::now(),
            verified: began,
            uid_validity: synced.uid_validity,
            uid_next: synced.uid_next,
            // A read-write scan claimed everything up to UIDNEXT.
            first_unclaimed: if claim {
                synced.uid_next
            } else {
                synced.first_recent
            },
            highest_modseq: synced.highest_modseq,
            messages,
            files,
            previous,
            changes: Arc::new(changes),
        };
        // Scans in this process take turns at the scan gate, so this one
        // is the latest.
        shared.latest = Some(record.clone());
        record
    }

    /// Makes a scan's result this session's snapshot and returns what
    /// changed for it. Messages at or above `first_unclaimed` are recent to
    /// a read-only session; a read-write one keeps those it claimed.
    fn take_record(&mut self, record: SyncRecord) -> Vec<MailboxChange> {
        let claim = !self.read_only;
        self.stamp = Some(record.before);
        self.seen_version = record.version;
        self.epoch = record.epoch;
        self.verified = Some(record.verified);
        let files = record.files;
        let mut fresh = record.messages;
        self.recent.retain(|uid| files.contains_key(uid));
        let first_unclaimed = record.first_unclaimed;
        let any_recent = if claim {
            !self.recent.is_empty()
        } else {
            fresh.last().is_some_and(|m| m.uid.0 >= first_unclaimed)
        };
        if any_recent {
            let recent = &self.recent;
            for m in Arc::make_mut(&mut fresh) {
                m.recent = if claim {
                    recent.contains(&m.uid)
                } else {
                    m.uid.0 >= first_unclaimed
                };
            }
        }
        *lock_files(&self.files) = files;
        let changes = match record.previous.upgrade() {
            // The list computed once for every session that held the
            // replaced snapshot.
            Some(previous) if Arc::ptr_eq(&previous, &self.snapshot) => {
                record.changes.as_ref().clone()
            }
            _ if Arc::ptr_eq(&fresh, &self.snapshot) => Vec::new(),
            _ => diff(&self.snapshot, &fresh),
        };
        self.snapshot = fresh;
        self.uid_validity = record.uid_validity;
        self.uid_next = Uid(record.uid_next);
        self.highest_modseq = record.highest_modseq;
        changes
    }

    /// Reads a message through `read`, finding it again by base name if
    /// another program renamed it since our last look.
    async fn read_with<T, F>(&self, uid: Uid, read: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Fn(&Path) -> std::io::Result<T> + Send + 'static,
    {
        let filename = self.file_of(uid)?;
        let ctx = Arc::clone(&self.folder);
        let (value, renamed) =
            blocking(move || read_found(&ctx, &ctx.dir.join("cur"), uid, &filename, &read)).await?;
        self.remember_rename(uid, renamed);
        Ok(value)
    }

    /// The current file name of a message of the snapshot; `Expunged` (below
    /// UIDNEXT) or `NotFound` if the snapshot has no such message.
    fn file_of(&self, uid: Uid) -> StoreResult<String> {
        lock_files(&self.files).get(&uid).cloned().ok_or_else(|| {
            let kind = if uid < self.uid_next {
                StoreErrorKind::Expunged
            } else {
                StoreErrorKind::NotFound
            };
            StoreError::new(kind, format!("no UID {uid} in {}", self.folder.name))
        })
    }

    /// Keeps the name a read found a renamed message under.
    fn remember_rename(&self, uid: Uid, renamed: Option<String>) {
        remember_rename(&self.files, uid, renamed);
    }
}

/// Keeps the name a read found a renamed message under, unless the session
/// forgot the message meanwhile (a read ahead can end after a sync).
fn remember_rename(files: &Mutex<Arc<HashMap<Uid, String>>>, uid: Uid, renamed: Option<String>) {
    if let Some(current) = renamed {
        let mut files = lock_files(files);
        if files.contains_key(&uid) {
            Arc::make_mut(&mut *files).insert(uid, current);
        }
    }
}

/// Reads a message of `cur/` through `read` (on the blocking pool), finding
/// it again by base name if another program renamed it since the session's
/// last look: the value, and the new name if it was renamed.
fn read_found<T>(
    ctx: &FolderCtx,
    cur: &Path,
    uid: Uid,
    filename: &str,
    read: &impl Fn(&Path) -> std::io::Result<T>,
) -> StoreResult<(T, Option<String>)> {
    match read(&cur.join(filename)) {
        Ok(value) => return Ok((value, None)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::io(format_args!("reading UID {uid}"), &e)),
    }
    let base = uidlist::base_name(filename);
    let Some(current) = folder::find_by_base(&ctx.dir, base)? else {
        return Err(StoreError::new(
            StoreErrorKind::Expunged,
            format!("UID {uid} in {} was expunged", ctx.name),
        ));
    };
    let value = read(&cur.join(&current))
        .map_err(|e| StoreError::io(format_args!("reading UID {uid}"), &e))?;
    Ok((value, Some(current)))
}

/// Reads `len` octets from `offset` of the file at `path` (fewer at its end).
fn read_file_range(path: &Path, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let start = offset.min(size);
    let want = len.min(size - start);
    file.seek(std::io::SeekFrom::Start(start))?;
    let mut out = Vec::with_capacity(usize::try_from(want).unwrap_or(0));
    file.take(want).read_to_end(&mut out)?;
    Ok(out)
}

/// What changed between two snapshots, both ascending by UID: expunges
/// first, then flag changes, then additions.
fn diff(old: &[MessageMeta], new: &[MessageMeta]) -> Vec<MailboxChange> {
    let mut expunged = Vec::new();
    let mut changed = Vec::new();
    let mut added = Vec::new();
    let (mut i, mut j) = (0, 0);
    loop {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a.uid == b.uid => {
                // A new mod-sequence alone is a change too (flags changed
                // and changed back by another session): CONDSTORE clients
                // are told the new MODSEQ.
                if a.flags != b.flags || a.modseq != b.modseq {
                    changed.push(MailboxChange::FlagsChanged(b.uid, b.flags.clone()));
                }
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a.uid < b.uid => {
                expunged.push(MailboxChange::Expunged(a.uid));
                i += 1;
            }
            (Some(a), None) => {
                expunged.push(MailboxChange::Expunged(a.uid));
                i += 1;
            }
            (_, Some(b)) => {
                added.push(MailboxChange::Added(b.uid));
                j += 1;
            }
            (None, None) => break,
        }
    }
    expunged.extend(changed);
    expunged.extend(added);
    expunged
}

impl Mailbox for MaildirMailbox {
    fn status(&self) -> MailboxStatus {
        let count = |f: &dyn Fn(&MessageMeta) -> bool| {
            u32::try_from(self.snapshot.iter().filter(|m| f(m)).count()).unwrap_or(u32::MAX)
        };
        MailboxStatus {
            uid_validity: self.uid_validity,
            uid_next: self.uid_next,
            messages: count(&|_| true),
            unseen: count(&|m| !m.flags.contains(&Flag::Seen)),
            recent: count(&|m| m.recent),
            highest_modseq: self.highest_modseq,
        }
    }

    fn messages(&self) -> &[MessageMeta] {
        &self.snapshot
    }

    async fn sync(&mut self) -> StoreResult<Vec<MailboxChange>> {
        let called = Instant::now();
        let ctx = Arc::clone(&self.folder);
        let claim = !self.read_only;
        // Trust first, then the signal: every event queued before the
        // check is in the version read after it.
        let trusted = self.trusted();
        let signalled = watch::signal(&ctx.dir).version();
        if signalled == self.seen_version
            && trusted
            && self.verified.is_some_and(|at| at.elapsed() < VERIFY_EVERY)
        {
            // Watched all along and nothing signalled: nothing changed on
            // this host since the last sync, and the stamp was looked at
            // less than VERIFY_EVERY ago.
            return Ok(Vec::new());
        }
        let last = self.stamp;
        let (seen, epoch) = (self.seen_version, self.epoch);
        let version = if signalled == self.seen_version {
            // No change signalled since the last sync: the stamps tell
            // whether anything changed unsignalled (another NFS client).
            let outcome = blocking(move || {
                // Trusted if watched all along and inotify caught up.
                let trusted = trusted
                    || (watch::watched_since(&ctx.dir, epoch) && watch::wait_quiet(QUIET_WAIT));
                // The version first, then the stamp: a change between the
                // two shows in the stamp (if settled); one after both bumps
                // the version.
                let version = watch::signal(&ctx.dir).version();
                // An unsettled stamp (a change in the same clock tick could
                // leave it as is) is good enough when every change on this
                // host is signalled and none was.
                if let Some(last) = last
                    && last == folder::stamp(&ctx.dir)
                    && (last.settled() || (trusted && version == seen))
                {
                    // Nothing in the folder changed since the last sync.
                    return Ok(QuickSync::Unchanged);
                }
                Ok(match reusable_record(&ctx, version, claim) {
                    Some(record) => QuickSync::Reused(record),
                    None => QuickSync::Stale(version),
                })
            })
            .await?;
            match outcome {
                QuickSync::Unchanged => {
                    // `seen_version` stays: it is the signal read above,
                    // before the stamp, so a change since is not skipped.
                    self.verified = Some(called);
                    return Ok(Vec::new());
                }
                QuickSync::Reused(record) => return Ok(self.take_record(*record)),
                QuickSync::Stale(version) => version,
            }
        } else {
            // Something changed: straight to the queue for a scan.
            signalled
        };
        // One scan at a time per folder in this process; whoever waited
        // here usually finds the scan made meanwhile good enough.
        let gate = Arc::clone(&index::lock(&self.folder.shared).scan_gate);
        let _turn = gate.lock().await;
        // A scan that ended after this call began and covers every change
        // signalled before it is as good as one of our own, without a
        // single system call: the sessions that new mail woke together take
        // the first one's scan this way.
        let fresh = index::lock(&self.folder.shared)
            .latest
            .as_ref()
            .filter(|r| r.finished >= called && r.covers(&self.folder.dir, version, claim))
            .cloned();
        if let Some(record) = fresh {
            return Ok(self.take_record(record));
        }
        let ctx = Arc::clone(&self.folder);
        let outcome = blocking(move || {
            if let Some(record) = reusable_record(&ctx, version, claim) {
                return Ok(GatedSync::Reused(record));
            }
            let signal = watch::signal(&ctx.dir);
            let epoch = watch::inotify_epoch(&ctx.dir);
            let _lock = folder::lock_folder(&ctx.dir, ctx.lock_timeout)?;
            let began = Instant::now();
            let version = signal.version();
            let before = folder::stamp(&ctx.dir);
            let synced = folder::sync_locked(&ctx.dir, &ctx.root, claim, ctx.lock_timeout)?;
            let after = folder::stamp(&ctx.dir);
            // Every in-process change is made under this lock; if the
            // signal moved by more than the scan's own notification, a
            // change seen by inotify may have come during the scan: the
            // next sync looks again.
            let seen = signal.version();
            let seen = if seen == version + u64::from(synced.notified) {
                seen
            } else {
                version
            };
            Ok(GatedSync::Scanned(Box::new(Scan {
                synced,
                seen,
                before,
                after,
                epoch,
                began,
            })))
        })
        .await?;
        match outcome {
            GatedSync::Reused(record) => Ok(self.take_record(*record)),
            GatedSync::Scanned(scan) => {
                let seen = scan.seen;
                let record = self.share_scan(*scan, claim);
                let changes = self.take_record(record);
                self.seen_version = seen;
                Ok(changes)
            }
        }
    }

    async fn read_message(&self, uid: Uid) -> StoreResult<Vec<u8>> {
        self.read_with(uid, |path| std::fs::read(path)).await
    }

    async fn read_messages(&self, uids: &[Uid]) -> Vec<StoreResult<Vec<u8>>> {
        match self.read_ahead(uids, |_, bytes| bytes) {
            Some(reads) => reads.await,
            None => {
                let mut out = Vec::with_capacity(uids.len());
                for &uid in uids {
                    out.push(self.read_message(uid).await);
                }
                out
            }
        }
    }

    /// One blocking task reads the messages in order and hands each to
    /// `prepare` there; spawned at once, so it runs while the caller goes on.
    /// `None` outside a tokio runtime.
    fn read_ahead<T, F>(&self, uids: &[Uid], prepare: F) -> Option<mail_store::ReadAhead<T>>
    where
        T: Send + Sync + 'static,
        F: Fn(Uid, Vec<u8>) -> T + Send + 'static,
    {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let names: Vec<(Uid, StoreResult<String>)> =
            uids.iter().map(|&uid| (uid, self.file_of(uid))).collect();
        let count = names.len();
        let ctx = Arc::clone(&self.folder);
        let files = Arc::clone(&self.files);
        let task = runtime.spawn_blocking(move || {
            let cur = ctx.dir.join("cur");
            let read = |path: &Path| std::fs::read(path);
            names
                .into_iter()
                .map(|(uid, name)| {
                    let (bytes, renamed) =
                        name.and_then(|f| read_found(&ctx, &cur, uid, &f, &read))?;
                    remember_rename(&files, uid, renamed);
                    Ok(prepare(uid, bytes))
                })
                .collect::<Vec<_>>()
        });
        Some(Box::pin(async move {
            task.await.unwrap_or_else(|e| {
                let e = StoreError::new(
                    StoreErrorKind::Internal,
                    format!("storage task failed: {e}"),
                );
                (0..count).map(|_| Err(e.clone())).collect()
            })
        }))
    }

    async fn read_range(&self, uid: Uid, offset: u64, len: u64) -> StoreResult<Vec<u8>> {
        self.read_with(uid, move |path| read_file_range(path, offset, len))
            .await
    }

    async fn store_flags(
        &mut self,
        uids: &[Uid],
        op: FlagOp,
        flags: &Flags,
    ) -> StoreResult<Vec<(Uid, Flags)>> {
        Ok(self.store_conditional(uids, op, flags, None).await?.stored)
    }

    async fn store_flags_unchanged_since(
        &mut self,
        uids: &[Uid],
        op: FlagOp,
        flags: &Flags,
        unchanged_since: u64,
    ) -> StoreResult<ConditionalStore> {
        self.store_conditional(uids, op, flags, Some(unchanged_since))
            .await
    }

    async fn cached_fields(
        &self,
        uids: &[Uid],
        field: CachedField,
    ) -> StoreResult<Vec<Option<Vec<u8>>>> {
        let ctx = Arc::clone(&self.folder);
        let uids = uids.to_vec();
        let uid_validity = self.uid_validity.0;
        blocking(move || Ok(index::lock(&ctx.cache).get(&ctx.dir, uid_validity, &uids, field)))
            .await
    }

    async fn cache_fields(
        &self,
        field: CachedField,
        entries: Vec<(Uid, Vec<u8>)>,
    ) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let ctx = Arc::clone(&self.folder);
        let uid_validity = self.uid_validity.0;
        // Only values of messages this session knows (not expunged).
        let entries: Vec<(Uid, Vec<u8>)> = {
            let files = lock_files(&self.files);
            entries
                .into_iter()
                .filter(|(uid, _)| files.contains_key(uid))
                .collect()
        };
        let result = blocking(move || {
            // A cache write waits briefly for the lock, never long.
            let _lock = folder::lock_folder(&ctx.dir, ctx.lock_timeout.min(CACHE_LOCK_WAIT))?;
            index::lock(&ctx.cache).put(&ctx.dir, uid_validity, field, &entries)
        })
        .await;
        if let Err(e) = result {
            tracing::debug!(folder = %self.folder.name, error = %e, "values not cached");
        }
        Ok(())
    }

    async fn expunge(&mut self, uids: &[Uid]) -> StoreResult<Vec<Uid>> {
        if self.read_only {
            return Err(self.not_writable());
        }
        let known = self.known(uids);
        let ctx = Arc::clone(&self.folder);
        let ((removed, _), own) = blocking(move || {
            let _lock = folder::lock_folder(&ctx.dir, ctx.lock_timeout)?;
            OwnChange::around(
                &ctx.dir,
                || folder::expunge_locked(&ctx.dir, &ctx.root, &known, ctx.lock_timeout),
                |(removed, _)| u64::from(!removed.is_empty()),
                |(_, highest)| highest.unwrap_or(0),
            )
        })
        .await?;
        // Only what we removed leaves our snapshot; a message another
        // session expunged first is reported by the next sync.
        let edit = OwnEdit::Removed(&removed);
        edit.apply(&mut self.snapshot, &mut lock_files(&self.files));
        tracing::debug!(folder = %self.folder.name, count = removed.len(), "expunged");
        self.after_own_change(own, &edit);
        Ok(removed)
    }

    async fn copy_to(&self, uids: &[Uid], dest: &FolderName) -> StoreResult<CopyOutcome> {
        let dest_dir = self.dest_dir(dest).await?;
        let known = self.known(uids);
        let ctx = Arc::clone(&self.folder);
        let (uid_validity, pairs) = blocking(move || {
            transfer::copy(
                &ctx.dir,
                &dest_dir,
                &ctx.root,
                &known,
                ctx.quota,
                ctx.lock_timeout,
            )
        })
        .await?;
        tracing::debug!(folder = %self.folder.name, %dest, count = pairs.len(), "copied");
        Ok(CopyOutcome {
            uid_validity,
            uids: pairs,
        })
    }

    async fn move_to(&mut self, uids: &[Uid], dest: &FolderName) -> StoreResult<CopyOutcome> {
        if self.read_only {
            return Err(self.not_writable());
        }
        let dest_dir = self.dest_dir(dest).await?;
        let known = self.known(uids);
        let ctx = Arc::clone(&self.folder);
        let (uid_validity, pairs) = blocking(move || {
            transfer::move_messages(&ctx.dir, &dest_dir, &ctx.root, &known, ctx.lock_timeout)
        })
        .await?;
        let moved: Vec<Uid> = pairs.iter().map(|(src, _)| *src).collect();
        {
            let mut guard = lock_files(&self.files);
            let files = Arc::make_mut(&mut *guard);
            for uid in &moved {
                files.remove(uid);
            }
        }
        if !moved.is_empty() {
            Arc::make_mut(&mut self.snapshot).retain(|m| moved.binary_search(&m.uid).is_err());
        }
        tracing::debug!(folder = %self.folder.name, %dest, count = pairs.len(), "moved");
        Ok(CopyOutcome {
            uid_validity,
            uids: pairs,
        })
    }

    fn watch(&self) -> ChangeWatcher {
        ChangeWatcher::new(watch::MaildirChangeSource::new(
            self.folder.dir.clone(),
            self.seen_version,
            self.stamp,
            self.folder.watch_interval,
        ))
    }
}
