//! `clsync import`: lsyncd's and the C clsync's configurations as clsync job files.
//!
//! - Every example of Debian's lsyncd package converts, or is refused with a message that
//!   names its line.
//! - The configurations written for these tests (`tests/fixtures/import/lsyncd`: a loop over
//!   hosts, `excludeFrom`, `rsyncssh` with ssh options and `delete = false`) convert, pass
//!   `clsync check`, and lsyncd 2.2.3 running the original and clsync running the import,
//!   on the same source, leave the same destination trees (compared with `rsync -anci`:
//!   names, types, contents, permissions, owners, times).
//! - The command lines of Debian's C clsync package convert, or are refused with the reason
//!   (`tests/fixtures/import/clsync`).
//!
//! lsyncd (Debian's `lsyncd`) is needed for the lsyncd tests: without it they are skipped,
//! unless `CI` is set, where a missing lsyncd fails them.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::harness::*;
use super::sshd::Sshd;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/import");
const EXAMPLES: &str = "/usr/share/doc/lsyncd/examples";

/// Exit statuses of `clsync import`.
const COMPLETE: i32 = 0;
const NOT_IMPORTED: i32 = 1;
const PARTIAL: i32 = 5;

fn lsyncd_present() -> bool {
    let found = Command::new("lsyncd")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "lsyncd is not installed (apt-get install lsyncd)"
        );
        eprintln!("skipped: lsyncd is not installed (apt-get install lsyncd)");
    }
    found
}

