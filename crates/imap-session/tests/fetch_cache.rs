//! FETCH of ENVELOPE / BODY / BODYSTRUCTURE and of the top-level header
//! section (and the header SEARCH keys) through the store's
//! derived-field cache: the same bytes on the wire whether served from the
//! cache or parsed, damaged entries ignored (and replaced), and a whole
//! mailbox fetched with a number of store calls that grows with the number
//! of batches, not of messages. The store is the in-memory one behind a
//! wrapper that counts the calls.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use account_auth::testing::StaticAuthenticator;
use imap_session::{ImapSession, Next};
use mail_store::memory::{MemoryAccount, MemoryMailbox, MemoryStore};
use mail_store::{
    AccountLocation, AccountStore, AppendOutcome, CachedField, ChangeWatcher, ConditionalStore,
    CopyOutcome, FlagOp, Flags, FolderInfo, FolderName, MailStore, Mailbox, MailboxChange,
    MailboxStatus, MaildropLock, MessageMeta, Quota, QuotaUsage, StoreResult, Uid,
};

const USER: &str = "alice@example.org";

/// How often each storage call was made.
#[derive(Debug, Default)]
struct Counts {
    read_message: AtomicUsize,
    cached_fields: AtomicUsize,
    cache_fields: AtomicUsize,
    /// The most messages asked for in one `read_messages` call, and the
    /// most octets read in one beyond its first message.
    largest_batch: AtomicUsize,
    largest_batch_extra_octets: AtomicUsize,
    /// `Mailbox::read_ahead` is offered (else the session must fall back
    /// to `read_messages`).
    reads_ahead: AtomicBool,
    /// Batches started by `read_ahead` whose results are not yet taken
    /// (or dropped), and the most there ever were at once.
    outstanding: AtomicUsize,
    most_outstanding: AtomicUsize,
}

impl Counts {
    /// Records one batch read (by either call): its size, and the octets
    /// beyond its first message.
    fn batch(&self, len: usize, extra_octets: usize) {
        self.largest_batch.fetch_max(len, Ordering::SeqCst);
        self.largest_batch_extra_octets
            .fetch_max(extra_octets, Ordering::SeqCst);
    }
}

/// One outstanding `read_ahead` batch, counted until its results are taken
/// or dropped.
struct Outstanding(Arc<Counts>);

impl Outstanding {
    fn new(counts: &Arc<Counts>) -> Self {
        let now = counts.outstanding.fetch_add(1, Ordering::SeqCst) + 1;
        counts.most_outstanding.fetch_max(now, Ordering::SeqCst);
        Outstanding(Arc::clone(counts))
    }
}

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Counts {
    fn get(&self) -> (usize, usize, usize) {
        (
            self.read_message.load(Ordering::SeqCst),
            self.cached_fields.load(Ordering::SeqCst),
            self.cache_fields.load(Ordering::SeqCst),
        )
    }
    fn reset(&self) {
        self.read_message.store(0, Ordering::SeqCst);
        self.cached_fields.store(0, Ordering::SeqCst);
        self.cache_fields.store(0, Ordering::SeqCst);
        self.largest_batch.store(0, Ordering::SeqCst);
        self.largest_batch_extra_octets.store(0, Ordering::SeqCst);
        self.most_outstanding.store(0, Ordering::SeqCst);
    }
}

#[derive(Clone)]
struct Counting {
    inner: MemoryStore,
    counts: Arc<Counts>,
}

struct CountingAccount {
    inner: MemoryAccount,
    counts: Arc<Counts>,
}

struct CountingMailbox {
    inner: MemoryMailbox,
    counts: Arc<Counts>,
}

impl MailStore for Counting {
    type Account = CountingAccount;

    async fn open_account(&self, account: &AccountLocation) -> StoreResult<CountingAccount> {
        self.open_account_with_quota(account, Quota::UNLIMITED)
            .await
    }

    async fn open_account_with_quota(
        &self,
        account: &AccountLocation,
        quota: Quota,
    ) -> StoreResult<CountingAccount> {
        Ok(CountingAccount {
            inner: self.inner.open_account_with_quota(account, quota).await?,
            counts: Arc::clone(&self.counts),
        })
    }
}

impl AccountStore for CountingAccount {
    type Mailbox = CountingMailbox;
    type Spool = <MemoryAccount as AccountStore>::Spool;

    async fn create_spool(&self) -> StoreResult<Self::Spool> {
        self.inner.create_spool().await
    }
    async fn append_spool(
        &self,
        name: &FolderName,
        spool: Self::Spool,
        flags: &Flags,
        internal_date: Option<i64>,
    ) -> StoreResult<AppendOutcome> {
        self.inner
            .append_spool(name, spool, flags, internal_date)
            .await
    }

