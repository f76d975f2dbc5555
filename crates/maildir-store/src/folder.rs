//! One folder on disk: the inter-process lock, synchronising the directory
//! with the UID list, and the changes (flags, expunge, append) made under the
//! lock. Everything here is blocking; `lib.rs` runs it on tokio's blocking
//! pool.
//!
//! Sync (after Dovecot's `maildir-sync.c`): under the folder lock, files in
//! `new/` move to `cur/` as `<base>:2,` (keeping their base name and mtime);
//! `cur/` is scanned; records of vanished files are dropped (the directory is
//! scanned twice before a record is dropped, because a concurrent rename can
//! hide a file from one `readdir`); files without a record get the next UIDs
//! in arrival order (mtime, then name); the list is written back atomically
//! only if it changed. UIDs therefore only ever grow and never move to
//! another message.
//!
//! The lock is `coffre-uidlist.lock` in the folder directory, held with
//! `flock` (`File::lock`), so it works between processes. UIDVALIDITY of a new
//! list comes from the account's `dovecot-uidvalidity` file (Dovecot's
//! counter: hex, the last value given out), so every folder gets a distinct
//! one, never below the current time. `\Recent` ownership is the first UID
//! not yet claimed by a read-write session, kept in `coffre-recent`.
//!
//! Cost: a sync reads the directory names (`readdir` gives the file type,
//! so no `stat`), the UID list, the keyword table and what was appended to
//! `coffre-index` since this process last looked ([`crate::index`]); it
//! `stat`s only files the index does not know yet (for their mtime, the
//! internal date, and their size when the name has no `,S=`), since neither
//! changes when flags rename a file. A mailbox skips
//! the sync altogether when the [`Stamp`] of `cur/`, `new/`, the UID list and
//! the keyword table is unchanged since its last one. APPEND, COPY and MOVE
//! add their records to the end of the UID list without re-scanning `cur/`.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read as _, Seek as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use mail_store::{FlagOp, Flags, StoreError, StoreErrorKind, StoreResult, Uid, UidValidity};

use crate::cache;
use crate::delivery::{self, TmpMessage};
use crate::flags::{self, KEYWORDS_FILE, Keywords};
use crate::index::{self, IndexEntry};
use crate::layout::{read_optional, write_atomic, write_replace};
use crate::uidlist::{self, UidEntry, UidList};
use crate::watch::Sub;

/// The lock file inside each folder directory.
pub const LOCK_FILE: &str = "coffre-uidlist.lock";
/// The first UID no read-write session has seen as `\Recent` yet.
pub const RECENT_FILE: &str = "coffre-recent";
/// The account's UIDVALIDITY counter (Dovecot's file name and format).
pub const UIDVALIDITY_FILE: &str = "dovecot-uidvalidity";

/// An exclusive lock on a folder, released when dropped (the file is closed).
#[derive(Debug)]
pub struct FolderLock {
    _file: fs::File,
}

/// Takes the folder's lock, waiting up to `timeout` (then a `Temporary` error).
pub fn lock_folder(dir: &Path, timeout: Duration) -> StoreResult<FolderLock> {
    lock_at(&dir.join(LOCK_FILE), timeout)
}

/// Takes the locks of two folders in one order (by path), so that two
/// sessions moving mail between the same folders cannot deadlock. One lock
/// when both are the same folder.
pub fn lock_two(a: &Path, b: &Path, timeout: Duration) -> StoreResult<Vec<FolderLock>> {
    if a == b {
        return Ok(vec![lock_folder(a, timeout)?]);
    }
    let (first, second) = if a < b { (a, b) } else { (b, a) };
    let one = lock_folder(first, timeout)?;
    let two = lock_folder(second, timeout)?;
    Ok(vec![one, two])
}

/// Takes an exclusive `flock` on the file at `path` (created if missing).
pub fn lock_at(path: &Path, timeout: Duration) -> StoreResult<FolderLock> {
    let path = path.to_path_buf();
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| StoreError::io(format_args!("opening {}", path.display()), &e))?;
    lock_file(&file, &path, timeout)?;
    Ok(FolderLock { _file: file })
}