/// `clsync ARGS` in `cwd`, with `HOME` there too (the C clsync's configuration search list
/// starts at `~/.clsync.conf`).
fn clsync(cwd: &Path, args: &[&OsStr]) -> CheckOutput {
    let out = Command::new(env!("CARGO_BIN_EXE_clsync"))
        .args(args)
        .current_dir(cwd)
        .env("HOME", cwd)
        .env("NO_COLOR", "1")
        .env_remove("CLSYNC_CONFIG_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("run clsync");
    CheckOutput {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `clsync check --config-dir DIR` must accept what an import wrote.
fn assert_checks(cwd: &Path, dir: &Path) {
    let out = clsync(
        cwd,
        &[
            OsStr::new("check"),
            OsStr::new("--config-dir"),
            dir.as_os_str(),
        ],
    );
    assert_eq!(
        out.code,
        Some(0),
        "clsync check {}:\n{}",
        dir.display(),
        out.describe()
    );
}

fn toml_of(p: &Path) -> toml::Table {
    let text = fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", p.display()))
}

/// The job files an import wrote, by name.
fn jobs(conf: &Path) -> Vec<(String, toml::Table)> {
    let mut out: Vec<(String, toml::Table)> = fs::read_dir(conf.join("jobs.d"))
        .unwrap()
        .flatten()
        .map(|e| {
            let name = e.path().file_stem().unwrap().to_string_lossy().into_owned();
            (name, toml_of(&e.path()))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

// ---------------------------------------------------------------------------------------
// Debian's lsyncd examples

/// What each example must give: the exit status and, when it is refused or cannot be
/// evaluated, the line the message must name.
const EXAMPLES_EXPECTED: &[(&str, i32, Option<u32>)] = &[
    // alarm() and a sync{} with its own action.
    ("lalarm.lua", NOT_IMPORTED, Some(17)),
    // settings{statusIntervall}: lsyncd 2.2.3 refuses the typo too.
    ("lbash.lua", NOT_IMPORTED, Some(7)),
    ("lecho.lua", NOT_IMPORTED, Some(21)),
    ("lftp.lua", NOT_IMPORTED, Some(156)),
    ("lgforce.lua", NOT_IMPORTED, Some(79)),
    ("limagemagic.lua", NOT_IMPORTED, Some(118)),
    // default.rsync plus its own action (an ssh post-command): the rsync is carried over.
    ("lpostcmd.lua", PARTIAL, None),
    ("lrsync.lua", COMPLETE, None),
    ("lrsyncssh.lua", COMPLETE, None),
    // require("socket").
    ("lsayirc.lua", NOT_IMPORTED, Some(20)),
    // Shipped compressed: its own actions around the AWS CLI.
    ("ls3.lua", NOT_IMPORTED, Some(207)),
];

#[test]
fn debian_lsyncd_examples_convert_or_are_refused_naming_the_line() {
    if !Path::new(EXAMPLES).is_dir() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{EXAMPLES} is missing (apt-get install lsyncd)"
        );
        eprintln!("skipped: {EXAMPLES} is missing (apt-get install lsyncd)");
        return;
    }
    let env = Env::new();
    let mut seen = Vec::new();
    for entry in fs::read_dir(EXAMPLES).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let file = env.p(name.strip_suffix(".gz").unwrap_or(&name));
        if let Some(plain) = name.strip_suffix(".gz") {
            if !plain.ends_with(".lua") {
                continue;
            }
            let out = Command::new("gzip")
                .arg("-dc")
                .arg(entry.path())
                .output()
                .unwrap();
            assert!(out.status.success());
            fs::write(&file, out.stdout).unwrap();
        } else if name.ends_with(".lua") {
            fs::copy(entry.path(), &file).unwrap();
        } else {
            continue;
        }
        let shown = file.file_name().unwrap().to_string_lossy().into_owned();
        seen.push(shown.clone());
        let out_dir = env.p(&format!("out-{shown}"));
        let out = clsync(
            &env.root,
            &[
                OsStr::new("import"),
                OsStr::new("--out"),
                out_dir.as_os_str(),
                OsStr::new("lsyncd"),
                file.as_os_str(),
            ],
        );
        let expected = EXAMPLES_EXPECTED.iter().find(|(n, _, _)| *n == shown);
        match out.code {
            Some(COMPLETE) | Some(PARTIAL) => assert_checks(&env.root, &out_dir),
            Some(NOT_IMPORTED) => {
                assert!(
                    !out_dir.exists(),
                    "{shown}: nothing may be written when refused"
                );
                let named = regex::Regex::new(&format!(
                    r"{}:\d+: (refused|error): ",
                    regex::escape(&shown)
                ))
                .unwrap();
                assert!(
                    named.is_match(&out.stderr),
                    "{shown}: no message names a line:\n{}",
                    out.describe()
                );
            }
            other => panic!("{shown}: exit status {other:?}\n{}", out.describe()),
        }
        if let Some((_, code, line)) = expected {
            assert_eq!(out.code, Some(*code), "{shown}:\n{}", out.describe());
            if let Some(line) = line {
                assert!(
                    out.stderr.contains(&format!("{shown}:{line}: ")),
                    "{shown}: the message should name line {line}:\n{}",
                    out.describe()
                );
            }
        } else {
            eprintln!("note: {shown} is a new example: {}", out.describe());
        }
    }
    for (n, _, _) in EXAMPLES_EXPECTED {
        assert!(
            seen.iter().any(|s| s == n),
            "{n} is not among Debian's examples any more"
        );
    }
    // lrsyncssh: rsync to localhost:dst/ with lsyncd's default options undone.
    let (_, job) = &jobs(&env.p("out-lrsyncssh.lua"))[0];
    assert_eq!(job["destination"].as_str(), Some("localhost:dst/"));
    assert_eq!(job["delay"].as_str(), Some("15s"));
    let args: Vec<&str> = job["rsync"]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        args,
        [
            "--no-perms",
            "--no-group",
            "--no-owner",
            "--no-devices",
            "--no-specials"
        ]
    );
}

// ---------------------------------------------------------------------------------------
// lsyncd and clsync side by side

/// lsyncd in the foreground; stopped (by its PID) when dropped.
struct Lsyncd {
    child: Child,
    log: PathBuf,
}

impl Lsyncd {
    fn start(cwd: &Path, config: &Path) -> Lsyncd {
        let log = cwd.join("lsyncd.log");
        let f = fs::File::create(&log).unwrap();
        let child = Command::new("lsyncd")
            .args(["-nodaemon", "-log", "scarce"])
            .arg(config)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .expect("start lsyncd");
        Lsyncd { child, log }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Lsyncd {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(POLL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `rsync -anci --delete a/ b/` (with `-O`: not comparing directories' times): empty when
/// the trees are equal in names, types, contents, permissions, owners, groups and times.
fn trees_differ(a: &Path, b: &Path, omit_dir_times: bool) -> String {
    let mut cmd = Command::new("rsync");
    cmd.arg("-anci").arg("--delete");
    if omit_dir_times {
        cmd.arg("-O");
    }
    let with_slash = |p: &Path| {
        let mut s = p.as_os_str().to_owned();
        s.push("/");
        s
    };
    let out = cmd
        .arg(with_slash(a))
        .arg(with_slash(b))
        .output()
        .expect("rsync");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        text.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    text
}

/// Waits until every pair (lsyncd's tree, clsync's tree) holds `marker` and the two are
/// equal, and still are a moment later; panics with the difference and both logs.
fn wait_same(
    pairs: &[(PathBuf, PathBuf)],
    marker: &str,
    omit_dir_times: bool,
    lsyncd: &Lsyncd,
    clsync: &Daemon,
) {
    let deadline = Instant::now() + SYNC_DEADLINE;
    let settled = |pairs: &[(PathBuf, PathBuf)]| {
        pairs.iter().all(|(l, c)| {
            l.join(marker).exists()
                && c.join(marker).exists()
                && trees_differ(l, c, omit_dir_times).is_empty()
        })
    };
    loop {
        if settled(pairs) {
            // Both have seen the marker; give late attribute updates a moment.
            std::thread::sleep(Duration::from_millis(1500));
            if settled(pairs) {
                return;
            }
        }
        if Instant::now() > deadline {
            let diffs: Vec<String> = pairs
                .iter()
                .map(|(l, c)| {
                    format!(
                        "{} vs {} (marker: {} / {}):\n{}",
                        l.display(),
                        c.display(),
                        l.join(marker).exists(),
                        c.join(marker).exists(),
                        truncate(&trees_differ(l, c, omit_dir_times), 3000)
                    )
                })
                .collect();
            panic!(
                "lsyncd's and clsync's destinations differ:\n{}\n--- lsyncd log ---\n{}\n--- clsync log ---\n{}",
                diffs.join("\n"),
                truncate(&lsyncd.log(), 3000),
                clsync.log_tail()
            );
        }
        std::thread::sleep(POLL);
    }
}

/// A fixture's configuration (and `extra` files) in the test's root, with `paths.lua`.
struct Side {
    env: Env,
    config: PathBuf,
}

impl Side {
    fn new(fixture: &str, extra: &[&str]) -> Side {
        let env = Env::new();
        let config = env.p(fixture);
        fs::copy(Path::new(FIXTURES).join("lsyncd").join(fixture), &config).unwrap();
        for f in extra {
            fs::copy(Path::new(FIXTURES).join("lsyncd").join(f), env.p(f)).unwrap();
        }
        Side { env, config }
    }

    /// `paths.lua`: ROOT, DEST (under the root), and `more` Lua.
    fn paths(&self, dest: &str, more: &str) {
        fs::write(
            self.env.p("paths.lua"),
            format!(
                "ROOT = {:?}\nDEST = {:?}\n{more}",
                self.env.root.display().to_string(),
                self.env.p(dest).display().to_string()
            ),
        )
        .unwrap();
    }

    /// Imports the configuration (with DEST = clsync's) into the test's `conf/`; returns
    /// the import's output.
    fn import(&self, more: &str) -> CheckOutput {
        self.paths("clsync", more);
        let out = clsync(
            &self.env.root,
            &[
                OsStr::new("import"),
                OsStr::new("--out"),
                self.env.conf.as_os_str(),
                OsStr::new("lsyncd"),
                self.config.as_os_str(),
            ],
        );
        self.paths("lsyncd", more);
        out
    }

    /// Starts both daemons: clsync with the imported jobs, lsyncd with the original.
    fn start(&self, jobs: &[&str]) -> (Lsyncd, Daemon) {
        let d = self.env.start(jobs);
        let l = Lsyncd::start(&self.env.root, &self.config);
        (l, d)
    }
}

#[test]
fn standbys_loop_over_hosts_gives_lsyncds_trees() {
    if !lsyncd_present() {
        return;
    }
    let side = Side::new("standbys.lua", &[]);
    let www = side.env.dir("www");
    populate(&www, "www");
    write(&www.join("index.html"), "<h1>hi</h1>\n");
    write(&www.join("upload.tmp"), "partial");
    write(&www.join("cache/page"), "cached");
    write(&www.join(".git/HEAD"), "ref: refs/heads/main\n");
    write(&www.join("sub/.git/x"), "nested");
    fs::set_permissions(
        www.join("a.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    // A stale file at every destination: deleted at start by both (delete = true).
    for side_dir in ["lsyncd", "clsync"] {
        for h in ["web1", "web2", "web3"] {
            write(&side.env.p(&format!("{side_dir}/{h}/stale.txt")), "old");
        }
    }

    let out = side.import("");
    assert_eq!(out.code, Some(COMPLETE), "{}", out.describe());
    assert_checks(&side.env.root, &side.env.conf);
    let jobs = jobs(&side.env.conf);
    let names: Vec<&str> = jobs.iter().map(|(n, _)| n.as_str()).collect();
    // Named after their targets, as lsyncd 2.2.3 has no sync{name=...}.
    let expected: Vec<String> = ["web1", "web2", "web3"]
        .iter()
        .map(|h| names::of(&side.env.p(&format!("clsync/{h}"))))
        .collect();
    assert_eq!(names, expected);
    let (_, job) = &jobs[0];
    assert_eq!(job["delay"].as_str(), Some("1s"));
    assert_eq!(
        job["workers"].as_integer(),
        Some(4),
        "settings' maxProcesses"
    );
    assert_eq!(job["exclude"].as_array().unwrap().len(), 3, "{job:?}");
    let args: Vec<&str> = job["rsync"]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(args, ["--compress", "--bwlimit=100000"]);
    let main = toml_of(&side.env.conf.join("clsync.toml"));
    assert_eq!(
        main["daemon"]["status_file"].as_str(),
        Some(side.env.p("lsyncd.status").to_str().unwrap())
    );

    let (lsyncd, clsync) = side.start(&names);
    let pairs: Vec<(PathBuf, PathBuf)> = ["web1", "web2", "web3"]
        .iter()
        .map(|h| {
            (
                side.env.p(&format!("lsyncd/{h}")),
                side.env.p(&format!("clsync/{h}")),
            )
        })
        .collect();
    write(&www.join("marker-0"), "0");
    wait_same(&pairs, "marker-0", false, &lsyncd, &clsync);

    // Live changes: new, changed, renamed, deleted, excluded, deep, attributes.
    write(&www.join("new/deep/er/file.txt"), "new");
    append(&www.join("index.html"), "<p>more</p>\n");
    fs::rename(www.join("b/b1.txt"), www.join("b/b1-renamed.txt")).unwrap();
    fs::rename(www.join("b/c"), www.join("b/c-moved")).unwrap();
    fs::remove_file(www.join("b/b2.txt")).unwrap();
    write(&www.join("cache/more"), "excluded");
    write(&www.join("new/x.tmp"), "excluded");
    fs::set_permissions(
        www.join("index.html"),
        std::os::unix::fs::PermissionsExt::from_mode(0o640),
    )
    .unwrap();
    write(&www.join("marker-1"), "1");
    wait_same(&pairs, "marker-1", false, &lsyncd, &clsync);
    let c = side.env.p("clsync/web2");
    assert!(c.join("new/deep/er/file.txt").exists() && c.join("b/c-moved/deep.txt").exists());
    assert!(
        !c.join("stale.txt").exists()
            && !c.join("upload.tmp").exists()
            && !c.join("cache").exists()
    );
}

#[test]
fn exclude_from_and_lsyncds_default_options_give_lsyncds_tree() {
    if !lsyncd_present() {
        return;
    }
    let side = Side::new("exclude-from.lua", &["excludes.txt"]);
    // rsync makes only the last directory of a target; clsync makes them all.
    side.env.dir("lsyncd");
    let data = side.env.dir("data");
    populate(&data, "data");
    for f in [
        "main.o",
        "build/out.bin",
        "notes.bak",
        "web/node_modules/m/i.js",
        "doc.swp",
        "sub/build/kept",
    ] {
        write(&data.join(f), f);
    }
    fs::set_permissions(
        data.join("a.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o604),
    )
    .unwrap();
    if is_root() {
        // lsyncd's default options do not keep owners: root's rsync makes its files root's.
        std::os::unix::fs::lchown(data.join("b/b1.txt"), Some(65534), Some(65534)).unwrap();
    }

    let out = side.import("");
    assert_eq!(out.code, Some(COMPLETE), "{}", out.describe());
    assert!(out.stderr.contains("excludeFrom"), "{}", out.describe());
    assert_checks(&side.env.root, &side.env.conf);
    let jobs = jobs(&side.env.conf);
    let (name, job) = &jobs[0];
    let excludes: Vec<&str> = job["exclude"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        excludes,
        ["*.swp", "*.o", "/build/", "*.bak", "node_modules/"]
    );
    assert!(
        !side.env.conf.join("clsync.toml").exists(),
        "no settings, no clsync.toml"
    );

    let (lsyncd, clsync) = side.start(&[name.as_str()]);
    let pairs = vec![(side.env.p("lsyncd/mirror"), side.env.p("clsync/mirror"))];
    write(&data.join("marker-0"), "0");
    wait_same(&pairs, "marker-0", false, &lsyncd, &clsync);

    write(&data.join("live.o"), "excluded");
    write(&data.join("build/late"), "excluded");
    write(&data.join("sub/new.txt"), "kept");
    fs::rename(data.join("empty"), data.join("full")).unwrap();
    fs::remove_file(data.join("b/c/deep.txt")).unwrap();
    write(&data.join("marker-1"), "1");
    wait_same(&pairs, "marker-1", false, &lsyncd, &clsync);
    let c = side.env.p("clsync/mirror");
    assert!(c.join("sub/build/kept").exists() && c.join("full/.keep").exists());
    assert!(!c.join("main.o").exists() && !c.join("build").exists() && !c.join("doc.swp").exists());
}

#[test]
fn rsyncssh_with_ssh_options_gives_lsyncds_tree() {
    if !lsyncd_present() {
        return;
    }
    let side = Side::new("rsyncssh.lua", &[]);
    let Some(sshd) = Sshd::start(&side.env.p("sshd")) else {
        return;
    };
    let more = format!(
        "PORT = {}\nKEY = {:?}\n",
        sshd.port,
        sshd.key.display().to_string()
    );
    let site = side.env.dir("site");
    populate(&site, "site");
    write(&site.join("access.log"), "excluded");
    side.env.dir("lsyncd/remote");
    side.env.dir("clsync/remote");

    let out = side.import(&more);
    // delete = false is carried over; how renames differ is said in a note.
    assert_eq!(out.code, Some(COMPLETE), "{}", out.describe());
    assert!(
        out.stderr
            .contains("rsyncssh.lua:13: note: lsyncd's rsyncssh moves a renamed path"),
        "{}",
        out.describe()
    );
    assert_checks(&side.env.root, &side.env.conf);
    let jobs = jobs(&side.env.conf);
    let (name, job) = &jobs[0];
    assert_eq!(
        job["destination"].as_str(),
        Some(format!("127.0.0.1:{}", side.env.p("clsync/remote").display()).as_str())
    );
    assert_eq!(job["ssh"]["port"].as_integer(), Some(sshd.port as i64));
    assert_eq!(job["ssh"]["identity_file"].as_str(), sshd.key.to_str());
    let options: Vec<&str> = job["ssh"]["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        options,
        [
            "-o",
            "LogLevel=ERROR",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null"
        ]
    );
    assert_eq!(job["delete"].as_bool(), Some(false), "{job:?}");

    let (lsyncd, clsync) = side.start(&[name.as_str()]);
    let pairs = vec![(side.env.p("lsyncd/remote"), side.env.p("clsync/remote"))];
    write(&site.join("marker-0"), "0");
    wait_same(&pairs, "marker-0", false, &lsyncd, &clsync);

    // With delete = false both keep what the source deletes. (Renames are left out:
    // lsyncd's rsyncssh moves them on the remote host even with delete = false, clsync
    // copies them and keeps the old name, as the import's note says; e2e::delete tests
    // clsync's side.)
    write(&site.join("new/page.html"), "new");
    append(&site.join("a.txt"), " changed");
    fs::remove_file(site.join("b/b1.txt")).unwrap();
    fs::remove_dir_all(site.join("b/c")).unwrap();
    write(&site.join("new/error.log"), "excluded");
    write(&site.join("marker-1"), "1");
    wait_same(&pairs, "marker-1", true, &lsyncd, &clsync);
    let c = side.env.p("clsync/remote");
    assert!(c.join("b/c/d/e/deeper.bin").exists() && c.join("b/b1.txt").exists());
    assert!(c.join("new/page.html").exists());
    assert!(!c.join("access.log").exists());
}

/// Job names as an import makes them from a local destination.
mod names {
    use std::path::Path;

    pub fn of(dest: &Path) -> String {
        let s = dest.display().to_string();
        let mut out = String::new();
        for c in s.chars() {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' {
                out.push(c);
            } else if !out.ends_with('_') {
                out.push('_');
            }
        }
        out.trim_matches(|c| c == '_' || c == '.' || c == '-')
            .chars()
            .take(64)
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// The C clsync

/// Each fixture command line, what the import must exit with, and keys the job must have.
struct CCase {
    args: &'static str,
    code: i32,
    keys: &'static [(&'static str, &'static str)],
    says: &'static str,
}

const C_CASES: &[CCase] = &[
    CCase {
        args: "etc-default.args",
        code: COMPLETE,
        keys: &[
            ("source", "/var/www"),
            ("destination", "/mnt/backup"),
            ("mode", "rsync"),
            ("delay", "30s"),
            ("retry_delay", "30s"),
        ],
        says: "lists-dir is not needed",
    },
    CCase {
        args: "start-rsyncdirect.args",
        code: COMPLETE,
        keys: &[("mode", "rsync"), ("delay", "5s"), ("retry_delay", "2s")],
        says: "relative watch-dir",
    },
    CCase {
        args: "start-rsyncshell.args",
        code: PARTIAL,
        keys: &[("mode", "rsync-shell"), ("delay", "5s")],
        says: "NUL-separated list files",
    },
    CCase {
        args: "start-rsyncso.args",
        code: NOT_IMPORTED,
        keys: &[],
        says: "argument -M rsyncso: refused: mode rsyncso loads a handler library",
    },
    CCase {
        args: "start-so.args",
        code: NOT_IMPORTED,
        keys: &[],
        says: "argument -M so: refused",
    },
    CCase {
        args: "start-cluster.args",
        code: NOT_IMPORTED,
        keys: &[],
        says: "invalid option -- 'c'",
    },
    CCase {
        args: "test-sh.args",
        code: PARTIAL,
        keys: &[("mode", "rsync"), ("destination", "/mnt/data/to")],
        says: "argument --exit-on-no-events: warning",
    },
    CCase {
        args: "systemd-unit.args",
        code: NOT_IMPORTED,
        keys: &[],
        says: "%i is systemd's instance name",
    },
    CCase {
        args: "systemd-someconfig.args",
        code: PARTIAL,
        keys: &[("source", "/tmp"), ("mode", "simple"), ("delay", "0s")],
        says: "someconfig.conf:2 [SomeConfig]: warning: no destination-dir",
    },
    CCase {
        args: "blocks.args",
        code: PARTIAL,
        keys: &[
            ("source", "/srv/lxc/mycontainer"),
            ("mode", "rsync-shell"),
            ("delay", "15s"),
        ],
        says: "blocks.conf:20 [lxc-brother]: warning: exit-hook is not carried over",
    },
];

#[test]
fn debian_c_clsync_command_lines_convert_or_are_refused() {
    let env = Env::new();
    for f in fs::read_dir(Path::new(FIXTURES).join("clsync"))
        .unwrap()
        .flatten()
    {
        fs::copy(f.path(), env.p(&f.file_name().to_string_lossy())).unwrap();
    }
    // What the example scripts write before they start clsync.
    write(&env.p("rules"), "-d^[Dd]ont[Ss]ync$\n+*.*\n");
    for case in C_CASES {
        let line = fs::read_to_string(env.p(case.args)).unwrap();
        let out_dir = env.p(&format!("out-{}", case.args));
        let out = clsync(
            &env.root,
            &[
                OsStr::new("import"),
                OsStr::new("--out"),
                out_dir.as_os_str(),
                OsStr::new("clsync"),
                OsStr::new(line.trim_end()),
            ],
        );
        assert_eq!(
            out.code,
            Some(case.code),
            "{}:\n{}",
            case.args,
            out.describe()
        );
        assert!(
            out.stderr.contains(case.says),
            "{}: expected {:?}:\n{}",
            case.args,
            case.says,
            out.describe()
        );
        if case.code == NOT_IMPORTED {
            assert!(!out_dir.exists(), "{}", case.args);
            continue;
        }
        assert_checks(&env.root, &out_dir);
        let jobs = jobs(&out_dir);
        assert_eq!(jobs.len(), 1, "{}", case.args);
        let (_, job) = &jobs[0];
        for (k, v) in case.keys {
            assert_eq!(job[*k].as_str(), Some(*v), "{}: {k} in {job:?}", case.args);
        }
    }
    // The same line as separate arguments, after `--`.
    let out_dir = env.p("out-words");
    let mut args: Vec<&OsStr> = ["import", "--out"].map(OsStr::new).to_vec();
    args.push(out_dir.as_os_str());
    args.extend(
        [
            "clsync",
            "--",
            "-M",
            "rsyncdirect",
            "-W",
            "/var/www",
            "-D",
            "/mnt/backup",
            "-x",
            "23",
            "-p",
            "off",
        ]
        .map(OsStr::new),
    );
    let out = clsync(&env.root, &args);
    assert_eq!(out.code, Some(COMPLETE), "{}", out.describe());
    let (_, job) = &jobs(&out_dir)[0];
    assert_eq!(job["workers"].as_integer(), Some(1));
    assert_eq!(
        job["ignore_exit_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_integer().unwrap())
            .collect::<Vec<_>>(),
        [23, 24]
    );
    assert_eq!(
        job["big_file"]["threshold"].as_integer(),
        Some(128 * 1024 * 1024 + 1)
    );
    // The block file: inheritance, %label% from the command line, [daemon].
    let (_, job) = &jobs(&env.p("out-blocks.args"))[0];
    assert_eq!(job["retries"].as_integer(), Some(3));
    assert_eq!(
        job["command"]["lists_dir"].as_str(),
        Some("/dev/shm/clsync-mycontainer-brother")
    );
    assert_eq!(job["command"]["args"][1].as_str(), Some("mycontainer"));
    let main = toml_of(&env.p("out-blocks.args/clsync.toml"));
    assert_eq!(
        main["daemon"]["pid_file"].as_str(),
        Some("/var/run/clsync-mycontainer-brother.pid")
    );
    // An existing file is not overwritten without --force.
    let again = clsync(
        &env.root,
        &[
            OsStr::new("import"),
            OsStr::new("--out"),
            out_dir.as_os_str(),
            OsStr::new("clsync"),
            OsStr::new("-M rsyncdirect -W /var/www -D /mnt/backup"),
        ],
    );
    assert_eq!(again.code, Some(3), "{}", again.describe());
}
