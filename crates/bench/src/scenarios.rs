//! The load scenarios: `idle`, `login`, `sync`, `pop3`, `mixed`. Each is
//! bounded by a session count or a deadline and returns a [`Report`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::corpus;
use crate::imap::{ImapClient, parse_exists};
use crate::memory::MemoryProbe;
use crate::pop3::Pop3Client;
use crate::report::Report;
use crate::stats::Latencies;
use crate::target::UserPattern;
use crate::tls::Endpoint;

/// Most sessions the idle scenario opens.
pub const MAX_SESSIONS: usize = 10_000;
/// Longest run of the timed scenarios.
pub const MAX_DURATION: Duration = Duration::from_secs(600);
/// Most concurrent workers.
pub const MAX_WORKERS: usize = 1_000;

/// What every scenario needs.
#[derive(Clone)]
pub struct Common {
    pub endpoint: Endpoint,
    pub users: UserPattern,
    pub password: String,
    pub timeout: Duration,
}

fn mib_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / secs.max(1e-9)
}

async fn logged_in(c: &Common, i: usize) -> anyhow::Result<ImapClient> {
    let mut client = ImapClient::connect(&c.endpoint, c.timeout).await?;
    client.login(&c.users.login_for(i), &c.password).await?;
    Ok(client)
}

/// Parameters of the idle scenario.
pub struct IdleArgs {
    pub sessions: usize,
    pub concurrency: usize,
    pub memory: MemoryProbe,
    pub deliver_to: Option<PathBuf>,
    pub settle: Duration,
    /// Sessions set up before the "warm" memory reading; the marginal cost
    /// per session is measured over the others, so one-time costs of the
    /// first logins (password hashing buffers, the folder's shared index,
    /// runtime and allocator warm-up) are not spread over the sessions.
    pub warmup: usize,
}

