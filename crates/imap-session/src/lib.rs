//! # imap-session: what IMAP commands mean
//!
//! One [`ImapSession`] per connection. It takes received bytes, frames and
//! parses them with `imap-protocol`, checks each command against the state
//! it is in (one gating table), runs its handler against the `mail-store`
//! and `account-auth` traits, and appends the encoded responses to the
//! caller's output buffer.
//!
//! What this crate does **not** do: sockets, TLS, timers (the driver asks
//! [`ImapSession::idle_timeout`] and runs the clock), SQL or files.
//!
//! ```text
//!  driver ──enqueue_input(bytes)──▶ Receiver (framing → grammar)
//!         ◀──process(out) → Next──  │ Event
//!                                   ▼
//!                gating::meta(name).allowed ∋ state?  ── no ──▶ BAD
//!                                   │ yes
//!                                   ▼
//!                  commands::* handler ── MailStore / Mailbox / Authenticator
//!                                   │ typed Responses → encode → out
//!                                   ▼
//!           may_send_expunge? → SelectedView::sync → untagged EXPUNGE/EXISTS/FETCH
//!                                   ▼
//!                          tagged OK/NO/BAD, State::apply(transition)
//! ```
//!
//! Driver contract: call [`ImapSession::greeting`] once, then feed input with
//! [`ImapSession::enqueue_input`] and call [`ImapSession::process`] until it
//! returns [`Next::NeedInput`] (read more) or [`Next::Close`] (flush and
//! close). Flush `out` after every call: a `+` continuation request must
//! reach the client before it sends the literal. While [`ImapSession::idling`]
//! is true, call [`ImapSession::wakeup`] about once a second (IDLE push).
//!
//! APPEND literals over [`APPEND_SPOOL_THRESHOLD`] are streamed into a
//! [`mail_store::AppendSpool`] as they arrive (one `process` call per read),
//! never held whole in memory; dropping the session mid-literal drops the
//! spool, which removes what it wrote.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]
#![warn(missing_docs)]

mod capabilities;
mod commands;
mod convert;
mod fetch_cache;
mod gating;
mod mime;
mod selected;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use account_auth::Authenticator;
use imap_protocol::encode::encode;
use imap_protocol::{
    Code, Command, Continuation, Event, Expect, Limits, Receiver, Refusal, Response, Status,
    StatusKind, Tag,
};
use mail_store::{AccountStore, AppendSpool, MailStore, StoreError};

use crate::commands::FolderOp;
use crate::state::{State, Transition};

/// Session limits and policy, from the server configuration.
#[derive(Debug, Clone)]
pub struct ImapConfig {
    /// APPENDLIMIT (RFC 7889): the largest message APPEND accepts; larger
    /// ones get `NO [TOOBIG]` before any `+`.
    pub max_literal: u64,
    /// Failed logins before the connection is closed.
    pub max_auth_failures: u32,
    /// Logged-in sessions per account (`None`: unlimited); over it, LOGIN
    /// answers `NO [LIMIT]`.
    pub session_limits: Option<Arc<account_auth::sessions::SessionLimits>>,
    /// Longest command line before login (limits what an anonymous peer may make us buffer).
    pub line_limit_pre_auth: usize,
    /// Longest command line (and non-APPEND command) after login.
    pub line_limit_post_auth: usize,
}

impl Default for ImapConfig {
    fn default() -> Self {
        ImapConfig {
            max_literal: 50 * 1024 * 1024,
            max_auth_failures: 3,
            session_limits: None,
            line_limit_pre_auth: 8 * 1024,
            line_limit_post_auth: 64 * 1024,
        }
    }
}

/// Who is on the other end, for logs and throttling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The peer's address.
    pub peer: SocketAddr,
    /// The server's id of this connection (in every log line).
    pub session_id: u64,
    /// Negotiated TLS version, e.g. `TLSv1.3`.
    pub tls: String,
}

