//! Excludes, rules, rules files, and `[defaults]` inheritance.

use super::harness::*;
use std::fs;
use std::path::Path;
use std::time::Instant;

const EXCLUDES: &[&str] = &["*.tmp", "/cache/", "build/"];

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn assert_absent(dst: &Path, rels: &[&str]) {
    for r in rels {
        assert!(
            fs::symlink_metadata(dst.join(r)).is_err(),
            "excluded path {r} appeared at the destination"
        );
    }
}

fn excludes(mode: Mode) {
    let env = Env::new();
    let src = env.dir("src");
    let dst = env.dir("dst");
    for (rel, content) in [
        ("keep.txt", "keep"),
        ("x.tmp", "src version of x.tmp"),
        ("sub/y.tmp", "y"),
        ("sub/y.tmpl", "not excluded"),
        ("cache/c.txt", "root cache is excluded"),
        (
            "sub/cache/c2.txt",
            "nested cache is not excluded (anchored pattern)",
        ),
        ("build/b.o", "excluded"),
        ("sub/build/b2.o", "excluded"),
        ("sub2/build", "a file named build is not excluded by build/"),
        ("x2.tmp", "renamed later"),
    ] {
        write(&src.join(rel), content);
    }
    // Excluded files already at the destination are kept as they are.
    for (rel, content) in [
        ("old.tmp", "dst only"),
        ("x.tmp", "dst version of x.tmp"),
        ("cache/keep-me", "dst cache"),
        ("build/stale.o", "dst build"),
        ("stale-not-excluded.txt", "must be deleted"),
    ] {
        write(&dst.join(rel), content);
    }
    let list = toml_list(EXCLUDES);
    env.job("ex", &src, &dst, mode, &format!("exclude = {list}"));
    let mut d = env.start(&["ex"]);
    d.assert_synced(&src, &dst, EXCLUDES);
    assert_absent(
        &dst,
        &[
            "sub/y.tmp",
            "cache/c.txt",
            "build/b.o",
            "sub/build",
            "stale-not-excluded.txt",
        ],
    );
    assert_eq!(read(&dst.join("x.tmp")), "dst version of x.tmp");
    assert_eq!(read(&dst.join("old.tmp")), "dst only");
    assert_eq!(read(&dst.join("cache/keep-me")), "dst cache");
    assert_eq!(read(&dst.join("build/stale.o")), "dst build");
    assert_eq!(
        read(&dst.join("sub2/build")),
        "a file named build is not excluded by build/"
    );

    // Live changes.
    write(&src.join("new.tmp"), "excluded");
    write(&src.join("sub/deep/z.tmp"), "excluded");
    write(&src.join("cache/new.txt"), "excluded");
    write(&src.join("build/new.o"), "excluded");
    write(&src.join("a/b/build/n.o"), "excluded");
    write(&src.join("a/b/ok.txt"), "included");
    write(&src.join("x.tmp"), "src version changed");
    fs::remove_file(src.join("cache/c.txt")).unwrap();
    fs::rename(src.join("keep.txt"), src.join("keep.tmp")).unwrap();
    fs::rename(src.join("x2.tmp"), src.join("x2.txt")).unwrap();
    fs::rename(src.join("sub/cache"), src.join("cache-moved")).unwrap();
    d.barrier(&src, &dst, EXCLUDES);
    assert_absent(
        &dst,
        &[
            "new.tmp",
            "sub/deep/z.tmp",
            "cache/new.txt",
            "build/new.o",
            "a/b/build",
            "keep.tmp",
            "keep.txt",
        ],
    );
    assert_eq!(read(&dst.join("x2.txt")), "renamed later");
    assert_eq!(read(&dst.join("x.tmp")), "dst version of x.tmp");
    assert_eq!(read(&dst.join("old.tmp")), "dst only");
    assert_eq!(read(&dst.join("cache/keep-me")), "dst cache");
    // Deleting the whole source dir of an excluded tree does not touch the excluded files.
    fs::remove_dir_all(src.join("build")).unwrap();
    fs::remove_dir_all(src.join("cache")).unwrap();
    d.barrier(&src, &dst, EXCLUDES);
    assert_eq!(read(&dst.join("build/stale.o")), "dst build");
    assert_eq!(read(&dst.join("cache/keep-me")), "dst cache");
}

/// The rsync excludes equivalent to RULES, for comparing trees.
const RULES_AS_EXCLUDES: &[&str] = &["/skip/", "*.log"];

