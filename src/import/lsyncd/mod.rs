//! `clsync import lsyncd FILE`: an lsyncd 2.x configuration as clsync jobs.
//!
//! The file is evaluated ([`lua`]) in a sandbox that records `settings` and every `sync{}`
//! call with its line; each `sync{}` becomes a job ([`sync`]), the settings become
//! `clsync.toml` ([`settings`]). A configuration that cannot be evaluated (a Lua error, a
//! setting lsyncd does not know, a module it loads) is reported with Lua's message, which
//! names the line, and nothing is written.

pub mod excludes;
pub mod lua;
pub mod rsync_table;
pub mod settings;
pub mod sync;
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
        file: &file,
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
