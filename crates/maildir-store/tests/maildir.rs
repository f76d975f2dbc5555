//! End-to-end tests of the Maildir backend through the `mail-store` traits,
//! on real directories: persistence of UIDs and flags, external delivery,
//! Dovecot takeover, two sessions, two "processes", locking, and refusal of
//! paths that would leave the mail root.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;
use std::time::Duration;

use mail_store::{
    AccountLocation, AccountStore, Flag, FlagOp, Flags, FolderName, MailStore, Mailbox,
    MailboxChange, StoreErrorKind, Uid, UidValidity,
};
use maildir_store::{DEFAULT_TEMPLATE, MaildirStore};

fn store(root: &Path) -> MaildirStore {
    MaildirStore::new(root.to_path_buf(), DEFAULT_TEMPLATE.to_string())
}

fn alice() -> AccountLocation {
    AccountLocation {
        login: "alice@Example.org".into(),
        location: None,
    }
}

fn flags(list: &[Flag]) -> Flags {
    list.iter().cloned().collect()
}

fn uids(mailbox: &impl Mailbox) -> Vec<u32> {
    mailbox.messages().iter().map(|m| m.uid.0).collect()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn append_read_and_reopen_keep_uids_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let account = store(dir.path()).open_account(&alice()).await.unwrap();
    let root = dir.path().join("example.org/alice");
    assert_eq!(account.root(), root);
    assert!(root.join("cur").is_dir() && root.join("new").is_dir() && root.join("tmp").is_dir());

    let inbox = FolderName::inbox();
    let none = Flags::new();
    let a = account
        .append(
            &inbox,
            b"Subject: a\r\n\r\nA\r\n",
            &none,
            Some(1_600_000_000),
        )
        .await;
    let a = a.unwrap();
    let seen = flags(&[Flag::Seen]);
    let b = account
        .append(&inbox, b"Subject: b\r\n\r\nB\r\n", &seen, None)
        .await
        .unwrap();
    assert_eq!((a.uid, b.uid), (Uid(1), Uid(2)));
    assert_eq!(a.uid_validity, b.uid_validity);

    let mut mailbox = account.open_folder(&inbox, false).await.unwrap();
    assert_eq!(uids(&mailbox), vec![1, 2]);
    assert_eq!(mailbox.messages()[0].internal_date, 1_600_000_000);
    assert_eq!(mailbox.messages()[0].size, 17);
    assert_eq!(mailbox.messages()[1].flags, flags(&[Flag::Seen]));
    assert_eq!(
        mailbox.read_message(Uid(1)).await.unwrap(),
        b"Subject: a\r\n\r\nA\r\n"
    );
    let status = mailbox.status();
    assert_eq!((status.messages, status.unseen, status.recent), (2, 1, 2));
    assert_eq!(status.uid_next, Uid(3));

    let fwd = Flag::Keyword("$Forwarded".into());
    let changed = mailbox
        .store_flags(
            &[Uid(1)],
            FlagOp::Add,
            &flags(&[Flag::Flagged, fwd.clone()]),
        )
        .await
        .unwrap();
    assert_eq!(
        changed,
        vec![(Uid(1), flags(&[Flag::Flagged, fwd.clone()]))]
    );
    // Flags live in the file name, keywords through dovecot-keywords.
    let cur = names_in(&root.join("cur"));
    assert!(cur.iter().any(|n| n.ends_with(":2,Fa")), "{cur:?}");
    assert!(cur.iter().any(|n| n.ends_with(":2,S")), "{cur:?}");
    assert_eq!(
        fs::read_to_string(root.join("dovecot-keywords")).unwrap(),
        "0 $Forwarded\n"
    );
    assert_eq!(
        mailbox.read_message(Uid(1)).await.unwrap(),
        b"Subject: a\r\n\r\nA\r\n"
    );
    drop(mailbox);

    // A new store (a restarted server) sees the same UIDs, UIDVALIDITY, flags.
    let again = store(dir.path()).open_account(&alice()).await.unwrap();
    let mailbox = again.open_folder(&inbox, true).await.unwrap();
    assert_eq!(uids(&mailbox), vec![1, 2]);
    assert_eq!(mailbox.status().uid_validity, a.uid_validity);
    assert_eq!(mailbox.messages()[0].flags, flags(&[Flag::Flagged, fwd]));
    // Already claimed as \Recent by the first session.
    assert_eq!(mailbox.status().recent, 0);
    // Dovecot's format: a v3 header, then records appended one per APPEND.
    let uidlist = fs::read_to_string(root.join("dovecot-uidlist")).unwrap();
    assert!(
        uidlist.starts_with(&format!("3 V{} N", a.uid_validity)),
        "{uidlist}"
    );
    let parsed = maildir_store::uidlist::UidList::parse(&uidlist).unwrap();
    assert_eq!(parsed.next_uid, 3);
    assert_eq!(parsed.entries.len(), 2);
}

