//! The `coffre` command line: `serve`, `check-config`, `user …`, `hash`,
//! `db migrate`. Every subcommand that touches the server's data takes the
//! same `--config PATH` as `serve`. Passwords are never taken on the command
//! line: from a terminal prompt, or one line on stdin with `--password-stdin`.

use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::PathBuf;

use account_auth::Secret;
use account_auth::sql::SqlAccounts;
use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::config::Config;

/// Coffre: IMAP and POP3 over TLS only.
#[derive(Debug, Parser)]
#[command(name = "coffre", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Check a configuration file (and that its certificate and key load) without serving.
    CheckConfig(ConfigArg),
    /// Make a running server reload its TLS certificate and key (after a
    /// renewal): checks the configuration and that the new certificate and
    /// key load, then sends the server SIGHUP. A bad certificate is reported
    /// here and the server is not disturbed.
    Reload(ReloadArgs),
    /// Manage accounts in the SQL database.
    #[command(subcommand)]
    User(UserCommand),
    /// Print an argon2id hash of a password, for hand-written SQL.
    Hash(HashArgs),
    /// Database maintenance.
    #[command(subcommand)]
    Db(DbCommand),
    /// List the addresses still using the plaintext notice ports (143/110).
    LegacyReport(LegacyReportArgs),
    /// Print the DNS records to publish (SRV for IMAPS/POP3S/submission, autoconfig names).
    Dns(ConfigArg),
    /// Move off a legacy server.
    #[command(subcommand)]
    Migrate(MigrateCommand),
}

/// `migrate` subcommands.
#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Import accounts and their password hashes (Dovecot passwd-file or CSV).
    Accounts(MigrateAccountsArgs),
    /// Take over Dovecot or Courier Maildirs in place: UIDVALIDITY, UIDs,
    /// keywords, subscriptions and POP3 UIDLs kept; messages untouched.
    Maildir(MigrateMaildirArgs),
    /// Import an mbox file into a folder, with flags from Status:/X-Status:.
    Mbox(MigrateMboxArgs),
    /// Import POP3 UIDLs from a list of `<uid> <uidl>` lines into a folder.
    Uidls(MigrateUidlsArgs),
    /// Compare the old server with Coffre over the network: folders,
    /// UIDVALIDITY, UIDs, flags and (with --pop3) POP3 UIDLs.
    Verify(crate::migrate::verify::VerifyArgs),
}

/// `migrate uidls` options.
#[derive(Debug, Args)]
pub struct MigrateUidlsArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The account.
    #[arg(long)]
    pub user: String,
    /// The folder whose messages the UIDs are of.
    #[arg(long, default_value = "INBOX")]
    pub folder: String,
    /// Check and report without writing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// The list: one `<uid> <uidl>` per line (blank lines and `#` comments ignored).
    pub file: PathBuf,
}

/// Which server's Maildir bookkeeping to take over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MaildirSource {
    /// `dovecot-uidlist`, `dovecot-keywords`, `subscriptions`.
    Dovecot,
    /// `courierimapuiddb`, `courierimapkeywords/`, `courierimapsubscribed`, `courierpop3dsizelist`.
    Courier,
}

/// `migrate maildir` options.
#[derive(Debug, Args)]
pub struct MigrateMaildirArgs {
    /// Whose files to read.
    #[arg(long, value_enum)]
    pub from: MaildirSource,
    /// Check and report without writing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Use a message's `X-UIDL:` header as its POP3 UIDL when none is kept
    /// (only if the old server showed it: stale headers exist).
    #[arg(long)]
    pub x_uidl: bool,
    /// The tree of Maildirs (`ROOT/domain/user`, `ROOT/user`, or one Maildir).
    pub root: PathBuf,
}

/// `migrate mbox` options.
#[derive(Debug, Args)]
pub struct MigrateMboxArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The account to import into.
    #[arg(long)]
    pub user: String,
    /// The folder (created if needed).
    #[arg(long, default_value = "INBOX")]
    pub folder: String,
    /// The mbox file.
    pub file: PathBuf,
}

/// `migrate accounts` options.
#[derive(Debug, Args)]
pub struct MigrateAccountsArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The input format.
    #[arg(long, value_enum)]
    pub from: crate::import_accounts::AccountsFormat,
    /// Check and report without writing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// The file to import.
    pub file: PathBuf,
}

