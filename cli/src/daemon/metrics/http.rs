//! The metrics' HTTP side: `GET /metrics` and nothing else.
//!
//! Hand-written rather than hyper: a scrape is one request on a fresh
//! connection, so the whole server is "read one head, write one answer,
//! close", and written out it is short enough to check line by line for
//! what matters here, the limits on a hostile client. (hyper would bring
//! keep-alive, pipelining and bodies we do not want, and two more crates.)
//!
//! Every client is taken as hostile:
//! - the request head is capped at [`MAX_HEAD`] bytes (431 past it);
//! - it must arrive whole within [`HEAD_TIMEOUT`], however slowly it
//!   trickles (408 and close), and the answer be taken within
//!   [`WRITE_TIMEOUT`] (close);
//! - each connection is its own task, so a slow one holds up no other, and
//!   at most [`MAX_CONNECTIONS`] are served at once (past that a
//!   connection gets a 503 if its socket takes it at once, and is closed);
//! - anything that is not a well-formed HTTP/1.x request head is a 400;
//! - answers are HTTP/1.1 with `Content-Length` and `Connection: close`,
//!   and the connection is closed after one answer.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// The largest request head accepted, request line and headers.
pub const MAX_HEAD: usize = 8 * 1024;
/// How long a client has to send its whole request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client has to take the answer.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 32;
/// After answering, how long (and how many bytes) to read and discard
/// what the client still sends (the rest of an oversized head, a body),
/// so that closing with unread bytes does not reset the connection before
/// the client has read the answer.
const DRAIN: Duration = Duration::from_millis(500);
const DRAIN_BYTES: usize = 64 * 1024;

/// What a scrape answers: the metrics as Prometheus text.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Serves `listener` until the returned task is aborted (which aborts the
/// connections in progress too: they are in the task's [`JoinSet`]).
pub fn spawn(listener: TcpListener, render: Render) -> JoinHandle<()> {
    tokio::spawn(accept(listener, render))
}

async fn accept(listener: TcpListener, render: Render) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        match listener.accept().await {
            Ok((stream, _)) => {
                // Those that finished while accept waited count no more.
                while connections.try_join_next().is_some() {}
                if connections.len() >= MAX_CONNECTIONS {
                    // Never waits: a busy client gets this or nothing.
                    let _ = stream.try_write(&answer(Status::Busy, None, false));
                    continue;
                }
                connections.spawn(connection(stream, render.clone()));
            }
            Err(e) => {
                // Out of file descriptors and the like: the listener is
                // still good, but do not spin on it.
                tracing::debug!(error = %e, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One client: one request, one answer, closed.
async fn connection(mut stream: TcpStream, render: Render) {
    let reply = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream)).await {
        Err(_) => answer(Status::Timeout, None, false),
        Ok(Err(HeadError::Closed)) => return,
        Ok(Err(HeadError::TooLarge)) => answer(Status::TooLarge, None, false),
        Ok(Ok(head)) => match route(&head) {
            Route::Metrics { head_only } => {
                match tokio::task::spawn_blocking(move || render()).await {
                    Ok(body) => answer(Status::Ok, Some(body), head_only),
                    Err(_) => answer(Status::Failed, None, false),
                }
            }
            Route::Error(status) => answer(status, None, false),
        },
    };
    let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
        stream.write_all(&reply).await?;
        stream.shutdown().await
    })
    .await;
    let _ = tokio::time::timeout(DRAIN, drain(&mut stream)).await;
}

/// Reads and discards up to [`DRAIN_BYTES`], until the client closes.
async fn drain(stream: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    let mut read = 0;
    while read < DRAIN_BYTES {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => read += n,
        }
    }
}

/// Why no request head was read.
#[derive(Debug, PartialEq, Eq)]
enum HeadError {
    /// The client closed (or the connection failed) before a whole head.
    Closed,
    /// Over [`MAX_HEAD`] bytes and no end in sight.
    TooLarge,
}

