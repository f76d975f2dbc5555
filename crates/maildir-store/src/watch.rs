//! Change detection for IDLE (RFC 2177): the [`ChangeSource`] behind
//! `Mailbox::watch` for Maildir folders.
//!
//! Two ways a change is noticed:
//! - **In this process** (another session's APPEND, STORE, EXPUNGE, COPY,
//!   MOVE, or a sync that picked up new mail): every such operation calls
//!   [`notify`] for the folder directory, which bumps a per-directory
//!   [`ChangeSignal`] from a process-wide registry. Watchers wake at once.
//! - **By anyone else** (Postfix writing to `new/`, another Coffre process, a
//!   Dovecot or a mail client on the same files): the watcher polls the
//!   folder's [`Stamp`] — four `stat` calls: `cur/`, `new/`, the UID list and
//!   the keyword table — every poll interval (default
//!   [`DEFAULT_WATCH_INTERVAL`], set with `MaildirStore::with_watch_interval`)
//!   and wakes when it differs from the stamp of the mailbox's last sync.
//!
//! Polling rather than inotify keeps this correct on NFS and other shared
//! file systems where inotify sees nothing of other hosts' changes, needs no
//! file descriptors per idle session, and bounds the delay for external
//! delivery by the interval. Wake-ups may be spurious (a session's own
//! change); the session's next `sync` then reports nothing.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use mail_store::{ChangeSignal, ChangeSource};

use crate::folder::{self, Stamp};

/// How often an idle watcher checks the folder for changes made outside this
/// process.
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// Folder directory → its signal. Entries are small and bounded by the
/// number of folders this process has touched.
fn registry() -> &'static Mutex<HashMap<PathBuf, ChangeSignal>> {
    static REGISTRY: OnceLock<Mutex<HashMap<PathBuf, ChangeSignal>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The signal of a folder directory.
pub fn signal(dir: &Path) -> ChangeSignal {
    registry()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(dir.to_path_buf())
        .or_default()
        .clone()
}

/// Wakes this process's watchers of the folder at `dir`.
pub fn notify(dir: &Path) {
    signal(dir).bump();
}

type StampFuture = Pin<Box<dyn Future<Output = Stamp> + Send>>;

/// A watcher of one Maildir folder.
pub struct MaildirChangeSource {
    dir: PathBuf,
    signal: ChangeSignal,
    seen_version: u64,
    /// The stamp as of the mailbox's last sync (or the last wake-up); `None`
    /// if the mailbox never synced, which makes the first poll wake.
    baseline: Option<Stamp>,
    interval: Duration,
    poll: Option<StampFuture>,
}

impl MaildirChangeSource {
    /// A watcher starting from the state of the mailbox's last sync.
    pub fn new(
        dir: PathBuf,
        seen_version: u64,
        baseline: Option<Stamp>,
        interval: Duration,
    ) -> Self {
        Self {
            signal: signal(&dir),
            dir,
            seen_version,
            baseline,
            interval,
            poll: None,
        }
    }
}

/// Sleeps one interval at a time, then takes the stamp on the blocking pool,
/// until it differs from `baseline` — or until an unsettled baseline (an
/// mtime within the same clock tick as a possible later change) has become
/// settled: then one wake-up, possibly spurious, makes sure a change hidden
/// in that tick is not missed.
fn poll_stamp(dir: PathBuf, baseline: Option<Stamp>, interval: Duration) -> StampFuture {
    Box::pin(async move {
        loop {
            tokio::time::sleep(interval).await;
            let probe = dir.clone();
            let Ok(now) = tokio::task::spawn_blocking(move || folder::stamp(&probe)).await else {
                continue;
            };
            match baseline {
                Some(base) if base == now && (base.settled() || !now.settled()) => {}
                _ => return now,
            }
        }
    })
}

impl ChangeSource for MaildirChangeSource {
    fn poll_changed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Poll::Ready(version) = self.signal.poll_since(self.seen_version, cx) {
            self.seen_version = version;
            return Poll::Ready(());
        }
        let poll = self
            .poll
            .get_or_insert_with(|| poll_stamp(self.dir.clone(), self.baseline, self.interval));
        match poll.as_mut().poll(cx) {
            Poll::Ready(stamp) => {
                self.poll = None;
                self.baseline = Some(stamp);
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