/// Runs a `migrate` subcommand.
pub async fn run_migrate(cmd: MigrateCommand) -> anyhow::Result<()> {
    match cmd {
        MigrateCommand::Maildir(m) => {
            let source = match m.from {
                MaildirSource::Dovecot => crate::migrate::maildir::Source::Dovecot,
                MaildirSource::Courier => crate::migrate::maildir::Source::Courier,
            };
            let report = tokio::task::spawn_blocking(move || {
                let bar = indicatif::ProgressBar::new(0);
                bar.set_style(
                    indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} folders {msg}")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                let r = crate::migrate::maildir::migrate_maildir(
                    &m.root,
                    source,
                    m.dry_run,
                    m.x_uidl,
                    |p| {
                        bar.set_length(p.total as u64);
                        bar.set_position(p.done as u64);
                    },
                );
                bar.finish_and_clear();
                r
            })
            .await??;
            println!("{report}");
            Ok(())
        }
        MigrateCommand::Mbox(m) => {
            let cfg = Config::load(&m.config.config)?;
            let db = open_accounts(&m.config.config).await?;
            let Some(user) = db.get_user(&m.user).await? else {
                bail!("no account {}", m.user);
            };
            let store = maildir_store::MaildirStore::new(
                cfg.storage.mail_root.clone(),
                cfg.storage.location_template.clone(),
            );
            let location = mail_store::AccountLocation {
                login: user.login.clone(),
                location: user.mail_location.clone(),
            };
            let account = mail_store::MailStore::open_account(&store, &location)
                .await
                .map_err(|e| anyhow::anyhow!("opening the mail of {}: {e}", user.login))?;
            let folder = mail_store::FolderName::new(&m.folder)
                .map_err(|e| anyhow::anyhow!("--folder: {e}"))?;
            let report = crate::migrate::mbox::import_mbox(&m.file, &account, &folder).await?;
            println!("{report}");
            Ok(())
        }
        MigrateCommand::Uidls(u) => {
            let (_, root) = account_with_root(&u.config.config, &u.user).await?;
            let folder = mail_store::FolderName::new(&u.folder)
                .map_err(|e| anyhow::anyhow!("--folder: {e}"))?;
            let dir = maildir_store::layout::folder_dir(&root, &folder);
            let text = std::fs::read_to_string(&u.file)
                .with_context(|| format!("reading {}", u.file.display()))?;
            let dry_run = u.dry_run;
            let report = tokio::task::spawn_blocking(move || {
                crate::migrate::uidl::import_uidls(&dir, &text, dry_run)
            })
            .await??;
            print!("{report}");
            if !report.ok() {
                bail!("{} line(s) refused", report.refused.len());
            }
            Ok(())
        }
        MigrateCommand::Verify(v) => crate::migrate::verify::run(v).await,
        MigrateCommand::Accounts(a) => {
            let db = open_accounts(&a.config.config).await?;
            let report = crate::import_accounts::import(&db, &a.file, a.from, a.dry_run).await?;
            println!("{report}");
            Ok(())
        }
    }
}

/// Prints the DNS records for the `[autoconfig]` section of a configuration.
pub fn run_dns(args: &ConfigArg) -> anyhow::Result<()> {
    let cfg = Config::load(&args.config)?;
    let settings = cfg.autoconfig.settings()?;
    print!("{}", crate::autoconfig::dns_records(&settings));
    Ok(())
}

/// `legacy-report` options.
#[derive(Debug, Args)]
pub struct LegacyReportArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The period, in days back from now.
    #[arg(long, default_value_t = 7)]
    pub days: u32,
}

