//! `coffre-index`: per-folder mod-sequences (RFC 7162 CONDSTORE) and the
//! file facts a sync needs (internal date, size), kept beside
//! `dovecot-uidlist`, which stays untouched (Dovecot ignores unknown files,
//! so a rollback keeps every UID).
//!
//! ## Format
//!
//! An append-only log of checksummed records (shared with
//! [`crate::cache`]):
//!
//! ```text
//! record  = len:u32le crc32:u32le payload[len]        (1 ≤ len ≤ MAX_RECORD)
//! payload = kind:u8 fields…                            (integers little-endian)
//!   0 header   "CIDX" version:u8=1 file_id:u64 uidvalidity:u32 highest:u64
//!   1 message  uid:u32 modseq:u64 mtime:i64 size:u64 name (UTF-8, rest)
//!   2 expunge  uid:u32 modseq:u64
//! ```
//!
//! The first record is the header; a later `message` record for a UID
//! replaces the earlier one. `name` is the file name in `cur/` (base name
//! and `:2,` info) as of the record, so a sync sees a flag change made by
//! anyone else (another process, Dovecot, a mail client on the files) as a
//! name that differs from the record, and gives it a new mod-sequence then.
//!
//! Reading stops at the first record whose length is out of range, whose
//! checksum fails or which is cut short: what follows is ignored, and the
//! next writer rewrites the file (temp, fsync, rename) before adding to it.
//! A file without a valid header, of another UIDVALIDITY, or unreadable is
//! ignored the same way — never trusted, never a crash. A change appends its
//! records in one `write` (plus `fdatasync`), so a STORE on a 100,000-message
//! folder writes a few dozen bytes; the log is compacted (rewritten with one
//! record per message) once it holds more superseded records than live ones.
//!
//! ## Mod-sequences and recovery
//!
//! A new mod-sequence is `max(highest + 1, now in µs)`. So every value is
//! above all earlier ones while the file lives, and no value handed out at
//! time *t* exceeds *t* (in µs) by more than the number of values handed out
//! in the burst just before it. If the file is lost, truncated or corrupt,
//! the folder restarts from the current time in µs, which is above every
//! value given out before (unless the system clock went back by more than
//! the gap between the loss and the last change), and every message gets a
//! fresh mod-sequence: clients resynchronise their flags, nothing is missed.
//! A lost tail (crash before the data reached the disk) heals the same way:
//! the names on disk differ from the surviving records, so the next sync
//! gives those messages new values, above the lost ones.
//!
//! The parsed index is shared by every session of this process (one copy
//! per folder, [`shared`]); under the folder lock it is brought up to date
//! by reading only the bytes appended since the last look.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::SystemTime;

use mail_store::{StoreError, StoreResult, Uid, UidValidity};

use crate::layout::write_atomic;

/// The index file inside each folder directory.
pub const INDEX_FILE: &str = "coffre-index";

/// Largest record payload accepted (a cache value of 64 KiB plus its fields).
pub const MAX_RECORD: usize = 64 * 1024 + 64;

const HEADER: u8 = 0;
const MESSAGE: u8 = 1;
const EXPUNGE: u8 = 2;
const INDEX_MAGIC: &[u8; 4] = b"CIDX";
const VERSION: u8 = 1;

// ---------------------------------------------------------------- framing

/// CRC-32 (IEEE 802.3, as zlib computes it), by crc32fast (already in the
/// build through flate2).
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// Appends one framed record holding `payload` to `out`.
pub fn frame(out: &mut Vec<u8>, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// The valid record starting at `pos` of `buf`: `(payload start, payload
/// length)`, or `None` if it is cut short, too long, empty or fails its
/// checksum.
pub fn record_at(buf: &[u8], pos: usize) -> Option<(usize, usize)> {
    let head = buf.get(pos..pos.checked_add(8)?)?;
    let len = usize::try_from(u32::from_le_bytes([head[0], head[1], head[2], head[3]])).ok()?;
    if len == 0 || len > MAX_RECORD {
        return None;
    }
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    let start = pos + 8;
    let payload = buf.get(start..start.checked_add(len)?)?;
    (crc32(payload) == crc).then_some((start, len))
}

/// Every valid record of `buf` from the start, in order, and the length of
/// the valid prefix.
pub fn records(buf: &[u8]) -> (Vec<(usize, usize)>, usize) {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some((start, len)) = record_at(buf, pos) {
        out.push((start, len));
        pos = start + len;
    }
    (out, pos)
}

/// Reads little-endian fields off a payload.
pub struct Fields<'a>(pub &'a [u8]);

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    /// One byte.
    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    /// A `u32`.
    pub fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    }
    /// A `u64`.
    pub fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    }
    /// An `i64`.
    pub fn i64(&mut self) -> Option<i64> {
        self.u64().map(|v| v as i64)
    }
    /// `n` raw bytes.
    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        self.take(n)
    }
    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}

