//! `coffre-bench` command line: parses arguments (clap), validates that the
//! target is a loopback address, runs one scenario and prints its summary
//! (or JSON with `--json`).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use coffre_bench::memory::MemoryProbe;
use coffre_bench::report::Report;
use coffre_bench::scenarios::{self, Common, IdleArgs};
use coffre_bench::target::{UserPattern, loopback_addr};
use coffre_bench::tls::{Endpoint, Trust, client_config};

#[derive(Parser)]
#[command(
    name = "coffre-bench",
    about = "Load tool for IMAPS/POP3S servers on loopback"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Target {
    /// Server host: a loopback IP literal or `localhost`; anything else is refused.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// IMAPS port.
    #[arg(long, default_value_t = 993)]
    imap_port: u16,
    /// POP3S port.
    #[arg(long, default_value_t = 995)]
    pop3_port: u16,
    /// TLS server name sent and checked.
    #[arg(long, default_value = "localhost")]
    sni: String,
    /// PEM file of the CA to trust.
    #[arg(
        long,
        conflicts_with = "insecure",
        required_unless_present = "insecure"
    )]
    ca: Option<PathBuf>,
    /// INSECURE: accept any server certificate (loopback benchmarks only).
    #[arg(long)]
    insecure: bool,
    /// Login pattern; `%d` becomes 1..=users.
    #[arg(long, default_value = "user%d@example.org")]
    user: String,
    /// Number of accounts the pattern names.
    #[arg(long, default_value_t = 1)]
    users: u32,
    /// Password of every account.
    #[arg(long)]
    password: String,
    /// Per-operation timeout in seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// N sessions IDLE; PSS per session; time to notify all after a delivery.
    Idle {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 1000)]
        sessions: usize,
        /// Sessions being set up at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Server PID(s) whose PSS is summed.
        #[arg(long)]
        pid: Vec<u32>,
        /// Server process name(s) (`comm`) whose PSS is summed; comma-separated.
        #[arg(long, value_delimiter = ',')]
        process_name: Vec<String>,
        /// Deliver one message into this Maildir `new/` directory once all are idle.
        #[arg(long)]
        deliver_to: Option<PathBuf>,
        /// Seconds to wait after setup before measuring memory.
        #[arg(long, default_value_t = 2)]
        settle: u64,
        /// Sessions set up before a second memory reading; PSS per session
        /// is measured over the sessions after them (0: over all sessions,
        /// one-time costs of the first logins included).
        #[arg(long, default_value_t = 16)]
        warmup: usize,
    },
    /// Handshake + LOGIN + LOGOUT with W workers for T seconds.
    Login {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 8)]
        workers: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// First sync: metadata FETCH then BODY.PEEK[] of all.
    Sync {
        #[command(flatten)]
        target: Target,
    },
    /// POP3: STAT, UIDL, RETR all, QUIT.
    Pop3 {
        #[command(flatten)]
        target: Target,
    },
    /// Clients doing select, fetch, append, store, expunge, idle.
    Mixed {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 16)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Write a deterministic corpus into a Maildir.
    Corpus {
        #[arg(long)]
        maildir: PathBuf,
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn common(t: &Target, pop3: bool) -> anyhow::Result<Common> {
    let port = if pop3 { t.pop3_port } else { t.imap_port };
    let addr = loopback_addr(&t.host, port)?;
    let trust = match (&t.ca, t.insecure) {
        (_, true) => Trust::Insecure,
        (Some(ca), false) => Trust::CaFile(ca.clone()),
        (None, false) => anyhow::bail!("give --ca PATH or --insecure"),
    };
    if t.password.contains(['\r', '\n']) {
        anyhow::bail!("password must not contain CR or LF");
    }
    Ok(Common {
        endpoint: Endpoint::new(addr, &t.sni, client_config(&trust)?)?,
        users: UserPattern::new(&t.user, t.users)?,
        password: t.password.clone(),
        timeout: Duration::from_secs(t.timeout.clamp(1, 600)),
    })
}

async fn run(cmd: Command) -> anyhow::Result<Option<(Report, bool)>> {
    Ok(Some(match cmd {
        Command::Corpus {
            maildir,
            count,
            seed,
        } => {
            let bytes = coffre_bench::corpus::write_maildir(&maildir, count, seed)?;
            println!(
                "wrote {count} messages ({bytes} bytes) into {}",
                maildir.display()
            );
            return Ok(None);
        }
        Command::Idle {
            target,
            sessions,
            concurrency,
            pid,
            process_name,
            deliver_to,
            settle,
            warmup,
        } => {
            let c = common(&target, false)?;
            let args = IdleArgs {
                sessions,
                concurrency,
                memory: MemoryProbe {
                    pids: pid,
                    names: process_name,
                },
                deliver_to,
                settle: Duration::from_secs(settle.min(60)),
                warmup,
            };
            (scenarios::idle(&c, args).await?, target.json)
        }
        Command::Login {
            target,
            workers,
            seconds,
        } => {
            let c = common(&target, false)?;
            (
                scenarios::login(&c, workers, Duration::from_secs(seconds)).await?,
                target.json,
            )
        }
        Command::Sync { target } => (
            scenarios::sync(&common(&target, false)?).await?,
            target.json,
        ),
        Command::Pop3 { target } => (scenarios::pop3(&common(&target, true)?).await?, target.json),
        Command::Mixed {
            target,
            clients,
            seconds,
        } => {
            let c = common(&target, false)?;
            (
                scenarios::mixed(&c, clients, Duration::from_secs(seconds)).await?,
                target.json,
            )
        }
    }))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("coffre-bench: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(Some((report, json))) => {
            if json {
                println!("{}", report.json());
            } else {
                print!("{}", report.summary());
            }
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coffre-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