/// Prints the legacy-port report for a configuration.
pub fn run_legacy_report(args: &LegacyReportArgs) -> anyhow::Result<()> {
    let cfg = Config::load(&args.config.config)?;
    let Some(path) = &cfg.legacy_notice.hits_file else {
        bail!("[legacy_notice] hits_file is not set: hits are not being recorded");
    };
    let since = crate::legacy::since_days(args.days);
    let list = crate::legacy::report(path, &since)
        .with_context(|| format!("[legacy_notice] hits_file: cannot read {}", path.display()))?;
    if list.is_empty() {
        println!("No plaintext IMAP/POP3 connections since {since}.");
        return Ok(());
    }
    println!("Addresses still using the plaintext ports since {since} (most recent first):");
    println!(
        "{:<40} {:<10} {:>6}  {:<20}  {:<20}  client said (first line, no credentials)",
        "address", "protocols", "hits", "first", "last"
    );
    for u in list {
        println!(
            "{:<40} {:<10} {:>6}  {:<20}  {:<20}  {}",
            u.address,
            u.protocols.join(","),
            u.hits,
            u.first,
            u.last,
            u.client_said.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

/// `--config PATH`
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// The configuration file.
    #[arg(long, short = 'c', value_name = "PATH")]
    pub config: PathBuf,
}

/// `reload` options.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["pid", "pid_file"])))]
pub struct ReloadArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The server's process id (systemd: `$MAINPID`).
    #[arg(long, value_name = "PID")]
    pub pid: Option<i32>,
    /// A file holding the server's process id (`coffre serve --pid-file`).
    #[arg(long, value_name = "PATH")]
    pub pid_file: Option<PathBuf>,
}

/// `serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The configuration file (not needed with --dev).
    #[arg(
        long,
        short = 'c',
        value_name = "PATH",
        required_unless_present = "dev"
    )]
    pub config: Option<PathBuf>,
    /// Development quick start: creates and reuses everything under --data-dir.
    #[arg(long)]
    pub dev: bool,
    /// Data directory for --dev.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "coffre-data",
        requires = "dev"
    )]
    pub data_dir: PathBuf,
    /// Listen for IMAPS here instead of the configured addresses (repeatable).
    #[arg(long, value_name = "ADDR")]
    pub imaps_listen: Vec<SocketAddr>,
    /// Listen for POP3S here instead of the configured addresses (repeatable).
    #[arg(long, value_name = "ADDR")]
    pub pop3s_listen: Vec<SocketAddr>,
    /// Write the process id here once listening (for `coffre reload
    /// --pid-file`); removed at a clean exit.
    #[arg(long, value_name = "PATH")]
    pub pid_file: Option<PathBuf>,
}

/// `user` subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account.
    Add(UserPasswordArgs),
    /// Set an account's password.
    Passwd(UserPasswordArgs),
    /// Allow an account to log in.
    Enable(UserArgs),
    /// Stop an account from logging in (its mail stays).
    Disable(UserArgs),
    /// Delete an account (its Maildir is left on disk).
    Delete(UserArgs),
    /// List accounts.
    List(ConfigArg),
    /// Show one account.
    Show(UserArgs),
}

/// A login and a config.
#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The login, `user@domain`.
    pub login: String,
}

/// A login, a config and how to read the password.
#[derive(Debug, Args)]
pub struct UserPasswordArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The login, `user@domain`.
    pub login: String,
    /// Read the password as one line from standard input.
    #[arg(long)]
    pub password_stdin: bool,
}

/// `hash` options.
#[derive(Debug, Args)]
pub struct HashArgs {
    /// Take the argon2 parameters from this configuration's `[auth]` section
    /// (defaults: m=19456 KiB, t=2, p=1).
    #[arg(long, short = 'c', value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Read the password as one line from standard input.
    #[arg(long)]
    pub password_stdin: bool,
}

/// `db` subcommands.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply pending migrations.
    Migrate(ConfigArg),
}

/// Reads a password: one line from stdin, or a no-echo prompt on a terminal.
pub fn read_password(from_stdin: bool, confirm: bool) -> anyhow::Result<Secret> {
    let password = if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        let p = rpassword::prompt_password("Password: ").context("reading the password")?;
        if confirm {
            let again = rpassword::prompt_password("Again: ").context("reading the password")?;
            if again != p {
                bail!("the passwords do not match");
            }
        }
        p
    };
    if password.is_empty() {
        bail!("empty password");
    }
    Ok(Secret::new(password))
}

/// Opens the accounts database named by a config file, applying pending
/// migrations first when `[database] migrate_on_start` is on (the default),
/// so that `coffre user add` works on a fresh install before the first `serve`.
pub async fn open_accounts(config: &std::path::Path) -> anyhow::Result<SqlAccounts> {
    let cfg = Config::load(config)?;
    let accounts = SqlAccounts::connect_with(&cfg.database.url, cfg.sql_options())
        .await
        .map_err(|e| anyhow::anyhow!("[database] url: {e}"))?;
    if cfg.database.migrate_on_start {
        accounts
            .migrate()
            .await
            .map_err(|e| anyhow::anyhow!("[database]: {e}"))?;
    }
    Ok(accounts)
}

