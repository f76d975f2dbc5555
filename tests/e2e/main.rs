#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! End-to-end tests: the real `coffre` binary over real TLS on 127.0.0.1,
//! with a real SQLite file and a real Maildir, spoken to by a tokio-rustls
//! client (every response also parsed by the independent `imap-proto`
//! parser) and by real clients (curl, openssl s_client).

mod harness;

mod abuse;
mod accounts;
mod append_stream;
mod autoconfig;
mod compress;
mod condstore;
mod config_errors;
mod deploy;
mod dev_mode;
mod dovecot_takeover;
mod governance;
mod imap_clients;
mod imap_slice;
mod metrics;
mod migrate_accounts;
mod migrate_maildir;
mod migrate_verify;
mod notice;
mod pop3_clients;
mod pop3_slice;
mod reload;
mod shutdown;
mod tls;
