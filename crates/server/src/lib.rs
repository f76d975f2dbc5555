//! # coffre-server: the glue and the only I/O
//!
//! Config, TLS, listeners, the per-connection driver, graceful shutdown and
//! the CLI. Protocol logic lives in `imap-session`/`pop3-session`, storage in
//! `maildir-store`, accounts in `account-auth`; this crate wires them:
//!
//! ```text
//!  TcpListener ─accept─▶ TLS handshake (timeout) ─▶ drive(session, stream) ─▶ close
//!                                                   │
//!           ImapSession / Pop3Session over MaildirStore + SqlAccounts
//! ```
//!
//! There is no code path that serves IMAP or POP3 without TLS: the only
//! plaintext listeners are the legacy notices, which write one line and close.
#![forbid(unsafe_code)]

pub mod autoconfig;
pub mod certs;
pub mod cli;
pub mod compress;
pub mod config;
pub mod connection;
pub mod dev;
pub mod governance;
mod http;
pub mod import_accounts;
pub mod legacy;
pub mod listener;
pub mod metrics;
pub mod migrate;
mod sessions;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use account_auth::sql::SqlAccounts;
use account_auth::throttle::Throttled;
use anyhow::Context;
use maildir_store::MaildirStore;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::config::Validated;
use crate::listener::{Counters, NoticeSettings, Protocol, Shared, serve_notice, serve_tls};
use crate::sessions::{ImapFactory, Pop3Factory};

/// A started server: where it listens, and how to wait for it.
pub struct RunningServer {
    /// Bound IMAPS addresses (real ports, also when configured as `:0`).
    pub imaps: Vec<SocketAddr>,
    /// Bound POP3S addresses.
    pub pop3s: Vec<SocketAddr>,
    /// Bound legacy IMAP notice addresses.
    pub notice_imap: Vec<SocketAddr>,
    /// Bound legacy POP3 notice addresses.
    pub notice_pop3: Vec<SocketAddr>,
    /// Bound metrics address, if enabled.
    pub metrics: Option<SocketAddr>,
    /// Bound auto-configuration (HTTPS) addresses.
    pub autoconfig: Vec<SocketAddr>,
    /// Counters (connections, legacy hits).
    pub counters: Arc<Counters>,
    /// The TLS configuration, for reloads.
    pub tls: Arc<tls::TlsState>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    grace: Duration,
}

impl RunningServer {
    /// Waits for shutdown to be requested, then for the sessions to finish
    /// (at most the configured grace period).
    pub async fn wait(self) {
        self.shutdown.cancelled().await;
        self.tracker.close();
        if tokio::time::timeout(self.grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                grace_secs = self.grace.as_secs(),
                "sessions still open after the grace period; exiting anyway"
            );
        }
        info!("server stopped");
    }
}

async fn bind_all(addrs: &[SocketAddr], what: &str) -> anyhow::Result<Vec<TcpListener>> {
    let mut out = Vec::new();
    for a in addrs {
        let l = TcpListener::bind(a)
            .await
            .with_context(|| format!("{what}: cannot listen on {a}"))?;
        out.push(l);
    }
    Ok(out)
}

