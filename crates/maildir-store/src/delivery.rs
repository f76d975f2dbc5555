//! Unique Maildir file names and writing a message through `tmp/`.
//!
//! Names follow the Maildir spec (cr.yp.to/proto/maildir.html) as Dovecot
//! writes them: `<secs>.M<usecs>P<pid>Q<counter>.<hostname>`, where the
//! counter is per process, so two deliveries in one process, or in two
//! processes, never collide; the host name has `/` written `\057` and `:`
//! written `\072` (and `,`, which would confuse the `,S=` field, `\054`).
//!
//! A message is written to `tmp/<unique>` (created exclusively, mode 0600),
//! fsynced, its mtime set to the internal date, and only then renamed into
//! `cur/` by the caller, so a crash never leaves a partial message visible.
//! A streamed APPEND ([`create_tmp`], `MaildirSpool`) fills its `tmp/` file
//! as the literal arrives, then takes the same path into `cur/`.

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mail_store::{StoreError, StoreResult};

/// Files in `tmp/` older than this are left-overs of crashed deliveries
/// (Maildir spec: 36 hours).
pub const STALE_TMP_AGE: Duration = Duration::from_secs(36 * 3600);

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// This host's name as it may appear in a Maildir file name.
pub fn hostname() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        let raw = fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| fs::read_to_string("/etc/hostname"))
            .unwrap_or_default();
        sanitize_hostname(raw.trim())
    })
}

/// Escapes the characters a Maildir name cannot hold in its host part.
pub fn sanitize_hostname(raw: &str) -> String {
    if raw.is_empty() {
        return "localhost".to_string();
    }
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '/' => out.push_str("\\057"),
            ':' => out.push_str("\\072"),
            ',' => out.push_str("\\054"),
            c if c.is_control() || c.is_whitespace() => out.push('_'),
            c => out.push(c),
        }
    }
    out
}

/// A new unique base name.
pub fn unique_name() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}.M{}P{}Q{}.{}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        counter,
        hostname()
    )
}

/// A message written to `tmp/`, removed again if dropped before it is moved.
#[derive(Debug)]
pub struct TmpMessage {
    /// Its path in `tmp/`.
    pub path: PathBuf,
    /// The unique base name it was written under.
    pub unique: String,
    /// Its size in bytes.
    pub size: u64,
    moved: bool,
}

impl TmpMessage {
    /// Marks the file as renamed away (nothing to clean up).
    pub fn mark_moved(&mut self) {
        self.moved = true;
    }
}

impl Drop for TmpMessage {
    fn drop(&mut self) {
        if !self.moved {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Writes `message` to `<folder>/tmp/<unique>`, fsynced, with its mtime set
/// to `internal_date` (seconds since the epoch).
pub fn write_tmp(folder: &Path, message: &[u8], internal_date: i64) -> StoreResult<TmpMessage> {
    let unique = unique_name();
    let path = folder.join("tmp").join(&unique);
    let tmp = TmpMessage {
        path,
        unique,
        size: message.len() as u64,
        moved: false,
    };
    let result = (|| -> io::Result<()> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp.path)?;
        file.write_all(message)?;
        file.set_modified(system_time(internal_date))?;
        file.sync_all()
    })();
    match result {
        Ok(()) => Ok(tmp),
        // Dropping `tmp` removes the partial file.
        Err(e) => Err(StoreError::io(
            format_args!("writing {}", tmp.path.display()),
            &e,
        )),
    }
}

/// Creates an empty `<folder>/tmp/<unique>` (exclusively, mode 0600) to be
/// filled bit by bit (a streamed APPEND); the file is removed when the
/// returned [`TmpMessage`] is dropped before it is moved. `size` starts at 0:
/// the writer keeps it up to date.
pub fn create_tmp(folder: &Path) -> StoreResult<(TmpMessage, fs::File)> {
    let unique = unique_name();
    let path = folder.join("tmp").join(&unique);
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| StoreError::io(format_args!("creating {}", path.display()), &e))?;
    let tmp = TmpMessage {
        path,
        unique,
        size: 0,
        moved: false,
    };
    Ok((tmp, file))
}

