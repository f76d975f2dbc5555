//! `coffre serve --dev`: a working server from nothing.
//!
//! Creates, under a data directory (default `./coffre-data`), everything a
//! first run needs and reuses it on the next run: the configuration it runs
//! with (`coffre.toml`, so every other subcommand can be pointed at it), a
//! development CA and server certificate (`certs/`), the SQLite accounts
//! database with migrations applied, the Maildir root, and a demo account
//! `demo@localhost` with a random password (printed once, kept in
//! `demo-password`, mode 0600) and a welcome message in its INBOX.

use std::path::{Path, PathBuf};

use account_auth::Secret;
use account_auth::sql::SqlAccounts;
use anyhow::Context;
use mail_store::{AccountLocation, AccountStore, Flags, FolderName, MailStore};
use maildir_store::MaildirStore;
use rand::Rng;

use crate::certs::{self, DevCertPaths};
use crate::config::Config;

/// The demo account's login.
pub const DEMO_LOGIN: &str = "demo@localhost";
/// Dev IMAPS address.
pub const DEV_IMAPS: &str = "127.0.0.1:10993";
/// Dev POP3S address.
pub const DEV_POP3S: &str = "127.0.0.1:10995";

/// What `prepare` set up.
#[derive(Debug, Clone)]
pub struct DevSetup {
    /// The data directory (absolute).
    pub data_dir: PathBuf,
    /// The configuration file written there.
    pub config_path: PathBuf,
    /// The CA clients should trust.
    pub ca: PathBuf,
    /// The demo password, when it was created by this run (printed once).
    pub new_demo_password: Option<String>,
}

/// Prepares (or reuses) a development data directory.
pub async fn prepare(data_dir: &Path) -> anyhow::Result<DevSetup> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("--data-dir: cannot create {}", data_dir.display()))?;
    let data_dir = std::fs::canonicalize(data_dir)
        .with_context(|| format!("--data-dir: {}", data_dir.display()))?;
    let config_path = data_dir.join("coffre.toml");
    let cert_paths = DevCertPaths::in_dir(&data_dir.join("certs"));

    let config = if config_path.exists() {
        Config::load(&config_path)?
    } else {
        let mut c = Config::default();
        c.imaps.listen = vec![DEV_IMAPS.into()];
        c.pop3s.listen = vec![DEV_POP3S.into()];
        c.tls.cert = Some(cert_paths.cert.clone());
        c.tls.key = Some(cert_paths.key.clone());
        c.database.url = format!(
            "sqlite://{}?mode=rwc",
            data_dir.join("accounts.db").display()
        );
        c.storage.mail_root = data_dir.join("mail");
        let text = format!(
            "# Written by `coffre serve --dev`; edit freely, it is reused on the next run.\n{}",
            toml::to_string_pretty(&c).context("serialising the dev configuration")?
        );
        std::fs::write(&config_path, text)
            .with_context(|| format!("cannot write {}", config_path.display()))?;
        c
    };
    if !cert_paths.exist() {
        certs::generate(&data_dir.join("certs")).context("generating the dev certificates")?;
    }
    std::fs::create_dir_all(&config.storage.mail_root).with_context(|| {
        format!(
            "[storage] mail_root: cannot create {}",
            config.storage.mail_root.display()
        )
    })?;

    let accounts = SqlAccounts::connect_with(&config.database.url, config.sql_options())
        .await
        .map_err(|e| anyhow::anyhow!("[database] url: {e}"))?;
    accounts
        .migrate()
        .await
        .map_err(|e| anyhow::anyhow!("[database]: {e}"))?;
    let password_file = data_dir.join("demo-password");
    let mut new_demo_password = None;
    let exists = accounts
        .get_user(DEMO_LOGIN)
        .await
        .map_err(|e| anyhow::anyhow!("[database]: {e}"))?
        .is_some();
    if !exists {
        let password = random_password();
        accounts
            .add_user(DEMO_LOGIN, &Secret::new(password.clone()))
            .await
            .map_err(|e| anyhow::anyhow!("creating {DEMO_LOGIN}: {e}"))?;
        certs::write_private(&password_file, format!("{password}\n").as_bytes())
            .with_context(|| format!("cannot write {}", password_file.display()))?;
        let store = MaildirStore::new(
            config.storage.mail_root.clone(),
            config.storage.location_template.clone(),
        );
        let account = store
            .open_account(&AccountLocation {
                login: DEMO_LOGIN.into(),
                location: None,
            })
            .await
            .map_err(|e| anyhow::anyhow!("opening the demo Maildir: {e}"))?;
        account
            .append(
                &FolderName::inbox(),
                &welcome_message(),
                &Flags::new(),
                None,
            )
            .await
            .map_err(|e| anyhow::anyhow!("delivering the welcome message: {e}"))?;
        new_demo_password = Some(password);
    }
    Ok(DevSetup {
        data_dir,
        config_path,
        ca: cert_paths.ca,
        new_demo_password,
    })
}

