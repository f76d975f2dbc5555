//! LOGIN (RFC 3501 §6.2.3) and AUTHENTICATE (§6.2.2) with SASL PLAIN
//! (RFC 4616), SASL LOGIN, and SASL-IR initial responses (RFC 4959).
//!
//! Every attempt is logged with peer, user, session id, TLS version and
//! mechanism — never the password. Unknown user and wrong password give the
//! same answer. After `max_auth_failures` failures the connection is closed.

use account_auth::{AuthError, Authenticator, LoginAttempt, Mechanism, Secret};
use base64::Engine;
use imap_protocol::{Code, Continuation, Expect, Response, Status, StatusKind, Tag};
use mail_store::{AccountLocation, MailStore, Quota};

use crate::state::{Login, PendingAuth, State, Transition};
use crate::{Done, ImapSession, capabilities, emit};

/// The SASL LOGIN prompts, base64 of `Username:` and `Password:`.
const LOGIN_USER_PROMPT: &[u8] = b"Username:";
const LOGIN_PASSWORD_PROMPT: &[u8] = b"Password:";

/// Longest decoded SASL message accepted (three credential fields of at most
/// 1 KiB and two NULs fit easily).
const MAX_SASL_MESSAGE: usize = 4096;

impl<S: MailStore, A: Authenticator> ImapSession<S, A> {
    pub(crate) async fn login(
        &mut self,
        tag: &Tag,
        username: &[u8],
        password: &imap_protocol::Secret,
        out: &mut Vec<u8>,
    ) -> Option<Done> {
        let (Ok(user), Ok(pass)) = (
            std::str::from_utf8(username),
            std::str::from_utf8(password.expose()),
        ) else {
            self.auth_failed(tag, "-", Mechanism::ImapLogin, out);
            return None;
        };
        self.check_credentials(
            tag,
            user.to_string(),
            Secret::new(pass),
            Mechanism::ImapLogin,
            out,
        )
        .await;
        None
    }

    pub(crate) async fn authenticate(
        &mut self,
        tag: &Tag,
        mechanism: &str,
        initial: Option<imap_protocol::Secret>,
        out: &mut Vec<u8>,
    ) -> Option<Done> {
        let step = match mechanism {
            "PLAIN" => PendingAuth::Plain,
            "LOGIN" => PendingAuth::LoginUser,
            _ => {
                return Some(Done::no(
                    Some(Code::Cannot),
                    "Unsupported authentication mechanism",
                ));
            }
        };
        match initial {
            Some(ir) => self.sasl_message(tag.clone(), step, ir.expose(), out).await,
            None => self.challenge(tag.clone(), step, out),
        }
        None
    }

    /// Sends the challenge for `step` and waits for the client's line.
    fn challenge(&mut self, tag: Tag, step: PendingAuth, out: &mut Vec<u8>) {
        let prompt: &[u8] = match step {
            PendingAuth::Plain => b"",
            PendingAuth::LoginUser => LOGIN_USER_PROMPT,
            PendingAuth::LoginPassword(_) => LOGIN_PASSWORD_PROMPT,
        };
        emit(
            &Response::Continuation(Continuation::Base64(prompt.to_vec())),
            out,
        );
        if let State::NotAuthenticated { pending, .. } = &mut self.state {
            *pending = Some((tag, step));
        }
        self.receiver.expect(Expect::AuthenticateResponse);
    }

    /// The client's line answering a challenge.
    pub(crate) async fn authenticate_step(
        &mut self,
        line: imap_protocol::Secret,
        out: &mut Vec<u8>,
    ) {
        let State::NotAuthenticated { pending, .. } = &mut self.state else {
            return;
        };
        let Some((tag, step)) = pending.take() else {
            return;
        };
        if line.expose() == b"*" {
            emit(
                &Status::tagged(tag, StatusKind::Bad, None, "Authentication cancelled"),
                out,
            );
            return;
        }
        self.sasl_message(tag, step, line.expose(), out).await;
    }