fn lock_file(file: &fs::File, path: &Path, timeout: Duration) -> StoreResult<()> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(fs::TryLockError::WouldBlock) => {}
            Err(fs::TryLockError::Error(e)) => {
                return Err(StoreError::io(
                    format_args!("locking {}", path.display()),
                    &e,
                ));
            }
        }
        if Instant::now() >= deadline {
            return Err(StoreError::new(
                StoreErrorKind::Temporary,
                format!("timed out after {timeout:?} waiting for {}", path.display()),
            ));
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Hands out the next UIDVALIDITY of the account: the current time, or one
/// more than the last one given out if that is not below it.
pub fn next_uid_validity(root: &Path, timeout: Duration) -> StoreResult<UidValidity> {
    let path = root.join(UIDVALIDITY_FILE);
    let io_err = |e: io::Error| StoreError::io(format_args!("updating {}", path.display()), &e);
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io_err)?;
    lock_file(&file, &path, timeout)?;
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(io_err)?;
    let last = u32::from_str_radix(text.trim(), 16).unwrap_or(0);
    let now = u32::try_from(delivery::epoch_secs(SystemTime::now())).unwrap_or(u32::MAX);
    let next = now.max(last.wrapping_add(1)).max(1);
    file.set_len(0).map_err(io_err)?;
    file.rewind().map_err(io_err)?;
    file.write_all(format!("{next:08x}").as_bytes())
        .map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    Ok(UidValidity(next))
}

/// What a sync needs to know of a file besides its name: its mtime (the
/// internal date) and its size. Neither changes when flags rename the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMeta {
    /// mtime, seconds since the epoch.
    pub mtime: i64,
    /// Size in octets.
    pub len: u64,
}

/// `cur/` by base name → current file name, from `readdir` alone. Dot files,
/// non-files (symlinks included) and non-UTF-8 names are skipped.
fn scan_cur(cur: &Path) -> StoreResult<HashMap<String, String>> {
    let mut found: HashMap<String, String> = HashMap::new();
    let entries = fs::read_dir(cur)
        .map_err(|e| StoreError::io(format_args!("scanning {}", cur.display()), &e))?;
    for entry in entries {
        let entry =
            entry.map_err(|e| StoreError::io(format_args!("scanning {}", cur.display()), &e))?;
        let Ok(filename) = entry.file_name().into_string() else {
            tracing::warn!(dir = %cur.display(), "skipping a file whose name is not UTF-8");
            continue;
        };
        if filename.starts_with('.') {
            continue;
        }
        // d_type from readdir; a file removed since readdir is not there.
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let base = uidlist::base_name(&filename).to_string();
        if let Some(other) = found.get(&base) {
            tracing::warn!(%base, %other, %filename, "two files share one base name; ignoring one");
            continue;
        }
        found.insert(base, filename);
    }
    Ok(found)
}

/// `stat` of one file in `cur/` (not following symlinks).
fn stat_cur(cur: &Path, filename: &str) -> Option<FileMeta> {
    let meta = fs::symlink_metadata(cur.join(filename)).ok()?;
    Some(FileMeta {
        mtime: meta.modified().map(delivery::epoch_secs).unwrap_or(0),
        len: meta.len(),
    })
}

/// The current file name of the message with this base name, if any.
pub fn find_by_base(dir: &Path, base: &str) -> StoreResult<Option<String>> {
    Ok(scan_cur(&dir.join("cur"))?.remove(base))
}

/// What a folder's directories and index files looked like at one moment:
/// if two stamps are equal, nothing in the folder changed in between.
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    /// `(mtime ns, inode, size)` of `cur/`, `new/`, the UID list, the
    /// keyword table (zeros when missing).
    items: [(i128, u64, u64); 4],
    /// Whether an mtime was too close to the moment the stamp was taken
    /// for a later change to be sure to move it (same clock tick).
    recent: bool,
}

impl PartialEq for Stamp {
    fn eq(&self, other: &Self) -> bool {
        self.items == other.items
    }
}

impl Stamp {
    /// Whether "equal stamps" can be trusted to mean "no change".
    pub fn settled(&self) -> bool {
        !self.recent
    }
}

/// How close to "now" an mtime makes a stamp unsettled.
const STAMP_SETTLE: Duration = Duration::from_secs(2);

