//! The account and mailbox operations added for the IMAP and POP3 sessions,
//! on real directories: delete / rename / subscribe, STATUS, COPY (hard
//! links) and MOVE, byte ranges, the POP3 maildrop lock, special-use folders
//! and aliases, IDLE watchers, quota and a full disk.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::Duration;

use mail_store::{
    AccountLocation, AccountStore, Flag, FlagOp, Flags, FolderName, MailStore, Mailbox,
    MailboxChange, Quota, QuotaUsage, SpecialUse, SpecialUseNames, StoreErrorKind, Uid,
};
use maildir_store::{DEFAULT_TEMPLATE, MaildirAccount, MaildirStore};

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

fn name(s: &str) -> FolderName {
    FolderName::new(s).unwrap()
}

fn flags(list: &[Flag]) -> Flags {
    list.iter().cloned().collect()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

async fn folder_names(account: &MaildirAccount) -> Vec<String> {
    account
        .list_folders()
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.name.to_string())
        .collect()
}

async fn open(root: &Path) -> MaildirAccount {
    store(root).open_account(&alice()).await.unwrap()
}

#[tokio::test]
async fn delete_refuses_inbox_and_parents_and_removes_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let account = open(dir.path()).await;
    account.create_folder(&name("Work.Old")).await.unwrap();
    account.subscribe(&name("Work.Old")).await.unwrap();
    account
        .append(&name("Work.Old"), b"x", &Flags::new(), None)
        .await
        .unwrap();
    let err = account
        .delete_folder(&FolderName::inbox())
        .await
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotPossible);
    let err = account.delete_folder(&name("Work")).await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotPossible, "has children");
    let err = account.delete_folder(&name("Nope")).await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotFound);
    account.delete_folder(&name("Work.Old")).await.unwrap();
    account.delete_folder(&name("Work")).await.unwrap();
    assert_eq!(folder_names(&account).await, vec!["INBOX"]);
    let left: Vec<String> = files_in(account.root())
        .into_iter()
        .filter(|n| n.starts_with('.') || n.starts_with("coffre-deleting"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // The subscription stays (RFC 3501 §6.3.6) and is written as Dovecot does.
    let subs = account.subscriptions().await.unwrap();
    assert!(subs.contains(&name("Work.Old")));
    account.unsubscribe(&name("Work.Old")).await.unwrap();
    let err = account.unsubscribe(&name("Work.Old")).await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotFound);
    let err = account.subscribe(&name("Gone")).await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotFound);
}

#[tokio::test]
async fn subscriptions_file_is_modified_utf7_one_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let account = open(dir.path()).await;
    let drafts = name("Entw\u{fc}rfe");
    account.create_folder(&drafts).await.unwrap();
    account.subscribe(&drafts).await.unwrap();
    account.subscribe(&drafts).await.unwrap();
    let text = fs::read_to_string(account.root().join("subscriptions")).unwrap();
    assert_eq!(text, "Entw&APw-rfe\nINBOX\n");
    let list = account.list_folders().await.unwrap();
    assert!(list.iter().all(|f| f.subscribed));
}

