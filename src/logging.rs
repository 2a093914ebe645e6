//! Where the log goes: stderr, journald (native protocol, structured fields) or syslog.
//!
//! `[daemon] log_target` picks one; unset, the daemon logs to journald when systemd connected
//! its stderr to the journal (`JOURNAL_STREAM` names stderr's device and inode), else to
//! stderr.
//!
//! journald entries carry, besides `MESSAGE` and `PRIORITY`, one field per span and event
//! field: the job span gives `CLSYNC_JOB=NAME`, event fields `CLSYNC_EVENT` (`synced`,
//! `sync-failed`, ...), `CLSYNC_BATCH` (the batch id), `CLSYNC_PATHS` and so on, so that
//! `journalctl CLSYNC_JOB=www` shows one job. `tracing-journald` was not used: it sends to a
//! fixed socket path (tests could not receive what it sends) and prefixes every span field
//! alike (`F_NAME`), so `CLSYNC_JOB` would need the job span's field renamed, which would
//! change the stderr format (`job{name=www}`) that people and tests read.
//!
//! syslog lines are RFC 3164 as the C library's `syslog(3)` writes them to `/dev/log`
//! (`<PRI>Mmm dd hh:mm:ss clsync[PID]: MESSAGE`, local time): the format every local syslog
//! daemon and journald's syslog socket parse. The `syslog` crate was not used: it stamps
//! RFC 3164 lines with UTC time (read as local time by receivers), pulls in `time`, `log` and
//! `hostname`, and has no `tracing` layer anyway. Each datagram is sent to the socket's path
//! (not over a connected socket), so a restarted syslog daemon or journald is found again.
//!
//! For tests, `CLSYNC_JOURNAL_SOCKET` and `CLSYNC_SYSLOG_SOCKET` replace the sockets' paths.

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::DaemonConfig;
use crate::config::observability::{DEFAULT_FACILITY, LogTarget};

/// journald's native socket.
pub const JOURNALD_SOCKET: &str = "/run/systemd/journal/socket";

/// The local syslog socket.
#[cfg(target_os = "freebsd")]
pub const SYSLOG_SOCKET: &str = "/var/run/log";
#[cfg(target_os = "macos")]
pub const SYSLOG_SOCKET: &str = "/var/run/syslog";
#[cfg(not(any(target_os = "freebsd", target_os = "macos")))]
pub const SYSLOG_SOCKET: &str = "/dev/log";

/// The syslog identifier (`SYSLOG_IDENTIFIER`, the tag of syslog lines).
pub const IDENT: &str = "clsync";

/// Longest `MESSAGE` sent (longer ones are cut): a datagram must fit the socket's buffer.
const MAX_MESSAGE: usize = 32 * 1024;
/// Longest other field value sent.
const MAX_FIELD: usize = 4 * 1024;
/// How long sending one entry may block on a full socket (a stuck journald or syslog
/// daemon) before the entry is dropped: a blocking send, as `syslog(3)` and
/// `sd_journal_send` do, but one that cannot stop the daemon for good.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// An unbound datagram socket whose sends block at most [`SEND_TIMEOUT`].
fn sender() -> io::Result<UnixDatagram> {
    let s = UnixDatagram::unbound()?;
    s.set_write_timeout(Some(SEND_TIMEOUT))?;
    Ok(s)
}

fn journald_path() -> PathBuf {
    std::env::var_os("CLSYNC_JOURNAL_SOCKET")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from(JOURNALD_SOCKET), PathBuf::from)
}

fn syslog_path() -> PathBuf {
    std::env::var_os("CLSYNC_SYSLOG_SOCKET")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from(SYSLOG_SOCKET), PathBuf::from)
}

/// `JOURNAL_STREAM` (`DEVICE:INODE`, set by systemd when stdout or stderr goes to the
/// journal) against stderr's device and inode.
fn journal_stream_is(value: &str, dev: u64, ino: u64) -> bool {
    value
        .split_once(':')
        .and_then(|(d, i)| Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?)))
        .is_some_and(|(d, i)| d == dev && i == ino)
}

/// True when systemd connected stderr to the journal.
pub fn stderr_is_journal() -> bool {
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(st) = rustix::fs::fstat(std::io::stderr()) else {
        return false;
    };
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    journal_stream_is(&v.to_string_lossy(), st.st_dev as u64, st.st_ino as u64)
}

/// The target of a daemon configuration: its `log_target`, else journald when stderr is the
/// journal, else stderr.
pub fn target(daemon: &DaemonConfig) -> LogTarget {
    daemon.log_target.unwrap_or_else(|| {
        if stderr_is_journal() {
            LogTarget::Journald
        } else {
            LogTarget::Stderr
        }
    })
}