    async fn list_folders(&self) -> StoreResult<Vec<FolderInfo>> {
        self.inner.list_folders().await
    }
    async fn create_folder(&self, name: &FolderName) -> StoreResult<()> {
        self.inner.create_folder(name).await
    }
    async fn open_folder(
        &self,
        name: &FolderName,
        read_only: bool,
    ) -> StoreResult<CountingMailbox> {
        Ok(CountingMailbox {
            inner: self.inner.open_folder(name, read_only).await?,
            counts: Arc::clone(&self.counts),
        })
    }
    async fn append(
        &self,
        name: &FolderName,
        message: &[u8],
        flags: &Flags,
        internal_date: Option<i64>,
    ) -> StoreResult<AppendOutcome> {
        self.inner.append(name, message, flags, internal_date).await
    }
    async fn delete_folder(&self, name: &FolderName) -> StoreResult<()> {
        self.inner.delete_folder(name).await
    }
    async fn rename_folder(&self, from: &FolderName, to: &FolderName) -> StoreResult<()> {
        self.inner.rename_folder(from, to).await
    }
    async fn subscribe(&self, name: &FolderName) -> StoreResult<()> {
        self.inner.subscribe(name).await
    }
    async fn unsubscribe(&self, name: &FolderName) -> StoreResult<()> {
        self.inner.unsubscribe(name).await
    }
    async fn subscriptions(&self) -> StoreResult<Vec<FolderName>> {
        self.inner.subscriptions().await
    }
    async fn status(&self, name: &FolderName) -> StoreResult<MailboxStatus> {
        self.inner.status(name).await
    }
    async fn folder_size(&self, name: &FolderName) -> StoreResult<u64> {
        self.inner.folder_size(name).await
    }
    async fn quota_usage(&self) -> StoreResult<QuotaUsage> {
        self.inner.quota_usage().await
    }
    fn quota(&self) -> Quota {
        self.inner.quota()
    }
    async fn lock_maildrop(&self) -> StoreResult<MaildropLock> {
        self.inner.lock_maildrop().await
    }
}

impl Mailbox for CountingMailbox {
    fn status(&self) -> MailboxStatus {
        self.inner.status()
    }
    fn messages(&self) -> &[MessageMeta] {
        self.inner.messages()
    }
    async fn sync(&mut self) -> StoreResult<Vec<MailboxChange>> {
        self.inner.sync().await
    }
    async fn read_message(&self, uid: Uid) -> StoreResult<Vec<u8>> {
        self.counts.read_message.fetch_add(1, Ordering::SeqCst);
        self.inner.read_message(uid).await
    }
    async fn read_messages(&self, uids: &[Uid]) -> Vec<StoreResult<Vec<u8>>> {
        let mut out = Vec::with_capacity(uids.len());
        for &uid in uids {
            out.push(self.read_message(uid).await);
        }
        let extra: usize = out
            .iter()
            .skip(1)
            .map(|r| r.as_ref().map_or(0, Vec::len))
            .sum();
        self.counts.batch(uids.len(), extra);
        out
    }
    fn read_ahead<T, F>(&self, uids: &[Uid], prepare: F) -> Option<mail_store::ReadAhead<T>>
    where
        T: Send + Sync + 'static,
        F: Fn(Uid, Vec<u8>) -> T + Send + 'static,
    {
        if !self.counts.reads_ahead.load(Ordering::SeqCst) {
            return None;
        }
        let guard = Outstanding::new(&self.counts);
        let first = uids.first().copied();
        let extra = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&extra);
        let counts = Arc::clone(&self.counts);
        // The in-memory store reads (and prepares) before it returns.
        let reads = self.inner.read_ahead(uids, move |uid, bytes| {
            counts.read_message.fetch_add(1, Ordering::SeqCst);
            if Some(uid) != first {
                counted.fetch_add(bytes.len(), Ordering::SeqCst);
            }
            prepare(uid, bytes)
        })?;
        self.counts.batch(uids.len(), extra.load(Ordering::SeqCst));
        Some(Box::pin(async move {
            let reads = reads.await;
            drop(guard);
            reads
        }))
    }
    async fn store_flags(
        &mut self,
        uids: &[Uid],
        op: FlagOp,
        flags: &Flags,
    ) -> StoreResult<Vec<(Uid, Flags)>> {
        self.inner.store_flags(uids, op, flags).await
    }
    async fn store_flags_unchanged_since(
        &mut self,
        uids: &[Uid],
        op: FlagOp,
        flags: &Flags,
        unchanged_since: u64,
    ) -> StoreResult<ConditionalStore> {
        self.inner
            .store_flags_unchanged_since(uids, op, flags, unchanged_since)
            .await
    }
    async fn cached_fields(
        &self,
        uids: &[Uid],
        field: CachedField,
    ) -> StoreResult<Vec<Option<Vec<u8>>>> {
        self.counts.cached_fields.fetch_add(1, Ordering::SeqCst);
        self.inner.cached_fields(uids, field).await
    }
    async fn cache_fields(
        &self,
        field: CachedField,
        entries: Vec<(Uid, Vec<u8>)>,
    ) -> StoreResult<()> {
        self.counts.cache_fields.fetch_add(1, Ordering::SeqCst);
        self.inner.cache_fields(field, entries).await
    }
    async fn expunge(&mut self, uids: &[Uid]) -> StoreResult<Vec<Uid>> {
        self.inner.expunge(uids).await
    }
    async fn copy_to(&self, uids: &[Uid], dest: &FolderName) -> StoreResult<CopyOutcome> {
        self.inner.copy_to(uids, dest).await
    }
    async fn move_to(&mut self, uids: &[Uid], dest: &FolderName) -> StoreResult<CopyOutcome> {
        self.inner.move_to(uids, dest).await
    }
    async fn read_range(&self, uid: Uid, offset: u64, len: u64) -> StoreResult<Vec<u8>> {
        self.counts.read_message.fetch_add(1, Ordering::SeqCst);
        self.inner.read_range(uid, offset, len).await
    }
    fn watch(&self) -> ChangeWatcher {
        self.inner.watch()
    }
}

