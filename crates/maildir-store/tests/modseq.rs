//! Mod-sequences (RFC 7162 CONDSTORE), the on-disk derived-field cache and
//! inotify wake-ups, on real directories.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::path::Path;
use std::time::Duration;

use mail_store::{
    AccountStore, CachedField, Flag, FlagOp, Flags, FolderName, MailStore, Mailbox, MailboxChange,
    Uid,
};
use maildir_store::{MaildirAccount, MaildirMailbox};

mod common;
use common::{account_in, alice, flags, hold_folder_lock, inbox, store};

async fn account_with(root: &Path, count: usize) -> MaildirAccount {
    account_in(&store(root), count).await
}

fn modseq(mailbox: &MaildirMailbox, uid: u32) -> u64 {
    mailbox
        .messages()
        .iter()
        .find(|m| m.uid == Uid(uid))
        .unwrap()
        .modseq
}

fn highest(mailbox: &MaildirMailbox) -> u64 {
    mailbox.status().highest_modseq
}

#[tokio::test]
async fn own_and_other_sessions_changes_get_new_modseqs() {
    let dir = tempfile::tempdir().unwrap();
    let account = account_with(dir.path(), 3).await;
    let mut a = inbox(&account, false).await;
    let mut b = inbox(&account, false).await;
    let h0 = highest(&a);
    assert!(h0 >= 1);
    for m in a.messages() {
        assert!(m.modseq >= 1 && m.modseq <= h0);
    }
    let (m1, m2) = (modseq(&a, 1), modseq(&a, 2));

    // Own change: above every earlier value; untouched messages keep theirs.
    a.store_flags(&[Uid(1)], FlagOp::Add, &flags(&[Flag::Seen]))
        .await
        .unwrap();
    let s1 = modseq(&a, 1);
    assert!(s1 > h0);
    assert_eq!(highest(&a), s1);
    assert_eq!(modseq(&a, 2), m2);
    // A STORE that changes nothing keeps the mod-sequence.
    a.store_flags(&[Uid(1)], FlagOp::Add, &flags(&[Flag::Seen]))
        .await
        .unwrap();
    assert_eq!(modseq(&a, 1), s1);
    assert!(s1 > m1);

    // The other session sees the change and its mod-sequence.
    let changes = b.sync().await.unwrap();
    assert_eq!(
        changes,
        vec![MailboxChange::FlagsChanged(Uid(1), flags(&[Flag::Seen]))]
    );
    assert_eq!(modseq(&b, 1), s1);
    assert_eq!(highest(&b), s1);

    // Its change, then ours is seen by us, each one higher.
    b.store_flags(&[Uid(2)], FlagOp::Add, &flags(&[Flag::Flagged]))
        .await
        .unwrap();
    let s2 = modseq(&b, 2);
    assert!(s2 > s1);
    a.sync().await.unwrap();
    assert_eq!(modseq(&a, 2), s2);
    assert_eq!(highest(&a), s2);

    // A change and its undo by another session: same flags, new
    // mod-sequence, reported so CONDSTORE clients learn it.
    b.store_flags(&[Uid(3)], FlagOp::Add, &flags(&[Flag::Answered]))
        .await
        .unwrap();
    b.store_flags(&[Uid(3)], FlagOp::Remove, &flags(&[Flag::Answered]))
        .await
        .unwrap();
    let changes = a.sync().await.unwrap();
    assert_eq!(
        changes,
        vec![MailboxChange::FlagsChanged(Uid(3), Flags::new())]
    );
    assert!(modseq(&a, 3) > s2);
}