/// Takes the folder's [`Stamp`]: four `stat` calls.
pub fn stamp(dir: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt as _;
    let now = SystemTime::now();
    let mut recent = false;
    let mut items = [(0i128, 0u64, 0u64); 4];
    let paths = [
        dir.join("cur"),
        dir.join("new"),
        dir.join(uidlist::FILE_NAME),
        dir.join(KEYWORDS_FILE),
    ];
    for (item, path) in items.iter_mut().zip(paths.iter()) {
        if let Ok(meta) = fs::metadata(path) {
            let ns = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
            *item = (ns, meta.ino(), meta.len());
            let modified = meta.modified().unwrap_or(now);
            recent |= now
                .duration_since(modified)
                .map_or(true, |age| age < STAMP_SETTLE);
        }
    }
    Stamp { items, recent }
}

/// Moves every file of `new/` to `cur/<name>:2,`; returns how many moved.
fn move_new_to_cur(dir: &Path) -> StoreResult<usize> {
    let new = dir.join("new");
    let cur = dir.join("cur");
    let entries = match fs::read_dir(&new) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => {
            return Err(StoreError::io(
                format_args!("scanning {}", new.display()),
                &e,
            ));
        }
    };
    let mut moved = 0;
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let target = if name.contains(':') {
            name.clone()
        } else {
            format!("{name}{}", flags::INFO_PREFIX)
        };
        let out = crate::watch::expect(dir, Sub::New, &name);
        let into = crate::watch::expect(dir, Sub::Cur, &target);
        match fs::rename(new.join(&name), cur.join(&target)) {
            Ok(()) => moved += 1,
            Err(e) => {
                out.cancel();
                into.cancel();
                if e.kind() != io::ErrorKind::NotFound {
                    return Err(StoreError::io(format_args!("moving new/{name}"), &e));
                }
            }
        }
    }
    Ok(moved)
}

/// One message as a sync found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedMessage {
    /// Its UID.
    pub uid: Uid,
    /// Its current name in `cur/`.
    pub filename: String,
    /// Flags from the name.
    pub flags: Flags,
    /// `,S=` from the name, else the file size.
    pub size: u64,
    /// The file's mtime.
    pub internal_date: i64,
    /// A POP3 UIDL recorded in the UID list.
    pub pop3_uidl: Option<String>,
    /// Its mod-sequence, from `coffre-index`.
    pub modseq: u64,
}

/// The folder as one sync found it.
#[derive(Debug, Clone)]
pub struct Synced {
    /// UIDVALIDITY.
    pub uid_validity: UidValidity,
    /// UIDNEXT.
    pub uid_next: u32,
    /// Messages, ascending by UID.
    pub messages: Vec<SyncedMessage>,
    /// The first UID still `\Recent` before this sync (a read-write sync
    /// claims `first_recent..uid_next` for its session).
    pub first_recent: u32,
    /// HIGHESTMODSEQ.
    pub highest_modseq: u64,
    /// Whether the sync changed the UID list (and so bumped the folder's
    /// signal once).
    pub notified: bool,
}

/// Reads the UID list, creating a new one (with a fresh UIDVALIDITY) if the
/// folder has none. Returns the list and whether it is new.
fn load_uidlist(dir: &Path, root: &Path, timeout: Duration) -> StoreResult<(UidList, bool)> {
    match read_optional(&dir.join(uidlist::FILE_NAME))? {
        Some(text) => {
            let mut list = UidList::parse(&text)?;
            if list.guid.is_empty() {
                list.guid = new_guid();
            }
            Ok((list, false))
        }
        None => Ok((
            UidList::new(next_uid_validity(root, timeout)?, new_guid()),
            true,
        )),
    }
}

fn new_guid() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads the keyword table (empty if the folder has none).
pub fn load_keywords(dir: &Path) -> StoreResult<Keywords> {
    Ok(read_optional(&dir.join(KEYWORDS_FILE))?
        .map(|t| Keywords::parse(&t))
        .unwrap_or_default())
}

