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
//!   under the lock.
//!
//! Every file-system call runs inside `tokio::task::spawn_blocking`; the
//! futures this crate returns are `Send`.
#![forbid(unsafe_code)]

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use mail_store::{
    AccountLocation, AccountStore, AppendOutcome, Flag, FlagOp, Flags, FolderInfo, FolderName,
    MailStore, Mailbox, MailboxChange, MailboxStatus, MessageMeta, StoreError, StoreErrorKind,
    StoreResult, Uid, UidValidity,
};

pub mod delivery;
pub mod flags;
mod folder;
pub mod layout;
pub mod uidlist;

pub use folder::{LOCK_FILE, RECENT_FILE, UIDVALIDITY_FILE};
pub use layout::DEFAULT_TEMPLATE;

/// How long an operation waits for a folder lock held by another session or
/// process before failing with a temporary error.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

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
}

impl MaildirStore {
    /// A store under `mail_root`; accounts without an explicit location live
    /// at `template` (see [`layout`]; usually [`DEFAULT_TEMPLATE`], `%d/%n`).
    pub fn new(mail_root: PathBuf, template: String) -> Self {
        Self {
            mail_root,
            template,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        }
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
        let root = self.account_root(account);
        let lock_timeout = self.lock_timeout;
        async move {
            let root = root?;
            let dir = root.clone();
            blocking(move || layout::ensure_maildir(&dir)).await?;
            Ok(MaildirAccount {
                root: Arc::new(root),
                lock_timeout,
            })
        }
    }
}

/// One account's Maildir++.
#[derive(Debug, Clone)]
pub struct MaildirAccount {
    root: Arc<PathBuf>,
    lock_timeout: Duration,
}

impl MaildirAccount {
    /// The account's Maildir root.
    pub fn root(&self) -> &Path {
        &self.root
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

    async fn list_folders(&self) -> StoreResult<Vec<FolderInfo>> {
        let root = Arc::clone(&self.root);
        blocking(move || layout::list_folders(&root)).await
    }

    async fn create_folder(&self, name: &FolderName) -> StoreResult<()> {
        let root = Arc::clone(&self.root);
        let name = name.clone();
        blocking(move || layout::create_folder(&root, &name)).await
    }

    async fn open_folder(&self, name: &FolderName, read_only: bool) -> StoreResult<MaildirMailbox> {
        let folder = Arc::new(FolderCtx {
            dir: layout::folder_dir(&self.root, name),
            root: Arc::clone(&self.root),
            name: name.clone(),
            lock_timeout: self.lock_timeout,
        });
        let ctx = Arc::clone(&folder);
        blocking(move || {
            Self::existing_folder_dir(&ctx.root, &ctx.name)?;
            layout::ensure_maildir(&ctx.dir)?;
            if !read_only {
                let removed = delivery::clean_stale_tmp(&ctx.dir, SystemTime::now());
                if removed > 0 {
                    tracing::info!(folder = %ctx.name, removed, "removed stale tmp/ files");
                }
            }
            Ok(())
        })
        .await?;
        let mut mailbox = MaildirMailbox {
            folder,
            read_only,
            uid_validity: UidValidity(0),
            uid_next: Uid(1),
            snapshot: Vec::new(),
            files: Arc::new(Mutex::new(HashMap::new())),
            recent: BTreeSet::new(),
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
        let root = Arc::clone(&self.root);
        let message = message.to_vec();
        let flags = flags.clone();
        let timeout = self.lock_timeout;
        let date = internal_date.unwrap_or_else(|| delivery::epoch_secs(SystemTime::now()));
        let (uid_validity, uid) = blocking(move || {
            let dir = Self::existing_folder_dir(&root, &name_owned)?;
            let tmp = delivery::write_tmp(&dir, &message, date)?;
            let _lock = folder::lock_folder(&dir, timeout)?;
            folder::deliver_locked(&dir, &root, tmp, &flags, timeout)
        })
        .await?;
        tracing::debug!(folder = %name, %uid, "appended");
        Ok(AppendOutcome { uid_validity, uid })
    }
}

/// What every operation on one open folder needs.
#[derive(Debug)]
struct FolderCtx {
    dir: PathBuf,
    root: Arc<PathBuf>,
    name: FolderName,
    lock_timeout: Duration,
}

/// One folder opened by one session.
#[derive(Debug)]
pub struct MaildirMailbox {
    folder: Arc<FolderCtx>,
    read_only: bool,
    uid_validity: UidValidity,
    /// UIDNEXT as of the last sync.
    uid_next: Uid,
    /// Messages as of the last sync, ascending by UID.
    snapshot: Vec<MessageMeta>,
    /// UID → current file name in `cur/`; shared with `read_message` tasks
    /// that find a renamed file.
    files: Arc<Mutex<HashMap<Uid, String>>>,
    /// UIDs this session owns as `\Recent`.
    recent: BTreeSet<Uid>,
}

fn lock_files(
    files: &Mutex<HashMap<Uid, String>>,
) -> std::sync::MutexGuard<'_, HashMap<Uid, String>> {
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

    fn position(&self, uid: Uid) -> Option<usize> {
        self.snapshot.binary_search_by_key(&uid, |m| m.uid).ok()
    }
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
                if a.flags != b.flags {
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
        }
    }

