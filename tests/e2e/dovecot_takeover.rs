//! Real Dovecot serves a Maildir first (Debian's dovecot-imapd and
//! dovecot-pop3d 2.3, a private instance on 127.0.0.1 with its own base_dir
//! and configuration in a temporary directory, plaintext as the legacy server
//! is): messages are delivered, flags and keywords set and a folder created
//! through Dovecot, and a client records UIDVALIDITY, UIDs, flags and POP3
//! UIDLs. `coffre migrate verify` compares Dovecot (imap://, plaintext) with
//! Coffre (imaps://) while both run. Then Dovecot is stopped and Coffre
//! serves the same Maildir: over IMAPS and POP3S the client sees exactly
//! what it recorded.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crate::harness::*;

const DOVECOT: &str = "/usr/sbin/dovecot";
const DOVECOT_PASSWORD: &str = PASSWORD;

/// Skips (with a notice) without Dovecot, except under CI.
fn require_dovecot() -> bool {
    if Path::new(DOVECOT).exists() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "{DOVECOT} is required under CI=true (.ci/run installs dovecot-imapd and dovecot-pop3d)"
        );
    }
    eprintln!("NOTICE: {DOVECOT} not installed; test skipped");
    false
}

fn id(flag: &str) -> String {
    let out = Command::new("id").arg(flag).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A port free right now on 127.0.0.1 (Dovecot needs a fixed one), taken
/// below the kernel's ephemeral range (`ip_local_port_range`, 32768–60999 by
/// default). Every Coffre test server binds port 0, so it is given an
/// ephemeral port: a port from outside that range can never be handed to
/// one of them between this check and Dovecot's bind, and the start-up probe
/// below can never reach another test's server (a CI run once saw that probe
/// recorded as a hit by a parallel test's legacy-notice listener).
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    const LOW: u16 = 20_000;
    const SPAN: u16 = 12_000;
    // Spread parallel test processes apart; step within one process.
    let base = (std::process::id() % u32::from(SPAN)) as u16;
    for _ in 0..200 {
        let step = NEXT.fetch_add(1, Ordering::Relaxed) % SPAN;
        let port = LOW + (base + step) % SPAN;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below the ephemeral range");
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid, gid);
        }
    }
}

/// A running private Dovecot; stopped (SIGTERM, then SIGKILL) on drop.
struct Dovecot {
    child: Option<Child>,
    imap: SocketAddr,
    pop3: SocketAddr,
    log: PathBuf,
}

