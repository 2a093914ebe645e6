//! `source` and `destination` / `destinations`: what is synced to where. A destination is
//! remote when rsync would read it so; a local one may neither be inside the source nor
//! contain it (real paths compared, so links do not hide it).

use std::fs;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::context::{Checked, Context, NoValue, Role};
use super::mode::ModeName;
use crate::config::diag::Diagnostic;
use crate::config::model::Destination;
use crate::config::paths::{is_remote, real_path, resolve};

/// The source directory; one that does not exist (yet) is a warning: the job waits for it.
pub(super) fn source(cx: &Context<'_>, diags: &mut Vec<Diagnostic>) -> Checked<PathBuf> {
    let f = cx.file;
    let s = match cx.raw.source.as_ref() {
        None if cx.role == Role::Defaults => return Err(NoValue),
        None => {
            let eof = cx.eof();
            diags.push(f.error(eof..eof, "missing required key `source`"));
            return Err(NoValue);
        }
        Some(s) if s.get_ref().is_empty() => {
            diags.push(f.error(s.span(), "`source` is empty"));
            return Err(NoValue);
        }
        Some(s) => s,
    };
    let p = resolve(cx.dir, s.get_ref());
    match fs::metadata(&p) {
        Ok(m) if !m.is_dir() => {
            diags.push(f.error(
                s.span(),
                format!("source {} is not a directory", p.display()),
            ));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            diags.push(f.warning(
                s.span(),
                format!(
                    "source {} does not exist (yet): the job will wait for it",
                    p.display()
                ),
            ));
        }
        Err(e) => {
            diags.push(f.warning(s.span(), format!("source {}: {e}", p.display())));
        }
    }
    Ok(p)
}

/// One destination, or several (a fan-out: one job per target, each with its own queue and
/// retry state).
pub(super) fn destinations(
    cx: &Context<'_>,
    mode: Checked<ModeName>,
    source: Option<&Path>,
    diags: &mut Vec<Diagnostic>,
) -> Checked<Vec<Destination>> {
    let f = cx.file;
    let check = |s: &Spanned<String>, diags: &mut Vec<Diagnostic>| {
        destination(cx, s, mode.ok(), source, diags)
    };
    match (cx.raw.destination.as_ref(), cx.raw.destinations.as_ref()) {
        (None, None) if cx.role == Role::Defaults => Err(NoValue),
        (None, None) => {
            let eof = cx.eof();
            diags.push(f.error(
                eof..eof,
                "missing required key `destination` (or `destinations`)",
            ));
            Err(NoValue)
        }
        (Some(_), Some(m)) => {
            diags.push(f.error(
                m.span(),
                "set either `destination` or `destinations`, not both",
            ));
            Err(NoValue)
        }
        (Some(s), None) => check(s, diags).map(|d| vec![d]),
        (None, Some(m)) if m.get_ref().is_empty() => {
            diags.push(f.error(m.span(), "`destinations` is empty"));
            Err(NoValue)
        }
        (None, Some(m)) => {
            let mut out = Vec::new();
            let mut ok = true;
            for s in m.get_ref() {
                match check(s, diags) {
                    Ok(d) if out.contains(&d) => {
                        diags.push(f.error(s.span(), "the same destination twice"));
                        ok = false;
                    }
                    Ok(d) => out.push(d),
                    Err(NoValue) => ok = false,
                }
            }
            if ok { Ok(out) } else { Err(NoValue) }
        }
    }
}

/// One destination as written.
fn destination(
    cx: &Context<'_>,
    s: &Spanned<String>,
    mode: Option<ModeName>,
    source: Option<&Path>,
    diags: &mut Vec<Diagnostic>,
) -> Checked<Destination> {
    let f = cx.file;
    if s.get_ref().is_empty() {
        diags.push(f.error(s.span(), "destination is empty"));
        return Err(NoValue);
    }
    if mode == Some(ModeName::Rclone) {
        return rclone_destination(cx, s, diags);
    }
    if is_remote(s.get_ref()) {
        if mode == Some(ModeName::Mirror) {
            diags.push(f.error(
                s.span(),
                "mode \"mirror\" needs a local destination; use mode \"rsync\" for remote ones",
            ));
        }
        return Ok(Destination::Remote(s.get_ref().clone()));
    }
    let p = resolve(cx.dir, s.get_ref());
    if let Some(src) = source {
        let (rs, rd) = (real_path(src), real_path(&p));
        if rd.starts_with(&rs) {
            diags.push(f.error(
                s.span(),
                format!(
                    "destination {} is inside the source {}: it would copy itself forever",
                    p.display(),
                    src.display()
                ),
            ));
        } else if rs.starts_with(&rd) {
            diags.push(f.error(
                s.span(),
                format!(
                    "destination {} contains the source {}: syncing with deletion would destroy the source",
                    p.display(),
                    src.display()
                ),
            ));
        }
    }
    if p == Path::new("/") {
        diags.push(f.error(s.span(), "destination cannot be `/`"));
    }
    Ok(Destination::Local(p))
}

/// A destination of mode rclone: an rclone remote, `remote:path` (or rclone's
/// `:backend:path`), kept as written.
fn rclone_destination(
    cx: &Context<'_>,
    s: &Spanned<String>,
    diags: &mut Vec<Diagnostic>,
) -> Checked<Destination> {
    let d = s.get_ref();
    let on_the_fly = d.strip_prefix(':').is_some_and(|r| r.contains(':'));
    if !(is_remote(d) || on_the_fly) || d.starts_with("rsync://") || d.starts_with('-') {
        diags.push(cx.file.error(
            s.span(),
            format!(
                "mode \"rclone\" needs an rclone remote as destination (`remote:path`, a remote of the rclone configuration), not {d:?}"
            ),
        ));
        return Err(NoValue);
    }
    if let Some(why) = super::rclone::unknown_remote(cx, d) {
        diags.push(cx.file.warning(s.span(), why));
    }
    Ok(Destination::Remote(d.clone()))
}
