//! # The bounded pool password hashing runs on
//!
//! One argon2id verification with the default parameters holds ~19 MiB and a
//! core for ~20 ms. Running it on the reactor would stall every session;
//! running it on tokio's blocking pool unbounded would let a login flood grow
//! memory without limit. [`HashPool`] admits at most N jobs at a time (N = the
//! number of cores by default) and runs them on N threads of its own. The
//! permit is moved into the job, so it is released only when the hashing has
//! really finished, even if the caller stopped waiting.
//!
//! Why its own threads and not tokio's blocking pool: glibc keeps freed
//! memory in per-thread arenas (and raises its mmap threshold past 19 MiB
//! after the first free), so 19 MiB verifications spread over a changing set
//! of blocking-pool threads left ~19 MiB behind per thread, for good — the
//! abuse suite saw +230 MiB after 30 logins. N fixed threads bound that to N
//! arenas. Each thread also keeps one argon2 block buffer for all its jobs
//! (see [`crate::password`]), so a login allocates nothing big at all: the
//! pool holds at most N × the configured memory cost, for good, and no more.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::AuthError;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A bounded pool for CPU- and memory-heavy hashing work.
#[derive(Debug, Clone)]
pub struct HashPool {
    permits: Arc<Semaphore>,
    size: usize,
    /// Jobs for the pool's threads; they end when the last clone is dropped.
    jobs: std::sync::mpsc::SyncSender<Job>,
}

impl HashPool {
    /// A pool running at most `size` jobs at once (at least one), on `size`
    /// threads of its own.
    pub fn new(size: usize) -> Self {
        let size = size.max(1);
        // The semaphore admits at most `size` jobs, so the queue never holds more.
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(size);
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for i in 0..size {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("coffre-hash-{i}"))
                .spawn(move || {
                    // One argon2 block buffer per thread, reused by every job.
                    crate::password::keep_argon2_memory_on_this_thread();
                    loop {
                        let job = match queue.lock() {
                            Ok(q) => q.recv(),
                            Err(poisoned) => poisoned.into_inner().recv(),
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        HashPool {
            permits: Arc::new(Semaphore::new(size)),
            size,
            jobs,
        }
    }

    /// A pool with one slot per available core.
    pub fn per_core() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
    }

    /// How many jobs may run at once.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Slots free right now.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }

    /// Runs `job` on the blocking pool once a slot is free.
    pub async fn run<R, F>(&self, job: F) -> Result<R, AuthError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| AuthError::Unavailable("hash pool closed".into()))?;
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // A panicking hash (a bug) must not take the worker thread down.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            // The slot is free before the caller hears the job is done.
            drop(permit);
            let _ = done.send(r.map_err(|_| ()));
        });
        self.jobs
            .send(job)
            .map_err(|_| AuthError::Unavailable("hash pool stopped".into()))?;
        match result.await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(())) => Err(AuthError::Unavailable("hash job panicked".into())),
            Err(_) => Err(AuthError::Unavailable("hash job lost".into())),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn never_runs_more_than_its_size() {
        let pool = HashPool::new(2);
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut jobs = Vec::new();
        for _ in 0..12 {
            let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
            jobs.push(tokio::spawn(async move {
                pool.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    // Give a second job the chance to start alongside (on a
                    // loaded machine the other pool thread may be slow to
                    // run); bounded, so a pool of one would still finish.
                    let deadline = std::time::Instant::now() + Duration::from_secs(2);
                    while peak.load(Ordering::SeqCst) < 2 && std::time::Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            }));
        }
        for j in jobs {
            j.await.unwrap().unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        assert_eq!(pool.available(), 2);
    }

    #[tokio::test]
    async fn a_cancelled_caller_keeps_the_slot_until_the_job_ends() {
        let pool = HashPool::new(1);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let p = pool.clone();
        let waiter = tokio::spawn(async move { p.run(move || rx.recv().ok()).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        waiter.abort();
        let _ = waiter.await;
        assert_eq!(
            pool.available(),
            0,
            "the job still runs, so its slot is still taken"
        );
        tx.send(()).unwrap();
        for _ in 0..100 {
            if pool.available() == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("slot not released after the job finished");
    }

    #[tokio::test]
    async fn pool_threads_reuse_one_bounded_argon2_buffer() {
        use crate::Secret;
        use crate::password::{
            Argon2Params, argon2_memory_kept_on_this_thread, hash_password, verify_with,
        };
        let target = Argon2Params {
            m_cost_kib: 64,
            t_cost: 1,
            p_cost: 1,
        };
        let pool = HashPool::new(1);
        let pw = Secret::new("hunter2".to_string());
        let small = pool
            .run({
                let pw = pw.clone();
                move || hash_password(&pw, &target).unwrap()
            })
            .await
            .unwrap();
        // Bigger than the configured cost but within the default one: kept.
        let default_cost = Argon2Params {
            m_cost_kib: 1024,
            ..target
        };
        let medium = hash_password(&pw, &default_cost).unwrap();
        // Above what a kept buffer may grow to: computed in a one-off buffer.
        let big_cost = Argon2Params {
            m_cost_kib: Argon2Params::default().m_cost_kib + 1024,
            ..target
        };
        let big = hash_password(&pw, &big_cost).unwrap();
        assert_eq!(argon2_memory_kept_on_this_thread(), 0, "not a pool thread");
        let kept = pool
            .run(move || {
                let mut kept = Vec::new();
                for h in [&small, &medium, &small, &big] {
                    let v = verify_with(&pw, h, &target);
                    assert!(v.ok && v.problem.is_none(), "{h}: {v:?}");
                    let wrong = verify_with(&Secret::new("nope".to_string()), h, &target);
                    assert!(!wrong.ok && wrong.problem.is_none(), "{h}: {wrong:?}");
                    kept.push(argon2_memory_kept_on_this_thread());
                }
                kept
            })
            .await
            .unwrap();
        assert_eq!(kept[0], 64 * 1024, "sized for the configured cost");
        assert_eq!(
            kept[1],
            1024 * 1024,
            "grown for a hash within the default cost"
        );
        assert_eq!(kept[2], 1024 * 1024, "reused, not shrunk nor reallocated");
        assert_eq!(kept[3], 1024 * 1024, "a costlier hash does not grow it");
    }

    #[test]
    fn size_is_at_least_one() {
        assert_eq!(HashPool::new(0).size(), 1);
        assert!(HashPool::per_core().size() >= 1);
    }
}
