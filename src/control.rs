//! The control socket: a Unix socket speaking one JSON request per line, one JSON reply per
//! line, one request per connection.
//!
//! The socket is created mode 0600 (by the umask at `bind`, never by a chmod of its path), so
//! only the daemon's user (root, normally) can talk to it. Its directory must be one that only
//! that user or root can change, all the way from `/` ([`check_socket_dir`]): otherwise
//! another user could replace the socket and answer clients in the daemon's place, or swap a
//! path for a symlink under the daemon's feet. Clients check the same, and that the process
//! answering is their own user or root.
//!
//! Requests are small; anything longer than [`MAX_REQUEST`] or slower than [`READ_TIMEOUT`] is
//! refused, and each connection has its own thread (at most [`MAX_CLIENTS`] at once) so a stuck
//! client cannot block the others.

use std::fmt;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_channel::{Sender, bounded};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{debug, info, warn};

use crate::waker::Waker;

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
    Explain {
        job: String,
        path: String,
    },
    /// The metrics in Prometheus' text format (`{"ok": true, "metrics": TEXT}`).
    Metrics,
}

/// The answer to a request that could not be served: `{"ok": false, "error": WHY}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub ok: bool,
    pub error: String,
}

impl Refusal {
    pub fn new(error: impl Into<String>) -> Refusal {
        Refusal {
            ok: false,
            error: error.into(),
        }
    }

    fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
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
    waker: Arc<Waker>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Why a path may not hold, or lead to, the control socket: another user could change it.
/// Carried in an `io::Error` (see [`is_unsafe`]); the daemon refuses to start on it.
#[derive(Debug)]
pub struct UnsafePath(pub String);

impl fmt::Display for UnsafePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UnsafePath {}

fn unsafe_path(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, UnsafePath(msg))
}

/// True for the errors of [`check_socket_dir`] and [`Server::start`] that name a path another
/// user could change.
pub fn is_unsafe(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|i| i.is::<UnsafePath>())
}

/// Checks one entry on the way to the socket (`last`: the socket's own directory, where a
/// sticky bit does not help: others could still take the socket's name first).
fn check_entry(p: &Path, m: &fs::Metadata, uid: u32, last: bool) -> io::Result<()> {
    let mode = m.mode() & 0o7777;
    if m.uid() != 0 && m.uid() != uid {
        let allowed = if uid == 0 {
            "root".to_string()
        } else {
            format!("root or uid {uid}")
        };
        return Err(unsafe_path(format!(
            "{} belongs to uid {}, who could replace the control socket (everything on its way must belong to {allowed})",
            p.display(),
            m.uid()
        )));
    }
    if m.file_type().is_symlink() {
        // Its target is checked on the resolved path.
        return Ok(());
    }
    if !m.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("{} is not a directory", p.display()),
        ));
    }
    if mode & 0o022 != 0 && (last || mode & 0o1000 == 0) {
        return Err(unsafe_path(format!(
            "{} (mode {mode:04o}) is writable by other users, who could replace the control socket{} (chmod go-w it, or use another directory)",
            p.display(),
            if last { " or take its name first" } else { "" }
        )));
    }
    Ok(())
}

/// Checks `dir` and every directory above it, as written (symlinks not followed).
fn check_chain(dir: &Path, uid: u32, last_is_socket_dir: bool) -> io::Result<()> {
    let mut p = PathBuf::new();
    for c in dir.components() {
        p.push(c);
        let m = fs::symlink_metadata(&p)?;
        check_entry(&p, &m, uid, last_is_socket_dir && p == dir)?;
    }
    Ok(())
}

/// Checks that only `uid` or root can change `dir`, the directory of a control socket, and
/// every directory above it, both as written and with symlinks resolved: each must belong to
/// root or `uid`, and none may be writable by others, except an ancestor with the sticky bit
/// (like `/tmp`: others cannot rename what is not theirs). Returns `dir` resolved.
pub fn check_socket_dir(dir: &Path, uid: u32) -> io::Result<PathBuf> {
    let dir = std::path::absolute(dir)?;
    check_chain(&dir, uid, true)?;
    let real = dir.canonicalize()?;
    if real != dir {
        check_chain(&real, uid, true)?;
    }
    Ok(real)
}

