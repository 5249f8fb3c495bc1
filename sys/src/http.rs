//! A minimal HTTP/1.x endpoint for Prometheus scrapes: one `GET` path that
//! answers with text, `Connection: close`, everything else refused. Enough
//! for a scraper and `curl`, and bounded so that a slow or hostile client
//! cannot hold the daemon: the request head is read for at most
//! [`HttpLimits::read_timeout`] and [`HttpLimits::max_head`] bytes, the
//! answer written within the same time, and at most
//! [`HttpLimits::max_connections`] are served at once (more are closed).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bounds on what one client may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Longest request head (request line and headers) read, bytes.
    pub max_head: usize,
    /// Time allowed to send the request head, and again to take the answer.
    pub read_timeout: Duration,
    /// Connections served at once; further ones are closed at once.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_head: 8192,
            read_timeout: Duration::from_secs(5),
            max_connections: 16,
        }
    }
}

fn response(status: &str, content_type: &str, extra: &str, body: &str, head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         {extra}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

fn plain(status: &str, body: &str) -> Vec<u8> {
    response(status, "text/plain; charset=utf-8", "", body, false)
}

/// Where a request head ends (after the blank line), if it has arrived.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The whole answer to a request whose head is `head`: `render()`'s text
/// with `content_type` for `GET` (or `HEAD`) of `path` (a query string is
/// ignored), 404 for another path, 405 for another method, 505 for a
/// version other than HTTP/1.x, 400 for anything unreadable.
pub fn http_response(
    head: &[u8],
    path: &str,
    content_type: &str,
    render: impl FnOnce() -> String,
) -> Vec<u8> {
    let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = first.strip_suffix(b"\r").unwrap_or(first);
    let Ok(line) = std::str::from_utf8(line) else {
        return plain("400 Bad Request", "bad request line\n");
    };
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, target, version] = parts.as_slice() else {
        return plain("400 Bad Request", "bad request line\n");
    };
    if !version.starts_with("HTTP/1.") {
        return plain("505 HTTP Version Not Supported", "HTTP/1.0 or 1.1 only\n");
    }
    let head_only = match *method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            return response(
                "405 Method Not Allowed",
                "text/plain; charset=utf-8",
                "Allow: GET, HEAD\r\n",
                "only GET and HEAD\n",
                false,
            );
        }
    };
    let wanted = target.split('?').next().unwrap_or_default();
    if wanted != path {
        return response(
            "404 Not Found",
            "text/plain; charset=utf-8",
            "",
            &format!("not found; try {path}\n"),
            head_only,
        );
    }
    response("200 OK", content_type, "", &render(), head_only)
}

/// Serves `render` as Prometheus text at `/metrics` on `listener`, with the
/// default limits, after logging the address: the metrics endpoint of both
/// daemons.
pub async fn serve_metrics(listener: TcpListener, render: Arc<dyn Fn() -> String + Send + Sync>) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!("metrics on http://{addr}/metrics");
    }
    serve_http(
        listener,
        "/metrics",
        crate::prometheus::CONTENT_TYPE,
        HttpLimits::default(),
        render,
    )
    .await;
}

/// Serves `GET path` on `listener` with `render()`'s text until the task is
/// dropped.
pub async fn serve_http(
    listener: TcpListener,
    path: &'static str,
    content_type: &'static str,
    limits: HttpLimits,
    render: Arc<dyn Fn() -> String + Send + Sync>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors and the like: do not spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let render = Arc::clone(&render);
        tokio::spawn(async move {
            let _ = answer(stream, path, content_type, limits, render.as_ref()).await;
            drop(permit);
        });
    }
}