type Session = ImapSession<Counting, StaticAuthenticator>;

fn setup() -> (MemoryStore, Arc<Counts>, Session) {
    let inner = MemoryStore::new();
    let counts = Arc::new(Counts::default());
    let store = Counting {
        inner: inner.clone(),
        counts: Arc::clone(&counts),
    };
    (inner, counts, new_session(&store))
}

fn new_session(store: &Counting) -> Session {
    common::session(store, 9)
}

async fn send(session: &mut Session, input: &str) -> Vec<u8> {
    common::send_bytes(session, input).await
}

async fn selected(session: &mut Session) {
    let out = send(session, "L LOGIN alice@example.org secret\r\n").await;
    assert!(out.starts_with(b"L OK"));
    let out = send(session, "S EXAMINE INBOX\r\n").await;
    assert!(String::from_utf8_lossy(&out).contains("S OK"));
}

const MULTIPART: &[u8] = b"From: \"Bob\" <bob@example.org>\r\nTo: alice@example.org\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nMessage-ID: <m1@example.org>\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello\r\n--b\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"fwd.eml\"\r\n\r\nFrom: carol@example.org\r\nSubject: inner\r\n\r\ninner body\r\n--b--\r\n";
const PLAIN: &[u8] = b"From: dave@example.org\r\nSubject: plain\r\n\r\nJust text.\r\n";

async fn folder(store: &MemoryStore) -> MemoryMailbox {
    let account = store
        .open_account(&AccountLocation {
            login: USER.into(),
            location: None,
        })
        .await
        .unwrap();
    account
        .open_folder(&FolderName::inbox(), true)
        .await
        .unwrap()
}

/// The same FETCH twice: the first reads and parses and fills the cache,
/// the second reads nothing, and the bytes are identical.
#[tokio::test]
async fn second_fetch_is_served_from_the_cache_byte_identical() {
    let (store, counts, mut s) = setup();
    store
        .deliver(USER, "INBOX", MULTIPART, Flags::new())
        .unwrap();
    store.deliver(USER, "INBOX", PLAIN, Flags::new()).unwrap();
    selected(&mut s).await;
    let command = "a UID FETCH 1:* (UID FLAGS ENVELOPE BODYSTRUCTURE BODY RFC822.SIZE)\r\n";
    counts.reset();
    let first = send(&mut s, command).await;
    assert_eq!(
        counts.get(),
        (2, 2, 2),
        "read 2, look up 2 fields, keep 2 fields"
    );
    counts.reset();
    let second = send(&mut s, command).await;
    assert_eq!(counts.get(), (0, 2, 0), "served from the cache");
    assert_eq!(
        String::from_utf8_lossy(&first),
        String::from_utf8_lossy(&second)
    );
    let text = String::from_utf8_lossy(&first);
    assert!(
        text.contains("ENVELOPE (NIL \"=?utf-8?q?caf=C3=A9?=\""),
        "{text}"
    );
    assert!(
        text.contains("BODYSTRUCTURE ((\"text\" \"plain\""),
        "{text}"
    );
    assert!(text.contains("\"message\" \"rfc822\""), "{text}");
    // Another session sees the same cache.
    let counted = Counting {
        inner: store.clone(),
        counts: Arc::clone(&counts),
    };
    let mut other = new_session(&counted);
    selected(&mut other).await;
    counts.reset();
    assert_eq!(send(&mut other, command).await, first);
    assert_eq!(counts.get().0, 0);
    // ENVELOPE alone looks up one field; with a body section the message is
    // read for it, the ENVELOPE still comes from the cache.
    counts.reset();
    send(&mut s, "b FETCH 1 ENVELOPE\r\n").await;
    assert_eq!(counts.get(), (0, 1, 0));
    counts.reset();
    send(&mut s, "c FETCH 1 (ENVELOPE BODY.PEEK[TEXT])\r\n").await;
    assert_eq!(counts.get(), (1, 1, 0));
    // The header section is cached too: read once, then not at all.
    counts.reset();
    send(&mut s, "d FETCH 1 (ENVELOPE BODY.PEEK[HEADER])\r\n").await;
    assert_eq!(counts.get(), (1, 2, 1));
    counts.reset();
    send(&mut s, "e FETCH 1 (ENVELOPE BODY.PEEK[HEADER])\r\n").await;
    assert_eq!(counts.get(), (0, 2, 0));
}

