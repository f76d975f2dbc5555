//! COPY (RFC 3501 §6.4.7) and MOVE (RFC 6851) between folders of one
//! account.
//!
//! - **Copy** holds the destination's lock only. Each message is hard-linked
//!   (same inode: no data copied, the mtime — internal date — kept) into the
//!   destination's `tmp/` under a new unique name, or, where a link is not
//!   possible (another file system), copied through `tmp/` with its mtime.
//!   Only when every message is staged are they renamed into `cur/` with
//!   flags spelled in the destination's keyword letters, and given UIDs by
//!   appending to the destination's UID list. On any failure the staged and
//!   placed files are removed: all or nothing.
//! - **Move** holds both folders' locks (taken in path order). Each message
//!   is *renamed* from the source's `cur/` into the destination's `cur/`
//!   (keeping its base name), which is atomic: at every moment, across a
//!   crash too, the message is in exactly one folder. Then the destination
//!   records the new UIDs and the source drops the old records; a crash in
//!   between only defers that bookkeeping to the next sync of each folder.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mail_store::{Flags, Quota, StoreError, StoreErrorKind, StoreResult, Uid, UidValidity};

use crate::folder::{self, KnownFile};
use crate::{delivery, flags, uidlist};

/// A message picked for a copy or move: where it is now and what it carries.
struct Picked {
    uid: Uid,
    filename: String,
    flags: Flags,
    other: Vec<char>,
    size: u64,
}

/// Finds the current files of `targets` in `src` and their flags.
fn pick(src: &Path, targets: &[KnownFile]) -> StoreResult<Vec<Picked>> {
    let keywords = folder::load_keywords(src)?;
    let cur = src.join("cur");
    let mut rescan = None;
    let mut picked = Vec::with_capacity(targets.len());
    for known in targets {
        let Some(filename) = folder::current_name(src, known, &mut rescan)? else {
            continue;
        };
        let parsed = flags::parse_name(&filename, &keywords);
        let size = match flags::size_from_name(parsed.base) {
            Some(size) => size,
            None => match fs::symlink_metadata(cur.join(&filename)) {
                Ok(meta) => meta.len(),
                Err(_) => continue,
            },
        };
        // Letters the source's table does not know cannot be carried over.
        let other = parsed
            .other
            .iter()
            .copied()
            .filter(|c| !c.is_ascii_lowercase())
            .collect();
        picked.push(Picked {
            uid: known.uid,
            flags: parsed.flags,
            other,
            size,
            filename,
        });
    }
    Ok(picked)
}

/// Removes files on drop unless disarmed: what a failed copy staged.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = fs::remove_file(path);
        }
    }
}

