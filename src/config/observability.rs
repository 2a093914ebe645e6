//! `[daemon]` keys for logging and metrics: `log_target`, `syslog_facility`, `metrics_file`,
//! `metrics_file_interval`, `metrics_listen`. Parsed here, checked with `file:line:column`
//! diagnostics like every other key.

use std::net::SocketAddr;
use std::time::Duration;

use super::diag::{Diagnostic, SourceFile};
use super::raw::RawDaemon;
use super::units::parse_duration;

/// Where the daemon's log goes (`[daemon] log_target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    Stderr,
    /// systemd-journald's native protocol, with structured fields (`CLSYNC_JOB`, ...).
    Journald,
    /// The local syslog socket (`/dev/log`; `/var/run/log` on FreeBSD).
    Syslog,
}

impl LogTarget {
    pub fn parse(s: &str) -> Result<LogTarget, String> {
        match s {
            "stderr" => Ok(LogTarget::Stderr),
            "journald" => Ok(LogTarget::Journald),
            "syslog" => Ok(LogTarget::Syslog),
            _ => Err(format!(
                "invalid log_target {s:?}: use \"stderr\", \"journald\" or \"syslog\" (unset: journald when systemd connects stderr to the journal, else stderr)"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogTarget::Stderr => "stderr",
            LogTarget::Journald => "journald",
            LogTarget::Syslog => "syslog",
        }
    }
}

/// The syslog facilities by name, with their codes (RFC 5424 section 6.2.1).
const FACILITIES: &[(&str, u8)] = &[
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// The facility of `[daemon]` without `syslog_facility`.
pub const DEFAULT_FACILITY: u8 = 3;

/// `[daemon] syslog_facility`: a facility name such as `"daemon"` or `"local3"`.
fn parse_facility(s: &str) -> Result<u8, String> {
    FACILITIES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(s))
        .map(|(_, c)| *c)
        .ok_or_else(|| {
            let names: Vec<&str> = FACILITIES.iter().map(|(n, _)| *n).collect();
            format!(
                "invalid syslog_facility {s:?}: use one of {}",
                names.join(", ")
            )
        })
}

/// How often, at most, `[daemon] metrics_file` is rewritten without `metrics_file_interval`.
pub const DEFAULT_METRICS_FILE_INTERVAL: Duration = Duration::from_secs(10);

/// `[daemon] metrics_listen`: `ADDRESS:PORT`, e.g. `"127.0.0.1:9798"` or `"[::1]:9798"`.
fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse::<SocketAddr>().map_err(|_| {
        format!(
            "invalid metrics_listen {s:?}: an ADDRESS:PORT such as \"127.0.0.1:9798\" or \"[::1]:9798\""
        )
    })
}

/// Checks the keys of this module, pushing one diagnostic per bad value.
pub(super) fn check(file: &SourceFile, d: &RawDaemon, diags: &mut Vec<Diagnostic>) {
    if let Some(v) = &d.log_target
        && let Err(e) = LogTarget::parse(v.get_ref())
    {
        diags.push(file.error(v.span(), e));
    }
    if let Some(v) = &d.syslog_facility
        && let Err(e) = parse_facility(v.get_ref())
    {
        diags.push(file.error(v.span(), e));
    }
    if let Some(v) = &d.metrics_file_interval {
        match parse_duration(v.get_ref()) {
            Ok(d) if d < Duration::from_millis(10) => diags.push(file.error(
                v.span(),
                format!(
                    "metrics_file_interval {:?} is too short: at least \"10ms\" (it bounds how often the file is rewritten)",
                    v.get_ref()
                ),
            )),
            Ok(_) => {}
            Err(e) => diags.push(file.error(v.span(), e)),
        }
    }
    if let Some(v) = &d.metrics_listen
        && let Err(e) = parse_listen(v.get_ref())
    {
        diags.push(file.error(v.span(), e));
    }
    if let Some(v) = &d.metrics_file
        && v.get_ref().trim().is_empty()
    {
        diags.push(file.error(
            v.span(),
            "metrics_file is empty: give a path, or leave it out",
        ));
    }
}

pub(super) fn log_target(d: &RawDaemon) -> Option<LogTarget> {
    d.log_target
        .as_ref()
        .and_then(|v| LogTarget::parse(v.get_ref()).ok())
}

pub(super) fn syslog_facility(d: &RawDaemon) -> Option<u8> {
    d.syslog_facility
        .as_ref()
        .and_then(|v| parse_facility(v.get_ref()).ok())
}

pub(super) fn metrics_file_interval(d: &RawDaemon) -> Option<Duration> {
    d.metrics_file_interval
        .as_ref()
        .and_then(|v| parse_duration(v.get_ref()).ok())
}

pub(super) fn metrics_listen(d: &RawDaemon) -> Option<SocketAddr> {
    d.metrics_listen
        .as_ref()
        .and_then(|v| parse_listen(v.get_ref()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn values() {
        assert_eq!(LogTarget::parse("journald"), Ok(LogTarget::Journald));
        assert!(LogTarget::parse("Journald").is_err());
        assert_eq!(parse_facility("daemon"), Ok(3));
        assert_eq!(parse_facility("LOCAL7"), Ok(23));
        assert!(parse_facility("local8").unwrap_err().contains("local7"));
        assert_eq!(
            parse_listen("127.0.0.1:9798").unwrap().to_string(),
            "127.0.0.1:9798"
        );
        assert!(parse_listen("[::1]:0").is_ok());
        assert!(parse_listen("localhost:9798").is_err());
        assert!(parse_listen("9798").is_err());
    }

    #[test]
    fn loaded_into_the_daemon_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("clsync.toml"),
            "[daemon]\nlog_target = \"syslog\"\nsyslog_facility = \"local3\"\nmetrics_file = \"run/m.prom\"\nmetrics_file_interval = \"2s\"\nmetrics_listen = \"[::1]:9798\"\n",
        )
        .unwrap();
        let loaded = super::super::load_dir(dir.path());
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        let d = &loaded.daemon;
        assert_eq!(d.log_target, Some(LogTarget::Syslog));
        assert_eq!(d.syslog_facility, Some(19));
        assert_eq!(
            d.metrics_file.as_deref(),
            Some(dir.path().join("run/m.prom").as_path())
        );
        assert_eq!(d.metrics_file_interval, Some(Duration::from_secs(2)));
        assert_eq!(d.metrics_listen.map(|a| a.port()), Some(9798));
        let none = super::super::DaemonConfig::default();
        assert_eq!(
            (
                none.log_target,
                none.metrics_file.as_ref(),
                none.metrics_listen
            ),
            (None, None, None)
        );
    }

    #[test]
    fn bad_values_point_at_their_line_and_column() {
        let text = "[daemon]\nlog_target = \"file\"\nsyslog_facility = \"local9\"\nmetrics_listen = \"x\"\nmetrics_file_interval = \"1ms\"\nmetrics_file = \"\"\n";
        let f = SourceFile::new(Path::new("clsync.toml"), text.into());
        let mut diags = Vec::new();
        let raw = super::super::raw::read_main(&f, &mut diags).unwrap();
        assert!(diags.is_empty(), "{diags:?}");
        check(&f, raw.daemon.as_ref().unwrap(), &mut diags);
        let msgs: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
        assert_eq!(msgs.len(), 5, "{msgs:#?}");
        assert!(msgs[0].starts_with("clsync.toml:2:14: invalid log_target \"file\""));
        assert!(msgs[1].starts_with("clsync.toml:3:19: invalid syslog_facility"));
        assert!(msgs[2].starts_with("clsync.toml:5:25: metrics_file_interval"));
        assert!(msgs[3].starts_with("clsync.toml:4:18: invalid metrics_listen"));
        assert!(msgs[4].starts_with("clsync.toml:6:16: metrics_file is empty"));
    }
}
