//! Mode rclone with Debian's real rclone: a local-disk remote (an rclone configuration
//! written by the test) and an sftp remote on the loopback sshd. rclone keeps names,
//! contents and directories (not permissions or owners), so trees are compared by those.
//! Skipped without rclone, unless `CI` is set (`.ci/run` installs it).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::path::Path;
use std::time::Instant;

use super::harness::*;

fn have_rclone() -> bool {
    match std::process::Command::new("rclone").arg("version").output() {
        Ok(o) if o.status.success() => true,
        _ if std::env::var_os("CI").is_some() => {
            panic!("rclone is needed in CI (.ci/run installs it)")
        }
        _ => {
            eprintln!("skipped: needs rclone (apt-get install rclone)");
            false
        }
    }
}

/// Every path below `root` not `skip`ped: `Some(content)` for a file, `None` for a directory
/// (symlinks left out: rclone does not sync them).
fn tree(root: &Path, skip: &dyn Fn(&Path) -> bool) -> BTreeMap<OsString, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap();
            let m = fs::symlink_metadata(&p).unwrap();
            if skip(rel) || m.file_type().is_symlink() {
                continue;
            }
            if m.is_dir() {
                out.insert(rel.as_os_str().to_owned(), None);
                todo.push(p);
            } else {
                out.insert(rel.as_os_str().to_owned(), Some(fs::read(&p).unwrap()));
            }
        }
    }
    out
}

/// Polls until `dst` holds what `src` holds (names, kinds, contents; `skip`ped paths
/// ignored on both sides).
fn assert_same(d: &mut Daemon, src: &Path, dst: &Path, skip: &dyn Fn(&Path) -> bool) {
    let deadline = Instant::now() + SYNC_DEADLINE;
    loop {
        let (a, b) = (tree(src, skip), tree(dst, skip));
        if a == b {
            return;
        }
        if Instant::now() > deadline || d.try_status().is_some() {
            let only = |x: &BTreeMap<OsString, _>, y: &BTreeMap<OsString, _>| -> Vec<OsString> {
                x.iter()
                    .filter(|(k, v)| y.get(*k) != Some(*v))
                    .map(|(k, _)| k.clone())
                    .collect()
            };
            panic!(
                "{} != {}: differ at source {:?}, at destination {:?}\n{}",
                dst.display(),
                src.display(),
                only(&a, &b),
                only(&b, &a),
                d.log_tail()
            );
        }
        std::thread::sleep(POLL);
    }
}

/// A job of mode rclone to `dst` through the remote `[dst]` of `conf/rclone.conf` (a
/// local disk), with `extra` keys.
fn local_job(env: &Env, src: &Path, dst: &Path, extra: &str) {
    fs::write(env.conf.join("rclone.conf"), "[dst]\ntype = local\n").unwrap();
    env.write_job(
        "r",
        &format!(
            "source = {}\ndestination = {}\nmode = \"rclone\"\ndelay = \"100ms\"\n{extra}\n[rclone]\nconfig = \"rclone.conf\"\n",
            toml_path(src),
            toml_str(&format!("dst:{}", dst.display()))
        ),
    );
}

fn excluded(rel: &Path) -> bool {
    let name = rel.file_name().unwrap().as_encoded_bytes();
    name.ends_with(b".tmp") || rel.starts_with("cache") || name == b"build"
}

