//! The change feed behind IMAP IDLE (RFC 2177) and untagged updates: a
//! session asks its open folder for a [`ChangeWatcher`] and awaits
//! [`ChangeWatcher::changed`], which resolves when the folder may have
//! changed (new mail, expunges, flag changes — by another session, another
//! process, or an MTA). The session then calls [`crate::Mailbox::sync`] to
//! learn what changed.
//!
//! Contract (what sessions may rely on):
//! - A change made after the mailbox's last `sync` (or open) makes the
//!   watcher resolve, even if the change happened before the watcher was
//!   created: the watcher starts from the state of the last sync.
//! - Wake-ups may be spurious (the session's own changes, a change that
//!   `sync` then finds cancelled out): `sync` returning no changes is normal.
//! - Once resolved, the next `changed()` waits for a further change.
//! - Dropping the future of `changed()` is safe (cancel-safe): nothing is
//!   lost, the next call resolves for the same change.
//!
//! [`ChangeSignal`] is a runtime-neutral building block for backends: a
//! version counter that wakes every waiter when bumped.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// Where a watcher's wake-ups come from; implemented by each backend.
pub trait ChangeSource: Send + 'static {
    /// `Ready` when the folder may have changed since the last `Ready`
    /// (or since the mailbox's last sync, for the first call); otherwise
    /// `Pending`, with `cx`'s waker registered.
    fn poll_changed(&mut self, cx: &mut Context<'_>) -> Poll<()>;
}

/// Waits for changes of one open folder. Obtained from
/// [`crate::Mailbox::watch`]; owned by the session (no borrow of the mailbox),
/// so the session can call `sync` while it holds a watcher.
pub struct ChangeWatcher {
    source: Mutex<Box<dyn ChangeSource>>,
}

impl ChangeWatcher {
    /// Wraps a backend's source.
    pub fn new(source: impl ChangeSource) -> Self {
        Self {
            source: Mutex::new(Box::new(source)),
        }
    }

    /// Resolves when the folder may have changed; see the module docs.
    pub fn changed(&mut self) -> impl Future<Output = ()> + Send + '_ {
        let source = self
            .source
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        std::future::poll_fn(move |cx| source.poll_changed(cx))
    }
}

impl fmt::Debug for ChangeWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChangeWatcher")
    }
}

/// A version counter shared by a folder's writers and watchers: writers
/// [`bump`](ChangeSignal::bump) it, watchers compare with the version they
/// saw last. No runtime needed.
#[derive(Debug, Clone, Default)]
pub struct ChangeSignal {
    inner: Arc<Mutex<SignalState>>,
}

#[derive(Debug, Default)]
struct SignalState {
    version: u64,
    waiters: Vec<Waker>,
}

impl ChangeSignal {
    /// A new signal at version 0.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, SignalState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current version.
    pub fn version(&self) -> u64 {
        self.state().version
    }

    /// Records a change and wakes every waiter.
    pub fn bump(&self) {
        let waiters = {
            let mut state = self.state();
            state.version = state.version.wrapping_add(1);
            std::mem::take(&mut state.waiters)
        };
        for waker in waiters {
            waker.wake();
        }
    }

    /// `Ready(new version)` if the version differs from `seen`, else
    /// registers the waker and returns `Pending`.
    pub fn poll_since(&self, seen: u64, cx: &mut Context<'_>) -> Poll<u64> {
        let mut state = self.state();
        if state.version != seen {
            return Poll::Ready(state.version);
        }
        if !state.waiters.iter().any(|w| w.will_wake(cx.waker())) {
            state.waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// A watcher source that resolves whenever the version moves past `seen`.
    pub fn source(&self, seen: u64) -> SignalSource {
        SignalSource {
            signal: self.clone(),
            seen,
        }
    }
}

/// A [`ChangeSource`] driven by a [`ChangeSignal`] alone (in-process changes).
#[derive(Debug)]
pub struct SignalSource {
    signal: ChangeSignal,
    seen: u64,
}

impl ChangeSource for SignalSource {
    fn poll_changed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self.signal.poll_since(self.seen, cx) {
            Poll::Ready(version) => {
                self.seen = version;
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct CountingWaker(AtomicUsize);
    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn watcher_resolves_once_per_change_and_wakes_waiters() {
        let signal = ChangeSignal::new();
        let mut watcher = ChangeWatcher::new(signal.source(signal.version()));
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&counter));
        let mut cx = Context::from_waker(&waker);
        {
            let mut fut = pin!(watcher.changed());
            assert!(fut.as_mut().poll(&mut cx).is_pending());
            signal.bump();
            assert_eq!(counter.0.load(Ordering::SeqCst), 1, "waiter woken");
            assert!(fut.as_mut().poll(&mut cx).is_ready());
        }
        // The same change is not reported twice.
        let mut fut = pin!(watcher.changed());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
    }

    #[test]
    fn a_change_before_the_first_poll_is_not_lost() {
        let signal = ChangeSignal::new();
        let seen = signal.version();
        signal.bump();
        let mut watcher = ChangeWatcher::new(signal.source(seen));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(pin!(watcher.changed()).poll(&mut cx).is_ready());
    }
}
