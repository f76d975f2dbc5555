//! An in-memory backend of the storage contract (feature `memory`), for the
//! session crates' tests and for fuzzing.
//!
//! All accounts live in one `Arc<Mutex<..>>`, so every clone of a
//! [`MemoryStore`] — and every account and mailbox opened from it — sees the
//! same mail: two sessions on one account see each other's changes through
//! [`Mailbox::sync`], as they would on disk.
//!
//! The rules it keeps are the ones the Maildir backend keeps (RFC 3501
//! §2.3.1.1, §2.3.2):
//! - UIDs ascend strictly per folder and are never reused, not even after an
//!   expunge; they stay at or below [`Uid::MAX`].
//! - Every folder gets a distinct UIDVALIDITY.
//! - `\Recent` belongs to the first read-write session that sees a message;
//!   a read-only (EXAMINE) session sees unclaimed messages as recent without
//!   claiming them.
//! - An expunge happens under one lock: all of it or none of it is visible.
//!
//! - Subscriptions are a set of names per account: deleting a folder keeps
//!   its subscription, renaming moves it.
//! - Every change to a folder bumps its [`ChangeSignal`], which is what
//!   [`Mailbox::watch`] waits on.
//! - Special-use folders only when asked for
//!   ([`MemoryStore::with_special_use`]); by default an account has INBOX
//!   alone.
//!
//! Test helpers: [`MemoryStore::deliver`] seeds a message as an MTA would,
//! [`MemoryStore::deliver_with_uidl`] also records a POP3 UIDL carried over
//! from a previous server, and [`MemoryStore::set_subscribed`] sets a
//! subscription; [`MemoryStore::set_spool_capacity`] makes APPEND spools
//! fail as on a full disk.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{
    AccountLocation, AccountStore, AppendOutcome, AppendSpool, CachedField, ChangeSignal,
    ChangeWatcher, ConditionalStore, CopyOutcome, FlagOp, Flags, FolderInfo, FolderName,
    HIERARCHY_SEPARATOR, MailStore, Mailbox, MailboxChange, MailboxStatus, MaildropLock,
    MessageMeta, Quota, QuotaUsage, SpecialUseNames, StoreError, StoreErrorKind, StoreResult, Uid,
    UidValidity,
};

/// The first UIDVALIDITY handed out; later folders count up from here, so
/// every folder of the store has a distinct one.
const FIRST_UID_VALIDITY: u32 = 1_000_000;

/// A mail store kept in memory. Cloning it shares the mail.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    shared: Arc<Mutex<StoreState>>,
}

/// Everything the store holds.
#[derive(Debug, Default)]
struct StoreState {
    /// Accounts by login.
    accounts: HashMap<String, AccountState>,
    /// How many folders were ever created (source of distinct UIDVALIDITYs).
    folders_created: u32,
    /// Source of session ids, so `\Recent` can name its owner.
    sessions_opened: u64,
    /// Special-use folders created in new accounts, and their aliases.
    special_use: Option<SpecialUseNames>,
    /// Test helper: octets an APPEND spool may hold before its writes fail
    /// as a full disk would ([`MemoryStore::set_spool_capacity`]).
    spool_capacity: Option<u64>,
}

#[derive(Debug, Default)]
struct AccountState {
    folders: BTreeMap<FolderName, FolderState>,
    subscriptions: BTreeSet<FolderName>,
    /// Whether a POP3 session holds the maildrop.
    maildrop_locked: bool,
}

#[derive(Debug)]
struct FolderState {
    uid_validity: UidValidity,
    /// The UID the next message gets; never goes down.
    uid_next: u32,
    messages: BTreeMap<Uid, StoredMessage>,
    /// HIGHESTMODSEQ: the last mod-sequence given out (RFC 7162).
    highest_modseq: u64,
    /// Values sessions asked to keep ([`Mailbox::cache_fields`]).
    cache: BTreeMap<(Uid, CachedField), Vec<u8>>,
    /// Bumped on every change; watchers wait on it.
    signal: ChangeSignal,
}

#[derive(Debug, Clone)]
struct StoredMessage {
    bytes: Arc<Vec<u8>>,
    flags: Flags,
    internal_date: i64,
    /// The session that sees this message as `\Recent`, once one has.
    recent_owner: Option<u64>,
    pop3_uidl: Option<String>,
    modseq: u64,
}

impl StoreState {
    fn new_folder(&mut self) -> FolderState {
        self.folders_created = self.folders_created.wrapping_add(1);
        FolderState {
            uid_validity: UidValidity(FIRST_UID_VALIDITY.wrapping_add(self.folders_created)),
            uid_next: 1,
            messages: BTreeMap::new(),
            highest_modseq: 1,
            cache: BTreeMap::new(),
            signal: ChangeSignal::new(),
        }
    }