#[tokio::test]
async fn rename_moves_children_subscriptions_and_keeps_uids() {
    let dir = tempfile::tempdir().unwrap();
    let account = open(dir.path()).await;
    account.create_folder(&name("Work.Projects")).await.unwrap();
    account.subscribe(&name("Work.Projects")).await.unwrap();
    for body in [&b"one"[..], b"two"] {
        account
            .append(&name("Work.Projects"), body, &Flags::new(), None)
            .await
            .unwrap();
    }
    let before = account.status(&name("Work.Projects")).await.unwrap();
    account
        .rename_folder(&name("Work"), &name("Archive.2024"))
        .await
        .unwrap();
    assert_eq!(
        folder_names(&account).await,
        vec!["INBOX", "Archive", "Archive.2024", "Archive.2024.Projects"]
    );
    let after = account
        .status(&name("Archive.2024.Projects"))
        .await
        .unwrap();
    assert_eq!(before.uid_validity, after.uid_validity);
    assert_eq!(before.uid_next, after.uid_next);
    let moved = account
        .open_folder(&name("Archive.2024.Projects"), true)
        .await
        .unwrap();
    assert_eq!(moved.read_message(Uid(2)).await.unwrap(), b"two");
    let subs = account.subscriptions().await.unwrap();
    assert!(subs.contains(&name("Archive.2024.Projects")));
    assert!(!subs.contains(&name("Work.Projects")));

    let err = account
        .rename_folder(&name("Archive"), &name("Archive.X"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotPossible);
    let err = account
        .rename_folder(&name("Archive.2024"), &name("Archive"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::AlreadyExists);
    let err = account
        .rename_folder(&name("Nope"), &name("Other"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotFound);
    let err = account
        .rename_folder(&name("Archive"), &FolderName::inbox())
        .await
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::AlreadyExists);
}

#[tokio::test]
async fn renaming_inbox_moves_messages_with_their_uids() {
    let dir = tempfile::tempdir().unwrap();
    let account = open(dir.path()).await;
    let inbox = FolderName::inbox();
    let kw = Flag::Keyword("$Label1".into());
    account
        .append(
            &inbox,
            b"first",
            &flags(std::slice::from_ref(&kw)),
            Some(1_500_000_000),
        )
        .await
        .unwrap();
    account
        .append(&inbox, b"second", &flags(&[Flag::Seen]), None)
        .await
        .unwrap();
    let inbox_validity = account.status(&inbox).await.unwrap().uid_validity;
    account
        .rename_folder(&inbox, &name("Old Mail"))
        .await
        .unwrap();
    let old = account.open_folder(&name("Old Mail"), true).await.unwrap();
    let got: Vec<(u32, Flags, i64)> = old
        .messages()
        .iter()
        .map(|m| (m.uid.0, m.flags.clone(), m.internal_date))
        .collect();
    assert_eq!(got[0], (1, flags(&[kw]), 1_500_000_000));
    assert_eq!(got[1].0, 2);
    assert_eq!(got[1].1, flags(&[Flag::Seen]));
    assert_ne!(old.status().uid_validity, inbox_validity);
    assert!(old.messages().iter().all(|m| !m.recent));
    // INBOX is empty, keeps its UIDVALIDITY and never reuses a UID.
    let status = account.status(&inbox).await.unwrap();
    assert_eq!((status.messages, status.uid_validity), (0, inbox_validity));
    let next = account
        .append(&inbox, b"third", &Flags::new(), None)
        .await
        .unwrap();
    assert_eq!(next.uid, Uid(3));
}

#[tokio::test]
async fn status_is_cheap_and_does_not_claim_recent() {
    let dir = tempfile::tempdir().unwrap();
    let account = open(dir.path()).await;
    let inbox = FolderName::inbox();
    account
        .append(&inbox, b"seen", &flags(&[Flag::Seen]), None)
        .await
        .unwrap();
    // An MTA delivery waiting in new/ is counted (and numbered).
    let root = account.root().to_path_buf();
    fs::write(root.join("new/1700000000.M1P1.mta"), b"external").unwrap();
    let status = account.status(&inbox).await.unwrap();
    assert_eq!((status.messages, status.unseen, status.recent), (2, 1, 2));
    assert_eq!(status.uid_next, Uid(3));
    assert_eq!(account.folder_size(&inbox).await.unwrap(), 4 + 8);
    let mailbox = account.open_folder(&inbox, false).await.unwrap();
    assert_eq!(mailbox.status().recent, 2, "STATUS left \\Recent alone");
    assert_eq!(account.status(&inbox).await.unwrap().recent, 0);
    let err = account.status(&name("Nope")).await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotFound);
}

#[tokio::test]
async fn copy_hard_links_and_maps_keywords_to_the_destination_letters() {
    let dir = tempfile::tempdir().unwrap();
    let account = open(dir.path()).await;
    let inbox = FolderName::inbox();
    let keep = name("Keep");
    account.create_folder(&keep).await.unwrap();
    // Keep binds $B to letter a first, so $A must become letter b there.
    account
        .append(&keep, b"k", &flags(&[Flag::Keyword("$B".into())]), None)
        .await
        .unwrap();
    let a = Flag::Keyword("$A".into());
    account
        .append(
            &inbox,
            b"alpha",
            &flags(&[a.clone(), Flag::Flagged]),
            Some(1_234_567_890),
        )
        .await
        .unwrap();
    account
        .append(&inbox, b"beta", &Flags::new(), None)
        .await
        .unwrap();
    let mailbox = account.open_folder(&inbox, true).await.unwrap();
    let out = mailbox
        .copy_to(&[Uid(1), Uid(2), Uid(7)], &keep)
        .await
        .unwrap();
    assert_eq!(out.uids, vec![(Uid(1), Uid(2)), (Uid(2), Uid(3))]);
    assert_eq!(
        out.uid_validity,
        account.status(&keep).await.unwrap().uid_validity
    );

    let copy = account.open_folder(&keep, true).await.unwrap();
    let m = &copy.messages()[1];
    assert_eq!(m.flags, flags(&[a, Flag::Flagged]));
    assert_eq!(m.internal_date, 1_234_567_890);
    assert!(m.recent);
    assert_eq!(copy.read_message(Uid(2)).await.unwrap(), b"alpha");
    let keep_cur = account.root().join(".Keep/cur");
    let names = files_in(&keep_cur);
    assert!(names.iter().any(|n| n.ends_with(":2,Fb")), "{names:?}");
    // Same inode: a hard link, no bytes copied.
    // INBOX holds alpha and beta; the copied one is alpha (`$A` is letter a
    // there). Picking by sorted name alone was flaky: unique names do not
    // sort in arrival order.
    let src = files_in(&account.root().join("cur"));
    let src_name = src.iter().find(|n| n.ends_with(":2,Fa")).unwrap();
    let src_ino = fs::metadata(account.root().join("cur").join(src_name))
        .unwrap()
        .ino();
    let dst_name = names.iter().find(|n| n.ends_with(":2,Fb")).unwrap();
    assert_eq!(
        fs::metadata(keep_cur.join(dst_name)).unwrap().ino(),
        src_ino
    );
    assert!(files_in(&account.root().join(".Keep/tmp")).is_empty());
    let err = mailbox.copy_to(&[Uid(1)], &name("Nope")).await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotFound);
}

