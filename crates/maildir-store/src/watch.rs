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
    /// Folder directory → its watches.
    by_dir: Arc<Mutex<HashMap<PathBuf, Watched>>>,
    /// Watch descriptor id → folder directory (read by the event thread).
    by_wd: Arc<Mutex<HashMap<i32, PathBuf>>>,
    /// Events this process's own changes will cause (see [`expect`]).
    expected: Arc<Mutex<Expected>>,
    /// Cleared when the event thread stops (read error): polling only.
    alive: Arc<AtomicBool>,
    /// Set by the event thread from the moment it finds events to read
    /// until it has signalled their folders.
    busy: Arc<AtomicBool>,
    /// The inotify descriptor (a duplicate), to see whether events wait
    /// unread.
    fd: std::os::fd::OwnedFd,
}

/// One watched folder.
struct Watched {
    /// Its live [`InotifyGuard`]s.
    count: usize,
    /// The watches on `cur/` and `new/`, in that order (fewer if refused).
    wds: Vec<WatchDescriptor>,
    /// Which watch this is: a folder unwatched for a while and watched
    /// again gets a new epoch, so "watched since epoch E" means without a
    /// gap in which changes went unreported.
    epoch: u64,
    /// Cleared when a watch of it ended (directory removed or renamed:
    /// inotify follows the inode, not the path).
    intact: bool,
}

impl Watched {
    fn complete(&self) -> bool {
        self.intact && self.wds.len() == 2
    }
}

/// Events this process expects from its own changes, by watch descriptor
/// and file name: the event thread drops them instead of waking the
/// folder's sessions a second time (they were told in-process already) and
/// making them rescan for nothing.
#[derive(Default)]
struct Expected {
    events: HashMap<(i32, std::ffi::OsString), u32>,
    total: usize,
}

/// At most this many expected events are kept; past it they are all
/// forgotten (their events then wake the folder: spurious, never missed).
const MAX_EXPECTED: usize = 65_536;

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
    let by_dir: Arc<Mutex<HashMap<PathBuf, Watched>>> = Arc::default();
    let expected: Arc<Mutex<Expected>> = Arc::default();
    let alive = Arc::new(AtomicBool::new(true));
    let busy = Arc::new(AtomicBool::new(false));
    let fd = std::os::fd::AsFd::as_fd(&inotify).try_clone_to_owned()?;
    let (map, flag, working) = (Arc::clone(&by_wd), Arc::clone(&alive), Arc::clone(&busy));
    let (dirs, own) = (Arc::clone(&by_dir), Arc::clone(&expected));
    std::thread::Builder::new()
        .name("coffre-inotify".into())
        .spawn(move || {
            let mut buffer = vec![0u8; 64 * 1024];
            // On a read error: polling only from now on, and everyone
            // woken once so nothing waits on a dead source.
            let stop = |error: &dyn std::fmt::Display| {
                tracing::warn!(error = %error, "inotify stopped; IDLE polls folders instead");
                flag.store(false, Ordering::Relaxed);
                for dir in guard(&map).values() {
                    notify(dir);
                }
            };
            loop {
                // Wait until events are queued, then say so before reading
                // them (see `quiet`).
                working.store(false, Ordering::SeqCst);
                let ready = {
                    let mut fds = [rustix::event::PollFd::new(
                        &inotify,
                        rustix::event::PollFlags::IN,
                    )];
                    rustix::event::poll(&mut fds, None)
                };
                match ready {
                    Ok(_) | Err(rustix::io::Errno::INTR) => {}
                    Err(e) => return stop(&e),
                }
                working.store(true, Ordering::SeqCst);
                let events = match inotify.read_events(&mut buffer) {
                    Ok(events) => events,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
                        ) =>
                    {
                        continue;
                    }
                    Err(e) => return stop(&e),
                };
                let mut woken: HashSet<PathBuf> = HashSet::new();
                let mut ended: Vec<PathBuf> = Vec::new();
                let mut overflow = false;
                {
                    let mut map = guard(&map);
                    let mut own = guard(&own);
                    for event in events {
                        let id = event.wd.get_watch_descriptor_id();
                        if event.mask.contains(EventMask::Q_OVERFLOW) {
                            overflow = true;
                        } else if event
                            .mask
                            .intersects(EventMask::IGNORED | EventMask::MOVE_SELF)
                        {
                            // Watch gone or moved away (directory removed
                            // or renamed): a last wake-up, and the folder's
                            // path is no longer watched.
                            let dir = if event.mask.contains(EventMask::IGNORED) {
                                map.remove(&id)
                            } else {
                                map.get(&id).cloned()
                            };
                            if let Some(dir) = dir {
                                ended.push(dir.clone());
                                woken.insert(dir);
                            }
                        } else if let Some(dir) = map.get(&id)
                            && !event.name.is_some_and(|name| own.take(id, name))
                        {
                            woken.insert(dir.clone());
                        }
                    }
                    if overflow {
                        *own = Expected::default();
                        woken.extend(map.values().cloned());
                    }
                }
                if !ended.is_empty() {
                    let mut dirs = guard(&dirs);
                    for dir in &ended {
                        if let Some(w) = dirs.get_mut(dir) {
                            w.intact = false;
                        }
                    }
                }
                for dir in &woken {
                    notify(dir);
                }
            }
        })?;
    Ok(Inotifier {
        watches: Mutex::new(watches),
        by_dir,
        by_wd,
        expected,
        alive,
        busy,
        fd,
    })
}

