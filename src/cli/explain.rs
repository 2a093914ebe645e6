//! `clsync explain JOB PATH`: which pattern or rule decides whether the daemon syncs a path.

use std::process::ExitCode;

use clsync::control::Request;
use clsync::supervisor::explain::ExplainReport;

use super::client::DaemonArgs;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    daemon: DaemonArgs,
    /// Print the answer as JSON.
    #[arg(long)]
    json: bool,
    /// The job's name (its file stem).
    job: String,
    /// A path inside the job's source: absolute, or relative to the source.
    path: String,
}

pub fn run(
    Args {
        daemon,
        json,
        job,
        path,
    }: Args,
) -> ExitCode {
    let e: ExplainReport = match daemon.call(&Request::Explain { job, path }) {
        Ok(e) => e,
        Err(code) => return code,
    };
    if json {
        let v = serde_json::to_value(&e).unwrap_or_default();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!(
            "{} ({}{}): {}",
            e.path,
            e.kind,
            if e.exists { "" } else { ", does not exist" },
            e.explanation
        );
        if let Some(x) = &e.exclude_from {
            println!("exclude patterns after `exclude`'s are read from {x}");
        }
        println!("delete = {}: {}", e.delete, delete_meaning(&e.delete));
    }
    ExitCode::SUCCESS
}

/// What a `delete` setting removes at the destination, in words.
fn delete_meaning(delete: &str) -> &'static str {
    match delete {
        "true" => "what is gone from the source is removed at the destination by every sync",
        "false" => "nothing is ever removed at the destination (renames copy, the old name stays)",
        "startup" => "only the initial sync removes extraneous files at the destination",
        "running" => "only deletions seen while running are applied; full syncs remove nothing",
        _ => "unknown",
    }
}
