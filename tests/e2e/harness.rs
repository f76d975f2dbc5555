//! Test harness: starts the real `coffre` binary on ephemeral 127.0.0.1
//! ports with a freshly generated CA and certificate, a temporary SQLite
//! database and Maildir root, and gives the tests TLS clients that trust that
//! CA. Every wait is bounded; the server is stopped when the handle drops.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as TokioBufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

pub const USER: &str = "alice@example.org";
pub const PASSWORD: &str = "correct horse battery staple";

/// The `coffre` binary under test.
pub fn coffre_bin() -> &'static str {
    env!("CARGO_BIN_EXE_coffre")
}

/// A running server.
pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub imaps: SocketAddr,
    pub pop3s: SocketAddr,
    pub notice_imap: SocketAddr,
    pub notice_pop3: SocketAddr,
    pub ca: PathBuf,
    pub config: PathBuf,
    pub stdout: mpsc::Receiver<String>,
}

/// A test message with CRLF line ends, a leading-dot line (POP3 stuffing) and UTF-8.
pub fn sample_message() -> Vec<u8> {
    b"From: Bob <bob@example.org>\r\nTo: alice@example.org\r\nSubject: Hello\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\nMessage-ID: <hello@example.org>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHi Alice,\r\n.a line starting with a dot\r\n\r\nCaf\xc3\xa9 cr\xc3\xa8me.\r\n".to_vec()
}

pub fn write_config(
    dir: &Path,
    certs: &coffre_server::certs::DevCertPaths,
    extra: &str,
) -> PathBuf {
    let config = format!(
        "[imaps]\nlisten = [\"127.0.0.1:0\"]\n\
         [pop3s]\nlisten = [\"127.0.0.1:0\"]\n\
         [tls]\ncert = {cert:?}\nkey = {key:?}\n\
         [database]\nurl = \"sqlite://{db}?mode=rwc\"\n\
         [storage]\nmail_root = {mail:?}\n\
         [legacy_notice]\nimap = [\"127.0.0.1:0\"]\npop3 = [\"127.0.0.1:0\"]\n\
         [limits]\nshutdown_grace_secs = 5\n\
         [log]\nlevel = \"debug\"\n{extra}",
        cert = certs.cert.display().to_string(),
        key = certs.key.display().to_string(),
        db = dir.join("accounts.db").display(),
        mail = dir.join("mail").display().to_string(),
    );
    let path = dir.join("coffre.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// Delivers a message the way an MTA does: write into tmp/, rename into new/.
pub fn deliver(mail_root: &Path, login: &str, name: &str, bytes: &[u8]) {
    let (local, domain) = login.split_once('@').unwrap();
    let maildir = mail_root.join(domain).join(local);
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    let tmp = maildir.join("tmp").join(name);
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, maildir.join("new").join(name)).unwrap();
}

pub fn run_coffre(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut child = Command::new(coffre_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().unwrap()
}

impl TestServer {
    /// A server with one account (USER/PASSWORD) holding `sample_message()`.
    pub fn start() -> TestServer {
        Self::start_custom("", |text| text)
    }

    /// Like [`TestServer::start`], with extra lines in the `[limits]` section.
    pub fn start_with_limits(limits: &str) -> TestServer {
        Self::start_custom("", |text| {
            text.replace("[limits]\n", &format!("[limits]\n{limits}"))
        })
    }

    /// Like [`TestServer::start`], with `extra` sections appended to the
    /// configuration and `edit` applied to its text.
    pub fn start_custom(extra: &str, edit: impl Fn(String) -> String) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let certs = coffre_server::certs::generate(&dir.path().join("certs")).unwrap();
        let config = write_config(dir.path(), &certs, extra);
        let text = edit(std::fs::read_to_string(&config).unwrap());
        std::fs::write(&config, text).unwrap();
        let out = run_coffre(
            &[
                "user",
                "add",
                "--config",
                config.to_str().unwrap(),
                USER,
                "--password-stdin",
            ],
            Some(&format!("{PASSWORD}\n")),
        );
        assert!(
            out.status.success(),
            "user add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        deliver(
            &dir.path().join("mail"),
            USER,
            "1700000000.M1P1.test",
            &sample_message(),
        );
        Self::spawn(dir, config, certs.ca, &["serve", "--config"])
    }

    /// Starts `coffre <args> <config>` and waits for its listening lines.
    pub fn spawn(
        dir: tempfile::TempDir,
        config: PathBuf,
        ca: PathBuf,
        args: &[&str],
    ) -> TestServer {
        let mut cmd = Command::new(coffre_bin());
        cmd.args(args).arg(&config);
        let (child, stdout) = spawn_with_stdout(cmd, dir.path().join("server.log"));
        let mut server = TestServer {
            dir,
            child: Some(child),
            imaps: unspecified(),
            pop3s: unspecified(),
            notice_imap: unspecified(),
            notice_pop3: unspecified(),
            ca,
            config,
            stdout,
        };
        server.read_addresses();
        server
    }

    fn read_addresses(&mut self) {
        let deadline = std::time::Instant::now() + WAIT;
        while std::time::Instant::now() < deadline {
            let line = match self.stdout.recv_timeout(Duration::from_millis(200)) {
                Ok(l) => l,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("server exited early; log: {}", self.log())
                }
            };
            let addr = |prefix: &str| line.strip_prefix(prefix).map(|a| a.trim().parse().unwrap());
            if let Some(a) = addr("coffre: IMAPS listening on ") {
                self.imaps = a;
            } else if let Some(a) = addr("coffre: POP3S listening on ") {
                self.pop3s = a;
            } else if let Some(a) = addr("coffre: legacy IMAP notice on ") {
                self.notice_imap = a;
            } else if let Some(a) = addr("coffre: legacy POP3 notice on ") {
                self.notice_pop3 = a;
            }
            if self.imaps.port() != 0
                && self.pop3s.port() != 0
                && self.notice_imap.port() != 0
                && self.notice_pop3.port() != 0
            {
                return;
            }
        }
        panic!(
            "server did not report its addresses in time; log: {}",
            self.log()
        );
    }

    pub fn mail_root(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.pid().to_string();
        let st = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(st.success());
        wait_bounded(self.child.take().unwrap())
    }
}

