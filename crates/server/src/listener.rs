//! Listeners: the IMAPS/POP3S accept loops (TLS first, always) and the
//! refuse-only notices on the old plaintext ports.
//!
//! A connection permit is taken *before* `accept`, so at the cap the server
//! stops accepting instead of accepting and dropping (mini-redis' design).
//! Each connection runs in its own task, tracked for graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, info_span, warn};

use crate::connection::{CloseReason, DriveLimits, ProtocolSession, drive};
use crate::governance::PreAuthRegistry;
use crate::tls::{TlsState, version_name};

/// Which protocol a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// IMAP4rev1 over TLS (993).
    Imaps,
    /// POP3 over TLS (995).
    Pop3s,
}

impl Counters {
    /// The counters of one protocol.
    pub fn of(&self, protocol: Protocol) -> &ProtocolCounters {
        match protocol {
            Protocol::Imaps => &self.imaps,
            Protocol::Pop3s => &self.pop3s,
        }
    }
}

impl Protocol {
    /// Name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Imaps => "imaps",
            Protocol::Pop3s => "pop3s",
        }
    }
}

/// Per-protocol counters.
#[derive(Debug, Default)]
pub struct ProtocolCounters {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Connections open now.
    pub active: AtomicU64,
    /// Plaintext bytes read from clients (after TLS).
    pub bytes_in: AtomicU64,
    /// Plaintext bytes written to clients (before TLS).
    pub bytes_out: AtomicU64,
    /// Connections closed, by reason (indexed by [`CloseReason::index`]).
    pub closed: [AtomicU64; CloseReason::COUNT],
    /// Commands by name, with their processing time.
    pub commands: CommandStats,
}

/// Upper bounds (seconds) of the command-latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 10] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0];

/// Count and latency histogram of one command.
#[derive(Debug, Default, Clone)]
pub struct CommandHistogram {
    /// Observations per bucket of [`LATENCY_BUCKETS`] (not cumulative), then +Inf.
    pub buckets: [u64; LATENCY_BUCKETS.len() + 1],
    /// Sum of the observed seconds.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

/// Per-command statistics; one short lock per command handled.
#[derive(Debug, Default)]
pub struct CommandStats {
    by_name: std::sync::Mutex<std::collections::BTreeMap<&'static str, CommandHistogram>>,
}

impl CommandStats {
    /// Records one command and the time its handling took.
    pub fn observe(&self, name: &'static str, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        let mut map = self.by_name.lock().unwrap_or_else(|p| p.into_inner());
        let h = map.entry(name).or_default();
        h.buckets[bucket] += 1;
        h.sum += secs;
        h.count += 1;
    }

    /// A copy of the statistics, by command name.
    pub fn snapshot(&self) -> Vec<(&'static str, CommandHistogram)> {
        let map = self.by_name.lock().unwrap_or_else(|p| p.into_inner());
        map.iter().map(|(k, v)| (*k, v.clone())).collect()
    }
}

/// Counters shared by all listeners, exported by the metrics endpoint.
#[derive(Debug, Default)]
pub struct Counters {
    /// IMAPS.
    pub imaps: ProtocolCounters,
    /// POP3S.
    pub pop3s: ProtocolCounters,
    /// Connections accepted on TLS listeners.
    pub connections: AtomicU64,
    /// TLS handshakes that failed or timed out (plaintext, scanners…).
    pub handshake_failures: AtomicU64,
    /// Hits on the legacy plaintext IMAP notice.
    pub legacy_imap_hits: AtomicU64,
    /// Hits on the legacy plaintext POP3 notice.
    pub legacy_pop3_hits: AtomicU64,
}

/// What every connection task needs, shared.
pub struct Shared<F> {
    /// TLS configuration (reloadable).
    pub tls: Arc<TlsState>,
    /// Builds a session for a connection.
    pub factory: F,
    /// Server shutdown.
    pub shutdown: CancellationToken,
    /// Tracks connection tasks so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// Connection cap, all listeners together.
    pub permits: Arc<Semaphore>,
    /// TLS handshake deadline.
    pub handshake_timeout: Duration,
    /// How long a client may leave output unread.
    pub output_stall: Duration,
    /// Time from connect to login.
    pub prelogin_timeout: Duration,
    /// Unauthenticated connections per source.
    pub preauth: Arc<PreAuthRegistry>,
    /// Counters.
    pub counters: Arc<Counters>,
    /// Source of session ids.
    pub next_session_id: Arc<AtomicU64>,
}

/// Builds the protocol session for one connection.
pub trait SessionFactory: Send + Sync + 'static {
    /// The session type.
    type Session: ProtocolSession + 'static;
    /// A new session for a peer, after the TLS handshake.
    fn make(&self, peer: SocketAddr, session_id: u64, tls: String) -> Self::Session;
    /// Which protocol this is.
    fn protocol(&self) -> Protocol;
}

