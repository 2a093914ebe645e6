//! `clsync metrics`: the daemon's metrics in Prometheus' text format, on stdout.

use std::process::ExitCode;

use clsync::control::Request;
use clsync::metrics::MetricsAnswer;

use super::client::DaemonArgs;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    daemon: DaemonArgs,
}

pub fn run(args: Args) -> ExitCode {
    match args.daemon.call::<MetricsAnswer>(&Request::Metrics) {
        Ok(m) => {
            print!("{}", m.metrics);
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}
