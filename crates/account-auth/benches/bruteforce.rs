//! # Brute-force figures in real time (issue 4 point 8)
//!
//! `cargo bench -p account-auth --bench bruteforce` (about 30 s of attack).
//! Runs `Throttled<SqlAccounts>` exactly as the server wires it, default
//! [`ThrottleConfig`] and default argon2 parameters, on an SQLite file in a
//! temporary directory, on the real clock:
//!
//! 1. 20 parallel attacker tasks from one address, each guessing its own
//!    account (so only the per-address limit binds);
//! 2. 20 addresses, one task each, guessing one account;
//!
//! while the account's owner logs in with the right password every 500 ms
//! from an address where it logged in before, and once, during phase 2,
//! from an address never seen. It prints the password checks (verdicts) per
//! second per address and per account, the wrong answers the attackers got,
//! and the real user's login latency.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use account_auth::sql::{SqlAccounts, SqlOptions};
use account_auth::throttle::{ThrottleConfig, Throttled};
use account_auth::{Account, AuthError, Authenticator, LoginAttempt, Mechanism, Secret};

const PHASE_1: Duration = Duration::from_secs(12);
const PHASE_2: Duration = Duration::from_secs(16);
/// The free failures are a one-off burst; the sustained rate is measured after it.
const WARM_UP: Duration = Duration::from_secs(5);
/// When, in phase 2, the owner tries from a never-seen address.
const FRESH_AT: Duration = Duration::from_secs(6);
const VICTIM: &str = "victim@example.org";
const RIGHT: &str = "correct horse battery staple";

/// One password check that reached the account store.
#[derive(Debug, Clone)]
struct Verdict {
    at: Instant,
    peer: IpAddr,
    login: String,
}

/// Records every attempt the throttle lets through to the store.
struct Observed {
    inner: SqlAccounts,
    verdicts: Mutex<Vec<Verdict>>,
}

impl Authenticator for Observed {
    async fn authenticate(&self, attempt: &LoginAttempt) -> Result<Account, AuthError> {
        let result = self.inner.authenticate(attempt).await;
        if let Ok(mut v) = self.verdicts.lock() {
            v.push(Verdict {
                at: Instant::now(),
                peer: attempt.peer,
                login: attempt.login.clone(),
            });
        }
        result
    }
}

