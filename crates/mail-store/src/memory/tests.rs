//! Unit tests of the in-memory backend: UID rules, `\Recent` ownership,
//! change detection between sessions, flags, expunge.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use super::*;
use crate::Flag;

/// The memory store's futures never wait, so one poll finishes them.
fn run<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("memory store future did not complete"),
    }
}

fn flags(list: &[Flag]) -> Flags {
    list.iter().cloned().collect()
}

fn alice() -> AccountLocation {
    AccountLocation {
        login: "alice@example.org".into(),
        location: None,
    }
}

const ALICE: &str = "alice@example.org";

#[test]
fn open_account_creates_inbox_subscribed() {
    let store = MemoryStore::new();
    let account = run(store.open_account(&alice())).unwrap();
    let folders = run(account.list_folders()).unwrap();
    assert_eq!(folders.len(), 1);
    assert!(folders[0].name.is_inbox());
    assert!(folders[0].subscribed);
    assert!(!folders[0].has_children);
}

#[test]
fn deliver_assigns_ascending_uids_and_open_sees_them() {
    let store = MemoryStore::new();
    let a = store.deliver(ALICE, "INBOX", b"one", Flags::new()).unwrap();
    let b = store
        .deliver(ALICE, "INBOX", b"two", flags(&[Flag::Seen]))
        .unwrap();
    assert_eq!(a.uid, Uid(1));
    assert_eq!(b.uid, Uid(2));
    assert_eq!(a.uid_validity, b.uid_validity);
    let account = run(store.open_account(&alice())).unwrap();
    let mailbox = run(account.open_folder(&FolderName::inbox(), false)).unwrap();
    let uids: Vec<Uid> = mailbox.messages().iter().map(|m| m.uid).collect();
    assert_eq!(uids, vec![Uid(1), Uid(2)]);
    assert_eq!(mailbox.messages()[0].size, 3);
    let status = mailbox.status();
    assert_eq!(status.messages, 2);
    assert_eq!(status.unseen, 1);
    assert_eq!(status.recent, 2);
    assert_eq!(status.uid_next, Uid(3));
    assert_eq!(run(mailbox.read_message(Uid(2))).unwrap(), b"two");
}

#[test]
fn uids_are_never_reused_after_expunge() {
    let store = MemoryStore::new();
    store.deliver(ALICE, "INBOX", b"1", Flags::new()).unwrap();
    store.deliver(ALICE, "INBOX", b"2", Flags::new()).unwrap();
    let account = run(store.open_account(&alice())).unwrap();
    let mut mailbox = run(account.open_folder(&FolderName::inbox(), false)).unwrap();
    assert_eq!(run(mailbox.expunge(&[Uid(2)])).unwrap(), vec![Uid(2)]);
    let next = run(account.append(&FolderName::inbox(), b"3", &Flags::new(), Some(7))).unwrap();
    assert_eq!(next.uid, Uid(3));
    let changes = run(mailbox.sync()).unwrap();
    assert_eq!(changes, vec![MailboxChange::Added(Uid(3))]);
    assert_eq!(mailbox.messages()[1].internal_date, 7);
    let err = run(mailbox.read_message(Uid(2))).unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::Expunged);
    let err = run(mailbox.read_message(Uid(9))).unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotFound);
}

#[test]
fn folders_have_distinct_uid_validity() {
    let store = MemoryStore::new();
    let account = run(store.open_account(&alice())).unwrap();
    let sent = FolderName::new("Sent").unwrap();
    run(account.create_folder(&sent)).unwrap();
    let inbox = run(account.open_folder(&FolderName::inbox(), true)).unwrap();
    let sent = run(account.open_folder(&sent, true)).unwrap();
    assert_ne!(inbox.status().uid_validity, sent.status().uid_validity);
}