#[tokio::test]
async fn move_is_a_rename_and_other_sessions_see_an_expunge() {
    let dir = tempfile::tempdir().unwrap();
    let account = open(dir.path()).await;
    let inbox = FolderName::inbox();
    let trash = name("Trash");
    account.create_folder(&trash).await.unwrap();
    for body in [&b"a"[..], b"b", b"c"] {
        account
            .append(&inbox, body, &flags(&[Flag::Seen]), None)
            .await
            .unwrap();
    }
    let mut one = account.open_folder(&inbox, false).await.unwrap();
    let mut two = account.open_folder(&inbox, false).await.unwrap();
    // The inode of the file holding `body` (file names do not sort in
    // arrival order, so pick by content).
    let ino = |root: &Path, body: &[u8]| {
        let cur = root.join("cur");
        let file = files_in(&cur)
            .into_iter()
            .find(|f| fs::read(cur.join(f)).unwrap() == body)
            .unwrap();
        fs::metadata(cur.join(file)).unwrap().ino()
    };
    let moved_ino = ino(account.root(), b"a");
    let out = one.move_to(&[Uid(1), Uid(3)], &trash).await.unwrap();
    assert_eq!(out.uids, vec![(Uid(1), Uid(1)), (Uid(3), Uid(2))]);
    let left: Vec<u32> = one.messages().iter().map(|m| m.uid.0).collect();
    assert_eq!(left, vec![2]);
    assert_eq!(one.sync().await.unwrap(), vec![]);
    assert_eq!(
        two.sync().await.unwrap(),
        vec![
            MailboxChange::Expunged(Uid(1)),
            MailboxChange::Expunged(Uid(3))
        ]
    );
    assert_eq!(files_in(&account.root().join("cur")).len(), 1);
    let in_trash = account.open_folder(&trash, true).await.unwrap();
    assert_eq!(in_trash.read_message(Uid(2)).await.unwrap(), b"c");
    assert_eq!(in_trash.messages()[0].flags, flags(&[Flag::Seen]));
    assert_eq!(
        ino(&account.root().join(".Trash"), b"a"),
        moved_ino,
        "renamed, not copied"
    );

    let err = one.move_to(&[Uid(2)], &inbox).await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotPossible);
    let mut examine = account.open_folder(&inbox, true).await.unwrap();
    let err = examine.move_to(&[Uid(2)], &trash).await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotPossible);
    // Moving back and forth never reuses a UID.
    let mut from_trash = account.open_folder(&trash, false).await.unwrap();
    let back = from_trash.move_to(&[Uid(1)], &inbox).await.unwrap();
    assert_eq!(back.uids, vec![(Uid(1), Uid(4))]);
}

