//! # Audit counters: how many logins ended how
//!
//! [`AuthCounters`] counts every answer the front-door authenticator
//! ([`crate::throttle::Throttled`]) gives, by result class: success, failed
//! (wrong password, unknown or disabled account, unusable hash), malformed
//! (refused before hashing), unavailable (database down, no verdict) and
//! throttled (refused by throttling without a check). Plain atomics, so a
//! metrics exporter can read them at any time with [`AuthCounters::snapshot`]
//! without a lock. The per-attempt audit lines are `tracing` events
//! (target `coffre::auth`), written where the verdict is made.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Account, AuthError};

/// Counters by result class. Monotonic; they wrap only after 2^64 logins.
#[derive(Debug, Default)]
pub struct AuthCounters {
    success: AtomicU64,
    failed: AtomicU64,
    malformed: AtomicU64,
    unavailable: AtomicU64,
    throttled: AtomicU64,
}

/// A copy of [`AuthCounters`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthCounts {
    /// Logins that succeeded.
    pub success: u64,
    /// Checked and refused: wrong password, unknown or disabled account, bad hash.
    pub failed: u64,
    /// Refused before any hashing (empty, over-long, invalid credentials).
    pub malformed: u64,
    /// No verdict: the account store was unreachable.
    pub unavailable: u64,
    /// Refused by throttling without checking the password.
    pub throttled: u64,
}

impl AuthCounts {
    /// All attempts counted.
    pub fn total(&self) -> u64 {
        self.success
            .wrapping_add(self.failed)
            .wrapping_add(self.malformed)
            .wrapping_add(self.unavailable)
            .wrapping_add(self.throttled)
    }
}

impl AuthCounters {
    /// All zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one answer by its result.
    pub fn record(&self, result: &Result<Account, AuthError>) {
        let counter = match result {
            Ok(_) => &self.success,
            Err(AuthError::Failed) => &self.failed,
            Err(AuthError::Malformed(_)) => &self.malformed,
            Err(AuthError::Unavailable(_)) => &self.unavailable,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one attempt refused by throttling.
    pub fn record_throttled(&self) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
    }

    /// The current values. Each is read atomically; the set is not one
    /// transaction, which is fine for metrics.
    pub fn snapshot(&self) -> AuthCounts {
        AuthCounts {
            success: self.success.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            unavailable: self.unavailable.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_result_has_its_counter() {
        let c = AuthCounters::new();
        let account = Account {
            login: "a@example.org".into(),
            mail_location: None,
            quota_bytes: None,
            quota_messages: None,
        };
        c.record(&Ok(account));
        c.record(&Err(AuthError::Failed));
        c.record(&Err(AuthError::Failed));
        c.record(&Err(AuthError::Malformed("empty login")));
        c.record(&Err(AuthError::Unavailable("down".into())));
        c.record_throttled();
        let s = c.snapshot();
        assert_eq!(
            s,
            AuthCounts {
                success: 1,
                failed: 2,
                malformed: 1,
                unavailable: 1,
                throttled: 1,
            }
        );
        assert_eq!(s.total(), 6);
    }

    #[test]
    fn counting_from_many_threads_loses_nothing() {
        let c = std::sync::Arc::new(AuthCounters::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.record(&Err(AuthError::Failed));
                    }
                })
            })
            .collect();
        for t in threads {
            assert!(t.join().is_ok());
        }
        assert_eq!(c.snapshot().failed, 4000);
    }
}
