//! rsync builds whose receiver rejects `--delete-missing-args` entries of a `--files-from`
//! list ("invalid file mode 00 for c [Receiver]", exit 2: Debian 12's 3.2.7-1+deb12u5,
//! upstream 3.4.3, RsyncProject/rsync issue 910). With such a receiver, local or at the other
//! end of ssh, deletions and renames must still reach the destination, without a retry loop;
//! `clsync status` names the rsync version and how deletions are sent; a permanent rsync
//! failure (a usage error) is shown as failed, not retried as if it were transient.
//!
//! The affected binary comes from `CLSYNC_TEST_RSYNC_AFFECTED`, or is unpacked from
//! `../shared/rsync/rsync_3.2.7-1+deb12u5_amd64.deb`; it is checked to really be affected
//! unless `CLSYNC_TEST_RSYNC_AFFECTED_CHECK=0` (to run the tests against an unaffected build).

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::ctl::*;
use super::harness::*;
use super::sshd::Sshd;

const AFFECTED_ENV: &str = "CLSYNC_TEST_RSYNC_AFFECTED";
const AFFECTED_CHECK_ENV: &str = "CLSYNC_TEST_RSYNC_AFFECTED_CHECK";
const AFFECTED_DEB: &str = "rsync_3.2.7-1+deb12u5_amd64.deb";

/// The affected rsync binary (see the module documentation); resolved, and checked, once per
/// test process.
pub fn affected_rsync() -> PathBuf {
    static AFFECTED: OnceLock<PathBuf> = OnceLock::new();
    AFFECTED
        .get_or_init(|| {
            let rsync = locate_affected();
            if std::env::var_os(AFFECTED_CHECK_ENV).as_deref() != Some(OsStr::new("0")) {
                check_affected(&rsync);
            }
            rsync
        })
        .clone()
}

/// `$CLSYNC_TEST_RSYNC_AFFECTED`, else the deb12u5 package unpacked under `target/`.
fn locate_affected() -> PathBuf {
    if let Some(p) = std::env::var_os(AFFECTED_ENV) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "{AFFECTED_ENV}={} is not a file: point it at an rsync binary whose receiver \
             rejects --delete-missing-args entries (Debian 12's rsync 3.2.7-1+deb12u5)",
            p.display()
        );
        return p;
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let deb = manifest.join("../shared/rsync").join(AFFECTED_DEB);
    let unpacked = manifest.join("target/test-rsync/deb12u5");
    let rsync = unpacked.join("usr/bin/rsync");
    if rsync.is_file() {
        return rsync;
    }
    assert!(
        deb.is_file(),
        "no affected rsync to test with: set {AFFECTED_ENV} to an rsync binary whose receiver \
         rejects --delete-missing-args entries (Debian 12's rsync 3.2.7-1+deb12u5), or provide \
         {} (as scripts/test.sh runs the suite)",
        deb.display()
    );
    // Unpacked beside the final place, then renamed into it: a parallel test process either
    // wins the rename or finds the finished copy.
    let parent = unpacked.parent().unwrap();
    fs::create_dir_all(parent).unwrap();
    let tmp = tempfile::Builder::new()
        .prefix(".deb12u5-")
        .tempdir_in(parent)
        .unwrap();
    let out = Command::new("dpkg")
        .arg("-x")
        .arg(&deb)
        .arg(tmp.path())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run dpkg -x to unpack {} ({e}); set {AFFECTED_ENV} to an affected rsync \
                 binary instead",
                deb.display()
            )
        });
    assert!(
        out.status.success(),
        "dpkg -x {} failed ({}): {}",
        deb.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    match fs::rename(tmp.path(), &unpacked) {
        Ok(()) => {
            let _ = tmp.keep();
        }
        // Another process was first; `tmp` is removed on drop.
        Err(_) if rsync.is_file() => {}
        Err(e) => panic!(
            "cannot move the unpacked package to {}: {e}",
            unpacked.display()
        ),
    }
    assert!(rsync.is_file(), "{} has no usr/bin/rsync", deb.display());
    rsync
}

