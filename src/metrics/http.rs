//! `[daemon] metrics_listen`: a small HTTP/1.0 responder for Prometheus scrapes.
//!
//! One thread sleeps in a blocking `accept` (nothing at idle); each connection gets its own
//! short-lived thread (at most [`MAX_CLIENTS`] at once, the others are answered 503), which
//! reads the request head (at most [`MAX_HEAD`] bytes, within [`TIMEOUT`]), asks the
//! supervisor for the metrics as `clsync metrics` does, answers and closes. `GET /metrics`
//! (and `HEAD`) answer the metrics, `/` a pointer to them, anything else 404 or 405.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_channel::{Sender, bounded};
use tracing::{debug, warn};

use crate::control::{Call, Request};

pub const MAX_CLIENTS: usize = 4;
pub const MAX_HEAD: usize = 8 * 1024;
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// How long a scrape waits for the supervisor (busy with a reload, for instance).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds `addr` and serves scrapes on a thread of its own for the life of the process.
/// Returns the bound address (its port chosen by the system when `addr` has port 0).
pub fn start(addr: SocketAddr, calls: Sender<Call>) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    let active = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("clsync-metrics".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let conn = match conn {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of descriptors and the like: pause instead of spinning.
                        debug!("metrics: accept failed: {e}");
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                };
                if active.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
                    active.fetch_sub(1, Ordering::SeqCst);
                    let _ = conn.set_write_timeout(Some(Duration::from_secs(1)));
                    let _ = respond(&conn, "503 Service Unavailable", "text/plain", b"busy\n");
                    continue;
                }
                let (calls, active) = (calls.clone(), active.clone());
                let spawned = std::thread::Builder::new()
                    .name("clsync-scrape".into())
                    .spawn(move || {
                        serve(conn, &calls);
                        active.fetch_sub(1, Ordering::SeqCst);
                    });
                if spawned.is_err() {
                    warn!("metrics: cannot start a thread for a client");
                }
            }
        })?;
    Ok(local)
}

fn respond(mut conn: &TcpStream, status: &str, ctype: &str, body: &[u8]) -> io::Result<()> {
    respond_head(conn, status, ctype, body.len())?;
    conn.write_all(body)
}

fn respond_head(mut conn: &TcpStream, status: &str, ctype: &str, len: usize) -> io::Result<()> {
    write!(
        conn,
        "HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    )
}

/// Reads the request head: up to the empty line, at most [`MAX_HEAD`] bytes.
fn read_head(mut conn: &TcpStream) -> io::Result<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        if head.len() > MAX_HEAD {
            return Err(io::Error::other("request head too long"));
        }
        let n = conn.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

fn serve(conn: TcpStream, calls: &Sender<Call>) {
    let _ = conn.set_read_timeout(Some(TIMEOUT));
    let _ = conn.set_write_timeout(Some(TIMEOUT));
    let head = match read_head(&conn) {
        Ok(h) => h,
        Err(_) => {
            let _ = respond(&conn, "400 Bad Request", "text/plain", b"bad request\n");
            return;
        }
    };
    let mut parts = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        let _ = respond(
            &conn,
            "405 Method Not Allowed",
            "text/plain",
            b"only GET and HEAD\n",
        );
        return;
    }
    let _ = match path {
        "/metrics" => match metrics(calls) {
            Some(text) if head_only => {
                respond_head(&conn, "200 OK", super::CONTENT_TYPE, text.len())
            }
            Some(text) => respond(&conn, "200 OK", super::CONTENT_TYPE, text.as_bytes()),
            None => respond(
                &conn,
                "503 Service Unavailable",
                "text/plain",
                b"the daemon did not answer\n",
            ),
        },
        "/" => respond(
            &conn,
            "200 OK",
            "text/plain",
            b"clsync: metrics at /metrics\n",
        ),
        _ => respond(&conn, "404 Not Found", "text/plain", b"not found\n"),
    };
}

/// Asks the supervisor for the metrics text.
fn metrics(calls: &Sender<Call>) -> Option<String> {
    let (tx, rx) = bounded(1);
    calls
        .send(Call {
            request: Request::Metrics,
            reply: tx,
        })
        .ok()?;
    let v = rx.recv_timeout(REPLY_TIMEOUT).ok()?;
    serde_json::from_value::<super::MetricsAnswer>(v)
        .ok()
        .map(|a| a.metrics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn get(addr: SocketAddr, req: &str) -> String {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn answers_scrapes() {
        let (tx, rx) = crossbeam_channel::unbounded::<Call>();
        let addr = start("127.0.0.1:0".parse().unwrap(), tx).unwrap();
        std::thread::spawn(move || {
            for call in rx {
                let _ = call
                    .reply
                    .send(json!({"ok": true, "metrics": "a_total 1\n"}));
            }
        });
        let r = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(r.starts_with("HTTP/1.0 200 OK\r\n"), "{r}");
        assert!(r.contains("Content-Type: text/plain; version=0.0.4"), "{r}");
        assert!(r.contains("Content-Length: 10\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\na_total 1\n"), "{r}");
        let r = get(addr, "HEAD /metrics?x=1 HTTP/1.0\r\n\r\n");
        assert!(
            r.starts_with("HTTP/1.0 200 OK\r\n") && r.ends_with("\r\n\r\n"),
            "{r}"
        );
        assert!(get(addr, "GET /nope HTTP/1.0\r\n\r\n").starts_with("HTTP/1.0 404"));
        assert!(get(addr, "POST /metrics HTTP/1.0\r\n\r\n").starts_with("HTTP/1.0 405"));
    }
}
