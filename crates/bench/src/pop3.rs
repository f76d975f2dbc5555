//! A minimal POP3 client (RFC 1939) over implicit TLS: USER/PASS, STAT,
//! UIDL, RETR with dot-unstuffing counted, QUIT. Every read is bounded.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::tls::Endpoint;

/// Longest line accepted (RFC 1939 allows 512; message lines may be longer).
pub const MAX_LINE: u64 = 1024 * 1024;
/// Most lines in one multi-line response.
pub const MAX_LINES: usize = 10_000_000;

pub struct Pop3Client {
    stream: BufReader<TlsStream<TcpStream>>,
    timeout: Duration,
}

impl Pop3Client {
    pub async fn connect(endpoint: &Endpoint, timeout: Duration) -> anyhow::Result<Self> {
        let tls = endpoint.connect(timeout).await?;
        let mut c = Self {
            stream: BufReader::new(tls),
            timeout,
        };
        let greeting = c.read_line().await?;
        if !greeting.starts_with(b"+OK") {
            anyhow::bail!("unexpected POP3 greeting");
        }
        Ok(c)
    }

    async fn read_line(&mut self) -> anyhow::Result<Vec<u8>> {
        let mut buf = Vec::new();
        let n = tokio::time::timeout(
            self.timeout,
            (&mut self.stream)
                .take(MAX_LINE)
                .read_until(b'\n', &mut buf),
        )
        .await
        .map_err(|_| anyhow::anyhow!("timed out waiting for a POP3 line"))??;
        if n == 0 {
            anyhow::bail!("server closed the connection");
        }
        if buf.last() != Some(&b'\n') {
            anyhow::bail!("POP3 line longer than {MAX_LINE} bytes");
        }
        Ok(buf)
    }

    /// Sends a command and returns the status line, which must be `+OK`.
    pub async fn command(&mut self, cmd: &str) -> anyhow::Result<String> {
        let s = self.stream.get_mut();
        tokio::time::timeout(self.timeout, async {
            s.write_all(cmd.as_bytes()).await?;
            s.write_all(b"\r\n").await?;
            s.flush().await
        })
        .await
        .map_err(|_| anyhow::anyhow!("timed out writing"))??;
        let line = self.read_line().await?;
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        if !text.starts_with("+OK") {
            let verb = cmd.split(' ').next().unwrap_or("");
            anyhow::bail!("{verb} failed: {text}");
        }
        Ok(text)
    }

    /// Reads a multi-line body up to the lone `.`; returns (lines, unstuffed bytes).
    pub async fn read_multiline(&mut self) -> anyhow::Result<(Vec<Vec<u8>>, u64, usize)> {
        let mut keep = Vec::new();
        let mut bytes = 0u64;
        let mut count = 0usize;
        loop {
            let line = self.read_line().await?;
            if line == b".\r\n" || line == b".\n" {
                return Ok((keep, bytes, count));
            }
            count += 1;
            if count > MAX_LINES {
                anyhow::bail!("multi-line response longer than {MAX_LINES} lines");
            }
            let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
            bytes += unstuffed.len() as u64;
            if keep.len() < 100_000 && unstuffed.len() < 1024 {
                keep.push(unstuffed.to_vec());
            }
        }
    }

    pub async fn login(&mut self, user: &str, password: &str) -> anyhow::Result<()> {
        self.command(&format!("USER {user}")).await?;
        self.command(&format!("PASS {password}")).await?;
        Ok(())
    }

    /// STAT: (count, octets).
    pub async fn stat(&mut self) -> anyhow::Result<(u64, u64)> {
        let line = self.command("STAT").await?;
        let mut parts = line.split_whitespace().skip(1);
        let n = parts.next().and_then(|s| s.parse().ok());
        let size = parts.next().and_then(|s| s.parse().ok());
        match (n, size) {
            (Some(n), Some(size)) => Ok((n, size)),
            _ => anyhow::bail!("malformed STAT: {line}"),
        }
    }
}
