//! `coffre-cache`: the per-folder on-disk cache of values sessions derive
//! from messages (`Mailbox::cache_fields`: ENVELOPE, BODYSTRUCTURE, BODY,
//! POP3 size), so FETCH need not read and parse a message twice.
//!
//! Same framing as [`crate::index`] (length, CRC-32, payload):
//!
//! ```text
//!   0 header  "CCAC" version:u8=1 file_id:u64 uidvalidity:u32
//!   4 value   uid:u32 field:u8 value (rest, at most MAX_CACHED_FIELD_LEN)
//!   5 drop    uid:u32                    (message expunged or moved away)
//! ```
//!
//! Values are opaque and never change for a UID (a message's content never
//! does), so a later record for the same UID and field simply wins. Writes
//! append one buffer per `cache_fields` call (10,000 values, one `write`,
//! not fsynced: a cache lost in a crash is only work redone) under the
//! folder lock; a `drop` is appended when a message leaves the
//! folder; the file is rewritten without dead entries once they outweigh
//! live ones. The file is only a cache: a torn or corrupt part is ignored
//! (and cut off by the next writer), a header of another UIDVALIDITY makes
//! the whole file start over, and every value read back is checked against
//! its record's CRC again before it is returned.
//!
//! In memory, each process keeps per folder only where each value is
//! (`(uid, field) → offset, length`), shared by its sessions; values are
//! read with `pread` when asked for. The file is streamed record by record
//! when read or compacted, never held in memory whole.

use std::collections::HashMap;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{FileExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::Path;
use std::sync::{Arc, Mutex};

use mail_store::{CachedField, MAX_CACHED_FIELD_LEN, StoreError, StoreResult, Uid};

use crate::index::{
    self, Fields, LogPosition, Registry, append_log_with, frame, record_at, records, scan_log,
};

/// The cache file inside each folder directory.
pub const CACHE_FILE: &str = "coffre-cache";

const HEADER: u8 = 0;
const VALUE: u8 = 4;
const DROP: u8 = 5;
const MAGIC: &[u8; 4] = b"CCAC";
const VERSION: u8 = 1;

/// Where one value is in the file: the record's start and total length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    offset: u64,
    len: u32,
}

/// The parsed `coffre-cache` of one folder.
#[derive(Debug, Default)]
pub struct FolderCache {
    uid_validity: u32,
    slots: HashMap<(Uid, u8), Slot>,
    pos: LogPosition,
    dead: usize,
    rewrite: bool,
}

static CACHES: Registry<FolderCache> = Registry::new();

/// The cache of the folder at `dir`, shared by this process's sessions.
pub fn shared(dir: &Path) -> Arc<Mutex<FolderCache>> {
    CACHES.get(dir)
}

/// File id and UIDVALIDITY of a header payload.
fn parse_header(payload: &[u8]) -> Option<(u64, u32)> {
    let id = header_id(payload)?;
    let mut f = Fields(payload);
    f.bytes(14)?;
    Some((id, f.u32()?))
}

fn header_id(payload: &[u8]) -> Option<u64> {
    crate::index::log_header_id(payload, MAGIC, VERSION)
}

impl FolderCache {
    /// Brings the copy up to date with the file, reading only what was
    /// appended since the last look (the file is streamed, never held in
    /// memory). Never fails: an unreadable file is an empty cache.
    pub fn refresh(&mut self, dir: &Path) {
        let path = dir.join(CACHE_FILE);
        if let Err(e) = self.try_refresh(&path) {
            tracing::debug!(path = %path.display(), error = %e, "cache unreadable; ignored");
            *self = FolderCache {
                rewrite: true,
                ..FolderCache::default()
            };
        }
    }

    fn try_refresh(&mut self, path: &Path) -> std::io::Result<()> {
        let file = match fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                *self = FolderCache::default();
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        if index::same_log(&file, &meta, &self.pos, header_id) {
            if meta.len() > self.pos.valid_len {
                let (end, torn) = scan_log(&file, self.pos.valid_len, |offset, payload| {
                    self.apply(payload, offset);
                    true
                })?;
                self.pos.valid_len = end;
                self.pos.torn = torn;
            }
            return Ok(());
        }
        *self = FolderCache::default();
        let mut header = None;
        let (end, torn) = scan_log(&file, 0, |offset, payload| {
            if offset == 0 {
                header = parse_header(payload);
                return header.is_some();
            }
            self.apply(payload, offset);
            true
        })?;
        let Some((file_id, uid_validity)) = header else {
            *self = FolderCache {
                rewrite: true,
                ..FolderCache::default()
            };
            return Ok(());
        };
        self.uid_validity = uid_validity;
        self.pos = LogPosition {
            ino: meta.ino(),
            file_id,
            valid_len: end,
            torn,
        };
        Ok(())
    }

