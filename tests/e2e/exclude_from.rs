//! `exclude_from = "FILE"`: an rsync exclude file, combined with `exclude`, read at load;
//! a reload restarts exactly the jobs whose exclude file changed.

use std::ffi::OsStr;
use std::fs;

use serde_json::json;

use super::ctl::*;
use super::harness::*;

const EXCLUDES: &str = "# build output\n*.tmp\n\n; rsync's other comment\n/build/\r\n";

fn excludes_its_patterns(mode: Mode) {
    let env = Env::new();
    let (src, dst) = (env.dir("src"), env.p("dst"));
    populate(&src, "x");
    write(&src.join("b/scratch.tmp"), "tmp");
    write(&src.join("build/out.o"), "object");
    write(&src.join("b/build/kept.o"), "not anchored: synced");
    write(&src.join("old.bak"), "from `exclude`");
    write(&src.join("# build output"), "a comment line names no file");
    fs::write(env.conf.join("excludes.txt"), EXCLUDES).unwrap();
    env.job(
        "j",
        &src,
        &dst,
        mode,
        "exclude = [\"*.bak\"]\nexclude_from = \"excludes.txt\"\n",
    );
    let mut d = env.start(&["j"]);
    let ex = ["*.tmp", "/build/", "*.bak"];
    d.assert_synced(&src, &dst, &ex);
    for gone in ["b/scratch.tmp", "build", "old.bak"] {
        assert!(!dst.join(gone).exists(), "{gone} synced\n{}", d.log_tail());
    }
    assert!(dst.join("b/build/kept.o").exists());
    assert!(dst.join("# build output").exists());
    // Live changes follow the same patterns.
    write(&src.join("live.tmp"), "tmp");
    write(&src.join("build/live.o"), "o");
    write(&src.join("live.txt"), "synced");
    d.barrier(&src, &dst, &ex);
    assert!(!dst.join("live.tmp").exists() && !dst.join("build").exists());
    assert!(dst.join("live.txt").exists());
    assert!(d.stop().success());
}

crate::both_modes! {
    patterns => excludes_its_patterns;
}

/// Editing the exclude file and reloading restarts the job that uses it, not the other,
/// and the new pattern takes effect.
#[test]
fn reload_restarts_only_the_jobs_whose_file_changed() {
    let env = sup_env("");
    let (su, du) = (env.dir("src-uses"), env.p("dst-uses"));
    let (so, dsto) = (env.dir("src-other"), env.p("dst-other"));
    populate(&su, "u");
    populate(&so, "o");
    let file = env.p("shared-excludes");
    fs::write(&file, "*.tmp\n").unwrap();
    env.job(
        "uses",
        &su,
        &du,
        Mode::Rsync,
        &format!("exclude_from = {}\n", toml_path(&file)),
    );
    env.job("other", &so, &dsto, Mode::Rsync, "exclude = [\"*.tmp\"]\n");
    let mut d = start_sup(&env, &["uses", "other"]);
    write(&su.join("app.log"), "synced before the edit");
    d.assert_synced(&su, &du, &["*.tmp"]);

    // An unchanged file: nothing restarts.
    d.signal(libc::SIGHUP);
    wait_status(&mut d, &env, "a first reload", |v| {
        v["last_reload"]["ok"] == true
    });
    let v = status(&sock(&env)).unwrap();
    assert_eq!(v["last_reload"]["changed"], json!([]), "{v:#}");

    append(&file, "*.log\n");
    // A restarted job makes an inotify instance (see INOTIFY_START).
    let g = INOTIFY_START.read().unwrap_or_else(|e| e.into_inner());
    d.signal(libc::SIGHUP);
    let v = wait_status(&mut d, &env, "uses restarted", |v| {
        v["last_reload"]["changed"] == json!(["uses"])
            && is_watching(v, "uses")
            && is_watching(v, "other")
    });
    drop(g);
    assert_eq!(v["last_reload"]["added"], json!([]), "{v:#}");
    assert_eq!(v["last_reload"]["removed"], json!([]), "{v:#}");
    assert_eq!(
        job_log_count(&d, "other", INITIAL_DONE),
        1,
        "{}",
        d.log_tail()
    );
    write(&su.join("new.log"), "excluded now");
    write(&so.join("new.log"), "other still syncs it");
    d.barrier(&su, &du, &["*.tmp", "*.log"]);
    d.assert_synced(&so, &dsto, &["*.tmp"]);
    assert!(
        !du.join("new.log").exists(),
        "the new pattern is not in effect\n{}",
        d.log_tail()
    );
    assert!(dsto.join("new.log").exists());
    // `clsync explain` names the file and line of the pattern that decided.
    let out = cli_conf(&env, "explain", &["uses", "new.log"]);
    let first = out.stdout.lines().next().unwrap_or("");
    assert!(
        first.contains("denied: exclude pattern #1 \"*.log\" matches")
            && first.ends_with(&format!("({}:2)", file.display())),
        "{}",
        out.describe()
    );
    assert!(d.stop().success());
}

/// A missing file is an error at the key; a bad pattern at FILE:LINE.
#[test]
fn errors_name_the_key_or_the_line() {
    let env = Env::new();
    let (src, dst) = (env.dir("src"), env.p("dst"));
    let j = env.job(
        "j",
        &src,
        &dst,
        Mode::Rsync,
        "exclude_from = \"nope.txt\"\n",
    );
    let check = || {
        run_check(
            &env.root,
            &[OsStr::new("--config-dir"), env.conf.as_os_str()],
        )
    };
    let out = check();
    assert_ne!(out.code, Some(0), "{}", out.describe());
    let e = out.errors_in(j.file_name().unwrap().to_str().unwrap());
    assert_eq!(e.len(), 1, "{}", out.describe());
    assert_eq!((e[0].line, e[0].column), (5, 16), "{}", out.describe());
    assert!(
        e[0].message.contains("cannot read exclude file")
            && e[0].message.contains("nope.txt")
            && e[0].message.contains("No such file or directory"),
        "{}",
        out.describe()
    );

    fs::write(env.conf.join("nope.txt"), "ok\n# fine\n[unclosed\n").unwrap();
    let out = check();
    assert_ne!(out.code, Some(0), "{}", out.describe());
    let e = out.errors_in("nope.txt");
    assert_eq!(e.len(), 1, "{}", out.describe());
    assert_eq!(e[0].line, 3, "{}", out.describe());
    assert!(e[0].message.contains("[unclosed"), "{}", out.describe());

    fs::write(env.conf.join("nope.txt"), "ok\n").unwrap();
    let out = check();
    assert_eq!(out.code, Some(0), "{}", out.describe());
}