/// N sessions LOGIN, SELECT INBOX, IDLE; PSS per session; then one delivery
/// and the time until every session saw EXISTS.
pub async fn idle(c: &Common, a: IdleArgs) -> anyhow::Result<Report> {
    if a.sessions == 0 || a.sessions > MAX_SESSIONS {
        anyhow::bail!("--sessions must be in 1..={MAX_SESSIONS}");
    }
    // At most half the sessions warm up, so that a small run still measures.
    let warmup = a.warmup.min(a.sessions / 2);
    let (pss_before, procs_before) = a.memory.total_kib();
    let gate = Arc::new(Semaphore::new(a.concurrency.clamp(1, MAX_WORKERS)));
    let setup_start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<anyhow::Result<()>>(a.sessions);
    let (go_tx, _) = tokio::sync::broadcast::channel::<Instant>(1);
    let (mut ok, mut failed, mut first_error) = (0usize, 0usize, None);
    let mut record = |r: anyhow::Result<()>, ok: &mut usize| match r {
        Ok(()) => *ok += 1,
        Err(e) => {
            failed += 1;
            first_error.get_or_insert_with(|| e.to_string());
        }
    };
    let mut warm = None;
    for i in 0..a.sessions {
        if i == warmup && warmup > 0 {
            // Every warm-up session reports exactly once (tasks keep
            // running, so count reports instead of waiting for a close).
            for _ in 0..warmup {
                let Some(r) = ready_rx.recv().await else {
                    break;
                };
                record(r, &mut ok);
            }
            tokio::time::sleep(a.settle).await;
            warm = Some((a.memory.total_kib().0, ok));
        }
        let c = c.clone();
        let gate = gate.clone();
        let ready = ready_tx.clone();
        let mut go = go_tx.subscribe();
        tasks.spawn(async move {
            let setup = async {
                let _permit = gate.acquire().await?;
                let mut client = logged_in(&c, i).await?;
                let exists = client.select("INBOX").await?;
                client.idle_start().await?;
                anyhow::Ok((client, exists))
            }
            .await;
            let (mut client, exists) = match setup {
                Ok(v) => {
                    let _ = ready.send(Ok(())).await;
                    v
                }
                Err(e) => {
                    let _ = ready.send(Err(e)).await;
                    return None;
                }
            };
            let delivered = go.recv().await.ok()?;
            let wait = Duration::from_secs(30);
            loop {
                let line = client.read_line_within(wait).await.ok()?;
                if parse_exists(&line).is_some_and(|n| n > exists) {
                    return Some(delivered.elapsed());
                }
            }
        });
    }
    drop(ready_tx);
    // Every task reports exactly once; tasks keep running, so count reports
    // instead of waiting for the channel to close.
    let reported = if warm.is_some() { warmup } else { 0 };
    for _ in reported..a.sessions {
        let Some(r) = ready_rx.recv().await else {
            break;
        };
        record(r, &mut ok);
    }
    let setup_secs = setup_start.elapsed().as_secs_f64();
    tokio::time::sleep(a.settle).await;
    let (pss_after, procs_after) = a.memory.total_kib();
    let mut r = Report::new("idle");
    r.num("sessions_ok", ok as f64);
    r.num("sessions_failed", failed as f64);
    if let Some(e) = &first_error {
        r.text("first_error", e);
    }
    r.num("setup_secs", setup_secs);
    if a.memory.is_configured() {
        r.num("pss_before_kib", pss_before as f64);
        r.num("pss_after_kib", pss_after as f64);
        r.num("processes_before", procs_before as f64);
        r.num("processes_after", procs_after as f64);
        let per = pss_after.saturating_sub(pss_before) as f64 / ok.max(1) as f64;
        r.num("pss_per_session_incl_first_kib", per);
        match warm {
            Some((pss_warm, ok_warm)) => {
                r.num("warmup_sessions", ok_warm as f64);
                r.num("pss_warm_kib", pss_warm as f64);
                let more = ok.saturating_sub(ok_warm).max(1) as f64;
                let marginal = pss_after.saturating_sub(pss_warm) as f64 / more;
                r.num("pss_per_session_kib", marginal);
            }
            None => r.num("pss_per_session_kib", per),
        }
    }
    if let Some(dir) = a.deliver_to {
        // `--deliver-to DIR/new`: the Maildir is the parent of `new`.
        let maildir = if dir.ends_with("new") {
            dir.parent().map(PathBuf::from).unwrap_or(dir)
        } else {
            dir
        };
        let name = format!(
            "{}.M0P{}.coffre-bench-idle",
            1_790_000_000u64,
            std::process::id()
        );
        let msg = corpus::message(7, 0);
        let start = Instant::now();
        corpus::deliver(&maildir, &name, &msg)?;
        let _ = go_tx.send(start);
        let mut seen = Vec::new();
        let mut missed = 0usize;
        while let Some(res) = tasks.join_next().await {
            match res {
                Ok(Some(d)) => seen.push(d),
                _ => missed += 1,
            }
        }
        let lat = Latencies::new(seen);
        r.num("notified", lat.len() as f64);
        r.num("not_notified", missed.saturating_sub(failed) as f64);
        r.num("notify_p50_ms", lat.ms(0.5));
        r.num("notify_p99_ms", lat.ms(0.99));
        r.num(
            "notify_max_ms",
            lat.max().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        );
    } else {
        tasks.abort_all();
    }
    Ok(r)
}

/// Handshake + LOGIN + LOGOUT with `workers` for `duration`.
pub async fn login(c: &Common, workers: usize, duration: Duration) -> anyhow::Result<Report> {
    if workers == 0 || workers > MAX_WORKERS {
        anyhow::bail!("--workers must be in 1..={MAX_WORKERS}");
    }
    if duration.is_zero() || duration > MAX_DURATION {
        anyhow::bail!("--seconds must be in 1..={}", MAX_DURATION.as_secs());
    }
    let deadline = Instant::now() + duration;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers {
        let c = c.clone();
        tasks.spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut i = w;
            while Instant::now() < deadline {
                let t = Instant::now();
                let attempt = async {
                    let mut client = logged_in(&c, i).await?;
                    client.logout().await
                }
                .await;
                match attempt {
                    Ok(()) => lat.push(t.elapsed()),
                    Err(_) => errors += 1,
                }
                i += workers;
            }
            (lat, errors)
        });
    }
    let mut all = Vec::new();
    let mut errors = 0;
    while let Some(res) = tasks.join_next().await {
        let (lat, e) = res?;
        all.extend(lat);
        errors += e;
    }
    let secs = start.elapsed().as_secs_f64();
    let lat = Latencies::new(all);
    let mut r = Report::new("login");
    r.num("workers", workers as f64);
    r.num("logins", lat.len() as f64);
    r.num("errors", errors as f64);
    r.num("logins_per_s", lat.len() as f64 / secs);
    r.num("latency_p50_ms", lat.ms(0.5));
    r.num("latency_p90_ms", lat.ms(0.9));
    r.num("latency_p99_ms", lat.ms(0.99));
    let bound = argon2_per_second(Duration::from_secs(2))?;
    r.num("argon2id_verifications_per_s", bound);
    r.num(
        "ratio_to_argon2_bound",
        lat.len() as f64 / secs / bound.max(1e-9),
    );
    Ok(r)
}