#[test]
fn recent_belongs_to_the_first_read_write_session() {
    let store = MemoryStore::new();
    store.deliver(ALICE, "INBOX", b"m", Flags::new()).unwrap();
    let account = run(store.open_account(&alice())).unwrap();
    // EXAMINE sees it recent but does not claim it.
    let examine = run(account.open_folder(&FolderName::inbox(), true)).unwrap();
    assert!(examine.messages()[0].recent);
    let first = run(account.open_folder(&FolderName::inbox(), false)).unwrap();
    assert!(first.messages()[0].recent);
    let second = run(account.open_folder(&FolderName::inbox(), false)).unwrap();
    assert!(!second.messages()[0].recent);
    assert_eq!(second.status().recent, 0);
    assert_eq!(first.status().recent, 1);
}

#[test]
fn two_sessions_see_each_others_changes_through_sync() {
    let store = MemoryStore::new();
    for body in [b"a", b"b", b"c"] {
        store.deliver(ALICE, "INBOX", body, Flags::new()).unwrap();
    }
    let account = run(store.open_account(&alice())).unwrap();
    let mut one = run(account.open_folder(&FolderName::inbox(), false)).unwrap();
    let mut two = run(account.open_folder(&FolderName::inbox(), false)).unwrap();

    let seen = flags(&[Flag::Seen]);
    let result = run(one.store_flags(&[Uid(1), Uid(42)], FlagOp::Add, &seen)).unwrap();
    assert_eq!(result, vec![(Uid(1), seen.clone())]);
    assert_eq!(run(one.expunge(&[Uid(2)])).unwrap(), vec![Uid(2)]);
    store.deliver(ALICE, "INBOX", b"d", Flags::new()).unwrap();

    // The session that made the changes hears only of the delivery.
    assert_eq!(run(one.sync()).unwrap(), vec![MailboxChange::Added(Uid(4))]);
    // The other hears all three, expunges first.
    assert_eq!(
        run(two.sync()).unwrap(),
        vec![
            MailboxChange::Expunged(Uid(2)),
            MailboxChange::FlagsChanged(Uid(1), seen.clone()),
            MailboxChange::Added(Uid(4)),
        ]
    );
    assert_eq!(run(two.sync()).unwrap(), vec![]);
    let uids: Vec<Uid> = two.messages().iter().map(|m| m.uid).collect();
    assert_eq!(uids, vec![Uid(1), Uid(3), Uid(4)]);
    let view = |mb: &MemoryMailbox| -> Vec<(Uid, Flags)> {
        mb.messages()
            .iter()
            .map(|m| (m.uid, m.flags.clone()))
            .collect()
    };
    assert_eq!(view(&one), view(&two));
}

#[test]
fn expunge_by_another_session_first_is_left_to_sync() {
    let store = MemoryStore::new();
    store.deliver(ALICE, "INBOX", b"a", Flags::new()).unwrap();
    store.deliver(ALICE, "INBOX", b"b", Flags::new()).unwrap();
    let account = run(store.open_account(&alice())).unwrap();
    let mut one = run(account.open_folder(&FolderName::inbox(), false)).unwrap();
    let mut two = run(account.open_folder(&FolderName::inbox(), false)).unwrap();
    assert_eq!(run(two.expunge(&[Uid(1)])).unwrap(), vec![Uid(1)]);
    // One asks for 1 and 2: only 2 is its own doing; 1 stays until sync.
    assert_eq!(run(one.expunge(&[Uid(1), Uid(2)])).unwrap(), vec![Uid(2)]);
    assert_eq!(one.messages().len(), 1);
    assert_eq!(
        run(one.sync()).unwrap(),
        vec![MailboxChange::Expunged(Uid(1))]
    );
    assert!(one.messages().is_empty());
    assert_eq!(store.message_count(ALICE, "INBOX"), 0);
}