/// Runs a `user` subcommand.
pub async fn run_user(cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add(a) => {
            let password = read_password(a.password_stdin, true)?;
            let db = open_accounts(&a.config.config).await?;
            db.add_user(&a.login, &password).await?;
            println!("added {}", a.login);
        }
        UserCommand::Passwd(a) => {
            let password = read_password(a.password_stdin, true)?;
            let db = open_accounts(&a.config.config).await?;
            db.set_password(&a.login, &password).await?;
            println!("password changed for {}", a.login);
        }
        UserCommand::Enable(a) => {
            open_accounts(&a.config.config)
                .await?
                .set_enabled(&a.login, true)
                .await?;
            println!("enabled {}", a.login);
        }
        UserCommand::Disable(a) => {
            open_accounts(&a.config.config)
                .await?
                .set_enabled(&a.login, false)
                .await?;
            println!("disabled {}", a.login);
        }
        UserCommand::Delete(a) => {
            open_accounts(&a.config.config)
                .await?
                .delete_user(&a.login)
                .await?;
            println!("deleted {} (its Maildir was left on disk)", a.login);
        }
        UserCommand::List(c) => {
            for u in open_accounts(&c.config).await?.list_users().await? {
                println!(
                    "{}\t{}",
                    u.login,
                    if u.enabled { "enabled" } else { "disabled" }
                );
            }
        }
        UserCommand::Show(a) => {
            let (u, root) = account_with_root(&a.config.config, &a.login).await?;
            let location = root.display().to_string();
            println!("login:          {}", u.login);
            println!("enabled:        {}", u.enabled);
            println!("mail location:  {location}");
            println!(
                "quota bytes:    {}",
                u.quota_bytes.map_or("none".into(), |q| q.to_string())
            );
            println!(
                "quota messages: {}",
                u.quota_messages.map_or("none".into(), |q| q.to_string())
            );
        }
    }
    Ok(())
}

/// An account's record and the root of its Maildir, as the server would
/// find them (the account's own location, else the configured template).
async fn account_with_root(
    config: &std::path::Path,
    login: &str,
) -> anyhow::Result<(account_auth::sql::AccountRow, std::path::PathBuf)> {
    let cfg = Config::load(config)?;
    let db = open_accounts(config).await?;
    let Some(user) = db.get_user(login).await? else {
        bail!("no account {login}");
    };
    let store = maildir_store::MaildirStore::new(
        cfg.storage.mail_root.clone(),
        cfg.storage.location_template.clone(),
    );
    let root = store
        .account_root(&mail_store::AccountLocation {
            login: user.login.clone(),
            location: user.mail_location.clone(),
        })
        .map_err(|e| anyhow::anyhow!("mail location of {}: {e}", user.login))?;
    Ok((user, root))
}

/// `coffre reload`: validates the configuration and the certificate and key
/// it names, then sends SIGHUP to the server. Returns the process id signalled.
pub fn run_reload(args: &ReloadArgs) -> anyhow::Result<i32> {
    use anyhow::Context as _;
    let cfg = Config::load(&args.config.config)?.validate()?;
    crate::tls::load_server_config(&cfg.cert, &cfg.key)
        .context("not reloading: the new certificate or key does not load")?;
    let raw = match (&args.pid, &args.pid_file) {
        (Some(pid), _) => *pid,
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            text.trim()
                .parse::<i32>()
                .with_context(|| format!("{}: not a process id", path.display()))?
        }
        (None, None) => anyhow::bail!("--pid or --pid-file is required"),
    };
    // Not 0 or negative: those would signal a whole process group.
    let pid = rustix::process::Pid::from_raw(raw)
        .filter(|_| raw > 0)
        .with_context(|| format!("{raw} is not a process id"))?;
    rustix::process::kill_process(pid, rustix::process::Signal::HUP)
        .with_context(|| format!("sending SIGHUP to process {raw}"))?;
    Ok(raw)
}