/// A FETCH that reads the messages anyway (a body section with them) fills
/// the cache for a later ENVELOPE / BODYSTRUCTURE-only FETCH, which then
/// reads nothing; the answers match a fresh session's.
#[tokio::test]
async fn mixed_fetch_fills_the_cache() {
    let (store, counts, mut s) = setup();
    store
        .deliver(USER, "INBOX", MULTIPART, Flags::new())
        .unwrap();
    store.deliver(USER, "INBOX", PLAIN, Flags::new()).unwrap();
    selected(&mut s).await;
    counts.reset();
    let mixed = send(
        &mut s,
        "a UID FETCH 1:* (ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n",
    )
    .await;
    assert_eq!(counts.get(), (2, 3, 3), "three fields looked up and kept");
    assert!(String::from_utf8_lossy(&mixed).contains("BODY[HEADER.FIELDS (SUBJECT)] {"));
    counts.reset();
    let cached = send(&mut s, "b UID FETCH 1:* (ENVELOPE BODYSTRUCTURE)\r\n").await;
    assert_eq!(counts.get(), (0, 2, 0));
    let fresh_store = MemoryStore::new();
    fresh_store
        .deliver(USER, "INBOX", MULTIPART, Flags::new())
        .unwrap();
    fresh_store
        .deliver(USER, "INBOX", PLAIN, Flags::new())
        .unwrap();
    let mut fresh = new_session(&Counting {
        inner: fresh_store,
        counts: Arc::new(Counts::default()),
    });
    selected(&mut fresh).await;
    assert_eq!(
        send(&mut fresh, "b UID FETCH 1:* (ENVELOPE BODYSTRUCTURE)\r\n").await,
        cached
    );
}

/// A damaged or foreign value is a miss: the answer is computed again
/// (identical bytes) and the entry replaced.
#[tokio::test]
async fn garbled_cache_entries_are_ignored() {
    let (store, counts, mut s) = setup();
    store
        .deliver(USER, "INBOX", MULTIPART, Flags::new())
        .unwrap();
    selected(&mut s).await;
    let command = "a FETCH 1 (ENVELOPE BODYSTRUCTURE)\r\n";
    let fresh = send(&mut s, command).await;
    let mailbox = folder(&store).await;
    let good = mailbox
        .cached_fields(&[Uid(1)], CachedField::BodyStructure)
        .await
        .unwrap()[0]
        .clone()
        .unwrap();
    for garbage in [
        b"(\"text\" \"plain\" NIL NIL NIL \"7BIT\" 5 1)".to_vec(),
        Vec::new(),
        vec![0xff; 40],
        {
            let mut v = good.clone();
            let mid = v.len() / 2;
            v[mid] ^= 1;
            v
        },
    ] {
        mailbox
            .cache_fields(CachedField::BodyStructure, vec![(Uid(1), garbage.clone())])
            .await
            .unwrap();
        mailbox
            .cache_fields(CachedField::Envelope, vec![(Uid(1), garbage)])
            .await
            .unwrap();
        counts.reset();
        assert_eq!(send(&mut s, command).await, fresh);
        assert_eq!(counts.get(), (1, 2, 2), "re-read, and the entries replaced");
        counts.reset();
        assert_eq!(send(&mut s, command).await, fresh);
        assert_eq!(counts.get(), (0, 2, 0));
    }
    let repaired = mailbox
        .cached_fields(&[Uid(1)], CachedField::BodyStructure)
        .await
        .unwrap()[0]
        .clone();
    assert_eq!(repaired, Some(good));
}

/// A whole mailbox: store calls per batch of 256 messages, not per message;
/// the output still streams in budget-sized pieces.
#[tokio::test]
async fn whole_mailbox_fetch_batches_store_calls() {
    let (store, counts, mut s) = setup();
    let n = 2_000;
    for i in 0..n {
        let message = format!(
            "From: user{i}@example.org\r\nSubject: message {i}\r\nContent-Type: text/plain\r\n\r\nbody {i}\r\n"
        );
        store
            .deliver(USER, "INBOX", message.as_bytes(), Flags::new())
            .unwrap();
    }
    selected(&mut s).await;
    let command = "a UID FETCH 1:* (ENVELOPE BODYSTRUCTURE)\r\n";
    counts.reset();
    let first = send(&mut s, command).await;
    let (reads, lookups, keeps) = counts.get();
    assert_eq!(reads, n);
    let batches = n.div_ceil(256);
    // Budget boundaries may split a batch: at most one extra lookup each.
    let pieces = first.len() / (1024 * 1024) + 1;
    assert!(lookups <= 2 * (batches + pieces), "{lookups} lookups");
    assert!(keeps <= 2 * (batches + pieces), "{keeps} keeps");
    counts.reset();
    s.enqueue_input(command.as_bytes());
    let mut second = Vec::new();
    let mut calls = 0;
    loop {
        let mut out = Vec::new();
        let next = s.process(&mut out).await;
        calls += 1;
        assert!(
            out.len() <= 1024 * 1024 + 64 * 1024,
            "piece of {}",
            out.len()
        );
        second.extend_from_slice(&out);
        if next != Next::Continue {
            break;
        }
    }
    assert!(calls >= 2);
    let (reads, lookups, keeps) = counts.get();
    assert_eq!((reads, keeps), (0, 0));
    assert!(lookups <= 2 * (batches + pieces), "{lookups} lookups");
    assert_eq!(first, second);
    assert_eq!(
        String::from_utf8_lossy(&second)
            .matches(" FETCH (UID ")
            .count(),
        n
    );
}

/// Messages are read ahead in groups: a FETCH of every body, over several
/// output budgets, still reads each message exactly once and answers each
/// with its own bytes, in order; a first ENVELOPE FETCH reads each once too.
#[tokio::test]
async fn read_ahead_reads_each_message_once_and_in_order() {
    reads_each_message_once_and_in_order(false).await;
}