#[tokio::test]
async fn external_renames_get_a_new_modseq_at_the_next_sync() {
    let dir = tempfile::tempdir().unwrap();
    let account = account_with(dir.path(), 2).await;
    let mut a = inbox(&account, false).await;
    let before = highest(&a);
    let m2 = modseq(&a, 2);
    // Another program (Dovecot, a mail client) sets \Flagged on UID 1 by
    // renaming its file.
    let cur = account.root().join("cur");
    let mut names: Vec<String> = fs::read_dir(&cur)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let first = names[0].clone();
    let renamed = first.replace(":2,", ":2,F");
    fs::rename(cur.join(&first), cur.join(&renamed)).unwrap();
    // A fresh store (another process) notices it too, without our
    // in-process state: open, then compare.
    let other = store(dir.path()).open_account(&alice()).await.unwrap();
    let c = inbox(&other, true).await;
    let changes = a.sync().await.unwrap();
    assert_eq!(
        changes,
        vec![MailboxChange::FlagsChanged(Uid(1), flags(&[Flag::Flagged]))]
    );
    let m1 = modseq(&a, 1);
    assert!(m1 > before, "new modseq for the noticed change");
    assert_eq!(modseq(&a, 2), m2, "the other message keeps its modseq");
    assert_eq!(highest(&a), m1);
    // Noticed once: the other process's open and ours agree.
    assert_eq!(modseq(&c, 1), m1);
}

#[tokio::test]
async fn expunge_raises_highest_and_modseqs_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let account = account_with(dir.path(), 3).await;
    let mut a = inbox(&account, false).await;
    a.store_flags(&[Uid(2)], FlagOp::Add, &flags(&[Flag::Deleted]))
        .await
        .unwrap();
    let after_store = highest(&a);
    a.expunge(&[Uid(2)]).await.unwrap();
    let status = account.status(&FolderName::inbox()).await.unwrap();
    assert!(status.highest_modseq > after_store, "expunge raised it");
    let seqs: Vec<(Uid, u64)> = {
        a.sync().await.unwrap();
        a.messages().iter().map(|m| (m.uid, m.modseq)).collect()
    };
    let h = highest(&a);
    assert_eq!(h, status.highest_modseq);
    drop(a);
    drop(account);

    // A new process: same values, read from coffre-index, no new ones.
    let account = store(dir.path()).open_account(&alice()).await.unwrap();
    let b = inbox(&account, true).await;
    let again: Vec<(Uid, u64)> = b.messages().iter().map(|m| (m.uid, m.modseq)).collect();
    assert_eq!(again, seqs);
    assert_eq!(highest(&b), h);
    assert_eq!(
        account
            .status(&FolderName::inbox())
            .await
            .unwrap()
            .highest_modseq,
        h
    );
    // Internal dates and sizes came from the index too, and are right.
    for m in b.messages() {
        assert!(m.internal_date > 1_000_000_000);
        assert!(m.size > 10);
    }
}

#[tokio::test]
async fn a_lost_or_corrupt_index_never_moves_modseqs_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let account = account_with(dir.path(), 2).await;
    let mut a = inbox(&account, false).await;
    a.store_flags(&[Uid(1)], FlagOp::Add, &flags(&[Flag::Seen]))
        .await
        .unwrap();
    let h = highest(&a);
    let uid_validity = a.status().uid_validity;
    drop(a);
    let index = account.root().join(maildir_store::index::INDEX_FILE);
    for damage in 0..3 {
        match damage {
            0 => fs::write(&index, b"\xff\xff\xff\xffgarbage").unwrap(),
            1 => {
                let bytes = fs::read(&index).unwrap();
                fs::write(&index, &bytes[..bytes.len() / 2]).unwrap();
            }
            _ => fs::remove_file(&index).unwrap(),
        }
        std::thread::sleep(Duration::from_millis(2));
        let fresh = store(dir.path()).open_account(&alice()).await.unwrap();
        let b = inbox(&fresh, false).await;
        assert_eq!(b.status().uid_validity, uid_validity, "UIDs untouched");
        assert_eq!(b.messages().len(), 2);
        assert!(highest(&b) >= h, "damage {damage}: highest never goes back");
        assert_eq!(
            b.messages()[0].flags,
            flags(&[Flag::Seen]),
            "flags live in the names"
        );
    }
}

