//! Job names for imported jobs: valid file stems, unique within one import.
//!
//! A job's name is its file's stem, made of letters, digits, `-`, `_` and `.` (the
//! configuration also allows `@`, but that sign names fan-out targets, so imports do not
//! use it), and not starting with `.` (such files are not jobs). Names come from what the
//! original calls the job (lsyncd's `sync{name=...}`, the C clsync's label or block), else
//! from its destination.

use super::Job;

/// The longest name an import makes (the file name stays far below any limit).
const MAX_LEN: usize = 64;

/// `raw` made into a valid name: every run of other characters becomes one `_`, leading and
/// trailing `_`, `.` and `-` are dropped; `"job"` when nothing is left.
pub fn sanitize(raw: &str) -> String {
    let mut out = String::new();
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let trimmed = out.trim_matches(|c| c == '_' || c == '.' || c == '-');
    let mut name: String = trimmed.chars().take(MAX_LEN).collect();
    while name.ends_with(['_', '.', '-']) {
        name.pop();
    }
    if name.is_empty() {
        "job".to_string()
    } else {
        name
    }
}

/// A name from a destination: `backup@host:/srv/www` → `host_srv_www`,
/// `rsync://host/module/dir` → `host_module_dir`, `/mnt/backup/www` → `mnt_backup_www`.
pub fn from_destination(dest: &str) -> String {
    let d = dest.strip_prefix("rsync://").unwrap_or(dest);
    // The user part says nothing about what is synced.
    let d = match (d.find('@'), d.find([':', '/'])) {
        (Some(at), Some(sep)) if at < sep => &d[at + 1..],
        (Some(at), None) => &d[at + 1..],
        _ => d,
    };
    sanitize(d)
}

/// Makes the names of `jobs` unique, in order: the second `www` becomes `www-2`.
pub fn make_unique(jobs: &mut [Job]) {
    let mut taken: Vec<String> = Vec::new();
    for job in jobs.iter_mut() {
        let base = sanitize(&job.name);
        let mut name = base.clone();
        let mut n = 2;
        while taken.iter().any(|t| t.eq_ignore_ascii_case(&name)) {
            name = format!("{base}-{n}");
            n += 1;
        }
        taken.push(name.clone());
        job.name = name;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::Doc;

    #[test]
    fn names_are_valid_stems() {
        assert_eq!(sanitize("www"), "www");
        assert_eq!(sanitize("/srv/www/"), "srv_www");
        assert_eq!(sanitize("..hidden"), "hidden");
        assert_eq!(sanitize("a b\nc/ü"), "a_b_c");
        assert_eq!(sanitize("@@@"), "job");
        assert_eq!(sanitize(&"x".repeat(200)).len(), MAX_LEN);
    }

    #[test]
    fn names_from_destinations() {
        assert_eq!(from_destination("backup@host1:/srv/www/"), "host1_srv_www");
        assert_eq!(from_destination("host1:/srv/www"), "host1_srv_www");
        assert_eq!(from_destination("rsync://host/mod/dir"), "host_mod_dir");
        assert_eq!(from_destination("/mnt/backup/www"), "mnt_backup_www");
        assert_eq!(from_destination("/a@b/c"), "a_b_c");
    }

    #[test]
    fn duplicates_get_suffixes() {
        let job = |n: &str| Job {
            name: n.into(),
            doc: Doc::new(),
        };
        let mut jobs = vec![job("www"), job("www"), job("WWW"), job("other")];
        make_unique(&mut jobs);
        let names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, ["www", "www-2", "WWW-3", "other"]);
    }
}
