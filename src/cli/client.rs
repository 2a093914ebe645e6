//! How a client command reaches the daemon: the socket from `--socket` or the configuration
//! directory, one request, and its answer read as the typed value the daemon sent.

use std::path::PathBuf;
use std::process::ExitCode;

use serde::de::DeserializeOwned;

use clsync::config;
use clsync::control::{self, Refusal, Request};

use super::EXIT_RUNTIME;

/// How a client command finds the daemon.
#[derive(clap::Args)]
pub struct DaemonArgs {
    /// Configuration directory of the daemon to talk to; its clsync.toml names the socket.
    #[arg(long, env = "CLSYNC_CONFIG_DIR", default_value = config::DEFAULT_CONFIG_DIR)]
    config_dir: PathBuf,
    /// The control socket (overrides the one from the configuration directory).
    #[arg(long)]
    socket: Option<PathBuf>,
}

impl DaemonArgs {
    fn socket(&self) -> PathBuf {
        match &self.socket {
            Some(s) => s.clone(),
            None => config::load_dir(&self.config_dir)
                .daemon
                .socket_path(&self.config_dir),
        }
    }

    /// Sends `req` and reads the answer as a `T`; a refusal, or an answer that is not a
    /// `T`, is printed and ends the command (exit 3).
    pub fn call<T: DeserializeOwned>(&self, req: &Request) -> Result<T, ExitCode> {
        let failed = |msg: String| {
            eprintln!("clsync: {msg}");
            ExitCode::from(EXIT_RUNTIME)
        };
        let v = control::request(&self.socket(), req).map_err(|e| failed(e.to_string()))?;
        match serde_json::from_value::<T>(v.clone()) {
            Ok(answer) => Ok(answer),
            Err(e) => Err(failed(match serde_json::from_value::<Refusal>(v) {
                Ok(r) => r.error,
                Err(_) => format!("bad answer from the daemon: {e}"),
            })),
        }
    }
}
