//! The per-connection driver: the only place where a session meets a socket.
//!
//! ```text
//!  socket ──read──▶ session.enqueue_input ──▶ session.process ──▶ out ──write──▶ socket
//! ```
//!
//! One command runs at a time: the next input is read only after the previous
//! responses were written, so a client that stops reading also stops being
//! read (back-pressure). Writes have a stall timeout; reads have the
//! session's idle timeout (short before login, RFC minima after). On shutdown
//! the command in progress finishes, then the session says goodbye.

use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::compress::Deflate;
use crate::governance::PreAuthGuard;
use crate::listener::ProtocolCounters;

/// What the driver does after `process`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing complete is buffered: read more input.
    NeedInput,
    /// A command was handled; write the output, then process again.
    Continue,
    /// The session is over: write the output and close.
    Close,
}

/// What the driver needs of a protocol session (IMAP or POP3).
pub trait ProtocolSession: Send {
    /// The greeting, written right after the TLS handshake.
    fn greeting(&mut self, out: &mut Vec<u8>);
    /// Bytes read from the client.
    fn enqueue_input(&mut self, bytes: &[u8]);
    /// Handles at most one buffered command.
    fn process(&mut self, out: &mut Vec<u8>) -> impl Future<Output = Next> + Send;
    /// How long the client may stay silent in the current state.
    fn idle_timeout(&self) -> Duration;
    /// Whether the client has logged in.
    fn authenticated(&self) -> bool;
    /// The goodbye on server shutdown.
    fn shutdown(&mut self, out: &mut Vec<u8>);
    /// Whether the session waits for mailbox changes (IMAP IDLE): the driver
    /// then calls [`ProtocolSession::wakeup`] whenever its
    /// [`ProtocolSession::idle_watcher`] fires, or, without a watcher, every
    /// [`ProtocolSession::wakeup_interval`], while it also waits for input.
    fn idling(&self) -> bool {
        false
    }
    /// How often to wake an idling session that has no watcher.
    fn wakeup_interval(&self) -> Duration {
        Duration::from_secs(1)
    }
    /// A watcher that resolves as soon as the idling session's mailbox
    /// changes (same-process changes at once; others within the store's
    /// polling interval); `None` makes the driver wake the session
    /// periodically instead.
    fn idle_watcher(&self) -> Option<mail_store::ChangeWatcher> {
        None
    }
    /// After a `process` call: `Some(bytes already received after the
    /// command)` once the session has accepted COMPRESS=DEFLATE; from then on
    /// both directions are compressed.
    fn take_compression_start(&mut self) -> Option<Vec<u8>> {
        None
    }
    /// The goodbye when the client was silent too long (IMAP: `* BYE
    /// Autologout`); POP3 closes without a word (RFC 1939 §3).
    fn timed_out(&mut self, _out: &mut Vec<u8>) {}
    /// The name of the command the last `process` call handled, once (for
    /// per-command metrics).
    fn take_command_name(&mut self) -> Option<&'static str> {
        None
    }
    /// Lets an idling session look for changes and report them.
    fn wakeup(&mut self, _out: &mut Vec<u8>) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// How a connection ended, for the close log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The session ended normally (LOGOUT, QUIT, too many failures).
    SessionEnd,
    /// The client closed the connection.
    ClientClosed,
    /// The client was silent too long.
    IdleTimeout,
    /// The client stopped reading our output.
    OutputStall,
    /// A socket error.
    SocketError,
    /// The server is shutting down.
    Shutdown,
    /// Not logged in within the pre-login time limit.
    PreLoginTimeout,
    /// Closed to make room for a newer connection from the same source.
    Evicted,
}

impl CloseReason {
    /// Number of reasons (for counter arrays).
    pub const COUNT: usize = 8;
    /// All reasons, in [`CloseReason::index`] order.
    pub const ALL: [CloseReason; Self::COUNT] = [
        CloseReason::SessionEnd,
        CloseReason::ClientClosed,
        CloseReason::IdleTimeout,
        CloseReason::OutputStall,
        CloseReason::SocketError,
        CloseReason::Shutdown,
        CloseReason::PreLoginTimeout,
        CloseReason::Evicted,
    ];

    /// Position in [`CloseReason::ALL`].
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::SessionEnd => "session_end",
            CloseReason::ClientClosed => "client_closed",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::OutputStall => "output_stall",
            CloseReason::SocketError => "socket_error",
            CloseReason::Shutdown => "shutdown",
            CloseReason::PreLoginTimeout => "prelogin_timeout",
            CloseReason::Evicted => "evicted",
        }
    }
}