/// What the driver should do after [`ImapSession::process`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// No complete command is buffered: flush output, then read more input.
    NeedInput,
    /// Flush output and call `process` again.
    Continue,
    /// Flush output and close the connection.
    Close,
}

/// Idle timeout before login (a peer that does not log in is cut off soon).
pub const PRE_AUTH_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle timeout after login: RFC 3501 §5.4's 30-minute autologout minimum.
pub const POST_AUTH_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How often the driver should call [`ImapSession::wakeup`] during IDLE.
pub const IDLE_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// APPEND literals larger than this (256 KiB) are not held in memory: their
/// octets go to an [`mail_store::AppendSpool`] (Maildir: a file in `tmp/`)
/// as they arrive, read by read. Smaller ones stay in the command buffer.
/// APPEND is refused before login, so only a logged-in user can spool.
pub const APPEND_SPOOL_THRESHOLD: u64 = 256 * 1024;

/// The spools of the APPEND command being received.
struct Spools<A: AccountStore> {
    /// Literals received whole, in order.
    done: Vec<A::Spool>,
    /// The literal arriving now.
    current: Option<A::Spool>,
    /// A spool could not be created or written: the rest of the command's
    /// spooled data is discarded and the APPEND fails with this error.
    failed: Option<StoreError>,
}

impl<A: AccountStore> Default for Spools<A> {
    fn default() -> Self {
        Spools {
            done: Vec::new(),
            current: None,
            failed: None,
        }
    }
}

/// The spooled messages of an APPEND, as [`ImapSession::append`] takes them.
pub(crate) enum SpoolsTaken<Sp> {
    /// The spools, in order.
    Ready(Vec<Sp>),
    /// Receiving failed (disk full…): the APPEND fails with this error.
    Failed(StoreError),
}

/// One IMAP connection's session.
pub struct ImapSession<S: MailStore, A: Authenticator> {
    /// Where mail lives.
    store: Arc<S>,
    /// Who may log in.
    auth: Arc<A>,
    /// Limits and policy.
    config: Arc<ImapConfig>,
    /// Peer, id, TLS version for logs.
    conn: ConnectionInfo,
    /// Framing + grammar of the input.
    receiver: Receiver,
    /// The state and its data.
    state: State<S>,
    /// The tag of a running IDLE command.
    idle: Option<Tag>,
    /// COMPRESS=DEFLATE (RFC 4978) is on, or about to be.
    compression: Compression,
    /// The selected folder was deleted by this session: say BYE after the command.
    selected_folder_gone: bool,
    /// The name of the last command handled, for the driver's metrics.
    last_command: Option<&'static str>,
    /// A FETCH still sending its responses.
    pending_fetch: Option<commands::PendingFetch>,
    /// This session's place among its account's sessions, once logged in.
    account_slot: Option<account_auth::sessions::SessionSlot>,
    /// A CONDSTORE enabling command was seen (RFC 7162 §3.1): untagged
    /// FETCH responses carry UID and MODSEQ from now on.
    condstore: bool,
    /// Spooled APPEND literals of the command being received.
    spools: Spools<S::Account>,
}

/// Where the session stands with COMPRESS=DEFLATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    /// Plain bytes.
    Off,
    /// COMPRESS was accepted; the driver must switch after writing its OK.
    Starting,
    /// Both directions are compressed.
    On,
}

/// The tagged completion of a handler.
pub(crate) struct Done {
    pub(crate) kind: StatusKind,
    pub(crate) code: Option<Code>,
    pub(crate) text: &'static str,
}

impl Done {
    pub(crate) fn ok(text: &'static str) -> Done {
        Done {
            kind: StatusKind::Ok,
            code: None,
            text,
        }
    }
    pub(crate) fn no(code: Option<Code>, text: &'static str) -> Done {
        Done {
            kind: StatusKind::No,
            code,
            text,
        }
    }
    pub(crate) fn bad(text: &'static str) -> Done {
        Done {
            kind: StatusKind::Bad,
            code: None,
            text,
        }
    }
}