#[test]
fn flag_operations_replace_add_remove() {
    let store = MemoryStore::new();
    store
        .deliver(ALICE, "INBOX", b"a", flags(&[Flag::Seen, Flag::Draft]))
        .unwrap();
    let account = run(store.open_account(&alice())).unwrap();
    let mut mb = run(account.open_folder(&FolderName::inbox(), false)).unwrap();
    let kw = Flag::Keyword("$Forwarded".into());
    let r = run(mb.store_flags(&[Uid(1)], FlagOp::Add, &flags(std::slice::from_ref(&kw)))).unwrap();
    assert_eq!(r[0].1, flags(&[Flag::Seen, Flag::Draft, kw.clone()]));
    let r = run(mb.store_flags(&[Uid(1)], FlagOp::Remove, &flags(&[Flag::Draft]))).unwrap();
    assert_eq!(r[0].1, flags(&[Flag::Seen, kw]));
    let r = run(mb.store_flags(&[Uid(1)], FlagOp::Replace, &flags(&[Flag::Flagged]))).unwrap();
    assert_eq!(r[0].1, flags(&[Flag::Flagged]));
    assert_eq!(mb.messages()[0].flags, flags(&[Flag::Flagged]));
}

#[test]
fn read_only_mailbox_refuses_changes() {
    let store = MemoryStore::new();
    store.deliver(ALICE, "INBOX", b"a", Flags::new()).unwrap();
    let account = run(store.open_account(&alice())).unwrap();
    let mut mb = run(account.open_folder(&FolderName::inbox(), true)).unwrap();
    let err = run(mb.store_flags(&[Uid(1)], FlagOp::Add, &flags(&[Flag::Seen]))).unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotPossible);
    let err = run(mb.expunge(&[Uid(1)])).unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotPossible);
    assert_eq!(store.message_count(ALICE, "INBOX"), 1);
}

#[test]
fn create_folder_makes_parents_and_refuses_duplicates() {
    let store = MemoryStore::new();
    let account = run(store.open_account(&alice())).unwrap();
    run(account.create_folder(&FolderName::new("Work.Projects.2025").unwrap())).unwrap();
    let err = run(account.create_folder(&FolderName::new("Work").unwrap())).unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::AlreadyExists);
    let err = run(account.create_folder(&FolderName::new("inbox").unwrap())).unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::AlreadyExists);
    let names: Vec<(String, bool)> = run(account.list_folders())
        .unwrap()
        .into_iter()
        .map(|f| (f.name.to_string(), f.has_children))
        .collect();
    assert_eq!(
        names,
        vec![
            ("INBOX".to_string(), false),
            ("Work".to_string(), true),
            ("Work.Projects".to_string(), true),
            ("Work.Projects.2025".to_string(), false),
        ]
    );
}

#[test]
fn missing_folder_is_not_found() {
    let store = MemoryStore::new();
    let account = run(store.open_account(&alice())).unwrap();
    let nope = FolderName::new("Nope").unwrap();
    let err = run(account.open_folder(&nope, false)).unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotFound);
    let err = run(account.append(&nope, b"x", &Flags::new(), None)).unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotFound);
}

#[test]
fn deliver_creates_folder_and_records_uidl() {
    let store = MemoryStore::new();
    store
        .deliver_with_uidl(ALICE, "Archive", b"x", Flags::new(), "000001a24b3c")
        .unwrap();
    store.set_subscribed(ALICE, "Archive", true).unwrap();
    let account = run(store.open_account(&alice())).unwrap();
    let folders = run(account.list_folders()).unwrap();
    assert!(
        folders
            .iter()
            .any(|f| f.name.as_str() == "Archive" && f.subscribed)
    );
    let mb = run(account.open_folder(&FolderName::new("Archive").unwrap(), true)).unwrap();
    assert_eq!(mb.messages()[0].pop3_uidl.as_deref(), Some("000001a24b3c"));
}

#[test]
fn accounts_are_separate() {
    let store = MemoryStore::new();
    store.deliver(ALICE, "INBOX", b"a", Flags::new()).unwrap();
    let bob = AccountLocation {
        login: "bob@example.org".into(),
        location: None,
    };
    let account = run(store.open_account(&bob)).unwrap();
    let mb = run(account.open_folder(&FolderName::inbox(), false)).unwrap();
    assert!(mb.messages().is_empty());
}