/// Whether every event inotify has queued so far has been turned into a
/// signal: then a change made on this host before this call (its system
/// call returned) has bumped its folder's signal, and a sync that finds the
/// signal unchanged may trust it. One `poll` with no wait.
pub(crate) fn quiet() -> bool {
    let Some(i) = inotifier() else {
        return false;
    };
    if i.busy.load(Ordering::SeqCst) {
        return false;
    }
    let mut fds = [rustix::event::PollFd::new(
        &i.fd,
        rustix::event::PollFlags::IN,
    )];
    let unread = !matches!(
        rustix::event::poll(&mut fds, Some(&rustix::event::Timespec::default())),
        Ok(0)
    );
    // The thread marks itself busy before it reads: if it took the events
    // after the poll above, this sees it.
    !unread && !i.busy.load(Ordering::SeqCst)
}

/// [`quiet`], waiting up to `max` (on a blocking thread) for the event
/// thread to turn what is queued into signals: right after this process's
/// own change its expected events are still queued for a few microseconds.
pub(crate) fn wait_quiet(max: Duration) -> bool {
    let start = Instant::now();
    loop {
        if quiet() {
            return true;
        }
        if start.elapsed() >= max || !inotify_active() {
            return false;
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// How long a folder stays watched after its last mailbox closed.
const LINGER: Duration = Duration::from_secs(60);
/// At most this many closed folders stay watched.
const MAX_LINGERING: usize = 1024;

/// Keeps a closed folder's inotify watches, and `keep` (its latest scan),
/// a while ([`LINGER`]): a client selecting it again soon finds it watched
/// all along, and the folder's latest scan still trusted. Watches past
/// their time go with the next folder closed.
pub(crate) fn linger(watch: InotifyGuard, keep: Box<dyn std::any::Any + Send>) {
    type Lingering = (Instant, (InotifyGuard, Box<dyn std::any::Any + Send>));
    static LINGERING: Mutex<std::collections::VecDeque<Lingering>> =
        Mutex::new(std::collections::VecDeque::new());
    let now = Instant::now();
    let expired: Vec<Lingering> = {
        let mut lingering = guard(&LINGERING);
        lingering.push_back((now + LINGER, (watch, keep)));
        let mut expired = Vec::new();
        while lingering
            .front()
            .is_some_and(|(until, _)| *until <= now || lingering.len() > MAX_LINGERING)
        {
            expired.extend(lingering.pop_front());
        }
        expired
    };
    // Dropped outside the lock (removing a watch is a system call).
    drop(expired);
}

impl Expected {
    /// Takes one expected event of file `name` in watch `wd`, if any.
    fn take(&mut self, wd: i32, name: &std::ffi::OsStr) -> bool {
        let key = (wd, name.to_os_string());
        let Some(count) = self.events.get_mut(&key) else {
            return false;
        };
        *count -= 1;
        if *count == 0 {
            self.events.remove(&key);
        }
        self.total -= 1;
        true
    }

    fn add(&mut self, wd: i32, name: &str) {
        if self.total >= MAX_EXPECTED {
            *self = Self::default();
        }
        *self.events.entry((wd, name.into())).or_default() += 1;
        self.total += 1;
    }

    fn forget_wd(&mut self, wd: i32) {
        self.events.retain(|(w, _), _| *w != wd);
        self.total = self.events.values().map(|c| *c as usize).sum();
    }
}

/// A subdirectory of a folder that inotify watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sub {
    Cur = 0,
    New = 1,
}

/// An event this process's own change is about to cause in a watched
/// folder: registered before the change, so that the event thread drops
/// the event instead of waking the folder's sessions again. [`Self::cancel`]
/// it if the change fails (no event will come).
#[must_use = "cancel the expectation if the change fails"]
pub(crate) struct Expectation {
    key: Option<(i32, String)>,
}

impl Expectation {
    /// Withdraws the expectation (the change did not happen).
    pub(crate) fn cancel(self) {
        let (Some((wd, name)), Some(inotifier)) = (self.key, inotifier()) else {
            return;
        };
        guard(&inotifier.expected).take(wd, std::ffi::OsStr::new(&name));
    }
}

/// Expects one event for file `name` in `sub` of the folder at `dir` (a
/// rename in or out, a creation or a removal), if inotify watches it.
pub(crate) fn expect(dir: &Path, sub: Sub, name: &str) -> Expectation {
    let key = inotifier().and_then(|i| {
        let wd = guard(&i.by_dir)
            .get(dir)
            .filter(|w| w.complete())
            .map(|w| w.wds[sub as usize].get_watch_descriptor_id())?;
        guard(&i.expected).add(wd, name);
        Some((wd, name.to_string()))
    });
    Expectation { key }
}

/// Whether changes by other processes on this host wake watchers at once
/// (inotify started and running); otherwise they are polled for.
pub fn inotify_active() -> bool {
    inotifier().is_some_and(|i| i.alive.load(Ordering::Relaxed))
}

/// The epoch of the folder's inotify watch if inotify reports every change
/// to its `cur/` and `new/` right now (both watched by a live event
/// thread), so that any change made on this host bumps the folder's signal.
/// The same epoch later means the folder was watched all along.
pub(crate) fn inotify_epoch(dir: &Path) -> Option<u64> {
    let inotifier = inotifier()?;
    if !inotifier.alive.load(Ordering::Relaxed) {
        return None;
    }
    guard(&inotifier.by_dir)
        .get(dir)
        .filter(|w| w.complete())
        .map(|w| w.epoch)
}

/// Whether the folder at `dir` has been watched without a gap since its
/// watch had `epoch` (`None`: it was not watched then, so no).
pub(crate) fn watched_since(dir: &Path, epoch: Option<u64>) -> bool {
    epoch.is_some() && inotify_epoch(dir) == epoch
}

/// Marks the folder at `dir` as no longer watched under its path (it is
/// being renamed or removed: inotify would follow the directory, not the
/// path). Its watchers keep being woken; nothing trusts the watch again
/// until the folder's last watcher is gone and a new watch is set up.
pub(crate) fn path_changing(dir: &Path) {
    if let Some(inotifier) = inotifier()
        && let Some(w) = guard(&inotifier.by_dir).get_mut(dir)
    {
        w.intact = false;
    }
}

/// One holder's share of the inotify watches on a folder's `cur/` and
/// `new/` (an IDLE watcher or an open mailbox); the watches go with the
/// folder's last holder.
pub(crate) struct InotifyGuard {
    dir: PathBuf,
}

impl std::fmt::Debug for InotifyGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InotifyGuard")
            .field("dir", &self.dir)
            .finish()
    }
}