#[tokio::test]
async fn read_range_reads_part_of_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let account = open(dir.path()).await;
    account
        .append(&FolderName::inbox(), b"0123456789", &Flags::new(), None)
        .await
        .unwrap();
    let mut mailbox = account
        .open_folder(&FolderName::inbox(), false)
        .await
        .unwrap();
    assert_eq!(mailbox.read_range(Uid(1), 2, 3).await.unwrap(), b"234");
    assert_eq!(mailbox.read_range(Uid(1), 8, 100).await.unwrap(), b"89");
    assert_eq!(mailbox.read_range(Uid(1), 50, 5).await.unwrap(), b"");
    // Still found after a flag rename.
    mailbox
        .store_flags(&[Uid(1)], FlagOp::Add, &flags(&[Flag::Seen]))
        .await
        .unwrap();
    assert_eq!(mailbox.read_range(Uid(1), 0, 1).await.unwrap(), b"0");
    let err = mailbox.read_range(Uid(9), 0, 1).await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotFound);
}

#[tokio::test]
async fn maildrop_lock_is_exclusive_until_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let account = open(dir.path()).await;
    let other = open(dir.path()).await;
    let held = account.lock_maildrop().await.unwrap();
    let err = other.lock_maildrop().await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::InUse);
    // IMAP is not affected.
    let mut mailbox = other
        .open_folder(&FolderName::inbox(), false)
        .await
        .unwrap();
    mailbox.sync().await.unwrap();
    drop(held);
    let again = other.lock_maildrop().await.unwrap();
    drop(again);
}

