//! Fan-out: a job file with several `destinations` runs one job per target.
//!
//! Each target has its own queue and retry state, so that one target down holds back no
//! other (they all follow one monitor of the source, see `job::hub`). A target's
//! identity is its destination alone: its name is `NAME@` and the destination with every
//! byte outside `[A-Za-z0-9._-]` written as `_`, and its configuration holds no other
//! target. So a reload that edits, adds or removes one target restarts that one only, and
//! the others keep their names.

use super::model::{Destination, JobConfig};
use super::socket::fnv1a;

/// The jobs of a job file: itself, or one per target.
pub(super) fn expand(job: JobConfig) -> Vec<JobConfig> {
    if job.fan_out.len() < 2 {
        return vec![job];
    }
    let labels: Vec<String> = job.fan_out.iter().map(label).collect();
    job.fan_out
        .iter()
        .zip(&labels)
        .map(|(d, l)| {
            // Two destinations that read the same once sanitized (`/a_b`, `/a/b`) are told
            // apart by a hash of each one's own text.
            let name = if labels.iter().filter(|x| *x == l).count() > 1 {
                format!(
                    "{}@{l}-{:08x}",
                    job.name,
                    fnv1a(d.to_string().as_bytes()) as u32
                )
            } else {
                format!("{}@{l}", job.name)
            };
            JobConfig {
                name,
                destination: d.clone(),
                fan_out: vec![d.clone()],
                target_of: Some(job.name.clone()),
                ..job.clone()
            }
        })
        .collect()
}

/// `dst` as a name: `/srv/b/www` -> `srv_b_www`, `backup@host:/srv` -> `backup_host__srv`.
fn label(dst: &Destination) -> String {
    let text = dst.to_string();
    let out: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match out.trim_matches('_') {
        "" => "root".to_string(),
        t => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_dir;
    use crate::config::test_support::write;
    use std::fs;
    use std::path::PathBuf;

    #[test]
    fn labels_depend_on_the_destination_alone() {
        assert_eq!(
            label(&Destination::Local(PathBuf::from("/srv/b/www"))),
            "srv_b_www"
        );
        assert_eq!(
            label(&Destination::Remote("backup@host:/srv".into())),
            "backup_host__srv"
        );
        assert_eq!(label(&Destination::Local(PathBuf::from("/"))), "root");
    }

    #[test]
    fn several_destinations_fan_out_into_one_job_each() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("src")).unwrap();
        write(
            t.path(),
            "jobs.d/web.toml",
            "source = \"src\"\ndestinations = [\"a\", \"host:/b\"]\n",
        );
        write(
            t.path(),
            "jobs.d/bad.toml",
            "source = \"src\"\ndestination = \"x\"\ndestinations = [\"y\"]\n",
        );
        write(
            t.path(),
            "jobs.d/dup.toml",
            "source = \"src\"\ndestinations = [\"z\", \"z\"]\n",
        );
        let l = load_dir(t.path());
        let names: Vec<&str> = l.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names.len(), 2);
        assert!(
            names[0].starts_with("web@") && names[0].ends_with("_a"),
            "{names:?}"
        );
        assert_eq!(names[1], "web@host__b");
        assert_eq!(
            l.jobs[0].destination,
            Destination::Local(t.path().join("a"))
        );
        assert_eq!(l.jobs[1].destination, Destination::Remote("host:/b".into()));
        assert_eq!(l.jobs[1].target_of.as_deref(), Some("web"));
        let msgs: Vec<String> = l.errors().map(|d| d.to_string()).collect();
        assert!(
            msgs.iter()
                .any(|m| m.contains("bad.toml:3:16") && m.contains("not both")),
            "{msgs:#?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("dup.toml:2:22") && m.contains("twice")),
            "{msgs:#?}"
        );
    }
}