#[test]
fn uid_space_exhaustion_is_refused() {
    let store = MemoryStore::new();
    store.deliver(ALICE, "INBOX", b"a", Flags::new()).unwrap();
    {
        let mut state = store.lock();
        state
            .folder_mut(ALICE, &FolderName::inbox())
            .unwrap()
            .uid_next = Uid::MAX.0;
    }
    let last = store.deliver(ALICE, "INBOX", b"b", Flags::new()).unwrap();
    assert_eq!(last.uid, Uid::MAX);
    let err = store
        .deliver(ALICE, "INBOX", b"c", Flags::new())
        .unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotPossible);
}

fn name(s: &str) -> FolderName {
    FolderName::new(s).unwrap()
}

fn folder_names(account: &MemoryAccount) -> Vec<String> {
    run(account.list_folders())
        .unwrap()
        .into_iter()
        .map(|f| f.name.to_string())
        .collect()
}

#[test]
fn delete_refuses_inbox_and_parents_and_keeps_subscription() {
    let store = MemoryStore::new();
    let account = run(store.open_account(&alice())).unwrap();
    run(account.create_folder(&name("Work.Old"))).unwrap();
    run(account.subscribe(&name("Work.Old"))).unwrap();
    let err = run(account.delete_folder(&FolderName::inbox())).unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotPossible);
    let err = run(account.delete_folder(&name("Work"))).unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotPossible);
    let err = run(account.delete_folder(&name("Nope"))).unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotFound);
    run(account.delete_folder(&name("Work.Old"))).unwrap();
    run(account.delete_folder(&name("Work"))).unwrap();
    assert_eq!(folder_names(&account), vec!["INBOX"]);
    // RFC 3501 §6.3.6: the subscription stays.
    let subs = run(account.subscriptions()).unwrap();
    assert_eq!(subs, vec![FolderName::inbox(), name("Work.Old")]);
    run(account.unsubscribe(&name("Work.Old"))).unwrap();
    let err = run(account.unsubscribe(&name("Work.Old"))).unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotFound);
    let err = run(account.subscribe(&name("Gone"))).unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotFound);
}

#[test]
fn rename_moves_children_and_subscriptions_and_keeps_uids() {
    let store = MemoryStore::new();
    store
        .deliver(ALICE, "Work.Projects", b"p", Flags::new())
        .unwrap();
    let account = run(store.open_account(&alice())).unwrap();
    run(account.subscribe(&name("Work.Projects"))).unwrap();
    let before = run(account.status(&name("Work.Projects"))).unwrap();
    run(account.rename_folder(&name("Work"), &name("Archive.2024"))).unwrap();
    assert_eq!(
        folder_names(&account),
        vec!["INBOX", "Archive", "Archive.2024", "Archive.2024.Projects"]
    );
    let after = run(account.status(&name("Archive.2024.Projects"))).unwrap();
    assert_eq!(before, after, "UIDVALIDITY and UIDs travel with the folder");
    assert!(
        run(account.subscriptions())
            .unwrap()
            .contains(&name("Archive.2024.Projects"))
    );
    let err = run(account.rename_folder(&name("Archive"), &name("Archive.2024.X"))).unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotPossible);
    let err = run(account.rename_folder(&name("Archive.2024"), &name("Archive"))).unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::AlreadyExists);
    let err = run(account.rename_folder(&name("Nope"), &name("Other"))).unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotFound);
}

#[test]
fn renaming_inbox_moves_its_messages_and_leaves_it_empty() {
    let store = MemoryStore::new();
    store
        .deliver(ALICE, "INBOX", b"one", flags(&[Flag::Seen]))
        .unwrap();
    store.deliver(ALICE, "INBOX", b"two", Flags::new()).unwrap();
    let account = run(store.open_account(&alice())).unwrap();
    run(account.rename_folder(&FolderName::inbox(), &name("Old Inbox"))).unwrap();
    assert_eq!(store.message_count(ALICE, "INBOX"), 0);
    let old = run(account.open_folder(&name("Old Inbox"), true)).unwrap();
    assert_eq!(old.messages().len(), 2);
    assert_eq!(old.messages()[0].flags, flags(&[Flag::Seen]));
    assert_eq!(run(old.read_message(Uid(2))).unwrap(), b"two");
    // INBOX still works and never reuses its UIDs.
    let next = run(account.append(&FolderName::inbox(), b"3", &Flags::new(), None)).unwrap();
    assert_eq!(next.uid, Uid(3));
}

