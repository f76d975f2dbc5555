//! Change detection for IDLE (RFC 2177): the [`ChangeSource`] behind
//! `Mailbox::watch` for Maildir folders.
//!
//! Three ways a change is noticed:
//! - **In this process** (another session's APPEND, STORE, EXPUNGE, COPY,
//!   MOVE, or a sync that picked up new mail): every such operation calls
//!   [`notify`] for the folder directory, which bumps a per-directory
//!   [`ChangeSignal`] from a process-wide registry. Watchers wake at once.
//! - **inotify**, for changes by anyone else on this host (Postfix renaming
//!   into `new/`, another Coffre process, Dovecot, a mail client on the
//!   files): one inotify instance per process and one watch on `cur/` and
//!   one on `new/` per *folder* being watched — shared by all its idle
//!   sessions (reference-counted, removed with the last watcher), so 10,000
//!   idle sessions cost one file descriptor and two watches per folder. A
//!   thread reads the events and bumps the folder's signal (once per batch
//!   of events), so watchers wake at once.
//! - **Polling**, the fallback: the watcher also checks the folder's
//!   stamp (`folder::Stamp`) — four `stat` calls: `cur/`, `new/`, the UID list and the
//!   keyword table — every poll interval (default
//!   [`DEFAULT_WATCH_INTERVAL`], set with `MaildirStore::with_watch_interval`)
//!   and wakes when it differs from the stamp of the mailbox's last sync.
//!   This is what sees changes inotify cannot: made by another host on NFS
//!   or another shared file system, or when inotify is unavailable (init
//!   failed, `fs.inotify.max_user_instances` / `max_user_watches`
//!   exhausted: logged once, the folder is then only polled). With inotify
//!   working, the interval bounds only the delay for such remote changes.
//!
//! Wake-ups may be spurious (a session's own change, an event that changes
//! nothing); the session's next `sync` then reports nothing.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use mail_store::{ChangeSignal, ChangeSource};

use crate::folder::{self, Stamp};

/// How often an idle watcher polls the folder for changes made outside this
/// process (the fallback behind inotify; see the module docs).
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

/// The process's inotify instance: its watches and which folder each
/// watch descriptor belongs to.
struct Inotifier {
    watches: Mutex<Watches>,
    /// Folder directory → (watchers, its watch descriptors).
    by_dir: Mutex<HashMap<PathBuf, (usize, Vec<WatchDescriptor>)>>,
    /// Watch descriptor id → folder directory (read by the event thread).
    by_wd: Arc<Mutex<HashMap<i32, PathBuf>>>,
    /// Cleared when the event thread stops (read error): polling only.
    alive: Arc<AtomicBool>,
}

fn guard<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The process-wide inotify instance, started on first use; `None` if
/// inotify cannot be used (then watchers poll).
fn inotifier() -> Option<&'static Inotifier> {
    static INOTIFY: OnceLock<Option<Inotifier>> = OnceLock::new();
    INOTIFY
        .get_or_init(|| match start_inotify() {
            Ok(inotifier) => Some(inotifier),
            Err(e) => {
                tracing::warn!(error = %e, "inotify unavailable; IDLE polls folders instead");
                None
            }
        })
        .as_ref()
}

fn start_inotify() -> std::io::Result<Inotifier> {
    let mut inotify = Inotify::init()?;
    let watches = inotify.watches();
    let by_wd: Arc<Mutex<HashMap<i32, PathBuf>>> = Arc::default();
    let alive = Arc::new(AtomicBool::new(true));
    let (map, flag) = (Arc::clone(&by_wd), Arc::clone(&alive));
    std::thread::Builder::new()
        .name("coffre-inotify".into())
        .spawn(move || {
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                let events = match inotify.read_events_blocking(&mut buffer) {
                    Ok(events) => events,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "inotify stopped; IDLE polls folders instead");
                        flag.store(false, Ordering::Relaxed);
                        // Wake everyone once so nothing waits on a dead source.
                        for dir in guard(&map).values() {
                            notify(dir);
                        }
                        return;
                    }
                };
                let mut woken: HashSet<PathBuf> = HashSet::new();
                let mut overflow = false;
                {
                    let mut map = guard(&map);
                    for event in events {
                        let id = event.wd.get_watch_descriptor_id();
                        if event.mask.contains(EventMask::Q_OVERFLOW) {
                            overflow = true;
                        } else if event.mask.contains(EventMask::IGNORED) {
                            // Watch gone (directory removed): a last wake-up.
                            if let Some(dir) = map.remove(&id) {
                                woken.insert(dir);
                            }
                        } else if let Some(dir) = map.get(&id) {
                            woken.insert(dir.clone());
                        }
                    }
                    if overflow {
                        woken.extend(map.values().cloned());
                    }
                }
                for dir in &woken {
                    notify(dir);
                }
            }
        })?;
    Ok(Inotifier {
        watches: Mutex::new(watches),
        by_dir: Mutex::default(),
        by_wd,
        alive,
    })
}