/// The same with a store that reads the next batches while one is answered
/// (`Mailbox::read_ahead`): the same answer and bounds, at most two batches
/// read ahead besides the one being answered (four when only values derived
/// from the messages are wanted), and ENVELOPE derived from each message
/// once.
#[tokio::test]
async fn batches_read_beside_the_answer_keep_the_same_bounds() {
    reads_each_message_once_and_in_order(true).await;
}

async fn reads_each_message_once_and_in_order(read_ahead: bool) {
    let (store, counts, mut s) = setup();
    counts.reads_ahead.store(read_ahead, Ordering::SeqCst);
    let n = 300;
    let filler = "x".repeat(10_000);
    let message = |i: usize| {
        format!("From: user{i}@example.org\r\nSubject: message {i}\r\n\r\n{filler} {i}\r\n")
    };
    for i in 0..n {
        store
            .deliver(USER, "INBOX", message(i).as_bytes(), Flags::new())
            .unwrap();
    }
    selected(&mut s).await;
    counts.reset();
    let out = send(&mut s, "a UID FETCH 1:* (UID BODY.PEEK[])\r\n").await;
    assert!(out.len() > 2 * 1024 * 1024, "several budgets");
    assert_eq!(counts.get().0, n);
    // Read in batches, within both bounds: 64 messages, and 512 KiB beyond
    // the message whose turn it is (the octet bound is the one that binds
    // for messages of ~10 KB: 52 more of them).
    let batch = counts.largest_batch.load(Ordering::SeqCst);
    let extra = counts.largest_batch_extra_octets.load(Ordering::SeqCst);
    assert!((40..=64).contains(&batch), "largest batch {batch}");
    assert!(extra <= 512 * 1024, "{extra} octets read ahead");
    if read_ahead {
        let most = counts.most_outstanding.load(Ordering::SeqCst);
        // Two batches read beside the one being answered, never more.
        assert_eq!(most, 2, "{most} batches read ahead at once");
    }
    let text = String::from_utf8_lossy(&out);
    let mut rest = &text[..];
    for i in 0..n {
        let expected = format!(
            "* {} FETCH (UID {} BODY[] {{{}}}\r\n{}",
            i + 1,
            i + 1,
            message(i).len(),
            message(i)
        );
        let at = rest
            .find(&expected)
            .unwrap_or_else(|| panic!("message {i}"));
        rest = &rest[at + expected.len()..];
    }
    assert!(
        rest.ends_with("a OK FETCH completed\r\n"),
        "{}",
        &rest[rest.len().saturating_sub(100)..]
    );
    counts.reset();
    let out = send(&mut s, "b UID FETCH 1:* (ENVELOPE)\r\n").await;
    assert_eq!(counts.get().0, n);
    if read_ahead {
        // Values only: batches hold no message, so four are read ahead.
        let most = counts.most_outstanding.load(Ordering::SeqCst);
        assert_eq!(most, 4, "{most} batches read ahead at once");
    }
    let text = String::from_utf8_lossy(&out);
    for i in 0..n {
        let envelope = format!(
            "* {} FETCH (UID {} ENVELOPE (NIL \"message {i}\" ((NIL NIL \"user{i}\" \"example.org\"))",
            i + 1,
            i + 1
        );
        assert!(text.contains(&envelope), "message {i}");
    }
    assert!(text.ends_with("b OK FETCH completed\r\n"));
    // Now served from the cache: nothing is read.
    counts.reset();
    let again = send(&mut s, "c UID FETCH 1:* (ENVELOPE)\r\n").await;
    assert_eq!(counts.get().0, 0);
    assert_eq!(again[..again.len() - 25], out[..out.len() - 25]);
}

/// Small messages are read at most 64 to a storage call.
#[tokio::test]
async fn read_ahead_asks_for_at_most_64_messages_at_once() {
    for read_ahead in [false, true] {
        at_most_64_messages_at_once(read_ahead).await;
    }
}

async fn at_most_64_messages_at_once(read_ahead: bool) {
    let (store, counts, mut s) = setup();
    counts.reads_ahead.store(read_ahead, Ordering::SeqCst);
    for i in 0..200 {
        store
            .deliver(
                USER,
                "INBOX",
                format!("Subject: {i}\r\n\r\nx\r\n").as_bytes(),
                Flags::new(),
            )
            .unwrap();
    }
    selected(&mut s).await;
    counts.reset();
    let out = send(&mut s, "a FETCH 1:* (BODY.PEEK[])\r\n").await;
    assert!(out.ends_with(b"a OK FETCH completed\r\n"));
    assert_eq!(counts.get().0, 200, "each message read once");
    assert_eq!(counts.largest_batch.load(Ordering::SeqCst), 64);
}