/// Encodes one response into the output.
pub(crate) fn emit(response: &Response, out: &mut Vec<u8>) {
    encode(response, out);
}

impl<S: MailStore, A: Authenticator> ImapSession<S, A> {
    /// A session for a new connection.
    pub fn new(store: Arc<S>, auth: Arc<A>, config: Arc<ImapConfig>, conn: ConnectionInfo) -> Self {
        let mut receiver = Receiver::new();
        receiver.set_spool_threshold(Some(APPEND_SPOOL_THRESHOLD));
        ImapSession {
            store,
            auth,
            config,
            conn,
            receiver,
            spools: Spools::default(),
            compression: Compression::Off,
            selected_folder_gone: false,
            last_command: None,
            pending_fetch: None,
            account_slot: None,
            condstore: false,
            state: State::new(),
            idle: None,
        }
    }

    /// The greeting: `* OK [CAPABILITY …] Coffre IMAPS ready.`
    pub fn greeting(&mut self, out: &mut Vec<u8>) {
        let caps = capabilities::pre_login();
        emit(
            &Status::untagged(
                StatusKind::Ok,
                Some(Code::Capability(caps)),
                "Coffre IMAPS ready.",
            ),
            out,
        );
    }

    /// Adds received bytes.
    pub fn enqueue_input(&mut self, bytes: &[u8]) {
        self.receiver.enqueue_input(bytes);
    }

    /// The logged-in user, if any.
    pub fn user(&self) -> Option<&str> {
        self.state.login().map(|l| l.login.as_str())
    }

    /// How long the connection may stay silent in the current state.
    pub fn idle_timeout(&self) -> Duration {
        match self.state {
            State::NotAuthenticated { .. } | State::Logout => PRE_AUTH_TIMEOUT,
            _ => POST_AUTH_TIMEOUT,
        }
    }

    /// Whether an IDLE command is running (the driver should call [`Self::wakeup`]).
    pub fn idling(&self) -> bool {
        self.idle.is_some()
    }

    /// During IDLE in the Selected state, a watcher that resolves when the
    /// selected folder may have changed (`mail_store::watch`), so the driver
    /// can call [`Self::wakeup`] at once instead of waiting for the next
    /// [`IDLE_POLL_INTERVAL`] tick. The watcher is owned: the driver may hold
    /// it across `wakeup` calls. Wake-ups may be spurious; keep polling too.
    pub fn idle_watcher(&self) -> Option<mail_store::ChangeWatcher> {
        match (&self.idle, &self.state) {
            (Some(_), State::Selected { view, .. }) => {
                Some(mail_store::Mailbox::watch(&view.mailbox))
            }
            _ => None,
        }
    }

    /// During IDLE, picks up changes to the selected mailbox and writes the
    /// untagged EXPUNGE/EXISTS/RECENT/FETCH responses (RFC 2177). Outside
    /// IDLE, or in the Authenticated state, it writes nothing.
    pub async fn wakeup(&mut self, out: &mut Vec<u8>) {
        if self.idle.is_none() {
            return;
        }
        self.flush_updates(out).await;
    }

    /// Server shutdown: `* BYE`, and the session is over.
    pub fn shutdown(&mut self, out: &mut Vec<u8>) {
        emit(
            &Status::untagged(StatusKind::Bye, None, "Server shutting down"),
            out,
        );
        self.transition(Transition::Logout);
    }

    /// The goodbye when the client was silent too long (RFC 3501 §5.4
    /// autologout) or did not log in in time.
    pub fn timed_out(&mut self, out: &mut Vec<u8>) {
        emit(
            &Status::untagged(StatusKind::Bye, None, "Autologout; idle for too long"),
            out,
        );
        self.transition(Transition::Logout);
    }

