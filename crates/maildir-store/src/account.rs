//! Account-wide operations on a Maildir++: subscriptions, deleting and
//! renaming folders (RFC 3501 §6.3.4–§6.3.7), special-use folders (RFC 6154)
//! and their aliases, STATUS without opening a folder, quota usage, and the
//! POP3 maildrop lock (RFC 1939 §8).
//!
//! Locks: account-wide changes (subscriptions, delete, rename, special-use
//! set-up) hold `coffre-account.lock` in the account root; a folder being
//! deleted or renamed is also locked, so operations in flight on it finish
//! first. Order is always account lock, then folder locks by path.
//!
//! - Subscriptions are written as one modified-UTF-7 name per line (the
//!   format Dovecot 1.x/2.x and Courier read), atomically.
//! - Delete renames `.Name` to `coffre-deleting.<unique>` (not a folder
//!   name: no leading dot) and then removes it, so a crash never leaves a
//!   half-deleted folder visible; left-overs are removed by the next delete.
//! - Rename renames `.From` and every `.From.*` directory; renaming INBOX
//!   moves its messages, with their UIDs and UID-list records, into the new
//!   folder (which gets its own UIDVALIDITY) and empties INBOX, whose next
//!   UID stays where it was.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mail_store::{
    Flag, FolderInfo, FolderName, HIERARCHY_SEPARATOR, MailboxStatus, QuotaUsage, SpecialUseNames,
    StoreError, StoreErrorKind, StoreResult, Uid, utf7,
};

use crate::folder::{self, FolderLock};
use crate::layout::{self, read_optional, write_atomic};
use crate::{delivery, flags, uidlist};

/// The account-wide lock file in the root.
pub const ACCOUNT_LOCK_FILE: &str = "coffre-account.lock";
/// Written once the special-use folders have been set up.
pub const SPECIAL_USE_MARKER: &str = "coffre-special-use";
/// `flock`ed by the POP3 session that holds the maildrop.
pub const MAILDROP_LOCK_FILE: &str = "coffre-pop3.lock";
/// Prefix of a folder directory on its way to removal.
pub const DELETING_PREFIX: &str = "coffre-deleting.";

fn lock_account(root: &Path, timeout: Duration) -> StoreResult<FolderLock> {
    folder::lock_at(&root.join(ACCOUNT_LOCK_FILE), timeout)
}

fn not_found(name: &FolderName) -> StoreError {
    StoreError::new(
        StoreErrorKind::NotFound,
        format!("folder {name} does not exist"),
    )
}

fn exists(root: &Path, name: &FolderName) -> bool {
    name.is_inbox() || layout::is_real_dir(&layout::folder_dir(root, name))
}

/// The folder a client's name stands for: the name itself if such a folder
/// exists, else the special folder it is an alias of (see
/// [`SpecialUseNames::alias_target`]). Every operation of the account and of
/// its mailboxes looks names up through this one function.
pub fn resolve(root: &Path, special: &SpecialUseNames, name: &FolderName) -> FolderName {
    if exists(root, name) {
        return name.clone();
    }
    special
        .alias_target(name)
        .cloned()
        .unwrap_or_else(|| name.clone())
}