impl Dovecot {
    fn start(base: &Path, mail: &Path) -> Dovecot {
        let root = id("-u") == "0";
        // Dovecot never gives mail access to root: as root, mail belongs to
        // nobody; otherwise everything runs as the current user.
        let (uid, gid) = if root {
            (65534u32, 65534u32)
        } else {
            (id("-u").parse().unwrap(), id("-g").parse().unwrap())
        };
        let users = base.join("users");
        std::fs::write(
            &users,
            format!("{USER}:{{PLAIN}}{DOVECOT_PASSWORD}::::::\n"),
        )
        .unwrap();
        let (imap_port, pop3_port) = (free_port(), free_port());
        let log = base.join("dovecot.log");
        let users_of = if root {
            String::new()
        } else {
            let me = id("-un");
            format!("default_internal_user = {me}\ndefault_login_user = {me}\n")
        };
        let conf = format!(
            "base_dir = {run}\n\
             state_dir = {state}\n\
             log_path = {log}\n\
             protocols = imap pop3\n\
             listen = 127.0.0.1\n\
             ssl = no\n\
             disable_plaintext_auth = no\n\
             auth_mechanisms = plain login\n\
             mail_uid = {uid}\n\
             mail_gid = {gid}\n\
             first_valid_uid = {uid}\n\
             first_valid_gid = {gid}\n\
             {users_of}\
             mail_location = maildir:{mail}/%d/%n\n\
             pop3_uidl_format = %08Xu%08Xv\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {users}\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = username_format=%u {users}\n}}\n\
             service imap-login {{\n  inet_listener imap {{\n    port = {imap_port}\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\n\
             service pop3-login {{\n  inet_listener pop3 {{\n    port = {pop3_port}\n  }}\n  inet_listener pop3s {{\n    port = 0\n  }}\n}}\n",
            run = base.join("run").display(),
            state = base.join("state").display(),
            log = log.display(),
            mail = mail.display(),
            users = users.display(),
        );
        for d in ["run", "state"] {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        let conf_path = base.join("dovecot.conf");
        std::fs::write(&conf_path, conf).unwrap();
        if root {
            // nobody must reach the Maildirs through the temporary directory.
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o755)).unwrap();
            chown_tree(mail, uid, gid);
        }
        let child = Command::new(DOVECOT)
            .arg("-F")
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(base.join("dovecot.out")).unwrap(),
            ))
            .spawn()
            .unwrap();
        let mut d = Dovecot {
            child: Some(child),
            imap: SocketAddr::from(([127, 0, 0, 1], imap_port)),
            pop3: SocketAddr::from(([127, 0, 0, 1], pop3_port)),
            log,
        };
        let deadline = std::time::Instant::now() + WAIT;
        while TcpStream::connect(d.imap).is_err() || TcpStream::connect(d.pop3).is_err() {
            if let Some(st) = d.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "dovecot exited ({st}): {}{}",
                    std::fs::read_to_string(base.join("dovecot.out")).unwrap_or_default(),
                    d.log()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "dovecot did not start: {}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM (the master stops its processes), bounded wait, then SIGKILL.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = std::time::Instant::now() + WAIT;
            while child.try_wait().ok().flatten().is_none() {
                if std::time::Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A blocking line client over plain TCP or TLS.
struct LineClient<S: Read + Write> {
    io: BufReader<S>,
}

impl<S: Read + Write> LineClient<S> {
    fn line(&mut self) -> String {
        let mut buf = Vec::new();
        self.io.read_until(b'\n', &mut buf).unwrap();
        assert!(!buf.is_empty(), "connection closed");
        String::from_utf8(buf).unwrap()
    }

    fn send(&mut self, text: &str) {
        self.io.get_mut().write_all(text.as_bytes()).unwrap();
        self.io.get_mut().flush().unwrap();
    }

    /// An IMAP command; returns the untagged lines; the answer must be OK.
    fn imap(&mut self, tag: &str, command: &str) -> Vec<String> {
        self.send(&format!("{tag} {command}\r\n"));
        let mut out = Vec::new();
        for _ in 0..100_000 {
            let l = self.line();
            if let Some(rest) = l.strip_prefix(&format!("{tag} ")) {
                assert!(rest.starts_with("OK"), "{command}: {l} after {out:?}");
                return out;
            }
            out.push(l.trim_end().to_string());
        }
        panic!("{command}: no answer");
    }
}

fn plain(addr: SocketAddr) -> LineClient<TcpStream> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    LineClient {
        io: BufReader::new(s),
    }
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn tls(addr: SocketAddr, ca: &Path) -> LineClient<Tls> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let config: Arc<rustls::ClientConfig> = client_config(ca);
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    LineClient {
        io: BufReader::new(rustls::StreamOwned::new(conn, s)),
    }
}

/// Folder → (UIDVALIDITY, [(UID, sorted flags without \Recent)]).
type State = BTreeMap<String, (u32, Vec<(u32, Vec<String>)>)>;

fn flags_of(fetch: &str) -> Vec<String> {
    let start = fetch.find("FLAGS (").unwrap() + 7;
    let end = start + fetch[start..].find(')').unwrap();
    let mut flags: Vec<String> = fetch[start..end]
        .split_whitespace()
        .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
        .map(str::to_string)
        .collect();
    flags.sort();
    flags
}

fn uid_of(fetch: &str) -> u32 {
    let i = fetch.find("UID ").unwrap() + 4;
    fetch[i..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// What an IMAP client sees: every folder's UIDVALIDITY, UIDs and flags.
fn imap_state<S: Read + Write>(c: &mut LineClient<S>) -> State {
    assert!(c.line().starts_with("* OK"));
    c.imap("l", &format!("LOGIN \"{USER}\" \"{DOVECOT_PASSWORD}\""));
    let mut names = Vec::new();
    for l in c.imap("s", "LIST \"\" \"*\"") {
        // `* LIST (attrs) "delim" name`
        let after = &l[l.find(") ").unwrap() + 2..];
        let (_, name) = after.split_once(' ').unwrap();
        names.push(name.trim_matches('"').to_string());
    }
    names.sort();
    let mut state = State::new();
    for name in names {
        let mut validity = 0;
        for l in c.imap("e", &format!("EXAMINE \"{name}\"")) {
            if let Some(i) = l.find("[UIDVALIDITY ") {
                validity = l[i + 13..].split(']').next().unwrap().parse().unwrap();
            }
        }
        let mut messages: Vec<(u32, Vec<String>)> = c
            .imap("f", "UID FETCH 1:* (UID FLAGS)")
            .iter()
            .filter(|l| l.contains(" FETCH ("))
            .map(|l| (uid_of(l), flags_of(l)))
            .collect();
        messages.sort();
        state.insert(name, (validity, messages));
    }
    c.imap("o", "LOGOUT");
    state
}

/// What a POP3 client sees: the UIDL list, in message order.
fn pop3_uidls<S: Read + Write>(c: &mut LineClient<S>) -> Vec<String> {
    assert!(c.line().starts_with("+OK"));
    c.send(&format!("USER {USER}\r\n"));
    assert!(c.line().starts_with("+OK"));
    c.send(&format!("PASS {DOVECOT_PASSWORD}\r\n"));
    let l = c.line();
    assert!(l.starts_with("+OK"), "{l}");
    c.send("UIDL\r\n");
    assert!(c.line().starts_with("+OK"));
    let mut out = Vec::new();
    for _ in 0..100_000 {
        let l = c.line();
        if l == ".\r\n" {
            c.send("QUIT\r\n");
            return out;
        }
        out.push(l.trim_end().to_string());
    }
    panic!("UIDL did not end");
}

fn message(n: u32) -> Vec<u8> {
    format!(
        "From: Bob <bob@example.org>\r\nTo: {USER}\r\nSubject: message {n}\r\n\
         Date: Fri, 27 Nov 2026 10:0{n}:00 +0000\r\nMessage-ID: <m{n}@example.org>\r\n\r\n\
         Body of message {n}.\r\n"
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn dovecot_serves_first_then_coffre_shows_the_same() {
    if !require_dovecot() {
        return;
    }
    let base = tempfile::tempdir().unwrap();
    let mail = base.path().join("mail");
    for n in 1..=4 {
        deliver(
            &mail,
            USER,
            &format!("170000000{n}.M{n}P1.oldhost"),
            &message(n),
        );
    }
    let mut dovecot = Dovecot::start(base.path(), &mail);

    // A client works with Dovecot: flags, keywords, a folder, a copy.
    let mut c = plain(dovecot.imap);
    assert!(c.line().starts_with("* OK"));
    c.imap("a", &format!("LOGIN \"{USER}\" \"{DOVECOT_PASSWORD}\""));
    c.imap("b", "SELECT INBOX");
    c.imap("c", "UID STORE 1 +FLAGS (\\Seen)");
    c.imap(
        "d",
        "UID STORE 2 +FLAGS (\\Flagged \\Answered $Forwarded Important)",
    );
    c.imap("e", "UID STORE 4 +FLAGS (\\Seen Important)");
    c.imap("f", "CREATE Work");
    c.imap("g", "UID COPY 2:3 Work");
    c.imap("h", "LOGOUT");
    let dovecot_imap = imap_state(&mut plain(dovecot.imap));
    let dovecot_uidls = pop3_uidls(&mut plain(dovecot.pop3));
    assert_eq!(dovecot_imap.len(), 2, "{dovecot_imap:?}");
    assert_eq!(dovecot_imap["INBOX"].1.len(), 4);
    assert_eq!(dovecot_imap["Work"].1.len(), 2);
    assert!(
        dovecot_imap["INBOX"].1[1]
            .1
            .contains(&"Important".to_string()),
        "{dovecot_imap:?}"
    );
    assert_eq!(dovecot_uidls.len(), 4);

    // Coffre on the same Maildir tree.
    let mail_line = format!("mail_root = {:?}", mail.display().to_string());
    let mut server = TestServer::start_custom("", |text| {
        text.lines()
            .map(|l| {
                if l.starts_with("mail_root = ") {
                    mail_line.clone()
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    });

    // `migrate verify` with both running: Dovecot in clear (with a warning).
    let out = run_coffre(
        &[
            "migrate",
            "verify",
            "--old",
            &format!("imap://{}", dovecot.imap),
            "--new",
            &format!("imaps://127.0.0.1:{}", server.imaps.port()),
            "--user",
            USER,
            "--password-stdin",
            "--ca",
            server.ca.to_str().unwrap(),
            "--tls-name",
            "localhost",
            "--pop3",
            "--old-pop3",
            &format!("pop3://{}", dovecot.pop3),
            "--new-pop3",
            &format!("pop3s://127.0.0.1:{}", server.pop3s.port()),
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {stderr}\ndovecot: {}",
        dovecot.log()
    );
    assert!(stdout.contains("INBOX: identical"), "{stdout}");
    assert!(stdout.contains("Work: identical"), "{stdout}");
    assert!(stdout.trim_end().ends_with("identical"), "{stdout}");
    assert!(
        stdout.contains("POP3 UIDLs: identical (4 messages)"),
        "{stdout}"
    );
    assert!(stderr.contains("plaintext"), "{stderr}");

    dovecot.stop();

    // The client sees no change over IMAPS and POP3S.
    let coffre_imap = imap_state(&mut tls(server.imaps, &server.ca));
    let coffre_uidls = pop3_uidls(&mut tls(server.pop3s, &server.ca));
    for (name, seen) in &dovecot_imap {
        assert_eq!(coffre_imap.get(name), Some(seen), "{name}: {coffre_imap:?}");
    }
    // Coffre adds only its empty special-use folders (Sent, Trash…).
    for (name, (_, messages)) in &coffre_imap {
        assert!(
            dovecot_imap.contains_key(name) || messages.is_empty(),
            "{name}: {coffre_imap:?}"
        );
    }
    assert_eq!(coffre_uidls, dovecot_uidls);
    assert_eq!(server.terminate().code(), Some(0));
}