/// What a log file looked like when last read: enough to read only what was
/// appended since, and to notice a replaced file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogPosition {
    /// Inode of the file read (0: no file).
    pub ino: u64,
    /// The random id in its header (a recycled inode is not the same file).
    pub file_id: u64,
    /// Bytes of valid records read.
    pub valid_len: u64,
    /// Whether bytes that are not valid records follow `valid_len`.
    pub torn: bool,
}

/// How a log file has to be read to bring a parsed copy up to date.
pub enum LogRead {
    /// Unchanged since `LogPosition`.
    Unchanged,
    /// Records appended: the bytes from `valid_len` on.
    Tail(Vec<u8>),
    /// Replaced, shrunk or new: the whole file (empty if missing).
    Whole(Vec<u8>, u64),
}

/// Reads what changed in the log at `path` since `pos`; `header_id`
/// extracts the file id from a header payload.
pub fn read_log(
    path: &Path,
    pos: &LogPosition,
    header_id: fn(&[u8]) -> Option<u64>,
) -> io::Result<LogRead> {
    let mut file = match fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LogRead::Whole(Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if same_log(&file, &meta, pos, header_id) {
        if meta.len() == pos.valid_len {
            return Ok(LogRead::Unchanged);
        }
        let mut tail = Vec::with_capacity((meta.len() - pos.valid_len) as usize);
        let mut reader = file;
        std::io::Seek::seek(&mut reader, io::SeekFrom::Start(pos.valid_len))?;
        reader.read_to_end(&mut tail)?;
        return Ok(LogRead::Tail(tail));
    }
    let mut all = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut all)?;
    Ok(LogRead::Whole(all, meta.ino()))
}

/// Whether the open log `file` is the one `pos` describes (same inode, same
/// file id in its header, not shorter): then only bytes after
/// `pos.valid_len` are new.
pub fn same_log(
    file: &fs::File,
    meta: &fs::Metadata,
    pos: &LogPosition,
    header_id: fn(&[u8]) -> Option<u64>,
) -> bool {
    pos.ino == meta.ino() && pos.ino != 0 && meta.len() >= pos.valid_len && {
        let mut head = vec![0u8; (pos.valid_len.min(256)) as usize];
        file.read_exact_at(&mut head, 0).is_ok()
            && record_at(&head, 0).and_then(|(s, l)| header_id(&head[s..s + l]))
                == Some(pos.file_id)
    }
}

/// Reads the records of `file` from offset `from` one at a time, without
/// holding the file in memory, calling `on(record offset, payload)` until it
/// returns false. Returns the end of the valid records and whether bytes
/// that are not a valid record follow them (cut short, bad length or CRC).
pub fn scan_log(
    file: &fs::File,
    from: u64,
    mut on: impl FnMut(u64, &[u8]) -> bool,
) -> io::Result<(u64, bool)> {
    fn fill(reader: &mut impl io::Read, buf: &mut [u8]) -> usize {
        let mut got = 0;
        while got < buf.len() {
            match reader.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        got
    }
    let mut handle = file;
    io::Seek::seek(&mut handle, io::SeekFrom::Start(from))?;
    let mut reader = io::BufReader::with_capacity(256 * 1024, handle);
    let mut pos = from;
    let mut head = [0u8; 8];
    let mut payload = Vec::new();
    loop {
        match fill(&mut reader, &mut head) {
            0 => return Ok((pos, false)),
            8 => {}
            _ => return Ok((pos, true)),
        }
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        if len == 0 || len > MAX_RECORD {
            return Ok((pos, true));
        }
        payload.resize(len, 0);
        if fill(&mut reader, &mut payload) < len
            || crc32(&payload) != u32::from_le_bytes([head[4], head[5], head[6], head[7]])
        {
            return Ok((pos, true));
        }
        if !on(pos, &payload) {
            return Ok((pos, true));
        }
        pos += 8 + len as u64;
    }
}

/// Appends `bytes` to the log at `path` in one write and syncs the data;
/// returns the file's new length.
pub fn append_log(path: &Path, bytes: &[u8]) -> io::Result<u64> {
    append_log_with(path, bytes, true)
}

/// [`append_log`], syncing the data only if `sync`: for a log whose loss
/// costs nothing but work (the derived-field cache), where a torn or
/// missing tail after a crash is ignored by its CRCs.
pub fn append_log_with(path: &Path, bytes: &[u8], sync: bool) -> io::Result<u64> {
    let mut file = fs::OpenOptions::new().append(true).open(path)?;
    file.write_all(bytes)?;
    if sync {
        file.sync_data()?;
    }
    Ok(file.metadata()?.len())
}

/// Inode of the file at `path` (0 if missing).
pub fn inode(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.ino()).unwrap_or(0)
}

