//! State-machine tests of `Pop3Session` through the driver's interface, over
//! the in-memory store and the static authenticator: every command in every
//! state, pipelined input, login failures, QUIT atomicity, and that a dropped
//! or shut-down session deletes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use account_auth::Mechanism;
use account_auth::testing::StaticAuthenticator;
use mail_store::memory::{MemoryAccount, MemoryMailbox, MemoryStore};
use mail_store::{
    AccountLocation, AccountStore, AppendOutcome, CachedField, ChangeWatcher, ConditionalStore,
    CopyOutcome, Flag, FlagOp, Flags, FolderInfo, FolderName, MailStore, Mailbox, MailboxChange,
    MailboxStatus, MaildropLock, MessageMeta, Quota, QuotaUsage, StoreError, StoreErrorKind,
    StoreResult, Uid,
};
use pop3_session::{
    AUTHORIZATION_IDLE_TIMEOUT, ConnectionInfo, MAX_BAD_COMMANDS, Next, Pop3Config, Pop3Session,
    STREAM_CHUNK, TRANSACTION_IDLE_TIMEOUT, UidlFormat,
};

const ALICE: &str = "alice@example.org";
const PASSWORD: &str = "wonder land";

// ---------------------------------------------------------------------------
// A store wrapper that can fail on purpose (expunge, open) — the memory store
// never fails by itself.

#[derive(Clone)]
struct Faults {
    expunge_fails: Arc<AtomicBool>,
    open_in_use: Arc<AtomicBool>,
    open_fails: Arc<AtomicBool>,
    /// `read_range` from this offset on fails, and `read_message` if it is
    /// 0 (`u64::MAX`: never).
    read_fails_after: Arc<AtomicU64>,
    /// `read_range` calls so far.
    reads: Arc<AtomicU64>,
    /// `lock_maildrop` calls so far.
    lock_calls: Arc<AtomicU64>,
    /// `read_message` (whole message) calls so far, and messages asked of
    /// `read_ahead`.
    whole_reads: Arc<AtomicU64>,
    /// Whether the mailbox offers `read_ahead` (as the Maildir store does);
    /// without it, the session falls back to `read_messages`.
    reads_ahead: Arc<AtomicBool>,
    /// `read_ahead` calls so far.
    read_ahead_calls: Arc<AtomicU64>,
}

impl Faults {
    /// Messages read so far, in ranges or whole.
    fn all_reads(&self) -> u64 {
        self.reads.load(Ordering::SeqCst) + self.whole_reads.load(Ordering::SeqCst)
    }
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            expunge_fails: Arc::default(),
            open_in_use: Arc::default(),
            open_fails: Arc::default(),
            read_fails_after: Arc::new(AtomicU64::new(u64::MAX)),
            reads: Arc::default(),
            lock_calls: Arc::default(),
            whole_reads: Arc::default(),
            reads_ahead: Arc::default(),
            read_ahead_calls: Arc::default(),
        }
    }
}

#[derive(Clone)]
struct FaultyStore {
    inner: MemoryStore,
    faults: Faults,
}

struct FaultyAccount {
    inner: MemoryAccount,
    faults: Faults,
}

struct FaultyMailbox {
    inner: MemoryMailbox,
    faults: Faults,
}

impl MailStore for FaultyStore {
    type Account = FaultyAccount;

    fn open_account(
        &self,
        account: &AccountLocation,
    ) -> impl Future<Output = StoreResult<FaultyAccount>> + Send {
        let faults = self.faults.clone();
        let opening = self.inner.open_account(account);
        async move {
            Ok(FaultyAccount {
                inner: opening.await?,
                faults,
            })
        }
    }

    fn open_account_with_quota(
        &self,
        account: &AccountLocation,
        quota: Quota,
    ) -> impl Future<Output = StoreResult<FaultyAccount>> + Send {
        let faults = self.faults.clone();
        let opening = self.inner.open_account_with_quota(account, quota);
        async move {
            Ok(FaultyAccount {
                inner: opening.await?,
                faults,
            })
        }
    }
}

impl AccountStore for FaultyAccount {
    type Mailbox = FaultyMailbox;
    type Spool = <MemoryAccount as AccountStore>::Spool;

    fn create_spool(&self) -> impl Future<Output = StoreResult<Self::Spool>> + Send {
        self.inner.create_spool()
    }

    fn append_spool(
        &self,
        name: &FolderName,
        spool: Self::Spool,
        flags: &Flags,
        internal_date: Option<i64>,
    ) -> impl Future<Output = StoreResult<AppendOutcome>> + Send {
        self.inner.append_spool(name, spool, flags, internal_date)
    }

    fn list_folders(&self) -> impl Future<Output = StoreResult<Vec<FolderInfo>>> + Send {
        self.inner.list_folders()
    }

    fn create_folder(&self, name: &FolderName) -> impl Future<Output = StoreResult<()>> + Send {
        self.inner.create_folder(name)
    }

    fn open_folder(
        &self,
        name: &FolderName,
        read_only: bool,
    ) -> impl Future<Output = StoreResult<FaultyMailbox>> + Send {
        let faults = self.faults.clone();
        let opening = self.inner.open_folder(name, read_only);
        async move {
            if faults.open_in_use.load(Ordering::SeqCst) {
                return Err(StoreError::new(StoreErrorKind::InUse, "maildrop locked"));
            }
            if faults.open_fails.load(Ordering::SeqCst) {
                return Err(StoreError::new(StoreErrorKind::Internal, "disk on fire"));
            }
            Ok(FaultyMailbox {
                inner: opening.await?,
                faults,
            })
        }
    }

    fn append(
        &self,
        name: &FolderName,
        message: &[u8],
        flags: &Flags,
        internal_date: Option<i64>,
    ) -> impl Future<Output = StoreResult<AppendOutcome>> + Send {
        self.inner.append(name, message, flags, internal_date)
    }

    fn delete_folder(&self, name: &FolderName) -> impl Future<Output = StoreResult<()>> + Send {
        self.inner.delete_folder(name)
    }

    fn rename_folder(
        &self,
        from: &FolderName,
        to: &FolderName,
    ) -> impl Future<Output = StoreResult<()>> + Send {
        self.inner.rename_folder(from, to)
    }

    fn subscribe(&self, name: &FolderName) -> impl Future<Output = StoreResult<()>> + Send {
        self.inner.subscribe(name)
    }

    fn unsubscribe(&self, name: &FolderName) -> impl Future<Output = StoreResult<()>> + Send {
        self.inner.unsubscribe(name)
    }

    fn subscriptions(&self) -> impl Future<Output = StoreResult<Vec<FolderName>>> + Send {
        self.inner.subscriptions()
    }

    fn status(&self, name: &FolderName) -> impl Future<Output = StoreResult<MailboxStatus>> + Send {
        self.inner.status(name)
    }

    fn folder_size(&self, name: &FolderName) -> impl Future<Output = StoreResult<u64>> + Send {
        self.inner.folder_size(name)
    }

    fn quota_usage(&self) -> impl Future<Output = StoreResult<QuotaUsage>> + Send {
        self.inner.quota_usage()
    }

    fn quota(&self) -> Quota {
        self.inner.quota()
    }

    fn lock_maildrop(&self) -> impl Future<Output = StoreResult<MaildropLock>> + Send {
        self.faults.lock_calls.fetch_add(1, Ordering::SeqCst);
        self.inner.lock_maildrop()
    }
}

impl Mailbox for FaultyMailbox {
    fn status(&self) -> MailboxStatus {
        self.inner.status()
    }

    fn messages(&self) -> &[MessageMeta] {
        self.inner.messages()
    }

    fn sync(&mut self) -> impl Future<Output = StoreResult<Vec<MailboxChange>>> + Send {
        self.inner.sync()
    }

    fn read_message(&self, uid: Uid) -> impl Future<Output = StoreResult<Vec<u8>>> + Send {
        // A whole read starts at offset 0: it fails as a range from 0 would.
        let fail = self.faults.read_fails_after.load(Ordering::SeqCst) == 0;
        self.faults.whole_reads.fetch_add(1, Ordering::SeqCst);
        let reading = self.inner.read_message(uid);
        async move {
            if fail {
                return Err(StoreError::new(StoreErrorKind::Internal, "disk gone"));
            }
            reading.await
        }
    }

