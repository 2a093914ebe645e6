//! An lsyncd `target` (or `host:targetdir`) as a clsync `destination`.
//!
//! rsync's reading decides what is remote (a `:` before any `/`, `rsync://`); `host::module`
//! is written as `rsync://host/module`, and a local target is made absolute against lsyncd's
//! working directory, lexically, as lsyncd hands it to rsync. Each reinterpretation comes
//! with a note for the report, so the user sees what the target became.

use std::path::Path;

use super::sync::Refusal;

pub(super) use crate::import::paths::absolute;

/// The destination of a target string, and a note on how it was read.
pub(super) fn destination(
    target: &str,
    cwd: &Path,
) -> Result<(String, bool, Option<String>), Refusal> {
    if let Some(rest) = target.strip_prefix("rsync://") {
        return Ok((format!("rsync://{rest}"), true, None));
    }
    if let Some(i) = target.find("::")
        && !target[..i].contains('/')
        && i > 0
    {
        let d = format!("rsync://{}/{}", &target[..i], &target[i + 2..]);
        let note = format!("target {target:?} (rsync daemon) is written as {d:?}");
        return Ok((d, true, Some(note)));
    }
    if crate::config::is_remote(target) {
        return Ok((target.to_string(), true, None));
    }
    let p = absolute(cwd, target);
    if p == Path::new("/") {
        return Err("target / cannot be a destination".into());
    }
    let note = (!Path::new(target).is_absolute()).then(|| {
        format!(
            "relative target {target:?} was resolved against the current directory, as lsyncd -nodaemon would: {}",
            p.display()
        )
    });
    let s = p.to_str().ok_or("the target is not UTF-8")?.to_string();
    Ok((s, false, note))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let cwd = Path::new("/home/u");
        assert_eq!(destination("/srv/x/", cwd).unwrap().0, "/srv/x");
        let (d, remote, note) = destination("trg", cwd).unwrap();
        assert_eq!((d.as_str(), remote), ("/home/u/trg", false));
        assert!(note.is_some());
        assert_eq!(destination("h:/d/", cwd).unwrap().0, "h:/d/");
        assert_eq!(destination("u@h:d", cwd).unwrap().0, "u@h:d");
        assert_eq!(
            destination("h::mod/sub", cwd).unwrap().0,
            "rsync://h/mod/sub"
        );
        assert_eq!(destination("rsync://h/m", cwd).unwrap().0, "rsync://h/m");
        assert!(destination("/", cwd).is_err());
    }
}
