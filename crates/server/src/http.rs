//! The minimal HTTP/1.1 both side endpoints speak (Prometheus metrics in
//! plain TCP, client auto-configuration over TLS): one request per
//! connection, a bounded head and body, a bounded number of requests at
//! once, each with a deadline. Nothing here reaches the mail protocols.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A request, as far as these endpoints care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    /// `GET`, `POST`, …
    pub method: String,
    /// The target's path, without the query.
    pub path: String,
    /// The target's query, without `?` (empty if none).
    pub query: String,
    /// The body (`Content-Length` octets at most).
    pub body: Vec<u8>,
}

/// Limits of one endpoint.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// Requests served at once; further connections wait to be accepted.
    pub concurrent: usize,
    /// Time for a whole exchange (TLS handshake included).
    pub deadline: Duration,
}

/// Accepts connections until `shutdown`, running `handle` on each within
/// `bounds`. Accept errors (e.g. out of file descriptors) pause briefly
/// instead of spinning.
pub(crate) async fn serve<F, Fut>(
    listener: TcpListener,
    bounds: Bounds,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    handle: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut + Send + 'static,
    Fut: Future<Output = std::io::Result<()>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(bounds.concurrent));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let (socket, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue; }
            },
        };
        let exchange = handle(socket, peer);
        tracker.spawn(async move {
            let _ = tokio::time::timeout(bounds.deadline, exchange).await;
            drop(permit);
        });
    }
}

/// Reads one request: `None` if the head or the announced body is larger
/// than `max_part`, or the peer closed before the head ended.
pub(crate) async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
    max_part: usize,
) -> std::io::Result<Option<Request>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > max_part {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let Some((mut request, content_length)) = parse_head(&buf[..head_end], max_part) else {
        return Ok(None);
    };
    request.body = buf[head_end + 4..].to_vec();
    while request.body.len() < content_length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        request.body.extend_from_slice(&chunk[..n]);
    }
    request.body.truncate(content_length);
    Ok(Some(request))
}

/// The request line and `Content-Length` of a head (without its blank
/// line); `None` if the announced body is over `max_part`.
fn parse_head(head: &[u8], max_part: usize) -> Option<(Request, usize)> {
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let (method, target) = (
        first.next().unwrap_or_default(),
        first.next().unwrap_or_default(),
    );
    let content_length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    if content_length > max_part {
        return None;
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Some((
        Request {
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            body: Vec::new(),
        },
        content_length,
    ))
}

/// A complete response with `Connection: close`. `no_store` adds
/// `Cache-Control: no-store` (answers that depend on the asker).
pub(crate) fn response(status: u16, content_type: &str, body: &[u8], no_store: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Error",
    };
    let cache = if no_store {
        "Cache-Control: no-store\r\n"
    } else {
        ""
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{cache}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8], max: usize) -> Option<Request> {
        let mut input = bytes;
        read_request(&mut input, max).await.unwrap()
    }

    #[tokio::test]
    async fn reads_head_query_and_body() {
        let r = read(
            b"POST /a/b?x=1&y=2 HTTP/1.1\r\nHost: h\r\ncontent-length: 5\r\n\r\nhello, and more",
            1024,
        )
        .await
        .unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/a/b");
        assert_eq!(r.query, "x=1&y=2");
        assert_eq!(r.body, b"hello");
    }

    #[tokio::test]
    async fn limits_and_truncated_input() {
        // Head without its end, body announced over the limit, head over it.
        assert_eq!(read(b"GET / HTTP/1.1\r\nHost: h\r\n", 1024).await, None);
        assert_eq!(
            read(b"POST / HTTP/1.1\r\nContent-Length: 2000\r\n\r\n", 1024).await,
            None
        );
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(5000));
        assert_eq!(read(long.as_bytes(), 1024).await, None);
        // A body shorter than announced is what arrived.
        let r = read(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", 1024)
            .await
            .unwrap();
        assert_eq!(r.body, b"abc");
        // Garbage is a request with a garbage method, answered by the caller.
        let r = read(b"\x00\xff\r\n\r\n", 1024).await.unwrap();
        assert_eq!(r.path, "");
    }

    #[test]
    fn responses_are_complete() {
        let r = String::from_utf8(response(404, "text/plain", b"no\n", true)).unwrap();
        assert_eq!(
            r,
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nCache-Control: no-store\r\nConnection: close\r\n\r\nno\n"
        );
        let r = String::from_utf8(response(200, "text/plain", b"", false)).unwrap();
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n") && !r.contains("Cache-Control"));
    }
}
