//! Replaying a batch's renames at the destination, before rsync runs: locally with
//! `rename(2)` through the [file-system layer](crate::fs), remotely as one shell script over
//! ssh (lsyncd's `rsyncssh` trick), so that a moved tree is compared in place instead of
//! deleted and sent again. A move that is not safe or not possible is skipped, never forced:
//! rsync then syncs both of its paths anyway.
//!
//! Names reach the remote shell only inside single quotes ([`sh_quote`]), so a crafted file
//! name is data there too.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::HandlerError;
use super::remote::{run_script, sh_quote};
use crate::config::HandlerOptions;
use crate::config::split_remote;
use crate::model::Rename;
use crate::relpath;

/// The remote shell script that replays `renames` below `root`: each move is tried on its
/// own (`mv` only when the source exists and the target is not a directory), so one that
/// cannot be replayed is simply left to rsync. The owner of a directory at the destination
/// may have made any component a symlink: a move is made only when every existing
/// directory component of both paths is a real directory (`[ -d ] && [ ! -L ]`), checked by
/// the script itself just before it, and missing directories are created one at a time,
/// each checked first. (A shell cannot hold a directory open: someone racing between a
/// check and the next command can still redirect that one step.)
pub(crate) fn move_script(root: &str, renames: &[Rename]) -> Vec<u8> {
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
pub(crate) fn replay_remote(
    opts: &HandlerOptions,
    dest: &str,
    renames: &[Rename],
) -> Result<(), HandlerError> {
    let Some((host, root)) = split_remote(dest) else {
        return Ok(());
    };
    run_script(opts, host, &move_script(root, renames))
}

/// Replays `renames` in a local destination with `rename(2)`, under the same conditions as
/// the remote script, through the [file-system layer](crate::fs): a component of either path
/// that is a symlink or not a directory at the destination (its owner may have planted one)
/// makes that move be skipped, never followed; rsync then syncs both paths.
pub(crate) fn replay_local(dest: &Path, renames: &[Rename]) -> usize {
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
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::path::PathBuf;
    use std::process::Command;

    /// A target whose leading directory is missing at the destination, long enough to be
    /// resolved in pieces: the rename is not replayed (nothing may land at `dest/new/x`).
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