/// Per-connection limits the driver enforces.
#[derive(Debug, Clone, Copy)]
pub struct DriveLimits<'a> {
    /// How long a client may leave output unread.
    pub output_stall: Duration,
    /// When the client must have logged in by (counted from connect).
    pub prelogin_deadline: tokio::time::Instant,
    /// Where to count bytes.
    pub counters: &'a ProtocolCounters,
}

/// Largest read buffer: one TLS record's worth of plaintext. A connection
/// grows its buffer to this only while reads fill it (an APPEND upload).
const READ_CHUNK: usize = 16 * 1024;
/// Read buffer of a connection that sends little (most of them, and every
/// idle one): rustls hands out a record's plaintext over several reads.
const READ_SMALL: usize = 2 * 1024;
/// Output buffer capacity kept while a connection waits for input (most
/// answers fit); a larger one (after a FETCH) is given back, so idle
/// sessions stay small (issue #9).
const OUT_KEEP: usize = 1024;

/// Runs a session over an established (TLS) stream until it ends.
pub async fn drive<S, T>(
    session: &mut S,
    stream: &mut T,
    shutdown: &CancellationToken,
    limits: DriveLimits<'_>,
    preauth: &mut PreAuthGuard,
) -> CloseReason
where
    S: ProtocolSession,
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    let output_stall = limits.output_stall;
    // COMPRESS=DEFLATE, once the session turns it on.
    let mut deflate: Option<Deflate> = None;
    let mut out = Vec::with_capacity(OUT_KEEP);
    session.greeting(&mut out);
    if write_out(
        stream,
        &mut out,
        output_stall,
        limits.counters,
        deflate.as_mut(),
    )
    .await
    .is_err()
    {
        return CloseReason::SocketError;
    }
    let mut buf = vec![0u8; READ_SMALL];
    loop {
        // Handle everything already buffered, one command at a time, writing
        // each command's output before the next is looked at.
        loop {
            let started = tokio::time::Instant::now();
            // Boxed: a command's future (a FETCH, a SEARCH) can be large, and
            // inline it would stay part of every connection's task, idle or
            // not, for the connection's whole life.
            let next = Box::pin(session.process(&mut out)).await;
            if let Some(name) = session.take_command_name() {
                limits.counters.commands.observe(name, started.elapsed());
            }
            if let Err(reason) = write_out(
                stream,
                &mut out,
                output_stall,
                limits.counters,
                deflate.as_mut(),
            )
            .await
            {
                return reason;
            }
            if preauth.is_registered() && session.authenticated() {
                preauth.release();
            }
            if let Some(rest) = session.take_compression_start() {
                let mut d = Deflate::new();
                d.push_compressed(&rest);
                deflate = Some(d);
            }
            match next {
                Next::NeedInput => break,
                Next::Continue => continue,
                Next::Close => {
                    let _ = stream.shutdown().await;
                    return CloseReason::SessionEnd;
                }
            }
        }
        // Compressed input already received is inflated piece by piece and
        // handed to the session before anything more is read.
        if let Some(d) = deflate.as_mut()
            && d.has_pending()
        {
            let before = d.pending_len();
            match d.inflate_chunk() {
                Err(_) => {
                    let _ = stream.shutdown().await;
                    return CloseReason::SocketError;
                }
                Ok(plain) => {
                    let stalled = d.stalled(&plain, before);
                    if !plain.is_empty() {
                        session.enqueue_input(&plain);
                    }
                    if !stalled {
                        continue;
                    }
                }
            }
        }
        // While the session idles, wake it when its mailbox changes so it
        // can report new mail; the idle deadline is not reset by these
        // wake-ups.
        let mut idle_deadline = tokio::time::Instant::now() + session.idle_timeout();
        let prelogin = !session.authenticated();
        if prelogin {
            idle_deadline = idle_deadline.min(limits.prelogin_deadline);
        }
        let mut watcher = None;
        let read = loop {
            // Waiting for the client: keep only small buffers meanwhile
            // (also after what a wake-up wrote, which may have been long).
            if out.capacity() > OUT_KEEP {
                out.shrink_to(OUT_KEEP);
            }
            // An idling session with a watcher (the Maildir store's:
            // in-process signal, inotify, and its own stamp polling) is
            // woken by it alone; the periodic wake-up is for sessions whose
            // store offers none. (With 10,000 idle sessions it meant 10,000
            // mailbox syncs a second.)
            let wake = if session.idling() {
                if watcher.is_none() {
                    watcher = session.idle_watcher();
                }
                watcher.is_none().then(|| session.wakeup_interval())
            } else {
                watcher = None;
                None
            };
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    session.shutdown(&mut out);
                    let _ = write_out(stream, &mut out, output_stall, limits.counters, deflate.as_mut()).await;
                    let _ = stream.shutdown().await;
                    return CloseReason::Shutdown;
                }
                _ = preauth.evicted.cancelled(), if preauth.is_registered() => {
                    let _ = stream.shutdown().await;
                    return CloseReason::Evicted;
                }
                r = tokio::time::timeout_at(idle_deadline, stream.read(&mut buf)) => break r,
                _ = changed_or_never(watcher.as_mut()) => {
                    Box::pin(session.wakeup(&mut out)).await;
                    if let Err(reason) = write_out(stream, &mut out, output_stall, limits.counters, deflate.as_mut()).await {
                        return reason;
                    }
                }
                _ = sleep_or_never(wake) => {
                    Box::pin(session.wakeup(&mut out)).await;
                    if let Err(reason) = write_out(stream, &mut out, output_stall, limits.counters, deflate.as_mut()).await {
                        return reason;
                    }
                }
            }
        };
        match read {
            Err(_elapsed) => {
                session.timed_out(&mut out);
                let _ = write_out(
                    stream,
                    &mut out,
                    output_stall,
                    limits.counters,
                    deflate.as_mut(),
                )
                .await;
                let _ = stream.shutdown().await;
                return if prelogin && tokio::time::Instant::now() >= limits.prelogin_deadline {
                    CloseReason::PreLoginTimeout
                } else {
                    CloseReason::IdleTimeout
                };
            }
            Ok(Ok(0)) => return CloseReason::ClientClosed,
            Ok(Ok(n)) => {
                limits
                    .counters
                    .bytes_in
                    .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                match deflate.as_mut() {
                    Some(d) => d.push_compressed(&buf[..n]),
                    None => session.enqueue_input(&buf[..n]),
                }
                buf = resize_read_buffer(buf, n);
            }
            Ok(Err(_)) => return CloseReason::SocketError,
        }
    }
}

