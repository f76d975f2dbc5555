//! The session: its states, the command dispatch (which commands each state
//! allows, RFC 1939 §4–§7, RFC 2449 §5) and the AUTHORIZATION state —
//! USER/PASS (RFC 1939 §7) and AUTH PLAIN (RFC 5034, RFC 4616), failure
//! counting with `[AUTH]` and `[SYS/TEMP]` codes (RFC 3206), opening the
//! maildrop (`[IN-USE]`, RFC 2449 §8.1.1).
//!
//! Logins are logged with peer, session id, TLS version, login and
//! mechanism; never with the password.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use account_auth::sasl::decode_plain;
use account_auth::{Account, AuthError, Authenticator, LoginAttempt, Mechanism, Secret};
use mail_store::{AccountLocation, AccountStore, FolderName, MailStore, StoreErrorKind};
use pop3_protocol::{
    Capability, Command, MechanismName, ParseError, Password, Pop3Decoder, Response, ResponseCode,
    SaslData, SaslResponse,
};
use tracing::{debug, error, info, warn};

use crate::maildrop::Maildrop;
use crate::transaction::Transfer;
use crate::{
    AUTHORIZATION_IDLE_TIMEOUT, ConnectionInfo, MAX_BAD_COMMANDS, Next, Pop3Config,
    SASL_MECHANISMS, TRANSACTION_IDLE_TIMEOUT,
};

/// The mailbox type a store opens.
pub(crate) type MailboxOf<S> = <<S as MailStore>::Account as AccountStore>::Mailbox;

/// RFC 1939 states. UPDATE is not stored: it happens inside QUIT and the
/// session is `Closed` right after.
pub(crate) enum State<S: MailStore> {
    Authorization {
        /// The name from USER, waiting for PASS.
        user: Option<String>,
        /// Failed logins so far.
        failures: u32,
        /// `AUTH PLAIN` sent `+ ` and waits for the client's line.
        sasl_pending: bool,
    },
    Transaction {
        /// The canonical login.
        login: String,
        maildrop: Maildrop<MailboxOf<S>>,
        /// A RETR/TOP body still being sent, one piece per `process` call.
        transfer: Option<Transfer>,
    },
    Closed,
}

/// One POP3 connection's protocol state. See the crate documentation.
pub struct Pop3Session<S: MailStore, A: Authenticator> {
    store: Arc<S>,
    auth: Arc<A>,
    pub(crate) config: Arc<Pop3Config>,
    pub(crate) conn: ConnectionInfo,
    decoder: Pop3Decoder,
    pub(crate) state: State<S>,
    bad_commands: u32,
    /// The name of the last command started, for the driver's metrics.
    last_command: Option<&'static str>,
}

/// Appends `-ERR [code] text`.
pub(crate) fn err(out: &mut Vec<u8>, code: Option<ResponseCode>, text: &str) {
    Response::Err { code, text }.encode(out);
}

/// Appends `+OK text`.
pub(crate) fn ok(out: &mut Vec<u8>, text: &str) {
    Response::Ok(text).encode(out);
}

impl<S: MailStore, A: Authenticator> Pop3Session<S, A> {
    /// A new session in AUTHORIZATION.
    pub fn new(store: Arc<S>, auth: Arc<A>, config: Arc<Pop3Config>, conn: ConnectionInfo) -> Self {
        Pop3Session {
            store,
            auth,
            config,
            conn,
            decoder: Pop3Decoder::new(),
            state: State::Authorization {
                user: None,
                failures: 0,
                sasl_pending: false,
            },
            bad_commands: 0,
            last_command: None,
        }
    }

    /// The greeting (RFC 1939 §4).
    pub fn greeting(&mut self, out: &mut Vec<u8>) {
        ok(out, "Coffre POP3S ready.");
    }

    /// Adds bytes read from the client.
    pub fn enqueue_input(&mut self, bytes: &[u8]) {
        self.decoder.enqueue(bytes);
    }

