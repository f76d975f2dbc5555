//! Streamed APPEND (`maildir_store::spool`): the message is written to the
//! account's `tmp/` as it arrives and moved into the folder like any APPEND;
//! a spool that is dropped, refused by the quota, aimed at a missing folder
//! or cut short by a full disk leaves nothing behind.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::path::Path;

use mail_store::{
    AccountLocation, AccountStore, AppendSpool, Flag, Flags, FolderName, MailStore, Mailbox, Quota,
    SpecialUseNames, StoreErrorKind, Uid,
};
use maildir_store::spool::SPOOL_BUFFER;
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

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Every file below the account's `tmp/` directories.
fn tmp_files(account: &MaildirAccount) -> Vec<String> {
    let mut all = files_in(&account.root().join("tmp"));
    for entry in fs::read_dir(account.root()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() && path.join("tmp").is_dir() {
            all.extend(files_in(&path.join("tmp")));
        }
    }
    all
}

/// `len` octets in pieces of 16 KiB, as the IMAP session hands them over.
async fn fill(spool: &mut impl AppendSpool, message: &[u8]) {
    for piece in message.chunks(16 * 1024) {
        spool.write(piece).await.unwrap();
    }
}

fn message(len: usize) -> Vec<u8> {
    let mut m = b"Subject: spooled\r\n\r\n".to_vec();
    m.extend((0..len - m.len()).map(|i| b'a' + (i % 23) as u8));
    m
}

#[tokio::test]
async fn spooled_message_lands_in_the_folder_intact() {
    let dir = tempfile::tempdir().unwrap();
    let account = store(dir.path()).open_account(&alice()).await.unwrap();
    let folder = FolderName::new("Archive").unwrap();
    account.create_folder(&folder).await.unwrap();
    let big = message(3 * SPOOL_BUFFER + 12_345);
    let mut spool = account.create_spool().await.unwrap();
    fill(&mut spool, &big).await;
    assert_eq!(spool.len(), big.len() as u64);
    // While it arrives, it is a file in the account's tmp/, on disk.
    let tmp = tmp_files(&account);
    assert_eq!(tmp.len(), 1);
    let on_disk = fs::metadata(account.root().join("tmp").join(&tmp[0]))
        .unwrap()
        .len();
    assert!(on_disk >= 3 * SPOOL_BUFFER as u64, "{on_disk}");
    let flags: Flags = [Flag::Seen].into_iter().collect();
    let outcome = account
        .append_spool(&folder, spool, &flags, Some(1_000_000_000))
        .await
        .unwrap();
    assert_eq!(outcome.uid, Uid(1));
    assert!(tmp_files(&account).is_empty());
    let mailbox = account.open_folder(&folder, true).await.unwrap();
    let meta = &mailbox.messages()[0];
    assert_eq!(meta.flags, flags);
    assert_eq!(meta.internal_date, 1_000_000_000);
    assert_eq!(meta.size, big.len() as u64);
    assert_eq!(mailbox.read_message(Uid(1)).await.unwrap(), big);
}

#[tokio::test]
async fn dropped_spool_leaves_no_tmp_file() {
    let dir = tempfile::tempdir().unwrap();
    let account = store(dir.path()).open_account(&alice()).await.unwrap();
    let mut spool = account.create_spool().await.unwrap();
    fill(&mut spool, &message(2 * SPOOL_BUFFER + 1)).await;
    assert_eq!(tmp_files(&account).len(), 1);
    drop(spool);
    assert!(tmp_files(&account).is_empty());
    let empty = account.create_spool().await.unwrap();
    drop(empty);
    assert!(tmp_files(&account).is_empty());
}

#[tokio::test]
async fn refused_spools_leave_nothing_visible() {
    let dir = tempfile::tempdir().unwrap();
    let quota = Quota {
        max_bytes: Some(100_000),
        max_messages: None,
    };
    let account = store(dir.path())
        .open_account_with_quota(&alice(), quota)
        .await
        .unwrap();
    let inbox = FolderName::inbox();
    let mut spool = account.create_spool().await.unwrap();
    fill(&mut spool, &message(100_001)).await;
    let err = account
        .append_spool(&inbox, spool, &Flags::new(), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::OverQuota);
    let mut spool = account.create_spool().await.unwrap();
    fill(&mut spool, &message(1000)).await;
    let err = account
        .append_spool(
            &FolderName::new("Nope").unwrap(),
            spool,
            &Flags::new(),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotFound);
    assert!(tmp_files(&account).is_empty());
    assert!(files_in(&account.root().join("cur")).is_empty());
    assert!(files_in(&account.root().join("new")).is_empty());
    let mailbox = account.open_folder(&inbox, true).await.unwrap();
    assert!(mailbox.messages().is_empty());
    // Within the quota it works.
    let mut spool = account.create_spool().await.unwrap();
    fill(&mut spool, &message(99_000)).await;
    account
        .append_spool(&inbox, spool, &Flags::new(), None)
        .await
        .unwrap();
}

/// Unmounts a small tmpfs when dropped.
struct TinyFs(std::path::PathBuf);

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A full disk in the middle of a spool: a temporary error from `write`
/// (or at the latest from `append_spool`), and no file is left. Needs
/// permission to mount a tmpfs (root, as in CI); skipped with a note otherwise.
#[tokio::test]
async fn full_disk_mid_spool_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mount_point = dir.path().join("tiny");
    fs::create_dir(&mount_point).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=512k", "tmpfs"])
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
    let big = message(2 * 1024 * 1024);
    let mut spool = account.create_spool().await.unwrap();
    let mut failed = None;
    for piece in big.chunks(16 * 1024) {
        if let Err(err) = spool.write(piece).await {
            failed = Some(err);
            break;
        }
    }
    let err = match failed {
        Some(err) => {
            drop(spool);
            err
        }
        None => account
            .append_spool(&inbox, spool, &Flags::new(), None)
            .await
            .unwrap_err(),
    };
    assert_eq!(err.kind, StoreErrorKind::Temporary, "{err:?}");
    assert!(tmp_files(&account).is_empty());
    assert!(files_in(&account.root().join("cur")).is_empty());
    // The disk is usable again at once.
    account
        .append(&inbox, b"small", &Flags::new(), None)
        .await
        .unwrap();
}