/// A FETCH of ENVELOPE and the header where the header is cached for every
/// other message (and ENVELOPE for none): only the messages without a
/// cached header need their bytes, so about that many are read (one batch
/// of slack), not every message; reads ahead of messages that then are not
/// used would be held by the FETCH until it ends.
#[tokio::test]
async fn messages_served_from_a_cached_header_are_not_read_ahead() {
    let (store, counts, mut s) = setup();
    counts.reads_ahead.store(true, Ordering::SeqCst);
    let n = 3000;
    for i in 0..n {
        store
            .deliver(
                USER,
                "INBOX",
                format!("From: user{i}@example.org\r\nSubject: {i}\r\n\r\nbody {i}\r\n").as_bytes(),
                Flags::new(),
            )
            .unwrap();
    }
    selected(&mut s).await;
    let odd: Vec<String> = (1..=n).step_by(2).map(|i| i.to_string()).collect();
    let out = send(
        &mut s,
        &format!("h FETCH {} (BODY.PEEK[HEADER])\r\n", odd.join(",")),
    )
    .await;
    assert!(out.ends_with(b"h OK FETCH completed\r\n"));
    counts.reset();
    let out = send(&mut s, "x FETCH 1:* (ENVELOPE BODY.PEEK[HEADER])\r\n").await;
    assert!(out.ends_with(b"x OK FETCH completed\r\n"));
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text.matches(" FETCH (ENVELOPE ").count(), n);
    let reads = counts.get().0;
    assert!(
        reads <= n / 2 + 64,
        "{reads} messages read for {} without a cached header",
        n / 2
    );
}

/// A value over `MAX_CACHED_FIELD_LEN` is not handed to the store (it would
/// not keep it): such a message is parsed every time, with the same answer.
#[tokio::test]
async fn oversized_values_are_not_cached() {
    let (store, counts, mut s) = setup();
    let mut message =
        b"Subject: many parts\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n".to_vec();
    let name = "n".repeat(60);
    for i in 0..1_500 {
        message.extend_from_slice(
            format!("--b\r\nContent-Type: text/plain; name=\"{name}{i}\"\r\n\r\npart {i}\r\n")
                .as_bytes(),
        );
    }
    message.extend_from_slice(b"--b--\r\n");
    store
        .deliver(USER, "INBOX", &message, Flags::new())
        .unwrap();
    selected(&mut s).await;
    let command = "a FETCH 1 (ENVELOPE BODYSTRUCTURE)\r\n";
    counts.reset();
    let first = send(&mut s, command).await;
    assert!(
        first.len() > mail_store::MAX_CACHED_FIELD_LEN,
        "{} bytes",
        first.len()
    );
    // Looked up both, kept only the (small) ENVELOPE.
    assert_eq!(counts.get(), (1, 2, 1));
    counts.reset();
    let second = send(&mut s, command).await;
    assert_eq!(counts.get(), (1, 2, 0));
    assert_eq!(first, second);
}

/// Thunderbird's sync FETCH (the exact item list).
const THUNDERBIRD: &str = "UID FETCH 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Bcc Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type Reply-To)])";

/// A store with both test messages and a selected session on it.
async fn two_messages() -> (MemoryStore, Arc<Counts>, Session) {
    let (store, counts, mut s) = setup();
    store
        .deliver(USER, "INBOX", MULTIPART, Flags::new())
        .unwrap();
    store.deliver(USER, "INBOX", PLAIN, Flags::new()).unwrap();
    selected(&mut s).await;
    (store, counts, s)
}

/// Every top-level header item, partials included, on a fresh store: the
/// first FETCH reads both messages and keeps their headers, the second
/// reads nothing and sends the same bytes.
#[tokio::test]
async fn header_items_are_served_from_the_cache_byte_identical() {
    let commands = [
        THUNDERBIRD,
        "FETCH 1:* BODY.PEEK[HEADER]",
        "FETCH 1:* RFC822.HEADER",
        "FETCH 1:* BODY.PEEK[HEADER.FIELDS.NOT (Subject Content-Type)]",
        "FETCH 1:* (BODY.PEEK[HEADER]<0.10> BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]<5.100>)",
        "FETCH 1:* BODY.PEEK[HEADER.FIELDS.NOT (To)]<3000.10>",
    ];
    for command in commands {
        let (_store, counts, mut s) = two_messages().await;
        let command = format!("a {command}\r\n");
        counts.reset();
        let first = send(&mut s, &command).await;
        assert_eq!(counts.get().0, 2, "{command}: read both");
        assert_eq!(counts.get().2, 1, "{command}: headers kept in one call");
        counts.reset();
        let second = send(&mut s, &command).await;
        assert_eq!(counts.get().0, 0, "{command}: served from the cache");
        assert_eq!(counts.get().2, 0, "{command}: nothing new to keep");
        assert_eq!(
            String::from_utf8_lossy(&first),
            String::from_utf8_lossy(&second),
            "{command}"
        );
        assert!(
            String::from_utf8_lossy(&second).contains("a OK"),
            "{command}"
        );
    }
    // With ENVELOPE: two fields kept; then nothing read.
    let (_store, counts, mut s) = two_messages().await;
    let command = "a UID FETCH 1:* (FLAGS RFC822.HEADER ENVELOPE)\r\n";
    let first = send(&mut s, command).await;
    counts.reset();
    assert_eq!(send(&mut s, command).await, first);
    assert_eq!(counts.get(), (0, 2, 0));
    // An ENVELOPE miss is built from a cached header, without a read.
    let (_store, counts, mut s) = two_messages().await;
    send(&mut s, "a FETCH 1:* RFC822.HEADER\r\n").await;
    counts.reset();
    let command = "b FETCH 1:* (ENVELOPE RFC822.HEADER)\r\n";
    let out = send(&mut s, command).await;
    assert_eq!(counts.get(), (0, 2, 1), "nothing read, ENVELOPEs kept");
    let (_fresh_store, fresh_counts, mut fresh) = two_messages().await;
    assert_eq!(send(&mut fresh, command).await, out);
    assert_eq!(fresh_counts.get().0, 2);
    // The answers themselves, from the cache.
    let (_store, counts, mut s) = two_messages().await;
    send(&mut s, "a FETCH 1:* BODY.PEEK[HEADER]\r\n").await;
    counts.reset();
    let out = send(
        &mut s,
        "b FETCH 2 (BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[HEADER]<6.10> RFC822.HEADER BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT)])\r\n",
    )
    .await;
    assert_eq!(counts.get().0, 0);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "* 2 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: plain\r\n\r\n \
         BODY[HEADER]<6> {10}\r\ndave@examp \
         RFC822.HEADER {42}\r\nFrom: dave@example.org\r\nSubject: plain\r\n\r\n \
         BODY[HEADER.FIELDS.NOT (SUBJECT)] {26}\r\nFrom: dave@example.org\r\n\r\n)\r\n\
         b OK FETCH completed\r\n"
    );
    // Part-level headers and the text still read the message.
    for command in [
        "c FETCH 1 BODY.PEEK[2.HEADER]\r\n",
        "d FETCH 1 BODY.PEEK[TEXT]\r\n",
        "e FETCH 1 (BODY.PEEK[HEADER] BODY.PEEK[1])\r\n",
    ] {
        counts.reset();
        let out = send(&mut s, command).await;
        assert_eq!(counts.get().0, 1, "{command}");
        assert!(String::from_utf8_lossy(&out).contains(" OK "), "{command}");
    }
    let inner = send(&mut s, "f FETCH 1 BODY.PEEK[2.HEADER]\r\n").await;
    assert!(String::from_utf8_lossy(&inner).contains("Subject: inner\r\n\r\n"));
}