    fn read_ahead<T, F>(&self, uids: &[Uid], prepare: F) -> Option<mail_store::ReadAhead<T>>
    where
        T: Send + Sync + 'static,
        F: Fn(Uid, Vec<u8>) -> T + Send + 'static,
    {
        if !self.faults.reads_ahead.load(Ordering::SeqCst) {
            return None;
        }
        self.faults.read_ahead_calls.fetch_add(1, Ordering::SeqCst);
        self.faults
            .whole_reads
            .fetch_add(uids.len() as u64, Ordering::SeqCst);
        if self.faults.read_fails_after.load(Ordering::SeqCst) == 0 {
            let failed = uids
                .iter()
                .map(|_| Err(StoreError::new(StoreErrorKind::Internal, "disk gone")))
                .collect();
            return Some(Box::pin(std::future::ready(failed)));
        }
        self.inner.read_ahead(uids, prepare)
    }

    fn store_flags(
        &mut self,
        uids: &[Uid],
        op: FlagOp,
        flags: &Flags,
    ) -> impl Future<Output = StoreResult<Vec<(Uid, Flags)>>> + Send {
        self.inner.store_flags(uids, op, flags)
    }

    fn store_flags_unchanged_since(
        &mut self,
        uids: &[Uid],
        op: FlagOp,
        flags: &Flags,
        unchanged_since: u64,
    ) -> impl Future<Output = StoreResult<ConditionalStore>> + Send {
        self.inner
            .store_flags_unchanged_since(uids, op, flags, unchanged_since)
    }

    fn cached_fields(
        &self,
        uids: &[Uid],
        field: CachedField,
    ) -> impl Future<Output = StoreResult<Vec<Option<Vec<u8>>>>> + Send {
        self.inner.cached_fields(uids, field)
    }

    fn cache_fields(
        &self,
        field: CachedField,
        entries: Vec<(Uid, Vec<u8>)>,
    ) -> impl Future<Output = StoreResult<()>> + Send {
        self.inner.cache_fields(field, entries)
    }

    fn expunge(&mut self, uids: &[Uid]) -> impl Future<Output = StoreResult<Vec<Uid>>> + Send {
        let fail = self.faults.expunge_fails.load(Ordering::SeqCst);
        let expunging = self.inner.expunge(uids);
        async move {
            if fail {
                return Err(StoreError::new(StoreErrorKind::Temporary, "disk full"));
            }
            expunging.await
        }
    }

    fn copy_to(
        &self,
        uids: &[Uid],
        dest: &FolderName,
    ) -> impl Future<Output = StoreResult<CopyOutcome>> + Send {
        self.inner.copy_to(uids, dest)
    }

    fn move_to(
        &mut self,
        uids: &[Uid],
        dest: &FolderName,
    ) -> impl Future<Output = StoreResult<CopyOutcome>> + Send {
        self.inner.move_to(uids, dest)
    }

    fn read_range(
        &self,
        uid: Uid,
        offset: u64,
        len: u64,
    ) -> impl Future<Output = StoreResult<Vec<u8>>> + Send {
        let fail = self.faults.read_fails_after.load(Ordering::SeqCst);
        self.faults.reads.fetch_add(1, Ordering::SeqCst);
        let reading = self.inner.read_range(uid, offset, len);
        async move {
            if offset >= fail {
                return Err(StoreError::new(StoreErrorKind::Internal, "disk gone"));
            }
            reading.await
        }
    }

    fn watch(&self) -> ChangeWatcher {
        self.inner.watch()
    }
}

// ---------------------------------------------------------------------------
// Harness

struct Client {
    session: Pop3Session<FaultyStore, StaticAuthenticator>,
    auth: Arc<StaticAuthenticator>,
    faults: Faults,
    closed: bool,
}

fn conn() -> ConnectionInfo {
    ConnectionInfo {
        peer: SocketAddr::from(([192, 0, 2, 7], 50_000)),
        session_id: 42,
        tls: "TLSv1.3".into(),
    }
}

fn auth() -> StaticAuthenticator {
    StaticAuthenticator::new()
        .with_user(ALICE, PASSWORD)
        .with_user("bob@example.org", "pw")
}

impl Client {
    fn new(store: &MemoryStore) -> Self {
        Self::with(store, Pop3Config::default(), auth())
    }

    fn with(store: &MemoryStore, config: Pop3Config, auth: StaticAuthenticator) -> Self {
        let faults = Faults::default();
        let faulty = FaultyStore {
            inner: store.clone(),
            faults: faults.clone(),
        };
        let auth = Arc::new(auth);
        let mut session = Pop3Session::new(
            Arc::new(faulty),
            Arc::clone(&auth),
            Arc::new(config),
            conn(),
        );
        let mut out = Vec::new();
        session.greeting(&mut out);
        assert_eq!(out, b"+OK Coffre POP3S ready.\r\n");
        Client {
            session,
            auth,
            faults,
            closed: false,
        }
    }

    /// Sends bytes and runs the session until it needs input or closes.
    async fn send(&mut self, input: &[u8]) -> String {
        self.session.enqueue_input(input);
        let mut out = Vec::new();
        loop {
            match self.session.process(&mut out).await {
                Next::NeedInput => break,
                Next::Continue => {}
                Next::Close => {
                    self.closed = true;
                    break;
                }
            }
        }
        String::from_utf8(out).expect("responses are UTF-8 in these tests")
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await
    }

    async fn login(&mut self) {
        assert_eq!(
            self.cmd(&format!("USER {ALICE}")).await,
            "+OK Send PASS\r\n"
        );
        assert_eq!(
            self.cmd(&format!("PASS {PASSWORD}")).await,
            "+OK Logged in.\r\n"
        );
        assert_eq!(self.session.user(), Some(ALICE));
    }
}

fn seed(store: &MemoryStore, messages: &[&[u8]]) -> Vec<AppendOutcome> {
    messages
        .iter()
        .map(|m| store.deliver(ALICE, "INBOX", m, Flags::new()).unwrap())
        .collect()
}

fn uidl(outcome: &AppendOutcome) -> String {
    UidlFormat::default().render(outcome.uid, outcome.uid_validity)
}

const MSG1: &[u8] = b"Subject: one\n\nhello\n";
const MSG2: &[u8] = b"Subject: two\r\n\r\n.dot line\r\nsecond\r\nthird\r\n";
const MSG3: &[u8] = b"Subject: three\n\nnul\0here\nno newline at end";

// ---------------------------------------------------------------------------
// AUTHORIZATION

#[tokio::test]
async fn capa_before_and_after_login() {
    let store = MemoryStore::new();
    let mut c = Client::new(&store);
    assert_eq!(
        c.cmd("CAPA").await,
        "+OK Capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\nSASL PLAIN\r\nRESP-CODES\r\n\
         AUTH-RESP-CODE\r\nPIPELINING\r\nIMPLEMENTATION Coffre\r\n.\r\n"
    );
    c.login().await;
    assert_eq!(
        c.cmd("capa").await,
        "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n\
         PIPELINING\r\nIMPLEMENTATION Coffre\r\n.\r\n"
    );
}

#[tokio::test]
async fn capa_without_implementation() {
    let store = MemoryStore::new();
    let config = Pop3Config {
        implementation: None,
        ..Pop3Config::default()
    };
    let mut c = Client::with(&store, config, auth());
    assert!(!c.cmd("CAPA").await.contains("IMPLEMENTATION"));
}

#[tokio::test]
async fn user_pass_login() {
    let store = MemoryStore::new();
    let mut c = Client::new(&store);
    assert_eq!(c.session.user(), None);
    assert_eq!(c.session.idle_timeout(), AUTHORIZATION_IDLE_TIMEOUT);
    c.login().await;
    assert_eq!(c.session.idle_timeout(), TRANSACTION_IDLE_TIMEOUT);
    let attempts = c.auth.attempts();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].mechanism, Mechanism::Pop3UserPass);
    assert!(attempts[0].ok);
}

