//! What a reload does: the pure comparison of the running jobs with a new configuration,
//! by job name and effective value, so that unchanged jobs keep running untouched.

use std::collections::BTreeMap;

use crate::config::JobConfig;

/// What a reload does, by job name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Destination, HandlerOptions, Mode};
    use std::path::PathBuf;
    use std::time::Duration;

    fn job(name: &str, delay_ms: u64, enabled: bool) -> JobConfig {
        JobConfig {
            name: name.into(),
            file: PathBuf::from(format!("/etc/clsync/jobs.d/{name}.toml")),
            fan_out: vec![Destination::Local(PathBuf::from("/dst"))],
            target_of: None,
            enabled,
            source: PathBuf::from("/src"),
            destination: Destination::Local(PathBuf::from("/dst")),
            mode: Mode::Rsync,
            delay: Duration::from_millis(delay_ms),
            filter: Default::default(),
            initial_sync: true,
            delete: Default::default(),
            big_file: None,
            workers: 2,
            verify_interval: None,
            loop_guard: false,
            retry: Default::default(),
            rsync: HandlerOptions {
                ignore_exit_codes: vec![24],
                ..Default::default()
            },
            sandbox: Default::default(),
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
