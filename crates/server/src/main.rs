//! The `coffre` binary: parses the command line, sets up logging and the
//! runtime, and reports any error as one line on stderr with a non-zero exit.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use coffre_server::cli::{Cli, Command, DbCommand, ServeArgs};
use coffre_server::config::Config;
use coffre_server::{dev, tls};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tls::install_default_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("coffre: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the whole context chain on one line.
            eprintln!("coffre: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::CheckConfig(c) => {
            let cfg = Config::load(&c.config)?.validate()?;
            tls::load_server_config(&cfg.cert, &cfg.key)?;
            println!("{}: OK", c.config.display());
            Ok(())
        }
        Command::Reload(r) => {
            let pid = coffre_server::cli::run_reload(&r)?;
            println!(
                "sent SIGHUP to process {pid}; its log says whether the new certificate was taken"
            );
            Ok(())
        }
        Command::User(u) => coffre_server::cli::run_user(u).await,
        Command::Hash(h) => {
            let password = coffre_server::cli::read_password(h.password_stdin, true)?;
            // Same parameters as the server would use for new hashes.
            let params = match &h.config {
                Some(path) => Config::load(path)?.auth.argon2(),
                None => account_auth::password::Argon2Params::default(),
            };
            let hash = tokio::task::spawn_blocking(move || {
                account_auth::password::hash_password(&password, &params)
            })
            .await??;
            println!("{hash}");
            Ok(())
        }
        Command::LegacyReport(r) => coffre_server::cli::run_legacy_report(&r),
        Command::Dns(c) => coffre_server::cli::run_dns(&c),
        Command::Migrate(m) => coffre_server::cli::run_migrate(m).await,
        Command::Db(DbCommand::Migrate(c)) => {
            let db = coffre_server::cli::open_accounts(&c.config).await?;
            db.migrate().await?;
            println!("database is up to date");
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let (config_path, setup) = if args.dev {
        let setup = dev::prepare(&args.data_dir).await?;
        (setup.config_path.clone(), Some(setup))
    } else {
        // clap requires --config unless --dev.
        (args.config.clone().unwrap_or_default(), None)
    };
    let mut config = Config::load(&config_path)?;
    if !args.imaps_listen.is_empty() {
        config.imaps.listen = args.imaps_listen.iter().map(|a| a.to_string()).collect();
    }
    if !args.pop3s_listen.is_empty() {
        config.pop3s.listen = args.pop3s_listen.iter().map(|a| a.to_string()).collect();
    }
    let validated = config
        .validate()
        .map_err(|e| anyhow::anyhow!("{}: {e}", config_path.display()))?;
    init_logging(&validated.config.log.level);

    let shutdown = CancellationToken::new();
    let server = coffre_server::start(validated, shutdown.clone()).await?;
    // Before the "listening" lines, so whoever waits for those finds it.
    if let Some(path) = &args.pid_file {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    }
    for a in &server.imaps {
        println!("coffre: IMAPS listening on {a}");
    }
    for a in &server.pop3s {
        println!("coffre: POP3S listening on {a}");
    }
    for a in &server.notice_imap {
        println!("coffre: legacy IMAP notice on {a}");
    }
    for a in &server.notice_pop3 {
        println!("coffre: legacy POP3 notice on {a}");
    }
    for a in &server.autoconfig {
        println!("coffre: autoconfig (HTTPS) on {a}");
    }
    if let Some(a) = &server.metrics {
        println!("coffre: metrics on http://{a}/metrics");
    }
    if let Some(setup) = &setup {
        println!("{}", dev::banner(setup, &server.imaps, &server.pop3s));
    }
    tokio::spawn(wait_for_signal(shutdown));
    tokio::spawn(reload_on_hangup(server.tls.clone()));
    server.wait().await;
    if let Some(path) = &args.pid_file {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// Cancels on SIGTERM or SIGINT.
async fn wait_for_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = int.recv() => tracing::info!("SIGINT: shutting down"),
            }
        }
        _ => {
            tracing::warn!("cannot install signal handlers; Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    shutdown.cancel();
}

/// Re-reads the certificate and key on SIGHUP (certbot's deploy hook), keeping
/// the old ones when the new files are bad. Open sessions are not touched.
async fn reload_on_hangup(tls: std::sync::Arc<tls::TlsState>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot install the SIGHUP handler; certificate reload disabled");
        return;
    };
    while hup.recv().await.is_some() {
        match tls.reload() {
            Ok(()) => tracing::info!("SIGHUP: TLS certificate and key reloaded"),
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: reload failed; keeping the previous certificate")
            }
        }
    }
}