/// Synchronises the folder with its UID list and its index
/// (`coffre-index`). The caller holds the lock.
///
/// Internal date and size of known messages come from the index, so only
/// files the index does not know yet are `stat`ed. A message whose name
/// differs from the one the index recorded had its flags changed by someone
/// else: it gets a new mod-sequence now; so does every new message, and each
/// message that left the folder raises HIGHESTMODSEQ.
pub fn sync_locked(
    dir: &Path,
    root: &Path,
    claim_recent: bool,
    timeout: Duration,
) -> StoreResult<Synced> {
    if !dir.join(uidlist::FILE_NAME).exists() {
        crate::courier::take_over_locked(dir, root, timeout, false)?;
    }
    let (mut list, created) = load_uidlist(dir, root, timeout)?;
    let mut changed = created;
    let next_before_sync = list.next_uid;
    move_new_to_cur(dir)?;
    let cur = dir.join("cur");
    let mut files = scan_cur(&cur)?;
    if list.entries.iter().any(|e| !files.contains_key(e.base())) {
        // A rename by another program may have hidden a file from readdir.
        for (base, file) in scan_cur(&cur)? {
            files.entry(base).or_insert(file);
        }
    }
    let before = list.entries.len();
    list.entries.retain(|e| files.contains_key(e.base()));
    changed |= list.entries.len() != before;

    let mut fresh_meta: HashMap<&str, FileMeta> = HashMap::new();
    let mut unknown: Vec<(&str, FileMeta)> = {
        let known: std::collections::HashSet<&str> =
            list.entries.iter().map(UidEntry::base).collect();
        files
            .iter()
            .filter(|(base, _)| !known.contains(base.as_str()))
            .map(|(base, filename)| {
                let meta = stat_cur(&cur, filename);
                if let Some(meta) = meta {
                    fresh_meta.insert(base.as_str(), meta);
                }
                (
                    filename.as_str(),
                    meta.unwrap_or(FileMeta { mtime: 0, len: 0 }),
                )
            })
            .collect()
    };
    unknown.sort_by(|a, b| a.1.mtime.cmp(&b.1.mtime).then_with(|| a.0.cmp(b.0)));
    for (filename, _) in unknown {
        check_uid_space(dir, list.next_uid, 1)?;
        list.entries.push(UidEntry {
            uid: Uid(list.next_uid),
            ext: Vec::new(),
            filename: uidlist::base_name(filename).to_string(),
        });
        list.next_uid += 1;
        changed = true;
    }
    if changed {
        write_atomic(dir, uidlist::FILE_NAME, list.serialize().as_bytes())?;
        crate::watch::notify(dir);
    }

    let recorded = read_optional(&dir.join(RECENT_FILE))?;
    let first_recent = match &recorded {
        Some(text) => text.trim().parse::<u32>().unwrap_or(1),
        // A folder new to us but with a UID list (taken over from another
        // server): what that server had seen is not recent any more.
        None if !created => next_before_sync,
        None => 1,
    };
    // `\Recent` is advisory: the file is replaced without fsync (after a
    // crash some messages may be recent once more, nothing worse).
    if claim_recent && first_recent != list.next_uid {
        write_replace(dir, RECENT_FILE, list.next_uid.to_string().as_bytes())?;
    } else if recorded.is_none() {
        write_replace(dir, RECENT_FILE, first_recent.to_string().as_bytes())?;
    }

    let keywords = load_keywords(dir)?;
    let shared = index::shared(dir);
    let mut idx = index::lock(&shared);
    idx.refresh(dir);
    idx.ensure_validity(list.uid_validity);
    let mut gone: Vec<Uid> = idx
        .uids()
        .filter(|uid| list.entries.binary_search_by_key(uid, |e| e.uid).is_err())
        .collect();
    gone.sort_unstable();
    for uid in &gone {
        idx.remove(*uid);
    }
    let mut messages = Vec::with_capacity(list.entries.len());
    for entry in &list.entries {
        let Some(filename) = files.get(entry.base()) else {
            continue;
        };
        let parsed = flags::parse_name(filename, &keywords);
        let known = idx
            .get(entry.uid)
            .filter(|e| uidlist::base_name(&e.name) == entry.base())
            .cloned();
        let (modseq, mtime, size) = match known {
            Some(e) if e.name == *filename => (e.modseq, e.mtime, e.size),
            Some(e) => {
                // Renamed by someone else: its flags changed.
                let modseq = idx.next_modseq();
                idx.put(
                    entry.uid,
                    IndexEntry {
                        modseq,
                        name: filename.clone(),
                        ..e.clone()
                    },
                );
                (modseq, e.mtime, e.size)
            }
            None => {
                let meta = fresh_meta
                    .get(entry.base())
                    .copied()
                    .or_else(|| stat_cur(&cur, filename))
                    .or_else(|| {
                        // Renamed by another program since our readdir.
                        let now = find_by_base(dir, entry.base()).ok()??;
                        stat_cur(&cur, &now)
                    });
                match meta {
                    Some(meta) => {
                        let size = flags::size_from_name(parsed.base).unwrap_or(meta.len);
                        let modseq = idx.next_modseq();
                        idx.put(
                            entry.uid,
                            IndexEntry {
                                modseq,
                                mtime: meta.mtime,
                                size,
                                name: filename.clone(),
                            },
                        );
                        (modseq, meta.mtime, size)
                    }
                    // Gone or unreadable right now: not recorded, so the
                    // next sync looks again.
                    None => (
                        idx.highest(),
                        0,
                        flags::size_from_name(parsed.base).unwrap_or(0),
                    ),
                }
            }
        };
        messages.push(SyncedMessage {
            uid: entry.uid,
            filename: filename.clone(),
            flags: parsed.flags,
            size,
            internal_date: mtime,
            pop3_uidl: entry.pop3_uidl().map(str::to_string),
            modseq,
        });
    }
    idx.commit(dir);
    let highest_modseq = idx.highest();
    drop(idx);
    if !gone.is_empty() {
        drop_cached(dir, &gone);
    }
    Ok(Synced {
        uid_validity: list.uid_validity,
        uid_next: list.next_uid,
        messages,
        first_recent,
        highest_modseq,
        notified: changed,
    })
}