pub fn wait_bounded(mut child: Child) -> std::process::ExitStatus {
    wait_child(&mut child)
}

/// Waits (bounded) for a child to exit; kills it and fails the test if it hangs.
pub fn wait_child(child: &mut Child) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not exit in time");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn unspecified() -> SocketAddr {
    "0.0.0.0:0".parse().unwrap()
}

/// Spawns a command, forwarding its stdout lines to a channel and its stderr to a log file.
pub fn spawn_with_stdout(mut cmd: Command, log: PathBuf) -> (Child, mpsc::Receiver<String>) {
    let logfile = std::fs::File::create(log).unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(logfile))
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A rustls client configuration that trusts only the test CA.
pub fn client_config(ca: &Path) -> Arc<ClientConfig> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A line-oriented TLS client.
pub struct Client {
    pub stream: TokioBufReader<TlsStream<TcpStream>>,
}

impl Client {
    pub async fn connect(addr: SocketAddr, ca: &Path) -> Client {
        Self::connect_with(addr, client_config(ca)).await
    }

    pub async fn connect_with(addr: SocketAddr, config: Arc<ClientConfig>) -> Client {
        let tcp = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .unwrap()
            .unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio::time::timeout(WAIT, TlsConnector::from(config).connect(name, tcp))
            .await
            .unwrap()
            .unwrap();
        Client {
            stream: TokioBufReader::new(tls),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        let s = self.stream.get_mut();
        s.write_all(bytes).await.unwrap();
        s.flush().await.unwrap();
    }

    /// One line including CRLF ("" at EOF).
    pub async fn line(&mut self) -> String {
        let mut buf = Vec::new();
        tokio::time::timeout(WAIT, self.stream.read_until(b'\n', &mut buf))
            .await
            .unwrap()
            .unwrap();
        String::from_utf8(buf).unwrap()
    }

    pub async fn exact(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        tokio::time::timeout(WAIT, self.stream.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        buf
    }

    /// Reads raw bytes until a line starting with `tag ` has been read.
    pub async fn until_tagged(&mut self, tag: &str) -> Vec<u8> {
        let mut all = Vec::new();
        loop {
            let mut buf = Vec::new();
            let n = tokio::time::timeout(WAIT, self.stream.read_until(b'\n', &mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(
                n > 0,
                "EOF before tagged {tag}: {}",
                String::from_utf8_lossy(&all)
            );
            let done = buf.starts_with(format!("{tag} ").as_bytes());
            all.extend_from_slice(&buf);
            if done {
                return all;
            }
        }
    }

    /// Reads until EOF (or error), bounded.
    pub async fn rest(&mut self) -> Vec<u8> {
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(WAIT, self.stream.read_to_end(&mut buf))
            .await
            .unwrap();
        buf
    }
}

/// Whether a command is on PATH.
pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Skips (with a notice) when a tool is missing, except under CI where it must be there.
pub fn require_tool(cmd: &str) -> bool {
    if have(cmd) {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{cmd} is required under CI=true (.ci/run installs it)");
    }
    eprintln!("NOTICE: {cmd} not installed; test skipped");
    false
}

/// Runs curl against the test server with the test CA; returns its output.
pub fn curl(ca: &Path, url: &str, login: &str, password: &str) -> std::process::Output {
    Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "20", "--cacert"])
        .arg(ca)
        .args([url, "-u", &format!("{login}:{password}")])
        .output()
        .unwrap()
}