#[tokio::test]
async fn pass_needs_user_first() {
    let store = MemoryStore::new();
    let mut c = Client::new(&store);
    assert_eq!(c.cmd("PASS x").await, "-ERR Send USER first\r\n");
    // A failed PASS forgets the USER.
    c.cmd("USER bob@example.org").await;
    assert_eq!(
        c.cmd("PASS wrong").await,
        "-ERR [AUTH] Authentication failed\r\n"
    );
    assert_eq!(c.cmd("PASS pw").await, "-ERR Send USER first\r\n");
}

#[tokio::test]
async fn auth_failures_close_after_the_limit() {
    let store = MemoryStore::new();
    let mut c = Client::new(&store);
    for _ in 0..2 {
        c.cmd(&format!("USER {ALICE}")).await;
        assert_eq!(
            c.cmd("PASS nope").await,
            "-ERR [AUTH] Authentication failed\r\n"
        );
        assert!(!c.closed);
    }
    c.cmd(&format!("USER {ALICE}")).await;
    assert_eq!(
        c.cmd("PASS nope").await,
        "-ERR [AUTH] Authentication failed, closing connection\r\n"
    );
    assert!(c.closed);
    // Closed for good: nothing more is processed.
    assert_eq!(c.cmd("NOOP").await, "");
    let mut out = Vec::new();
    assert_eq!(c.session.process(&mut out).await, Next::Close);
}

#[tokio::test]
async fn max_auth_failures_is_configurable() {
    let store = MemoryStore::new();
    let config = Pop3Config {
        max_auth_failures: 1,
        ..Pop3Config::default()
    };
    let mut c = Client::with(&store, config, auth());
    c.cmd("USER x").await;
    assert_eq!(
        c.cmd("PASS y").await,
        "-ERR [AUTH] Authentication failed, closing connection\r\n"
    );
    assert!(c.closed);
}

#[tokio::test]
async fn auth_plain_with_initial_response() {
    let store = MemoryStore::new();
    let mut c = Client::new(&store);
    // "\0alice@example.org\0wonder land"
    let ir = b64(&format!("\0{ALICE}\0{PASSWORD}"));
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {ir}")).await,
        "+OK Logged in.\r\n"
    );
    assert_eq!(c.session.user(), Some(ALICE));
    assert_eq!(c.auth.attempts()[0].mechanism, Mechanism::SaslPlain);
}

#[tokio::test]
async fn auth_plain_with_continuation() {
    let store = MemoryStore::new();
    let mut c = Client::new(&store);
    assert_eq!(c.cmd("AUTH PLAIN").await, "+ \r\n");
    let response = b64(&format!("{ALICE}\0{ALICE}\0{PASSWORD}"));
    assert_eq!(c.cmd(&response).await, "+OK Logged in.\r\n");
    assert_eq!(c.session.user(), Some(ALICE));
}

#[tokio::test]
async fn auth_plain_cancel_and_errors() {
    let store = MemoryStore::new();
    let mut c = Client::new(&store);
    assert_eq!(c.cmd("AUTH PLAIN").await, "+ \r\n");
    assert_eq!(c.cmd("*").await, "-ERR Authentication cancelled\r\n");
    // Back to commands: "*" is now an unknown command.
    assert_eq!(c.cmd("*").await, "-ERR Unknown command\r\n");
    assert_eq!(c.cmd("AUTH PLAIN").await, "+ \r\n");
    assert_eq!(c.cmd("not base64!").await, "-ERR Invalid base64 data\r\n");
    assert_eq!(c.cmd("AUTH PLAIN").await, "+ \r\n");
    assert_eq!(
        c.cmd(&b64("no nuls")).await,
        "-ERR [AUTH] Authentication failed\r\n"
    );
    // Another user's authorization identity is refused.
    let other = b64(&format!("bob@example.org\0{ALICE}\0{PASSWORD}"));
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {other}")).await,
        "-ERR [AUTH] Authentication failed\r\n"
    );
    // The third failure closes.
    assert_eq!(c.cmd("AUTH PLAIN").await, "+ \r\n");
    assert_eq!(
        c.cmd(&b64(&format!("\0{ALICE}\0wrong"))).await,
        "-ERR [AUTH] Authentication failed, closing connection\r\n"
    );
    assert!(c.closed);
}

#[tokio::test]
async fn auth_mechanism_list_and_unknown_mechanism() {
    let store = MemoryStore::new();
    let mut c = Client::new(&store);
    assert_eq!(
        c.cmd("AUTH").await,
        "+OK Supported mechanisms follow\r\nPLAIN\r\n.\r\n"
    );
    assert_eq!(
        c.cmd("AUTH CRAM-MD5").await,
        "-ERR Unsupported authentication mechanism\r\n"
    );
    assert_eq!(
        c.cmd("AUTH plain =").await,
        "-ERR [AUTH] Authentication failed\r\n"
    );
    assert_eq!(
        c.cmd("APOP alice 0123456789abcdef").await,
        "-ERR APOP is not supported; use USER/PASS or AUTH PLAIN\r\n"
    );
}

#[tokio::test]
async fn authenticator_unavailable_is_sys_temp() {
    let store = MemoryStore::new();
    let mut c = Client::with(&store, Pop3Config::default(), auth().unavailable());
    c.cmd(&format!("USER {ALICE}")).await;
    assert_eq!(
        c.cmd(&format!("PASS {PASSWORD}")).await,
        "-ERR [SYS/TEMP] Authentication temporarily unavailable\r\n"
    );
    assert!(!c.closed);
    assert_eq!(c.session.user(), None);
}

#[tokio::test]
async fn maildrop_in_use_and_open_failure() {
    let store = MemoryStore::new();
    let mut c = Client::new(&store);
    c.faults.open_in_use.store(true, Ordering::SeqCst);
    c.cmd(&format!("USER {ALICE}")).await;
    assert_eq!(
        c.cmd(&format!("PASS {PASSWORD}")).await,
        "-ERR [IN-USE] Maildrop is locked by another POP3 session\r\n"
    );
    assert_eq!(c.session.user(), None);
    c.faults.open_in_use.store(false, Ordering::SeqCst);
    c.faults.open_fails.store(true, Ordering::SeqCst);
    c.cmd(&format!("USER {ALICE}")).await;
    assert_eq!(
        c.cmd(&format!("PASS {PASSWORD}")).await,
        "-ERR [SYS/TEMP] Cannot open the maildrop\r\n"
    );
    c.faults.open_fails.store(false, Ordering::SeqCst);
    c.login().await;
}

#[tokio::test]
async fn transaction_commands_need_login() {
    let store = MemoryStore::new();
    seed(&store, &[MSG1]);
    let mut c = Client::new(&store);
    for line in [
        "STAT", "LIST", "LIST 1", "RETR 1", "DELE 1", "RSET", "TOP 1 1", "UIDL", "UIDL 1",
    ] {
        assert_eq!(c.cmd(line).await, "-ERR Log in first\r\n", "{line}");
    }
    assert_eq!(c.cmd("NOOP").await, "+OK\r\n");
    assert_eq!(c.cmd("QUIT").await, "+OK Logging out\r\n");
    assert!(c.closed);
    assert_eq!(store.message_count(ALICE, "INBOX"), 1);
}

#[tokio::test]
async fn login_commands_after_login() {
    let store = MemoryStore::new();
    let mut c = Client::new(&store);
    c.login().await;
    for line in ["USER bob", "PASS pw", "AUTH PLAIN", "AUTH", "APOP a b"] {
        assert_eq!(c.cmd(line).await, "-ERR Already logged in\r\n", "{line}");
    }
    assert_eq!(c.session.user(), Some(ALICE));
}

// ---------------------------------------------------------------------------
// TRANSACTION