/// A process-wide map of folder directory → shared state, holding it only
/// while some session uses it.
pub struct Registry<T>(OnceLock<Mutex<HashMap<PathBuf, Weak<Mutex<T>>>>>);

impl<T: Default> Default for Registry<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Default> Registry<T> {
    /// An empty registry (for a `static`).
    pub const fn new() -> Self {
        Self(OnceLock::new())
    }

    /// The state of `dir`, created empty if no one holds it.
    pub fn get(&self, dir: &Path) -> Arc<Mutex<T>> {
        let mut map = self
            .0
            .get_or_init(|| Mutex::new(HashMap::new()))
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(live) = map.get(dir).and_then(Weak::upgrade) {
            return live;
        }
        map.retain(|_, weak| weak.strong_count() > 0);
        let fresh = Arc::new(Mutex::new(T::default()));
        map.insert(dir.to_path_buf(), Arc::downgrade(&fresh));
        fresh
    }
}

/// Locks shared state, ignoring poisoning (the state is re-read from disk
/// when in doubt).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------- the index

/// What the index knows of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// Its mod-sequence.
    pub modseq: u64,
    /// Internal date (the file's mtime), seconds since the epoch.
    pub mtime: i64,
    /// Size in octets.
    pub size: u64,
    /// Its file name in `cur/` when this was recorded.
    pub name: String,
}

/// The parsed `coffre-index` of one folder.
#[derive(Debug, Default)]
pub struct FolderIndex {
    uid_validity: u32,
    highest: u64,
    entries: HashMap<Uid, IndexEntry>,
    pos: LogPosition,
    /// Superseded records in the file (compaction when above the live ones).
    dead: usize,
    /// Whether the file must be rewritten before anything is appended.
    rewrite: bool,
    /// Records not written yet.
    pending: Vec<u8>,
}

static INDEXES: Registry<FolderIndex> = Registry::new();

/// The index of the folder at `dir`, shared by this process's sessions.
pub fn shared(dir: &Path) -> Arc<Mutex<FolderIndex>> {
    INDEXES.get(dir)
}

/// The current time in µs since the epoch (the mod-sequence floor).
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .clamp(1, 1 << 62)
}

fn header_id(payload: &[u8]) -> Option<u64> {
    log_header_id(payload, INDEX_MAGIC, VERSION)
}

/// The file id of a log's header record (`0`, magic, version, id), if the
/// payload is one with this magic and version; shared by `coffre-index`
/// and `coffre-cache`.
pub fn log_header_id(payload: &[u8], magic: &[u8; 4], version: u8) -> Option<u64> {
    let mut f = Fields(payload);
    (f.u8()? == HEADER && f.bytes(4)? == magic && f.u8()? == version).then_some(())?;
    f.u64()
}