#[tokio::test]
async fn special_use_folders_are_created_once_and_aliases_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let names = SpecialUseNames::english()
        .with_alias("Gel\u{f6}schte Elemente", SpecialUse::Trash)
        .unwrap();
    let store = MaildirStore::new(dir.path().to_path_buf(), DEFAULT_TEMPLATE.into())
        .with_special_use(names);
    let account = store.open_account(&alice()).await.unwrap();
    let list = account.list_folders().await.unwrap();
    let got: Vec<(&str, bool, Option<SpecialUse>)> = list
        .iter()
        .map(|f| (f.name.as_str(), f.subscribed, f.special_use))
        .collect();
    assert_eq!(
        got,
        vec![
            ("INBOX", true, None),
            ("Archive", true, Some(SpecialUse::Archive)),
            ("Drafts", true, Some(SpecialUse::Drafts)),
            ("Junk", true, Some(SpecialUse::Junk)),
            ("Sent", true, Some(SpecialUse::Sent)),
            ("Trash", true, Some(SpecialUse::Trash)),
        ]
    );
    // Outlook's and localised names land in the special folders.
    account
        .append(&name("Sent Items"), b"s", &Flags::new(), None)
        .await
        .unwrap();
    account
        .append(&name("gel\u{f6}schte elemente"), b"t", &Flags::new(), None)
        .await
        .unwrap();
    assert_eq!(account.status(&name("Sent")).await.unwrap().messages, 1);
    let trash = account
        .open_folder(&name("Deleted Items"), true)
        .await
        .unwrap();
    assert_eq!(trash.messages().len(), 1);
    let err = account
        .create_folder(&name("Junk E-mail"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::AlreadyExists);
    assert_eq!(account.list_folders().await.unwrap().len(), 6);
    // Created once: a deleted Archive stays deleted at the next login.
    account.delete_folder(&name("Archive")).await.unwrap();
    let again = store.open_account(&alice()).await.unwrap();
    assert_eq!(again.list_folders().await.unwrap().len(), 5);
}

#[tokio::test]
async fn a_migrated_alias_folder_is_not_duplicated() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("example.org/alice");
    for sub in [
        "cur",
        "new",
        "tmp",
        ".Sent Items/cur",
        ".Sent Items/new",
        ".Sent Items/tmp",
    ] {
        fs::create_dir_all(root.join(sub)).unwrap();
    }
    let store = MaildirStore::new(dir.path().to_path_buf(), DEFAULT_TEMPLATE.into());
    let account = store.open_account(&alice()).await.unwrap();
    let list = account.list_folders().await.unwrap();
    let sent: Vec<(&str, Option<SpecialUse>)> = list
        .iter()
        .filter(|f| f.special_use == Some(SpecialUse::Sent) || f.name.as_str().starts_with("Sent"))
        .map(|f| (f.name.as_str(), f.special_use))
        .collect();
    assert_eq!(sent, vec![("Sent Items", Some(SpecialUse::Sent))]);
    // "Sent Items" exists for real, so it is not redirected anywhere.
    account
        .append(&name("Sent Items"), b"s", &Flags::new(), None)
        .await
        .unwrap();
    assert_eq!(files_in(&root.join(".Sent Items/cur")).len(), 1);
}

/// Polls a watcher's future a while; true if it resolved.
async fn wakes(watcher: &mut mail_store::ChangeWatcher, within: Duration) -> bool {
    tokio::time::timeout(within, watcher.changed())
        .await
        .is_ok()
}

/// Lets the spurious wake-ups after a change (own writes, the settling of a
/// fresh stamp) pass; fails if the watcher keeps waking with nothing new.
async fn settle(watcher: &mut mail_store::ChangeWatcher) {
    for _ in 0..4 {
        if !wakes(watcher, Duration::from_millis(2300)).await {
            return;
        }
    }
    panic!("watcher keeps waking without changes");
}