/// Sets up the global subscriber: `level` (checked tracing directives) to `daemon`'s target.
/// A journald or syslog socket that cannot be reached falls back to stderr, with a warning.
pub fn init(level: &str, daemon: &DaemonConfig) {
    let checked = crate::config::check_log_level(level).map_err(|e| e.to_string());
    let filter = checked
        .and_then(|()| tracing_subscriber::EnvFilter::try_new(level).map_err(|e| e.to_string()))
        .unwrap_or_else(|e| {
            eprintln!("clsync: {e}; logging at \"info\"");
            tracing_subscriber::EnvFilter::new("info")
        });
    let facility = daemon.syslog_facility.unwrap_or(DEFAULT_FACILITY);
    let mut fallback = None;
    let layer: Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync> = match target(daemon) {
        LogTarget::Stderr => stderr_layer(),
        LogTarget::Journald => match Journald::new(&journald_path(), facility) {
            Ok(j) => Box::new(j),
            Err(e) => {
                fallback = Some(format!(
                    "cannot log to journald at {}: {e}; logging to stderr",
                    journald_path().display()
                ));
                stderr_layer()
            }
        },
        LogTarget::Syslog => match Syslog::new(&syslog_path(), facility) {
            Ok(s) => Box::new(
                tracing_subscriber::fmt::layer()
                    .with_writer(s)
                    .without_time()
                    .with_level(false)
                    .with_target(false)
                    .with_ansi(false)
                    .fmt_fields(SkipEvent),
            ),
            Err(e) => {
                fallback = Some(format!(
                    "cannot log to syslog at {}: {e}; logging to stderr",
                    syslog_path().display()
                ));
                stderr_layer()
            }
        },
    };
    tracing_subscriber::registry()
        .with(layer)
        .with(filter)
        .init();
    if let Some(msg) = fallback {
        tracing::warn!("{msg}");
    }
}

/// What writes a log line meant for stderr while something else draws there (`clsync
/// sync`'s progress bar, which hides itself for the line): it gets each whole line.
pub type StderrHook = Box<dyn Fn(&[u8]) -> io::Result<()> + Send + Sync>;

static STDERR_HOOK: std::sync::OnceLock<StderrHook> = std::sync::OnceLock::new();

/// Routes the stderr log lines through `hook` from now on; false if one is set already.
pub fn set_stderr_hook(hook: StderrHook) -> bool {
    STDERR_HOOK.set(hook).is_ok()
}

/// stderr, or the [`StderrHook`] when one is set.
struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match STDERR_HOOK.get() {
            Some(hook) => hook(buf).map(|()| buf.len()),
            None => io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

fn stderr_layer() -> Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync> {
    Box::new(
        tracing_subscriber::fmt::layer()
            .with_writer(|| Stderr)
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .fmt_fields(SkipEvent),
    )
}

/// The text formats' fields: tracing's defaults, without the `event` field (a name for
/// journald's `CLSYNC_EVENT`; the message already says it).
#[derive(Debug, Clone, Copy, Default)]
pub struct SkipEvent;

pub struct SkipEventVisitor<'a>(DefaultVisitor<'a>);

impl<'a> MakeVisitor<Writer<'a>> for SkipEvent {
    type Visitor = SkipEventVisitor<'a>;

    fn make_visitor(&self, target: Writer<'a>) -> Self::Visitor {
        SkipEventVisitor(DefaultVisitor::new(target, true))
    }
}

impl Visit for SkipEventVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() != "event" {
            self.0.record_str(field, value);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if field.name() != "event" {
            self.0.record_error(field, value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() != "event" {
            self.0.record_debug(field, value);
        }
    }
}

impl VisitOutput<fmt::Result> for SkipEventVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.0.finish()
    }
}

impl VisitFmt for SkipEventVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        self.0.writer()
    }
}

/// Collects fields as (name, text) pairs; `message` apart.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    other: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_string());
        } else {
            self.other.push((field.name(), value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = Some(text);
        } else {
            self.other.push((field.name(), text));
        }
    }
}

/// `CLSYNC_` + `parts`, upper case, anything but letters and digits as `_` (journald field
/// names: `[A-Z0-9_]`, at most 64 characters, not starting with `_`).
fn field_name(parts: &[&str]) -> String {
    let mut n = String::from("CLSYNC");
    for p in parts {
        n.push('_');
        n.extend(p.chars().map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        }));
    }
    n.truncate(64);
    n
}