    fn messages(&self) -> &[MessageMeta] {
        &self.snapshot
    }

    async fn sync(&mut self) -> StoreResult<Vec<MailboxChange>> {
        let ctx = Arc::clone(&self.folder);
        let claim = !self.read_only;
        let synced = blocking(move || {
            let _lock = folder::lock_folder(&ctx.dir, ctx.lock_timeout)?;
            folder::sync_locked(&ctx.dir, &ctx.root, claim, ctx.lock_timeout)
        })
        .await?;
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
            let recent = if claim {
                self.recent.contains(&m.uid)
            } else {
                m.uid.0 >= synced.first_recent
            };
            fresh.push(MessageMeta {
                uid: m.uid,
                flags: m.flags,
                size: m.size,
                internal_date: m.internal_date,
                recent,
                pop3_uidl: m.pop3_uidl,
            });
            files.insert(m.uid, m.filename);
        }
        self.recent.retain(|uid| files.contains_key(uid));
        *lock_files(&self.files) = files;
        let changes = diff(&self.snapshot, &fresh);
        self.snapshot = fresh;
        self.uid_validity = synced.uid_validity;
        self.uid_next = Uid(synced.uid_next);
        Ok(changes)
    }

    async fn read_message(&self, uid: Uid) -> StoreResult<Vec<u8>> {
        let Some(filename) = lock_files(&self.files).get(&uid).cloned() else {
            let kind = if uid < self.uid_next {
                StoreErrorKind::Expunged
            } else {
                StoreErrorKind::NotFound
            };
            return Err(StoreError::new(
                kind,
                format!("no UID {uid} in {}", self.folder.name),
            ));
        };
        let ctx = Arc::clone(&self.folder);
        let (bytes, renamed) = blocking(move || {
            let cur = ctx.dir.join("cur");
            match std::fs::read(cur.join(&filename)) {
                Ok(bytes) => return Ok((bytes, None)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(format_args!("reading UID {uid}"), &e)),
            }
            // Renamed by another session (flags) since our last look?
            let base = uidlist::base_name(&filename);
            let Some(current) = folder::find_by_base(&ctx.dir, base)? else {
                return Err(StoreError::new(
                    StoreErrorKind::Expunged,
                    format!("UID {uid} in {} was expunged", ctx.name),
                ));
            };
            let bytes = std::fs::read(cur.join(&current))
                .map_err(|e| StoreError::io(format_args!("reading UID {uid}"), &e))?;
            Ok((bytes, Some(current)))
        })
        .await?;
        if let Some(current) = renamed {
            lock_files(&self.files).insert(uid, current);
        }
        Ok(bytes)
    }

    async fn store_flags(
        &mut self,
        uids: &[Uid],
        op: FlagOp,
        flags: &Flags,
    ) -> StoreResult<Vec<(Uid, Flags)>> {
        if self.read_only {
            return Err(self.not_writable());
        }
        let known = self.known(uids);
        let ctx = Arc::clone(&self.folder);
        let change = flags.clone();
        let results = blocking(move || {
            let _lock = folder::lock_folder(&ctx.dir, ctx.lock_timeout)?;
            folder::store_flags_locked(&ctx.dir, &known, op, &change)
        })
        .await?;
        let mut out = Vec::with_capacity(results.len());
        {
            let mut files = lock_files(&self.files);
            for (uid, filename, new_flags) in results {
                files.insert(uid, filename);
                out.push((uid, new_flags));
            }
        }
        // Our own change is not news to us at the next sync.
        for (uid, new_flags) in &out {
            if let Some(i) = self.position(*uid) {
                self.snapshot[i].flags = new_flags.clone();
            }
        }
        Ok(out)
    }

    async fn expunge(&mut self, uids: &[Uid]) -> StoreResult<Vec<Uid>> {
        if self.read_only {
            return Err(self.not_writable());
        }
        let known = self.known(uids);
        let ctx = Arc::clone(&self.folder);
        let removed = blocking(move || {
            let _lock = folder::lock_folder(&ctx.dir, ctx.lock_timeout)?;
            folder::expunge_locked(&ctx.dir, &ctx.root, &known, ctx.lock_timeout)
        })
        .await?;
        {
            let mut files = lock_files(&self.files);
            for uid in &removed {
                files.remove(uid);
            }
        }
        // Only what we removed leaves our snapshot; a message another
        // session expunged first is reported by the next sync.
        self.snapshot
            .retain(|m| removed.binary_search(&m.uid).is_err());
        tracing::debug!(folder = %self.folder.name, count = removed.len(), "expunged");
        Ok(removed)
    }
}