    /// The account, created with an INBOX (and the special-use folders, if
    /// configured), all subscribed, on first use.
    fn account_mut(&mut self, login: &str) -> &mut AccountState {
        if !self.accounts.contains_key(login) {
            let mut account = AccountState::default();
            let mut names = vec![FolderName::inbox()];
            if let Some(special) = &self.special_use {
                names.extend(special.folders().iter().map(|(_, n)| n.clone()));
            }
            for name in names {
                let folder = self.new_folder();
                account.subscriptions.insert(name.clone());
                account.folders.insert(name, folder);
            }
            self.accounts.insert(login.to_string(), account);
        }
        self.accounts.entry(login.to_string()).or_default()
    }

    /// The folder a client's name stands for: the name itself if such a
    /// folder exists, else the special folder it is an alias of.
    fn resolve(&mut self, login: &str, name: &FolderName) -> FolderName {
        if self.account_mut(login).folders.contains_key(name) {
            return name.clone();
        }
        self.special_use
            .as_ref()
            .and_then(|s| s.alias_target(name))
            .cloned()
            .unwrap_or_else(|| name.clone())
    }

    /// Everything the account holds now.
    fn usage(&mut self, login: &str) -> QuotaUsage {
        let mut usage = QuotaUsage::default();
        for folder in self.account_mut(login).folders.values() {
            usage.messages += folder.messages.len() as u64;
            usage.bytes += folder
                .messages
                .values()
                .map(|m| m.bytes.len() as u64)
                .sum::<u64>();
        }
        usage
    }

    /// Creates `name` and any missing parents; errors if `name` exists.
    fn create_folder(&mut self, login: &str, name: &FolderName) -> StoreResult<()> {
        if self.account_mut(login).folders.contains_key(name) {
            return Err(StoreError::new(
                StoreErrorKind::AlreadyExists,
                format!("folder {name} already exists"),
            ));
        }
        let mut path = String::new();
        for level in name.levels() {
            if !path.is_empty() {
                path.push(HIERARCHY_SEPARATOR);
            }
            path.push_str(level);
            let folder = FolderName::new(&path)?;
            if !self.account_mut(login).folders.contains_key(&folder) {
                let state = self.new_folder();
                self.account_mut(login).folders.insert(folder, state);
            }
        }
        Ok(())
    }

    fn folder_mut(&mut self, login: &str, name: &FolderName) -> StoreResult<&mut FolderState> {
        self.account_mut(login)
            .folders
            .get_mut(name)
            .ok_or_else(|| no_folder(name))
    }
}

fn no_folder(name: &FolderName) -> StoreError {
    StoreError::new(
        StoreErrorKind::NotFound,
        format!("folder {name} does not exist"),
    )
}

fn has_children(folders: &BTreeMap<FolderName, FolderState>, name: &FolderName) -> bool {
    let prefix = format!("{}{HIERARCHY_SEPARATOR}", name.as_str());
    folders.keys().any(|k| k.as_str().starts_with(&prefix))
}