#[tokio::test]
async fn external_delivery_to_new_is_picked_up_and_moved_to_cur() {
    let dir = tempfile::tempdir().unwrap();
    let account = store(dir.path()).open_account(&alice()).await.unwrap();
    let root = account.root().to_path_buf();
    let inbox = FolderName::inbox();
    account
        .append(&inbox, b"first", &Flags::new(), None)
        .await
        .unwrap();
    let mut mailbox = account.open_folder(&inbox, false).await.unwrap();

    // An MTA: tmp/ then rename into new/.
    for (i, name) in ["1700000000.M1P1.mx", "1700000001.M1P1.mx,S=6"]
        .iter()
        .enumerate()
    {
        let tmp = root.join("tmp").join(name);
        fs::write(&tmp, format!("mail {i}")).unwrap();
        let file = fs::File::options().write(true).open(&tmp).unwrap();
        file.set_modified(delivery_time(1_700_000_000 + i as u64))
            .unwrap();
        fs::rename(&tmp, root.join("new").join(name)).unwrap();
    }
    let changes = mailbox.sync().await.unwrap();
    assert_eq!(
        changes,
        vec![MailboxChange::Added(Uid(2)), MailboxChange::Added(Uid(3))]
    );
    assert!(names_in(&root.join("new")).is_empty());
    let cur = names_in(&root.join("cur"));
    assert!(
        cur.contains(&"1700000000.M1P1.mx:2,".to_string()),
        "{cur:?}"
    );
    assert!(
        cur.contains(&"1700000001.M1P1.mx,S=6:2,".to_string()),
        "{cur:?}"
    );
    assert_eq!(mailbox.read_message(Uid(2)).await.unwrap(), b"mail 0");
    assert_eq!(mailbox.messages()[1].internal_date, 1_700_000_000);
    assert_eq!(mailbox.messages()[2].size, 6);
    assert!(mailbox.messages()[2].recent);
    assert_eq!(mailbox.sync().await.unwrap(), vec![]);
}

fn delivery_time(secs: u64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + Duration::from_secs(secs)
}

#[tokio::test]
async fn expunge_does_not_renumber_and_uids_are_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    let account = store(dir.path()).open_account(&alice()).await.unwrap();
    let inbox = FolderName::inbox();
    for body in ["1", "2", "3", "4"] {
        account
            .append(&inbox, body.as_bytes(), &Flags::new(), None)
            .await
            .unwrap();
    }
    let mut mailbox = account.open_folder(&inbox, false).await.unwrap();
    let removed = mailbox.expunge(&[Uid(2), Uid(4), Uid(9)]).await.unwrap();
    assert_eq!(removed, vec![Uid(2), Uid(4)]);
    assert_eq!(uids(&mailbox), vec![1, 3]);
    let next = account
        .append(&inbox, b"5", &Flags::new(), None)
        .await
        .unwrap();
    assert_eq!(next.uid, Uid(5));
    assert_eq!(
        mailbox.sync().await.unwrap(),
        vec![MailboxChange::Added(Uid(5))]
    );
    assert_eq!(uids(&mailbox), vec![1, 3, 5]);
    assert_eq!(mailbox.read_message(Uid(3)).await.unwrap(), b"3");
    let err = mailbox.read_message(Uid(2)).await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Expunged);

    let reopened = store(dir.path()).open_account(&alice()).await.unwrap();
    let mailbox = reopened.open_folder(&inbox, true).await.unwrap();
    assert_eq!(uids(&mailbox), vec![1, 3, 5]);
    assert_eq!(mailbox.status().uid_next, Uid(6));
}

