//! A session's own STORE and EXPUNGE keep it (and the folder's latest scan)
//! current without a rescan; changes by anyone else are never hidden by
//! that: external deliveries and renames are seen by the very next sync,
//! and a renamed folder's watch is not trusted for its successor.
//!
//! "No scan happened" is proven by holding the folder's inter-process lock
//! as another process would: a sync that had to scan fails after the short
//! lock timeout, one that did not scan succeeds.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::path::Path;
use std::time::Duration;

use mail_store::{
    AccountStore, Flag, FlagOp, Flags, FolderName, MailStore, Mailbox, MailboxChange, Uid,
};
use maildir_store::{MaildirAccount, MaildirMailbox, MaildirStore};

mod common;
use common::{account_in, alice, flags, hold_folder_lock, inbox, store};

/// Long enough for the inotify echoes of our own renames to have been read.
const ECHO_DELAY: Duration = Duration::from_millis(150);

/// A store whose sessions give up on a held folder lock after 300 ms.
fn impatient_store(root: &Path) -> MaildirStore {
    store(root).with_lock_timeout(Duration::from_millis(300))
}

/// Delivers a message into `new/` of the folder at `dir` as an MTA does
/// (written in `tmp/`, renamed into `new/`).
fn deliver_external(dir: &Path, unique: &str) {
    let tmp = dir.join("tmp").join(unique);
    fs::write(
        &tmp,
        format!("Subject: {unique}\r\n\r\nexternal").as_bytes(),
    )
    .unwrap();
    fs::rename(&tmp, dir.join("new").join(unique)).unwrap();
}

/// The current file name in `cur/` of the message with base name `base`.
fn cur_name(dir: &Path, base: &str) -> String {
    fs::read_dir(dir.join("cur"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.split(':').next() == Some(base))
        .unwrap_or_else(|| panic!("no {base} in cur/"))
}

/// UID, flags and mod-sequence of each message (`\Recent` differs by session).
fn view(mailbox: &MaildirMailbox) -> Vec<(Uid, Flags, u64)> {
    mailbox
        .messages()
        .iter()
        .map(|m| (m.uid, m.flags.clone(), m.modseq))
        .collect()
}

/// `watch::quiet()` is process-wide: inotify events of any folder, not
/// yet read, make every own change "unclean". Tests that prove "no
/// rescan" run one at a time when the harness runs them in one process.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn inotify_or_skip() -> bool {
    let active = maildir_store::watch::inotify_active();
    if !active {
        eprintln!("inotify unavailable here: own-change tracking is not used");
    }
    active
}

/// What every test here starts from: a fresh account of a store made by
/// `make` with `count` messages in INBOX, the tests run one at a time
/// (they share the process's inotify state). `None`, and the test is
/// skipped, where inotify is unavailable.
struct Fixture {
    account: MaildirAccount,
    _serial: tokio::sync::MutexGuard<'static, ()>,
    /// The mail root (a second store on it stands for another process).
    dir: tempfile::TempDir,
}

async fn fixture(make: fn(&Path) -> MaildirStore, count: usize) -> Option<Fixture> {
    if !inotify_or_skip() {
        return None;
    }
    let serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let account = account_in(&make(dir.path()), count).await;
    Some(Fixture {
        account,
        _serial: serial,
        dir,
    })
}