/// `name` with the leading `from` replaced by `to`, if `name` is `from` or
/// one of its descendants.
fn renamed(name: &FolderName, from: &FolderName, to: &FolderName) -> Option<FolderName> {
    if name == from {
        return Some(to.clone());
    }
    let rest = name
        .as_str()
        .strip_prefix(from.as_str())?
        .strip_prefix(HIERARCHY_SEPARATOR)?;
    FolderName::new(&format!("{to}{HIERARCHY_SEPARATOR}{rest}")).ok()
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl FolderState {
    /// Gives out the next mod-sequence.
    fn next_modseq(&mut self) -> u64 {
        self.highest_modseq += 1;
        self.highest_modseq
    }

    /// Forgets messages (expunge, move): their cache entries go, and the
    /// expunge itself takes a mod-sequence (RFC 7162 §3.1.2).
    fn remove_messages(&mut self, uids: &[Uid]) -> Vec<Uid> {
        let mut removed = Vec::with_capacity(uids.len());
        for uid in uids {
            if self.messages.remove(uid).is_some() {
                removed.push(*uid);
                for field in CachedField::ALL {
                    self.cache.remove(&(*uid, field));
                }
            }
        }
        if !removed.is_empty() {
            self.next_modseq();
            self.signal.bump();
        }
        removed
    }

    /// Stores a message under the next UID.
    fn add(
        &mut self,
        bytes: &[u8],
        flags: &Flags,
        internal_date: i64,
        pop3_uidl: Option<String>,
    ) -> StoreResult<AppendOutcome> {
        if self.uid_next > Uid::MAX.0 {
            return Err(StoreError::new(
                StoreErrorKind::NotPossible,
                "UID space of the folder is exhausted",
            ));
        }
        let uid = Uid(self.uid_next);
        self.uid_next += 1;
        let modseq = self.next_modseq();
        self.messages.insert(
            uid,
            StoredMessage {
                bytes: Arc::new(bytes.to_vec()),
                flags: flags.clone(),
                internal_date,
                recent_owner: None,
                pop3_uidl,
                modseq,
            },
        );
        self.signal.bump();
        Ok(AppendOutcome {
            uid_validity: self.uid_validity,
            uid,
        })
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates (and subscribes) these special-use folders in every account
    /// opened from now on, lists them with their attribute, and resolves
    /// their aliases. Without it accounts have INBOX only.
    pub fn with_special_use(self, names: SpecialUseNames) -> Self {
        self.lock().special_use = Some(names);
        self
    }

    /// Test helper: APPEND spools created from now on fail their writes
    /// (`Temporary`, as on a full disk) once they would hold more than
    /// `capacity` octets; `None` lifts the limit.
    pub fn set_spool_capacity(&self, capacity: Option<u64>) {
        self.lock().spool_capacity = capacity;
    }

    fn lock(&self) -> MutexGuard<'_, StoreState> {
        lock(&self.shared)
    }

    /// Seeds one message into `folder` of `login`, as an MTA delivery would:
    /// the account and the folder are created if missing, the message gets
    /// the folder's next UID and is `\Recent` for the first session that
    /// sees it. The internal date is now.
    pub fn deliver(
        &self,
        login: &str,
        folder: &str,
        bytes: &[u8],
        flags: Flags,
    ) -> StoreResult<AppendOutcome> {
        self.deliver_inner(login, folder, bytes, flags, None)
    }

    /// Like [`MemoryStore::deliver`], also recording the POP3 UIDL a previous
    /// server showed for the message (reported in [`MessageMeta::pop3_uidl`]).
    pub fn deliver_with_uidl(
        &self,
        login: &str,
        folder: &str,
        bytes: &[u8],
        flags: Flags,
        pop3_uidl: &str,
    ) -> StoreResult<AppendOutcome> {
        self.deliver_inner(login, folder, bytes, flags, Some(pop3_uidl.to_string()))
    }

    fn deliver_inner(
        &self,
        login: &str,
        folder: &str,
        bytes: &[u8],
        flags: Flags,
        pop3_uidl: Option<String>,
    ) -> StoreResult<AppendOutcome> {
        let name = FolderName::new(folder)?;
        let mut state = self.lock();
        if !state.account_mut(login).folders.contains_key(&name) {
            state.create_folder(login, &name)?;
        }
        state
            .folder_mut(login, &name)?
            .add(bytes, &flags, now_secs(), pop3_uidl)
    }

    /// Subscribes or unsubscribes `folder` of `login` (the folder must exist).
    pub fn set_subscribed(&self, login: &str, folder: &str, subscribed: bool) -> StoreResult<()> {
        let name = FolderName::new(folder)?;
        let mut state = self.lock();
        state.folder_mut(login, &name)?;
        let subscriptions = &mut state.account_mut(login).subscriptions;
        if subscribed {
            subscriptions.insert(name);
        } else {
            subscriptions.remove(&name);
        }
        Ok(())
    }

    /// How many messages `folder` of `login` holds right now (0 if it does
    /// not exist); for assertions in tests.
    pub fn message_count(&self, login: &str, folder: &str) -> usize {
        let Ok(name) = FolderName::new(folder) else {
            return 0;
        };
        self.lock()
            .accounts
            .get(login)
            .and_then(|a| a.folders.get(&name))
            .map_or(0, |f| f.messages.len())
    }
}

/// Locks the shared state; a poisoned lock (a test panicked while holding
/// it) still holds consistent data because every change is made whole.
fn lock(shared: &Mutex<StoreState>) -> MutexGuard<'_, StoreState> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MailStore for MemoryStore {
    type Account = MemoryAccount;

    fn open_account(
        &self,
        account: &AccountLocation,
    ) -> impl Future<Output = StoreResult<MemoryAccount>> + Send {
        self.open_account_with_quota(account, Quota::UNLIMITED)
    }

    fn open_account_with_quota(
        &self,
        account: &AccountLocation,
        quota: Quota,
    ) -> impl Future<Output = StoreResult<MemoryAccount>> + Send {
        let shared = Arc::clone(&self.shared);
        let login = account.login.clone();
        async move {
            lock(&shared).account_mut(&login);
            Ok(MemoryAccount {
                shared,
                login,
                quota,
            })
        }
    }
}