#[tokio::test]
async fn unchanged_since_is_decided_under_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let account = account_with(dir.path(), 2).await;
    let mut a = inbox(&account, false).await;
    let mut b = inbox(&account, false).await;
    let seen_by_both = modseq(&a, 1);
    // b changes UID 1; a has not synced and still believes the old value.
    b.store_flags(&[Uid(1)], FlagOp::Add, &flags(&[Flag::Flagged]))
        .await
        .unwrap();
    let out = a
        .store_flags_unchanged_since(
            &[Uid(1), Uid(2)],
            FlagOp::Add,
            &flags(&[Flag::Seen]),
            seen_by_both.max(modseq(&a, 2)),
        )
        .await
        .unwrap();
    assert_eq!(out.modified, vec![Uid(1)]);
    assert_eq!(out.stored, vec![(Uid(2), flags(&[Flag::Seen]))]);
    // UID 1 kept b's flags only.
    a.sync().await.unwrap();
    assert_eq!(a.messages()[0].flags, flags(&[Flag::Flagged]));

    // An external rename not yet seen by any sync counts as a change too.
    let cur = account.root().join("cur");
    let name = fs::read_dir(&cur)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.ends_with(":2,S"))
        .unwrap();
    fs::rename(cur.join(&name), cur.join(format!("{name}R"))).unwrap();
    let out = a
        .store_flags_unchanged_since(
            &[Uid(2)],
            FlagOp::Add,
            &flags(&[Flag::Draft]),
            modseq(&a, 2),
        )
        .await
        .unwrap();
    assert_eq!(out.modified, vec![Uid(2)]);
    assert!(out.stored.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_conditional_stores_let_exactly_one_win() {
    let dir = tempfile::tempdir().unwrap();
    let account = account_with(dir.path(), 1).await;
    for round in 0..20 {
        // Two sessions of two "processes" (separate stores) see the same
        // mod-sequence, then race to change the message.
        let other = store(dir.path()).open_account(&alice()).await.unwrap();
        let mut a = inbox(&account, false).await;
        let mut b = inbox(&other, false).await;
        let base = modseq(&a, 1);
        assert_eq!(modseq(&b, 1), base);
        let flag = move |k: &str| flags(&[Flag::Keyword(format!("{k}{round}"))]);
        let (ra, rb) = tokio::join!(
            tokio::spawn(async move {
                let r = a
                    .store_flags_unchanged_since(&[Uid(1)], FlagOp::Replace, &flag("a"), base)
                    .await
                    .unwrap();
                (r, a)
            }),
            tokio::spawn(async move {
                let r = b
                    .store_flags_unchanged_since(&[Uid(1)], FlagOp::Replace, &flag("b"), base)
                    .await
                    .unwrap();
                (r, b)
            }),
        );
        let ((ra, _), (rb, _)) = (ra.unwrap(), rb.unwrap());
        let wins = usize::from(!ra.stored.is_empty()) + usize::from(!rb.stored.is_empty());
        assert_eq!(wins, 1, "round {round}: {ra:?} {rb:?}");
        assert_eq!(ra.modified.len() + rb.modified.len(), 1);
        // Keep the keyword table small: clear keywords for the next round.
        let mut c = inbox(&account, false).await;
        c.store_flags(&[Uid(1)], FlagOp::Replace, &Flags::new())
            .await
            .unwrap();
        let table = account.root().join("dovecot-keywords");
        let _ = fs::remove_file(table);
    }
}

#[tokio::test]
async fn cached_fields_persist_and_are_dropped_with_their_messages() {
    let dir = tempfile::tempdir().unwrap();
    let account = account_with(dir.path(), 3).await;
    let mut a = inbox(&account, false).await;
    let uids = [Uid(1), Uid(2), Uid(3)];
    a.cache_fields(
        CachedField::Envelope,
        uids.iter()
            .map(|u| (*u, format!("env{u}").into_bytes()))
            .collect(),
    )
    .await
    .unwrap();
    // Too big: silently not kept.
    a.cache_fields(
        CachedField::BodyStructure,
        vec![(Uid(1), vec![0; mail_store::MAX_CACHED_FIELD_LEN + 1])],
    )
    .await
    .unwrap();
    assert_eq!(
        a.cached_fields(&[Uid(1)], CachedField::BodyStructure)
            .await
            .unwrap(),
        vec![None]
    );
    // Another process sees them.
    let other = store(dir.path()).open_account(&alice()).await.unwrap();
    let b = inbox(&other, true).await;
    assert_eq!(
        b.cached_fields(&uids, CachedField::Envelope).await.unwrap(),
        vec![
            Some(b"env1".to_vec()),
            Some(b"env2".to_vec()),
            Some(b"env3".to_vec())
        ]
    );
    // Expunge drops the entry for good (also on disk).
    a.expunge(&[Uid(2)]).await.unwrap();
    let other = store(dir.path()).open_account(&alice()).await.unwrap();
    let c = inbox(&other, true).await;
    assert_eq!(
        c.cached_fields(&uids, CachedField::Envelope).await.unwrap(),
        vec![Some(b"env1".to_vec()), None, Some(b"env3".to_vec())]
    );

    // A new UIDVALIDITY (the UID list lost): nothing of the old cache is
    // served, even for UIDs that exist again.
    drop((a, b, c));
    fs::remove_file(account.root().join("dovecot-uidlist")).unwrap();
    let fresh = store(dir.path()).open_account(&alice()).await.unwrap();
    let d = inbox(&fresh, false).await;
    assert_eq!(d.messages().len(), 2);
    let new_uids: Vec<Uid> = d.messages().iter().map(|m| m.uid).collect();
    assert_eq!(
        d.cached_fields(&new_uids, CachedField::Envelope)
            .await
            .unwrap(),
        vec![None, None]
    );
}

#[tokio::test]
async fn a_cold_open_reads_the_index_not_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let account = account_with(dir.path(), 3).await;
    let a = inbox(&account, true).await;
    let dates: Vec<i64> = a.messages().iter().map(|m| m.internal_date).collect();
    drop(a);
    // Make the files' mtimes lie: a sync that stats them would see 1.
    let cur = account.root().join("cur");
    for entry in fs::read_dir(&cur).unwrap() {
        let f = fs::File::options()
            .append(true)
            .open(entry.unwrap().path())
            .unwrap();
        f.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1))
            .unwrap();
    }
    let other = store(dir.path()).open_account(&alice()).await.unwrap();
    let b = inbox(&other, true).await;
    let again: Vec<i64> = b.messages().iter().map(|m| m.internal_date).collect();
    assert_eq!(again, dates, "internal dates came from coffre-index");
}