    fn apply(&mut self, payload: &[u8], record_offset: u64) {
        let mut f = Fields(payload);
        match f.u8() {
            Some(VALUE) => {
                if let (Some(uid), Some(field)) = (f.u32(), f.u8()) {
                    let slot = Slot {
                        offset: record_offset,
                        len: u32::try_from(payload.len() + 8).unwrap_or(u32::MAX),
                    };
                    if self.slots.insert((Uid(uid), field), slot).is_some() {
                        self.dead += 1;
                    }
                }
            }
            Some(DROP) => {
                if let Some(uid) = f.u32() {
                    for field in CachedField::ALL {
                        if self.slots.remove(&(Uid(uid), field.code())).is_some() {
                            self.dead += 1;
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// The values of `uids` for `field`, for a session of this UIDVALIDITY
    /// (`None` where nothing valid is kept).
    pub fn get(
        &mut self,
        dir: &Path,
        uid_validity: u32,
        uids: &[Uid],
        field: CachedField,
    ) -> Vec<Option<Vec<u8>>> {
        let mut out = vec![None; uids.len()];
        self.refresh(dir);
        if self.uid_validity != uid_validity || self.pos.file_id == 0 {
            return out;
        }
        let Ok(file) = fs::File::open(dir.join(CACHE_FILE)) else {
            return out;
        };
        let code = field.code();
        for (slot_out, uid) in out.iter_mut().zip(uids) {
            let Some(slot) = self.slots.get(&(*uid, code)) else {
                continue;
            };
            let mut buf = vec![0u8; slot.len as usize];
            if file.read_exact_at(&mut buf, slot.offset).is_err() {
                continue;
            }
            let Some((start, len)) = record_at(&buf, 0) else {
                continue;
            };
            let mut f = Fields(&buf[start..start + len]);
            if f.u8() == Some(VALUE) && f.u32() == Some(uid.0) && f.u8() == Some(code) {
                *slot_out = Some(f.rest().to_vec());
            }
        }
        out
    }

    /// Adds values (the caller holds the folder lock). Values over
    /// [`MAX_CACHED_FIELD_LEN`] are left out.
    pub fn put(
        &mut self,
        dir: &Path,
        uid_validity: u32,
        field: CachedField,
        entries: &[(Uid, Vec<u8>)],
    ) -> StoreResult<()> {
        self.refresh(dir);
        if self.uid_validity != uid_validity || self.pos.file_id == 0 {
            *self = FolderCache {
                uid_validity,
                rewrite: true,
                ..FolderCache::default()
            };
        }
        let mut buf = Vec::new();
        let mut payload = Vec::new();
        for (uid, value) in entries {
            if value.len() > MAX_CACHED_FIELD_LEN {
                continue;
            }
            payload.clear();
            payload.push(VALUE);
            payload.extend_from_slice(&uid.0.to_le_bytes());
            payload.push(field.code());
            payload.extend_from_slice(value);
            frame(&mut buf, &payload);
        }
        self.write(dir, buf)
    }

    /// Drops the values of messages that left the folder (the caller holds
    /// the folder lock).
    pub fn drop_uids(&mut self, dir: &Path, uids: &[Uid]) -> StoreResult<()> {
        self.refresh(dir);
        if self.pos.file_id == 0 {
            return Ok(()); // no cache file: nothing to drop
        }
        let mut buf = Vec::new();
        for uid in uids {
            if CachedField::ALL
                .iter()
                .any(|f| self.slots.contains_key(&(*uid, f.code())))
            {
                let mut payload = vec![DROP];
                payload.extend_from_slice(&uid.0.to_le_bytes());
                frame(&mut buf, &payload);
            }
        }
        self.write(dir, buf)
    }

    fn write(&mut self, dir: &Path, records_buf: Vec<u8>) -> StoreResult<()> {
        if records_buf.is_empty() && !self.rewrite {
            return Ok(());
        }
        let path = dir.join(CACHE_FILE);
        let before = self.pos.valid_len;
        if !self.rewrite && !self.pos.torn && self.dead <= self.slots.len() + 1024 {
            // Not synced: the file is only a cache. A value lost in a crash
            // is derived again; a torn tail fails its CRC and is cut off by
            // the next writer; a value never changes for a UID, and a lost
            // `drop` leaves values of UIDs that are never reused.
            let len = append_log_with(&path, &records_buf, false)
                .map_err(|e| StoreError::io(format_args!("appending to {}", path.display()), &e))?;
            if len == before + records_buf.len() as u64 {
                let (recs, _) = records(&records_buf);
                for (start, l) in recs {
                    self.apply(&records_buf[start..start + l], before + start as u64 - 8);
                }
                self.pos.valid_len = len;
            } else {
                self.pos = LogPosition::default();
            }
            return Ok(());
        }
        self.rewrite_file(dir, &records_buf)
    }

    /// Writes a new file (temp, fsync, rename): the header, the live values
    /// copied from the old file (unless it is not trusted), then `fresh`.
    /// Streams: the old file is never held in memory.
    fn rewrite_file(&mut self, dir: &Path, fresh: &[u8]) -> StoreResult<()> {
        let path = dir.join(CACHE_FILE);
        let tmp = dir.join(format!("{CACHE_FILE}.tmp"));
        let file_id = rand::random::<u64>().max(1);
        let mut header = vec![HEADER];
        header.extend_from_slice(MAGIC);
        header.push(VERSION);
        header.extend_from_slice(&file_id.to_le_bytes());
        header.extend_from_slice(&self.uid_validity.to_le_bytes());
        let mut framed = Vec::new();
        frame(&mut framed, &header);
        let old = if self.rewrite {
            None
        } else {
            fs::File::open(&path).ok()
        };
        let mut live: Vec<((Uid, u8), Slot)> = self.slots.iter().map(|(k, v)| (*k, *v)).collect();
        live.sort_by_key(|(_, slot)| slot.offset);
        self.slots.clear();
        let written = (|| -> std::io::Result<u64> {
            let out = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            let mut out = std::io::BufWriter::with_capacity(256 * 1024, out);
            out.write_all(&framed)?;
            let mut pos = framed.len() as u64;
            if let Some(old) = &old {
                let mut buf = Vec::new();
                for (key, slot) in live {
                    buf.resize(slot.len as usize, 0);
                    if old.read_exact_at(&mut buf, slot.offset).is_ok()
                        && record_at(&buf, 0).is_some()
                    {
                        out.write_all(&buf)?;
                        self.slots.insert(
                            key,
                            Slot {
                                offset: pos,
                                len: slot.len,
                            },
                        );
                        pos += u64::from(slot.len);
                    }
                }
            }
            for (start, len) in records(fresh).0 {
                self.apply(&fresh[start..start + len], pos + start as u64 - 8);
            }
            out.write_all(fresh)?;
            pos += fresh.len() as u64;
            out.into_inner()
                .map_err(std::io::IntoInnerError::into_error)?
                .sync_all()?;
            fs::rename(&tmp, &path)?;
            Ok(pos)
        })();
        let end = match written {
            Ok(end) => end,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                *self = FolderCache {
                    rewrite: true,
                    ..FolderCache::default()
                };
                return Err(StoreError::io(
                    format_args!("writing {}", path.display()),
                    &e,
                ));
            }
        };
        crate::layout::fsync_dir(dir)?;
        self.dead = 0;
        self.rewrite = false;
        self.pos = LogPosition {
            ino: index::inode(&path),
            file_id,
            valid_len: end,
            torn: false,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn values_round_trip_and_survive_a_new_process() {
        let d = dir();
        let mut cache = FolderCache::default();
        let entries: Vec<(Uid, Vec<u8>)> = (1..=100).map(|i| (Uid(i), vec![i as u8; 50])).collect();
        cache
            .put(d.path(), 7, CachedField::Envelope, &entries)
            .unwrap();
        let uids: Vec<Uid> = (1..=101).map(Uid).collect();
        let got = cache.get(d.path(), 7, &uids, CachedField::Envelope);
        assert_eq!(got[0].as_deref(), Some(&[1u8; 50][..]));
        assert_eq!(got[99].as_deref(), Some(&[100u8; 50][..]));
        assert_eq!(got[100], None);
        // Another field is separate.
        assert_eq!(
            cache.get(d.path(), 7, &uids[..1], CachedField::Body),
            vec![None]
        );
        // A fresh reader (another process) sees the same.
        let mut other = FolderCache::default();
        assert_eq!(other.get(d.path(), 7, &uids, CachedField::Envelope), got);
        // One file write per call: the file is header + 100 records.
        let len = fs::metadata(d.path().join(CACHE_FILE)).unwrap().len();
        assert_eq!(len, 26 + 100 * (8 + 6 + 50));
    }

    #[test]
    fn oversized_values_are_refused_silently() {
        let d = dir();
        let mut cache = FolderCache::default();
        let big = vec![0u8; MAX_CACHED_FIELD_LEN + 1];
        let edge = vec![1u8; MAX_CACHED_FIELD_LEN];
        cache
            .put(
                d.path(),
                1,
                CachedField::BodyStructure,
                &[(Uid(1), big), (Uid(2), edge.clone())],
            )
            .unwrap();
        let got = cache.get(d.path(), 1, &[Uid(1), Uid(2)], CachedField::BodyStructure);
        assert_eq!(got, vec![None, Some(edge)]);
    }

    #[test]
    fn other_uidvalidity_and_dropped_uids_are_not_served() {
        let d = dir();
        let mut cache = FolderCache::default();
        cache
            .put(
                d.path(),
                1,
                CachedField::Envelope,
                &[(Uid(1), b"a".to_vec()), (Uid(2), b"b".to_vec())],
            )
            .unwrap();
        cache.drop_uids(d.path(), &[Uid(1)]).unwrap();
        let mut fresh = FolderCache::default();
        assert_eq!(
            fresh.get(d.path(), 1, &[Uid(1), Uid(2)], CachedField::Envelope),
            vec![None, Some(b"b".to_vec())]
        );
        assert_eq!(
            fresh.get(d.path(), 2, &[Uid(2)], CachedField::Envelope),
            vec![None]
        );
        // A writer of the new UIDVALIDITY starts the file over.
        fresh
            .put(
                d.path(),
                2,
                CachedField::Envelope,
                &[(Uid(1), b"new".to_vec())],
            )
            .unwrap();
        let mut again = FolderCache::default();
        assert_eq!(
            again.get(d.path(), 2, &[Uid(1), Uid(2)], CachedField::Envelope),
            vec![Some(b"new".to_vec()), None]
        );
    }

    #[test]
    fn torn_and_corrupt_files_are_ignored_then_repaired() {
        let d = dir();
        let path = d.path().join(CACHE_FILE);
        let mut cache = FolderCache::default();
        cache
            .put(
                d.path(),
                1,
                CachedField::Envelope,
                &[(Uid(1), b"one".to_vec()), (Uid(2), b"two".to_vec())],
            )
            .unwrap();
        // A torn tail: half a record.
        let mut bytes = fs::read(&path).unwrap();
        let full = bytes.clone();
        bytes.truncate(bytes.len() - 3);
        fs::write(&path, &bytes).unwrap();
        let mut reader = FolderCache::default();
        assert_eq!(
            reader.get(d.path(), 1, &[Uid(1), Uid(2)], CachedField::Envelope),
            vec![Some(b"one".to_vec()), None]
        );
        // The next writer cuts the garbage off and its value is readable.
        reader
            .put(
                d.path(),
                1,
                CachedField::Envelope,
                &[(Uid(3), b"three".to_vec())],
            )
            .unwrap();
        let mut fresh = FolderCache::default();
        assert_eq!(
            fresh.get(d.path(), 1, &[Uid(1), Uid(3)], CachedField::Envelope),
            vec![Some(b"one".to_vec()), Some(b"three".to_vec())]
        );
        // A flipped byte inside a value: that value and what follows are
        // ignored, never returned altered.
        let mut bad = full.clone();
        let at = bad.len() - 2;
        bad[at] ^= 0xff;
        fs::write(&path, &bad).unwrap();
        let mut fresh = FolderCache::default();
        assert_eq!(
            fresh.get(d.path(), 1, &[Uid(1), Uid(2)], CachedField::Envelope),
            vec![Some(b"one".to_vec()), None]
        );
        // Garbage and a huge length field: empty cache, no panic.
        fs::write(&path, [0xffu8; 40]).unwrap();
        let mut fresh = FolderCache::default();
        assert_eq!(
            fresh.get(d.path(), 1, &[Uid(1)], CachedField::Envelope),
            vec![None]
        );
        fresh
            .put(
                d.path(),
                1,
                CachedField::Envelope,
                &[(Uid(1), b"x".to_vec())],
            )
            .unwrap();
        assert_eq!(
            FolderCache::default().get(d.path(), 1, &[Uid(1)], CachedField::Envelope),
            vec![Some(b"x".to_vec())]
        );
    }

    #[test]
    fn a_reader_sees_values_appended_by_another_writer() {
        let d = dir();
        let mut a = FolderCache::default();
        let mut b = FolderCache::default();
        a.put(d.path(), 1, CachedField::Body, &[(Uid(1), b"1".to_vec())])
            .unwrap();
        assert_eq!(
            b.get(d.path(), 1, &[Uid(1)], CachedField::Body),
            vec![Some(b"1".to_vec())]
        );
        a.put(d.path(), 1, CachedField::Body, &[(Uid(2), b"2".to_vec())])
            .unwrap();
        assert_eq!(
            b.get(d.path(), 1, &[Uid(1), Uid(2)], CachedField::Body),
            vec![Some(b"1".to_vec()), Some(b"2".to_vec())]
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Whatever happens to the file (a cut, a flipped byte), a value
        /// read back is exactly one that was written for that UID and field.
        #[test]
        fn damaged_caches_never_return_altered_values(
            batches in proptest::collection::vec(
                proptest::collection::vec((1u32..50, 0usize..300), 1..20), 1..5),
            damage in proptest::prelude::any::<proptest::sample::Index>(),
            xor in 0u8..=255,
            cut in proptest::prelude::any::<bool>(),
        ) {
            let d = dir();
            let mut cache = FolderCache::default();
            let mut written: Vec<(Uid, Vec<u8>)> = Vec::new();
            for batch in &batches {
                let entries: Vec<(Uid, Vec<u8>)> = batch
                    .iter()
                    .map(|(uid, len)| (Uid(*uid), vec![(*uid as u8) ^ (*len as u8); *len]))
                    .collect();
                cache.put(d.path(), 1, CachedField::Body, &entries).unwrap();
                written.extend(entries);
            }
            let path = d.path().join(CACHE_FILE);
            let mut bytes = fs::read(&path).unwrap();
            let i = damage.index(bytes.len());
            if cut {
                bytes.truncate(i);
            } else {
                bytes[i] ^= xor;
            }
            fs::write(&path, &bytes).unwrap();
            let uids: Vec<Uid> = (1..50).map(Uid).collect();
            let got = FolderCache::default().get(d.path(), 1, &uids, CachedField::Body);
            for (uid, value) in uids.iter().zip(got) {
                if let Some(value) = value {
                    proptest::prop_assert!(
                        written.iter().any(|(u, v)| u == uid && *v == value),
                        "UID {} got a value never written", uid
                    );
                }
            }
        }
    }

    #[test]
    fn dead_entries_are_compacted_away() {
        let d = dir();
        let path = d.path().join(CACHE_FILE);
        let mut cache = FolderCache::default();
        let entries: Vec<(Uid, Vec<u8>)> = (1..=3000).map(|i| (Uid(i), vec![7u8; 100])).collect();
        cache
            .put(d.path(), 1, CachedField::Envelope, &entries)
            .unwrap();
        let uids: Vec<Uid> = (1..=2990).map(Uid).collect();
        cache.drop_uids(d.path(), &uids).unwrap();
        let before = fs::metadata(&path).unwrap().len();
        cache
            .put(
                d.path(),
                1,
                CachedField::Envelope,
                &[(Uid(5000), b"z".to_vec())],
            )
            .unwrap();
        let after = fs::metadata(&path).unwrap().len();
        assert!(after < before / 10, "compacted: {before} → {after}");
        let got = FolderCache::default().get(
            d.path(),
            1,
            &[Uid(2995), Uid(5000), Uid(1)],
            CachedField::Envelope,
        );
        assert_eq!(got, vec![Some(vec![7u8; 100]), Some(b"z".to_vec()), None]);
    }
}
