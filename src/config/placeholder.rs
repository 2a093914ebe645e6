//! The whole-argument placeholders of `[command] args` (`%INCLUDE-LIST%`, `%source%`, …):
//! their names, and how an argument is told apart from a literal. The config checks a
//! template with it and the command handler expands it, so both read one table.

/// A whole-argument placeholder of `[command] args`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// One argument per path of the run, relative to the source, the root as `.`.
    IncludeList,
    /// The path of the run's list file.
    IncludeListPath,
    /// The path of the run's exclude file (NUL-separated rsync exclude patterns).
    ExcludeListPath,
    /// The arguments clsync itself would give rsync for the run, as separate arguments.
    RsyncArgs,
    /// `initialsync` for a full sync, else `sync`.
    Type,
    /// simple mode: the path's event (`initialsync`, `tree`, `sync`, `attrib`, `delete`).
    Event,
    /// simple mode: the absolute path.
    Path,
    Source,
    Destination,
    Job,
}

impl Placeholder {
    const ALL: [(&'static str, Placeholder); 10] = [
        ("%INCLUDE-LIST%", Placeholder::IncludeList),
        ("%INCLUDE-LIST-PATH%", Placeholder::IncludeListPath),
        ("%EXCLUDE-LIST-PATH%", Placeholder::ExcludeListPath),
        ("%RSYNC-ARGS%", Placeholder::RsyncArgs),
        ("%TYPE%", Placeholder::Type),
        ("%EVENT%", Placeholder::Event),
        ("%PATH%", Placeholder::Path),
        ("%source%", Placeholder::Source),
        ("%destination%", Placeholder::Destination),
        ("%job%", Placeholder::Job),
    ];

    /// `None` for a literal argument; `Some(Ok(_))` for a known placeholder; `Some(Err(()))`
    /// for an argument that looks like a placeholder (`%NAME%`, letters, digits, `-`, `_`)
    /// but is not one (a typo must not be passed on literally).
    pub fn parse(arg: &str) -> Option<Result<Placeholder, ()>> {
        let inner = arg.strip_prefix('%')?.strip_suffix('%')?;
        let mut chars = inner.chars();
        let looks = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !looks {
            return None;
        }
        Some(
            Self::ALL
                .iter()
                .find(|(n, _)| *n == arg)
                .map(|(_, p)| *p)
                .ok_or(()),
        )
    }

    /// The placeholders' names, for error messages.
    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|(n, _)| *n).collect()
    }

    /// `%EVENT%` and `%PATH%` describe one path: only mode `simple` runs once per path.
    pub fn simple_only(self) -> bool {
        matches!(self, Placeholder::Event | Placeholder::Path)
    }
}