fn attempt(login: &str, password: &str, peer: IpAddr) -> LoginAttempt {
    LoginAttempt {
        login: login.to_owned(),
        password: Secret::new(password),
        peer,
        mechanism: Mechanism::ImapLogin,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

type Auth = Arc<Throttled<Observed>>;

/// What the attackers were told: (when, "wrong password" or "try later").
type Answers = Arc<Mutex<Vec<(Instant, bool)>>>;

/// Attackers: `(peer, login)` each, guessing until `until`. Returns the
/// tasks and the answers they got.
fn attack(
    auth: &Auth,
    targets: Vec<(IpAddr, String)>,
    until: Instant,
) -> (Vec<tokio::task::JoinHandle<()>>, Answers) {
    let answers: Answers = Arc::new(Mutex::new(Vec::new()));
    let tasks = targets
        .into_iter()
        .enumerate()
        .map(|(n, (peer, login))| {
            let (auth, answers) = (auth.clone(), answers.clone());
            tokio::spawn(async move {
                let mut guess = 0u64;
                while Instant::now() < until {
                    guess += 1;
                    let pw = format!("guess-{n}-{guess}");
                    let r = auth.authenticate(&attempt(&login, &pw, peer)).await;
                    if let Ok(mut a) = answers.lock() {
                        a.push((Instant::now(), matches!(r, Err(AuthError::Failed))));
                    }
                }
            })
        })
        .collect();
    (tasks, answers)
}

/// The real user, every 500 ms from `home`, until `until`. Latencies in ms
/// (a refusal counts as a failed login).
async fn real_user(auth: Auth, home: IpAddr, until: Instant) -> (Vec<f64>, usize) {
    let (mut latencies, mut failures) = (Vec::new(), 0);
    while Instant::now() < until {
        let t = Instant::now();
        match auth.authenticate(&attempt(VICTIM, RIGHT, home)).await {
            Ok(_) => latencies.push(t.elapsed().as_secs_f64() * 1000.0),
            Err(_) => failures += 1,
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    (latencies, failures)
}

fn describe_latency(label: &str, mut ms: Vec<f64>, failures: usize) {
    ms.sort_by(f64::total_cmp);
    if ms.is_empty() {
        println!("{label}: no successful login ({failures} failed)");
        return;
    }
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    println!(
        "{label}: {} logins, {failures} failed; latency min {:.0} ms, median {:.0} ms, p95 {:.0} ms, max {:.0} ms",
        ms.len(),
        at(0.0),
        at(0.5),
        at(0.95),
        at(1.0)
    );
}

/// Count and rate over the whole window, and the sustained rate after the
/// warm-up measured by spacing: (n - 1) / (last - first), so a short window
/// does not count a fencepost as a rate.
fn rates(times: &[Instant], start: Instant, length: Duration) -> (usize, f64, String) {
    let total = times.len();
    let mut steady: Vec<Instant> = times
        .iter()
        .copied()
        .filter(|t| *t >= start + WARM_UP)
        .collect();
    steady.sort();
    let sustained = match (steady.first(), steady.last()) {
        (Some(a), Some(b)) if steady.len() > 1 => format!(
            "{:.2}/s ({} checks {:.1} s apart on average)",
            (steady.len() - 1) as f64 / (*b - *a).as_secs_f64(),
            steady.len(),
            (*b - *a).as_secs_f64() / (steady.len() - 1) as f64
        ),
        _ => format!(
            "{} check(s) in the last {:.0} s",
            steady.len(),
            (length - WARM_UP).as_secs_f64()
        ),
    };
    (total, total as f64 / length.as_secs_f64(), sustained)
}

/// "wrong password" and "try later" answers, and their rates.
fn answered(answers: &Answers, start: Instant, length: Duration) -> String {
    let mut a = answers.lock().map(|a| a.clone()).unwrap_or_default();
    a.retain(|(at, _)| *at < start + length);
    let wrong = a.iter().filter(|(_, w)| *w).count();
    let later = a.len() - wrong;
    let secs = length.as_secs_f64();
    format!(
        "{wrong} \"wrong password\" ({:.2}/s), {later} \"try again later\" ({:.2}/s), each after >= 2 s",
        wrong as f64 / secs,
        later as f64 / secs
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    let db = SqlAccounts::connect_with(&url, SqlOptions::default()).await?;
    db.migrate().await?;
    db.add_user(VICTIM, &Secret::new(RIGHT)).await?;
    for i in 0..20 {
        db.add_user(&format!("user{i}@example.org"), &Secret::new(RIGHT))
            .await?;
    }
    let config = ThrottleConfig::default();
    println!(
        "Throttled<SqlAccounts>, SQLite file, argon2id m=19456 KiB t=2 p=1, {} hash slot(s), \
         ThrottleConfig::default() ({config:?})",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let auth: Auth = Arc::new(Throttled::new(
        Observed {
            inner: db,
            verdicts: Mutex::new(Vec::new()),
        },
        config,
    ));
    let home = ip("198.51.100.7");
    // The owner has logged in from home before the attack starts.
    let t = Instant::now();
    auth.authenticate(&attempt(VICTIM, RIGHT, home))
        .await
        .map_err(|e| format!("first login: {e}"))?;
    println!(
        "single login, idle server: {:.0} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );

    // Phase 1: 20 connections from one address, each on its own account.
    let attacker = ip("203.0.113.1");
    let start1 = Instant::now();
    let end1 = start1 + PHASE_1;
    let targets = (0..20)
        .map(|i| (attacker, format!("user{i}@example.org")))
        .collect();
    let (tasks, answers1) = attack(&auth, targets, end1);
    let user1 = tokio::spawn(real_user(auth.clone(), home, end1));
    tokio::time::sleep_until(end1.into()).await;
    for t in &tasks {
        t.abort();
    }
    let (lat1, fail1) = user1.await?;

    // Phase 2: 20 addresses on one account.
    let start2 = Instant::now();
    let end2 = start2 + PHASE_2;
    let peers: Vec<IpAddr> = (0..20)
        .map(|i| ip(&format!("203.0.113.{}", 101 + i)))
        .collect();
    let targets = peers.iter().map(|p| (*p, VICTIM.to_owned())).collect();
    let (tasks, answers2) = attack(&auth, targets, end2);
    let user2 = tokio::spawn(real_user(auth.clone(), home, end2));
    tokio::time::sleep(FRESH_AT).await;
    let fresh = tokio::spawn({
        let auth = auth.clone();
        async move {
            let t = Instant::now();
            let r = auth
                .authenticate(&attempt(VICTIM, RIGHT, ip("192.0.2.200")))
                .await;
            (r, t.elapsed().as_secs_f64() * 1000.0)
        }
    });
    tokio::time::sleep_until(end2.into()).await;
    for t in &tasks {
        t.abort();
    }
    let (lat2, fail2) = user2.await?;
    let (fresh, fresh_ms) = fresh.await?;

    let verdicts = auth
        .inner()
        .verdicts
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default();
    let from_attacker: Vec<Instant> = verdicts
        .iter()
        .filter(|v| v.peer == attacker && v.at < end1)
        .map(|v| v.at)
        .collect();
    let on_victim: Vec<Instant> = verdicts
        .iter()
        .filter(|v| v.login == VICTIM && peers.contains(&v.peer) && v.at >= start2 && v.at < end2)
        .map(|v| v.at)
        .collect();

    println!();
    println!("phase 1: 20 parallel connections from one address, {PHASE_1:?}");
    let (n, all, steady) = rates(&from_attacker, start1, PHASE_1);
    println!("  password checks for the address: {n} ({all:.2}/s overall) [target <= 1/s]");
    println!("  sustained, after the first {WARM_UP:?}: {steady}");
    println!("  answers: {}", answered(&answers1, start1, PHASE_1));
    describe_latency("  real user from a known address", lat1, fail1);

    println!("phase 2: 20 addresses, one connection each, one account, {PHASE_2:?}");
    let (n, all, steady) = rates(&on_victim, start2, PHASE_2);
    println!("  password checks on the account: {n} ({all:.2}/s overall) [target <= 0.2/s]");
    println!("  sustained, after the first {WARM_UP:?}: {steady}");
    println!("  answers: {}", answered(&answers2, start2, PHASE_2));
    describe_latency("  real user from a known address", lat2, fail2);
    println!(
        "  real user from a never-seen address, {FRESH_AT:?} into the attack: {} after {fresh_ms:.0} ms",
        match fresh {
            Ok(_) => "logged in".to_owned(),
            Err(e) => format!("refused ({e})"),
        }
    );
    println!();
    println!("counters: {:?}", auth.counters().snapshot());
    Ok(())
}
