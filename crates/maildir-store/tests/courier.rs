//! Courier takeover in place (issue 8): a Maildir left by Courier-IMAP /
//! Courier-POP3 (`fixtures/courier/`, formats and sources in its README) is
//! opened through the `mail-store` traits and must show exactly Courier's
//! UIDVALIDITY, UIDs, next UID, flags, keywords, subscriptions and POP3
//! UIDLs, without changing any message's contents or mtime.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use mail_store::{
    AccountLocation, AccountStore, Flag, Flags, FolderName, MailStore, Mailbox, Uid, UidValidity,
};
use maildir_store::{DEFAULT_TEMPLATE, MaildirStore, courier};

const MTIME: u64 = 1_100_000_100;

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Copies the fixture, adds the `tmp/` dirs git cannot keep, and gives
/// every message a known mtime.
fn fixture(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/courier/alice");
    let root = dir.join("alice");
    copy_tree(&src, &root);
    for folder in [root.clone(), root.join(".Work")] {
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(folder.join(sub)).unwrap();
            for e in fs::read_dir(folder.join(sub)).unwrap() {
                let f = fs::File::options()
                    .write(true)
                    .open(e.unwrap().path())
                    .unwrap();
                f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(MTIME))
                    .unwrap();
            }
        }
    }
    root
}

fn location(root: &Path) -> AccountLocation {
    AccountLocation {
        login: "alice@example.org".into(),
        location: Some(root.to_string_lossy().into_owned()),
    }
}

fn flags(list: &[Flag]) -> Flags {
    list.iter().cloned().collect()
}

fn kw(name: &str) -> Flag {
    Flag::Keyword(name.into())
}

async fn check(store: &MaildirStore, root: &Path) {
    let account = store.open_account(&location(root)).await.unwrap();
    let inbox = account
        .open_folder(&FolderName::inbox(), false)
        .await
        .unwrap();
    let status = inbox.status();
    assert_eq!(status.uid_validity, UidValidity(1_100_000_000));
    assert_eq!(status.uid_next, Uid(10));
    let m = inbox.messages();
    let uids: Vec<u32> = m.iter().map(|m| m.uid.0).collect();
    assert_eq!(uids, vec![3, 5, 7, 9]);
    assert_eq!(
        m[0].flags,
        flags(&[Flag::Seen, kw("$Label1"), kw("project")])
    );
    assert_eq!(m[1].flags, flags(&[Flag::Seen, Flag::Answered]));
    assert_eq!(m[2].flags, flags(&[Flag::Flagged, kw("$Label1")]));
    assert_eq!(m[3].flags, flags(&[]));
    let uidls: Vec<Option<&str>> = m.iter().map(|m| m.pop3_uidl.as_deref()).collect();
    assert_eq!(
        uidls,
        vec![
            Some("UID3-1100000000"),
            Some("1100000002.M2P100.oldhost"),
            None,
            Some("UID11-1100000000"),
        ]
    );
    // Internal dates are the untouched mtimes; contents are unchanged.
    for msg in m.iter() {
        assert_eq!(msg.internal_date, MTIME as i64, "uid {}", msg.uid);
    }
    assert_eq!(
        inbox.read_message(Uid(7)).await.unwrap(),
        b"Subject: three\r\n\r\nthird\r\n"
    );

    let work = account
        .open_folder(&FolderName::new("Work").unwrap(), true)
        .await
        .unwrap();
    assert_eq!(work.status().uid_validity, UidValidity(1_100_000_500));
    assert_eq!(work.status().uid_next, Uid(3));
    let w: Vec<u32> = work.messages().iter().map(|m| m.uid.0).collect();
    assert_eq!(w, vec![2]);

    let subs: Vec<String> = account
        .subscriptions()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.as_str().to_string())
        .collect();
    for name in ["INBOX", "Sent", "Work"] {
        assert!(subs.contains(&name.to_string()), "{name} in {subs:?}");
    }
}

#[tokio::test]
async fn courier_maildir_is_taken_over_exactly_and_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let root = fixture(dir.path());
    let store = MaildirStore::new(dir.path().join("unused"), DEFAULT_TEMPLATE.into());
    check(&store, &root).await;
    let uidlist = fs::read_to_string(root.join("dovecot-uidlist")).unwrap();
    assert!(uidlist.starts_with("3 V1100000000 N10 G"), "{uidlist}");
    assert!(uidlist.contains("3 PUID3-1100000000 :1100000001.M1P100.oldhost\n"));
    assert!(uidlist.contains("9 PUID11-1100000000 :1100000004.M4P100.oldhost\n"));
    // Courier's own files are left as they were.
    assert_eq!(
        fs::read_to_string(root.join("courierimapuiddb")).unwrap(),
        "1 1100000000 9\n3 1100000001.M1P100.oldhost\n5 1100000002.M2P100.oldhost\n7 1100000003.M3P100.oldhost\n"
    );
    // A second store (a restart) sees the same state; nothing is redone.
    let again = MaildirStore::new(dir.path().join("unused"), DEFAULT_TEMPLATE.into());
    check(&again, &root).await;
    assert_eq!(
        fs::read_to_string(root.join("dovecot-uidlist")).unwrap(),
        uidlist
    );
}

#[test]
fn dry_run_reports_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = fixture(dir.path());
    let before: Vec<_> = fs::read_dir(root.join("cur"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let report = courier::take_over_locked(&root, &root, Duration::from_secs(5), true)
        .unwrap()
        .unwrap();
    assert_eq!(report.uid_validity, 1_100_000_000);
    assert_eq!(report.messages, 4);
    assert_eq!(report.pop3_uidls, 3);
    assert_eq!(report.keyword_messages, 2);
    assert!(report.unmapped.is_empty(), "{:?}", report.unmapped);
    assert!(!root.join("dovecot-uidlist").exists());
    assert!(!root.join("dovecot-keywords").exists());
    let after: Vec<_> = fs::read_dir(root.join("cur"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after);
}

#[test]
fn more_than_26_keywords_are_reported_not_lost_silently() {
    let dir = tempfile::tempdir().unwrap();
    let root = fixture(dir.path());
    let mut list = String::new();
    for i in 0..30 {
        list.push_str(&format!("kw{i}\n"));
    }
    list.push_str("\n1100000001.M1P100.oldhost:0 29\n");
    fs::write(root.join("courierimapkeywords/:list"), list).unwrap();
    let report = courier::take_over_locked(&root, &root, Duration::from_secs(5), true)
        .unwrap()
        .unwrap();
    // kw26..kw29, and `$Label1` from the update file of message 3.
    assert_eq!(report.unmapped.len(), 5, "{:?}", report.unmapped);
    assert!(report.unmapped[0].contains("kw26"));
    assert!(report.unmapped[4].contains("$Label1"));
}