#[tokio::test]
async fn stat_list_uidl() {
    let store = MemoryStore::new();
    let seeded = seed(&store, &[MSG1, MSG2, MSG3]);
    let mut c = Client::new(&store);
    c.login().await;
    let sizes: Vec<u64> = [MSG1, MSG2, MSG3]
        .iter()
        .map(|m| pop3_protocol::message_size(m))
        .collect();
    // MSG1 has 3 LF lines: stored 20 octets, 23 on the wire.
    assert_eq!(sizes[0], MSG1.len() as u64 + 3);
    let total: u64 = sizes.iter().sum();
    assert_eq!(c.cmd("STAT").await, format!("+OK 3 {total}\r\n"));
    assert_eq!(
        c.cmd("LIST").await,
        format!(
            "+OK 3 messages ({total} octets)\r\n1 {}\r\n2 {}\r\n3 {}\r\n.\r\n",
            sizes[0], sizes[1], sizes[2]
        )
    );
    assert_eq!(c.cmd("LIST 2").await, format!("+OK 2 {}\r\n", sizes[1]));
    assert_eq!(c.cmd("LIST 4").await, "-ERR No such message\r\n");
    assert_eq!(
        c.cmd("LIST 0").await,
        "-ERR Invalid message number: numbering starts at 1\r\n"
    );
    assert_eq!(
        c.cmd("UIDL").await,
        format!(
            "+OK Unique-ID listing follows\r\n1 {}\r\n2 {}\r\n3 {}\r\n.\r\n",
            uidl(&seeded[0]),
            uidl(&seeded[1]),
            uidl(&seeded[2])
        )
    );
    assert_eq!(
        c.cmd("UIDL 3").await,
        format!("+OK 3 {}\r\n", uidl(&seeded[2]))
    );
    assert_eq!(c.cmd("UIDL 9").await, "-ERR No such message\r\n");
    assert_eq!(
        uidl(&seeded[0]),
        format!("00000001{:08x}", seeded[0].uid_validity.0)
    );
}

#[tokio::test]
async fn retr_sends_exactly_the_listed_size() {
    let store = MemoryStore::new();
    seed(&store, &[MSG1, MSG2, MSG3]);
    let mut c = Client::new(&store);
    c.login().await;
    let listing = c.cmd("LIST").await;
    for (n, expected_body) in [
        (1, "Subject: one\r\n\r\nhello\r\n"),
        (2, "Subject: two\r\n\r\n..dot line\r\nsecond\r\nthird\r\n"),
        (3, "Subject: three\r\n\r\nnulhere\r\nno newline at end\r\n"),
    ] {
        let reply = c.cmd(&format!("RETR {n}")).await;
        let (status, rest) = reply.split_once("\r\n").unwrap();
        let size: u64 = status
            .strip_prefix("+OK ")
            .unwrap()
            .strip_suffix(" octets")
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(rest, format!("{expected_body}.\r\n"), "message {n}");
        // The size is the body as the client sees it (stuffing removed).
        let unstuffed = expected_body.replace("\r\n..", "\r\n.");
        assert_eq!(size, unstuffed.len() as u64, "message {n}");
        assert!(
            listing.contains(&format!("\r\n{n} {size}\r\n")),
            "LIST agrees for {n}"
        );
        assert!(!reply.contains('\0'));
    }
    assert_eq!(c.cmd("RETR 4").await, "-ERR No such message\r\n");
    assert_eq!(
        c.cmd("RETR x").await,
        "-ERR Invalid number: decimal digits only\r\n"
    );
    assert_eq!(c.cmd("RETR").await, "-ERR Missing argument\r\n");
}

#[tokio::test]
async fn top_sends_headers_and_lines() {
    let store = MemoryStore::new();
    seed(&store, &[MSG2]);
    let mut c = Client::new(&store);
    c.login().await;
    assert_eq!(
        c.cmd("TOP 1 0").await,
        "+OK Top of message follows\r\nSubject: two\r\n\r\n.\r\n"
    );
    assert_eq!(
        c.cmd("TOP 1 2").await,
        "+OK Top of message follows\r\nSubject: two\r\n\r\n..dot line\r\nsecond\r\n.\r\n"
    );
    let top_all = c.cmd("TOP 1 4294967295").await;
    let retr = c.cmd("RETR 1").await;
    assert_eq!(
        top_all.split_once("\r\n").unwrap().1,
        retr.split_once("\r\n").unwrap().1
    );
    assert_eq!(c.cmd("TOP 2 1").await, "-ERR No such message\r\n");
    assert_eq!(c.cmd("TOP 1").await, "-ERR Missing argument\r\n");
    assert_eq!(
        c.cmd("TOP 1 -1").await,
        "-ERR Invalid number: decimal digits only\r\n"
    );
}

#[tokio::test]
async fn dele_rset_and_deleted_messages() {
    let store = MemoryStore::new();
    seed(&store, &[MSG1, MSG2]);
    let mut c = Client::new(&store);
    c.login().await;
    let size2 = pop3_protocol::message_size(MSG2);
    let size1 = pop3_protocol::message_size(MSG1);
    assert_eq!(c.cmd("DELE 1").await, "+OK message 1 deleted\r\n");
    assert_eq!(c.cmd("DELE 1").await, "-ERR Message already deleted\r\n");
    assert_eq!(c.cmd("DELE 3").await, "-ERR No such message\r\n");
    assert_eq!(c.cmd("RETR 1").await, "-ERR Message already deleted\r\n");
    assert_eq!(c.cmd("TOP 1 1").await, "-ERR Message already deleted\r\n");
    assert_eq!(c.cmd("LIST 1").await, "-ERR Message already deleted\r\n");
    assert_eq!(c.cmd("UIDL 1").await, "-ERR Message already deleted\r\n");
    assert_eq!(c.cmd("STAT").await, format!("+OK 1 {size2}\r\n"));
    // Numbers do not shift: message 2 is still 2.
    assert_eq!(
        c.cmd("LIST").await,
        format!("+OK 1 messages ({size2} octets)\r\n2 {size2}\r\n.\r\n")
    );
    assert!(
        c.cmd("UIDL")
            .await
            .starts_with("+OK Unique-ID listing follows\r\n2 ")
    );
    assert_eq!(
        c.cmd("RSET").await,
        format!("+OK maildrop has 2 messages ({} octets)\r\n", size1 + size2)
    );
    assert_eq!(c.cmd("STAT").await, format!("+OK 2 {}\r\n", size1 + size2));
    assert!(c.cmd("RETR 1").await.starts_with("+OK"));
    assert_eq!(c.cmd("NOOP").await, "+OK\r\n");
    assert_eq!(
        c.cmd("QUIT").await,
        "+OK Logging out, 0 messages deleted\r\n"
    );
    assert_eq!(store.message_count(ALICE, "INBOX"), 2);
}

#[tokio::test]
async fn quit_applies_deletions() {
    let store = MemoryStore::new();
    seed(&store, &[MSG1, MSG2, MSG3]);
    let mut c = Client::new(&store);
    c.login().await;
    c.cmd("DELE 1").await;
    c.cmd("DELE 3").await;
    assert_eq!(store.message_count(ALICE, "INBOX"), 3, "DELE only marks");
    assert_eq!(
        c.cmd("QUIT").await,
        "+OK Logging out, 2 messages deleted\r\n"
    );
    assert!(c.closed);
    assert_eq!(store.message_count(ALICE, "INBOX"), 1);
    // The survivor is message 2, now message 1 of a new session.
    let mut again = Client::new(&store);
    again.login().await;
    assert_eq!(
        again.cmd("TOP 1 0").await,
        "+OK Top of message follows\r\nSubject: two\r\n\r\n.\r\n"
    );
}

#[tokio::test]
async fn failed_update_deletes_nothing() {
    let store = MemoryStore::new();
    seed(&store, &[MSG1, MSG2]);
    let mut c = Client::new(&store);
    c.login().await;
    c.cmd("DELE 1").await;
    c.cmd("DELE 2").await;
    c.faults.expunge_fails.store(true, Ordering::SeqCst);
    assert_eq!(
        c.cmd("QUIT").await,
        "-ERR [SYS/TEMP] Deleting messages failed; no message was deleted\r\n"
    );
    assert!(c.closed);
    assert_eq!(store.message_count(ALICE, "INBOX"), 2);
}

#[tokio::test]
async fn dropped_connection_deletes_nothing() {
    let store = MemoryStore::new();
    seed(&store, &[MSG1, MSG2]);
    let mut c = Client::new(&store);
    c.login().await;
    c.cmd("DELE 1").await;
    c.cmd("DELE 2").await;
    drop(c);
    assert_eq!(store.message_count(ALICE, "INBOX"), 2);
}