/// First open of an account: creates and subscribes INBOX and the
/// special-use folders (a use already served by an existing alias-named
/// folder, e.g. a migrated `Sent Items`, is not duplicated). Runs once per
/// account: afterwards the user may delete or rename them.
pub fn init_account(root: &Path, special: &SpecialUseNames, timeout: Duration) -> StoreResult<()> {
    if root.join(SPECIAL_USE_MARKER).exists() {
        return Ok(());
    }
    let _lock = lock_account(root, timeout)?;
    if root.join(SPECIAL_USE_MARKER).exists() {
        return Ok(());
    }
    let existing: Vec<FolderName> = layout::list_folders(root)?
        .into_iter()
        .map(|f| f.name)
        .collect();
    let mut subscriptions = layout::read_subscriptions(root)?;
    subscriptions.insert(FolderName::inbox());
    for (use_, name) in special.folders() {
        let served_by_alias = existing.iter().any(|e| {
            special.alias_target(e) == Some(name) && special.special_use_of(name) == Some(*use_)
        });
        if served_by_alias && !existing.contains(name) {
            continue;
        }
        if !existing.contains(name) {
            match layout::create_folder(root, name) {
                Ok(()) => {}
                Err(e) if e.kind == StoreErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        subscriptions.insert(name.clone());
    }
    write_subscriptions(root, &subscriptions)?;
    write_atomic(root, SPECIAL_USE_MARKER, b"1\n")
}

/// Sets `special_use` on listed folders: canonical names, and an
/// alias-named folder when its canonical folder does not exist.
pub fn mark_special_use(list: &mut [FolderInfo], special: &SpecialUseNames) {
    let names: BTreeSet<FolderName> = list.iter().map(|f| f.name.clone()).collect();
    for info in list.iter_mut() {
        info.special_use = special.special_use_of(&info.name).or_else(|| {
            let target = special.alias_target(&info.name)?;
            if names.contains(target) {
                None
            } else {
                special.special_use_of(target)
            }
        });
    }
}

/// Writes the subscriptions file: one modified-UTF-7 name per line.
pub fn write_subscriptions(root: &Path, names: &BTreeSet<FolderName>) -> StoreResult<()> {
    let mut text = String::new();
    for name in names {
        text.push_str(&utf7::encode(name.as_str()));
        text.push('\n');
    }
    write_atomic(root, layout::SUBSCRIPTIONS_FILE, text.as_bytes())
}

/// SUBSCRIBE: the folder must exist.
pub fn subscribe(root: &Path, name: &FolderName, timeout: Duration) -> StoreResult<()> {
    let _lock = lock_account(root, timeout)?;
    if !exists(root, name) {
        return Err(not_found(name));
    }
    let mut names = layout::read_subscriptions(root)?;
    if names.insert(name.clone()) {
        write_subscriptions(root, &names)?;
    }
    Ok(())
}

/// UNSUBSCRIBE: `NotFound` if the name was not subscribed.
pub fn unsubscribe(root: &Path, name: &FolderName, timeout: Duration) -> StoreResult<()> {
    let _lock = lock_account(root, timeout)?;
    let mut names = layout::read_subscriptions(root)?;
    if !names.remove(name) {
        return Err(StoreError::new(
            StoreErrorKind::NotFound,
            format!("{name} is not subscribed"),
        ));
    }
    write_subscriptions(root, &names)
}

/// The `.`-directories of `name`'s children (`.Name.*`).
fn child_dirs(root: &Path, name: &FolderName) -> StoreResult<Vec<String>> {
    let prefix = format!("{}{HIERARCHY_SEPARATOR}", layout::folder_dir_name(name));
    let entries = fs::read_dir(root)
        .map_err(|e| StoreError::io(format_args!("listing {}", root.display()), &e))?;
    let mut children = Vec::new();
    for entry in entries.flatten() {
        if let Ok(file_name) = entry.file_name().into_string()
            && file_name.starts_with(&prefix)
            && entry.file_type().is_ok_and(|t| t.is_dir())
        {
            children.push(file_name);
        }
    }
    children.sort();
    Ok(children)
}

/// DELETE: refuses INBOX and folders with children (`NotPossible`).
pub fn delete_folder(root: &Path, name: &FolderName, timeout: Duration) -> StoreResult<()> {
    if name.is_inbox() {
        return Err(StoreError::new(
            StoreErrorKind::NotPossible,
            "INBOX cannot be deleted",
        ));
    }
    let _account = lock_account(root, timeout)?;
    let dir = layout::folder_dir(root, name);
    if !layout::is_real_dir(&dir) {
        return Err(not_found(name));
    }
    if !child_dirs(root, name)?.is_empty() {
        return Err(StoreError::new(
            StoreErrorKind::NotPossible,
            format!("folder {name} has children; delete them first"),
        ));
    }
    let doomed = root.join(format!("{DELETING_PREFIX}{}", delivery::unique_name()));
    {
        let _folder = folder::lock_folder(&dir, timeout)?;
        crate::watch::path_changing(&dir);
        fs::rename(&dir, &doomed)
            .map_err(|e| StoreError::io(format_args!("deleting folder {name}"), &e))?;
    }
    layout::fsync_dir(root)?;
    crate::watch::notify(&dir);
    remove_leftovers(root);
    tracing::info!(folder = %name, "folder deleted");
    Ok(())
}

/// Removes folder directories whose deletion was interrupted.
fn remove_leftovers(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let is_leftover = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(DELETING_PREFIX));
        if is_leftover
            && entry.file_type().is_ok_and(|t| t.is_dir())
            && let Err(e) = fs::remove_dir_all(entry.path())
        {
            tracing::warn!(dir = %entry.path().display(), error = %e, "could not remove deleted folder");
        }
    }
}