/// Reads up to the blank line that ends a request head; returns the head
/// without it. Bytes after it (a body) are left unread.
async fn read_head(stream: &mut (impl AsyncRead + Unpin)) -> Result<Vec<u8>, HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Err(HeadError::Closed),
            Ok(n) => n,
        };
        // The end may straddle two reads.
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = find(&buf[from..], b"\r\n\r\n") {
            let end = from + at;
            if end + 4 > MAX_HEAD {
                return Err(HeadError::TooLarge);
            }
            buf.truncate(end);
            return Ok(buf);
        }
        if buf.len() >= MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// The metrics; without the body for `HEAD`.
    Metrics { head_only: bool },
    /// An error answer.
    Error(Status),
}

/// Checks a request head (without its final blank line) and routes it.
///
/// The request line must be `METHOD SP /path SP HTTP/1.x` (origin form,
/// visible ASCII), and every header line `name: value` with a token name.
/// Only the path `/metrics` exists (a query is ignored); only `GET` and
/// `HEAD` are allowed on it.
fn route(head: &[u8]) -> Route {
    let Some(lines) = crlf_lines(head) else {
        return Route::Error(Status::BadRequest);
    };
    let Some((request_line, headers)) = lines.split_first() else {
        return Route::Error(Status::BadRequest);
    };
    for line in headers {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            return Route::Error(Status::BadRequest);
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.is_empty()
            || !name.iter().all(|b| is_tchar(*b))
            || value.iter().any(|b| b.is_ascii_control() && *b != b'\t')
        {
            return Route::Error(Status::BadRequest);
        }
    }
    let mut parts = request_line.split(|b| *b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::Error(Status::BadRequest);
    };
    if method.is_empty() || !method.iter().all(|b| is_tchar(*b)) {
        return Route::Error(Status::BadRequest);
    }
    if target.first() != Some(&b'/') || !target.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Route::Error(Status::BadRequest);
    }
    match version {
        b"HTTP/1.1" | b"HTTP/1.0" => {}
        v if v.starts_with(b"HTTP/") => return Route::Error(Status::Version),
        _ => return Route::Error(Status::BadRequest),
    }
    let path = target.split(|b| *b == b'?').next().unwrap_or(target);
    if path != b"/metrics" {
        return Route::Error(Status::NotFound);
    }
    match method {
        b"GET" => Route::Metrics { head_only: false },
        b"HEAD" => Route::Metrics { head_only: true },
        _ => Route::Error(Status::Method),
    }
}

/// The lines of a head, each ended by CRLF (the last by the end of the
/// head); `None` if a CR or LF stands alone.
fn crlf_lines(head: &[u8]) -> Option<Vec<&[u8]>> {
    let mut lines = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < head.len() {
        match head[i] {
            b'\r' if head.get(i + 1) == Some(&b'\n') => {
                lines.push(&head[start..i]);
                i += 2;
                start = i;
            }
            b'\r' | b'\n' => return None,
            _ => i += 1,
        }
    }
    lines.push(&head[start..]);
    Some(lines)
}

/// A token character (RFC 9110, 5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The answers this server gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    BadRequest,
    NotFound,
    Method,
    Timeout,
    TooLarge,
    Failed,
    Busy,
    Version,
}

impl Status {
    fn line(self) -> &'static str {
        match self {
            Status::Ok => "200 OK",
            Status::BadRequest => "400 Bad Request",
            Status::NotFound => "404 Not Found",
            Status::Method => "405 Method Not Allowed",
            Status::Timeout => "408 Request Timeout",
            Status::TooLarge => "431 Request Header Fields Too Large",
            Status::Failed => "500 Internal Server Error",
            Status::Busy => "503 Service Unavailable",
            Status::Version => "505 HTTP Version Not Supported",
        }
    }
}

