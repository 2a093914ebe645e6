//! `clsync import lsyncd FILE`: an lsyncd 2.x configuration as clsync jobs.
//!
//! The file is evaluated ([`lua`]) in a sandbox that records `settings` and every `sync{}`
//! call with its line; each `sync{}` becomes a job ([`sync`], with its target, filters and
//! rsync/ssh tables in `target`, `filters` and `transport`), the settings become
//! `clsync.toml` ([`settings`]). A configuration that cannot be evaluated (a Lua error, a
//! setting lsyncd does not know, a module it loads) is reported with Lua's message, which
//! names the line, and nothing is written.

pub mod excludes;
mod filters;
pub mod lua;
pub mod rsync_table;
pub mod settings;
pub mod sync;
mod target;
mod transport;
pub mod value;

use std::path::Path;

use super::Imported;

/// Imports the lsyncd configuration at `path`.
pub fn import(path: &Path) -> Imported {
    let mut imported = Imported::default();
    let file = path.display().to_string();
    let ev = match lua::evaluate(path) {
        Ok(ev) => ev,
        Err(e) => {
            imported.findings.error(
                e.at,
                format!(
                    "{} (the configuration cannot be evaluated; nothing was imported)",
                    e.message
                ),
            );
            return imported;
        }
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .canonicalize()
        .unwrap_or_default();
    let cwd = std::env::current_dir().unwrap_or_default();
    for (loc, hook) in &ev.hooks {
        imported.findings.warn(
            loc.to_string(),
            format!("{hook}() sets up Lua that runs while lsyncd runs: not carried over (clsync runs no Lua)"),
        );
    }
    if ev.syncs.is_empty() {
        imported.findings.error(
            &file,
            "the configuration has no sync{}: there is nothing to import",
        );
        return imported;
    }
    settings::map(
        &ev.settings,
        &file,
        &mut imported.main,
        &mut imported.findings,
    );
    if imported.main.has_keys() {
        imported.main.header(format!(
            "Imported by `clsync import lsyncd` from the settings of {file}."
        ));
    }
    let ctx = sync::Ctx {
        dir: &dir,
        cwd: &cwd,
    };
    for call in &ev.syncs {
        if let Some(job) = sync::map(call, &ctx, &mut imported.findings) {
            imported.jobs.push(job);
        }
    }
    imported
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::Severity;

    /// Imports `code` (beside `files`), returning the jobs as TOML tables and the findings.
    fn run(code: &str, files: &[(&str, &[u8])]) -> (Vec<(String, toml::Table)>, Imported) {
        let t = tempfile::tempdir().unwrap();
        for (n, c) in files {
            std::fs::write(t.path().join(n), c).unwrap();
        }
        let p = t.path().join("lsyncd.conf.lua");
        std::fs::write(&p, code).unwrap();
        let imported = import(&p);
        let jobs = imported
            .jobs
            .iter()
            .map(|j| {
                let text = j.doc.render();
                let table: toml::Table =
                    toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
                (j.name.clone(), table)
            })
            .collect();
        (jobs, imported)
    }

    fn says(imported: &Imported, severity: Severity, part: &str) -> bool {
        imported
            .findings
            .of(severity)
            .any(|f| f.message.contains(part))
    }

    #[test]
    fn name_direct_delete_filter_and_max_delays() {
        let (jobs, imp) = run(
            "sync{default.direct, name='docs', source='/s', target='/t', maxDelays=1, delete='running', filter={'- *.o'}}\n",
            &[],
        );
        let (name, job) = &jobs[0];
        assert_eq!(name, "docs");
        assert_eq!(job["mode"].as_str(), Some("mirror"));
        assert_eq!(job["delay"].as_str(), Some("0s"));
        assert!(job.get("rsync").is_none(), "{job:?}");
        assert_eq!(job["delete"].as_str(), Some("running"));
        assert!(!says(&imp, Severity::Warning, "delete"));
        assert!(says(&imp, Severity::Warning, "filter has no equivalent"));
    }

    #[test]
    fn rsh_exit_codes_and_settings() {
        let (jobs, imp) = run(
            "settings{maxProcesses=3, pidfile='/run/l.pid', logfacility='local3'}\n\
             sync{default.rsync, source='/s', target='u@h:/d', exitcodes={[0]='ok', [23]='ok', [5]='again'},\n\
             rsync={archive=true, rsh='/usr/bin/ssh -p 2200 -l \"a b\"', _extra={'--timeout=30'}}}\n",
            &[],
        );
        let (_, job) = &jobs[0];
        assert_eq!(job["destination"].as_str(), Some("u@h:/d"));
        assert_eq!(job["workers"].as_integer(), Some(3));
        assert_eq!(job["ignore_exit_codes"].as_array().unwrap().len(), 1);
        assert_eq!(job["ssh"]["command"].as_str(), Some("/usr/bin/ssh"));
        let opts: Vec<&str> = job["ssh"]["options"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(opts, ["-p", "2200", "-l", "a b"]);
        assert_eq!(job["rsync"]["args"][0].as_str(), Some("--timeout=30"));
        let main: toml::Table = toml::from_str(&imp.main.render()).unwrap();
        assert_eq!(main["daemon"]["pid_file"].as_str(), Some("/run/l.pid"));
        assert_eq!(main["daemon"]["syslog_facility"].as_str(), Some("local3"));
        assert!(!imp.findings.lost_something(), "{:?}", imp.findings);
    }

    #[test]
    fn refusals_name_the_call() {
        let (jobs, imp) = run(
            "sync{default.rsync, source='/s', target='/t', delai=1}\n\
             sync{default.rsyncssh, source='/s', host='h', targetdir='/d', maxProcesses=2}\n\
             sync{default.rsync, source='/s\\255', target='/t'}\n\
             sync{default.rsync, source='/s'}\n\
             sync{default.rsync, source='/ok', target='/t2', excludeFrom='/etc/passwd'}\n",
            &[],
        );
        assert_eq!(jobs.len(), 1);
        let refused: Vec<&crate::import::Finding> = imp.findings.of(Severity::Refused).collect();
        assert_eq!(refused.len(), 4, "{refused:?}");
        assert!(refused[0].at.ends_with(":1") && refused[0].message.contains("\"delai\" unknown"));
        assert!(refused[1].message.contains("maxProcesses set to 1"));
        assert!(refused[2].message.contains("not UTF-8"));
        assert!(refused[3].message.contains("needs \"target\""));
        assert!(says(
            &imp,
            Severity::Warning,
            "excludeFrom = \"/etc/passwd\" not carried over"
        ));
    }

    #[test]
    fn exclude_from_beside_the_configuration() {
        let (jobs, imp) = run(
            "sync{default.rsync, source='/s', target='/t', exclude={'*.swp'}, excludeFrom='ex.txt'}\n",
            &[("ex.txt", b"# c\n*.o\n+ keep\n- /tmp/\n")],
        );
        let ex: Vec<&str> = jobs[0].1["exclude"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(ex, ["*.swp", "*.o", "/tmp/"]);
        assert!(jobs[0].1.get("exclude_from").is_none());
        assert!(!imp.findings.lost_something(), "{:?}", imp.findings);
    }

    #[test]
    fn exclude_from_rsync_reads_alike_is_named_and_delete_is_carried_over() {
        let (jobs, imp) = run(
            "sync{default.rsync, source='/s', target='/t', exclude={'*.swp'}, excludeFrom='ex.txt', delete=false}\n\
             sync{default.rsync, source='/s2', target='/t2', delete='startup'}\n",
            &[("ex.txt", b"# c\n*.o\n/tmp/\n")],
        );
        let job = &jobs[0].1;
        let file = job["exclude_from"].as_str().unwrap();
        assert!(file.starts_with('/') && file.ends_with("/ex.txt"), "{file}");
        assert_eq!(job["exclude"].as_array().unwrap().len(), 1, "{job:?}");
        assert_eq!(job["delete"].as_bool(), Some(false));
        assert_eq!(jobs[1].1["delete"].as_str(), Some("startup"));
        assert!(!imp.findings.lost_something(), "{:?}", imp.findings);
    }
}