#[tokio::test]
async fn shutdown_deletes_nothing() {
    let store = MemoryStore::new();
    seed(&store, &[MSG1]);
    let mut c = Client::new(&store);
    c.login().await;
    c.cmd("DELE 1").await;
    // A QUIT still buffered when the shutdown comes is not run.
    c.session.enqueue_input(b"QUIT\r\n");
    let mut out = Vec::new();
    c.session.shutdown(&mut out);
    assert_eq!(out, b"-ERR [SYS/TEMP] server shutting down\r\n");
    let mut out = Vec::new();
    assert_eq!(c.session.process(&mut out).await, Next::Close);
    assert!(out.is_empty());
    assert_eq!(store.message_count(ALICE, "INBOX"), 1);
    assert_eq!(c.session.user(), None);
}

#[tokio::test]
async fn quit_marks_retrieved_messages_seen() {
    let store = MemoryStore::new();
    seed(&store, &[MSG1, MSG2, MSG3]);
    let mut c = Client::new(&store);
    c.login().await;
    c.cmd("RETR 1").await;
    c.cmd("TOP 2 1").await;
    c.cmd("RETR 3").await;
    c.cmd("DELE 3").await;
    c.cmd("QUIT").await;
    let account = store
        .open_account(&AccountLocation {
            login: ALICE.into(),
            location: None,
        })
        .await
        .unwrap();
    let inbox = account
        .open_folder(&FolderName::inbox(), true)
        .await
        .unwrap();
    let seen: Vec<bool> = inbox
        .messages()
        .iter()
        .map(|m| m.flags.contains(&Flag::Seen))
        .collect();
    assert_eq!(seen, [true, false], "RETR marks seen, TOP does not");
}

#[tokio::test]
async fn snapshot_is_fixed_for_the_session() {
    let store = MemoryStore::new();
    seed(&store, &[MSG1]);
    let mut c = Client::new(&store);
    c.login().await;
    seed(&store, &[MSG2]);
    let size1 = pop3_protocol::message_size(MSG1);
    assert_eq!(c.cmd("STAT").await, format!("+OK 1 {size1}\r\n"));
    assert_eq!(c.cmd("RETR 2").await, "-ERR No such message\r\n");
}

#[tokio::test]
async fn message_expunged_by_another_session() {
    let store = MemoryStore::new();
    seed(&store, &[MSG1, MSG2]);
    let mut c = Client::new(&store);
    c.login().await;
    // An IMAP session expunges message 1 behind POP3's back.
    let account = store
        .open_account(&AccountLocation {
            login: ALICE.into(),
            location: None,
        })
        .await
        .unwrap();
    let mut imap = account
        .open_folder(&FolderName::inbox(), false)
        .await
        .unwrap();
    let first = imap.messages()[0].uid;
    imap.expunge(&[first]).await.unwrap();
    assert_eq!(
        c.cmd("RETR 1").await,
        "-ERR Message was removed by another session\r\n"
    );
    assert!(c.cmd("RETR 2").await.starts_with("+OK"));
    // Deleting it too is harmless; QUIT still succeeds.
    c.cmd("DELE 1").await;
    assert_eq!(
        c.cmd("QUIT").await,
        "+OK Logging out, 1 messages deleted\r\n"
    );
    assert_eq!(store.message_count(ALICE, "INBOX"), 1);
}

#[tokio::test]
async fn stored_uidl_wins_and_format_is_configurable() {
    let store = MemoryStore::new();
    store
        .deliver_with_uidl(ALICE, "INBOX", MSG1, Flags::new(), "QhdPYR:00WBw1Ph7x7")
        .unwrap();
    store
        .deliver_with_uidl(ALICE, "INBOX", MSG2, Flags::new(), "bad uidl with spaces")
        .unwrap();
    let plain = store.deliver(ALICE, "INBOX", MSG3, Flags::new()).unwrap();
    let config = Pop3Config {
        uidl_format: UidlFormat::parse("%v-%u").unwrap(),
        ..Pop3Config::default()
    };
    let mut c = Client::with(&store, config, auth());
    c.login().await;
    let v = plain.uid_validity.0;
    assert_eq!(
        c.cmd("UIDL").await,
        format!(
            "+OK Unique-ID listing follows\r\n1 QhdPYR:00WBw1Ph7x7\r\n2 {v}-2\r\n3 {v}-3\r\n.\r\n"
        )
    );
}

#[tokio::test]
async fn pipelined_commands_answer_in_order() {
    let store = MemoryStore::new();
    seed(&store, &[MSG1, MSG2]);
    let mut c = Client::new(&store);
    let size1 = pop3_protocol::message_size(MSG1);
    let size2 = pop3_protocol::message_size(MSG2);
    let script = format!(
        "CAPA\r\nUSER {ALICE}\r\nPASS {PASSWORD}\r\nSTAT\r\nLIST 1\r\nDELE 1\r\nbogus\r\nSTAT\r\nQUIT\r\nNOOP\r\n"
    );
    let reply = c.send(script.as_bytes()).await;
    let expected_tail = format!(
        "+OK Send PASS\r\n+OK Logged in.\r\n+OK 2 {}\r\n+OK 1 {size1}\r\n+OK message 1 deleted\r\n\
         -ERR Unknown command\r\n+OK 1 {size2}\r\n+OK Logging out, 1 messages deleted\r\n",
        size1 + size2
    );
    assert!(
        reply.starts_with("+OK Capability list follows\r\n"),
        "{reply}"
    );
    assert!(reply.ends_with(&expected_tail), "{reply}");
    assert!(c.closed);
    assert_eq!(store.message_count(ALICE, "INBOX"), 1);

    // The same script one byte at a time gives the same bytes.
    let store = MemoryStore::new();
    seed(&store, &[MSG1, MSG2]);
    let mut c = Client::new(&store);
    let mut bytewise = String::new();
    for b in script.bytes() {
        bytewise.push_str(&c.send(&[b]).await);
    }
    assert_eq!(bytewise, reply);
}

#[tokio::test]
async fn process_handles_one_command_per_call() {
    let store = MemoryStore::new();
    let mut c = Client::new(&store);
    c.session.enqueue_input(b"NOOP\r\nNOOP\r\nNO");
    let mut out = Vec::new();
    assert_eq!(c.session.process(&mut out).await, Next::Continue);
    assert_eq!(out, b"+OK\r\n");
    assert_eq!(c.session.process(&mut out).await, Next::Continue);
    assert_eq!(out, b"+OK\r\n+OK\r\n");
    assert_eq!(c.session.process(&mut out).await, Next::NeedInput);
    c.session.enqueue_input(b"OP\n");
    assert_eq!(c.session.process(&mut out).await, Next::Continue);
    assert_eq!(out.len(), 15);
}

#[tokio::test]
async fn malformed_commands_and_the_bad_command_limit() {
    let store = MemoryStore::new();
    let mut c = Client::new(&store);
    assert_eq!(c.cmd("").await, "-ERR Empty command line\r\n");
    assert_eq!(c.cmd("STAT 1").await, "-ERR Too many arguments\r\n");
    assert_eq!(
        c.cmd("LIST 99999999999").await,
        "-ERR Number out of range\r\n"
    );
    let long = format!("USER {}", "x".repeat(300));
    assert_eq!(
        c.cmd(&long).await,
        "-ERR Line too long (limit 255 octets)\r\n"
    );
    for _ in 4..MAX_BAD_COMMANDS - 1 {
        assert_eq!(c.cmd("XYZZY").await, "-ERR Unknown command\r\n");
    }
    assert!(!c.closed);
    assert_eq!(
        c.cmd("XYZZY").await,
        "-ERR Too many invalid commands, closing connection\r\n"
    );
    assert!(c.closed);
}

#[tokio::test]
async fn huge_line_is_refused_without_buffering() {
    let store = MemoryStore::new();
    let mut c = Client::new(&store);
    let junk = vec![b'A'; 64 * 1024];
    for _ in 0..16 {
        assert_eq!(c.send(&junk).await, "");
    }
    assert_eq!(
        c.send(b"\r\nNOOP\r\n").await,
        "-ERR Line too long (limit 255 octets)\r\n+OK\r\n"
    );
}

