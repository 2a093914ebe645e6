//! The daemon: owns the jobs, turns signals into graceful stops and reloads.
//!
//! A reload is a diff by job name: jobs whose effective configuration is unchanged are not
//! touched (their watches, queues and workers keep running), changed jobs are restarted,
//! removed ones stopped, new ones started. A configuration with any error changes nothing.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crossbeam_channel::{Receiver, unbounded};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tracing::{error, info, warn};

use crate::config::{self, JobConfig, Loaded};
use crate::job::Job;

/// What a reload does, by job name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct JobsDiff {
    pub add: Vec<String>,
    pub remove: Vec<String>,
    pub change: Vec<String>,
}

impl JobsDiff {
    /// Compares running jobs with a new configuration. Disabled jobs count as absent.
    pub fn new<'a>(
        old: impl IntoIterator<Item = &'a JobConfig>,
        new: impl IntoIterator<Item = &'a JobConfig>,
    ) -> JobsDiff {
        let old: BTreeMap<&str, &JobConfig> = old
            .into_iter()
            .filter(|j| j.enabled)
            .map(|j| (j.name.as_str(), j))
            .collect();
        let new: BTreeMap<&str, &JobConfig> = new
            .into_iter()
            .filter(|j| j.enabled)
            .map(|j| (j.name.as_str(), j))
            .collect();
        let mut d = JobsDiff::default();
        for (name, cfg) in &new {
            match old.get(name) {
                None => d.add.push(name.to_string()),
                Some(o) if *o != *cfg => d.change.push(name.to_string()),
                Some(_) => {}
            }
        }
        for name in old.keys() {
            if !new.contains_key(name) {
                d.remove.push(name.to_string());
            }
        }
        d
    }

    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty() && self.change.is_empty()
    }
}

/// Logs every diagnostic of a load.
pub fn log_diagnostics(loaded: &Loaded) {
    for d in &loaded.diagnostics {
        match d.severity {
            config::Severity::Error => error!("{d}"),
            config::Severity::Warning => warn!("{d}"),
        }
    }
}

pub struct Supervisor {
    dir: PathBuf,
    jobs: BTreeMap<String, Job>,
}

impl Supervisor {
    /// Starts every valid, enabled job of `loaded`. Invalid job files are reported and
    /// skipped: one bad file does not keep the good jobs from running.
    pub fn start(loaded: &Loaded) -> anyhow::Result<Supervisor> {
        let mut sup = Supervisor {
            dir: loaded.dir.clone(),
            jobs: BTreeMap::new(),
        };
        for cfg in loaded.jobs.iter().filter(|j| j.enabled) {
            sup.start_job(cfg.clone());
        }
        let disabled = loaded.jobs.iter().filter(|j| !j.enabled).count();
        info!(
            "started {} job(s){}",
            sup.jobs.len(),
            if disabled > 0 {
                format!(", {disabled} disabled")
            } else {
                String::new()
            }
        );
        if sup.jobs.is_empty() {
            warn!(
                "no job to run: add job files to {}/jobs.d/ and reload (SIGHUP)",
                sup.dir.display()
            );
        }
        Ok(sup)
    }

    fn start_job(&mut self, cfg: JobConfig) {
        let name = cfg.name.clone();
        match Job::start(cfg) {
            Ok(job) => {
                self.jobs.insert(name, job);
            }
            Err(e) => error!("job {name}: cannot start: {e:#}"),
        }
    }

    fn stop_jobs(&mut self, names: &[String]) {
        let jobs: Vec<Job> = names.iter().filter_map(|n| self.jobs.remove(n)).collect();
        for j in &jobs {
            j.stop();
        }
        for j in jobs {
            j.join();
        }
    }

    /// Applies a new configuration as a diff; with any error in it, changes nothing.
    pub fn reload(&mut self) -> bool {
        let loaded = config::load_dir(&self.dir);
        log_diagnostics(&loaded);
        if loaded.has_errors() {
            error!(
                "reload refused: {} error(s) in the configuration; every job keeps running as before",
                loaded.errors().count()
            );
            return false;
        }
        let diff = JobsDiff::new(self.jobs.values().map(|j| j.config()), loaded.jobs.iter());
        if diff.is_empty() {
            info!("reload: nothing changed");
            return true;
        }
        info!(
            "reload: starting {:?}, restarting {:?}, stopping {:?}",
            diff.add, diff.change, diff.remove
        );
        let mut stopping = diff.remove.clone();
        stopping.extend(diff.change.iter().cloned());
        self.stop_jobs(&stopping);
        for cfg in loaded.jobs {
            if diff.add.contains(&cfg.name) || diff.change.contains(&cfg.name) {
                self.start_job(cfg);
            }
        }
        true
    }

    /// Stops every job gracefully.
    pub fn shutdown(mut self) {
        let names: Vec<String> = self.jobs.keys().cloned().collect();
        self.stop_jobs(&names);
    }

    /// Runs until SIGTERM or SIGINT; SIGHUP reloads.
    pub fn run(mut self) -> anyhow::Result<()> {
        let signals = signal_channel()?;
        for sig in signals.iter() {
            match sig {
                SIGHUP => {
                    info!("SIGHUP: reloading {}", self.dir.display());
                    self.reload();
                }
                SIGTERM | SIGINT => {
                    info!("signal {sig}: finishing syncs in flight and stopping");
                    break;
                }
                _ => {}
            }
        }
        self.shutdown();
        info!("stopped");
        Ok(())
    }
}

fn signal_channel() -> anyhow::Result<Receiver<i32>> {
    let mut signals = Signals::new([SIGHUP, SIGTERM, SIGINT])?;
    let (tx, rx) = unbounded();
    std::thread::Builder::new()
        .name("clsync-signals".into())
        .spawn(move || {
            for s in signals.forever() {
                if tx.send(s).is_err() {
                    break;
                }
            }
        })?;
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Destination, Mode, RsyncOptions};
    use std::time::Duration;

    fn job(name: &str, delay_ms: u64, enabled: bool) -> JobConfig {
        JobConfig {
            name: name.into(),
            file: PathBuf::from(format!("/etc/clsync/jobs.d/{name}.toml")),
            enabled,
            source: PathBuf::from("/src"),
            destination: Destination::Local(PathBuf::from("/dst")),
            mode: Mode::Rsync,
            delay: Duration::from_millis(delay_ms),
            exclude: vec![],
            rules: vec![],
            rules_file: None,
            rules_file_text: None,
            initial_sync: true,
            big_file: None,
            workers: 2,
            rsync: RsyncOptions {
                path: "rsync".into(),
                args: vec![],
            },
        }
    }

    #[test]
    fn diff_by_name_and_value() {
        let cases: &[(&[JobConfig], &[JobConfig], JobsDiff)] = &[
            (&[], &[], JobsDiff::default()),
            (
                &[job("a", 1, true)],
                &[job("a", 1, true)],
                JobsDiff::default(),
            ),
            (
                &[job("a", 1, true), job("b", 1, true)],
                &[job("a", 2, true), job("c", 1, true)],
                JobsDiff {
                    add: vec!["c".into()],
                    remove: vec!["b".into()],
                    change: vec!["a".into()],
                },
            ),
            (
                &[job("a", 1, true)],
                &[job("a", 1, false)],
                JobsDiff {
                    remove: vec!["a".into()],
                    ..JobsDiff::default()
                },
            ),
        ];
        for (old, new, want) in cases {
            assert_eq!(&JobsDiff::new(old.iter(), new.iter()), want);
        }
    }
}