/// `/tmp/clsync-<uid>`, a directory in a world-writable place: it must be the daemon's own,
/// private one. One of its own that others can read but not write (0755) is tightened to
/// 0700 through a descriptor; anything else is refused.
fn check_private(dir: &Path, uid: u32) -> io::Result<()> {
    let refuse = |what: String| {
        unsafe_path(format!(
            "{} should be a private directory of uid {uid} (mode 0700), but {what}: another user may have made it to take over the control socket. Remove it (the daemon creates it), or set XDG_RUNTIME_DIR or [daemon] socket",
            dir.display()
        ))
    };
    let m = fs::symlink_metadata(dir)?;
    let mode = m.mode() & 0o7777;
    if m.file_type().is_symlink() {
        return Err(refuse("it is a symlink".into()));
    }
    if !m.is_dir() {
        return Err(refuse("it is not a directory".into()));
    }
    if m.uid() != uid {
        return Err(refuse(format!("it belongs to uid {}", m.uid())));
    }
    if mode & 0o022 != 0 {
        return Err(refuse(format!("its mode is {mode:04o}")));
    }
    if mode & 0o077 != 0 {
        let f = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(dir)?;
        let fm = f.metadata()?;
        if (fm.dev(), fm.ino()) != (m.dev(), m.ino()) {
            return Err(refuse("it changed while it was checked".into()));
        }
        f.set_permissions(fs::Permissions::from_mode(0o700))?;
        info!("{}: mode {mode:04o} tightened to 0700", dir.display());
    }
    Ok(())
}

/// Makes the socket's directory if it is missing (0755 for root, else 0700; nothing is made
/// below a directory another user could change), checks it, and returns it resolved.
fn prepare_dir(dir: &Path, private: bool) -> io::Result<PathBuf> {
    let uid = nix::unistd::geteuid().as_raw();
    let dir = std::path::absolute(dir)?;
    let existing = dir
        .ancestors()
        .find(|a| fs::symlink_metadata(a).is_ok())
        .unwrap_or(Path::new("/"));
    if existing != dir {
        check_chain(existing, uid, false)?;
        check_chain(&existing.canonicalize()?, uid, false)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(if uid == 0 { 0o755 } else { 0o700 })
            .create(&dir)?;
    }
    if private {
        check_private(&dir, uid)?;
    }
    check_socket_dir(&dir, uid)
}

/// Binds `path` (its directory made or checked first), refusing when another live daemon
/// listens there. Returns the listener and the socket's resolved path.
fn bind(path: &Path, private: bool) -> io::Result<(UnixListener, PathBuf)> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a socket path", path.display()),
        )
    })?;
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    let dir = prepare_dir(parent.unwrap_or(Path::new(".")), private)?;
    let path = dir.join(name);
    // Only root and this user can change `dir`: what is in it is theirs.
    match fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_socket() || m.file_type().is_symlink() => {
            if UnixStream::connect(&path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "another clsync daemon is listening on {}; stop it first (or set [daemon] socket)",
                        path.display()
                    ),
                ));
            }
            fs::remove_file(&path)?;
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket; remove it (or set [daemon] socket)",
                    path.display()
                ),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // Created 0600 from the start: no window where another user could connect, and no chmod
    // of a path (Linux and FreeBSD apply the umask to a socket at bind).
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let listener = UnixListener::bind(&path);
    nix::sys::stat::umask(old);
    let listener = listener?;
    let m = fs::symlink_metadata(&path)?;
    let uid = nix::unistd::geteuid().as_raw();
    if !m.file_type().is_socket() || m.uid() != uid || m.mode() & 0o177 != 0 {
        let _ = fs::remove_file(&path);
        return Err(io::Error::other(format!(
            "{} came out as uid {} mode {:04o}, not a socket of uid {uid} mode 0600",
            path.display(),
            m.uid(),
            m.mode() & 0o7777
        )));
    }
    Ok((listener, path))
}

