//! `delete`: what a job may remove at its destination, with lsyncd's four meanings.
//!
//! `true` (the default): extraneous files are removed by every sync. `false`: nothing is ever
//! removed; a renamed file is copied to its new name and keeps its old one. `"startup"`: only
//! the initial sync (the full sync that starts a job: daemon start, job start, a reload that
//! restarts it, `clsync sync`; not the one after a vanished source came back) removes
//! extraneous files; deletions and renames seen while running are not applied. `"running"`:
//! only deletions seen as events are applied; no full sync removes anything (neither the
//! initial sync, nor a verification, nor the rescan after a lost-events overflow), so that
//! files the destination held beside the source are kept. A full sync that is not the
//! initial one removes only with `true`: a verification or a rescan never removes, under
//! `"startup"`, what was deleted at the source while running.

/// A job's `delete` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delete {
    #[default]
    Always,
    Never,
    Startup,
    Running,
}

impl Delete {
    /// The setting as written in a job file (`true`, `false`, `"startup"`, `"running"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Delete::Always => "true",
            Delete::Never => "false",
            Delete::Startup => "startup",
            Delete::Running => "running",
        }
    }

    /// Reads a TOML value; `Err` holds the message for a wrong one.
    pub fn parse(v: &toml::Value) -> Result<Delete, String> {
        match v {
            toml::Value::Boolean(true) => Ok(Delete::Always),
            toml::Value::Boolean(false) => Ok(Delete::Never),
            toml::Value::String(s) if s == "startup" => Ok(Delete::Startup),
            toml::Value::String(s) if s == "running" => Ok(Delete::Running),
            other => Err(format!(
                "delete must be true, false, \"startup\" or \"running\", not {other}"
            )),
        }
    }

    /// May a run remove things at the destination? `full`: the run compares the whole tree;
    /// `initial`: it is the job's initial sync.
    pub fn removes(self, full: bool, initial: bool) -> bool {
        match self {
            Delete::Always => true,
            Delete::Never => false,
            Delete::Startup => full && initial,
            Delete::Running => !full,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_runs_remove() {
        // (live, initial full, other full)
        let table = [
            (Delete::Always, [true, true, true]),
            (Delete::Never, [false, false, false]),
            (Delete::Startup, [false, true, false]),
            (Delete::Running, [true, false, false]),
        ];
        for (d, want) in table {
            let got = [
                d.removes(false, false),
                d.removes(true, true),
                d.removes(true, false),
            ];
            assert_eq!(got, want, "{d:?}");
        }
    }

    #[test]
    fn parses_the_four_values_only() {
        for d in [
            Delete::Always,
            Delete::Never,
            Delete::Startup,
            Delete::Running,
        ] {
            let v: toml::Value = match d {
                Delete::Always => true.into(),
                Delete::Never => false.into(),
                _ => d.as_str().into(),
            };
            assert_eq!(Delete::parse(&v), Ok(d));
        }
        let e = Delete::parse(&"yes".into()).unwrap_err();
        assert_eq!(
            e,
            "delete must be true, false, \"startup\" or \"running\", not \"yes\""
        );
        assert!(Delete::parse(&1.into()).is_err());
    }
}