#[test]
fn status_counts_without_claiming_recent() {
    let store = MemoryStore::new();
    store
        .deliver(ALICE, "INBOX", b"aa", flags(&[Flag::Seen]))
        .unwrap();
    store.deliver(ALICE, "INBOX", b"bbb", Flags::new()).unwrap();
    let account = run(store.open_account(&alice())).unwrap();
    let status = run(account.status(&FolderName::inbox())).unwrap();
    assert_eq!((status.messages, status.unseen, status.recent), (2, 1, 2));
    assert_eq!(status.uid_next, Uid(3));
    assert_eq!(run(account.folder_size(&FolderName::inbox())).unwrap(), 5);
    // STATUS did not claim \Recent: the first SELECT still gets it.
    let mailbox = run(account.open_folder(&FolderName::inbox(), false)).unwrap();
    assert_eq!(mailbox.status().recent, 2);
    assert_eq!(run(account.status(&FolderName::inbox())).unwrap().recent, 0);
    let err = run(account.status(&name("Nope"))).unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotFound);
}

#[test]
fn copy_and_move_report_uid_pairs() {
    let store = MemoryStore::new();
    for body in [b"a", b"b", b"c"] {
        store
            .deliver(ALICE, "INBOX", body, flags(&[Flag::Flagged]))
            .unwrap();
    }
    let account = run(store.open_account(&alice())).unwrap();
    run(account.create_folder(&name("Keep"))).unwrap();
    let mut inbox = run(account.open_folder(&FolderName::inbox(), false)).unwrap();
    let copied = run(inbox.copy_to(&[Uid(3), Uid(1), Uid(9)], &name("Keep"))).unwrap();
    assert_eq!(copied.uids, vec![(Uid(1), Uid(1)), (Uid(3), Uid(2))]);
    let keep_status = run(account.status(&name("Keep"))).unwrap();
    assert_eq!(copied.uid_validity, keep_status.uid_validity);
    assert_eq!(store.message_count(ALICE, "INBOX"), 3);

    let moved = run(inbox.move_to(&[Uid(2)], &name("Keep"))).unwrap();
    assert_eq!(moved.uids, vec![(Uid(2), Uid(3))]);
    let uids: Vec<Uid> = inbox.messages().iter().map(|m| m.uid).collect();
    assert_eq!(uids, vec![Uid(1), Uid(3)]);
    assert_eq!(run(inbox.sync()).unwrap(), vec![], "own move is not news");
    let keep = run(account.open_folder(&name("Keep"), true)).unwrap();
    assert_eq!(run(keep.read_message(Uid(3))).unwrap(), b"b");
    assert_eq!(keep.messages()[2].flags, flags(&[Flag::Flagged]));
    assert!(keep.messages().iter().all(|m| m.recent));

    let err = run(inbox.move_to(&[Uid(1)], &FolderName::inbox())).unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotPossible);
    let err = run(inbox.copy_to(&[Uid(1)], &name("Nope"))).unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotFound);
    let mut examine = run(account.open_folder(&FolderName::inbox(), true)).unwrap();
    assert!(run(examine.copy_to(&[Uid(1)], &name("Keep"))).is_ok());
    let err = run(examine.move_to(&[Uid(1)], &name("Keep"))).unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::NotPossible);
}