    /// The name of the command the last `process` call started (`RETR`,
    /// `UIDL`…), once; for per-command metrics.
    pub fn take_command_name(&mut self) -> Option<&'static str> {
        self.last_command.take()
    }

    /// Handles at most one complete buffered command, appending its response
    /// to `out`.
    pub async fn process(&mut self, out: &mut Vec<u8>) -> Next {
        let next = match &self.state {
            State::Closed => return Next::Close,
            State::Authorization {
                sasl_pending: true, ..
            } => {
                let Some(line) = self.decoder.next_sasl_response() else {
                    return Next::NeedInput;
                };
                self.sasl_response(line, out).await
            }
            // A multi-line response in progress goes on before the next
            // command is even looked at (RFC 1939 §3: responses in order).
            State::Transaction {
                transfer: Some(_), ..
            } => self.continue_transfer(out).await,
            _ => match self.decoder.next() {
                None => return Next::NeedInput,
                Some(Ok(command)) => {
                    self.last_command = Some(command.name());
                    self.dispatch(command, out).await
                }
                Some(Err(reason)) => self.bad_command(reason, out),
            },
        };
        if next == Next::Close {
            self.state = State::Closed;
        }
        next
    }

    /// Inactivity allowed in the current state.
    pub fn idle_timeout(&self) -> Duration {
        match self.state {
            State::Transaction { .. } => TRANSACTION_IDLE_TIMEOUT,
            _ => AUTHORIZATION_IDLE_TIMEOUT,
        }
    }

    /// Server shutdown: tells the client and closes without UPDATE, so
    /// nothing is deleted.
    pub fn shutdown(&mut self, out: &mut Vec<u8>) {
        match &self.state {
            State::Closed => {}
            State::Authorization { .. } => {
                err(out, Some(ResponseCode::SysTemp), "server shutting down");
            }
            State::Transaction {
                login,
                maildrop,
                transfer,
            } => {
                // In the middle of a message body a status line would be
                // read as part of the message: then the connection just closes.
                if transfer.is_none() {
                    err(out, Some(ResponseCode::SysTemp), "server shutting down");
                }
                info!(
                    session_id = self.conn.session_id,
                    user = %login,
                    marked = maildrop.deleted_count(),
                    "pop3 session closed by shutdown, nothing deleted"
                );
            }
        }
        self.state = State::Closed;
    }

    /// The logged-in account, once in TRANSACTION.
    pub fn user(&self) -> Option<&str> {
        match &self.state {
            State::Transaction { login, .. } => Some(login),
            _ => None,
        }
    }

    fn bad_command(&mut self, reason: ParseError, out: &mut Vec<u8>) -> Next {
        self.bad_commands += 1;
        debug!(session_id = self.conn.session_id, %reason, "pop3 bad command");
        if self.bad_commands >= MAX_BAD_COMMANDS {
            err(out, None, "Too many invalid commands, closing connection");
            return Next::Close;
        }
        err(out, None, &reason.to_string());
        Next::Continue
    }

    async fn dispatch(&mut self, command: Command, out: &mut Vec<u8>) -> Next {
        debug!(
            session_id = self.conn.session_id,
            command = command.name(),
            "pop3 command"
        );
        let in_transaction = matches!(self.state, State::Transaction { .. });
        match command {
            Command::Capa => {
                self.capa(out);
                Next::Continue
            }
            // RFC 1939 allows NOOP in TRANSACTION only; answering it before
            // login too costs nothing and keeps idle clients happy.
            Command::Noop => {
                ok(out, "");
                Next::Continue
            }
            Command::Quit => self.quit(out).await,
            Command::User(_) | Command::Pass(_) | Command::Apop | Command::Auth { .. }
                if in_transaction =>
            {
                err(out, None, "Already logged in");
                Next::Continue
            }
            Command::User(name) => self.user_command(name, out),
            Command::Pass(password) => self.pass(password, out).await,
            Command::Apop => {
                err(
                    out,
                    None,
                    "APOP is not supported; use USER/PASS or AUTH PLAIN",
                );
                Next::Continue
            }
            Command::Auth {
                mechanism,
                initial_response,
            } => self.auth_command(mechanism, initial_response, out).await,
            Command::Stat
            | Command::List(_)
            | Command::Retr(_)
            | Command::Dele(_)
            | Command::Rset
            | Command::Top { .. }
            | Command::Uidl(_) => {
                self.transaction_command(command, out).await;
                Next::Continue
            }
        }
    }

    /// CAPA (RFC 2449 §5): login capabilities only before login.
    fn capa(&self, out: &mut Vec<u8>) {
        let mut capabilities = vec![Capability::Top, Capability::Uidl];
        if matches!(self.state, State::Authorization { .. }) {
            capabilities.push(Capability::User);
            capabilities.push(Capability::Sasl(
                SASL_MECHANISMS.iter().map(|m| (*m).to_string()).collect(),
            ));
        }
        capabilities.extend([
            Capability::RespCodes,
            Capability::AuthRespCode,
            Capability::Pipelining,
        ]);
        if let Some(name) = &self.config.implementation {
            capabilities.push(Capability::Implementation(name.clone()));
        }
        Response::Capabilities(&capabilities).encode(out);
    }

    async fn quit(&mut self, out: &mut Vec<u8>) -> Next {
        if matches!(self.state, State::Transaction { .. }) {
            self.update(out).await;
        } else {
            ok(out, "Logging out");
        }
        Next::Close
    }

    fn user_command(&mut self, name: String, out: &mut Vec<u8>) -> Next {
        match &mut self.state {
            State::Authorization { user, .. } => {
                *user = Some(name);
                ok(out, "Send PASS");
            }
            _ => err(out, None, "Already logged in"),
        }
        Next::Continue
    }

    async fn pass(&mut self, password: Password, out: &mut Vec<u8>) -> Next {
        let State::Authorization { user, .. } = &mut self.state else {
            err(out, None, "Already logged in");
            return Next::Continue;
        };
        let Some(login) = user.take() else {
            err(out, None, "Send USER first");
            return Next::Continue;
        };
        let password = Secret::new(password.into_inner());
        self.login(login, password, Mechanism::Pop3UserPass, out)
            .await
    }

    async fn auth_command(
        &mut self,
        mechanism: Option<MechanismName>,
        initial_response: Option<SaslData>,
        out: &mut Vec<u8>,
    ) -> Next {
        let State::Authorization {
            user, sasl_pending, ..
        } = &mut self.state
        else {
            err(out, None, "Already logged in");
            return Next::Continue;
        };
        *user = None;
        let Some(mechanism) = mechanism else {
            Response::Mechanisms(SASL_MECHANISMS).encode(out);
            return Next::Continue;
        };
        if !SASL_MECHANISMS.contains(&mechanism.as_str()) {
            err(out, None, "Unsupported authentication mechanism");
            return Next::Continue;
        }
        match initial_response {
            Some(data) => self.plain(&data, out).await,
            None => {
                // RFC 5034 §4: an empty challenge, the client answers on its own line.
                Response::SaslChallenge(b"").encode(out);
                *sasl_pending = true;
                Next::Continue
            }
        }
    }

    async fn sasl_response(
        &mut self,
        line: Result<SaslResponse, ParseError>,
        out: &mut Vec<u8>,
    ) -> Next {
        if let State::Authorization { sasl_pending, .. } = &mut self.state {
            *sasl_pending = false;
        }
        match line {
            Ok(SaslResponse::Cancel) => {
                err(out, None, "Authentication cancelled");
                Next::Continue
            }
            Ok(SaslResponse::Data(data)) => self.plain(&data, out).await,
            Err(reason) => self.bad_command(reason, out),
        }
    }

    /// A decoded SASL PLAIN message (RFC 4616).
    async fn plain(&mut self, data: &SaslData, out: &mut Vec<u8>) -> Next {
        match decode_plain(data.expose()) {
            Ok(credentials) => {
                self.login(
                    credentials.authcid,
                    credentials.password,
                    Mechanism::SaslPlain,
                    out,
                )
                .await
            }
            Err(reason) => self.auth_failure(None, Mechanism::SaslPlain, &reason, out),
        }
    }

    async fn login(
        &mut self,
        login: String,
        password: Secret,
        mechanism: Mechanism,
        out: &mut Vec<u8>,
    ) -> Next {
        let attempt = LoginAttempt {
            login,
            password,
            peer: self.conn.peer.ip(),
            mechanism,
        };
        match self.auth.authenticate(&attempt).await {
            Ok(account) => self.open_maildrop(account, mechanism, out).await,
            Err(AuthError::Unavailable(detail)) => {
                warn!(
                    peer = %self.conn.peer,
                    session_id = self.conn.session_id,
                    user = %attempt.login,
                    %detail,
                    "pop3 login: authentication unavailable"
                );
                err(
                    out,
                    Some(ResponseCode::SysTemp),
                    "Authentication temporarily unavailable",
                );
                Next::Continue
            }
            Err(reason) => self.auth_failure(Some(&attempt.login), mechanism, &reason, out),
        }
    }

    /// Counts a failed login; closes after `max_auth_failures`.
    fn auth_failure(
        &mut self,
        login: Option<&str>,
        mechanism: Mechanism,
        reason: &dyn fmt::Display,
        out: &mut Vec<u8>,
    ) -> Next {
        let failures = match &mut self.state {
            State::Authorization { failures, .. } => {
                *failures += 1;
                *failures
            }
            _ => 0,
        };
        info!(
            peer = %self.conn.peer,
            session_id = self.conn.session_id,
            tls = %self.conn.tls,
            user = login.unwrap_or(""),
            mechanism = mechanism.as_str(),
            failures,
            %reason,
            "pop3 login failed"
        );
        if failures >= self.config.max_auth_failures {
            err(
                out,
                Some(ResponseCode::Auth),
                "Authentication failed, closing connection",
            );
            return Next::Close;
        }
        err(out, Some(ResponseCode::Auth), "Authentication failed");
        Next::Continue
    }

    /// After a successful login: open INBOX read-write and take the snapshot.
    async fn open_maildrop(
        &mut self,
        account: Account,
        mechanism: Mechanism,
        out: &mut Vec<u8>,
    ) -> Next {
        let location = AccountLocation {
            login: account.login.clone(),
            location: account.mail_location.clone(),
        };
        // RFC 1939 §8: lock the maildrop first, then take the snapshot; the
        // lock is held by the maildrop until the session ends.
        let opened = match self.store.open_account(&location).await {
            Ok(store) => match store.lock_maildrop().await {
                Ok(lock) => store
                    .open_folder(&FolderName::inbox(), false)
                    .await
                    .map(|mailbox| (mailbox, lock)),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let (mailbox, lock) = match opened {
            Ok(opened) => opened,
            Err(e) if e.kind == StoreErrorKind::InUse => {
                info!(
                    peer = %self.conn.peer,
                    session_id = self.conn.session_id,
                    user = %account.login,
                    "pop3 login: maildrop in use"
                );
                err(
                    out,
                    Some(ResponseCode::InUse),
                    "Maildrop is locked by another POP3 session",
                );
                return Next::Continue;
            }
            Err(e) => {
                error!(
                    peer = %self.conn.peer,
                    session_id = self.conn.session_id,
                    user = %account.login,
                    error = %e,
                    "pop3 login: cannot open the maildrop"
                );
                err(out, Some(ResponseCode::SysTemp), "Cannot open the maildrop");
                return Next::Continue;
            }
        };
        let maildrop = Maildrop::new(mailbox, lock, &self.config.uidl_format);
        info!(
            peer = %self.conn.peer,
            session_id = self.conn.session_id,
            tls = %self.conn.tls,
            user = %account.login,
            mechanism = mechanism.as_str(),
            messages = maildrop.len(),
            "pop3 login"
        );
        self.state = State::Transaction {
            login: account.login,
            maildrop,
            transfer: None,
        };
        ok(out, "Logged in.");
        Next::Continue
    }
}