async fn answer(
    mut stream: TcpStream,
    path: &str,
    content_type: &str,
    limits: HttpLimits,
    render: &(dyn Fn() -> String + Send + Sync),
) -> io::Result<()> {
    let mut buf = vec![0u8; limits.max_head];
    let mut len = 0;
    let read = tokio::time::timeout(limits.read_timeout, async {
        loop {
            let Some(room) = buf.get_mut(len..).filter(|r| !r.is_empty()) else {
                return Ok(false);
            };
            let n = stream.read(room).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            len += n;
            if head_end(buf.get(..len).unwrap_or_default()).is_some() {
                return Ok(true);
            }
        }
    })
    .await;
    let reply = match read {
        Err(_elapsed) => plain("408 Request Timeout", "request head not received in time\n"),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(false)) => plain(
            "431 Request Header Fields Too Large",
            "request head too large\n",
        ),
        Ok(Ok(true)) => http_response(
            buf.get(..len).unwrap_or_default(),
            path,
            content_type,
            render,
        ),
    };
    tokio::time::timeout(limits.read_timeout, async {
        stream.write_all(&reply).await?;
        stream.shutdown().await
    })
    .await
    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::time::Instant;

    const CT: &str = "text/plain; version=0.0.4; charset=utf-8";

    fn answer_to(head: &str) -> String {
        String::from_utf8(http_response(head.as_bytes(), "/metrics", CT, || {
            "up 1\n".to_string()
        }))
        .unwrap()
    }

    #[test]
    fn get_metrics_http_1_1_and_1_0() {
        for req in [
            "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /metrics HTTP/1.0\r\n\r\n",
            "GET /metrics?name[]=up HTTP/1.1\n\n",
        ] {
            let a = answer_to(req);
            assert!(a.starts_with("HTTP/1.1 200 OK\r\n"), "{a}");
            assert!(a.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
            assert!(a.contains("\r\nContent-Length: 5\r\n"), "{a}");
            assert!(a.contains("\r\nConnection: close\r\n"), "{a}");
            assert!(a.ends_with("\r\n\r\nup 1\n"), "{a}");
        }
        let a = answer_to("HEAD /metrics HTTP/1.1\r\n\r\n");
        assert!(
            a.starts_with("HTTP/1.1 200 OK\r\n") && a.ends_with("\r\n\r\n"),
            "{a}"
        );
    }

    #[test]
    fn everything_else_is_refused() {
        assert!(answer_to("GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
        assert!(answer_to("GET /metricsx HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
        let a = answer_to("POST /metrics HTTP/1.1\r\n\r\n");
        assert!(
            a.starts_with("HTTP/1.1 405 ") && a.contains("Allow: GET, HEAD"),
            "{a}"
        );
        assert!(answer_to("GET /metrics HTTP/2.0\r\n\r\n").starts_with("HTTP/1.1 505 "));
        for bad in [
            "\r\n\r\n",
            "GET /metrics\r\n\r\n",
            "GET  /metrics HTTP/1.1\r\n\r\n",
        ] {
            assert!(answer_to(bad).starts_with("HTTP/1.1 400 "), "{bad:?}");
        }
        let junk = http_response(&[0xff, 0xfe, b'\n', b'\n'], "/metrics", CT, String::new);
        assert!(junk.starts_with(b"HTTP/1.1 400 "));
        let mut rendered = false;
        let _ = http_response(b"GET / HTTP/1.1\r\n\r\n", "/metrics", CT, || {
            rendered = true;
            String::new()
        });
        assert!(!rendered, "nothing rendered for a 404");
    }

    #[test]
    fn head_end_finds_the_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.0\n\n"), Some(16));
    }

    async fn server(limits: HttpLimits) -> std::net::SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(serve_http(
            l,
            "/metrics",
            CT,
            limits,
            Arc::new(|| "up 1\n".to_string()),
        ));
        addr
    }

    async fn exchange(addr: std::net::SocketAddr, send: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(send).await.unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn slow_oversized_and_normal_clients() {
        let limits = HttpLimits {
            max_head: 64,
            read_timeout: Duration::from_millis(300),
            max_connections: 4,
        };
        let addr = server(limits).await;
        // A client that never finishes its head is answered 408 and closed.
        let start = Instant::now();
        let a = exchange(addr, b"GET /metrics HTTP/1.1\r\n").await;
        assert!(a.starts_with("HTTP/1.1 408 "), "{a}");
        assert!(start.elapsed() < Duration::from_secs(5), "closed promptly");
        let big = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(100));
        let a = exchange(addr, big.as_bytes()).await;
        assert!(a.starts_with("HTTP/1.1 431 "), "{a}");
        let a = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
        assert!(
            a.starts_with("HTTP/1.1 200 ") && a.ends_with("up 1\n"),
            "{a}"
        );
    }
}