/// A non-PEEK header fetch in a read-write mailbox still sets `\Seen` when
/// served from the cache.
#[tokio::test]
async fn cached_header_fetch_still_sets_seen() {
    let (store, counts, mut s) = setup();
    store.deliver(USER, "INBOX", PLAIN, Flags::new()).unwrap();
    send(&mut s, "L LOGIN alice@example.org secret\r\n").await;
    send(&mut s, "S SELECT INBOX\r\n").await;
    send(&mut s, "a FETCH 1 BODY.PEEK[HEADER]\r\n").await;
    counts.reset();
    let out = send(&mut s, "b FETCH 1 BODY[HEADER]\r\n").await;
    assert_eq!(counts.get().0, 0);
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("FLAGS (\\Seen \\Recent)"), "{text}");
    assert!(
        text.contains("BODY[HEADER] {42}\r\nFrom: dave@example.org\r\nSubject: plain\r\n\r\n"),
        "{text}"
    );
}

/// The header SEARCH keys: the first SEARCH reads the messages and keeps
/// their headers, the second reads nothing and finds the same; a body key
/// still reads the messages.
#[tokio::test]
async fn header_search_keys_are_served_from_the_cache() {
    let searches = [
        ("SEARCH FROM bob", "* SEARCH 1\r\n"),
        ("SEARCH SUBJECT CAF", "* SEARCH 1\r\n"),
        ("SEARCH SUBJECT plain", "* SEARCH 2\r\n"),
        ("SEARCH HEADER Message-ID m1@example.org", "* SEARCH 1\r\n"),
        ("SEARCH HEADER Message-ID \"\"", "* SEARCH 1\r\n"),
        ("UID SEARCH OR TO alice CC nobody", "* SEARCH 1\r\n"),
        ("SEARCH NOT BCC x SENTSINCE 1-Jan-1970", "* SEARCH 1 2\r\n"),
        ("SEARCH FROM example.org", "* SEARCH 1 2\r\n"),
    ];
    for (search, expected) in searches {
        let (_store, counts, mut s) = two_messages().await;
        let command = format!("a {search}\r\n");
        counts.reset();
        let first = send(&mut s, &command).await;
        assert_eq!(counts.get(), (2, 1, 1), "{search}: read, looked up, kept");
        counts.reset();
        let second = send(&mut s, &command).await;
        assert_eq!(counts.get(), (0, 1, 0), "{search}: from the cache");
        assert_eq!(first, second, "{search}");
        let text = String::from_utf8_lossy(&second);
        assert!(text.starts_with(expected), "{search}: {text}");
    }
    // A FETCH fills the cache a SEARCH then uses, and the other way round.
    let (_store, counts, mut s) = two_messages().await;
    send(&mut s, &format!("a {THUNDERBIRD}\r\n")).await;
    counts.reset();
    send(&mut s, "b SEARCH SUBJECT plain\r\n").await;
    assert_eq!(counts.get().0, 0);
    // Body keys read the message, cached header or not.
    for search in [
        "c SEARCH BODY Hello\r\n",
        "d SEARCH SUBJECT x TEXT inner\r\n",
    ] {
        counts.reset();
        send(&mut s, search).await;
        assert_eq!(counts.get().0, 2, "{search}");
    }
}

