//! `clsync explain JOB PATH`: which exclude pattern or rule decides whether a path of a
//! job's source is synced, answered with the job's own filter and the path's real type.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::JobConfig;
use crate::model::Kind;
use crate::rules::Reason;

/// The answer to an explain request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplainReport {
    pub ok: bool,
    pub job: String,
    /// The path relative to the job's source.
    pub path: String,
    /// `directory`, `file` or `other`: what the path is, or (missing) what it looks like.
    pub kind: String,
    pub exists: bool,
    pub allowed: bool,
    /// Which pattern or rule decided, in words.
    pub explanation: String,
    /// The job's `delete` (`true`, `false`, `startup`, `running`): whether a path that
    /// is gone from the source, or extraneous, is removed at the destination, and when.
    #[serde(default)]
    pub delete: String,
    /// The job's exclude file (`exclude_from`), whose patterns follow `exclude`'s.
    #[serde(default)]
    pub exclude_from: Option<String>,
}

/// Explains `path` (absolute, or relative to the source) for the job `cfg`. `Err`: the
/// path is outside the source.
pub fn explain(cfg: &JobConfig, path: &str) -> Result<ExplainReport, String> {
    let filter = cfg.filter();
    let p = Path::new(path);
    let rel = if p.is_absolute() {
        p.strip_prefix(&cfg.source)
            .map_err(|_| {
                format!(
                    "{path} is not inside the source of job {} ({})",
                    cfg.name,
                    cfg.source.display()
                )
            })?
            .to_path_buf()
    } else {
        p.components().collect()
    };
    let meta = crate::fs::lstat_beneath(&cfg.source, &rel);
    let kind = match &meta {
        Ok(m) => m.kind(),
        Err(_) if path.ends_with('/') => Kind::Dir,
        Err(_) => Kind::File,
    };
    let e = filter.explain(&rel, kind);
    Ok(ExplainReport {
        ok: true,
        job: cfg.name.clone(),
        path: rel.display().to_string(),
        kind: match kind {
            Kind::Dir => "directory",
            Kind::File => "file",
            Kind::Other => "other",
        }
        .to_string(),
        exists: meta.is_ok(),
        allowed: e.allowed,
        explanation: match &e.reason {
            Reason::Excluded { index, .. } | Reason::Included { index, .. } => {
                match (
                    cfg.filter.exclude_file_line(*index),
                    cfg.filter.exclude_from(),
                ) {
                    (Some(line), Some(file)) => format!("{e} ({}:{line})", file.display()),
                    _ => e.to_string(),
                }
            }
            _ => e.to_string(),
        },
        delete: cfg.delete.as_str().to_string(),
        exclude_from: cfg.filter.exclude_from().map(|p| p.display().to_string()),
    })
}
