//! `coffre migrate verify`: logs in to the old server and to Coffre as the
//! same user and compares, folder by folder, what a client would see:
//! UIDVALIDITY, the UID list, the flags of every UID and, with `--pop3`, the
//! POP3 UIDL list. Prints a per-folder report; exits 0 when everything is
//! identical, 1 when something differs (2 on errors, as every command).
//!
//! Folder names are compared without each server's personal-namespace prefix
//! and with `/` as the hierarchy separator (so Courier's `INBOX.Sent` and
//! Coffre's `Sent` are the same folder). `\Recent` is ignored (it belongs to
//! a session, not to a message). An empty folder only Coffre has is listed
//! but not counted as a difference: Coffre creates the special-use folders
//! (Sent, Drafts, Trash…) at the first login.
//!
//! Only reads: folders are opened with `EXAMINE`, nothing is fetched besides
//! UIDs and flags, POP3 sessions end with `QUIT` after `UIDL` (no `DELE`).
//! TLS (`imaps://`, `pop3s://`) is the norm; the old server may be reached
//! in clear (`imap://`, `pop3://`) because it often only speaks plaintext,
//! with a warning: do that only over loopback or a trusted LAN.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Wait for any one network step.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest response line accepted.
const MAX_LINE: usize = 1024 * 1024;
/// Longest literal accepted (folder names; bodies are never fetched).
const MAX_LITERAL: usize = 64 * 1024;
/// Differences printed per folder before "… and N more".
const MAX_SHOWN: usize = 50;
/// System CA bundle used when neither `--ca` nor `--insecure` is given.
const SYSTEM_CA: &str = "/etc/ssl/certs/ca-certificates.crt";

/// `migrate verify` options.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The old server: `imaps://HOST[:PORT]`, or `imap://HOST[:PORT]` (plaintext: loopback or LAN only).
    #[arg(long, value_name = "URL")]
    pub old: String,
    /// Coffre: `imaps://HOST[:PORT]`.
    #[arg(long, value_name = "URL")]
    pub new: String,
    /// The login on Coffre (and on the old server unless --old-user).
    #[arg(long)]
    pub user: String,
    /// The login on the old server, if it differs (e.g. without the domain).
    #[arg(long)]
    pub old_user: Option<String>,
    /// Read the password (the same on both servers) as one line from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Trust the CA certificates in this PEM file (default: the system's).
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,
    /// Do not check certificates at all (test setups only).
    #[arg(long)]
    pub insecure: bool,
    /// The TLS server name to check certificates against (default: the URL's host).
    #[arg(long, value_name = "NAME")]
    pub tls_name: Option<String>,
    /// Also compare the INBOX's POP3 UIDL lists.
    #[arg(long)]
    pub pop3: bool,
    /// The old POP3 server (default: the old host, pop3s 995, or pop3 110 with imap://).
    #[arg(long, value_name = "URL", requires = "pop3")]
    pub old_pop3: Option<String>,
    /// Coffre's POP3S (default: the new host, port 995).
    #[arg(long, value_name = "URL", requires = "pop3")]
    pub new_pop3: Option<String>,
}

/// A server address from a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `imap`, `imaps`, `pop3` or `pop3s`.
    pub scheme: String,
    /// Host name or address (without IPv6 brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl Url {
    /// Parses `scheme://host[:port][/]`.
    pub fn parse(s: &str) -> anyhow::Result<Url> {
        let (scheme, rest) = s
            .split_once("://")
            .with_context(|| format!("{s:?}: expected SCHEME://HOST[:PORT]"))?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "imap" => 143,
            "imaps" => 993,
            "pop3" => 110,
            "pop3s" => 995,
            other => bail!("{s:?}: unknown scheme {other:?} (imap, imaps, pop3, pop3s)"),
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .with_context(|| format!("{s:?}: unclosed '['"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => bail!("{s:?}: unexpected {after:?}"),
            };
            (host.to_string(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (rest.to_string(), None),
            }
        };
        if host.is_empty() || host.contains(['/', '@', ' ']) {
            bail!("{s:?}: bad host");
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .with_context(|| format!("{s:?}: bad port {p:?}"))?,
            None => default_port,
        };
        Ok(Url { scheme, host, port })
    }

    fn tls(&self) -> bool {
        self.scheme.ends_with('s')
    }

    fn is_imap(&self) -> bool {
        self.scheme.starts_with("imap")
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.scheme, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

/// INSECURE verifier for `--insecure`: accepts any certificate; handshake
/// signatures are still checked.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

fn client_config(
    ca: Option<&std::path::Path>,
    insecure: bool,
) -> anyhow::Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    if insecure {
        return Ok(Arc::new(
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate {
                    algorithms: provider.signature_verification_algorithms,
                }))
                .with_no_client_auth(),
        ));
    }
    let path = ca.unwrap_or(std::path::Path::new(SYSTEM_CA));
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path)
        .map_err(|e| anyhow::anyhow!("reading CA file {}: {e}", path.display()))?
    {
        let cert = cert.map_err(|e| anyhow::anyhow!("parsing CA file {}: {e}", path.display()))?;
        // A bundle may hold certificates rustls cannot use; skip those.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        bail!("no usable CA certificate in {}", path.display());
    }
    Ok(Arc::new(
        builder.with_root_certificates(roots).with_no_client_auth(),
    ))
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One connection, TLS or (old server only) plaintext.
struct Conn {
    io: BufReader<Box<dyn Io>>,
    what: String,
}