impl InotifyGuard {
    /// A share of the folder's watches (set up by the first holder; this
    /// makes system calls then). `None` if inotify is unavailable.
    pub(crate) fn new(dir: &Path) -> Option<Self> {
        static EPOCHS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let inotifier = inotifier()?;
        let mut by_dir = guard(&inotifier.by_dir);
        if let Some(w) = by_dir.get_mut(dir) {
            w.count += 1;
            return Some(Self {
                dir: dir.to_path_buf(),
            });
        }
        let mask = WatchMask::CREATE
            | WatchMask::DELETE
            | WatchMask::MOVED_FROM
            | WatchMask::MOVED_TO
            | WatchMask::MOVE_SELF
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
        by_dir.insert(
            dir.to_path_buf(),
            Watched {
                count: 1,
                wds,
                epoch: EPOCHS.fetch_add(1, Ordering::Relaxed),
                intact: true,
            },
        );
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
        let Some(w) = by_dir.get_mut(&self.dir) else {
            return;
        };
        w.count -= 1;
        if w.count > 0 {
            return;
        }
        if let Some(w) = by_dir.remove(&self.dir) {
            let mut watches = guard(&inotifier.watches);
            let mut by_wd = guard(&inotifier.by_wd);
            let mut expected = guard(&inotifier.expected);
            for wd in w.wds {
                by_wd.remove(&wd.get_watch_descriptor_id());
                expected.forget_wd(wd.get_watch_descriptor_id());
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