/// Drops cached values of messages that left the folder (a failure only
/// leaves unreachable entries: UIDs are never reused).
fn drop_cached(dir: &Path, uids: &[Uid]) {
    let shared = cache::shared(dir);
    if let Err(e) = index::lock(&shared).drop_uids(dir, uids) {
        tracing::debug!(dir = %dir.display(), error = %e, "cache entries not dropped");
    }
}

/// A message a session knows: its UID and the name it last saw.
#[derive(Debug, Clone)]
pub struct KnownFile {
    /// The UID.
    pub uid: Uid,
    /// The file name in `cur/` as of the session's last look.
    pub filename: String,
}

/// Finds a message's current name: the known one if it still exists, else by
/// base name in a fresh scan (another process may have renamed it).
pub fn current_name(
    dir: &Path,
    known: &KnownFile,
    rescan: &mut Option<HashMap<String, String>>,
) -> StoreResult<Option<String>> {
    if fs::symlink_metadata(dir.join("cur").join(&known.filename)).is_ok() {
        return Ok(Some(known.filename.clone()));
    }
    if rescan.is_none() {
        *rescan = Some(scan_cur(&dir.join("cur"))?);
    }
    let base = uidlist::base_name(&known.filename);
    Ok(rescan.as_ref().and_then(|m| m.get(base)).cloned())
}

/// What a STORE did under the lock.
#[derive(Debug, Default)]
pub struct StoreOutcome {
    /// Each message whose flags were set: UID, file name, flags, mod-sequence.
    pub stored: Vec<(Uid, String, Flags, u64)>,
    /// Messages left alone because their mod-sequence was above
    /// `unchanged_since`, ascending.
    pub modified: Vec<Uid>,
    /// HIGHESTMODSEQ afterwards.
    pub highest_modseq: u64,
}