/// Opens the database and storage, binds every listener and starts serving.
/// Errors are one line, naming the config key.
pub async fn start(cfg: Validated, shutdown: CancellationToken) -> anyhow::Result<RunningServer> {
    let tls_state = tls::TlsState::load(&cfg.cert, &cfg.key)?;

    let accounts = SqlAccounts::connect_with(&cfg.config.database.url, cfg.config.sql_options())
        .await
        .map_err(|e| anyhow::anyhow!("[database] url: {e}"))?;
    if cfg.config.database.migrate_on_start {
        accounts
            .migrate()
            .await
            .map_err(|e| anyhow::anyhow!("[database]: {e}"))?;
    }
    // Every login goes through the throttle: fixed failure delay, per-address
    // and per-account penalties (account-auth's throttle module).
    let accounts = Arc::new(Throttled::new(accounts, cfg.config.auth.throttle()));
    let auth_counters = accounts.counters().clone();
    let store = Arc::new(MaildirStore::new(
        cfg.config.storage.mail_root.clone(),
        cfg.config.storage.location_template.clone(),
    ));

    let imaps = bind_all(&cfg.imaps, "[imaps] listen").await?;
    let pop3s = bind_all(&cfg.pop3s, "[pop3s] listen").await?;
    let notice_imap = bind_all(&cfg.notice_imap, "[legacy_notice] imap").await?;
    let notice_pop3 = bind_all(&cfg.notice_pop3, "[legacy_notice] pop3").await?;
    let metrics = bind_all(cfg.metrics.as_slice(), "[metrics] listen").await?;
    let autoconfig_listeners = bind_all(&cfg.autoconfig, "[autoconfig] listen").await?;

    let notice = NoticeSettings {
        protocol: Protocol::Imaps,
        hit_log: cfg
            .config
            .legacy_notice
            .hits_file
            .clone()
            .map(|p| Arc::new(legacy::HitLog::new(p))),
        refuse_after: cfg.refuse_after,
    };
    let tracker = TaskTracker::new();
    let counters = Arc::new(Counters::default());
    let permits = Arc::new(Semaphore::new(cfg.config.limits.max_connections));
    let next_session_id = Arc::new(AtomicU64::new(1));
    let handshake_timeout = Duration::from_secs(cfg.config.tls.handshake_timeout_secs);
    let output_stall = Duration::from_secs(cfg.config.limits.output_stall_secs);
    let prelogin_timeout = Duration::from_secs(cfg.config.limits.prelogin_timeout_secs);
    let preauth = governance::PreAuthRegistry::new(cfg.config.limits.max_prelogin_per_address);

    let imap_shared = Arc::new(Shared {
        tls: tls_state.clone(),
        factory: ImapFactory::new(store.clone(), accounts.clone(), &cfg.config),
        shutdown: shutdown.clone(),
        tracker: tracker.clone(),
        permits: permits.clone(),
        handshake_timeout,
        output_stall,
        prelogin_timeout,
        preauth: preauth.clone(),
        counters: counters.clone(),
        next_session_id: next_session_id.clone(),
    });
    let pop3_shared = Arc::new(Shared {
        tls: tls_state.clone(),
        factory: Pop3Factory::new(store, accounts, &cfg.config),
        shutdown: shutdown.clone(),
        tracker: tracker.clone(),
        permits,
        handshake_timeout,
        output_stall,
        prelogin_timeout,
        preauth,
        counters: counters.clone(),
        next_session_id,
    });

    let local = |ls: &[TcpListener]| -> anyhow::Result<Vec<SocketAddr>> {
        ls.iter()
            .map(|l| l.local_addr().map_err(anyhow::Error::from))
            .collect()
    };
    let running = RunningServer {
        imaps: local(&imaps)?,
        pop3s: local(&pop3s)?,
        notice_imap: local(&notice_imap)?,
        notice_pop3: local(&notice_pop3)?,
        metrics: local(&metrics)?.into_iter().next(),
        autoconfig: local(&autoconfig_listeners)?,
        counters: counters.clone(),
        tls: tls_state.clone(),
        tracker: tracker.clone(),
        shutdown: shutdown.clone(),
        grace: Duration::from_secs(cfg.config.limits.shutdown_grace_secs),
    };

    for l in imaps {
        tracker.spawn(serve_tls(l, imap_shared.clone()));
    }
    for l in pop3s {
        tracker.spawn(serve_tls(l, pop3_shared.clone()));
    }
    for l in notice_imap {
        tracker.spawn(serve_notice(
            l,
            NoticeSettings {
                protocol: Protocol::Imaps,
                ..notice.clone()
            },
            shutdown.clone(),
            tracker.clone(),
            counters.clone(),
        ));
    }
    if !autoconfig_listeners.is_empty() {
        let settings = Arc::new(cfg.config.autoconfig.settings()?);
        for l in autoconfig_listeners {
            tracker.spawn(autoconfig::serve(
                l,
                settings.clone(),
                tls_state.clone(),
                shutdown.clone(),
                tracker.clone(),
            ));
        }
    }
    for l in metrics {
        let source = metrics::MetricsSource {
            counters: counters.clone(),
            auth: auth_counters.clone(),
        };
        tracker.spawn(metrics::serve_metrics(
            l,
            source,
            shutdown.clone(),
            tracker.clone(),
        ));
    }
    for l in notice_pop3 {
        tracker.spawn(serve_notice(
            l,
            NoticeSettings {
                protocol: Protocol::Pop3s,
                ..notice.clone()
            },
            shutdown.clone(),
            tracker.clone(),
            counters.clone(),
        ));
    }
    Ok(running)
}