#[test]
fn read_range_clips_to_the_message() {
    let store = MemoryStore::new();
    store
        .deliver(ALICE, "INBOX", b"0123456789", Flags::new())
        .unwrap();
    let account = run(store.open_account(&alice())).unwrap();
    let inbox = run(account.open_folder(&FolderName::inbox(), true)).unwrap();
    assert_eq!(run(inbox.read_range(Uid(1), 2, 3)).unwrap(), b"234");
    assert_eq!(run(inbox.read_range(Uid(1), 8, 100)).unwrap(), b"89");
    assert_eq!(run(inbox.read_range(Uid(1), 50, 5)).unwrap(), b"");
    assert_eq!(
        run(inbox.read_range(Uid(1), 0, u64::MAX)).unwrap().len(),
        10
    );
}

#[test]
fn maildrop_lock_is_exclusive_until_dropped() {
    let store = MemoryStore::new();
    let account = run(store.open_account(&alice())).unwrap();
    let other = run(store.open_account(&alice())).unwrap();
    let held = run(account.lock_maildrop()).unwrap();
    let err = run(other.lock_maildrop()).unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::InUse);
    // IMAP is unaffected.
    assert!(run(other.open_folder(&FolderName::inbox(), false)).is_ok());
    drop(held);
    assert!(run(other.lock_maildrop()).is_ok());
}

#[test]
fn quota_refuses_append_and_copy_over_the_limit() {
    let store = MemoryStore::new();
    let quota = Quota {
        max_bytes: Some(10),
        max_messages: Some(3),
    };
    let account = run(store.open_account_with_quota(&alice(), quota)).unwrap();
    assert_eq!(account.quota(), quota);
    let inbox = FolderName::inbox();
    run(account.append(&inbox, b"12345", &Flags::new(), None)).unwrap();
    let err = run(account.append(&inbox, b"123456", &Flags::new(), None)).unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::OverQuota);
    run(account.append(&inbox, b"12", &Flags::new(), None)).unwrap();
    let usage = run(account.quota_usage()).unwrap();
    assert_eq!(
        usage,
        QuotaUsage {
            bytes: 7,
            messages: 2
        }
    );
    let mailbox = run(account.open_folder(&inbox, false)).unwrap();
    let err = run(mailbox.copy_to(&[Uid(1)], &inbox)).unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::OverQuota);
    assert_eq!(store.message_count(ALICE, "INBOX"), 2, "nothing partial");
    run(mailbox.copy_to(&[Uid(2)], &inbox)).unwrap();
    let err = run(account.append(&inbox, b"", &Flags::new(), None)).unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::OverQuota, "message count limit");
}

#[test]
fn special_use_folders_and_aliases() {
    let names = SpecialUseNames::english()
        .with_name(crate::SpecialUse::Sent, "Gesendet")
        .unwrap()
        .with_alias("Gesendete Elemente", crate::SpecialUse::Sent)
        .unwrap();
    let store = MemoryStore::new().with_special_use(names);
    let account = run(store.open_account(&alice())).unwrap();
    let list = run(account.list_folders()).unwrap();
    let got: Vec<(&str, bool, Option<crate::SpecialUse>)> = list
        .iter()
        .map(|f| (f.name.as_str(), f.subscribed, f.special_use))
        .collect();
    use crate::SpecialUse::*;
    assert_eq!(
        got,
        vec![
            ("INBOX", true, None),
            ("Archive", true, Some(Archive)),
            ("Drafts", true, Some(Drafts)),
            ("Gesendet", true, Some(Sent)),
            ("Junk", true, Some(Junk)),
            ("Trash", true, Some(Trash)),
        ]
    );
    // Outlook's and the configured names land in the special folders.
    run(account.append(&name("Sent Items"), b"s", &Flags::new(), None)).unwrap();
    run(account.append(&name("gesendete elemente"), b"t", &Flags::new(), None)).unwrap();
    run(account.append(&name("Deleted Items"), b"d", &Flags::new(), None)).unwrap();
    assert_eq!(store.message_count(ALICE, "Gesendet"), 2);
    assert_eq!(store.message_count(ALICE, "Trash"), 1);
    let err = run(account.create_folder(&name("Junk E-mail"))).unwrap_err();
    assert_eq!(err.kind, StoreErrorKind::AlreadyExists);
    let sent = run(account.open_folder(&name("Sent Items"), true)).unwrap();
    assert_eq!(sent.messages().len(), 2);
    assert_eq!(folder_names(&account).len(), 6, "no duplicates created");
}