/// Accepts TLS connections until shutdown.
pub async fn serve_tls<F: SessionFactory>(listener: TcpListener, shared: Arc<Shared<F>>) {
    let protocol = shared.factory.protocol();
    let mut backoff = Duration::from_millis(10);
    loop {
        let permit = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            p = shared.permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let (socket, peer) = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => { backoff = Duration::from_millis(10); x }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(protocol = protocol.as_str(), error = %e, "accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
        };
        let session_id = shared.next_session_id.fetch_add(1, Ordering::Relaxed);
        shared.counters.connections.fetch_add(1, Ordering::Relaxed);
        shared
            .counters
            .of(protocol)
            .connections
            .fetch_add(1, Ordering::Relaxed);
        let shared2 = shared.clone();
        let span = info_span!("conn", proto = protocol.as_str(), %peer, session = session_id);
        // The connection runs in a task of its own, watched by a small
        // supervisor: a panic in one session ends that session only, and is
        // logged with its id.
        let inner = tokio::spawn(
            handle_tls_connection(socket, peer, session_id, shared2).instrument(span.clone()),
        );
        shared.tracker.spawn(
            async move {
                if let Err(e) = inner.await
                    && e.is_panic()
                {
                    tracing::error!("session panicked; connection closed, server continues");
                }
                drop(permit);
            }
            .instrument(span),
        );
    }
}

async fn handle_tls_connection<F: SessionFactory>(
    socket: TcpStream,
    peer: SocketAddr,
    session_id: u64,
    shared: Arc<Shared<F>>,
) {
    let started = Instant::now();
    let pc = shared.counters.of(shared.factory.protocol());
    pc.active.fetch_add(1, Ordering::Relaxed);
    let _active = ActiveGuard(pc);
    let prelogin_deadline = tokio::time::Instant::now() + shared.prelogin_timeout;
    let _ = socket.set_nodelay(true);
    let mut preauth = shared.preauth.register(peer.ip(), session_id);
    info!("connection opened");
    let handshake = tokio::select! {
        _ = shared.shutdown.cancelled() => return,
        _ = preauth.evicted.cancelled() => {
            info!("evicted during the TLS handshake for a newer connection from the same source");
            return;
        }
        r = tokio::time::timeout(shared.handshake_timeout, shared.tls.acceptor().accept(socket)) => r,
    };
    let mut stream = match handshake {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            shared
                .counters
                .handshake_failures
                .fetch_add(1, Ordering::Relaxed);
            info!(error = %e, "TLS handshake failed; closed");
            return;
        }
        Err(_) => {
            shared
                .counters
                .handshake_failures
                .fetch_add(1, Ordering::Relaxed);
            info!("TLS handshake timed out; closed");
            return;
        }
    };
    let tls = version_name(stream.get_ref().1.protocol_version());
    let kx = stream
        .get_ref()
        .1
        .negotiated_key_exchange_group()
        .map(|g| format!("{:?}", g.name()))
        .unwrap_or_default();
    info!(tls = %tls, kx = %kx, "TLS established");
    let mut session = shared.factory.make(peer, session_id, tls);
    let limits = DriveLimits {
        output_stall: shared.output_stall,
        prelogin_deadline,
        counters: pc,
    };
    let reason: CloseReason = drive(
        &mut session,
        &mut stream,
        &shared.shutdown,
        limits,
        &mut preauth,
    )
    .await;
    pc.closed[reason.index()].fetch_add(1, Ordering::Relaxed);
    info!(reason = ?reason, secs = started.elapsed().as_secs_f32(), "connection closed");
}