/// One account of a [`MemoryStore`].
#[derive(Debug, Clone)]
pub struct MemoryAccount {
    shared: Arc<Mutex<StoreState>>,
    login: String,
    quota: Quota,
}

/// Releases a memory account's maildrop when dropped.
struct MemoryMaildropGuard {
    shared: Arc<Mutex<StoreState>>,
    login: String,
}

impl Drop for MemoryMaildropGuard {
    fn drop(&mut self) {
        lock(&self.shared).account_mut(&self.login).maildrop_locked = false;
    }
}

/// An APPEND spool of the memory backend: a `Vec` (memory is where this
/// backend keeps everything).
#[derive(Debug)]
pub struct MemorySpool {
    data: Vec<u8>,
    /// Simulated disk size ([`MemoryStore::set_spool_capacity`]).
    capacity: Option<u64>,
}

impl AppendSpool for MemorySpool {
    async fn write(&mut self, data: &[u8]) -> StoreResult<()> {
        if let Some(capacity) = self.capacity
            && self.data.len() as u64 + data.len() as u64 > capacity
        {
            return Err(StoreError::new(
                StoreErrorKind::Temporary,
                "APPEND spool: no space left on device (simulated)",
            ));
        }
        self.data.extend_from_slice(data);
        Ok(())
    }

    fn len(&self) -> u64 {
        self.data.len() as u64
    }
}

impl AccountStore for MemoryAccount {
    type Mailbox = MemoryMailbox;
    type Spool = MemorySpool;

    async fn create_spool(&self) -> StoreResult<MemorySpool> {
        Ok(MemorySpool {
            data: Vec::new(),
            capacity: lock(&self.shared).spool_capacity,
        })
    }

    async fn append_spool(
        &self,
        name: &FolderName,
        spool: MemorySpool,
        flags: &Flags,
        internal_date: Option<i64>,
    ) -> StoreResult<AppendOutcome> {
        self.append(name, &spool.data, flags, internal_date).await
    }

    async fn list_folders(&self) -> StoreResult<Vec<FolderInfo>> {
        let mut state = lock(&self.shared);
        let special = state.special_use.clone();
        let account = state.account_mut(&self.login);
        let folders = &account.folders;
        let mut list: Vec<FolderInfo> = folders
            .keys()
            .map(|name| FolderInfo {
                name: name.clone(),
                subscribed: account.subscriptions.contains(name),
                special_use: special.as_ref().and_then(|s| s.special_use_of(name)),
                has_children: has_children(folders, name),
            })
            .collect();
        // INBOX first, the rest in name order (the map is sorted already).
        list.sort_by_key(|f| !f.name.is_inbox());
        Ok(list)
    }

    async fn create_folder(&self, name: &FolderName) -> StoreResult<()> {
        let mut state = lock(&self.shared);
        let name = state.resolve(&self.login, name);
        state.create_folder(&self.login, &name)
    }

    async fn open_folder(&self, name: &FolderName, read_only: bool) -> StoreResult<MemoryMailbox> {
        let (session, name, signal) = {
            let mut state = lock(&self.shared);
            let name = state.resolve(&self.login, name);
            let signal = state.folder_mut(&self.login, &name)?.signal.clone();
            state.sessions_opened += 1;
            (state.sessions_opened, name, signal)
        };
        let mut mailbox = MemoryMailbox {
            shared: Arc::clone(&self.shared),
            login: self.login.clone(),
            name,
            read_only,
            session,
            quota: self.quota,
            uid_validity: UidValidity(0),
            uid_next: Uid(1),
            snapshot: Vec::new(),
            highest_modseq: 1,
            seen_version: signal.version(),
            signal,
        };
        mailbox.refresh()?;
        Ok(mailbox)
    }

    async fn append(
        &self,
        name: &FolderName,
        message: &[u8],
        flags: &Flags,
        internal_date: Option<i64>,
    ) -> StoreResult<AppendOutcome> {
        let date = internal_date.unwrap_or_else(now_secs);
        let mut state = lock(&self.shared);
        let name = state.resolve(&self.login, name);
        state.folder_mut(&self.login, &name)?;
        let usage = state.usage(&self.login);
        self.quota.check(usage, message.len() as u64, 1)?;
        state
            .folder_mut(&self.login, &name)?
            .add(message, flags, date, None)
    }