/// Panics unless `rsync`'s receiver rejects a `--delete-missing-args` entry (exit 2), so that
/// the tests cannot silently test an unaffected build.
fn check_affected(rsync: &Path) {
    let (code, stderr) = missing_arg_answer(rsync);
    assert_eq!(
        code,
        Some(2),
        "{} is not an affected rsync build: `printf './c\\0' | rsync -a -r \
         --delete-missing-args --files-from=- --from0 ./ DST/` exited with {code:?} (expected 2, \
         \"invalid file mode 00\"); stderr: {stderr}\nSet {AFFECTED_ENV} to Debian 12's rsync \
         3.2.7-1+deb12u5, or {AFFECTED_CHECK_ENV}=0 to run these tests against this build anyway",
        rsync.display(),
    );
}

/// What `rsync` answers to one missing `--files-from` entry: its exit code and stderr.
fn missing_arg_answer(rsync: &Path) -> (Option<i32>, String) {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    fs::create_dir_all(&src).unwrap();
    write(&dst.join("c"), "to be deleted");
    let mut child = Command::new(rsync)
        .args([
            "-a",
            "-r",
            "--delete-missing-args",
            "--files-from=-",
            "--from0",
        ])
        .arg("./")
        .arg(format!("{}/", dst.display()))
        .current_dir(&src)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", rsync.display()));
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"./c\0").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn affected_str() -> String {
    affected_rsync().to_str().expect("UTF-8 path").to_string()
}

/// `[rsync]` of a job: `path` (none: the default `rsync`) and `args`.
fn rsync_table(path: Option<&str>, args: &[&str]) -> String {
    let mut t = String::from("[rsync]\n");
    if let Some(p) = path {
        t.push_str(&format!("path = {}\n", toml_str(p)));
    }
    t.push_str(&format!("args = {}\n", toml_list(args)));
    t
}

fn rsync_path_arg() -> String {
    format!("--rsync-path={}", affected_str())
}

/// The text of a job syncing `src` to `root@127.0.0.1:DST` over `sshd`.
fn remote_job_toml(sshd: &Sshd, src: &Path, dst: &Path, rsync: &str) -> String {
    format!(
        "source = {}\ndestination = {}\ndelay = \"100ms\"\n{rsync}{}",
        toml_path(src),
        toml_str(&format!("root@127.0.0.1:{}", dst.display())),
        sshd.job_extra()
    )
}

/// The tree every test starts from: `populate`'s, plus a tree to remove, directories to
/// rename, the two sides of a swap, and a directory to change in one batch.
fn seed(src: &Path) {
    populate(src, "seed");
    for i in 0..3 {
        write(
            &src.join(format!("gone/sub{i}/deep/f{i}")),
            "removed with its tree",
        );
    }
    write(&src.join("ren/inner/f"), "renamed with its directory");
    write(&src.join("ren/g"), "g");
    write(&src.join("mover/m"), "moved into a new subdirectory");
    write(&src.join("x"), "x: a file, then a directory");
    write(&src.join("y/inner/f"), "y: a directory, then a file");
    write(&src.join("y/f"), "y/f");
    for i in 0..5 {
        write(
            &src.join(format!("mix/old{i}")),
            "deleted while new0..4 appear",
        );
    }
}

/// A running daemon and the jobs the test expects to stay healthy.
struct Run<'a> {
    env: &'a Env,
    d: Daemon,
    jobs: &'a [&'a str],
}

