//! The daemon's status report: one typed value that the control socket sends, the status
//! file holds and `clsync status` renders, so that the three cannot disagree. Its JSON
//! (field names, times as RFC 3339 UTC to the second, `null` for what is unknown) is a
//! stable interface that scripts read: fields may be added, never renamed or removed.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::config::JobConfig;
use crate::job::{State, Status};

/// `clsync status --json`, the status file, and the control socket's `status` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub ok: bool,
    pub version: String,
    pub pid: u32,
    pub config_dir: String,
    #[serde(with = "rfc3339")]
    pub started: SystemTime,
    /// No enabled job is still starting or in its initial sync.
    pub ready: bool,
    pub last_reload: Option<ReloadReport>,
    /// Every job, running, disabled or invalid, by name.
    pub jobs: Vec<JobReport>,
}

impl StatusReport {
    /// True when an enabled job is failing or retrying (`clsync status` exits 4).
    pub fn unhealthy(&self) -> bool {
        self.jobs
            .iter()
            .any(|j| j.enabled && matches!(j.state, State::Failed | State::Retrying))
    }
}

/// The outcome of the last reload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReloadReport {
    #[serde(with = "rfc3339")]
    pub time: SystemTime,
    pub ok: bool,
    /// Every configuration error, when the reload was refused.
    pub errors: Vec<String>,
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

/// One job's line in the report. A job file that did not load has no mode, source or
/// destination, and its error as `last_error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobReport {
    pub name: String,
    pub enabled: bool,
    pub state: State,
    pub mode: Option<String>,
    pub source: Option<String>,
    pub destination: Option<String>,
    /// The job this one was fanned out from (one job per destination).
    pub target_of: Option<String>,
    pub watched_dirs: usize,
    pub unwatched_dirs: usize,
    pub queued: usize,
    pub syncs: u64,
    pub failures: u64,
    pub consecutive_failures: u32,
    pub initial_syncs: u64,
    #[serde(with = "rfc3339_option")]
    pub last_success: Option<SystemTime>,
    pub last_verify: Option<VerifyReport>,
    pub last_error: Option<ErrorReport>,
    /// The job's rsync and what its receiver accepts, as the handler reports it.
    pub rsync: Option<serde_json::Value>,
    /// `active`, `partial`, `off` or `unsupported` (see [`crate::sandbox::State`]).
    pub sandbox: Option<String>,
    /// The job's `delete`: `true`, `false`, `startup` or `running`.
    #[serde(default)]
    pub delete: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    #[serde(with = "rfc3339")]
    pub time: SystemTime,
    /// Paths the verification repaired, when the handler can tell.
    pub repaired: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorReport {
    #[serde(with = "rfc3339")]
    pub time: SystemTime,
    pub message: String,
    /// Retrying cannot fix it: it needs the administrator.
    #[serde(default)]
    pub permanent: bool,
}

impl JobReport {
    /// A job that loaded: running (`enabled`) with `status`, or disabled.
    pub fn of(cfg: &JobConfig, enabled: bool, s: &Status) -> JobReport {
        JobReport {
            name: cfg.name.clone(),
            enabled,
            state: s.state,
            mode: Some(cfg.mode.as_str().to_string()),
            source: Some(cfg.source.display().to_string()),
            destination: Some(cfg.destination.to_string()),
            target_of: cfg.target_of.clone(),
            last_success: s.last_success,
            last_verify: s
                .last_verify
                .map(|(time, repaired)| VerifyReport { time, repaired }),
            last_error: s.last_error.as_ref().map(|(time, m)| ErrorReport {
                time: *time,
                message: m.clone(),
                permanent: s.last_error_permanent,
            }),
            rsync: s.rsync.as_ref().and_then(|r| serde_json::to_value(r).ok()),
            sandbox: Some(
                crate::sandbox::state(cfg.sandbox.enabled)
                    .as_str()
                    .to_string(),
            ),
            delete: Some(cfg.delete.as_str().to_string()),
            ..JobReport::counters(&cfg.name, s)
        }
    }

    /// A job file that did not load, with its first error (`since`: when it was read).
    pub fn invalid(name: &str, error: &str, since: SystemTime) -> JobReport {
        JobReport {
            enabled: true,
            state: State::Failed,
            last_error: Some(ErrorReport {
                time: since,
                message: format!("invalid configuration: {error}"),
                permanent: false,
            }),
            ..JobReport::counters(name, &Status::default())
        }
    }

    /// The counters of `s`, everything else unknown.
    fn counters(name: &str, s: &Status) -> JobReport {
        JobReport {
            name: name.to_string(),
            enabled: false,
            state: s.state,
            mode: None,
            source: None,
            destination: None,
            target_of: None,
            watched_dirs: s.watched_dirs,
            unwatched_dirs: s.unwatched_dirs,
            queued: s.queued,
            syncs: s.syncs,
            failures: s.failures,
            consecutive_failures: s.consecutive_failures,
            initial_syncs: s.initial_syncs,
            last_success: None,
            last_verify: None,
            last_error: None,
            rsync: None,
            sandbox: None,
            delete: None,
        }
    }
}

/// RFC 3339 time, to the second, UTC.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A [`SystemTime`] as [`timestamp`] writes it.
mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::timestamp(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339(&text).map_err(D::Error::custom)
    }
}

/// An optional [`SystemTime`] as [`timestamp`] writes it, `null` when absent.
mod rfc3339_option {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::timestamp(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| humantime::parse_rfc3339(&text).map_err(D::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_report_round_trips_through_its_json() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut job = JobReport::invalid("bad", "jobs.d/bad.toml:1:1: unknown key", t);
        job.last_success = Some(t);
        job.last_verify = Some(VerifyReport {
            time: t,
            repaired: Some(2),
        });
        let report = StatusReport {
            ok: true,
            version: "1".into(),
            pid: 7,
            config_dir: "/etc/clsync".into(),
            started: t,
            ready: false,
            last_reload: Some(ReloadReport {
                time: t,
                ok: true,
                errors: vec![],
                added: vec!["a".into()],
                changed: vec![],
                removed: vec![],
            }),
            jobs: vec![job],
        };
        let v = serde_json::to_value(&report).unwrap();
        assert_eq!(v["started"], "2023-11-14T22:13:20Z");
        assert_eq!(v["jobs"][0]["state"], "failed");
        assert_eq!(v["jobs"][0]["mode"], serde_json::Value::Null);
        assert_eq!(v["jobs"][0]["last_verify"]["repaired"], 2);
        assert!(
            v["jobs"][0]["last_error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("invalid configuration: ")
        );
        let back: StatusReport = serde_json::from_value(v).unwrap();
        assert_eq!(back, report);
        assert!(back.unhealthy());
    }
}