    async fn delete_folder(&self, name: &FolderName) -> StoreResult<()> {
        let mut state = lock(&self.shared);
        let name = state.resolve(&self.login, name);
        if name.is_inbox() {
            return Err(StoreError::new(
                StoreErrorKind::NotPossible,
                "INBOX cannot be deleted",
            ));
        }
        let folders = &mut state.account_mut(&self.login).folders;
        if !folders.contains_key(&name) {
            return Err(no_folder(&name));
        }
        if has_children(folders, &name) {
            return Err(StoreError::new(
                StoreErrorKind::NotPossible,
                format!("folder {name} has children"),
            ));
        }
        if let Some(folder) = folders.remove(&name) {
            folder.signal.bump();
        }
        Ok(())
    }

    async fn rename_folder(&self, from: &FolderName, to: &FolderName) -> StoreResult<()> {
        let mut state = lock(&self.shared);
        let from = state.resolve(&self.login, from);
        let to = state.resolve(&self.login, to);
        state.folder_mut(&self.login, &from)?;
        if to.is_inbox() || state.account_mut(&self.login).folders.contains_key(&to) {
            return Err(StoreError::new(
                StoreErrorKind::AlreadyExists,
                format!("folder {to} already exists"),
            ));
        }
        if renamed(&to, &from, &to).is_some() {
            return Err(StoreError::new(
                StoreErrorKind::NotPossible,
                format!("cannot rename {from} into itself ({to})"),
            ));
        }
        if from.is_inbox() {
            state.create_folder(&self.login, &to)?;
            let inbox = state.folder_mut(&self.login, &from)?;
            let moved = std::mem::take(&mut inbox.messages);
            inbox.signal.bump();
            let dest = state.folder_mut(&self.login, &to)?;
            for message in moved.into_values() {
                dest.add(
                    &message.bytes,
                    &message.flags,
                    message.internal_date,
                    message.pop3_uidl,
                )?;
            }
            return Ok(());
        }
        // Parents of the new name first, then every folder of the subtree.
        if let Some((parent, _)) = to.as_str().rsplit_once(HIERARCHY_SEPARATOR) {
            let parent = FolderName::new(parent)?;
            if !state.account_mut(&self.login).folders.contains_key(&parent) {
                state.create_folder(&self.login, &parent)?;
            }
        }
        let account = state.account_mut(&self.login);
        let subtree: Vec<FolderName> = account
            .folders
            .keys()
            .filter(|k| renamed(k, &from, &to).is_some())
            .cloned()
            .collect();
        for old in subtree {
            if let (Some(new), Some(folder)) =
                (renamed(&old, &from, &to), account.folders.remove(&old))
            {
                folder.signal.bump();
                account.folders.insert(new, folder);
            }
        }
        let subscriptions = std::mem::take(&mut account.subscriptions);
        account.subscriptions = subscriptions
            .into_iter()
            .map(|s| renamed(&s, &from, &to).unwrap_or(s))
            .collect();
        Ok(())
    }

    async fn subscribe(&self, name: &FolderName) -> StoreResult<()> {
        let mut state = lock(&self.shared);
        let name = state.resolve(&self.login, name);
        state.folder_mut(&self.login, &name)?;
        state.account_mut(&self.login).subscriptions.insert(name);
        Ok(())
    }

    async fn unsubscribe(&self, name: &FolderName) -> StoreResult<()> {
        let mut state = lock(&self.shared);
        let name = state.resolve(&self.login, name);
        if state.account_mut(&self.login).subscriptions.remove(&name) {
            Ok(())
        } else {
            Err(StoreError::new(
                StoreErrorKind::NotFound,
                format!("{name} is not subscribed"),
            ))
        }
    }

    async fn subscriptions(&self) -> StoreResult<Vec<FolderName>> {
        let mut state = lock(&self.shared);
        Ok(state
            .account_mut(&self.login)
            .subscriptions
            .iter()
            .cloned()
            .collect())
    }

    async fn status(&self, name: &FolderName) -> StoreResult<MailboxStatus> {
        let mut state = lock(&self.shared);
        let name = state.resolve(&self.login, name);
        let folder = state.folder_mut(&self.login, &name)?;
        let count = |f: &dyn Fn(&StoredMessage) -> bool| {
            u32::try_from(folder.messages.values().filter(|m| f(m)).count()).unwrap_or(u32::MAX)
        };
        Ok(MailboxStatus {
            uid_validity: folder.uid_validity,
            uid_next: Uid(folder.uid_next),
            messages: count(&|_| true),
            unseen: count(&|m| !m.flags.contains(&crate::Flag::Seen)),
            recent: count(&|m| m.recent_owner.is_none()),
            highest_modseq: folder.highest_modseq,
        })
    }