/// The initial sync (extraneous destination files removed, excluded ones kept), then
/// creations, changes, deletions, renames of files and directories, nested directories,
/// type changes,
/// names with spaces, glob characters, control characters (and rclone's symbols for
/// them), bytes that are not UTF-8 and line breaks, and excludes, all through rclone to a
/// local-disk remote.
#[test]
fn local_remote_follows_the_source() {
    if !have_rclone() {
        return;
    }
    let env = Env::new();
    let (src, dst) = (env.dir("src"), env.dir("dst"));
    populate(&src, "r");
    write(&src.join("dir/sub/deep.txt"), "deep");
    write(&src.join("name with spaces.txt"), "spaces");
    write(&src.join("glob [1] {a,b} *?.txt"), "glob");
    fs::write(src.join(os(b"bad\xff.txt")), "not utf-8").unwrap();
    write(&src.join("skip.tmp"), "excluded");
    write(&src.join("cache/x"), "excluded");
    write(&src.join("sub/build/out"), "excluded");
    write(&dst.join("stale/old.txt"), "extraneous");
    write(&dst.join("keep.tmp"), "excluded at the destination");
    local_job(
        &env,
        &src,
        &dst,
        "exclude = [\"*.tmp\", \"/cache/\", \"build\"]\n",
    );
    let mut d = env.spawn();
    d.wait_watching(&["r"]);
    assert_same(&mut d, &src, &dst, &excluded);
    assert!(
        dst.join("keep.tmp").exists(),
        "an excluded path is not deleted"
    );
    assert!(!dst.join("cache").exists() && !dst.join("sub/build").exists());

    write(&src.join("new.txt"), "new");
    write(&src.join("name with spaces.txt"), "changed, and longer");
    fs::remove_file(src.join("dir/sub/deep.txt")).unwrap();
    fs::rename(src.join("glob [1] {a,b} *?.txt"), src.join("moved [2].txt")).unwrap();
    fs::rename(src.join("dir"), src.join("dir renamed")).unwrap();
    write(&src.join("n1/n2/n3/leaf"), "nested");
    fs::create_dir_all(src.join("empty/dir")).unwrap();
    fs::remove_file(src.join(os(b"bad\xff.txt"))).unwrap();
    fs::write(src.join(os(b"\xfe other")), "not utf-8 either").unwrap();
    write(&src.join("ctl\x01char"), "a control character");
    write(
        &src.join("symbol \u{2401}\u{2421}"),
        "rclone's stand-ins for them",
    );
    write(&src.join("x.tmp"), "excluded");
    assert_same(&mut d, &src, &dst, &excluded);
    assert!(!dst.join("x.tmp").exists());

    // Deletions on their own: files (one not UTF-8) and a whole tree.
    fs::remove_file(src.join("moved [2].txt")).unwrap();
    fs::remove_file(src.join(os(b"\xfe other"))).unwrap();
    fs::remove_dir_all(src.join("n1")).unwrap();
    fs::remove_file(src.join("symbol \u{2401}\u{2421}")).unwrap();
    fs::remove_file(src.join("ctl\x01char")).unwrap();
    assert_same(&mut d, &src, &dst, &excluded);
    // Type changes, which rclone cannot make by itself: a directory replaced by a file,
    // a file by a directory.
    fs::remove_dir_all(src.join("b/c")).unwrap();
    write(&src.join("b/c"), "now a file");
    fs::remove_file(src.join("a.txt")).unwrap();
    write(&src.join("a.txt/inner"), "now a directory");
    assert_same(&mut d, &src, &dst, &excluded);
    // A name with a line break is synced through its parent, or the whole tree at the top.
    write(
        &src.join("sub dir/line\nbreak"),
        "a name rclone cannot list",
    );
    assert_same(&mut d, &src, &dst, &excluded);
    fs::remove_file(src.join("sub dir/line\nbreak")).unwrap();
    write(&src.join("top\nline"), "at the top");
    assert_same(&mut d, &src, &dst, &excluded);
    fs::remove_file(src.join("top\nline")).unwrap();
    assert_same(&mut d, &src, &dst, &excluded);
    assert!(d.stop().success());
}

/// A remote missing from the rclone configuration fails the runs (rclone's message in the
/// log) and they are retried; a reload that names the right configuration repairs the job.
#[test]
fn a_bad_remote_fails_and_a_reload_repairs_it() {
    if !have_rclone() {
        return;
    }
    let env = Env::new();
    let (src, dst) = (env.dir("src"), env.dir("dst"));
    populate(&src, "f");
    fs::write(env.conf.join("other.conf"), "[elsewhere]\ntype = local\n").unwrap();
    local_job(&env, &src, &dst, "retry_delay = \"100ms\"\n");
    let job = env.conf.join("jobs.d/r.toml");
    let good = fs::read_to_string(&job).unwrap();
    fs::write(&job, good.replace("rclone.conf", "other.conf")).unwrap();
    let mut d = env.spawn();
    let deadline = Instant::now() + SYNC_DEADLINE;
    while !d.log().contains("didn't find section in config file") {
        assert!(
            Instant::now() < deadline,
            "no rclone error:\n{}",
            d.log_tail()
        );
        std::thread::sleep(POLL);
    }
    d.release_start_guard();
    assert!(tree(&dst, &|_| false).is_empty(), "nothing synced");
    fs::write(&job, good).unwrap();
    let _g = INOTIFY_START.write().unwrap_or_else(|e| e.into_inner());
    d.signal(libc::SIGHUP);
    assert_same(&mut d, &src, &dst, &|_| false);
    drop(_g);
    write(&src.join("after.txt"), "live");
    assert_same(&mut d, &src, &dst, &|_| false);
    assert!(d.stop().success());
}

