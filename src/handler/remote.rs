//! Remote destinations over ssh (`[user@]host:path`, [`crate::config::split_remote`]): the
//! `-e` command for rsync, and one ssh call to run a script or ask the receiver's version.
//!
//! Names reach the remote shell only inside single quotes, with every `'` escaped
//! ([`sh_quote`]), so a crafted file name is data there too.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use super::HandlerError;
use crate::config::{HandlerOptions, SshOptions};

/// Quotes one argument for a POSIX shell: `'…'`, with `'` written as `'\''`.
pub fn sh_quote(s: &[u8]) -> Vec<u8> {
    let mut out = vec![b'\''];
    for &b in s {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
}

/// Quotes one argument for rsync's `-e` string, which rsync splits itself: single quotes,
/// with a doubled `'` for a literal one.
fn rsync_e_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The value of rsync's `-e` option for these ssh settings.
pub fn rsync_e(ssh: &SshOptions) -> String {
    ssh.argv()
        .iter()
        .map(|a| rsync_e_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs a shell script on `host` in one ssh call (`BatchMode`, the job's ssh options and
/// user, its timeout or 120 s).
pub fn run_script(opts: &HandlerOptions, host: &str, script: &[u8]) -> Result<(), HandlerError> {
    let argv = opts.ssh.argv();
    let mut cmd = super::Launch::new(&argv[0]);
    cmd.run_as(opts.run_as.as_ref());
    cmd.args(&argv[1..])
        .args(["-o", "BatchMode=yes", "--", host])
        .arg(OsStr::from_bytes(script));
    super::run_process(
        cmd,
        &argv[0],
        None,
        Some(opts.timeout.unwrap_or(Duration::from_secs(120))),
        &[],
        |_| "",
    )
    .map(|_| ())
}

/// The version of the rsync that receives at an ssh destination (`--rsync-path`, else
/// `rsync`), asked in one ssh call: for the log and status when a rejection did not name it.
pub fn remote_version(opts: &HandlerOptions, dest: &str) -> Option<String> {
    let (host, _) = crate::config::split_remote(dest)?;
    let program = opts
        .args
        .iter()
        .find_map(|a| a.strip_prefix("--rsync-path="))
        .unwrap_or("rsync");
    let argv = opts.ssh.argv();
    let mut cmd = super::Launch::new(&argv[0]);
    cmd.run_as(opts.run_as.as_ref());
    // The remote shell runs `--rsync-path` as rsync itself would: it is the admin's text.
    cmd.args(&argv[1..])
        .args(["-o", "BatchMode=yes", "--", host])
        .arg(format!("{program} --version"));
    super::receiver::version_from(cmd.into_command())?.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn quoting() {
        assert_eq!(sh_quote(b"a b"), b"'a b'");
        assert_eq!(sh_quote(b"it's"), b"'it'\\''s'");
        assert_eq!(rsync_e_quote("it's"), "'it''s'");
        let ssh = SshOptions {
            port: Some(2222),
            identity_file: Some(PathBuf::from("/k ey")),
            ..SshOptions::default()
        };
        assert_eq!(rsync_e(&ssh), "'ssh' '-p' '2222' '-i' '/k ey'");
    }
}
