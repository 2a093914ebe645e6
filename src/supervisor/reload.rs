//! Reloading the configuration (SIGHUP or `clsync reload`): a `JobsDiff` applied, or,
//! with any error in the new configuration, nothing changed at all.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

use super::diff::JobsDiff;
use super::status::ReloadReport;
use super::{Supervisor, log_diagnostics};
use crate::config::{self, Loaded};

/// The answer to a reload request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReloadAnswer {
    pub ok: bool,
    /// What the reload did; absent when the request never reached the supervisor.
    #[serde(default)]
    pub reload: Option<ReloadReport>,
    /// Why the request was not answered (the control socket's refusal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Supervisor {
    /// Applies a new configuration as a diff; with any error in it, changes nothing.
    pub(super) fn reload(&mut self) -> ReloadAnswer {
        let _ = sd_notify::notify(&[
            sd_notify::NotifyState::Reloading,
            sd_notify::NotifyState::monotonic_usec_now()
                .unwrap_or(sd_notify::NotifyState::MonotonicUsec(0)),
        ]);
        let loaded = config::load_dir(&self.dir);
        log_diagnostics(&loaded);
        let report = if loaded.has_errors() {
            refused(&loaded)
        } else {
            self.apply(&loaded)
        };
        self.metrics.reloaded(report.ok);
        let answer = ReloadAnswer {
            ok: report.ok,
            reload: Some(report.clone()),
            error: None,
        };
        self.last_reload = Some(report);
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        self.state_changed();
        answer
    }

    /// Stops removed and changed jobs, starts new and changed ones.
    fn apply(&mut self, loaded: &Loaded) -> ReloadReport {
        let diff = JobsDiff::new(self.jobs.values().map(|j| j.config()), loaded.jobs.iter());
        if diff.is_empty() {
            info!("reload: no job changed");
        } else {
            info!(
                "reload: starting {:?}, restarting {:?}, stopping {:?}",
                diff.add, diff.change, diff.remove
            );
        }
        let mut stopping = diff.remove.clone();
        stopping.extend(diff.change.iter().cloned());
        self.stop_jobs(&stopping);
        for cfg in &loaded.jobs {
            if diff.add.contains(&cfg.name) {
                self.start_job(cfg.clone(), false);
            } else if diff.change.contains(&cfg.name) {
                self.start_job(cfg.clone(), true);
            }
        }
        if loaded.daemon != self.daemon {
            warn!("[daemon] settings changed: they take effect at the next restart");
        }
        self.disabled = loaded.jobs.iter().filter(|j| !j.enabled).cloned().collect();
        self.invalid = Vec::new();
        ReloadReport {
            time: SystemTime::now(),
            ok: true,
            errors: Vec::new(),
            added: diff.add,
            changed: diff.change,
            removed: diff.remove,
        }
    }
}

/// The report of a reload refused for the configuration's errors.
fn refused(loaded: &Loaded) -> ReloadReport {
    let errors: Vec<String> = loaded.errors().map(|d| d.to_string()).collect();
    error!(
        "reload refused: {} error(s) in the configuration; every job keeps running as before",
        errors.len()
    );
    ReloadReport {
        time: SystemTime::now(),
        ok: false,
        errors,
        added: Vec::new(),
        changed: Vec::new(),
        removed: Vec::new(),
    }
}
