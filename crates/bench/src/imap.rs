//! A minimal IMAP4rev1/rev2 client (RFC 3501 / RFC 9051) for load tests:
//! tagged commands, untagged lines, literals counted (not kept) and bounded.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::tls::Endpoint;

/// Longest response line accepted (without literals).
pub const MAX_LINE: u64 = 1024 * 1024;
/// Largest literal accepted.
pub const MAX_LITERAL: u64 = 256 * 1024 * 1024;
/// Most untagged lines kept for one response.
pub const MAX_UNTAGGED: usize = 1_000_000;

/// The outcome of one tagged command.
#[derive(Debug, Default)]
pub struct Response {
    /// Untagged/continuation lines, literal bodies replaced by their size.
    pub untagged: Vec<String>,
    /// The tagged status line.
    pub status: String,
    /// Total bytes of literals received.
    pub literal_bytes: u64,
    /// Number of literals received.
    pub literals: u64,
}

impl Response {
    pub fn is_ok(&self, tag: &str) -> bool {
        self.status
            .strip_prefix(tag)
            .is_some_and(|r| r.trim_start().to_ascii_uppercase().starts_with("OK"))
    }
}

/// Quotes an IMAP string (RFC 9051 §4.3 quoted).
pub fn quote(s: &str) -> String {
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

/// Parses a trailing `{N}` or `{N+}` literal announcement.
pub fn literal_len(line: &str) -> Option<u64> {
    let body = line.strip_suffix('}')?;
    let open = body.rfind('{')?;
    body[open + 1..].trim_end_matches('+').parse().ok()
}

/// One IMAP connection.
pub struct ImapClient {
    stream: BufReader<TlsStream<TcpStream>>,
    next_tag: u64,
    timeout: Duration,
}

impl ImapClient {
    /// Connects, reads the greeting and checks it is `* OK`.
    pub async fn connect(endpoint: &Endpoint, timeout: Duration) -> anyhow::Result<Self> {
        let tls = endpoint.connect(timeout).await?;
        let mut client = Self {
            stream: BufReader::new(tls),
            next_tag: 0,
            timeout,
        };
        let greeting = client.read_line().await?;
        if !greeting.starts_with("* OK") {
            anyhow::bail!("unexpected greeting: {greeting}");
        }
        Ok(client)
    }

    fn tag(&mut self) -> String {
        self.next_tag += 1;
        format!("b{}", self.next_tag)
    }

    /// Reads one line (CRLF stripped), bounded in length and time.
    pub async fn read_line(&mut self) -> anyhow::Result<String> {
        self.read_line_within(self.timeout).await
    }

    pub async fn read_line_within(&mut self, limit: Duration) -> anyhow::Result<String> {
        let mut buf = Vec::new();
        let n = tokio::time::timeout(
            limit,
            (&mut self.stream)
                .take(MAX_LINE)
                .read_until(b'\n', &mut buf),
        )
        .await
        .map_err(|_| anyhow::anyhow!("timed out waiting for a response line"))??;
        if n == 0 {
            anyhow::bail!("server closed the connection");
        }
        if buf.last() != Some(&b'\n') {
            anyhow::bail!("response line longer than {MAX_LINE} bytes");
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    async fn skip_literal(&mut self, len: u64) -> anyhow::Result<()> {
        if len > MAX_LITERAL {
            anyhow::bail!("literal of {len} bytes exceeds limit {MAX_LITERAL}");
        }
        let copied = tokio::time::timeout(
            self.timeout,
            tokio::io::copy(&mut (&mut self.stream).take(len), &mut tokio::io::sink()),
        )
        .await
        .map_err(|_| anyhow::anyhow!("timed out reading a literal"))??;
        if copied != len {
            anyhow::bail!("connection closed inside a literal");
        }
        Ok(())
    }

    /// Reads lines until the tagged status for `tag`.
    pub async fn read_response(&mut self, tag: &str) -> anyhow::Result<Response> {
        let mut resp = Response::default();
        let prefix = format!("{tag} ");
        loop {
            let mut line = self.read_line().await?;
            if line.starts_with(&prefix) {
                resp.status = line;
                return Ok(resp);
            }
            // Follow literals: the line continues after the literal data.
            while let Some(len) = literal_len(&line) {
                self.skip_literal(len).await?;
                resp.literal_bytes += len;
                resp.literals += 1;
                let rest = self.read_line().await?;
                line.push_str(&format!("<{len}>"));
                line.push_str(&rest);
            }
            if resp.untagged.len() >= MAX_UNTAGGED {
                anyhow::bail!("more than {MAX_UNTAGGED} untagged responses");
            }
            resp.untagged.push(line);
        }
    }

    pub async fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let s = self.stream.get_mut();
        tokio::time::timeout(self.timeout, async {
            s.write_all(bytes).await?;
            s.flush().await
        })
        .await
        .map_err(|_| anyhow::anyhow!("timed out writing"))??;
        Ok(())
    }

    /// Sends `<tag> <command>` and returns the full response.
    pub async fn command(&mut self, command: &str) -> anyhow::Result<(String, Response)> {
        let tag = self.tag();
        self.write(format!("{tag} {command}\r\n").as_bytes())
            .await?;
        let resp = self.read_response(&tag).await?;
        Ok((tag, resp))
    }

    /// Sends a command that must complete with OK.
    pub async fn command_ok(&mut self, command: &str) -> anyhow::Result<Response> {
        let (tag, resp) = self.command(command).await?;
        if !resp.is_ok(&tag) {
            let verb = command.split(' ').next().unwrap_or("");
            anyhow::bail!("{verb} failed: {}", resp.status);
        }
        Ok(resp)
    }

    pub async fn login(&mut self, user: &str, password: &str) -> anyhow::Result<()> {
        self.command_ok(&format!("LOGIN {} {}", quote(user), quote(password)))
            .await
            .map(|_| ())
    }

    /// SELECT a mailbox; returns the EXISTS count.
    pub async fn select(&mut self, mailbox: &str) -> anyhow::Result<u64> {
        let resp = self
            .command_ok(&format!("SELECT {}", quote(mailbox)))
            .await?;
        exists_in(&resp.untagged).ok_or_else(|| anyhow::anyhow!("SELECT returned no EXISTS"))
    }

    /// APPEND with a synchronizing literal; returns the APPENDUID uid if given.
    pub async fn append(
        &mut self,
        mailbox: &str,
        flags: &str,
        message: &[u8],
    ) -> anyhow::Result<Option<u64>> {
        let tag = self.tag();
        self.write(
            format!(
                "{tag} APPEND {} ({flags}) {{{}}}\r\n",
                quote(mailbox),
                message.len()
            )
            .as_bytes(),
        )
        .await?;
        let cont = self.read_line().await?;
        if !cont.starts_with('+') {
            anyhow::bail!("APPEND not continued: {cont}");
        }
        let mut body = message.to_vec();
        body.extend_from_slice(b"\r\n");
        self.write(&body).await?;
        let resp = self.read_response(&tag).await?;
        if !resp.is_ok(&tag) {
            anyhow::bail!("APPEND failed: {}", resp.status);
        }
        Ok(appenduid(&resp.status))
    }

    /// Starts IDLE and waits for the continuation.
    pub async fn idle_start(&mut self) -> anyhow::Result<String> {
        let tag = self.tag();
        self.write(format!("{tag} IDLE\r\n").as_bytes()).await?;
        let cont = self.read_line().await?;
        if !cont.starts_with('+') {
            anyhow::bail!("IDLE not accepted: {cont}");
        }
        Ok(tag)
    }

    /// Ends IDLE with DONE and checks the tagged OK.
    pub async fn idle_done(&mut self, tag: &str) -> anyhow::Result<Response> {
        self.write(b"DONE\r\n").await?;
        let resp = self.read_response(tag).await?;
        if !resp.is_ok(tag) {
            anyhow::bail!("IDLE failed: {}", resp.status);
        }
        Ok(resp)
    }

    pub async fn logout(&mut self) -> anyhow::Result<()> {
        let (tag, resp) = self.command("LOGOUT").await?;
        if !resp.is_ok(&tag) {
            anyhow::bail!("LOGOUT failed: {}", resp.status);
        }
        if !resp.untagged.iter().any(|l| l.starts_with("* BYE")) {
            anyhow::bail!("LOGOUT without BYE");
        }
        Ok(())
    }
}

/// The count of the last `* N EXISTS` line.
pub fn exists_in(lines: &[String]) -> Option<u64> {
    lines.iter().rev().find_map(|l| parse_exists(l))
}

/// Parses `* N EXISTS`.
pub fn parse_exists(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("* ")?;
    let (n, word) = rest.split_once(' ')?;
    if word.eq_ignore_ascii_case("EXISTS") {
        n.parse().ok()
    } else {
        None
    }
}

/// The UID in an `[APPENDUID validity uid]` response code (RFC 4315).
pub fn appenduid(status: &str) -> Option<u64> {
    let upper = status.to_ascii_uppercase();
    let start = upper.find("[APPENDUID ")? + "[APPENDUID ".len();
    let rest = &status[start..];
    let end = rest.find(']')?;
    rest[..end].split(' ').nth(1)?.parse().ok()
}