#[tokio::test]
async fn two_sessions_see_each_others_changes() {
    let dir = tempfile::tempdir().unwrap();
    let account = store(dir.path()).open_account(&alice()).await.unwrap();
    let inbox = FolderName::inbox();
    for body in ["a", "b", "c"] {
        account
            .append(&inbox, body.as_bytes(), &Flags::new(), None)
            .await
            .unwrap();
    }
    let mut one = account.open_folder(&inbox, false).await.unwrap();
    let mut two = account.open_folder(&inbox, false).await.unwrap();
    assert_eq!(one.status().recent, 3);
    assert_eq!(two.status().recent, 0);

    let seen = flags(&[Flag::Seen]);
    one.store_flags(&[Uid(1)], FlagOp::Add, &seen)
        .await
        .unwrap();
    one.expunge(&[Uid(2)]).await.unwrap();
    account
        .append(&inbox, b"d", &Flags::new(), None)
        .await
        .unwrap();
    assert_eq!(
        one.sync().await.unwrap(),
        vec![MailboxChange::Added(Uid(4))]
    );
    assert_eq!(
        two.sync().await.unwrap(),
        vec![
            MailboxChange::Expunged(Uid(2)),
            MailboxChange::FlagsChanged(Uid(1), seen.clone()),
            MailboxChange::Added(Uid(4)),
        ]
    );
    // Two changes flags on a file one renamed: it finds the new name.
    let res = two
        .store_flags(&[Uid(1)], FlagOp::Add, &flags(&[Flag::Answered]))
        .await
        .unwrap();
    assert_eq!(res, vec![(Uid(1), flags(&[Flag::Seen, Flag::Answered]))]);
    assert_eq!(one.read_message(Uid(1)).await.unwrap(), b"a");
    let res = one
        .store_flags(&[Uid(1)], FlagOp::Remove, &seen)
        .await
        .unwrap();
    assert_eq!(res, vec![(Uid(1), flags(&[Flag::Answered]))]);
    // Expunged by one first: two's expunge removes nothing, sync reports it.
    one.expunge(&[Uid(3)]).await.unwrap();
    assert_eq!(two.expunge(&[Uid(3)]).await.unwrap(), vec![]);
    assert!(
        two.sync()
            .await
            .unwrap()
            .contains(&MailboxChange::Expunged(Uid(3)))
    );
}

#[tokio::test]
async fn read_only_refuses_changes() {
    let dir = tempfile::tempdir().unwrap();
    let account = store(dir.path()).open_account(&alice()).await.unwrap();
    let inbox = FolderName::inbox();
    account
        .append(&inbox, b"x", &Flags::new(), None)
        .await
        .unwrap();
    let mut mailbox = account.open_folder(&inbox, true).await.unwrap();
    assert!(mailbox.messages()[0].recent);
    let err = mailbox
        .store_flags(&[Uid(1)], FlagOp::Add, &flags(&[Flag::Seen]))
        .await;
    assert_eq!(err.unwrap_err().kind, StoreErrorKind::NotPossible);
    assert_eq!(
        mailbox.expunge(&[Uid(1)]).await.unwrap_err().kind,
        StoreErrorKind::NotPossible
    );
    // EXAMINE did not claim \Recent.
    let rw = account.open_folder(&inbox, false).await.unwrap();
    assert!(rw.messages()[0].recent);
}