/// Cuts `s` to at most `max` bytes, at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Appends one field in journald's native format: `KEY=value\n`, or, for a value with a
/// newline, `KEY\n`, its length as 64-bit little endian, the value, `\n`.
pub fn put_field(buf: &mut Vec<u8>, key: &str, value: &[u8]) {
    buf.extend_from_slice(key.as_bytes());
    if value.contains(&b'\n') {
        buf.push(b'\n');
        buf.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        buf.push(b'=');
    }
    buf.extend_from_slice(value);
    buf.push(b'\n');
}

/// journald's priority (syslog severity) of a level.
fn severity(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// What a span contributes to the entries of events inside it.
struct SpanFields {
    /// As the text formats show it: `job{name=www}`.
    text: String,
    /// journald fields.
    fields: Vec<(String, String)>,
}

impl SpanFields {
    fn add(&mut self, span: &str, collected: Fields) {
        for (k, v) in collected.other {
            let key = if k == "name" {
                field_name(&[span])
            } else {
                field_name(&[span, k])
            };
            let open = self.text.ends_with('}');
            if open {
                self.text.pop();
                self.text.push(' ');
            } else {
                self.text.push('{');
            }
            self.text.push_str(&format!("{k}={v}}}"));
            self.fields.push((key, v));
        }
    }
}

/// A layer that sends every event to journald in its native protocol.
pub struct Journald {
    socket: UnixDatagram,
    path: PathBuf,
    facility: u8,
}

impl Journald {
    /// Fails when nothing listens at `path`.
    pub fn new(path: &Path, facility: u8) -> io::Result<Journald> {
        // A connect tells whether something listens, and sends nothing.
        UnixDatagram::unbound()?.connect(path)?;
        Ok(Journald {
            socket: sender()?,
            path: path.to_path_buf(),
            facility,
        })
    }

    /// The entry of an event, as sent.
    fn entry<S>(&self, event: &Event<'_>, ctx: &Context<'_, S>) -> Vec<u8>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let mut text = String::new();
        let mut buf = Vec::with_capacity(512);
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                let ext = span.extensions();
                if let Some(f) = ext.get::<SpanFields>() {
                    text.push_str(&f.text);
                    text.push(':');
                    for (k, v) in &f.fields {
                        put_field(&mut buf, k, cut(v, MAX_FIELD).as_bytes());
                    }
                }
            }
        }
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(fields.message.as_deref().unwrap_or_default());
        for (k, v) in &fields.other {
            if *k != "event" {
                text.push_str(&format!(" {k}={v}"));
            }
            put_field(&mut buf, &field_name(&[k]), cut(v, MAX_FIELD).as_bytes());
        }
        put_field(&mut buf, "MESSAGE", cut(&text, MAX_MESSAGE).as_bytes());
        put_field(
            &mut buf,
            "PRIORITY",
            severity(meta.level()).to_string().as_bytes(),
        );
        put_field(&mut buf, "SYSLOG_IDENTIFIER", IDENT.as_bytes());
        put_field(
            &mut buf,
            "SYSLOG_FACILITY",
            self.facility.to_string().as_bytes(),
        );
        if let Some(file) = meta.file() {
            put_field(&mut buf, "CODE_FILE", file.as_bytes());
        }
        if let Some(line) = meta.line() {
            put_field(&mut buf, "CODE_LINE", line.to_string().as_bytes());
        }
        buf
    }
}

impl<S> Layer<S> for Journald
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let Some(span) = ctx.span(id) else { return };
        let mut collected = Fields::default();
        attrs.record(&mut collected);
        let mut f = SpanFields {
            text: span.name().to_string(),
            fields: Vec::new(),
        };
        f.add(span.name(), collected);
        span.extensions_mut().insert(f);
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        let Some(span) = ctx.span(id) else { return };
        let mut collected = Fields::default();
        values.record(&mut collected);
        if let Some(f) = span.extensions_mut().get_mut::<SpanFields>() {
            f.add(span.name(), collected);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let entry = self.entry(event, &ctx);
        // Nowhere to report a failure to log: the entry is lost.
        let _ = self.socket.send_to(&entry, &self.path);
    }
}

/// The writer of syslog lines, for tracing's text formatter (one datagram per event).
#[derive(Clone)]
pub struct Syslog(Arc<SyslogInner>);

pub struct SyslogInner {
    socket: UnixDatagram,
    path: PathBuf,
    facility: u8,
    pid: u32,
}

impl Syslog {
    /// Fails when nothing listens at `path`.
    pub fn new(path: &Path, facility: u8) -> io::Result<Syslog> {
        UnixDatagram::unbound()?.connect(path)?;
        Ok(Syslog(Arc::new(SyslogInner {
            socket: sender()?,
            path: path.to_path_buf(),
            facility,
            pid: std::process::id(),
        })))
    }
}