/// Changes flags by renaming files, giving each changed message a new
/// mod-sequence in the index; with `unchanged_since`, messages whose
/// mod-sequence is above it are left alone (decided and applied here, under
/// the folder lock the caller holds, so atomically against every other
/// session and Coffre process). A flag change by someone else that no sync
/// has recorded yet is recorded first (new mod-sequence), so it counts as a
/// modification. New keywords are bound in the keyword table (written
/// before any file uses their letters).
pub fn store_flags_locked(
    dir: &Path,
    targets: &[KnownFile],
    op: FlagOp,
    change: &Flags,
    unchanged_since: Option<u64>,
) -> StoreResult<StoreOutcome> {
    let mut keywords = load_keywords(dir)?;
    if op != FlagOp::Remove {
        let mut grown = false;
        for flag in change {
            if let mail_store::Flag::Keyword(k) = flag {
                grown |= keywords.allocate(k)?;
            }
        }
        if grown {
            write_atomic(dir, KEYWORDS_FILE, keywords.serialize().as_bytes())?;
        }
    }
    let shared = index::shared(dir);
    let mut idx = index::lock(&shared);
    idx.refresh(dir);
    if idx.uid_validity().is_none()
        && let Some(text) = read_optional(&dir.join(uidlist::FILE_NAME))?
    {
        idx.ensure_validity(UidList::parse(&text)?.uid_validity);
    }
    let cur = dir.join("cur");
    let mut rescan = None;
    let mut outcome = StoreOutcome::default();
    for known in targets {
        // Two tries: the file may be renamed by another program in between.
        for _ in 0..2 {
            let Some(name) = current_name(dir, known, &mut rescan)? else {
                break;
            };
            let base = uidlist::base_name(&name);
            let recorded = idx
                .get(known.uid)
                .filter(|e| uidlist::base_name(&e.name) == base)
                .cloned();
            let entry = match recorded {
                Some(e) if e.name == name => e,
                other => {
                    // Unknown to the index, or renamed by someone else
                    // since it was recorded: a change of its own.
                    let (mtime, size) = match other {
                        Some(e) => (e.mtime, e.size),
                        None => match stat_cur(&cur, &name) {
                            Some(meta) => {
                                (meta.mtime, flags::size_from_name(base).unwrap_or(meta.len))
                            }
                            None => {
                                rescan = None;
                                continue;
                            }
                        },
                    };
                    let entry = IndexEntry {
                        modseq: idx.next_modseq(),
                        mtime,
                        size,
                        name: name.clone(),
                    };
                    idx.put(known.uid, entry.clone());
                    entry
                }
            };
            if unchanged_since.is_some_and(|limit| entry.modseq > limit) {
                outcome.modified.push(known.uid);
                break;
            }
            let parsed = flags::parse_name(&name, &keywords);
            let new_flags = apply(&parsed.flags, op, change);
            let new_name = flags::build_name(parsed.base, &new_flags, &parsed.other, &keywords)?;
            if new_name == name {
                outcome
                    .stored
                    .push((known.uid, name, new_flags, entry.modseq));
                break;
            }
            let out = crate::watch::expect(dir, Sub::Cur, &name);
            let into = crate::watch::expect(dir, Sub::Cur, &new_name);
            let renamed = fs::rename(cur.join(&name), cur.join(&new_name));
            if renamed.is_err() {
                out.cancel();
                into.cancel();
            }
            match renamed {
                Ok(()) => {
                    let modseq = idx.next_modseq();
                    idx.put(
                        known.uid,
                        IndexEntry {
                            modseq,
                            name: new_name.clone(),
                            ..entry
                        },
                    );
                    outcome
                        .stored
                        .push((known.uid, new_name, new_flags, modseq));
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => rescan = None,
                Err(e) => {
                    idx.commit(dir);
                    return Err(StoreError::io(format_args!("renaming cur/{name}"), &e));
                }
            }
        }
    }
    idx.commit(dir);
    outcome.highest_modseq = idx.highest();
    drop(idx);
    outcome.modified.sort_unstable();
    outcome.modified.dedup();
    crate::watch::notify(dir);
    Ok(outcome)
}

/// Applies a STORE operation to a flag set.
pub fn apply(current: &Flags, op: FlagOp, change: &Flags) -> Flags {
    match op {
        FlagOp::Replace => change.clone(),
        FlagOp::Add => current.union(change).cloned().collect(),
        FlagOp::Remove => current.difference(change).cloned().collect(),
    }
}

/// Removes messages and their records; returns the UIDs removed by this
/// call (a message already gone was expunged by someone else) and, if any
/// was, HIGHESTMODSEQ afterwards. The caller holds the lock, so other
/// Coffre processes see all or none of it.
pub fn expunge_locked(
    dir: &Path,
    root: &Path,
    targets: &[KnownFile],
    timeout: Duration,
) -> StoreResult<(Vec<Uid>, Option<u64>)> {
    let cur = dir.join("cur");
    let mut rescan = None;
    let mut removed = Vec::with_capacity(targets.len());
    for known in targets {
        let Some(name) = current_name(dir, known, &mut rescan)? else {
            continue;
        };
        let gone = crate::watch::expect(dir, Sub::Cur, &name);
        match fs::remove_file(cur.join(&name)) {
            Ok(()) => removed.push(known.uid),
            Err(e) => {
                gone.cancel();
                if e.kind() != io::ErrorKind::NotFound {
                    return Err(StoreError::io(format_args!("removing cur/{name}"), &e));
                }
            }
        }
    }
    removed.sort_unstable();
    removed.dedup();
    let highest = if removed.is_empty() {
        None
    } else {
        Some(forget_uids_locked(dir, root, &removed, timeout)?)
    };
    Ok((removed, highest))
}

/// Drops the records of messages whose files are gone (expunged or moved
/// away); returns HIGHESTMODSEQ afterwards. The caller holds the lock.
pub fn forget_uids_locked(
    dir: &Path,
    root: &Path,
    uids: &[Uid],
    timeout: Duration,
) -> StoreResult<u64> {
    let (mut list, _) = load_uidlist(dir, root, timeout)?;
    list.entries.retain(|e| uids.binary_search(&e.uid).is_err());
    write_atomic(dir, uidlist::FILE_NAME, list.serialize().as_bytes())?;
    let highest = {
        // Each message that left raises HIGHESTMODSEQ (RFC 7162: an
        // expunge is a change a CONDSTORE client must be able to notice).
        let shared = index::shared(dir);
        let mut idx = index::lock(&shared);
        idx.refresh(dir);
        for uid in uids {
            idx.remove(*uid);
        }
        idx.commit(dir);
        idx.highest()
    };
    drop_cached(dir, uids);
    crate::watch::notify(dir);
    Ok(highest)
}

/// Binds any new keywords of `message_flags` in the folder's table (written
/// before a file uses their letters) and returns the table.
pub fn keywords_for(dir: &Path, message_flags: &Flags) -> StoreResult<Keywords> {
    let mut keywords = load_keywords(dir)?;
    let mut grown = false;
    for flag in message_flags {
        if let mail_store::Flag::Keyword(k) = flag {
            grown |= keywords.allocate(k)?;
        }
    }
    if grown {
        write_atomic(dir, KEYWORDS_FILE, keywords.serialize().as_bytes())?;
    }
    Ok(keywords)
}

/// Before placing files in `cur/` for [`assign_uids_locked`]: gives mail
/// waiting in `new/` its UIDs first (earlier arrivals keep lower UIDs), and
/// creates the UID list if the folder has none. Must run *before* the files
/// are placed, or a sync would number them too. The caller holds the lock.
pub fn prepare_locked(dir: &Path, root: &Path, timeout: Duration) -> StoreResult<()> {
    if new_has_mail(dir) || !dir.join(uidlist::FILE_NAME).exists() {
        sync_locked(dir, root, false, timeout)?;
    }
    Ok(())
}

/// Gives UIDs to files just placed in `cur/` under these base names (with
/// these extension fields), in order, by appending records to the UID list —
/// no scan of `cur/`. The caller holds the lock and called
/// [`prepare_locked`] before placing the files.
pub fn assign_uids_locked(
    dir: &Path,
    root: &Path,
    timeout: Duration,
    records: Vec<(String, Vec<String>)>,
) -> StoreResult<(UidValidity, Vec<Uid>)> {
    let path = dir.join(uidlist::FILE_NAME);
    if let Some((uid_validity, next_uid)) = uidlist::read_ends(&path) {
        // The usual case: only the header and the last record are read.
        return append_records(dir, &path, uid_validity, next_uid, records);
    }
    let text = read_optional(&path)?;
    let (mut list, rewrite) = match &text {
        Some(text) => (UidList::parse(text)?, !text.ends_with('\n')),
        None => (
            UidList::new(next_uid_validity(root, timeout)?, new_guid()),
            true,
        ),
    };
    check_uid_space(dir, list.next_uid, records.len())?;
    let first = list.entries.len();
    let mut uids = Vec::with_capacity(records.len());
    for (base, ext) in records {
        let uid = Uid(list.next_uid);
        list.next_uid += 1;
        list.entries.push(UidEntry {
            uid,
            ext,
            filename: base,
        });
        uids.push(uid);
    }
    if rewrite {
        write_atomic(dir, uidlist::FILE_NAME, list.serialize().as_bytes())?;
    } else {
        append_lines(&path, &UidList::record_lines(&list.entries[first..]))?;
    }
    crate::watch::notify(dir);
    Ok((list.uid_validity, uids))
}

/// Refuses to give out `count` more UIDs from `next_uid` if that would go
/// past the largest UID.
fn check_uid_space(dir: &Path, next_uid: u32, count: usize) -> StoreResult<()> {
    if u64::from(next_uid) + count as u64 > u64::from(Uid::MAX.0) + 1 {
        return Err(StoreError::new(
            StoreErrorKind::NotPossible,
            format!("UID space of {} is exhausted", dir.display()),
        ));
    }
    Ok(())
}

/// Appends record lines to the UID list at `path` in one write and syncs
/// them to disk.
fn append_lines(path: &Path, lines: &str) -> StoreResult<()> {
    fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| {
            f.write_all(lines.as_bytes())?;
            f.sync_data()
        })
        .map_err(|e| {
            // Whatever part of the lines reached the file is a torn tail
            // that readers ignore and the next writer replaces.
            StoreError::io(format_args!("appending to {}", path.display()), &e)
        })
}