/// Header lookups go by batch in a SEARCH too, and sequence numbers stay
/// right across batches.
#[tokio::test]
async fn header_search_batches_lookups() {
    let (store, counts, mut s) = setup();
    let n = 600;
    for i in 1..=n {
        let message = format!("From: user{i}@example.org\r\nSubject: number {i}\r\n\r\nbody\r\n");
        store
            .deliver(USER, "INBOX", message.as_bytes(), Flags::new())
            .unwrap();
    }
    selected(&mut s).await;
    let command = "a SEARCH OR SUBJECT \"number 599\" FROM user257@\r\n";
    counts.reset();
    let first = send(&mut s, command).await;
    assert_eq!(counts.get(), (n, 3, 3));
    counts.reset();
    let second = send(&mut s, command).await;
    assert_eq!(counts.get(), (0, 3, 0));
    assert_eq!(first, second);
    assert!(first.starts_with(b"* SEARCH 257 599\r\n"));
}

/// A damaged, foreign or non-header value is a miss: the message is read,
/// the answer is the same, and the entry is replaced.
#[tokio::test]
async fn garbled_header_entries_are_ignored() {
    let (store, counts, mut s) = two_messages().await;
    let command = format!("a {THUNDERBIRD}\r\n");
    let fresh = send(&mut s, &command).await;
    let found = send(&mut s, "b SEARCH SUBJECT plain\r\n").await;
    let mailbox = folder(&store).await;
    let good = mailbox
        .cached_fields(&[Uid(2)], CachedField::Header)
        .await
        .unwrap()[0]
        .clone()
        .unwrap();
    // A value of another kind under a valid frame: the ENVELOPE's.
    send(&mut s, "c FETCH 2 ENVELOPE\r\n").await;
    let envelope = mailbox
        .cached_fields(&[Uid(2)], CachedField::Envelope)
        .await
        .unwrap()[0]
        .clone()
        .unwrap();
    for garbage in [
        PLAIN.to_vec(),
        b"Subject: forged\r\n\r\n".to_vec(),
        Vec::new(),
        envelope,
        {
            let mut v = good.clone();
            v[5] ^= 0x20;
            v
        },
    ] {
        mailbox
            .cache_fields(CachedField::Header, vec![(Uid(2), garbage)])
            .await
            .unwrap();
        counts.reset();
        assert_eq!(send(&mut s, &command).await, fresh);
        assert_eq!(counts.get(), (1, 1, 1), "re-read, and the entry replaced");
        counts.reset();
        assert_eq!(send(&mut s, &command).await, fresh);
        assert_eq!(counts.get().0, 0);
        mailbox
            .cache_fields(CachedField::Header, vec![(Uid(2), b"x".to_vec())])
            .await
            .unwrap();
        counts.reset();
        assert_eq!(send(&mut s, "b SEARCH SUBJECT plain\r\n").await, found);
        assert_eq!(counts.get(), (1, 1, 1));
    }
    let repaired = mailbox
        .cached_fields(&[Uid(2)], CachedField::Header)
        .await
        .unwrap()[0]
        .clone();
    assert_eq!(repaired, Some(good));
}

/// A header section over `MAX_CACHED_FIELD_LEN` is not cached: the message
/// is read every time, with the same, correct answer.
#[tokio::test]
async fn oversized_headers_are_read_every_time() {
    let (store, counts, mut s) = setup();
    let mut message = b"From: big@example.org\r\n".to_vec();
    for i in 0..1_200 {
        message.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "f".repeat(50)).as_bytes());
    }
    message.extend_from_slice(b"Subject: the big one\r\n\r\nbody\r\n");
    let header_len = message.len() - b"body\r\n".len();
    assert!(header_len > mail_store::MAX_CACHED_FIELD_LEN);
    store
        .deliver(USER, "INBOX", &message, Flags::new())
        .unwrap();
    selected(&mut s).await;
    for command in [
        format!("a {THUNDERBIRD}\r\n"),
        "b FETCH 1 (RFC822.HEADER BODY.PEEK[HEADER]<65530.20>)\r\n".to_owned(),
    ] {
        counts.reset();
        let first = send(&mut s, &command).await;
        assert_eq!(counts.get(), (1, 1, 0), "{command}");
        counts.reset();
        let second = send(&mut s, &command).await;
        assert_eq!(counts.get(), (1, 1, 0), "{command}");
        assert_eq!(first, second);
    }
    let out = send(&mut s, &format!("c {THUNDERBIRD}\r\n")).await;
    assert!(
        String::from_utf8_lossy(&out)
            .contains("{47}\r\nFrom: big@example.org\r\nSubject: the big one\r\n\r\n)"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let out = send(&mut s, "d FETCH 1 RFC822.HEADER\r\n").await;
    assert!(String::from_utf8_lossy(&out).contains(&format!("RFC822.HEADER {{{header_len}}}\r\n")));
    for _ in 0..2 {
        counts.reset();
        let out = send(&mut s, "e SEARCH SUBJECT \"big one\"\r\n").await;
        assert!(out.starts_with(b"* SEARCH 1\r\n"));
        assert_eq!(counts.get(), (1, 1, 0));
    }
}