/// 20 characters from an alphabet without look-alikes (no 0/O, 1/l/I).
fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The welcome message: a complete RFC 5322 message with CRLF line ends.
pub fn welcome_message() -> Vec<u8> {
    let lines = [
        "Date: Sat, 28 Nov 2026 12:00:00 +0000",
        "From: Coffre <postmaster@localhost>",
        "To: demo@localhost",
        "Subject: Welcome to Coffre",
        "Message-ID: <welcome@coffre.localhost>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        "Welcome to Coffre.",
        "",
        "You are reading this over TLS: Coffre speaks IMAP only on IMAPS and POP3",
        "only on POP3S, so no password ever crosses the network in clear.",
        "",
        "Point your mail client at this server with SSL/TLS on port 993 (IMAP)",
        "or 995 (POP3); in development, 10993 and 10995.",
        "",
    ];
    lines.join("\r\n").into_bytes()
}

/// What to print after the dev server is up.
pub fn banner(
    setup: &DevSetup,
    imaps: &[std::net::SocketAddr],
    pop3s: &[std::net::SocketAddr],
) -> String {
    let imap = imaps.first().map(|a| a.to_string()).unwrap_or_default();
    let pop = pop3s.first().map(|a| a.to_string()).unwrap_or_default();
    let imap_port = imaps.first().map(|a| a.port()).unwrap_or(0);
    let pop_port = pop3s.first().map(|a| a.port()).unwrap_or(0);
    let password = match &setup.new_demo_password {
        Some(p) => format!(
            "{p}   (shown once; also in {})",
            setup.data_dir.join("demo-password").display()
        ),
        None => format!("see {}", setup.data_dir.join("demo-password").display()),
    };
    format!(
        "\nCoffre development server\n\
         \x20 data dir:  {data}\n\
         \x20 config:    {config}\n\
         \x20 CA cert:   {ca}\n\
         \x20 account:   {DEMO_LOGIN}\n\
         \x20 password:  {password}\n\n\
         Read the welcome message with curl:\n\
         \x20 curl --cacert {ca} 'imaps://{imap}/INBOX;UID=1' -u '{DEMO_LOGIN}:PASSWORD'\n\
         \x20 curl --cacert {ca} 'pop3s://{pop}/1' -u '{DEMO_LOGIN}:PASSWORD'\n\n\
         Thunderbird: add an account {DEMO_LOGIN}, configure manually:\n\
         \x20 incoming IMAP, server 127.0.0.1 (or localhost), port {imap_port}, SSL/TLS, normal password\n\
         \x20 (or POP3, port {pop_port}, SSL/TLS); accept or import the CA above when asked.\n\n\
         Add users: coffre user add --config {config} alice@example.org\n\
         Stop with Ctrl-C.\n",
        data = setup.data_dir.display(),
        config = setup.config_path.display(),
        ca = setup.ca.display(),
    )
}