    /// Handles one base64 SASL message (`=` is the empty message).
    async fn sasl_message(&mut self, tag: Tag, step: PendingAuth, b64: &[u8], out: &mut Vec<u8>) {
        let decoded = if b64 == b"=" {
            Ok(Vec::new())
        } else if b64.len() > MAX_SASL_MESSAGE * 4 / 3 + 4 {
            Err(())
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| ())
        };
        let Ok(message) = decoded else {
            emit(
                &Status::tagged(tag, StatusKind::Bad, None, "Invalid base64"),
                out,
            );
            return;
        };
        match step {
            PendingAuth::Plain => match account_auth::sasl::decode_plain(&message) {
                Ok(creds) => {
                    self.check_credentials(
                        &tag,
                        creds.authcid,
                        creds.password,
                        Mechanism::SaslPlain,
                        out,
                    )
                    .await;
                }
                Err(_) => self.auth_failed(&tag, "-", Mechanism::SaslPlain, out),
            },
            PendingAuth::LoginUser => match String::from_utf8(message) {
                Ok(user) if !user.is_empty() => {
                    self.challenge(tag, PendingAuth::LoginPassword(user), out)
                }
                _ => self.auth_failed(&tag, "-", Mechanism::SaslLogin, out),
            },
            PendingAuth::LoginPassword(user) => match String::from_utf8(message) {
                Ok(pass) => {
                    self.check_credentials(&tag, user, Secret::new(pass), Mechanism::SaslLogin, out)
                        .await
                }
                Err(_) => self.auth_failed(&tag, &user, Mechanism::SaslLogin, out),
            },
        }
    }

    async fn check_credentials(
        &mut self,
        tag: &Tag,
        login: String,
        password: Secret,
        mechanism: Mechanism,
        out: &mut Vec<u8>,
    ) {
        let attempt = LoginAttempt {
            login,
            password,
            peer: self.conn.peer.ip(),
            mechanism,
        };
        match self.auth.authenticate(&attempt).await {
            Ok(account) => {
                let slot = match &self.config.session_limits {
                    None => None,
                    Some(limits) => match limits.acquire(&account.login) {
                        Some(slot) => Some(slot),
                        None => {
                            tracing::warn!(
                                peer = %self.conn.peer, user = %account.login, session = self.conn.session_id,
                                "login refused: too many sessions for this account"
                            );
                            emit(
                                &Status::tagged(
                                    tag.clone(),
                                    StatusKind::No,
                                    Some(Code::Limit),
                                    "Too many sessions for this account",
                                ),
                                out,
                            );
                            return;
                        }
                    },
                };
                let location = AccountLocation {
                    login: account.login.clone(),
                    location: account.mail_location.clone(),
                };
                // The account's limits: APPEND/COPY beyond them fail with
                // [OVERQUOTA]; GETQUOTAROOT reports them (RFC 9208).
                let quota = Quota {
                    max_bytes: account.quota_bytes,
                    max_messages: account.quota_messages,
                };
                match self.store.open_account_with_quota(&location, quota).await {
                    Ok(store) => {
                        tracing::info!(
                            peer = %self.conn.peer, user = %account.login, session = self.conn.session_id,
                            tls = %self.conn.tls, mechanism = mechanism.as_str(), "login succeeded"
                        );
                        self.account_slot = slot;
                        self.transition(Transition::LoggedIn(Login {
                            login: account.login,
                            store,
                        }));
                        let caps = capabilities::post_login(&self.config);
                        emit(
                            &Status::tagged(
                                tag.clone(),
                                StatusKind::Ok,
                                Some(Code::Capability(caps)),
                                "Logged in",
                            ),
                            out,
                        );
                    }
                    Err(err) => {
                        tracing::error!(
                            peer = %self.conn.peer, user = %account.login, session = self.conn.session_id,
                            error = %err, "cannot open the account's mail after login"
                        );
                        emit(
                            &Status::tagged(
                                tag.clone(),
                                StatusKind::No,
                                Some(Code::Unavailable),
                                "Mailbox unavailable, try again later",
                            ),
                            out,
                        );
                    }
                }
            }
            Err(AuthError::Unavailable(detail)) => {
                tracing::warn!(
                    peer = %self.conn.peer, user = %attempt.login, session = self.conn.session_id,
                    tls = %self.conn.tls, mechanism = mechanism.as_str(), detail = %detail, "login unavailable"
                );
                emit(
                    &Status::tagged(
                        tag.clone(),
                        StatusKind::No,
                        Some(Code::Unavailable),
                        "Authentication temporarily unavailable",
                    ),
                    out,
                );
            }
            Err(AuthError::Failed | AuthError::Malformed(_)) => {
                self.auth_failed(tag, &attempt.login, mechanism, out)
            }
        }
    }

    /// Counts a failure, answers `NO [AUTHENTICATIONFAILED]`, and closes the
    /// connection once the limit is reached.
    fn auth_failed(&mut self, tag: &Tag, login: &str, mechanism: Mechanism, out: &mut Vec<u8>) {
        tracing::info!(
            peer = %self.conn.peer, user = %login, session = self.conn.session_id,
            tls = %self.conn.tls, mechanism = mechanism.as_str(), "login failed"
        );
        emit(
            &Status::tagged(
                tag.clone(),
                StatusKind::No,
                Some(Code::AuthenticationFailed),
                "Authentication failed",
            ),
            out,
        );
        let State::NotAuthenticated { failures, .. } = &mut self.state else {
            return;
        };
        *failures += 1;
        if *failures >= self.config.max_auth_failures {
            emit(
                &Status::untagged(StatusKind::Bye, None, "Too many authentication failures"),
                out,
            );
            self.transition(Transition::Logout);
        }
    }
}