#[test]
fn watcher_wakes_on_changes_by_others_and_not_twice() {
    let store = MemoryStore::new();
    let account = run(store.open_account(&alice())).unwrap();
    let mut mailbox = run(account.open_folder(&FolderName::inbox(), false)).unwrap();
    let mut watcher = mailbox.watch();
    let mut cx = Context::from_waker(Waker::noop());
    assert!(pin!(watcher.changed()).poll(&mut cx).is_pending());
    store.deliver(ALICE, "INBOX", b"new", Flags::new()).unwrap();
    assert!(pin!(watcher.changed()).poll(&mut cx).is_ready());
    assert!(pin!(watcher.changed()).poll(&mut cx).is_pending());
    assert_eq!(
        run(mailbox.sync()).unwrap(),
        vec![MailboxChange::Added(Uid(1))]
    );
    // A change between the last sync and watch() is not lost.
    store
        .deliver(ALICE, "INBOX", b"newer", Flags::new())
        .unwrap();
    let mut late = mailbox.watch();
    assert!(pin!(late.changed()).poll(&mut cx).is_ready());
    // Expunges by another session wake it too.
    run(mailbox.sync()).unwrap();
    let mut watcher = mailbox.watch();
    let mut other = run(account.open_folder(&FolderName::inbox(), false)).unwrap();
    run(other.expunge(&[Uid(1)])).unwrap();
    assert!(pin!(watcher.changed()).poll(&mut cx).is_ready());
}

fn modseq_of(mailbox: &MemoryMailbox, uid: u32) -> u64 {
    mailbox
        .messages()
        .iter()
        .find(|m| m.uid == Uid(uid))
        .unwrap()
        .modseq
}

#[test]
fn modseqs_rise_with_each_change_and_expunge() {
    let store = MemoryStore::new();
    for body in [&b"1"[..], b"2", b"3"] {
        store.deliver(ALICE, "INBOX", body, Flags::new()).unwrap();
    }
    let account = run(store.open_account(&alice())).unwrap();
    let mut a = run(account.open_folder(&FolderName::inbox(), false)).unwrap();
    let mut b = run(account.open_folder(&FolderName::inbox(), false)).unwrap();
    let h0 = a.status().highest_modseq;
    assert!(h0 >= 1);
    assert!(a.messages().iter().all(|m| m.modseq >= 1 && m.modseq <= h0));
    let m2 = modseq_of(&a, 2);

    run(a.store_flags(&[Uid(1)], FlagOp::Add, &flags(&[Flag::Seen]))).unwrap();
    let s1 = modseq_of(&a, 1);
    assert!(s1 > h0);
    assert_eq!(a.status().highest_modseq, s1);
    assert_eq!(modseq_of(&a, 2), m2, "untouched message keeps its modseq");
    // No change, no new modseq.
    run(a.store_flags(&[Uid(1)], FlagOp::Add, &flags(&[Flag::Seen]))).unwrap();
    assert_eq!(modseq_of(&a, 1), s1);

    // The other session learns the change and its modseq.
    run(b.sync()).unwrap();
    assert_eq!(modseq_of(&b, 1), s1);
    // A change undone by another session is still reported (new modseq).
    run(b.store_flags(&[Uid(3)], FlagOp::Add, &flags(&[Flag::Flagged]))).unwrap();
    run(b.store_flags(&[Uid(3)], FlagOp::Remove, &flags(&[Flag::Flagged]))).unwrap();
    let changes = run(a.sync()).unwrap();
    assert_eq!(
        changes,
        vec![MailboxChange::FlagsChanged(Uid(3), Flags::new())]
    );
    let before_expunge = a.status().highest_modseq;
    assert!(modseq_of(&a, 3) > s1);

    // Expunge raises HIGHESTMODSEQ, also as STATUS sees it.
    run(a.expunge(&[Uid(2)])).unwrap();
    assert!(a.status().highest_modseq > before_expunge);
    let status = run(account.status(&FolderName::inbox())).unwrap();
    assert_eq!(status.highest_modseq, a.status().highest_modseq);
}