/// One line being formatted; sent when dropped.
pub struct SyslogLine<'a> {
    inner: &'a SyslogInner,
    severity: u8,
    buf: Vec<u8>,
}

impl Write for SyslogLine<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for SyslogLine<'_> {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        let text = text.trim_end_matches('\n');
        if text.is_empty() {
            return;
        }
        let line = syslog_line(
            self.inner.facility,
            self.severity,
            &local_time(),
            self.inner.pid,
            cut(text, MAX_MESSAGE),
        );
        let _ = self.inner.socket.send_to(line.as_bytes(), &self.inner.path);
    }
}

impl<'a> MakeWriter<'a> for Syslog {
    type Writer = SyslogLine<'a>;

    fn make_writer(&'a self) -> SyslogLine<'a> {
        SyslogLine {
            inner: &self.0,
            severity: 6,
            buf: Vec::new(),
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> SyslogLine<'a> {
        SyslogLine {
            inner: &self.0,
            severity: severity(meta.level()),
            buf: Vec::new(),
        }
    }
}

/// An RFC 3164 line as `syslog(3)` sends it to the local socket: `<PRI>STAMP clsync[PID]: MSG`.
pub fn syslog_line(facility: u8, severity: u8, stamp: &str, pid: u32, msg: &str) -> String {
    format!(
        "<{}>{stamp} {IDENT}[{pid}]: {msg}",
        u32::from(facility) * 8 + u32::from(severity)
    )
}

/// The local time as RFC 3164 writes it: `Mmm dd hh:mm:ss`, the day padded with a space.
fn local_time() -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // SAFETY: `time` accepts a null pointer; `localtime_r` writes only into `tm`, which is
    // plain data that may start zeroed.
    let tm = unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            return "Jan  1 00:00:00".into();
        }
        tm
    };
    format!(
        "{} {:>2} {:02}:{:02}:{:02}",
        MONTHS[tm.tm_mon.clamp(0, 11) as usize],
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_matches_device_and_inode() {
        assert!(journal_stream_is("8:12345", 8, 12345));
        assert!(!journal_stream_is("8:12345", 8, 12346));
        assert!(!journal_stream_is("garbage", 8, 12345));
        assert!(!journal_stream_is("", 0, 0));
    }

    #[test]
    fn native_protocol_fields() {
        let mut buf = Vec::new();
        put_field(&mut buf, "MESSAGE", b"one line");
        put_field(&mut buf, "CLSYNC_ERROR", b"two\nlines");
        let mut want = b"MESSAGE=one line\nCLSYNC_ERROR\n".to_vec();
        want.extend_from_slice(&9u64.to_le_bytes());
        want.extend_from_slice(b"two\nlines\n");
        assert_eq!(buf, want);
        assert_eq!(field_name(&["job"]), "CLSYNC_JOB");
        assert_eq!(field_name(&["job", "source.dir"]), "CLSYNC_JOB_SOURCE_DIR");
        assert_eq!(field_name(&["x".repeat(100).as_str()]).len(), 64);
    }

    #[test]
    fn syslog_lines() {
        assert_eq!(
            syslog_line(3, 6, "Nov  3 04:05:06", 42, "job{name=www}: synced"),
            "<30>Nov  3 04:05:06 clsync[42]: job{name=www}: synced"
        );
        assert_eq!(syslog_line(19, 3, "x", 1, "m"), "<155>x clsync[1]: m");
        let t = local_time();
        assert_eq!(t.len(), 15, "{t:?}");
    }

    /// Events reach a datagram socket as journald entries, with the job span's name as
    /// `CLSYNC_JOB` and the event's fields.
    #[test]
    fn journald_layer_sends_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sock");
        let rx = UnixDatagram::bind(&path).unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let layer = Journald::new(&path, 3).unwrap();
        let sub = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(sub, || {
            let span = tracing::info_span!("job", name = "www");
            let _g = span.enter();
            tracing::warn!(event = "sync-failed", batch = 7u64, "sync failed:\nboom");
        });
        let mut buf = vec![0u8; 65536];
        let n = rx.recv(&mut buf).unwrap();
        let entry = &buf[..n];
        let text = String::from_utf8_lossy(entry);
        for want in [
            "CLSYNC_JOB=www\n",
            "CLSYNC_EVENT=sync-failed\n",
            "CLSYNC_BATCH=7\n",
            "PRIORITY=4\n",
            "SYSLOG_IDENTIFIER=clsync\n",
        ] {
            assert!(text.contains(want), "{want:?} missing from {text:?}");
        }
        assert!(
            text.contains("job{name=www}: sync failed:\nboom batch=7"),
            "{text:?}"
        );
    }
}
