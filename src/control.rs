//! The control socket: a Unix socket speaking one JSON request per line, one JSON reply per
//! line, one request per connection.
//!
//! The socket is created mode 0600, so only the daemon's user (root, normally) can talk to
//! it. Requests are small; anything longer than [`MAX_REQUEST`] or slower than
//! [`READ_TIMEOUT`] is refused, and each connection has its own thread (at most
//! [`MAX_CLIENTS`] at once) so a stuck client cannot block the others.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_channel::{Sender, bounded};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::{debug, warn};

pub const MAX_REQUEST: usize = 64 * 1024;
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
pub const MAX_CLIENTS: usize = 32;
/// How long a client waits for the daemon's answer (a reload may stop jobs that are
/// finishing a sync).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(600);

/// What a client can ask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    Status,
    Reload,
    Explain { job: String, path: String },
}

/// A request handed to the supervisor, with where to send the answer.
pub struct Call {
    pub request: Request,
    pub reply: Sender<Value>,
}

/// The listening socket; removed from the filesystem when dropped.
pub struct Server {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Binds `path`, refusing when another live daemon listens there.
fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "another clsync daemon is listening on {}; stop it first (or set [daemon] socket)",
                    path.display()
                ),
            ));
        }
        std::fs::remove_file(path)?;
    }
    // Created 0600 from the start: no window where another user could connect.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let listener = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = listener?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

impl Server {
    /// Listens on `path`; every request is sent on `calls`.
    pub fn start(path: &Path, calls: Sender<Call>) -> io::Result<Server> {
        let listener = bind(path)?;
        let stop = Arc::new(AtomicBool::new(false));
        let active = Arc::new(AtomicUsize::new(0));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("clsync-control".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if stop2.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    if active.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
                        active.fetch_sub(1, Ordering::SeqCst);
                        let _ = reply(&conn, &json!({"ok": false, "error": "too many clients"}));
                        continue;
                    }
                    let (calls, active) = (calls.clone(), active.clone());
                    let spawned = std::thread::Builder::new()
                        .name("clsync-client".into())
                        .spawn(move || {
                            serve(conn, &calls);
                            active.fetch_sub(1, Ordering::SeqCst);
                        });
                    if spawned.is_err() {
                        warn!("control: cannot start a thread for a client");
                    }
                }
            })?;
        Ok(Server {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn reply(mut conn: &UnixStream, v: &Value) -> io::Result<()> {
    let mut line = serde_json::to_vec(v).unwrap_or_default();
    line.push(b'\n');
    conn.write_all(&line)
}

fn serve(conn: UnixStream, calls: &Sender<Call>) {
    let _ = conn.set_read_timeout(Some(READ_TIMEOUT));
    let _ = conn.set_write_timeout(Some(READ_TIMEOUT));
    let mut line = Vec::new();
    let read = BufReader::new(&conn)
        .take(MAX_REQUEST as u64 + 1)
        .read_until(b'\n', &mut line);
    let answer = match read {
        Err(e) => json!({"ok": false, "error": format!("cannot read the request: {e}")}),
        Ok(_) if line.len() > MAX_REQUEST => {
            json!({"ok": false, "error": format!("request longer than {MAX_REQUEST} bytes")})
        }
        Ok(0) => return,
        Ok(_) => match parse_request(&line) {
            Err(e) => json!({"ok": false, "error": format!("bad request: {e}")}),
            Ok(request) => {
                debug!(?request, "control request");
                let (tx, rx) = bounded(1);
                if calls.send(Call { request, reply: tx }).is_err() {
                    json!({"ok": false, "error": "the daemon is stopping"})
                } else {
                    rx.recv_timeout(REPLY_TIMEOUT).unwrap_or_else(
                        |_| json!({"ok": false, "error": "no answer from the daemon"}),
                    )
                }
            }
        },
    };
    let _ = reply(&conn, &answer);
}

/// Parses a request line. Unknown fields are refused (serde ignores `deny_unknown_fields`
/// on internally tagged enums, so they are checked here).
fn parse_request(line: &[u8]) -> Result<Request, String> {
    let v: Value = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    if let Some(obj) = v.as_object()
        && let Some(k) = obj
            .keys()
            .find(|k| !matches!(k.as_str(), "cmd" | "job" | "path"))
    {
        return Err(format!("unknown field `{k}`"));
    }
    serde_json::from_value(v).map_err(|e| e.to_string())
}

/// Sends one request to the daemon listening on `socket` and returns its answer.
pub fn request(socket: &Path, req: &Request) -> io::Result<Value> {
    let mut conn = UnixStream::connect(socket).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot reach the daemon at {}: {e} (is `clsync run` running with this configuration directory?)",
                socket.display()
            ),
        )
    })?;
    conn.set_read_timeout(Some(REPLY_TIMEOUT))?;
    let mut line = serde_json::to_vec(req).map_err(io::Error::other)?;
    line.push(b'\n');
    conn.write_all(&line)?;
    let mut answer = String::new();
    BufReader::new(conn).read_line(&mut answer)?;
    serde_json::from_str(&answer).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad answer from the daemon: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        for (text, req) in [
            (r#"{"cmd":"status"}"#, Request::Status),
            (r#"{"cmd":"reload"}"#, Request::Reload),
            (
                r#"{"cmd":"explain","job":"web","path":"a/b"}"#,
                Request::Explain {
                    job: "web".into(),
                    path: "a/b".into(),
                },
            ),
        ] {
            assert_eq!(serde_json::from_str::<Request>(text).unwrap(), req);
            assert_eq!(serde_json::to_string(&req).unwrap(), text);
        }
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"rm -rf"}"#).is_err());
        assert!(parse_request(br#"{"cmd":"status","extra":1}"#).is_err());
        assert!(parse_request(br#"{"cmd":"status"}"#).is_ok());
    }

    #[test]
    fn server_answers_refuses_junk_and_a_second_daemon() {
        let t = tempfile::tempdir().unwrap();
        let sock = t.path().join("run/c.sock");
        let (tx, rx) = crossbeam_channel::unbounded::<Call>();
        let server = Server::start(&sock, tx.clone()).unwrap();
        let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let worker = std::thread::spawn(move || {
            for call in rx {
                let _ = call
                    .reply
                    .send(json!({"ok": true, "echo": format!("{:?}", call.request)}));
            }
        });
        let v = request(&sock, &Request::Status).unwrap();
        assert_eq!(v["ok"], true);
        // Junk gets an error, not a crash.
        let mut c = UnixStream::connect(&sock).unwrap();
        c.write_all(b"not json\n").unwrap();
        let mut s = String::new();
        BufReader::new(c).read_line(&mut s).unwrap();
        assert!(s.contains("bad request"), "{s}");
        // Oversized.
        let mut c = UnixStream::connect(&sock).unwrap();
        let _ = c.write_all(&vec![b'x'; MAX_REQUEST + 10]);
        let mut s = String::new();
        BufReader::new(c).read_line(&mut s).unwrap();
        assert!(s.contains("longer than"), "{s}");
        // A second daemon on the same socket is refused.
        let err = Server::start(&sock, tx).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        drop(server);
        assert!(!sock.exists());
        worker.join().unwrap();
    }
}