#[test]
fn unchanged_since_leaves_modified_messages_alone() {
    let store = MemoryStore::new();
    for body in [&b"1"[..], b"2"] {
        store.deliver(ALICE, "INBOX", body, Flags::new()).unwrap();
    }
    let account = run(store.open_account(&alice())).unwrap();
    let mut a = run(account.open_folder(&FolderName::inbox(), false)).unwrap();
    let mut b = run(account.open_folder(&FolderName::inbox(), false)).unwrap();
    let known = a.status().highest_modseq;
    // b changes UID 1 after a looked.
    run(b.store_flags(&[Uid(1)], FlagOp::Add, &flags(&[Flag::Flagged]))).unwrap();
    let out = run(a.store_flags_unchanged_since(
        &[Uid(1), Uid(2), Uid(9)],
        FlagOp::Add,
        &flags(&[Flag::Seen]),
        known,
    ))
    .unwrap();
    assert_eq!(out.modified, vec![Uid(1)]);
    assert_eq!(out.stored, vec![(Uid(2), flags(&[Flag::Seen]))]);
    run(a.sync()).unwrap();
    assert_eq!(a.messages()[0].flags, flags(&[Flag::Flagged]));
    // UNCHANGEDSINCE 0 never succeeds on an existing message.
    let out = run(a.store_flags_unchanged_since(&[Uid(2)], FlagOp::Add, &flags(&[Flag::Draft]), 0))
        .unwrap();
    assert_eq!(out.modified, vec![Uid(2)]);
    // Read-only sessions cannot store conditionally either.
    let mut ro = run(account.open_folder(&FolderName::inbox(), true)).unwrap();
    assert!(
        run(ro.store_flags_unchanged_since(&[Uid(2)], FlagOp::Add, &Flags::new(), u64::MAX))
            .is_err()
    );
}

#[test]
fn cached_fields_are_shared_bounded_and_dropped_with_their_message() {
    let store = MemoryStore::new();
    for body in [&b"1"[..], b"2"] {
        store.deliver(ALICE, "INBOX", body, Flags::new()).unwrap();
    }
    let account = run(store.open_account(&alice())).unwrap();
    let mut a = run(account.open_folder(&FolderName::inbox(), false)).unwrap();
    let b = run(account.open_folder(&FolderName::inbox(), true)).unwrap();
    run(a.cache_fields(
        CachedField::Envelope,
        vec![
            (Uid(1), b"e1".to_vec()),
            (Uid(2), b"e2".to_vec()),
            (Uid(7), b"no such message".to_vec()),
        ],
    ))
    .unwrap();
    run(a.cache_fields(
        CachedField::Body,
        vec![(Uid(1), vec![0; crate::MAX_CACHED_FIELD_LEN + 1])],
    ))
    .unwrap();
    assert_eq!(
        run(b.cached_fields(&[Uid(1), Uid(2), Uid(7)], CachedField::Envelope)).unwrap(),
        vec![Some(b"e1".to_vec()), Some(b"e2".to_vec()), None]
    );
    assert_eq!(
        run(b.cached_fields(&[Uid(1)], CachedField::Body)).unwrap(),
        vec![None],
        "over the size limit: not kept"
    );
    assert_eq!(
        run(b.cached_fields(&[Uid(1)], CachedField::BodyStructure)).unwrap(),
        vec![None]
    );
    run(a.expunge(&[Uid(1)])).unwrap();
    assert_eq!(
        run(b.cached_fields(&[Uid(1), Uid(2)], CachedField::Envelope)).unwrap(),
        vec![None, Some(b"e2".to_vec())]
    );
}