impl FolderIndex {
    /// Brings the copy up to date with the file (under the folder lock).
    /// An unreadable or corrupt file leaves an empty index that will be
    /// rewritten; it never fails.
    pub fn refresh(&mut self, dir: &Path) {
        let path = dir.join(INDEX_FILE);
        self.pending.clear();
        match read_log(&path, &self.pos, header_id) {
            Ok(LogRead::Unchanged) => {}
            Ok(LogRead::Tail(tail)) => {
                let (recs, valid) = records(&tail);
                for (start, len) in recs {
                    self.apply(&tail[start..start + len]);
                }
                self.pos.valid_len += valid as u64;
                self.pos.torn = valid < tail.len();
                self.rewrite |= self.pos.torn;
            }
            Ok(LogRead::Whole(bytes, ino)) => self.load(&bytes, ino),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unreadable index; rebuilding");
                self.load(&[], 0);
            }
        }
    }

    fn load(&mut self, bytes: &[u8], ino: u64) {
        let floor = self.highest;
        *self = FolderIndex::default();
        let (recs, valid) = records(bytes);
        let header = recs.first().and_then(|(s, l)| {
            let mut f = Fields(&bytes[*s..*s + *l]);
            let id = header_id(&bytes[*s..*s + *l])?;
            f.bytes(14)?;
            Some((id, f.u32()?, f.u64()?))
        });
        let Some((file_id, uid_validity, highest)) = header else {
            if !bytes.is_empty() {
                tracing::warn!("index without a valid header; rebuilding");
            }
            // Never below what this process already handed out.
            self.highest = floor;
            self.rewrite = true;
            return;
        };
        self.uid_validity = uid_validity;
        self.highest = highest;
        for (start, len) in &recs[1..] {
            self.apply(&bytes[*start..*start + *len]);
        }
        self.pos = LogPosition {
            ino,
            file_id,
            valid_len: valid as u64,
            torn: valid < bytes.len(),
        };
        self.rewrite = self.pos.torn;
        if self.pos.torn {
            tracing::warn!(
                valid,
                len = bytes.len(),
                "index has a torn or corrupt tail; it will be rewritten"
            );
        }
    }

    fn apply(&mut self, payload: &[u8]) {
        let mut f = Fields(payload);
        match f.u8() {
            Some(MESSAGE) => {
                let parsed = (|| {
                    let uid = f.u32()?;
                    let modseq = f.u64()?;
                    let mtime = f.i64()?;
                    let size = f.u64()?;
                    let name = std::str::from_utf8(f.rest()).ok()?.to_string();
                    Some((
                        Uid(uid),
                        IndexEntry {
                            modseq,
                            mtime,
                            size,
                            name,
                        },
                    ))
                })();
                if let Some((uid, entry)) = parsed {
                    self.highest = self.highest.max(entry.modseq);
                    if self.entries.insert(uid, entry).is_some() {
                        self.dead += 1;
                    }
                }
            }
            Some(EXPUNGE) => {
                if let (Some(uid), Some(modseq)) = (f.u32(), f.u64()) {
                    self.highest = self.highest.max(modseq);
                    self.entries.remove(&Uid(uid));
                    self.dead += 2;
                }
            }
            // A second header or an unknown kind: ignored.
            _ => {}
        }
    }

    /// Makes the index belong to a folder of this UIDVALIDITY: an index of
    /// another one (or none) starts over, from the current time.
    pub fn ensure_validity(&mut self, uid_validity: UidValidity) {
        if self.uid_validity != uid_validity.0 {
            if !self.entries.is_empty() {
                tracing::info!(
                    old = self.uid_validity,
                    new = uid_validity.0,
                    "UIDVALIDITY changed; index started over"
                );
            }
            self.entries.clear();
            self.uid_validity = uid_validity.0;
            self.highest = self.highest.max(now_micros());
            self.rewrite = true;
        }
    }

    /// The UIDVALIDITY the index belongs to, if it is bound to one.
    pub fn uid_validity(&self) -> Option<u32> {
        (self.uid_validity != 0).then_some(self.uid_validity)
    }

    /// The folder's HIGHESTMODSEQ (at least 1).
    pub fn highest(&self) -> u64 {
        self.highest.max(1)
    }

    /// What the index knows of a message.
    pub fn get(&self, uid: Uid) -> Option<&IndexEntry> {
        self.entries.get(&uid)
    }

    /// UIDs the index knows.
    pub fn uids(&self) -> impl Iterator<Item = Uid> + '_ {
        self.entries.keys().copied()
    }

    /// Number of messages the index knows.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the index knows no message.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A new mod-sequence, above every earlier one (see the module docs).
    pub fn next_modseq(&mut self) -> u64 {
        self.highest = (self.highest + 1).max(now_micros());
        self.highest
    }

    /// Records a message (new, or renamed with its new mod-sequence).
    pub fn put(&mut self, uid: Uid, entry: IndexEntry) {
        self.highest = self.highest.max(entry.modseq);
        encode_message(&mut self.pending, uid, &entry);
        if self.entries.insert(uid, entry).is_some() {
            self.dead += 1;
        }
    }

    /// Forgets a message (expunged or moved away), raising HIGHESTMODSEQ.
    pub fn remove(&mut self, uid: Uid) {
        if self.entries.remove(&uid).is_none() {
            return;
        }
        let modseq = self.next_modseq();
        let mut payload = Vec::with_capacity(13);
        payload.push(EXPUNGE);
        payload.extend_from_slice(&uid.0.to_le_bytes());
        payload.extend_from_slice(&modseq.to_le_bytes());
        frame(&mut self.pending, &payload);
        self.dead += 2;
    }

    /// Writes what changed: appended in one write, or the whole index
    /// rewritten atomically when it is new, was torn, or holds more
    /// superseded records than live ones. A failure (a full disk) is logged,
    /// not returned, since the operation it records has already happened:
    /// this process keeps the values in memory and rewrites the whole file
    /// at the next change; another process that reads the file meanwhile
    /// sees names that differ from the records and gives new values — so
    /// no value is ever reused or lowered.
    pub fn commit(&mut self, dir: &Path) {
        if let Err(e) = self.try_commit(dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "index not written; rewritten at the next change");
            self.pending.clear();
            self.rewrite = true;
        }
    }

    fn try_commit(&mut self, dir: &Path) -> StoreResult<()> {
        let path = dir.join(INDEX_FILE);
        if self.pending.is_empty() && !self.rewrite {
            return Ok(());
        }
        if self.rewrite || self.dead > self.entries.len() + 1024 {
            let file_id = rand::random::<u64>().max(1);
            let bytes = self.snapshot_bytes(file_id);
            write_atomic(dir, INDEX_FILE, &bytes)?;
            self.pos = LogPosition {
                ino: inode(&path),
                file_id,
                valid_len: bytes.len() as u64,
                torn: false,
            };
            self.dead = 0;
            self.rewrite = false;
        } else {
            let len = append_log(&path, &self.pending)
                .map_err(|e| StoreError::io(format_args!("appending to {}", path.display()), &e))?;
            if len != self.pos.valid_len + self.pending.len() as u64 {
                // Someone else wrote meanwhile (we hold the lock, so this
                // is not a Coffre): read it all again next time.
                self.pos = LogPosition::default();
            } else {
                self.pos.valid_len = len;
            }
        }
        self.pending.clear();
        Ok(())
    }

    /// The whole index as one file: a header and one record per message.
    pub fn snapshot_bytes(&self, file_id: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.entries.len() * 96);
        let mut header = Vec::with_capacity(26);
        header.push(HEADER);
        header.extend_from_slice(INDEX_MAGIC);
        header.push(VERSION);
        header.extend_from_slice(&file_id.to_le_bytes());
        header.extend_from_slice(&self.uid_validity.to_le_bytes());
        header.extend_from_slice(&self.highest.to_le_bytes());
        frame(&mut out, &header);
        let mut uids: Vec<&Uid> = self.entries.keys().collect();
        uids.sort_unstable();
        for uid in uids {
            encode_message(&mut out, *uid, &self.entries[uid]);
        }
        out
    }
}

fn encode_message(out: &mut Vec<u8>, uid: Uid, entry: &IndexEntry) {
    let mut payload = Vec::with_capacity(29 + entry.name.len());
    payload.push(MESSAGE);
    payload.extend_from_slice(&uid.0.to_le_bytes());
    payload.extend_from_slice(&entry.modseq.to_le_bytes());
    payload.extend_from_slice(&entry.mtime.to_le_bytes());
    payload.extend_from_slice(&entry.size.to_le_bytes());
    payload.extend_from_slice(entry.name.as_bytes());
    frame(out, &payload);
}

#[cfg(test)]
mod tests;