/// Copies messages from `src` to `dest`; returns the destination's
/// UIDVALIDITY and `(source UID, new UID)` pairs.
pub fn copy(
    src: &Path,
    dest: &Path,
    root: &Path,
    targets: &[KnownFile],
    quota: Quota,
    timeout: Duration,
) -> StoreResult<(UidValidity, Vec<(Uid, Uid)>)> {
    let picked = pick(src, targets)?;
    if quota != Quota::UNLIMITED {
        let bytes = picked.iter().map(|p| p.size).sum();
        quota.check(crate::account::usage(root)?, bytes, picked.len() as u64)?;
    }
    let _lock = folder::lock_folder(dest, timeout)?;
    folder::prepare_locked(dest, root, timeout)?;
    let all_flags: Flags = picked.iter().flat_map(|p| p.flags.clone()).collect();
    let keywords = folder::keywords_for(dest, &all_flags)?;
    let (src_cur, dest_tmp, dest_cur) = (src.join("cur"), dest.join("tmp"), dest.join("cur"));
    let mut staged = Cleanup(Vec::new());
    let mut placements = Vec::with_capacity(picked.len());
    for message in &picked {
        let from = src_cur.join(&message.filename);
        let base = format!("{},S={}", delivery::unique_name(), message.size);
        let tmp_path = dest_tmp.join(&base);
        let (tmp_path, base) = match fs::hard_link(&from, &tmp_path) {
            Ok(()) => (tmp_path, base),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // expunged meanwhile
            Err(_) => {
                // No hard link across file systems: copy the bytes, keeping
                // the internal date.
                let bytes = fs::read(&from)
                    .map_err(|e| StoreError::io(format_args!("reading UID {}", message.uid), &e))?;
                let mtime = fs::symlink_metadata(&from)
                    .and_then(|m| m.modified())
                    .map(delivery::epoch_secs)
                    .unwrap_or(0);
                let mut tmp = delivery::write_tmp(dest, &bytes, mtime)?;
                tmp.mark_moved();
                let base = format!("{},S={}", tmp.unique, tmp.size);
                (tmp.path.clone(), base)
            }
        };
        staged.0.push(tmp_path.clone());
        let name = flags::build_name(&base, &message.flags, &message.other, &keywords)?;
        placements.push((message.uid, tmp_path, base, name));
    }
    for (_, tmp_path, _, name) in &placements {
        fs::rename(tmp_path, dest_cur.join(name))
            .map_err(|e| StoreError::io(format_args!("placing a copy in cur/"), &e))?;
        staged.0.push(dest_cur.join(name));
    }
    crate::layout::fsync_dir(&dest_cur)?;
    let records = placements
        .iter()
        .map(|(_, _, base, _)| (base.clone(), Vec::new()))
        .collect();
    let (uid_validity, uids) = folder::assign_uids_locked(dest, root, timeout, records)?;
    staged.0.clear();
    let pairs = placements
        .iter()
        .zip(uids)
        .map(|((src_uid, _, _, _), dest_uid)| (*src_uid, dest_uid))
        .collect();
    Ok((uid_validity, pairs))
}

/// Moves messages from `src` to `dest` (different folders); returns the
/// destination's UIDVALIDITY and `(source UID, new UID)` pairs.
pub fn move_messages(
    src: &Path,
    dest: &Path,
    root: &Path,
    targets: &[KnownFile],
    timeout: Duration,
) -> StoreResult<(UidValidity, Vec<(Uid, Uid)>)> {
    if src == dest {
        return Err(StoreError::new(
            StoreErrorKind::NotPossible,
            "cannot move messages into the folder they are in",
        ));
    }
    let _locks = folder::lock_two(src, dest, timeout)?;
    folder::prepare_locked(dest, root, timeout)?;
    let picked = pick(src, targets)?;
    let all_flags: Flags = picked.iter().flat_map(|p| p.flags.clone()).collect();
    let keywords = folder::keywords_for(dest, &all_flags)?;
    let (src_cur, dest_cur) = (src.join("cur"), dest.join("cur"));
    let mut moved: Vec<(Uid, String)> = Vec::with_capacity(picked.len());
    let mut failure = None;
    for message in &picked {
        let base = uidlist::base_name(&message.filename).to_string();
        let name = flags::build_name(&base, &message.flags, &message.other, &keywords)?;
        match fs::rename(src_cur.join(&message.filename), dest_cur.join(&name)) {
            Ok(()) => moved.push((message.uid, base)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                failure = Some(StoreError::io(
                    format_args!("moving UID {}", message.uid),
                    &e,
                ));
                break;
            }
        }
    }
    // What was renamed is in the destination now, failure or not: record it.
    crate::layout::fsync_dir(&dest_cur)?;
    crate::layout::fsync_dir(&src_cur)?;
    let records = moved
        .iter()
        .map(|(_, base)| (base.clone(), Vec::new()))
        .collect();
    let (uid_validity, uids) = folder::assign_uids_locked(dest, root, timeout, records)?;
    let mut gone: Vec<Uid> = moved.iter().map(|(uid, _)| *uid).collect();
    gone.sort_unstable();
    if !gone.is_empty() {
        folder::forget_uids_locked(src, root, &gone, timeout)?;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let pairs = moved
        .iter()
        .zip(uids)
        .map(|((src_uid, _), dest_uid)| (*src_uid, dest_uid))
        .collect();
    Ok((uid_validity, pairs))
}
