//! Adapters from the protocol sessions to the driver's [`ProtocolSession`],
//! and the factories that build a session per connection from the config.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use account_auth::sql::SqlAccounts;
use account_auth::throttle::Throttled;
use maildir_store::MaildirStore;

use crate::config::Config;
use crate::connection::{Next, ProtocolSession};
use crate::listener::{Protocol, SessionFactory};

/// The production authenticator: SQL accounts behind the login throttle.
pub type Accounts = Throttled<SqlAccounts>;

/// Builds IMAP sessions.
pub struct ImapFactory {
    store: Arc<MaildirStore>,
    auth: Arc<Accounts>,
    config: Arc<imap_session::ImapConfig>,
}

impl ImapFactory {
    /// From the `[imaps]` section.
    pub fn new(store: Arc<MaildirStore>, auth: Arc<Accounts>, cfg: &Config) -> Self {
        let config = imap_session::ImapConfig {
            max_literal: cfg.imaps.append_limit,
            max_auth_failures: cfg.auth.max_failures_per_session,
            session_limits: Some(account_auth::sessions::SessionLimits::new(
                cfg.limits.max_sessions_per_account,
            )),
            ..imap_session::ImapConfig::default()
        };
        Self {
            store,
            auth,
            config: Arc::new(config),
        }
    }
}

/// An IMAP session on the production store and accounts.
pub struct ImapConn(imap_session::ImapSession<MaildirStore, Accounts>);

impl SessionFactory for ImapFactory {
    type Session = ImapConn;

    fn make(&self, peer: SocketAddr, session_id: u64, tls: String) -> ImapConn {
        let conn = imap_session::ConnectionInfo {
            peer,
            session_id,
            tls,
        };
        ImapConn(imap_session::ImapSession::new(
            self.store.clone(),
            self.auth.clone(),
            self.config.clone(),
            conn,
        ))
    }

    fn protocol(&self) -> Protocol {
        Protocol::Imaps
    }
}

/// Builds POP3 sessions.
pub struct Pop3Factory {
    store: Arc<MaildirStore>,
    auth: Arc<Accounts>,
    config: Arc<pop3_session::Pop3Config>,
}

impl Pop3Factory {
    /// From the `[pop3s]` section.
    pub fn new(store: Arc<MaildirStore>, auth: Arc<Accounts>, cfg: &Config) -> Self {
        // Validated with the rest of the configuration; the default is the fallback.
        let uidl_format =
            pop3_session::UidlFormat::parse(&cfg.pop3s.uidl_format).unwrap_or_default();
        let config = pop3_session::Pop3Config {
            max_auth_failures: cfg.auth.max_failures_per_session,
            uidl_format,
            ..pop3_session::Pop3Config::default()
        };
        Self {
            store,
            auth,
            config: Arc::new(config),
        }
    }
}

/// A POP3 session on the production store and accounts.
pub struct Pop3Conn(pop3_session::Pop3Session<MaildirStore, Accounts>);

impl SessionFactory for Pop3Factory {
    type Session = Pop3Conn;

    fn make(&self, peer: SocketAddr, session_id: u64, tls: String) -> Pop3Conn {
        let conn = pop3_session::ConnectionInfo {
            peer,
            session_id,
            tls,
        };
        Pop3Conn(pop3_session::Pop3Session::new(
            self.store.clone(),
            self.auth.clone(),
            self.config.clone(),
            conn,
        ))
    }

    fn protocol(&self) -> Protocol {
        Protocol::Pop3s
    }
}

/// Forwards the driver's calls to a session type; both session crates offer
/// the same driver interface (greeting, input, one command at a time, timeouts).
macro_rules! forward_protocol_session {
    ($conn:ty, $krate:ident) => {
        impl ProtocolSession for $conn {
            fn greeting(&mut self, out: &mut Vec<u8>) {
                self.0.greeting(out)
            }
            fn enqueue_input(&mut self, bytes: &[u8]) {
                self.0.enqueue_input(bytes)
            }
            async fn process(&mut self, out: &mut Vec<u8>) -> Next {
                match self.0.process(out).await {
                    $krate::Next::NeedInput => Next::NeedInput,
                    $krate::Next::Continue => Next::Continue,
                    $krate::Next::Close => Next::Close,
                }
            }
            fn idle_timeout(&self) -> Duration {
                self.0.idle_timeout()
            }
            fn authenticated(&self) -> bool {
                self.0.user().is_some()
            }
            fn shutdown(&mut self, out: &mut Vec<u8>) {
                self.0.shutdown(out)
            }
            fn take_command_name(&mut self) -> Option<&'static str> {
                self.0.take_command_name()
            }
            forward_protocol_session!(@idle $krate);
        }
    };
    (@idle imap_session) => {
        fn timed_out(&mut self, out: &mut Vec<u8>) {
            self.0.timed_out(out)
        }
        fn idling(&self) -> bool {
            self.0.idling()
        }
        fn wakeup_interval(&self) -> Duration {
            imap_session::IDLE_POLL_INTERVAL
        }
        fn wakeup(&mut self, out: &mut Vec<u8>) -> impl Future<Output = ()> + Send {
            self.0.wakeup(out)
        }
        fn idle_watcher(&self) -> Option<mail_store::ChangeWatcher> {
            self.0.idle_watcher()
        }
        fn take_compression_start(&mut self) -> Option<Vec<u8>> {
            self.0.take_compression_start()
        }
    };
    (@idle pop3_session) => {};
}

forward_protocol_session!(ImapConn, imap_session);
forward_protocol_session!(Pop3Conn, pop3_session);