/// Waits (bounded) for a watcher; true if it woke.
async fn wakes(watcher: &mut mail_store::ChangeWatcher, within: Duration) -> bool {
    tokio::time::timeout(within, watcher.changed())
        .await
        .is_ok()
}

#[tokio::test]
async fn inotify_wakes_idle_for_external_delivery_without_polling() {
    if !maildir_store::watch::inotify_active() {
        eprintln!("inotify unavailable here: only polling is tested (operations.rs)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // An hour between polls: only inotify can wake the watcher in time.
    let store = store(dir.path()).with_watch_interval(Duration::from_secs(3600));
    let account = store.open_account(&alice()).await.unwrap();
    let mut idle = inbox(&account, false).await;
    let mut watcher = idle.watch();
    {
        let mut fut = std::pin::pin!(watcher.changed());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending(), "nothing new yet");
    }
    let root = account.root().to_path_buf();
    fs::write(root.join("tmp/ext"), b"Subject: external\r\n\r\nx").unwrap();
    fs::rename(root.join("tmp/ext"), root.join("new/1700000001.M1P9.mta")).unwrap();
    // The bound only stops a hang; it is far below the poll interval.
    assert!(wakes(&mut watcher, Duration::from_secs(60)).await);
    assert_eq!(
        idle.sync().await.unwrap(),
        vec![MailboxChange::Added(Uid(1))]
    );

    // A flag change by another program (rename in cur/) wakes it too.
    let mut watcher = idle.watch();
    let cur = root.join("cur");
    let name = fs::read_dir(&cur)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name()
        .into_string()
        .unwrap();
    fs::rename(cur.join(&name), cur.join(format!("{name}S"))).unwrap();
    assert!(wakes(&mut watcher, Duration::from_secs(60)).await);
    assert_eq!(
        idle.sync().await.unwrap(),
        vec![MailboxChange::FlagsChanged(Uid(1), flags(&[Flag::Seen]))]
    );
}

fn inotify_fds() -> usize {
    fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().contains("inotify"))
        .count()
}