async fn step<T>(
    what: &str,
    f: impl std::future::Future<Output = std::io::Result<T>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(STEP_TIMEOUT, f).await {
        Ok(r) => r.with_context(|| what.to_string()),
        Err(_) => bail!("{what}: timed out after {STEP_TIMEOUT:?}"),
    }
}

impl Conn {
    async fn open(url: &Url, tls: &TlsSetup) -> anyhow::Result<Conn> {
        let what = url.to_string();
        let tcp = step(
            &format!("connecting to {what}"),
            TcpStream::connect((url.host.as_str(), url.port)),
        )
        .await?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = if url.tls() {
            let name = tls.name.clone().unwrap_or_else(|| url.host.clone());
            let server_name = ServerName::try_from(name.clone())
                .map_err(|e| anyhow::anyhow!("invalid TLS server name {name:?}: {e}"))?;
            let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
            Box::new(
                step(
                    &format!("TLS handshake with {what}"),
                    connector.connect(server_name, tcp),
                )
                .await?,
            )
        } else {
            Box::new(tcp)
        };
        Ok(Conn {
            io: BufReader::new(io),
            what,
        })
    }

    async fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let what = format!("writing to {}", self.what);
        let io = self.io.get_mut();
        step(&what, async {
            io.write_all(bytes).await?;
            io.flush().await
        })
        .await
    }

    /// One line without its CRLF; an error at EOF or past [`MAX_LINE`].
    async fn line(&mut self) -> anyhow::Result<Vec<u8>> {
        let what = format!("reading from {}", self.what);
        let mut buf = Vec::new();
        let n = step(
            &what,
            (&mut self.io)
                .take(MAX_LINE as u64 + 2)
                .read_until(b'\n', &mut buf),
        )
        .await?;
        if n == 0 {
            bail!("{}: connection closed by the server", self.what);
        }
        if !buf.ends_with(b"\n") {
            bail!("{}: response line longer than {MAX_LINE} bytes", self.what);
        }
        buf.pop();
        if buf.ends_with(b"\r") {
            buf.pop();
        }
        Ok(buf)
    }

    /// One IMAP response with its literals inlined as quoted strings.
    async fn imap_response(&mut self) -> anyhow::Result<String> {
        let mut out = String::new();
        loop {
            let line = self.line().await?;
            let text = String::from_utf8_lossy(&line).into_owned();
            let Some(size) = literal_size(&text) else {
                out.push_str(&text);
                return Ok(out);
            };
            let start = text.rfind('{').unwrap_or(text.len());
            out.push_str(&text[..start]);
            if size > MAX_LITERAL {
                bail!("{}: literal of {size} bytes is too long", self.what);
            }
            let mut lit = vec![0u8; size];
            let what = format!("reading from {}", self.what);
            step(&what, self.io.read_exact(&mut lit)).await?;
            out.push_str(&quote(&String::from_utf8_lossy(&lit)));
            if out.len() > MAX_LINE {
                bail!("{}: response longer than {MAX_LINE} bytes", self.what);
            }
        }
    }

    /// Sends an IMAP command and collects untagged responses until its
    /// tagged answer, which must be OK.
    async fn imap(&mut self, tag: &str, command: &str) -> anyhow::Result<Vec<String>> {
        self.send(format!("{tag} {command}\r\n").as_bytes()).await?;
        self.tagged(tag, command).await
    }

    /// Collects untagged responses until the answer tagged `tag`, which must
    /// be OK.
    async fn tagged(&mut self, tag: &str, command: &str) -> anyhow::Result<Vec<String>> {
        let mut untagged = Vec::new();
        loop {
            let r = self.imap_response().await?;
            if let Some(rest) = r.strip_prefix(&format!("{tag} ")) {
                if rest.get(..2).is_some_and(|s| s.eq_ignore_ascii_case("OK")) {
                    return Ok(untagged);
                }
                let verb = command.split(' ').next().unwrap_or_default();
                bail!("{}: {verb} failed: {rest}", self.what);
            }
            if r.starts_with("+ ") || r == "+" {
                bail!("{}: unexpected continuation request", self.what);
            }
            untagged.push(r);
        }
    }
}