#[tokio::test]
async fn empty_maildrop() {
    let store = MemoryStore::new();
    let mut c = Client::new(&store);
    c.login().await;
    assert_eq!(c.cmd("STAT").await, "+OK 0 0\r\n");
    assert_eq!(c.cmd("LIST").await, "+OK 0 messages (0 octets)\r\n.\r\n");
    assert_eq!(
        c.cmd("UIDL").await,
        "+OK Unique-ID listing follows\r\n.\r\n"
    );
    assert_eq!(c.cmd("RETR 1").await, "-ERR No such message\r\n");
    assert_eq!(
        c.cmd("QUIT").await,
        "+OK Logging out, 0 messages deleted\r\n"
    );
}

// ---------------------------------------------------------------------------
// The maildrop lock (RFC 1939 §8)

fn alice_location() -> AccountLocation {
    AccountLocation {
        login: ALICE.into(),
        location: None,
    }
}

#[tokio::test]
async fn second_pop3_session_gets_in_use_until_the_first_ends() {
    let store = MemoryStore::new();
    seed(&store, &[MSG1, MSG2]);
    let mut first = Client::new(&store);
    first.login().await;
    assert_eq!(first.faults.lock_calls.load(Ordering::SeqCst), 1);

    let mut second = Client::new(&store);
    second.cmd(&format!("USER {ALICE}")).await;
    assert_eq!(
        second.cmd(&format!("PASS {PASSWORD}")).await,
        "-ERR [IN-USE] Maildrop is locked by another POP3 session\r\n"
    );
    assert_eq!(second.session.user(), None);
    assert!(!second.closed, "the client may try again later");
    // AUTH PLAIN meets the same lock.
    assert_eq!(
        second
            .cmd(&format!(
                "AUTH PLAIN {}",
                b64(&format!("\0{ALICE}\0{PASSWORD}"))
            ))
            .await,
        "-ERR [IN-USE] Maildrop is locked by another POP3 session\r\n"
    );

    // IMAP sessions neither take nor respect the lock: they open INBOX
    // read-write, read and expunge while POP3 holds it.
    let account = store.open_account(&alice_location()).await.unwrap();
    let mut imap = account
        .open_folder(&FolderName::inbox(), false)
        .await
        .unwrap();
    let uid2 = imap.messages()[1].uid;
    assert_eq!(imap.read_message(uid2).await.unwrap(), MSG2);
    assert_eq!(imap.expunge(&[uid2]).await.unwrap(), vec![uid2]);
    // ...but a second lock attempt through any handle fails.
    assert_eq!(
        account.lock_maildrop().await.unwrap_err().kind,
        StoreErrorKind::InUse
    );

    // The first session's snapshot still lists the expunged message.
    assert!(first.cmd("STAT").await.starts_with("+OK 2 "));
    assert_eq!(
        first.cmd("QUIT").await,
        "+OK Logging out, 0 messages deleted\r\n"
    );
    // QUIT released the lock.
    second.login().await;
    assert_eq!(second.cmd("STAT").await.split(' ').nth(1), Some("1"));
    // A dropped connection releases it too.
    drop(second);
    let mut third = Client::new(&store);
    third.login().await;
    // So does a shutdown.
    let mut out = Vec::new();
    third.session.shutdown(&mut out);
    let mut fourth = Client::new(&store);
    fourth.login().await;
}

