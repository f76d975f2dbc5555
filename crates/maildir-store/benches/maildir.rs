//! Timings of the Maildir backend (no criterion: plain wall-clock, one run
//! per figure, printed as a table). Run with
//! `cargo bench -p maildir-store --bench maildir` (optimised) or, on a shared
//! machine, `cargo test -p maildir-store --bench maildir` (debug build).
//! `COFFRE_BENCH_MESSAGES` sets the folder size (default 10,000).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use mail_store::{
    AccountLocation, AccountStore, CachedField, Flag, FlagOp, Flags, FolderName, MailStore,
    Mailbox, SpecialUseNames, Uid,
};
use maildir_store::{DEFAULT_TEMPLATE, MaildirStore};

fn store(root: &Path) -> MaildirStore {
    MaildirStore::new(root.to_path_buf(), DEFAULT_TEMPLATE.to_string())
        .with_special_use(SpecialUseNames::none())
}

fn alice() -> AccountLocation {
    AccountLocation {
        login: "alice@example.org".into(),
        location: None,
    }
}

fn report(what: &str, count: usize, took: Duration) {
    let per = took.as_secs_f64() * 1e6 / count.max(1) as f64;
    println!(
        "{what:<44} {count:>7} {:>10.1} ms {per:>10.1} µs/op",
        took.as_secs_f64() * 1e3
    );
}

