//! `clsync reload`: asks the daemon to reload and tells what it did, or every error that
//! made it refuse.

use std::process::ExitCode;

use clsync::control::Request;
use clsync::supervisor::reload::ReloadAnswer;

use super::EXIT_CONFIG;
use super::client::DaemonArgs;
use super::status::names;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    daemon: DaemonArgs,
}

pub fn run(args: Args) -> ExitCode {
    let answer: ReloadAnswer = match args.daemon.call(&Request::Reload) {
        Ok(a) => a,
        Err(code) => return code,
    };
    match (&answer.reload, answer.ok) {
        (Some(r), true) => {
            println!(
                "reloaded: added {}, changed {}, removed {}",
                names(&r.added),
                names(&r.changed),
                names(&r.removed)
            );
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("reload refused, nothing changed:");
            for e in answer.reload.iter().flat_map(|r| &r.errors) {
                eprintln!("{e}");
            }
            if let Some(e) = &answer.error {
                eprintln!("{e}");
            }
            ExitCode::from(EXIT_CONFIG)
        }
    }
}