#[tokio::test]
async fn watcher_wakes_for_sessions_and_external_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).with_watch_interval(Duration::from_millis(50));
    let account = store.open_account(&alice()).await.unwrap();
    let inbox = FolderName::inbox();
    let mut idle = account.open_folder(&inbox, false).await.unwrap();
    let mut watcher = idle.watch();
    // Nothing happens: no wake-up (after at most a few settling ones).
    settle(&mut watcher).await;

    // Another session's APPEND wakes it (in-process signal; how fast is a
    // benchmark's business, not a test's: the bound below only stops a hang).
    account
        .append(&inbox, b"x", &Flags::new(), None)
        .await
        .unwrap();
    assert!(wakes(&mut watcher, Duration::from_secs(5)).await);
    assert_eq!(
        idle.sync().await.unwrap(),
        vec![MailboxChange::Added(Uid(1))]
    );

    // An MTA writing into new/ is seen by polling.
    let mut watcher = idle.watch();
    settle(&mut watcher).await;
    let root = account.root().to_path_buf();
    fs::write(root.join("tmp/ext"), b"external").unwrap();
    fs::rename(root.join("tmp/ext"), root.join("new/1700000001.M1P9.mta")).unwrap();
    assert!(wakes(&mut watcher, Duration::from_secs(5)).await);
    assert_eq!(
        idle.sync().await.unwrap(),
        vec![MailboxChange::Added(Uid(2))]
    );

    // A change made before watch() but after the last sync is not lost.
    account
        .append(&inbox, b"y", &Flags::new(), None)
        .await
        .unwrap();
    let mut late = idle.watch();
    assert!(wakes(&mut late, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn sync_without_changes_reports_nothing_and_sees_later_ones() {
    let dir = tempfile::tempdir().unwrap();
    let account = open(dir.path()).await;
    let inbox = FolderName::inbox();
    account
        .append(&inbox, b"1", &Flags::new(), None)
        .await
        .unwrap();
    let mut mailbox = account.open_folder(&inbox, false).await.unwrap();
    for _ in 0..3 {
        assert_eq!(mailbox.sync().await.unwrap(), vec![]);
    }
    // A flag change by another program (a rename in cur/) is still seen.
    let cur = account.root().join("cur");
    let file = files_in(&cur).into_iter().next().unwrap();
    fs::rename(cur.join(&file), cur.join(format!("{file}F"))).unwrap();
    assert_eq!(
        mailbox.sync().await.unwrap(),
        vec![MailboxChange::FlagsChanged(Uid(1), flags(&[Flag::Flagged]))]
    );
}

#[tokio::test]
async fn quota_refuses_append_and_copy_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let quota = Quota {
        max_bytes: Some(100),
        max_messages: Some(3),
    };
    let account = store(dir.path())
        .open_account_with_quota(&alice(), quota)
        .await
        .unwrap();
    assert_eq!(account.quota(), quota);
    let inbox = FolderName::inbox();
    account
        .append(&inbox, &[b'a'; 60], &Flags::new(), None)
        .await
        .unwrap();
    let err = account
        .append(&inbox, &[b'b'; 41], &Flags::new(), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::OverQuota);
    account
        .append(&inbox, &[b'c'; 10], &Flags::new(), None)
        .await
        .unwrap();
    assert_eq!(
        account.quota_usage().await.unwrap(),
        QuotaUsage {
            bytes: 70,
            messages: 2
        }
    );
    let mailbox = account.open_folder(&inbox, false).await.unwrap();
    let err = mailbox.copy_to(&[Uid(1)], &inbox).await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::OverQuota);
    mailbox.copy_to(&[Uid(2)], &inbox).await.unwrap();
    let err = account
        .append(&inbox, b"", &Flags::new(), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::OverQuota, "message limit");
    assert_eq!(files_in(&account.root().join("cur")).len(), 3);
    assert!(files_in(&account.root().join("tmp")).is_empty());
}

/// Unmounts a small tmpfs when dropped.
struct TinyFs(std::path::PathBuf);

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A full disk fails the one APPEND with a temporary error and leaves no
/// partial file. Needs permission to mount a tmpfs (root, as in CI); skipped
/// with a note otherwise.
#[tokio::test]
async fn full_disk_is_temporary_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mount_point = dir.path().join("tiny");
    fs::create_dir(&mount_point).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mount_point)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
        return;
    }
    let _guard = TinyFs(mount_point.clone());
    let location = AccountLocation {
        login: "alice@example.org".into(),
        location: Some(mount_point.join("alice").to_string_lossy().into_owned()),
    };
    let account = store(dir.path()).open_account(&location).await.unwrap();
    let inbox = FolderName::inbox();
    account
        .append(&inbox, b"small", &Flags::new(), None)
        .await
        .unwrap();
    let big = vec![b'x'; 256 * 1024];
    let err = account
        .append(&inbox, &big, &Flags::new(), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Temporary, "{err:?}");
    assert!(files_in(&account.root().join("tmp")).is_empty());
    assert_eq!(files_in(&account.root().join("cur")).len(), 1);
    let mailbox = account.open_folder(&inbox, true).await.unwrap();
    assert_eq!(mailbox.messages().len(), 1);
}