/// Decrements the active gauge when a connection task ends, however it ends.
struct ActiveGuard<'a>(&'a ProtocolCounters);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The one line a legacy plaintext listener writes.
pub fn notice_line(protocol: Protocol) -> &'static [u8] {
    match protocol {
        Protocol::Imaps => b"* BYE Plaintext IMAP is closed: use IMAPS on port 993 (SSL/TLS)\r\n",
        Protocol::Pop3s => b"-ERR Plaintext POP3 is closed: use POP3S on port 995 (SSL/TLS)\r\n",
    }
}

/// What a notice listener does besides writing its line.
#[derive(Clone)]
pub struct NoticeSettings {
    /// Which protocol's notice.
    pub protocol: Protocol,
    /// Where hits are recorded for `coffre legacy-report`, if anywhere.
    pub hit_log: Option<Arc<crate::legacy::HitLog>>,
    /// From the day after this date on, connections are closed without the
    /// notice (the cut-off: the old port is gone for good).
    pub refuse_after: Option<crate::legacy::Date>,
}

/// How long a notice connection waits for the client's first line after the
/// notice (clients that pipeline, or that ignore the greeting, send their
/// first command within this).
pub const NOTICE_READ_WINDOW: Duration = Duration::from_millis(1500);

/// Reads what the client sends within [`NOTICE_READ_WINDOW`], up to
/// [`crate::legacy::MAX_FIRST_LINE`] bytes or the first line end, whichever
/// comes first. Never answers it.
async fn read_first_line(socket: &mut TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let deadline = tokio::time::Instant::now() + NOTICE_READ_WINDOW;
    let mut buf = vec![0u8; crate::legacy::MAX_FIRST_LINE];
    let mut len = 0;
    while len < buf.len() && !buf[..len].contains(&b'\n') {
        match tokio::time::timeout_at(deadline, socket.read(&mut buf[len..])).await {
            Ok(Ok(n)) if n > 0 => len += n,
            _ => break,
        }
    }
    buf.truncate(len);
    buf
}

/// A refuse-only plaintext listener: on connect it writes one line and ends
/// its side of the connection; it then reads at most one short first line
/// (bounded in bytes and time), which is reduced to its command verb by
/// [`crate::legacy::client_line`] before it is logged or recorded — the
/// arguments of `LOGIN`, `USER`, `PASS`, `AUTH`… are never kept. Nothing is
/// ever answered.
pub async fn serve_notice(
    listener: TcpListener,
    settings: NoticeSettings,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    counters: Arc<Counters>,
) {
    let protocol = settings.protocol;
    // Notices are tiny, but a flood must still not make unbounded tasks.
    let permits = Arc::new(Semaphore::new(256));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let (mut socket, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "legacy notice accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let hits = match protocol {
            Protocol::Imaps => counters.legacy_imap_hits.fetch_add(1, Ordering::Relaxed),
            Protocol::Pop3s => counters.legacy_pop3_hits.fetch_add(1, Ordering::Relaxed),
        } + 1;
        let name = match protocol {
            Protocol::Imaps => "imap",
            Protocol::Pop3s => "pop3",
        };
        let cut_off = settings
            .refuse_after
            .is_some_and(|d| crate::legacy::Date::today() > d);
        if cut_off {
            info!(%peer, protocol = name, hits, "legacy plaintext connection closed (past the cut-off date)");
        } else {
            info!(%peer, protocol = name, hits, "legacy plaintext connection refused with notice");
        }
        let hit_log = settings.hit_log.clone();
        let cancelled = shutdown.clone();
        tracker.spawn(async move {
            let mut client_said = None;
            if !cut_off {
                let _ = tokio::time::timeout(Duration::from_secs(5), async {
                    socket.write_all(notice_line(protocol)).await?;
                    socket.shutdown().await
                })
                .await;
                let first = tokio::select! {
                    _ = cancelled.cancelled() => Vec::new(),
                    b = read_first_line(&mut socket) => b,
                };
                client_said = crate::legacy::client_line(&first);
                if let Some(said) = &client_said {
                    info!(%peer, protocol = name, client_said = %said, "legacy plaintext client's first line");
                }
            }
            drop(socket);
            if let Some(log) = hit_log {
                let ip = peer.ip();
                let written = tokio::task::spawn_blocking(move || {
                    log.record(name, ip, client_said.as_deref())
                })
                .await;
                if let Ok(Err(e)) = written {
                    warn!(error = %e, "cannot record the legacy hit");
                }
            }
            drop(permit);
        });
    }
}