/// An sftp remote on the loopback sshd (key file, known hosts): the initial sync, then
/// creations (names with glob characters, and not UTF-8), changes, deletions and
/// renames.
#[test]
fn sftp_remote_on_the_loopback_sshd() {
    if !have_rclone() {
        return;
    }
    let env = Env::new();
    let Some(sshd) = super::sshd::Sshd::start(&env.p("sshd")) else {
        return;
    };
    let (src, dst) = (env.dir("src"), env.dir("dst"));
    populate(&src, "s");
    write(&src.join("a dir/with space"), "x");
    let host_key = fs::read_to_string(env.p("sshd/host_key.pub")).unwrap();
    let known = env.p("known_hosts");
    fs::write(&known, format!("[127.0.0.1]:{} {host_key}", sshd.port)).unwrap();
    fs::write(
        env.conf.join("rclone.conf"),
        format!(
            "[box]\ntype = sftp\nhost = 127.0.0.1\nport = {}\nuser = root\nkey_file = {}\nknown_hosts_file = {}\n",
            sshd.port,
            sshd.key.display(),
            known.display()
        ),
    )
    .unwrap();
    env.write_job(
        "s",
        &format!(
            "source = {}\ndestination = {}\nmode = \"rclone\"\ndelay = \"100ms\"\n[rclone]\nconfig = \"rclone.conf\"\n",
            toml_path(&src),
            toml_str(&format!("box:{}", dst.display()))
        ),
    );
    let mut d = env.spawn();
    d.wait_watching(&["s"]);
    assert_same(&mut d, &src, &dst, &|_| false);
    write(&src.join("new/deeper/file"), "new");
    write(&src.join("a dir/with space"), "changed");
    // (Not control characters: rclone's sftp backend stores them as its symbols `␁`….)
    write(&src.join("glob [x] {y} *"), "names as they are");
    fs::write(src.join(os(b"\xfe not utf-8")), "over sftp").unwrap();
    fs::rename(src.join("a dir"), src.join("b dir")).unwrap();
    let victim = fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_file())
        .unwrap();
    fs::remove_file(victim).unwrap();
    assert_same(&mut d, &src, &dst, &|_| false);
    assert!(d.stop().success());
}

/// `timeout` kills a hung rclone (its process group) and the batch is retried: an rclone
/// wrapper that hangs on its first call.
#[test]
fn a_hung_rclone_is_killed_and_retried() {
    if !have_rclone() {
        return;
    }
    let env = Env::new();
    let (src, dst) = (env.dir("src"), env.dir("dst"));
    populate(&src, "t");
    let (script, calls) = env.flaky_script("rclone-hangs.sh", 1, "sleep 60", "exec rclone \"$@\"");
    local_job(
        &env,
        &src,
        &dst,
        "timeout = \"1s\"\nretry_delay = \"100ms\"\n",
    );
    let job = env.conf.join("jobs.d/r.toml");
    let text = fs::read_to_string(&job).unwrap();
    fs::write(&job, format!("{text}path = {}\n", toml_path(&script))).unwrap();
    let mut d = env.spawn();
    assert_same(&mut d, &src, &dst, &|_| false);
    assert!(count_lines(&calls) >= 2, "retried");
    assert!(
        d.log()
            .contains("ran longer than the timeout of 1s and was killed"),
        "{}",
        d.log_tail()
    );
    assert!(d.stop().success());
}

/// `clsync check` of rclone jobs: a destination that is no rclone remote, an exclude rclone
/// cannot express, regex rules and `[rclone]` in another mode are errors at their line and
/// column (exit 1); a remote missing from `[rclone] config` is a warning.
#[test]
fn check_reports_rclone_mistakes_at_their_place() {
    let env = Env::new();
    let src = env.dir("src");
    fs::write(env.conf.join("rclone.conf"), "[dst]\ntype = local\n").unwrap();
    let job = |name: &str, rest: &str| {
        env.write_job(name, &format!("source = {}\n{rest}", toml_path(&src)));
    };
    job("local", "mode = \"rclone\"\ndestination = \"/srv/x\"\n");
    job(
        "bad",
        "mode = \"rclone\"\ndestination = \"dst:/x\"\nexclude = [\"a/***/b\"]\nrules = [\"-f^x$\"]\n",
    );
    job("other", "destination = \"/srv/y\"\n[rclone]\nargs = []\n");
    job(
        "keep",
        "mode = \"rclone\"\ndestination = \"dst:/x\"\ndelete = false\n",
    );
    job(
        "unknown",
        "mode = \"rclone\"\ndestination = \"nope:/x\"\n[rclone]\nconfig = \"rclone.conf\"\n",
    );
    let out = run_check(
        &env.root,
        &[std::ffi::OsStr::new("--config-dir"), env.conf.as_os_str()],
    );
    assert_eq!(out.code, Some(1), "{}", out.describe());
    let at = |file: &str, line: u32, column: u32, text: &str| {
        assert!(
            out.errors_in(file)
                .iter()
                .any(|d| d.line == line && d.column == column && d.message.contains(text)),
            "{file}:{line}:{column}: {text}\n{}",
            out.describe()
        );
    };
    at("local.toml", 3, 15, "needs an rclone remote");
    at("bad.toml", 4, 12, "cannot be given to rclone");
    at("bad.toml", 5, 9, "cannot use regex `rules`");
    at("other.toml", 3, 2, "`[rclone]` is for mode \"rclone\"");
    at("keep.toml", 4, 10, "not supported with mode \"rclone\"");
    at(
        "unknown.toml",
        3,
        15,
        "warning: rclone remote \"nope\" is not in",
    );
}