#[tokio::test]
async fn folders_subscriptions_and_distinct_uidvalidity() {
    let dir = tempfile::tempdir().unwrap();
    let account = store(dir.path())
        .with_special_use(mail_store::SpecialUseNames::none())
        .open_account(&alice())
        .await
        .unwrap();
    let root = account.root().to_path_buf();
    let sent = FolderName::new("Sent").unwrap();
    let deep = FolderName::new("Archiv.Entw\u{fc}rfe & Co").unwrap();
    account.create_folder(&sent).await.unwrap();
    account.create_folder(&deep).await.unwrap();
    let err = account.create_folder(&sent).await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::AlreadyExists);
    assert!(root.join(".Archiv.Entw&APw-rfe &- Co/cur").is_dir());
    assert!(root.join(".Archiv/maildirfolder").is_file());
    fs::write(root.join("subscriptions"), "V\t2\n\nINBOX\nSent\n").unwrap();

    let list = account.list_folders().await.unwrap();
    let got: Vec<(&str, bool, bool)> = list
        .iter()
        .map(|f| (f.name.as_str(), f.subscribed, f.has_children))
        .collect();
    assert_eq!(
        got,
        vec![
            ("INBOX", true, false),
            ("Archiv", false, true),
            ("Archiv.Entw\u{fc}rfe & Co", false, false),
            ("Sent", true, false),
        ]
    );

    let a = account
        .append(&sent, b"s", &Flags::new(), None)
        .await
        .unwrap();
    let b = account
        .append(&deep, b"d", &Flags::new(), None)
        .await
        .unwrap();
    let inbox = account
        .open_folder(&FolderName::inbox(), true)
        .await
        .unwrap();
    let validities = [a.uid_validity, b.uid_validity, inbox.status().uid_validity];
    assert!(validities[0] != validities[1] && validities[1] != validities[2]);
    assert!(validities[0] != validities[2]);

    let missing = FolderName::new("Nope").unwrap();
    assert_eq!(
        account.open_folder(&missing, false).await.unwrap_err().kind,
        StoreErrorKind::NotFound
    );
    let err = account
        .append(&missing, b"x", &Flags::new(), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotFound);
}

#[tokio::test]
async fn dovecot_maildir_is_taken_over_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("example.org/alice");
    let folder = root.join(".Work");
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(root.join(sub)).unwrap();
        fs::create_dir_all(folder.join(sub)).unwrap();
    }
    fs::write(
        folder.join("dovecot-uidlist"),
        "3 V1275660208 N25022 G3085f01b7f11094c501100008c4a11c1\n\
         25006 :1276528487.M364837P9451.kurkku,S=5,W=5\n\
         25017 W2481 P0000612a4d2ee1ec :1276533073.M242911P3632.kurkku,S=5\n",
    )
    .unwrap();
    fs::write(folder.join("dovecot-keywords"), "0 $Junk\n1 $NotJunk\n").unwrap();
    fs::write(
        folder.join("cur/1276528487.M364837P9451.kurkku,S=5,W=5:2,Sa"),
        "hello",
    )
    .unwrap();
    fs::write(
        folder.join("cur/1276533073.M242911P3632.kurkku,S=5:2,RS"),
        "world",
    )
    .unwrap();
    // A file Dovecot had not seen yet.
    fs::write(folder.join("new/1276600000.M1P1.kurkku"), "later").unwrap();

    let account = store(dir.path()).open_account(&alice()).await.unwrap();
    let work = FolderName::new("Work").unwrap();
    let mailbox = account.open_folder(&work, false).await.unwrap();
    let status = mailbox.status();
    assert_eq!(status.uid_validity, UidValidity(1275660208));
    assert_eq!(uids(&mailbox), vec![25006, 25017, 25022]);
    assert_eq!(status.uid_next, Uid(25023));
    let m = mailbox.messages();
    assert_eq!(
        m[0].flags,
        flags(&[Flag::Seen, Flag::Keyword("$Junk".into())])
    );
    assert_eq!(m[1].flags, flags(&[Flag::Seen, Flag::Answered]));
    assert_eq!(m[1].pop3_uidl.as_deref(), Some("0000612a4d2ee1ec"));
    // Only the message Dovecot never saw is new.
    assert_eq!(m.iter().filter(|m| m.recent).count(), 1);
    assert_eq!(mailbox.read_message(Uid(25017)).await.unwrap(), b"world");
    // The ext fields survive our rewrite.
    let text = fs::read_to_string(folder.join("dovecot-uidlist")).unwrap();
    assert!(text.starts_with("3 V1275660208 N25023 G3085f01b7f11094c501100008c4a11c1\n"));
    assert!(text.contains("25017 W2481 P0000612a4d2ee1ec :1276533073.M242911P3632.kurkku,S=5\n"));
    assert!(text.contains("25022 :1276600000.M1P1.kurkku\n"));
}