impl Conn {
    /// `LOGIN`, with each argument as a quoted string, or as a synchronising
    /// literal when it is not plain ASCII (a legacy password with `é`).
    async fn login(&mut self, tag: &str, user: &str, password: &str) -> anyhow::Result<()> {
        if user.contains('\0') || password.contains('\0') {
            bail!("a login or password with a NUL character cannot be sent");
        }
        let mut pending = format!("{tag} LOGIN");
        for arg in [user, password] {
            pending.push(' ');
            if arg.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                pending.push_str(&quote(arg));
                continue;
            }
            pending.push_str(&format!("{{{}}}\r\n", arg.len()));
            self.send(pending.as_bytes()).await?;
            pending.clear();
            loop {
                let r = self.imap_response().await?;
                if r.starts_with('+') {
                    break;
                }
                if !r.starts_with("* ") {
                    bail!("{}: LOGIN failed: {r}", self.what);
                }
            }
            pending.push_str(arg);
        }
        pending.push_str("\r\n");
        self.send(pending.as_bytes()).await?;
        self.tagged(tag, "LOGIN").await.map(drop)
    }
}

/// Connection settings shared by all connections.
struct TlsSetup {
    config: Arc<ClientConfig>,
    name: Option<String>,
}

/// The size of the literal announced at the end of a line (`{12}` or `{12+}`).
fn literal_size(line: &str) -> Option<usize> {
    let body = line.strip_suffix('}')?;
    let open = body.rfind('{')?;
    body[open + 1..].trim_end_matches('+').parse().ok()
}

/// An IMAP quoted string (or a synchronising-literal-free encoding for
/// what our own tokenizer reads back).
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A parsed IMAP data item.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Atom(String),
    Str(String),
    Nil,
    List(Vec<Item>),
}