    async fn folder_size(&self, name: &FolderName) -> StoreResult<u64> {
        let mut state = lock(&self.shared);
        let name = state.resolve(&self.login, name);
        let folder = state.folder_mut(&self.login, &name)?;
        Ok(folder.messages.values().map(|m| m.bytes.len() as u64).sum())
    }

    async fn quota_usage(&self) -> StoreResult<QuotaUsage> {
        Ok(lock(&self.shared).usage(&self.login))
    }

    fn quota(&self) -> Quota {
        self.quota
    }

    async fn lock_maildrop(&self) -> StoreResult<MaildropLock> {
        let mut state = lock(&self.shared);
        let account = state.account_mut(&self.login);
        if account.maildrop_locked {
            return Err(StoreError::new(
                StoreErrorKind::InUse,
                format!("maildrop of {} is locked by another session", self.login),
            ));
        }
        account.maildrop_locked = true;
        Ok(MaildropLock::new(MemoryMaildropGuard {
            shared: Arc::clone(&self.shared),
            login: self.login.clone(),
        }))
    }
}

/// One folder of a [`MemoryAccount`], opened by one session.
#[derive(Debug)]
pub struct MemoryMailbox {
    shared: Arc<Mutex<StoreState>>,
    login: String,
    name: FolderName,
    read_only: bool,
    /// This session's id, the owner of the messages it claims as `\Recent`.
    session: u64,
    /// The account's limits (for COPY).
    quota: Quota,
    /// The folder's change signal, and its version at the last refresh.
    signal: ChangeSignal,
    seen_version: u64,
    uid_validity: UidValidity,
    /// UIDNEXT as of the last sync.
    uid_next: Uid,
    /// Messages as of the last sync, ascending by UID.
    snapshot: Vec<MessageMeta>,
    /// HIGHESTMODSEQ as of the last sync (or our own last change).
    highest_modseq: u64,
}

impl MemoryMailbox {
    fn not_writable(&self) -> StoreError {
        StoreError::new(
            StoreErrorKind::NotPossible,
            format!("folder {} is open read-only", self.name),
        )
    }

    /// Takes a new snapshot of the folder, claiming `\Recent` for unclaimed
    /// messages when read-write, and returns the differences to the old one.
    fn refresh(&mut self) -> StoreResult<Vec<MailboxChange>> {
        let mut state = lock(&self.shared);
        let folder = state.folder_mut(&self.login, &self.name)?;
        self.seen_version = folder.signal.version();
        let mut fresh = Vec::with_capacity(folder.messages.len());
        for (uid, message) in &mut folder.messages {
            if message.recent_owner.is_none() && !self.read_only {
                message.recent_owner = Some(self.session);
            }
            let recent = match message.recent_owner {
                Some(owner) => owner == self.session,
                None => true,
            };
            fresh.push(MessageMeta {
                uid: *uid,
                flags: message.flags.clone(),
                size: message.bytes.len() as u64,
                internal_date: message.internal_date,
                recent,
                pop3_uidl: message.pop3_uidl.clone(),
                modseq: message.modseq,
            });
        }
        self.uid_validity = folder.uid_validity;
        self.highest_modseq = folder.highest_modseq;
        self.uid_next = Uid(folder.uid_next);
        drop(state);

        let changes = diff(&self.snapshot, &fresh);
        self.snapshot = fresh;
        Ok(changes)
    }

    fn position(&self, uid: Uid) -> Option<usize> {
        self.snapshot.binary_search_by_key(&uid, |m| m.uid).ok()
    }

    /// STORE, optionally only on messages not modified since
    /// `unchanged_since`; a message whose flags do not change keeps its
    /// mod-sequence (RFC 7162 §3.1.3 lets the server skip the no-op).
    fn store_conditional(
        &mut self,
        uids: &[Uid],
        op: FlagOp,
        flags: &Flags,
        unchanged_since: Option<u64>,
    ) -> StoreResult<ConditionalStore> {
        let mut outcome = ConditionalStore::default();
        let mut modseqs = Vec::with_capacity(uids.len());
        {
            let mut state = lock(&self.shared);
            let folder = state.folder_mut(&self.login, &self.name)?;
            let mut bumped = false;
            for uid in uids {
                let Some(current) = folder.messages.get(uid) else {
                    continue;
                };
                if unchanged_since.is_some_and(|limit| current.modseq > limit) {
                    outcome.modified.push(*uid);
                    continue;
                }
                let new_flags = apply_flag_op(&current.flags, op, flags);
                let modseq = if new_flags == current.flags {
                    current.modseq
                } else {
                    bumped = true;
                    folder.next_modseq()
                };
                if let Some(message) = folder.messages.get_mut(uid) {
                    message.flags = new_flags.clone();
                    message.modseq = modseq;
                }
                modseqs.push(modseq);
                outcome.stored.push((*uid, new_flags));
            }
            if bumped {
                folder.signal.bump();
            }
            self.highest_modseq = folder.highest_modseq;
        }
        outcome.modified.sort_unstable();
        outcome.modified.dedup();
        // Our own change is not news to us at the next sync.
        for ((uid, new_flags), modseq) in outcome.stored.iter().zip(modseqs) {
            if let Some(i) = self.position(*uid) {
                self.snapshot[i].flags = new_flags.clone();
                self.snapshot[i].modseq = modseq;
            }
        }
        Ok(outcome)
    }