/// RENAME (see the module docs).
pub fn rename_folder(
    root: &Path,
    from: &FolderName,
    to: &FolderName,
    timeout: Duration,
) -> StoreResult<()> {
    let _account = lock_account(root, timeout)?;
    if !exists(root, from) {
        return Err(not_found(from));
    }
    if exists(root, to) {
        return Err(StoreError::new(
            StoreErrorKind::AlreadyExists,
            format!("folder {to} already exists"),
        ));
    }
    let inside = to
        .as_str()
        .strip_prefix(from.as_str())
        .is_some_and(|rest| rest.starts_with(HIERARCHY_SEPARATOR));
    if inside {
        return Err(StoreError::new(
            StoreErrorKind::NotPossible,
            format!("cannot rename {from} into itself ({to})"),
        ));
    }
    if from.is_inbox() {
        return rename_inbox(root, to, timeout);
    }
    // Every directory of the subtree and its new name; none may exist yet.
    let from_dir = layout::folder_dir_name(from);
    let to_dir = layout::folder_dir_name(to);
    let mut moves: Vec<(PathBuf, PathBuf)> = vec![(root.join(&from_dir), root.join(&to_dir))];
    for child in child_dirs(root, from)? {
        let suffix = &child[from_dir.len()..];
        moves.push((root.join(&child), root.join(format!("{to_dir}{suffix}"))));
    }
    if let Some((_, taken)) = moves.iter().find(|(_, target)| target.exists()) {
        return Err(StoreError::new(
            StoreErrorKind::AlreadyExists,
            format!("{} already exists", taken.display()),
        ));
    }
    if let Some((parent, _)) = to.as_str().rsplit_once(HIERARCHY_SEPARATOR) {
        let parent = FolderName::new(parent)?;
        if !exists(root, &parent) {
            layout::create_folder(root, &parent)?;
        }
    }
    {
        let _folder = folder::lock_folder(&root.join(&from_dir), timeout)?;
        for (old, new) in &moves {
            crate::watch::path_changing(old);
            fs::rename(old, new)
                .map_err(|e| StoreError::io(format_args!("renaming {}", old.display()), &e))?;
            crate::watch::notify(old);
        }
    }
    layout::fsync_dir(root)?;
    // Subscriptions follow the folders.
    let subscriptions = layout::read_subscriptions(root)?;
    let renamed: BTreeSet<FolderName> = subscriptions
        .iter()
        .map(|s| renamed_name(s, from, to).unwrap_or_else(|| s.clone()))
        .collect();
    if renamed != subscriptions {
        write_subscriptions(root, &renamed)?;
    }
    tracing::info!(%from, %to, "folder renamed");
    Ok(())
}

/// `name` with its leading `from` replaced by `to`, if it is in that subtree.
fn renamed_name(name: &FolderName, from: &FolderName, to: &FolderName) -> Option<FolderName> {
    if name == from {
        return Some(to.clone());
    }
    let rest = name
        .as_str()
        .strip_prefix(from.as_str())?
        .strip_prefix(HIERARCHY_SEPARATOR)?;
    FolderName::new(&format!("{to}{HIERARCHY_SEPARATOR}{rest}")).ok()
}

/// RENAME INBOX (RFC 3501 §6.3.5): the messages move, INBOX stays.
fn rename_inbox(root: &Path, to: &FolderName, timeout: Duration) -> StoreResult<()> {
    layout::create_folder(root, to)?;
    let dest = layout::folder_dir(root, to);
    let _locks = folder::lock_two(root, &dest, timeout)?;
    let synced = folder::sync_locked(root, root, false, timeout)?;
    // The keyword letters keep their meaning in the new folder.
    if let Some(keywords) = read_optional(&root.join(flags::KEYWORDS_FILE))? {
        write_atomic(&dest, flags::KEYWORDS_FILE, keywords.as_bytes())?;
    }
    let inbox_text = read_optional(&root.join(uidlist::FILE_NAME))?.unwrap_or_default();
    let mut inbox_list = uidlist::UidList::parse(&inbox_text)?;
    let mut dest_list = uidlist::UidList::new(
        folder::next_uid_validity(root, timeout)?,
        format!("{:032x}", rand::random::<u128>()),
    );
    dest_list.next_uid = inbox_list.next_uid;
    dest_list.entries = std::mem::take(&mut inbox_list.entries);
    write_atomic(&dest, uidlist::FILE_NAME, dest_list.serialize().as_bytes())?;
    let (src_cur, dest_cur) = (root.join("cur"), dest.join("cur"));
    for message in &synced.messages {
        match fs::rename(
            src_cur.join(&message.filename),
            dest_cur.join(&message.filename),
        ) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(StoreError::io(
                    format_args!("moving UID {} out of INBOX", message.uid),
                    &e,
                ));
            }
        }
    }
    layout::fsync_dir(&dest_cur)?;
    layout::fsync_dir(&src_cur)?;
    write_atomic(root, uidlist::FILE_NAME, inbox_list.serialize().as_bytes())?;
    crate::watch::notify(root);
    crate::watch::notify(&dest);
    tracing::info!(%to, moved = synced.messages.len(), "INBOX renamed");
    Ok(())
}

