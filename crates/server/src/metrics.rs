//! Prometheus metrics: a plain-text endpoint (`GET /metrics`, text format
//! 0.0.4) on its own address, off by default (`[metrics] listen`). It serves
//! counters only; no request ever reaches the mail protocols, and the HTTP
//! handling is deliberately minimal and bounded (4 KiB request, 5 s, 16
//! requests at once, one request per connection).

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use account_auth::AuthCounters;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::connection::CloseReason;
use crate::http::{self, Bounds, Request};
use crate::listener::{Counters, Protocol};

/// What the endpoint reports.
#[derive(Clone)]
pub struct MetricsSource {
    /// Connection, byte and legacy-notice counters.
    pub counters: Arc<Counters>,
    /// Login results.
    pub auth: Arc<AuthCounters>,
}

impl MetricsSource {
    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let c = &self.counters;
        let protocols = [Protocol::Imaps, Protocol::Pop3s];
        let per_protocol = |f: &dyn Fn(Protocol) -> u64| {
            protocols
                .iter()
                .map(|p| (format!("{{protocol=\"{}\"}}", p.as_str()), f(*p)))
                .collect::<Vec<_>>()
        };
        family(
            &mut out,
            "coffre_connections_total",
            "counter",
            "TLS connections accepted.",
            per_protocol(&|p| c.of(p).connections.load(Ordering::Relaxed)),
        );
        family(
            &mut out,
            "coffre_connections_active",
            "gauge",
            "TLS connections open now.",
            per_protocol(&|p| c.of(p).active.load(Ordering::Relaxed)),
        );
        let mut closed = Vec::new();
        for p in protocols {
            for r in CloseReason::ALL {
                closed.push((
                    format!("{{protocol=\"{}\",reason=\"{}\"}}", p.as_str(), r.label()),
                    c.of(p).closed[r.index()].load(Ordering::Relaxed),
                ));
            }
        }
        family(
            &mut out,
            "coffre_connections_closed_total",
            "counter",
            "Connections closed, by reason.",
            closed,
        );
        family(
            &mut out,
            "coffre_received_bytes_total",
            "counter",
            "Bytes read from clients (inside TLS).",
            per_protocol(&|p| c.of(p).bytes_in.load(Ordering::Relaxed)),
        );
        family(
            &mut out,
            "coffre_sent_bytes_total",
            "counter",
            "Bytes written to clients (inside TLS).",
            per_protocol(&|p| c.of(p).bytes_out.load(Ordering::Relaxed)),
        );
        family(
            &mut out,
            "coffre_tls_handshake_failures_total",
            "counter",
            "TLS handshakes that failed or timed out (plaintext clients, scanners).",
            vec![(String::new(), c.handshake_failures.load(Ordering::Relaxed))],
        );
        family(
            &mut out,
            "coffre_legacy_notice_total",
            "counter",
            "Connections to the plaintext notice ports (143/110), told to use TLS.",
            vec![
                (
                    "{protocol=\"imap\"}".into(),
                    c.legacy_imap_hits.load(Ordering::Relaxed),
                ),
                (
                    "{protocol=\"pop3\"}".into(),
                    c.legacy_pop3_hits.load(Ordering::Relaxed),
                ),
            ],
        );
        let mut commands = Vec::new();
        let mut durations = Vec::new();
        for p in protocols {
            for (name, h) in c.of(p).commands.snapshot() {
                let labels = format!("protocol=\"{}\",command=\"{name}\"", p.as_str());
                commands.push((format!("{{{labels}}}"), h.count));
                let mut cumulative = 0;
                for (i, le) in crate::listener::LATENCY_BUCKETS.iter().enumerate() {
                    cumulative += h.buckets[i];
                    durations.push((
                        format!("_bucket{{{labels},le=\"{le}\"}}"),
                        cumulative.to_string(),
                    ));
                }
                durations.push((
                    format!("_bucket{{{labels},le=\"+Inf\"}}"),
                    h.count.to_string(),
                ));
                durations.push((format!("_sum{{{labels}}}"), format!("{:.6}", h.sum)));
                durations.push((format!("_count{{{labels}}}"), h.count.to_string()));
            }
        }
        family(
            &mut out,
            "coffre_commands_total",
            "counter",
            "Commands handled, by name.",
            commands,
        );
        let _ = writeln!(
            out,
            "# HELP coffre_command_duration_seconds Time to handle a command (to its first output for streamed POP3 RETR/TOP)."
        );
        let _ = writeln!(out, "# TYPE coffre_command_duration_seconds histogram");
        for (suffix, v) in durations {
            let _ = writeln!(out, "coffre_command_duration_seconds{suffix} {v}");
        }
        let a = self.auth.snapshot();
        family(
            &mut out,
            "coffre_logins_total",
            "counter",
            "Login attempts by result (throttled: refused without checking the password).",
            vec![
                ("{result=\"success\"}".into(), a.success),
                ("{result=\"failed\"}".into(), a.failed),
                ("{result=\"malformed\"}".into(), a.malformed),
                ("{result=\"unavailable\"}".into(), a.unavailable),
                ("{result=\"throttled\"}".into(), a.throttled),
            ],
        );
        out
    }
}