#[tokio::test]
async fn failed_logins_take_no_lock() {
    let store = MemoryStore::new();
    let mut c = Client::new(&store);
    c.cmd(&format!("USER {ALICE}")).await;
    c.cmd("PASS wrong").await;
    assert_eq!(c.faults.lock_calls.load(Ordering::SeqCst), 0);
    let account = store.open_account(&alice_location()).await.unwrap();
    drop(account.lock_maildrop().await.unwrap());
    c.login().await;
    assert_eq!(c.faults.lock_calls.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------
// Streaming RETR/TOP

/// A message of about `3.5 * STREAM_CHUNK` octets with bare-LF and CRLF
/// lines, dot lines (also across chunk boundaries), NUL bytes and UTF-8.
fn big_message() -> Vec<u8> {
    let mut m = b"Subject: big\r\nFrom: a@example.org\n\n".to_vec();
    let mut n = 0u32;
    while m.len() < STREAM_CHUNK * 3 + STREAM_CHUNK / 2 {
        match n % 5 {
            0 => m.extend_from_slice(b".leading dot\n"),
            1 => m.extend_from_slice("caf\u{e9} cr\u{e8}me\r\n".as_bytes()),
            2 => m.extend_from_slice(b"nul\0byte\n"),
            3 => m.extend_from_slice(b"..two dots\r\n"),
            _ => m.extend_from_slice(b"plain line of text that is somewhat longer than the rest\n"),
        }
        n += 1;
    }
    m
}

/// What a client makes of a multi-line body (RFC 1939 §3): lines up to
/// `.` CRLF, one leading dot removed. Returns the body and what follows.
fn unstuff(wire: &[u8]) -> (Vec<u8>, &[u8]) {
    let mut body = Vec::new();
    let mut rest = wire;
    loop {
        let end = rest.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
        let (line, tail) = rest.split_at(end);
        rest = tail;
        if line == b".\r\n" {
            return (body, rest);
        }
        body.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
}

/// The message as the client should receive it: LF → CRLF, NUL removed.
fn expected_wire_message(stored: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut previous = 0u8;
    for &b in stored {
        match b {
            0 => continue,
            b'\n' if previous != b'\r' => out.extend_from_slice(b"\r\n"),
            _ => out.push(b),
        }
        previous = b;
    }
    out
}

/// Runs `process` once per call, keeping each call's output apart.
async fn pieces(c: &mut Client) -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    loop {
        let mut out = Vec::new();
        let next = c.session.process(&mut out).await;
        if !out.is_empty() {
            all.push(out);
        }
        match next {
            Next::Continue => {}
            Next::NeedInput => return all,
            Next::Close => {
                c.closed = true;
                return all;
            }
        }
    }
}

#[tokio::test]
async fn large_retr_streams_in_bounded_pieces() {
    let store = MemoryStore::new();
    let big = big_message();
    seed(&store, &[MSG1, &big]);
    let mut c = Client::new(&store);
    c.login().await;
    let size = pop3_protocol::message_size(&big);
    assert_eq!(c.cmd("LIST 2").await, format!("+OK 2 {size}\r\n"));
    // A pipelined NOOP is answered only after the whole body.
    c.session.enqueue_input(b"RETR 2\r\nNOOP\r\n");
    let parts = pieces(&mut c).await;
    assert!(parts.len() >= 5, "RETR 2 came in {} pieces", parts.len());
    for part in &parts {
        // One piece of stored message, plus CRs and stuffing dots added.
        assert!(part.len() <= STREAM_CHUNK * 2 + 64, "{} octets", part.len());
    }
    let wire = parts.concat();
    let header = format!("+OK {size} octets\r\n");
    assert!(wire.starts_with(header.as_bytes()));
    let (body, rest) = unstuff(&wire[header.len()..]);
    assert_eq!(body, expected_wire_message(&big));
    assert_eq!(body.len() as u64, size);
    assert_eq!(rest, b"+OK\r\n");
    // Never read whole: only ranges.
    assert_eq!(c.faults.whole_reads.load(Ordering::SeqCst), 0);
    c.cmd("QUIT").await;
    let account = store.open_account(&alice_location()).await.unwrap();
    let inbox = account
        .open_folder(&FolderName::inbox(), true)
        .await
        .unwrap();
    assert!(
        inbox.messages()[1].flags.contains(&Flag::Seen),
        "RETR'd → \\Seen"
    );
}

#[tokio::test]
async fn large_retr_without_list_announces_the_exact_size() {
    let store = MemoryStore::new();
    let big = big_message();
    seed(&store, &[&big]);
    let mut c = Client::new(&store);
    c.login().await;
    c.session.enqueue_input(b"RETR 1\r\n");
    let wire = pieces(&mut c).await.concat();
    let size = pop3_protocol::message_size(&big);
    let header = format!("+OK {size} octets\r\n");
    assert!(wire.starts_with(header.as_bytes()));
    let (body, rest) = unstuff(&wire[header.len()..]);
    assert_eq!(body.len() as u64, size);
    assert!(rest.is_empty());
    // The size is kept: LIST needs no further reads.
    let reads = c.faults.reads.load(Ordering::SeqCst);
    assert_eq!(c.cmd("LIST 1").await, format!("+OK 1 {size}\r\n"));
    assert_eq!(c.faults.reads.load(Ordering::SeqCst), reads);
}

#[tokio::test]
async fn retr_of_exactly_one_chunk() {
    let store = MemoryStore::new();
    let mut exact = b"Subject: exact\r\n\r\n".to_vec();
    exact.resize(STREAM_CHUNK - 2, b'x');
    exact.extend_from_slice(b"\r\n");
    assert_eq!(exact.len(), STREAM_CHUNK);
    seed(&store, &[&exact]);
    let mut c = Client::new(&store);
    c.login().await;
    let reply = c.cmd("RETR 1").await;
    let header = format!("+OK {} octets\r\n", exact.len());
    assert!(reply.starts_with(&header));
    assert_eq!(
        &reply.as_bytes()[header.len()..],
        [&exact[..], b".\r\n"].concat()
    );
}

#[tokio::test]
async fn top_of_a_large_message_reads_only_what_it_sends() {
    let store = MemoryStore::new();
    let big = big_message();
    seed(&store, &[&big]);
    let mut c = Client::new(&store);
    c.login().await;
    assert_eq!(
        c.cmd("TOP 1 2").await,
        "+OK Top of message follows\r\nSubject: big\r\nFrom: a@example.org\r\n\r\n..leading dot\r\ncaf\u{e9} cr\u{e8}me\r\n.\r\n"
    );
    assert_eq!(c.faults.reads.load(Ordering::SeqCst), 1);
    // TOP does not make a message \Seen.
    c.cmd("QUIT").await;
    let account = store.open_account(&alice_location()).await.unwrap();
    let inbox = account
        .open_folder(&FolderName::inbox(), true)
        .await
        .unwrap();
    assert!(!inbox.messages()[0].flags.contains(&Flag::Seen));
}

#[tokio::test]
async fn read_failure_half_way_closes_and_deletes_nothing() {
    let store = MemoryStore::new();
    let big = big_message();
    seed(&store, &[MSG1, &big]);
    let mut c = Client::new(&store);
    c.login().await;
    c.cmd("LIST").await;
    c.cmd("DELE 1").await;
    c.session.enqueue_input(b"RETR 2\r\nQUIT\r\n");
    let mut out = Vec::new();
    assert_eq!(c.session.process(&mut out).await, Next::Continue);
    assert!(out.starts_with(b"+OK "));
    c.faults
        .read_fails_after
        .store(STREAM_CHUNK as u64, Ordering::SeqCst);
    let rest = pieces(&mut c).await.concat();
    assert!(c.closed);
    // No status line was mixed into the body, and QUIT never ran.
    assert!(!String::from_utf8_lossy(&rest).contains("ERR"));
    assert!(!String::from_utf8_lossy(&rest).contains("Logging out"));
    assert_eq!(store.message_count(ALICE, "INBOX"), 2);
    // The lock went with the session.
    let mut again = Client::new(&store);
    again.login().await;
}

#[tokio::test]
async fn read_failure_before_the_body_is_sys_temp() {
    for reads_ahead in [false, true] {
        let store = MemoryStore::new();
        seed(&store, &[MSG1, MSG2, MSG3]);
        let mut c = Client::new(&store);
        c.faults.reads_ahead.store(reads_ahead, Ordering::SeqCst);
        c.login().await;
        c.faults.read_fails_after.store(0, Ordering::SeqCst);
        assert_eq!(
            c.cmd("RETR 1").await,
            "-ERR [SYS/TEMP] Cannot read the message\r\n"
        );
        assert_eq!(
            c.cmd("TOP 1 0").await,
            "-ERR [SYS/TEMP] Cannot read the message\r\n"
        );
        // LIST cannot size what it cannot read: it shows the stored sizes.
        assert_eq!(c.cmd("LIST 3").await, format!("+OK 3 {}\r\n", MSG3.len()));
        c.faults.read_fails_after.store(u64::MAX, Ordering::SeqCst);
        assert!(c.cmd("RETR 1").await.starts_with("+OK"));
        // The reads that failed were not kept: each message reads now.
        for n in 2..=3 {
            let retr = c.cmd(&format!("RETR {n}")).await;
            assert!(retr.starts_with("+OK"), "{retr}");
        }
        c.cmd("QUIT").await;
    }
}

#[tokio::test]
async fn shutdown_in_the_middle_of_a_body_adds_no_status_line() {
    let store = MemoryStore::new();
    let big = big_message();
    seed(&store, &[&big]);
    let mut c = Client::new(&store);
    c.login().await;
    c.cmd("DELE 1").await;
    c.cmd("RSET").await;
    c.session.enqueue_input(b"RETR 1\r\n");
    let mut out = Vec::new();
    assert_eq!(c.session.process(&mut out).await, Next::Continue);
    let mut out = Vec::new();
    c.session.shutdown(&mut out);
    assert!(out.is_empty());
    assert_eq!(c.session.process(&mut out).await, Next::Close);
    assert_eq!(store.message_count(ALICE, "INBOX"), 1);
}

// ---------------------------------------------------------------------------
// Timeouts (RFC 1939 §3)

#[tokio::test]
async fn idle_timeouts_per_state() {
    // RFC 1939 §3: an inactivity timer of at least 10 minutes once logged in.
    assert!(TRANSACTION_IDLE_TIMEOUT >= std::time::Duration::from_secs(10 * 60));
    assert!(AUTHORIZATION_IDLE_TIMEOUT < TRANSACTION_IDLE_TIMEOUT);
    let store = MemoryStore::new();
    let mut c = Client::new(&store);
    assert_eq!(c.session.idle_timeout(), AUTHORIZATION_IDLE_TIMEOUT);
    c.cmd(&format!("USER {ALICE}")).await;
    c.cmd("PASS wrong").await;
    assert_eq!(c.session.idle_timeout(), AUTHORIZATION_IDLE_TIMEOUT);
    c.cmd(&format!("USER {ALICE}")).await;
    assert_eq!(c.session.idle_timeout(), AUTHORIZATION_IDLE_TIMEOUT);
    c.login().await;
    assert_eq!(c.session.idle_timeout(), TRANSACTION_IDLE_TIMEOUT);
    c.cmd("STAT").await;
    assert_eq!(c.session.idle_timeout(), TRANSACTION_IDLE_TIMEOUT);
}

#[test]
fn process_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let store = MemoryStore::new();
    let mut session = Pop3Session::new(
        Arc::new(store),
        Arc::new(auth()),
        Arc::new(Pop3Config::default()),
        conn(),
    );
    let mut out = Vec::new();
    let future = session.process(&mut out);
    assert_send(&future);
}

fn b64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
}

/// Sizes computed once are kept in the store's cache: a later session's
/// LIST reads no message, and a garbled cache entry is not trusted.
#[tokio::test]
async fn pop3_sizes_are_cached_across_sessions() {
    let store = MemoryStore::new();
    let outcomes = seed(&store, &[MSG1, MSG2, MSG3]);
    let sizes: Vec<u64> = [MSG1, MSG2, MSG3]
        .iter()
        .map(|m| pop3_protocol::message_size(m))
        .collect();
    let listing = format!(
        "+OK 3 messages ({} octets)\r\n1 {}\r\n2 {}\r\n3 {}\r\n.\r\n",
        sizes.iter().sum::<u64>(),
        sizes[0],
        sizes[1],
        sizes[2]
    );

    let mut first = Client::new(&store);
    first.login().await;
    assert_eq!(first.cmd("LIST").await, listing);
    assert_eq!(first.faults.all_reads(), 3);
    first.cmd("QUIT").await;

    let mut second = Client::new(&store);
    second.login().await;
    assert_eq!(second.cmd("LIST").await, listing);
    assert_eq!(
        second.cmd("STAT").await,
        format!("+OK 3 {}\r\n", sizes.iter().sum::<u64>())
    );
    assert_eq!(second.faults.all_reads(), 0);
    // RETR still sends exactly the announced size.
    let retr = second.cmd("RETR 2").await;
    assert!(
        retr.starts_with(&format!("+OK {} octets\r\n", sizes[1])),
        "{retr}"
    );
    second.cmd("QUIT").await;

    // Garble message 3's entry: the next session sizes it by reading.
    let account = store.open_account(&alice_location()).await.unwrap();
    let inbox = account
        .open_folder(&FolderName::inbox(), true)
        .await
        .unwrap();
    inbox
        .cache_fields(
            mail_store::CachedField::Pop3Size,
            vec![(outcomes[2].uid, b"\x07garbage".to_vec())],
        )
        .await
        .unwrap();
    drop(inbox);
    let mut third = Client::new(&store);
    third.login().await;
    assert_eq!(third.cmd("LIST 3").await, format!("+OK 3 {}\r\n", sizes[2]));
    assert_eq!(third.faults.all_reads(), 1);
}