#[tokio::test]
async fn own_store_needs_no_rescan_and_other_sessions_take_it() {
    let Some(fixture) = fixture(impatient_store, 5).await else {
        return;
    };
    let account = &fixture.account;
    let mut a = inbox(account, false).await;
    let mut b = inbox(account, false).await;

    let stored = a
        .store_flags(&[Uid(1)], FlagOp::Add, &flags(&[Flag::Seen]))
        .await
        .unwrap();
    assert_eq!(stored, vec![(Uid(1), flags(&[Flag::Seen]))]);
    let highest_a = a.status().highest_modseq;
    // The rename's inotify events arrive meanwhile; they are expected and
    // must not make anyone rescan.
    tokio::time::sleep(ECHO_DELAY).await;

    let lock = hold_folder_lock(account.root());
    assert_eq!(
        a.sync().await.unwrap(),
        vec![],
        "the storing session stays current: no rescan"
    );
    assert_eq!(
        b.sync().await.unwrap(),
        vec![MailboxChange::FlagsChanged(Uid(1), flags(&[Flag::Seen]))],
        "the other session takes the updated scan without rescanning"
    );
    assert_eq!(b.status().highest_modseq, highest_a);
    assert_eq!(view(&b), view(&a), "same flags and mod-sequences");
    // Nothing more to tell either of them.
    assert_eq!(a.sync().await.unwrap(), vec![]);
    assert_eq!(b.sync().await.unwrap(), vec![]);
    // The held lock does catch a scan: after an external flag change the
    // next sync must scan, and so fails while the lock is held.
    let name = fs::read_dir(account.root().join("cur"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.ends_with(":2,"))
        .unwrap();
    let cur = account.root().join("cur");
    fs::rename(cur.join(&name), cur.join(format!("{name}F"))).unwrap();
    assert!(
        a.sync().await.is_err(),
        "an external change is never answered from the own-change state"
    );
    drop(lock);
    let changes = a.sync().await.unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(matches!(
        &changes[0],
        MailboxChange::FlagsChanged(_, f) if f.contains(&Flag::Flagged)
    ));

    // The change is really on disk: a fresh process sees it.
    let other = store(fixture.dir.path())
        .open_account(&alice())
        .await
        .unwrap();
    let c = inbox(&other, true).await;
    assert_eq!(c.messages()[0].flags, flags(&[Flag::Seen]));
    assert_eq!(c.status().highest_modseq, a.status().highest_modseq);
}

#[tokio::test]
async fn own_expunge_needs_no_rescan_and_raises_highestmodseq() {
    let Some(fixture) = fixture(impatient_store, 5).await else {
        return;
    };
    let account = &fixture.account;
    let mut a = inbox(account, false).await;
    let mut b = inbox(account, false).await;

    a.store_flags(&[Uid(2)], FlagOp::Add, &flags(&[Flag::Deleted]))
        .await
        .unwrap();
    let after_store = a.status().highest_modseq;
    // Let the (expected) echoes of that rename be read first: while any
    // inotify event of the process is unread, `watch::quiet()` is false and
    // the expunge would not count as "clean" (the next sync would rescan).
    tokio::time::sleep(ECHO_DELAY).await;
    assert_eq!(a.expunge(&[Uid(2)]).await.unwrap(), vec![Uid(2)]);
    let after_expunge = a.status().highest_modseq;
    assert!(
        after_expunge > after_store,
        "expunge raised HIGHESTMODSEQ ({after_store} -> {after_expunge})"
    );
    assert_eq!(a.status().messages, 4);
    tokio::time::sleep(ECHO_DELAY).await;

    let lock = hold_folder_lock(account.root());
    assert_eq!(
        a.sync().await.unwrap(),
        vec![],
        "no rescan after own expunge"
    );
    assert_eq!(a.status().highest_modseq, after_expunge);
    assert_eq!(
        b.sync().await.unwrap(),
        vec![MailboxChange::Expunged(Uid(2))],
        "the other session takes the updated scan without rescanning"
    );
    assert_eq!(b.status().highest_modseq, after_expunge);
    assert_eq!(view(&b), view(&a), "same flags and mod-sequences");
    assert!(b.messages().iter().all(|m| m.uid != Uid(2)));
    drop(lock);

    // A fresh process agrees on both.
    let other = store(fixture.dir.path())
        .open_account(&alice())
        .await
        .unwrap();
    let c = inbox(&other, true).await;
    assert_eq!(c.status().messages, 4);
    assert_eq!(c.status().highest_modseq, after_expunge);
}

#[tokio::test]
async fn external_delivery_is_seen_by_the_very_next_sync() {
    let Some(fixture) = fixture(store, 2).await else {
        return;
    };
    let account = &fixture.account;
    let root = account.root().to_path_buf();
    let mut a = inbox(account, false).await;
    // Another session of the folder, so the shared scan record is in play.
    let mut b = inbox(account, true).await;
    for i in 0..30u32 {
        let expected_uid = i + 3;
        // An MTA delivers; the sync right after must see it.
        let unique = format!("17000000{i:02}.M{i}P42.mta");
        deliver_external(&root, &unique);
        assert_eq!(
            a.sync().await.unwrap(),
            vec![MailboxChange::Added(Uid(expected_uid))],
            "round {i}: delivery seen by the next sync"
        );
        assert_eq!(
            b.sync().await.unwrap(),
            vec![MailboxChange::Added(Uid(expected_uid))],
            "round {i}: delivery seen by the other session"
        );

        // A mail client sets \Seen on it by renaming its file in cur/.
        let name = cur_name(&root, &unique);
        assert!(name.ends_with(":2,"), "round {i}: {name}");
        fs::rename(
            root.join("cur").join(&name),
            root.join("cur").join(format!("{name}S")),
        )
        .unwrap();
        assert_eq!(
            a.sync().await.unwrap(),
            vec![MailboxChange::FlagsChanged(
                Uid(expected_uid),
                flags(&[Flag::Seen])
            )],
            "round {i}: external flag change seen by the next sync"
        );
        assert_eq!(
            b.sync().await.unwrap(),
            vec![MailboxChange::FlagsChanged(
                Uid(expected_uid),
                flags(&[Flag::Seen])
            )],
            "round {i}: external flag change seen by the other session"
        );

        // Own change in between, so the next round starts from a session
        // kept current by it rather than by a scan.
        if i % 2 == 1 {
            a.store_flags(&[Uid(expected_uid)], FlagOp::Add, &flags(&[Flag::Flagged]))
                .await
                .unwrap();
            assert_eq!(
                b.sync().await.unwrap(),
                vec![MailboxChange::FlagsChanged(
                    Uid(expected_uid),
                    flags(&[Flag::Seen, Flag::Flagged])
                )],
            );
            assert_eq!(a.sync().await.unwrap(), vec![]);
        }
    }
    assert_eq!(a.status().messages, 32);
    assert_eq!(b.status().messages, 32);
}

#[tokio::test]
async fn reselect_within_linger_reuses_the_scan_while_another_session_is_open() {
    let Some(fixture) = fixture(impatient_store, 3).await else {
        return;
    };
    let account = &fixture.account;
    let _other = inbox(account, true).await;
    assert_eq!(
        look_once(account).await,
        3,
        "the first read-write session claims"
    );
    let again = reopen_under_lock(account).await;
    assert_eq!(again.status().messages, 3);
    assert_eq!(again.status().recent, 0, "\\Recent was claimed before");
}

/// Opens INBOX read-write, syncs and closes it; its `\Recent` count.
async fn look_once(account: &MaildirAccount) -> u32 {
    let mut first = inbox(account, false).await;
    assert_eq!(first.sync().await.unwrap(), vec![]);
    first.status().recent
}

/// Re-opens INBOX read-write while another process holds the folder lock:
/// only possible by taking the latest scan, without scanning.
async fn reopen_under_lock(account: &MaildirAccount) -> MaildirMailbox {
    let _lock = hold_folder_lock(account.root());
    account
        .open_folder(&FolderName::inbox(), false)
        .await
        .expect("re-SELECT takes the latest scan: no scan, no lock")
}

/// The folder's watch and its latest scan linger after the last mailbox
/// closes, so a re-SELECT soon after needs no scan.
#[tokio::test]
async fn reselect_within_linger_reuses_the_scan() {
    let Some(fixture) = fixture(impatient_store, 3).await else {
        return;
    };
    let account = &fixture.account;
    assert_eq!(look_once(account).await, 3);
    let again = reopen_under_lock(account).await;
    assert_eq!(again.status().messages, 3);
}

#[tokio::test]
async fn reselect_after_last_close_sees_mail_delivered_meanwhile() {
    let Some(fixture) = fixture(impatient_store, 3).await else {
        return;
    };
    let account = &fixture.account;
    assert_eq!(look_once(account).await, 3);
    // While the folder is closed (watch and scan lingering), a delivery
    // lands: the lingering scan must not hide it.
    deliver_external(account.root(), "1700000100.M1P42.mta");
    let again = inbox(account, false).await;
    assert_eq!(again.status().messages, 4);
    assert_eq!(again.status().recent, 1);
}

#[tokio::test]
async fn renamed_folder_is_not_trusted_afterwards() {
    let Some(fixture) = fixture(store, 0).await else {
        return;
    };
    let account = &fixture.account;
    let work = FolderName::new("Work").unwrap();
    account.create_folder(&work).await.unwrap();
    account
        .append(&work, b"Subject: old\r\n\r\nold", &Flags::new(), None)
        .await
        .unwrap();
    let mut old_session = account.open_folder(&work, false).await.unwrap();
    assert_eq!(old_session.sync().await.unwrap(), vec![]);
    assert_eq!(old_session.status().messages, 1);
    let old_validity = old_session.status().uid_validity;

    let renamed = FolderName::new("Old").unwrap();
    account.rename_folder(&work, &renamed).await.unwrap();
    account.create_folder(&work).await.unwrap();
    let work_dir = maildir_store::layout::folder_dir(account.root(), &work);
    deliver_external(&work_dir, "1700000200.M1P42.mta");
    deliver_external(&work_dir, "1700000201.M2P42.mta");

    // The new "Work" is another folder: its own messages, not the scan or
    // the watch of the old one (still open in `old_session`).
    let mut fresh = account.open_folder(&work, false).await.unwrap();
    assert_eq!(fresh.status().messages, 2);
    assert_ne!(fresh.status().uid_validity, old_validity);
    assert_eq!(
        fresh.messages().iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![Uid(1), Uid(2)]
    );
    // A delivery after that is seen at once too (the watch of the old
    // directory cannot vouch for the new one).
    deliver_external(&work_dir, "1700000202.M3P42.mta");
    assert_eq!(
        fresh.sync().await.unwrap(),
        vec![MailboxChange::Added(Uid(3))]
    );
    // Its first message reads as the new one, not the old one.
    let body = fresh.read_message(Uid(1)).await.unwrap();
    assert!(String::from_utf8_lossy(&body).contains("1700000200"));

    // The old folder lives on under its new name with its message.
    let moved = account.open_folder(&renamed, true).await.unwrap();
    assert_eq!(moved.status().messages, 1);
    drop(old_session);

    // Closing everything and opening the new "Work" again still shows it
    // as it is.
    drop(fresh);
    deliver_external(&work_dir, "1700000203.M4P42.mta");
    let again = account.open_folder(&work, true).await.unwrap();
    assert_eq!(again.status().messages, 4);
}

/// Inotify watches this process holds (`inotify wd:` lines of the fdinfo
/// of its inotify descriptors; the duplicate lists the same watches).
fn inotify_watches() -> usize {
    let mut per_fd = Vec::new();
    for entry in fs::read_dir("/proc/self/fd").unwrap() {
        let entry = entry.unwrap();
        let is_inotify = fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().contains("inotify"));
        if !is_inotify {
            continue;
        }
        let info = fs::read_to_string(format!("/proc/self/fdinfo/{}", entry.file_name().display()))
            .unwrap_or_default();
        per_fd.push(
            info.lines()
                .filter(|l| l.starts_with("inotify wd:"))
                .count(),
        );
    }
    per_fd.into_iter().max().unwrap_or(0)
}

/// A closed folder stays watched a while, but at most 1,024 closed folders
/// do: opening and closing 1,100 leaves 2 watches (`cur/`, `new/`) for
/// each of 1,024, not 2,200.
#[tokio::test]
async fn closed_folders_stay_watched_up_to_the_limit() {
    if !inotify_or_skip() {
        return;
    }
    let allowed: usize = fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    if allowed < 16_384 {
        eprintln!("fs.inotify.max_user_watches is {allowed}: too few for 2,048 watches here");
        return;
    }
    let Some(fixture) = fixture(store, 0).await else {
        return;
    };
    let account = &fixture.account;
    let base = inotify_watches();
    let first = FolderName::new("F0").unwrap();
    account.create_folder(&first).await.unwrap();
    drop(account.open_folder(&first, false).await.unwrap());
    assert_eq!(
        inotify_watches(),
        base + 2,
        "the closed folder stays watched"
    );
    for i in 1..1_100 {
        let name = FolderName::new(&format!("F{i}")).unwrap();
        account.create_folder(&name).await.unwrap();
        drop(account.open_folder(&name, false).await.unwrap());
    }
    assert_eq!(inotify_watches(), base + 2 * 1_024);
}