#[tokio::test]
async fn path_traversal_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mail_root = dir.path().join("mail");
    let store = store(&mail_root);
    for login in [
        "../../etc@example.org",
        "a/../../b@example.org",
        "alice@..",
        ".x@y.z",
    ] {
        let account = AccountLocation {
            login: login.into(),
            location: None,
        };
        let err = store.open_account(&account).await.unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::InvalidName, "{login}");
    }
    for location in ["../outside", "x/../../outside", "/abs/../etc"] {
        let account = AccountLocation {
            login: "a@b.c".into(),
            location: Some(location.into()),
        };
        let err = store.open_account(&account).await.unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::InvalidName, "{location}");
    }
    assert!(!dir.path().join("outside").exists());
    // A symlinked folder directory is not followed.
    let account = store.open_account(&alice()).await.unwrap();
    std::os::unix::fs::symlink(dir.path(), account.root().join(".Escape")).unwrap();
    let escape = FolderName::new("Escape").unwrap();
    let err = account.open_folder(&escape, false).await.unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotFound);
    assert!(
        account
            .list_folders()
            .await
            .unwrap()
            .iter()
            .all(|f| f.name != escape)
    );
}

#[tokio::test]
async fn lock_timeout_gives_a_temporary_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).with_lock_timeout(Duration::from_millis(100));
    let account = store.open_account(&alice()).await.unwrap();
    let lock_path = account.root().join(maildir_store::LOCK_FILE);
    let holder = fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path);
    let holder = holder.unwrap();
    holder.lock().unwrap();
    let err = account
        .append(&FolderName::inbox(), b"x", &Flags::new(), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Temporary);
    // Nothing partial is left in tmp/ or cur/.
    assert!(names_in(&account.root().join("tmp")).is_empty());
    assert!(names_in(&account.root().join("cur")).is_empty());
    holder.unlock().unwrap();
    let ok = account
        .append(&FolderName::inbox(), b"x", &Flags::new(), None)
        .await
        .unwrap();
    assert_eq!(ok.uid, Uid(1));
}

/// Two independent stores (as two server processes would have) plus an
/// external deliverer write at once: every message is present exactly once,
/// with unique, ascending UIDs.
#[test]
fn concurrent_writers_get_unique_uids() {
    // Two sessions and the deliverer: 3 × 334 = 1,002 messages (issue 3).
    const PER_WRITER: usize = 334;
    let dir = tempfile::tempdir().unwrap();
    let mail_root = dir.path().to_path_buf();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let root = runtime
        .block_on(store(&mail_root).open_account(&alice()))
        .unwrap()
        .root()
        .to_path_buf();

    let mut threads = Vec::new();
    for writer in 0..2 {
        let mail_root = mail_root.clone();
        threads.push(std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            runtime.block_on(async {
                let account = store(&mail_root).open_account(&alice()).await.unwrap();
                let mut got = Vec::new();
                for i in 0..PER_WRITER {
                    let body = format!("writer {writer} message {i}");
                    let out = account
                        .append(&FolderName::inbox(), body.as_bytes(), &Flags::new(), None)
                        .await
                        .unwrap();
                    got.push(out.uid);
                }
                got
            })
        }));
    }
    let deliverer = {
        let root = root.clone();
        std::thread::spawn(move || {
            for i in 0..PER_WRITER {
                let name = format!("1700000000.M{i}P99999.mta");
                fs::write(root.join("tmp").join(&name), format!("external {i}")).unwrap();
                fs::rename(root.join("tmp").join(&name), root.join("new").join(&name)).unwrap();
            }
        })
    };
    let mut all_uids = Vec::new();
    for t in threads {
        let got = t.join().unwrap();
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "one writer's UIDs ascend"
        );
        all_uids.extend(got);
    }
    deliverer.join().unwrap();

    let (messages, bodies) = runtime.block_on(async {
        let account = store(&mail_root).open_account(&alice()).await.unwrap();
        let mailbox = account
            .open_folder(&FolderName::inbox(), false)
            .await
            .unwrap();
        let mut bodies = Vec::new();
        for m in mailbox.messages() {
            bodies.push(String::from_utf8(mailbox.read_message(m.uid).await.unwrap()).unwrap());
        }
        (mailbox.messages().to_vec(), bodies)
    });
    assert_eq!(messages.len(), 3 * PER_WRITER);
    assert!(messages.windows(2).all(|w| w[0].uid < w[1].uid));
    assert_eq!(messages.last().unwrap().uid, Uid(3 * PER_WRITER as u32));
    let mut sorted = bodies.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 3 * PER_WRITER, "every message once");
    all_uids.sort();
    all_uids.dedup();
    assert_eq!(all_uids.len(), 2 * PER_WRITER, "no UID given twice");
}