    /// Copies (and for a move, removes) messages under one lock, so the
    /// whole operation is atomic.
    fn transfer(&self, uids: &[Uid], dest: &FolderName, remove: bool) -> StoreResult<CopyOutcome> {
        let mut state = lock(&self.shared);
        let dest = state.resolve(&self.login, dest);
        if remove && dest == self.name {
            return Err(StoreError::new(
                StoreErrorKind::NotPossible,
                format!("cannot move messages of {dest} into itself"),
            ));
        }
        let uid_validity = state.folder_mut(&self.login, &dest)?.uid_validity;
        let mut sorted = uids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let source = state.folder_mut(&self.login, &self.name)?;
        let picked: Vec<(Uid, StoredMessage)> = sorted
            .iter()
            .filter_map(|uid| source.messages.get(uid).map(|m| (*uid, m.clone())))
            .collect();
        if !remove {
            let usage = state.usage(&self.login);
            let bytes = picked.iter().map(|(_, m)| m.bytes.len() as u64).sum();
            self.quota.check(usage, bytes, picked.len() as u64)?;
        }
        let target = state.folder_mut(&self.login, &dest)?;
        if u64::from(target.uid_next) + picked.len() as u64 > u64::from(Uid::MAX.0) + 1 {
            return Err(StoreError::new(
                StoreErrorKind::NotPossible,
                format!("UID space of {dest} is exhausted"),
            ));
        }
        let mut pairs = Vec::with_capacity(picked.len());
        for (uid, message) in &picked {
            let out = target.add(
                &message.bytes,
                &message.flags,
                message.internal_date,
                message.pop3_uidl.clone(),
            )?;
            pairs.push((*uid, out.uid));
        }
        if remove && !picked.is_empty() {
            let source = state.folder_mut(&self.login, &self.name)?;
            let moved: Vec<Uid> = picked.iter().map(|(uid, _)| *uid).collect();
            source.remove_messages(&moved);
        }
        Ok(CopyOutcome {
            uid_validity,
            uids: pairs,
        })
    }
}