/// Resident set size of this process (Linux `/proc/self/statm`), bytes.
fn rss_bytes() -> u64 {
    let statm = fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    let n: usize = std::env::var("COFFRE_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let account = store(dir.path()).open_account(&alice()).await.unwrap();
        let cur = account.root().join("cur");
        // A folder as an MTA would leave it: n files with ,S= names.
        let body = vec![b'x'; 2048];
        for i in 0..n {
            let name = format!("{}.M{i}P1.bench,S={}:2,S", 1_600_000_000 + i, body.len());
            fs::write(cur.join(name), &body).unwrap();
        }
        println!(
            "{:<44} {:>7} {:>13} {:>15}",
            "operation", "count", "total", "per op"
        );
        let inbox = FolderName::inbox();

        let root = account.root().to_path_buf();
        let index = root.join(maildir_store::index::INDEX_FILE);
        let t = Instant::now();
        let mut mailbox = account.open_folder(&inbox, false).await.unwrap();
        report("open, first (no UID list, no index)", n, t.elapsed());
        assert_eq!(mailbox.messages().len(), n);
        drop(mailbox);

        fs::remove_file(&index).unwrap();
        let t = Instant::now();
        mailbox = account.open_folder(&inbox, false).await.unwrap();
        report("open, cold (UID list, no index: stat all)", n, t.elapsed());
        drop(mailbox);

        let t = Instant::now();
        mailbox = account.open_folder(&inbox, false).await.unwrap();
        report("open, warm (UID list + index, no stat)", n, t.elapsed());
        assert_eq!(mailbox.messages().len(), n);
        println!(
            "    coffre-index: {} bytes ({:.0} B/message)",
            fs::metadata(&index).unwrap().len(),
            fs::metadata(&index).unwrap().len() as f64 / n as f64
        );

        let t = Instant::now();
        let second = account.open_folder(&inbox, false).await.unwrap();
        report("open, 2nd session (index shared in memory)", n, t.elapsed());
        drop(second);

        // Idle sessions on one folder: what each costs in memory.
        let sessions = 100;
        let rss_before = rss_bytes();
        let t = Instant::now();
        let mut idle = Vec::with_capacity(sessions);
        for _ in 0..sessions {
            let session = account.open_folder(&inbox, false).await.unwrap();
            let watcher = session.watch();
            idle.push((session, watcher));
        }
        report("open, idle sessions (each)", sessions, t.elapsed());
        println!(
            "    resident memory per idle session: {:.0} KiB",
            (rss_bytes().saturating_sub(rss_before)) as f64 / 1024.0 / sessions as f64
        );
        drop(idle);

        let t = Instant::now();
        let status = account.status(&inbox).await.unwrap();
        report("STATUS (names + index, no stat)", n, t.elapsed());
        assert_eq!(status.messages as usize, n);

        // Let the directory stamps settle so an unchanged folder is skipped.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        mailbox.sync().await.unwrap();
        let t = Instant::now();
        for _ in 0..100 {
            mailbox.sync().await.unwrap();
        }
        report("sync, nothing changed (stamp only)", 100, t.elapsed());

        let t = Instant::now();
        let appends = 500;
        for i in 0..appends {
            account
                .append(
                    &inbox,
                    format!("message {i}\r\n").as_bytes(),
                    &Flags::new(),
                    None,
                )
                .await
                .unwrap();
        }
        report("APPEND into the folder", appends, t.elapsed());

        let t = Instant::now();
        mailbox.sync().await.unwrap();
        report(
            "sync after the appends (cached metadata)",
            n + appends,
            t.elapsed(),
        );

        let seen: Flags = [Flag::Flagged].into_iter().collect();
        let stores = 500;
        let index_before = fs::metadata(&index).unwrap().len();
        let t = Instant::now();
        for i in 0..stores {
            let uid = Uid(u32::try_from(i + 1).unwrap());
            mailbox
                .store_flags(&[uid], FlagOp::Add, &seen)
                .await
                .unwrap();
        }
        report("STORE +FLAGS, one message per call", stores, t.elapsed());
        println!(
            "    coffre-index grew {:.0} B per STORE",
            (fs::metadata(&index).unwrap().len() - index_before) as f64 / stores as f64
        );

        let uids: Vec<Uid> = mailbox
            .messages()
            .iter()
            .take(1000)
            .map(|m| m.uid)
            .collect();
        let t = Instant::now();
        mailbox
            .store_flags(&uids, FlagOp::Remove, &seen)
            .await
            .unwrap();
        report(
            "STORE -FLAGS, 1000 messages in one call",
            uids.len(),
            t.elapsed(),
        );

        // Derived-field cache: 10,000 ENVELOPE-sized values in one call,
        // read back by a new session (file parsed) and again (in memory).
        let cached: Vec<Uid> = mailbox
            .messages()
            .iter()
            .take(10_000)
            .map(|m| m.uid)
            .collect();
        let entries: Vec<(Uid, Vec<u8>)> = cached.iter().map(|u| (*u, vec![b'e'; 300])).collect();
        let t = Instant::now();
        mailbox
            .cache_fields(CachedField::Envelope, entries)
            .await
            .unwrap();
        report(
            "cache_fields, 300 B values, one call",
            cached.len(),
            t.elapsed(),
        );
        let t = Instant::now();
        let got = mailbox
            .cached_fields(&cached, CachedField::Envelope)
            .await
            .unwrap();
        report(
            "cached_fields (file already mapped)",
            cached.len(),
            t.elapsed(),
        );
        assert!(got.iter().all(Option::is_some));
        drop(mailbox);
        mailbox = account.open_folder(&inbox, false).await.unwrap();
        let t = Instant::now();
        let got = mailbox
            .cached_fields(&cached, CachedField::Envelope)
            .await
            .unwrap();
        report(
            "cached_fields (new session: parse the file)",
            cached.len(),
            t.elapsed(),
        );
        assert!(got.iter().all(Option::is_some));

        let archive = FolderName::new("Archive").unwrap();
        account.create_folder(&archive).await.unwrap();
        let t = Instant::now();
        mailbox.copy_to(&uids, &archive).await.unwrap();
        report("COPY 1000 messages (hard links)", uids.len(), t.elapsed());
        let t = Instant::now();
        mailbox.move_to(&uids, &archive).await.unwrap();
        report("MOVE 1000 messages (renames)", uids.len(), t.elapsed());
    });
}