#[tokio::test]
async fn read_messages_reads_each_in_order_and_reports_missing_ones() {
    let dir = tempfile::tempdir().unwrap();
    let account = open(dir.path()).await;
    let inbox = FolderName::inbox();
    let bodies: [&[u8]; 3] = [
        b"Subject: a\r\n\r\nA\r\n",
        b"Subject: b\r\n\r\nB\r\n",
        b"Subject: c\r\n\r\nC\r\n",
    ];
    for body in bodies {
        account
            .append(&inbox, body, &Flags::new(), None)
            .await
            .unwrap();
    }
    let mailbox = account.open_folder(&inbox, false).await.unwrap();
    // UID 2 renamed behind our back (a flag change by another program):
    // found again by its base name.
    let cur = account.root().join("cur");
    let second = fs::read_dir(&cur)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .find(|n| fs::read(cur.join(n)).unwrap() == bodies[1])
        .unwrap();
    fs::rename(cur.join(&second), cur.join(format!("{second}S"))).unwrap();
    // UID 3 deleted behind our back: expunged.
    let third = fs::read_dir(&cur)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .find(|n| fs::read(cur.join(n)).unwrap() == bodies[2])
        .unwrap();
    fs::remove_file(cur.join(&third)).unwrap();
    let read = mailbox
        .read_messages(&[Uid(2), Uid(1), Uid(3), Uid(9)])
        .await;
    assert_eq!(read.len(), 4);
    assert_eq!(read[0].as_ref().unwrap(), bodies[1]);
    assert_eq!(read[1].as_ref().unwrap(), bodies[0]);
    assert_eq!(read[2].as_ref().unwrap_err().kind, StoreErrorKind::Expunged);
    assert_eq!(read[3].as_ref().unwrap_err().kind, StoreErrorKind::NotFound);
    // The new name was remembered.
    assert_eq!(mailbox.read_message(Uid(2)).await.unwrap(), bodies[1]);
}

/// `read_ahead` reads on the blocking pool whether or not its future is
/// polled, hands each message to `prepare` with its UID there, and yields
/// one result per UID in the order asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_ahead_reads_without_being_polled_and_prepares_each_message() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let account = open(dir.path()).await;
    let inbox = FolderName::inbox();
    for body in [
        &b"Subject: a\r\n\r\nA\r\n"[..],
        b"Subject: bb\r\n\r\nBB\r\n",
    ] {
        account
            .append(&inbox, body, &Flags::new(), None)
            .await
            .unwrap();
    }
    let mailbox = account.open_folder(&inbox, true).await.unwrap();
    let prepared = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&prepared);
    let reads = mailbox
        .read_ahead(&[Uid(2), Uid(7), Uid(1)], move |uid, bytes| {
            counted.fetch_add(1, Ordering::SeqCst);
            (uid, bytes.len())
        })
        .expect("the Maildir store reads ahead inside a runtime");
    // Not polled yet: both messages get read and prepared all the same.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while prepared.load(Ordering::SeqCst) < 2 {
        assert!(std::time::Instant::now() < deadline, "read ahead never ran");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let reads = reads.await;
    assert_eq!(reads.len(), 3);
    assert_eq!(reads[0].as_ref().unwrap(), &(Uid(2), 19));
    assert_eq!(
        reads[1].as_ref().unwrap_err().kind,
        StoreErrorKind::NotFound
    );
    assert_eq!(reads[2].as_ref().unwrap(), &(Uid(1), 17));
}