/// Appends records for `records` to a well-formed version 3 list whose
/// UIDVALIDITY and next UID are known, in one write.
fn append_records(
    dir: &Path,
    path: &Path,
    uid_validity: UidValidity,
    next_uid: u32,
    records: Vec<(String, Vec<String>)>,
) -> StoreResult<(UidValidity, Vec<Uid>)> {
    check_uid_space(dir, next_uid, records.len())?;
    let entries: Vec<UidEntry> = records
        .into_iter()
        .zip(next_uid..)
        .map(|((filename, ext), uid)| UidEntry {
            uid: Uid(uid),
            ext,
            filename,
        })
        .collect();
    append_lines(path, &UidList::record_lines(&entries))?;
    crate::watch::notify(dir);
    Ok((uid_validity, entries.iter().map(|e| e.uid).collect()))
}

/// Whether `new/` holds anything (an MTA delivered).
fn new_has_mail(dir: &Path) -> bool {
    fs::read_dir(dir.join("new")).is_ok_and(|mut entries| {
        entries.any(|e| e.is_ok_and(|e| !e.file_name().as_encoded_bytes().starts_with(b".")))
    })
}

/// Moves a message written to `tmp/` into `cur/` with its flags, then gives
/// it a UID. The caller holds the lock.
pub fn deliver_locked(
    dir: &Path,
    root: &Path,
    mut tmp: TmpMessage,
    message_flags: &Flags,
    timeout: Duration,
) -> StoreResult<(UidValidity, Uid)> {
    prepare_locked(dir, root, timeout)?;
    let keywords = keywords_for(dir, message_flags)?;
    let base = format!("{},S={}", tmp.unique, tmp.size);
    let name = flags::build_name(&base, message_flags, &[], &keywords)?;
    let cur = dir.join("cur");
    let into = crate::watch::expect(dir, Sub::Cur, &name);
    if let Err(e) = fs::rename(&tmp.path, cur.join(&name)) {
        into.cancel();
        return Err(StoreError::io(
            format_args!("moving {} into cur/", tmp.unique),
            &e,
        ));
    }
    tmp.mark_moved();
    let placed = crate::layout::fsync_dir(&cur)
        .and_then(|()| assign_uids_locked(dir, root, timeout, vec![(base, Vec::new())]));
    match placed {
        Ok((uid_validity, uids)) => match uids.first() {
            Some(uid) => Ok((uid_validity, *uid)),
            None => Err(StoreError::new(StoreErrorKind::Internal, "no UID assigned")),
        },
        Err(e) => {
            // Not acknowledged: take the message back out so that a failed
            // APPEND leaves nothing behind (its event wakes the folder).
            let _ = fs::remove_file(cur.join(&name));
            Err(e)
        }
    }
}
