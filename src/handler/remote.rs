//! Remote destinations over ssh: the `-e` command for rsync, and the remote move that turns
//! a rename in the source into one `mv` on the remote host instead of a delete plus a new
//! transfer (lsyncd's `rsyncssh` trick).
//!
//! Names reach the remote shell only inside single quotes, with every `'` escaped, so a
//! crafted file name is data there too; anything that fails falls back to plain rsync.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::HandlerError;
use crate::config::{HandlerOptions, SshOptions};
use crate::model::Rename;
use crate::relpath;

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

/// `host` and `path` of an rsync-over-ssh destination (`[user@]host:path`); `None` for
/// `rsync://` and `host::module` daemon destinations, which have no shell.
pub fn split_remote(dest: &str) -> Option<(&str, &str)> {
    if dest.starts_with("rsync://") {
        return None;
    }
    let (host, path) = dest.split_once(':')?;
    if path.starts_with(':') || host.is_empty() {
        return None;
    }
    Some((host, path))
}

/// The remote shell script that replays `renames` below `root`: each move is tried on its
/// own (`mv` only when the source exists and the target is not a directory), so one that
/// cannot be replayed is simply left to rsync. The owner of a directory at the destination
/// may have made any component a symlink: a move is made only when every existing
/// directory component of both paths is a real directory (`[ -d ] && [ ! -L ]`), checked by
/// the script itself just before it, and missing directories are created one at a time,
/// each checked first. (A shell cannot hold a directory open: someone racing between a
/// check and the next command can still redirect that one step.)
pub fn move_script(root: &str, renames: &[Rename]) -> Vec<u8> {
    let root = if root.is_empty() { "." } else { root };
    let mut s = b"cd -- ".to_vec();
    s.extend(sh_quote(root.as_bytes()));
    s.extend_from_slice(b" || exit 1\n");
    // `ok P...`: every directory on the way to each P is real or (for the target's new
    // directories) still missing; false at the first symlink or non-directory.
    s.extend_from_slice(
        b"ok() { for p; do d=; while :; do case $p in */*) c=${p%%/*}; p=${p#*/};; *) break;; esac; \
          d=${d:+$d/}$c; if [ -L \"$d\" ]; then return 1; fi; if [ -e \"$d\" ] && [ ! -d \"$d\" ]; then return 1; fi; \
          done; done; return 0; }\n",
    );
    // `mk P`: creates P's missing directories one at a time, each checked first (never
    // `mkdir -p`, which would follow a symlink among them).
    s.extend_from_slice(
        b"mk() { d=; p=$1/; while :; do case $p in */*) c=${p%%/*}; p=${p#*/};; *) break;; esac; \
          d=${d:+$d/}$c; if [ -L \"$d\" ]; then return 1; fi; \
          if [ ! -d \"$d\" ]; then mkdir -- \"$d\" || return 1; fi; done; return 0; }\n",
    );
    for r in renames {
        let (f, t) = (
            sh_quote(r.from.as_os_str().as_bytes()),
            sh_quote(r.to.as_os_str().as_bytes()),
        );
        let parent = relpath::parent(&r.to)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let p = sh_quote(parent.as_os_str().as_bytes());
        let line = [
            b"ok ".as_slice(),
            &f,
            b" ",
            &t,
            b" && { [ -e ",
            &f,
            b" ] || [ -L ",
            &f,
            b" ]; } && [ ! -d ",
            &t,
            b" ] && mk ",
            &p,
            b" && ok ",
            &t,
            b" && mv -f -- ",
            &f,
            b" ",
            &t,
            b"\n",
        ]
        .concat();
        s.extend(line);
    }
    s
}

/// Replays `renames` on the remote host in one ssh call. Errors are for the log only: the
/// rsync run that follows syncs both sides of every rename anyway.
pub fn replay(opts: &HandlerOptions, dest: &str, renames: &[Rename]) -> Result<(), HandlerError> {
    let Some((host, root)) = split_remote(dest) else {
        return Ok(());
    };
    run_script(opts, host, &move_script(root, renames))
}

/// Runs a shell script on `host` in one ssh call (`BatchMode`, the job's ssh options and
/// user, its timeout or 120 s).
pub fn run_script(opts: &HandlerOptions, host: &str, script: &[u8]) -> Result<(), HandlerError> {
    let argv = opts.ssh.argv();
    let mut cmd = Command::new(&argv[0]);
    super::run_as(&mut cmd, opts.run_as.as_ref());
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
    let (host, _) = split_remote(dest)?;
    let program = opts
        .args
        .iter()
        .find_map(|a| a.strip_prefix("--rsync-path="))
        .unwrap_or("rsync");
    let argv = opts.ssh.argv();
    let mut cmd = Command::new(&argv[0]);
    super::run_as(&mut cmd, opts.run_as.as_ref());
    // The remote shell runs `--rsync-path` as rsync itself would: it is the admin's text.
    cmd.args(&argv[1..])
        .args(["-o", "BatchMode=yes", "--", host])
        .arg(format!("{program} --version"));
    super::receiver::version_from(cmd)?.0
}