/// Whether changes by other processes on this host wake watchers at once
/// (inotify started and running); otherwise they are polled for.
pub fn inotify_active() -> bool {
    inotifier().is_some_and(|i| i.alive.load(Ordering::Relaxed))
}

/// Whether inotify reports every change to the folder's `cur/` and `new/`
/// right now (both watched by a live event thread), so that any change made
/// on this host bumps the folder's signal.
pub(crate) fn inotify_watching(dir: &Path) -> bool {
    inotifier().is_some_and(|i| {
        i.alive.load(Ordering::Relaxed)
            && guard(&i.by_dir)
                .get(dir)
                .is_some_and(|(_, wds)| wds.len() == 2)
    })
}

/// One watcher's share of the inotify watches on a folder's `cur/` and
/// `new/`; the watches go with the folder's last watcher.
struct InotifyGuard {
    dir: PathBuf,
}

impl InotifyGuard {
    fn new(dir: &Path) -> Option<Self> {
        let inotifier = inotifier()?;
        let mut by_dir = guard(&inotifier.by_dir);
        if let Some((count, _)) = by_dir.get_mut(dir) {
            *count += 1;
            return Some(Self {
                dir: dir.to_path_buf(),
            });
        }
        let mask = WatchMask::CREATE
            | WatchMask::DELETE
            | WatchMask::MOVED_FROM
            | WatchMask::MOVED_TO
            | WatchMask::ONLYDIR;
        let mut wds = Vec::with_capacity(2);
        let mut watches = guard(&inotifier.watches);
        for sub in ["cur", "new"] {
            match watches.add(dir.join(sub), mask) {
                Ok(wd) => {
                    guard(&inotifier.by_wd).insert(wd.get_watch_descriptor_id(), dir.to_path_buf());
                    wds.push(wd);
                }
                Err(e) => {
                    static WARNED: AtomicBool = AtomicBool::new(false);
                    if !WARNED.swap(true, Ordering::Relaxed) {
                        tracing::warn!(dir = %dir.display(), error = %e,
                            "inotify watch refused (fs.inotify.max_user_watches?); polling this folder");
                    }
                }
            }
        }
        drop(watches);
        by_dir.insert(dir.to_path_buf(), (1, wds));
        Some(Self {
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for InotifyGuard {
    fn drop(&mut self) {
        let Some(inotifier) = inotifier() else {
            return;
        };
        let mut by_dir = guard(&inotifier.by_dir);
        let Some((count, _)) = by_dir.get_mut(&self.dir) else {
            return;
        };
        *count -= 1;
        if *count > 0 {
            return;
        }
        if let Some((_, wds)) = by_dir.remove(&self.dir) {
            let mut watches = guard(&inotifier.watches);
            let mut by_wd = guard(&inotifier.by_wd);
            for wd in wds {
                by_wd.remove(&wd.get_watch_descriptor_id());
                // Fails harmlessly if the directory is already gone.
                let _ = watches.remove(wd);
            }
        }
    }
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
    /// Keeps the folder's inotify watches while this watcher lives.
    _inotify: Option<InotifyGuard>,
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
            _inotify: InotifyGuard::new(&dir),
            dir,
            seen_version,
            baseline,
            interval,
            poll: None,
        }
    }
}

/// The latest stamp reading of each polled folder, shared by its watchers:
/// a thousand idle sessions of one INBOX, each polling every interval,
/// cost one reading per half interval, not a thousand. Bounded by the
/// number of folders this process has watched.
fn stamp_readings() -> &'static Mutex<HashMap<PathBuf, (Instant, Stamp)>> {
    static READINGS: OnceLock<Mutex<HashMap<PathBuf, (Instant, Stamp)>>> = OnceLock::new();
    READINGS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The folder's stamp: a reading another watcher took less than `max_age`
/// ago, else a fresh one (on the blocking pool). `None` if the blocking
/// task failed.
async fn shared_stamp(dir: &Path, max_age: Duration) -> Option<Stamp> {
    let recent = guard(stamp_readings())
        .get(dir)
        .filter(|(at, _)| at.elapsed() < max_age)
        .map(|(_, stamp)| *stamp);
    if recent.is_some() {
        return recent;
    }
    let probe = dir.to_path_buf();
    let stamp = tokio::task::spawn_blocking(move || folder::stamp(&probe))
        .await
        .ok()?;
    guard(stamp_readings()).insert(dir.to_path_buf(), (Instant::now(), stamp));
    Some(stamp)
}

/// Sleeps one interval at a time, then takes the stamp (or a reading of it
/// shared with the folder's other watchers, see [`shared_stamp`]),
/// until it differs from `baseline` — or until an unsettled baseline (an
/// mtime within the same clock tick as a possible later change) has become
/// settled: then one wake-up, possibly spurious, makes sure a change hidden
/// in that tick is not missed.
fn poll_stamp(dir: PathBuf, baseline: Option<Stamp>, interval: Duration) -> StampFuture {
    Box::pin(async move {
        loop {
            tokio::time::sleep(interval).await;
            let Some(now) = shared_stamp(&dir, interval / 2).await else {
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