#[tokio::test]
async fn many_idle_sessions_share_one_inotify_instance() {
    if !maildir_store::watch::inotify_active() {
        eprintln!("inotify unavailable here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let account = store(dir.path()).open_account(&alice()).await.unwrap();
    account
        .create_folder(&FolderName::new("Other").unwrap())
        .await
        .unwrap();
    let mut sessions = Vec::new();
    let mut watchers = Vec::new();
    for i in 0..200 {
        let folder = if i % 2 == 0 {
            FolderName::inbox()
        } else {
            FolderName::new("Other").unwrap()
        };
        let mailbox = account.open_folder(&folder, false).await.unwrap();
        watchers.push(mailbox.watch());
        sessions.push(mailbox);
    }
    // The instance's descriptor and the duplicate that checks for unread
    // events: two, not one per watcher.
    assert_eq!(inotify_fds(), 2, "one inotify instance for 200 watchers");
}

#[tokio::test]
async fn idle_sessions_share_one_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let account = account_with(dir.path(), 5).await;
    // The first read-write session claims \Recent: its view is its own.
    let first = inbox(&account, false).await;
    assert!(first.messages().iter().all(|m| m.recent));
    let mut b = inbox(&account, false).await;
    let mut c = inbox(&account, false).await;
    assert!(b.messages().iter().all(|m| !m.recent));
    assert_ne!(first.messages().as_ptr(), b.messages().as_ptr());
    assert_eq!(
        b.messages().as_ptr(),
        c.messages().as_ptr(),
        "same view, one copy"
    );
    // A session's own change gives it its own copy until both have synced.
    b.store_flags(&[Uid(1)], FlagOp::Add, &flags(&[Flag::Seen]))
        .await
        .unwrap();
    assert_ne!(b.messages().as_ptr(), c.messages().as_ptr());
    assert_eq!(c.messages()[0].flags, Flags::new(), "c's view is unchanged");
    b.sync().await.unwrap();
    let changes = c.sync().await.unwrap();
    assert_eq!(
        changes,
        vec![MailboxChange::FlagsChanged(Uid(1), flags(&[Flag::Seen]))]
    );
    assert_eq!(b.messages(), c.messages());
    assert_eq!(b.messages().as_ptr(), c.messages().as_ptr(), "shared again");
    assert_eq!(first.messages().len(), 5);
}

#[tokio::test]
async fn one_scan_serves_every_idle_session_after_new_mail() {
    if !maildir_store::watch::inotify_active() {
        eprintln!("inotify unavailable here: every session scans for itself");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A short lock wait: a session that has to scan while the lock is held
    // fails at once instead of waiting 30 s. No polling: inotify only.
    let store = store(dir.path())
        .with_lock_timeout(Duration::from_millis(200))
        .with_watch_interval(Duration::from_secs(3600));
    let account = account_in(&store, 3).await;
    let mut sessions = Vec::new();
    for _ in 0..12 {
        sessions.push(inbox(&account, false).await);
    }
    let mut examine = inbox(&account, true).await;
    let mut watchers: Vec<_> = sessions.iter().map(MaildirMailbox::watch).collect();
    let _examine_watcher = examine.watch();

    // An MTA delivers; the first woken session scans.
    let root = account.root().to_path_buf();
    fs::write(root.join("tmp/ext"), b"Subject: new\r\n\r\nx").unwrap();
    fs::rename(root.join("tmp/ext"), root.join("new/1700000001.M1P9.mta")).unwrap();
    assert!(wakes(&mut watchers[0], Duration::from_secs(60)).await);
    assert_eq!(
        sessions[0].sync().await.unwrap(),
        vec![MailboxChange::Added(Uid(4))]
    );
    assert!(
        sessions[0].messages()[3].recent,
        "the scanning session claims it"
    );
    // Its own renames (new/ to cur/) come back as inotify events; let them
    // arrive, then one more scan takes them in.
    let mut echo = sessions[0].watch();
    let _ = wakes(&mut echo, Duration::from_secs(2)).await;
    assert_eq!(
        sessions[1].sync().await.unwrap(),
        vec![MailboxChange::Added(Uid(4))]
    );

    // With the folder locked by "another process", the remaining sessions
    // still get the new message: they take the scan made above instead of
    // scanning again.
    let lock = hold_folder_lock(&root);
    for session in &mut sessions[2..] {
        assert_eq!(
            session.sync().await.unwrap(),
            vec![MailboxChange::Added(Uid(4))]
        );
        assert_eq!(session.messages().len(), 4);
        assert!(
            session.messages().iter().all(|m| !m.recent),
            "\\Recent belongs to one session only"
        );
    }
    assert_eq!(
        examine.sync().await.unwrap(),
        vec![MailboxChange::Added(Uid(4))]
    );
    assert!(examine.messages().iter().all(|m| !m.recent));
    // Nothing new: syncing again reports nothing.
    assert_eq!(sessions[5].sync().await.unwrap(), vec![]);

    // A change after that scan is never answered from it: the next sync
    // must scan (and here fails, the lock being held), not report stale state.
    let mut watcher = sessions[2].watch();
    let cur = root.join("cur");
    let name = fs::read_dir(&cur)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .find(|n| n.starts_with("1700000001."))
        .unwrap();
    fs::rename(cur.join(&name), cur.join(format!("{name}S"))).unwrap();
    assert!(wakes(&mut watcher, Duration::from_secs(60)).await);
    assert!(sessions[2].sync().await.is_err(), "a scan was needed");
    drop(lock);
    assert_eq!(
        sessions[2].sync().await.unwrap(),
        vec![MailboxChange::FlagsChanged(Uid(4), flags(&[Flag::Seen]))]
    );
    // The others take that scan too.
    let _lock = hold_folder_lock(&root);
    assert_eq!(
        sessions[3].sync().await.unwrap(),
        vec![MailboxChange::FlagsChanged(Uid(4), flags(&[Flag::Seen]))]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_woken_together_all_see_new_mail_once() {
    let dir = tempfile::tempdir().unwrap();
    let account = account_with(dir.path(), 3).await;
    let mut sessions = Vec::new();
    for i in 0..40 {
        sessions.push(inbox(&account, i % 8 == 7).await);
    }
    let watchers: Vec<_> = sessions.iter().map(MaildirMailbox::watch).collect();
    let root = account.root().to_path_buf();
    fs::write(root.join("tmp/ext"), b"Subject: new\r\n\r\nx").unwrap();
    fs::rename(root.join("tmp/ext"), root.join("new/1700000001.M1P9.mta")).unwrap();
    // Every session syncs at the same time, as IDLE sessions woken by one
    // delivery do.
    let mut tasks = tokio::task::JoinSet::new();
    for (i, mut session) in sessions.into_iter().enumerate() {
        tasks.spawn(async move {
            let changes = session.sync().await.unwrap();
            (i % 8 == 7, session, changes)
        });
    }
    let mut claimed = 0;
    while let Some(joined) = tasks.join_next().await {
        let (read_only, session, changes) = joined.unwrap();
        assert_eq!(changes, vec![MailboxChange::Added(Uid(4))]);
        assert_eq!(
            session.messages().iter().map(|m| m.uid).collect::<Vec<_>>(),
            vec![Uid(1), Uid(2), Uid(3), Uid(4)]
        );
        if !read_only {
            claimed += usize::from(session.messages()[3].recent);
        }
    }
    assert_eq!(
        claimed, 1,
        "exactly one read-write session has the new message as \\Recent"
    );
    drop(watchers);
}