/// The read buffer for the next read after one of `n` bytes: grown to
/// [`READ_CHUNK`] while reads fill it (bulk input), back to [`READ_SMALL`]
/// once one does not (the client waits for an answer, or idles).
fn resize_read_buffer(buf: Vec<u8>, n: usize) -> Vec<u8> {
    if n == buf.len() && buf.len() < READ_CHUNK {
        vec![0u8; READ_CHUNK]
    } else if n < READ_SMALL && buf.len() > READ_SMALL {
        vec![0u8; READ_SMALL]
    } else {
        buf
    }
}

async fn changed_or_never(w: Option<&mut mail_store::ChangeWatcher>) {
    match w {
        Some(w) => w.changed().await,
        None => std::future::pending().await,
    }
}

async fn sleep_or_never(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

async fn write_out<T>(
    stream: &mut T,
    out: &mut Vec<u8>,
    stall: Duration,
    counters: &ProtocolCounters,
    deflate: Option<&mut Deflate>,
) -> Result<(), CloseReason>
where
    T: AsyncWrite + Unpin,
{
    if out.is_empty() {
        return Ok(());
    }
    counters
        .bytes_out
        .fetch_add(out.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let compressed = deflate.map(|d| d.compress(out));
    let wire: &[u8] = compressed.as_deref().unwrap_or(out);
    let result = tokio::time::timeout(stall, async {
        stream.write_all(wire).await?;
        stream.flush().await
    })
    .await;
    // The capacity stays while the session goes on with the same command
    // (the next piece of a long FETCH reuses it instead of growing a fresh
    // buffer page by page); it is given back before the connection waits
    // for the client (`OUT_KEEP`).
    out.clear();
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(CloseReason::SocketError),
        Err(_) => Err(CloseReason::OutputStall),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_buffer_grows_for_bulk_input_and_shrinks_when_it_stops() {
        let buf = vec![0u8; READ_SMALL];
        // A short read keeps the small buffer.
        let buf = resize_read_buffer(buf, 10);
        assert_eq!(buf.len(), READ_SMALL);
        // A full one grows it to the largest size, and no further.
        let buf = resize_read_buffer(buf, READ_SMALL);
        assert_eq!(buf.len(), READ_CHUNK);
        let buf = resize_read_buffer(buf, READ_CHUNK);
        assert_eq!(buf.len(), READ_CHUNK);
        // Partly filled but still bulk: kept.
        let buf = resize_read_buffer(buf, READ_CHUNK / 2);
        assert_eq!(buf.len(), READ_CHUNK);
        // A command-sized read: back to small.
        let buf = resize_read_buffer(buf, 40);
        assert_eq!(buf.len(), READ_SMALL);
        assert!(buf.capacity() < READ_CHUNK);
    }
}
