//! Helpers shared by the maildir-store integration tests: Alice's account
//! on a real directory, INBOX, and the folder lock held as another process
//! would hold it.
#![allow(dead_code, clippy::unwrap_used)]

use std::fs;
use std::path::Path;

use mail_store::{
    AccountLocation, AccountStore, Flag, Flags, FolderName, MailStore, SpecialUseNames,
};
use maildir_store::{DEFAULT_TEMPLATE, MaildirAccount, MaildirMailbox, MaildirStore};

pub fn store(root: &Path) -> MaildirStore {
    MaildirStore::new(root.to_path_buf(), DEFAULT_TEMPLATE.to_string())
        .with_special_use(SpecialUseNames::none())
}

pub fn alice() -> AccountLocation {
    AccountLocation {
        login: "alice@example.org".into(),
        location: None,
    }
}

pub fn flags(list: &[Flag]) -> Flags {
    list.iter().cloned().collect()
}

/// Alice's account in `store`, with `count` small messages in INBOX.
pub async fn account_in(store: &MaildirStore, count: usize) -> MaildirAccount {
    let account = store.open_account(&alice()).await.unwrap();
    for i in 0..count {
        account
            .append(
                &FolderName::inbox(),
                format!("Subject: {i}\r\n\r\nbody").as_bytes(),
                &Flags::new(),
                None,
            )
            .await
            .unwrap();
    }
    account
}

/// INBOX of `account`, opened read-only (EXAMINE) or read-write.
pub async fn inbox(account: &MaildirAccount, read_only: bool) -> MaildirMailbox {
    account
        .open_folder(&FolderName::inbox(), read_only)
        .await
        .unwrap()
}

/// Holds a folder's inter-process lock the way another process would.
pub fn hold_folder_lock(dir: &Path) -> fs::File {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(maildir_store::LOCK_FILE))
        .unwrap();
    file.lock().unwrap();
    file
}