    /// The framing limits for the current state.
    fn limits(&self) -> Limits {
        match self.state {
            State::NotAuthenticated { .. } | State::Logout => Limits {
                line: self.config.line_limit_pre_auth,
                command: self.config.line_limit_pre_auth as u64,
                // No APPEND before login: its literal is refused at once.
                append: 0,
                literals: Limits::DEFAULT_LITERALS,
            },
            _ => Limits {
                line: self.config.line_limit_post_auth,
                command: self.config.line_limit_post_auth as u64,
                append: self.config.max_literal,
                literals: Limits::DEFAULT_LITERALS,
            },
        }
    }

    fn transition(&mut self, transition: Transition<S>) {
        let state = std::mem::replace(&mut self.state, State::Logout);
        self.state = state.apply(transition);
    }

    /// COMPRESS (RFC 4978): only DEFLATE; a second COMPRESS is refused.
    fn compress(&mut self, mechanism: &str) -> Done {
        if self.compression != Compression::Off {
            return Done::no(Some(Code::CompressionActive), "DEFLATE is already active");
        }
        if mechanism != "DEFLATE" {
            return Done::bad("Unknown compression mechanism; DEFLATE is supported");
        }
        self.compression = Compression::Starting;
        Done::ok("DEFLATE active")
    }

    /// After a `process` call that accepted COMPRESS, returns once the input
    /// received after the command (already compressed, so not for the
    /// parser): from now on the driver deflates everything it writes and
    /// inflates everything it reads before [`Self::enqueue_input`]. Call it
    /// after writing that call's output; `None` otherwise.
    pub fn take_compression_start(&mut self) -> Option<Vec<u8>> {
        if self.compression != Compression::Starting {
            return None;
        }
        self.compression = Compression::On;
        Some(self.receiver.take_unconsumed())
    }

