//! `[daemon]`: settings of the daemon itself, not of any job (log level, control socket, pid
//! and status files; the logging and metrics keys are checked in [`super::observability`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::diag::{Diagnostic, SourceFile};
use super::observability;
use super::paths::resolve;
use super::raw::RawDaemon;
use super::socket::{default_socket, socket_base};

/// Daemon-wide settings from `[daemon]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaemonConfig {
    /// A tracing filter directive such as `info` or `clsync=debug`.
    pub log_level: Option<String>,
    /// The control socket; `None` means the default for the configuration directory
    /// (see [`default_socket`]).
    pub socket: Option<PathBuf>,
    /// Written with the daemon's PID at start, removed at exit.
    pub pid_file: Option<PathBuf>,
    /// Rewritten (atomically) with the JSON status whenever a job's state changes.
    pub status_file: Option<PathBuf>,
    /// The status file's mode; `None`: [`DEFAULT_STATUS_FILE_MODE`].
    pub status_file_mode: Option<u32>,
    /// Where the log goes; `None`: journald when systemd connects stderr to the journal,
    /// else stderr.
    pub log_target: Option<observability::LogTarget>,
    /// The syslog facility code; `None`: `daemon`.
    pub syslog_facility: Option<u8>,
    /// The Prometheus text file (node_exporter's textfile collector), rewritten atomically.
    pub metrics_file: Option<PathBuf>,
    /// At most one rewrite of the metrics file per this interval.
    pub metrics_file_interval: Option<Duration>,
    /// Serve the metrics over HTTP on this address.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// The status file names paths of every job (and errors about them), so it is the daemon's
/// user's alone unless `[daemon] status_file_mode` says otherwise.
pub const DEFAULT_STATUS_FILE_MODE: u32 = 0o600;

impl DaemonConfig {
    /// The control socket of the daemon that runs configuration directory `dir`.
    pub fn socket_path(&self, dir: &Path) -> PathBuf {
        self.socket.clone().unwrap_or_else(|| default_socket(dir))
    }

    /// True when the socket goes to the `/tmp/clsync-<uid>` fallback (a non-root daemon
    /// without `XDG_RUNTIME_DIR` nor `[daemon] socket`): a directory in a place everyone may
    /// write, so it must be the daemon's own private one.
    pub fn socket_dir_private(&self) -> bool {
        self.socket.is_none() && socket_base().1
    }

    pub fn status_file_mode(&self) -> u32 {
        self.status_file_mode.unwrap_or(DEFAULT_STATUS_FILE_MODE)
    }
}

/// `[daemon] status_file_mode`: an octal string such as `"0640"`, at most `"0644"` (the
/// group and others may read the status, nobody but the daemon may write it).
pub fn parse_status_file_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix('0').filter(|d| d.len() == 3).unwrap_or(s);
    if digits.len() != 3 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(format!(
            "invalid status_file_mode {s:?}: an octal mode like \"0600\" or \"0640\""
        ));
    }
    let mode = u32::from_str_radix(digits, 8).map_err(|e| e.to_string())?;
    if mode & !0o644 != 0 {
        return Err(format!(
            "status_file_mode {s:?} allows more than \"0644\": group and others may only read the status file, and no one may execute it (e.g. \"0640\")"
        ));
    }
    Ok(mode)
}

/// Checks a log filter: comma-separated levels (`error` … `trace`, `off`) or `target=level`
/// directives. A bare word that is not a level would be taken by the tracing filter as a
/// target name and silence every other log line, typos included.
pub fn check_log_level(s: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
    for d in s.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = d.rsplit_once('=').map_or(d, |(_, l)| l);
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "invalid log level {d:?}: use error, warn, info, debug, trace or off, or TARGET=LEVEL (e.g. \"info,clsync::monitor=trace\")"
            ));
        }
    }
    if s.trim().is_empty() {
        return Err("empty log level".into());
    }
    Ok(())
}

pub(super) fn daemon_config(dir: &Path, d: &RawDaemon) -> DaemonConfig {
    let path = |s: &Option<Spanned<String>>| s.as_ref().map(|s| resolve(dir, s.get_ref()));
    DaemonConfig {
        log_level: d.log_level.as_ref().map(|s| s.get_ref().clone()),
        socket: path(&d.socket),
        pid_file: path(&d.pid_file),
        status_file: path(&d.status_file),
        status_file_mode: d
            .status_file_mode
            .as_ref()
            .and_then(|m| parse_status_file_mode(m.get_ref()).ok()),
        log_target: observability::log_target(d),
        syslog_facility: observability::syslog_facility(d),
        metrics_file: path(&d.metrics_file).filter(|_| {
            d.metrics_file
                .as_ref()
                .is_some_and(|f| !f.get_ref().trim().is_empty())
        }),
        metrics_file_interval: observability::metrics_file_interval(d),
        metrics_listen: observability::metrics_listen(d),
    }
}

/// Checks the values of `[daemon]`, one diagnostic per bad value.
pub(super) fn check(file: &SourceFile, d: &RawDaemon, diags: &mut Vec<Diagnostic>) {
    if let Some(l) = &d.log_level
        && let Err(e) = check_log_level(l.get_ref())
    {
        diags.push(file.error(l.span(), e));
    }
    if let Some(m) = &d.status_file_mode
        && let Err(e) = parse_status_file_mode(m.get_ref())
    {
        diags.push(file.error(m.span(), e));
    }
    observability::check(file, d, diags);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_dir;
    use std::fs;

    #[test]
    fn log_levels_are_checked() {
        for ok in ["info", "debug", "info,clsync::monitor=trace", "WARN", "off"] {
            assert!(check_log_level(ok).is_ok(), "{ok}");
        }
        for bad in ["infoo", "warning", "", "info,loud", "clsync=loud"] {
            assert!(check_log_level(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_file_modes_are_checked() {
        for (ok, want) in [
            ("0600", 0o600),
            ("600", 0o600),
            ("0640", 0o640),
            ("0644", 0o644),
            ("0400", 0o400),
        ] {
            assert_eq!(parse_status_file_mode(ok), Ok(want), "{ok}");
        }
        for bad in [
            "0664",
            "0646",
            "0660",
            "0700",
            "0755",
            "1600",
            "4644",
            "0o640",
            "640x",
            "",
            "0",
            "00600",
            "rw-r-----",
        ] {
            assert!(parse_status_file_mode(bad).is_err(), "{bad}");
        }
        let t = tempfile::tempdir().unwrap();
        fs::write(
            t.path().join("clsync.toml"),
            "[daemon]\nstatus_file = \"s.json\"\nstatus_file_mode = \"0666\"\n",
        )
        .unwrap();
        let loaded = load_dir(t.path());
        let msgs: Vec<String> = loaded.errors().map(|d| d.to_string()).collect();
        assert!(
            msgs.iter()
                .any(|m| m.contains("clsync.toml:3:20") && m.contains("0644")),
            "{msgs:#?}"
        );
        fs::write(
            t.path().join("clsync.toml"),
            "[daemon]\nstatus_file_mode = \"0640\"\n",
        )
        .unwrap();
        let loaded = load_dir(t.path());
        assert!(!loaded.has_errors());
        assert_eq!(loaded.daemon.status_file_mode(), 0o640);
        assert_eq!(DaemonConfig::default().status_file_mode(), 0o600);
    }
}