impl<'a> Run<'a> {
    /// Starts the daemon and waits until `jobs` are watching.
    fn start(env: &'a Env, jobs: &'a [&'a str]) -> Run<'a> {
        let d = start_sup(env, jobs);
        Run { env, d, jobs }
    }

    /// Waits until every destination equals `src` and every job is idle again (watching,
    /// nothing queued). Panics, naming the step, as soon as a job has a failed run: a
    /// destination can look right while the run failed (a rename is replayed before rsync
    /// runs).
    fn step(&mut self, what: &str, src: &Path, dsts: &[&Path]) {
        eprintln!("step: {what}");
        let deadline = Instant::now() + SYNC_DEADLINE;
        loop {
            let v = status(&sock(self.env)).unwrap_or_else(|e| panic!("status: {e}"));
            let mut idle = true;
            for name in self.jobs {
                let j = job(&v, name).unwrap_or_else(|| panic!("no job {name} in {v:#}"));
                assert_eq!(
                    j["failures"],
                    0,
                    "step {what:?}: a run of job {name} failed: {j:#}\n{}",
                    self.d.log_tail()
                );
                idle &= j["state"] == "watching" && j["queued"] == 0;
            }
            let diffs: Vec<String> = dsts.iter().map(|d| tree_diff(src, d, &[])).collect();
            if idle && diffs.iter().all(|d| d.is_empty()) {
                return;
            }
            self.d.assert_running();
            assert!(
                Instant::now() < deadline,
                "step {what:?}: not synced and idle after {SYNC_DEADLINE:?}; rsync -anci \
                 --delete says: {}\nstatus: {v:#}\n{}",
                truncate(&diffs.join("\n"), 4000),
                self.d.log_tail()
            );
            std::thread::sleep(POLL);
        }
    }

    /// No retry loop on a healthy target: no failed run in the status (`clsync status
    /// --json`), none in the log; then the daemon stops cleanly.
    fn finish(mut self) {
        let v = status_json(self.env);
        for name in self.jobs {
            let j = job(&v, name).unwrap_or_else(|| panic!("no job {name} in {v:#}"));
            assert_eq!(j["failures"], 0, "job {name} had failed runs: {j:#}");
            assert_eq!(j["consecutive_failures"], 0, "job {name}: {j:#}");
            assert_eq!(
                job_log_count(&self.d, name, "failed (attempt"),
                0,
                "a run of job {name} failed and was retried\n{}",
                self.d.log_tail()
            );
        }
        assert!(self.d.stop().success());
    }
}

/// Deletions (top level and deep), `rm -r` of a tree, directory renames, file↔dir swaps;
/// each step synced to every destination before the next.
fn deletions_renames_swaps(r: &mut Run, src: &Path, dsts: &[&Path]) {
    fs::remove_file(src.join("a.txt")).unwrap();
    fs::remove_file(src.join("b/b1.txt")).unwrap();
    fs::remove_file(src.join("b/c/d/e/deeper.bin")).unwrap();
    r.step("delete files, top level and deep", src, dsts);

    fs::remove_dir_all(src.join("gone")).unwrap();
    r.step("rm -r a directory tree", src, dsts);

    fs::rename(src.join("ren"), src.join("ren-renamed")).unwrap();
    fs::create_dir_all(src.join("new/sub")).unwrap();
    fs::rename(src.join("mover"), src.join("new/sub/mover")).unwrap();
    r.step(
        "rename a directory, and one into a new subdirectory",
        src,
        dsts,
    );

    fs::remove_file(src.join("x")).unwrap();
    write(&src.join("x/inside/f"), "x is a directory now");
    fs::remove_dir_all(src.join("y")).unwrap();
    write(&src.join("y"), "y is a file now");
    r.step("swap a file for a directory and back", src, dsts);
}

/// Names with glob characters, a backslash, a newline, a leading `-` and a non-UTF-8 byte are
/// created, then deleted; their plain-named neighbours (what the names would match as
/// patterns) stay.
fn odd_names(r: &mut Run, src: &Path, dst: &Path) {
    let odd: Vec<PathBuf> = [
        &b"*"[..],
        b"[ab]",
        b"a\\b",
        b"new\nline",
        b"-leading",
        b"\xff",
        b"dir [ab]*",
    ]
    .iter()
    .map(|n| src.join("odd").join(os(n)))
    .collect();
    for n in ["a", "b", "ab", "keep", "-x"] {
        write(&src.join("odd").join(n), "neighbour");
    }
    for p in &odd[..odd.len() - 1] {
        write(p, "odd name");
    }
    write(&odd[odd.len() - 1].join("inner"), "in an odd directory");
    r.step("create odd names", src, &[dst]);
    for p in &odd[..odd.len() - 1] {
        fs::remove_file(p).unwrap();
    }
    fs::remove_dir_all(&odd[odd.len() - 1]).unwrap();
    r.step("delete odd names", src, &[dst]);
}

/// Files deleted while others are created in the same directory, in one batch.
fn delete_and_create_in_one_batch(r: &mut Run, src: &Path, dst: &Path) {
    for i in 0..5 {
        fs::remove_file(src.join(format!("mix/old{i}"))).unwrap();
        write(
            &src.join(format!("mix/new{i}")),
            "created beside the deletions",
        );
    }
    r.step("delete and create in one directory, one batch", src, &[dst]);
}

/// `clsync status --json`, parsed.
fn status_json(env: &Env) -> Value {
    let out = cli_conf(env, "status", &["--json"]);
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("status --json is not JSON ({e}):\n{}", out.describe()))
}

/// Rsync mode with the affected rsync and a local destination: deletions (top level, deep,
/// odd names, beside creations), `rm -r`, directory renames and file↔dir swaps all reach the
/// destination, without a single failed run.
#[test]
fn local_deletions_renames_swaps() {
    let env = sup_env("");
    let (src, dst) = (env.dir("src"), env.p("dst"));
    seed(&src);
    let aff = affected_str();
    env.job(
        "aff",
        &src,
        &dst,
        Mode::Rsync,
        &rsync_table(Some(&aff), &[]),
    );
    let mut r = Run::start(&env, &["aff"]);
    r.step("initial sync", &src, &[&dst]);
    deletions_renames_swaps(&mut r, &src, &[&dst]);
    odd_names(&mut r, &src, &dst);
    delete_and_create_in_one_batch(&mut r, &src, &dst);
    r.finish();
}

/// Over ssh, sender the default rsync, receiver the affected one (`--rsync-path`): deletions,
/// `rm -r`, directory renames and swaps reach the remote destination, without failed runs.
#[test]
fn remote_receiver_is_affected() {
    let env = sup_env("");
    let Some(sshd) = Sshd::start(&env.p("sshd")) else {
        return;
    };
    let (src, dst) = (env.dir("src"), env.p("dst"));
    seed(&src);
    let rsync = rsync_table(None, &[&rsync_path_arg()]);
    env.write_job("remote", &remote_job_toml(&sshd, &src, &dst, &rsync));
    let mut r = Run::start(&env, &["remote"]);
    r.step("initial sync", &src, &[&dst]);
    deletions_renames_swaps(&mut r, &src, &[&dst]);
    r.finish();
}

/// Over ssh with the affected rsync at both ends (`[rsync] path` and `--rsync-path`):
/// deletions, `rm -r`, directory renames and swaps reach the destination, without failed runs.
#[test]
fn both_ends_affected_over_ssh() {
    let env = sup_env("");
    let Some(sshd) = Sshd::start(&env.p("sshd")) else {
        return;
    };
    let (src, dst) = (env.dir("src"), env.p("dst"));
    seed(&src);
    let aff = affected_str();
    let rsync = rsync_table(Some(&aff), &[&rsync_path_arg()]);
    env.write_job("remote", &remote_job_toml(&sshd, &src, &dst, &rsync));
    let mut r = Run::start(&env, &["remote"]);
    r.step("initial sync", &src, &[&dst]);
    deletions_renames_swaps(&mut r, &src, &[&dst]);
    r.finish();
}

/// One job, two targets (a local directory and one over ssh), the affected rsync for both:
/// deletions, `rm -r`, directory renames and swaps reach both, neither target fails a run.
#[test]
fn fanout_local_and_remote() {
    let env = sup_env("");
    let Some(sshd) = Sshd::start(&env.p("sshd")) else {
        return;
    };
    let src = env.dir("src");
    let (local, remote) = (env.p("dst-local"), env.p("dst-remote"));
    seed(&src);
    let aff = affected_str();
    env.write_job(
        "web",
        &format!(
            "source = {}\ndestinations = [{}, {}]\ndelay = \"100ms\"\n{}{}",
            toml_path(&src),
            toml_path(&local),
            toml_str(&format!("root@127.0.0.1:{}", remote.display())),
            rsync_table(Some(&aff), &[&rsync_path_arg()]),
            sshd.job_extra()
        ),
    );
    let names = [
        target_name("web", &local.to_string_lossy()),
        target_name("web", &format!("root@127.0.0.1:{}", remote.display())),
    ];
    let names = [names[0].as_str(), names[1].as_str()];
    let mut r = Run::start(&env, &names);
    r.step("initial sync", &src, &[&local, &remote]);
    deletions_renames_swaps(&mut r, &src, &[&local, &remote]);
    r.finish();
}

/// rsync-shell with the affected rsync as the program, called as `rsync %RSYNC-ARGS% -- ./
/// DST`: deletions, `rm -r`, directory renames and swaps reach the destination (clsync runs
/// the program once more, with deletion-pass arguments, for a batch with deletions), without
/// failed runs.
#[test]
fn rsync_shell_args_with_affected_rsync() {
    let env = sup_env("");
    let (src, dst) = (env.dir("src"), env.p("dst"));
    seed(&src);
    let aff = affected_str();
    // The program's cwd is the source; `%source%/` would stay literal (a placeholder is only
    // replaced as a whole argument), so the source is `./`, and `%destination%` is a
    // directory rsync copies the contents of `./` into.
    env.write_job(
        "shell",
        &format!(
            "source = {}\ndestination = {}\nmode = \"rsync-shell\"\ndelay = \"100ms\"\n\
             {}[command]\npath = {}\nargs = {}\n",
            toml_path(&src),
            toml_path(&dst),
            rsync_table(Some(&aff), &[]),
            toml_str(&aff),
            toml_list(&["%RSYNC-ARGS%", "--", "./", "%destination%"])
        ),
    );
    let mut r = Run::start(&env, &["shell"]);
    r.step("initial sync", &src, &[&dst]);
    deletions_renames_swaps(&mut r, &src, &[&dst]);
    delete_and_create_in_one_batch(&mut r, &src, &dst);
    r.finish();
}

/// The version `rsync --version` (the default `rsync` from PATH) reports, e.g. "3.5.0".
fn default_rsync_version() -> String {
    let out = Command::new("rsync").arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .unwrap_or_else(|| panic!("no version in `rsync --version`: {text}"))
        .to_string()
}

/// Asserts that the log has a line containing every one of `needles`.
fn assert_log_line(d: &Daemon, needles: &[&str]) {
    assert!(
        d.log()
            .lines()
            .any(|l| needles.iter().all(|n| l.contains(n))),
        "no log line containing all of {needles:?}\n{}",
        d.log_tail()
    );
}

/// `clsync status --json` shows, per rsync job, the program, its version, where the receiver
/// runs, whether it accepts `--delete-missing-args`, and how deletions are sent: the affected
/// rsync in a separate pass, the default rsync in the batch. The start is logged with each
/// job's program and version.
#[test]
fn status_names_rsync_version_and_workaround() {
    let env = sup_env("");
    let (sa, da) = (env.dir("src-aff"), env.p("dst-aff"));
    let (sd, dd) = (env.dir("src-default"), env.p("dst-default"));
    seed(&sa);
    seed(&sd);
    let aff = affected_str();
    env.job("aff", &sa, &da, Mode::Rsync, &rsync_table(Some(&aff), &[]));
    env.job("default", &sd, &dd, Mode::Rsync, "");
    let mut r = Run::start(&env, &["aff", "default"]);
    fs::remove_file(sa.join("a.txt")).unwrap();
    fs::remove_file(sd.join("a.txt")).unwrap();
    r.step("one deletion", &sa, &[&da]);
    r.step("one deletion", &sd, &[&dd]);

    let v = status_json(&env);
    let rs = &job(&v, "aff").unwrap()["rsync"];
    assert!(rs.is_object(), "no \"rsync\" object for job aff: {v:#}");
    assert_eq!(rs["program"], aff.as_str(), "{rs:#}");
    assert_eq!(rs["version"], "3.2.7", "{rs:#}");
    assert_eq!(rs["receiver"], "local", "{rs:#}");
    assert_eq!(rs["delete_missing_args"], false, "{rs:#}");
    assert_eq!(rs["deletions"], "separate-pass", "{rs:#}");

    let rs = &job(&v, "default").unwrap()["rsync"];
    assert!(rs.is_object(), "no \"rsync\" object for job default: {v:#}");
    assert!(
        rs["version"].as_str().is_some_and(|s| !s.is_empty()),
        "{rs:#}"
    );
    let default_version = default_rsync_version();
    assert_eq!(rs["version"], default_version.as_str(), "{rs:#}");
    assert_eq!(rs["receiver"], "local", "{rs:#}");
    // The default rsync (PATH's) is whichever build the suite runs with.
    let accepts = missing_arg_answer(Path::new("rsync")).0 == Some(0);
    assert_eq!(rs["delete_missing_args"], accepts, "{rs:#}");
    let how = if accepts { "in-batch" } else { "separate-pass" };
    assert_eq!(rs["deletions"], how, "{rs:#}");

    // Logged at the start (long before now): the program and version of each job.
    assert_log_line(&r.d, &[&aff, "3.2.7"]);
    assert_log_line(&r.d, &[&default_version]);
    r.finish();
}

/// For a remote destination whose receiver is the affected rsync (`--rsync-path`), the status
/// says the receiver is remote, and once a batch with a deletion has synced, its version and
/// that it rejects `--delete-missing-args`.
#[test]
fn status_names_remote_receiver_version() {
    let env = sup_env("");
    let Some(sshd) = Sshd::start(&env.p("sshd")) else {
        return;
    };
    let (src, dst) = (env.dir("src"), env.p("dst"));
    seed(&src);
    let rsync = rsync_table(None, &[&rsync_path_arg()]);
    env.write_job("remote", &remote_job_toml(&sshd, &src, &dst, &rsync));
    let mut r = Run::start(&env, &["remote"]);
    let v = status_json(&env);
    let rs = &job(&v, "remote").unwrap()["rsync"];
    assert_eq!(rs["receiver"], "remote", "{v:#}");
    fs::remove_file(src.join("a.txt")).unwrap();
    r.step("one deletion", &src, &[&dst]);
    let v = status_json(&env);
    let rs = &job(&v, "remote").unwrap()["rsync"];
    assert_eq!(rs["receiver"], "remote", "{v:#}");
    assert_eq!(rs["receiver_version"], "3.2.7", "{rs:#}");
    assert_eq!(rs["delete_missing_args"], false, "{rs:#}");
    r.finish();
}

/// An rsync usage error (an unknown option in `[rsync] args`) is permanent: the job is shown
/// `failed` with rsync's own message and `permanent: true`, not `retrying`, and `clsync
/// status` exits 4 naming the error; a healthy job beside it keeps syncing.
#[test]
fn usage_error_is_failed_not_retrying() {
    let env = sup_env("");
    let (sb, db) = (env.dir("src-bad"), env.p("dst-bad"));
    let (sg, dg) = (env.dir("src-good"), env.p("dst-good"));
    populate(&sb, "bad");
    seed(&sg);
    env.job(
        "bad",
        &sb,
        &db,
        Mode::Rsync,
        &format!(
            "retry_delay = \"100ms\"\nretry_max_delay = \"200ms\"\n{}",
            rsync_table(None, &["--no-such-option-xyz"])
        ),
    );
    env.job("good", &sg, &dg, Mode::Rsync, "");
    let mut r = Run::start(&env, &["good"]);
    // `failed` once the same usage error has come back a few times (the first attempts
    // show `retrying`), and from then on it stays failed.
    let v = wait_status(&mut r.d, &env, "job bad failed", |v| {
        job(v, "bad").unwrap()["state"] == "failed"
    });
    let e = &job(&v, "bad").unwrap()["last_error"];
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("no-such-option-xyz")),
        "the error is rsync's own message: {e:#}"
    );
    assert_eq!(e["permanent"], true, "{e:#}");

    // It stays failed over several retry delays, and the healthy job keeps syncing.
    fs::remove_file(sg.join("a.txt")).unwrap();
    fs::rename(sg.join("ren"), sg.join("ren-renamed")).unwrap();
    r.step("the healthy job syncs", &sg, &[&dg]);
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        let v = status_json(&env);
        assert_eq!(job(&v, "bad").unwrap()["state"], "failed", "{v:#}");
        std::thread::sleep(POLL);
    }
    write(&sg.join("later.txt"), "still syncing");
    r.step("the healthy job syncs", &sg, &[&dg]);

    let out = cli_conf(&env, "status", &[]);
    assert_eq!(out.code, Some(4), "{}", out.describe());
    assert!(
        out.stdout.contains("no-such-option-xyz"),
        "the human status names the error:\n{}",
        out.describe()
    );
    r.finish();
}