/// A whole answer: the metrics for 200 (`body`), else a one-line text
/// saying why; without the body if `head_only` (its length still given).
fn answer(status: Status, body: Option<String>, head_only: bool) -> Vec<u8> {
    let (content_type, body) = match body {
        Some(b) => (
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            b,
        ),
        None => ("text/plain; charset=utf-8", format!("{}\n", status.line())),
    };
    let allow = if status == Status::Method {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let mut out = format!(
        "HTTP/1.1 {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        status.line(),
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let ok = Route::Metrics { head_only: false };
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\nHost: x"), ok);
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*"),
            ok
        );
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\nUser-Agent: a\tb"), ok);
        assert_eq!(route(b"GET /metrics HTTP/1.0"), ok);
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.1"), ok);
        assert_eq!(
            route(b"HEAD /metrics HTTP/1.1\r\nAccept: text/plain;version=0.0.4"),
            Route::Metrics { head_only: true }
        );
        for (head, status) in [
            (&b"GET / HTTP/1.1"[..], Status::NotFound),
            (b"GET /metrics/ HTTP/1.1", Status::NotFound),
            (b"GET /metricsx HTTP/1.1", Status::NotFound),
            (b"POST /metrics HTTP/1.1", Status::Method),
            (b"DELETE /metrics HTTP/1.1", Status::Method),
            (b"GET /metrics HTTP/2.0", Status::Version),
            (b"GET /metrics SPDY/3", Status::BadRequest),
            (b"GET /metrics", Status::BadRequest),
            (b"GET  /metrics HTTP/1.1", Status::BadRequest),
            (b"GET /metrics HTTP/1.1 extra", Status::BadRequest),
            (b"GET http://host/metrics HTTP/1.1", Status::BadRequest),
            (b"GET /met\x7frics HTTP/1.1", Status::BadRequest),
            (b"G\x00T /metrics HTTP/1.1", Status::BadRequest),
            (
                b"GET /metrics HTTP/1.1\r\nno colon here",
                Status::BadRequest,
            ),
            (b"GET /metrics HTTP/1.1\r\n: empty name", Status::BadRequest),
            (b"GET /metrics HTTP/1.1\r\nBad Name: x", Status::BadRequest),
            (b"GET /metrics HTTP/1.1\nHost: bare-lf", Status::BadRequest),
            (b"GET /metrics HTTP/1.1\rHost: bare-cr", Status::BadRequest),
            (b"GET /metrics HTTP/1.1\r\nHost: a\x00b", Status::BadRequest),
            (b"", Status::BadRequest),
            (b"\xff\xfe\xfd", Status::BadRequest),
        ] {
            assert_eq!(
                route(head),
                Route::Error(status),
                "{}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[tokio::test]
    async fn a_head_is_read_to_its_blank_line_and_no_further() {
        let mut input: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nbody";
        assert_eq!(
            read_head(&mut input).await.unwrap(),
            b"GET /metrics HTTP/1.1\r\nHost: x"
        );
        // A client that closes before the blank line.
        let mut input: &[u8] = b"GET /metrics HTTP/1.1\r\n";
        assert_eq!(read_head(&mut input).await, Err(HeadError::Closed));
    }

    #[tokio::test]
    async fn a_head_over_the_limit_is_refused() {
        // Exactly at the limit, blank line included: accepted.
        let pad = MAX_HEAD - "GET /metrics HTTP/1.1\r\nX: \r\n\r\n".len();
        let fits = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(pad));
        assert_eq!(fits.len(), MAX_HEAD);
        assert!(read_head(&mut fits.as_bytes()).await.is_ok());
        // One byte more: refused, whether or not the blank line follows.
        let over = format!(
            "GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(pad + 1)
        );
        assert_eq!(
            read_head(&mut over.as_bytes()).await,
            Err(HeadError::TooLarge)
        );
        let endless = vec![b'a'; 4 * MAX_HEAD];
        assert_eq!(
            read_head(&mut endless.as_slice()).await,
            Err(HeadError::TooLarge)
        );
    }

    #[test]
    fn answers_say_their_length_and_close() {
        let a = String::from_utf8(answer(Status::Ok, Some("x 1\n".into()), false)).unwrap();
        assert!(a.starts_with("HTTP/1.1 200 OK\r\n"), "{a}");
        assert!(a.contains("\r\nContent-Length: 4\r\n"), "{a}");
        assert!(a.contains("\r\nConnection: close\r\n"), "{a}");
        assert!(
            a.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            "{a}"
        );
        assert!(a.ends_with("\r\n\r\nx 1\n"), "{a}");
        // HEAD: the same length, no body.
        let h = String::from_utf8(answer(Status::Ok, Some("x 1\n".into()), true)).unwrap();
        assert!(
            h.contains("\r\nContent-Length: 4\r\n") && h.ends_with("\r\n\r\n"),
            "{h}"
        );
        let m = String::from_utf8(answer(Status::Method, None, false)).unwrap();
        assert!(
            m.starts_with("HTTP/1.1 405 ") && m.contains("\r\nAllow: GET, HEAD\r\n"),
            "{m}"
        );
    }
}