/// Replays `renames` in a local destination with `rename(2)`, under the same conditions as
/// the remote script, through the [file-system layer](crate::fs): a component of either path
/// that is a symlink or not a directory at the destination (its owner may have planted one)
/// makes that move be skipped, never followed; rsync then syncs both paths.
pub fn replay_local(dest: &Path, renames: &[Rename]) -> usize {
    let Ok(root) = crate::fs::Root::open(dest) else {
        return 0;
    };
    let is_dir = |m: &rustix::fs::Stat| m.st_mode & libc::S_IFMT == libc::S_IFDIR;
    let mut done = 0;
    for r in renames {
        if root.lstat(&r.from).is_err() {
            continue;
        }
        match root.lstat(&r.to) {
            Ok(m) if is_dir(&m) => continue,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            // A symlink or a file among the target's directories.
            Err(_) => continue,
        }
        if let Some(p) = relpath::parent(&r.to)
            && root
                .mkdir_all(p, rustix::fs::Mode::from_raw_mode(0o755))
                .is_err()
        {
            continue;
        }
        if root.rename(&r.from, &r.to).is_ok() {
            done += 1;
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// Review: the target's leading directory is missing at the destination (drift), and
    /// the target is long enough for LongPath to open it: the rename must not be replayed
    /// (before: `LongPath` names the missing directory `new` and "x" below it, its
    /// `parent()` is created, and the whole tree lands at `dest/new/x`).
    #[cfg(target_os = "linux")]
    #[test]
    fn replay_local_never_moves_to_a_missing_long_parent() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("old")).unwrap();
        std::fs::write(t.path().join("old/file"), b"x").unwrap();
        let mut to = PathBuf::from("new");
        for i in 0..19 {
            to.push(format!("{i:03}{}", "d".repeat(197)));
        }
        to.push("old");
        let renames = [Rename {
            from: "old".into(),
            to: to.clone(),
        }];
        replay_local(t.path(), &renames);
        assert!(
            !t.path().join("new/x").exists(),
            "the renamed tree was moved to dest/new/x"
        );
    }

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

    #[test]
    fn remote_destinations() {
        assert_eq!(split_remote("u@h:/srv/x"), Some(("u@h", "/srv/x")));
        assert_eq!(split_remote("h:rel"), Some(("h", "rel")));
        assert_eq!(split_remote("rsync://h/m"), None);
        assert_eq!(split_remote("h::module"), None);
    }

    /// The script, run by a real shell, moves exactly what it should, whatever the names.
    #[test]
    fn move_script_treats_names_as_data() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("dst root");
        let odd = "$(touch pwned) ';`x`\n-rf";
        std::fs::create_dir_all(root.join("dir")).unwrap();
        std::fs::write(root.join(odd), "x").unwrap();
        std::fs::write(root.join("dir/f"), "y").unwrap();
        std::fs::create_dir(root.join("occupied")).unwrap();
        std::fs::write(root.join("blocked"), "z").unwrap();
        let renames = [
            Rename {
                from: PathBuf::from(odd),
                to: PathBuf::from("new/deep/name"),
            },
            Rename {
                from: PathBuf::from("dir"),
                to: PathBuf::from("dir2"),
            },
            Rename {
                from: PathBuf::from("blocked"),
                to: PathBuf::from("occupied"),
            },
            Rename {
                from: PathBuf::from("missing"),
                to: PathBuf::from("x"),
            },
        ];
        let script = move_script(root.to_str().unwrap(), &renames);
        let st = Command::new("sh")
            .arg("-c")
            .arg(OsStr::from_bytes(&script))
            .current_dir(t.path())
            .status()
            .unwrap();
        let _ = st;
        assert_eq!(std::fs::read(root.join("new/deep/name")).unwrap(), b"x");
        assert_eq!(std::fs::read(root.join("dir2/f")).unwrap(), b"y");
        assert!(
            root.join("blocked").exists(),
            "a directory target is left to rsync"
        );
        assert!(!root.join("x").exists());
        assert!(!t.path().join("pwned").exists() && !root.join("pwned").exists());
    }

    /// A destination whose owner made a directory component a symlink (to a directory
    /// outside, or inside the tree): the move is not made, by either replay, and nothing
    /// outside changes.
    #[test]
    fn replays_never_go_through_a_symlink_at_the_destination() {
        for remote in [false, true] {
            let t = tempfile::tempdir().unwrap();
            let (root, outside) = (t.path().join("dst"), t.path().join("outside"));
            std::fs::create_dir_all(root.join("u/real")).unwrap();
            std::fs::create_dir_all(&outside).unwrap();
            std::fs::write(root.join("u/payload"), "p").unwrap();
            std::fs::write(outside.join("secret"), "s").unwrap();
            std::os::unix::fs::symlink(&outside, root.join("u/d")).unwrap();
            std::os::unix::fs::symlink("real", root.join("u/in")).unwrap();
            let r = |f: &str, to: &str| Rename {
                from: PathBuf::from(f),
                to: PathBuf::from(to),
            };
            let renames = [
                r("u/payload", "u/d/NAME"),
                r("u/payload", "u/d/new/NAME"),
                r("u/payload", "u/in/NAME"),
                r("u/d/secret", "u/stolen"),
            ];
            if remote {
                let script = move_script(root.to_str().unwrap(), &renames);
                Command::new("sh")
                    .arg("-c")
                    .arg(OsStr::from_bytes(&script))
                    .status()
                    .unwrap();
            } else {
                assert_eq!(replay_local(&root, &renames), 0);
            }
            let mut names: Vec<_> = std::fs::read_dir(&outside)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            assert_eq!(names, ["secret"], "remote: {remote}");
            assert!(root.join("u/payload").exists(), "remote: {remote}");
            assert!(!root.join("u/stolen").exists(), "remote: {remote}");
            assert!(!root.join("u/real/NAME").exists(), "remote: {remote}");
        }
    }
}