/// argon2id (m=19456 KiB, t=2, p=1) hashes per second on all cores.
pub fn argon2_per_second(window: Duration) -> anyhow::Result<f64> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || -> anyhow::Result<u64> {
                let params = argon2::Params::new(19_456, 2, 1, Some(32))
                    .map_err(|e| anyhow::anyhow!("argon2 params: {e}"))?;
                let hasher = argon2::Argon2::new(
                    argon2::Algorithm::Argon2id,
                    argon2::Version::V0x13,
                    params,
                );
                let mut out = [0u8; 32];
                let mut n = 0u64;
                let begin = Instant::now();
                // Bounded: at most 10,000 hashes per thread.
                while begin.elapsed() < window && n < 10_000 {
                    hasher
                        .hash_password_into(
                            b"correct horse battery staple",
                            b"coffre-bench-salt",
                            &mut out,
                        )
                        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
                    n += 1;
                }
                Ok(n)
            })
        })
        .collect();
    let mut total = 0;
    for h in handles {
        total += h
            .join()
            .map_err(|_| anyhow::anyhow!("argon2 thread panicked"))??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// First sync: metadata FETCH of all, then BODY.PEEK[] of all.
pub async fn sync(c: &Common) -> anyhow::Result<Report> {
    let mut client = logged_in(c, 0).await?;
    let exists = client.select("INBOX").await?;
    if exists == 0 {
        anyhow::bail!("INBOX is empty; seed it with `coffre-bench corpus`");
    }
    let t = Instant::now();
    let meta = client
        .command_ok("UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)")
        .await?;
    let meta_secs = t.elapsed().as_secs_f64();
    let meta_n = meta
        .untagged
        .iter()
        .filter(|l| l.contains(" FETCH "))
        .count() as u64;
    let t = Instant::now();
    let body = client.command_ok("UID FETCH 1:* (BODY.PEEK[])").await?;
    let body_secs = t.elapsed().as_secs_f64();
    let body_n = body
        .untagged
        .iter()
        .filter(|l| l.contains(" FETCH "))
        .count() as u64;
    client.logout().await?;
    let mut r = Report::new("sync");
    r.num("messages", exists as f64);
    r.num("metadata_fetched", meta_n as f64);
    r.num("metadata_secs", meta_secs);
    r.num("metadata_msgs_per_s", meta_n as f64 / meta_secs.max(1e-9));
    r.num("bodies_fetched", body_n as f64);
    r.num("body_bytes", body.literal_bytes as f64);
    r.num("body_secs", body_secs);
    r.num("body_msgs_per_s", body_n as f64 / body_secs.max(1e-9));
    r.num("body_mib_per_s", mib_per_s(body.literal_bytes, body_secs));
    if meta_n != exists || body_n != exists {
        r.text("check", "FAILED: fetched count differs from EXISTS");
    } else {
        r.text("check", "ok");
    }
    Ok(r)
}

/// POP3: STAT, UIDL, RETR all, QUIT.
pub async fn pop3(c: &Common) -> anyhow::Result<Report> {
    let mut client = Pop3Client::connect(&c.endpoint, c.timeout).await?;
    client.login(&c.users.login_for(0), &c.password).await?;
    let t = Instant::now();
    let (count, octets) = client.stat().await?;
    client.command("UIDL").await?;
    let (uidl, _, uidl_lines) = client.read_multiline().await?;
    let mut bytes = 0u64;
    for i in 1..=count {
        client.command(&format!("RETR {i}")).await?;
        let (_, b, _) = client.read_multiline().await?;
        bytes += b;
    }
    let secs = t.elapsed().as_secs_f64();
    client.command("QUIT").await?;
    let mut r = Report::new("pop3");
    r.num("messages", count as f64);
    r.num("stat_octets", octets as f64);
    r.num("retr_bytes", bytes as f64);
    r.num("secs", secs);
    r.num("msgs_per_s", count as f64 / secs.max(1e-9));
    r.num("mib_per_s", mib_per_s(bytes, secs));
    let ok =
        uidl_lines as u64 == count && uidl.iter().all(|l| l.split(|b| *b == b' ').count() == 2);
    r.text(
        "check",
        if ok {
            "ok"
        } else {
            "FAILED: UIDL listing does not match STAT"
        },
    );
    Ok(r)
}

/// One cycle of the mixed scenario; returns the number of operations done.
async fn mixed_cycle(client: &mut ImapClient, seq: u64) -> anyhow::Result<u64> {
    let exists = client.select("INBOX").await?;
    let flags = client.command_ok("FETCH 1:* (UID FLAGS)").await?;
    let n = flags
        .untagged
        .iter()
        .filter(|l| l.contains(" FETCH "))
        .count() as u64;
    if n != exists {
        anyhow::bail!("FETCH returned {n} messages, EXISTS said {exists}");
    }
    if exists > 0 {
        let body = client
            .command_ok(&format!("FETCH {} (BODY.PEEK[])", 1 + seq % exists))
            .await?;
        if body.literals != 1 {
            anyhow::bail!("BODY.PEEK[] returned {} literals", body.literals);
        }
    }
    let msg = corpus::message(seq, seq);
    let uid = match client.append("INBOX", "\\Seen", &msg).await? {
        Some(uid) => uid,
        None => anyhow::bail!("APPEND without APPENDUID (UIDPLUS required)"),
    };
    let stored = client
        .command_ok(&format!("UID STORE {uid} +FLAGS (\\Flagged \\Deleted)"))
        .await?;
    if !stored.untagged.iter().any(|l| l.contains("\\Deleted")) {
        anyhow::bail!("STORE response did not show \\Deleted");
    }
    let expunged = client.command_ok(&format!("UID EXPUNGE {uid}")).await?;
    if !expunged.untagged.iter().any(|l| l.ends_with(" EXPUNGE")) {
        anyhow::bail!("UID EXPUNGE did not report an EXPUNGE");
    }
    let tag = client.idle_start().await?;
    tokio::time::sleep(Duration::from_millis(20)).await;
    client.idle_done(&tag).await?;
    Ok(7 + u64::from(exists > 0))
}

/// Many clients doing select, fetch, append, store, expunge, idle.
pub async fn mixed(c: &Common, clients: usize, duration: Duration) -> anyhow::Result<Report> {
    if clients == 0 || clients > MAX_WORKERS {
        anyhow::bail!("--clients must be in 1..={MAX_WORKERS}");
    }
    // Checks compare FETCH counts with EXISTS, so no two clients may share a mailbox.
    if clients > c.users.users() as usize {
        anyhow::bail!("mixed needs one account per client: --users must be >= --clients");
    }
    if duration.is_zero() || duration > MAX_DURATION {
        anyhow::bail!("--seconds must be in 1..={}", MAX_DURATION.as_secs());
    }
    let deadline = Instant::now() + duration;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..clients {
        let c = c.clone();
        tasks.spawn(async move {
            let mut ops = 0u64;
            let mut errors = 0u64;
            let mut first_error = None;
            let mut seq = (w as u64) << 32;
            let mut client = None;
            while Instant::now() < deadline {
                if client.is_none() {
                    match logged_in(&c, w).await {
                        Ok(cl) => {
                            ops += 1;
                            client = Some(cl);
                        }
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert(e.to_string());
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    }
                }
                let Some(cl) = client.as_mut() else { continue };
                seq += 1;
                match mixed_cycle(cl, seq).await {
                    Ok(n) => ops += n,
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e.to_string());
                        client = None;
                    }
                }
            }
            if let Some(mut cl) = client {
                let _ = cl.logout().await;
            }
            (ops, errors, first_error)
        });
    }
    let mut ops = 0;
    let mut errors = 0;
    let mut first_error = None;
    while let Some(res) = tasks.join_next().await {
        let (o, e, f) = res?;
        ops += o;
        errors += e;
        if first_error.is_none() {
            first_error = f;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let mut r = Report::new("mixed");
    r.num("clients", clients as f64);
    r.num("ops", ops as f64);
    r.num("errors", errors as f64);
    r.num("ops_per_s", ops as f64 / secs);
    if let Some(e) = first_error {
        r.text("first_error", &e);
    }
    Ok(r)
}