fn rules_scenario(mode: Mode, use_file: bool) {
    let env = Env::new();
    let src = env.dir("src");
    let dst = env.p("dst");
    for (rel, content) in [
        ("keep.txt", "keep"),
        ("skip/a.txt", "excluded dir"),
        ("skip/deeper/b.txt", "excluded dir"),
        (
            "other/skip/c.txt",
            "only the top-level skip dir is excluded",
        ),
        ("skipper/d.txt", "anchored regex: not excluded"),
        ("x.log", "excluded"),
        ("deep/er/y.log", "excluded"),
        ("deep/er/y.log.txt", "included"),
    ] {
        write(&src.join(rel), content);
    }
    let extra = if use_file {
        fs::write(env.conf.join("legacy.rules"), "-d^skip$\n-f\\.log$\n+*\n").unwrap();
        "rules_file = \"legacy.rules\"".to_string()
    } else {
        format!("rules = {}", toml_list(&["-d^skip$", "-f\\.log$", "+*"]))
    };
    env.job("rules", &src, &dst, mode, &extra);
    let mut d = env.start(&["rules"]);
    d.assert_synced(&src, &dst, RULES_AS_EXCLUDES);
    assert_absent(&dst, &["skip", "x.log", "deep/er/y.log"]);

    write(&src.join("skip/new.txt"), "excluded");
    write(&src.join("skip/new/dir/f"), "excluded");
    write(&src.join("new.log"), "excluded");
    write(&src.join("deep/z.log"), "excluded");
    write(&src.join("deep/z.txt"), "included");
    write(&src.join("other/skip/new.txt"), "included");
    fs::rename(src.join("keep.txt"), src.join("keep.log")).unwrap();
    fs::rename(src.join("x.log"), src.join("x.txt")).unwrap();
    d.barrier(&src, &dst, RULES_AS_EXCLUDES);
    assert_absent(
        &dst,
        &["skip", "new.log", "deep/z.log", "keep.log", "keep.txt"],
    );
    assert_eq!(read(&dst.join("x.txt")), "excluded");
}

fn rules(mode: Mode) {
    rules_scenario(mode, false)
}

fn rules_file(mode: Mode) {
    rules_scenario(mode, true)
}

/// `[defaults]` in clsync.toml: delay, exclude and `[rsync]` keys are inherited, a job's own
/// keys win, and the `rsync` table merges per key.
#[test]
fn defaults_inherited() {
    let env = Env::new();
    let (counter_script, counter) = env.rsync_counter();
    env.write_main_config(&format!(
        "[defaults]\ndelay = \"4s\"\nexclude = [\"*.tmp\"]\n{}\n[defaults.rsync]\npath = {}\n",
        sandbox_write(&[&counter]),
        toml_path(&counter_script)
    ));
    let (src1, dst1) = (env.dir("src1"), env.p("dst1"));
    let (src2, dst2) = (env.dir("src2"), env.p("dst2"));
    write(&src1.join("a.tmp"), "excluded by default");
    write(&src1.join("a.txt"), "a");
    write(&src2.join("b.tmp"), "job overrides exclude");
    write(&src2.join("b.bak"), "excluded by the job");
    // Inherits everything; sets rsync.args only (rsync.path still comes from defaults).
    env.write_job(
        "inherit",
        &format!(
            "source = {}\ndestination = {}\n\n[rsync]\nargs = [\"--checksum\"]\n",
            toml_path(&src1),
            toml_path(&dst1)
        ),
    );
    // Overrides delay and exclude.
    env.write_job(
        "override",
        &format!(
            "source = {}\ndestination = {}\ndelay = \"0s\"\nexclude = [\"*.bak\"]\n",
            toml_path(&src2),
            toml_path(&dst2)
        ),
    );
    let mut d = env.start(&["inherit", "override"]);
    d.assert_synced(&src1, &dst1, &["*.tmp"]);
    d.assert_synced(&src2, &dst2, &["*.bak"]);
    assert_absent(&dst1, &["a.tmp"]);
    assert_absent(&dst2, &["b.bak"]);
    assert!(
        dst2.join("b.tmp").exists(),
        "the job's own exclude must replace the default"
    );
    let calls = count_lines(&counter);
    assert!(
        calls >= 2,
        "defaults.rsync.path not used (rsync counter saw {calls} calls)"
    );

    // The inherited 4 s delay: a change is not synced sooner than ~4 s.
    let t0 = Instant::now();
    write(&src1.join("late.txt"), "late");
    write(&src1.join("late.tmp"), "late, excluded");
    d.assert_synced(&src1, &dst1, &["*.tmp"]);
    let since_write = t0.elapsed();
    eprintln!(
        "defaults_inherited: change synced {since_write:?} after the write (inherited delay = 4s)"
    );
    assert!(
        since_write.as_millis() >= 3000,
        "synced after {since_write:?}: the inherited delay of 4s was not applied\n{}",
        d.log_tail()
    );
    assert_absent(&dst1, &["late.tmp"]);
    // The job that overrides delay still works.
    write(&src2.join("c.tmp"), "c");
    d.assert_synced(&src2, &dst2, &["*.bak"]);
}

crate::both_modes! {
    excludes_never_synced_and_kept_at_dst => excludes;
    rules_first_match_wins => rules;
    legacy_rules_file => rules_file;
}