impl Item {
    fn text(&self) -> Option<&str> {
        match self {
            Item::Atom(s) | Item::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Parses a sequence of IMAP items (atoms, quoted strings, NIL, lists).
fn parse_items(s: &str) -> anyhow::Result<Vec<Item>> {
    fn items(
        chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
        depth: usize,
    ) -> anyhow::Result<Vec<Item>> {
        if depth > 16 {
            bail!("lists nested too deeply");
        }
        let mut out = Vec::new();
        while let Some(&c) = chars.peek() {
            match c {
                ' ' => {
                    chars.next();
                }
                '(' => {
                    chars.next();
                    out.push(Item::List(items(chars, depth + 1)?));
                }
                ')' => {
                    if depth == 0 {
                        bail!("unbalanced ')'");
                    }
                    chars.next();
                    return Ok(out);
                }
                '"' => {
                    chars.next();
                    let mut v = String::new();
                    loop {
                        match chars.next() {
                            Some('\\') => v.push(chars.next().context("unterminated string")?),
                            Some('"') => break,
                            Some(c) => v.push(c),
                            None => bail!("unterminated string"),
                        }
                    }
                    out.push(Item::Str(v));
                }
                _ => {
                    let mut v = String::new();
                    while let Some(&c) = chars.peek() {
                        if c == ' ' || c == '(' || c == ')' {
                            break;
                        }
                        // Square brackets (BODY[...]) belong to the atom.
                        v.push(c);
                        chars.next();
                    }
                    if v.eq_ignore_ascii_case("NIL") {
                        out.push(Item::Nil);
                    } else {
                        out.push(Item::Atom(v));
                    }
                }
            }
        }
        if depth > 0 {
            bail!("unbalanced '('");
        }
        Ok(out)
    }
    items(&mut s.chars().peekable(), 0)
}

/// How the IMAP server names folders: its personal namespace.
#[derive(Debug, Clone, Default)]
struct Namespace {
    prefix: String,
    delimiter: Option<char>,
}

/// What one server shows of one folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct FolderState {
    uid_validity: Option<u32>,
    /// Flags per UID.
    messages: BTreeMap<u32, BTreeSet<String>>,
}

/// What one server shows of one account.
#[derive(Debug, Default)]
struct Account {
    /// By normalised name; the value is the name as the server spells it.
    folders: BTreeMap<String, (String, FolderState)>,
}

/// Canonical spelling of a flag: system flags case-folded, keywords as is;
/// `None` for `\Recent`.
fn normalise_flag(f: &str) -> Option<String> {
    if !f.starts_with('\\') {
        return Some(f.to_string());
    }
    const SYSTEM: [&str; 5] = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"];
    if f.eq_ignore_ascii_case("\\Recent") {
        return None;
    }
    Some(
        SYSTEM
            .iter()
            .find(|s| s.eq_ignore_ascii_case(f))
            .map_or_else(|| f.to_string(), |s| s.to_string()),
    )
}

/// The folder name without the namespace prefix, with `/` as separator.
fn normalise_folder(name: &str, ns: &Namespace, delimiter: Option<char>) -> String {
    if name.eq_ignore_ascii_case("INBOX") {
        return "INBOX".into();
    }
    let stripped = name
        .strip_prefix(ns.prefix.as_str())
        .filter(|s| !s.is_empty())
        .unwrap_or(name);
    match delimiter.or(ns.delimiter) {
        Some(d) if d != '/' => stripped.replace(d, "/"),
        _ => stripped.to_string(),
    }
}

/// Logs in over IMAP and reads every folder's UIDVALIDITY, UIDs and flags.
async fn read_imap(
    url: &Url,
    tls: &TlsSetup,
    user: &str,
    password: &str,
) -> anyhow::Result<Account> {
    let mut c = Conn::open(url, tls).await?;
    let greeting = c.imap_response().await?;
    if !greeting.starts_with("* OK") && !greeting.starts_with("* PREAUTH") {
        bail!("{url}: unexpected greeting {greeting:?}");
    }
    if !greeting.starts_with("* PREAUTH") {
        c.login("v1", user, password)
            .await
            .map_err(|e| anyhow::anyhow!("{url}: login as {user} failed ({e:#})"))?;
    }
    let mut ns = Namespace::default();
    if let Ok(lines) = c.imap("v2", "NAMESPACE").await {
        for l in lines {
            if let Some(rest) = l.strip_prefix("* NAMESPACE ")
                && let Ok(items) = parse_items(rest)
                && let Some(Item::List(personal)) = items.first()
                && let Some(Item::List(first)) = personal.first()
            {
                ns.prefix = first.first().and_then(Item::text).unwrap_or("").to_string();
                ns.delimiter = first
                    .get(1)
                    .and_then(Item::text)
                    .and_then(|d| d.chars().next());
            }
        }
    }
    let mut account = Account::default();
    let mut names = Vec::new();
    for l in c.imap("v3", "LIST \"\" \"*\"").await? {
        let Some(rest) = l.strip_prefix("* LIST ") else {
            continue;
        };
        let items = parse_items(rest).with_context(|| format!("{url}: bad LIST response {l:?}"))?;
        let (Some(Item::List(attrs)), Some(delim), Some(name)) = (
            items.first(),
            items.get(1),
            items.get(2).and_then(Item::text),
        ) else {
            bail!("{url}: bad LIST response {l:?}");
        };
        let noselect = attrs.iter().any(|a| {
            a.text().is_some_and(|t| {
                t.eq_ignore_ascii_case("\\Noselect") || t.eq_ignore_ascii_case("\\NonExistent")
            })
        });
        if noselect {
            continue;
        }
        let delimiter = delim.text().and_then(|d| d.chars().next());
        names.push((normalise_folder(name, &ns, delimiter), name.to_string()));
    }
    let mut tag = 3u32;
    for (key, name) in names {
        tag += 1;
        let mut state = FolderState::default();
        let mut exists = 0u32;
        for l in c
            .imap(&format!("v{tag}"), &format!("EXAMINE {}", quote(&name)))
            .await?
        {
            if let Some(i) = l.find("[UIDVALIDITY ") {
                let v = &l[i + 13..];
                state.uid_validity = v.split(']').next().and_then(|n| n.trim().parse().ok());
            } else if let Some(n) = l.strip_prefix("* ").and_then(|r| r.strip_suffix(" EXISTS")) {
                exists = n.parse().unwrap_or(0);
            }
        }
        if exists > 0 {
            tag += 1;
            for l in c
                .imap(&format!("v{tag}"), "UID FETCH 1:* (UID FLAGS)")
                .await?
            {
                let Some((_, after)) = l.split_once(" FETCH ") else {
                    continue;
                };
                let items = parse_items(after)
                    .with_context(|| format!("{url}: bad FETCH response {l:?}"))?;
                let Some(Item::List(kv)) = items.first() else {
                    bail!("{url}: bad FETCH response {l:?}");
                };
                let mut uid = None;
                let mut flags = BTreeSet::new();
                for pair in kv.chunks(2) {
                    match (pair.first().and_then(Item::text), pair.get(1)) {
                        (Some(k), Some(v)) if k.eq_ignore_ascii_case("UID") => {
                            uid = v.text().and_then(|t| t.parse::<u32>().ok());
                        }
                        (Some(k), Some(Item::List(fl))) if k.eq_ignore_ascii_case("FLAGS") => {
                            flags = fl
                                .iter()
                                .filter_map(Item::text)
                                .filter_map(normalise_flag)
                                .collect();
                        }
                        _ => {}
                    }
                }
                let Some(uid) = uid else {
                    bail!("{url}: FETCH response without a UID: {l:?}");
                };
                state.messages.insert(uid, flags);
            }
        }
        account.folders.insert(key, (name, state));
    }
    let _ = c.imap("v0", "LOGOUT").await;
    Ok(account)
}

/// Logs in over POP3 and reads the UIDL list (in message-number order).
async fn read_pop3(
    url: &Url,
    tls: &TlsSetup,
    user: &str,
    password: &str,
) -> anyhow::Result<Vec<String>> {
    let mut c = Conn::open(url, tls).await?;
    let ok = |line: Vec<u8>, what: &str| -> anyhow::Result<()> {
        if line.starts_with(b"+OK") {
            Ok(())
        } else {
            bail!("{url}: {what}: {}", String::from_utf8_lossy(&line))
        }
    };
    ok(c.line().await?, "greeting")?;
    if user.contains(['\r', '\n']) || password.contains(['\r', '\n']) {
        bail!("a login or password with a line break cannot be sent");
    }
    c.send(format!("USER {user}\r\n").as_bytes()).await?;
    ok(c.line().await?, "USER")?;
    c.send(format!("PASS {password}\r\n").as_bytes()).await?;
    let pass = c.line().await?;
    if !pass.starts_with(b"+OK") {
        bail!("{url}: login as {user} failed");
    }
    c.send(b"UIDL\r\n").await?;
    ok(c.line().await?, "UIDL")?;
    let mut uidls = Vec::new();
    loop {
        let line = c.line().await?;
        if line == b"." {
            break;
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        let mut f = text.split_ascii_whitespace();
        match (f.next().and_then(|n| n.parse::<u32>().ok()), f.next()) {
            (Some(_), Some(uidl)) => uidls.push(uidl.to_string()),
            _ => bail!("{url}: bad UIDL line {text:?}"),
        }
    }
    let _ = c.send(b"QUIT\r\n").await;
    Ok(uidls)
}

/// Differences in one folder (empty: identical).
fn compare_folder(old: &FolderState, new: &FolderState) -> Vec<String> {
    let mut out = Vec::new();
    if old.uid_validity != new.uid_validity {
        out.push(format!(
            "UIDVALIDITY differs: old {} new {} (clients will download the whole folder again)",
            old.uid_validity.map_or("none".into(), |v| v.to_string()),
            new.uid_validity.map_or("none".into(), |v| v.to_string())
        ));
    }
    for (uid, flags) in &old.messages {
        match new.messages.get(uid) {
            None => out.push(format!("UID {uid}: only on the old server")),
            Some(f) if f != flags => out.push(format!(
                "UID {uid}: flags differ: old ({}) new ({})",
                flags.iter().cloned().collect::<Vec<_>>().join(" "),
                f.iter().cloned().collect::<Vec<_>>().join(" ")
            )),
            Some(_) => {}
        }
    }
    for uid in new.messages.keys() {
        if !old.messages.contains_key(uid) {
            out.push(format!("UID {uid}: only on Coffre"));
        }
    }
    out
}

/// Differences between two UIDL lists (empty: identical).
fn compare_uidls(old: &[String], new: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let old_set: BTreeSet<&String> = old.iter().collect();
    let new_set: BTreeSet<&String> = new.iter().collect();
    for u in old.iter().filter(|u| !new_set.contains(u)) {
        out.push(format!(
            "UIDL {u}: only on the old server (clients will download it again)"
        ));
    }
    for u in new.iter().filter(|u| !old_set.contains(u)) {
        out.push(format!("UIDL {u}: only on Coffre"));
    }
    if out.is_empty() && old != new {
        out.push("same UIDLs in a different order".into());
    }
    out
}

fn print_differences(out: &mut String, diffs: &[String]) {
    for d in diffs.iter().take(MAX_SHOWN) {
        out.push_str(&format!("    {d}\n"));
    }
    if diffs.len() > MAX_SHOWN {
        out.push_str(&format!("    … and {} more\n", diffs.len() - MAX_SHOWN));
    }
}

/// The report and the number of differences.
fn report(old: &Account, new: &Account, uidls: Option<(&[String], &[String])>) -> (String, usize) {
    let mut out = String::new();
    let mut total = 0;
    let keys: BTreeSet<&String> = old.folders.keys().chain(new.folders.keys()).collect();
    for key in keys {
        match (old.folders.get(key), new.folders.get(key)) {
            (Some((name, o)), Some((_, n))) => {
                let diffs = compare_folder(o, n);
                if diffs.is_empty() {
                    out.push_str(&format!(
                        "{key}: identical (UIDVALIDITY {}, {} messages)\n",
                        o.uid_validity.map_or("none".into(), |v| v.to_string()),
                        o.messages.len()
                    ));
                } else {
                    out.push_str(&format!(
                        "{key}: {} difference(s) (old name {name:?}, {} messages old, {} new)\n",
                        diffs.len(),
                        o.messages.len(),
                        n.messages.len()
                    ));
                    print_differences(&mut out, &diffs);
                    total += diffs.len();
                }
            }
            (Some((name, o)), None) => {
                out.push_str(&format!(
                    "{key}: only on the old server (as {name:?}, {} messages)\n",
                    o.messages.len()
                ));
                total += 1;
            }
            (None, Some((_, n))) if n.messages.is_empty() => {
                // Coffre creates the special-use folders (Sent, Trash…) a
                // client expects; an empty one costs no client anything.
                out.push_str(&format!(
                    "{key}: only on Coffre, empty (not a difference)\n"
                ));
            }
            (None, Some((_, n))) => {
                out.push_str(&format!(
                    "{key}: only on Coffre ({} messages)\n",
                    n.messages.len()
                ));
                total += 1;
            }
            (None, None) => {}
        }
    }
    if let Some((o, n)) = uidls {
        let diffs = compare_uidls(o, n);
        if diffs.is_empty() {
            out.push_str(&format!("POP3 UIDLs: identical ({} messages)\n", o.len()));
        } else {
            out.push_str(&format!(
                "POP3 UIDLs: {} difference(s) ({} old, {} new)\n",
                diffs.len(),
                o.len(),
                n.len()
            ));
            print_differences(&mut out, &diffs);
            total += diffs.len();
        }
    }
    (out, total)
}

fn pop3_url(explicit: Option<&str>, imap: &Url) -> anyhow::Result<Url> {
    match explicit {
        Some(u) => Url::parse(u),
        None => Ok(Url {
            scheme: if imap.tls() { "pop3s" } else { "pop3" }.into(),
            host: imap.host.clone(),
            port: if imap.tls() { 995 } else { 110 },
        }),
    }
}

/// Runs `coffre migrate verify`. Exits the process with status 1 when the
/// servers differ (after printing the report).
pub async fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let old = Url::parse(&args.old).context("--old")?;
    let new = Url::parse(&args.new).context("--new")?;
    if !old.is_imap() || !new.is_imap() {
        bail!("--old and --new are IMAP URLs (imap:// or imaps://); POP3 is --pop3");
    }
    if !new.tls() {
        bail!("--new: Coffre speaks IMAP over TLS only: use imaps://");
    }
    let pop3 = if args.pop3 {
        let o = pop3_url(args.old_pop3.as_deref(), &old).context("--old-pop3")?;
        let n = pop3_url(args.new_pop3.as_deref(), &new).context("--new-pop3")?;
        if o.is_imap() || n.is_imap() {
            bail!("--old-pop3 and --new-pop3 are POP3 URLs (pop3:// or pop3s://)");
        }
        if !n.tls() {
            bail!("--new-pop3: Coffre speaks POP3 over TLS only: use pop3s://");
        }
        Some((o, n))
    } else {
        None
    };
    for u in std::iter::once(&old).chain(pop3.iter().map(|(o, _)| o)) {
        if !u.tls() {
            eprintln!(
                "coffre: warning: {u} is plaintext: the password crosses the network in clear; \
                 use this only over loopback or a trusted LAN"
            );
        }
    }
    let secret = crate::cli::read_password(args.password_stdin, false)?;
    let password = secret.expose();
    let tls = TlsSetup {
        config: client_config(args.ca.as_deref(), args.insecure)?,
        name: args.tls_name.clone(),
    };
    let old_user = args.old_user.clone().unwrap_or_else(|| args.user.clone());
    // Everything from the old server first, then Coffre: the old server is
    // done with the Maildir before Coffre opens it.
    let old_account = read_imap(&old, &tls, &old_user, password)
        .await
        .context("old server")?;
    let old_uidls = match &pop3 {
        Some((o, _)) => Some(
            read_pop3(o, &tls, &old_user, password)
                .await
                .context("old server (POP3)")?,
        ),
        None => None,
    };
    let new_account = read_imap(&new, &tls, &args.user, password)
        .await
        .context("Coffre")?;
    let uidls = match (&pop3, old_uidls) {
        (Some((_, n)), Some(o)) => Some((
            o,
            read_pop3(n, &tls, &args.user, password)
                .await
                .context("Coffre (POP3)")?,
        )),
        _ => None,
    };
    let (text, differences) = report(
        &old_account,
        &new_account,
        uidls.as_ref().map(|(o, n)| (o.as_slice(), n.as_slice())),
    );
    println!(
        "Comparing {old} (old, as {old_user}) with {new} (Coffre, as {}):",
        args.user
    );
    print!("{text}");
    if differences == 0 {
        println!("identical");
        Ok(())
    } else {
        println!("{differences} difference(s)");
        let _ = std::io::stdout().flush();
        std::process::exit(1);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fake(server_says: &[u8]) -> Conn {
        let (client, mut server) = tokio::io::duplex(4 * MAX_LINE);
        let data = server_says.to_vec();
        tokio::spawn(async move {
            let _ = server.write_all(&data).await;
            // Keep the server end open until the client is done.
            let mut sink = Vec::new();
            let _ = server.read_to_end(&mut sink).await;
        });
        Conn {
            io: BufReader::new(Box::new(client)),
            what: "fake".into(),
        }
    }

    #[tokio::test]
    async fn responses_are_bounded() {
        // Literals are inlined as quoted strings.
        let mut c = fake(b"* LIST () \"/\" {5}\r\na\"b c\r\nx OK done\r\n");
        let lines = c.imap("x", "LIST \"\" \"*\"").await.unwrap();
        assert_eq!(lines, vec!["* LIST () \"/\" \"a\\\"b c\""]);
        assert_eq!(
            parse_items(&lines[0][7..]).unwrap()[2],
            Item::Str("a\"b c".into())
        );
        // A literal over the limit.
        let big = format!("* LIST () \"/\" {{{}}}\r\n", MAX_LITERAL + 1);
        let e = fake(big.as_bytes()).imap_response().await.unwrap_err();
        assert!(e.to_string().contains("too long"), "{e}");
        // A line over the limit.
        let mut long = vec![b'a'; MAX_LINE + 10];
        long.extend_from_slice(b"\r\n");
        let e = fake(&long).line().await.unwrap_err();
        assert!(e.to_string().contains("longer than"), "{e}");
        // A refusal names the command; EOF is an error, not a hang.
        let e = fake(b"x NO [AUTHENTICATIONFAILED] nope\r\n")
            .imap("x", "LOGIN a b")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("LOGIN failed"), "{e}");
        let (client, server) = tokio::io::duplex(64);
        drop(server);
        let mut c = Conn {
            io: BufReader::new(Box::new(client)),
            what: "fake".into(),
        };
        assert!(c.line().await.is_err());
    }

    #[tokio::test]
    async fn login_sends_non_ascii_as_a_literal() {
        let (client, server) = tokio::io::duplex(4096);
        let mut c = Conn {
            io: BufReader::new(Box::new(client)),
            what: "fake".into(),
        };
        let peer = tokio::spawn(async move {
            let mut server = BufReader::new(server);
            let mut first = String::new();
            server.read_line(&mut first).await.unwrap();
            server.get_mut().write_all(b"+ go on\r\n").await.unwrap();
            let mut rest = vec![0u8; "caf\u{e9} \"x\"".len() + 2];
            server.read_exact(&mut rest).await.unwrap();
            server.get_mut().write_all(b"v1 OK in\r\n").await.unwrap();
            (first, String::from_utf8(rest).unwrap())
        });
        c.login("v1", "alice", "caf\u{e9} \"x\"").await.unwrap();
        let (first, rest) = peer.await.unwrap();
        assert_eq!(first, "v1 LOGIN \"alice\" {9}\r\n");
        assert_eq!(rest, "caf\u{e9} \"x\"\r\n");
        let mut plain = fake(b"v2 OK in\r\n");
        plain.login("v2", "alice", "p\"w").await.unwrap();
        assert!(plain.login("v3", "a", "nul\0").await.is_err());
    }

    #[test]
    fn urls() {
        let u = Url::parse("imaps://mail.example.org").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.tls()),
            ("mail.example.org", 993, true)
        );
        let u = Url::parse("imap://127.0.0.1:1143/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.tls()),
            ("127.0.0.1", 1143, false)
        );
        let u = Url::parse("pop3s://[::1]:9995").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9995));
        assert_eq!(u.to_string(), "pop3s://[::1]:9995");
        assert_eq!(Url::parse("POP3://h").unwrap().port, 110);
        for bad in [
            "mail.example.org",
            "http://h",
            "imaps://",
            "imaps://h:0",
            "imaps://h:x",
            "imaps://[::1",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn literal_sizes() {
        assert_eq!(literal_size("* LIST () \"/\" {5}"), Some(5));
        assert_eq!(literal_size("* LIST () \"/\" {5+}"), Some(5));
        assert_eq!(literal_size("* OK done"), None);
        assert_eq!(literal_size("* OK {x}"), None);
    }

    #[test]
    fn items() {
        let items = parse_items(r#"(\HasNoChildren \Marked) "." "INBOX.Sent \"x\"""#).unwrap();
        assert_eq!(
            items,
            vec![
                Item::List(vec![
                    Item::Atom("\\HasNoChildren".into()),
                    Item::Atom("\\Marked".into())
                ]),
                Item::Str(".".into()),
                Item::Str("INBOX.Sent \"x\"".into()),
            ]
        );
        assert_eq!(
            parse_items("NIL x").unwrap(),
            vec![Item::Nil, Item::Atom("x".into())]
        );
        assert_eq!(
            parse_items("(UID 4 FLAGS (\\Seen $Label1))").unwrap(),
            vec![Item::List(vec![
                Item::Atom("UID".into()),
                Item::Atom("4".into()),
                Item::Atom("FLAGS".into()),
                Item::List(vec![
                    Item::Atom("\\Seen".into()),
                    Item::Atom("$Label1".into())
                ]),
            ])]
        );
        for bad in ["(a", "a)", "\"open", &"(".repeat(40)] {
            assert!(parse_items(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_and_flags_are_normalised() {
        let courier = Namespace {
            prefix: "INBOX.".into(),
            delimiter: Some('.'),
        };
        assert_eq!(normalise_folder("INBOX.Sent", &courier, Some('.')), "Sent");
        assert_eq!(normalise_folder("INBOX.a.b", &courier, Some('.')), "a/b");
        assert_eq!(normalise_folder("INBOX", &courier, Some('.')), "INBOX");
        assert_eq!(
            normalise_folder("a/b", &Namespace::default(), Some('/')),
            "a/b"
        );
        assert_eq!(normalise_flag("\\SEEN").as_deref(), Some("\\Seen"));
        assert_eq!(normalise_flag("\\Recent"), None);
        assert_eq!(normalise_flag("$Forwarded").as_deref(), Some("$Forwarded"));
    }

    #[test]
    fn comparisons_name_the_difference() {
        let mut a = Account::default();
        let mut state = FolderState {
            uid_validity: Some(7),
            ..FolderState::default()
        };
        state.messages.insert(1, ["\\Seen".to_string()].into());
        state.messages.insert(2, BTreeSet::new());
        a.folders
            .insert("INBOX".into(), ("INBOX".into(), state.clone()));
        let mut b = Account::default();
        b.folders
            .insert("INBOX".into(), ("INBOX".into(), state.clone()));
        let uidls = vec!["u1".to_string(), "u2".to_string()];
        let (text, n) = report(&a, &b, Some((&uidls, &uidls)));
        assert_eq!(n, 0, "{text}");
        assert!(text.contains("INBOX: identical (UIDVALIDITY 7, 2 messages)"));

        let mut changed = state.clone();
        changed.messages.insert(2, ["\\Flagged".to_string()].into());
        changed.messages.insert(3, BTreeSet::new());
        changed.uid_validity = Some(8);
        b.folders.insert("INBOX".into(), ("INBOX".into(), changed));
        b.folders
            .insert("Extra".into(), ("Extra".into(), state.clone()));
        b.folders
            .insert("Sent".into(), ("Sent".into(), FolderState::default()));
        let other = vec!["u2".to_string(), "u3".to_string()];
        let (text, n) = report(&a, &b, Some((&uidls, &other)));
        assert_eq!(n, 6, "{text}");
        for want in [
            "UIDVALIDITY differs: old 7 new 8",
            "UID 2: flags differ: old () new (\\Flagged)",
            "UID 3: only on Coffre",
            "Extra: only on Coffre (2 messages)",
            "Sent: only on Coffre, empty (not a difference)",
            "UIDL u1: only on the old server",
            "UIDL u3: only on Coffre",
        ] {
            assert!(text.contains(want), "{want}: {text}");
        }
        let swapped = vec!["u2".to_string(), "u1".to_string()];
        assert_eq!(
            compare_uidls(&uidls, &swapped),
            vec!["same UIDLs in a different order"]
        );
    }
}