/// One metric family: HELP, TYPE and its samples.
fn family<V: std::fmt::Display>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    rows: Vec<(String, V)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, v) in rows {
        let _ = writeln!(out, "{name}{labels} {v}");
    }
}

/// Largest request read.
const MAX_REQUEST: usize = 4096;

/// Serves `GET /metrics` until shutdown.
pub async fn serve_metrics(
    listener: TcpListener,
    source: MetricsSource,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let bounds = Bounds {
        concurrent: 16,
        deadline: Duration::from_secs(5),
    };
    http::serve(listener, bounds, shutdown, tracker, move |mut socket, _| {
        let source = source.clone();
        async move {
            let response = match http::read_request(&mut socket, MAX_REQUEST).await? {
                Some(request) => respond(&request, &source),
                None => http::response(400, "text/plain", b"bad request\n", false),
            };
            socket.write_all(&response).await?;
            socket.shutdown().await
        }
    })
    .await;
}

fn respond(request: &Request, source: &MetricsSource) -> Vec<u8> {
    match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/metrics") => http::response(
            200,
            "text/plain; version=0.0.4",
            source.render().as_bytes(),
            false,
        ),
        ("GET", _) => http::response(404, "text/plain", b"not found; try /metrics\n", false),
        _ => http::response(405, "text/plain", b"GET only\n", false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> MetricsSource {
        let counters = Arc::new(Counters::default());
        counters.imaps.connections.fetch_add(3, Ordering::Relaxed);
        counters.legacy_pop3_hits.fetch_add(2, Ordering::Relaxed);
        counters.pop3s.closed[CloseReason::Evicted.index()].fetch_add(1, Ordering::Relaxed);
        counters
            .pop3s
            .commands
            .observe("RETR", std::time::Duration::from_millis(3));
        counters
            .pop3s
            .commands
            .observe("RETR", std::time::Duration::from_secs(9));
        MetricsSource {
            counters,
            auth: Arc::new(AuthCounters::new()),
        }
    }

    #[test]
    fn renders_prometheus_text() {
        let text = source().render();
        assert!(text.contains("# TYPE coffre_connections_total counter\n"));
        assert!(text.contains("coffre_connections_total{protocol=\"imaps\"} 3\n"));
        assert!(text.contains("coffre_connections_total{protocol=\"pop3s\"} 0\n"));
        assert!(text.contains("coffre_legacy_notice_total{protocol=\"pop3\"} 2\n"));
        assert!(text.contains(
            "coffre_connections_closed_total{protocol=\"pop3s\",reason=\"evicted\"} 1\n"
        ));
        assert!(text.contains("coffre_logins_total{result=\"success\"} 0\n"));
        assert!(text.contains("coffre_commands_total{protocol=\"pop3s\",command=\"RETR\"} 2\n"));
        // Cumulative buckets: the 3 ms one from le=0.005 on, the 9 s one only in +Inf.
        assert!(text.contains("coffre_command_duration_seconds_bucket{protocol=\"pop3s\",command=\"RETR\",le=\"0.0025\"} 0\n"));
        assert!(text.contains("coffre_command_duration_seconds_bucket{protocol=\"pop3s\",command=\"RETR\",le=\"0.005\"} 1\n"));
        assert!(text.contains("coffre_command_duration_seconds_bucket{protocol=\"pop3s\",command=\"RETR\",le=\"5\"} 1\n"));
        assert!(text.contains("coffre_command_duration_seconds_bucket{protocol=\"pop3s\",command=\"RETR\",le=\"+Inf\"} 2\n"));
        assert!(text.contains(
            "coffre_command_duration_seconds_count{protocol=\"pop3s\",command=\"RETR\"} 2\n"
        ));
        // Every sample line is `name{labels} value` or `name value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            value.parse::<f64>().unwrap();
        }
    }

    #[test]
    fn only_get_metrics_is_served() {
        let s = source();
        let req = |method: &str, path: &str| Request {
            method: method.into(),
            path: path.into(),
            query: String::new(),
            body: Vec::new(),
        };
        let ok = String::from_utf8(respond(&req("GET", "/metrics"), &s)).unwrap();
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(ok.contains("Content-Type: text/plain; version=0.0.4\r\n"));
        let nf = String::from_utf8(respond(&req("GET", "/other"), &s)).unwrap();
        assert!(nf.starts_with("HTTP/1.1 404"));
        let post = String::from_utf8(respond(&req("POST", "/metrics"), &s)).unwrap();
        assert!(post.starts_with("HTTP/1.1 405"));
        let junk = String::from_utf8(respond(&req("\u{0}\u{fffd}", ""), &s)).unwrap();
        assert!(junk.starts_with("HTTP/1.1 405"));
    }
}