/// STATUS: a sync under the folder lock that reads names only (no `stat` of
/// known files, no message read) and claims no `\Recent`.
pub fn status(dir: &Path, root: &Path, timeout: Duration) -> StoreResult<MailboxStatus> {
    let _lock = folder::lock_folder(dir, timeout)?;
    let synced = folder::sync_locked(dir, root, false, timeout)?;
    let count = |f: &dyn Fn(&folder::SyncedMessage) -> bool| {
        u32::try_from(synced.messages.iter().filter(|m| f(m)).count()).unwrap_or(u32::MAX)
    };
    Ok(MailboxStatus {
        uid_validity: synced.uid_validity,
        uid_next: Uid(synced.uid_next),
        messages: count(&|_| true),
        unseen: count(&|m| !m.flags.contains(&Flag::Seen)),
        recent: count(&|m| m.uid.0 >= synced.first_recent),
        highest_modseq: synced.highest_modseq,
    })
}

/// Octets of a folder's messages (`,S=` from the names; `stat` otherwise).
pub fn folder_size(dir: &Path) -> StoreResult<u64> {
    let mut total = 0u64;
    for sub in ["cur", "new"] {
        total = total.saturating_add(dir_usage(&dir.join(sub))?.bytes);
    }
    Ok(total)
}

fn dir_usage(path: &Path) -> StoreResult<QuotaUsage> {
    let mut usage = QuotaUsage::default();
    let entries = match fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(usage),
        Err(e) => {
            return Err(StoreError::io(
                format_args!("scanning {}", path.display()),
                &e,
            ));
        }
    };
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let size = match flags::size_from_name(uidlist::base_name(&name)) {
            Some(size) => size,
            None => entry.metadata().map(|m| m.len()).unwrap_or(0),
        };
        usage.bytes = usage.bytes.saturating_add(size);
        usage.messages += 1;
    }
    Ok(usage)
}

/// Everything the account holds: every folder's `cur/` and `new/` (names
/// only where they carry `,S=`).
pub fn usage(root: &Path) -> StoreResult<QuotaUsage> {
    let mut total = QuotaUsage::default();
    let folders = layout::list_folders(root)?;
    for info in folders {
        let dir = layout::folder_dir(root, &info.name);
        for sub in ["cur", "new"] {
            let part = dir_usage(&dir.join(sub))?;
            total.bytes = total.bytes.saturating_add(part.bytes);
            total.messages += part.messages;
        }
    }
    Ok(total)
}

/// The POP3 maildrop lock: an `flock` on `coffre-pop3.lock` in the root,
/// tried once (`InUse` if another session or process holds it).
pub fn lock_maildrop(root: &Path) -> StoreResult<fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = root.join(MAILDROP_LOCK_FILE);
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| StoreError::io(format_args!("opening {}", path.display()), &e))?;
    match file.try_lock() {
        Ok(()) => {
            // For an administrator looking at the file: who holds it.
            let _ = file.set_len(0);
            let _ = writeln!(file, "{}", std::process::id());
            Ok(file)
        }
        Err(fs::TryLockError::WouldBlock) => Err(StoreError::new(
            StoreErrorKind::InUse,
            format!("maildrop {} is locked by another session", root.display()),
        )),
        Err(fs::TryLockError::Error(e)) => Err(StoreError::io(
            format_args!("locking {}", path.display()),
            &e,
        )),
    }
}
