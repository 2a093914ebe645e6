//! `clsync status`: the daemon's typed [`StatusReport`], as a table for people or as JSON
//! for scripts; exit 4 when an enabled job is failing or retrying.

use std::fmt::Write;
use std::process::ExitCode;

use clsync::control::Request;
use clsync::supervisor::status::{JobReport, ReloadReport, StatusReport, timestamp};

use super::EXIT_UNHEALTHY;
use super::client::DaemonArgs;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    daemon: DaemonArgs,
    /// Print the status as JSON (stable field names, for scripts).
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> ExitCode {
    let report: StatusReport = match args.daemon.call(&Request::Status) {
        Ok(r) => r,
        Err(code) => return code,
    };
    if args.json {
        let v = serde_json::to_value(&report).unwrap_or_default();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!("{}", format_status(&report));
    }
    if report.unhealthy() {
        ExitCode::from(EXIT_UNHEALTHY)
    } else {
        ExitCode::SUCCESS
    }
}

/// Job names as the status and `clsync reload` list them: `["a","b"]`.
pub fn names(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_default()
}

const HEAD: [&str; 10] = [
    "JOB",
    "STATE",
    "SANDBOX",
    "DELETE",
    "DIRS",
    "QUEUED",
    "SYNCS",
    "FAILURES",
    "LAST SUCCESS",
    "LAST ERROR",
];

/// The human-readable `clsync status`: a header line, a table of jobs whose columns fit
/// their widest cell (the last error runs to the end of the line), the last reload.
fn format_status(r: &StatusReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "clsync {} (pid {}), config {}, up since {}{}",
        r.version,
        r.pid,
        r.config_dir,
        timestamp(r.started),
        if r.ready {
            ""
        } else {
            ", initial syncs running"
        }
    );
    let rows: Vec<[String; 10]> = r.jobs.iter().map(row).collect();
    let mut width = HEAD.map(str::len);
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r.iter()).take(9) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: [&str; 10]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i < 9 {
                let _ = write!(l, "{:<w$}  ", c, w = width[i]);
            } else {
                l.push_str(c);
            }
        }
        l.trim_end().to_string() + "\n"
    };
    out.push_str(&line(HEAD));
    for r in &rows {
        out.push_str(&line(r.each_ref().map(|c| c.as_str())));
    }
    if rows.is_empty() {
        out.push_str("(no jobs)\n");
    }
    out.push_str(&last_reload(r.last_reload.as_ref()));
    out
}

/// One job's cells, in [`HEAD`]'s order; `-` for what is unknown.
fn row(j: &JobReport) -> [String; 10] {
    let or_dash = |s: Option<&str>| s.unwrap_or("-").to_string();
    [
        j.name.clone(),
        if j.enabled {
            j.state.as_str().to_string()
        } else {
            "disabled".into()
        },
        or_dash(j.sandbox.as_deref()),
        or_dash(j.delete.as_deref()),
        j.watched_dirs.to_string(),
        j.queued.to_string(),
        j.syncs.to_string(),
        j.failures.to_string(),
        j.last_success.map_or("-".into(), timestamp),
        match &j.last_error {
            None => "-".into(),
            Some(e) if e.permanent => format!(
                "{} (retrying cannot fix this) {}",
                timestamp(e.time),
                e.message
            ),
            Some(e) => format!("{} {}", timestamp(e.time), e.message),
        },
    ]
}

fn last_reload(r: Option<&ReloadReport>) -> String {
    let mut out = String::new();
    match r {
        None => out.push_str("last reload: none\n"),
        Some(r) if r.ok => {
            let _ = writeln!(
                out,
                "last reload: {} ok (added {}, changed {}, removed {})",
                timestamp(r.time),
                names(&r.added),
                names(&r.changed),
                names(&r.removed)
            );
        }
        Some(r) => {
            let _ = writeln!(
                out,
                "last reload: {} FAILED, nothing changed:",
                timestamp(r.time)
            );
            for e in &r.errors {
                let _ = writeln!(out, "  {e}");
            }
        }
    }
    out
}