impl Server {
    /// Listens on `path`; every request is sent on `calls`. `private`: the directory is the
    /// `/tmp/clsync-<uid>` fallback, which must be the daemon's own, mode 0700.
    ///
    /// Errors: [`is_unsafe`] when another user could change the socket's directory (or one
    /// above it), `AddrInUse` when another daemon listens there.
    pub fn start(path: &Path, private: bool, calls: Sender<Call>) -> io::Result<Server> {
        let (listener, path) = bind(path, private)?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let waker = Arc::new(Waker::new()?);
        let active = Arc::new(AtomicUsize::new(0));
        let (stop2, waker2) = (stop.clone(), waker.clone());
        let thread = std::thread::Builder::new()
            .name("clsync-control".into())
            .spawn(move || {
                while !stop2.load(Ordering::SeqCst) {
                    let mut fds = [
                        PollFd::new(waker2.fd(), PollFlags::POLLIN),
                        PollFd::new(std::os::fd::AsFd::as_fd(&listener), PollFlags::POLLIN),
                    ];
                    let _ = poll(&mut fds, PollTimeout::NONE);
                    waker2.drain();
                    if stop2.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok((conn, _)) = listener.accept() else {
                        continue;
                    };
                    // Accepted sockets inherit O_NONBLOCK on some systems (FreeBSD).
                    if conn.set_nonblocking(false).is_err() {
                        continue;
                    }
                    if active.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
                        active.fetch_sub(1, Ordering::SeqCst);
                        let _ = reply(&conn, &Refusal::new("too many clients").to_json());
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
            path,
            stop,
            waker,
            thread: Some(thread),
        })
    }

    /// Where the socket is (its directory resolved).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = fs::remove_file(&self.path);
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
        Err(e) => Refusal::new(format!("cannot read the request: {e}")).to_json(),
        Ok(_) if line.len() > MAX_REQUEST => {
            Refusal::new(format!("request longer than {MAX_REQUEST} bytes")).to_json()
        }
        Ok(0) => return,
        Ok(_) => match parse_request(&line) {
            Err(e) => Refusal::new(format!("bad request: {e}")).to_json(),
            Ok(request) => {
                debug!(?request, "control request");
                let (tx, rx) = bounded(1);
                if calls.send(Call { request, reply: tx }).is_err() {
                    Refusal::new("the daemon is stopping").to_json()
                } else {
                    rx.recv_timeout(REPLY_TIMEOUT)
                        .unwrap_or_else(|_| Refusal::new("no answer from the daemon").to_json())
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

/// The user at the other end of a Unix socket (for a listening daemon: who listens).
fn peer_uid(conn: &UnixStream) -> io::Result<u32> {
    use std::os::fd::AsRawFd;
    let fd = conn.as_raw_fd();
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let mut cred = libc::ucred {
            pid: 0,
            uid: 0,
            gid: 0,
        };
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        // SAFETY: `cred` and `len` are valid for writes of the sizes given.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                (&raw mut cred).cast(),
                &mut len,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(cred.uid)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let (mut uid, mut gid) = (0, 0);
        // SAFETY: both pointers are valid for writes.
        if unsafe { libc::getpeereid(fd, &mut uid, &mut gid) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(uid)
    }
}

/// Sends one request to the daemon listening on `socket` and returns its answer.
///
/// Refuses a socket whose directory (or one above it) another user could change, and a
/// daemon that runs as neither this user nor root: either could be another user's process
/// answering in the daemon's place.
pub fn request(socket: &Path, req: &Request) -> io::Result<Value> {
    let uid = nix::unistd::geteuid().as_raw();
    let refuse = |why: String| {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "refusing to talk to the daemon at {}: {why}",
                socket.display()
            ),
        )
    };
    let dir = socket
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // A directory that cannot be checked (missing, not searchable) cannot be connected
    // through either: connect() says why.
    if let Err(e) = check_socket_dir(dir, uid)
        && is_unsafe(&e)
    {
        return Err(refuse(e.to_string()));
    }
    let mut conn = UnixStream::connect(socket).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot reach the daemon at {}: {e} (is `clsync run` running with this configuration directory?)",
                socket.display()
            ),
        )
    })?;
    let peer = peer_uid(&conn)?;
    if peer != 0 && peer != uid {
        return Err(refuse(format!(
            "it is answered by a process of uid {peer}, neither root nor you (uid {uid})"
        )));
    }
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
    use serde_json::json;

    #[test]
    fn requests_round_trip() {
        for (text, req) in [
            (r#"{"cmd":"status"}"#, Request::Status),
            (r#"{"cmd":"reload"}"#, Request::Reload),
            (r#"{"cmd":"metrics"}"#, Request::Metrics),
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
    fn socket_directories_others_can_change_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let uid = nix::unistd::geteuid().as_raw();
        let dir = |rel: &str, mode: u32| {
            let p = t.path().join(rel);
            fs::create_dir(&p).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            p
        };
        let refused = |p: &Path| {
            let e = check_socket_dir(p, uid).expect_err(&p.display().to_string());
            assert!(is_unsafe(&e), "{}: {e}", p.display());
        };
        assert!(check_socket_dir(&dir("own", 0o755), uid).is_ok());
        // Writable by others: refused, sticky or not (others could take the name first).
        for m in [0o775, 0o757, 0o1777] {
            refused(&dir(&format!("w{m:o}"), m));
        }
        // Below a sticky world-writable directory (like /tmp): fine; below another one: not.
        assert!(check_socket_dir(&dir("w1777/in", 0o700), uid).is_ok());
        refused(&dir("w757/in", 0o700));
        // Through a symlink, the directory it leads to counts.
        std::os::unix::fs::symlink(t.path().join("w757"), t.path().join("link")).unwrap();
        refused(&t.path().join("link"));
        if uid == 0 {
            let other = dir("other", 0o700);
            std::os::unix::fs::chown(&other, Some(65534), Some(65534)).unwrap();
            refused(&other);
            refused(&other.join("sub"));
        }
        // The daemon refuses them, and makes nothing there.
        let (tx, _rx) = crossbeam_channel::unbounded::<Call>();
        let bad = t.path().join("w757/run/c.sock");
        let e = Server::start(&bad, false, tx.clone()).err().unwrap();
        assert!(is_unsafe(&e), "{e}");
        assert!(!t.path().join("w757/run").exists());
        // The private fallback: a directory of its own that others cannot write is tightened
        // to 0700; others' modes, and symlinks, are refused.
        let own = dir("private", 0o755);
        assert!(prepare_dir(&own, true).is_ok());
        assert_eq!(fs::metadata(&own).unwrap().mode() & 0o7777, 0o700);
        let open = dir("private-open", 0o777);
        assert!(is_unsafe(&prepare_dir(&open, true).unwrap_err()));
        std::os::unix::fs::symlink(&own, t.path().join("private-link")).unwrap();
        assert!(is_unsafe(
            &prepare_dir(&t.path().join("private-link"), true).unwrap_err()
        ));
        let made = t.path().join("private-new");
        assert!(prepare_dir(&made, true).is_ok());
        assert_eq!(fs::metadata(&made).unwrap().mode() & 0o7777, 0o700);
    }

    #[test]
    fn server_answers_refuses_junk_and_a_second_daemon() {
        let t = tempfile::tempdir().unwrap();
        let sock = t.path().join("run/c.sock");
        let (tx, rx) = crossbeam_channel::unbounded::<Call>();
        let server = Server::start(&sock, false, tx.clone()).unwrap();
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
        let err = Server::start(&sock, false, tx).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        drop(server);
        assert!(!sock.exists());
        worker.join().unwrap();
    }
}