#[tokio::test]
async fn retr_in_any_order_after_read_ahead_sends_each_message_exactly() {
    // Small messages are read several at a time; big ones (over a chunk)
    // stream as before; DELE and out-of-order RETR must not confuse them.
    let store = MemoryStore::new();
    let bodies: Vec<Vec<u8>> = (0..40)
        .map(|i| {
            let mut m = format!("Subject: m{i}\r\n\r\n").into_bytes();
            let len = if i % 13 == 5 {
                STREAM_CHUNK + 1000
            } else {
                100 + i * 997
            };
            while m.len() < len {
                m.extend_from_slice(format!("line {i} {}\r\n", m.len()).as_bytes());
            }
            m
        })
        .collect();
    let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
    seed(&store, &refs);
    let expect = |n: usize| {
        let body = &bodies[n - 1];
        format!(
            "+OK {} octets\r\n{}.\r\n",
            body.len(),
            String::from_utf8(body.clone()).unwrap()
        )
    };
    // With reads beside the session (the Maildir store) and without.
    for reads_ahead in [false, true] {
        let mut c = Client::new(&store);
        c.faults.reads_ahead.store(reads_ahead, Ordering::SeqCst);
        c.login().await;
        assert!(c.cmd("DELE 4").await.starts_with("+OK"));
        let order: Vec<usize> = (1..=3)
            .chain(5..=20)
            .chain([30, 21, 22, 2, 23])
            .chain(24..=40)
            .collect();
        for n in order {
            assert_eq!(c.cmd(&format!("RETR {n}")).await, expect(n), "message {n}");
        }
        assert_eq!(c.cmd("RETR 4").await, "-ERR Message already deleted\r\n");
        assert_eq!(
            c.faults.read_ahead_calls.load(Ordering::SeqCst) > 0,
            reads_ahead
        );
        c.cmd("RSET").await;
        c.cmd("QUIT").await;
    }
}

#[tokio::test]
async fn read_ahead_is_bounded_by_count_and_octets() {
    // Tiny messages: 16 read per storage visit (the first and 15 more).
    let store = MemoryStore::new();
    let tiny: Vec<Vec<u8>> = (0..40)
        .map(|i| format!("Subject: {i}\r\n\r\nx\r\n").into_bytes())
        .collect();
    seed(&store, &tiny.iter().map(Vec::as_slice).collect::<Vec<_>>());
    let mut c = Client::new(&store);
    c.login().await;
    assert!(c.cmd("RETR 1").await.starts_with("+OK"));
    assert_eq!(c.faults.all_reads(), 16);
    for n in 2..=16 {
        assert!(c.cmd(&format!("RETR {n}")).await.starts_with("+OK"));
    }
    assert_eq!(c.faults.all_reads(), 16, "served from what was read ahead");
    c.cmd("QUIT").await;

    // 10,000-octet messages: at most 128 KiB kept beyond the first (13).
    let store = MemoryStore::new();
    let body = |i: usize| {
        let mut m = format!("Subject: {i}\r\n\r\n").into_bytes();
        m.resize(10_000 - 2, b'y');
        m.extend_from_slice(b"\r\n");
        m
    };
    let big: Vec<Vec<u8>> = (0..40).map(body).collect();
    seed(&store, &big.iter().map(Vec::as_slice).collect::<Vec<_>>());
    let mut c = Client::new(&store);
    c.login().await;
    assert!(c.cmd("RETR 1").await.starts_with("+OK"));
    assert_eq!(c.faults.all_reads(), 1 + 128 * 1024 / 10_000);
}

/// 40 messages of 10,000 octets.
fn ten_thousand_octet_messages(store: &MemoryStore) -> Vec<Vec<u8>> {
    let bodies: Vec<Vec<u8>> = (0..40)
        .map(|i| {
            let mut m = format!("Subject: {i}\r\n\r\n").into_bytes();
            m.resize(10_000 - 2, b'a' + (i % 26) as u8);
            m.extend_from_slice(b"\r\n");
            m
        })
        .collect();
    seed(store, &bodies.iter().map(Vec::as_slice).collect::<Vec<_>>());
    bodies
}

#[tokio::test]
async fn in_order_retr_reads_each_message_once_beside_the_session_within_the_bound() {
    let store = MemoryStore::new();
    let bodies = ten_thousand_octet_messages(&store);
    let mut c = Client::new(&store);
    c.faults.reads_ahead.store(true, Ordering::SeqCst);
    c.login().await;
    assert!(c.cmd("DELE 20").await.starts_with("+OK"));
    let mut sent = 0u64;
    for n in (1..=40).filter(|&n| n != 20) {
        let retr = c.cmd(&format!("RETR {n}")).await;
        let body = String::from_utf8(bodies[n - 1].clone()).unwrap();
        assert_eq!(
            retr,
            format!("+OK 10000 octets\r\n{body}.\r\n"),
            "message {n}"
        );
        sent += 1;
        // Read but not sent yet (waiting, or in flight): within 128 KiB.
        let held = c.faults.all_reads() - sent;
        assert!(
            held <= 128 * 1024 / 10_000,
            "{held} messages held after RETR {n}"
        );
    }
    // Every message was read once (the deleted one never), and the reads
    // after the first batch went on beside the session.
    assert_eq!(c.faults.all_reads(), 39);
    assert!(c.faults.read_ahead_calls.load(Ordering::SeqCst) >= 3);
    assert_eq!(c.faults.reads.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_first_list_sizes_in_bulk_and_a_second_session_reads_nothing() {
    // 150 small messages (three batches) and one over a chunk, of every
    // shape the encoder changes: LF, CRLF, NUL, dots, no final newline.
    let store = MemoryStore::new();
    let mut bodies: Vec<Vec<u8>> = (0..150)
        .map(|i| match i % 4 {
            0 => format!("Subject: {i}\n\n.dot\nline\n").into_bytes(),
            1 => format!("Subject: {i}\r\n\r\nbody\r\n").into_bytes(),
            2 => format!("Subject: {i}\n\nnul\0here\n").into_bytes(),
            _ => format!("Subject: {i}\n\nno newline at end {i}").into_bytes(),
        })
        .collect();
    bodies.insert(70, big_message());
    seed(
        &store,
        &bodies.iter().map(Vec::as_slice).collect::<Vec<_>>(),
    );
    let sizes: Vec<u64> = bodies
        .iter()
        .map(|m| pop3_protocol::message_size(m))
        .collect();
    let mut listing = format!(
        "+OK {} messages ({} octets)\r\n",
        sizes.len(),
        sizes.iter().sum::<u64>()
    );
    for (i, size) in sizes.iter().enumerate() {
        listing.push_str(&format!("{} {size}\r\n", i + 1));
    }
    listing.push_str(".\r\n");

    let mut first = Client::new(&store);
    first.faults.reads_ahead.store(true, Ordering::SeqCst);
    first.login().await;
    assert_eq!(first.cmd("LIST").await, listing);
    // Small ones sized where they were read, 64 per call; the big one
    // streamed (4 chunks).
    assert_eq!(first.faults.read_ahead_calls.load(Ordering::SeqCst), 3);
    assert_eq!(first.faults.whole_reads.load(Ordering::SeqCst), 150);
    assert_eq!(first.faults.reads.load(Ordering::SeqCst), 4);
    first.cmd("QUIT").await;

    let mut second = Client::new(&store);
    second.faults.reads_ahead.store(true, Ordering::SeqCst);
    second.login().await;
    assert_eq!(second.cmd("LIST").await, listing);
    assert_eq!(second.faults.all_reads(), 0);
}