    /// The name of the command the last `process` call handled (`UID FETCH`,
    /// `LOGIN`…), once; for per-command metrics.
    pub fn take_command_name(&mut self) -> Option<&'static str> {
        self.last_command.take()
    }

    /// Handles at most one complete buffered command (or emits a `+`
    /// continuation request for a synchronising literal), appending output to `out`.
    pub async fn process(&mut self, out: &mut Vec<u8>) -> Next {
        if matches!(self.state, State::Logout) {
            return Next::Close;
        }
        if let Some(pending) = self.pending_fetch.take() {
            // A FETCH larger than one output budget goes on before anything
            // else is read (its responses were written in between).
            self.continue_fetch(pending, out).await;
            return Next::Continue;
        }
        if self.compression == Compression::Starting {
            // The bytes after COMPRESS are compressed: nothing more is parsed
            // until the driver has taken them (take_compression_start).
            return Next::NeedInput;
        }
        let limits = self.limits();
        let Some(event) = self.receiver.next_event(&limits) else {
            return Next::NeedInput;
        };
        match event {
            Event::ContinuationNeeded => {
                emit(
                    &Response::Continuation(Continuation::Text("Ready for literal data".into())),
                    out,
                );
            }
            Event::LiteralChunk { data, last } => {
                self.spool_chunk(&data, last).await;
                return Next::Continue;
            }
            Event::Refused { tag, reason, fatal } => {
                // The command's spooled data (if any) goes with it.
                self.spools = Spools::default();
                self.refused(tag, reason, fatal, out);
            }
            Event::Malformed(error) => {
                self.spools = Spools::default();
                tracing::debug!(
                    session = self.conn.session_id,
                    reason = error.reason,
                    "malformed command"
                );
                let response = match error.tag {
                    Some(tag) => Status::tagged(tag, StatusKind::Bad, None, error.reason),
                    None => Status::untagged(StatusKind::Bad, None, error.reason),
                };
                emit(&response, out);
            }
            Event::AuthenticateResponse(line) => self.authenticate_step(line, out).await,
            Event::IdleDone(result) => self.idle_done(result, out).await,
            Event::Command(command) => {
                self.dispatch(command, out).await;
                // Whatever the command did not take is removed now.
                self.spools = Spools::default();
            }
        }
        if matches!(self.state, State::Logout) {
            Next::Close
        } else {
            Next::Continue
        }
    }

    /// Writes the next octets of a spooled APPEND literal to its spool,
    /// creating it with the first chunk. After a failure the rest of the
    /// command's spooled data is read and discarded; the APPEND then fails.
    async fn spool_chunk(&mut self, data: &[u8], last: bool) {
        if self.spools.failed.is_none() {
            let written = match self.spools.current.as_mut() {
                Some(spool) => spool.write(data).await,
                None => match self.state.login() {
                    Some(login) => match login.store.create_spool().await {
                        Ok(mut spool) => {
                            let written = spool.write(data).await;
                            self.spools.current = Some(spool);
                            written
                        }
                        Err(err) => Err(err),
                    },
                    // Unreachable in practice: APPEND literals are refused
                    // before login (the APPEND limit is 0 there).
                    None => Err(StoreError::new(
                        mail_store::StoreErrorKind::NotPossible,
                        "APPEND data before login",
                    )),
                },
            };
            if let Err(err) = written {
                tracing::warn!(session = self.conn.session_id, error = %err, "cannot spool APPEND data");
                // Dropping the spools removes what they wrote.
                self.spools = Spools {
                    failed: Some(err),
                    ..Spools::default()
                };
            }
        }
        if last && let Some(spool) = self.spools.current.take() {
            self.spools.done.push(spool);
        }
    }

    /// The spooled messages of the APPEND being handled.
    pub(crate) fn take_spools(&mut self) -> SpoolsTaken<<S::Account as AccountStore>::Spool> {
        let spools = std::mem::take(&mut self.spools);
        match spools.failed {
            Some(err) => SpoolsTaken::Failed(err),
            None => SpoolsTaken::Ready(spools.done),
        }
    }

    fn refused(&mut self, tag: Option<Tag>, reason: Refusal, fatal: bool, out: &mut Vec<u8>) {
        tracing::debug!(
            session = self.conn.session_id,
            ?reason,
            fatal,
            "command refused by framing limits"
        );
        // A refused AUTHENTICATE response or IDLE line ends that exchange.
        if let State::NotAuthenticated { pending, .. } = &mut self.state
            && let Some((pending_tag, _)) = pending.take()
        {
            emit(
                &Status::tagged(pending_tag, StatusKind::Bad, None, reason.text()),
                out,
            );
            return;
        }
        if let Some(idle_tag) = self.idle.take() {
            emit(
                &Status::tagged(idle_tag, StatusKind::Bad, None, reason.text()),
                out,
            );
            return;
        }
        let (kind, code) = match reason {
            Refusal::TooBig => (StatusKind::No, Some(Code::TooBig)),
            Refusal::TooManyLiterals => (StatusKind::Bad, Some(Code::Limit)),
            _ => (StatusKind::Bad, None),
        };
        let response = match tag {
            Some(tag) => Status::tagged(tag, kind, code, reason.text()),
            None => Status::untagged(StatusKind::Bad, code, reason.text()),
        };
        emit(&response, out);
        if fatal {
            emit(
                &Status::untagged(StatusKind::Bye, None, "Literal refused, closing connection"),
                out,
            );
            self.transition(Transition::Logout);
        }
    }

    async fn dispatch(&mut self, command: Command, out: &mut Vec<u8>) {
        let Command { tag, body } = command;
        let name = body.name();
        self.last_command = Some(name);
        tracing::debug!(
            session = self.conn.session_id,
            tag = tag.as_str(),
            command = name,
            "command"
        );
        let meta = gating::meta(name);
        if !meta.allowed.contains(self.state.gate()) {
            let text = match self.state {
                State::NotAuthenticated { .. } => "Log in first",
                State::Authenticated { .. } => match name {
                    "LOGIN" | "AUTHENTICATE" => "Already logged in",
                    _ => "Select a mailbox first",
                },
                _ => match name {
                    "LOGIN" | "AUTHENTICATE" => "Already logged in",
                    _ => "Command not allowed now",
                },
            };
            emit(&Status::tagged(tag, StatusKind::Bad, None, text), out);
            return;
        }
        if meta.may_send_expunge {
            // Others' changes first, so the command works on the current mailbox.
            self.flush_updates(out).await;
        }
        let done = self.run(&tag, body, out).await;
        let Some(done) = done else {
            // The handler wrote its own completion (or a continuation request).
            return;
        };
        self.complete(tag, name, done, out).await;
    }

    /// Writes a command's tagged completion, with the pending mailbox
    /// updates first where the command permits them (§7.4.1).
    pub(crate) async fn complete(&mut self, tag: Tag, name: &str, done: Done, out: &mut Vec<u8>) {
        if self.selected_folder_gone {
            // DELETE of the selected folder (or a RENAME it did not survive):
            // complete the command, then end the session (as Dovecot does).
            emit(&Status::tagged(tag, done.kind, done.code, done.text), out);
            emit(
                &Status::untagged(
                    StatusKind::Bye,
                    None,
                    "Selected mailbox was deleted or renamed",
                ),
                out,
            );
            self.transition(Transition::Logout);
            return;
        }
        if gating::meta(name).may_send_expunge && done.kind != StatusKind::Bad {
            self.flush_updates(out).await;
        }
        emit(&Status::tagged(tag, done.kind, done.code, done.text), out);
    }

    /// Sends pending mailbox updates of the selected mailbox, where §7.4.1 permits.
    async fn flush_updates(&mut self, out: &mut Vec<u8>) {
        if let State::Selected { view, .. } = &mut self.state {
            match view.sync(self.condstore).await {
                Ok(updates) => updates.iter().for_each(|r| emit(r, out)),
                Err(err) => {
                    tracing::warn!(session = self.conn.session_id, error = %err, "mailbox sync failed");
                }
            }
        }
    }

    /// Runs a command's handler. `None`: the handler completed it itself.
    async fn run(
        &mut self,
        tag: &Tag,
        body: imap_protocol::CommandBody,
        out: &mut Vec<u8>,
    ) -> Option<Done> {
        use imap_protocol::CommandBody as C;
        Some(match body {
            C::Capability => self.capability(out),
            C::Noop | C::Check => Done::ok("Completed"),
            C::Logout => {
                emit(&Status::untagged(StatusKind::Bye, None, "Logging out"), out);
                self.transition(Transition::Logout);
                Done::ok("Logout completed")
            }
            C::Id(_) => self.id(out),
            C::Enable(caps) => self.enable(&caps, out),
            C::Namespace => self.namespace(out),
            C::Compress(mechanism) => self.compress(&mechanism),
            C::Login { username, password } => {
                return self.login(tag, &username, &password, out).await;
            }
            C::Authenticate {
                mechanism,
                initial_response,
            } => {
                return self
                    .authenticate(tag, &mechanism, initial_response, out)
                    .await;
            }
            // SELECT/EXAMINE (CONDSTORE) enables CONDSTORE (RFC 7162 §3.1.8);
            // the [HIGHESTMODSEQ] it owes is part of every SELECT anyway.
            C::Select { mailbox, condstore } => {
                self.condstore |= condstore;
                self.select(&mailbox, false, out).await
            }
            C::Examine { mailbox, condstore } => {
                self.condstore |= condstore;
                self.select(&mailbox, true, out).await
            }
            C::Create(mailbox) => self.create(&mailbox).await,
            C::Delete(mailbox) => self.folder_op(FolderOp::Delete, &mailbox).await,
            C::Rename { from, to } => self.rename(&from, &to).await,
            C::Subscribe(mailbox) => self.folder_op(FolderOp::Subscribe, &mailbox).await,
            C::Unsubscribe(mailbox) => self.folder_op(FolderOp::Unsubscribe, &mailbox).await,
            C::List {
                reference,
                patterns,
                select,
                ret,
                extended,
            } => {
                let request = commands::ListRequest {
                    reference: &reference,
                    patterns: &patterns,
                    select: &select,
                    ret: &ret,
                    extended,
                    lsub: false,
                };
                self.list(request, out).await
            }
            C::Lsub { reference, pattern } => {
                let request = commands::ListRequest {
                    reference: &reference,
                    patterns: std::slice::from_ref(&pattern),
                    select: &[],
                    ret: &[],
                    extended: false,
                    lsub: true,
                };
                self.list(request, out).await
            }
            C::Status { mailbox, items } => self.status(&mailbox, &items, out).await,
            C::Append { mailbox, messages } => self.append(&mailbox, &messages).await,
            C::Close => self.close(true).await,
            C::Unselect => self.close(false).await,
            C::Expunge => self.expunge(None, out).await,
            C::UidExpunge(set) => self.expunge(Some(&set), out).await,
            C::Search {
                ret,
                charset,
                criteria,
                uid,
            } => {
                let request = commands::SearchRequest {
                    tag,
                    ret: ret.as_deref(),
                    charset: charset.as_deref(),
                    keys: &criteria,
                    by_uid: uid,
                };
                self.search(request, out).await
            }
            C::Fetch {
                set,
                attributes,
                uid,
                changed_since,
            } => {
                let request = commands::FetchRequest {
                    set: &set,
                    attrs: &attributes,
                    by_uid: uid,
                    changed_since,
                };
                return self.fetch(tag, request, out).await;
            }
            C::Store {
                set,
                op,
                silent,
                flags,
                uid,
                unchanged_since,
            } => {
                let request = commands::StoreRequest {
                    set: &set,
                    op,
                    silent,
                    flags: &flags,
                    by_uid: uid,
                    unchanged_since,
                };
                self.store(request, out).await
            }
            C::Copy { set, mailbox, uid } => self.copy(&set, &mailbox, uid, false, out).await,
            C::Move { set, mailbox, uid } => self.copy(&set, &mailbox, uid, true, out).await,
            C::GetQuota(root) => self.get_quota(&root, out).await,
            C::GetQuotaRoot(mailbox) => self.get_quota_root(&mailbox, out).await,
            C::Idle => return self.idle(tag, out).await,
        })
    }

    /// A CONDSTORE enabling command (RFC 7162 §3.1) is running: from now on
    /// untagged FETCH responses carry UID and MODSEQ. The first time, with a
    /// mailbox selected, the client is told its HIGHESTMODSEQ.
    pub(crate) fn enable_condstore(&mut self, out: &mut Vec<u8>) {
        if self.condstore {
            return;
        }
        self.condstore = true;
        if let State::Selected { view, .. } = &self.state {
            let highest = mail_store::Mailbox::status(&view.mailbox).highest_modseq;
            emit(
                &Status::untagged(
                    StatusKind::Ok,
                    Some(Code::HighestModSeq(highest)),
                    "Highest",
                ),
                out,
            );
        }
    }

    /// IDLE (RFC 2177): `+ idling`, then updates via [`Self::wakeup`] until `DONE`.
    async fn idle(&mut self, tag: &Tag, out: &mut Vec<u8>) -> Option<Done> {
        emit(
            &Response::Continuation(Continuation::Text("idling".into())),
            out,
        );
        self.idle = Some(tag.clone());
        self.receiver.expect(Expect::IdleDone);
        self.flush_updates(out).await;
        None
    }

    async fn idle_done(&mut self, result: Result<(), ()>, out: &mut Vec<u8>) {
        let Some(tag) = self.idle.take() else { return };
        match result {
            Ok(()) => {
                self.flush_updates(out).await;
                emit(
                    &Status::tagged(tag, StatusKind::Ok, None, "IDLE terminated"),
                    out,
                );
            }
            Err(()) => emit(
                &Status::tagged(tag, StatusKind::Bad, None, "Expected DONE"),
                out,
            ),
        }
    }
}