/// Seconds since the epoch as a `SystemTime` (dates before 1970 allowed).
pub fn system_time(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

/// A file's mtime as seconds since the epoch.
pub fn epoch_secs(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// Removes files in `tmp/` older than [`STALE_TMP_AGE`]; returns how many.
///
/// "Older" means both the mtime and the ctime: an APPEND in progress sets
/// its file's mtime to the internal date, which may be years back, but its
/// ctime (which nobody can set) is fresh.
pub fn clean_stale_tmp(folder: &Path, now: SystemTime) -> usize {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(entries) = fs::read_dir(folder.join("tmp")) else {
        return 0;
    };
    let mut removed = 0;
    let age_of = |t: SystemTime| now.duration_since(t).ok();
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        let ctime = system_time(meta.ctime());
        let old = meta
            .modified()
            .ok()
            .and_then(age_of)
            .is_some_and(|age| age > STALE_TMP_AGE)
            && age_of(ctime).is_some_and(|age| age > STALE_TMP_AGE);
        if meta.is_file() && old && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hostname_is_sanitized() {
        assert_eq!(sanitize_hostname("mx/1:2,3"), "mx\\0571\\0722\\0543");
        assert_eq!(sanitize_hostname(""), "localhost");
        assert!(!hostname().contains('/') && !hostname().contains(':'));
    }

    #[test]
    fn unique_names_differ_and_have_the_maildir_shape() {
        let a = unique_name();
        let b = unique_name();
        assert_ne!(a, b);
        let parts: Vec<&str> = a.splitn(3, '.').collect();
        assert!(parts[0].parse::<u64>().is_ok());
        assert!(parts[1].starts_with('M') && parts[1].contains('P') && parts[1].contains('Q'));
        assert!(!a.contains(':') && !a.contains('/') && !a.contains(','));
    }

    #[test]
    fn tmp_file_has_date_and_is_cleaned_up_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("tmp")).unwrap();
        let tmp = write_tmp(dir.path(), b"hello", 1_000_000_000).unwrap();
        let meta = fs::metadata(&tmp.path).unwrap();
        assert_eq!(meta.len(), 5);
        assert_eq!(epoch_secs(meta.modified().unwrap()), 1_000_000_000);
        let path = tmp.path.clone();
        drop(tmp);
        assert!(!path.exists());
        let err = write_tmp(&dir.path().join("missing"), b"x", 0).unwrap_err();
        assert_eq!(err.kind, mail_store::StoreErrorKind::NotFound);
    }

    #[test]
    fn stale_tmp_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("tmp")).unwrap();
        let mut old = write_tmp(dir.path(), b"old", 0).unwrap();
        old.mark_moved();
        let mut fresh = write_tmp(dir.path(), b"new", epoch_secs(SystemTime::now())).unwrap();
        fresh.mark_moved();
        // An APPEND with an old internal date is not stale: its ctime is new.
        assert_eq!(clean_stale_tmp(dir.path(), SystemTime::now()), 0);
        assert!(old.path.exists());
        // 37 hours on, both are stale; a file whose mtime is not old yet
        // (an internal date in the future) is kept.
        let later = SystemTime::now() + STALE_TMP_AGE + Duration::from_secs(3600);
        let mut recent_date = write_tmp(dir.path(), b"x", epoch_secs(later)).unwrap();
        recent_date.mark_moved();
        assert_eq!(clean_stale_tmp(dir.path(), later), 2);
        assert!(!old.path.exists());
        assert!(!fresh.path.exists());
        assert!(recent_date.path.exists(), "mtime not old yet");
        assert_eq!(epoch_secs(system_time(-5)), -5);
    }
}