/// What changed between two snapshots, both ascending by UID: expunges
/// first, then flag changes, then additions (the order IMAP reports them in).
fn diff(old: &[MessageMeta], new: &[MessageMeta]) -> Vec<MailboxChange> {
    let mut expunged = Vec::new();
    let mut flags = Vec::new();
    let mut added = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a.uid == b.uid => {
                // A new mod-sequence alone is a change too (flags changed
                // and changed back by another session).
                if a.flags != b.flags || a.modseq != b.modseq {
                    flags.push(MailboxChange::FlagsChanged(b.uid, b.flags.clone()));
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
    expunged.extend(flags);
    expunged.extend(added);
    expunged
}

/// Applies a STORE operation to a flag set.
pub(crate) fn apply_flag_op(current: &Flags, op: FlagOp, flags: &Flags) -> Flags {
    match op {
        FlagOp::Replace => flags.clone(),
        FlagOp::Add => current.union(flags).cloned().collect(),
        FlagOp::Remove => current.difference(flags).cloned().collect(),
    }
}

impl MemoryMailbox {
    /// A message's bytes, copied out of the shared state.
    fn read_now(&self, uid: Uid) -> StoreResult<Vec<u8>> {
        let mut state = lock(&self.shared);
        let folder = state.folder_mut(&self.login, &self.name)?;
        match folder.messages.get(&uid) {
            Some(message) => Ok(message.bytes.as_ref().clone()),
            None if uid.0 < folder.uid_next => Err(StoreError::new(
                StoreErrorKind::Expunged,
                format!("UID {uid} in {} was expunged", self.name),
            )),
            None => Err(StoreError::new(
                StoreErrorKind::NotFound,
                format!("no UID {uid} in {}", self.name),
            )),
        }
    }
}

impl Mailbox for MemoryMailbox {
    fn status(&self) -> MailboxStatus {
        let count = |f: &dyn Fn(&MessageMeta) -> bool| {
            u32::try_from(self.snapshot.iter().filter(|m| f(m)).count()).unwrap_or(u32::MAX)
        };
        MailboxStatus {
            uid_validity: self.uid_validity,
            uid_next: self.uid_next,
            messages: count(&|_| true),
            unseen: count(&|m| !m.flags.contains(&crate::Flag::Seen)),
            recent: count(&|m| m.recent),
            highest_modseq: self.highest_modseq,
        }
    }

    fn messages(&self) -> &[MessageMeta] {
        &self.snapshot
    }

    async fn sync(&mut self) -> StoreResult<Vec<MailboxChange>> {
        self.refresh()
    }

    async fn read_message(&self, uid: Uid) -> StoreResult<Vec<u8>> {
        self.read_now(uid)
    }

    /// Memory is read at once: the future is ready when returned.
    fn read_ahead<T, F>(&self, uids: &[Uid], prepare: F) -> Option<crate::ReadAhead<T>>
    where
        T: Send + Sync + 'static,
        F: Fn(Uid, Vec<u8>) -> T + Send + 'static,
    {
        let reads: Vec<StoreResult<T>> = uids
            .iter()
            .map(|&uid| self.read_now(uid).map(|bytes| prepare(uid, bytes)))
            .collect();
        Some(Box::pin(std::future::ready(reads)))
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
        let outcome = self.store_conditional(uids, op, flags, None)?;
        Ok(outcome.stored)
    }

    async fn store_flags_unchanged_since(
        &mut self,
        uids: &[Uid],
        op: FlagOp,
        flags: &Flags,
        unchanged_since: u64,
    ) -> StoreResult<ConditionalStore> {
        if self.read_only {
            return Err(self.not_writable());
        }
        self.store_conditional(uids, op, flags, Some(unchanged_since))
    }

    async fn cached_fields(
        &self,
        uids: &[Uid],
        field: CachedField,
    ) -> StoreResult<Vec<Option<Vec<u8>>>> {
        let mut state = lock(&self.shared);
        let folder = state.folder_mut(&self.login, &self.name)?;
        Ok(uids
            .iter()
            .map(|uid| folder.cache.get(&(*uid, field)).cloned())
            .collect())
    }

    async fn cache_fields(
        &self,
        field: CachedField,
        entries: Vec<(Uid, Vec<u8>)>,
    ) -> StoreResult<()> {
        let mut state = lock(&self.shared);
        let folder = state.folder_mut(&self.login, &self.name)?;
        for (uid, value) in entries {
            if folder.messages.contains_key(&uid) && value.len() <= crate::MAX_CACHED_FIELD_LEN {
                folder.cache.insert((uid, field), value);
            }
        }
        Ok(())
    }

    async fn expunge(&mut self, uids: &[Uid]) -> StoreResult<Vec<Uid>> {
        if self.read_only {
            return Err(self.not_writable());
        }
        let mut removed = {
            let mut state = lock(&self.shared);
            let folder = state.folder_mut(&self.login, &self.name)?;
            let removed = folder.remove_messages(uids);
            self.highest_modseq = folder.highest_modseq;
            removed
        };
        removed.sort_unstable();
        removed.dedup();
        // Only what we removed leaves our snapshot; a message another
        // session expunged first is reported by the next sync.
        self.snapshot
            .retain(|m| removed.binary_search(&m.uid).is_err());
        Ok(removed)
    }

    async fn copy_to(&self, uids: &[Uid], dest: &FolderName) -> StoreResult<CopyOutcome> {
        self.transfer(uids, dest, false)
    }

    async fn move_to(&mut self, uids: &[Uid], dest: &FolderName) -> StoreResult<CopyOutcome> {
        if self.read_only {
            return Err(self.not_writable());
        }
        let outcome = self.transfer(uids, dest, true)?;
        let moved: Vec<Uid> = outcome.uids.iter().map(|(src, _)| *src).collect();
        self.snapshot
            .retain(|m| moved.binary_search(&m.uid).is_err());
        Ok(outcome)
    }

    async fn read_range(&self, uid: Uid, offset: u64, len: u64) -> StoreResult<Vec<u8>> {
        let bytes = self.read_message(uid).await?;
        Ok(byte_range(&bytes, offset, len).to_vec())
    }

    fn watch(&self) -> ChangeWatcher {
        ChangeWatcher::new(self.signal.source(self.seen_version))
    }
}

/// `len` octets from `offset`, clipped to the message.
pub(crate) fn byte_range(bytes: &[u8], offset: u64, len: u64) -> &[u8] {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let end = start
        .saturating_add(usize::try_from(len).unwrap_or(usize::MAX))
        .min(bytes.len());
    &bytes[start..end]
}

#[cfg(test)]
mod tests;
